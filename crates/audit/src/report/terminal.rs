//! Readable terminal tables: the per-epoch trajectory, the detail of one epoch, what-if, and the
//! side-by-side comparison of runs.

use std::fmt::Write;

use super::{delta_pts, evaluation_line, pct, RunReport};
use crate::analysis::EpochReport;
use crate::metrics::LEVELS;

fn level_acc(e: &crate::analysis::EpochReport, l: &str) -> String {
    e.level(l).map(|r| pct(Some(r.accuracy))).unwrap_or_else(|| "off".into())
}

/// An epoch's audited rows, and the run's unlabeled faces when its sweep read a seeded subset (`run.sweep_subset`).
pub fn swept_rows(e: &EpochReport) -> String {
    match e.subset_of {
        Some(of) => format!("{}/{of}", e.rows),
        None => e.rows.to_string(),
    }
}

pub fn render(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "audit {}  ({} preset, {} data, {} classes, {} unlabeled rows)",
        r.run,
        r.preset,
        r.dataset,
        r.classes.len(),
        r.detail().map_or(0, |d| d.rows)
    );
    let _ = writeln!(s, "setting: {}", r.setting);
    if let Some(line) = r.classifier_line() {
        let _ = writeln!(s, "{line}");
    }
    for e in &r.evaluations {
        let _ = writeln!(s, "{}", evaluation_line(e));
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let Some(d) = r.detail() else {
        return s;
    };
    let _ = writeln!(s, "\nper epoch: argmax accuracy of each level over the swept unlabeled rows; quantity/quality of the fused pseudo-labels");
    let _ = writeln!(
        s,
        "{:>6} {:>13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "epoch", "rows", "semantic", "text", "instance", "fused", "quantity", "quality", "ECE"
    );
    for e in &r.epochs {
        let f = e.level("fused").expect("fused level always present");
        let _ = writeln!(
            s,
            "{:>6} {:>13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.3}",
            e.epoch,
            swept_rows(e),
            level_acc(e, "semantic"),
            level_acc(e, "text"),
            level_acc(e, "instance"),
            pct(Some(f.accuracy)),
            pct(Some(f.selection.quantity)),
            pct(f.selection.quality),
            f.ece
        );
    }

    let _ = writeln!(s, "\nepoch {} in detail (threshold {}, fusion {}):", d.epoch, d.threshold, d.fusion);
    let _ = writeln!(
        s,
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>13}",
        "level", "accuracy", "quantity", "quality", "selected", "ECE", "@cls quantity"
    );
    for l in &d.levels {
        let _ = writeln!(
            s,
            "{:>10} {:>9} {:>9} {:>9} {:>9} {:>7.3} {:>13}",
            l.level,
            pct(Some(l.accuracy)),
            pct(Some(l.selection.quantity)),
            pct(l.selection.quality),
            l.selection.selected,
            l.ece,
            pct(l.at_classifier_quantity)
        );
    }
    if let Some(g) = d.fused_gain_at_classifier_quantity() {
        let _ = writeln!(
            s,
            "at the classifier's own quantity ({} rows) the fused pseudo-labels are {:.2} points {} accurate than \
             the classifier's alone",
            d.level("semantic").map_or(0, |l| l.selection.selected),
            100.0 * g.abs(),
            if g >= 0.0 { "more" } else { "less" }
        );
    }
    if !d.agreement.pairs.is_empty() {
        let pairs: Vec<String> = d.agreement.pairs.iter().map(|(k, v)| format!("{k} {}", pct(Some(*v)))).collect();
        let _ = writeln!(
            s,
            "agreement: {}; all levels agree on {} — fused accuracy there {}, elsewhere {}",
            pairs.join(", "),
            pct(d.agreement.all),
            pct(d.agreement.fused_accuracy_when_agree),
            pct(d.agreement.fused_accuracy_when_disagree)
        );
    }
    if let Some(v) = &d.votes {
        let _ = writeln!(s, "wrong pseudo-labels that are the annotators' second choice: {} of {} ({}); among selected: {} of {}; with no vote at all: {}",
            v.second_choice, v.wrong, pct(v.rate), pct(v.rate_selected), v.wrong_selected, pct(v.no_vote_share));
    }
    if let Some(diff) = d.stored_fusion_max_diff {
        if diff > 1e-3 {
            let _ = writeln!(
                s,
                "note: the stored p_fused differs from the levels fused with the recorded rule by up to {diff:.4}"
            );
        }
    }

    let _ = writeln!(s, "\nper class (selected fused pseudo-labels):");
    let _ = writeln!(
        s,
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "class", "precision", "recall", "pseudo %", "labeled %", "true %"
    );
    for c in &d.per_class {
        let _ = writeln!(
            s,
            "{:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            c.class,
            pct(c.precision),
            pct(c.recall),
            pct(c.pseudo_share),
            pct(Some(c.labeled_prior)),
            pct(Some(c.true_share))
        );
    }
    let _ = writeln!(
        s,
        "\nper class, every row: recall of each level's argmax (labeled % = the class's share of the bank)"
    );
    let _ = write!(s, "{:>10} {:>9}", "class", "labeled %");
    for l in &d.levels {
        let _ = write!(s, " {:>9}", l.level);
    }
    let _ = writeln!(s);
    for (k, c) in d.per_class.iter().enumerate() {
        let _ = write!(s, "{:>10} {:>9}", c.class, pct(Some(c.labeled_prior)));
        for l in &d.levels {
            let _ = write!(s, " {:>9}", pct(l.class_recall.get(k).copied().flatten()));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nfused confusion (rows: true class, columns: pseudo-label):");
    let short: Vec<String> = r.classes.iter().map(|c| c.chars().take(7).collect()).collect();
    let _ = write!(s, "{:>10}", "");
    for n in &short {
        let _ = write!(s, " {n:>7}");
    }
    let _ = writeln!(s);
    for (i, row) in d.confusion.iter().enumerate() {
        let _ = write!(s, "{:>10}", short[i]);
        for v in row {
            let _ = write!(s, " {v:>7}");
        }
        let _ = writeln!(s);
    }
    let f = d.level("fused").expect("fused");
    let sw: Vec<String> = f
        .sweep
        .iter()
        .filter(|p| p.threshold >= 0.5)
        .map(|p| format!("{}:{}/{}", p.threshold, pct(Some(p.quantity)), pct(p.quality)))
        .collect();
    let _ = writeln!(s, "\nthreshold sweep, fused (threshold:quantity/quality): {}", sw.join("  "));

    if let Some(w) = &r.what_if {
        let _ = writeln!(
            s,
            "\nwhat-if at equal quantity (the {} most confident rows = {} selected by {} at {}; quality {}):",
            w.selected,
            pct(Some(w.quantity)),
            w.setting,
            w.threshold,
            pct(w.quality)
        );
        for c in w.candidates.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:<34} quality {:>6} ({:>5} pts) at threshold {:.3}",
                c.fusion,
                pct(c.quality),
                delta_pts(c.delta),
                c.threshold
            );
        }
        if let Some(best) = w.candidates.first() {
            let verdict = match best.delta {
                Some(d) if d > 0.0005 => format!(
                    "{} would have given {} pts better pseudo-labels at the same quantity",
                    best.fusion,
                    delta_pts(Some(d))
                ),
                _ => "no setting tried beats the run's own at this quantity".into(),
            };
            let _ = writeln!(s, "best: {verdict}");
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
