//! The charts of a scenario's section in `index.html`, as small multiples
//! ([`panels`](crate::panels)):
//!
//! - [`latency_figures`]: round-trip percentiles (p50 … max). Cases that measured the same
//!   thing with the same parameters set form a group; one parameter's values are the
//!   lines (at most ten, the palette), every other varying parameter makes a panel
//!   (`message_size=16`, `message_size=256`, …), all on one log time axis. Nothing is
//!   left out: more lines or panels than fit become further figures, titled with what
//!   they hold ("framing 11–18 of 18").
//! - [`sweep_figures`]: for every numeric parameter some cases sweep while the rest stay
//!   put, one figure with a panel per key metric against that parameter, a line per
//!   combination of the other parameters. A metric that is the same in every case gets
//!   no panel; the figure's note says its value instead.
//!
//! - [`bar_figures`]: the bar charts a scenario declares ([`BarChart`]): a metric per
//!   case grouped by one parameter's values (server CPU after EOF per server), or a
//!   case's values per item (time in queue per client), a bar per case in each group.
//!
//! Axes say what they measure and in what unit; a metric or parameter spanning two
//! decades or more gets a log axis ([`log_worth_it`]); bars always stand on a linear
//! axis from zero, each labelled with its value.

use std::collections::BTreeMap;

use serde_json::Value;
use socklab_model::check::format_number;
use socklab_model::report::{BarChart, BarGroups, CaseResult, Unit};
use socklab_model::summary::LatencySummary;
use socklab_model::text::value_text;

use crate::charts::PALETTE;
use crate::panels::{Axis, Bar, BarFigure, Figure, Panel, draw, draw_bars};

/// Lines per figure at most: one colour each.
pub const MAX_LINES: usize = PALETTE.len();
/// Panels per figure at most.
pub const MAX_PANELS: usize = 8;
/// Distinct values a sweep axis labels one by one; more get evenly spaced ticks.
const MAX_VALUE_TICKS: usize = 12;

/// One chart of a section: a title, the SVG and a note on what the chart leaves to the
/// text (a metric that never changed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChartFigure {
    /// What it shows: `Against read_size (bytes) — bytes=4194304`.
    pub title: String,
    /// The drawing; `None` when every metric was the same in every case.
    pub svg: Option<String>,
    /// Said under the chart: `Same in every case: writes = 3.`
    pub note: Option<String>,
}

/// The percentile figures of `cases` (one scenario's, in run order).
pub fn latency_figures(cases: &[&CaseResult]) -> Vec<ChartFigure> {
    type Group<'a> = ((String, Vec<String>), Vec<(&'a CaseResult, LatencySummary)>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for case in cases {
        let Some(latency) = &case.observations.latency else { continue };
        let key = (latency.of.clone(), case.set_params.keys().cloned().collect::<Vec<_>>());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((case, latency.summary)),
            None => groups.push((key, vec![(case, latency.summary)])),
        }
    }
    groups.iter().flat_map(|((of, _), members)| latency_group(of, members)).collect()
}

fn latency_group(of: &str, members: &[(&CaseResult, LatencySummary)]) -> Vec<ChartFigure> {
    let maps: Vec<&BTreeMap<String, Value>> = members.iter().map(|(c, _)| &c.set_params).collect();
    let split = Split::of(&maps);
    // Each case: its line (a value of the line parameter, or its id) and its panel.
    let line_of = |case: &CaseResult| match &split.line {
        Some(param) => param_text(&case.set_params, param),
        None => case.id.clone(),
    };
    let panel_of = |case: &CaseResult| {
        split
            .panels
            .iter()
            .map(|p| format!("{p}={}", param_text(&case.set_params, p)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lines = distinct(members.iter().map(|(c, _)| line_of(c)));
    let all_ns: Vec<u64> = members.iter().flat_map(|(_, s)| percentiles(s)).collect();
    let (scale, unit) = if all_ns.iter().all(|&ns| ns < 1_000_000) { (1e3, "µs") } else { (1e6, "ms") };
    let values: Vec<f64> = all_ns.iter().map(|&ns| ns.max(1) as f64 / scale).collect();
    let (low, high) = min_max(&values);
    let y = Axis {
        label: format!("{unit}, log scale"),
        log: true,
        range: (low / 1.5, high * 1.5),
        ticks: log_ticks(low / 1.5, high * 1.5).into_iter().map(|v| (v, short_number(v))).collect(),
    };
    let x = Axis {
        label: "percentile".into(),
        log: false,
        range: (-0.3, 4.3),
        ticks: ["p50", "p90", "p99", "p99.9", "max"]
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, p.to_string()))
            .collect(),
    };
    let line_name = split.line.clone().unwrap_or_else(|| "case".into());
    let mut figures = Vec::new();
    let line_chunks = chunks(&lines, MAX_LINES);
    for (line_part, chunk) in line_chunks.iter().enumerate() {
        let in_chunk: Vec<&(&CaseResult, LatencySummary)> =
            members.iter().filter(|(c, _)| chunk.contains(&line_of(c))).collect();
        let panel_names = distinct(in_chunk.iter().map(|(c, _)| panel_of(c)));
        let panel_chunks = chunks(&panel_names, MAX_PANELS);
        for (panel_part, panel_chunk) in panel_chunks.iter().enumerate() {
            let panels = panel_chunk
                .iter()
                .map(|name| Panel {
                    title: name.clone(),
                    y: y.clone(),
                    lines: in_chunk
                        .iter()
                        .filter(|(c, _)| &panel_of(c) == name)
                        .map(|(c, s)| {
                            let series = chunk.iter().position(|l| *l == line_of(c)).unwrap_or(0);
                            let points = percentiles(s)
                                .iter()
                                .enumerate()
                                .map(|(i, &ns)| (i as f64, ns.max(1) as f64 / scale))
                                .collect();
                            (series, points)
                        })
                        .collect(),
                })
                .collect();
            let figure = Figure {
                panels,
                x: x.clone(),
                legend_title: line_name.clone(),
                series: chunk.clone(),
                columns: 2,
                panel_height: 300,
            };
            let mut title = format!("Latency by percentile ({unit}, log scale) — {of}");
            append_constants(&mut title, &split.constants);
            append_part(&mut title, &line_name, line_part, MAX_LINES, lines.len());
            append_part(&mut title, "panels", panel_part, MAX_PANELS, panel_names.len());
            figures.push(ChartFigure { title, svg: draw(&figure), note: None });
        }
    }
    figures
}

/// The bar charts `bars` declares, drawn from `cases` (one scenario's, in run order). A
/// chart no case has values for is left out; more series than colours make further
/// figures.
pub fn bar_figures(cases: &[&CaseResult], bars: &[BarChart]) -> Vec<ChartFigure> {
    bars.iter().flat_map(|bar| bar_chart(cases, bar)).collect()
}

/// What a bar chart draws: each case with its value in each group (if any), the group
/// names, what the groups are, and the unit of every value.
struct BarData<'a> {
    members: Vec<(&'a CaseResult, Vec<Option<f64>>)>,
    groups: Vec<String>,
    x_label: String,
    unit: Unit,
}

fn bar_chart(cases: &[&CaseResult], bar: &BarChart) -> Vec<ChartFigure> {
    let BarData { members, groups, x_label, unit } = match &bar.groups {
        BarGroups::Param(param) => {
            let with: Vec<(&CaseResult, f64, Unit)> =
                cases.iter().filter_map(|c| c.metric(&bar.values).map(|m| (*c, m.value, m.unit))).collect();
            let Some(unit) = with.first().map(|(_, _, u)| *u) else { return Vec::new() };
            let groups = distinct(with.iter().map(|(c, _, _)| param_text(&c.params, param)));
            let members = with
                .iter()
                .map(|(c, v, _)| {
                    let at = groups.iter().position(|g| *g == param_text(&c.params, param));
                    (*c, groups.iter().enumerate().map(|(i, _)| (Some(i) == at).then_some(*v)).collect())
                })
                .collect();
            BarData { members, groups, x_label: param.clone(), unit }
        }
        BarGroups::Items => {
            let with: Vec<(&CaseResult, &socklab_model::report::ValueSeries)> = cases
                .iter()
                .filter_map(|c| c.observations.series.iter().find(|s| s.name == bar.values).map(|s| (*c, s)))
                .filter(|(_, s)| !s.values.is_empty())
                .collect();
            let Some((_, first)) = with.first() else { return Vec::new() };
            let (unit, item) = (first.unit, first.item.clone());
            let count = with.iter().map(|(_, s)| s.values.len()).max().unwrap_or(0);
            let groups = (0..count).map(|i| format!("{item} {i}")).collect();
            let members = with
                .iter()
                .map(|(c, s)| (*c, (0..count).map(|i| s.values.get(i).copied()).collect()))
                .collect();
            BarData { members, groups, x_label: item, unit }
        }
    };
    // Series: the cases, told apart by the parameters that vary among them (the grouping
    // parameter aside).
    let grouping = match &bar.groups {
        BarGroups::Param(param) => Some(param.as_str()),
        BarGroups::Items => None,
    };
    let rests: Vec<BTreeMap<String, Value>> = members
        .iter()
        .map(|(c, _)| {
            c.set_params
                .iter()
                .filter(|(k, _)| Some(k.as_str()) != grouping)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    let split = Split::of(&rests.iter().collect::<Vec<_>>());
    let varying: Vec<&String> = split.line.iter().chain(&split.panels).collect();
    let labels: Vec<String> = rests
        .iter()
        .zip(&members)
        .map(|(rest, (case, _))| match varying.as_slice() {
            [] if grouping.is_some() => String::new(),
            [] => case.id.clone(),
            many => {
                many.iter().map(|p| format!("{p}={}", param_text(rest, p))).collect::<Vec<_>>().join(", ")
            }
        })
        .collect();
    let series = distinct(labels.iter().cloned());
    let values: Vec<f64> = members.iter().flat_map(|(_, v)| v.iter().flatten().copied()).collect();
    // A share of something (% of a core) is drawn against the whole, so 0.3% looks small.
    let high = values.iter().copied().fold(if unit == Unit::Percent { 100.0 } else { 0.0 }, f64::max);
    let whole = matches!(unit, Unit::Count | Unit::Bytes);
    let ticks = nice_ticks(0.0, high.max(if whole { 1.0 } else { 1e-9 }), whole);
    let top = ticks.last().copied().unwrap_or(1.0).max(high);
    let y = Axis {
        label: match unit.suffix() {
            "" => "count".to_string(),
            suffix => suffix.to_string(),
        },
        log: false,
        range: (0.0, top * 1.12),
        ticks: ticks.into_iter().map(|v| (v, short_number(v))).collect(),
    };
    let mut figures = Vec::new();
    for (part, chunk) in chunks(&series, MAX_LINES).iter().enumerate() {
        let bars = members
            .iter()
            .zip(&labels)
            .filter_map(|(member, label)| {
                chunk.iter().position(|s| s == label).map(|series| (member, series))
            })
            .flat_map(|((_, values), series)| {
                values.iter().enumerate().filter_map(move |(group, v)| {
                    v.map(|value| Bar { group, series, value, label: bar_label(value, unit) })
                })
            })
            .collect();
        let figure = BarFigure {
            groups: groups.clone(),
            x_label: x_label.clone(),
            series: chunk.clone(),
            legend_title: String::new(),
            y: y.clone(),
            bars,
        };
        let mut title = bar.title.clone();
        append_constants(&mut title, &split.constants);
        append_part(&mut title, "cases", part, MAX_LINES, series.len());
        figures.push(ChartFigure { title, svg: draw_bars(&figure), note: None });
    }
    figures
}

/// A bar's value as written on it: `97.6%`, `0.02%`, `412 ms`, `3`.
fn bar_label(value: f64, unit: Unit) -> String {
    let rounded = if value.abs() >= 100.0 {
        value.round()
    } else if value.abs() >= 1.0 {
        (value * 10.0).round() / 10.0
    } else {
        (value * 100.0).round() / 100.0
    };
    match unit.suffix() {
        "" => format_number(rounded),
        "%" => format!("{}%", format_number(rounded)),
        suffix => format!("{} {suffix}", format_number(rounded)),
    }
}

fn percentiles(s: &LatencySummary) -> [u64; 5] {
    [s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns]
}

/// One line of a sweep: cases that differ only in the swept parameter.
struct SweepLine<'a> {
    /// The parameters set for these cases, the swept one left out.
    rest: BTreeMap<String, Value>,
    /// `(swept value, case)`, in order of the swept value.
    points: Vec<(f64, &'a CaseResult)>,
}

/// The sweep figures of `cases` (one scenario's, in run order); `units` gives each
/// parameter's unit for the x axis.
pub fn sweep_figures(cases: &[&CaseResult], units: &BTreeMap<String, String>) -> Vec<ChartFigure> {
    let mut params: Vec<&String> = Vec::new();
    for case in cases {
        for (name, value) in &case.params {
            if value.is_number() && !params.contains(&name) {
                params.push(name);
            }
        }
    }
    let mut dimensions: Vec<(&String, Vec<SweepLine<'_>>)> = params
        .into_iter()
        .map(|param| (param, sweep_lines(cases, param)))
        .filter(|(_, lines)| !lines.is_empty())
        .collect();
    // In run order: by the first case each sweep holds.
    let first_case = |lines: &[SweepLine<'_>]| {
        lines
            .iter()
            .flat_map(|l| &l.points)
            .filter_map(|(_, case)| cases.iter().position(|c| std::ptr::eq(*c, *case)))
            .min()
            .unwrap_or(usize::MAX)
    };
    dimensions.sort_by_key(|(_, lines)| first_case(lines));
    dimensions.iter().flat_map(|(param, lines)| sweep_dimension(param, lines, units.get(*param))).collect()
}

/// The lines along `param`: cases grouped by every other parameter set, kept where the
/// group has two or more distinct values of `param` and no value twice.
fn sweep_lines<'a>(cases: &[&'a CaseResult], param: &str) -> Vec<SweepLine<'a>> {
    let mut lines: Vec<SweepLine<'a>> = Vec::new();
    for case in cases {
        let Some(x) = case.params.get(param).and_then(Value::as_f64) else { continue };
        let rest: BTreeMap<String, Value> = case
            .set_params
            .iter()
            .filter(|(k, _)| *k != param)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match lines.iter_mut().find(|l| l.rest == rest) {
            Some(line) => line.points.push((x, case)),
            None => lines.push(SweepLine { rest, points: vec![(x, case)] }),
        }
    }
    lines.retain(|line| {
        let xs = distinct(line.points.iter().map(|(x, _)| x.to_bits()));
        xs.len() >= 2 && xs.len() == line.points.len()
    });
    for line in &mut lines {
        line.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

fn sweep_dimension(param: &str, lines: &[SweepLine<'_>], unit: Option<&String>) -> Vec<ChartFigure> {
    let maps: Vec<&BTreeMap<String, Value>> = lines.iter().map(|l| &l.rest).collect();
    let split = Split::of(&maps);
    let varying: Vec<&String> = split.line.iter().chain(&split.panels).collect();
    let (legend_title, labels): (String, Vec<String>) = match varying.as_slice() {
        [] => (String::new(), vec!["every case".into(); lines.len()]),
        [one] => ((*one).clone(), lines.iter().map(|l| param_text(&l.rest, one)).collect()),
        many => (
            String::new(),
            lines
                .iter()
                .map(|l| {
                    many.iter()
                        .map(|p| format!("{p}={}", param_text(&l.rest, p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect(),
        ),
    };
    let x = sweep_axis(param, unit, lines);
    let metrics = key_metrics(lines);
    let mut figures = Vec::new();
    let indices: Vec<usize> = (0..lines.len()).collect();
    for (part, chunk) in chunks(&indices, MAX_LINES).iter().enumerate() {
        let mut panels = Vec::new();
        let mut same = Vec::new();
        for (metric, metric_unit) in &metrics {
            let series: Vec<(usize, Vec<(f64, f64)>)> = chunk
                .iter()
                .enumerate()
                .map(|(series, &i)| {
                    let points = lines[i]
                        .points
                        .iter()
                        .filter_map(|(px, case)| case.metric(metric).map(|m| (x.map(*px), m.value)))
                        .collect::<Vec<_>>();
                    (series, points)
                })
                .filter(|(_, points)| !points.is_empty())
                .collect();
            let values: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y)).collect();
            let (low, high) = min_max(&values);
            if values.is_empty() {
                continue;
            }
            if low == high {
                same.push(format!("{metric} = {}", value_with_unit(low, *metric_unit)));
                continue;
            }
            panels.push(Panel {
                title: metric.clone(),
                y: metric_axis(*metric_unit, &values),
                lines: series,
            });
        }
        let mut title = format!("Against {}", x.name);
        append_constants(&mut title, &split.constants);
        append_part(&mut title, "lines", part, MAX_LINES, lines.len());
        let note = (!same.is_empty()).then(|| format!("Same in every case: {}.", same.join(", ")));
        // Three panels a row; four as two by two rather than three and one.
        let columns = if panels.len() == 4 { 2 } else { 3 };
        let svg = (!panels.is_empty()).then(|| {
            draw(&Figure {
                panels,
                x: x.axis.clone(),
                legend_title: legend_title.clone(),
                series: chunk.iter().map(|&i| labels[i].clone()).collect(),
                columns,
                panel_height: 260,
            })
        });
        figures.push(ChartFigure { title, svg: svg.flatten(), note });
    }
    figures
}

/// The key metrics of the lines' cases, in the order they first appear, with units.
fn key_metrics(lines: &[SweepLine<'_>]) -> Vec<(String, Unit)> {
    let mut metrics: Vec<(String, Unit)> = Vec::new();
    for (_, case) in lines.iter().flat_map(|l| &l.points) {
        for m in case.metrics.iter().filter(|m| m.key) {
            if !metrics.iter().any(|(n, _)| *n == m.name) {
                metrics.push((m.name.clone(), m.unit));
            }
        }
    }
    metrics
}

/// The horizontal axis of a sweep, and how swept values map onto it.
struct SweepAxis {
    /// `read_size (bytes)`.
    name: String,
    axis: Axis,
    /// On a log axis, where a swept value of 0 is drawn (left of the smallest other value).
    zero_at: Option<f64>,
}

impl SweepAxis {
    fn map(&self, x: f64) -> f64 {
        match self.zero_at {
            Some(at) if x == 0.0 => at,
            _ => x,
        }
    }
}

fn sweep_axis(param: &str, unit: Option<&String>, lines: &[SweepLine<'_>]) -> SweepAxis {
    let mut xs: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|(x, _)| *x)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let name = match unit {
        Some(unit) => format!("{param} ({unit})"),
        None => param.to_string(),
    };
    let bytes = unit.is_some_and(|u| u == "bytes");
    let label_of = |v: f64| if bytes { bytes_text(v) } else { exact_or_short(v) };
    let positive: Vec<f64> = xs.iter().copied().filter(|&x| x > 0.0).collect();
    let log = positive.len() >= 2
        && xs.iter().all(|&x| x >= 0.0)
        && positive.last().unwrap_or(&1.0) / positive.first().unwrap_or(&1.0) >= 16.0;
    let zero_at = (log && xs.first() == Some(&0.0)).then(|| positive[0] / 8.0);
    let shown: Vec<f64> = xs.iter().map(|&x| if x == 0.0 { zero_at.unwrap_or(0.0) } else { x }).collect();
    let (low, high) = min_max(&shown);
    let (range, auto) = if log {
        ((low / 1.5, high * 1.5), log_ticks(low / 1.5, high * 1.5))
    } else {
        let pad = ((high - low) * 0.05).max(1e-9);
        ((low - pad, high + pad), nice_ticks(low, high, false))
    };
    let ticks: Vec<(f64, String)> = if xs.len() <= MAX_VALUE_TICKS {
        xs.iter().map(|&x| (if x == 0.0 { zero_at.unwrap_or(0.0) } else { x }, label_of(x))).collect()
    } else {
        auto.into_iter().map(|v| (v, label_of(v))).collect()
    };
    let mut label = name.clone();
    if log {
        label += if zero_at.is_some() { " — log scale, 0 drawn at the left" } else { " — log scale" };
    }
    SweepAxis { name, axis: Axis { label, log, range, ticks }, zero_at }
}

fn metric_axis(unit: Unit, values: &[f64]) -> Axis {
    let (low, high) = min_max(values);
    let log = log_worth_it(values);
    let word = match unit.suffix() {
        "" => serde_json::to_value(unit).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        suffix => suffix.to_string(),
    };
    let (range, ticks) = if log {
        ((low / 1.6, high * 1.6), log_ticks(low / 1.6, high * 1.6))
    } else {
        let whole = matches!(unit, Unit::Count | Unit::Bytes);
        let ticks = nice_ticks(low.min(0.0), high.max(0.0), whole);
        let (bottom, top) = (ticks.first().copied().unwrap_or(low), ticks.last().copied().unwrap_or(high));
        ((bottom, top + (top - bottom) * 0.03), ticks)
    };
    Axis {
        label: if log { format!("{word}, log scale") } else { word },
        log,
        range,
        ticks: ticks.into_iter().map(|v| (v, short_number(v))).collect(),
    }
}

/// Whether `values` call for a log axis: all positive and spanning two decades or more
/// (`reads_per_mib` from 11 to 1,048,576), where a linear axis would flatten all but the
/// largest to the floor.
pub fn log_worth_it(values: &[f64]) -> bool {
    let (low, high) = min_max(values);
    !values.is_empty() && low > 0.0 && high / low >= 100.0
}

/// How cases split into lines and panels: the parameters they share, the one whose
/// values make the lines, and the others that vary, which make the panels.
struct Split {
    /// `k=v` of every parameter all cases share.
    constants: Vec<String>,
    /// The varying parameter with the most values that still fit one figure's lines.
    line: Option<String>,
    /// The other varying parameters.
    panels: Vec<String>,
}

impl Split {
    fn of(maps: &[&BTreeMap<String, Value>]) -> Split {
        let keys = distinct(maps.iter().flat_map(|m| m.keys().cloned()));
        let mut constants = Vec::new();
        // (name, distinct values, whether the values are words rather than numbers)
        let mut varying: Vec<(String, usize, bool)> = Vec::new();
        for key in keys {
            let values = distinct(maps.iter().map(|m| param_text(m, &key)));
            if values.len() == 1 {
                constants.push(format!("{key}={}", values[0]));
            } else {
                let words = maps.iter().any(|m| m.get(&key).is_some_and(|v| !v.is_number()));
                varying.push((key, values.len(), words));
            }
        }
        // Lines: the most values that fit, words (framing) before numbers (sizes, which
        // read well as panel titles); the first such parameter on a tie.
        let mut line: Option<&(String, usize, bool)> = None;
        for candidate in varying.iter().filter(|(_, n, _)| *n <= MAX_LINES) {
            if line.is_none_or(|best| (candidate.1, candidate.2) > (best.1, best.2)) {
                line = Some(candidate);
            }
        }
        let line = line.or_else(|| varying.iter().min_by_key(|(_, n, _)| *n)).map(|(k, _, _)| k.clone());
        let panels = varying.into_iter().map(|(k, _, _)| k).filter(|k| Some(k) != line.as_ref()).collect();
        Split { constants, line, panels }
    }
}

/// A parameter's value as text, `—` when the case did not set it.
fn param_text(params: &BTreeMap<String, Value>, name: &str) -> String {
    params.get(name).map(value_text).unwrap_or_else(|| "—".into())
}

fn append_constants(title: &mut String, constants: &[String]) {
    if !constants.is_empty() {
        *title += &format!(" — {}", constants.join(", "));
    }
}

/// ` (framing 11–18 of 18)` when `total` things did not fit one figure of `size`.
fn append_part(title: &mut String, what: &str, part: usize, size: usize, total: usize) {
    if total > size {
        let first = part * size + 1;
        *title += &format!(" ({what} {first}–{} of {total})", (first + size - 1).min(total));
    }
}

/// The items in the order they first appear, once each.
fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn chunks<T: Clone>(items: &[T], size: usize) -> Vec<Vec<T>> {
    items.chunks(size).map(<[T]>::to_vec).collect()
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Tick values at 1-2-5 steps from one at or below `low` to one at or above `high`,
/// about five of them: an axis that ends on a labelled round number. With `whole`, steps
/// are whole numbers (counts of things).
fn nice_ticks(low: f64, high: f64, whole: bool) -> Vec<f64> {
    let span = (high - low).max(1e-9);
    let magnitude = 10f64.powf((span / 5.0).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(magnitude * 10.0);
    let step = if whole { step.max(1.0) } else { step };
    let first = (low / step).floor() as i64;
    let last = (high / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Tick values on a log axis over `low..=high` (both positive): powers of ten when the
/// range holds five or more, else the roundest steps that give at least three (1-2-5,
/// 1-2-3-5, every digit).
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let candidates: [(&[f64], usize); 4] = [
        (&[1.0], 5),
        (&[1.0, 2.0, 5.0], 3),
        (&[1.0, 2.0, 3.0, 5.0], 3),
        (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 3),
    ];
    for (multiples, enough) in candidates {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(low.log10().floor());
        while decade <= high {
            for m in multiples {
                let v = decade * m;
                if v >= low && v <= high {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        if ticks.len() >= enough {
            return ticks;
        }
    }
    vec![low, high]
}

/// 1234567 → `1.23M`: axis labels that fit.
pub(crate) fn short_number(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = match abs {
        a if a >= 1e9 => (value / 1e9, "G"),
        a if a >= 1e6 => (value / 1e6, "M"),
        a if a >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let digits = if scaled.abs() >= 100.0 || scaled == scaled.round() {
        0
    } else if scaled.abs() >= 1.0 {
        2
    } else {
        4
    };
    let rounded = (scaled * 10f64.powi(digits)).round() / 10f64.powi(digits);
    format!("{}{suffix}", format_number(rounded))
}

/// A swept value as its tick label: exact up to a million (`65507`), shortened above.
fn exact_or_short(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e6 { format_number(value) } else { short_number(value) }
}

/// A byte count as an axis label: `16`, `4 KiB`, `64 KiB`, `1 MiB`, `65507`.
fn bytes_text(value: f64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        let size = size as f64;
        if value >= size && value % size == 0.0 {
            return format!("{} {unit}", format_number(value / size));
        }
    }
    exact_or_short(value)
}

fn value_with_unit(value: f64, unit: Unit) -> String {
    match unit.suffix() {
        "" => format_number(value),
        suffix => format!("{} {suffix}", format_number(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decade_spanning_values_get_a_log_axis() {
        // reads_per_mib of a read-size sweep: 1 MiB of 1-byte reads down to 11 big ones.
        assert!(log_worth_it(&[1_048_576.0, 65_536.0, 1_024.0, 67.0, 22.0, 11.0]));
        assert!(!log_worth_it(&[150.0, 200.0, 190.0]), "well within a decade");
        assert!(!log_worth_it(&[0.0, 7000.0, 400.0]), "a zero cannot go on a log axis");
        assert!(!log_worth_it(&[]));
    }

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert_eq!(nice_ticks(0.0, 700.0, false), [0.0, 200.0, 400.0, 600.0, 800.0]);
        assert_eq!(nice_ticks(0.0, 990.0, false), [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(nice_ticks(0.0, 3.0, true), [0.0, 1.0, 2.0, 3.0], "no half segments");
        assert_eq!(log_ticks(5.0, 2_000_000.0), [10.0, 100.0, 1e3, 1e4, 1e5, 1e6]);
        assert_eq!(log_ticks(0.01, 0.05), [0.01, 0.02, 0.05]);
        assert_eq!(log_ticks(0.76, 4.4), [1.0, 2.0, 3.0], "round steps before every digit");
        assert_eq!(log_ticks(0.011, 0.019), [0.011, 0.019], "no round number inside: the ends");
        assert_eq!(log_ticks(8.0, 60.0), [10.0, 20.0, 50.0]);
    }

    #[test]
    fn bar_labels_keep_small_values_visible() {
        assert_eq!(bar_label(97.64, Unit::Percent), "97.6%");
        assert_eq!(bar_label(0.0213, Unit::Percent), "0.02%");
        assert_eq!(bar_label(412.3, Unit::Millis), "412 ms");
        assert_eq!(bar_label(3.0, Unit::Count), "3");
    }

    #[test]
    fn axis_labels_fit() {
        assert_eq!(short_number(1_234_567.0), "1.23M");
        assert_eq!(short_number(12.5), "12.5");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(0.015), "0.015");
        assert_eq!(bytes_text(16.0), "16");
        assert_eq!(bytes_text(65_536.0), "64 KiB");
        assert_eq!(bytes_text(1_048_576.0), "1 MiB");
        assert_eq!(bytes_text(1000.0), "1000");
        assert_eq!(bytes_text(65_507.0), "65507");
    }
}
