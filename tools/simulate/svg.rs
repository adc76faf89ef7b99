// SPDX-License-Identifier: GPL-2.0

//! A line chart as SVG, written directly: no plotting library needed.

use std::fmt::Write as _;

/// One line of the chart.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// Its name in the legend.
    pub(crate) name: String,
    /// Its colour (`#rrggbb`).
    pub(crate) colour: &'static str,
    /// Its points, x ascending.
    pub(crate) points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Returns a round step for an axis of length `span` with about `ticks` ticks.
fn step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Renders `series` with a title and axis labels; y starts at 0.
pub(crate) fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 480.0, 80.0, 170.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let x_max = pts.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_top = pts.map(|p| p.1).fold(0.0, f64::max);
    let (xs, ys) = (step(x_max, 10.0), step(y_top.max(1e-9), 6.0));
    let y_max = (y_top / ys).ceil().max(1.0) * ys;
    let x = |v: f64| left + v / x_max * pw;
    let y = |v: f64| top + ph - v / y_max * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">"
    );
    let _ = writeln!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut v = 0.0;
    while v <= y_max + ys / 2.0 {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"end\">{4}</text>",
            y(v),
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            v
        );
        v += ys;
    }
    let mut v = 0.0;
    while v <= x_max + xs / 2.0 {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#000\"/><text x=\"{0:.1}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\">{4}</text>",
            x(v),
            top + ph,
            top + ph + 5.0,
            top + ph + 18.0,
            v
        );
        v += xs;
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#000\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 10.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
        top + ph / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let path: Vec<String> = se
            .points
            .iter()
            .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            se.colour,
            path.join(" "),
            esc(&se.name)
        );
        let ly = top + 14.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{0}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"{3}\" stroke-width=\"3\"/><text x=\"{4}\" y=\"{5:.1}\" font-size=\"12\">{6}</text>",
            left + pw + 12.0,
            ly,
            left + pw + 36.0,
            se.colour,
            left + pw + 42.0,
            ly + 4.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_inside_the_plot() {
        let s = chart(
            "t<1>",
            "x",
            "y",
            &[
                Series {
                    name: "a".into(),
                    colour: "#ff0000",
                    points: vec![(0.0, 0.0), (10.0, 5.0)],
                },
                Series {
                    name: "b".into(),
                    colour: "#0000ff",
                    points: vec![(0.0, 1.0), (10.0, 1.0)],
                },
            ],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("t&lt;1&gt;"));
        // The top of the y axis is at or above the largest value.
        assert!(s.contains("points=\"80.0,430.0 730.0,"));
        assert_eq!(step(1000.0, 10.0), 100.0);
        assert_eq!(step(7.0, 6.0), 2.0);
    }
}
