//! runner.rs - runs a [`Plan`]: each point in turn (schedule, engine, measurement),
//! with a progress bar, a table per point, and the files under `--outdir`.
//!
//! Files written under `outdir`:
//! - `results.csv`: every point's rows ([`persephone::report`] schema), appended and
//!   flushed after each point so an interrupted sweep keeps what it measured;
//! - `results.json`: the same, structured (written at the end);
//! - `hgrm/<point>[-p<phase>]-<type>.{latency,slowdown}.hgrm`: percentile
//!   distributions (latency in µs, slowdown as a ratio);
//! - `trace-<point>.csv` with `--sample`: one line per sampled request;
//! - `timeline.csv` with `--timeline`: per point and interval of scheduled send time,
//!   sent / ok / rejected / lost and latency quantiles ([`measure::TIMELINE_HEADER`]);
//! - `checks.csv` for kv workloads: answers verified and wrong, per point, span and
//!   type ([`measure::CHECKS_HEADER`]);
//! - `command.txt`: the command line and seed, to repeat the run.
//!
//! A kv run with any wrong answer returns an error after writing everything.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use persephone::config::Wire;
use persephone::report::{self, RunReport, SLOWDOWN_SCALE};

use crate::config::{Backend, Plan, Point};
use crate::engine::{self, Live, Options};
use crate::measure::{self, Rules, VALID_ADHERENCE, WARN_ADHERENCE};
use crate::schedule::Schedule;

/// The run was stopped by a signal (see [`crate::interrupt`]): what was measured is
/// reported and written, the rest was not run.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    pub points: usize,
    /// Points run whole.
    pub done: usize,
    /// How far into its schedule the point in progress was stopped, s (`None`: it
    /// was stopped between points).
    pub stopped_s: Option<f64>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted: {} of {} run points complete",
            self.done, self.points
        )?;
        if let Some(s) = self.stopped_s {
            write!(
                f,
                "; the next was stopped {s:.2} s into its schedule (warm-up included) and \
                 is reported up to there"
            )?;
        }
        if self.done + usize::from(self.stopped_s.is_some()) < self.points {
            f.write_str("; the rest were not run")?;
        }
        Ok(())
    }
}

impl std::error::Error for Interrupted {}

/// Request types were mostly answered `unknown_type` or `bad_request`: the server is
/// not set up for the workload (the run's hint lines say how), and its latencies are
/// not the server's. The run is reported and written all the same.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "{0} request types were mostly answered unknown_type or bad_request: the server is not \
     set up for this workload (see the hints above), so these latencies are not its"
)]
pub struct Mismatched(pub usize);

/// Outputs a run may add to those of its [`Plan`].
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Write `timeline.csv` (needs `plan.outdir`) with intervals of this length.
    pub timeline: Option<Duration>,
}

/// After a run that missed its schedule: `--realtime` keeps other work from
/// delaying the sender, where it is allowed and was not used.
fn realtime_hint(plan: &Plan) -> &'static str {
    let udp = matches!(plan.backend, Backend::Udp);
    if udp && !plan.realtime && crate::sys::realtime_permitted() {
        " (--realtime would keep other work from delaying the sender)"
    } else {
        ""
    }
}

/// Runs every point of `plan`, printing a table per point to `out`. Returns the
/// reports of all points, in order.
pub fn run(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<Vec<RunReport>> {
    run_with(plan, &Extra::default(), out)
}

/// [`run`], with the outputs of `extra` too.
pub fn run_with(plan: &Plan, extra: &Extra, out: &mut dyn Write) -> anyhow::Result<Vec<RunReport>> {
    // Before the header claims it.
    if plan.realtime && !crate::sys::realtime_permitted() {
        anyhow::bail!(
            "--realtime: cannot move the threads to SCHED_FIFO; it needs root or \
             CAP_SYS_NICE"
        );
    }
    let mut files = match &plan.outdir {
        Some(dir) => Some(Outputs::create(dir)?),
        None => None,
    };
    if extra.timeline.is_some() && files.is_none() {
        anyhow::bail!("--timeline: needs an output directory (--outdir)");
    }
    let mut net = Net::open(plan)?;
    let n = plan.points.len();
    writeln!(
        out,
        "{n} run point{} against {} over {}{}{}\n",
        if n == 1 { "" } else { "s" },
        plan.server,
        match plan.backend {
            Backend::Udp => "kernel UDP",
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(_) => "DPDK",
        },
        match plan.wire {
            Wire::Native => "",
            Wire::PspMb =>
                " in Perséphone's PSP_MB format (no reply statuses: rejections are lost)",
        },
        // Whether the sender could be delayed by other work says much about adherence.
        if plan.realtime {
            ", sender and receiver real-time (SCHED_FIFO)"
        } else {
            ""
        }
    )?;
    // Asked once (it tries SCHED_FIFO on a scratch thread), for the lines below.
    let hint = realtime_hint(plan);
    let mut all = Vec::new();
    let mut wrong = 0;
    // Types mostly answered unknown_type or bad_request: a server not set up for them.
    let mut mismatched = 0;
    // Points that got no reply at all, and the first error one of them saw.
    let (mut silent, mut silent_error) = (0, None);
    let mut stopped_at = None;
    for (k, point) in plan.points.iter().enumerate() {
        if plan.stopped() {
            stopped_at = Some((k, None));
            break;
        }
        let (reports, outcome, schedule) = run_point(plan, &mut net, point, k, n)?;
        let cut = outcome.tried < outcome.scheduled;
        if cut {
            stopped_at = Some((k, Some(schedule.end_ns() as f64 / 1e9)));
            if reports.is_empty() {
                writeln!(
                    out,
                    "point {} stopped during its warm-up: nothing measured",
                    point.tag
                )?;
            }
        }
        let unix_start = unix_time_of(&outcome);
        let checks = measure::checks(&schedule, &outcome);
        let (sent, replies) = reports
            .iter()
            .map(|r| r.overall())
            .fold((0, 0), |(s, a), o| {
                (s + o.sent, a + o.ok + o.rejected_total())
            });
        if sent > 0 && replies == 0 {
            silent += 1;
            silent_error = silent_error.or_else(|| outcome.first_error.clone());
        }
        // With network errors (nothing listening: ECONNREFUSED, on the sends or the
        // receives), those, not the client's pace, are what to look at first.
        let why = if outcome.send_errors + outcome.recv_errors > 0 {
            "; the run also saw network errors (below): check those first".to_string()
        } else if let Some(max) = plan.max_concurrency {
            format!(
                ": --max-concurrency {max} held sends back while that many replies were \
                 outstanding (a cap closes the loop: raise it, or drop it for open-loop load)"
            )
        } else {
            format!(": the client, not the server, was the limit{hint}")
        };
        for r in &reports {
            write!(out, "{}", r.table())?;
            if r.adherence < VALID_ADHERENCE {
                writeln!(
                    out,
                    "INVALID: only {:.2} % of requests were sent within {:?} of schedule \
                     (< {:.0} %){why}",
                    r.adherence * 100.0,
                    plan.slack,
                    VALID_ADHERENCE * 100.0,
                )?;
            } else if r.adherence < WARN_ADHERENCE {
                writeln!(
                    out,
                    "warning: schedule adherence {:.3} % < {:.1} %: the client may be \
                     perturbing the measurement{hint}",
                    r.adherence * 100.0,
                    WARN_ADHERENCE * 100.0,
                )?;
            }
        }
        for line in reports.iter().flat_map(mismatch_hints) {
            writeln!(out, "{line}")?;
            mismatched += 1;
        }
        if let Some(spin) = outcome.spin_raised {
            writeln!(
                out,
                "sender: this machine's sleeps woke late, so the sender spun up to the last \
                 {} µs before a send (30 µs when they woke in time; --spin-us fixes it)",
                spin.as_micros(),
            )?;
        }
        for c in &checks {
            writeln!(out, "{}", c.line())?;
            wrong += c.wrong();
        }
        let saturated = engine::saturated_service_times(&schedule, plan.wire);
        if saturated > 0 {
            writeln!(
                out,
                "warning: {saturated} requests asked for more service than PSP_MB's 32-bit \
                 run_ns holds (4.29 s): each was sent asking for {} ns",
                u32::MAX
            )?;
        }
        if outcome.send_errors + outcome.recv_errors > 0 {
            writeln!(
                out,
                "warning: {} send and {} receive errors (first: {})",
                outcome.send_errors,
                outcome.recv_errors,
                outcome.first_error.as_deref().unwrap_or("?")
            )?;
        }
        if let Some(d) = outcome.socket_drops.filter(|&d| d > 0) {
            writeln!(
                out,
                "warning: {d} replies were dropped by the kernel at psp-client's own socket \
                 (its receive buffer was full: the receiver fell behind); they count as lost, \
                 but the server answered them. Raise net.core.rmem_max, run as root (the \
                 buffer is then forced), or give the client a core of its own"
            )?;
        }
        writeln!(out)?;
        if let Some(f) = files.as_mut() {
            f.point(plan, point, &reports, &schedule, &outcome)?;
            f.checks(plan, point, &checks)?;
            if let Some(step) = extra.timeline {
                f.timeline(plan, point, &schedule, &outcome, step, unix_start)?;
            }
        }
        all.extend(reports);
        if cut {
            // Stopped within this point: the rest are not run.
            break;
        }
    }
    if let Some(f) = files.as_mut() {
        f.finish(&all)?;
        writeln!(out, "results written to {}", f.dir.display())?;
    }
    if let Some((done, stopped_s)) = stopped_at {
        return Err(Interrupted {
            points: n,
            done,
            stopped_s,
        }
        .into());
    }
    if silent > 0 {
        // A server of the other wire format drops every request unanswered.
        let other = match plan.wire {
            Wire::Native => "a server with net.wire: psp_mb answers --wire psp_mb only",
            Wire::PspMb => "only a server with net.wire: psp_mb answers --wire psp_mb",
        };
        anyhow::bail!(
            "{silent} of {n} run points got no reply at all from {}{}: is the server \
             running there, and reachable? Does it speak this wire format ({other})?",
            plan.server,
            silent_error
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
    if mismatched > 0 {
        return Err(Mismatched(mismatched).into());
    }
    if wrong > 0 {
        anyhow::bail!(
            "{wrong} kv replies were wrong (status ok, payload not what the store holds): \
             check that --kv-keys and --kv-value-size match the server's kv: section"
        );
    }
    Ok(all)
}

/// Hints for rejections that say the server is not set up for this workload: most of
/// a type's replies `unknown_type` (the server does not declare it) or `bad_request`
/// (its handler cannot read these requests).
fn mismatch_hints(r: &RunReport) -> Vec<String> {
    let mut out = Vec::new();
    for t in &r.types {
        let answered = t.ok + t.rejected_total();
        let most = |n: u64| answered > 0 && 2 * n > answered;
        if most(t.rejected_for(persephone::proto::Status::UnknownType)) {
            out.push(format!(
                "hint: the server answered unknown_type to most {} requests (type {}): its \
                 config's requests: section does not declare that type",
                t.name, t.id
            ));
        }
        if most(t.rejected_for(persephone::proto::Status::BadRequest)) {
            out.push(format!(
                "hint: the server answered bad_request to most {} requests (type {}): its \
                 handler cannot read them (kv workloads need workers.handler: kv, the others \
                 spin or echo)",
                t.name, t.id
            ));
        }
    }
    out
}

/// The transport of a run, opened once and kept for all its points.
#[derive(Debug)]
pub enum Net {
    /// Kernel UDP: each point opens its own socket.
    Udp,
    /// DPDK: EAL initialised and the port connected (once per process).
    #[cfg(feature = "dpdk")]
    Dpdk(Box<persephone::net::dpdk::DpdkClient>),
}

impl Net {
    /// Opens the transport `plan.backend` names.
    pub fn open(plan: &Plan) -> anyhow::Result<Net> {
        match &plan.backend {
            Backend::Udp => Ok(Net::Udp),
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(cfg) => crate::dpdk::open(cfg).map(|c| Net::Dpdk(Box::new(c))),
        }
    }
}

/// Runs one point: builds its schedule, plays it over `net`, measures it.
pub fn run_point(
    plan: &Plan,
    net: &mut Net,
    point: &Point,
    k: usize,
    n: usize,
) -> anyhow::Result<(Vec<RunReport>, engine::Outcome, Schedule)> {
    let mut schedule = Schedule::build(&point.phases, plan.warmup, plan.arrival, plan.seed)
        .with_context(|| format!("point {}", point.tag))?;
    if let Some(spec) = &plan.kv {
        let kv = crate::kv::KvPlan::new(spec, &schedule, plan.seed)
            .map_err(|e| anyhow::anyhow!("kv workload: {e}"))
            .with_context(|| format!("point {}", point.tag))?;
        schedule.kv = Some(kv);
    }
    let opts = Options {
        timeout: plan.timeout,
        max_concurrency: plan.max_concurrency,
        spin: plan.spin,
        spin_adapt: plan.spin_auto,
        stop: plan.stop.clone(),
        epoch: k as u32 + 1,
        wire: plan.wire,
        realtime: plan.realtime,
        ..Options::new(plan.server)
    };
    let live = Live::default();
    let total = Duration::from_nanos(schedule.end_ns());
    let bar = if plan.progress {
        let b = ProgressBar::new(total.as_millis() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
            )
            .expect("static template"),
        );
        b.set_prefix(format!("point {}/{n} {}", k + 1, point.tag));
        b
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    let (mut done_at, mut said_waiting) = (None, false);
    let watch = |l: &Live| {
        let now = Instant::now();
        let sent = l.sent.load(std::sync::atomic::Ordering::Relaxed);
        let got = l.answered.load(std::sync::atomic::Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt > 0.0 {
            bar.set_message(format!(
                "sent {sent} ({:.0}/s)  replies {got} ({:.0}/s)",
                (sent - last.1) as f64 / dt,
                (got - last.2) as f64 / dt
            ));
        }
        last = (now, sent, got);
        bar.set_position((started.elapsed().as_millis() as u64).min(total.as_millis() as u64));
        // All sent, replies still missing a second on: say what the wait is (up to
        // --timeout), once, rather than sit silent.
        if l.sender_done.load(std::sync::atomic::Ordering::Acquire) && got < sent {
            let since = *done_at.get_or_insert(now);
            if !said_waiting && now.duration_since(since) >= Duration::from_secs(1) {
                said_waiting = true;
                bar.suspend(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "psp-client: point {}: all sent; waiting up to {:?} (--timeout) for \
                         the last {} replies",
                        point.tag,
                        plan.timeout,
                        sent - got
                    );
                });
            }
        }
    };
    let outcome = match net {
        Net::Udp => engine::run(&schedule, &opts, &live, watch),
        #[cfg(feature = "dpdk")]
        Net::Dpdk(client) => crate::dpdk::run(&schedule, &opts, client, &live, watch),
    }
    .with_context(|| format!("running point {} against {}", point.tag, plan.server))?;
    bar.finish_and_clear();
    let mut outcome = outcome;
    if outcome.tried < schedule.len() {
        // Stopped: what was never tried is no part of the run.
        let n = outcome.tried;
        schedule.truncate(n);
        outcome.sent_at.truncate(n);
        outcome.reply_at.truncate(n);
        outcome.status.truncate(n);
    }
    let rules = Rules {
        slack: plan.slack,
        timeout: plan.timeout,
    };
    let reports = measure::reports(&schedule, &outcome, &plan.meta, &rules);
    Ok((reports, outcome, schedule))
}

/// The wall-clock time (seconds since the Unix epoch) of time 0 of the schedule that
/// produced `o`, from the TSC now and then.
fn unix_time_of(o: &engine::Outcome) -> Option<f64> {
    let now = persephone::time::rdtsc();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let ago_ns = o.clock.cycles_to_ns(now.saturating_sub(o.start));
    Some(wall.as_secs_f64() - ago_ns / 1e9)
}

/// The files of one run.
#[derive(Debug)]
struct Outputs {
    dir: PathBuf,
    csv: BufWriter<File>,
    /// `checks.csv`, opened at the first kv point.
    checks: Option<BufWriter<File>>,
    /// `timeline.csv`, opened at the first point.
    timeline: Option<BufWriter<File>>,
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Outputs {
    fn create(dir: &Path) -> anyhow::Result<Outputs> {
        fs::create_dir_all(dir.join("hgrm"))
            .with_context(|| format!("--outdir: cannot create {}", dir.display()))?;
        let path = dir.join("results.csv");
        let mut csv = BufWriter::new(
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        report::write_csv_header(&mut csv)?;
        let cmd: Vec<String> = std::env::args().collect();
        fs::write(dir.join("command.txt"), format!("{}\n", cmd.join(" ")))?;
        Ok(Outputs {
            dir: dir.to_path_buf(),
            csv,
            checks: None,
            timeline: None,
        })
    }

    /// Appends `point`'s intervals to `timeline.csv`. `unix_start` is the wall-clock
    /// time of the schedule's time 0.
    fn timeline(
        &mut self,
        plan: &Plan,
        point: &Point,
        schedule: &Schedule,
        outcome: &engine::Outcome,
        step: Duration,
        unix_start: Option<f64>,
    ) -> anyhow::Result<()> {
        let w = match &mut self.timeline {
            Some(w) => w,
            None => {
                let path = self.dir.join("timeline.csv");
                let mut w = BufWriter::new(
                    File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                );
                writeln!(w, "{}", measure::TIMELINE_HEADER)?;
                self.timeline.insert(w)
            }
        };
        let rules = Rules {
            slack: plan.slack,
            timeout: plan.timeout,
        };
        let intervals = measure::timeline(schedule, outcome, &rules, step);
        // The intervals count from the start of the measured window (after the warm-up).
        let t0 = schedule
            .spans
            .iter()
            .find(|sp| sp.measured())
            .map_or(0, |sp| sp.start_ns);
        let unix = unix_start.map(|u| u + t0 as f64 / 1e9);
        measure::write_timeline(&point.tag, &intervals, unix, w)?;
        w.flush()?;
        Ok(())
    }

    fn checks(
        &mut self,
        plan: &Plan,
        point: &Point,
        checks: &[measure::Checks],
    ) -> anyhow::Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let w = match &mut self.checks {
            Some(w) => w,
            None => {
                let path = self.dir.join("checks.csv");
                let mut w = BufWriter::new(
                    File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                );
                writeln!(w, "{}", measure::CHECKS_HEADER)?;
                self.checks.insert(w)
            }
        };
        for c in checks {
            let phase = c.phase.map_or("warmup".to_string(), |p| p.to_string());
            for t in &c.types {
                writeln!(
                    w,
                    "{},{},{},{phase},{},{},{},{}",
                    plan.meta.label, plan.meta.policy, point.tag, t.id, t.name, t.verified, t.wrong
                )?;
            }
        }
        w.flush()?;
        Ok(())
    }

    fn point(
        &mut self,
        plan: &Plan,
        point: &Point,
        reports: &[RunReport],
        schedule: &Schedule,
        outcome: &engine::Outcome,
    ) -> anyhow::Result<()> {
        for r in reports {
            r.write_csv_rows(&mut self.csv)?;
            let mut stem = file_part(&point.tag);
            if point.phases.len() > 1 {
                stem.push_str(&format!("-p{}", r.info.phase));
            }
            let mut all = r.types.clone();
            all.push(r.overall());
            for t in &all {
                let base = format!("{stem}-{}", file_part(&t.name));
                let hgrm = self.dir.join("hgrm");
                write_file(&hgrm.join(format!("{base}.latency.hgrm")), |w| {
                    report::write_hgrm(&t.latency, 1e3, w)
                })?;
                write_file(&hgrm.join(format!("{base}.slowdown.hgrm")), |w| {
                    report::write_hgrm(&t.slowdown, SLOWDOWN_SCALE as f64, w)
                })?;
            }
        }
        self.csv.flush()?;
        if let Some(fraction) = plan.sample {
            let path = self
                .dir
                .join(format!("trace-{}.csv", file_part(&point.tag)));
            let rules = Rules {
                slack: plan.slack,
                timeout: plan.timeout,
            };
            write_file(&path, |w| {
                measure::write_trace(schedule, outcome, &rules, fraction, w)
            })?;
        }
        let cmd = self.dir.join("command.txt");
        let mut f = fs::OpenOptions::new().append(true).open(&cmd)?;
        writeln!(
            f,
            "point {}: seed {}, {} requests",
            point.tag,
            plan.seed,
            schedule.len()
        )?;
        Ok(())
    }

    fn finish(&mut self, all: &[RunReport]) -> anyhow::Result<()> {
        let path = self.dir.join("results.json");
        write_file(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report::json(all)).map_err(io::Error::other)?;
            writeln!(w)
        })?;
        Ok(())
    }
}

fn write_file(path: &Path, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    f(&mut w).with_context(|| format!("writing {}", path.display()))?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Interrupted;

    #[test]
    fn an_interruption_says_what_ran() {
        let between = Interrupted {
            points: 3,
            done: 1,
            stopped_s: None,
        };
        assert_eq!(
            between.to_string(),
            "interrupted: 1 of 3 run points complete; the rest were not run"
        );
        let within_last = Interrupted {
            points: 2,
            done: 1,
            stopped_s: Some(1.5),
        };
        assert_eq!(
            within_last.to_string(),
            "interrupted: 1 of 2 run points complete; the next was stopped 1.50 s into its \
             schedule (warm-up included) and is reported up to there"
        );
    }
}
