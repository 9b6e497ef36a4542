//! `psp-client plot` renders well-formed SVG from result CSVs: one written by the
//! report module right here (the writer and the reader agree on the schema), and a
//! fixture CSV kept in the repository (CSVs written by older runs stay plottable).

use persephone::report::{self, RunInfo, RunReport};
use psp_client::plot::{render, PanelKind, PlotOptions, Table, XAxis};

/// Checks that `svg` is well-formed XML as far as tags go: every element closed, in
/// order, and the root is `<svg>`.
fn well_formed(svg: &str) -> Result<usize, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut elements = 0;
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>").ok_or("unterminated <?")? + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").ok_or("unterminated comment")? + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("");
            if name.is_empty() {
                return Err(format!("bad tag <{tag}>"));
            }
            if stack.is_empty() && elements > 0 {
                return Err("content after the root element".into());
            }
            if elements == 0 && name != "svg" {
                return Err(format!("root is <{name}>"));
            }
            elements += 1;
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(elements)
}

/// The trimmed contents of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn the_checker_rejects_broken_svg() {
    assert!(well_formed("<svg><g></svg>").is_err());
    assert!(well_formed("<svg><g/></svg><svg/>").is_err());
    assert!(well_formed("<g></g>").is_err());
    assert_eq!(
        well_formed("<?xml version=\"1.0\"?><svg a=\"1\"><g/><text>x</text></svg>"),
        Ok(3)
    );
}

/// A two-policy sweep over High Bimodal, with one point marked invalid.
fn sweep_csv() -> String {
    sweep_of(&[("darc", 0.9), ("c-fcfs <&>", 0.6)])
}

/// A sweep over High Bimodal of `policies`, each with the load its tail blows up at;
/// darc's last point is marked invalid.
fn sweep_of(policies: &[(&str, f64)]) -> String {
    let mut out = Vec::new();
    report::write_csv_header(&mut out).unwrap();
    for &(policy, knee) in policies {
        for k in 1..=9 {
            let load = k as f64 / 10.0;
            let mut r = RunReport::new(
                RunInfo {
                    label: "fixture".into(),
                    policy: policy.into(),
                    workers: Some(14),
                    phase: 0,
                    load: Some(load),
                    offered_rps: load * 14e9 / 50_500.0,
                    window_s: 1.0,
                },
                [(1, "SHORT"), (2, "LONG")],
            );
            r.shares = vec![0.5, 0.5];
            let blowup = 1.0 / (knee - load).max(0.02);
            for (i, service) in [(0, 1_000u64), (1, 100_000)] {
                let t = &mut r.types[i];
                for j in 0..1000u64 {
                    t.record_sent(service, false);
                    t.record_ok(service + (j as f64 * blowup * 30.0) as u64 * 1000, service);
                }
            }
            r.valid = !(policy == "darc" && k == 9);
            r.write_csv_rows(&mut out).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}

fn check(svg: &str, labels: &[&str]) {
    let elements = well_formed(svg).unwrap_or_else(|e| panic!("invalid SVG: {e}"));
    assert!(elements > 50, "only {elements} elements");
    assert!(
        svg.contains("<polyline") || svg.contains("<path"),
        "no curves"
    );
    assert!(svg.contains("<circle"), "no points");
    let texts = texts(svg);
    for l in labels {
        assert!(texts.iter().any(|t| t.contains(l)), "legend misses {l:?}");
    }
    assert!(svg.contains("p99.9 latency (µs)"));
    assert!(svg.contains("p99.9 slowdown"));
}

#[test]
fn plot_renders_a_generated_sweep() {
    let t = Table::parse(&sweep_csv()).unwrap();
    assert_eq!(t.rows.len(), 2 * 9 * 3);
    let svg = render(&[t], &PlotOptions::default()).unwrap();
    check(
        &svg,
        &[
            "fixture darc SHORT",
            "fixture darc LONG",
            "fixture c-fcfs &lt;&amp;&gt; LONG",
        ],
    );
    // The invalid point is hollow: some circles have no fill.
    assert!(svg.contains("fill=\"none\""));
}

/// A built-in policy has its own colour whatever the figure draws beside it, so the
/// same policy looks the same from one figure to the next; and SJF and EDF, whose
/// curves often coincide, differ in their markers too.
#[test]
fn a_policy_keeps_its_colour_from_figure_to_figure() {
    let (darc, sjf, edf) = ("#1F77B4", "#2CA02C", "#FF7F0E");
    let draw = |policies: &[(&str, f64)]| {
        let t = Table::parse(&sweep_of(policies)).unwrap();
        render(&[t], &PlotOptions::default()).unwrap()
    };
    let a = draw(&[("sjf", 0.7), ("edf", 0.7)]);
    let b = draw(&[("edf", 0.7), ("darc", 0.9)]);
    assert!(a.contains(edf) && b.contains(edf), "edf changed colour");
    assert!(a.contains(sjf) && !b.contains(sjf));
    assert!(b.contains(darc) && !a.contains(darc));
    // SJF's squares are rectangles; EDF's crosses and DARC's circles are not.
    let rects_of = |svg: &str, color: &str| {
        svg.lines()
            .filter(|l| l.starts_with("<rect") && l.contains(color))
            .count()
    };
    assert!(rects_of(&a, sjf) > 0, "sjf has no square markers");
    assert_eq!(rects_of(&a, edf), 0, "edf drew squares");
    assert_eq!(rects_of(&b, darc), 0, "darc drew squares");
}

#[test]
fn plot_renders_the_fixture_csv() {
    let text = include_str!("fixtures/sweep.csv");
    let t = Table::parse(text).unwrap();
    assert_eq!(t.header.join(","), report::CSV_COLUMNS.join(","));
    let svg = render(&[t.clone(), t], &PlotOptions::default()).unwrap();
    check(&svg, &["SHORT", "LONG"]);
}

/// A non-finite cell (`inf` in a hand-edited CSV) is no value: the plot is drawn
/// without it (an infinite value made the log axis loop forever).
#[test]
fn an_infinite_value_is_left_out() {
    let mut t = Table::parse(include_str!("fixtures/sweep.csv")).unwrap();
    let col = t.col("slowdown_p999").unwrap();
    t.rows[0][col] = "inf".into();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(render(&[t], &PlotOptions::default())));
    let svg = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("render returned")
        .unwrap();
    check(&svg, &["SHORT", "LONG"]);
}

#[test]
fn rate_axis_and_per_run_panels() {
    let t = Table::parse(&sweep_csv()).unwrap();
    let opts = PlotOptions {
        x: XAxis::Rate,
        panels: vec![
            PanelKind::Latency,
            PanelKind::Adherence,
            PanelKind::Achieved,
        ],
        ..PlotOptions::default()
    };
    let svg = render(&[t], &opts).unwrap();
    well_formed(&svg).unwrap();
    assert!(svg.contains("offered rate (requests/s)"));
    assert!(svg.contains("schedule adherence (%)"));
    assert!(svg.contains("achieved rate (requests/s)"));
    // Per-run panels have one curve per (label, policy), without a type.
    assert!(
        texts(&svg).iter().any(|t| t == "fixture darc"),
        "per-run legend"
    );
}

#[test]
fn rows_without_a_load_cannot_be_plotted() {
    let mut out = Vec::new();
    report::write_csv_header(&mut out).unwrap();
    let mut r = RunReport::new(RunInfo::default(), [(1, "A")]);
    r.types[0].record_sent(10, false);
    r.types[0].record_ok(100, 10);
    r.write_csv_rows(&mut out).unwrap();
    let t = Table::parse(std::str::from_utf8(&out).unwrap()).unwrap();
    let e = render(&[t], &PlotOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--workers"), "{e}");
}

/// Plots are SVG: an output named for another format is refused, and nothing written.
#[test]
fn an_output_named_for_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sweep.csv");
    std::fs::write(&csv, include_str!("fixtures/sweep.csv")).unwrap();
    let png = dir.path().join("p.png");
    let e = psp_client::plot::plot_files(&[&csv], &png, &PlotOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("SVG only: name it .svg"), "{e:#}");
    assert!(!png.exists());
    let svg = dir.path().join("p.SVG");
    psp_client::plot::plot_files(&[&csv], &svg, &PlotOptions::default()).unwrap();
    assert!(svg.exists());
}
