//! sim/cli.rs - `psp-sim`'s command line: a sweep of loads × policies × worker counts
//! (or a phased run), run in parallel, written in `psp-client`'s CSV/JSON schema.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::sweep::{self, Point};
use super::{Arrivals, Length, Phase, Rate, SimConfig, SimResult};
use crate::config::{Assign, ConfigError, PolicyConfig, PolicyKind, Profile};
use crate::report;
use crate::workload::Workload;

/// Simulate the daemon's policies (c-FCFS, d-FCFS, DARC, SJF, EDF) on virtual time.
///
/// One invocation sweeps loads × policies × worker counts (or runs a phased workload,
/// `--phases`); points run in parallel. Results go to OUTDIR/sim.csv and sim.json (the
/// schema of `psp-client`, so `psp-client plot` draws both), plus reservations.csv
/// (DARC's reservation changes) and timeline.csv (per-type latency over time, with
/// `--timeline-us`). `psp-sim plot` draws the figures `psp-client plot` does not.
#[derive(Debug, Clone, Parser)]
#[command(name = "psp-sim", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    #[command(flatten)]
    pub run: Args,
}

/// Subcommands (without one, `psp-sim` runs a sweep).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Cmd {
    /// Draw a figure (SVG) from a psp-sim output directory.
    Plot(PlotArgs),
}

/// Which figure `psp-sim plot` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlotKind {
    /// `--metric` per request type, one curve per policy (e.g. TPC-C at one load).
    Types,
    /// `--metric` per type against DARC's manual reservation (`--n-resas` sweeps).
    Resa,
    /// A phased run: per-type p99.9 latency and DARC's reservation over time.
    Timeline,
}

/// `psp-sim plot` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    pub kind: PlotKind,
    /// The output directory of a psp-sim run.
    pub dir: PathBuf,
    /// Output SVG.
    #[arg(long, short)]
    pub out: PathBuf,
    /// CSV column to plot (types, resa).
    #[arg(long, default_value = "slowdown_p999")]
    pub metric: String,
    #[arg(long, default_value = "")]
    pub title: String,
    /// Phase boundaries to mark, in ms (timeline).
    #[arg(long, value_delimiter = ',')]
    pub phase_ms: Vec<f64>,
    /// The load to draw (types), when the run swept several.
    #[arg(long)]
    pub load: Option<f64>,
}

/// Draws the figure `args` asks for.
pub fn plot(args: &PlotArgs) -> Result<()> {
    let csv = args.dir.join("sim.csv");
    let (r, needs) = match args.kind {
        PlotKind::Types => (
            super::plot::per_type(&csv, &args.out, &args.metric, &args.title, args.load),
            "a psp-sim run's output directory",
        ),
        PlotKind::Resa => (
            super::plot::reservation_sweep(&csv, &args.out, &args.metric, &args.title),
            "the output of a run with --n-resas (a sweep of DARC's reservation)",
        ),
        PlotKind::Timeline => (
            super::plot::timeline(&args.dir, &args.out, &args.phase_ms, &args.title),
            "the output of a run with --timeline-us",
        ),
    };
    // No figure is left behind by a plot that failed (an empty SVG looks like one).
    if r.is_err() {
        let _ = std::fs::remove_file(&args.out);
    }
    // Finding nothing to draw means the directory holds another kind of run.
    r.map_err(|e| {
        if e.downcast_ref::<super::plot::NothingToPlot>().is_some() {
            e.context(format!("{}: needs {needs}", args.dir.display()))
        } else {
            e
        }
    })
}

/// The sweep (or phased run) arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workload: a preset (high-bimodal, extreme-bimodal, tpcc, rocksdb) or a YAML file.
    #[arg(long, default_value = "high-bimodal")]
    pub workload: String,
    /// A phased run instead of a load sweep: YAML with `phases: [{workload, load | rps,
    /// duration_ms | duration | requests}]` and an optional `name:` (default: the file's
    /// stem); psp-client's spellings `rate` and `duration: 500ms` are accepted.
    /// No warm-up: phase 0 starts from an empty system (its rows are measured from
    /// the first request; psp-client warms up with phase 0 first). --warmup is refused
    /// with it.
    #[arg(
        long,
        conflicts_with_all = ["workload", "loads", "requests", "duration", "warmup"]
    )]
    pub phases: Option<PathBuf>,
    /// Offered loads (fractions of the workers' capacity): `start:end:step`
    /// (inclusive), or a comma-separated list.
    #[arg(long, default_value = "0.1:0.9:0.1")]
    pub loads: String,
    /// Policies, comma-separated: cfcfs, dfcfs, darc, sjf, edf.
    #[arg(long, default_value = "cfcfs,dfcfs,darc", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Worker counts, comma-separated.
    #[arg(long, default_value = "14", value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Measured requests per point (a `--warmup` fraction more are run first).
    #[arg(
        long,
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with = "duration"
    )]
    pub requests: u64,
    /// Measured virtual time per point instead of a request count (`500ms`, `2s`; a
    /// plain number is seconds, as in psp-client).
    #[arg(long, value_parser = parse_positive_duration_ns)]
    pub duration: Option<u64>,
    /// Warm-up, as a fraction of the measured requests or duration.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub warmup: f64,
    /// Seed of the arrival and service-time streams (the same for every point, so all
    /// policies see the same requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, default_value = "results/sim/out")]
    pub outdir: PathBuf,
    /// Experiment label (default: the workload's name).
    #[arg(long)]
    pub label: Option<String>,
    /// Arrival process: poisson (or exponential, psp-client's name) or uniform.
    #[arg(long, alias = "arrival", default_value = "poisson", value_parser = parse_arrivals)]
    pub arrivals: Arrivals,
    /// Capacity of each type's queue at the dispatcher (1 to 2^24).
    #[arg(long, default_value_t = 4096)]
    pub queue_capacity: usize,
    /// DARC: group types whose mean service times are within this relative distance
    /// (0 to 10).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.2)]
    pub delta: f64,
    /// DARC: completions per profiling window.
    #[arg(long, default_value_t = 50_000)]
    pub window: u64,
    /// DARC: manual reservations of the shortest group; each value (`3`, `0:13`,
    /// `1,2,4`) is a policy variant `darc-rK` reserving K workers.
    #[arg(long)]
    pub n_resas: Option<String>,
    /// DARC, SJF, EDF: `dynamic` (profile online) or `static` (DARC reserves from the
    /// workload's means and ratios, SJF and EDF rank by its means).
    #[arg(long, default_value = "dynamic", value_parser = parse_enum::<Profile>)]
    pub profile: Profile,
    /// DARC: the spillway worker (default: the last).
    #[arg(long)]
    pub spillway: Option<usize>,
    /// EDF: a request's deadline is its arrival plus this many times its type's expected
    /// service time (the workload's mean, or the learnt one; 0 to 1000000; 0 is
    /// c-FCFS).
    #[arg(long, allow_negative_numbers = true, default_value_t = 10.0)]
    pub slo: f64,
    /// d-FCFS: round_robin, random or jsq.
    #[arg(long, default_value = "round_robin", value_parser = parse_enum::<Assign>)]
    pub assign: Assign,
    /// d-FCFS: requests a worker may hold.
    #[arg(long, default_value_t = 64)]
    pub depth: usize,
    /// Nanoseconds the dispatcher spends per dispatch decision.
    #[arg(long, default_value_t = 0)]
    pub dispatch_overhead_ns: u64,
    /// Nanoseconds lost per preemption (for preemptive policies; none exists yet).
    #[arg(long, default_value_t = 0)]
    pub preemption_cost_ns: u64,
    /// Record per-type latency over windows of this many microseconds (timeline.csv).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=u64::MAX / 1000))]
    pub timeline_us: Option<u64>,
    /// Do not tell the policy the workload's means and ratios up front (see
    /// `SimConfig::hints`): a dynamic DARC then starts with no reservation, and SJF and
    /// EDF learn each type's mean from its completions.
    #[arg(long)]
    pub no_hints: bool,
    /// Parallel simulations (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print each point's summary line as it finishes (otherwise all at the end).
    #[arg(long)]
    pub verbose: bool,
}

/// A phased-run file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhasesFile {
    /// Label of the run (default: the file's name without its extension).
    #[serde(default)]
    pub name: String,
    pub phases: Vec<PhaseSpec>,
}

/// One phase in a phases file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// A preset name, a YAML file path, or an inline workload.
    pub workload: WorkloadSpec,
    #[serde(default)]
    pub load: Option<f64>,
    /// Requests/s (psp-client's phases spell it `rate`, accepted too).
    #[serde(default, alias = "rate")]
    pub rps: Option<f64>,
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// The length as psp-client's phases give it (`3s`, `500ms`), instead of
    /// `duration_ms`.
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub requests: Option<u64>,
}

/// A workload given by name or inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WorkloadSpec {
    Named(String),
    Inline(Workload),
}

impl WorkloadSpec {
    fn resolve(&self, base: &Path) -> Result<Workload> {
        match self {
            WorkloadSpec::Named(n) => load_workload_from(n, base),
            WorkloadSpec::Inline(w) => {
                w.validate()?;
                Ok(w.clone())
            }
        }
    }
}

/// A preset name or a YAML file.
pub fn load_workload(name: &str) -> Result<Workload> {
    load_workload_from(name, Path::new("."))
}

fn load_workload_from(name: &str, base: &Path) -> Result<Workload> {
    if let Ok(w) = Workload::preset(name) {
        return Ok(w);
    }
    let path = base.join(name);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "--workload {name}: neither a preset ({}) nor a readable file",
            crate::workload::PRESETS.join(", ")
        )
    })?;
    Workload::from_yaml(&text).with_context(|| format!("workload file {}", path.display()))
}

fn parse_enum<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    if s.trim().is_empty() {
        // serde_yaml would say "EOF while parsing a value".
        return Err("an empty name (two commas in a row, or a trailing one?)".into());
    }
    serde_yaml::from_str(s).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_arrivals(s: &str) -> Result<Arrivals, String> {
    match s {
        "poisson" | "exponential" => Ok(Arrivals::Poisson),
        "uniform" => Ok(Arrivals::Uniform),
        _ => Err(format!("{s:?}: expected poisson or uniform")),
    }
}

/// A duration in [`crate::time::parse_duration`]'s spelling (a bare number is
/// seconds, as in psp-client) to nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    crate::time::parse_duration(s).map(|d| d.as_nanos() as u64)
}

/// [`parse_duration_ns`], refusing 0 (`--duration`: a run of no time measures nothing).
fn parse_positive_duration_ns(s: &str) -> Result<u64, String> {
    match parse_duration_ns(s)? {
        0 => Err(format!("{s:?}: must be at least 1 ns")),
        ns => Ok(ns),
    }
}

/// Most values `parse_range` gives (a sweep of more points is a typo).
const MAX_RANGE_VALUES: usize = 100_000;

/// `start:end:step` (inclusive, tolerant of float rounding) or `a,b,c` to values.
pub fn parse_range(s: &str, flag: &str) -> Result<Vec<f64>> {
    let bad = || format!("{flag} {s:?}: expected start:end:step or a comma-separated list");
    if s.contains(':') {
        let parts: Vec<f64> = s
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(bad)?;
        let (start, end, step) = match parts[..] {
            [a, b] => (a, b, 1.0),
            [a, b, c] => (a, b, c),
            _ => bail!(bad()),
        };
        if ![start, end, step].iter().all(|v| v.is_finite()) {
            bail!("{flag} {s:?}: start, end and step must be finite numbers");
        }
        if step <= 0.0 || end < start {
            bail!("{flag} {s:?}: need start <= end and step > 0");
        }
        let n = ((end - start) / step + 1e-9).floor();
        if n >= MAX_RANGE_VALUES as f64 {
            bail!("{flag} {s:?}: more than {MAX_RANGE_VALUES} values");
        }
        let n = n as usize;
        // Round to 9 decimals so 0.1:0.9:0.1 gives 0.3, not 0.30000000000000004.
        Ok((0..=n)
            .map(|i| ((start + i as f64 * step) * 1e9).round() / 1e9)
            .collect())
    } else {
        let values: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>().with_context(bad))
            .collect::<Result<_>>()?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            bail!("{flag} {s:?}: {v} is not a finite number");
        }
        Ok(values)
    }
}

/// Warnings for the flags of a policy the run does not include, set to other than
/// their defaults: they change nothing (a sweep may mix policies, and the recorded
/// commands under `results/sim/` pass d-FCFS's flags to every run, so this warns
/// rather than refuses).
pub fn unused_settings(args: &Args) -> Vec<String> {
    let kinds: Vec<PolicyKind> = args
        .policies
        .iter()
        .filter_map(|name| parse_enum(name.trim()).ok())
        .collect();
    let mut cfg = policy_config(args, PolicyKind::default());
    // --seed seeds the arrivals too: not d-FCFS's alone.
    cfg.seed = PolicyConfig::default().seed;
    // `--n-resas` is a range spec here, not the config's list: set or not.
    cfg.n_resas = args.n_resas.as_ref().map(|_| Vec::new());
    let mut foreign: Vec<(&[PolicyKind], String)> = cfg
        .foreign_keys(&kinds)
        .into_iter()
        .map(|(readers, key)| (readers, format!("--{}", key.replace('_', "-"))))
        .collect();
    // The simulator's own: the type hints, and d-FCFS's depth (which, unlike the
    // daemon's, sizes nothing else).
    let own: [(&'static [PolicyKind], &str, bool); 2] = [
        (
            &[PolicyKind::Darc, PolicyKind::Sjf, PolicyKind::Edf],
            "--no-hints",
            args.no_hints,
        ),
        (
            &[PolicyKind::Dfcfs],
            "--depth",
            args.depth != PolicyConfig::default().depth,
        ),
    ];
    for (readers, flag, set) in own {
        if set && !readers.iter().any(|r| kinds.contains(r)) {
            foreign.push((readers, flag.into()));
        }
    }
    foreign
        .into_iter()
        .map(|(readers, flag)| {
            let who = PolicyKind::names(readers);
            format!(
                "{flag} is read by {who} only, but --policies {} has no {who}: it changes \
                 nothing",
                args.policies.join(","),
            )
        })
        .collect()
}

/// Warnings for what the workloads of `points` set that no policy of the run reads:
/// a type's `deadline_ns` without EDF; and a type whose deadline a later phase changes
/// (the run keeps the first phase's).
pub fn unused_workload_settings(points: &[Point]) -> Vec<String> {
    let mut out = Vec::new();
    let edf = points.iter().any(|p| p.cfg.policy.kind == PolicyKind::Edf);
    // Every point runs the same workloads: the first point's say it.
    let Some(first) = points.first() else {
        return out;
    };
    let mut seen: Vec<(u32, Option<u64>)> = Vec::new();
    let mut warned: Vec<u32> = Vec::new();
    for t in first.cfg.phases.iter().flat_map(|ph| &ph.workload.types) {
        if t.deadline_ns.is_some() && !edf && !warned.contains(&t.id) {
            warned.push(t.id);
            out.push(format!(
                "type {} sets deadline_ns, but --policies has no edf: it changes nothing",
                t.name
            ));
        }
        match seen.iter().find(|(id, _)| *id == t.id) {
            Some(&(_, first)) if first != t.deadline_ns => {
                let ns = |d: Option<u64>| d.map_or("none".to_string(), |d| format!("{d} ns"));
                out.push(format!(
                    "type {}: a later phase's deadline_ns ({}) differs from the first's ({}); \
                     EDF keeps the first",
                    t.name,
                    ns(t.deadline_ns),
                    ns(first)
                ))
            }
            Some(_) => {}
            None => seen.push((t.id, t.deadline_ns)),
        }
    }
    out
}

/// The policy config of `kind` the flags give (before `--n-resas`, a range of variants).
fn policy_config(args: &Args, kind: PolicyKind) -> PolicyConfig {
    PolicyConfig {
        kind,
        delta: args.delta,
        window: args.window,
        profile: args.profile,
        slo: args.slo,
        n_resas: None,
        spillway: args.spillway,
        assign: args.assign,
        depth: args.depth,
        seed: args.seed,
    }
}

/// A policy variant: its CSV name and its config.
fn policies(args: &Args) -> Result<Vec<(String, PolicyConfig)>> {
    let kinds = args
        .policies
        .iter()
        .map(|name| {
            parse_enum::<PolicyKind>(name.trim())
                // The error lists the policies.
                .map_err(|e| anyhow::anyhow!("--policies: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for &kind in &kinds {
        let base = policy_config(args, kind);
        match (&args.n_resas, kind) {
            (Some(spec), PolicyKind::Darc) => {
                for k in parse_range(spec, "--n-resas")? {
                    if k < 0.0 || k.fract() != 0.0 {
                        bail!("--n-resas {spec:?}: {k} is not a worker count");
                    }
                    let mut cfg = base.clone();
                    cfg.n_resas = Some(vec![k as usize]);
                    out.push((format!("darc-r{k}"), cfg));
                }
            }
            _ => out.push((kind.name().to_string(), base)),
        }
    }
    Ok(out)
}

/// Builds every point the arguments ask for.
pub fn points(args: &Args) -> Result<Vec<Point>> {
    if !(0.0..1.0).contains(&args.warmup) {
        bail!("--warmup {}: must be in [0, 1)", args.warmup);
    }
    if args.workers.contains(&0) {
        bail!("--workers: 0 workers");
    }
    let pols = policies(args)?;
    let mut out = Vec::new();
    let base = |workers: usize, policy: &PolicyConfig, phases: Vec<Phase>| SimConfig {
        workers,
        policy: policy.clone(),
        phases,
        arrivals: args.arrivals,
        seed: args.seed,
        queue_capacity: args.queue_capacity,
        warmup_requests: 0,
        warmup_ns: 0,
        dispatch_overhead_ns: args.dispatch_overhead_ns,
        preemption_cost_ns: args.preemption_cost_ns,
        timeline_ns: args.timeline_us.map(|us| us.saturating_mul(1000)),
        hints: !args.no_hints,
    };
    if args.jobs == Some(0) {
        bail!("--jobs: must be at least 1 (leave it out for one per core)");
    }
    if let Some(path) = &args.phases {
        let text = fs::read_to_string(path)
            .with_context(|| format!("--phases: cannot read {}", path.display()))?;
        let mut file: PhasesFile =
            serde_yaml::from_str(&text).with_context(|| format!("--phases {}", path.display()))?;
        if file.name.is_empty() {
            file.name = path
                .file_stem()
                .map_or_else(|| "phases".into(), |s| s.to_string_lossy().into_owned());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut phases = Vec::new();
        for (i, p) in file.phases.iter().enumerate() {
            let key = format!("phases[{i}]");
            let rate = match (p.load, p.rps) {
                (Some(l), None) if l > 0.0 && l.is_finite() => Rate::Load(l),
                (None, Some(r)) if r > 0.0 && r.is_finite() => Rate::Rps(r),
                _ => bail!(
                    "--phases {}: {key}: give one of load or rps, finite and > 0",
                    path.display()
                ),
            };
            let duration_ns = match &p.duration {
                Some(d) => Some(parse_positive_duration_ns(d).map_err(|e| {
                    anyhow::anyhow!("--phases {}: {key}.duration: {e}", path.display())
                })?),
                None => None,
            };
            let length = match (p.duration_ms, duration_ns, p.requests) {
                (Some(ms), None, None) if ms * 1e6 >= 1.0 && ms * 1e6 < u64::MAX as f64 => {
                    Length::Nanos((ms * 1e6) as u64)
                }
                (None, Some(ns), None) => Length::Nanos(ns),
                (None, None, Some(n)) if n > 0 => Length::Requests(n),
                _ => bail!(
                    "--phases {}: {key}: give one of duration_ms (at least 1 ns, finite), \
                     duration (`3s`) or requests, > 0",
                    path.display()
                ),
            };
            let workload = p
                .workload
                .resolve(dir)
                .with_context(|| format!("--phases {}: {key}", path.display()))?;
            phases.push(Phase {
                workload,
                rate,
                length,
            });
        }
        if phases.is_empty() {
            bail!("--phases {}: no phases", path.display());
        }
        let label = args.label.clone().unwrap_or(file.name);
        for &w in &args.workers {
            for (name, pol) in &pols {
                let cfg = base(w, pol, phases.clone());
                cfg.validate().map_err(|e| flag_error(e, args, &cfg))?;
                out.push(Point {
                    label: label.clone(),
                    policy: name.clone(),
                    cfg,
                });
            }
        }
        return Ok(out);
    }
    let workload = load_workload(&args.workload)?;
    let label = args.label.clone().unwrap_or_else(|| workload.name.clone());
    let loads = parse_range(&args.loads, "--loads")?;
    if let Some(l) = loads.iter().find(|&&l| l <= 0.0) {
        bail!("--loads: load {l} must be > 0");
    }
    if args.duration == Some(0) {
        bail!("--duration: must be at least 1 ns");
    }
    if args.requests == 0 && args.duration.is_none() {
        bail!("--requests: must be at least 1");
    }
    for &w in &args.workers {
        for (name, pol) in &pols {
            for &load in &loads {
                let mut cfg = base(w, pol, Vec::new());
                let length = match args.duration {
                    Some(ns) => {
                        cfg.warmup_ns = (ns as f64 * args.warmup) as u64;
                        Length::Nanos(ns.saturating_add(cfg.warmup_ns))
                    }
                    None => {
                        cfg.warmup_requests = (args.requests as f64 * args.warmup) as u64;
                        Length::Requests(args.requests.saturating_add(cfg.warmup_requests))
                    }
                };
                cfg.phases.push(Phase {
                    workload: workload.clone(),
                    rate: Rate::Load(load),
                    length,
                });
                cfg.validate().map_err(|e| flag_error(e, args, &cfg))?;
                out.push(Point {
                    label: label.clone(),
                    policy: name.clone(),
                    cfg,
                });
            }
        }
    }
    Ok(out)
}

/// Restates an error of [`SimConfig::validate`] about `cfg` (a point of `args`) in
/// terms of `psp-sim`'s flags.
fn flag_error(e: ConfigError, args: &Args, cfg: &SimConfig) -> anyhow::Error {
    let ConfigError { key, msg } = e;
    let w = cfg.workers;
    let phase = key
        .strip_prefix("phases[")
        .and_then(|k| k.split_once("]."))
        .and_then(|(i, field)| Some((i.parse::<usize>().ok()?, field)));
    let text = match key.as_str() {
        "workers" => format!("--workers: {msg}"),
        "policy.delta" => format!("--delta: {msg}"),
        "policy.window" => format!("--window: {msg}"),
        "policy.depth" => format!("--depth: {msg}"),
        "policy.n_resas" => format!(
            "--n-resas {}: {msg} (--workers {w})",
            args.n_resas.as_deref().unwrap_or_default()
        ),
        "policy.spillway" => format!("--spillway: {msg}"),
        "policy.slo" => format!("--slo: {msg}"),
        "policy.profile" => format!("--profile static: {msg}"),
        "hints" => format!(
            "--profile static with --no-hints: {}, which --no-hints withholds",
            msg.strip_suffix(", and hints are off").unwrap_or(&msg)
        ),
        "queue_capacity" => format!("--queue-capacity: {msg}"),
        "timeline_ns" => format!("--timeline-us: {msg}"),
        "dispatch_overhead_ns" => format!("--dispatch-overhead-ns: {msg}"),
        _ => match (&args.phases, phase) {
            (Some(path), Some((i, _))) => {
                format!("--phases {}: phases[{i}]: {msg}", path.display())
            }
            (None, Some((i, "rate"))) => {
                let load = match cfg.phases.get(i).map(|p| p.rate) {
                    // Debug: 1e300, not 301 digits.
                    Some(Rate::Load(l)) => format!("{l:?}"),
                    _ => "?".into(),
                };
                format!("--loads: load {load} on {w} workers {msg}")
            }
            (None, Some((_, "length"))) if args.duration.is_some() => {
                format!("--duration: {msg}")
            }
            (None, Some((_, "length"))) => format!("--requests: {msg}"),
            (None, Some((_, _))) => format!("--workload {}: {msg}", args.workload),
            _ => format!("{key}: {msg}"),
        },
    };
    anyhow::anyhow!(text)
}

/// Runs the points and writes the outputs; `progress` is told of each finished point.
/// Returns the results with their points.
pub fn run(
    args: &Args,
    command_line: &str,
    progress: &(dyn Fn(&Point, &SimResult) + Sync),
) -> Result<Vec<(Point, SimResult)>> {
    let pts = points(args)?;
    fs::create_dir_all(&args.outdir)
        .with_context(|| format!("--outdir: cannot create {}", args.outdir.display()))?;
    let jobs = args.jobs.unwrap_or_else(sweep::default_jobs);
    let results = sweep::run_all(&pts, jobs, progress);
    let all: Vec<(Point, SimResult)> = pts.into_iter().zip(results).collect();
    write_outputs(&args.outdir, &all, command_line)?;
    Ok(all)
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let path = dir.join(name);
    Ok(BufWriter::new(File::create(&path).with_context(|| {
        format!("cannot create {}", path.display())
    })?))
}

/// Writes sim.csv, sim.json, reservations.csv, timeline.csv and command.txt.
pub fn write_outputs(dir: &Path, all: &[(Point, SimResult)], command_line: &str) -> Result<()> {
    let reports: Vec<report::RunReport> = all
        .iter()
        .flat_map(|(p, r)| r.reports(&p.label, &p.policy))
        .collect();
    let mut csv = create(dir, "sim.csv")?;
    report::write_csv_header(&mut csv)?;
    for r in &reports {
        r.write_csv_rows(&mut csv)?;
    }
    csv.flush()?;
    let mut json = create(dir, "sim.json")?;
    serde_json::to_writer_pretty(&mut json, &report::json(&reports))?;
    json.flush()?;

    let mut resa = create(dir, "reservations.csv")?;
    writeln!(
        resa,
        "label,policy,workers,load,t_us,group,types,mean_us,demand,n_reserved,n_stealable,spilled,reservation"
    )?;
    let mut tl = create(dir, "timeline.csv")?;
    writeln!(
        tl,
        "label,policy,workers,load,t_us,type,count,latency_p50_us,latency_p99_us,latency_p999_us"
    )?;
    for (p, r) in all {
        let load = p
            .cfg
            .phases
            .first()
            .and_then(|ph| match ph.rate {
                Rate::Load(l) => Some(l.to_string()),
                Rate::Rps(_) => None,
            })
            .unwrap_or_default();
        let names: Vec<&str> = r.types.iter().map(|t| t.name.as_str()).collect();
        let head = format!("{},{},{},{}", p.label, p.policy, r.workers, load);
        for (at, res) in &r.reservations {
            let line = res.describe(&names);
            for (gi, g) in res.groups.iter().enumerate() {
                let types: Vec<&str> = g.types.iter().map(|&t| names[t]).collect();
                writeln!(
                    resa,
                    "{head},{:.3},{gi},{},{:.3},{:.3},{},{},{},\"{}\"",
                    *at as f64 / 1e3,
                    types.join("+"),
                    g.mean_ns / 1e3,
                    g.demand,
                    g.reserved.len(),
                    g.stealable.len(),
                    g.spilled,
                    line.replace('"', "'"),
                )?;
            }
        }
        if let Some(t) = &r.timeline {
            for (i, win) in t.windows.iter().enumerate() {
                for (ty, h) in win.iter().enumerate() {
                    if h.is_empty() {
                        continue;
                    }
                    writeln!(
                        tl,
                        "{head},{:.3},{},{},{:.3},{:.3},{:.3}",
                        (i as u64 * t.window_ns) as f64 / 1e3,
                        names[ty],
                        h.len(),
                        h.value_at_quantile(0.5) as f64 / 1e3,
                        h.value_at_quantile(0.99) as f64 / 1e3,
                        h.value_at_quantile(0.999) as f64 / 1e3,
                    )?;
                }
            }
        }
    }
    resa.flush()?;
    tl.flush()?;
    fs::write(dir.join("command.txt"), format!("{command_line}\n"))?;
    Ok(())
}

/// A one-line summary of a finished point: per-type p99.9 latency and slowdown.
pub fn summary(p: &Point, r: &SimResult) -> String {
    let mut s = format!("{} {} w{}", p.label, p.policy, r.workers);
    if let Some(Rate::Load(l)) = p.cfg.phases.first().map(|ph| ph.rate) {
        let _ = write!(s, " load {l:.2}");
    }
    for ty in 0..r.types.len() {
        let t = r.type_stats(ty);
        if let (Some(lat), Some(sd)) = (t.latency_us(), t.slowdown()) {
            let _ = write!(
                s,
                " | {} p99.9 {:.1} us sd {:.1}",
                t.name,
                lat.get("p999").unwrap_or(0.0),
                sd.get("p999").unwrap_or(0.0)
            );
        }
    }
    let rej = r.rejected();
    if rej > 0 {
        let _ = write!(s, " | rejected {rej}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_durations_parse() {
        assert_eq!(
            parse_range("0.1:0.5:0.1", "--loads").unwrap(),
            vec![0.1, 0.2, 0.3, 0.4, 0.5]
        );
        assert_eq!(
            parse_range("0:3", "--n-resas").unwrap(),
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(parse_range("0.5, 0.9", "--loads").unwrap(), vec![0.5, 0.9]);
        assert!(parse_range("0.9:0.1:0.1", "--loads").is_err());
        assert!(parse_range("a:b", "--loads").is_err());
        assert_eq!(parse_duration_ns("2s").unwrap(), 2_000_000_000);
        assert_eq!(parse_duration_ns("1.5ms").unwrap(), 1_500_000);
        assert_eq!(parse_duration_ns("20us").unwrap(), 20_000);
        assert_eq!(
            parse_duration_ns("7").unwrap(),
            7_000_000_000,
            "seconds, as in psp-client"
        );
        assert_eq!(parse_duration_ns("1500ns").unwrap(), 1500);
        assert_eq!(parse_duration_ns("1m").unwrap(), 60_000_000_000);
        assert!(parse_duration_ns("3 weeks").is_err());
    }

    #[test]
    fn a_sweep_is_policies_times_workers_times_loads() {
        let args = Cli::parse_from([
            "psp-sim",
            "--loads",
            "0.2:0.6:0.2",
            "--policies",
            "cfcfs,darc",
            "--workers",
            "2,4",
            "--n-resas",
            "0,1",
        ])
        .run;
        let pts = points(&args).unwrap();
        // cfcfs + darc-r0 + darc-r1, × 2 worker counts × 3 loads.
        assert_eq!(pts.len(), 3 * 2 * 3);
        assert_eq!(pts[3].policy, "darc-r0");
        assert_eq!(pts[3].cfg.policy.n_resas, Some(vec![0]));
        let bad = Cli::parse_from(["psp-sim", "--policies", "fifo"]).run;
        assert!(points(&bad).unwrap_err().to_string().contains("--policies"));
    }

    /// Parses `psp-sim --workers 4 EXTRA` and builds its points; returns the refusal
    /// (clap's, or that of `points`) as the user would read it.
    fn refusal(extra: &[&str]) -> String {
        let argv = ["psp-sim", "--workers", "4"].iter().chain(extra);
        match Cli::try_parse_from(argv) {
            Err(e) => e.to_string(),
            Ok(cli) => match points(&cli.run) {
                Ok(pts) => panic!("{extra:?} accepted ({} points)", pts.len()),
                Err(e) => format!("{e:#}"),
            },
        }
    }

    fn assert_refused(cases: &[(&[&str], &str)]) {
        for (extra, flag) in cases {
            let e = refusal(extra);
            assert!(e.contains(flag), "{extra:?}: {e:?} does not name {flag}");
            // psp-sim's flags, not the daemon's YAML keys.
            for key in ["policy.", "queues.", "workers.number", "timeline_ns"] {
                assert!(!e.contains(key), "{extra:?}: {e:?} names {key}");
            }
        }
    }

    #[test]
    fn policy_settings_the_daemon_refuses_are_refused_by_flag() {
        assert_refused(&[
            (
                &["--policies", "darc", "--profile", "static", "--no-hints"],
                "--no-hints",
            ),
            (
                &["--policies", "sjf", "--profile", "static", "--no-hints"],
                "--no-hints",
            ),
            (&["--policies", "edf", "--slo", "nan"], "--slo"),
            (&["--policies", "edf", "--slo=-1"], "--slo"),
            (&["--policies", "darc", "--delta", "nan"], "--delta"),
            (&["--policies", "darc", "--delta=-1"], "--delta"),
            (&["--policies", "darc", "--delta", "inf"], "--delta"),
            (&["--policies", "darc", "--window", "0"], "--window"),
            (&["--policies", "darc", "--n-resas", "9"], "--n-resas"),
            (&["--policies", "darc", "--n-resas", "0:5"], "--n-resas"),
            (
                &["--policies", "cfcfs", "--queue-capacity", "0"],
                "--queue-capacity",
            ),
            (&["--workers", "300"], "--workers"),
        ]);
    }

    #[test]
    fn inputs_that_panicked_the_simulator_are_refused_by_flag() {
        assert_refused(&[
            (&["--loads", "nan"], "--loads"),
            (&["--loads", "inf"], "--loads"),
            (&["--loads", "0.5,inf"], "--loads"),
            (&["--loads", "0.1:inf:0.1"], "--loads"),
            (&["--loads", "0.1:0.2:1e-12"], "--loads"),
            (&["--loads", "1e300"], "--loads"),
            (&["--timeline-us", "0"], "--timeline-us"),
            (&["--timeline-us", "18446744073709551615"], "--timeline-us"),
            (&["--policies", "dfcfs", "--depth", "0"], "--depth"),
            (&["--policies", "darc", "--spillway", "9"], "--spillway"),
            (
                &["--policies", "cfcfs", "--queue-capacity", "4294967296"],
                "--queue-capacity",
            ),
            (
                &["--policies", "cfcfs", "--queue-capacity", "16777217"],
                "--queue-capacity",
            ),
        ]);
    }

    /// A phases file sets each phase's workload, load and length: the sweep's flags
    /// for them are refused beside it, not ignored.
    #[test]
    fn phases_conflict_with_the_flags_they_replace() {
        for flag in [
            &["--loads", "0.3"][..],
            &["--workload", "tpcc"],
            &["--requests", "10"],
            &["--duration", "1s"],
            &["--warmup", "0.2"],
        ] {
            let argv = ["psp-sim", "--phases", "p.yml"].iter().chain(flag);
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{flag:?}"
            );
        }
        assert!(Cli::try_parse_from(["psp-sim", "--phases", "p.yml", "--workers", "4"]).is_ok());
    }

    #[test]
    fn a_workload_deadline_without_edf_draws_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.yml");
        std::fs::write(
            &w,
            "name: w\ntypes:\n  - { id: 1, name: A, ratio: 1, service: { kind: constant, ns: 1000 } }\n  \
             - { id: 2, name: B, ratio: 1, deadline_ns: 5000, service: { kind: constant, ns: 9000 } }\n",
        )
        .unwrap();
        let warnings = |policies: &str| {
            let argv = [
                "psp-sim",
                "--workers",
                "2",
                "--loads",
                "0.5",
                "--policies",
                policies,
            ];
            let argv = argv
                .iter()
                .copied()
                .chain(["--workload", w.to_str().unwrap()]);
            unused_workload_settings(&points(&Cli::parse_from(argv).run).unwrap())
        };
        assert_eq!(
            warnings("cfcfs,sjf"),
            ["type B sets deadline_ns, but --policies has no edf: it changes nothing"]
        );
        assert_eq!(warnings("cfcfs,edf"), Vec::<String>::new());
        // A phased run whose second phase gives another deadline: the first is kept.
        let p = dir.path().join("p.yml");
        let w = w.display();
        std::fs::write(
            &p,
            format!(
                "name: p\nphases:\n  - {{ workload: {w}, load: 0.5, requests: 10 }}\n  \
                 - workload:\n      name: w2\n      types:\n        - {{ id: 2, name: B, \
                 ratio: 1, deadline_ns: 7000, service: {{ kind: constant, ns: 9000 }} }}\n    \
                 load: 0.5\n    requests: 10\n"
            ),
        )
        .unwrap();
        let argv = ["psp-sim", "--workers", "2", "--policies", "edf", "--phases"];
        let argv = argv.iter().copied().chain([p.to_str().unwrap()]);
        let w = unused_workload_settings(&points(&Cli::parse_from(argv).run).unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "type B: a later phase's deadline_ns (7000 ns) differs from the first's (5000 ns)"
            ),
            "{w:?}"
        );
    }

    #[test]
    fn a_setting_of_a_policy_the_run_lacks_draws_a_warning() {
        let warnings = |extra: &[&str]| {
            let argv = ["psp-sim", "--workers", "4"].iter().chain(extra);
            let cli = Cli::try_parse_from(argv).unwrap();
            assert!(points(&cli.run).is_ok(), "{extra:?} refused");
            unused_settings(&cli.run)
        };
        for (extra, flag) in [
            (&["--policies", "cfcfs", "--n-resas", "2"][..], "--n-resas"),
            (&["--policies", "cfcfs,dfcfs", "--delta", "0.5"], "--delta"),
            (&["--policies", "dfcfs", "--profile", "static"], "--profile"),
            (&["--policies", "cfcfs", "--spillway", "0"], "--spillway"),
            (&["--policies", "cfcfs", "--window", "10"], "--window"),
            (&["--policies", "cfcfs", "--no-hints"], "--no-hints"),
            (&["--policies", "darc", "--depth", "8"], "--depth"),
            (&["--policies", "cfcfs,darc", "--assign", "jsq"], "--assign"),
            (&["--policies", "sjf,darc", "--slo", "5"], "--slo"),
        ] {
            let w = warnings(extra);
            assert_eq!(w.len(), 1, "{extra:?}: {w:?}");
            assert!(w[0].starts_with(flag), "{extra:?}: {w:?}");
        }
        assert_eq!(
            warnings(&["--policies", "cfcfs", "--window", "10"])[0],
            "--window is read by darc only, but --policies cfcfs has no darc: it changes nothing"
        );
        assert_eq!(
            warnings(&["--policies", "dfcfs", "--profile", "static"])[0],
            "--profile is read by darc, sjf or edf only, but --policies dfcfs has no darc, sjf \
             or edf: it changes nothing"
        );
        // Set to their defaults, or with their policy in the run: no warning.
        for extra in [
            &["--policies", "cfcfs", "--delta", "0.2"][..],
            &["--policies", "cfcfs,darc", "--n-resas", "2"],
            &["--policies", "dfcfs", "--depth", "8"],
            &["--policies", "sjf", "--no-hints", "--profile", "dynamic"],
            &["--policies", "edf", "--slo", "2", "--profile", "static"],
            &[],
        ] {
            assert_eq!(warnings(extra), Vec::<String>::new(), "{extra:?}");
        }
    }

    #[test]
    fn a_run_of_nothing_is_refused() {
        assert_refused(&[
            (&["--requests", "0"], "--requests"),
            (&["--jobs", "0"], "--jobs"),
            (&["--duration", "0"], "--duration"),
            (&["--duration", "0ms"], "--duration"),
            (&["--duration", "99999999999999999999s"], "--duration"),
        ]);
    }

    #[test]
    fn settings_the_daemon_accepts_still_run() {
        let ok = |extra: &[&str]| {
            let argv = ["psp-sim", "--workers", "4", "--loads", "0.5"]
                .iter()
                .chain(extra);
            let args = Cli::parse_from(argv).run;
            points(&args).unwrap_or_else(|e| panic!("{extra:?}: {e:#}"))
        };
        // Static DARC with the workload's hints reserves from them; SJF and EDF rank
        // by them.
        assert_eq!(ok(&["--policies", "darc", "--profile", "static"]).len(), 1);
        let pts = ok(&["--policies", "sjf,edf", "--profile", "static", "--slo", "0"]);
        let names: Vec<&str> = pts.iter().map(|p| p.policy.as_str()).collect();
        assert_eq!(names, ["sjf", "edf"]);
        // Every reservation up to the worker count, and the last worker as spillway.
        let pts = ok(&["--policies", "darc", "--n-resas", "0:4", "--spillway", "3"]);
        assert_eq!(pts.len(), 5);
        assert_eq!(pts[4].policy, "darc-r4");
        ok(&[
            "--delta",
            "0",
            "--window",
            "1",
            "--depth",
            "1",
            "--queue-capacity",
            "1",
        ]);
        ok(&[
            "--delta",
            "10",
            "--queue-capacity",
            "16777216",
            "--timeline-us",
            "1",
        ]);
        ok(&["--duration", "1ns"]);
        ok(&["--requests", "1"]);
        ok(&["--no-hints"]);
    }

    #[test]
    fn simulated_darc_matches_the_daemons_policy_checks() {
        // The same PolicyConfig the daemon would refuse, reported under psp-sim's flag.
        let args = Cli::parse_from(["psp-sim", "--workers", "2", "--spillway", "2"]).run;
        let e = format!("{:#}", points(&args).unwrap_err());
        let cfg = PolicyConfig {
            spillway: Some(2),
            ..PolicyConfig::default()
        };
        let daemon = cfg.validate(2).unwrap_err();
        assert_eq!(daemon.key, "spillway");
        assert_eq!(e, format!("--spillway: {}", daemon.msg));
    }
}
