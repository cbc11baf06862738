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

/// Lines with markers; `y` in `y_range`.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series], y_range: (f64, f64)) -> String {
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (x0, x1) = if x0.is_finite() { (x0, if x1 > x0 { x1 } else { x0 + 1.0 }) } else { (0.0, 1.0) };
    draw(560, 340, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, y_range.0..y_range.1)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).light_line_style(RGBColor(235, 235, 235)).draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)).point_size(3))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.3)).draw()?;
        Ok(())
    })
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
            .y_label_formatter(&|y| s2.get(c.saturating_sub(1 + *y)).cloned().unwrap_or_default())
            .x_desc("pseudo-label")
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
    draw(560, 320, |root| {
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
            let col = color(si);
            let w = 0.8 / g as f64;
            chart
                .draw_series(vals.iter().enumerate().map(|(k, v)| {
                    let x0 = k as f64 + 0.1 + si as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, *v)], col.filled())
                }))?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.3)).draw()?;
        Ok(())
    })
}
