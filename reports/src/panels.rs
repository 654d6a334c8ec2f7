//! Small multiples: a grid of line-chart panels drawn as one SVG, sharing their series
//! (a series has the same colour and marker in every panel) and one legend drawn *below*
//! the grid, so a legend never covers data however many lines there are; and bar charts
//! ([`draw_bars`]) laid out the same way, one value per bar.
//!
//! What to draw — which cases, which panels, which axis scale — is decided in
//! [`charts`](crate::charts); this module only lays the figure out ([`Layout`]) and draws
//! it. Axes are linear or logarithmic; a log axis is drawn by plotting `log10(value)` on a
//! linear coordinate with ticks placed and labelled by [`Axis`], so every panel has the
//! same coordinate type and the ticks sit exactly where the caller wants them (at the
//! swept values, or at 1-2-5 steps).

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::charts::{FONT, SMALL, TEXT, color, svg};

/// A figure: panels in a grid, the series they share, and their legend.
pub struct Figure {
    /// Panels, left to right, then top to bottom.
    pub panels: Vec<Panel>,
    /// The horizontal axis, shared by every panel.
    pub x: Axis,
    /// What the series stand for (`framing`), shown before the legend entries.
    pub legend_title: String,
    /// One label per series; a series' index picks its colour and marker. Only drawn
    /// when there is more than one series.
    pub series: Vec<String>,
    /// Panels per row.
    pub columns: usize,
    /// Height of one panel, in pixels.
    pub panel_height: u32,
}

/// One chart of a [`Figure`].
pub struct Panel {
    /// Shown above the plot (`message_size=16`, `reads_per_mib`); empty for none.
    pub title: String,
    /// The vertical axis.
    pub y: Axis,
    /// Lines: the series index and its points `(x, y)` in data units, in x order.
    pub lines: Vec<(usize, Vec<(f64, f64)>)>,
}

/// An axis: its label, scale, range and ticks, all in data units.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Name and unit: `reads_per_mib (count, log scale)`.
    pub label: String,
    /// Logarithmic (`range` and every tick must then be positive).
    pub log: bool,
    /// Lowest and highest value shown.
    pub range: (f64, f64),
    /// Labelled tick positions.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// Where `value` goes on the drawn (linear) coordinate.
    fn coordinate(&self, value: f64) -> f64 {
        if self.log { value.max(f64::MIN_POSITIVE).log10() } else { value }
    }

    /// Which tick labels fit along `pixels` without running into each other: each
    /// needs `room(label)` pixels around its centre. On a log axis powers of ten are
    /// placed first, then the rest, each from low to high. One flag per tick, in order.
    fn labels_that_fit(&self, pixels: i32, room: impl Fn(&str) -> i32) -> Vec<bool> {
        let (low, high) = (self.coordinate(self.range.0), self.coordinate(self.range.1));
        let at =
            |v: f64| (self.coordinate(v) - low) / (high - low).max(f64::MIN_POSITIVE) * f64::from(pixels);
        let power_of_ten = |v: f64| self.log && v.log10().fract().abs() < 1e-9;
        let mut order: Vec<usize> = (0..self.ticks.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (self.ticks[a].0, self.ticks[b].0);
            power_of_ten(b).cmp(&power_of_ten(a)).then(a.total_cmp(&b))
        });
        let mut shown = vec![false; self.ticks.len()];
        let mut placed: Vec<(f64, i32)> = Vec::new();
        for i in order {
            let (value, label) = &self.ticks[i];
            let (pixel, half) = (at(*value), room(label) / 2);
            if placed.iter().all(|&(p, h)| (pixel - p).abs() >= f64::from(h + half)) {
                shown[i] = true;
                placed.push((pixel, half));
            }
        }
        shown
    }

    /// The label of the tick drawn at coordinate `c`, empty when it is not `shown`.
    fn label_at(&self, c: f64, shown: &[bool]) -> String {
        let distance = |v: f64| (self.coordinate(v) - c).abs();
        self.ticks
            .iter()
            .zip(shown)
            .min_by(|a, b| distance(a.0.0).total_cmp(&distance(b.0.0)))
            .filter(|(_, shown)| **shown)
            .map(|((_, label), _)| label.clone())
            .unwrap_or_default()
    }
}

/// A rectangle in pixels: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// Whether the two rectangles share any pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

/// Where everything of a [`Figure`] goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The whole SVG.
    pub size: (u32, u32),
    /// One per panel.
    pub panels: Vec<Rect>,
    /// The legend, under every panel; `None` with a single series.
    pub legend: Option<Rect>,
    /// Legend entries: where each series' sample line starts, relative to the legend.
    pub entries: Vec<(u32, u32)>,
}

/// Figures with several panels are this wide; a single panel is narrower.
const WIDE: u32 = 1100;
const NARROW: u32 = 760;
const LEGEND_ROW: u32 = 20;
const LEGEND_PAD: u32 = 10;
/// Room for a legend entry's sample line and marker, before its label.
const SAMPLE: u32 = 34;
/// A generous width per character of 11 px sans-serif text.
const CHAR: u32 = 7;

impl Layout {
    /// The layout of `figure`: panels in a grid of `figure.columns`, the legend below
    /// them, wrapped into as many rows as its entries need.
    pub fn of(figure: &Figure) -> Layout {
        let count = figure.panels.len().max(1) as u32;
        let columns = (figure.columns.max(1) as u32).min(count);
        let width = if count == 1 { NARROW } else { WIDE };
        let panel_w = width / columns;
        let rows = count.div_ceil(columns);
        let panels = (0..count)
            .map(|i| Rect {
                x: (i % columns) * panel_w,
                y: (i / columns) * figure.panel_height,
                w: panel_w,
                h: figure.panel_height,
            })
            .collect();
        let grid_height = rows * figure.panel_height;
        if figure.series.len() < 2 {
            return Layout { size: (width, grid_height), panels, legend: None, entries: Vec::new() };
        }
        let title_w =
            if figure.legend_title.is_empty() { 0 } else { text_width(&figure.legend_title) + CHAR * 2 };
        let (mut x, mut y) = (LEGEND_PAD + title_w, 0);
        let mut entries = Vec::new();
        for label in &figure.series {
            let entry_w = SAMPLE + text_width(label) + CHAR * 3;
            if x + entry_w > width - LEGEND_PAD && x > LEGEND_PAD + title_w {
                x = LEGEND_PAD + title_w;
                y += LEGEND_ROW;
            }
            entries.push((x, y + LEGEND_PAD));
            x += entry_w;
        }
        let legend_h = y + LEGEND_ROW + 2 * LEGEND_PAD;
        let legend = Rect { x: 0, y: grid_height, w: width, h: legend_h };
        Layout { size: (width, grid_height + legend_h), panels, legend: Some(legend), entries }
    }
}

fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * CHAR
}

/// The figure as an SVG string; `None` if plotters fails.
pub fn draw(figure: &Figure) -> Option<String> {
    let layout = Layout::of(figure);
    svg(layout.size, |root| {
        for (panel, rect) in figure.panels.iter().zip(&layout.panels) {
            let area = root.clone().shrink((rect.x, rect.y), (rect.w, rect.h));
            draw_panel(root, &area, panel, &figure.x)?;
        }
        if let Some(rect) = layout.legend {
            let area = root.clone().shrink((rect.x, rect.y), (rect.w, rect.h));
            draw_legend(&area, figure, &layout.entries)?;
        }
        Some(())
    })
}

/// Draws `panel` into `area`; markers go onto `root` at the pixels the chart maps their
/// points to.
fn draw_panel(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    x: &Axis,
) -> Option<()> {
    let coordinates = |axis: &Axis| Ticked {
        low: axis.coordinate(axis.range.0),
        high: axis.coordinate(axis.range.1),
        bold: axis.ticks.iter().map(|(v, _)| axis.coordinate(*v)).collect(),
        light: light_points(axis),
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(18).x_label_area_size(40).y_label_area_size(66);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, (FONT, TEXT));
    }
    let mut chart = builder.build_cartesian_2d(coordinates(x), coordinates(&panel.y)).ok()?;
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let x_labels = x.labels_that_fit(x_pixels.end - x_pixels.start, |label| text_width(label) as i32 + 8);
    let y_labels = panel.y.labels_that_fit(y_pixels.end - y_pixels.start, |_| 16);
    chart
        .configure_mesh()
        .x_desc(&x.label)
        .y_desc(&panel.y.label)
        .x_label_formatter(&|c| x.label_at(*c, &x_labels))
        .y_label_formatter(&|c| panel.y.label_at(*c, &y_labels))
        .label_style((FONT, SMALL))
        .axis_desc_style((FONT, SMALL))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242))
        .draw()
        .ok()?;
    let mut markers = Vec::new();
    for (series, points) in &panel.lines {
        let c = color(*series);
        let points: Vec<(f64, f64)> =
            points.iter().map(|&(px, py)| (x.coordinate(px), panel.y.coordinate(py))).collect();
        chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2))).ok()?;
        markers.extend(points.iter().map(|p| (*series, chart.backend_coord(p))));
    }
    // Largest shapes first, so where lines coincide every marker still shows.
    markers.sort_by_key(|(series, _)| MARKER_ORDER[series % MARKER_ORDER.len()]);
    for (series, at) in markers {
        draw_marker(root, series, at)?;
    }
    Some(())
}

/// A linear coordinate whose grid lines are exactly the given points: labelled ticks
/// (`bold`) and plain grid lines (`light`), in drawn coordinates.
struct Ticked {
    low: f64,
    high: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = if self.high > self.low { (value - self.low) / (self.high - self.low) } else { 0.5 };
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() { self.light.clone() } else { self.bold.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.low..self.high
    }
}

/// Unlabelled grid lines: 2…9 times each power of ten on a log axis, none on a linear one.
fn light_points(axis: &Axis) -> Vec<f64> {
    if !axis.log {
        return Vec::new();
    }
    let (low, high) = axis.range;
    let mut points = Vec::new();
    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high {
        for m in 2..10 {
            let v = decade * f64::from(m);
            if v >= low && v <= high {
                points.push(v.log10());
            }
        }
        decade *= 10.0;
    }
    points
}

/// Drawing order of the five marker shapes (by `series % 5`): largest first.
const MARKER_ORDER: [u8; 5] = [4, 2, 1, 3, 0];

/// A series' marker at pixel `(x, y)` of `area`: five shapes of different sizes (dot,
/// triangle, square, cross, ring), all but the dot hollow, so lines that coincide stay
/// distinguishable.
fn draw_marker(area: &DrawingArea<SVGBackend<'_>, Shift>, series: usize, (x, y): (i32, i32)) -> Option<()> {
    let c = color(series);
    let line = c.stroke_width(2);
    match series % 5 {
        0 => area.draw(&Circle::new((x, y), 3, c.filled())),
        1 => area.draw(&PathElement::new(vec![(x, y - 6), (x - 6, y + 4), (x + 6, y + 4), (x, y - 6)], line)),
        2 => area.draw(&Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], line)),
        3 => area
            .draw(&PathElement::new(vec![(x - 4, y - 4), (x + 4, y + 4)], line))
            .and_then(|()| area.draw(&PathElement::new(vec![(x - 4, y + 4), (x + 4, y - 4)], line))),
        _ => area.draw(&Circle::new((x, y), 8, line)),
    }
    .ok()
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    figure: &Figure,
    entries: &[(u32, u32)],
) -> Option<()> {
    let style = TextStyle::from((FONT, SMALL).into_font()).color(&BLACK);
    area.draw(&PathElement::new(vec![(0, 1), (area.dim_in_pixel().0 as i32, 1)], RGBColor(225, 225, 225)))
        .ok()?;
    if !figure.legend_title.is_empty() {
        area.draw(&Text::new(
            format!("{}:", figure.legend_title),
            (LEGEND_PAD as i32, LEGEND_PAD as i32 + 2),
            style.clone(),
        ))
        .ok()?;
    }
    for (series, (label, &(x, y))) in figure.series.iter().zip(entries).enumerate() {
        let (x, y) = (x as i32, y as i32 + 8);
        area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], color(series).stroke_width(2))).ok()?;
        draw_marker(area, series, (x + 12, y))?;
        area.draw(&Text::new(label.clone(), (x + SAMPLE as i32, y - 6), style.clone())).ok()?;
    }
    Some(())
}

/// A bar chart: groups along the horizontal axis (`server=correct`, `client 3`), in
/// each group one bar per series, every bar labelled with its value; the legend below,
/// as in a [`Figure`].
pub struct BarFigure {
    /// Group names, left to right.
    pub groups: Vec<String>,
    /// What the groups are, under the axis (`server`, `client (in order served)`).
    pub x_label: String,
    /// Series labels; a series' index picks its colour. Legend only with two or more.
    pub series: Vec<String>,
    /// What the series stand for, before the legend entries.
    pub legend_title: String,
    /// The vertical axis; drawn linear from its range's bottom, whatever `log` says.
    pub y: Axis,
    /// Every bar.
    pub bars: Vec<Bar>,
}

/// One bar of a [`BarFigure`].
pub struct Bar {
    /// Index into [`BarFigure::groups`].
    pub group: usize,
    /// Index into [`BarFigure::series`].
    pub series: usize,
    /// Height, in the y axis' unit.
    pub value: f64,
    /// Written above the bar (`97.6%`).
    pub label: String,
}

/// The bar chart as an SVG string; `None` if plotters fails. Laid out as a one-panel
/// [`Figure`], so the legend sits below the bars as in every other figure.
pub fn draw_bars(figure: &BarFigure) -> Option<String> {
    let groups = figure.groups.len().max(1);
    let x = Axis {
        label: figure.x_label.clone(),
        log: false,
        range: (-0.5, groups as f64 - 0.5),
        ticks: figure.groups.iter().enumerate().map(|(i, g)| (i as f64, g.clone())).collect(),
    };
    let y = Axis { log: false, ..figure.y.clone() };
    let frame = Figure {
        panels: vec![Panel { title: String::new(), y: y.clone(), lines: Vec::new() }],
        x: x.clone(),
        legend_title: figure.legend_title.clone(),
        series: figure.series.clone(),
        columns: 1,
        panel_height: 300,
    };
    let layout = Layout::of(&frame);
    svg(layout.size, |root| {
        let rect = layout.panels[0];
        let area = root.clone().shrink((rect.x, rect.y), (rect.w, rect.h));
        draw_bar_panel(&area, figure, &x, &y)?;
        if let Some(rect) = layout.legend {
            let area = root.clone().shrink((rect.x, rect.y), (rect.w, rect.h));
            draw_legend(&area, &frame, &layout.entries)?;
        }
        Some(())
    })
}

fn draw_bar_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    figure: &BarFigure,
    x: &Axis,
    y: &Axis,
) -> Option<()> {
    let coordinates = |axis: &Axis| Ticked {
        low: axis.range.0,
        high: axis.range.1,
        bold: axis.ticks.iter().map(|(v, _)| *v).collect(),
        light: Vec::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_top(16)
        .margin_right(18)
        .x_label_area_size(40)
        .y_label_area_size(66)
        .build_cartesian_2d(coordinates(x), coordinates(y))
        .ok()?;
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let x_labels = x.labels_that_fit(x_pixels.end - x_pixels.start, |label| text_width(label) as i32 + 8);
    let y_labels = y.labels_that_fit(y_pixels.end - y_pixels.start, |_| 16);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(&x.label)
        .y_desc(&y.label)
        .x_label_formatter(&|c| x.label_at(*c, &x_labels))
        .y_label_formatter(&|c| y.label_at(*c, &y_labels))
        .label_style((FONT, SMALL))
        .axis_desc_style((FONT, SMALL))
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()
        .ok()?;
    let per_group = figure.series.len().max(1) as f64;
    let width = 0.8 / per_group;
    let bottom = y.range.0.max(0.0).min(y.range.1);
    let style =
        TextStyle::from((FONT, SMALL).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
    for bar in &figure.bars {
        let left = bar.group as f64 - 0.4 + bar.series as f64 * width;
        let (x0, x1) = (left + width * 0.06, left + width * 0.94);
        let top = bar.value.clamp(y.range.0, y.range.1);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, bottom), (x1, top)],
                color(bar.series).filled(),
            )))
            .ok()?;
        // Anchored at its bottom centre: the label sits on the bar.
        chart
            .draw_series(std::iter::once(Text::new(bar.label.clone(), ((x0 + x1) / 2.0, top), style.clone())))
            .ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(log: bool) -> Axis {
        Axis {
            label: "x".into(),
            log,
            range: (1.0, 1000.0),
            ticks: vec![(1.0, "1".into()), (1000.0, "1k".into())],
        }
    }

    fn figure(panels: usize, series: usize) -> Figure {
        Figure {
            panels: (0..panels)
                .map(|i| Panel {
                    title: format!("panel {i}"),
                    y: axis(true),
                    lines: (0..series).map(|s| (s, vec![(1.0, 1.0 + s as f64), (1000.0, 900.0)])).collect(),
                })
                .collect(),
            x: axis(true),
            legend_title: "framing".into(),
            series: (0..series).map(|s| format!("strategy-{s}")).collect(),
            columns: 2,
            panel_height: 280,
        }
    }

    #[test]
    fn the_legend_sits_below_every_panel_and_inside_the_figure() {
        for (panels, series) in [(1, 2), (4, 9), (3, 10), (6, 3)] {
            let layout = Layout::of(&figure(panels, series));
            let legend = layout.legend.expect("several series get a legend");
            let whole = Rect { x: 0, y: 0, w: layout.size.0, h: layout.size.1 };
            for panel in &layout.panels {
                assert!(!panel.overlaps(&legend), "{panels} panels, {series} series: legend over a panel");
                assert!(
                    whole.overlaps(panel) && panel.x + panel.w <= whole.w && panel.y + panel.h <= whole.h
                );
            }
            assert!(legend.y + legend.h <= whole.h);
            assert_eq!(layout.entries.len(), series);
            for &(x, y) in &layout.entries {
                assert!(x < legend.w && y < legend.h, "entry ({x}, {y}) outside the legend {legend:?}");
            }
        }
    }

    #[test]
    fn tick_labels_that_would_overlap_are_thinned() {
        // 16 KiB and 64 KiB sit close on a log axis from 1 B to 1 MiB.
        let values = [1.0, 16.0, 1024.0, 16384.0, 65536.0, 1_048_576.0];
        let axis = Axis {
            label: "read_size".into(),
            log: true,
            range: (0.7, 1.5e6),
            ticks: values.iter().map(|&v| (v, format!("{v}"))).collect(),
        };
        let shown = axis.labels_that_fit(260, |_| 40);
        assert_eq!(shown, [true, true, true, true, false, true]);
        // On a log axis the powers of ten keep their labels before 2s and 5s do.
        let decades = Axis {
            label: "MiB/s".into(),
            log: true,
            range: (0.2, 2000.0),
            ticks: [0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
                .iter()
                .map(|&v| (v, format!("{v}")))
                .collect(),
        };
        let shown = decades.labels_that_fit(180, |_| 16);
        for (i, (v, _)) in decades.ticks.iter().enumerate() {
            if v.log10().fract() == 0.0 {
                assert!(shown[i], "{v} is a power of ten");
            }
        }
        assert!(axis.labels_that_fit(2600, |_| 40).iter().all(|&s| s), "a wide axis shows them all");
    }

    #[test]
    fn a_single_series_needs_no_legend() {
        assert_eq!(Layout::of(&figure(3, 1)).legend, None);
    }

    #[test]
    fn the_figure_draws_every_panel_title_and_legend_label() {
        let svg = draw(&figure(4, 9)).unwrap();
        for i in 0..4 {
            assert!(svg.contains(&format!(">\npanel {i}\n</text>")), "{svg}");
        }
        for s in 0..9 {
            assert!(svg.contains(&format!(">\nstrategy-{s}\n</text>")));
        }
        assert!(svg.contains(">\nframing:\n</text>"));
    }

    #[test]
    fn bars_draw_every_group_series_and_value_label() {
        let figure = BarFigure {
            groups: vec!["correct".into(), "ignores-eof".into(), "half-close-aware".into()],
            x_label: "server".into(),
            series: vec!["client=close".into(), "client=shut-wr".into()],
            legend_title: String::new(),
            y: Axis {
                label: "%".into(),
                log: false,
                range: (0.0, 110.0),
                ticks: vec![(0.0, "0".into()), (50.0, "50".into()), (100.0, "100".into())],
            },
            bars: (0..3)
                .flat_map(|g| {
                    (0..2).map(move |s| Bar {
                        group: g,
                        series: s,
                        value: (g * 40 + s) as f64,
                        label: format!("v{g}{s}"),
                    })
                })
                .collect(),
        };
        let svg = draw_bars(&figure).unwrap();
        for text in ["correct", "ignores-eof", "half-close-aware", "client=close", "client=shut-wr", "v21"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "{text} missing");
        }
        assert!(svg.matches("<rect").count() >= 6, "a rectangle per bar");
    }

    #[test]
    fn log_axes_plot_the_logarithm_and_label_the_value() {
        let a = axis(true);
        assert_eq!(a.coordinate(1000.0), 3.0);
        assert_eq!(a.label_at(2.9, &[true, true]), "1k");
        assert_eq!(a.label_at(2.9, &[true, false]), "", "a label that does not fit is left out");
        assert_eq!(axis(false).coordinate(1000.0), 1000.0);
    }
}
