//! Agreement between the levels' argmaxes: pairwise and all three, and how accurate the fused
//! pseudo-label is where the levels agree and where they do not.

use serde::Serialize;

use super::{ratio, Decisions, LEVELS};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Agreement {
    /// ("semantic~text", share of rows whose argmaxes agree)
    pub(crate) pairs: Vec<(String, f64)>,
    /// Share of rows where every available level agrees (None with fewer than two levels).
    pub(crate) all: Option<f64>,
    pub(crate) fused_accuracy_when_agree: Option<f64>,
    pub(crate) fused_accuracy_when_disagree: Option<f64>,
}

pub(crate) fn agreement(levels: &[Option<Decisions>; 3], fused: &Decisions, truth: &[u8]) -> Agreement {
    let present: Vec<(usize, &Decisions)> =
        levels.iter().enumerate().filter_map(|(i, d)| d.as_ref().map(|d| (i, d))).collect();
    let n = truth.len();
    let mut pairs = Vec::new();
    for a in 0..present.len() {
        for b in a + 1..present.len() {
            let (ia, da) = present[a];
            let (ib, db) = present[b];
            let same = da.pred.iter().zip(&db.pred).filter(|(x, y)| x == y).count();
            pairs.push((format!("{}~{}", LEVELS[ia], LEVELS[ib]), ratio(same, n).unwrap_or(0.0)));
        }
    }
    if present.len() < 2 {
        return Agreement { pairs, all: None, fused_accuracy_when_agree: None, fused_accuracy_when_disagree: None };
    }
    let (mut agree, mut agree_ok, mut dis_ok) = (0usize, 0usize, 0usize);
    for (i, t) in truth.iter().enumerate() {
        let first = present[0].1.pred[i];
        let ok = fused.pred[i] == *t;
        if present.iter().all(|(_, d)| d.pred[i] == first) {
            agree += 1;
            agree_ok += usize::from(ok);
        } else {
            dis_ok += usize::from(ok);
        }
    }
    Agreement {
        pairs,
        all: ratio(agree, n),
        fused_accuracy_when_agree: ratio(agree_ok, agree),
        fused_accuracy_when_disagree: ratio(dis_ok, n - agree),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let d = |p: &[u8]| Decisions { pred: p.to_vec(), conf: vec![1.0; p.len()] };
        let levels = [Some(d(&[0, 1, 2, 0])), Some(d(&[0, 1, 1, 1])), Some(d(&[0, 2, 2, 0]))];
        let fused = d(&[0, 1, 2, 1]);
        let a = agreement(&levels, &fused, &[0, 1, 1, 0]);
        assert_eq!(a.pairs[0], ("semantic~text".into(), 0.5));
        assert_eq!(a.pairs[1], ("semantic~instance".into(), 0.75));
        assert_eq!(a.pairs[2], ("text~instance".into(), 0.25));
        assert_eq!(a.all, Some(0.25));
        assert_eq!(a.fused_accuracy_when_agree, Some(1.0));
        assert_eq!(a.fused_accuracy_when_disagree, Some(1.0 / 3.0));
    }
}
