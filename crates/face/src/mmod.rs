//! dlib's CNN face detector file (`mmod_human_face_detector.dat`, Davis King's max-margin object detector,
//! trained on ~7,000 faces; CC0) read into plain arrays, and checked against the network dlib's example
//! defines for it:
//!
//!   input_rgb_image_pyramid<pyramid_down<6>>
//!   → 3 × (con 5×5 stride 2: 16, 32, 32 filters → batch norm → relu)        (the downsampler, 8×)
//!   → 3 × (con 5×5 stride 1, padding 2: 45 filters → batch norm → relu)
//!   → con 9×9 stride 1, padding 4: 1 filter                                  (the detection score map)
//!   → loss_mmod (one 80 × 80 detector window, non-maximum suppression thresholds)
//!
//! The file stores the batch norms as trained (`bn_con2`); dlib's detector runs them as affine maps
//! `γ/√(σ² + ε)·x + (β − μ·γ/√(σ² + ε))`, folded here the same way. Records are found by name and read field
//! by field, as for the face-recognition ResNet.

use std::path::Path;

use crate::dlib_format::{conv_record, Failure, Reader};

pub use crate::dlib_format::ConvRecord as Conv;

/// A batch norm folded into a per-channel `scale · x + shift`.
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// The input layer: the colour means subtracted (then divided by 256) and the tiled pyramid's paddings.
#[derive(Clone, Debug, PartialEq)]
pub struct InputLayer {
    pub mean_rgb: [f32; 3],
    pub padding: usize,
    pub outer_padding: usize,
}

/// What the loss layer says about turning the score map into boxes.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Detector windows `(width, height)` in pixels of a pyramid level.
    pub windows: Vec<(usize, usize)>,
    /// Two detections overlap for suppression when their intersection over union exceeds `nms_iou`, or either
    /// covers more than `nms_covered` of the other.
    pub nms_iou: f64,
    pub nms_covered: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DetectorWeights {
    pub input: InputLayer,
    pub convs: Vec<Conv>,
    pub norms: Vec<Norm>,
    pub options: Options,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("{path}: {what}")]
    Read { path: String, what: String },
    #[error("{path}: byte {offset}: {what}")]
    Format { path: String, offset: usize, what: String },
    #[error("{path}: not dlib's CNN face detector: {what}")]
    Architecture { path: String, what: String },
}

/// (filters, inputs, kernel, stride, padding) of each convolution, input side first.
pub const ARCH: [(usize, usize, usize, usize, usize); 7] = [
    (16, 3, 5, 2, 0),
    (32, 16, 5, 2, 0),
    (32, 32, 5, 2, 0),
    (45, 32, 5, 1, 2),
    (45, 45, 5, 1, 2),
    (45, 45, 5, 1, 2),
    (1, 45, 9, 1, 4),
];

const LOSS: &str = "loss_mmod_";
const INPUT: &str = "input_rgb_image_pyramid";
const INPUT2: &str = "input_rgb_image_pyramid2";
const CONV: &str = "con_4";
const BN: &str = "bn_con2";

impl DetectorWeights {
    pub fn open(path: &Path) -> Result<Self, DetectorError> {
        let shown = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| DetectorError::Read { path: shown.clone(), what: e.to_string() })?;
        let w = Self::parse(&bytes).map_err(|(offset, what)| DetectorError::Format {
            path: shown.clone(),
            offset,
            what,
        })?;
        w.check().map_err(|what| DetectorError::Architecture { path: shown, what })?;
        Ok(w)
    }

    fn parse(bytes: &[u8]) -> Result<Self, Failure> {
        let mut r = Reader::new(bytes);
        let (mut input, mut options, mut convs, mut norms) = (None, None, Vec::new(), Vec::new());
        while let Some(name) = r.next_record(&[LOSS, INPUT2, INPUT, CONV, BN]) {
            match name {
                LOSS => options = Some(mmod_options(&mut r)?),
                INPUT | INPUT2 => input = Some(input_layer(&mut r, name == INPUT2)?),
                CONV => convs.push(conv_record(&mut r)?),
                _ => norms.push(batch_norm(&mut r)?),
            }
        }
        let input = input.ok_or_else(|| r.fail("no input_rgb_image_pyramid record"))?;
        let options = options.ok_or_else(|| r.fail("no loss_mmod_ record"))?;
        Ok(DetectorWeights { input, convs, norms, options })
    }

    /// The counts and shapes against [`ARCH`], so a different network is refused with what differs.
    fn check(&self) -> Result<(), String> {
        if self.convs.len() != ARCH.len() || self.norms.len() != ARCH.len() - 1 {
            return Err(format!(
                "{} convolutions and {} batch norms, expected 7 and 6",
                self.convs.len(),
                self.norms.len()
            ));
        }
        for (i, (c, a)) in self.convs.iter().zip(ARCH).enumerate() {
            let got = (c.cout, c.cin, c.kernel, c.stride, c.padding);
            if got != a {
                return Err(format!(
                    "convolution {i} is (filters, inputs, kernel, stride, padding) {got:?}, expected {a:?}"
                ));
            }
        }
        for (i, (n, a)) in self.norms.iter().zip(ARCH).enumerate() {
            if n.scale.len() != a.0 {
                return Err(format!("batch norm {i} has {} channels, expected {}", n.scale.len(), a.0));
            }
        }
        if self.options.windows.is_empty() {
            return Err("no detector window".into());
        }
        Ok(())
    }
}

fn mmod_options(r: &mut Reader) -> Result<Options, Failure> {
    let at = r.pos();
    let version = r.int()?;
    let windows = match version {
        1 => vec![(r.count("window width")?, r.count("window height")?)],
        2..=4 => r.vec("detector windows", |r| {
            let v = r.int()?;
            let wh = (r.count("window width")?, r.count("window height")?);
            if v == 2 {
                r.string()?;
            }
            Ok(wh)
        })?,
        v => return Err((at, format!("mmod_options version {v}, expected 1 to 4"))),
    };
    let _loss_per_false_alarm = r.double()?;
    let _loss_per_missed_target = r.double()?;
    let _truth_match_iou = r.double()?;
    let (nms_iou, nms_covered) = (r.double()?, r.double()?);
    Ok(Options { windows, nms_iou, nms_covered })
}

fn input_layer(r: &mut Reader, with_padding: bool) -> Result<InputLayer, Failure> {
    let mean_rgb = [r.float()?, r.float()?, r.float()?];
    // dlib's defaults for the first version of the record.
    let (padding, outer_padding) =
        if with_padding { (r.count("padding")?, r.count("outer padding")?) } else { (10, 11) };
    Ok(InputLayer { mean_rgb, padding, outer_padding })
}

/// `bn_con2`: params `[γ; β]`, two alias records, the batch statistics, the running mean and variance, the
/// update counts and learning-rate multipliers, then ε.
fn batch_norm(r: &mut Reader) -> Result<Norm, Failure> {
    let at = r.pos();
    let (_, params) = r.tensor()?;
    for _ in 0..2 {
        let v = r.int()?;
        if v != 1 {
            return Err(r.fail(format!("alias tensor version {v}, expected 1")));
        }
        for _ in 0..4 {
            r.int()?;
        }
    }
    let (_, _means) = r.tensor()?;
    let (_, _invstds) = r.tensor()?;
    let (_, running_mean) = r.tensor()?;
    let (_, running_var) = r.tensor()?;
    let _num_updates = r.int()?;
    let _window = r.int()?;
    for _ in 0..4 {
        r.double()?;
    }
    let eps = r.double()?;
    let c = running_mean.len();
    if params.len() != 2 * c || running_var.len() != c {
        return Err((
            at,
            format!("batch norm with {} parameters for {c} channels, expected 2 per channel", params.len()),
        ));
    }
    let scale: Vec<f32> = (0..c).map(|k| params[k] / (running_var[k] + eps as f32).sqrt()).collect();
    let shift = (0..c).map(|k| params[c + k] - running_mean[k] * scale[k]).collect();
    Ok(Norm { scale, shift })
}
