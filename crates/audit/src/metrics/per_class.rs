//! Per class: precision and recall of the selected pseudo-labels, the pseudo-label class histogram
//! against the labeled prior and the true unlabeled distribution; the fused confusion matrix; and, for data
//! with annotator votes, how often a wrong pseudo-label is the annotators' second choice.

use exchange::fusion::Threshold;
use serde::Serialize;

use super::{ratio, Decisions};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ClassRow {
    pub(crate) class: String,
    pub(crate) precision: Option<f64>,
    pub(crate) recall: Option<f64>,
    /// Share of the selected pseudo-labels that are this class.
    pub(crate) pseudo_share: Option<f64>,
    pub(crate) labeled_prior: f64,
    /// Share of the unlabeled set that truly is this class (known only offline).
    pub(crate) true_share: f64,
}

pub(crate) fn per_class(
    d: &Decisions,
    truth: &[u8],
    threshold: &Threshold,
    names: &[String],
    prior: &[f64],
) -> Vec<ClassRow> {
    let c = names.len();
    let (mut sel_pred, mut sel_ok, mut true_n) = (vec![0usize; c], vec![0usize; c], vec![0usize; c]);
    for ((p, conf), t) in d.pred.iter().zip(&d.conf).zip(truth) {
        true_n[*t as usize] += 1;
        if threshold.selects(*conf, usize::from(*p)) {
            sel_pred[*p as usize] += 1;
            sel_ok[*p as usize] += usize::from(p == t);
        }
    }
    let total_sel: usize = sel_pred.iter().sum();
    (0..c)
        .map(|k| ClassRow {
            class: names[k].clone(),
            precision: ratio(sel_ok[k], sel_pred[k]),
            recall: ratio(sel_ok[k], true_n[k]),
            pseudo_share: ratio(sel_pred[k], total_sel),
            labeled_prior: prior.get(k).copied().unwrap_or(0.0),
            true_share: ratio(true_n[k], truth.len()).unwrap_or(0.0),
        })
        .collect()
}

/// Recall of each class by a level's argmax over every row (selected or not): how often a face of class `k`
/// gets `k` from this level. `None` for a class absent from the rows.
pub(crate) fn argmax_recall(pred: &[u8], truth: &[u8], c: usize) -> Vec<Option<f64>> {
    let (mut hit, mut n) = (vec![0usize; c], vec![0usize; c]);
    for (p, t) in pred.iter().zip(truth) {
        n[*t as usize] += 1;
        hit[*t as usize] += usize::from(p == t);
    }
    (0..c).map(|k| ratio(hit[k], n[k])).collect()
}

/// `m[true][pred]` counts over every row.
pub(crate) fn confusion(pred: &[u8], truth: &[u8], c: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; c]; c];
    for (p, t) in pred.iter().zip(truth) {
        m[*t as usize][*p as usize] += 1;
    }
    m
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct VotesReport {
    /// Wrong pseudo-labels on rows with at least one vote for another class.
    pub(crate) wrong: usize,
    /// …of which the pseudo-label is the annotators' second choice (most votes after the true class).
    pub(crate) second_choice: usize,
    pub(crate) rate: Option<f64>,
    /// The same among selected rows only.
    pub(crate) wrong_selected: usize,
    pub(crate) rate_selected: Option<f64>,
    /// Wrong pseudo-labels that got no annotator vote at all.
    pub(crate) no_vote_share: Option<f64>,
}

pub(crate) fn second_choice(
    d: &Decisions,
    truth: &[u8],
    votes: &[f32],
    c: usize,
    threshold: &Threshold,
) -> VotesReport {
    let (mut wrong, mut second, mut wrong_sel, mut second_sel, mut zero) = (0, 0, 0, 0, 0);
    for i in 0..truth.len() {
        let (p, t) = (d.pred[i] as usize, truth[i] as usize);
        if p == t {
            continue;
        }
        let v = &votes[i * c..(i + 1) * c];
        let Some(runner_up) = (0..c).filter(|&k| k != t && v[k] > 0.0).max_by(|&a, &b| v[a].total_cmp(&v[b])) else {
            continue;
        };
        let is_second = v[p] > 0.0 && v[p] == v[runner_up];
        wrong += 1;
        second += usize::from(is_second);
        zero += usize::from(v[p] == 0.0);
        if threshold.selects(d.conf[i], p) {
            wrong_sel += 1;
            second_sel += usize::from(is_second);
        }
    }
    VotesReport {
        wrong,
        second_choice: second,
        rate: ratio(second, wrong),
        wrong_selected: wrong_sel,
        rate_selected: ratio(second_sel, wrong_sel),
        no_vote_share: ratio(zero, wrong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_per_class_confusion_and_votes() {
        let d = Decisions { pred: vec![0, 0, 1, 1], conf: vec![0.9, 0.9, 0.9, 0.5] };
        let truth = [0, 1, 1, 1];
        let names = vec!["a".to_string(), "b".to_string()];
        // Argmax recall over every row: class a 1/1, class b 2/3 (the row at 0.5 counts too), class c absent.
        assert_eq!(argmax_recall(&d.pred, &truth, 3), vec![Some(1.0), Some(2.0 / 3.0), None]);
        let rows = per_class(&d, &truth, &Threshold::Global(0.75), &names, &[0.5, 0.5]);
        assert_eq!(rows[0].precision, Some(0.5));
        assert_eq!(rows[1].recall, Some(1.0 / 3.0));
        assert_eq!(rows[0].pseudo_share, Some(2.0 / 3.0));
        assert_eq!(rows[1].true_share, 0.75);
        assert_eq!(confusion(&d.pred, &truth, 2), vec![vec![1, 0], vec![1, 2]]);
        // Row 1 (true b, predicted a): votes a=3, b=6 -> a is the runner-up.
        let votes = [9.0, 0.0, 3.0, 6.0, 0.0, 9.0, 0.0, 9.0];
        let v = second_choice(&d, &truth, &votes, 2, &Threshold::Global(0.75));
        assert_eq!((v.wrong, v.second_choice, v.wrong_selected), (1, 1, 1));
    }
}
