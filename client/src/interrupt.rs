//! interrupt.rs - Ctrl-C (SIGINT) and SIGTERM for psp-client: the first one stops the
//! run in progress where it is (no further sends; replies to what was sent are still
//! awaited up to `--timeout`), and what was measured is reported and written as
//! usual; a second one from 200 ms on exits at once (status 130). As with psp-app, a
//! signal within 200 ms of the first is taken for the same one delivered twice
//! (`timeout` signals its child and then its process group).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// How long after the first signal another is taken for the same one.
const SAME_SIGNAL: Duration = Duration::from_millis(200);

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process) and returns the flag the first signal
/// sets, for [`crate::config::Plan::stop`].
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    // Set 200 ms after the first signal: from then on a signal exits at once.
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first: it runs before the flag is set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, armed.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    // Blocks until the first signal (no polling), then arms the exit.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("psp-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                std::thread::sleep(SAME_SIGNAL);
                armed.store(true, Ordering::Relaxed);
            }
        })?;
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// The flag, if [`install`] was called (psp-client's `main` does, for the commands
/// that run load; a library user or a test that did not gets `None`: nothing stops
/// its runs).
pub fn flag() -> Option<Arc<AtomicBool>> {
    FLAG.get().cloned()
}
