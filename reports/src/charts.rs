//! Inline SVG charts for `index.html`, drawn with plotters' SVG backend into strings.
//!
//! - [`latency_chart`]: round-trip percentiles (p50 … max) of the latency cases of one
//!   scenario, one line per case, on a log time axis.
//! - [`sweep_charts`]: for cases of one scenario that differ in one numeric parameter, a
//!   key metric against that parameter, one line per combination of the others.
//! - [`timeline`]: the three lanes of a stream case — writes, segments, reads — in time
//!   order, boxes labelled with stream byte ranges, bands showing where each write's bytes
//!   went.
//!
//! plotters is built without font features: its SVG backend writes `<text>` elements and
//! the browser picks the font, so nothing depends on fonts installed where socklab runs.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use socklab_harness::check::format_number;
use socklab_harness::metrics::LatencySummary;
use socklab_harness::report::{CaseResult, IoEvent, StreamTrace, Unit};

/// Line and band colours, one per case or per write (cycled).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const FONT: &str = "sans-serif";
/// plotters writes `font-size` as size / 1.24; these give 13 px and 11 px text.
const TEXT: f64 = 16.0;
const SMALL: f64 = 13.6;
/// Events shown per timeline lane at most; [`shown_note`] says when a lane has more.
pub const MAX_LANE_UNITS: usize = 40;

fn color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// Renders a drawing into an SVG string; `None` if plotters fails (it only fails on
/// impossible coordinates, so a missing chart is the honest fallback).
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Option<()>,
) -> Option<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(&root)?;
        root.present().ok()?;
    }
    Some(out)
}

/// Percentile chart of `series` (label, summary), one line each.
pub fn latency_chart(series: &[(String, LatencySummary)]) -> Option<String> {
    const POINTS: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
    let values = |s: &LatencySummary| {
        [s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns].map(|ns| (ns.max(1) as f64) / 1e6)
    };
    let all: Vec<f64> = series.iter().flat_map(|(_, s)| values(s)).collect();
    if all.is_empty() {
        return None;
    }
    let low = all.iter().copied().fold(f64::MAX, f64::min) / 2.0;
    let high = all.iter().copied().fold(0.0, f64::max) * 2.0;
    let height = 320 + 18 * series.len() as u32;
    svg((760, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .caption("Round-trip latency by percentile", (FONT, TEXT))
            .build_cartesian_2d(-0.3f64..4.3f64, (low..high).log_scale())
            .ok()?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && (0.0..5.0).contains(&i) {
                    POINTS[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("ms (log scale)")
            .y_label_formatter(&|y| format_number(*y))
            .label_style((FONT, SMALL))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .ok()?;
        for (index, (label, summary)) in series.iter().enumerate() {
            let c = color(index);
            let points: Vec<(f64, f64)> =
                values(summary).iter().enumerate().map(|(i, v)| (i as f64, *v)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .ok()?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled()))).ok()?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, SMALL))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .ok()
    })
}

/// A chart of one metric against one swept parameter.
pub struct SweepChart {
    /// `throughput against read_size`.
    pub title: String,
    /// The SVG.
    pub svg: String,
}

/// For the cases of one scenario: the numeric parameter that varies across the most
/// cases while everything else stays put, and a chart per key metric (at most 3) with
/// one line per combination of the other parameters.
pub fn sweep_charts(cases: &[&CaseResult]) -> Vec<SweepChart> {
    let Some((param, groups)) = best_sweep(cases) else { return Vec::new() };
    let key_metrics: Vec<(String, Unit)> = {
        let mut names: Vec<(String, Unit)> = Vec::new();
        for case in cases {
            for m in case.metrics.iter().filter(|m| m.key) {
                if !names.iter().any(|(n, _)| n == &m.name) {
                    names.push((m.name.clone(), m.unit));
                }
            }
        }
        names.into_iter().take(3).collect()
    };
    let mut charts = Vec::new();
    for (metric, unit) in key_metrics {
        let lines: Vec<(String, Vec<(f64, f64)>)> = groups
            .iter()
            .map(|(label, members)| {
                let points = members
                    .iter()
                    .filter_map(|(x, case)| case.metric(&metric).map(|m| (*x, m.value)))
                    .collect::<Vec<_>>();
                (label.clone(), points)
            })
            .filter(|(_, points)| points.len() >= 2)
            .collect();
        if lines.is_empty() {
            continue;
        }
        let unit_text =
            if unit.suffix().is_empty() { String::new() } else { format!(" ({})", unit.suffix()) };
        let title = format!("{metric}{unit_text} against {param}");
        if let Some(svg) = line_chart(&title, &param, &lines) {
            charts.push(SweepChart { title, svg });
        }
    }
    charts
}

type SweepGroups<'a> = Vec<(String, Vec<(f64, &'a CaseResult)>)>;

fn best_sweep<'a>(cases: &[&'a CaseResult]) -> Option<(String, SweepGroups<'a>)> {
    let numeric: Vec<String> =
        cases.first()?.params.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k.clone()).collect();
    let mut best: Option<(String, SweepGroups<'a>, usize)> = None;
    for param in numeric {
        let mut groups: BTreeMap<String, Vec<(f64, &CaseResult)>> = BTreeMap::new();
        for case in cases {
            let Some(x) = case.params.get(&param).and_then(Value::as_f64) else { continue };
            let rest: Vec<String> = case
                .set_params
                .iter()
                .filter(|(k, _)| **k != param)
                .map(|(k, v)| format!("{k}={}", socklab_harness::suite::value_text(v)))
                .collect();
            groups.entry(rest.join(", ")).or_default().push((x, case));
        }
        let mut groups: SweepGroups<'a> = groups
            .into_iter()
            .filter(|(_, members)| {
                let mut xs: Vec<f64> = members.iter().map(|(x, _)| *x).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                xs.len() >= 2 && xs.len() == members.len()
            })
            .collect();
        for (_, members) in &mut groups {
            members.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let points: usize = groups.iter().map(|(_, m)| m.len()).sum();
        if points > best.as_ref().map_or(0, |b| b.2) {
            best = Some((param, groups, points));
        }
    }
    let (param, groups, _) = best?;
    let groups = groups
        .into_iter()
        .map(|(label, members)| (if label.is_empty() { "all".to_string() } else { label }, members))
        .take(PALETTE.len())
        .collect();
    Some((param, groups))
}

fn line_chart(title: &str, x_name: &str, lines: &[(String, Vec<(f64, f64)>)]) -> Option<String> {
    let xs: Vec<f64> = lines.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).collect();
    let ys: Vec<f64> = lines.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).collect();
    let (x_min, x_max) =
        (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max));
    let y_max = ys.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_min = ys.iter().copied().fold(f64::MAX, f64::min).min(0.0);
    let log_x = x_min > 0.0 && x_max / x_min >= 16.0;
    let height = 300 + 18 * lines.len() as u32;
    svg((760, height), |root| {
        let builder = |root| {
            let mut b = ChartBuilder::on(root);
            b.margin(12).x_label_area_size(40).y_label_area_size(72).caption(title, (FONT, TEXT));
            b
        };
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_name)
                    .x_label_formatter(&|x| format_number(*x))
                    .y_label_formatter(&|y| short_number(*y))
                    .label_style((FONT, SMALL))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()
                    .ok()?;
                for (index, (label, points)) in lines.iter().enumerate() {
                    let c = color(index);
                    chart
                        .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                        .ok()?
                        .label(label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
                    chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled()))).ok()?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .label_font((FONT, SMALL))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .draw()
                    .ok()
            }};
        }
        if log_x {
            finish!(builder(root).build_cartesian_2d((x_min..x_max).log_scale(), y_min..y_max).ok()?)
        } else {
            let pad = ((x_max - x_min) * 0.05).max(1e-9);
            finish!(builder(root).build_cartesian_2d((x_min - pad)..(x_max + pad), y_min..y_max).ok()?)
        }
    })
}

/// 1234567 → `1.23M`: axis labels that fit.
fn short_number(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = match abs {
        a if a >= 1e9 => (value / 1e9, "G"),
        a if a >= 1e6 => (value / 1e6, "M"),
        a if a >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    format!("{}{suffix}", format_number((scaled * 100.0).round() / 100.0))
}

/// One unit of a timeline lane: where it sits in the stream and in time.
struct Unit3 {
    lane: usize,
    index: usize,
    start: usize,
    end: usize,
    at_us: f64,
    text: String,
}

const LANES: [&str; 3] = ["writes", "segments", "reads"];
const LANE_TOP: [i32; 3] = [48, 168, 288];
const BOX_H: i32 = 58;
const LEFT: i32 = 92;
const COLUMN: i32 = 84;

/// The three-lane timeline of a stream case. `segments_note` is shown in the segments
/// lane when the trace has no segments (capture unavailable, say). When the trace holds
/// only part of the case, or a lane is cut at [`MAX_LANE_UNITS`], a line under the lanes
/// says what is shown ([`shown_note`]).
pub fn timeline(trace: &StreamTrace, segments_note: &str) -> Option<String> {
    let lanes: [&[IoEvent]; 3] = [&trace.writes, &trace.segments, &trace.reads];
    let mut units = Vec::new();
    for (lane, events) in lanes.iter().enumerate() {
        let mut offset = 0;
        for (index, event) in events.iter().enumerate() {
            if index >= MAX_LANE_UNITS {
                break;
            }
            units.push(Unit3 {
                lane,
                index,
                start: offset,
                end: offset + event.len,
                at_us: event.at_us,
                text: event.text.clone(),
            });
            offset += event.len;
        }
    }
    if units.is_empty() {
        return None;
    }
    // One column per unit, in time order (writes before the segments and reads they
    // cause when times tie).
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| units[a].at_us.total_cmp(&units[b].at_us).then(units[a].lane.cmp(&units[b].lane)));
    let mut column = vec![0i32; units.len()];
    for (col, &unit) in order.iter().enumerate() {
        column[unit] = col as i32;
    }
    let write_ranges: Vec<(usize, usize)> =
        units.iter().filter(|u| u.lane == 0).map(|u| (u.start, u.end)).collect();
    let width = (LEFT + COLUMN * units.len() as i32 + 24).max(720);
    let note = shown_note(trace);
    let height = if note.is_some() { 418 } else { 400 };
    svg((width as u32, height as u32), |root| {
        let text = |size: f64| TextStyle::from((FONT, size).into_font()).color(&BLACK);
        let grey = RGBColor(110, 110, 110);
        let x_of = |unit: &Unit3, byte: usize| {
            let left =
                LEFT + column[units.iter().position(|u| std::ptr::eq(u, unit)).unwrap_or(0)] * COLUMN + 4;
            let len = (unit.end - unit.start).max(1);
            left + ((COLUMN - 8) as f64 * (byte - unit.start) as f64 / len as f64).round() as i32
        };
        // Lane names and guide lines.
        for (lane, name) in LANES.iter().enumerate() {
            let y = LANE_TOP[lane];
            root.draw(&Text::new(name.to_string(), (8, y + BOX_H / 2 - 8), text(TEXT))).ok()?;
            root.draw(&PathElement::new(
                vec![(LEFT, y + BOX_H / 2), (width - 12, y + BOX_H / 2)],
                RGBColor(230, 230, 230),
            ))
            .ok()?;
        }
        if trace.segments.is_empty() {
            let y = LANE_TOP[1] + BOX_H / 2 - 8;
            root.draw(&Text::new(segments_note.to_string(), (LEFT + 8, y), text(SMALL).color(&grey))).ok()?;
        }
        // Bands between adjacent shown lanes: each shared stream byte range, split by
        // the write it came from, coloured by that write.
        let shown: Vec<usize> = (0..3).filter(|&l| units.iter().any(|u| u.lane == l)).collect();
        for pair in shown.windows(2) {
            let (upper, lower) = (pair[0], pair[1]);
            for a in units.iter().filter(|u| u.lane == upper) {
                for b in units.iter().filter(|u| u.lane == lower) {
                    let (s, e) = (a.start.max(b.start), a.end.min(b.end));
                    if s >= e {
                        continue;
                    }
                    for (w, &(ws, we)) in write_ranges.iter().enumerate() {
                        let (s, e) = (s.max(ws), e.min(we));
                        if s >= e {
                            continue;
                        }
                        let (top, bottom) = (LANE_TOP[upper] + BOX_H, LANE_TOP[lower]);
                        let band = vec![
                            (x_of(a, s), top),
                            (x_of(a, e), top),
                            (x_of(b, e), bottom),
                            (x_of(b, s), bottom),
                        ];
                        root.draw(&Polygon::new(band, color(w).mix(0.35))).ok()?;
                    }
                }
            }
        }
        // Boxes: filled with the colours of the writes whose bytes they hold.
        for unit in &units {
            let x0 = x_of(unit, unit.start);
            let x1 = x0 + COLUMN - 8;
            let y0 = LANE_TOP[unit.lane];
            for (w, &(ws, we)) in write_ranges.iter().enumerate() {
                let (s, e) = (unit.start.max(ws), unit.end.min(we));
                if s < e {
                    let fill = if unit.lane == 0 { color(w).mix(0.3) } else { color(w).mix(0.18) };
                    root.draw(&Rectangle::new(
                        [(x_of(unit, s), y0), (x_of(unit, e).max(x_of(unit, s) + 1), y0 + BOX_H)],
                        fill.filled(),
                    ))
                    .ok()?;
                }
            }
            root.draw(&Rectangle::new([(x0, y0), (x1, y0 + BOX_H)], RGBColor(60, 60, 60).stroke_width(1)))
                .ok()?;
            let name = ["w", "s", "r"][unit.lane];
            let cx = (x0 + x1) / 2;
            let centered = |size| {
                text(size).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ))
            };
            root.draw(&Text::new(
                format!("{name}{} [{}..{})", unit.index, unit.start, unit.end),
                (cx, y0 + 5),
                centered(SMALL),
            ))
            .ok()?;
            root.draw(&Text::new(
                clip(&unit.text, 11),
                (cx, y0 + 22),
                centered(SMALL).color(&RGBColor(30, 30, 90)),
            ))
            .ok()?;
            root.draw(&Text::new(
                format!("{} ms", format_number(unit.at_us / 1e3)),
                (cx, y0 + 39),
                centered(SMALL).color(&grey),
            ))
            .ok()?;
        }
        // Gaps in time between neighbouring columns: a dashed line and the gap.
        for pair in order.windows(2) {
            let gap_us = units[pair[1]].at_us - units[pair[0]].at_us;
            if gap_us >= 1_000.0 {
                let x = LEFT + column[pair[1]] * COLUMN;
                for y in (30..376).step_by(8) {
                    root.draw(&PathElement::new(vec![(x, y), (x, y + 4)], RGBColor(170, 170, 170))).ok()?;
                }
                root.draw(&Text::new(
                    format!("+{} ms", format_number((gap_us / 100.0).round() / 10.0)),
                    (x + 3, 14),
                    text(SMALL).color(&RGBColor(200, 60, 30)),
                ))
                .ok()?;
            }
        }
        if let Some(note) = &note {
            root.draw(&Text::new(note.clone(), (8, 382), text(SMALL).color(&RGBColor(160, 40, 20)))).ok()?;
        }
        let footer = "time runs left to right, one column per event; [a..b) = stream bytes; bands show where each write's bytes went";
        root.draw(&Text::new(footer, (8, height - 18), text(SMALL).color(&grey))).ok()
    })
}

/// What part of the case a timeline shows, when not all of it: `Shown: the first 3 of 20
/// requests` (the trace is an excerpt), `the first 40 of 57 reads` (a lane was cut).
pub fn shown_note(trace: &StreamTrace) -> Option<String> {
    let lanes: [(&[IoEvent], &str); 3] =
        [(&trace.writes, "writes"), (&trace.segments, "segments"), (&trace.reads, "reads")];
    let mut parts: Vec<String> = trace.excerpt.iter().map(|e| format!("the {}", e.describe())).collect();
    parts.extend(
        lanes
            .iter()
            .filter(|(events, _)| events.len() > MAX_LANE_UNITS)
            .map(|(events, name)| format!("the first {MAX_LANE_UNITS} of {} {name}", events.len())),
    );
    (!parts.is_empty()).then(|| format!("Shown: {}.", parts.join("; ")))
}

/// At most `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socklab_harness::boundary::BoundaryMap;
    use socklab_harness::report::TraceExcerpt;

    fn event(at_us: f64, text: &str) -> IoEvent {
        IoEvent { at_us, len: text.len(), text: text.to_string() }
    }

    #[test]
    fn the_timeline_has_a_box_per_unit_and_escapes_text() {
        let trace = StreamTrace {
            writes: vec![event(1.0, "1234567"), event(2.0, "a<b>&"), event(3.0, "hhhhh")],
            segments: vec![event(1.5, "1234567"), event(3.5, "a<b>&hhhhh")],
            reads: vec![
                event(50_000.0, "12345"),
                event(50_001.0, "67a<b"),
                event(50_002.0, ">&hhh"),
                event(50_003.0, "hh"),
            ],
            boundary_map: BoundaryMap::compute(&[7, 5, 5], &[5, 5, 5, 2]),
            ..StreamTrace::default()
        };
        let svg = timeline(&trace, "").unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<rect").count() - 1 >= 9, true, "a frame per unit");
        assert!(svg.contains("w1 [7..12)") && svg.contains("s1 [7..17)") && svg.contains("r3 [15..17)"));
        assert!(svg.contains("a&lt;b&gt;&amp;") && !svg.contains("a<b>"));
        assert!(svg.contains("+50 ms"), "the gap before the reads is marked");
        assert!(svg.contains("<polygon"), "bands between lanes");
    }

    #[test]
    fn a_timeline_of_part_of_a_case_says_which_part() {
        let trace = StreamTrace {
            writes: vec![event(1.0, "hdr"), event(2.0, "body")],
            reads: vec![event(3.0, "hdrbody")],
            excerpt: TraceExcerpt::first(3, 20, "requests"),
            ..StreamTrace::default()
        };
        let svg = timeline(&trace, "").unwrap();
        assert!(svg.contains("Shown: the first 3 of 20 requests."), "{svg}");
        let long = StreamTrace {
            writes: vec![event(1.0, &"x".repeat(57))],
            reads: (0..57).map(|i| event(2.0 + f64::from(i), "x")).collect(),
            ..StreamTrace::default()
        };
        assert!(timeline(&long, "").unwrap().contains("Shown: the first 40 of 57 reads."));
        let whole = StreamTrace { writes: vec![event(1.0, "ab")], ..StreamTrace::default() };
        assert!(!timeline(&whole, "").unwrap().contains("Shown:"), "a whole trace needs no note");
    }

    #[test]
    fn without_segments_the_lane_says_why() {
        let trace = StreamTrace {
            writes: vec![event(1.0, "ab")],
            reads: vec![event(2.0, "ab")],
            ..StreamTrace::default()
        };
        let svg = timeline(&trace, "capture: unavailable — needs CAP_NET_RAW").unwrap();
        assert!(svg.contains("capture: unavailable — needs CAP_NET_RAW"));
    }

    #[test]
    fn short_numbers_fit_axes() {
        assert_eq!(short_number(1_234_567.0), "1.23M");
        assert_eq!(short_number(12.5), "12.5");
        assert_eq!(short_number(25_000.0), "25k");
    }
}
