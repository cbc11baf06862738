//! The placebo control (`method.fusion.placebo`): before fusion, the text and instance levels' rows are shuffled
//! across the batch, each level by its own permutation. What a level says about *this* face is destroyed;
//! its confidences over the batch are kept, so the fused selection's quantity moves much as the real
//! levels move it. A gain that survives the placebo is not the levels' information: it is their effect on
//! how much is selected. The sweeps audit reads record the levels unshuffled (what they say); only the
//! training step's pseudo-labels see the shuffle.

use tch::Tensor;

use super::levels::Levels;

/// `l` with the text rows permuted by `perm_text` and the instance rows by `perm_ins` (scores and
/// probabilities alike, so either fusion rule sees the shuffle); the semantic level is untouched.
pub(crate) fn shuffle(l: Levels, perm_text: &Tensor, perm_ins: &Tensor) -> Levels {
    let rows = |t: Option<Tensor>, perm: &Tensor| t.map(|t| t.index_select(0, perm));
    Levels {
        z: l.z,
        p_sem: l.p_sem,
        s_text: rows(l.s_text, perm_text),
        p_text: rows(l.p_text, perm_text),
        s_ins: rows(l.s_ins, perm_ins),
        p_ins: rows(l.p_ins, perm_ins),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sitfer::fusion::fused;
    use crate::sitfer::levels::levels;
    use exchange::fusion::{Fusion, FusionMode};

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        let v: Vec<f32> = Vec::try_from(&t.flatten(0, -1)).unwrap();
        v.chunks(2).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn each_level_moves_by_its_own_permutation_and_the_fusion_follows() {
        let t = |v: &[f32]| Tensor::from_slice(v).view([3, 2]);
        // Three faces, two classes. The classifier is unsure about all three; text is sure of class 0 on
        // face 0, instance of class 1 on face 2.
        let l = levels(
            &t(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
            Some(t(&[4.0, 0.0, 0.0, 0.0, 0.0, 0.0])),
            Some(t(&[0.0, 0.0, 0.0, 0.0, 0.0, 4.0])),
            1.0,
            1.0,
        );
        let text_before = rows(l.p_text.as_ref().unwrap());
        let ins_before = rows(l.p_ins.as_ref().unwrap());
        let perm_text = Tensor::from_slice(&[2i64, 0, 1]);
        let perm_ins = Tensor::from_slice(&[1i64, 2, 0]);
        let s = shuffle(l, &perm_text, &perm_ins);
        let text = rows(s.p_text.as_ref().unwrap());
        let ins = rows(s.p_ins.as_ref().unwrap());
        // Row i of the shuffled level is row perm[i] of the original.
        assert_eq!(text, vec![text_before[2].clone(), text_before[0].clone(), text_before[1].clone()]);
        assert_eq!(ins, vec![ins_before[1].clone(), ins_before[2].clone(), ins_before[0].clone()]);
        assert_eq!(rows(&s.s_text.as_ref().unwrap().softmax(-1, tch::Kind::Float)), text);
        assert_eq!(rows(&s.p_sem), vec![vec![0.5, 0.5]; 3]);

        // Mean of the three: text's certainty now sits on face 1, instance's on face 1 as well.
        // softmax(4, 0) = (0.982014, 0.017986).
        let f = Fusion { mode: FusionMode::MeanProb, weights: [1.0; 3], tau_text: 1.0, tau_ins: 1.0 };
        let p = rows(&fused(&s, &f));
        let (hi, lo) = (0.982_014_f32, 0.017_986_f32);
        let want = [
            [(0.5 + 0.5 + 0.5) / 3.0, (0.5 + 0.5 + 0.5) / 3.0],
            [(0.5 + hi + lo) / 3.0, (0.5 + lo + hi) / 3.0],
            [(0.5 + 0.5 + 0.5) / 3.0, (0.5 + 0.5 + 0.5) / 3.0],
        ];
        for (got, want) in p.iter().zip(want) {
            assert!((got[0] - want[0]).abs() < 1e-5 && (got[1] - want[1]).abs() < 1e-5, "{p:?}");
        }
    }
}
