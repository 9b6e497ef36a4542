//! custom_handler - your own service behind persephone: a handler with per-worker
//! state and request types declared in code (see `service.rs`), served with the
//! daemon's config, policies, transport and counters.
//!
//! ```sh
//! cargo run --release --example custom_handler -- --cfg configs/quickstart.yml
//! # in another terminal (types 1 and 2 of high-bimodal are HASH and PRIMES here):
//! cargo run --release -p psp-client -- --workers 2 --load 0.2 --duration 5s
//! ```
//!
//! It prints `listening on ADDR`, serves until SIGINT or SIGTERM, then prints the
//! final counters. `tests/examples.rs` runs [`serve`] from this file and
//! `client/tests/examples.rs` loads the service with psp-client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use persephone::config::Config;
use persephone::{App, StartError, Stats};

#[path = "service.rs"]
pub mod service;

/// Serves the example's HASH and PRIMES requests (see examples/custom_handler/).
#[derive(Debug, Parser)]
struct Args {
    /// Daemon config; its `requests` ids 1 and 2 become HASH and PRIMES.
    #[arg(long, default_value = "configs/quickstart.yml")]
    cfg: PathBuf,
    /// Listen here instead of the config's net.bind (port 0: any free port).
    #[arg(long)]
    bind: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("custom_handler: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    // The config may omit `requests:`: the program declares its types.
    let mut cfg = match Config::load_unvalidated(&args.cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custom_handler: --cfg: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(b) = args.bind {
        cfg.net.bind = b;
    }
    match serve(cfg, &stop, |addr| println!("listening on {addr}")) {
        Ok(stats) => {
            println!("final counters:\n{stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("custom_handler: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the service on `cfg`, tells `ready` its address, serves until `stop` is set
/// (or the daemon stops on its own), then shuts down and returns the final counters.
pub fn serve(
    cfg: Config,
    stop: &AtomicBool,
    ready: impl FnOnce(SocketAddr),
) -> Result<Stats, StartError> {
    let server = App::new(cfg)
        .request_types(service::request_types())
        .handler(|_worker| service::Service::new())
        .start()?;
    ready(server.local_addr());
    while !stop.load(Ordering::Relaxed) && !server.is_finished() {
        // A signal handler can only set a flag; look at it often enough to exit promptly.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server.shutdown())
}
