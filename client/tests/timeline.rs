//! `--timeline` end to end: a real run against the daemon on loopback (a half-load phase,
//! then an overload of a 4-deep queue), and `timeline.csv` must account every request
//! exactly once: per phase, its intervals add up to the phase's row of `results.csv`.
//! Nothing here is timed; the run's own end is the only synchronisation.

use persephone::config::Config;
use persephone::App;
use psp_client::config::RunArgs;
use psp_client::measure::TIMELINE_HEADER;
use psp_client::plot::Table;
use psp_client::runner::{self, Extra};

#[test]
fn the_timeline_accounts_every_request_once() {
    // One worker, 2 ms requests (500/s), at most 4 waiting: the second phase offers
    // four times what it can serve, so its queue is full most of the time.
    let server = App::new(
        Config::parse(
            "pin: false
dispatcher: { idle: park }
workers: { number: 1, handler: spin, idle: park }
policy: { kind: cfcfs }
net: { backend: udp, bind: 127.0.0.1:0 }
queues: { capacity: 4 }
requests: [{ id: 1, name: WORK }]
stats: { interval_ms: 0 }
",
        )
        .unwrap(),
    )
    .start()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("client.yml");
    std::fs::write(
        &cfg,
        "workers: 1
warmup: 50ms
timeout: 2s
timeline: 50ms
workload:
  name: work
  types: [{ id: 1, name: WORK, ratio: 1, service: { kind: constant, ns: 2000000 } }]
phases:
  - { load: 0.5, duration: 200ms }
  - { load: 4, duration: 300ms }
",
    )
    .unwrap();
    let args = RunArgs {
        config_path: Some(cfg),
        port: Some(server.local_addr().port()),
        outdir: Some(dir.path().join("out")),
        quiet: true,
        ..RunArgs::default()
    };
    let plan = args.plan().unwrap();
    let extra = Extra {
        timeline: args.timeline().unwrap(),
    };
    assert_eq!(extra.timeline, Some(std::time::Duration::from_millis(50)));
    let mut out = Vec::new();
    let reports = runner::run_with(&plan, &extra, &mut out);
    let stats = server.shutdown();
    let reports = reports.unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(stats.answered(), stats.received);

    let text = std::fs::read_to_string(dir.path().join("out/timeline.csv")).unwrap();
    assert_eq!(text.lines().next().unwrap(), TIMELINE_HEADER);
    let t = Table::parse(&text).unwrap();
    // 500 ms in 50 ms intervals, back to back.
    assert_eq!(t.rows.len(), 10);
    let col = |n: &str| t.col(n).unwrap();
    let num = |r: &Vec<String>, n: &str| r[col(n)].parse::<u64>().unwrap();
    for (k, r) in t.rows.iter().enumerate() {
        let start: f64 = r[col("start_s")].parse().unwrap();
        assert!((start - k as f64 * 0.05).abs() < 1e-9, "{start}");
        assert_eq!(r[col("phase")], if k < 4 { "0" } else { "1" });
        assert_eq!(
            num(r, "ok") + num(r, "rejected") + num(r, "lost"),
            num(r, "sent")
        );
        assert!(r[col("unix_s")].parse::<f64>().unwrap() > 1e9);
    }
    for r in &reports {
        let all = r.overall();
        let phase = r.info.phase.to_string();
        let rows: Vec<_> = t.rows.iter().filter(|x| x[col("phase")] == phase).collect();
        let sum = |n: &str| rows.iter().map(|x| num(x, n)).sum::<u64>();
        assert_eq!(sum("sent"), all.sent, "phase {phase}");
        assert_eq!(sum("ok"), all.ok, "phase {phase}");
        assert_eq!(sum("rejected"), all.rejected_total(), "phase {phase}");
        assert_eq!(sum("lost"), all.lost, "phase {phase}");
        assert_eq!(sum("late"), all.late, "phase {phase}");
    }
    // The overload was answered `queue_full`, and those answers are in the timeline.
    let rejected: u64 = reports[1].overall().rejected_total();
    assert!(rejected > 0, "no rejections at 4x the capacity");

    // plot-timeline draws it, and refuses a phase the file does not have or a
    // recovery factor below 1.
    let timeline = dir.path().join("out/timeline.csv");
    let svg = dir.path().join("t.svg");
    let plot = |phase, factor| {
        psp_client::plot::plot_timeline_files(&timeline, None, &svg, None, phase, factor, None)
    };
    let s = plot(None, 2.0).unwrap();
    assert!(std::fs::metadata(&svg).unwrap().len() > 0, "{s}");
    let e = format!("{:#}", plot(Some(7), 2.0).unwrap_err());
    assert!(
        e.contains("--overload-phase") && e.contains("[0, 1]"),
        "{e}"
    );
    let e = format!("{:#}", plot(Some(1), 0.0).unwrap_err());
    assert!(e.contains("--factor"), "{e}");
}
