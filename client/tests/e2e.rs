//! End to end against the real daemon on loopback, started in-process from the library
//! (`persephone::App`) on an ephemeral port: every preset at low load, then the CSV and
//! JSON outputs, the demo, and the command line.
//!
//! Only lower bounds on time are asserted (the machine may be shared and loaded): a
//! reply can never come before the server has burnt the requested service time.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use persephone::config::{Config, PolicyKind};
use persephone::report::{RunReport, CSV_COLUMNS};
use persephone::workload::{Workload, PRESETS};
use persephone::App;
use psp_client::config::Plan;
use psp_client::measure::Meta;

/// A server config knowing the type ids of every preset (1..=5); the `spin` handler
/// burns the service time each request carries.
fn server_config(workers: usize) -> Config {
    Config::parse(&format!(
        "pin: false
dispatcher: {{ idle: park }}
workers: {{ number: {workers}, handler: spin, idle: park }}
policy: {{ kind: darc, window: 500 }}
net: {{ backend: udp, bind: 127.0.0.1:0 }}
requests:
  - {{ id: 1, name: A }}
  - {{ id: 2, name: B }}
  - {{ id: 3, name: C }}
  - {{ id: 4, name: D }}
  - {{ id: 5, name: E }}
stats: {{ interval_ms: 0 }}
"
    ))
    .unwrap()
}

fn plan(server: std::net::SocketAddr, w: Workload, rate: f64, outdir: Option<&Path>) -> Plan {
    let workers = 2;
    let load = rate * w.mean_service_ns() / (workers as f64 * 1e9);
    let label = format!("e2e-{}", w.name);
    let mut p = Plan::new(server, w, rate, Duration::from_secs(1));
    p.meta = Meta {
        label,
        policy: "darc".into(),
        workers: Some(workers),
    };
    p.points[0].tag = format!("load{load:.3}");
    p.points[0].phases[0].load = Some(load);
    p.warmup = Duration::from_millis(100);
    // Generous: a loaded machine may delay replies, but must not lose them.
    p.timeout = Duration::from_secs(10);
    p.outdir = outdir.map(Path::to_path_buf);
    p.sample = Some(0.1);
    p
}

/// Runs `preset` at a low rate against a fresh daemon; returns the report.
fn run_preset(preset: &str, outdir: Option<&Path>) -> RunReport {
    let w = Workload::preset(preset).unwrap();
    // Low load: at most 5 % of 2 workers, and at most 1500 requests/s.
    let rate = w.rate_for_load(0.05, 2).min(1500.0);
    let server = App::new(server_config(2)).start().unwrap();
    let p = plan(server.local_addr(), w, rate, outdir);
    let mut out = Vec::new();
    let reports = psp_client::runner::run(&p, &mut out);
    let stats = server.shutdown();
    let mut reports = reports.unwrap();
    assert_eq!(reports.len(), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("p99.9 µs"), "{text}");
    // The daemon saw every request we sent and answered all of them.
    let sent: u64 = reports[0].types.iter().map(|t| t.sent).sum();
    assert!(stats.received >= sent, "{} < {sent}", stats.received);
    assert_eq!(stats.answered(), stats.received);
    reports.remove(0)
}

#[test]
fn every_preset_at_low_load_loses_nothing_and_respects_service_times() {
    for preset in PRESETS {
        let r = run_preset(preset, None);
        let w = Workload::preset(preset).unwrap();
        assert_eq!(r.malformed + r.unexpected, 0, "{preset}");
        for t in &r.types {
            assert!(t.sent > 0, "{preset} {}: nothing sent", t.name);
            assert_eq!(t.lost, 0, "{preset} {}: lost requests", t.name);
            assert_eq!(t.rejected_total(), 0, "{preset} {}: rejections", t.name);
            assert_eq!(t.ok, t.sent, "{preset} {}", t.name);
            // Latency includes the service time the server burnt: even the fastest
            // reply of a type took at least that long (histogram buckets round down by
            // at most 0.1 %, so compare with the bucket's upper end).
            let service = w
                .types
                .iter()
                .find(|x| x.id == t.id)
                .unwrap()
                .service
                .mean_ns();
            let fastest = t.latency.highest_equivalent(t.latency.min());
            assert!(
                fastest as f64 >= service,
                "{preset} {}: fastest reply {fastest} ns < service {service} ns",
                t.name
            );
            let sd = t.slowdown().unwrap();
            assert!(sd.at[0] >= 0.99, "{preset} {}: slowdown {sd:?}", t.name);
        }
    }
}

#[test]
fn outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_preset("high-bimodal", Some(dir.path()));
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), r.types.len() + 1);
    assert!(
        rows[0].starts_with("e2e-high-bimodal,darc,2,0,"),
        "{}",
        rows[0]
    );
    assert!(rows.last().unwrap().contains(",0,ALL,"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"][0]["types"].as_array().unwrap().len(), 2);
    assert_eq!(json["runs"][0]["overall"]["lost"], 0);
    let hgrm = std::fs::read_dir(dir.path().join("hgrm")).unwrap().count();
    assert_eq!(hgrm, 2 * (r.types.len() + 1));
    let trace = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("trace-"))
        .expect("a trace file");
    let trace = std::fs::read_to_string(dir.path().join(trace)).unwrap();
    let sent: u64 = r.types.iter().map(|t| t.sent).sum();
    // One request in ten, give or take the rounding at either end.
    let lines = trace.lines().count() as u64 - 1;
    assert!(lines.abs_diff(sent / 10) <= 1, "{lines} vs {sent}");
    assert!(std::fs::read_to_string(dir.path().join("command.txt"))
        .unwrap()
        .contains("seed"));
}

/// What `psp-client demo --workload W [--load L]` prints, over a short run.
fn demo(workload: &str, load: Option<f64>) -> String {
    let args = psp_client::demo::DemoArgs {
        workload: workload.into(),
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
        load,
        quiet: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    psp_client::demo::run(&args, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn the_demo_runs_and_prints_the_table() {
    let text = demo("high-bimodal", Some(0.05));
    for want in [
        "daemon: darc, 2 workers",
        "SHORT",
        "LONG",
        "ALL",
        "daemon counters",
        "daemon load: dispatcher busy",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

/// `--policy` runs the built-in server under another policy, each type still served.
#[test]
fn the_demo_runs_under_the_policy_asked_for() {
    for kind in [
        PolicyKind::Cfcfs,
        PolicyKind::Dfcfs,
        PolicyKind::Sjf,
        PolicyKind::Edf,
    ] {
        let args = psp_client::demo::DemoArgs {
            policy: Some(kind),
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(100),
            load: Some(0.05),
            quiet: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        psp_client::demo::run(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = format!("daemon: {}, 2 workers", kind.name());
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
        assert!(text.contains("SHORT") && text.contains("LONG"), "{text}");
    }
}

/// The kv workloads' demo offers a rate the KV store serves over UDP (their nominal
/// service times would turn the default load into 144 000 requests/s), checks every
/// answer, and names every reply status in the daemon's counters.
#[test]
fn the_kv_demo_offers_a_servable_rate() {
    let text = demo("kv", None);
    assert!(text.contains(" = 4000 requests/s"), "{text}");
    assert!(text.contains("(ok "), "{text}");
    assert!(text.contains("queue_full "), "{text}");
}

/// Any preset runs in the demo as is: the built-in server declares the workload's
/// types (it used to answer three of TPC-C's five `unknown_type`), and a workload of
/// short requests is offered what kernel UDP carries, not 133 000 requests/s.
#[test]
fn the_demo_serves_every_type_of_a_preset_at_a_carried_rate() {
    let text = demo("tpcc", None);
    for want in [
        "Payment",
        "NewOrder",
        "Delivery",
        "StockLevel",
        "OrderStatus",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("unknown_type"), "{text}");
    // A server config of the user's lacking some of the workload's types: said.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.yml");
    std::fs::write(&cfg, psp_client::demo::QUICKSTART).unwrap();
    let args = psp_client::demo::DemoArgs {
        config_path: Some(cfg),
        workload: "tpcc".into(),
        duration: Duration::from_millis(100),
        warmup: Duration::from_millis(50),
        quiet: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    // Warned of first, named by hints after, and an error: these are not the server's
    // latencies. The daemon's counters are printed all the same.
    let e = psp_client::demo::run(&args, &mut out).unwrap_err();
    assert!(e.is::<psp_client::runner::Mismatched>(), "{e}");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("the server config declares no type id 5 (StockLevel)"),
        "{text}"
    );
    assert!(
        text.contains("hint: the server answered unknown_type"),
        "{text}"
    );
    assert!(text.contains("daemon counters:"), "{text}");
    let text = demo("extreme-bimodal", None);
    assert!(text.contains("offering 10000"), "{text}");
    assert!(text.contains(" = 10000 requests/s"), "{text}");
}

/// `--wire psp_mb` against a server speaking it: every request answered, each after
/// at least the service time it asked for (PSP_MB carries it in run_ns).
#[test]
fn psp_mb_runs_are_served_and_measured_like_native_ones() {
    let mut cfg = server_config(2);
    cfg.net.wire = persephone::config::Wire::PspMb;
    let server = App::new(cfg).start().unwrap();
    let w = Workload::preset("high-bimodal").unwrap();
    let mut p = plan(server.local_addr(), w.clone(), 1000.0, None);
    p.wire = persephone::config::Wire::PspMb;
    let mut out = Vec::new();
    let reports = psp_client::runner::run(&p, &mut out).unwrap();
    let stats = server.shutdown();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("in Perséphone's PSP_MB format"), "{text}");
    let r = &reports[0];
    assert_eq!(r.malformed + r.unexpected, 0, "{text}");
    for t in &r.types {
        assert!(t.sent > 0 && t.ok == t.sent && t.lost == 0, "{text}");
        let service = w.types.iter().find(|x| x.id == t.id).unwrap();
        let fastest = t.latency.highest_equivalent(t.latency.min());
        assert!(
            fastest as f64 >= service.service.mean_ns(),
            "{}: {fastest} ns: {text}",
            t.name
        );
    }
    assert_eq!(stats.withheld + stats.rx_drops.bad_psp_mb, 0, "{stats}");
    assert_eq!(stats.answered(), stats.received);
}

fn client() -> Command {
    Command::new(env!("CARGO_BIN_EXE_psp-client"))
}

#[test]
fn the_command_line_names_bad_flags_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, "rate: 100\nduraton: 2s\n").unwrap();
    for (args, want) in [
        (vec!["--load", "0.5"], "--load"),
        // Negative numbers reach the flag's own check, not clap's "unexpected argument".
        (vec!["--rate", "-5"], "--rate: must be a number > 0"),
        (
            vec!["--rate", "5", "--spin-us", "-3"],
            "--spin-us: must be 0 to",
        ),
        (vec!["--rate", "100", "--duration", "soon"], "--duration"),
        (vec!["--loads", "0.1:0.5"], "--loads"),
        (vec!["--config-path", cfg.to_str().unwrap()], "duraton"),
        (vec!["--rate", "100", "--workload", "nope"], "--workload"),
        (vec!["plot", "missing.csv", "--out", "x.svg"], "missing.csv"),
        // A kv workload against a server without the kv handler: said before it
        // starts, not as a bad `keys` after.
        (
            vec![
                "demo",
                "--workload",
                "kv",
                "--config-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/quickstart.yml"),
            ],
            "needs a kv server (workers.handler: kv",
        ),
        (
            vec![
                "--server",
                "127.0.0.1:6789",
                "--port",
                "7000",
                "--rate",
                "5",
            ],
            "--port",
        ),
    ] {
        let out = client().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A run against an address where nothing listens is not a measurement: it fails,
/// naming the address and the error (it used to exit 0, its table blaming the client
/// for being late).
#[test]
fn a_run_with_no_server_fails_and_says_why() {
    // A port that was free a moment ago, and is again.
    let addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = client()
        .args(["--server", &addr, "--rate", "200"])
        .args([
            "--duration",
            "200ms",
            "--warmup",
            "50ms",
            "--timeout",
            "3s",
            "-q",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(
        err.contains(&format!("got no reply at all from {addr}"))
            && err.contains("Does it speak this wire format"),
        "{err}"
    );
    // The wait for --timeout after the last send is said, not sat through in silence.
    assert!(
        err.contains("all sent; waiting up to 3s (--timeout)"),
        "{err}"
    );
    // Its table does not blame the client's pace for the failed sends.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("the client, not the server"), "{text}");
}

#[test]
fn the_command_line_runs_a_sweep_and_plots_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = App::new(server_config(2)).start().unwrap();
    let addr = server.local_addr().to_string();
    let out = client()
        .args(["--server", &addr])
        .args(["--workers", "2", "--loads", "0.02:0.04:0.02"])
        .args([
            "--duration",
            "300ms",
            "--warmup",
            "50ms",
            "--timeout",
            "10s",
        ])
        .args(["--label", "cli", "--policy", "darc", "-q"])
        .arg("--outdir")
        .arg(dir.path())
        .output()
        .unwrap();
    server.shutdown();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("2 run points against {addr} over kernel UDP\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("load 0.020") && stdout.contains("load 0.040"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3);
    let svg = dir.path().join("sweep.svg");
    let out = client()
        .arg("plot")
        .arg(dir.path().join("results.csv"))
        .arg("--out")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("cli darc SHORT"));
}

/// A kv run whose value size is not the server's gets replies longer than it expects:
/// they arrive whole and are checked, so they count as wrong answers (the run fails
/// saying so), not as malformed datagrams cut short by a receive buffer sized for the
/// run's own value size.
#[test]
fn kv_replies_longer_than_expected_are_wrong_not_malformed() {
    let mut cfg = Config::parse(psp_client::demo::KV_CONFIG).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    let server_values = cfg.kv.as_ref().unwrap().value_size;
    let server = App::new(cfg).start().unwrap();
    let spec = psp_client::kv::KvSpec {
        value_size: server_values / 2,
        ..Default::default()
    };
    let w = spec.preset("kv").unwrap();
    let mut p = plan(server.local_addr(), w, 300.0, None);
    p.kv = Some(spec);
    p.sample = None;
    let mut out = Vec::new();
    let result = psp_client::runner::run(&p, &mut out);
    server.shutdown();
    let text = String::from_utf8(out).unwrap();
    let err = result.expect_err("wrong answers fail the run").to_string();
    assert!(err.contains("kv replies were wrong"), "{err}");
    // Every GET and SCAN answer is wrong (a value of the other size), none cut short.
    let line = text
        .lines()
        .find(|l| l.starts_with("checked answers (phase 0)"))
        .unwrap_or_else(|| panic!("no checks line in\n{text}"));
    assert!(
        line.contains("GET 0 verified") && line.contains("SCAN 0 verified"),
        "{line}"
    );
    assert!(!text.contains("malformed"), "{text}");
}

/// With nobody reading its stderr (`psp-client ... 2>&1 | head` after head exits), an
/// error still ends the run with status 1, not a panic (101) at the error's line.
#[test]
fn an_error_with_stderr_gone_is_status_1_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(env!("CARGO_BIN_EXE_psp-client"))
        .args(["plot", "no-such-run.csv", "-o", "never.svg"])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

/// `--realtime` without the right to use SCHED_FIFO fails before the run: exit 1, the
/// reason and what it needs on stderr, nothing on stdout, no output directory made.
/// As root, the client runs as `nobody` (setpriv), which has neither.
#[test]
fn realtime_without_the_right_fails_before_the_run() {
    // An unprivileged user with an RLIMIT_RTPRIO above 0 (inherited through setpriv)
    // may use SCHED_FIFO.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer to an rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) };
    if lim.rlim_cur > 0 {
        eprintln!(
            "skipped: RLIMIT_RTPRIO is {}: an unprivileged user may use SCHED_FIFO",
            lim.rlim_cur
        );
        return;
    }
    let Some(mut cmd) = test_support::unprivileged(env!("CARGO_BIN_EXE_psp-client")) else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("psp-client-rt-")
        // Writable by the unprivileged client: were the directory made before the
        // check, it would be.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .tempdir()
        .unwrap();
    let outdir = dir.path().join("out");
    // Port 9 (discard): nothing is to be sent, and nothing answers if it were.
    let out = cmd
        .args([
            "--server",
            "127.0.0.1:9",
            "--rate",
            "100",
            "--duration",
            "10s",
        ])
        .args(["--realtime", "--outdir"])
        .arg(&outdir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(
            "--realtime: cannot move the threads to SCHED_FIFO; it needs root or CAP_SYS_NICE"
        ),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!outdir.exists(), "the output directory was made");
}

/// A run held back by `--max-concurrency` is INVALID for that reason, and the line
/// says so (it used to blame the client's own pace and suggest --realtime).
#[test]
fn an_invalid_run_under_max_concurrency_names_the_cap() {
    let w = Workload::preset("high-bimodal").unwrap();
    let server = App::new(server_config(2)).start().unwrap();
    // 40 000 requests/s, one at a time, of a mix averaging 50 µs of service: at most
    // a fifth can leave on time, on any machine.
    let mut p = plan(server.local_addr(), w, 40_000.0, None);
    p.max_concurrency = Some(1);
    p.points[0].phases[0].duration = Duration::from_millis(300);
    let mut out = Vec::new();
    psp_client::runner::run(&p, &mut out).unwrap();
    server.shutdown();
    let text = String::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("INVALID"))
        .unwrap_or_else(|| panic!("not INVALID: {text}"));
    assert!(
        line.contains("--max-concurrency 1 held sends back"),
        "{line}"
    );
    assert!(!line.contains("--realtime"), "{line}");
}

/// Ctrl-C during a sweep stops it where it is: what ran of the point in progress is
/// reported and written (no request sent ahead of its time on the way out), the
/// later points are not run, and psp-client exits 130 saying so (it used to die
/// silently, its point lost).
#[test]
fn ctrl_c_reports_what_was_measured_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(2);
    cfg.stats.interval_ms = 10;
    let server = App::new(cfg).start().unwrap();
    let addr = server.local_addr().to_string();
    // Two points of 30 s each: stopped long before the first one's end.
    let mut child = client()
        .args(["--server", &addr, "--workers", "2", "--loads", "0.02,0.04"])
        .args(["--duration", "30s", "--warmup", "10ms", "--timeout", "10s"])
        .args(["-q", "--sample", "--outdir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The signal goes once the server has seen 200 requests: the run is under way.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    loop {
        assert!(
            std::time::Instant::now() < give_up,
            "the run never got going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "psp-client ended before the signal"
        );
        if let Some((n, s)) = server.next_stats(seen, Duration::from_secs(1)) {
            seen = n;
            if s.received >= 200 {
                break;
            }
        }
    }
    // SAFETY: kill(2) on our own child's pid, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stats = server.shutdown();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: 0 of 2 run points complete; the next was stopped")
            && err.contains("the rest were not run"),
        "{err}"
    );
    assert!(stdout.contains("results written to"), "{stdout}");
    assert!(
        !stdout.contains("load 0.040"),
        "the second point ran: {stdout}"
    );
    // The part that ran is the run: every request it counts was sent, and far fewer
    // than the point's schedule.
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        psp_client::plot::Table::parse(&text).unwrap()
    };
    let csv = read("results.csv");
    let col = |name: &str| csv.col(name).unwrap();
    let all = csv
        .rows
        .iter()
        .find(|r| r[col("type")] == "ALL")
        .expect("an ALL row");
    let sent: u64 = all[col("sent")].parse().unwrap();
    let lost: u64 = all[col("lost")].parse().unwrap();
    assert!(
        sent >= 150 && sent <= stats.received,
        "sent {sent}, received {}",
        stats.received
    );
    assert_eq!(lost, 0, "the requests never tried are not lost: {all:?}");
    // No request went out early as the run stopped (its reply would have come
    // before its time: a latency of 0).
    let trace = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("trace-"))
        .expect("a trace file");
    let trace = read(&trace);
    let lat = trace.col("latency_ns").unwrap();
    assert!(
        trace.rows.len() as u64 >= sent,
        "one row per request sampled"
    );
    for r in &trace.rows {
        // Empty for a request with no reply.
        let l: u64 = r[lat].parse().unwrap_or(1);
        assert!(l > 0, "a request answered before its time: {r:?}");
    }
}

/// A workload whose types the server does not declare gets `unknown_type` for them,
/// and the run says what that means rather than leaving a table of rejections.
#[test]
fn types_the_server_lacks_are_named_with_a_hint() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/quickstart.yml");
    let mut cfg = Config::load_unvalidated(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    let declared: Vec<u32> = cfg.requests.iter().map(|t| t.id).collect();
    let server = App::new(cfg).start().unwrap();
    let w = Workload::preset("tpcc").unwrap();
    let missing: Vec<&str> = w
        .types
        .iter()
        .filter(|t| !declared.contains(&t.id))
        .map(|t| t.name.as_str())
        .collect();
    assert!(!missing.is_empty(), "tpcc has types quickstart lacks");
    let n_missing = missing.len();
    let mut p = plan(server.local_addr(), w.clone(), 500.0, None);
    p.points[0].phases[0].duration = Duration::from_millis(300);
    let mut out = Vec::new();
    let e = psp_client::runner::run(&p, &mut out).unwrap_err();
    server.shutdown();
    assert!(
        e.to_string()
            .contains("request types were mostly answered unknown_type or bad_request"),
        "{e}"
    );
    let text = String::from_utf8(out).unwrap();
    for name in missing {
        assert!(
            text.contains(&format!(
                "hint: the server answered unknown_type to most {name} requests"
            )),
            "{name}: {text}"
        );
    }
    let hints = text.lines().filter(|l| l.starts_with("hint:")).count();
    assert_eq!(hints, n_missing, "only the missing types: {text}");
}
