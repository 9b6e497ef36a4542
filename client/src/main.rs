//! psp-client - open-loop load generator for persephone: `psp-client --help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use persephone::report::say;
use psp_client::config::RunArgs;
use psp_client::demo::DemoArgs;
use psp_client::plot::{self, PanelKind, PlotOptions, XAxis};

/// Open-loop load generator for persephone: per-type latency and slowdown, sweeps, plots.
///
/// Without a subcommand, runs load (same flags as `run`).
#[derive(Debug, Parser)]
#[command(name = "psp-client", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Play an open-loop schedule against a server and report latency and slowdown.
    Run(Box<RunArgs>),
    /// Render p99.9 latency and slowdown against load from result CSVs, as SVG.
    Plot(PlotArgs),
    /// Start the daemon in-process on loopback, load it for a few seconds, print the table.
    Demo(DemoArgs),
    /// Draw a run's timeline.csv (latency, ok/rejected rates, and the server's RSS over
    /// time) as SVG, and print how long the service took to recover from overload.
    PlotTimeline(PlotTimelineArgs),
}

#[derive(Debug, clap::Args)]
struct PlotTimelineArgs {
    /// timeline.csv (psp-client --timeline).
    #[arg(value_name = "CSV")]
    timeline: PathBuf,
    /// The server's memory: a CSV with columns unix_s and rss_kib.
    #[arg(long, value_name = "CSV")]
    rss: Option<PathBuf>,
    /// Output SVG.
    #[arg(long, short, value_name = "SVG")]
    out: PathBuf,
    /// The run point to draw [default: the file's first].
    #[arg(long)]
    point: Option<String>,
    /// The overload phase [default: the phase with the highest offered rate].
    #[arg(long, value_name = "N")]
    overload_phase: Option<usize>,
    /// Recovered: an interval with nothing rejected or lost and a p99 within this
    /// factor of the pre-overload phase's median interval p99.
    #[arg(long, default_value_t = 2.0)]
    factor: f64,
    /// Title above the panels.
    #[arg(long)]
    title: Option<String>,
}

#[derive(Debug, clap::Args)]
struct PlotArgs {
    /// Result CSVs (from psp-client or psp-sim).
    #[arg(required = true, value_name = "CSV")]
    inputs: Vec<PathBuf>,
    /// Output SVG.
    #[arg(long, short, value_name = "SVG")]
    out: PathBuf,
    /// Which quantile to draw.
    #[arg(long, default_value = "p999", value_parser = ["p50", "p90", "p99", "p999", "p9999", "max", "mean"])]
    quantile: String,
    /// Also draw each run's overall (ALL) curve in the per-type panels.
    #[arg(long)]
    overall: bool,
    /// The x axis: offered load, or offered rate.
    #[arg(long, value_enum, default_value = "load")]
    x: XAxis,
    /// Panels, left to right.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "latency,slowdown"
    )]
    panels: Vec<PanelKind>,
    /// Title above both panels.
    #[arg(long)]
    title: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr's reader gone) is lost, not a panic.
        .log_internal_errors(false)
        .init();
    let mut out = std::io::stdout();
    // Ctrl-C stops a run where it is and reports what it measured; a second one exits.
    // Plotting has nothing to stop: there it ends psp-client as usual.
    let runs = matches!(cli.cmd, None | Some(Cmd::Run(_)) | Some(Cmd::Demo(_)));
    if let Err(e) = runs.then(psp_client::interrupt::install).transpose() {
        let _ = writeln!(
            std::io::stderr(),
            "psp-client: warning: cannot handle Ctrl-C ({e}): it will end psp-client \
             without a report"
        );
    }
    let result = match cli.cmd {
        None => run(&cli.run, &mut out),
        Some(Cmd::Run(a)) => run(&a, &mut out),
        Some(Cmd::Plot(a)) => plot::plot_files(
            &a.inputs,
            &a.out,
            &PlotOptions {
                quantile: a.quantile,
                overall: a.overall,
                x: a.x,
                panels: a.panels,
                title: a.title,
                ..PlotOptions::default()
            },
        )
        .map(|()| say(format_args!("wrote {}", a.out.display()))),
        Some(Cmd::Demo(a)) => psp_client::demo::run(&a, &mut out),
        Some(Cmd::PlotTimeline(a)) => plot::plot_timeline_files(
            &a.timeline,
            a.rss.as_deref(),
            &a.out,
            a.point.as_deref(),
            a.overload_phase,
            a.factor,
            a.title.as_deref(),
        )
        .map(|s| say(format_args!("{s}wrote {}", a.out.display()))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics when stderr's reader is gone (`2>&1 | head`).
            let _ = writeln!(std::io::stderr(), "psp-client: {e:#}");
            if e.is::<psp_client::runner::Interrupted>() {
                // As a shell reports a command ended by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(args: &RunArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let mut plan = args.plan()?;
    plan.stop = psp_client::interrupt::flag();
    let extra = psp_client::runner::Extra {
        timeline: args.timeline()?,
    };
    psp_client::runner::run_with(&plan, &extra, out)?;
    Ok(())
}
