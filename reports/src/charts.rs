//! Inline SVG charts for `index.html`, drawn with plotters' SVG backend into strings:
//! the style every chart shares (palette, fonts, the SVG drawing area), and the
//! [`timeline`] — the lanes of a stream case (writes, segments, reads; and "proxy out",
//! an impairment relay's writes, between writes and segments when a relay ran) in time
//! order, boxes labelled with stream byte ranges, bands showing where each write's bytes
//! went; segments sent again (retransmissions, tail-loss probes) are drawn in the segment
//! lane with a red outline and `↻`. The section charts (latency percentiles, metrics against a swept parameter) are
//! in [`figures`](crate::figures).
//!
//! plotters is built without font features: its SVG backend writes `<text>` elements and
//! the browser picks the font, so nothing depends on fonts installed where socklab runs.

use plotters::coord::Shift;
use plotters::prelude::*;
use socklab_model::check::format_number;
use socklab_model::report::{IoEvent, StreamTrace};

/// Line and band colours, one per series or per write (cycled).
pub(crate) const PALETTE: [RGBColor; 10] = [
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
pub(crate) const FONT: &str = "sans-serif";
/// plotters writes `font-size` as size / 1.24; these give 13 px and 11 px text.
pub(crate) const TEXT: f64 = 16.0;
pub(crate) const SMALL: f64 = 13.6;
/// Events shown per timeline lane at most; [`shown_note`] says when a lane has more.
pub const MAX_LANE_UNITS: usize = 40;

pub(crate) fn color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// Renders a drawing into an SVG string; `None` if plotters fails (it only fails on
/// impossible coordinates, so a missing chart is the honest fallback).
pub(crate) fn svg(
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

/// One unit of a timeline lane: where it sits in the stream and in time.
struct Unit3 {
    lane: usize,
    index: usize,
    start: usize,
    end: usize,
    at_us: f64,
    text: String,
    /// A segment that repeated bytes sent before: drawn marked, without bands (the
    /// bands follow each byte's first transmission).
    retransmitted: bool,
}

/// The lanes, top to bottom: name, and the letter that labels its boxes.
const LANES: [(&str, &str); 4] = [("writes", "w"), ("proxy out", "p"), ("segments", "s"), ("reads", "r")];
const WRITES: usize = 0;
const PROXY: usize = 1;
const SEGMENTS: usize = 2;
const FIRST_LANE_TOP: i32 = 48;
const LANE_STEP: i32 = 120;
const BOX_H: i32 = 58;
/// Outline and label colour of retransmitted segments.
const RETRANSMITTED: RGBColor = RGBColor(200, 30, 30);
const LEFT: i32 = 92;
const COLUMN: i32 = 84;

/// The drawing area every chart draws on.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The timeline of a stream case: writes, segments and reads, with a "proxy out" lane
/// between writes and segments when an impairment relay ran (the trace has relay
/// writes). `segments_note` is shown in the segments lane when the trace has no segments
/// (capture unavailable, say). Every segment of the trace is drawn, retransmissions
/// included. When the trace holds only part of the case, or a lane is cut at
/// [`MAX_LANE_UNITS`], a line under the lanes says what is shown ([`shown_note`]).
pub fn timeline(trace: &StreamTrace, segments_note: &str) -> Option<String> {
    let layout = Layout::of(trace)?;
    let note = shown_note(trace);
    let note_y = layout.lanes_bottom + 36;
    let height = layout.lanes_bottom + if note.is_some() { 72 } else { 54 };
    svg((layout.width as u32, height as u32), |root| {
        layout.draw_lanes(root, trace, segments_note)?;
        layout.draw_bands(root)?;
        for unit in 0..layout.units.len() {
            layout.draw_box(root, unit)?;
        }
        layout.draw_gaps(root)?;
        if let Some(note) = &note {
            root.draw(&Text::new(note.clone(), (8, note_y), text(SMALL).color(&RGBColor(160, 40, 20))))
                .ok()?;
        }
        root.draw(&Text::new(footer(trace), (8, height - 18), text(SMALL).color(&GREY))).ok()
    })
}

/// Text of `size` in the charts' font.
fn text(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

/// Text of `size` centred on its x, hanging from its y.
fn centered(size: f64) -> TextStyle<'static> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    text(size).pos(Pos::new(HPos::Center, VPos::Top))
}

const GREY: RGBColor = RGBColor(110, 110, 110);

/// The line under a timeline that says how to read it.
fn footer(trace: &StreamTrace) -> String {
    let mut footer = "time runs left to right, one column per event; [a..b) = stream bytes; bands show where each write's bytes went".to_string();
    if !trace.proxy_out.is_empty() {
        footer += "; proxy out = writes of the impairment relay";
    }
    if !trace.retransmissions.is_empty() {
        footer += "; ↻ = a segment sent again (retransmission or tail-loss probe)";
    }
    footer
}

/// Where everything of a timeline goes: its units, one column each in time order, and
/// the lanes shown.
struct Layout {
    units: Vec<Unit3>,
    /// The column of each unit.
    column: Vec<i32>,
    /// Unit indices in column order.
    order: Vec<usize>,
    /// Which lanes are drawn, top to bottom: the proxy lane only when a relay ran.
    shown_lanes: Vec<usize>,
    /// The stream byte range of each write.
    write_ranges: Vec<(usize, usize)>,
    width: i32,
    lanes_bottom: i32,
}

impl Layout {
    /// `None` when the trace has nothing to draw.
    fn of(trace: &StreamTrace) -> Option<Layout> {
        let units = units(trace);
        if units.is_empty() {
            return None;
        }
        let shown_lanes: Vec<usize> = (0..4).filter(|&l| l != PROXY || !trace.proxy_out.is_empty()).collect();
        // One column per unit, in time order (writes before the segments and reads they
        // cause when times tie).
        let mut order: Vec<usize> = (0..units.len()).collect();
        order.sort_by(|&a, &b| {
            units[a].at_us.total_cmp(&units[b].at_us).then(units[a].lane.cmp(&units[b].lane))
        });
        let mut column = vec![0i32; units.len()];
        for (col, &unit) in order.iter().enumerate() {
            column[unit] = col as i32;
        }
        let write_ranges = units.iter().filter(|u| u.lane == WRITES).map(|u| (u.start, u.end)).collect();
        let width = (LEFT + COLUMN * units.len() as i32 + 24).max(720);
        let lanes_bottom = FIRST_LANE_TOP + LANE_STEP * (shown_lanes.len() as i32 - 1) + BOX_H;
        Some(Layout { units, column, order, shown_lanes, write_ranges, width, lanes_bottom })
    }

    fn top_of(&self, lane: usize) -> i32 {
        let row = self.shown_lanes.iter().position(|&l| l == lane).unwrap_or(0) as i32;
        FIRST_LANE_TOP + row * LANE_STEP
    }

    /// The x of stream byte `byte` inside unit `unit`'s box.
    fn x_of(&self, unit: usize, byte: usize) -> i32 {
        let u = &self.units[unit];
        let left = LEFT + self.column[unit] * COLUMN + 4;
        let len = (u.end - u.start).max(1);
        left + ((COLUMN - 8) as f64 * (byte - u.start) as f64 / len as f64).round() as i32
    }

    /// Lane names and guide lines, and the note in an empty segments lane.
    fn draw_lanes(&self, root: &Area<'_>, trace: &StreamTrace, segments_note: &str) -> Option<()> {
        for &lane in &self.shown_lanes {
            let y = self.top_of(lane);
            let (name, _) = LANES[lane];
            root.draw(&Text::new(name.to_string(), (8, y + BOX_H / 2 - 8), text(TEXT))).ok()?;
            root.draw(&PathElement::new(
                vec![(LEFT, y + BOX_H / 2), (self.width - 12, y + BOX_H / 2)],
                RGBColor(230, 230, 230),
            ))
            .ok()?;
        }
        if trace.segments.is_empty() {
            let y = self.top_of(SEGMENTS) + BOX_H / 2 - 8;
            root.draw(&Text::new(segments_note.to_string(), (LEFT + 8, y), text(SMALL).color(&GREY))).ok()?;
        }
        Some(())
    }

    /// Bands between adjacent shown lanes: each shared stream byte range, split by the
    /// write it came from, coloured by that write.
    fn draw_bands(&self, root: &Area<'_>) -> Option<()> {
        let banded = |lane: usize| {
            (0..self.units.len()).filter(move |&u| self.units[u].lane == lane && !self.units[u].retransmitted)
        };
        let shown: Vec<usize> =
            self.shown_lanes.iter().copied().filter(|&l| banded(l).next().is_some()).collect();
        for pair in shown.windows(2) {
            let (upper, lower) = (pair[0], pair[1]);
            for a in banded(upper) {
                for b in banded(lower) {
                    let (ua, ub) = (&self.units[a], &self.units[b]);
                    let (s, e) = (ua.start.max(ub.start), ua.end.min(ub.end));
                    if s >= e {
                        continue;
                    }
                    for (w, &(ws, we)) in self.write_ranges.iter().enumerate() {
                        let (s, e) = (s.max(ws), e.min(we));
                        if s >= e {
                            continue;
                        }
                        let (top, bottom) = (self.top_of(upper) + BOX_H, self.top_of(lower));
                        let band = vec![
                            (self.x_of(a, s), top),
                            (self.x_of(a, e), top),
                            (self.x_of(b, e), bottom),
                            (self.x_of(b, s), bottom),
                        ];
                        root.draw(&Polygon::new(band, color(w).mix(0.35))).ok()?;
                    }
                }
            }
        }
        Some(())
    }

    /// One unit's box: filled with the colours of the writes whose bytes it holds,
    /// labelled with its byte range, text and time.
    fn draw_box(&self, root: &Area<'_>, index: usize) -> Option<()> {
        let unit = &self.units[index];
        let x0 = self.x_of(index, unit.start);
        let x1 = x0 + COLUMN - 8;
        let y0 = self.top_of(unit.lane);
        for (w, &(ws, we)) in self.write_ranges.iter().enumerate() {
            let (s, e) = (unit.start.max(ws), unit.end.min(we));
            if s < e {
                let fill = if unit.lane == 0 { color(w).mix(0.3) } else { color(w).mix(0.18) };
                let (xs, xe) = (self.x_of(index, s), self.x_of(index, e));
                root.draw(&Rectangle::new([(xs, y0), (xe.max(xs + 1), y0 + BOX_H)], fill.filled())).ok()?;
            }
        }
        let outline = if unit.retransmitted {
            RETRANSMITTED.stroke_width(2)
        } else {
            RGBColor(60, 60, 60).stroke_width(1)
        };
        root.draw(&Rectangle::new([(x0, y0), (x1, y0 + BOX_H)], outline)).ok()?;
        let name = if unit.retransmitted { "↻" } else { LANES[unit.lane].1 };
        let cx = (x0 + x1) / 2;
        let label = centered(SMALL);
        let label = if unit.retransmitted { label.color(&RETRANSMITTED) } else { label };
        root.draw(&Text::new(
            format!("{name}{} [{}..{})", unit.index, unit.start, unit.end),
            (cx, y0 + 5),
            label,
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
            centered(SMALL).color(&GREY),
        ))
        .ok()
    }

    /// Gaps in time between neighbouring columns: a dashed line and the gap.
    fn draw_gaps(&self, root: &Area<'_>) -> Option<()> {
        for pair in self.order.windows(2) {
            let gap_us = self.units[pair[1]].at_us - self.units[pair[0]].at_us;
            if gap_us >= 1_000.0 {
                let x = LEFT + self.column[pair[1]] * COLUMN;
                for y in (30..self.lanes_bottom + 18).step_by(8) {
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
        Some(())
    }
}

/// Every unit of a timeline: each lane's events (at most [`MAX_LANE_UNITS`] per lane),
/// then the segments sent again.
fn units(trace: &StreamTrace) -> Vec<Unit3> {
    let lanes: [&[IoEvent]; 4] = [&trace.writes, &trace.proxy_out, &trace.segments, &trace.reads];
    let mut units = Vec::new();
    for (lane, events) in lanes.iter().enumerate() {
        let mut offset = 0;
        for (index, event) in events.iter().enumerate().take(MAX_LANE_UNITS) {
            units.push(Unit3 {
                lane,
                index,
                start: offset,
                end: offset + event.len,
                at_us: event.at_us,
                text: event.text.clone(),
                retransmitted: false,
            });
            offset += event.len;
        }
    }
    for (index, repeat) in trace.retransmissions.iter().enumerate().take(MAX_LANE_UNITS) {
        units.push(Unit3 {
            lane: SEGMENTS,
            index,
            start: repeat.start,
            end: repeat.start + repeat.len,
            at_us: repeat.at_us,
            text: repeat.text.clone(),
            retransmitted: true,
        });
    }
    units
}

/// What part of the case a timeline shows, when not all of it: `Shown: the first 3 of 20
/// requests` (the trace is an excerpt), `the first 40 of 57 reads` (a lane was cut).
pub fn shown_note(trace: &StreamTrace) -> Option<String> {
    let lanes: [(&[IoEvent], &str); 4] = [
        (&trace.writes, "writes"),
        (&trace.proxy_out, "proxy writes"),
        (&trace.segments, "segments"),
        (&trace.reads, "reads"),
    ];
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
    use socklab_model::boundary::BoundaryMap;
    use socklab_model::report::{RetransmittedSegment, TraceExcerpt};

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
        assert!(svg.matches("<rect").count() > 9, "a frame per unit, and the background");
        assert!(svg.contains("w1 [7..12)") && svg.contains("s1 [7..17)") && svg.contains("r3 [15..17)"));
        assert!(svg.contains("a&lt;b&gt;&amp;") && !svg.contains("a<b>"));
        assert!(svg.contains("+50 ms"), "the gap before the reads is marked");
        assert!(svg.contains("<polygon"), "bands between lanes");
    }

    #[test]
    fn a_retransmitted_segment_is_drawn_marked_in_the_segment_lane() {
        let trace = StreamTrace {
            writes: vec![event(1.0, "1234567"), event(2.0, "abcde"), event(3.0, "hhhhh")],
            segments: vec![event(1.5, "1234567"), event(3.5, "abcdehhhhh")],
            reads: vec![event(50_000.0, "1234567abcdehhhhh")],
            boundary_map: BoundaryMap::compute(&[7, 5, 5], &[17]),
            ..StreamTrace::default()
        };
        let without = timeline(&trace, "").unwrap();
        let with = timeline(
            &StreamTrace {
                retransmissions: vec![RetransmittedSegment {
                    at_us: 7_000.0,
                    start: 7,
                    len: 10,
                    repeated: 10,
                    text: "abcdehhhhh".into(),
                }],
                ..trace
            },
            "",
        )
        .unwrap();
        assert!(with.contains("↻0 [7..17)"), "the probe has its own box: {with}");
        assert!(with.contains("retransmission or tail-loss probe"), "and the footer says what it is");
        assert!(with.contains("+7 ms"), "at its own time");
        assert_eq!(
            with.matches("<polygon").count(),
            without.matches("<polygon").count(),
            "no bands of its own"
        );
        assert!(!without.contains('↻'));
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
    fn a_relay_s_writes_get_a_lane_of_their_own_between_writes_and_segments() {
        let three = StreamTrace {
            writes: vec![event(1.0, "abc"), event(2.0, "de")],
            reads: vec![event(9_000.0, "abcde")],
            ..StreamTrace::default()
        };
        let without = timeline(&three, "no capture").unwrap();
        assert!(!without.contains("proxy out"), "no relay, no lane");
        let four = StreamTrace {
            proxy_out: vec![event(3.0, "a"), event(1_003.0, "b"), event(2_003.0, "cde")],
            ..three
        };
        let with = timeline(&four, "no capture").unwrap();
        assert!(with.contains("\nproxy out\n") && with.contains("p2 [2..5)"), "{with}");
        assert!(with.contains("writes of the impairment relay"), "the footer says what the lane is");
        let height =
            |svg: &str| svg.split("height=\"").nth(1).and_then(|h| h.split('"').next()).unwrap().to_string();
        assert_eq!(height(&without), "400");
        assert_eq!(height(&with), "520", "one lane more, 120 px more");
        assert!(
            with.matches("<polygon").count() > without.matches("<polygon").count(),
            "bands from the writes to the relay's writes, and on to the reads"
        );
        // The lanes run top to bottom: writes, proxy out, segments, reads.
        let y = |name: &str| with.find(&format!("\n{name}\n")).unwrap();
        assert!(y("writes") < y("proxy out") && y("proxy out") < y("segments") && y("segments") < y("reads"));
        let many = StreamTrace {
            proxy_out: (0..45).map(|i| event(f64::from(i), "x")).collect(),
            ..StreamTrace::default()
        };
        assert!(shown_note(&many).unwrap().contains("the first 40 of 45 proxy writes"));
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
}
