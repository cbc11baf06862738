//! A run's report as tables and sentences, built once from [`RunReport`]: the terminal prints them as aligned
//! columns ([`super::terminal`]), the HTML page as `<table>`s beside its charts ([`super::html`]), so the two
//! show the same numbers under the same headings and a new column is added in one place.

use super::{delta_pts, pct, RunReport};
use crate::analysis::EpochReport;
use crate::what_if::WhatIf;

/// One table: an anchor for the page, a title, a header row and rows of cells already formatted.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub(crate) id: &'static str,
    pub(crate) title: String,
    pub(crate) head: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An epoch's audited rows, and the run's unlabeled faces when its sweep read a seeded subset (`run.sweep_subset`).
pub fn swept_rows(e: &EpochReport) -> String {
    match e.subset_of {
        Some(of) => format!("{}/{of}", e.rows),
        None => e.rows.to_string(),
    }
}

/// The first line: the run, its preset and data, what was audited.
pub fn headline(r: &RunReport) -> String {
    format!(
        "{} preset on {} data, {} classes, {} unlabeled rows audited; setting: {}",
        r.preset,
        r.dataset,
        r.classes.len(),
        r.detail().map_or(0, |d| d.rows),
        r.setting
    )
}

/// Per epoch: each level's argmax accuracy over the swept rows, and the fused pseudo-labels' quantity and
/// quality at the threshold in force.
pub fn epochs(r: &RunReport, d: &EpochReport) -> Table {
    let levels: Vec<&str> = d.levels.iter().map(|l| l.level.as_str()).collect();
    let rows = r
        .epochs
        .iter()
        .map(|e| {
            let mut row = vec![e.epoch.to_string(), swept_rows(e)];
            row.extend(levels.iter().map(|l| e.level(l).map_or_else(|| "off".into(), |x| pct(Some(x.accuracy)))));
            match e.level("fused") {
                Some(f) => {
                    row.extend([pct(Some(f.selection.quantity)), pct(f.selection.quality), format!("{:.3}", f.ece)])
                }
                None => row.extend(["—".to_string(), "—".into(), "—".into()]),
            }
            row.push(e.fusion.clone());
            row
        })
        .collect();
    let mut head = strings(&["epoch", "rows"]);
    head.extend(levels.iter().map(|l| format!("{l} acc")));
    head.extend(strings(&["quantity", "quality", "ECE", "fusion"]));
    Table {
        id: "trajectory",
        title: "Per epoch: argmax accuracy of each level over the swept unlabeled rows; quantity and quality of the \
                fused pseudo-labels"
            .into(),
        head,
        rows,
    }
}

/// The detail epoch's levels at the threshold, and each level's quality at the classifier's own quantity.
pub fn levels(d: &EpochReport) -> Table {
    let rows = d
        .levels
        .iter()
        .map(|l| {
            vec![
                l.level.clone(),
                pct(Some(l.accuracy)),
                pct(Some(l.selection.quantity)),
                pct(l.selection.quality),
                l.selection.selected.to_string(),
                format!("{:.3}", l.ece),
                pct(l.at_classifier_quantity),
            ]
        })
        .collect();
    Table {
        id: "levels",
        title: format!("Epoch {} in detail (threshold {}, fusion {})", d.epoch, d.threshold, d.fusion),
        head: strings(&[
            "level",
            "accuracy",
            "quantity",
            "quality",
            "selected",
            "ECE",
            "quality @ classifier's quantity",
        ]),
        rows,
    }
}

/// "Does the fusion add information?": the fused pseudo-labels against the classifier's alone, both at the
/// classifier's own quantity.
pub fn gain_at_classifier_quantity(d: &EpochReport) -> Option<String> {
    d.fused_gain_at_classifier_quantity().map(|g| {
        format!(
            "At the classifier's own quantity ({} rows) the fused pseudo-labels are {:.2} points {} accurate than the \
             classifier's alone.",
            d.level("semantic").map_or(0, |l| l.selection.selected),
            100.0 * g.abs(),
            if g >= 0.0 { "more" } else { "less" }
        )
    })
}

/// How often the levels pick the same class, and how accurate the fusion is where they do and do not.
pub fn agreement(d: &EpochReport) -> Option<Table> {
    if d.agreement.pairs.is_empty() {
        return None;
    }
    let mut rows: Vec<Vec<String>> = d.agreement.pairs.iter().map(|(k, v)| vec![k.clone(), pct(Some(*v))]).collect();
    rows.push(vec!["all levels agree".into(), pct(d.agreement.all)]);
    rows.push(vec!["fused accuracy where all agree".into(), pct(d.agreement.fused_accuracy_when_agree)]);
    rows.push(vec!["fused accuracy where they disagree".into(), pct(d.agreement.fused_accuracy_when_disagree)]);
    Some(Table { id: "agreement", title: "Agreement between levels".into(), head: strings(&["", "share"]), rows })
}

/// FER+'s votes: how many wrong pseudo-labels are the annotators' second choice.
pub fn votes(d: &EpochReport) -> Option<String> {
    d.votes.as_ref().map(|v| {
        format!(
            "Wrong pseudo-labels that are the annotators' second choice: {} ({} of {}); among selected: {} of {}; with \
             no vote at all: {}.",
            pct(v.rate),
            v.second_choice,
            v.wrong,
            pct(v.rate_selected),
            v.wrong_selected,
            pct(v.no_vote_share)
        )
    })
}

/// A warning when the stored fused probabilities do not follow from the levels with the recorded rule.
pub fn stored_fusion_note(d: &EpochReport) -> Option<String> {
    d.stored_fusion_max_diff.filter(|&diff| diff > 1e-3).map(|diff| {
        format!("note: the stored p_fused differs from the levels fused with the recorded rule by up to {diff:.4}")
    })
}

/// Per class, the selected fused pseudo-labels against the labeled prior and the true unlabeled distribution.
pub fn per_class(d: &EpochReport) -> Table {
    let rows = d
        .per_class
        .iter()
        .map(|c| {
            vec![
                c.class.clone(),
                pct(c.precision),
                pct(c.recall),
                pct(c.pseudo_share),
                pct(Some(c.labeled_prior)),
                pct(Some(c.true_share)),
            ]
        })
        .collect();
    Table {
        id: "classes",
        title: "Per class (selected fused pseudo-labels)".into(),
        head: strings(&["class", "precision", "recall", "pseudo share", "labeled prior", "true share"]),
        rows,
    }
}

/// Per class, every row: the recall of each level's argmax (the labeled prior is the class's share of the
/// memory bank, which the instance level votes with).
pub fn class_recall(d: &EpochReport) -> Table {
    let rows = d
        .per_class
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut row = vec![c.class.clone(), pct(Some(c.labeled_prior))];
            row.extend(d.levels.iter().map(|l| pct(l.class_recall.get(k).copied().flatten())));
            row
        })
        .collect();
    let mut head = strings(&["class", "labeled prior"]);
    head.extend(d.levels.iter().map(|l| format!("{} recall", l.level)));
    Table { id: "class-recall", title: "Per class, every row: recall of each level's argmax".into(), head, rows }
}

/// The fused confusion matrix (rows: true class, columns: pseudo-label), class names cut to seven letters.
pub fn confusion(r: &RunReport, d: &EpochReport) -> Table {
    let short: Vec<String> = r.classes.iter().map(|c| c.chars().take(7).collect()).collect();
    let mut head = vec![String::new()];
    head.extend(short.iter().cloned());
    let rows = d
        .confusion
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut cells = vec![short.get(i).cloned().unwrap_or_default()];
            cells.extend(row.iter().map(|v| v.to_string()));
            cells
        })
        .collect();
    Table { id: "confusion", title: "Fused confusion (rows: true class, columns: pseudo-label)".into(), head, rows }
}

/// The fused level's threshold sweep: how much each threshold would select, and how accurately.
pub fn fused_sweep(d: &EpochReport) -> Option<Table> {
    let f = d.level("fused")?;
    let rows = f
        .sweep
        .iter()
        .map(|p| vec![p.threshold.to_string(), pct(Some(p.quantity)), pct(p.quality), p.selected.to_string()])
        .collect();
    Some(Table {
        id: "fused-sweep",
        title: "Threshold sweep of the fused level".into(),
        head: strings(&["threshold", "quantity", "quality", "selected"]),
        rows,
    })
}

/// What-if: the first `n` settings ranked by their quality on their own most confident rows, as many as the
/// run selected.
pub fn what_if(w: &WhatIf, n: usize) -> Table {
    let rows = w
        .candidates
        .iter()
        .take(n)
        .map(|c| vec![c.fusion.clone(), pct(c.quality), delta_pts(c.delta), format!("{:.3}", c.threshold)])
        .collect();
    Table {
        id: "what-if",
        title: format!(
            "What-if at equal quantity (epoch {}): the run selected {} rows ({}) with {} at threshold {}, quality {}; \
             each setting's quality on its own {} most confident rows",
            w.epoch,
            w.selected,
            pct(Some(w.quantity)),
            w.setting,
            w.threshold,
            pct(w.quality),
            w.selected
        ),
        head: strings(&["setting", "quality", "Δ pts", "equivalent threshold"]),
        rows,
    }
}

/// What-if's answer in one sentence.
pub fn what_if_verdict(w: &WhatIf) -> Option<String> {
    let best = w.candidates.first()?;
    Some(match best.delta {
        Some(d) if d > 0.0005 => format!(
            "Best: {} would have given {} pts better pseudo-labels at the same quantity.",
            best.fusion,
            delta_pts(Some(d))
        ),
        _ => "Best: no setting tried beats the run's own at this quantity.".into(),
    })
}
