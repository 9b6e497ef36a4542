//! plot.rs - `psp-client plot`: tail latency and slowdown against load, from one or more
//! result CSVs (measured by `psp-client` or simulated by `psp-sim`, same schema).
//!
//! One SVG with two panels: a latency quantile (µs) and the same slowdown quantile, both
//! on a log scale, against the offered load. There is one curve per (label, policy,
//! request type); points the producer marked invalid are drawn hollow. Rows without a
//! load (a `--rate` run without `--workers`) cannot be placed and are skipped.
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

/// What to draw.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Quantile column suffix: p50, p90, p99, p999, p9999, max, mean.
    pub quantile: String,
    /// Also draw each run's `ALL` row as a curve.
    pub overall: bool,
    pub title: Option<String>,
    pub size: (u32, u32),
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            quantile: "p999".into(),
            overall: false,
            title: None,
            size: (1400, 560),
        }
    }
}

/// One point of a curve.
#[derive(Debug, Clone, Copy)]
struct Pt {
    load: f64,
    latency_us: Option<f64>,
    slowdown: Option<f64>,
    valid: bool,
}

/// Curves keyed by name, from several tables.
fn curves(tables: &[Table], opts: &PlotOptions) -> anyhow::Result<BTreeMap<String, Vec<Pt>>> {
    let mut out: BTreeMap<String, Vec<Pt>> = BTreeMap::new();
    for t in tables {
        let c = |n: &str| t.col(n);
        let (label, policy, ty, load, valid) = (
            c("label")?,
            c("policy")?,
            c("type")?,
            c("load")?,
            c("valid")?,
        );
        let lat = c(&format!("latency_{}_us", opts.quantile))?;
        let sd = c(&format!("slowdown_{}", opts.quantile))?;
        for r in &t.rows {
            if r[ty] == persephone::report::ALL && !opts.overall {
                continue;
            }
            let Ok(x) = r[load].parse::<f64>() else {
                continue;
            };
            let name = [&r[label], &r[policy], &r[ty]]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            out.entry(name).or_default().push(Pt {
                load: x,
                latency_us: r[lat].parse().ok().filter(|v: &f64| *v > 0.0),
                slowdown: r[sd].parse().ok().filter(|v: &f64| *v > 0.0),
                valid: r[valid] != "false",
            });
        }
    }
    for pts in out.values_mut() {
        pts.sort_by(|a, b| a.load.total_cmp(&b.load));
    }
    Ok(out)
}

/// Renders the SVG for `tables` into a string.
pub fn render(tables: &[Table], opts: &PlotOptions) -> anyhow::Result<String> {
    let curves = curves(tables, opts)?;
    if curves.values().all(|v| v.is_empty()) {
        bail!("no rows with a load to plot (runs given as --rate need --workers)");
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, opts.size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = match &opts.title {
            Some(t) => root.titled(t, ("sans-serif", 22)).map_err(draw_err)?,
            None => root,
        };
        let panels = root.split_evenly((1, 2));
        let q = quantile_name(&opts.quantile);
        panel(
            &panels[0],
            &curves,
            |p| p.latency_us,
            &format!("{q} latency (µs)"),
        )?;
        panel(
            &panels[1],
            &curves,
            |p| p.slowdown,
            &format!("{q} slowdown"),
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

fn quantile_name(q: &str) -> String {
    match q {
        "p50" => "p50".into(),
        "p90" => "p90".into(),
        "p99" => "p99".into(),
        "p999" => "p99.9".into(),
        "p9999" => "p99.99".into(),
        other => other.into(),
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &BTreeMap<String, Vec<Pt>>,
    y: impl Fn(&Pt) -> Option<f64>,
    y_desc: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let xs = curves.values().flatten().map(|p| p.load);
    let x_max = xs.fold(0.0f64, f64::max).max(0.1) * 1.05;
    let ys: Vec<f64> = curves.values().flatten().filter_map(&y).collect();
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
        .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("offered load")
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
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = pts
            .iter()
            .filter_map(|p| y(p).map(|v| (p.load, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().filter_map(|p| {
                y(p).map(|v| {
                    let style = if p.valid {
                        color.filled()
                    } else {
                        color.stroke_width(1)
                    };
                    Circle::new((p.load, v), 3, style)
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
