//! Seed-paired comparison of presets: runs of the same presets trained with the same seeds (model init and
//! sampling; the split is fixed) are paired by seed, so the run-to-run noise they share cancels. Per preset:
//! test accuracy at the val-chosen epoch, mean ± sd over seeds; per preset after the first: the mean paired
//! difference to the first and its 95 % Student-t interval over the seeds both have, and the verdict
//! ([`Verdict`]): better or worse when the 95 % interval excludes 0, equivalent when two one-sided tests at
//! 5 % each put the difference inside ±[`EQUIVALENCE_MARGIN`] (its 90 % interval inside the margin), else not
//! resolved. Reads only the classifier's numbers ([`crate::model_scores`]); computes nothing about
//! pseudo-labels.

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::report::RunReport;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PresetRow {
    pub(crate) preset: String,
    /// Seeds with a test accuracy, ascending, and those accuracies.
    pub seeds: Vec<u64>,
    pub(crate) test_acc: Vec<f64>,
    pub(crate) mean: f64,
    /// Sample standard deviation (n − 1); `None` for one seed.
    pub(crate) sd: Option<f64>,
    /// Against the first preset; `None` for the first itself.
    pub(crate) vs_first: Option<Paired>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Paired {
    /// Seeds both presets have.
    pub(crate) n: usize,
    pub(crate) mean_diff: f64,
    pub(crate) sd_diff: Option<f64>,
    /// 95 % interval of the mean difference (t with n − 1 degrees of freedom); `None` below two pairs.
    pub(crate) ci95: Option<[f64; 2]>,
    /// 90 % interval: inside ±[`EQUIVALENCE_MARGIN`] is the two one-sided tests' equivalence at 5 %.
    pub(crate) ci90: Option<[f64; 2]>,
    pub(crate) verdict: Verdict,
}

/// Half a point of accuracy: a difference smaller than this is not one a user would choose a preset for,
/// and a 3,137-face test set cannot resolve much less (one standard error ≈ 0.74 points).
pub(crate) const EQUIVALENCE_MARGIN: f64 = 0.005;

/// What the paired difference `b − a` says, fixed before any run reads it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Verdict {
    /// The 95 % interval lies above 0.
    Better,
    /// The 95 % interval lies below 0.
    Worse,
    /// The 90 % interval lies inside ±[`EQUIVALENCE_MARGIN`] (two one-sided tests at 5 %).
    Equivalent,
    /// None of these: more seeds, or a larger test set, would be needed.
    NotResolved,
    /// Fewer than two pairs: no interval.
    OnePair,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Equivalent => "equivalent (±0.5)",
            Verdict::NotResolved => "not resolved",
            Verdict::OnePair => "",
        }
    }
}

fn verdict(ci95: Option<[f64; 2]>, ci90: Option<[f64; 2]>) -> Verdict {
    match (ci95, ci90) {
        (Some([lo, _]), _) if lo > 0.0 => Verdict::Better,
        (Some([_, hi]), _) if hi < 0.0 => Verdict::Worse,
        (_, Some([lo, hi])) if lo > -EQUIVALENCE_MARGIN && hi < EQUIVALENCE_MARGIN => Verdict::Equivalent,
        (Some(_), _) => Verdict::NotResolved,
        _ => Verdict::OnePair,
    }
}

/// Mean and sample standard deviation.
pub(crate) fn mean_sd(x: &[f64]) -> (f64, Option<f64>) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n.max(1.0);
    let sd = (x.len() > 1).then(|| (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, sd)
}

/// The paired difference `b − a` over seeds both have.
pub(crate) fn paired(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>) -> Paired {
    let d: Vec<f64> = b.iter().filter_map(|(s, vb)| a.get(s).map(|va| vb - va)).collect();
    let (mean_diff, sd_diff) = mean_sd(&d);
    let interval = |level: f64| {
        sd_diff.and_then(|sd| {
            let t = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64).ok()?.inverse_cdf(0.5 + level / 2.0);
            let half = t * sd / (d.len() as f64).sqrt();
            Some([mean_diff - half, mean_diff + half])
        })
    };
    let (ci95, ci90) = (interval(0.95), interval(0.90));
    Paired { n: d.len(), mean_diff, sd_diff, ci95, ci90, verdict: verdict(ci95, ci90) }
}

/// The seed-paired table as both reports show it: a header and, per preset, its name, seed count,
/// mean ± sd, paired difference to the first preset with its 95 % interval, and the verdict (points).
pub fn display(rows: &[PresetRow]) -> (Vec<String>, Vec<[String; 5]>) {
    let head = ["preset", "seeds", "mean ± sd", "paired difference [95 % interval], points", "verdict"];
    let pts = |v: f64| format!("{:+.2}", 100.0 * v);
    let body = rows
        .iter()
        .map(|r| {
            let sd = r.sd.map(|v| format!(" ± {:.2}", 100.0 * v)).unwrap_or_default();
            let (diff, verdict) = match &r.vs_first {
                None => ("(reference)".to_string(), String::new()),
                Some(p) => {
                    let ci = p.ci95.map(|[lo, hi]| format!(" [{}, {}]", pts(lo), pts(hi))).unwrap_or_default();
                    (format!("{}{ci} over {} pairs", pts(p.mean_diff), p.n), p.verdict.label().to_string())
                }
            };
            [r.preset.clone(), r.seeds.len().to_string(), format!("{:.2}%{sd}", 100.0 * r.mean), diff, verdict]
        })
        .collect();
    (head.map(str::to_string).to_vec(), body)
}

/// The table for `reports`, presets in order of first appearance. `Err` names two runs of one preset with
/// the same seed (they would pair twice), or a run without a recorded seed.
pub fn table(reports: &[RunReport]) -> Result<Vec<PresetRow>, String> {
    let mut order: Vec<String> = Vec::new();
    let mut by_preset: BTreeMap<String, BTreeMap<u64, (f64, String)>> = BTreeMap::new();
    for r in reports {
        let Some(test) = r.model.as_ref().and_then(|m| m.test_acc) else { continue };
        let seed = r
            .seed
            .ok_or_else(|| format!("run {}: run.json records no seed (trained before seeds were recorded)", r.run))?;
        if !order.contains(&r.preset) {
            order.push(r.preset.clone());
        }
        let runs = by_preset.entry(r.preset.clone()).or_default();
        if let Some((_, other)) = runs.get(&seed) {
            return Err(format!("runs {other} and {} are both preset {} with seed {seed}", r.run, r.preset));
        }
        runs.insert(seed, (test, r.run.clone()));
    }
    let acc = |p: &str| -> BTreeMap<u64, f64> { by_preset[p].iter().map(|(s, (v, _))| (*s, *v)).collect() };
    let first = order.first().map(|p| acc(p));
    Ok(order
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let a = acc(p);
            let test_acc: Vec<f64> = a.values().copied().collect();
            let (mean, sd) = mean_sd(&test_acc);
            PresetRow {
                preset: p.clone(),
                seeds: a.keys().copied().collect(),
                test_acc,
                mean,
                sd,
                vs_first: (i > 0).then(|| paired(first.as_ref().expect("first preset"), &a)),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_interval_by_hand() {
        // Differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01, t(0.975, 2) = 4.302653, half-width 4.302653·0.01/√3.
        let a = BTreeMap::from([(0, 0.70), (1, 0.72), (2, 0.71), (9, 0.5)]);
        let b = BTreeMap::from([(0, 0.72), (1, 0.75), (2, 0.75)]);
        let p = paired(&a, &b);
        assert_eq!(p.n, 3);
        assert!((p.mean_diff - 0.03).abs() < 1e-12);
        assert!((p.sd_diff.unwrap() - 0.01).abs() < 1e-12);
        let half = 4.302_653 * 0.01 / 3f64.sqrt();
        let [lo, hi] = p.ci95.unwrap();
        assert!((lo - (0.03 - half)).abs() < 1e-6 && (hi - (0.03 + half)).abs() < 1e-6, "{lo} {hi}");
        // t(0.95, 2) = 2.919986.
        let half90 = 2.919_986 * 0.01 / 3f64.sqrt();
        let [lo, hi] = p.ci90.unwrap();
        assert!((lo - (0.03 - half90)).abs() < 1e-6 && (hi - (0.03 + half90)).abs() < 1e-6, "{lo} {hi}");
        assert_eq!(p.verdict, Verdict::Better);
        // One pair: a difference, no interval.
        let one = paired(&BTreeMap::from([(0, 0.5)]), &BTreeMap::from([(0, 0.6)]));
        assert_eq!((one.n, one.sd_diff, one.ci95, one.verdict), (1, None, None, Verdict::OnePair));
    }

    #[test]
    fn equivalence_needs_the_90_interval_inside_half_a_point() {
        // Differences +0.1, −0.1, +0.2 points: mean 0.0667, sd 0.1528 points; t(0.95, 2) = 2.919986, so the
        // 90 % half-width is 0.2576 points: [−0.191, +0.324] ⊂ ±0.5 → equivalent. Its 95 % interval
        // (half-width 0.3795) contains 0.
        let a = BTreeMap::from([(0, 0.800), (1, 0.800), (2, 0.800)]);
        let b = BTreeMap::from([(0, 0.801), (1, 0.799), (2, 0.802)]);
        let p = paired(&a, &b);
        let [lo, hi] = p.ci90.unwrap();
        assert!((lo - (0.000_667 - 0.002_576)).abs() < 1e-5 && (hi - (0.000_667 + 0.002_576)).abs() < 1e-5);
        assert_eq!(p.verdict, Verdict::Equivalent);
        // Ten times the spread: neither excluded from 0 nor inside the margin.
        let b = BTreeMap::from([(0, 0.810), (1, 0.790), (2, 0.820)]);
        assert_eq!(paired(&a, &b).verdict, Verdict::NotResolved);
        // A clear loss.
        let b = BTreeMap::from([(0, 0.780), (1, 0.781), (2, 0.779)]);
        assert_eq!(paired(&a, &b).verdict, Verdict::Worse);
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((sd.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[0.3]).1, None);
    }
}
