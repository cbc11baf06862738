//! What-if: with the per-level probabilities stored, every fusion rule and weighting can be replayed
//! offline. At the quantity the run actually selected (k rows), which setting would have given the most
//! accurate k pseudo-labels? Candidates: both fusion modes over a grid of weights on the simplex of the
//! available levels, plus each level alone. Comparing at equal quantity is what makes settings comparable:
//! any rule can look precise by selecting fewer rows.

use exchange::fusion::{Fusion, FusionMode, Threshold};
use rayon::prelude::*;
use serde::Serialize;
use wide::{f32x8, CmpEq, CmpGe, CmpGt};

use crate::analysis::{fused_in_force, Override};
use crate::fusion::describe;
use crate::load::EpochData;
use crate::metrics::decide;
use crate::metrics::quality::{from_order_key, order_key, selection};

#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub(crate) fusion: String,
    pub mode: String,
    pub(crate) weights: [f32; 3],
    /// Accuracy of its k most confident pseudo-labels.
    pub(crate) quality: Option<f64>,
    /// The threshold that would select those k rows under this setting.
    pub(crate) threshold: f32,
    pub(crate) delta: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    pub(crate) epoch: u32,
    pub(crate) setting: String,
    pub(crate) threshold: Threshold,
    pub(crate) selected: usize,
    pub(crate) quantity: f64,
    pub(crate) quality: Option<f64>,
    /// Best first.
    pub(crate) candidates: Vec<Candidate>,
}

const LANES: usize = 8;

/// Weight vectors on the simplex with the given step over the levels in `present`.
fn grid(present: [bool; 3], step: f32) -> Vec<[f32; 3]> {
    let m = (1.0 / step).round() as i32;
    let mut out = Vec::new();
    for a in 0..=m {
        for b in 0..=(m - a) {
            let w = [a as f32 / m as f32, b as f32 / m as f32, (m - a - b) as f32 / m as f32];
            if (0..3).all(|l| present[l] || w[l] == 0.0) && w.iter().any(|x| *x > 0.0) {
                out.push(w);
            }
        }
    }
    out
}

pub fn what_if(e: &EpochData, over: &Override, step: f32) -> WhatIf {
    let c = e.classes;
    let threshold = over.threshold.map_or_else(|| e.threshold.clone(), Threshold::Global);
    let (fused_p, fusion) = fused_in_force(e, over);
    let base = selection(&decide(&fused_p, c), &e.truth, &threshold);
    let k = base.selected;
    let present = [e.levels[0].is_some(), e.levels[1].is_some(), e.levels[2].is_some()];
    let mut settings: Vec<Fusion> = Vec::new();
    for mode in [FusionMode::MeanProb, FusionMode::WeightedLogit] {
        for w in grid(present, step) {
            settings.push(Fusion { mode, weights: w, tau_text: e.fusion.tau_text, tau_ins: e.fusion.tau_ins });
        }
    }
    let blocks = Blocks::new(e);
    let scorers: Vec<Scorer> = settings.iter().map(|f| Scorer::new(&blocks, f)).collect();
    let top = top_k_all(&blocks, &scorers, k);
    let mut candidates: Vec<Candidate> = settings
        .iter()
        .zip(top)
        .map(|(f, (quality, kth))| Candidate {
            fusion: describe(f),
            mode: f.mode.name().to_string(),
            weights: f.weights,
            quality,
            threshold: kth,
            delta: quality.zip(base.quality).map(|(q, b)| q - b),
        })
        .collect();
    // Stable: equal qualities keep grid order.
    candidates.sort_by(|a, b| b.quality.unwrap_or(-1.0).total_cmp(&a.quality.unwrap_or(-1.0)));
    WhatIf {
        epoch: e.epoch,
        setting: describe(&fusion),
        threshold,
        selected: k,
        quantity: base.quantity,
        quality: base.quality,
        candidates,
    }
}

/// One epoch's levels regrouped for scoring eight rows at once, one row per SIMD lane: block `b` holds class 0
/// of rows `8b..8b+8`, then class 1, and so on. A candidate's fused row is then a few fused multiply-adds per
/// class across eight rows, with no per-row shuffling. The rows past `n` in the last block are padding that
/// the counts skip.
struct Blocks {
    classes: usize,
    n: usize,
    /// Per level: probabilities, and their logarithms (weighted-logit fuses log-probabilities).
    probs: [Option<Vec<f32>>; 3],
    logs: [Option<Vec<f32>>; 3],
    /// True class per row, as a float so it compares with a lane's argmax; −1 on padding.
    truth: Vec<f32>,
}

impl Blocks {
    fn new(e: &EpochData) -> Blocks {
        let (c, n) = (e.classes, e.n);
        // load::class_ids admits each expression once: at most eight classes.
        assert!((1..=LANES).contains(&c), "what-if scores 1 to {LANES} classes a row, got {c}");
        let blocks = n.div_ceil(LANES);
        let regroup = |p: &[f32], f: fn(f32) -> f32| -> Vec<f32> {
            let mut out = vec![0f32; blocks * c * LANES];
            out.par_chunks_mut(c * LANES).enumerate().for_each(|(b, block)| {
                for j in 0..LANES.min(n - b * LANES) {
                    let row = &p[(b * LANES + j) * c..(b * LANES + j + 1) * c];
                    for (k, v) in row.iter().enumerate() {
                        block[k * LANES + j] = f(*v);
                    }
                }
            });
            out
        };
        let probs = std::array::from_fn(|l| e.levels[l].as_deref().map(|p| regroup(p, |x| x)));
        let logs =
            std::array::from_fn(|l| e.levels[l].as_deref().map(|p| regroup(p, |x| x.max(crate::fusion::FLOOR).ln())));
        let mut truth: Vec<f32> = e.truth.iter().map(|t| f32::from(*t)).collect();
        truth.resize(blocks * LANES, -1.0);
        Blocks { classes: c, n, probs, logs, truth }
    }

    fn blocks(&self) -> usize {
        self.truth.len() / LANES
    }

    /// Block `blk`'s true classes, one per lane.
    fn truth_lanes(&self, blk: usize) -> f32x8 {
        let lanes: [f32; LANES] = self.truth[blk * LANES..(blk + 1) * LANES].try_into().expect("8 lanes");
        f32x8::from(lanes)
    }
}

/// How one candidate fusion scores a block: its levels' (regrouped) values and weights.
struct Scorer<'a> {
    active: Vec<(&'a [f32], f32)>,
    logit: bool,
    wsum: f32,
}

impl<'a> Scorer<'a> {
    fn new(b: &'a Blocks, f: &Fusion) -> Scorer<'a> {
        let taus = [1.0, f.tau_text, f.tau_ins];
        let logit = f.mode == FusionMode::WeightedLogit;
        let active = (0..3)
            .filter(|&l| b.probs[l].is_some() && f.weights[l] != 0.0)
            .map(|l| {
                let src = if logit { b.logs[l].as_deref() } else { b.probs[l].as_deref() };
                (src.expect("active levels are present"), if logit { f.weights[l] * taus[l] } else { f.weights[l] })
            })
            .collect();
        let wsum = (0..3).filter(|&l| b.probs[l].is_some()).map(|l| f.weights[l]).sum();
        Scorer { active, logit, wsum }
    }

    /// Confidence of each of block `b`'s eight rows, and the bit mask of the rows whose argmax is the truth.
    /// Same arithmetic as [`crate::fusion::fuse`], but for the exponential of weighted-logit's softmax, a
    /// polynomial good to about one unit in the last place (`wide`). The first of equal maxima wins.
    #[inline(always)]
    fn block<const C: usize>(&self, b: usize, truth: f32x8) -> (f32x8, i32) {
        let mut acc = [f32x8::ZERO; C];
        for &(src, w) in &self.active {
            let w = f32x8::splat(w);
            let block = &src[b * C * LANES..(b + 1) * C * LANES];
            for (k, a) in acc.iter_mut().enumerate() {
                let v: [f32; LANES] = block[k * LANES..(k + 1) * LANES].try_into().expect("a block holds C × 8 values");
                *a = f32x8::from(v).mul_add(w, *a);
            }
        }
        let (mut best, mut arg) = (acc[0], f32x8::ZERO);
        for (k, a) in acc.iter().enumerate().skip(1) {
            let wins = a.cmp_gt(best);
            best = wins.blend(*a, best);
            arg = wins.blend(f32x8::splat(k as f32), arg);
        }
        let conf = if self.logit {
            let mut sum = f32x8::ZERO;
            for a in &acc {
                sum += (*a - best).exp();
            }
            f32x8::ONE / sum
        } else {
            best / f32x8::splat(self.wsum.max(1e-12))
        };
        (conf, arg.cmp_eq(truth).move_mask())
    }
}

/// Rows scored per job between candidates: a few hundred kilobytes of levels, so every candidate reads them
/// from cache rather than memory.
const CHUNK_BLOCKS: usize = 512;

/// Blocks in the sample that brackets each candidate's k-th confidence (about 32,000 rows).
const SAMPLE_BLOCKS: usize = 4096;

/// For every candidate: the accuracy of its `k` most confident rows and the confidence of the k-th, as
/// [`crate::metrics::quality::top_k`] defines them (ties with the k-th taken in row order), without
/// materialising any candidate's confidences. A sample of rows brackets each candidate's k-th confidence in
/// an interval; one pass over all rows, candidates scored chunk by chunk so the levels come from memory once,
/// counts the rows above the interval (and the right ones among them) with vector compares and keeps the few
/// rows inside it, which are then ranked exactly. Where the sample misjudged the interval, that candidate is
/// scored again in full.
fn top_k_all(b: &Blocks, scorers: &[Scorer], k: usize) -> Vec<(Option<f64>, f32)> {
    if k == 0 || b.n == 0 {
        return vec![(None, 1.0); scorers.len()];
    }
    let k = k.min(b.n);
    tally_all(b, scorers, k)
        .into_par_iter()
        .zip(scorers)
        .map(|(t, s)| t.resolve(k).unwrap_or_else(|| exact_top_k(b, s, k)))
        .collect()
}

/// Every candidate's pass over the rows, given its bracket of the k-th confidence.
fn tally_all(b: &Blocks, scorers: &[Scorer], k: usize) -> Vec<Tally> {
    let brackets: Vec<(f32, f32)> = scorers.par_iter().map(|s| bracket(b, s, k)).collect();
    let mut tallies: Vec<Tally> = vec![Tally::default(); scorers.len()];
    for part in tally_chunks(b, scorers, &brackets) {
        for (a, p) in tallies.iter_mut().zip(part) {
            a.above += p.above;
            a.right_above += p.right_above;
            a.overflow |= p.overflow || a.inside.len() + p.inside.len() > inside_cap(b.n);
            if a.overflow {
                a.inside = Vec::new();
            } else {
                a.inside.extend(p.inside);
            }
        }
    }
    tallies
}

/// What one candidate's pass over the rows leaves: the rows above its interval and, of those, the right ones;
/// the rows inside it as (order key of the confidence, row, right?), up to `cap` of them.
#[derive(Clone, Default)]
struct Tally {
    above: usize,
    right_above: usize,
    inside: Vec<(u32, usize, bool)>,
    /// More rows fell inside than `cap` allows (a bracket around a large tie, e.g. thousands of rows at
    /// exactly 1.0): the rows are not kept, and the candidate is ranked by [`exact_top_k`] instead.
    overflow: bool,
}

/// Rows a tally keeps inside its bracket: about four times what a well-placed bracket holds at a million rows,
/// so a large tie costs a bounded amount of memory per candidate, not a copy of the rows.
fn inside_cap(n: usize) -> usize {
    (n / 16).max(4096)
}

impl Tally {
    /// The k-th row is inside the interval when fewer than k rows are above it and at least k are at or above
    /// its low end; then ranking the rows inside gives the answer, else `None`.
    fn resolve(mut self, k: usize) -> Option<(Option<f64>, f32)> {
        if self.overflow || self.above >= k || self.above + self.inside.len() < k {
            return None;
        }
        let need = k - self.above;
        // Confidence descending, then row ascending: a strict order, so the first `need` are exact.
        let (top, kth, _) = self.inside.select_nth_unstable_by(need - 1, |x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        let right = self.right_above + top.iter().filter(|r| r.2).count() + usize::from(kth.2);
        Some((crate::metrics::ratio(right, k), from_order_key(kth.0)))
    }
}

fn tally_block(t: &mut Tally, b: &Blocks, blk: usize, conf: f32x8, right: i32, (lo, hi): (f32, f32)) {
    let real = if (blk + 1) * LANES <= b.n { 0xFF } else { (1 << (b.n - blk * LANES)) - 1 };
    let above = conf.cmp_gt(f32x8::splat(hi)).move_mask() & real;
    let inside = conf.cmp_ge(f32x8::splat(lo)).move_mask() & real & !above;
    t.above += above.count_ones() as usize;
    t.right_above += (above & right).count_ones() as usize;
    if inside != 0 && !t.overflow {
        if t.inside.len() + inside.count_ones() as usize > inside_cap(b.n) {
            t.overflow = true;
            t.inside = Vec::new();
            return;
        }
        let conf = conf.to_array();
        for j in (0..LANES).filter(|j| inside >> j & 1 == 1) {
            t.inside.push((order_key(conf[j]), blk * LANES + j, right >> j & 1 == 1));
        }
    }
}

/// An interval `[lo, hi]` that very likely holds the candidate's k-th largest confidence, from the
/// confidences of evenly spaced sample blocks: their k-th quantile widened by five standard deviations of a
/// sample quantile's rank, plus a few rows.
fn bracket(b: &Blocks, s: &Scorer, k: usize) -> (f32, f32) {
    let stride = b.blocks().div_ceil(SAMPLE_BLOCKS).max(1);
    let mut conf = Vec::with_capacity(SAMPLE_BLOCKS * LANES);
    for blk in (0..b.blocks()).step_by(stride) {
        let c = score_block(b, s, blk).0.to_array();
        conf.extend_from_slice(&c[..LANES.min(b.n - blk * LANES)]);
    }
    let n = conf.len();
    let p = k as f64 / b.n as f64;
    let margin = 5.0 * (n as f64 * p * (1.0 - p)).sqrt() + 8.0;
    let mut at = |rank: f64| -> Option<f32> {
        let r = rank.round();
        (r >= 0.0 && r < n as f64).then(|| {
            let r = r as usize;
            *conf.select_nth_unstable_by(r, |x, y| y.total_cmp(x)).1
        })
    };
    let hi = at(n as f64 * p - margin).unwrap_or(f32::INFINITY);
    let lo = at(n as f64 * p + margin).unwrap_or(f32::NEG_INFINITY);
    (lo, hi)
}

/// The fallback: the candidate's confidence and correctness of every row, ranked by
/// [`crate::metrics::quality::top_k`].
fn exact_top_k(b: &Blocks, s: &Scorer, k: usize) -> (Option<f64>, f32) {
    let (mut conf, mut correct) = (Vec::with_capacity(b.n), Vec::with_capacity(b.n));
    for blk in 0..b.blocks() {
        let (c, right) = score_block(b, s, blk);
        for (j, c) in c.to_array().iter().enumerate().take(LANES.min(b.n - blk * LANES)) {
            conf.push(*c);
            correct.push(right >> j & 1 == 1);
        }
    }
    crate::metrics::quality::top_k(&conf, &correct, k)
}

/// `$body` with `$c` bound to the class count (1 to 8) as a constant, so the per-class loops of the block code
/// unroll: the one place the runtime count becomes a compile-time one.
macro_rules! with_class_count {
    ($n:expr, $c:ident => $body:expr) => {
        with_class_count!(@arms $n, $c, $body, 8 7 6 5 4 3 2)
    };
    (@arms $n:expr, $c:ident, $body:expr, $($k:literal)*) => {
        match $n {
            $($k => {
                const $c: usize = $k;
                $body
            })*
            _ => {
                const $c: usize = 1;
                $body
            }
        }
    };
}

/// One block under one candidate, the class count dispatched to a constant.
fn score_block(b: &Blocks, s: &Scorer, blk: usize) -> (f32x8, i32) {
    let truth = b.truth_lanes(blk);
    with_class_count!(b.classes, C => s.block::<C>(blk, truth))
}

/// Every candidate's tally over every block, chunk by chunk (each candidate scored on a chunk while the chunk
/// is in cache), one job per thread over consecutive chunks; returns each job's tallies, one per candidate.
fn tally_chunks(b: &Blocks, scorers: &[Scorer], brackets: &[(f32, f32)]) -> Vec<Vec<Tally>> {
    let chunks = b.blocks().div_ceil(CHUNK_BLOCKS);
    let jobs = rayon::current_num_threads().clamp(1, chunks.max(1));
    (0..jobs)
        .into_par_iter()
        .map(|job| {
            let mut tallies = vec![Tally::default(); scorers.len()];
            for chunk in (job * chunks / jobs)..((job + 1) * chunks / jobs) {
                let range = chunk * CHUNK_BLOCKS..((chunk + 1) * CHUNK_BLOCKS).min(b.blocks());
                for ((scorer, t), bracket) in scorers.iter().zip(&mut tallies).zip(brackets) {
                    let (range, bracket) = (range.clone(), *bracket);
                    with_class_count!(b.classes, C => tally_chunk::<C>(b, scorer, range, bracket, t));
                }
            }
            tallies
        })
        .collect()
}

/// One candidate over one chunk of blocks; the class count as a constant, so the block loops unroll.
#[inline(always)]
fn tally_chunk<const C: usize>(
    b: &Blocks,
    scorer: &Scorer,
    range: std::ops::Range<usize>,
    bracket: (f32, f32),
    t: &mut Tally,
) {
    for blk in range {
        let (conf, right) = scorer.block::<C>(blk, b.truth_lanes(blk));
        tally_block(t, b, blk, conf, right, bracket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_respects_missing_levels() {
        let g = grid([true, true, true], 0.5);
        assert_eq!(g.len(), 6);
        let g = grid([true, false, true], 0.5);
        assert!(g.iter().all(|w| w[1] == 0.0));
        assert_eq!(g.len(), 3);
    }

    /// `n` rows over `c` classes whose probabilities sit on a coarse grid, so confidences tie often.
    fn epoch(n: usize, c: usize, levels: [bool; 3], seed: u64) -> EpochData {
        epoch_on_grid(n, c, levels, seed, 4)
    }

    /// The same with each raw class score one of `grid` values (a fine grid: few ties).
    fn epoch_on_grid(n: usize, c: usize, levels: [bool; 3], seed: u64, grid: usize) -> EpochData {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        let mut probs = || -> Vec<f32> {
            (0..n)
                .flat_map(|_| {
                    let raw: Vec<f32> = (0..c).map(|_| (1 + next() % grid) as f32).collect();
                    let sum: f32 = raw.iter().sum();
                    raw.into_iter().map(move |v| v / sum)
                })
                .collect()
        };
        let levels: [Option<Vec<f32>>; 3] = std::array::from_fn(|l| levels[l].then(&mut probs));
        let truth = (0..n).map(|i| ((i * 7 + i / 3) % c) as u8).collect();
        EpochData {
            epoch: 1,
            path: "fixture".into(),
            classes: c,
            n,
            fused: levels[0].clone().expect("the semantic level"),
            levels,
            truth,
            shard_rows: (0..n as u32).collect(),
            votes: None,
            threshold: Threshold::Global(0.5),
            fusion: Fusion { mode: FusionMode::MeanProb, weights: [1.0, 1.0, 1.0], tau_text: 0.5, tau_ins: 0.1 },
            dropped: Default::default(),
            alignment: None,
            subset_of: None,
        }
    }

    /// The bracketing pass gives, for every candidate and k, what ranking all its materialised confidences
    /// gives (quality::top_k, itself tested against sorting): row counts that are not a multiple of 8, heavy
    /// ties and few, both modes, a missing level, k from 1 to all rows. With few ties the sample's brackets
    /// hold: the answers come from the one pass, not the fallback.
    #[test]
    fn bracketed_top_k_equals_ranking_every_row() {
        let cases = [
            (1003, 8, [true, true, true], 4),
            (70_001, 7, [true, false, true], 4),
            (70_001, 8, [true, true, true], 1 << 20),
            (9, 3, [true; 3], 4),
        ];
        for (n, c, levels, values) in cases {
            let e = epoch_on_grid(n, c, levels, n as u64, values);
            let b = Blocks::new(&e);
            let settings: Vec<Fusion> = [FusionMode::MeanProb, FusionMode::WeightedLogit]
                .into_iter()
                .flat_map(|mode| grid(levels, 0.25).into_iter().map(move |w| Fusion { mode, weights: w, ..e.fusion }))
                .collect();
            let scorers: Vec<Scorer> = settings.iter().map(|f| Scorer::new(&b, f)).collect();
            for k in [1, 2, n / 3, n - 1, n] {
                let want: Vec<_> = scorers.iter().map(|s| exact_top_k(&b, s, k)).collect();
                assert_eq!(top_k_all(&b, &scorers, k), want, "n {n}, k {k}");
                if values > 4 {
                    let held = tally_all(&b, &scorers, k).into_iter().all(|t| t.resolve(k).is_some());
                    assert!(held, "n {n}, k {k}: a bracket missed its k-th row");
                }
            }
        }
    }

    /// Every row at the same confidence: the bracket closes on that value, more rows fall inside it than a
    /// tally keeps, and the candidates are ranked in full instead, with the same answers.
    #[test]
    fn a_large_tie_is_ranked_in_full() {
        let mut e = epoch(70_001, 4, [true, true, false], 3);
        for p in e.levels.iter_mut().flatten() {
            p.chunks_mut(4).for_each(|row| row.copy_from_slice(&[0.7, 0.1, 0.1, 0.1]));
        }
        let b = Blocks::new(&e);
        let settings: Vec<Fusion> = [FusionMode::MeanProb, FusionMode::WeightedLogit]
            .into_iter()
            .map(|mode| Fusion { mode, weights: [0.5, 0.5, 0.0], ..e.fusion })
            .collect();
        let scorers: Vec<Scorer> = settings.iter().map(|f| Scorer::new(&b, f)).collect();
        let k = 30_000;
        assert!(tally_all(&b, &scorers, k).iter().all(|t| t.overflow && t.inside.is_empty()));
        let want: Vec<_> = scorers.iter().map(|s| exact_top_k(&b, s, k)).collect();
        assert_eq!(top_k_all(&b, &scorers, k), want);
    }

    #[test]
    fn a_tally_resolves_only_when_the_kth_row_is_inside() {
        let key = order_key;
        let inside = vec![(key(0.5), 7, true), (key(0.6), 9, false), (key(0.5), 4, false)];
        let t = Tally { above: 3, right_above: 2, inside, overflow: false };
        // k = 5: the 3 above, then 0.6 (row 9, wrong), then the first 0.5 in row order (row 4, wrong).
        assert_eq!(t.clone().resolve(5), Some((Some(2.0 / 5.0), 0.5)));
        // k = 6 adds row 7 (right).
        assert_eq!(t.clone().resolve(6), Some((Some(3.0 / 6.0), 0.5)));
        // The k-th row above the interval, or below it: the sample misjudged, no answer.
        assert_eq!(t.clone().resolve(3), None);
        assert_eq!(t.resolve(7), None);
    }

    #[test]
    fn scoring_a_block_hand_computed() {
        // Two classes, two levels, 3 rows (5 padding lanes). Mean-prob 0.5/0.5: row 0 (0.9,0.1)+(0.7,0.3) →
        // (0.8, 0.2): class 0 at 0.8; row 1 (0.4,0.6)+(0.6,0.4) → a tie at 0.5: the first class wins.
        let mut e = epoch(3, 2, [true, true, false], 1);
        e.levels[0] = Some(vec![0.9, 0.1, 0.4, 0.6, 0.2, 0.8]);
        e.levels[1] = Some(vec![0.7, 0.3, 0.6, 0.4, 0.2, 0.8]);
        e.truth = vec![0, 1, 1];
        let b = Blocks::new(&e);
        let f = Fusion { mode: FusionMode::MeanProb, weights: [0.5, 0.5, 0.0], ..e.fusion };
        let (conf, right) = score_block(&b, &Scorer::new(&b, &f), 0);
        let conf = conf.to_array();
        assert!((conf[0] - 0.8).abs() < 1e-6 && (conf[1] - 0.5).abs() < 1e-6 && (conf[2] - 0.8).abs() < 1e-6);
        assert_eq!(right & 0b111, 0b101, "row 0 right (class 0), row 1 wrong (tie → class 0), row 2 right");
        // Weighted-logit 1/1 with τ 1: softmax(log 0.9 + log 0.7, log 0.1 + log 0.3) = 0.63 / (0.63 + 0.03).
        let f = Fusion { mode: FusionMode::WeightedLogit, weights: [1.0, 1.0, 0.0], tau_text: 1.0, ..e.fusion };
        let conf = score_block(&b, &Scorer::new(&b, &f), 0).0.to_array();
        assert!((conf[0] - 0.63 / 0.66).abs() < 1e-5, "{}", conf[0]);
    }
}
