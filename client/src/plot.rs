//! plot.rs - `psp-client plot`: tail latency and slowdown against load, from one or more
//! result CSVs (measured by `psp-client` or simulated by `psp-sim`, same schema).
//!
//! By default one SVG with two panels: a latency quantile (µs) and the same slowdown
//! quantile, both on a log scale, against the offered load, with one curve per (label,
//! policy, request type). Points the producer marked invalid are drawn hollow. Rows
//! without a load (a `--rate` run without `--workers`) are skipped, unless the x axis
//! is the offered rate (`--x rate`). Other panels: schedule adherence and achieved rate
//! per run (`--panels latency,adherence`).
//!
//! Only plotters' SVG backend is used, with its built-in text layout: no system fonts
//! or libraries are needed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use persephone::plot_style::{self, CurveId};
use plotters::prelude::*;

/// A parsed CSV: header and rows of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses CSV text (RFC 4180 quoting).
    pub fn parse(text: &str) -> anyhow::Result<Table> {
        let mut records = Vec::new();
        let mut row = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => cell.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut cell)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut cell));
                    records.push(std::mem::take(&mut row));
                }
                (false, c) => cell.push(c),
            }
        }
        if quoted {
            bail!("unterminated quoted cell");
        }
        if !cell.is_empty() || !row.is_empty() {
            row.push(cell);
            records.push(row);
        }
        let mut it = records.into_iter();
        let header = it.next().context("empty CSV")?;
        let mut rows = Vec::new();
        for (i, r) in it.enumerate() {
            if r.len() == 1 && r[0].is_empty() {
                continue;
            }
            if r.len() != header.len() {
                bail!(
                    "line {}: {} cells, the header has {}",
                    i + 2,
                    r.len(),
                    header.len()
                );
            }
            rows.push(r);
        }
        Ok(Table { header, rows })
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> anyhow::Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no column {name:?}"))
    }
}

/// The x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum XAxis {
    /// Offered load (fraction of capacity); rows without a load are skipped.
    #[default]
    Load,
    /// Total offered rate of the run point (requests/s).
    Rate,
}

/// One chart of the SVG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PanelKind {
    /// The latency quantile per type, µs, log scale.
    Latency,
    /// The slowdown quantile per type, log scale.
    Slowdown,
    /// Schedule adherence per run (% of requests sent on time).
    Adherence,
    /// Achieved rate per run (requests/s answered ok).
    Achieved,
}

impl PanelKind {
    /// Per-run panels draw one curve per (label, policy), from the `ALL` rows.
    fn per_run(self) -> bool {
        matches!(self, PanelKind::Adherence | PanelKind::Achieved)
    }
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Quantile column suffix: p50, p90, p99, p999, p9999, max, mean.
    pub quantile: String,
    /// Also draw each run's `ALL` row as a curve in the per-type panels.
    pub overall: bool,
    pub x: XAxis,
    /// Panels, left to right.
    pub panels: Vec<PanelKind>,
    pub title: Option<String>,
    /// Size of one panel, pixels.
    pub panel_size: (u32, u32),
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            quantile: "p999".into(),
            overall: false,
            x: XAxis::Load,
            panels: vec![PanelKind::Latency, PanelKind::Slowdown],
            title: None,
            panel_size: (700, 560),
        }
    }
}

/// One point of a curve.
#[derive(Debug, Clone, Copy)]
struct Pt {
    x: f64,
    y: Option<f64>,
    valid: bool,
}

/// What a curve shows: a run label (empty if none), a policy, a request type (empty
/// for a panel of whole runs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CurveKey {
    label: String,
    policy: String,
    ty: String,
}

impl CurveKey {
    /// The legend's name: the non-empty parts.
    fn name(&self) -> String {
        Self::join(&[&self.label, &self.policy, &self.ty])
    }

    /// What one colour stands for: the label and the policy.
    fn group(&self) -> String {
        Self::join(&[&self.label, &self.policy])
    }

    fn join(parts: &[&str]) -> String {
        parts
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

type Curves = BTreeMap<CurveKey, Vec<Pt>>;

/// Curves for one panel, from several tables.
fn curves(tables: &[Table], opts: &PlotOptions, kind: PanelKind) -> anyhow::Result<Curves> {
    let mut out = Curves::new();
    for t in tables {
        let c = |n: &str| t.col(n);
        let (label, policy, ty, load, offered, valid) = (
            c("label")?,
            c("policy")?,
            c("type")?,
            c("load")?,
            c("offered_rps")?,
            c("valid")?,
        );
        let y_col = match kind {
            PanelKind::Latency => c(&format!("latency_{}_us", opts.quantile))?,
            PanelKind::Slowdown => c(&format!("slowdown_{}", opts.quantile))?,
            PanelKind::Adherence => c("adherence")?,
            PanelKind::Achieved => c("achieved_rps")?,
        };
        // Rows come point by point, types first and the point's ALL row last: the ALL
        // row carries the point's total offered rate.
        let mut pending: Vec<&Vec<String>> = Vec::new();
        for r in &t.rows {
            pending.push(r);
            if r[ty] != persephone::report::ALL {
                continue;
            }
            let total_rate = finite(&r[offered]);
            for r in pending.drain(..) {
                let is_all = r[ty] == persephone::report::ALL;
                if kind.per_run() != is_all && !(is_all && opts.overall) {
                    continue;
                }
                let x = match opts.x {
                    XAxis::Load => finite(&r[load]),
                    XAxis::Rate => total_rate.or_else(|| finite(&r[offered])),
                };
                let Some(x) = x else { continue };
                let name = CurveKey {
                    label: r[label].clone(),
                    policy: r[policy].clone(),
                    ty: if kind.per_run() {
                        String::new()
                    } else {
                        r[ty].clone()
                    },
                };
                let y = finite(&r[y_col]).map(|v| match kind {
                    PanelKind::Adherence => v * 100.0,
                    _ => v,
                });
                out.entry(name).or_default().push(Pt {
                    x,
                    // Log panels cannot show 0; linear ones can.
                    y: y.filter(|v| *v > 0.0 || kind.per_run()),
                    valid: r[valid] != "false",
                });
            }
        }
    }
    for pts in out.values_mut() {
        pts.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    Ok(out)
}

/// Renders the SVG for `tables` into a string.
pub fn render(tables: &[Table], opts: &PlotOptions) -> anyhow::Result<String> {
    if opts.panels.is_empty() {
        bail!("--panels: nothing to draw");
    }
    let all: Vec<Curves> = opts
        .panels
        .iter()
        .map(|&k| curves(tables, opts, k))
        .collect::<anyhow::Result<_>>()?;
    if all.iter().all(|c| c.values().all(|v| v.is_empty())) {
        bail!(match opts.x {
            XAxis::Load => "no rows with a load to plot (runs given as --rate need --workers, or plot with --x rate)",
            XAxis::Rate => "no rows to plot",
        });
    }
    let (w, h) = opts.panel_size;
    let size = (w * opts.panels.len() as u32, h);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = match &opts.title {
            Some(t) => root.titled(t, ("sans-serif", 22)).map_err(draw_err)?,
            None => root,
        };
        let areas = root.split_evenly((1, opts.panels.len()));
        let q = quantile_name(&opts.quantile);
        let x_desc = match opts.x {
            XAxis::Load => "offered load",
            XAxis::Rate => "offered rate (requests/s)",
        };
        for ((area, &kind), curves) in areas.iter().zip(&opts.panels).zip(&all) {
            let (desc, log) = match kind {
                PanelKind::Latency => (format!("{q} latency (µs)"), true),
                PanelKind::Slowdown => (format!("{q} slowdown"), true),
                PanelKind::Adherence => ("schedule adherence (%)".to_string(), false),
                PanelKind::Achieved => ("achieved rate (requests/s)".to_string(), false),
            };
            if log {
                panel_log(area, curves, &desc, x_desc)?;
            } else {
                panel_linear(area, curves, &desc, x_desc)?;
            }
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

fn quantile_name(q: &str) -> String {
    match q {
        "p999" => "p99.9".into(),
        "p9999" => "p99.99".into(),
        other => other.into(),
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

/// Dashed vertical lines at the phase boundaries `xs`, from `lo` to `hi`.
fn phase_lines<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    xs: &[f64],
    lo: f64,
    hi: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64>,
{
    for &x in xs {
        chart
            .draw_series(DashedLineSeries::new(
                [(x, lo), (x, hi)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

fn x_label(v: &f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        // Tick positions are sums of float steps (0.30000000000000004): print the
        // shortest decimal that survives rounding to 6 significant digits.
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.into()
        }
    }
}

#[cfg(test)]
mod label_tests {
    use super::x_label;

    #[test]
    fn tick_labels_hide_float_noise() {
        assert_eq!(x_label(&(0.1 + 0.2)), "0.3");
        assert_eq!(x_label(&0.0), "0");
        assert_eq!(x_label(&0.95), "0.95");
        assert_eq!(x_label(&12.5), "12.5");
        assert_eq!(x_label(&250_000.0), "250000");
    }
}

fn x_range(curves: &Curves) -> std::ops::Range<f64> {
    let x_max = curves
        .values()
        .flatten()
        .map(|p| p.x)
        .fold(0.0f64, f64::max);
    0.0..(x_max * 1.05).max(1e-3)
}

fn panel_log<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &Curves,
    y_desc: &str,
    x_desc: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let ys: Vec<f64> = curves.values().flatten().filter_map(|p| p.y).collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    // Whole decades, so the log axis always has labelled ticks.
    let (lo, hi) = if ys.is_empty() {
        (1.0, 10.0)
    } else {
        let lo = 10f64.powf(lo.log10().floor());
        (lo, 10f64.powf(hi.log10().ceil()).max(lo * 10.0))
    };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(y_desc, ("sans-serif", 18))
        .build_cartesian_2d(x_range(curves), (lo..hi).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&x_label)
        .y_desc(y_desc)
        .light_line_style(TRANSPARENT)
        .y_labels(12)
        .y_label_formatter(&|v| {
            if *v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .draw()
        .map_err(draw_err)?;
    draw_curves(&mut chart, curves)
}

fn panel_linear<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &Curves,
    y_desc: &str,
    x_desc: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let ys: Vec<f64> = curves.values().flatten().filter_map(|p| p.y).collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if ys.is_empty() {
        (0.0, 1.0)
    } else {
        let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-3);
        (lo - pad, hi + pad)
    };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(y_desc, ("sans-serif", 18))
        .build_cartesian_2d(x_range(curves), lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&x_label)
        .y_desc(y_desc)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(draw_err)?;
    draw_curves(&mut chart, curves)
}

fn draw_curves<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    curves: &Curves,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let groups: Vec<String> = curves.keys().map(CurveKey::group).collect();
    let ids: Vec<CurveId<'_>> = curves
        .keys()
        .zip(&groups)
        .map(|(k, group)| CurveId {
            group,
            policy: &k.policy,
            sub: &k.ty,
        })
        .collect();
    for ((key, pts), look) in curves.iter().zip(plot_style::looks(&ids)) {
        let line: Vec<(f64, f64)> = pts.iter().filter_map(|p| p.y.map(|v| (p.x, v))).collect();
        let marks = pts.iter().filter_map(|p| p.y.map(|v| ((p.x, v), p.valid)));
        plot_style::draw_curve(chart, look, key.name(), line, marks).map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Writes `svg` to `out`, which must not be named for another format (`x.png` would
/// hold SVG that image viewers refuse).
fn write_svg(out: &Path, svg: String) -> anyhow::Result<()> {
    if let Some(ext) = out.extension().filter(|e| !e.eq_ignore_ascii_case("svg")) {
        anyhow::bail!(
            "--out: {} names a .{} file, but plots are SVG only: name it .svg",
            out.display(),
            ext.to_string_lossy()
        );
    }
    std::fs::write(out, svg).with_context(|| format!("--out: cannot write {}", out.display()))
}

/// `psp-client plot`: reads `inputs`, writes the SVG to `out`.
pub fn plot_files(
    inputs: &[impl AsRef<Path>],
    out: &Path,
    opts: &PlotOptions,
) -> anyhow::Result<()> {
    let tables = inputs
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Table::parse(&text).with_context(|| {
                format!(
                    "{}: not a results CSV (psp-client's results.csv or psp-sim's sim.csv)",
                    p.display()
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let svg = render(&tables, opts)?;
    write_svg(out, svg)
}

/// One row of `timeline.csv`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub phase: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub unix_s: Option<f64>,
    pub sent: u64,
    pub ok: u64,
    pub rejected: u64,
    pub lost: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub rejected_p50_us: Option<f64>,
    pub rejected_max_us: Option<f64>,
}

impl TimelineRow {
    fn secs(&self) -> f64 {
        (self.end_s - self.start_s).max(1e-9)
    }
}

/// The rows of run point `point` (the file's first point if `None`).
pub fn timeline_rows(t: &Table, point: Option<&str>) -> anyhow::Result<Vec<TimelineRow>> {
    let c = |n: &str| t.col(n);
    let cols = [
        c("point")?,
        c("phase")?,
        c("start_s")?,
        c("end_s")?,
        c("unix_s")?,
        c("sent")?,
        c("ok")?,
        c("rejected")?,
        c("lost")?,
        c("latency_p50_us")?,
        c("latency_p99_us")?,
        c("latency_p999_us")?,
        c("rejected_latency_p50_us")?,
        c("rejected_latency_max_us")?,
    ];
    let want = match point {
        Some(p) => p.to_string(),
        None => t.rows.first().context("timeline: no rows")?[cols[0]].clone(),
    };
    let mut out = Vec::new();
    for (i, r) in t.rows.iter().enumerate() {
        if r[cols[0]] != want {
            continue;
        }
        let line = i + 2;
        let num = |k: usize| -> anyhow::Result<f64> {
            finite(&r[cols[k]])
                .with_context(|| format!("line {line}: {:?} is not a finite number", r[cols[k]]))
        };
        let opt = |k: usize| finite(&r[cols[k]]);
        out.push(TimelineRow {
            phase: num(1)? as usize,
            start_s: num(2)?,
            end_s: num(3)?,
            unix_s: opt(4),
            sent: num(5)? as u64,
            ok: num(6)? as u64,
            rejected: num(7)? as u64,
            lost: num(8)? as u64,
            p50_us: opt(9),
            p99_us: opt(10),
            p999_us: opt(11),
            rejected_p50_us: opt(12),
            rejected_max_us: opt(13),
        });
    }
    if out.is_empty() {
        bail!("timeline: no rows for point {want:?}");
    }
    Ok(out)
}

/// Memory samples: (seconds since the Unix epoch, KiB).
pub fn rss_samples(t: &Table) -> anyhow::Result<Vec<(f64, f64)>> {
    let (u, k) = (t.col("unix_s")?, t.col("rss_kib")?);
    t.rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = |c: usize| {
                finite(&r[c])
                    .with_context(|| format!("line {}: {:?} is not a finite number", i + 2, r[c]))
            };
            Ok((p(u)?, p(k)?))
        })
        .collect()
}

/// A cell's value if it is a finite number: anything else (empty, `inf`, `NaN`, text)
/// is no value. An infinite value would make an axis range endless.
fn finite(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[(v.len() - 1) / 2])
}

/// Per-phase totals of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTotals {
    pub phase: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub rejected: u64,
    pub lost: u64,
    /// Median over the phase's intervals of the interval p99, µs.
    pub median_p99_us: Option<f64>,
    /// Median over the phase's intervals of the median rejection latency, µs.
    pub rejected_p50_us: Option<f64>,
    /// Largest rejection latency, µs.
    pub rejected_max_us: Option<f64>,
}

/// What an overload run came to ([`summarize`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OverloadSummary {
    pub phases: Vec<PhaseTotals>,
    /// The phase with the highest offered rate (or the one asked for).
    pub overload: usize,
    /// When it ended, s from the start of the measured window.
    pub overload_end_s: Option<f64>,
    /// The median interval p99 of the phase before the overload, µs.
    pub baseline_p99_us: Option<f64>,
    /// The bound an interval's p99 must be under to count as recovered, µs.
    pub bound_us: Option<f64>,
    /// Time from the end of the overload to the end of the first interval after it that
    /// is *good*: every request ok (none rejected or lost) and p99 within the bound.
    /// Its resolution is one interval (it is an upper bound).
    pub recovery_s: Option<f64>,
    /// Intervals after that first good one, in the same phase, that are not good.
    pub bad_after_recovery: usize,
    /// Intervals of the baseline phase that are not good: the noise floor to compare
    /// `bad_after_recovery` with.
    pub bad_in_baseline: usize,
    /// Intervals of the baseline phase.
    pub baseline_intervals: usize,
    /// Server memory: median over the baseline phase, and the largest sample, KiB.
    pub rss_steady_kib: Option<f64>,
    pub rss_peak_kib: Option<f64>,
    /// Largest sample after the overload ended, KiB.
    pub rss_after_kib: Option<f64>,
}

/// Summarises a timeline of an overload run: per-phase totals, the pre-overload p99
/// (the median of its intervals' p99), and how long after the overload the intervals
/// were good again (p99 within `factor` × that baseline, nothing rejected or lost).
/// `rss` samples (Unix s, KiB) are lined up with the timeline by its `unix_s` column.
pub fn summarize(
    rows: &[TimelineRow],
    rss: &[(f64, f64)],
    overload: Option<usize>,
    factor: f64,
) -> OverloadSummary {
    let mut phases: Vec<PhaseTotals> = Vec::new();
    let mut p99s: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for r in rows {
        if phases.last().is_none_or(|p| p.phase != r.phase) {
            phases.push(PhaseTotals {
                phase: r.phase,
                start_s: r.start_s,
                end_s: r.end_s,
                sent: 0,
                ok: 0,
                rejected: 0,
                lost: 0,
                median_p99_us: None,
                rejected_p50_us: None,
                rejected_max_us: None,
            });
            p99s.push((Vec::new(), Vec::new()));
        }
        let p = phases.last_mut().expect("pushed");
        p.end_s = r.end_s;
        p.sent += r.sent;
        p.ok += r.ok;
        p.rejected += r.rejected;
        p.lost += r.lost;
        if let Some(m) = r.rejected_max_us {
            p.rejected_max_us = Some(p.rejected_max_us.map_or(m, |x: f64| x.max(m)));
        }
        let (ok, rej) = p99s.last_mut().expect("pushed");
        ok.extend(r.p99_us);
        rej.extend(r.rejected_p50_us);
    }
    for (p, (ok, rej)) in phases.iter_mut().zip(&mut p99s) {
        p.median_p99_us = median(ok);
        p.rejected_p50_us = median(rej);
    }
    let rate = |p: &PhaseTotals| p.sent as f64 / (p.end_s - p.start_s).max(1e-9);
    let overload = overload.unwrap_or_else(|| {
        phases
            .iter()
            .max_by(|a, b| rate(a).total_cmp(&rate(b)))
            .map_or(0, |p| p.phase)
    });
    let k = phases.iter().position(|p| p.phase == overload);
    let before = k.and_then(|k| k.checked_sub(1)).map(|b| &phases[b]);
    let after = k.and_then(|k| phases.get(k + 1));
    let baseline_p99_us = before.and_then(|b| b.median_p99_us);
    let bound_us = baseline_p99_us.map(|b| b * factor);
    let overload_end_s = after.map(|a| a.start_s);
    let good = |r: &TimelineRow| {
        r.rejected == 0
            && r.lost == 0
            && match (r.p99_us, bound_us) {
                (Some(v), Some(b)) => v <= b,
                (None, _) => r.sent == 0,
                (Some(_), None) => false,
            }
    };
    let mut recovery_s = None;
    let mut bad_after_recovery = 0;
    if let Some(a) = after {
        let rest = rows.iter().filter(|r| r.phase == a.phase);
        for r in rest {
            if recovery_s.is_none() {
                if good(r) && r.sent > 0 {
                    recovery_s = Some(r.end_s - a.start_s);
                }
            } else if !good(r) {
                bad_after_recovery += 1;
            }
        }
    }
    let (bad_in_baseline, baseline_intervals) = before.map_or((0, 0), |b| {
        let rows: Vec<&TimelineRow> = rows.iter().filter(|r| r.phase == b.phase).collect();
        (rows.iter().filter(|r| !good(r)).count(), rows.len())
    });
    // Memory, on the timeline's clock.
    let unix0 = rows.first().and_then(|r| r.unix_s.map(|u| u - r.start_s));
    let (mut rss_steady_kib, mut rss_after_kib) = (None, None);
    if let (Some(u0), Some(b)) = (unix0, before) {
        let mut v: Vec<f64> = rss
            .iter()
            .filter(|(t, _)| (b.start_s..b.end_s).contains(&(t - u0)))
            .map(|&(_, k)| k)
            .collect();
        rss_steady_kib = median(&mut v);
    }
    if let (Some(u0), Some(end)) = (unix0, overload_end_s) {
        rss_after_kib = rss
            .iter()
            .filter(|(t, _)| t - u0 >= end)
            .map(|&(_, k)| k)
            .reduce(f64::max);
    }
    OverloadSummary {
        phases,
        overload,
        overload_end_s,
        baseline_p99_us,
        bound_us,
        recovery_s,
        bad_after_recovery,
        bad_in_baseline,
        baseline_intervals,
        rss_steady_kib,
        rss_peak_kib: rss.iter().map(|&(_, k)| k).reduce(f64::max),
        rss_after_kib,
    }
}

impl fmt::Display for OverloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} µs"));
        writeln!(
            f,
            "phase  from-to (s)   sent      ok        ok/s    rejected  lost    median p99  \
             rejected: median  max"
        )?;
        for p in &self.phases {
            writeln!(
                f,
                "{:<5}  {:>4.1}-{:<5.1}   {:<9} {:<9} {:<7.0} {:<9} {:<7} {:<11} {:<17} {}{}",
                p.phase,
                p.start_s,
                p.end_s,
                p.sent,
                p.ok,
                p.ok as f64 / (p.end_s - p.start_s).max(1e-9),
                p.rejected,
                p.lost,
                us(p.median_p99_us),
                us(p.rejected_p50_us),
                us(p.rejected_max_us),
                if p.phase == self.overload {
                    "  (overload)"
                } else {
                    ""
                },
            )?;
        }
        writeln!(
            f,
            "baseline p99 (median of the intervals before the overload): {}; bound: {}",
            us(self.baseline_p99_us),
            us(self.bound_us)
        )?;
        match (self.overload_end_s, self.recovery_s) {
            (Some(e), Some(r)) => writeln!(
                f,
                "recovery: the first good interval (nothing rejected or lost, p99 within the \
                 bound) ended {:.0} ms after the overload stopped at {e:.1} s; {} later \
                 intervals of that phase were not good (baseline phase: {} of {})",
                r * 1e3,
                self.bad_after_recovery,
                self.bad_in_baseline,
                self.baseline_intervals
            )?,
            (Some(e), None) => writeln!(
                f,
                "recovery: no good interval after the overload stopped at {e:.1} s"
            )?,
            (None, _) => writeln!(f, "recovery: no phase after the overload")?,
        }
        let mib = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1} MiB", v / 1024.0));
        if self.rss_peak_kib.is_some() {
            writeln!(
                f,
                "server RSS: steady {} (median before the overload), peak {}, after the overload at most {}",
                mib(self.rss_steady_kib),
                mib(self.rss_peak_kib),
                mib(self.rss_after_kib)
            )?;
        }
        Ok(())
    }
}

/// A column of a timeline row.
type Field<T> = fn(&TimelineRow) -> T;

/// Draws a timeline (and the server's memory, if sampled) as SVG: p50/p99/p99.9
/// latency of `ok` replies and the largest rejection latency (log scale); ok, rejected
/// and lost per second; RSS. Dashed lines mark the phase boundaries, a dotted one the
/// recovery bound.
pub fn render_timeline(
    rows: &[TimelineRow],
    rss: &[(f64, f64)],
    summary: &OverloadSummary,
    title: Option<&str>,
) -> anyhow::Result<String> {
    let mid = |r: &TimelineRow| (r.start_s + r.end_s) / 2.0;
    let unix0 = rows.first().and_then(|r| r.unix_s.map(|u| u - r.start_s));
    let mem: Vec<(f64, f64)> = match unix0 {
        Some(u0) => rss.iter().map(|&(t, k)| (t - u0, k / 1024.0)).collect(),
        None => Vec::new(),
    };
    let x_lo = mem.iter().map(|p| p.0).fold(0.0f64, f64::min);
    let x_hi = rows
        .iter()
        .map(|r| r.end_s)
        .chain(mem.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(x_lo + 1e-3);
    let bounds: Vec<f64> = summary.phases.iter().skip(1).map(|p| p.start_s).collect();
    let n_panels = if mem.is_empty() { 2 } else { 3 };
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (1100, 330 * n_panels as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = match title {
            Some(t) => root.titled(t, ("sans-serif", 22)).map_err(draw_err)?,
            None => root,
        };
        let areas = root.split_evenly((n_panels, 1));
        let x_desc = "time (s, by scheduled send time)";

        // Latency.
        let series: [(&str, Field<Option<f64>>, RGBColor); 4] = [
            ("ok p50", |r| r.p50_us, RGBColor(31, 119, 180)),
            ("ok p99", |r| r.p99_us, RGBColor(214, 39, 40)),
            ("ok p99.9", |r| r.p999_us, RGBColor(255, 127, 14)),
            ("rejected max", |r| r.rejected_max_us, RGBColor(44, 160, 44)),
        ];
        let ys: Vec<f64> = rows
            .iter()
            .flat_map(|r| series.iter().filter_map(move |s| (s.1)(r)))
            .chain(summary.bound_us)
            .filter(|v| *v > 0.0)
            .collect();
        let (lo, hi) = ys
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if ys.is_empty() {
            (1.0, 10.0)
        } else {
            let lo = 10f64.powf(lo.log10().floor());
            (lo, 10f64.powf(hi.log10().ceil()).max(lo * 10.0))
        };
        let mut chart = ChartBuilder::on(&areas[0])
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .caption("latency per interval (µs, log)", ("sans-serif", 18))
            .build_cartesian_2d(x_lo..x_hi, (lo..hi).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("µs")
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|v| format!("{v}"))
            .draw()
            .map_err(draw_err)?;
        phase_lines(&mut chart, &bounds, lo, hi)?;
        if let Some(b) = summary.bound_us {
            let c = RGBColor(214, 39, 40);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x_lo, b), (x_hi, b)],
                    2,
                    4,
                    c.stroke_width(1),
                ))
                .map_err(draw_err)?
                .label("recovery bound (p99)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c));
        }
        for (name, f, color) in series {
            // Break the line where an interval has no value.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for r in rows {
                match f(r) {
                    Some(v) if v > 0.0 => runs.last_mut().expect("non-empty").push((mid(r), v)),
                    _ => runs.push(Vec::new()),
                }
            }
            let mut first = true;
            for run in runs.into_iter().filter(|r| !r.is_empty()) {
                let s = if run.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(run[0], 2, color.filled())))
                } else {
                    chart.draw_series(LineSeries::new(run, color.stroke_width(2)))
                }
                .map_err(draw_err)?;
                if first {
                    s.label(name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;

        // Rates.
        let rates: [(&str, Field<u64>, RGBColor); 4] = [
            ("offered (sent)", |r| r.sent, RGBColor(127, 127, 127)),
            ("ok", |r| r.ok, RGBColor(31, 119, 180)),
            ("rejected", |r| r.rejected, RGBColor(44, 160, 44)),
            ("lost", |r| r.lost, RGBColor(148, 103, 189)),
        ];
        let hi = rows
            .iter()
            .flat_map(|r| rates.iter().map(move |s| (s.1)(r) as f64 / r.secs()))
            .fold(1.0f64, f64::max)
            * 1.08;
        let mut chart = ChartBuilder::on(&areas[1])
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .caption("requests per second, per interval", ("sans-serif", 18))
            .build_cartesian_2d(x_lo..x_hi, 0.0..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("requests/s")
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(draw_err)?;
        phase_lines(&mut chart, &bounds, 0.0, hi)?;
        for (name, f, color) in rates {
            let line: Vec<(f64, f64)> = rows
                .iter()
                .map(|r| (mid(r), f(r) as f64 / r.secs()))
                .collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;

        // Memory.
        if !mem.is_empty() {
            let hi = mem.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.15;
            let mut chart = ChartBuilder::on(&areas[2])
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .caption("server RSS (MiB, VmRSS)", ("sans-serif", 18))
                .build_cartesian_2d(x_lo..x_hi, 0.0..hi)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc("time (s, same clock)")
                .y_desc("MiB")
                .light_line_style(TRANSPARENT)
                .draw()
                .map_err(draw_err)?;
            phase_lines(&mut chart, &bounds, 0.0, hi)?;
            let c = RGBColor(140, 86, 75);
            chart
                .draw_series(LineSeries::new(mem.iter().copied(), c.stroke_width(2)))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// `psp-client plot-timeline`: reads a `timeline.csv` (and an RSS CSV), writes the SVG
/// to `out` and returns the summary.
pub fn plot_timeline_files(
    timeline: &Path,
    rss: Option<&Path>,
    out: &Path,
    point: Option<&str>,
    overload: Option<usize>,
    factor: f64,
    title: Option<&str>,
) -> anyhow::Result<OverloadSummary> {
    let read = |p: &Path| -> anyhow::Result<Table> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        Table::parse(&text).with_context(|| format!("{}", p.display()))
    };
    if !(factor >= 1.0 && factor.is_finite()) {
        anyhow::bail!(
            "--factor: must be at least 1 (a p99 within factor x the baseline), got {factor}"
        );
    }
    let rows = timeline_rows(&read(timeline)?, point)
        .with_context(|| format!("{}", timeline.display()))?;
    if let Some(k) = overload {
        if !rows.iter().any(|r| r.phase == k) {
            let mut phases: Vec<usize> = rows.iter().map(|r| r.phase).collect();
            phases.sort_unstable();
            phases.dedup();
            anyhow::bail!(
                "--overload-phase: {} has no phase {k} (its phases: {phases:?})",
                timeline.display()
            );
        }
    }
    let rss = match rss {
        Some(p) => rss_samples(&read(p)?).with_context(|| format!("{}", p.display()))?,
        None => Vec::new(),
    };
    let summary = summarize(&rows, &rss, overload, factor);
    let svg = render_timeline(&rows, &rss, &summary, title)?;
    write_svg(out, svg)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_round_trips() {
        let t = Table::parse("a,b,c\n\"x, y\",\"say \"\"hi\"\"\",3\n\nlast,,\n").unwrap();
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.rows[0], ["x, y", "say \"hi\"", "3"]);
        assert_eq!(t.rows[1], ["last", "", ""]);
        assert!(Table::parse("a,b\n1\n").is_err());
        assert!(Table::parse("a\n\"open\n").is_err());
        assert!(Table::parse("").is_err());
    }
    fn row(phase: usize, k: usize, sent: u64, rejected: u64, p99: Option<f64>) -> TimelineRow {
        TimelineRow {
            phase,
            start_s: k as f64 * 0.1,
            end_s: (k + 1) as f64 * 0.1,
            unix_s: Some(1000.0 + k as f64 * 0.1),
            sent,
            ok: sent - rejected,
            rejected,
            lost: 0,
            p50_us: p99.map(|v| v / 2.0),
            p99_us: p99,
            p999_us: p99,
            rejected_p50_us: (rejected > 0).then_some(10.0),
            rejected_max_us: (rejected > 0).then_some(20.0),
        }
    }

    #[test]
    fn the_summary_finds_the_overload_and_the_recovery() {
        let mut rows = Vec::new();
        // Phase 0: 10 intervals at 100 per interval, p99 100 us (one noisy interval).
        for k in 0..10 {
            rows.push(row(0, k, 100, 0, Some(if k == 3 { 900.0 } else { 100.0 })));
        }
        // Phase 1: 4x the rate, half rejected, p99 50 ms.
        for k in 10..20 {
            rows.push(row(1, k, 400, 200, Some(50_000.0)));
        }
        // Phase 2: two intervals draining, then back; one noisy interval later.
        for k in 20..30 {
            let p = match k {
                20 => 30_000.0,
                21 => 5_000.0,
                26 => 250.0,
                _ => 120.0,
            };
            rows.push(row(2, k, 100, 0, Some(p)));
        }
        let rss: Vec<(f64, f64)> = (0..30)
            .map(|k| {
                (
                    1000.05 + k as f64 * 0.1,
                    if k == 15 { 9000.0 } else { 8000.0 },
                )
            })
            .collect();
        let s = summarize(&rows, &rss, None, 2.0);
        assert_eq!(s.overload, 1);
        assert_eq!(s.phases.len(), 3);
        assert_eq!((s.phases[1].sent, s.phases[1].rejected), (4000, 2000));
        assert_eq!(s.phases[1].rejected_max_us, Some(20.0));
        assert_eq!(s.phases[1].rejected_p50_us, Some(10.0));
        assert_eq!(s.phases[0].rejected_p50_us, None);
        assert_eq!(s.baseline_p99_us, Some(100.0));
        assert_eq!(s.bound_us, Some(200.0));
        assert!((s.overload_end_s.unwrap() - 2.0).abs() < 1e-9);
        // Interval 22 (2.2-2.3 s) is the first good one: 300 ms after the end.
        assert!((s.recovery_s.unwrap() - 0.3).abs() < 1e-9, "{s:?}");
        assert_eq!(s.bad_after_recovery, 1);
        assert_eq!((s.bad_in_baseline, s.baseline_intervals), (1, 10));
        assert_eq!(s.rss_steady_kib, Some(8000.0));
        assert_eq!(s.rss_peak_kib, Some(9000.0));
        assert_eq!(s.rss_after_kib, Some(8000.0));
        let text = s.to_string();
        assert!(text.contains("ended 300 ms after"), "{text}");
        // The overload phase can be named; a rejection spoils an interval.
        rows[22].rejected = 1;
        rows[22].ok -= 1;
        let s = summarize(&rows, &[], Some(1), 2.0);
        assert!((s.recovery_s.unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(s.rss_peak_kib, None);
        let svg = render_timeline(&rows, &rss, &s, Some("t")).unwrap();
        assert!(svg.starts_with("<svg"));
    }

    #[test]
    fn timeline_csv_rows_parse() {
        let text = format!(
            "{}\na,0,0.000,0.100,5.0,10,9,1,0,0,90000,1000,,,,,3.0,4.0\n\
             a,1,0.100,0.200,5.1,0,0,0,0,0,0,0,,,,,,\nb,0,0,1,,1,1,0,0,0,1,0,1,1,1,1,,\n",
            crate::measure::TIMELINE_HEADER
        );
        let t = Table::parse(&text).unwrap();
        let rows = timeline_rows(&t, None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].sent, rows[0].ok, rows[0].rejected), (10, 9, 1));
        assert_eq!(rows[0].p99_us, None);
        assert_eq!(rows[0].rejected_max_us, Some(4.0));
        assert_eq!(rows[0].rejected_p50_us, Some(3.0));
        assert_eq!(rows[1].phase, 1);
        assert_eq!(rows[1].unix_s, Some(5.1));
        assert_eq!(timeline_rows(&t, Some("b")).unwrap()[0].p99_us, Some(1.0));
        assert!(timeline_rows(&t, Some("c")).is_err());
        let rss = Table::parse("unix_s,rss_kib\n1.5,100\n").unwrap();
        assert_eq!(rss_samples(&rss).unwrap(), [(1.5, 100.0)]);
    }
}
