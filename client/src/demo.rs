//! demo.rs - `psp-client demo`: the whole system in one command. Starts the daemon
//! in-process from the library with `configs/quickstart.yml` on loopback (an ephemeral
//! port; its request types replaced by the workload's), plays a few seconds of
//! open-loop High Bimodal load at 20 % load, prints the per-type latency and slowdown
//! table and the server's counters, and shuts the daemon down.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use persephone::config::{Config, RequestType};
use persephone::proto::Status;
use persephone::workload::Workload;
use persephone::App;

use crate::config::{load_workload, parse_duration, Plan};
use crate::kv::KvSpec;
use crate::measure::Meta;

/// The quick-start server config, built in so `demo` runs from any directory.
pub const QUICKSTART: &str = include_str!("../../configs/quickstart.yml");
/// The KV store's config, for `demo --workload kv` (or `kv-99.5`).
pub const KV_CONFIG: &str = include_str!("../../configs/kv.yml");

/// `--load` when neither it nor `--rate` is given.
const DEFAULT_LOAD: f64 = 0.2;
/// `--rate` of the kv workloads when neither it nor `--load` is given.
const KV_RATE: f64 = 4000.0;
/// The most the default load offers (requests/s): kernel UDP on loopback, on a small
/// machine shared with the daemon, carries about this with room to spare
/// (results/client). A workload of short requests (extreme-bimodal: 133 000 requests/s
/// at load 0.2 on 2 workers) is capped to it, with a note.
const DEFAULT_MAX_RATE: f64 = 10_000.0;

/// Flags of `psp-client demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Server config to start [default: the built-in configs/quickstart.yml, or
    /// configs/kv.yml for the kv workloads]; its bind address is replaced by 127.0.0.1:0.
    #[arg(long, alias = "config", value_name = "FILE")]
    pub config_path: Option<PathBuf>,
    /// Run the server under this policy instead of the config's (the settings only
    /// other policies read are dropped).
    #[arg(long, value_enum)]
    pub policy: Option<persephone::config::PolicyKind>,
    /// Workload: a preset (kv and kv-99.5 run the KV store and check every answer) or
    /// a YAML file.
    #[arg(long, default_value = "high-bimodal")]
    pub workload: String,
    /// Offered load as a fraction of the server's workers, from the workload's nominal
    /// service times [default: 0.2].
    #[arg(long, conflicts_with = "rate")]
    pub load: Option<f64>,
    /// Offered rate, requests/s, instead of a load [default for kv and kv-99.5:
    /// 4000 (their nominal service times are a few µs, far from what the KV store
    /// serves over kernel UDP)].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before it, not measured.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Also write results.csv/json and .hgrm files here.
    #[arg(long, value_name = "DIR")]
    pub outdir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            config_path: None,
            policy: None,
            workload: "high-bimodal".into(),
            load: None,
            rate: None,
            duration: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            outdir: None,
            quiet: false,
        }
    }
}

/// Runs the demo, printing to `out`.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    for (flag, v) in [("--load", args.load), ("--rate", args.rate)] {
        if let Some(v) = v {
            if !(v > 0.0 && v.is_finite()) {
                anyhow::bail!("{flag}: must be > 0, got {v}");
            }
        }
    }
    let is_kv = crate::kv::PRESETS.contains(&args.workload.as_str());
    let mut cfg = match &args.config_path {
        Some(p) => Config::load(p).with_context(|| "--config-path".to_string())?,
        None if is_kv => Config::parse(KV_CONFIG).context("built-in kv config")?,
        None => Config::parse(QUICKSTART).context("built-in quickstart config")?,
    };
    if cfg.net.backend == persephone::config::Backend::Udp {
        cfg.net.bind = "127.0.0.1:0".parse().expect("literal address");
    }
    if let Some(kind) = args.policy {
        cfg.switch_policy(kind);
    }
    let workers = cfg.workers.number;
    let policy = cfg.policy.kind.name().to_string();
    // The kv workloads ask for what the server's kv: section pre-populated: a server
    // without the kv handler, or with no keys, cannot answer them.
    if is_kv {
        let keys = cfg.kv.as_ref().map_or(0, |k| k.keys);
        if cfg.workers.handler != "kv" || keys == 0 {
            anyhow::bail!(
                "--workload {}: needs a kv server (workers.handler: kv and a kv: section \
                 with keys > 0, as in configs/kv.yml); --config-path {} has handler {:?} \
                 and {keys} pre-populated keys",
                args.workload,
                args.config_path
                    .as_deref()
                    .map_or_else(|| "(built-in)".into(), |p| p.display().to_string()),
                cfg.workers.handler,
            );
        }
    }
    let kv = is_kv.then(|| {
        let pre = cfg.kv.clone().unwrap_or_default();
        KvSpec {
            keys: pre.keys,
            value_size: pre.value_size,
            ..KvSpec::default()
        }
    });
    let workload: Workload = match &kv {
        Some(spec) => spec.preset(&args.workload).expect("a kv preset"),
        None => load_workload(&args.workload, None, "--workload")?,
    };
    let mut notes = Vec::new();
    if args.config_path.is_none() && !is_kv {
        // The built-in server declares the workload's own types (the quickstart's are
        // high-bimodal's): every preset and workload file runs as is.
        cfg.requests = workload
            .types
            .iter()
            .map(|t| RequestType {
                mean_ns: Some(t.service.mean_ns().round() as u64),
                ratio: Some(t.ratio),
                // EDF's alone: under another policy it would draw a warning.
                deadline_ns: t
                    .deadline_ns
                    .filter(|_| cfg.policy.kind == persephone::config::PolicyKind::Edf),
                ..RequestType::new(t.id, t.name.clone())
            })
            .collect();
    } else {
        for t in &workload.types {
            if !cfg.requests.iter().any(|r| r.id == t.id) {
                notes.push(format!(
                    "warning: the server config declares no type id {} ({}): those \
                     requests will be answered unknown_type",
                    t.id, t.name
                ));
            }
        }
    }
    // The rate at load 1 (rates are linear in the load): the other of rate and load.
    let capacity = workload.rate_for_load(1.0, workers);
    let given_rate = args
        .rate
        .or((args.load.is_none() && is_kv).then_some(KV_RATE));
    let (rate, load, tag) = match given_rate {
        Some(r) => (r, r / capacity, format!("rate{r}")),
        None if args.load.is_none() && DEFAULT_LOAD * capacity > DEFAULT_MAX_RATE => {
            notes.push(format!(
                "note: load {DEFAULT_LOAD} of {} would be {:.0} requests/s, more than \
                 kernel UDP on a small machine carries; offering {DEFAULT_MAX_RATE:.0} \
                 (choose with --load or --rate)",
                workload.name,
                DEFAULT_LOAD * capacity
            ));
            let r = DEFAULT_MAX_RATE;
            (r, r / capacity, format!("rate{r}"))
        }
        None => {
            let l = args.load.unwrap_or(DEFAULT_LOAD);
            (l * capacity, l, format!("load{l}"))
        }
    };
    let server = App::new(cfg).start().context("starting the daemon")?;
    let addr = server.local_addr();
    writeln!(
        out,
        "daemon: {policy}, {workers} workers, on {addr}\n\
         client: {} at load {load:.3} = {rate:.0} requests/s (mean service {:.1} µs), \
         {:?} + {:?} warm-up\n",
        workload.name,
        workload.mean_service_ns() / 1e3,
        args.duration,
        args.warmup,
    )?;
    notes.extend(busy_machine_note());
    for note in &notes {
        writeln!(out, "{note}\n")?;
    }
    let mut plan = Plan::new(addr, workload, rate, args.duration);
    plan.meta = Meta {
        label: "demo".into(),
        policy,
        workers: Some(workers),
    };
    plan.points[0].phases[0].load = Some(load);
    plan.points[0].tag = tag;
    plan.warmup = args.warmup;
    plan.outdir = args.outdir.clone();
    // Where permitted (root or CAP_SYS_NICE), the sender and receiver run as
    // real-time threads: on a small machine shared with the daemon, that is what
    // keeps the schedule (otherwise a spinning worker delays the sender's wake-ups).
    plan.realtime = crate::sys::realtime_permitted();
    plan.progress = !args.quiet;
    plan.kv = kv;
    plan.stop = crate::interrupt::flag();
    let result = crate::runner::run(&plan, out);
    // Shut the daemon down whatever happened to the run.
    let stats = server.shutdown();
    // Stopped by a signal, or a server not set up for the workload: what was measured
    // is printed, and so are the daemon's counters, before the error says so.
    let (reports, after) = match result {
        Ok(r) => (r, None),
        Err(e) if e.is::<crate::runner::Interrupted>() || e.is::<crate::runner::Mismatched>() => {
            (Vec::new(), Some(e))
        }
        Err(e) => return Err(e),
    };
    // Every status that was answered, ok and queue_full always.
    let statuses: Vec<String> = Status::ALL
        .iter()
        .filter(|&&s| matches!(s, Status::Ok | Status::QueueFull) || stats.replies_with(s) > 0)
        .map(|&s| format!("{} {}", s.name(), stats.replies_with(s)))
        .collect();
    writeln!(
        out,
        "daemon counters: received {}, answered {} ({}), malformed {}, receive drops {}",
        stats.received,
        stats.answered(),
        statuses.join(", "),
        stats.malformed.total(),
        stats.rx_drops.no_buffer + stats.rx_drops.overflow + stats.rx_drops.oversized,
    )?;
    writeln!(
        out,
        "daemon load: dispatcher busy {:.1} % of {:.1} s (100 % would mean the \
         dispatcher is the bottleneck)",
        100.0 * stats.busy_fraction(),
        stats.run_ns as f64 / 1e9,
    )?;
    let lost: u64 = reports.iter().map(|r| r.overall().lost).sum();
    if lost > 0 {
        writeln!(out, "note: {lost} requests got no reply within 1 s")?;
    }
    after.map_or(Ok(()), Err)
}

/// A warning when other work already keeps the machine's cores busy (Linux load
/// average above the core count): the demo's latencies then include waiting for a core.
fn busy_machine_note() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cores = std::thread::available_parallelism().ok()?.get();
    (load > cores as f64).then(|| {
        format!(
            "note: the load average is {load:.1} on {cores} cores: other work competes with \
             the daemon and the client, so expect late sends and long tails"
        )
    })
}
