//! Inline SVG charts (plotters' SVG backend, no font files needed: the browser renders the text).
//! Each function returns one `<svg>` element as a string; html.rs places them.

use plotters::prelude::*;

use crate::metrics::calibration::Bin;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type Series = (String, Vec<(f64, f64)>);

fn draw<F>(w: u32, h: u32, f: F) -> String
where
    F: for<'b> FnOnce(&DrawingArea<SVGBackend<'b>, plotters::coord::Shift>) -> Result<(), Box<dyn std::error::Error>>,
{
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        if let Err(e) = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|_| f(&root).map_err(|e| e.to_string())) {
            return format!("<p class=\"chart-error\">chart failed: {e}</p>");
        }
        let _ = root.present();
    }
    s
}

/// The colour of a series: each level keeps its own in every chart of every page; other series (presets,
/// loss terms) take the palette in order.
pub fn series_color(name: &str, i: usize) -> RGBColor {
    match crate::metrics::LEVELS.iter().position(|l| *l == name) {
        Some(k) => PALETTE[k],
        None => color(i),
    }
}

/// A series' legend, drawn as HTML beside the chart so that it never covers a line.
fn legend(names: &[&str]) -> String {
    let mut s = String::from("<div class=\"legend\">");
    for (i, name) in names.iter().enumerate() {
        let RGBColor(r, g, b) = series_color(name, i);
        s.push_str(&format!("<span><i style=\"background:#{r:02x}{g:02x}{b:02x}\"></i>{}</span>", super::esc(name)));
    }
    s.push_str("</div>");
    s
}

/// The y range a chart shows: the data's range with a margin, widened to at least two points for a share
/// (a tenth of the largest value for other quantities) and kept inside `bounds` (what the quantity can be,
/// e.g. 0–1 for a share), so lines a point apart do not sit on each other.
pub(crate) fn fitted_range(values: impl Iterator<Item = f64>, bounds: (f64, f64)) -> (f64, f64) {
    let share = bounds.1 - bounds.0 <= 1.0;
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return if share { bounds } else { (0.0, 1.0) };
    }
    let min_span = if share { 0.02 } else { (lo.abs().max(hi.abs()) * 0.1).max(1e-12) };
    let pad = ((hi - lo) * 0.08).max((min_span - (hi - lo)).max(0.0) / 2.0);
    let (mut lo, mut hi) = (lo - pad, hi + pad);
    if lo < bounds.0 {
        (lo, hi) = (bounds.0, (hi + bounds.0 - lo).min(bounds.1));
    }
    if hi > bounds.1 {
        (lo, hi) = ((lo - (hi - bounds.1)).max(bounds.0), bounds.1);
    }
    (lo, hi)
}

/// The x range of the series, and whether every x is a whole number (epochs: ticked 1, 2, 3, not 2.2).
fn x_axis(xs: impl Iterator<Item = f64>) -> ((f64, f64), bool) {
    let (mut lo, mut hi, mut whole) = (f64::INFINITY, f64::NEG_INFINITY, true);
    for x in xs {
        (lo, hi) = (lo.min(x), hi.max(x));
        whole &= x.fract() == 0.0;
    }
    if !lo.is_finite() {
        return ((0.0, 1.0), false);
    }
    ((lo, if hi > lo { hi } else { lo + 1.0 }), whole)
}

/// Lines with markers, the y axis fitted to the data inside `bounds`, the legend beside the chart.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series], bounds: (f64, f64)) -> String {
    let bands: Vec<Band> =
        series.iter().map(|(n, pts)| (n.clone(), pts.iter().map(|&(x, y)| (x, y, y, y)).collect())).collect();
    bands_chart(title, x_desc, y_desc, &bands, bounds, false)
}

/// A series of (x, mean, min, max): a mean over seeds with its min–max band.
pub type Band = (String, Vec<(f64, f64, f64, f64)>);

/// Means over seeds as lines, each with its min–max band shaded, fitted and legended as [`lines`].
pub fn bands(title: &str, x_desc: &str, y_desc: &str, series: &[Band], bounds: (f64, f64)) -> String {
    bands_chart(title, x_desc, y_desc, series, bounds, true)
}

fn bands_chart(title: &str, x_desc: &str, y_desc: &str, series: &[Band], bounds: (f64, f64), shade: bool) -> String {
    let ((x0, x1), whole) = x_axis(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
    let (y0, y1) = fitted_range(series.iter().flat_map(|s| s.1.iter().flat_map(|p| [p.2, p.3])), bounds);
    let ticks = if whole { ((x1 - x0) as usize + 1).min(12) } else { 8 };
    let svg = draw(520, 320, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(ticks)
            .x_label_formatter(&|x| {
                if !whole {
                    format!("{x:.2}")
                } else if x.fract().abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = series_color(name, i);
            if shade && pts.len() > 1 {
                let upper = pts.iter().map(|p| (p.0, p.3));
                let lower = pts.iter().rev().map(|p| (p.0, p.2));
                chart
                    .draw_series(std::iter::once(Polygon::new(upper.chain(lower).collect::<Vec<_>>(), c.mix(0.18))))?;
            }
            chart.draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)).point_size(3))?;
        }
        Ok(())
    });
    let names: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    format!("<figure class=\"chart\">{svg}{}</figure>", legend(&names))
}

/// Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration.
pub fn reliability(title: &str, bins: &[Bin]) -> String {
    draw(300, 300, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(36)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart.configure_mesh().x_desc("confidence").y_desc("accuracy").disable_mesh().draw()?;
        chart.draw_series(bins.iter().filter_map(|b| {
            b.accuracy
                .map(|a| Rectangle::new([(f64::from(b.lo), 0.0), (f64::from(b.hi), a)], color(0).mix(0.7).filled()))
        }))?;
        chart.draw_series(
            bins.iter().filter_map(|b| b.mean_confidence.map(|m| Circle::new((m, m), 2, color(3).filled()))),
        )?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5)))?;
        Ok(())
    })
}

/// Confusion heatmap, rows = true class, columns = predicted; cells shaded by row share.
pub fn heatmap(title: &str, names: &[String], m: &[Vec<u64>]) -> String {
    let c = names.len();
    draw(80 + 60 * c as u32, 80 + 40 * c as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0..c, 0..c)?;
        let short: Vec<String> = names.iter().map(|n| n.chars().take(8).collect()).collect();
        let s2 = short.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(c)
            .y_labels(c)
            .x_label_formatter(&|x| short.get(*x).cloned().unwrap_or_default())
            // Row y is drawn over [y, y + 1]: its label sits at y; the top edge (y = c) has none.
            .y_label_formatter(&|y| {
                if *y < c {
                    s2.get(c - 1 - *y).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("predicted class (pseudo-label)")
            .draw()?;
        for (t, row) in m.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            for (p, v) in row.iter().enumerate() {
                let share = *v as f64 / total as f64;
                let y = c - 1 - t;
                let fill = RGBColor(255 - (share * 200.0) as u8, 255 - (share * 120.0) as u8, 255);
                chart.draw_series(std::iter::once(Rectangle::new([(p, y), (p + 1, y + 1)], fill.filled())))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{v}"),
                    (p, y + 1),
                    ("sans-serif", 11).into_font().color(&BLACK),
                )))?;
            }
        }
        Ok(())
    })
}

/// Grouped bars per class, e.g. pseudo-label share against labeled prior and true share.
pub fn grouped_bars(title: &str, names: &[String], series: &[(String, Vec<f64>)]) -> String {
    let c = names.len();
    let g = series.len().max(1);
    let ymax = series.iter().flat_map(|s| s.1.iter().copied()).fold(0.0f64, f64::max).max(0.05) * 1.15;
    let svg = draw(560, 320, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..c as f64, 0f64..ymax)?;
        let short: Vec<String> = names.iter().map(|n| n.chars().take(8).collect()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(c * 2)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    short.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("share")
            .draw()?;
        for (si, (name, vals)) in series.iter().enumerate() {
            let col = series_color(name, si);
            let w = 0.8 / g as f64;
            chart.draw_series(vals.iter().enumerate().map(|(k, v)| {
                let x0 = k as f64 + 0.1 + si as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, *v)], col.filled())
            }))?;
        }
        Ok(())
    });
    let names: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    format!("<figure class=\"chart\">{svg}{}</figure>", legend(&names))
}

#[cfg(test)]
mod tests {
    use super::fitted_range;

    #[test]
    fn y_ranges_fit_the_data_inside_their_bounds() {
        // 0.60–0.70: 8 % of the 0.10 span on each side.
        let (lo, hi) = fitted_range([0.60, 0.65, 0.70].into_iter(), (0.0, 1.0));
        assert!((lo - 0.592).abs() < 1e-12 && (hi - 0.708).abs() < 1e-12, "{lo} {hi}");
        // A flat share gets two points; near 1 the range is shifted down, never past the bound.
        let (lo, hi) = fitted_range([0.995, 0.995].into_iter(), (0.0, 1.0));
        assert!((hi - 1.0).abs() < 1e-12 && (lo - 0.98).abs() < 1e-12, "{lo} {hi}");
        // A learning rate of 1e-3 to 1e-5 is not flattened by a share's two points: padded by 7.92e-5 each
        // side, then shifted up by the 6.92e-5 it fell below 0.
        let (lo, hi) = fitted_range([1e-3, 1e-5].into_iter(), (0.0, f64::MAX));
        assert!(lo == 0.0 && (hi - 1.1484e-3).abs() < 1e-12, "{lo} {hi}");
        assert_eq!(fitted_range(std::iter::empty(), (0.0, 1.0)), (0.0, 1.0));
    }
}
