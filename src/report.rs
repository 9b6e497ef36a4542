//! report.rs - what a run measured, and the files it is written to.
//!
//! Shared by the load generator (`psp-client`, measured runs) and the simulator
//! (`psp-sim`, virtual runs) so that both write the same CSV and JSON, and
//! `psp-client plot` draws their curves side by side.
//!
//! A [`RunReport`] is one *run point* (one load of a sweep, or one phase of a run): run
//! metadata ([`RunInfo`]) plus one [`TypeStats`] per request type. Each `TypeStats` counts
//! requests (sent, ok, rejected by [`Status`], lost, late) and keeps two HdrHistograms:
//!
//! - **latency** in nanoseconds, of requests answered `ok`, measured by the producer
//!   (the client measures from the *scheduled* send time);
//! - **slowdown** = latency / that request's own service time, stored in fixed point
//!   ×[`SLOWDOWN_SCALE`] (a slowdown of 1.5 is recorded as 1500). Requests with a zero
//!   service time have no slowdown.
//!
//! Outputs:
//!
//! - [`RunReport::table`]: an aligned text table for the terminal;
//! - [`write_csv_header`] + [`RunReport::write_csv_rows`]: one row per type per run point
//!   plus an `ALL` row, columns fixed by [`CSV_COLUMNS`];
//! - [`json()`] / [`RunReport::to_json`]: the same data, structured;
//! - [`write_hgrm`]: HdrHistogram's standard percentile-distribution text (`.hgrm`),
//!   readable by the usual HdrHistogram plotters.
//!
//! # CSV schema
//!
//! | column | meaning |
//! | --- | --- |
//! | `label`, `policy`, `workers`, `phase` | run metadata ([`RunInfo`]); `workers` may be empty |
//! | `load` | offered load as a fraction of capacity (empty if unknown) |
//! | `offered_rps`, `achieved_rps` | requests/s offered, and `ok` replies received *during* the measured window per second of it, whichever request they answer (per type on a type row, total on the `ALL` row): the server's throughput, also past saturation |
//! | `type_id`, `type` | wire type id and name (`0`, `ALL` for the overall row) |
//! | `service_mean_us` | mean service time carried by the requests sent |
//! | `sent`, `ok`, `rejected_<status>`, `lost`, `late` | request accounting (see [`TypeStats`]) |
//! | `latency_{mean,p50,p90,p99,p999,p9999,max}_us` | latency of `ok` replies in µs |
//! | `slowdown_{mean,p50,p90,p99,p999,p9999,max}` | slowdown of `ok` replies |
//! | `adherence` | run-level fraction of requests sent within the schedule slack |
//! | `malformed`, `unexpected` | run-level replies that did not parse / matched no outstanding request |
//! | `valid` | `true` unless the producer was the bottleneck (e.g. adherence under 95 %) |
//!
//! Empty cells stand for "no value" (no samples, unknown load). Text cells are quoted
//! when they hold a comma, a quote or a line break (RFC 4180).

use std::fmt::Write as _;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::proto::Status;

/// Writes a line on stdout, if anyone still reads it: `println!` panics once the reader
/// has gone (`| head`), and a program's results (files written, a daemon serving) must
/// not end in a panic for it. The programs' one way to print a result line.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Slowdowns are recorded in fixed point: `slowdown × SLOWDOWN_SCALE`.
pub const SLOWDOWN_SCALE: u64 = 1000;

/// Largest latency (ns) a histogram distinguishes; larger values are clamped to it.
pub const LATENCY_MAX_NS: u64 = 3_600_000_000_000;

/// Above this share of requests rejected or lost, [`RunReport::table`] says that the
/// latencies leave them out.
pub const SHED_WARN: f64 = 0.01;

/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// Version tag of the JSON document written by [`json()`].
pub const JSON_SCHEMA: &str = "persephone-report/1";

/// The quantiles reported everywhere, with their column suffixes.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
];

/// The rejection reasons counted separately: every [`Status`] but `Ok`.
pub const REJECT_REASONS: [Status; 6] = [
    Status::QueueFull,
    Status::UnknownType,
    Status::HandlerError,
    Status::Timeout,
    Status::Shutdown,
    Status::BadRequest,
];

/// CSV columns, in order (see the module docs for their meaning).
pub const CSV_COLUMNS: [&str; 38] = [
    "label",
    "policy",
    "workers",
    "phase",
    "load",
    "offered_rps",
    "achieved_rps",
    "type_id",
    "type",
    "service_mean_us",
    "sent",
    "ok",
    "rejected_queue_full",
    "rejected_unknown_type",
    "rejected_handler_error",
    "rejected_timeout",
    "rejected_shutdown",
    "rejected_bad_request",
    "lost",
    "late",
    "latency_mean_us",
    "latency_p50_us",
    "latency_p90_us",
    "latency_p99_us",
    "latency_p999_us",
    "latency_p9999_us",
    "latency_max_us",
    "slowdown_mean",
    "slowdown_p50",
    "slowdown_p90",
    "slowdown_p99",
    "slowdown_p999",
    "slowdown_p9999",
    "slowdown_max",
    "adherence",
    "malformed",
    "unexpected",
    "valid",
];

/// Name of the overall row / entry.
pub const ALL: &str = "ALL";

fn new_histogram(high: u64) -> Histogram<u64> {
    // Bounds are constants that satisfy the constructor's preconditions.
    Histogram::new_with_bounds(1, high, SIGFIG).expect("valid histogram bounds")
}

/// Counters and histograms of one request type (or of all types: the `ALL` entry).
///
/// Accounting: every request the producer meant to measure is `sent`; each ends up
/// exactly one of `ok`, rejected (by reason), or `lost` (no reply within the timeout,
/// or never handed to the network). `late` counts sends that missed their scheduled time
/// by more than the producer's slack; late requests are still measured.
#[derive(Debug, Clone)]
pub struct TypeStats {
    /// Wire type id (0 for `ALL`).
    pub id: u32,
    pub name: String,
    pub sent: u64,
    pub ok: u64,
    /// `ok` replies received during the measured window, whichever request they answer
    /// (warm-up's and earlier phases' included, this window's late ones not): the
    /// server's throughput, which `achieved_rps` reports. Past saturation it stays at
    /// what the server serves, while `ok` also counts the backlog answered later.
    pub ok_in_window: u64,
    /// Rejections indexed like [`REJECT_REASONS`].
    pub rejected: [u64; REJECT_REASONS.len()],
    pub lost: u64,
    pub late: u64,
    /// Sum of the service times of the requests sent (ns), for their mean.
    pub service_ns_sum: u128,
    /// Latency of `ok` replies, ns.
    pub latency: Histogram<u64>,
    /// Slowdown of `ok` replies, ×[`SLOWDOWN_SCALE`].
    pub slowdown: Histogram<u64>,
}

/// Summary of one histogram: mean, [`QUANTILES`] and max, in report units (µs for
/// latency, plain ratio for slowdown). `None` when nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub mean: f64,
    /// Values at [`QUANTILES`], in order.
    pub at: [f64; QUANTILES.len()],
    pub max: f64,
}

impl Percentiles {
    /// Summarises `h`, dividing its values by `scale`.
    pub fn of(h: &Histogram<u64>, scale: f64) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        Some(Percentiles {
            mean: h.mean() / scale,
            at: QUANTILES.map(|(_, q)| h.value_at_quantile(q) as f64 / scale),
            max: h.max() as f64 / scale,
        })
    }

    /// The value at the quantile named `name` (`"p99"`, ...) or `"mean"`/`"max"`.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "mean" => Some(self.mean),
            "max" => Some(self.max),
            _ => QUANTILES
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| self.at[i]),
        }
    }
}

impl TypeStats {
    /// Empty stats for a type.
    pub fn new(id: u32, name: impl Into<String>) -> TypeStats {
        TypeStats {
            id,
            name: name.into(),
            sent: 0,
            ok: 0,
            ok_in_window: 0,
            rejected: [0; REJECT_REASONS.len()],
            lost: 0,
            late: 0,
            service_ns_sum: 0,
            latency: new_histogram(LATENCY_MAX_NS),
            slowdown: new_histogram(LATENCY_MAX_NS.saturating_mul(SLOWDOWN_SCALE)),
        }
    }

    /// Counts a request sent with service time `service_ns`; `late` if it missed its
    /// scheduled send time.
    pub fn record_sent(&mut self, service_ns: u64, late: bool) {
        self.sent += 1;
        self.late += late as u64;
        self.service_ns_sum += service_ns as u128;
    }

    /// Records an `ok` reply after `latency_ns` for a request of `service_ns`.
    pub fn record_ok(&mut self, latency_ns: u64, service_ns: u64) {
        self.ok += 1;
        self.latency.saturating_record(latency_ns.max(1));
        if service_ns > 0 {
            let sd = latency_ns as u128 * SLOWDOWN_SCALE as u128 / service_ns as u128;
            self.slowdown
                .saturating_record(u64::try_from(sd).unwrap_or(u64::MAX));
        }
    }

    /// Records a reply with a non-`ok` status. (`Status::Ok` is recorded as `ok` with no
    /// latency sample; use [`TypeStats::record_ok`] for it.)
    pub fn record_rejected(&mut self, status: Status) {
        match REJECT_REASONS.iter().position(|&s| s == status) {
            Some(i) => self.rejected[i] += 1,
            None => self.ok += 1,
        }
    }

    /// Records a request that got no reply in time (or could not be sent).
    pub fn record_lost(&mut self) {
        self.lost += 1;
    }

    /// Total rejections over all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Rejections for `status` (0 for `Status::Ok`).
    pub fn rejected_for(&self, status: Status) -> u64 {
        REJECT_REASONS
            .iter()
            .position(|&s| s == status)
            .map_or(0, |i| self.rejected[i])
    }

    /// Mean service time of the requests sent, in ns (`None` if none were sent).
    pub fn service_mean_ns(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.service_ns_sum as f64 / self.sent as f64)
    }

    /// Latency summary in µs.
    pub fn latency_us(&self) -> Option<Percentiles> {
        Percentiles::of(&self.latency, 1e3)
    }

    /// Slowdown summary (plain ratio).
    pub fn slowdown(&self) -> Option<Percentiles> {
        Percentiles::of(&self.slowdown, SLOWDOWN_SCALE as f64)
    }

    /// Adds `other`'s counts and samples to these.
    pub fn merge(&mut self, other: &TypeStats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.ok_in_window += other.ok_in_window;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        self.lost += other.lost;
        self.late += other.late;
        self.service_ns_sum += other.service_ns_sum;
        // Same bounds on both sides: addition cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.slowdown.add(&other.slowdown);
    }

    fn to_json(&self, window_s: f64, offered_rps: f64) -> Value {
        let rejected: serde_json::Map<String, Value> = REJECT_REASONS
            .iter()
            .zip(self.rejected)
            .map(|(s, n)| (s.name().to_string(), json!(n)))
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "offered_rps": offered_rps,
            "achieved_rps": rate(self.ok_in_window, window_s),
            "service_mean_us": self.service_mean_ns().map(|ns| ns / 1e3),
            "sent": self.sent,
            "ok": self.ok,
            "ok_in_window": self.ok_in_window,
            "rejected": rejected,
            "lost": self.lost,
            "late": self.late,
            "latency_us": percentiles_json(self.latency_us()),
            "slowdown": percentiles_json(self.slowdown()),
        })
    }
}

fn rate(n: u64, window_s: f64) -> Option<f64> {
    (window_s > 0.0).then(|| n as f64 / window_s)
}

fn percentiles_json(p: Option<Percentiles>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("mean".into(), json!(p.map(|p| p.mean)));
    for (i, (name, _)) in QUANTILES.iter().enumerate() {
        m.insert((*name).into(), json!(p.map(|p| p.at[i])));
    }
    m.insert("max".into(), json!(p.map(|p| p.max)));
    Value::Object(m)
}

/// Metadata of a run point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    /// Free-form label (experiment name); plot curves are grouped by label and policy.
    pub label: String,
    /// Server policy (`darc`, `cfcfs`, ...), as known to the producer; may be empty.
    pub policy: String,
    /// Server workers, if known.
    pub workers: Option<usize>,
    /// Phase index within a run (0 for single-phase runs).
    pub phase: usize,
    /// Offered load as a fraction of capacity, if known.
    pub load: Option<f64>,
    /// Offered rate over all types (requests/s).
    pub offered_rps: f64,
    /// Length of the measured window in seconds (warm-up excluded).
    pub window_s: f64,
}

/// One run point: metadata, per-type stats, and run-level quality measures.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub info: RunInfo,
    /// One entry per request type, in the workload's order.
    pub types: Vec<TypeStats>,
    /// Nominal share of each type in the offered rate (same order as `types`); used to
    /// split `offered_rps` per type. Empty means "unknown" (per-type offered is then
    /// estimated from the requests sent).
    pub shares: Vec<f64>,
    /// Fraction of requests sent within the schedule slack (1.0 for simulations).
    pub adherence: f64,
    /// Replies that failed to parse.
    pub malformed: u64,
    /// Replies that parsed but matched no outstanding request (unknown or stale id,
    /// duplicate, wrong type).
    pub unexpected: u64,
    /// False when the measurement itself is not trustworthy (the producer was the
    /// bottleneck); such points are drawn hollow by `psp-client plot`.
    pub valid: bool,
}

impl RunReport {
    /// A report with empty stats for the given (id, name) types.
    pub fn new<'a>(info: RunInfo, types: impl IntoIterator<Item = (u32, &'a str)>) -> RunReport {
        RunReport {
            info,
            types: types
                .into_iter()
                .map(|(id, n)| TypeStats::new(id, n))
                .collect(),
            shares: Vec::new(),
            adherence: 1.0,
            malformed: 0,
            unexpected: 0,
            valid: true,
        }
    }

    /// The stats of type `id`, if it is part of this report.
    pub fn type_mut(&mut self, id: u32) -> Option<&mut TypeStats> {
        self.types.iter_mut().find(|t| t.id == id)
    }

    /// All types merged (the `ALL` row).
    pub fn overall(&self) -> TypeStats {
        let mut all = TypeStats::new(0, ALL);
        for t in &self.types {
            all.merge(t);
        }
        all
    }

    /// Offered rate of type index `i`.
    fn offered_for(&self, i: usize) -> f64 {
        if let Some(s) = self.shares.get(i) {
            let total: f64 = self.shares.iter().sum();
            if total > 0.0 {
                return self.info.offered_rps * s / total;
            }
        }
        let sent: u64 = self.types.iter().map(|t| t.sent).sum();
        if sent == 0 {
            0.0
        } else {
            self.info.offered_rps * self.types[i].sent as f64 / sent as f64
        }
    }

    /// The share of requests sent that were rejected or lost (`None` if none were
    /// sent): requests the latency percentiles, which are of `ok` replies, leave out.
    pub fn shed_share(&self) -> Option<f64> {
        let all = self.overall();
        (all.sent > 0).then(|| (all.rejected_total() + all.lost) as f64 / all.sent as f64)
    }

    /// `ok` replies received during the measured window per second of it, over all
    /// types (see [`TypeStats::ok_in_window`]).
    pub fn achieved_rps(&self) -> f64 {
        rate(
            self.types.iter().map(|t| t.ok_in_window).sum(),
            self.info.window_s,
        )
        .unwrap_or(0.0)
    }

    /// An aligned text table: a run line, then one line per type and `ALL`.
    pub fn table(&self) -> String {
        let i = &self.info;
        let mut out = String::new();
        let _ = write!(out, "{}", if i.label.is_empty() { "run" } else { &i.label });
        if !i.policy.is_empty() {
            let _ = write!(out, "  policy {}", i.policy);
        }
        if let Some(w) = i.workers {
            let _ = write!(out, "  workers {w}");
        }
        if i.phase > 0 {
            let _ = write!(out, "  phase {}", i.phase);
        }
        if let Some(l) = i.load {
            let _ = write!(out, "  load {l:.3}");
        }
        let _ = writeln!(
            out,
            "  offered {:.0} rps  achieved {:.0} rps  window {:.2} s  adherence {:.2} %{}",
            i.offered_rps,
            self.achieved_rps(),
            i.window_s,
            self.adherence * 100.0,
            if self.valid { "" } else { "  INVALID" }
        );
        if self.malformed + self.unexpected > 0 {
            let _ = writeln!(
                out,
                "  replies: {} malformed, {} unexpected",
                self.malformed, self.unexpected
            );
        }
        if let Some(share) = self.shed_share().filter(|&s| s > SHED_WARN) {
            let _ = writeln!(
                out,
                "  the server shed {:.1} % of the requests (rejected or lost): latencies are \
                 of `ok` replies only, so they understate the tail",
                share * 100.0
            );
        }
        let all = self.overall();
        if all.rejected_total() > 0 {
            // Why: the table has one `reject` column, the CSV a column per reason.
            let reasons: Vec<String> = REJECT_REASONS
                .iter()
                .zip(all.rejected)
                .filter(|&(_, n)| n > 0)
                .map(|(s, n)| format!("{} {n}", s.name()))
                .collect();
            let _ = writeln!(out, "  rejected: {}", reasons.join(", "));
        }
        let name_w = self
            .types
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        let _ = writeln!(
            out,
            "{:<name_w$} {:>9} {:>9} {:>7} {:>7} {:>7} |{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>7} {:>7} {:>7} {:>8}",
            "type", "sent", "ok", "reject", "lost", "late",
            "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "p99.99 µs", "max µs",
            "sd p50", "sd p99", "sd p99.9", "sd max",
        );
        let rows = self.types.iter().chain(std::iter::once(&all));
        for t in rows {
            let lat = t.latency_us();
            let sd = t.slowdown();
            let f = |p: Option<Percentiles>, name: &str, prec: usize| match p
                .and_then(|p| p.get(name))
            {
                Some(v) => format!("{v:.prec$}"),
                None => "-".into(),
            };
            let _ = writeln!(
                out,
                "{:<name_w$} {:>9} {:>9} {:>7} {:>7} {:>7} |{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>7} {:>7} {:>8} {:>8}",
                t.name,
                t.sent,
                t.ok,
                t.rejected_total(),
                t.lost,
                t.late,
                f(lat, "p50", 1),
                f(lat, "p90", 1),
                f(lat, "p99", 1),
                f(lat, "p999", 1),
                f(lat, "p9999", 1),
                f(lat, "max", 1),
                f(sd, "p50", 1),
                f(sd, "p99", 1),
                f(sd, "p999", 1),
                f(sd, "max", 1),
            );
        }
        out
    }

    /// Writes one CSV row per type, then the `ALL` row (no header; see
    /// [`write_csv_header`]).
    pub fn write_csv_rows(&self, w: &mut dyn Write) -> io::Result<()> {
        let all = self.overall();
        let n = self.types.len();
        for (idx, t) in self.types.iter().chain(std::iter::once(&all)).enumerate() {
            let offered = if idx < n {
                self.offered_for(idx)
            } else {
                self.info.offered_rps
            };
            let row = self.csv_row(t, offered);
            debug_assert_eq!(row.len(), CSV_COLUMNS.len());
            writeln!(w, "{}", row.join(","))?;
        }
        Ok(())
    }

    fn csv_row(&self, t: &TypeStats, offered: f64) -> Vec<String> {
        let i = &self.info;
        let opt = |v: Option<f64>, prec: usize| v.map_or(String::new(), |v| format!("{v:.prec$}"));
        let mut row = vec![
            csv_text(&i.label),
            csv_text(&i.policy),
            i.workers.map_or(String::new(), |w| w.to_string()),
            i.phase.to_string(),
            i.load.map_or(String::new(), |l| format!("{l}")),
            format!("{offered:.1}"),
            opt(rate(t.ok_in_window, i.window_s), 1),
            t.id.to_string(),
            csv_text(&t.name),
            opt(t.service_mean_ns().map(|ns| ns / 1e3), 3),
            t.sent.to_string(),
            t.ok.to_string(),
        ];
        row.extend(t.rejected.iter().map(|n| n.to_string()));
        row.push(t.lost.to_string());
        row.push(t.late.to_string());
        for p in [t.latency_us(), t.slowdown()] {
            row.push(opt(p.map(|p| p.mean), 3));
            for k in 0..QUANTILES.len() {
                row.push(opt(p.map(|p| p.at[k]), 3));
            }
            row.push(opt(p.map(|p| p.max), 3));
        }
        row.push(format!("{:.6}", self.adherence));
        row.push(self.malformed.to_string());
        row.push(self.unexpected.to_string());
        row.push(self.valid.to_string());
        row
    }

    /// This run point as a JSON object (see [`json()`]).
    pub fn to_json(&self) -> Value {
        let i = &self.info;
        let types: Vec<Value> = self
            .types
            .iter()
            .enumerate()
            .map(|(k, t)| t.to_json(i.window_s, self.offered_for(k)))
            .collect();
        json!({
            "label": i.label,
            "policy": i.policy,
            "workers": i.workers,
            "phase": i.phase,
            "load": i.load,
            "offered_rps": i.offered_rps,
            "achieved_rps": self.achieved_rps(),
            "window_s": i.window_s,
            "adherence": self.adherence,
            "malformed": self.malformed,
            "unexpected": self.unexpected,
            "valid": self.valid,
            "types": types,
            "overall": self.overall().to_json(i.window_s, i.offered_rps),
        })
    }
}

/// Quotes a text cell if it needs it (RFC 4180).
fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the CSV header line ([`CSV_COLUMNS`]).
pub fn write_csv_header(w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{}", CSV_COLUMNS.join(","))
}

/// Several run points (a sweep, or the phases of a run) as one JSON document:
/// `{"schema": JSON_SCHEMA, "runs": [RunReport::to_json, ...]}`.
pub fn json(runs: &[RunReport]) -> Value {
    json!({
        "schema": JSON_SCHEMA,
        "runs": runs.iter().map(RunReport::to_json).collect::<Vec<_>>(),
    })
}

/// Writes `h` in HdrHistogram's standard percentile-distribution format (the `.hgrm`
/// text of `outputPercentileDistribution`), values divided by `scale` (1e3 turns ns into
/// µs; [`SLOWDOWN_SCALE`] turns slowdown fixed point into ratios).
pub fn write_hgrm(h: &Histogram<u64>, scale: f64, w: &mut dyn Write) -> io::Result<()> {
    let digits = h.sigfig() as usize;
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    w,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    writeln!(
        w,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]"
    )?;
    writeln!(
        w,
        "#[Max     = {max:>12.digits$}, Total count    = {:>12}]",
        h.len()
    )?;
    // Sub-buckets per bucket: the power of two that holds 2 × 10^sigfig.
    let sub_buckets = (2 * 10u64.pow(h.sigfig() as u32)).next_power_of_two();
    writeln!(
        w,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> RunReport {
        let mut r = RunReport::new(
            RunInfo {
                label: "hb, test".into(),
                policy: "darc".into(),
                workers: Some(2),
                phase: 0,
                load: Some(0.5),
                offered_rps: 1000.0,
                window_s: 2.0,
            },
            [(1, "SHORT"), (2, "LONG")],
        );
        r.shares = vec![0.5, 0.5];
        let s = r.type_mut(1).unwrap();
        for us in 1..=1000u64 {
            s.record_sent(1_000, us % 100 == 0);
            s.record_ok(us * 1000, 1_000);
        }
        s.ok_in_window = 1000;
        let l = r.type_mut(2).unwrap();
        for _ in 0..10 {
            l.record_sent(100_000, false);
        }
        for _ in 0..6 {
            l.record_ok(200_000, 100_000);
        }
        // Two of the six came after the window.
        l.ok_in_window = 4;
        l.record_rejected(Status::QueueFull);
        l.record_rejected(Status::Shutdown);
        l.record_rejected(Status::Shutdown);
        l.record_lost();
        r
    }

    #[test]
    fn percentiles_on_known_inputs() {
        let r = sample_report();
        let s = &r.types[0];
        let lat = s.latency_us().unwrap();
        // Uniform 1..=1000 µs: quantile q is ~q × 1000 µs, within 3 significant digits.
        for (k, (_, q)) in QUANTILES.iter().enumerate() {
            let want = (q * 1000.0_f64).ceil();
            assert!(
                (lat.at[k] - want).abs() <= want * 1e-3 + 1e-9,
                "q {q}: {} vs {want}",
                lat.at[k]
            );
        }
        assert!((lat.max - 1000.0).abs() <= 1.0, "{}", lat.max);
        assert!((lat.mean - 500.5).abs() < 0.5, "{}", lat.mean);
        // Service time 1 µs: slowdown = latency in µs.
        let sd = s.slowdown().unwrap();
        assert!((sd.get("p50").unwrap() - 500.0).abs() <= 0.5);
        assert!((sd.max - 1000.0).abs() <= 1.0);
        // LONG: every ok reply took twice its service time.
        let l = r.types[1].slowdown().unwrap();
        assert!((l.get("p99").unwrap() - 2.0).abs() < 0.005, "{l:?}");
        assert!((l.at[0] - 2.0).abs() < 0.005);
    }

    #[test]
    fn slowdown_is_skipped_for_zero_service_times_and_clamped_when_huge() {
        let mut t = TypeStats::new(1, "A");
        t.record_ok(5_000, 0);
        assert_eq!(t.ok, 1);
        assert!(t.slowdown().is_none());
        assert!(t.latency_us().is_some());
        t.record_ok(u64::MAX, 1);
        assert_eq!(
            t.latency.max(),
            t.latency.highest_equivalent(LATENCY_MAX_NS)
        );
    }

    #[test]
    fn accounting_and_merge() {
        let r = sample_report();
        let all = r.overall();
        assert_eq!(all.sent, 1010);
        assert_eq!(all.ok, 1006);
        assert_eq!(all.rejected_for(Status::Shutdown), 2);
        assert_eq!(all.rejected_for(Status::QueueFull), 1);
        assert_eq!(all.rejected_for(Status::Ok), 0);
        assert_eq!(all.rejected_total(), 3);
        assert_eq!(all.lost, 1);
        assert_eq!(all.late, 10);
        assert_eq!(all.latency.len(), 1006);
        assert_eq!(r.types[1].service_mean_ns(), Some(100_000.0));
        assert_eq!(all.ok_in_window, 1004);
        // Throughput: the replies received during the 2 s window.
        assert!((r.achieved_rps() - 502.0).abs() < 1e-9);
    }

    #[test]
    fn csv_header_is_fixed() {
        let mut out = Vec::new();
        write_csv_header(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "label,policy,workers,phase,load,offered_rps,achieved_rps,type_id,type,\
             service_mean_us,sent,ok,rejected_queue_full,rejected_unknown_type,\
             rejected_handler_error,rejected_timeout,rejected_shutdown,rejected_bad_request,\
             lost,late,latency_mean_us,latency_p50_us,latency_p90_us,latency_p99_us,\
             latency_p999_us,latency_p9999_us,latency_max_us,slowdown_mean,slowdown_p50,\
             slowdown_p90,slowdown_p99,slowdown_p999,slowdown_p9999,slowdown_max,adherence,\
             malformed,unexpected,valid\n"
        );
        // The rejection columns follow the wire statuses.
        for (s, col) in REJECT_REASONS.iter().zip(&CSV_COLUMNS[12..18]) {
            assert_eq!(*col, format!("rejected_{}", s.name()));
        }
        assert_eq!(REJECT_REASONS.len() + 1, Status::ALL.len());
    }

    #[test]
    fn csv_rows_match_the_header() {
        let r = sample_report();
        let mut out = Vec::new();
        r.write_csv_rows(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // The label holds a comma, so it is quoted; the rest splits cleanly.
        for l in &lines {
            let rest = l.strip_prefix("\"hb, test\",").unwrap();
            assert_eq!(rest.split(',').count(), CSV_COLUMNS.len() - 1, "{l}");
        }
        let cells: Vec<&str> = lines[1]
            .strip_prefix("\"hb, test\",")
            .unwrap()
            .split(',')
            .collect();
        let col = |name: &str| cells[CSV_COLUMNS.iter().position(|c| *c == name).unwrap() - 1];
        assert_eq!(col("type"), "LONG");
        assert_eq!(col("offered_rps"), "500.0");
        assert_eq!(col("achieved_rps"), "2.0");
        assert_eq!(col("rejected_shutdown"), "2");
        assert_eq!(col("lost"), "1");
        assert_eq!(col("service_mean_us"), "100.000");
        assert_eq!(col("valid"), "true");
        assert!(lines[2].contains(",0,ALL,"));
    }

    #[test]
    fn json_keys_are_fixed() {
        let v = json(&[sample_report()]);
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), ["runs", "schema"]);
        assert_eq!(v["schema"], JSON_SCHEMA);
        let run = &v["runs"][0];
        assert_eq!(
            keys(run),
            [
                "achieved_rps",
                "adherence",
                "label",
                "load",
                "malformed",
                "offered_rps",
                "overall",
                "phase",
                "policy",
                "types",
                "unexpected",
                "valid",
                "window_s",
                "workers"
            ]
        );
        let t = &run["types"][1];
        assert_eq!(
            keys(t),
            [
                "achieved_rps",
                "id",
                "late",
                "latency_us",
                "lost",
                "name",
                "offered_rps",
                "ok",
                "ok_in_window",
                "rejected",
                "sent",
                "service_mean_us",
                "slowdown"
            ]
        );
        assert_eq!(
            keys(&t["latency_us"]),
            ["max", "mean", "p50", "p90", "p99", "p999", "p9999"]
        );
        assert_eq!(
            keys(&t["rejected"]),
            [
                "bad_request",
                "handler_error",
                "queue_full",
                "shutdown",
                "timeout",
                "unknown_type"
            ]
        );
        assert_eq!(t["rejected"]["shutdown"], 2);
        assert_eq!(run["overall"]["name"], ALL);
        assert_eq!(run["overall"]["sent"], 1010);
        assert_eq!(keys(&run["overall"]), keys(t));
    }

    #[test]
    fn empty_stats_have_empty_cells_and_null_json() {
        let r = RunReport::new(RunInfo::default(), [(3, "X")]);
        let mut out = Vec::new();
        r.write_csv_rows(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        let cells: Vec<&str> = first.split(',').collect();
        let p99 = CSV_COLUMNS
            .iter()
            .position(|c| *c == "latency_p99_us")
            .unwrap();
        assert_eq!(cells[p99], "");
        assert_eq!(
            cells[CSV_COLUMNS.iter().position(|c| *c == "load").unwrap()],
            ""
        );
        let v = r.to_json();
        assert!(v["types"][0]["latency_us"]["p99"].is_null());
        assert!(r.table().contains(" - "));
    }

    #[test]
    fn hgrm_has_the_standard_shape() {
        let r = sample_report();
        let mut out = Vec::new();
        write_hgrm(&r.types[0].latency, 1e3, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First data line: the minimum at percentile 0.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0].parse::<f64>().unwrap(), 1.0);
        assert_eq!(first[1], "0.000000000000");
        // Last data line: percentile 1, all samples, no 1/(1-p) column.
        let footer = lines.iter().position(|l| l.starts_with("#[Mean")).unwrap();
        let last: Vec<&str> = lines[footer - 1].split_whitespace().collect();
        assert_eq!(last.len(), 3);
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        // Cumulative counts never decrease.
        let counts: Vec<u64> = lines[2..footer]
            .iter()
            .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert!(lines[footer].contains("StdDeviation"));
        assert!(lines[footer + 1].contains("Total count    =         1000"));
        assert!(lines[footer + 2].contains("SubBuckets     =         2048"));
    }

    /// Percentiles of `ok` replies leave out what the server rejected or lost; past a
    /// share of 1 % the table says so.
    #[test]
    fn a_server_that_sheds_load_is_said_to() {
        let mut r = sample_report();
        assert!(!r.table().contains("shed"), "0.4 % shed");
        let l = r.type_mut(2).unwrap();
        for _ in 0..20 {
            l.record_sent(100_000, false);
            l.record_lost();
        }
        // 3 rejected and 21 lost of 1030 sent.
        let t = r.table();
        assert!(t.contains("the server shed 2.3 % of the requests"), "{t}");
    }

    /// The table has one `reject` column; a line under the header says why, by reason
    /// (a run against a server that answers everything `bad_request` must say so).
    #[test]
    fn rejections_are_broken_down_by_reason() {
        let t = sample_report().table();
        assert!(t.contains("  rejected: queue_full 1, shutdown 2\n"), "{t}");
        let mut clean = sample_report();
        clean.type_mut(2).unwrap().rejected = [0; REJECT_REASONS.len()];
        assert!(!clean.table().contains("rejected:"));
    }

    #[test]
    fn table_is_aligned() {
        let t = sample_report().table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("hb, test  policy darc  workers 2  load 0.500"));
        // The notes under the first line (here the rejections' reasons) are not rows.
        let header = lines.iter().position(|l| l.starts_with("type ")).unwrap();
        assert!(lines[1..header].iter().all(|l| l.starts_with("  ")), "{t}");
        let widths: Vec<usize> = lines[header..].iter().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{t}");
        assert!(lines.last().unwrap().starts_with("ALL "));
    }
}
