//! psp-app - the persephone daemon: `psp-app --cfg config.yml`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use persephone::config::Config;
use persephone::report::say;
use persephone::App;

/// A microsecond-scale request scheduler (c-FCFS, d-FCFS, DARC, SJF, EDF).
#[derive(Debug, Parser)]
#[command(name = "psp-app", version)]
struct Args {
    /// YAML config (see configs/ and README).
    #[arg(long, short = 'c', value_name = "FILE")]
    cfg: std::path::PathBuf,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // RUST_LOG, when set, overrides --log; either one, if bad, is a usage error naming
    // it, rather than ignored.
    let (source, spec) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => ("--log", args.log.clone()),
    };
    let filter = match misspelt_level(&spec).map_or_else(
        || tracing_subscriber::EnvFilter::try_new(&spec).map_err(|e| e.to_string()),
        Err,
    ) {
        Ok(f) => f,
        Err(e) => Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("{source} {spec:?}: {e}"),
            )
            .exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr's reader gone) is lost, not a
        // panic: the daemon goes on serving.
        .log_internal_errors(false)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "psp-app: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let cfg = Config::load(&args.cfg)?;
    let term = Arc::new(AtomicBool::new(false));
    // Armed a moment after the first signal: a second signal then exits at once. Not
    // at the first signal itself, so that one signal delivered twice (`timeout`
    // signals its child and then its process group) is not taken for two.
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, armed.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, term.clone()).context("installing signal handlers")?;
    }
    let server = App::new(cfg).start()?;
    // Tests and scripts wait for this line to know the port. Whoever reads stdout may
    // be gone (`psp-app ... | head -1`): then the line is lost, not the daemon.
    say(format_args!("listening on {}", server.local_addr()));
    // The dispatcher publishes its counters every `stats.interval_ms` (never if 0): a
    // line per snapshot, each compared with the one before (the first with the start).
    let (mut seen, mut previous) = (0, persephone::dispatcher::Stats::default());
    while !term.load(Ordering::Relaxed) {
        if server.is_finished() {
            anyhow::bail!("the dispatcher stopped unexpectedly");
        }
        // Wakes for a snapshot, or after a while to look at the signal flag.
        if let Some((n, stats)) = server.next_stats(seen, Duration::from_millis(20)) {
            tracing::info!("{} | {}", stats.line(), stats.load_since(&previous));
            (seen, previous) = (n, stats);
        }
    }
    tracing::info!(
        "signal received, shutting down (a second signal, from 200 ms on, exits at once)"
    );
    std::thread::spawn(move || {
        std::thread::sleep(SAME_SIGNAL);
        armed.store(true, Ordering::Relaxed);
        tracing::info!("draining; a second signal now exits at once, status 1");
    });
    let stats = server.shutdown();
    say(format_args!("final counters:\n{stats}"));
    Ok(())
}

/// Why `filter` is refused though EnvFilter would take it: a bare word that looks like
/// a misspelt level (`debugg`, `wran`) is a *target* to EnvFilter, and would silence
/// every line not from a target of that name, warnings and stats included. A bare word
/// is taken for a level when it is two edits or fewer from one (a target name such as
/// `persephone` is far from every level).
fn misspelt_level(filter: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    filter.split(',').map(str::trim).find_map(|d| {
        let w = d.to_ascii_lowercase();
        let bare = !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic());
        if !bare || LEVELS.contains(&w.as_str()) {
            return None;
        }
        let near = LEVELS
            .iter()
            .find(|l| w.starts_with(&l[..3]) || strsim::damerau_levenshtein(&w, l) <= 2)?;
        Some(format!(
            "{d:?} is not a level ({}); as a target name it would silence every \
             other line (did you mean {near:?}?)",
            LEVELS.join(", ")
        ))
    })
}

/// How long after the first signal a second one still counts as the same.
const SAME_SIGNAL: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_of_a_level_are_refused_and_target_names_are_not() {
        for bad in [
            "debugg",
            "wran",
            "inof",
            "eror",
            "trce",
            "Warning",
            "info,debugg",
        ] {
            assert!(misspelt_level(bad).is_some(), "{bad}");
        }
        for ok in [
            "info",
            "WARN",
            "persephone",
            "psp_app",
            "persephone=debug",
            "warn,persephone::dispatcher=trace",
            "",
        ] {
            assert_eq!(misspelt_level(ok), None, "{ok}");
        }
        assert!(misspelt_level("wran")
            .unwrap()
            .contains("did you mean \"warn\""));
    }
}
