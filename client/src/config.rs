//! config.rs - what a run is: command-line flags and the YAML config, merged into a
//! [`Plan`].
//!
//! Every flag has a YAML key of the same name (`--max-concurrency` is
//! `max_concurrency`); a flag given on the command line wins over the file. Unknown
//! YAML keys are errors, and every error names the flag or key at fault.
//!
//! ```yaml
//! server: 127.0.0.1:6789         # or ip: + port:
//! label: hb-darc                 # recorded in the outputs
//! policy: darc                   # the server's policy, recorded in the outputs
//! workers: 14                    # the server's workers: needed by `load`
//! workload: high-bimodal         # a preset, a YAML file, or an inline {name, types}
//! arrival: exponential           # or uniform (evenly spaced)
//! load: 0.5                      # or rate: 100000 (requests/s), or loads: 0.1:0.9:0.1
//! duration: 10s                  # per point; also ms, us, m, or a plain number of seconds
//! warmup: 1s                     # sent before each point, left out of the statistics
//! timeout: 1s                    # no reply by then: lost
//! seed: 42
//! outdir: results/hb-darc        # CSV, JSON, .hgrm (and the trace)
//! sample: 0.01                   # per-request trace of 1 % of the requests
//! timeline: 100ms                # timeline.csv: counts and latency per 100 ms
//! max_concurrency: 0             # cap on outstanding requests (0: none)
//! realtime: false                # SCHED_FIFO sender/receiver threads (root)
//! wire: native                   # or psp_mb: Perséphone's 16-byte requests
//! backend: udp                   # or dpdk (built with --features dpdk), with:
//! dpdk:                          #   net::dpdk::ClientSection
//!   eal_args: [--no-huge, --no-pci, --file-prefix, psp-client, "--vdev=net_memif0,..."]
//!   ip: 10.0.0.2                 #   ours; also port, udp_port, rx_queues, server_mac
//! kv:                            # kv workloads (--workload kv / kv-99.5); must match
//!   keys: 100000                 #   the server's kv: section (keys, value_size)
//!   value_size: 32
//!   scan_len: 256                # pairs per SCAN
//!   dist: uniform                # or zipf (s = 0.99), zipf:1.2
//! phases:                        # instead of workload/rate/load/duration: a chain
//!   - { workload: high-bimodal, load: 0.3, duration: 2s }
//!   - { workload: extreme-bimodal, load: 0.6, duration: 2s }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use persephone::config::Wire;
use persephone::workload::{Workload, PRESETS};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[cfg(feature = "dpdk")]
use persephone::net::dpdk::{ClientConfig, ClientSection};

use crate::kv::{self, KeyDist, KvSpec};
use crate::measure::Meta;
use crate::schedule::{Arrival, Phase, DEFAULT_SEED};

/// A configuration or flag error, naming the flag or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {msg}")]
pub struct ConfigError {
    /// `--flag` or a YAML key path (`phases[1].load`).
    pub key: String,
    pub msg: String,
}

/// The most `--slack-us` and `--spin-us` take: one second.
const MAX_US: f64 = 1e6;

fn err<T>(key: impl Into<String>, msg: impl fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        msg: msg.to_string(),
    })
}

/// A duration written `5s`, `250ms`, `100us`, `2m` or as a plain number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// Parses a [`Dur`] (the one spelling of durations, shared with psp-sim).
pub use persephone::time::parse_duration;

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        parse_duration(s).map(Dur)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 5s, 250ms, 100us, or a number of seconds")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                parse_duration(&v.to_string()).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a list of loads: `0.1,0.2,0.5` or an inclusive range `start:end:step`.
pub fn parse_loads(s: &str) -> Result<Vec<f64>, String> {
    let num = |what: &str, x: &str| -> Result<f64, String> {
        let v: f64 = x
            .trim()
            .parse()
            .map_err(|_| format!("{x:?} is not a number"))?;
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("{what} {v} must be > 0"));
        }
        Ok(v)
    };
    let v = if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let [a, b, step] = parts[..] else {
            return Err(format!("{s:?}: a range is start:end:step"));
        };
        let (a, b, step) = (num("load", a)?, num("load", b)?, num("step", step)?);
        if b < a {
            return Err(format!("{s:?}: end is below start"));
        }
        let n = ((b - a) / step + 1e-9).floor() as usize;
        if n > 10_000 {
            return Err(format!("{s:?}: more than 10000 points"));
        }
        // Rounded to 1e-9 so 0.1:0.3:0.1 gives 0.3, not 0.30000000000000004.
        (0..=n)
            .map(|k| ((a + k as f64 * step) * 1e9).round() / 1e9)
            .collect()
    } else {
        s.split(',')
            .map(|x| num("load", x))
            .collect::<Result<Vec<_>, _>>()?
    };
    if v.is_empty() {
        return Err("no loads".into());
    }
    Ok(v)
}

/// `loads:` in YAML: a list of numbers or the same string as `--loads`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loads(pub Vec<f64>);

impl<'de> Deserialize<'de> for Loads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Loads, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        match v {
            serde_yaml::Value::String(s) => parse_loads(&s).map(Loads).map_err(de::Error::custom),
            serde_yaml::Value::Number(n) => parse_loads(&n.to_string())
                .map(Loads)
                .map_err(de::Error::custom),
            serde_yaml::Value::Sequence(items) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    match it.as_f64() {
                        Some(x) if x > 0.0 && x.is_finite() => out.push(x),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "loads[{i}]: a load must be a number > 0"
                            )))
                        }
                    }
                }
                if out.is_empty() {
                    return Err(de::Error::custom("no loads"));
                }
                Ok(Loads(out))
            }
            _ => Err(de::Error::custom(
                "loads: a list of numbers, or a string like 0.1,0.2 or 0.1:0.9:0.1",
            )),
        }
    }
}

/// `workload:` in YAML: a preset name, a file, or an inline workload.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSpec {
    Named(String),
    Inline(Workload),
}

impl<'de> Deserialize<'de> for WorkloadSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WorkloadSpec, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        match v {
            serde_yaml::Value::String(s) => Ok(WorkloadSpec::Named(s)),
            v @ serde_yaml::Value::Mapping(_) => {
                // Through serde_path_to_error: a YAML value has no line numbers, so the
                // error names the key inside the workload instead.
                let w: Workload = serde_path_to_error::deserialize(v).map_err(|e| {
                    let path = e.path().to_string();
                    let path = if path == "." {
                        String::new()
                    } else {
                        format!(".{path}")
                    };
                    de::Error::custom(format_args!("workload{path}: {}", e.into_inner()))
                })?;
                w.validate().map_err(de::Error::custom)?;
                Ok(WorkloadSpec::Inline(w))
            }
            _ => Err(de::Error::custom(
                "a preset name, a workload file, or an inline {name, types}",
            )),
        }
    }
}

/// One phase in the YAML `phases` list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Defaults to the top-level `workload`.
    pub workload: Option<WorkloadSpec>,
    pub rate: Option<f64>,
    pub load: Option<f64>,
    pub duration: Dur,
}

/// The `kv:` section of the YAML config (see [`crate::kv`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KvFileConfig {
    pub keys: Option<u64>,
    pub value_size: Option<usize>,
    pub scan_len: Option<u16>,
    pub dist: Option<String>,
}

/// The YAML config file (`--config-path`): every key optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub label: Option<String>,
    pub policy: Option<String>,
    pub workers: Option<usize>,
    pub workload: Option<WorkloadSpec>,
    pub arrival: Option<Arrival>,
    pub rate: Option<f64>,
    pub load: Option<f64>,
    pub loads: Option<Loads>,
    pub duration: Option<Dur>,
    pub warmup: Option<Dur>,
    pub timeout: Option<Dur>,
    pub seed: Option<u64>,
    pub outdir: Option<PathBuf>,
    pub sample: Option<f64>,
    pub timeline: Option<Dur>,
    pub max_concurrency: Option<u64>,
    pub slack_us: Option<f64>,
    pub spin_us: Option<f64>,
    pub realtime: Option<bool>,
    pub phases: Option<Vec<PhaseConfig>>,
    /// Transport: `udp` (kernel sockets) or `dpdk`.
    pub backend: Option<BackendArg>,
    /// Wire format: `native` or `psp_mb`.
    pub wire: Option<Wire>,
    /// DPDK settings, read by the `dpdk` backend.
    #[cfg(feature = "dpdk")]
    pub dpdk: Option<ClientSection>,
    /// DPDK settings: kept unread in a build without the `dpdk` feature, so that a
    /// DPDK config is refused for the missing feature, not for an unknown key.
    #[cfg(not(feature = "dpdk"))]
    pub dpdk: Option<serde_yaml::Value>,
    /// The kv workload's keys and SCAN length.
    pub kv: Option<KvFileConfig>,
}

impl FileConfig {
    /// Parses YAML text (unknown keys are errors naming the key).
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        serde_yaml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // serde_yaml prefixes nested errors with their path ("phases[0]: ...").
            match msg.split_once(": ") {
                Some((path, rest)) if !path.contains(' ') => ConfigError {
                    key: path.to_string(),
                    msg: rest.to_string(),
                },
                _ => ConfigError {
                    key: "config".into(),
                    msg,
                },
            }
        })
    }
}

/// Flags of `psp-client run` (and of plain `psp-client`).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// YAML config with any of the options below (flags win over it).
    #[arg(long, alias = "config", value_name = "FILE")]
    pub config_path: Option<PathBuf>,
    /// Server address [default: 127.0.0.1:6789].
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["ip", "port"])]
    pub server: Option<String>,
    /// Server IP (with --port), as Perséphone's client.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Server UDP port (with --ip).
    #[arg(long)]
    pub port: Option<u16>,
    /// Transport: kernel UDP sockets, or DPDK (the config file's `dpdk:` section;
    /// needs a build with `--features dpdk`) [default: udp].
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Wire format: ours, or Perséphone's 16-byte PSP_MB requests, for psp-app with
    /// net.wire: psp_mb (not Perséphone's own server, whose replies it cannot take)
    /// [default: native].
    #[arg(long, value_enum)]
    pub wire: Option<Wire>,
    /// Label recorded in every output row (plots group curves by label and policy).
    #[arg(long)]
    pub label: Option<String>,
    /// The server's policy, recorded in the outputs (the client does not set it).
    #[arg(long)]
    pub policy: Option<String>,
    /// The server's worker count: turns --load into a rate, recorded in the outputs.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Workload: a preset (high-bimodal, extreme-bimodal, tpcc, rocksdb, and kv,
    /// kv-99.5 for the KV store) or a YAML file [default: high-bimodal].
    #[arg(long, value_name = "PRESET|FILE")]
    pub workload: Option<String>,
    /// kv: keys the server pre-populated (its kv.keys) [default: 100000].
    #[arg(long, value_name = "N")]
    pub kv_keys: Option<u64>,
    /// kv: bytes of each pre-populated value (the server's kv.value_size) [default: 32].
    #[arg(long, value_name = "BYTES")]
    pub kv_value_size: Option<usize>,
    /// kv: pairs each SCAN asks for [default: 256].
    #[arg(long, value_name = "N")]
    pub kv_scan_len: Option<u16>,
    /// kv: key distribution: uniform, zipf (s = 0.99) or zipf:S [default: uniform].
    #[arg(long, value_name = "DIST")]
    pub kv_dist: Option<String>,
    /// Inter-arrival gaps [default: exponential].
    #[arg(long, alias = "arrivals", value_enum)]
    pub arrival: Option<ArrivalArg>,
    /// Offered rate, requests/s.
    #[arg(long, conflicts_with_all = ["load", "loads"], allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Offered load, fraction of capacity: rate = load × workers / mean service time.
    #[arg(long, conflicts_with = "loads", allow_negative_numbers = true)]
    pub load: Option<f64>,
    /// Sweep: loads `0.1,0.2,0.5` or `start:end:step` (inclusive), one run point each.
    #[arg(long, value_name = "LIST|RANGE", allow_negative_numbers = true, value_parser = |s: &str| parse_loads(s).map(Loads))]
    pub loads: Option<Loads>,
    /// Measured time per point (5s, 500ms, ...) [default: 5s].
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Warm-up before each point, left out of the statistics [default: 1s].
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub warmup: Option<Duration>,
    /// A request with no reply this long after its scheduled send is lost [default: 1s].
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
    /// Seed of the schedule (same seed, same schedule).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for results.csv, results.json, .hgrm files (and traces).
    #[arg(long, value_name = "DIR")]
    pub outdir: Option<PathBuf>,
    /// Write a per-request trace of this fraction of the requests [no value: all].
    #[arg(long, value_name = "FRACTION", num_args = 0..=1, default_missing_value = "1", allow_negative_numbers = true)]
    pub sample: Option<f64>,
    /// Write timeline.csv in --outdir: sent, ok, rejected, lost and latency per
    /// interval of this length (100ms, 1s, ...), by scheduled send time.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration)]
    pub timeline: Option<Duration>,
    /// Cap on outstanding requests; 0 for none [default: 0].
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u64>,
    /// A send later than this after its scheduled time is late, µs [default: 10].
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub slack_us: Option<f64>,
    /// The sender sleeps until this close to a send, then spins, µs [default: 30,
    /// raised while running when this machine's sleeps wake later than that; given,
    /// it is fixed].
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub spin_us: Option<f64>,
    /// Run the sender and receiver threads as real-time (SCHED_FIFO) threads, so that
    /// other work on a shared machine cannot delay sends (needs root or CAP_SYS_NICE).
    #[arg(long)]
    pub realtime: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--backend` values (YAML `backend:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendArg {
    Udp,
    Dpdk,
}

/// How requests reach the server.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Kernel UDP sockets ([`crate::engine`]).
    Udp,
    /// DPDK ([`crate::dpdk`]).
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkBackend),
}

/// The DPDK backend's settings, checked.
#[cfg(feature = "dpdk")]
#[derive(Debug, Clone)]
pub struct DpdkBackend {
    /// EAL options (`dpdk.eal_args`).
    pub eal_args: Vec<String>,
    /// The client port's settings and the server's address.
    pub client: ClientConfig,
}

/// `--arrival` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalArg {
    /// Poisson arrivals (psp-sim's name, `poisson`, is accepted too).
    #[value(alias = "poisson")]
    Exponential,
    Uniform,
}

/// One point of a run (one load of a sweep): its phases.
#[derive(Debug, Clone)]
pub struct Point {
    pub phases: Vec<Phase>,
    /// Short name for file names (`load0.50`, `rate20000`).
    pub tag: String,
}

/// Everything a run needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server: SocketAddr,
    /// Kernel UDP or DPDK.
    pub backend: Backend,
    pub meta: Meta,
    pub points: Vec<Point>,
    pub arrival: Arrival,
    pub warmup: Duration,
    pub timeout: Duration,
    pub seed: u64,
    pub slack: Duration,
    pub spin: Duration,
    /// `spin` is the default, not asked for: the sender raises it while this
    /// machine's sleeps wake later than it allows for (see `engine::Spin`).
    pub spin_auto: bool,
    /// Set to stop the run where it is (psp-client sets a signal's flag here, see
    /// [`crate::interrupt`]).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub max_concurrency: Option<u64>,
    pub outdir: Option<PathBuf>,
    pub sample: Option<f64>,
    /// Real-time sender and receiver threads.
    pub realtime: bool,
    pub progress: bool,
    /// Send KV requests (GET/SCAN) and check the answers, instead of `spin` payloads.
    pub kv: Option<KvSpec>,
    /// The wire format the server speaks.
    pub wire: Wire,
}

/// The command line's defaults, shared by [`RunArgs::plan`] and [`Plan::new`].
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_SLACK: Duration = Duration::from_micros(10);
pub const DEFAULT_SPIN: Duration = Duration::from_micros(30);

impl Plan {
    /// Whether the run was asked to stop ([`Plan::stop`]).
    pub fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A run of one point: `workload` at `rate` requests/s for `duration`, against
    /// `server` over kernel UDP, with the command line's defaults for the rest
    /// (exponential arrivals, 1 s warm-up and timeout, the default seed, no outputs,
    /// no progress bar). For runs built in code (the demo, tests, other tools); set
    /// the public fields to change anything else.
    pub fn new(server: SocketAddr, workload: Workload, rate: f64, duration: Duration) -> Plan {
        Plan {
            server,
            backend: Backend::Udp,
            meta: Meta {
                label: String::new(),
                policy: String::new(),
                workers: None,
            },
            points: vec![Point {
                tag: format!("rate{rate}"),
                phases: vec![Phase {
                    workload,
                    rate,
                    load: None,
                    duration,
                }],
            }],
            arrival: Arrival::Exponential,
            warmup: DEFAULT_WARMUP,
            timeout: DEFAULT_TIMEOUT,
            seed: DEFAULT_SEED,
            slack: DEFAULT_SLACK,
            spin: DEFAULT_SPIN,
            spin_auto: true,
            stop: None,
            max_concurrency: None,
            outdir: None,
            sample: None,
            realtime: false,
            progress: false,
            kv: None,
            wire: Wire::Native,
        }
    }
}

/// Loads a workload by preset name or file (relative paths are taken from `base`);
/// the kv presets get the default [`KvSpec`]'s nominal service times.
pub fn load_workload(name: &str, base: Option<&Path>, key: &str) -> Result<Workload, ConfigError> {
    resolve_workload(name, base, key, &KvSpec::default()).map(|(w, _)| w)
}

/// [`load_workload`] with the kv presets made for `spec`; also says whether `name`
/// was a kv preset.
pub fn resolve_workload(
    name: &str,
    base: Option<&Path>,
    key: &str,
    spec: &KvSpec,
) -> Result<(Workload, bool), ConfigError> {
    if let Some(w) = spec.preset(name) {
        return Ok((w, true));
    }
    if let Ok(w) = Workload::preset(name) {
        return Ok((w, false));
    }
    let path = match base {
        Some(b) if Path::new(name).is_relative() && !Path::new(name).exists() => b.join(name),
        _ => PathBuf::from(name),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
        key: key.into(),
        msg: format!(
            "{name:?} is neither a preset ({}, {}) nor a readable file: {e}",
            PRESETS.join(", "),
            kv::PRESETS.join(", ")
        ),
    })?;
    let w = Workload::from_yaml(&text).map_err(|e| ConfigError {
        key: key.into(),
        msg: format!("{}: {e}", path.display()),
    })?;
    Ok((w, false))
}

fn positive(key: &str, v: f64) -> Result<f64, ConfigError> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        err(key, format!("must be a number > 0, got {v}"))
    }
}

impl RunArgs {
    /// Reads the config file (if any) and merges it with the flags.
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        let (file, base) = self.file()?;
        self.merge(file, base.as_deref())
    }

    /// The interval of `timeline.csv` (`--timeline` over the file's `timeline:`), if
    /// one is asked for; it needs an output directory.
    pub fn timeline(&self) -> Result<Option<Duration>, ConfigError> {
        self.timeline_in(&self.file()?.0)
    }

    /// [`RunArgs::timeline`] with the flags over `file`.
    pub fn timeline_in(&self, file: &FileConfig) -> Result<Option<Duration>, ConfigError> {
        let (step, key) = match (self.timeline, file.timeline) {
            (Some(d), _) => (d, "--timeline"),
            (None, Some(d)) => (d.0, "timeline"),
            (None, None) => return Ok(None),
        };
        if step.is_zero() {
            return err(key, "must be > 0");
        }
        if self.outdir.is_none() && file.outdir.is_none() {
            return err(key, "needs an output directory (--outdir or outdir:)");
        }
        Ok(Some(step))
    }

    /// The config file (empty without `--config-path`) and its directory.
    fn file(&self) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
        Ok(match &self.config_path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    key: "--config-path".into(),
                    msg: format!("cannot read {}: {e}", p.display()),
                })?;
                let f = FileConfig::parse(&text).map_err(|mut e| {
                    e.msg = format!("{} (in {})", e.msg, p.display());
                    e
                })?;
                (f, p.parent().map(Path::to_path_buf))
            }
            None => (FileConfig::default(), None),
        })
    }

    /// Merges the flags over `file` (whose relative paths are taken from `base`).
    pub fn merge(&self, file: FileConfig, base: Option<&Path>) -> Result<Plan, ConfigError> {
        // Which of a flag and a key is used, and the name to blame in errors.
        fn pick<T: Clone>(
            flag: &Option<T>,
            key: &Option<T>,
            f: &str,
            k: &str,
        ) -> (Option<T>, String) {
            match (flag, key) {
                (Some(v), _) => (Some(v.clone()), format!("--{f}")),
                (None, Some(v)) => (Some(v.clone()), k.to_string()),
                (None, None) => (None, format!("--{f}")),
            }
        }
        let server = self.server(&file)?;
        let realtime = self.realtime || file.realtime.unwrap_or(false);
        let backend = self.backend(&file, server, realtime)?;
        let (workers, workers_key) = pick(&self.workers, &file.workers, "workers", "workers");
        if workers == Some(0) {
            return err(workers_key, "must be at least 1");
        }
        let meta = Meta {
            label: self
                .label
                .clone()
                .or(file.label.clone())
                .unwrap_or_default(),
            policy: self
                .policy
                .clone()
                .or(file.policy.clone())
                .unwrap_or_default(),
            workers,
        };
        let arrival = match self.arrival {
            Some(ArrivalArg::Exponential) => Arrival::Exponential,
            Some(ArrivalArg::Uniform) => Arrival::Uniform,
            None => file.arrival.unwrap_or_default(),
        };
        let dur = |flag: Option<Duration>, key: Option<Dur>, default: Duration| {
            flag.or(key.map(|d| d.0)).unwrap_or(default)
        };
        let warmup = dur(self.warmup, file.warmup, DEFAULT_WARMUP);
        let (timeout, timeout_key) = pick(
            &self.timeout,
            &file.timeout.map(|d| d.0),
            "timeout",
            "timeout",
        );
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return err(timeout_key, "must be > 0");
        }
        let longest = Duration::from_nanos(persephone::report::LATENCY_MAX_NS);
        if timeout > longest {
            return err(
                timeout_key,
                format!(
                    "at most {} s (the latency histograms' range)",
                    longest.as_secs()
                ),
            );
        }
        let (slack_us, slack_key) = pick(&self.slack_us, &file.slack_us, "slack-us", "slack_us");
        let slack_us = slack_us.unwrap_or(DEFAULT_SLACK.as_secs_f64() * 1e6);
        if !(0.0..=MAX_US).contains(&slack_us) {
            return err(
                slack_key,
                format!("must be 0 to {MAX_US} (1 s), got {slack_us}"),
            );
        }
        let (spin_us, spin_key) = pick(&self.spin_us, &file.spin_us, "spin-us", "spin_us");
        let spin_auto = spin_us.is_none();
        let spin_us = spin_us.unwrap_or(DEFAULT_SPIN.as_secs_f64() * 1e6);
        if !(0.0..=MAX_US).contains(&spin_us) {
            return err(
                spin_key,
                format!("must be 0 to {MAX_US} (1 s), got {spin_us}"),
            );
        }
        let (sample, sample_key) = pick(&self.sample, &file.sample, "sample", "sample");
        if let Some(f) = sample {
            if !(0.0..=1.0).contains(&f) {
                return err(sample_key, format!("a fraction in [0, 1], got {f}"));
            }
            if f > 0.0 && self.outdir.is_none() && file.outdir.is_none() {
                return err(
                    sample_key,
                    "needs an output directory for its trace (--outdir or outdir:)",
                );
            }
        }
        let max_concurrency = self
            .max_concurrency
            .or(file.max_concurrency)
            .filter(|&n| n > 0);

        let (spec, kv_key, kv_asked) = self.kv_spec(&file)?;
        // Whether a kv preset is used anywhere (which turns the kv mode on).
        let mut kv_preset = false;
        let mut resolve = |name: &str, base: Option<&Path>, key: &str| {
            let (w, is_kv) = resolve_workload(name, base, key, &spec)?;
            kv_preset |= is_kv;
            Ok::<_, ConfigError>(w)
        };
        // The workload for single-phase runs (and the default of each phase).
        let default_workload = match (&self.workload, &file.workload) {
            (Some(name), _) => resolve(name, None, "--workload")?,
            (None, Some(WorkloadSpec::Named(name))) => resolve(name, base, "workload")?,
            (None, Some(WorkloadSpec::Inline(w))) => w.clone(),
            (None, None) => Workload::preset("high-bimodal").expect("built-in preset"),
        };
        let rate_for = |load: f64, w: &Workload, key: &str| -> Result<f64, ConfigError> {
            match workers {
                Some(n) => {
                    let rate = w.rate_for_load(load, n);
                    if rate.is_finite() {
                        Ok(rate)
                    } else {
                        err(
                            key,
                            format!(
                                "{load} gives no finite rate with workload {:?} (mean service \
                                 time {} ns): give a rate instead",
                                w.name,
                                w.mean_service_ns()
                            ),
                        )
                    }
                }
                None => err(
                    key,
                    "a load needs the server's worker count (--workers or workers:)",
                ),
            }
        };

        let points = if let Some(phases) = &file.phases {
            for (flag, set) in [
                ("--rate", self.rate.is_some()),
                ("--load", self.load.is_some()),
                ("--loads", self.loads.is_some()),
                ("--duration", self.duration.is_some()),
                ("--workload", self.workload.is_some()),
            ] {
                if set {
                    return err(flag, "cannot be combined with `phases` in the config file");
                }
            }
            for k in ["rate", "load", "loads", "duration"] {
                let set = match k {
                    "rate" => file.rate.is_some(),
                    "load" => file.load.is_some(),
                    "loads" => file.loads.is_some(),
                    _ => file.duration.is_some(),
                };
                if set {
                    return err(k, "cannot be combined with `phases` (give it per phase)");
                }
            }
            if phases.is_empty() {
                return err("phases", "at least one phase is needed");
            }
            let mut out = Vec::new();
            for (i, p) in phases.iter().enumerate() {
                let key = |k: &str| format!("phases[{i}].{k}");
                let w = match &p.workload {
                    Some(WorkloadSpec::Named(n)) => resolve(n, base, &key("workload"))?,
                    Some(WorkloadSpec::Inline(w)) => w.clone(),
                    None => default_workload.clone(),
                };
                let (rate, load) = match (p.rate, p.load) {
                    (Some(_), Some(_)) => return err(key("rate"), "give rate or load, not both"),
                    (Some(r), None) => (positive(&key("rate"), r)?, None),
                    (None, Some(l)) => {
                        let l = positive(&key("load"), l)?;
                        (rate_for(l, &w, &key("load"))?, Some(l))
                    }
                    (None, None) => return err(key("rate"), "each phase needs a rate or a load"),
                };
                if p.duration.0.is_zero() {
                    return err(key("duration"), "must be > 0");
                }
                out.push(Phase {
                    workload: w,
                    rate,
                    load,
                    duration: p.duration.0,
                });
            }
            vec![Point {
                phases: out,
                tag: "phases".into(),
            }]
        } else {
            let (duration, duration_key) = pick(
                &self.duration,
                &file.duration.map(|d| d.0),
                "duration",
                "duration",
            );
            let duration = duration.unwrap_or(Duration::from_secs(5));
            if duration.is_zero() {
                return err(duration_key, "must be > 0");
            }
            let one = |rate: f64, load: Option<f64>, tag: String| Point {
                phases: vec![Phase {
                    workload: default_workload.clone(),
                    rate,
                    load,
                    duration,
                }],
                tag,
            };
            // Flags first, then file keys; a flag of one kind overrides a key of another.
            let cli_set = self.rate.is_some() || self.load.is_some() || self.loads.is_some();
            let (rate, load, loads) = if cli_set {
                (self.rate, self.load, self.loads.clone().map(|l| l.0))
            } else {
                let set = [
                    file.rate.is_some(),
                    file.load.is_some(),
                    file.loads.is_some(),
                ];
                if set.iter().filter(|&&b| b).count() > 1 {
                    return err("rate", "give one of rate, load and loads");
                }
                (file.rate, file.load, file.loads.clone().map(|l| l.0))
            };
            let k = |f: &str| {
                if cli_set {
                    format!("--{f}")
                } else {
                    f.to_string()
                }
            };
            match (rate, load, loads) {
                (Some(r), _, _) => {
                    let r = positive(&k("rate"), r)?;
                    vec![one(
                        r,
                        workers.map(|n| r * default_workload.mean_service_ns() / (n as f64 * 1e9)),
                        format!("rate{r}"),
                    )]
                }
                (None, Some(l), _) => {
                    let l = positive(&k("load"), l)?;
                    vec![one(
                        rate_for(l, &default_workload, &k("load"))?,
                        Some(l),
                        format!("load{l}"),
                    )]
                }
                (None, None, Some(ls)) => {
                    let points: Vec<Point> = ls
                        .iter()
                        .map(|&l| {
                            Ok(one(
                                rate_for(l, &default_workload, &k("loads"))?,
                                Some(l),
                                format!("load{l}"),
                            ))
                        })
                        .collect::<Result<_, ConfigError>>()?;
                    // A point's files are named after its load: a repeat would
                    // overwrite the first one's.
                    for (i, p) in points.iter().enumerate() {
                        if let Some(q) = points[..i].iter().find(|q| q.tag == p.tag) {
                            return err(
                                k("loads"),
                                format!(
                                    "{} is listed twice (each load is one point, its files \
                                     named after it; run again with another --outdir to \
                                     repeat it)",
                                    q.tag.trim_start_matches("load")
                                ),
                            );
                        }
                    }
                    points
                }
                (None, None, None) => {
                    return err(
                        "--rate",
                        "give --rate, --load or --loads (or rate/load/loads/phases in the config)",
                    )
                }
            }
        };
        let kv = if kv_asked || kv_preset {
            spec.validate().map_err(|m| {
                let (field, rest) = m.split_once(": ").unwrap_or(("keys", &m));
                ConfigError {
                    key: kv_key(field),
                    msg: rest.to_string(),
                }
            })?;
            for (i, ph) in points.iter().flat_map(|p| &p.phases).enumerate() {
                if let Some(t) = ph
                    .workload
                    .types
                    .iter()
                    .find(|t| kv::KvOp::of_type(&t.name).is_none())
                {
                    let key = if file.phases.is_some() {
                        format!("phases[{i}].workload")
                    } else {
                        "workload".to_string()
                    };
                    return err(
                        key,
                        format!(
                            "type {} of workload {:?}: a kv run sends GET and SCAN requests \
                             only{}",
                            t.name,
                            ph.workload.name,
                            if kv_preset {
                                ""
                            } else {
                                " (the --kv-* flags or a kv: section make this a kv run)"
                            }
                        ),
                    );
                }
            }
            Some(spec)
        } else {
            None
        };
        let (wire, wire_key) = pick(&self.wire, &file.wire, "wire", "wire");
        let wire = wire.unwrap_or_default();
        if wire == Wire::PspMb && kv.is_some() {
            return err(
                wire_key,
                "psp_mb carries a service time only, not a kv operation: a kv run needs \
                 the native wire format",
            );
        }
        Ok(Plan {
            server,
            backend,
            meta,
            points,
            arrival,
            warmup,
            timeout,
            seed: self.seed.or(file.seed).unwrap_or(DEFAULT_SEED),
            slack: Duration::from_secs_f64(slack_us * 1e-6),
            spin: Duration::from_secs_f64(spin_us * 1e-6),
            spin_auto,
            stop: None,
            max_concurrency,
            outdir: self.outdir.clone().or(file.outdir.clone()),
            sample,
            realtime,
            progress: !self.quiet,
            kv,
            wire,
        })
    }

    /// The kv spec from the flags over the file's `kv:` section; a function naming the
    /// flag or key of a field for errors; whether any kv setting was given.
    #[allow(clippy::type_complexity)]
    fn kv_spec(
        &self,
        file: &FileConfig,
    ) -> Result<(KvSpec, Box<dyn Fn(&str) -> String>, bool), ConfigError> {
        let f = file.kv.clone().unwrap_or_default();
        let d = KvSpec::default();
        let dist_text = self.kv_dist.clone().or(f.dist.clone());
        let dist = match &dist_text {
            None => d.dist,
            Some(t) => KeyDist::parse(t).map_err(|m| ConfigError {
                key: if self.kv_dist.is_some() {
                    "--kv-dist".into()
                } else {
                    "kv.dist".into()
                },
                msg: m,
            })?,
        };
        let spec = KvSpec {
            keys: self.kv_keys.or(f.keys).unwrap_or(d.keys),
            value_size: self.kv_value_size.or(f.value_size).unwrap_or(d.value_size),
            scan_len: self.kv_scan_len.or(f.scan_len).unwrap_or(d.scan_len),
            dist,
        };
        let flags = [
            ("keys", self.kv_keys.is_some()),
            ("value_size", self.kv_value_size.is_some()),
            ("scan_len", self.kv_scan_len.is_some()),
            ("dist", self.kv_dist.is_some()),
        ];
        let asked = file.kv.is_some() || flags.iter().any(|(_, set)| *set);
        let by_flag: Vec<&'static str> = flags
            .iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect();
        let key = move |field: &str| {
            if by_flag.contains(&field) {
                format!("--kv-{}", field.replace('_', "-"))
            } else {
                format!("kv.{field}")
            }
        };
        Ok((spec, Box::new(key), asked))
    }

    /// The transport from `--backend` over `backend:`, with the `dpdk:` section checked.
    fn backend(
        &self,
        file: &FileConfig,
        server: SocketAddr,
        realtime: bool,
    ) -> Result<Backend, ConfigError> {
        let (backend, key) = match (self.backend, file.backend) {
            (Some(b), _) => (b, "--backend"),
            (None, Some(b)) => (b, "backend"),
            // A `dpdk:` section alone does not say which transport is meant.
            (None, None) if file.dpdk.is_some() => {
                return err(
                    "backend",
                    "the config has a `dpdk:` section: say `backend: dpdk` to use it \
                     (or `backend: udp` to leave it unused)",
                )
            }
            (None, None) => (BackendArg::Udp, "backend"),
        };
        match backend {
            BackendArg::Udp => Ok(Backend::Udp),
            BackendArg::Dpdk => self.dpdk_backend(file, server, realtime, key),
        }
    }

    #[cfg(not(feature = "dpdk"))]
    fn dpdk_backend(
        &self,
        _file: &FileConfig,
        _server: SocketAddr,
        _realtime: bool,
        key: &str,
    ) -> Result<Backend, ConfigError> {
        err(
            key,
            "this psp-client was built without DPDK: rebuild with `--features dpdk` \
             (cargo build --release -p psp-client --features dpdk; DPDK itself comes from \
             scripts/setup-dpdk.sh)",
        )
    }

    #[cfg(feature = "dpdk")]
    fn dpdk_backend(
        &self,
        file: &FileConfig,
        server: SocketAddr,
        realtime: bool,
        key: &str,
    ) -> Result<Backend, ConfigError> {
        let Some(section) = &file.dpdk else {
            let asked = if key.starts_with("--") {
                "--backend dpdk"
            } else {
                "backend: dpdk"
            };
            return err(
                "dpdk",
                format!(
                    "`{asked}` needs a `dpdk:` section in the config file (eal_args, ip, \
                     and over memif rx_queues: see configs/dpdk-memif-client.yml)"
                ),
            );
        };
        let SocketAddr::V4(server) = server else {
            return err(
                self.server_key(file),
                format!("{server} is IPv6: the DPDK backend speaks IPv4 only"),
            );
        };
        if realtime {
            return err(
                if self.realtime {
                    "--realtime"
                } else {
                    "realtime"
                },
                "not with the DPDK backend: its one thread polls without sleeping, and as a \
                 SCHED_FIFO thread it would starve everything else on its core",
            );
        }
        let client = section.client_config(server).map_err(|m| {
            let (key, msg) = m.split_once(": ").unwrap_or(("dpdk", &m));
            ConfigError {
                key: key.into(),
                msg: msg.into(),
            }
        })?;
        if server.ip().is_loopback() {
            return err(
                self.server_key(file),
                format!(
                    "{server} is a loopback address: over DPDK the server is on a NIC (its \
                     replies from 127.0.0.0/8 would be dropped)"
                ),
            );
        }
        Ok(Backend::Dpdk(DpdkBackend {
            eal_args: section.eal_args.clone(),
            client,
        }))
    }

    /// The flag or key the server address came from.
    #[cfg(feature = "dpdk")]
    fn server_key(&self, file: &FileConfig) -> &'static str {
        if self.server.is_some() {
            "--server"
        } else if self.ip.is_some() {
            "--ip"
        } else if file.ip.is_some() {
            "ip"
        } else {
            "server"
        }
    }

    fn server(&self, file: &FileConfig) -> Result<SocketAddr, ConfigError> {
        let resolve = |s: &str, key: &str| {
            persephone::net::resolve(s).map_err(|msg| ConfigError {
                key: key.into(),
                msg,
            })
        };
        // --port conflicts with --server (clap): nothing to override here.
        if let Some(s) = &self.server {
            return resolve(s, "--server");
        }
        // The file names the server one way or the other, as the flags must.
        if file.server.is_some() && (file.ip.is_some() || file.port.is_some()) {
            return err(
                "server",
                "gives the address and its port: not with `ip` or `port` in the same file",
            );
        }
        // Flags override the file's address part by part.
        let mut a = match &file.server {
            Some(s) => resolve(s, "server")?,
            None => SocketAddr::from(([127, 0, 0, 1], 6789)),
        };
        if let Some(ip) = self.ip.or(file.ip) {
            a.set_ip(ip);
        }
        if let Some(p) = self.port.or(file.port) {
            a.set_port(p);
        }
        if a.port() == 0 {
            return err(
                if self.port.is_some() {
                    "--port"
                } else {
                    "port"
                },
                "must not be 0",
            );
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: RunArgs,
        }
        let mut full = vec!["psp-client"];
        full.extend_from_slice(v);
        <T as clap::Parser>::try_parse_from(full).unwrap().a
    }

    fn plan(flags: &[&str], yaml: &str) -> Result<Plan, ConfigError> {
        args(flags).merge(FileConfig::parse(yaml)?, None)
    }

    /// A file names its server by `server`, or by `ip` and `port`, not both; flags
    /// override the file's address part by part.
    #[test]
    fn the_server_address_comes_one_way_from_the_file() {
        for yaml in [
            "ip: 127.0.0.1\nserver: 127.0.0.1:1\n",
            "port: 7\nserver: 127.0.0.1:1\n",
        ] {
            let e = plan(&["--rate", "5"], yaml).unwrap_err();
            assert_eq!(e.key, "server", "{yaml}");
            assert!(e.msg.contains("not with `ip` or `port`"), "{}", e.msg);
        }
        let addr = |flags: &[&str], yaml: &str| {
            let mut f = vec!["--rate", "5"];
            f.extend_from_slice(flags);
            plan(&f, yaml).unwrap().server.to_string()
        };
        assert_eq!(addr(&[], "server: 10.0.0.1:7000\n"), "10.0.0.1:7000");
        assert_eq!(
            addr(&["--ip", "10.0.0.2"], "server: 10.0.0.1:7000\n"),
            "10.0.0.2:7000"
        );
        assert_eq!(
            addr(&["--port", "8000"], "server: 10.0.0.1:7000\n"),
            "10.0.0.1:8000"
        );
        assert_eq!(addr(&[], "ip: 10.0.0.3\nport: 7001\n"), "10.0.0.3:7001");
        assert_eq!(addr(&[], ""), "127.0.0.1:6789");
    }

    /// The wire format from a flag (either spelling) or the file, the flag first.
    #[test]
    fn the_wire_format_comes_from_the_flag_or_the_file() {
        let wire = |flags: &[&str], yaml: &str| {
            let mut f = vec!["--rate", "5"];
            f.extend_from_slice(flags);
            plan(&f, yaml).unwrap().wire
        };
        assert_eq!(wire(&[], ""), Wire::Native);
        assert_eq!(wire(&["--wire", "psp_mb"], ""), Wire::PspMb);
        assert_eq!(wire(&["--wire", "psp-mb"], ""), Wire::PspMb);
        assert_eq!(wire(&[], "wire: psp_mb\n"), Wire::PspMb);
        assert_eq!(wire(&["--wire", "native"], "wire: psp_mb\n"), Wire::Native);
    }

    /// psp-sim's spelling of the arrival process is understood too.
    #[test]
    fn poisson_is_exponential() {
        for (flags, yaml) in [
            (&["--rate", "5", "--arrivals", "poisson"][..], ""),
            (&["--rate", "5"][..], "arrival: poisson\n"),
        ] {
            let p = plan(flags, yaml).unwrap();
            assert_eq!(p.arrival, Arrival::Exponential, "{flags:?} {yaml:?}");
        }
        let p = plan(&["--rate", "5", "--arrival", "uniform"], "").unwrap();
        assert_eq!(p.arrival, Arrival::Uniform);
    }

    #[test]
    fn the_timeline_interval_needs_an_outdir() {
        let t =
            |flags: &[&str], yaml: &str| args(flags).timeline_in(&FileConfig::parse(yaml).unwrap());
        assert_eq!(t(&[], ""), Ok(None));
        assert_eq!(
            t(&["--timeline", "100ms", "--outdir", "o"], ""),
            Ok(Some(Duration::from_millis(100)))
        );
        assert_eq!(
            t(&["--timeline", "50ms"], "timeline: 1s\noutdir: o\n"),
            Ok(Some(Duration::from_millis(50)))
        );
        assert_eq!(
            t(&[], "timeline: 1s\noutdir: o\n"),
            Ok(Some(Duration::from_secs(1)))
        );
        assert_eq!(t(&["--timeline", "1s"], "").unwrap_err().key, "--timeline");
        assert_eq!(
            t(&[], "timeline: 0s\noutdir: o\n").unwrap_err().key,
            "timeline"
        );
    }

    #[test]
    fn durations_and_loads_parse() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_loads("0.1,0.2, 0.5").unwrap(), vec![0.1, 0.2, 0.5]);
        assert_eq!(
            parse_loads("0.1:0.9:0.1").unwrap(),
            vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        );
        assert_eq!(parse_loads("0.5:0.5:0.1").unwrap(), vec![0.5]);
        for bad in ["", "0.1:0.2", "0.5:0.1:0.1", "a,b", "0,0.1", "0.1:0.9:0"] {
            assert!(parse_loads(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_loads("0.1:0.3:0").unwrap_err(), "step 0 must be > 0");
    }

    #[test]
    fn load_becomes_a_rate_through_workers() {
        let p = plan(&["--load", "0.5", "--workers", "14"], "").unwrap();
        let ph = &p.points[0].phases[0];
        assert!((ph.rate - 0.5 * 14.0e9 / 50_500.0).abs() < 1e-6);
        assert_eq!(ph.load, Some(0.5));
        assert_eq!(p.server, "127.0.0.1:6789".parse().unwrap());
        assert_eq!(p.seed, DEFAULT_SEED);
        // A rate with known workers is recorded as a load too.
        let p = plan(&["--rate", "1000", "--workers", "1"], "").unwrap();
        assert!((p.points[0].phases[0].load.unwrap() - 0.0505).abs() < 1e-9);
    }

    #[test]
    fn sweeps_make_one_point_per_load() {
        let p = plan(
            &[
                "--loads",
                "0.1:0.3:0.1",
                "--workers",
                "2",
                "--workload",
                "tpcc",
            ],
            "",
        )
        .unwrap();
        assert_eq!(p.points.len(), 3);
        assert_eq!(p.points[2].tag, "load0.3");
        assert_eq!(p.points[0].phases[0].workload.name, "tpcc");
    }

    #[test]
    fn flags_win_over_the_file() {
        let yaml =
            "server: 10.0.0.1:9000\nlabel: file\nrate: 500\nduration: 2s\nseed: 3\nworkers: 4\n";
        let p = plan(&["--label", "flag", "--load", "0.1"], yaml).unwrap();
        assert_eq!(p.meta.label, "flag");
        assert_eq!(p.points[0].phases[0].load, Some(0.1));
        assert_eq!(p.points[0].phases[0].duration, Duration::from_secs(2));
        assert_eq!(p.seed, 3);
        assert_eq!(p.server, "10.0.0.1:9000".parse().unwrap());
        let p = plan(&["--ip", "127.0.0.2", "--port", "7000"], yaml).unwrap();
        assert_eq!(p.server, "127.0.0.2:7000".parse().unwrap());
    }

    #[test]
    fn phases_chain_from_the_file() {
        let yaml = "workers: 2\nworkload: high-bimodal\nphases:\n  - { load: 0.2, duration: 1s }\n  - { workload: rocksdb, rate: 3000, duration: 500ms }\n  - workload:\n      name: mine\n      types: [{ id: 9, name: X, ratio: 1, service: { kind: constant, ns: 100 } }]\n    rate: 10\n    duration: 1\n";
        let p = plan(&[], yaml).unwrap();
        let ph = &p.points[0].phases;
        assert_eq!(ph.len(), 3);
        assert_eq!(ph[0].workload.name, "high-bimodal");
        assert_eq!(ph[1].workload.name, "rocksdb");
        assert_eq!(ph[1].rate, 3000.0);
        assert_eq!(ph[2].workload.types[0].id, 9);
        assert_eq!(ph[2].duration, Duration::from_secs(1));
    }

    #[test]
    fn errors_name_the_flag_or_key() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["--load", "0.5"], "", "--load"),
            (&[], "load: 0.5\n", "load"),
            (&[], "rate: 10\nrte: 5\n", "unknown field `rte`"),
            (&["--rate=-5"], "", "--rate"),
            (&["--rate", "5"], "timeout: 0s\n", "timeout"),
            (&["--rate", "5", "--timeout", "61m"], "", "--timeout: at most 3600 s"),
            (&["--rate", "5", "--spin-us", "1e30"], "", "--spin-us: must be 0 to"),
            (&["--rate", "5", "--slack-us", "1e30"], "", "--slack-us"),
            (&["--rate", "5"], "spin_us: 1e30\n", "spin_us"),
            (&["--loads", "0.3,0.5,0.3", "--workers", "2"], "", "--loads: 0.3 is listed twice"),
            (&["--rate", "5"], "slack_us: .nan\n", "slack_us"),
            (&["--rate", "5", "--workload", "nope"], "", "--workload"),
            (&["--rate", "5"], "workload: nope\n", "workload"),
            (&["--rate", "5"], "sample: 2\n", "sample"),
            (&["--rate", "5", "--sample", "0.5"], "", "--sample"),
            (&["--rate", "5"], "timeline: 10 parsecs\n", "timeline"),
            (&["--rate", "5", "--workers", "0"], "", "--workers"),
            (&["--rate", "5", "--server", "nowhere"], "", "--server"),
            (&["--rate", "5", "--server", "nowhere"], "", "is not a HOST:PORT address"),
            (
                &["--load", "0.5", "--workers", "2"],
                "workload: { name: z, types: [{ id: 1, name: A, ratio: 1, service: { kind: constant, ns: 0 } }] }\n",
                "--load: 0.5 gives no finite rate with workload \"z\" (mean service time 0 ns)",
            ),
            (&["--rate", "5", "--server", "no-such-host.invalid:1"], "", "cannot resolve"),
            (&["--rate", "5", "--kv-dist", "zipf"], "", "the --kv-* flags"),
            (&[], "", "--rate"),
            (&[], "rate: 1\nload: 0.2\nworkers: 1\n", "rate"),
            (&["--rate", "5"], "phases: [{ rate: 1, duration: 1s }]\n", "--rate"),
            (&[], "phases: [{ rate: 1, duration: 1s, extra: 2 }]\n", "phases[0]"),
            (&[], "phases: [{ duration: 1s }]\n", "phases[0].rate"),
            (&[], "phases: [{ load: 0.5, duration: 1s }]\n", "phases[0].load"),
            (&[], "phases: [{ rate: 5, duration: soon }]\n", "phases[0].duration"),
            (&["--rate", "5"], "duration: 5 parsecs\n", "duration"),
            (&[], "loads: [0.1, -1]\nworkers: 2\n", "loads[1]"),
            (&["--rate", "5"], "arrival: bursty\n", "arrival"),
            (&["--rate", "5"], "realtime: maybe\n", "realtime"),
            (&["--rate", "5"], "backend: rdma\n", "backend: unknown variant `rdma`"),
            (&["--rate", "5"], "wire: psp\n", "wire: unknown variant `psp`"),
            (&["--rate", "5", "--workload", "kv", "--wire", "psp_mb"], "", "--wire: psp_mb carries"),
            (&["--rate", "5", "--workload", "kv"], "wire: psp_mb\n", "wire: psp_mb carries"),
            (&["--rate", "5"], "dpdk: { eal_args: [], ip: 10.0.0.2 }\n", "backend: the config has a `dpdk:` section"),
            (
                &["--rate", "5"],
                "workload: { name: x, types: [{ id: 0, name: A, ratio: 1, service: { kind: constant, ns: 1 } }] }\n",
                "types[0].id",
            ),
            (
                &["--rate", "5"],
                "workload: { name: x, types: [{ id: 1, name: A, ratio: 1, service: { kind: bogus } }] }\n",
                "workload.types[0].service",
            ),
            (
                &["--rate", "5"],
                "workload: { name: x, types: [{ id: 1, name: A, ratio: 1, servce: 2 }] }\n",
                "workload.types[0].servce: unknown field `servce`",
            ),
            (
                &[],
                "phases: [{ rate: 5, duration: 1s, workload: { name: x, types: [{ id: 1, name: A, ratio: one, service: { kind: constant, ns: 5 } }] } }]\n",
                "types[0].ratio",
            ),
            (&["--rate", "5", "--workload", "kv", "--kv-keys", "0"], "", "--kv-keys"),
            (&["--rate", "5", "--workload", "kv"], "kv: { keys: 0 }\n", "kv.keys"),
            (&["--rate", "5", "--kv-dist", "normal"], "", "--kv-dist"),
            (&["--rate", "5", "--workload", "kv"], "kv: { dist: zipf:-2 }\n", "kv.dist"),
            (&["--rate", "5", "--workload", "kv", "--kv-scan-len", "0"], "", "--kv-scan-len"),
            (&["--rate", "5"], "kv: { keyz: 10 }\n", "unknown field `keyz`"),
            (&["--rate", "5", "--kv-keys", "10"], "", "workload"),
            (
                &[],
                "phases:\n  - { workload: kv, rate: 5, duration: 1s }\n  - { workload: tpcc, rate: 5, duration: 1s }\n",
                "phases[1].workload",
            ),
        ];
        for (flags, yaml, want) in cases {
            let e = match FileConfig::parse(yaml) {
                Ok(f) => args(flags).merge(f, None).map(|_| ()).unwrap_err(),
                Err(e) => e,
            };
            let text = e.to_string();
            assert!(text.contains(want), "{flags:?} {yaml:?}: {text}");
        }
    }

    #[test]
    fn kv_workloads_turn_the_kv_mode_on() {
        let p = plan(
            &[
                "--rate",
                "100",
                "--workload",
                "kv-99.5",
                "--kv-keys",
                "5000",
                "--kv-dist",
                "zipf",
            ],
            "kv: { value_size: 16, keys: 7 }\n",
        )
        .unwrap();
        let kv = p.kv.unwrap();
        assert_eq!(
            (kv.keys, kv.value_size, kv.scan_len, kv.dist),
            (5000, 16, 256, KeyDist::Zipf(0.99)),
            "flags over the file over the defaults"
        );
        let w = &p.points[0].phases[0].workload;
        assert_eq!(w.name, "kv-99.5");
        assert_eq!(w.types[1].service.mean_ns(), kv.scan_ns() as f64);
        // A spin workload is not a kv one, even named so.
        let inline = "workload: { name: kv, types: [{ id: 1, name: GET, ratio: 1, service: { kind: constant, ns: 100 } }] }\nrate: 5\n";
        assert!(plan(&[], inline).unwrap().kv.is_none());
        assert!(plan(&["--rate", "5"], "").unwrap().kv.is_none());
        // ... unless asked for: then its GET/SCAN types carry KV requests.
        assert!(plan(&[], &format!("{inline}kv: {{}}\n"))
            .unwrap()
            .kv
            .is_some());
    }

    #[test]
    fn shipped_client_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Every client file (client-*.yml, tpcc-client.yml, overload-client.yml ...);
            // the DPDK one is checked below, with and without the feature.
            if !name.ends_with(".yml")
                || !name.contains("client")
                || name.contains("server")
                || name.starts_with("dpdk-")
            {
                continue;
            }
            let a = RunArgs {
                config_path: Some(path.clone()),
                rate: name.contains("ceiling").then_some(1000.0),
                ..RunArgs::default()
            };
            let p = a.plan().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.points.is_empty(), "{name}");
            n += 1;
        }
        assert!(n >= 5, "only {n} client configs found in {}", dir.display());
        // The server side of the ceiling benchmark is a valid daemon config.
        persephone::config::Config::load(dir.join("client-echo-server.yml")).unwrap();
        // The DPDK client config: a plan with the feature, a clear error without.
        let a = RunArgs {
            config_path: Some(dir.join("dpdk-memif-client.yml")),
            ..RunArgs::default()
        };
        #[cfg(feature = "dpdk")]
        {
            let p = a.plan().unwrap();
            let Backend::Dpdk(d) = &p.backend else {
                panic!("{:?}", p.backend)
            };
            assert_eq!(d.client.rx_queues, 3, "memif: the server's workers + 1");
            assert_eq!(d.client.server, "10.0.0.1:6789".parse().unwrap());
            assert!(d
                .eal_args
                .iter()
                .any(|a| a.starts_with("--vdev=net_memif0")));
            assert_eq!(p.meta.workers, Some(2));
        }
        #[cfg(not(feature = "dpdk"))]
        {
            let e = a.plan().unwrap_err();
            assert_eq!(e.key, "backend");
            assert!(e.msg.contains("rebuild with `--features dpdk`"), "{e}");
        }
    }

    #[test]
    fn the_backend_comes_from_the_flag_or_the_key() {
        let dpdk = "dpdk:\n  eal_args: [--no-huge]\n  ip: 10.0.0.2\n  rx_queues: 3\n";
        // --backend udp leaves a dpdk: section unused.
        let p = plan(
            &["--rate", "5", "--backend", "udp"],
            &format!("backend: dpdk\n{dpdk}"),
        );
        assert!(matches!(p.unwrap().backend, Backend::Udp));
        assert!(matches!(
            plan(&["--rate", "5"], "").unwrap().backend,
            Backend::Udp
        ));
        let with_dpdk = plan(
            &[
                "--rate",
                "5",
                "--backend",
                "dpdk",
                "--server",
                "10.0.0.1:6789",
            ],
            dpdk,
        );
        #[cfg(not(feature = "dpdk"))]
        {
            let e = with_dpdk.unwrap_err();
            assert_eq!(e.key, "--backend");
            assert!(e.msg.contains("rebuild with `--features dpdk`"), "{e}");
        }
        #[cfg(feature = "dpdk")]
        {
            let Backend::Dpdk(d) = with_dpdk.unwrap().backend else {
                panic!("not dpdk")
            };
            assert_eq!(d.eal_args, ["--no-huge"]);
            assert_eq!(d.client.udp_port, 4000, "the default source port");
            let cases: &[(&[&str], &str, &str)] = &[
                (
                    &["--backend", "dpdk"],
                    "",
                    "dpdk: `--backend dpdk` needs a `dpdk:` section",
                ),
                (&[], "backend: dpdk\n", "dpdk: `backend: dpdk` needs"),
                (
                    &[],
                    &format!("backend: dpdk\nrealtime: true\n{dpdk}"),
                    "realtime: not with the DPDK",
                ),
                (
                    &["--realtime"],
                    &format!("backend: dpdk\n{dpdk}"),
                    "--realtime",
                ),
                (
                    &["--server", "[::1]:6789"],
                    &format!("backend: dpdk\n{dpdk}"),
                    "--server: [::1]:6789 is IPv6",
                ),
                (
                    &[],
                    "backend: dpdk\ndpdk: { eal_args: [], ip: 10.0.0.2, rx_queues: 0 }\n",
                    "dpdk.rx_queues",
                ),
                (
                    &[],
                    "backend: dpdk\ndpdk: { eal_args: [], ip: 10.0.0.2, server_mac: x }\n",
                    "dpdk.server_mac",
                ),
                (
                    &[],
                    "backend: dpdk\ndpdk: { eal_args: [], ip: nowhere }\n",
                    "dpdk.ip",
                ),
                (
                    &["--server", "127.0.0.1:6789"],
                    &format!("backend: dpdk\n{dpdk}"),
                    "--server: 127.0.0.1:6789 is a loopback address",
                ),
                (
                    &[],
                    "backend: dpdk\ndpdk: { eal_args: [], ip: 10.0.0.2, mtu: 9000 }\n",
                    "unknown field `mtu`",
                ),
            ];
            for (flags, yaml, want) in cases {
                let mut flags = flags.to_vec();
                flags.extend(["--rate", "5"]);
                let e = match FileConfig::parse(yaml) {
                    Ok(f) => args(&flags).merge(f, None).map(|_| ()).unwrap_err(),
                    Err(e) => e,
                };
                assert!(e.to_string().contains(want), "{flags:?} {yaml:?}: {e}");
            }
        }
    }

    #[test]
    fn conflicting_flags_are_rejected_by_the_parser() {
        #[derive(clap::Parser, Debug)]
        struct T {
            #[command(flatten)]
            a: RunArgs,
        }
        let e = <T as clap::Parser>::try_parse_from(["x", "--rate", "5", "--load", "0.1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--rate") && e.contains("--load"), "{e}");
        let e = <T as clap::Parser>::try_parse_from(["x", "--loads", "0.1:0.2"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--loads"), "{e}");
    }
}
