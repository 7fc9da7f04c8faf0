//! A small SVG line-chart writer for the report plots (throughput over time, p99 over time,
//! latency percentile curve): axes with ticks, one polyline per series, a legend. Pure string
//! building; the caller writes the file. Must never emit unescaped text, NaN or infinite
//! coordinates (points that are not finite, or not positive on a log axis, are skipped).

use std::fmt::Write as _;

/// Chart width, px.
const WIDTH: f64 = 800.0;
/// Chart height, px.
const HEIGHT: f64 = 420.0;
/// Space left of the plot area for y tick labels and the axis label, px.
const MARGIN_LEFT: f64 = 80.0;
/// Space right of the plot area (half of the last x tick label sticks out), px.
const MARGIN_RIGHT: f64 = 40.0;
/// Space above the plot area for the title and the legend row, px.
const MARGIN_TOP: f64 = 58.0;
/// Baseline of the legend row, px.
const LEGEND_Y: f64 = 44.0;
/// Legend width per character of a series name (12 px sans-serif), px.
const LEGEND_CHAR_WIDTH: f64 = 7.0;
/// Space below the plot area for x tick labels and the axis label, px.
const MARGIN_BOTTOM: f64 = 55.0;
/// Target number of ticks on a linear axis.
const TICKS_TARGET: f64 = 6.0;
/// Series colours, reused in order.
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// How an axis maps values to pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear from 0 (or the data minimum, if negative) to the data maximum.
    Linear,
    /// Base-10 logarithmic over the positive data range, in whole decades.
    Log10,
}

/// One axis.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Label under (x) or beside (y) the axis.
    pub label: String,
    /// Mapping.
    pub scale: Scale,
    /// Fixed ticks (value, text) instead of computed ones, e.g. the percentile axis.
    pub ticks: Option<Vec<(f64, String)>>,
}

impl Axis {
    /// An axis with computed ticks.
    #[must_use]
    pub fn new(label: impl Into<String>, scale: Scale) -> Self {
        Self {
            label: label.into(),
            scale,
            ticks: None,
        }
    }
}

/// One line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points in data units, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Lines.
    pub series: Vec<Series>,
}

/// Escapes text for an XML text node or attribute value.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 text.
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The value range an axis shows, in axis units (log10 of the value for a log axis).
#[derive(Debug, Clone, Copy)]
struct Range {
    low: f64,
    high: f64,
}

impl Range {
    fn fraction(self, value: f64) -> f64 {
        (value - self.low) / (self.high - self.low)
    }
}

fn to_axis_units(scale: Scale, value: f64) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    match scale {
        Scale::Linear => Some(value),
        Scale::Log10 => (value > 0.0).then(|| value.log10()),
    }
}

fn axis_range(axis: &Axis, values: &[f64]) -> Range {
    let units: Vec<f64> = values
        .iter()
        .filter_map(|value| to_axis_units(axis.scale, *value))
        .collect();
    let (mut low, mut high) = units
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if let Some(ticks) = &axis.ticks {
        for (value, _) in ticks {
            if let Some(unit) = to_axis_units(axis.scale, *value) {
                low = low.min(unit);
                high = high.max(unit);
            }
        }
    }
    if !low.is_finite() || !high.is_finite() {
        return Range {
            low: 0.0,
            high: 1.0,
        };
    }
    match axis.scale {
        Scale::Linear => {
            low = low.min(0.0);
            if axis.ticks.is_none() {
                high = nice_step_ceil(high);
            }
        }
        Scale::Log10 => {
            low = low.floor();
            high = high.ceil();
        }
    }
    if (high - low).abs() < f64::EPSILON {
        high = low + 1.0;
    }
    Range { low, high }
}

/// The smallest "nice" number (1, 2 or 5 × 10^k) at or above `value`, for a linear axis top.
fn nice_step_ceil(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let step = nice_step(value / TICKS_TARGET);
    (value / step).ceil() * step
}

/// A tick step of 1, 2 or 5 × 10^k close to `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let nice = if normalized <= 1.0 {
        1.0
    } else if normalized <= 2.0 {
        2.0
    } else if normalized <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Formats a tick value compactly (1.5k, 2M, 0.25).
fn format_tick(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// Ticks (axis units, text) for `axis` over `range`.
fn ticks(axis: &Axis, range: Range) -> Vec<(f64, String)> {
    if let Some(fixed) = &axis.ticks {
        return fixed
            .iter()
            .filter_map(|(value, text)| {
                to_axis_units(axis.scale, *value).map(|unit| (unit, text.clone()))
            })
            .collect();
    }
    match axis.scale {
        Scale::Linear => {
            let step = nice_step((range.high - range.low) / TICKS_TARGET);
            let first = (range.low / step).ceil() as i64;
            let last = (range.high / step + 1e-9).floor() as i64;
            (first..=last)
                .map(|index| {
                    let value = index as f64 * step;
                    (value, format_tick(value))
                })
                .collect()
        }
        Scale::Log10 => {
            let first = range.low.round() as i64;
            let last = range.high.round() as i64;
            (first..=last)
                .map(|exponent| {
                    let unit = exponent as f64;
                    (unit, format_tick(10f64.powf(unit)))
                })
                .collect()
        }
    }
}

/// Renders `chart` as a standalone SVG document.
#[must_use]
pub fn render(chart: &Chart) -> String {
    let xs: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let x_range = axis_range(&chart.x, &xs);
    let y_range = axis_range(&chart.y, &ys);
    let plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let to_px = |x_unit: f64, y_unit: f64| {
        (
            MARGIN_LEFT + x_range.fraction(x_unit) * plot_width,
            MARGIN_TOP + (1.0 - y_range.fraction(y_unit)) * plot_height,
        )
    };
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{:.1}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(&chart.title)
    );
    write_axes(&mut out, chart, x_range, y_range, &to_px);
    write_series(&mut out, chart, &to_px);
    out.push_str("</svg>\n");
    out
}

fn write_axes(
    out: &mut String,
    chart: &Chart,
    x_range: Range,
    y_range: Range,
    to_px: &dyn Fn(f64, f64) -> (f64, f64),
) {
    let (left, bottom) = to_px(x_range.low, y_range.low);
    let (right, top) = to_px(x_range.high, y_range.high);
    let _ = writeln!(
        out,
        r##"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    for (unit, text) in ticks(&chart.x, x_range) {
        let (x, _) = to_px(unit, y_range.low);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            escape(&text)
        );
    }
    for (unit, text) in ticks(&chart.y, y_range) {
        let (_, y) = to_px(x_range.low, unit);
        let _ = writeln!(
            out,
            r##"<line x1="{left:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 4.0,
            escape(&text)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        HEIGHT - 12.0,
        escape(&chart.x.label)
    );
    let middle = (top + bottom) / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="18" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 18 {middle:.1})">{}</text>"#,
        escape(&chart.y.label)
    );
}

fn write_series(out: &mut String, chart: &Chart, to_px: &dyn Fn(f64, f64) -> (f64, f64)) {
    let mut legend_x = MARGIN_LEFT;
    for (index, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let pixels: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter_map(|(x, y)| {
                let x_unit = to_axis_units(chart.x.scale, *x)?;
                let y_unit = to_axis_units(chart.y.scale, *y)?;
                Some(to_px(x_unit, y_unit))
            })
            .collect();
        let mut points = String::with_capacity(pixels.len() * 14);
        for (x, y) in &pixels {
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            points.trim_end()
        );
        if let [(x, y)] = pixels.as_slice() {
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
            );
        }
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{LEGEND_Y:.1}">{}</text>"#,
            LEGEND_Y - 4.0,
            legend_x + 18.0,
            LEGEND_Y - 4.0,
            legend_x + 24.0,
            escape(&series.name)
        );
        legend_x += 44.0 + LEGEND_CHAR_WIDTH * series.name.chars().count() as f64;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `text` is well-formed XML as far as this writer can break it: one root,
    /// balanced and properly nested tags, quoted attributes, no stray `<` or `&`.
    pub(crate) fn assert_well_formed_xml(text: &str) {
        let body = text
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .expect("XML declaration first");
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            let close = rest[open..].find('>').expect("tag closes") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().expect("closing tag has an opening tag");
                assert_eq!(top, name.trim(), "tags nest");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().expect("tag name");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()),
                "name {name}"
            );
            check_attributes(&tag[name.len()..]);
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name.to_owned());
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        assert_eq!(roots, 1, "exactly one root element");
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "stray > in text {text:?}");
        for (index, _) in text.match_indices('&') {
            let entity = &text[index..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bad entity in {text:?}"
            );
        }
    }

    fn check_attributes(mut attributes: &str) {
        loop {
            attributes = attributes.trim_start();
            if attributes.is_empty() {
                return;
            }
            let equals = attributes.find('=').expect("attribute has a value");
            let name = &attributes[..equals];
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "attribute name {name:?}"
            );
            let value = attributes[equals + 1..]
                .strip_prefix('"')
                .expect("attribute value is quoted");
            let end = value.find('"').expect("attribute value ends");
            check_text(&value[..end]);
            assert!(!value[..end].contains('<'));
            attributes = &value[end + 1..];
        }
    }

    fn sample_chart(scale: Scale) -> Chart {
        Chart {
            title: "Throughput <send & consume>".into(),
            x: Axis::new("time (s)", Scale::Linear),
            y: Axis::new("msgs/s", scale),
            series: vec![
                Series {
                    name: "send \"acked\"".into(),
                    points: (0..20)
                        .map(|i| (f64::from(i), 1000.0 + f64::from(i * 37)))
                        .collect(),
                },
                Series {
                    name: "single".into(),
                    points: vec![(3.0, 500.0), (4.0, f64::NAN), (5.0, 0.0)],
                },
            ],
        }
    }

    #[test]
    fn renders_well_formed_svg_with_polylines() {
        for scale in [Scale::Linear, Scale::Log10] {
            let svg = render(&sample_chart(scale));
            assert_well_formed_xml(&svg);
            assert_eq!(svg.matches("<polyline").count(), 2);
            assert!(svg.contains("&lt;send &amp; consume&gt;"));
            assert!(svg.contains("send &quot;acked&quot;"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
            let points = svg
                .split("points=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("first polyline has points");
            assert_eq!(points.split(' ').count(), 20);
        }
        // On the log axis the 0.0 point is dropped, leaving one point: drawn as a dot.
        assert!(render(&sample_chart(Scale::Log10)).contains("<circle"));
    }

    #[test]
    fn empty_chart_is_still_valid() {
        let chart = Chart {
            title: "nothing".into(),
            x: Axis::new("x", Scale::Linear),
            y: Axis::new("y", Scale::Log10),
            series: Vec::new(),
        };
        assert_well_formed_xml(&render(&chart));
    }

    #[test]
    fn ticks_are_nice() {
        assert!((nice_step(0.9) - 1.0).abs() < 1e-12);
        assert!((nice_step(13.0) - 20.0).abs() < 1e-12);
        assert!((nice_step(420.0) - 500.0).abs() < 1e-12);
        assert!((nice_step_ceil(1730.0) - 2000.0).abs() < 1e-9);
        assert_eq!(format_tick(1500.0), "1.5k");
        assert_eq!(format_tick(2_000_000.0), "2M");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(40.0), "40");
    }
}
