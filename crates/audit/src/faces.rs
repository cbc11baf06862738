//! The faces behind the numbers, for the epoch shown in detail: per pseudo-label class, the most confident
//! selected pseudo-labels that are wrong and the most confident right ones; and the selected-but-wrong faces
//! of the largest off-diagonal cells of the confusion matrix (true class, pseudo-label). Each face carries
//! what a reviewer asks of it: every level's probability of the pseudo-label and of the true class, and the
//! annotators' votes where the dataset has them. This module only picks rows; [`crate::load::read_images`]
//! fetches their images from the shards and the page embeds them.

use std::collections::HashMap;

use serde::Serialize;

use crate::load::EpochData;
use crate::metrics::decide;

/// One face of the gallery.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Face {
    /// Row of the shards (in part order) that holds the image.
    pub(crate) shard_row: u32,
    pub(crate) truth: usize,
    pub(crate) pseudo: usize,
    /// The fused confidence of the pseudo-label.
    pub(crate) confidence: f32,
    /// Semantic, text, instance probability of the pseudo-label (`None`: the level is off).
    pub(crate) p_pseudo: [Option<f32>; 3],
    /// The same levels' probability of the true class.
    pub(crate) p_truth: [Option<f32>; 3],
    /// The annotators' votes over the run's classes, when the dataset has them.
    pub(crate) votes: Option<Vec<f32>>,
}

/// The faces of one pseudo-label class.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassFaces {
    pub(crate) class: usize,
    /// Selected with this pseudo-label, true class another: most confident first.
    pub(crate) wrong: Vec<Face>,
    /// Selected with this pseudo-label and right: most confident first.
    pub(crate) right: Vec<Face>,
}

/// The selected-but-wrong faces of one (true class, pseudo-label) cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PairFaces {
    pub(crate) truth: usize,
    pub(crate) pseudo: usize,
    /// Selected faces in the cell.
    pub(crate) count: usize,
    pub(crate) faces: Vec<Face>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Gallery {
    pub(crate) epoch: u32,
    pub(crate) per_class: Vec<ClassFaces>,
    pub(crate) pairs: Vec<PairFaces>,
    /// The encoded images by shard row (PNG or JPEG as the shards hold them); not in the JSON summary.
    #[serde(skip)]
    pub(crate) images: HashMap<u32, Vec<u8>>,
}

impl Gallery {
    /// Every shard row the gallery shows.
    pub(crate) fn rows(&self) -> Vec<u32> {
        let mut rows: Vec<u32> = self
            .per_class
            .iter()
            .flat_map(|c| c.wrong.iter().chain(&c.right))
            .chain(self.pairs.iter().flat_map(|p| &p.faces))
            .map(|f| f.shard_row)
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }
}

/// Picks `per_class` wrong and `per_class / 2` (at least one) right faces per pseudo-label class, and
/// `per_class` faces of each of the `pairs` largest selected-but-wrong cells, from the stored fused
/// pseudo-labels (the ones the run trained on). Ties in confidence go to the earlier row.
pub(crate) fn pick(d: &EpochData, per_class: usize, pairs: usize) -> Gallery {
    let c = d.classes;
    let fused = decide(&d.fused, c);
    // (confidence, row, pseudo-label) of every selected row.
    let mut selected: Vec<(f32, usize, usize)> = (0..d.n)
        .map(|i| (fused.conf[i], i, fused.pred[i] as usize))
        .filter(|&(conf, _, pseudo)| d.threshold.selects(conf, pseudo))
        .collect();
    selected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let face = |&(conf, i, pseudo): &(f32, usize, usize)| face(d, i, pseudo, conf);
    let truth = |s: &(f32, usize, usize)| d.truth[s.1] as usize;
    let per_class_faces = (0..c)
        .map(|k| ClassFaces {
            class: k,
            wrong: selected.iter().filter(|s| s.2 == k && truth(s) != k).take(per_class).map(face).collect(),
            right: selected
                .iter()
                .filter(|s| s.2 == k && truth(s) == k)
                .take((per_class / 2).max(1))
                .map(face)
                .collect(),
        })
        .collect();
    let mut cells: HashMap<(usize, usize), usize> = HashMap::new();
    for s in selected.iter().filter(|s| truth(s) != s.2) {
        *cells.entry((truth(s), s.2)).or_default() += 1;
    }
    let mut cells: Vec<((usize, usize), usize)> = cells.into_iter().collect();
    cells.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let pair_faces = cells
        .into_iter()
        .take(pairs)
        .map(|((t, p), count)| PairFaces {
            truth: t,
            pseudo: p,
            count,
            faces: selected.iter().filter(|s| s.2 == p && truth(s) == t).take(per_class).map(face).collect(),
        })
        .collect();
    Gallery { epoch: d.epoch, per_class: per_class_faces, pairs: pair_faces, images: HashMap::new() }
}

fn face(d: &EpochData, i: usize, pseudo: usize, confidence: f32) -> Face {
    let c = d.classes;
    let truth = d.truth[i] as usize;
    let level = |k: usize| d.levels.each_ref().map(|l| l.as_ref().map(|p| p[i * c + k]));
    Face {
        shard_row: d.shard_rows[i],
        truth,
        pseudo,
        confidence,
        p_pseudo: level(pseudo),
        p_truth: level(truth),
        votes: d.votes.as_ref().map(|v| v[i * c..(i + 1) * c].to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use exchange::fusion::{Fusion, FusionMode, Threshold};

    use super::*;
    use crate::load::Dropped;

    /// Three classes, six faces, threshold 0.6. Fused rows (argmax, confidence, truth):
    /// 0: (0, 0.9, 1) wrong · 1: (0, 0.8, 0) right · 2: (0, 0.95, 1) wrong · 3: (1, 0.7, 2) wrong ·
    /// 4: (2, 0.5, 0) not selected · 5: (0, 0.9, 1) wrong, ties row 0 and comes after it.
    fn data() -> EpochData {
        let fused =
            vec![0.9, 0.05, 0.05, 0.8, 0.1, 0.1, 0.95, 0.05, 0.0, 0.1, 0.7, 0.2, 0.25, 0.25, 0.5, 0.9, 0.1, 0.0];
        EpochData {
            epoch: 3,
            path: "x".into(),
            classes: 3,
            n: 6,
            levels: [Some(fused.clone()), None, Some(fused.iter().map(|p| p / 2.0).collect())],
            fused,
            truth: vec![1, 0, 1, 2, 0, 1],
            shard_rows: vec![10, 11, 12, 13, 14, 15],
            votes: None,
            threshold: Threshold::Global(0.6),
            fusion: Fusion { mode: FusionMode::MeanProb, weights: [1.0; 3], tau_text: 1.0, tau_ins: 1.0 },
            dropped: Dropped::default(),
            alignment: None,
            subset_of: None,
        }
    }

    #[test]
    fn wrong_and_right_faces_by_confidence_and_the_largest_confusions() {
        let g = pick(&data(), 2, 1);
        let rows = |f: &[Face]| f.iter().map(|f| f.shard_row).collect::<Vec<_>>();
        // Class 0: wrong rows 2 (0.95), 0 (0.9, before 5); right row 1.
        assert_eq!((rows(&g.per_class[0].wrong), rows(&g.per_class[0].right)), (vec![12, 10], vec![11]));
        assert_eq!(rows(&g.per_class[1].wrong), vec![13]);
        assert!(g.per_class[2].wrong.is_empty() && g.per_class[2].right.is_empty(), "row 4 is not selected");
        // The largest wrong cell: true 1 read as 0, three faces (rows 2, 0, 5), two shown.
        assert_eq!((g.pairs[0].truth, g.pairs[0].pseudo, g.pairs[0].count), (1, 0, 3));
        assert_eq!(rows(&g.pairs[0].faces), vec![12, 10]);
        let f = &g.per_class[0].wrong[0];
        assert_eq!((f.p_pseudo, f.p_truth), ([Some(0.95), None, Some(0.475)], [Some(0.05), None, Some(0.025)]));
        assert_eq!(g.rows(), vec![10, 11, 12, 13]);
    }
}
