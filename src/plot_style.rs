//! plot_style.rs - how a curve looks, the same in every figure (`psp-client plot`,
//! `psp-sim plot`): the colour and marker say which policy (or run), the dash says
//! which request type.
//!
//! A built-in policy keeps its colour from one figure to the next (DARC is always
//! blue, c-FCFS red, ...), and each colour has its own marker shape, so that two
//! curves lying exactly on top of each other (SJF and EDF often do) still show both
//! markers. A second curve group of the same policy (two labels, or `darc-r3` beside
//! `darc`) takes the next free colour rather than sharing one.

use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Colours, in the order free ones are handed out; the first five belong to the
/// built-in policies (see [`policy_color`]).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),  // blue: darc
    RGBColor(214, 39, 40),   // red: cfcfs
    RGBColor(44, 160, 44),   // green: sjf
    RGBColor(255, 127, 14),  // orange: edf
    RGBColor(148, 103, 189), // purple: dfcfs
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// The palette slots kept for the built-in policies (the first ones).
const POLICY_COLORS: usize = 5;

/// The palette slot a built-in policy always gets.
pub fn policy_color(policy: &str) -> Option<usize> {
    match policy {
        "darc" => Some(0),
        "cfcfs" => Some(1),
        "sjf" => Some(2),
        "edf" => Some(3),
        "dfcfs" => Some(4),
        _ => None,
    }
}

/// The shape drawn at each point of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Cross,
];

/// A curve's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    Solid,
    /// Dashes and gaps of this many pixels.
    Dashed(u32, u32),
}

const DASHES: [Dash; 6] = [
    Dash::Solid,
    Dash::Dashed(6, 4),
    Dash::Dashed(2, 3),
    Dash::Dashed(12, 3),
    Dash::Dashed(2, 8),
    Dash::Dashed(8, 8),
];

/// The dash of a curve over all types ([`crate::report::ALL`]), whatever types are
/// drawn beside it: the types' dashes then do not depend on whether it is.
const ALL_DASH: Dash = Dash::Dashed(20, 6);

/// How one curve is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub color: RGBColor,
    pub marker: Marker,
    pub dash: Dash,
}

/// One curve to style: `group` is what gets a colour of its own (a policy, or a run
/// label and its policy), `policy` the policy it ran (its fixed colour, if a built-in
/// one and still free), and `sub` what gets a dash of its own (a request type; empty
/// for a curve over all types).
#[derive(Debug, Clone, Copy)]
pub struct CurveId<'a> {
    pub group: &'a str,
    pub policy: &'a str,
    pub sub: &'a str,
}

/// The looks of `curves`, in their order. Groups get colours in order of first
/// appearance: their policy's own if it is free, else the first free palette slot
/// not kept for a built-in policy, else any free one (the palette is reused, with the
/// next marker, past ten groups). Subs get dashes in order of first appearance, the
/// first one solid; [`ALL`](crate::report::ALL) has a dash of its own.
pub fn looks(curves: &[CurveId<'_>]) -> Vec<Look> {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut subs: Vec<&str> = Vec::new();
    let mut taken = [false; PALETTE.len()];
    let mut extra = 0; // groups beyond the palette
    curves
        .iter()
        .map(|c| {
            let slot = match groups.iter().find(|g| g.0 == c.group) {
                Some(&(_, s)) => s,
                None => {
                    // The built-in policies' colours are handed out to others last.
                    let free = (POLICY_COLORS..PALETTE.len())
                        .chain(0..POLICY_COLORS)
                        .find(|&s| !taken[s]);
                    let s = match (policy_color(c.policy).filter(|&s| !taken[s]), free) {
                        (Some(s), _) | (None, Some(s)) => s,
                        (None, None) => {
                            extra += 1;
                            PALETTE.len() + extra - 1
                        }
                    };
                    if s < PALETTE.len() {
                        taken[s] = true;
                    }
                    groups.push((c.group, s));
                    s
                }
            };
            let dash = if c.sub == crate::report::ALL {
                ALL_DASH
            } else {
                let d = match subs.iter().position(|s| *s == c.sub) {
                    Some(d) => d,
                    None => {
                        subs.push(c.sub);
                        subs.len() - 1
                    }
                };
                DASHES[d % DASHES.len()]
            };
            Look {
                color: PALETTE[slot % PALETTE.len()],
                // Past the palette, the same colour comes back with another marker.
                marker: MARKERS[(slot % PALETTE.len() + slot / PALETTE.len()) % MARKERS.len()],
                dash,
            }
        })
        .collect()
}

/// Draws one curve into `chart`: the line through `line`, a marker at each of `marks`
/// (filled, or an outline where the flag is false: a point that failed its run's
/// checks), and its legend entry `name` (a stretch of the line with the marker on it).
pub fn draw_curve<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    look: Look,
    name: String,
    line: Vec<(f64, f64)>,
    marks: impl Iterator<Item = ((f64, f64), bool)>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let (line_style, fill) = (look.color.stroke_width(2), look.color.filled());
    let anno = match look.dash {
        Dash::Solid => chart.draw_series(LineSeries::new(line, line_style))?,
        Dash::Dashed(on, off) => {
            chart.draw_series(DashedLineSeries::new(line, on, off, line_style))?
        }
    };
    anno.label(name);
    // Filled, or an outline for a point that failed its checks.
    let point = move |ok: bool| if ok { fill } else { look.color.stroke_width(1) };
    // A cross has no inside: a failed point's is thin and pale instead.
    let cross = move |ok: bool| {
        if ok {
            line_style
        } else {
            look.color.mix(0.5).stroke_width(1)
        }
    };
    // The legend's sample: a stretch of the line, in its own dash (its whole length
    // tells the dashes apart), with the marker in the middle.
    const W: i32 = 26;
    let marks: Vec<_> = marks.collect();
    if marks.is_empty() {
        // A line alone (a step function's corners are no data points): so is its
        // legend sample.
        match look.dash {
            Dash::Solid => {
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + W, y)], line_style))
            }
            Dash::Dashed(on, off) => anno.legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + W, y)], on, off, line_style)
            }),
        };
        return Ok(());
    }
    // Each marker and dash is its own element type, hence one arm per pair (an
    // element boxed as `DynElement` cannot be drawn on a backend that borrows).
    macro_rules! curve {
        ($marker:expr, $legend:expr) => {{
            match look.dash {
                Dash::Solid => anno.legend(move |at| {
                    EmptyElement::at(at)
                        + PathElement::new(vec![(0, 0), (W, 0)], line_style)
                        + $legend
                }),
                Dash::Dashed(on, off) => anno.legend(move |at| {
                    EmptyElement::at(at)
                        + DashedPathElement::new(vec![(0, 0), (W, 0)], on, off, line_style)
                        + $legend
                }),
            };
            chart.draw_series(marks.into_iter().map(|(at, ok)| $marker(at, ok)))?;
        }};
    }
    let m = W / 2;
    match look.marker {
        Marker::Circle => curve!(
            |at, ok| Circle::new(at, 3, point(ok)),
            Circle::new((m, 0), 3, fill)
        ),
        Marker::Triangle => curve!(
            |at, ok| TriangleMarker::new(at, 4, point(ok)),
            TriangleMarker::new((m, 0), 4, fill)
        ),
        Marker::Square => curve!(
            |at, ok| EmptyElement::at(at) + Rectangle::new([(-3, -3), (3, 3)], point(ok)),
            Rectangle::new([(m - 3, -3), (m + 3, 3)], fill)
        ),
        Marker::Cross => curve!(
            |at, ok| Cross::new(at, 4, cross(ok)),
            Cross::new((m, 0), 4, line_style)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(group: &'a str, policy: &'a str, sub: &'a str) -> CurveId<'a> {
        CurveId { group, policy, sub }
    }

    #[test]
    fn a_policy_keeps_its_colour_whatever_else_is_drawn() {
        let a = looks(&[id("darc", "darc", "SHORT"), id("sjf", "sjf", "SHORT")]);
        let b = looks(&[
            id("cfcfs", "cfcfs", "LONG"),
            id("edf", "edf", "LONG"),
            id("sjf", "sjf", "LONG"),
            id("darc", "darc", "LONG"),
        ]);
        assert_eq!(a[0].color, b[3].color, "darc");
        assert_eq!(a[1].color, b[2].color, "sjf");
        let colors: Vec<_> = b.iter().map(|l| l.color).collect();
        for (i, c) in colors.iter().enumerate() {
            assert!(!colors[..i].contains(c), "two policies share {c:?}");
        }
        // SJF and EDF, which often overlap exactly, differ in their markers too.
        assert_ne!(b[1].marker, b[2].marker);
    }

    #[test]
    fn a_group_has_one_colour_and_a_type_one_dash() {
        let l = looks(&[
            id("darc", "darc", "LONG"),
            id("darc", "darc", "SHORT"),
            id("cfcfs", "cfcfs", "LONG"),
            id("cfcfs", "cfcfs", "SHORT"),
        ]);
        assert_eq!(l[0].color, l[1].color);
        assert_eq!(l[2].color, l[3].color);
        assert_ne!(l[0].color, l[2].color);
        assert_eq!(l[0].dash, l[2].dash);
        assert_eq!(l[1].dash, l[3].dash);
        assert_ne!(l[0].dash, l[1].dash);
        assert_eq!(l[0].dash, Dash::Solid);
        // A curve over all types beside them changes no type's dash.
        let with_all = looks(&[
            id("darc", "darc", crate::report::ALL),
            id("darc", "darc", "LONG"),
            id("darc", "darc", "SHORT"),
        ]);
        assert_eq!(with_all[1].dash, l[0].dash);
        assert_eq!(with_all[2].dash, l[1].dash);
        assert!(!DASHES.contains(&with_all[0].dash));
    }

    #[test]
    fn groups_of_one_policy_get_their_own_colours() {
        let l = looks(&[
            id("run-a darc", "darc", ""),
            id("run-b darc", "darc", ""),
            id("darc-r3", "darc-r3", ""),
        ]);
        assert_eq!(l[0].color, PALETTE[0]);
        assert_ne!(l[1].color, l[0].color);
        // Nor do they take another built-in policy's colour while others are free.
        for other in &l[1..] {
            assert!(!PALETTE[..POLICY_COLORS].contains(&other.color));
        }
        assert_ne!(l[2].color, l[0].color);
        assert_ne!(l[2].color, l[1].color);
    }

    #[test]
    fn past_the_palette_a_colour_comes_back_with_another_marker() {
        let names: Vec<String> = (0..=PALETTE.len()).map(|i| format!("p{i}")).collect();
        let ids: Vec<CurveId<'_>> = names.iter().map(|n| id(n, n, "")).collect();
        let l = looks(&ids);
        let again = l[PALETTE.len()];
        assert!(
            l[..PALETTE.len()].iter().any(|x| x.color == again.color),
            "the eleventh group has a colour of its own"
        );
        for (i, a) in l.iter().enumerate() {
            for b in &l[..i] {
                assert!(
                    a.color != b.color || a.marker != b.marker,
                    "two groups look alike"
                );
            }
        }
    }
}
