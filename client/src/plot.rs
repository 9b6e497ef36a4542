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
use std::path::Path;

use anyhow::{bail, Context};
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

/// Curves keyed by name for one panel, from several tables.
fn curves(
    tables: &[Table],
    opts: &PlotOptions,
    kind: PanelKind,
) -> anyhow::Result<BTreeMap<String, Vec<Pt>>> {
    let mut out: BTreeMap<String, Vec<Pt>> = BTreeMap::new();
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
            let total_rate: Option<f64> = r[offered].parse().ok();
            for r in pending.drain(..) {
                let is_all = r[ty] == persephone::report::ALL;
                if kind.per_run() != is_all && !(is_all && opts.overall) {
                    continue;
                }
                let x = match opts.x {
                    XAxis::Load => r[load].parse::<f64>().ok(),
                    XAxis::Rate => total_rate.or_else(|| r[offered].parse().ok()),
                };
                let Some(x) = x else { continue };
                let parts: &[&String] = if kind.per_run() {
                    &[&r[label], &r[policy]]
                } else {
                    &[&r[label], &r[policy], &r[ty]]
                };
                let name = parts
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let y = r[y_col].parse::<f64>().ok().map(|v| match kind {
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
    let all: Vec<BTreeMap<String, Vec<Pt>>> = opts
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

fn x_range(curves: &BTreeMap<String, Vec<Pt>>) -> std::ops::Range<f64> {
    let x_max = curves
        .values()
        .flatten()
        .map(|p| p.x)
        .fold(0.0f64, f64::max);
    0.0..(x_max * 1.05).max(1e-3)
}

fn panel_log<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &BTreeMap<String, Vec<Pt>>,
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
    curves: &BTreeMap<String, Vec<Pt>>,
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
    curves: &BTreeMap<String, Vec<Pt>>,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = pts.iter().filter_map(|p| p.y.map(|v| (p.x, v))).collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().filter_map(|p| {
                p.y.map(|v| {
                    let style = if p.valid {
                        color.filled()
                    } else {
                        color.stroke_width(1)
                    };
                    Circle::new((p.x, v), 3, style)
                })
            }))
            .map_err(draw_err)?;
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
            Table::parse(&text).with_context(|| format!("{}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let svg = render(&tables, opts)?;
    std::fs::write(out, svg).with_context(|| format!("--out: cannot write {}", out.display()))?;
    Ok(())
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
}
