//! sim/plot.rs - the simulator's own figures (SVG): per-type tails across policies, the
//! DARC reservation sweep, and a phased run's timeline. Load sweeps are drawn by
//! `psp-client plot` from the same `sim.csv`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::plot_style::{self, CurveId};

/// A CSV file as a header and rows of cells (RFC 4180 quoting).
#[derive(Debug, Clone, Default)]
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Csv> {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut lines = text.lines().filter(|l| !l.is_empty()).map(split_csv_line);
        let header = lines.next().unwrap_or_default();
        Ok(Csv {
            header,
            rows: lines.collect(),
        })
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no column {name:?}"))
    }
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// A chart found no point to draw (the run's output holds another kind of data): its
/// title, if any.
#[derive(Debug)]
pub struct NothingToPlot(pub String);

impl std::fmt::Display for NothingToPlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("nothing to plot")
        } else {
            write!(f, "{}: nothing to plot", self.0)
        }
    }
}

impl std::error::Error for NothingToPlot {}

/// A named curve, and what its look stands for (see [`crate::plot_style`]): its
/// policy (a colour; empty: the curve's own) and its request type (a dash).
#[derive(Debug, Clone, Default)]
struct Series {
    name: String,
    policy: String,
    ty: String,
    pts: Vec<(f64, f64)>,
}

/// One chart in `area`: curves with markers, a log or linear y axis, optional
/// categorical x labels, and optional vertical marks.
#[allow(clippy::too_many_arguments)]
fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    log_y: bool,
    series: &[Series],
    x_labels: Option<&[String]>,
    marks: &[f64],
    step: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let pts = series.iter().flat_map(|s| s.pts.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if !log_y || y > 0.0 {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 || y0 > y1 {
        return Err(NothingToPlot(title.to_string()).into());
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if x_labels.is_some() {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let mut b = ChartBuilder::on(area);
    b.caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let labels = x_labels.map(<[String]>::to_vec);
    // A category's label at its integer position; ticks computed as a float sum land
    // a hair off it (0.2 * 5 - 1.0 is not 0.0), hence the tolerance.
    let fmt_x = move |x: &f64| match &labels {
        Some(l) if (x - x.round()).abs() < 1e-6 && x.round() >= 0.0 => {
            l.get(x.round() as usize).cloned().unwrap_or_default()
        }
        Some(_) => String::new(),
        None => format!("{x}"),
    };
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&fmt_x)
                .draw()?;
            let ids: Vec<CurveId<'_>> = series
                .iter()
                .map(|s| CurveId {
                    group: if s.policy.is_empty() {
                        &s.name
                    } else {
                        &s.policy
                    },
                    policy: &s.policy,
                    sub: &s.ty,
                })
                .collect();
            for (s, look) in series.iter().zip(plot_style::looks(&ids)) {
                let pts = &s.pts;
                let mut line: Vec<(f64, f64)> = Vec::new();
                for w in pts.windows(2) {
                    line.push(w[0]);
                    if step {
                        line.push((w[1].0, w[0].1));
                    }
                }
                line.extend(pts.last());
                // A step function's corners are not data points: no markers.
                let marks = pts.iter().filter(|_| !step).map(|&p| (p, true));
                plot_style::draw_curve(&mut c, look, s.name.clone(), line, marks)?;
            }
            for &m in marks {
                c.draw_series(LineSeries::new(
                    vec![(m, y0), (m, y1)],
                    BLACK.mix(0.3).stroke_width(1),
                ))?;
            }
            c.configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    if log_y {
        draw!(b.build_cartesian_2d(x0..x1, (y0 * 0.8..y1 * 1.25).log_scale())?);
    } else {
        let pad = (y1 - y0).max(1.0) * 0.08;
        draw!(b.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?);
    }
    Ok(())
}

/// A cell's value if it is a finite number (an infinite one would make an axis
/// range endless).
fn num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Per-type `quantile` slowdown (or latency) of each policy at one load, from `sim.csv`:
/// one curve per policy across the types (TPC-C's per-type p99.9). `load` picks one of
/// several loads; a run of several loads (or worker counts) and no choice is an error
/// naming them, not one chart of them all.
pub fn per_type(
    csv: &Path,
    out: &Path,
    metric: &str,
    title: &str,
    load: Option<f64>,
) -> Result<()> {
    let t = Csv::read(csv)?;
    let (pc, tc, mc) = (t.col("policy")?, t.col("type")?, t.col(metric)?);
    let (lc, wc) = (t.col("load")?, t.col("workers")?);
    let picked =
        |r: &Vec<String>| load.is_none_or(|l| num(&r[lc]).is_some_and(|x| (x - l).abs() < 1e-9));
    let mut points: Vec<(&str, &str)> = t
        .rows
        .iter()
        .filter(|r| picked(r))
        .map(|r| (r[lc].as_str(), r[wc].as_str()))
        .collect();
    points.sort_unstable();
    points.dedup();
    if let (Some(l), true) = (load, points.is_empty()) {
        let mut loads: Vec<&str> = t.rows.iter().map(|r| r[lc].as_str()).collect();
        loads.sort_unstable_by(|a, b| num(a).unwrap_or(0.0).total_cmp(&num(b).unwrap_or(0.0)));
        loads.dedup();
        anyhow::bail!(
            "--load {l}: {} has no run point at that load (its loads: {})",
            csv.display(),
            loads.join(", ")
        );
    }
    if points.len() > 1 {
        let list: Vec<String> = points
            .iter()
            .map(|(l, w)| format!("load {l} on {w} workers"))
            .collect();
        anyhow::bail!(
            "{} holds {} run points ({}): a per-type figure draws one (pick a load with \
             --load, or run psp-sim at one load and one worker count)",
            csv.display(),
            points.len(),
            list.join(", ")
        );
    }
    let mut types: Vec<String> = Vec::new();
    let mut by_policy: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &t.rows {
        if r[tc] == crate::report::ALL || !picked(r) {
            continue;
        }
        let i = match types.iter().position(|x| *x == r[tc]) {
            Some(i) => i,
            None => {
                types.push(r[tc].clone());
                types.len() - 1
            }
        };
        if let Some(v) = num(&r[mc]) {
            by_policy
                .entry(r[pc].clone())
                .or_default()
                .push((i as f64, v));
        }
    }
    let series: Vec<Series> = by_policy
        .into_iter()
        .map(|(policy, pts)| Series {
            name: policy.clone(),
            policy,
            ty: String::new(),
            pts,
        })
        .collect();
    let root = SVGBackend::new(out, (800, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    chart(
        &root,
        title,
        "request type",
        metric,
        true,
        &series,
        Some(&types),
        &[],
        false,
    )?;
    root.present()?;
    Ok(())
}

/// DARC's reservation sweep: `metric` per type against the cores reserved to the
/// shortest group (policies named `darc-rK` in `sim.csv`).
pub fn reservation_sweep(csv: &Path, out: &Path, metric: &str, title: &str) -> Result<()> {
    let t = Csv::read(csv)?;
    let (pc, tc, mc) = (t.col("policy")?, t.col("type")?, t.col(metric)?);
    let mut by_type: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &t.rows {
        let Some(k) = r[pc].strip_prefix("darc-r").and_then(num) else {
            continue;
        };
        if let Some(v) = num(&r[mc]) {
            by_type.entry(r[tc].clone()).or_default().push((k, v));
        }
    }
    let mut series: Vec<Series> = by_type
        .into_iter()
        .map(|(ty, pts)| Series {
            name: ty.clone(),
            policy: String::new(),
            ty,
            pts,
        })
        .collect();
    for s in &mut series {
        s.pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let root = SVGBackend::new(out, (800, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    chart(
        &root,
        title,
        "workers reserved to the shortest group (n_resas)",
        metric,
        true,
        &series,
        None,
        &[],
        false,
    )?;
    root.present()?;
    Ok(())
}

/// A phased run over time: per-type p99.9 latency per policy (top) and DARC's cores
/// reserved per type (bottom), from `timeline.csv` and `reservations.csv`;
/// `phase_ms` marks phase boundaries.
pub fn timeline(dir: &Path, out: &Path, phase_ms: &[f64], title: &str) -> Result<()> {
    let t = Csv::read(&dir.join("timeline.csv"))?;
    let (pc, tc, xc, yc) = (
        t.col("policy")?,
        t.col("type")?,
        t.col("t_us")?,
        t.col("latency_p999_us")?,
    );
    let mut lat: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &t.rows {
        if let (Some(x), Some(y)) = (num(&r[xc]), num(&r[yc])) {
            lat.entry((r[pc].clone(), r[tc].clone()))
                .or_default()
                .push((x / 1e3, y));
        }
    }
    let rs = Csv::read(&dir.join("reservations.csv"))?;
    let (rp, rt, rx, rn) = (
        rs.col("policy")?,
        rs.col("types")?,
        rs.col("t_us")?,
        rs.col("n_reserved")?,
    );
    // Cores reserved to the group holding each type, as a step function over time.
    let end_ms = lat
        .values()
        .flat_map(|v| v.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let mut resa: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut times: Vec<f64> = Vec::new();
    for r in rs.rows.iter().filter(|r| r[rp].starts_with("darc")) {
        if let Some(x) = num(&r[rx]) {
            times.push(x / 1e3);
        }
    }
    times.dedup();
    let all_types: Vec<String> = {
        let mut v: Vec<String> = rs
            .rows
            .iter()
            .flat_map(|r| r[rt].split('+').map(String::from).collect::<Vec<_>>())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for &at in &times {
        for ty in &all_types {
            let n = rs
                .rows
                .iter()
                .filter(|r| r[rp].starts_with("darc") && num(&r[rx]).map(|x| x / 1e3) == Some(at))
                .find(|r| r[rt].split('+').any(|x| x == ty))
                .and_then(|r| num(&r[rn]))
                .unwrap_or(0.0);
            resa.entry(ty.clone()).or_default().push((at, n));
        }
    }
    for v in resa.values_mut() {
        if let Some(&(_, n)) = v.last() {
            v.push((end_ms, n));
        }
    }
    let root = SVGBackend::new(out, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(560);
    let lat: Vec<Series> = lat
        .into_iter()
        .map(|((policy, ty), pts)| Series {
            name: format!("{policy} {ty}"),
            policy,
            ty,
            pts,
        })
        .collect();
    chart(
        &top,
        title,
        "time (ms)",
        "p99.9 latency per window (µs)",
        true,
        &lat,
        None,
        phase_ms,
        false,
    )?;
    // One colour per type here (no policy), dashed as the type is above.
    let resa: Vec<Series> = resa
        .into_iter()
        .map(|(ty, pts)| Series {
            name: format!("cores reserved to {ty}'s group"),
            policy: String::new(),
            ty,
            pts,
        })
        .collect();
    chart(
        &bottom,
        "DARC reservation",
        "time (ms)",
        "workers",
        false,
        &resa,
        None,
        phase_ms,
        true,
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line("a,\"b,c\",\"d\"\"e\","),
            vec!["a", "b,c", "d\"e", ""]
        );
    }
}
