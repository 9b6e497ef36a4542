//! interrupt.rs - Ctrl-C (SIGINT) and SIGTERM for psp-client: the first one stops the
//! run in progress where it is (no further sends; replies to what was sent are still
//! awaited up to `--timeout`), and what was measured is reported and written as
//! usual; a second one exits at once (status 130), as psp-app's does.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process) and returns the flag the first signal
/// sets, for [`crate::config::Plan::stop`].
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    if let Some(f) = FLAG.get() {
        return Ok(f.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first: it runs before the flag is set, so it exits on the second.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// The flag, if [`install`] was called (psp-client's `main` does; a library user
/// or a test that did not gets `None`: nothing stops its runs).
pub fn flag() -> Option<Arc<AtomicBool>> {
    FLAG.get().cloned()
}
