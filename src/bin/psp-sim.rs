//! psp-sim.rs - the simulator's command line (see `persephone::sim::cli`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use persephone::report::say;
use persephone::sim::cli::{self, Cli, Cmd};

fn main() -> ExitCode {
    // One line with the causes, as psp-app and psp-client print (not a backtrace when
    // RUST_BACKTRACE is set).
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics when stderr's reader is gone (`2>&1 | head`).
            let _ = writeln!(std::io::stderr(), "psp-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Plot(p)) = &cli.cmd {
        cli::plot(p)?;
        say(format_args!("wrote {}", p.out.display()));
        return Ok(());
    }
    let args = cli.run;
    // Bad flags are usage errors, reported as clap reports its own (exit status 2).
    let points = match cli::points(&args) {
        Ok(points) => points,
        Err(e) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, format!("{e:#}"))
            .exit(),
    };
    let n = points.len() as u64;
    for w in cli::unused_settings(&args)
        .into_iter()
        .chain(cli::unused_workload_settings(&points))
    {
        let _ = writeln!(std::io::stderr(), "psp-sim: warning: {w}");
    }
    let bar = ProgressBar::new(n).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} points {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let verbose = args.verbose;
    let command: Vec<String> = std::env::args().collect();
    let all = cli::run(&args, &command.join(" "), &|p, r| {
        if verbose {
            // Off a terminal the bar hides itself, and what it would print with it.
            if bar.is_hidden() {
                say(format_args!("{}", cli::summary(p, r)));
            } else {
                bar.println(cli::summary(p, r));
            }
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if !verbose {
        for (p, r) in &all {
            say(format_args!("{}", cli::summary(p, r)));
        }
    }
    say(format_args!(
        "wrote {}/sim.csv and sim.json",
        args.outdir.display()
    ));
    Ok(())
}
