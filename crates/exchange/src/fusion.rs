//! The pseudo-label decision rules both train (on tensors) and audit (on stored probabilities) apply: which
//! fusion is in force at an epoch, and which pseudo-labels are selected. The arithmetic of the two fusion
//! rules lives with each stage (libtorch in train, plain slices in audit); [`expected`] holds one set of
//! expected values that both stages' tests check against.

use serde::{Deserialize, Serialize};

/// How the three levels are fused into the pseudo-label distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FusionMode {
    /// `p = (w_sem p_sem + w_text p_text + w_ins p_ins) / Σw` (the paper).
    MeanProb,
    /// `p = softmax(w_sem z + w_text s_text + w_ins s_ins)` on raw scores (the released code).
    WeightedLogit,
}

impl FusionMode {
    pub fn name(self) -> &'static str {
        match self {
            FusionMode::MeanProb => "mean-prob",
            FusionMode::WeightedLogit => "weighted-logit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mean-prob" => Some(FusionMode::MeanProb),
            "weighted-logit" => Some(FusionMode::WeightedLogit),
            _ => None,
        }
    }
}

/// A fusion rule with its weights (semantic, text, instance) and the level temperatures, which
/// weighted-logit fusion needs to recover raw scores from stored probabilities: `log p_text = s_text/τ_t + c`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    pub mode: FusionMode,
    pub weights: [f32; 3],
    pub tau_text: f32,
    pub tau_ins: f32,
}

/// Weights of weighted-logit fusion before the instance level's warm-up has passed (the released code).
pub(crate) const WARMUP_WEIGHTS: [f32; 3] = [0.6, 0.4, 0.0];

impl Fusion {
    /// The fusion in force at `epoch` (1-based): until `instance_warmup` epochs have passed, the instance
    /// level stays out — weighted-logit fusion then takes the released code's [`WARMUP_WEIGHTS`], mean-prob
    /// fusion keeps its semantic and text weights with the instance weight at 0.
    pub fn in_force(&self, epoch: u32, instance_warmup: u32) -> Fusion {
        if epoch > instance_warmup {
            return *self;
        }
        let weights = match self.mode {
            FusionMode::WeightedLogit => WARMUP_WEIGHTS,
            FusionMode::MeanProb => [self.weights[0], self.weights[1], 0.0],
        };
        Fusion { weights, ..*self }
    }
}

/// The selection rule: a pseudo-label counts when its fused confidence is strictly above the threshold,
/// compared in `f32` (the precision of the stored probabilities) wherever it is applied.
pub fn selected(confidence: f32, threshold: f32) -> bool {
    confidence > threshold
}

/// The selection thresholds in force for a pseudo-label file: one for every class, or one per class (a
/// self-adaptive threshold); a pseudo-label counts when [`selected`] against its own class's threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Threshold {
    Global(f32),
    PerClass(Vec<f32>),
}

impl Threshold {
    /// The threshold a pseudo-label of `class` must pass (a class without one is never selected).
    pub fn of(&self, class: usize) -> f32 {
        match self {
            Threshold::Global(t) => *t,
            Threshold::PerClass(v) => v.get(class).copied().unwrap_or(f32::INFINITY),
        }
    }

    pub fn selects(&self, confidence: f32, class: usize) -> bool {
        selected(confidence, self.of(class))
    }

    /// One number that stands for the rule: the threshold itself, or the mean over classes.
    pub fn summary(&self) -> f32 {
        match self {
            Threshold::Global(t) => *t,
            Threshold::PerClass(v) => v.iter().sum::<f32>() / v.len().max(1) as f32,
        }
    }

    /// The thresholds a pseudo-label file's metadata states: its per-class list
    /// ([`crate::keys::CLASS_THRESHOLDS`]) when present, else its single threshold ([`crate::keys::THRESHOLD`]),
    /// else `default`. `Err` names the value that is not a list of `classes` numbers.
    pub fn from_metadata(
        threshold: Option<&str>,
        class_thresholds: Option<&str>,
        classes: usize,
        default: f32,
    ) -> Result<Threshold, String> {
        if let Some(list) = class_thresholds {
            let v: Vec<f32> = list
                .split(',')
                .map(|x| x.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("`{list}`: {e}"))?;
            if v.len() != classes || v.iter().any(|t| !t.is_finite()) {
                return Err(format!("`{list}`: expected {classes} finite numbers, one per class"));
            }
            return Ok(Threshold::PerClass(v));
        }
        match threshold {
            Some(t) => t.trim().parse().map(Threshold::Global).map_err(|e| format!("`{t}`: {e}")),
            None => Ok(Threshold::Global(default)),
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Global(t) => write!(f, "{t}"),
            Threshold::PerClass(v) => {
                let list: Vec<String> = v.iter().map(|t| format!("{t:.3}")).collect();
                write!(f, "per class [{}]", list.join(", "))
            }
        }
    }
}

/// Expected values of fusion and selection, computed by an independent NumPy script
/// (`crates/exchange/fixtures/fusion_cases.py`) and read by train's and audit's tests.
pub mod expected {
    use serde::Deserialize;

    use super::Fusion;

    /// One batch of raw level scores, the fusion configured for the run, and what must come out at `epoch`.
    #[derive(Debug, Deserialize)]
    pub struct Case {
        pub name: String,
        pub fusion: Fusion,
        pub epoch: u32,
        pub instance_warmup: u32,
        pub threshold: f32,
        /// Classifier logits `[n][C]`.
        pub z: Vec<Vec<f32>>,
        /// Text cosine scores `[n][C]`; `None` when the text level is off.
        pub s_text: Option<Vec<Vec<f32>>>,
        /// Instance scores `[n][C]`; `None` when the instance level is off.
        pub s_ins: Option<Vec<Vec<f32>>>,
        /// The weights in force at `epoch`.
        pub weights_in_force: [f32; 3],
        pub p_fused: Vec<Vec<f32>>,
        pub label: Vec<usize>,
        pub selected: Vec<bool>,
    }

    const CASES: &str = include_str!("../fixtures/fusion_cases.json");

    pub fn cases() -> Vec<Case> {
        serde_json::from_str(CASES).expect("fixtures/fusion_cases.json is valid (checked by exchange's tests)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_keeps_the_instance_level_out() {
        let f = Fusion { mode: FusionMode::WeightedLogit, weights: [0.3, 0.2, 0.5], tau_text: 1.0, tau_ins: 1.0 };
        assert_eq!(f.in_force(3, 15).weights, [0.6, 0.4, 0.0]);
        assert_eq!(f.in_force(15, 15).weights, [0.6, 0.4, 0.0]);
        assert_eq!(f.in_force(16, 15).weights, [0.3, 0.2, 0.5]);
        let m = Fusion { mode: FusionMode::MeanProb, ..f };
        assert_eq!(m.in_force(1, 15).weights, [0.3, 0.2, 0.0]);
        assert_eq!(m.in_force(16, 15), m);
        assert_eq!(m.in_force(1, 0), m);
    }

    #[test]
    fn per_class_thresholds_from_metadata() {
        let t = Threshold::from_metadata(Some("0.75"), Some("0.5, 0.25"), 2, 0.9).unwrap();
        assert_eq!(t, Threshold::PerClass(vec![0.5, 0.25]));
        assert!(t.selects(0.3, 1) && !t.selects(0.3, 0) && !t.selects(0.99, 2));
        assert_eq!(t.summary(), 0.375);
        assert_eq!(Threshold::from_metadata(Some("0.75"), None, 2, 0.9).unwrap(), Threshold::Global(0.75));
        assert_eq!(Threshold::from_metadata(None, None, 2, 0.9).unwrap(), Threshold::Global(0.9));
        let e = Threshold::from_metadata(None, Some("0.5"), 2, 0.9).unwrap_err();
        assert!(e.contains("expected 2 finite numbers"), "{e}");
        assert!(Threshold::from_metadata(None, Some("0.5,x"), 2, 0.9).is_err());
    }

    #[test]
    fn selection_is_strict() {
        assert!(selected(0.750_001, 0.75));
        assert!(!selected(0.75, 0.75));
        assert!(!selected(0.2, 0.75));
    }

    #[test]
    fn expected_cases_are_consistent() {
        let cases = expected::cases();
        assert!(cases.len() >= 4);
        for c in &cases {
            assert_eq!(c.fusion.in_force(c.epoch, c.instance_warmup).weights, c.weights_in_force, "{}", c.name);
            for (i, p) in c.p_fused.iter().enumerate() {
                let (k, conf) =
                    p.iter().enumerate().fold((0, f32::MIN), |b, (k, v)| if *v > b.1 { (k, *v) } else { b });
                assert_eq!(k, c.label[i], "{} row {i}", c.name);
                assert_eq!(selected(conf, c.threshold), c.selected[i], "{} row {i}", c.name);
            }
        }
    }
}
