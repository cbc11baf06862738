//! Everything a run updates as it trains, built once: the network and its variables, the optimiser, the
//! memory bank, the EMA copy, the mixed-precision scaler, and the fixed inputs the step reads (text
//! prototypes, labels of the labeled set). Built fresh (from scratch or `model.init`) or from the latest
//! checkpoint; [`Trainer::save`] writes that checkpoint.

use std::path::Path;

use anyhow::{bail, Context};

use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::inputs::prototypes;
use super::spec::RunSpec;
use crate::amp::GradScaler;
use crate::checkpoint::{self, Parts, State};
use crate::config::Config;
use crate::data::loader::Data;
use crate::data::sampler::Sampler;
use crate::ema::Ema;
use crate::model::{dlib, init, Init, Net};
use crate::optim::Optimizer;
use crate::sitfer::alignment::Alignment;
use crate::sitfer::memory_bank::MemoryBank;
use crate::sitfer::threshold::{Flex, SelfAdaptive};
use exchange::fusion::Threshold;

pub(crate) struct Trainer<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) device: Device,
    pub(crate) vs: VarStore,
    pub(crate) net: Net,
    pub(crate) opt: Optimizer,
    pub(crate) bank: MemoryBank,
    pub(crate) ema: Option<Ema>,
    pub(crate) scaler: GradScaler,
    /// The process group of a data-parallel run.
    pub(crate) dist: Option<std::rc::Rc<crate::distributed::Dist>>,
    /// The dtype of the forward's autocast region (`None`: fp32), from `run.precision`.
    pub(crate) autocast: Option<tch::Kind>,
    /// Class prototypes `[C, D]` when the text level is on.
    pub(crate) protos: Option<Tensor>,
    /// Labels of the labeled set, on the device, indexed by the sampler's slots.
    pub(crate) labels: Tensor,
    /// `[N, C]` vote shares of the labeled set, with `method.losses.label_targets = "votes"`.
    pub(crate) soft_targets: Option<Tensor>,
    /// FreeMatch's threshold averages (updated only under `threshold_rule = "self-adaptive"`).
    pub(crate) sat: SelfAdaptive,
    /// FlexMatch's per-face record (updated only under `rule = "flex"`).
    pub(crate) flex: Flex,
    /// Distribution alignment's running average (`method.selection.alignment`).
    pub(crate) align: Option<Alignment>,
    /// `[N_u, C]` the unlabeled faces' propagated distributions from the last sweep, on the device
    /// (`method.levels.instance_source = "propagation"`; `None` until the first).
    pub(crate) propagated: Option<Tensor>,
    /// τ_t, τ_i in force: the config's until fitted on val (`method.levels.fit_temperatures`).
    pub(crate) taus: [f64; 2],
}

/// Where the run starts: its state and the two samplers positioned at that state.
pub(crate) struct Start {
    pub(crate) state: State,
    pub(crate) labeled: Sampler,
    pub(crate) unlabeled: Sampler,
}

/// `model.init`: nothing for scratch, dlib's face weights (loaded, then batch norms calibrated on a seeded sample
/// of the training faces), or a safetensors file by name; what loaded goes to `init.json`.
fn init_weights(spec: &RunSpec, cfg: &Config, vs: &VarStore, net: &Net, data: &Data) -> anyhow::Result<()> {
    let report = spec.run_dir.join(exchange::layout::run::INIT_REPORT);
    let summary = match &cfg.model.init {
        Init::Scratch => return Ok(()),
        Init::Dlib => {
            let backbone = net.dlib().context("model.init = \"dlib\" needs model.arch = \"dlib-resnet\"")?;
            let images = calibration_sample(data, cfg.model.calibration_images, cfg.run.seed);
            let r = dlib::pretrained::init(backbone, &images, cfg.schedule.eval_batch as usize, spec.device)?;
            exchange::atomic::write_json(&report, &r)?;
            r.summary()
        }
        Init::File(file) => {
            let r = init::load(vs, file)?;
            exchange::atomic::write_json(&report, &r)?;
            r.summary()
        }
    };
    if !spec.quiet {
        eprintln!("{summary}");
    }
    Ok(())
}

/// Up to `n` training faces (labeled and unlabeled, as the loader decoded them, without augmentation), drawn
/// without replacement with the run's seed.
fn calibration_sample(data: &Data, n: usize, seed: u64) -> Vec<crate::data::augment::Img> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut all: Vec<&crate::data::augment::Img> = data.labeled.images.iter().chain(&data.unlabeled.images).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xd11b);
    all.shuffle(&mut rng);
    all.into_iter().take(n).cloned().collect()
}

/// The network with its variables seeded from `run.seed`, its batch norms synchronised across ranks where
/// asked, and (a fresh run) `model.init`'s weights, the same on every rank.
fn network(spec: &RunSpec, cfg: &Config, data: &Data, text_dim: i64) -> anyhow::Result<(VarStore, Net)> {
    tch::manual_seed(cfg.run.seed as i64);
    let vs = VarStore::new(spec.device);
    let mut net = Net::new(&vs.root(), &cfg.model, data.classes.len() as i64, text_dim);
    if let (true, Some(d)) = (cfg.model.sync_bn, &spec.dist) {
        net.synchronise_batch_norm(d.clone());
    }
    if !spec.resume {
        // Rank 0 alone initialises (and writes init.json); every rank then starts from its weights. A resumed
        // run's ranks all read the same checkpoint instead.
        if spec.writes() {
            init_weights(spec, cfg, &vs, &net, data)?;
        }
        if let Some(d) = &spec.dist {
            d.broadcast_variables(&vs)?;
        }
    }
    Ok((vs, net))
}

/// `optim.kind` over the trainable variables; a pretrained trunk learns at `optim.backbone_lr_scale` of the
/// heads' rate (from scratch every layer learns at `lr`).
fn optimizer(cfg: &Config, vs: &VarStore) -> Optimizer {
    let trunk = if cfg.model.init.is_pretrained() { cfg.optim.backbone_lr_scale } else { 1.0 };
    Optimizer::new(vs, cfg.optim.kind(), cfg.optim.weight_decay).with_lr_scale(|name| {
        if crate::model::is_head(name) {
            1.0
        } else {
            trunk
        }
    })
}

/// `[N, C]` vote shares of every labeled face; refuses a face without votes by its id.
fn vote_targets(set: &crate::data::loader::LabeledSet, classes: i64) -> anyhow::Result<Tensor> {
    let mut flat = Vec::with_capacity(set.ids.len() * classes as usize);
    for (id, v) in set.ids.iter().zip(&set.votes) {
        let Some(v) = v else {
            bail!(
                "method.losses.label_targets = \"votes\": labeled face {id} has no annotator votes over the run's classes \
                 (votes come with FERPlus; use label_targets = \"majority\" for other datasets)"
            );
        };
        flat.extend_from_slice(v);
    }
    Ok(Tensor::from_slice(&flat).view([set.ids.len() as i64, classes]))
}

impl<'a> Trainer<'a> {
    /// The trainer at step 0 (variables seeded from `run.seed`, then `model.init`), or at the latest
    /// checkpoint with `spec.resume`.
    pub(crate) fn new(spec: &RunSpec, cfg: &'a Config, data: &Data) -> anyhow::Result<(Self, Start)> {
        let device = spec.device;
        let c = data.classes.len() as i64;
        let protos =
            if cfg.method.levels.text { Some(prototypes(&spec.text_root, cfg, &data.classes, device)?) } else { None };
        let feature = cfg.model.feature_dim();
        let text_dim = protos.as_ref().map(|p| p.size()[1]).unwrap_or(feature);
        let (vs, net) = network(spec, cfg, data, text_dim)?;
        let opt = optimizer(cfg, &vs);
        let bank = MemoryBank::new(&data.labeled.labels, feature, c, cfg.method.levels.bank_momentum, device);
        let ema = (cfg.optim.ema > 0.0).then(|| Ema::new(&vs, cfg.optim.ema));
        let autocast = crate::amp::autocast_kind(&cfg.run, device)?;
        if autocast == Some(tch::Kind::BFloat16) && !device.is_cuda() && !torch_ext::cpu::has_native_bf16()? {
            eprintln!(
                "warning: run.precision = \"bf16\" on a CPU without AVX-512 BF16 or AMX: libtorch emulates bf16 here, \
                 usually slower than fp32"
            );
        }
        if cfg.run.channels_last {
            torch_ext::memory_format::params_channels_last(vs.variables().values_mut())?;
        }
        let labels = Tensor::from_slice(&data.labeled.labels).to_device(device);
        let soft_targets = match cfg.method.losses.label_targets {
            crate::config::LabelTargets::Majority => None,
            crate::config::LabelTargets::Votes => Some(vote_targets(&data.labeled, c)?.to_device(device)),
        };
        let mut t = Trainer {
            cfg,
            device,
            vs,
            net,
            opt,
            bank,
            ema,
            scaler: GradScaler::new(autocast == Some(tch::Kind::Half)),
            dist: spec.dist.clone(),
            autocast,
            protos,
            labels,
            soft_targets,
            sat: SelfAdaptive::new(c, cfg.method.selection.sat_momentum, device),
            flex: Flex::new(data.unlabeled.ids.len() as i64, c, cfg.method.selection.flex_warmup, device),
            align: Alignment::new(
                cfg.method.selection.alignment,
                &data.labeled.labels,
                c,
                cfg.method.selection.alignment_momentum,
                device,
            ),
            propagated: None,
            taus: [cfg.method.levels.tau_text, cfg.method.levels.tau_ins],
        };
        let start = t.start(spec, data)?;
        Ok((t, start))
    }

    /// The samplers and the state at step 0, or both restored (with the trainer's tensors, scaler and
    /// temperatures) from the latest checkpoint with `spec.resume`.
    fn start(&mut self, spec: &RunSpec, data: &Data) -> anyhow::Result<Start> {
        let seed = self.cfg.run.seed;
        let mut labeled = Sampler::new(data.labeled.ids.len(), seed, 1);
        let mut unlabeled = Sampler::new(data.unlabeled.ids.len(), seed, 2);
        if !spec.resume {
            let state = State {
                step: 0,
                epoch: 0,
                labeled: labeled.state(),
                unlabeled: unlabeled.state(),
                best_val: -1.0,
                best_epoch: 0,
                tensors: String::new(),
                scaler: None,
                running: None,
                taus: None,
            };
            return Ok(Start { state, labeled, unlabeled });
        }
        let state = checkpoint::restore(&spec.run_dir, &mut self.parts()).with_context(|| {
            format!(
                "restoring the latest checkpoint of {} (delete the folder to start over, or train a new run with \
                 --run-id)",
                spec.run_dir.display()
            )
        })?;
        labeled.restore(state.labeled);
        unlabeled.restore(state.unlabeled);
        if let Some(s) = state.scaler {
            self.scaler = s;
        }
        if let Some(taus) = state.taus {
            self.taus = taus;
        }
        Ok(Start { state, labeled, unlabeled })
    }

    fn parts(&mut self) -> Parts<'_> {
        Parts {
            vs: &mut self.vs,
            opt: &mut self.opt,
            bank: &mut self.bank,
            ema: self.ema.as_mut(),
            sat: &mut self.sat,
            flex: &mut self.flex,
            align: self.align.as_mut(),
            propagated: &mut self.propagated,
        }
    }

    /// The fusion in force at `epoch`, with the temperatures in force.
    pub(crate) fn fusion_at(&self, epoch: u32) -> exchange::fusion::Fusion {
        self.with_taus(self.cfg.fusion().in_force(epoch, self.cfg.instance_warmup()))
    }

    /// `f` with the temperatures in force (the config's, or the ones fitted on val).
    fn with_taus(&self, f: exchange::fusion::Fusion) -> exchange::fusion::Fusion {
        exchange::fusion::Fusion { tau_text: self.taus[0] as f32, tau_ins: self.taus[1] as f32, ..f }
    }

    /// The fusion behind the val/test fused accuracy: `method.released_code.eval_fusion` (instance level always in), or the
    /// training fusion in force.
    pub(crate) fn eval_fusion_at(&self, epoch: u32) -> exchange::fusion::Fusion {
        use crate::config::EvalFusion;
        use exchange::fusion::FusionMode;
        let m = &self.cfg.method.released_code;
        let mode = match m.eval_fusion {
            EvalFusion::AsTrained => return self.fusion_at(epoch),
            EvalFusion::MeanProb => FusionMode::MeanProb,
            EvalFusion::WeightedLogit => FusionMode::WeightedLogit,
        };
        self.with_taus(exchange::fusion::Fusion { mode, weights: m.eval_weights, tau_text: 0.0, tau_ins: 0.0 })
    }

    /// The selection thresholds in force, in the form the pseudo-label files and audit share: the fixed one
    /// for every class, or the self-adaptive or curriculum ones per class.
    pub(crate) fn thresholds(&self) -> Threshold {
        use crate::config::ThresholdRule;
        let per_class = |t: Tensor| Threshold::PerClass(Vec::try_from(&t).unwrap_or_default());
        match self.cfg.method.selection.rule {
            ThresholdRule::Fixed => Threshold::Global(self.cfg.threshold()),
            ThresholdRule::SelfAdaptive => per_class(self.sat.thresholds()),
            ThresholdRule::Flex => per_class(self.flex.thresholds(self.cfg.method.selection.threshold)),
        }
    }

    /// Stops a run whose weights are no longer finite (a NaN learning rate, an overflow that the loss check
    /// did not see), naming the last good checkpoint. Runs before anything of the epoch is recorded, and
    /// before every checkpoint, so no checkpoint ever holds such weights.
    pub(crate) fn check_finite(&self, run_dir: &Path, step: u64) -> anyhow::Result<()> {
        for (name, t) in self.vs.variables() {
            if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
                bail!(
                    "parameter `{name}` is not finite after step {step}; stopping without a checkpoint. The last \
                     good checkpoint is kept in {} (lower optim.lr, or set optim.clip_grad_norm)",
                    checkpoint::dir(run_dir).display()
                );
            }
        }
        Ok(())
    }

    /// Writes a checkpoint of everything above plus `state`.
    pub(crate) fn save(&mut self, run_dir: &Path, state: &State) -> anyhow::Result<()> {
        self.check_finite(run_dir, state.step)?;
        let parts = self.parts();
        checkpoint::save(run_dir, &parts, state)
    }
}
