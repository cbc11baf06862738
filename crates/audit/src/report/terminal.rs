//! Readable terminal tables: the per-epoch trajectory, the detail of one epoch, what-if, and the
//! side-by-side comparison of runs.

use std::fmt::Write;

use super::tables::{self, Table};
use super::{delta_pts, evaluation_line, pct, RunReport};
use crate::metrics::LEVELS;

/// A table as right-aligned columns, each as wide as its widest cell, under its title.
pub(crate) fn text(t: &Table) -> String {
    let cols = t.head.len();
    let width: Vec<usize> = (0..cols)
        .map(|j| {
            let cells = std::iter::once(&t.head).chain(&t.rows).filter_map(|r| r.get(j));
            cells.map(|c| c.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells.iter().zip(&width).map(|(c, &w)| format!("{c:>w$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut s = format!("\n{}:\n{}\n", t.title, line(&t.head));
    for r in &t.rows {
        s.push_str(&line(r));
        s.push('\n');
    }
    s
}

/// The run's report for a terminal: the tables of [`tables`], in the page's order, with its sentences.
pub fn render(r: &RunReport) -> String {
    let mut s = format!("audit {}  ({})\n", r.run, tables::headline(r));
    let lines = r.classifier_line().into_iter().chain(r.evaluations.iter().map(evaluation_line));
    for line in lines.chain(r.warnings.iter().map(|w| format!("warning: {w}"))) {
        let _ = writeln!(s, "{line}");
    }
    let Some(d) = r.detail() else {
        return s;
    };
    s.push_str(&text(&tables::epochs(r, d)));
    s.push_str(&text(&tables::levels(d)));
    let sentences = [tables::gain_at_classifier_quantity(d), tables::votes(d), tables::stored_fusion_note(d)];
    for line in sentences.into_iter().flatten() {
        let _ = writeln!(s, "{line}");
    }
    if let Some(t) = tables::agreement(d) {
        s.push_str(&text(&t));
    }
    s.push_str(&text(&tables::per_class(d)));
    s.push_str(&text(&tables::class_recall(d)));
    s.push_str(&text(&tables::confusion(r, d)));
    if let Some(t) = tables::fused_sweep(d) {
        s.push_str(&text(&t));
    }
    if let Some(w) = &r.what_if {
        s.push_str(&text(&tables::what_if(w, 5)));
        if let Some(v) = tables::what_if_verdict(w) {
            let _ = writeln!(s, "{v}");
        }
    }
    s
}

/// Side by side: the last epoch of each run, with deltas against the first run.
pub fn render_compare(runs: &[RunReport]) -> String {
    let mut s = String::new();
    let base = &runs[0];
    let _ = write!(s, "{:<28}", "metric (last epoch)");
    for r in runs {
        let _ = write!(s, " {:>22}", r.run.chars().take(22).collect::<String>());
    }
    let _ = writeln!(s);
    for (name, get) in compare_rows() {
        let _ = write!(s, "{name:<28}");
        let b = get(base);
        for (i, r) in runs.iter().enumerate() {
            let v = get(r);
            let cell =
                if i == 0 { pct(v) } else { format!("{} ({})", pct(v), delta_pts(v.zip(b).map(|(x, y)| x - y))) };
            let _ = write!(s, " {cell:>22}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "(in parentheses: points against the first run, {}; not paired by seed)", base.run);
    s
}

type Getter = Box<dyn Fn(&RunReport) -> Option<f64>>;

/// The rows of a comparison: (label, value of a run's detail epoch).
pub fn compare_rows() -> Vec<(String, Getter)> {
    let mut rows: Vec<(String, Getter)> = Vec::new();
    rows.push((
        "test acc (best val epoch)".into(),
        Box::new(|r: &RunReport| r.model.as_ref().and_then(|m| m.test_acc)),
    ));
    rows.push(("test acc (last epoch)".into(), Box::new(|r: &RunReport| r.model.as_ref().and_then(|m| m.test_last))));
    rows.push(("val acc (best val epoch)".into(), Box::new(|r: &RunReport| r.model.as_ref().map(|m| m.val_acc))));
    for l in LEVELS {
        rows.push((
            format!("{l} accuracy"),
            Box::new(move |r: &RunReport| r.detail().and_then(|d| d.level(l)).map(|x| x.accuracy)),
        ));
    }
    rows.push((
        "fused − classifier, equal qty".into(),
        Box::new(|r: &RunReport| r.detail().and_then(|d| d.fused_gain_at_classifier_quantity())),
    ));
    rows.push((
        "fused quantity".into(),
        Box::new(|r: &RunReport| r.detail().and_then(|d| d.level("fused")).map(|x| x.selection.quantity)),
    ));
    rows.push((
        "fused quality".into(),
        Box::new(|r: &RunReport| r.detail().and_then(|d| d.level("fused")).and_then(|x| x.selection.quality)),
    ));
    rows.push(("fused ECE".into(), Box::new(|r: &RunReport| r.detail().and_then(|d| d.level("fused")).map(|x| x.ece))));
    rows.push(("all levels agree".into(), Box::new(|r: &RunReport| r.detail().and_then(|d| d.agreement.all))));
    rows
}

/// The seed-paired table: per preset, test accuracy at the val-chosen epoch over seeds; after the first
/// preset, the mean paired difference to it with its 95 % interval, in points, and the verdict.
pub fn render_paired(rows: &[crate::paired::PresetRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "seed-paired: test accuracy at the val-chosen epoch{}",
        rows.first().map(|r| format!(", differences to {}", r.preset)).unwrap_or_default()
    );
    let (head, body) = crate::paired::display(rows);
    let _ = writeln!(s, "{:<22} {:>6} {:>16}   {:<44}", head[0], head[1], head[2], head[3]);
    for [preset, seeds, mean, diff, verdict] in body {
        let verdict = if verdict.is_empty() { String::new() } else { format!("  {verdict}") };
        let _ = writeln!(s, "{preset:<22} {seeds:>6} {mean:>16}   {diff}{verdict}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_right_aligned_to_its_widest_cell() {
        let t = Table {
            id: "t",
            title: "Title".into(),
            head: vec!["level".into(), "quality".into()],
            rows: vec![vec!["fused".into(), "90.6%".into()], vec!["instance".into(), "—".into()]],
        };
        assert_eq!(text(&t), "\nTitle:\n   level  quality\n   fused    90.6%\ninstance        —\n");
    }
}
