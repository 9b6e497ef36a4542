//! measure.rs - turns an engine [`Outcome`] into [`RunReport`]s, one per measured phase.
//!
//! Per request, with `target` its scheduled send time:
//! - never sent (the kernel refused it): late and lost;
//! - sent more than `slack` after `target`: late (still measured);
//! - no reply, or a reply more than `timeout` after `target`: lost;
//! - otherwise its latency is `reply - target` (from the *scheduled* time, so a slow
//!   sender or a full concurrency window shows as latency, not as missing samples); an
//!   `ok` reply adds a latency and slowdown sample, any other status a rejection;
//! - an `ok` reply whose payload failed the kv check is *wrong*: a `handler_error`
//!   rejection, and counted in [`checks`].
//!
//! Warm-up requests are sent and matched but left out (except from [`checks`]: a wrong
//! answer is wrong whenever it comes).

use std::io::{self, Write};
use std::time::Duration;

use persephone::proto::Status;
use persephone::report::{RunInfo, RunReport};
use persephone::time::Cycles;

use crate::engine::{Outcome, INDEX_BITS};
use crate::schedule::Schedule;

/// Adherence under which a warning is printed.
pub const WARN_ADHERENCE: f64 = 0.999;
/// Adherence under which the run is marked invalid.
pub const VALID_ADHERENCE: f64 = 0.95;

/// Metadata copied into every report.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub label: String,
    pub policy: String,
    pub workers: Option<usize>,
}

/// Judging rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A send more than this after its scheduled time is late.
    pub slack: Duration,
    /// A reply later than this after the scheduled time does not count (lost).
    pub timeout: Duration,
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Answered with this status after `latency_ns`.
    Replied { status: Status, latency_ns: u64 },
    /// Answered `ok` after `latency_ns`, but with a wrong payload (kv workloads).
    Wrong { latency_ns: u64 },
    /// No reply within the timeout.
    Lost,
    /// Never handed to the network.
    Unsent,
}

/// Judges request `i`: its fate and whether its send was late.
pub fn judge(s: &Schedule, o: &Outcome, rules: &Rules, i: usize) -> (Fate, bool, u64) {
    let target = o.target(s.at_ns[i]);
    let slack_c = o.clock.duration_to_cycles(rules.slack);
    if o.sent_at[i] == 0 {
        return (Fate::Unsent, true, 0);
    }
    // A send is stamped with an upper bound of when it left (see the engine's
    // `stamp_sends`); its reply bounds it better when it came first.
    let sent = match o.reply_status(i) {
        Some(_) => o.sent_at[i].min(o.reply_at[i]),
        None => o.sent_at[i],
    };
    let delay_c = sent.saturating_sub(target);
    let late = delay_c > slack_c;
    let delay_ns = o.clock.cycles_to_ns(delay_c) as u64;
    let fate = match o.reply_status(i) {
        Some(status) => {
            let latency_ns = o.clock.cycles_to_ns(o.reply_at[i].saturating_sub(target)) as u64;
            if latency_ns > rules.timeout.as_nanos() as u64 {
                Fate::Lost
            } else if o.wrong(i) {
                Fate::Wrong { latency_ns }
            } else {
                Fate::Replied { status, latency_ns }
            }
        }
        None => Fate::Lost,
    };
    (fate, late, delay_ns)
}

/// One report per measured phase of the schedule. Run-level counters (malformed and
/// unexpected replies) go to the last phase's report.
pub fn reports(s: &Schedule, o: &Outcome, meta: &Meta, rules: &Rules) -> Vec<RunReport> {
    let mut out = Vec::new();
    // Per report: its window in cycles, and its row of each schedule type.
    let mut windows: Vec<(Cycles, Cycles, Vec<usize>)> = Vec::new();
    for span in s.spans.iter().filter(|sp| sp.measured()) {
        // Only the types this phase offers.
        let present: Vec<usize> = (0..s.types.len())
            .filter(|&k| span.shares.get(k).copied().unwrap_or(0.0) > 0.0)
            .collect();
        let mut r = RunReport::new(
            RunInfo {
                label: meta.label.clone(),
                policy: meta.policy.clone(),
                workers: meta.workers,
                phase: span.phase.unwrap_or(0),
                load: span.load,
                offered_rps: span.rate,
                window_s: span.seconds(),
            },
            present
                .iter()
                .map(|&k| (s.types[k].id, span.names[k].as_str())),
        );
        r.shares = present.iter().map(|&k| span.shares[k]).collect();
        // Schedule type index -> report row.
        let mut row = vec![usize::MAX; s.types.len()];
        for (j, &k) in present.iter().enumerate() {
            row[k] = j;
        }
        let (mut late, mut sent) = (0u64, 0u64);
        for i in span.first..span.end {
            let Some(t) = r.types.get_mut(row[s.ty[i] as usize]) else {
                continue;
            };
            let service = s.service_ns[i];
            let (fate, is_late, _) = judge(s, o, rules, i);
            t.record_sent(service, is_late);
            sent += 1;
            late += is_late as u64;
            match fate {
                Fate::Replied {
                    status: Status::Ok,
                    latency_ns,
                } => t.record_ok(latency_ns, service),
                Fate::Replied { status, .. } => t.record_rejected(status),
                Fate::Wrong { .. } => t.record_rejected(Status::HandlerError),
                Fate::Lost | Fate::Unsent => t.record_lost(),
            }
        }
        r.adherence = if sent == 0 {
            1.0
        } else {
            1.0 - late as f64 / sent as f64
        };
        r.valid = r.adherence >= VALID_ADHERENCE;
        out.push(r);
        windows.push((o.target(span.start_ns), o.target(span.end_ns), row));
    }
    // Throughput: the `ok` replies received during each window, whichever request
    // they answer (the warm-up's and earlier phases' included), and however late: one
    // past `--timeout` is lost as a latency sample, but the server did that work then.
    for i in 0..s.len() {
        if o.sent_at[i] == 0 || o.reply_status(i) != Some(Status::Ok) || o.wrong(i) {
            continue;
        }
        let at = o.reply_at[i];
        let w = windows.partition_point(|&(_, end, _)| end < at);
        if let Some((start, _, row)) = windows.get(w) {
            if at >= *start {
                if let Some(t) = out[w].types.get_mut(row[s.ty[i] as usize]) {
                    t.ok_in_window += 1;
                }
            }
        }
    }
    if let Some(last) = out.last_mut() {
        last.malformed = o.malformed;
        last.unexpected = o.unexpected;
    }
    out
}

/// Checked answers of one request type in one span of a kv run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeChecks {
    pub id: u32,
    pub name: String,
    /// `ok` replies whose payload was right.
    pub verified: u64,
    /// `ok` replies whose payload was wrong.
    pub wrong: u64,
}

/// Checked answers of one span (the warm-up, `phase: None`, or a measured phase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    pub phase: Option<usize>,
    pub types: Vec<TypeChecks>,
}

impl Checks {
    /// Wrong answers over all types.
    pub fn wrong(&self) -> u64 {
        self.types.iter().map(|t| t.wrong).sum()
    }

    /// One line: `checked answers (phase 0): GET 1234 verified, 0 wrong; SCAN ...`.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .types
            .iter()
            .map(|t| format!("{} {} verified, {} wrong", t.name, t.verified, t.wrong))
            .collect();
        let span = match self.phase {
            None => "warm-up".to_string(),
            Some(p) => format!("phase {p}"),
        };
        format!("checked answers ({span}): {}", parts.join("; "))
    }
}

/// Header of `checks.csv`.
pub const CHECKS_HEADER: &str = "label,policy,point,phase,type_id,type,verified,wrong";

/// Checked answers per span and type; empty unless the schedule is a kv one.
pub fn checks(s: &Schedule, o: &Outcome) -> Vec<Checks> {
    if s.kv.is_none() {
        return Vec::new();
    }
    s.spans
        .iter()
        .map(|span| {
            let mut types: Vec<TypeChecks> = s
                .types
                .iter()
                .zip(&span.names)
                .map(|(t, name)| TypeChecks {
                    id: t.id,
                    name: name.clone(),
                    verified: 0,
                    wrong: 0,
                })
                .collect();
            for i in span.first..span.end {
                if o.reply_status(i) != Some(Status::Ok) {
                    continue;
                }
                let t = &mut types[s.ty[i] as usize];
                if o.wrong(i) {
                    t.wrong += 1;
                } else {
                    t.verified += 1;
                }
            }
            types.retain(|t| t.verified + t.wrong > 0);
            Checks {
                phase: span.phase,
                types,
            }
        })
        .collect()
}

/// Header of the per-request trace written by [`write_trace`].
pub const TRACE_HEADER: &str =
    "phase,id,type_id,type,service_ns,scheduled_ns,send_delay_ns,latency_ns,status";

/// Writes a per-request trace: every request of the measured phases whose index is
/// picked by `fraction` (evenly: 0.01 keeps one request in a hundred). Lost requests
/// have an empty latency and status `lost` (or `unsent`).
pub fn write_trace(
    s: &Schedule,
    o: &Outcome,
    rules: &Rules,
    fraction: f64,
    w: &mut dyn Write,
) -> io::Result<()> {
    writeln!(w, "{TRACE_HEADER}")?;
    let fraction = fraction.clamp(0.0, 1.0);
    for span in s.spans.iter().filter(|sp| sp.measured()) {
        for i in span.first..span.end {
            // Keep request i when the running count of kept requests steps up.
            if ((i + 1) as f64 * fraction).floor() <= (i as f64 * fraction).floor() {
                continue;
            }
            let ty = &s.types[s.ty[i] as usize];
            let (fate, _, delay) = judge(s, o, rules, i);
            let (lat, st) = match fate {
                Fate::Replied { status, latency_ns } => (latency_ns.to_string(), status.name()),
                Fate::Wrong { latency_ns } => (latency_ns.to_string(), "wrong"),
                Fate::Lost => (String::new(), "lost"),
                Fate::Unsent => (String::new(), "unsent"),
            };
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{}",
                span.phase.unwrap_or(0),
                i as u64 & ((1 << INDEX_BITS) - 1),
                ty.id,
                ty.name,
                s.service_ns[i],
                s.at_ns[i],
                delay,
                lat,
                st
            )?;
        }
    }
    Ok(())
}

/// One interval of a run's timeline: the measured requests whose *scheduled* send time
/// falls in `[start_ns, end_ns)` (from the start of the measured window), and what
/// became of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Phase running at `start_ns`.
    pub phase: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Requests scheduled in the interval (sent or not): `ok + rejected + lost`.
    pub sent: u64,
    pub ok: u64,
    /// Answered with any other status (a wrong kv answer counts as `handler_error`).
    pub rejected: u64,
    /// No reply within the timeout, or never handed to the network.
    pub lost: u64,
    /// Sent later than the slack.
    pub late: u64,
    /// Latency of the `ok` replies, ns: p50, p99, p99.9, max (`None`: no `ok`).
    pub latency: Option<[u64; 4]>,
    /// Latency of the rejections, ns: p50, max (`None`: no rejection).
    pub rejected_latency: Option<[u64; 2]>,
}

/// Header of `timeline.csv`; [`write_timeline`] writes one row per interval.
pub const TIMELINE_HEADER: &str = "point,phase,start_s,end_s,unix_s,sent,ok,rejected,lost,late,\
ok_rps,rejected_rps,latency_p50_us,latency_p99_us,latency_p999_us,latency_max_us,\
rejected_latency_p50_us,rejected_latency_max_us";

/// The nearest-rank quantile `q` of sorted `v` (not empty).
fn rank(v: &[u64], q: f64) -> u64 {
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

/// Cuts the measured window of a run into intervals of `step` by scheduled send time
/// and judges every measured request into its interval ([`judge`], the rules of
/// [`reports`]), so that the intervals of a run add up to its reports' totals. The
/// last interval ends at the end of the window (it may be shorter than `step`);
/// intervals without requests are kept, with zero counts. Quantiles are exact
/// (nearest rank), not from a histogram.
pub fn timeline(s: &Schedule, o: &Outcome, rules: &Rules, step: Duration) -> Vec<Interval> {
    let step = (step.as_nanos() as u64).max(1);
    let mut spans = s.spans.iter().filter(|sp| sp.measured()).peekable();
    let Some(t0) = spans.peek().map(|sp| sp.start_ns) else {
        return Vec::new();
    };
    let measured: Vec<_> = spans.collect();
    let end = measured.last().map_or(t0, |sp| sp.end_ns);
    let n = (end - t0).div_ceil(step) as usize;
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<Interval> = (0..n)
        .map(|k| {
            let start = t0 + k as u64 * step;
            Interval {
                phase: measured
                    .iter()
                    .rev()
                    .find(|sp| sp.start_ns <= start)
                    .and_then(|sp| sp.phase)
                    .unwrap_or(0),
                start_ns: start - t0,
                end_ns: (start + step).min(end) - t0,
                sent: 0,
                ok: 0,
                rejected: 0,
                lost: 0,
                late: 0,
                latency: None,
                rejected_latency: None,
            }
        })
        .collect();
    // Requests are in time order, so each interval's are contiguous: collect one
    // interval's latencies at a time.
    let (mut ok_lat, mut rej_lat) = (Vec::new(), Vec::new());
    let mut current = usize::MAX;
    let flush = |iv: Option<&mut Interval>, ok: &mut Vec<u64>, rej: &mut Vec<u64>| {
        if let Some(iv) = iv {
            ok.sort_unstable();
            rej.sort_unstable();
            if !ok.is_empty() {
                iv.latency = Some([
                    rank(ok, 0.5),
                    rank(ok, 0.99),
                    rank(ok, 0.999),
                    rank(ok, 1.0),
                ]);
            }
            if !rej.is_empty() {
                iv.rejected_latency = Some([rank(rej, 0.5), rank(rej, 1.0)]);
            }
        }
        ok.clear();
        rej.clear();
    };
    for span in &measured {
        for i in span.first..span.end {
            let k = (((s.at_ns[i].max(t0) - t0) / step) as usize).min(n - 1);
            if k != current {
                flush(out.get_mut(current), &mut ok_lat, &mut rej_lat);
                current = k;
            }
            let iv = &mut out[k];
            let (fate, late, _) = judge(s, o, rules, i);
            iv.sent += 1;
            iv.late += late as u64;
            match fate {
                Fate::Replied {
                    status: Status::Ok,
                    latency_ns,
                } => {
                    iv.ok += 1;
                    ok_lat.push(latency_ns);
                }
                Fate::Replied { latency_ns, .. } | Fate::Wrong { latency_ns } => {
                    iv.rejected += 1;
                    rej_lat.push(latency_ns);
                }
                Fate::Lost | Fate::Unsent => iv.lost += 1,
            }
        }
    }
    flush(out.get_mut(current), &mut ok_lat, &mut rej_lat);
    out
}

/// Writes `intervals` as rows of `timeline.csv` (without the header) for run point
/// `point`. `unix_start_s` is the wall-clock time of the start of the measured window
/// (seconds since the Unix epoch), to line the rows up with samples taken outside the
/// client (the server's memory, say); `None` leaves the column empty.
pub fn write_timeline(
    point: &str,
    intervals: &[Interval],
    unix_start_s: Option<f64>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let us = |ns: u64| format!("{:.1}", ns as f64 / 1e3);
    for iv in intervals {
        let secs = (iv.end_ns - iv.start_ns) as f64 / 1e9;
        let rps = |n: u64| {
            if secs > 0.0 {
                format!("{:.0}", n as f64 / secs)
            } else {
                String::new()
            }
        };
        let lat = match iv.latency {
            Some(l) => l.map(us).join(","),
            None => ",,,".to_string(),
        };
        let rej = match iv.rejected_latency {
            Some(l) => l.map(us).join(","),
            None => ",".to_string(),
        };
        let unix = unix_start_s.map_or(String::new(), |u| {
            format!("{:.6}", u + iv.start_ns as f64 / 1e9)
        });
        writeln!(
            w,
            "{point},{},{:.3},{:.3},{unix},{},{},{},{},{},{},{},{lat},{rej}",
            iv.phase,
            iv.start_ns as f64 / 1e9,
            iv.end_ns as f64 / 1e9,
            iv.sent,
            iv.ok,
            iv.rejected,
            iv.lost,
            iv.late,
            rps(iv.ok),
            rps(iv.rejected),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Arrival, Phase};
    use persephone::time::Clock;
    use persephone::workload::Workload;

    /// A 4-request schedule (uniform, 1 ms apart) and a hand-made outcome on a 1 GHz
    /// clock, so cycles are nanoseconds.
    fn fixture() -> (Schedule, Outcome) {
        let s = Schedule::build(
            &[Phase {
                workload: Workload::preset("high-bimodal").unwrap(),
                rate: 1000.0,
                load: Some(0.1),
                duration: Duration::from_millis(5),
            }],
            Duration::ZERO,
            Arrival::Uniform,
            1,
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        let start = 1_000_000;
        let t = |i: usize| start + s.at_ns[i];
        let o = Outcome {
            malformed: 3,
            unexpected: 2,
            send_errors: 1,
            ..outcome(
                start,
                // 0: on time; 1: 50 us late; 2: on time; 3: never sent.
                vec![t(0) + 2_000, t(1) + 50_000, t(2), 0],
                // 0: ok after 30 us; 1: queue full; 2: reply after the 1 ms timeout.
                vec![t(0) + 30_000, t(1) + 60_000, t(2) + 2_000_000, 0],
                vec![1, 1 + Status::QueueFull as u8, 1, 0],
            )
        };
        (s, o)
    }

    /// An outcome on a nanosecond clock started at `start`, with no errors.
    fn outcome(start: u64, sent_at: Vec<u64>, reply_at: Vec<u64>, status: Vec<u8>) -> Outcome {
        Outcome {
            tried: sent_at.len(),
            scheduled: sent_at.len(),
            clock: Clock::NANOS,
            start,
            sent_at,
            reply_at,
            status,
            malformed: 0,
            unexpected: 0,
            send_errors: 0,
            recv_errors: 0,
            socket_drops: None,
            first_error: None,
            spin_raised: None,
        }
    }

    const RULES: Rules = Rules {
        slack: Duration::from_micros(10),
        timeout: Duration::from_millis(1),
    };

    #[test]
    fn every_request_is_accounted_for() {
        let (s, o) = fixture();
        let r = &reports(&s, &o, &Meta::default(), &RULES)[0];
        let all = r.overall();
        assert_eq!(all.sent, 4);
        assert_eq!(all.ok, 1);
        assert_eq!(all.rejected_for(Status::QueueFull), 1);
        assert_eq!(all.lost, 2);
        assert_eq!(all.ok + all.rejected_total() + all.lost, all.sent);
        // Late: the 50 us one and the unsent one.
        assert_eq!(all.late, 2);
        assert_eq!(r.adherence, 0.5);
        assert!(!r.valid);
        assert_eq!((r.malformed, r.unexpected), (3, 2));
        // Latency from the scheduled time (30 us), not from the actual send (28 us).
        let lat = all.latency_us().unwrap();
        assert!((lat.max - 30.0).abs() < 0.05, "{lat:?}");
        assert_eq!(r.info.load, Some(0.1));
        assert_eq!(r.info.offered_rps, 1000.0);
    }

    /// `achieved_rps` is throughput: the replies received during the window. One that
    /// comes after it is a latency sample but not the window's throughput, so a server
    /// past saturation, answering its backlog late, does not look as if it kept up.
    #[test]
    fn achieved_counts_the_replies_received_during_the_window() {
        let (s, mut o) = fixture();
        let t = |i: usize| o.start + s.at_ns[i];
        // 3 (scheduled at 4 ms): sent on time, answered ok 1.5 ms later, after the
        // 5 ms window.
        o.sent_at[3] = t(3);
        o.reply_at[3] = t(3) + 1_500_000;
        o.status[3] = 1;
        let rules = Rules {
            timeout: Duration::from_millis(3),
            ..RULES
        };
        let r = &reports(&s, &o, &Meta::default(), &rules)[0];
        assert_eq!(r.info.window_s, 0.005);
        let all = r.overall();
        // 0, 2 (at 5 ms, the window's last instant) and 3 are ok; 3 came after it.
        assert_eq!((all.ok, all.ok_in_window), (3, 2));
        assert_eq!(all.latency.len(), 3, "all three are latency samples");
        assert!(
            (r.achieved_rps() - 400.0).abs() < 1e-6,
            "{}",
            r.achieved_rps()
        );
    }

    /// An `ok` reply past the timeout is lost as a latency sample, but received during
    /// the window it is the window's throughput: past saturation, with the queueing
    /// delay over the timeout, `achieved_rps` still says what the server serves.
    #[test]
    fn achieved_counts_ok_replies_past_the_timeout() {
        let (s, o) = fixture();
        let r = &reports(&s, &o, &Meta::default(), &RULES)[0];
        let all = r.overall();
        // 2's ok reply, 2 ms after its send at 2 ms, is past the 1 ms timeout.
        assert_eq!((all.ok, all.lost), (1, 2));
        assert_eq!(all.ok_in_window, 2, "0's reply and 2's late one");
        assert!(
            (r.achieved_rps() - 400.0).abs() < 1e-6,
            "{}",
            r.achieved_rps()
        );
    }

    /// A send stamped after its reply came (the upper bound a batch's later datagrams
    /// get) left by the reply: its delay is bounded by the reply, so latency, from the
    /// scheduled time, is never below it.
    #[test]
    fn a_send_is_no_later_than_its_reply() {
        let (s, mut o) = fixture();
        let t = o.start + s.at_ns[0];
        o.sent_at[0] = t + 40_000;
        o.reply_at[0] = t + 30_000;
        let (fate, late, delay) = judge(&s, &o, &RULES, 0);
        assert_eq!(delay, 30_000);
        assert!(late, "30 us past the 10 us slack");
        assert_eq!(
            fate,
            Fate::Replied {
                status: Status::Ok,
                latency_ns: 30_000
            }
        );
    }

    /// A warm-up request's reply received during the window is the window's
    /// throughput too (the server did that work then), though not its latency sample.
    #[test]
    fn achieved_counts_warm_up_replies_received_during_the_window() {
        let s = Schedule::build(
            &[Phase {
                workload: Workload::preset("high-bimodal").unwrap(),
                rate: 1000.0,
                load: None,
                duration: Duration::from_millis(5),
            }],
            Duration::from_millis(3),
            Arrival::Uniform,
            1,
        )
        .unwrap();
        let warm = &s.spans[0];
        let window = &s.spans[1];
        assert!(!warm.measured() && window.measured() && warm.end > warm.first);
        let n = s.len();
        let start = 1_000_000;
        let mut o = outcome(start, vec![0; n], vec![0; n], vec![0; n]);
        // The last warm-up request, answered ok 1 ms into the measured window.
        let i = warm.end - 1;
        o.sent_at[i] = start + s.at_ns[i];
        o.reply_at[i] = start + window.start_ns + 1_000_000;
        o.status[i] = 1;
        let rules = Rules {
            timeout: Duration::from_secs(1),
            ..RULES
        };
        let r = &reports(&s, &o, &Meta::default(), &rules)[0];
        let all = r.overall();
        assert_eq!((all.ok, all.ok_in_window), (0, 1));
        assert!(
            (r.achieved_rps() - 200.0).abs() < 1e-6,
            "{}",
            r.achieved_rps()
        );
    }

    #[test]
    fn wrong_answers_are_handler_errors_not_samples() {
        let (s, mut o) = fixture();
        o.status[0] |= crate::engine::WRONG;
        assert_eq!(o.reply_status(0), Some(Status::Ok));
        assert!(o.wrong(0) && !o.wrong(1));
        assert!(matches!(judge(&s, &o, &RULES, 0).0, Fate::Wrong { .. }));
        let all = reports(&s, &o, &Meta::default(), &RULES)[0].overall();
        assert_eq!(all.ok, 0);
        assert_eq!(all.rejected_for(Status::HandlerError), 1);
        assert_eq!(all.ok + all.rejected_total() + all.lost, all.sent);
        let mut out = Vec::new();
        write_trace(&s, &o, &RULES, 1.0, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",wrong"));
        // Without a kv plan there is nothing to check.
        assert!(checks(&s, &o).is_empty());
    }

    #[test]
    fn the_trace_lists_every_fate() {
        let (s, o) = fixture();
        let mut out = Vec::new();
        write_trace(&s, &o, &RULES, 1.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], TRACE_HEADER);
        assert_eq!(lines.len(), 5);
        assert!(lines[1].ends_with(",2000,30000,ok"), "{}", lines[1]);
        assert!(
            lines[2].ends_with(",50000,60000,queue_full"),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with(",0,,lost"), "{}", lines[3]);
        assert!(lines[4].ends_with(",0,,unsent"), "{}", lines[4]);
        let mut out = Vec::new();
        write_trace(&s, &o, &RULES, 0.5, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);
    }
    #[test]
    fn the_timeline_buckets_by_scheduled_time() {
        // Requests at 1, 2, 3 and 4 ms of a 5 ms window.
        let (s, o) = fixture();
        let tl = timeline(&s, &o, &RULES, Duration::from_millis(2));
        assert_eq!(tl.len(), 3);
        let spans: Vec<_> = tl.iter().map(|iv| (iv.start_ns, iv.end_ns)).collect();
        assert_eq!(
            spans,
            [
                (0, 2_000_000),
                (2_000_000, 4_000_000),
                (4_000_000, 5_000_000)
            ]
        );
        let counts: Vec<_> = tl
            .iter()
            .map(|iv| (iv.sent, iv.ok, iv.rejected, iv.lost, iv.late))
            .collect();
        // 0: ok; 1: queue_full (and late); 2: reply after the timeout, lost; 3: unsent.
        assert_eq!(counts, [(1, 1, 0, 0, 0), (2, 0, 1, 1, 1), (1, 0, 0, 1, 1)]);
        assert_eq!(tl[0].latency, Some([30_000; 4]));
        assert_eq!(tl[0].rejected_latency, None);
        assert_eq!(tl[1].latency, None);
        // The rejection's latency, from the scheduled time.
        assert_eq!(tl[1].rejected_latency, Some([60_000; 2]));
        assert!(tl.iter().all(|iv| iv.phase == 0));
    }

    #[test]
    fn empty_intervals_are_kept() {
        let (s, o) = fixture();
        let tl = timeline(&s, &o, &RULES, Duration::from_micros(500));
        assert_eq!(tl.len(), 10);
        let sent: Vec<u64> = tl.iter().map(|iv| iv.sent).collect();
        assert_eq!(sent, [0, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
        assert!(tl[0].latency.is_none() && tl[0].rejected_latency.is_none());
        let mut out = Vec::new();
        write_timeline("p", &tl, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let cells = TIMELINE_HEADER.split(',').count();
        for line in text.lines() {
            assert_eq!(line.split(',').count(), cells, "{line}");
        }
        let first: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(&first[..6], ["p", "0", "0.000", "0.001", "", "0"]);
        assert_eq!(first[10], "0", "ok_rps of an empty interval");
        assert!(first[12..].iter().all(|c| c.is_empty()), "{first:?}");
        let third: Vec<&str> = text.lines().nth(2).unwrap().split(',').collect();
        assert_eq!(third[10], "2000", "one ok in 0.5 ms");
        assert_eq!(third[12], "30.0");
        // Wall-clock times, when known.
        let mut out = Vec::new();
        write_timeline("p", &tl[1..2], Some(100.0), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(",100.000500,"));
    }

    /// Every measured request lands in exactly one interval: over a run with a warm-up
    /// and phases of different rates, the intervals add up to the reports, whatever the
    /// step (even one that does not divide the phases).
    #[test]
    fn the_timeline_accounts_every_request_once() {
        let w = Workload::preset("high-bimodal").unwrap();
        let phase = |rate: f64, ms: u64| Phase {
            workload: w.clone(),
            rate,
            load: None,
            duration: Duration::from_millis(ms),
        };
        let s = Schedule::build(
            &[
                phase(20_000.0, 50),
                phase(80_000.0, 100),
                phase(20_000.0, 50),
            ],
            Duration::from_millis(20),
            Arrival::Exponential,
            7,
        )
        .unwrap();
        let n = s.len();
        let start = 1_000_000;
        // A mix of fates, picked by index.
        let (mut sent_at, mut reply_at, mut status) = (vec![0; n], vec![0; n], vec![0u8; n]);
        for i in 0..n {
            let t = start + s.at_ns[i];
            if i % 97 == 0 {
                continue; // unsent
            }
            sent_at[i] = t + (i as u64 % 5) * 5_000;
            match i % 7 {
                0 => {} // no reply
                1 => {
                    reply_at[i] = t + 3_000;
                    status[i] = 1 + Status::QueueFull as u8;
                }
                2 => {
                    reply_at[i] = t + 5_000_000; // after the timeout
                    status[i] = 1;
                }
                _ => {
                    reply_at[i] = t + 10_000 + (i as u64 % 1000) * 100;
                    status[i] = 1;
                }
            }
        }
        let o = outcome(start, sent_at, reply_at, status);
        let reports = reports(&s, &o, &Meta::default(), &RULES);
        assert_eq!(reports.len(), 3);
        let measured: usize = s
            .spans
            .iter()
            .filter(|sp| sp.measured())
            .map(|sp| sp.end - sp.first)
            .sum();
        for step in [
            Duration::from_millis(10),
            Duration::from_micros(3_333),
            Duration::from_secs(1),
        ] {
            let tl = timeline(&s, &o, &RULES, step);
            let sum = |f: fn(&Interval) -> u64| tl.iter().map(f).sum::<u64>();
            let (sent, ok, rejected, lost, late) = (
                sum(|iv| iv.sent),
                sum(|iv| iv.ok),
                sum(|iv| iv.rejected),
                sum(|iv| iv.lost),
                sum(|iv| iv.late),
            );
            assert_eq!(sent as usize, measured, "{step:?}");
            assert_eq!(ok + rejected + lost, sent);
            for iv in &tl {
                assert_eq!(iv.ok + iv.rejected + iv.lost, iv.sent);
                assert!(iv.start_ns < iv.end_ns);
            }
            // Back to back, over the whole measured window (200 ms).
            assert_eq!(tl[0].start_ns, 0);
            assert_eq!(tl.last().unwrap().end_ns, 200_000_000);
            assert!(tl.windows(2).all(|p| p[0].end_ns == p[1].start_ns));
            let tot = |f: fn(&persephone::report::TypeStats) -> u64| {
                reports.iter().map(|r| f(&r.overall())).sum::<u64>()
            };
            assert_eq!(sent, tot(|t| t.sent));
            assert_eq!(ok, tot(|t| t.ok));
            assert_eq!(rejected, tot(|t| t.rejected_total()));
            assert_eq!(lost, tot(|t| t.lost));
            assert_eq!(late, tot(|t| t.late));
            // Intervals within a phase carry its number.
            if step == Duration::from_millis(10) {
                let phases: Vec<usize> = tl.iter().map(|iv| iv.phase).collect();
                assert_eq!(&phases[..5], [0; 5]);
                assert_eq!(&phases[5..15], [1; 10]);
                assert_eq!(&phases[15..], [2; 5]);
                // The middle phase is 4x the rate of the others.
                let mid = tl[5..15].iter().map(|iv| iv.sent).sum::<u64>();
                let edges = tl[..5]
                    .iter()
                    .chain(&tl[15..])
                    .map(|iv| iv.sent)
                    .sum::<u64>();
                assert!(mid > 3 * edges, "{mid} vs {edges}");
            }
        }
    }
}
