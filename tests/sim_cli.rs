//! sim_cli.rs - `psp-sim` refuses bad flags as usage errors (exit status 2, the flag
//! named on stderr) instead of panicking or simulating something else than asked.

use std::path::Path;
use std::process::{Command, Output};

/// Runs psp-sim on 4 workers into `outdir`; a sweep gets `--requests 200` (a phases
/// file, which sets its own lengths, refuses it).
fn psp_sim(outdir: &Path, args: &[&str]) -> Output {
    let phased = args.contains(&"--phases");
    Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args(["--workers", "4", "--outdir"])
        .arg(outdir)
        .args(if phased {
            &[][..]
        } else {
            &["--requests", "200"]
        })
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run psp-sim")
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (args, flag) in [
        // Refused by the daemon's validation.
        (&["--policies", "darc", "--delta", "nan"][..], "--delta"),
        (&["--policies", "darc", "--n-resas", "9"], "--n-resas"),
        (
            &["--policies", "darc", "--profile", "static", "--no-hints"],
            "--no-hints",
        ),
        (
            &["--policies", "cfcfs", "--queue-capacity", "0"],
            "--queue-capacity",
        ),
        // Negative numbers reach the flag's own check (not clap's "unexpected
        // argument '-1'"), and an empty policy name says so (not "EOF while parsing").
        (&["--policies", "edf", "--slo", "-1"], "--slo: must be in"),
        (&["--policies", "darc,,cfcfs"], "--policies: an empty name"),
        // Panicked (exit 101).
        (&["--loads", "nan"], "--loads"),
        (&["--loads", "inf"], "--loads"),
        (&["--timeline-us", "0"], "--timeline-us"),
        // Wrapped virtual time.
        (
            &["--dispatch-overhead-ns", "18446744073709551615"],
            "--dispatch-overhead-ns",
        ),
        (&["--policies", "dfcfs", "--depth", "0"], "--depth"),
        (&["--policies", "darc", "--spillway", "9"], "--spillway"),
        (
            &["--policies", "cfcfs", "--queue-capacity", "4294967296"],
            "--queue-capacity",
        ),
        // Simulated one request and exited 0.
        (&["--duration", "0"], "--duration"),
        // Both a request count and a duration: the duration silently won.
        (&["--duration", "100ms"], "cannot be used with"),
        // An error of psp-sim's own checks (was exit status 1).
        (&["--warmup", "2"], "--warmup"),
        // psp-client's kv presets need the KV store: the presets psp-sim has are listed.
        (
            &["--workload", "kv"],
            "high-bimodal, extreme-bimodal, tpcc, rocksdb",
        ),
    ] {
        let o = psp_sim(&out, args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("policy."), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty(), "{args:?}: nothing is simulated");
        assert!(!out.exists(), "{args:?}: nothing is written");
    }
}

#[test]
fn requests_0_is_refused_and_a_real_run_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args(["--workers", "2", "--requests", "0", "--outdir"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--requests"), "{stderr}");
    assert!(!out.exists());

    let o = psp_sim(
        &out,
        &[
            "--loads",
            "0.5",
            "--policies",
            "darc",
            "--profile",
            "static",
            "--timeline-us",
            "100",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let csv = std::fs::read_to_string(out.join("sim.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.contains(",darc,")), "{csv}");
    assert!(out.join("timeline.csv").exists());
}

/// A figure the run's output cannot give is an error that says what it needs, on one
/// line (no backtrace, even with RUST_BACKTRACE set), exit status 1.
#[test]
fn a_plot_of_nothing_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = psp_sim(&out, &["--policies", "darc", "--loads", "0.5"]);
    assert!(run.status.success(), "{run:?}");
    let plot = Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args(["plot", "resa"])
        .arg(&out)
        .arg("-o")
        .arg(dir.path().join("r.svg"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run psp-sim plot");
    let err = String::from_utf8_lossy(&plot.stderr);
    assert_eq!(plot.status.code(), Some(1), "{err}");
    assert!(err.starts_with("psp-sim: "), "{err}");
    assert!(
        err.contains("--n-resas") && err.contains("nothing to plot"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A phases file may leave `name:` out: the run is labelled with the file's stem.
#[test]
fn a_phases_file_without_a_name_is_labelled_by_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let phases = dir.path().join("shift.yml");
    std::fs::write(
        &phases,
        "phases:\n  - { workload: high-bimodal, load: 0.5, requests: 500 }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = psp_sim(
        &out,
        &["--policies", "darc", "--phases", phases.to_str().unwrap()],
    );
    assert!(run.status.success(), "{run:?}");
    let csv = std::fs::read_to_string(out.join("sim.csv")).unwrap();
    // A phased run refuses --jobs 0 like a sweep.
    let zero = psp_sim(
        &dir.path().join("out0"),
        &["--phases", phases.to_str().unwrap(), "--jobs", "0"],
    );
    assert_eq!(zero.status.code(), Some(2), "{zero:?}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("shift,darc,4,0,"),
        "{csv}"
    );
}

/// A non-finite cell in `sim.csv` (hand-edited, or another tool's) is no value: the
/// plot is drawn without it, instead of an endless axis.
#[test]
fn an_infinite_value_is_left_out_of_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = psp_sim(&out, &["--policies", "cfcfs,darc", "--loads", "0.5"]);
    assert!(run.status.success(), "{run:?}");
    let csv = out.join("sim.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|&h| h == "slowdown_p999").unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut cells: Vec<&str> = lines[1].split(',').collect();
    cells[col] = "inf";
    lines[1] = cells.join(",");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args(["plot", "types"])
        .arg(&out)
        .arg("-o")
        .arg(dir.path().join("t.svg"))
        .spawn()
        .unwrap();
    let status = test_support::wait_timeout(&mut child, std::time::Duration::from_secs(60));
    if status.is_none() {
        test_support::kill(&mut child);
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// `plot types` draws one run point: over a sweep it names the points and the flag
/// that picks one, and leaves no figure behind; with `--load` it draws that load, each
/// type named under its position (two types used to get no label at all).
#[test]
fn a_per_type_plot_draws_one_load_and_names_the_types() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = psp_sim(&out, &["--policies", "cfcfs,darc", "--loads", "0.5,0.7"]);
    assert!(run.status.success(), "{run:?}");
    let svg = dir.path().join("t.svg");
    let plot = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_psp-sim"))
            .args(["plot", "types"])
            .arg(&out)
            .arg("-o")
            .arg(&svg)
            .args(extra)
            .output()
            .expect("run psp-sim plot")
    };
    let both = plot(&[]);
    let err = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(1), "{err}");
    assert!(
        err.contains("load 0.5 on 4 workers, load 0.7 on 4 workers") && err.contains("--load"),
        "{err}"
    );
    assert!(!svg.exists(), "a failed plot left {}", svg.display());
    // A load the run does not have: named, with the loads it has.
    let none = plot(&["--load", "0.6"]);
    let err = String::from_utf8_lossy(&none.stderr);
    assert_eq!(none.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--load 0.6: ") && err.contains("(its loads: 0.5, 0.7)"),
        "{err}"
    );
    let one = plot(&["--load", "0.7"]);
    assert!(one.status.success(), "{one:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    for name in ["SHORT", "LONG"] {
        assert!(
            text.lines().any(|l| l.trim() == name),
            "no {name} label in the figure"
        );
    }
}

/// psp-sim takes psp-client's spellings too: a phase's `rate` and `duration: 20ms`,
/// and `--arrival exponential`.
#[test]
fn the_clients_spellings_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let phases = dir.path().join("p.yml");
    std::fs::write(
        &phases,
        "phases:\n  - { workload: high-bimodal, rate: 20000, duration: 20ms }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args([
            "--workers",
            "4",
            "--policies",
            "darc",
            "--arrival",
            "exponential",
        ])
        .arg("--phases")
        .arg(&phases)
        .arg("--outdir")
        .arg(&out)
        .output()
        .expect("run psp-sim");
    assert!(run.status.success(), "{run:?}");
    let csv = std::fs::read_to_string(out.join("sim.csv")).unwrap();
    // 20 000 requests/s for 20 ms: about 400 requests.
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let sent = header.iter().position(|&h| h == "sent").unwrap();
    let all = csv.lines().find(|l| l.contains(",ALL,")).unwrap();
    let n: f64 = all.split(',').nth(sent).unwrap().parse().unwrap();
    assert!((300.0..500.0).contains(&n), "{n} requests in {all}");
}

/// With nobody reading its stdout and stderr, an error ends psp-sim with status 1, as
/// when they are read, not a panic (101) at its line.
#[test]
fn an_error_with_stderr_gone_is_status_1_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // An output directory inside a file cannot be made: an error after the flags parse.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let run = |gone: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_psp-sim"));
        c.args(["--workers", "1", "--requests", "10", "--loads", "0.5"])
            .args(["--policies", "cfcfs", "--outdir"])
            .arg(file.join("out"));
        if gone {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            c.stdout(writer.try_clone().unwrap()).stderr(writer);
        }
        c.output().unwrap().status.code()
    };
    assert_eq!(run(false), Some(1));
    assert_eq!(run(true), Some(1));
}

/// Off a terminal (here: a pipe) `--verbose` prints each point's line as it finishes,
/// not nothing (the hidden progress bar swallowed them), and `--duration 1` means
/// one second of virtual time, as in psp-client, not one nanosecond.
#[test]
fn verbose_off_a_terminal_prints_each_point_and_a_plain_duration_is_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_psp-sim"))
        .args([
            "--workers",
            "2",
            "--policies",
            "cfcfs,darc",
            "--loads",
            "0.1",
        ])
        .args(["--duration", "1", "--verbose", "--outdir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for p in ["cfcfs", "darc"] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains(&format!(" {p} w2 load 0.10 |")))
                .count(),
            1,
            "{p}'s line once: {stdout}"
        );
    }
    // High Bimodal at 10 % on 2 workers offers ~4 000 requests a second.
    let csv = persephone::sim::plot::Csv::read(&out.join("sim.csv")).unwrap();
    let (ty, sent) = (csv.col("type").unwrap(), csv.col("sent").unwrap());
    for all in csv.rows.iter().filter(|r| r[ty] == "ALL") {
        let n: u64 = all[sent].parse().unwrap();
        assert!(
            n > 1000,
            "one second of virtual time sent only {n}: {all:?}"
        );
    }
}
