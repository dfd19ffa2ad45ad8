//! Charts drawn on the server as SVG: the geometry here (numbers only), the markup in the
//! `chart.html` template, so the page needs no script and no third-party file, and the
//! content security policy stays as strict as it is. Each chart carries its numbers as a
//! table too, for screen readers and for whoever wants the exact figures.

use askama::Template;

/// The drawing's size in SVG units (it scales to its container).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// A tick on an axis: where, and its label.
pub struct Tick {
    pub at: String,
    pub label: String,
}

/// A line of the chart: its path (gaps where there is no value) and its points.
pub struct Line {
    pub name: String,
    /// A CSS class giving its colour and dash.
    pub class: String,
    pub path: String,
    pub dots: Vec<(String, String)>,
}

/// A bar of a bar chart.
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "chart.html")]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// One sentence saying what the chart shows, for screen readers.
    pub description: String,
    pub width: f64,
    pub height: f64,
    pub plot_left: f64,
    pub plot_right: f64,
    pub plot_bottom: f64,
    /// Where the y axis's labels end, and the x axis's labels sit.
    pub y_label_x: f64,
    pub x_label_y: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub lines: Vec<Line>,
    pub bars: Vec<Bar>,
    /// The numbers: a header, then a row per step.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A series to draw: its name, CSS class and a value per step (`None`: nothing that step).
pub struct Series {
    pub name: String,
    pub class: &'static str,
    pub values: Vec<Option<f64>>,
}

fn number(value: f64) -> String {
    format!("{value:.1}")
}

/// The x of step `i` of `n`: steps are spread over the plot's width, centred in their slot.
fn x_of(i: usize, n: usize) -> f64 {
    let slot = (WIDTH - LEFT - RIGHT) / n.max(1) as f64;
    LEFT + slot * (i as f64 + 0.5)
}

fn y_of(value: f64, max: f64) -> f64 {
    let plot = HEIGHT - TOP - BOTTOM;
    HEIGHT - BOTTOM - plot * (value / max).clamp(0.0, 1.0)
}

/// A value with at most two decimals, without trailing zeros: `0.25`, `0.5`, `12`.
pub fn short(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A round top for an axis that holds `max`: 1, 2 or 5 times a power of ten.
pub fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * power)
}

/// About six labels along the x axis, whatever the number of steps.
fn x_ticks(labels: &[String]) -> Vec<Tick> {
    let every = labels.len().div_ceil(6).max(1);
    labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, label)| Tick {
            at: number(x_of(i, labels.len())),
            label: label.clone(),
        })
        .collect()
}

fn y_ticks(max: f64, label: &dyn Fn(f64) -> String) -> Vec<Tick> {
    (0..=4)
        .map(|i| {
            let value = max * i as f64 / 4.0;
            Tick {
                at: number(y_of(value, max)),
                label: label(value),
            }
        })
        .collect()
}

fn frame(
    id: &str,
    title: &str,
    description: String,
    labels: &[String],
    max: f64,
    label: &dyn Fn(f64) -> String,
) -> Chart {
    Chart {
        id: id.to_owned(),
        title: title.to_owned(),
        description,
        width: WIDTH,
        height: HEIGHT,
        plot_left: LEFT,
        plot_right: WIDTH - RIGHT,
        plot_bottom: HEIGHT - BOTTOM,
        y_label_x: LEFT - 6.0,
        x_label_y: HEIGHT - 8.0,
        x_ticks: x_ticks(labels),
        y_ticks: y_ticks(max, label),
        lines: Vec::new(),
        bars: Vec::new(),
        columns: Vec::new(),
        rows: Vec::new(),
    }
}

/// Lines over steps labelled `labels`, on an axis from 0 to `max` labelled by `label`.
pub fn lines(
    id: &str,
    title: &str,
    description: String,
    labels: &[String],
    series: &[Series],
    max: f64,
    label: &dyn Fn(f64) -> String,
) -> Chart {
    let mut chart = frame(id, title, description, labels, max, label);
    let n = labels.len();
    for s in series {
        let mut path = String::new();
        let mut dots = Vec::new();
        let mut pen_down = false;
        for (i, value) in s.values.iter().enumerate() {
            match value {
                Some(v) => {
                    let (x, y) = (number(x_of(i, n)), number(y_of(*v, max)));
                    path.push_str(&format!("{}{x} {y} ", if pen_down { "L" } else { "M" }));
                    dots.push((x, y));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        chart.lines.push(Line {
            name: s.name.clone(),
            class: s.class.to_owned(),
            path: path.trim_end().to_owned(),
            dots,
        });
    }
    chart.columns = std::iter::once("When".to_owned())
        .chain(series.iter().map(|s| s.name.clone()))
        .collect();
    chart.rows = labels
        .iter()
        .enumerate()
        .map(|(i, when)| {
            std::iter::once(when.clone())
                .chain(
                    series
                        .iter()
                        .map(|s| s.values[i].map_or("–".to_owned(), label)),
                )
                .collect()
        })
        .collect();
    chart
}

/// Bars over steps labelled `labels`.
pub fn bars(
    id: &str,
    title: &str,
    description: String,
    labels: &[String],
    values: &[f64],
    what: &str,
) -> Chart {
    let max = nice_max(values.iter().copied().fold(0.0, f64::max));
    let whole = |v: f64| short(v);
    let mut chart = frame(id, title, description, labels, max, &whole);
    let n = labels.len();
    let slot = (WIDTH - LEFT - RIGHT) / n.max(1) as f64;
    for (i, value) in values.iter().enumerate() {
        let top = y_of(*value, max);
        chart.bars.push(Bar {
            x: number(x_of(i, n) - slot * 0.35),
            y: number(top),
            width: number(slot * 0.7),
            height: number(HEIGHT - BOTTOM - top),
            title: format!("{}: {value:.0} {what}", labels[i]),
        });
    }
    chart.columns = vec!["When".to_owned(), what.to_owned()];
    chart.rows = labels
        .iter()
        .zip(values)
        .map(|(when, v)| vec![when.clone(), whole(*v)])
        .collect();
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        let cases = [
            (0.0, "0"),
            (0.25, "0.25"),
            (0.5, "0.5"),
            (12.0, "12"),
            (2.125, "2.12"),
        ];
        for (value, text) in cases {
            assert_eq!(short(value), text);
        }
    }

    #[test]
    fn nice_tops() {
        let cases = [
            (0.0, 1.0),
            (0.3, 0.5),
            (1.0, 1.0),
            (7.0, 10.0),
            (42.0, 50.0),
            (180.0, 200.0),
            (1001.0, 2000.0),
        ];
        for (max, top) in cases {
            assert!(
                (nice_max(max) - top).abs() < 1e-9,
                "{max}: {}",
                nice_max(max)
            );
        }
    }

    #[test]
    fn lines_leave_gaps_where_there_is_no_value() {
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let chart = lines(
            "rates",
            "Rates",
            "what".into(),
            &labels,
            &[Series {
                name: "approved".into(),
                class: "s0",
                values: vec![Some(1.0), None, Some(0.5), Some(0.0)],
            }],
            1.0,
            &|v| format!("{:.0}%", v * 100.0),
        );
        // Four slots of 161 units from x = 64; values 1 at the top (y 12), 0 at the bottom (y 190).
        assert_eq!(chart.lines[0].path, "M144.5 12.0 M466.5 101.0 L627.5 190.0");
        assert_eq!(chart.rows[1], ["b", "–"]);
        assert_eq!(chart.rows[2], ["c", "50%"]);
        assert_eq!(chart.y_ticks.last().unwrap().label, "100%");
        let svg = chart.render().unwrap();
        assert!(
            svg.contains(r#"role="img""#)
                && svg.contains("<title id=\"rates-title\">Rates</title>"),
            "{svg}"
        );
    }
}
