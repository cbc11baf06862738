//! A run's trained network as a self-contained snapshot (`model/<snapshot>.json` + its tensors, the contract
//! in [`exchange::schema::model_card`]): written at the epoch end (`best` when val improves, `last` after the
//! final step), read back by `predict`, `evaluate` and `export` into a [`Model`] that computes the levels and
//! their fusion exactly as the run's evaluation did. Owns the file format's train side; chooses no epoch.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use exchange::layout;
use exchange::schema::model_card::{tensor, ModelCard};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::config::Config;
use crate::data::augment::Img;
use crate::evaluate::{forward_set, infer, Inference};
use crate::model::Net;
use crate::named_tensors::load_into;
use crate::sitfer::memory_bank::MemoryBank;

/// Writes the tensors (`<snapshot>-<step>.safetensors`), then the card naming them, each atomically, then
/// removes that snapshot's older tensor files: a crash leaves the previous card and its file intact.
pub(crate) fn write(run_dir: &Path, card: &ModelCard, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let dir = layout::run::model(run_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::named_tensors::write(&dir.join(&card.tensors), tensors)?;
    card.write(&layout::run::snapshot_card(run_dir, &card.snapshot))?;
    let prefix = format!("{}-", card.snapshot);
    for e in std::fs::read_dir(&dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".safetensors") && name != card.tensors {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// A snapshot read back: its card and its named tensors (on the CPU).
pub struct Snapshot {
    pub(crate) card: ModelCard,
    pub(crate) tensors: HashMap<String, Tensor>,
}

impl Snapshot {
    pub fn read(run_dir: &Path, snapshot: &str) -> anyhow::Result<Self> {
        let card_path = layout::run::snapshot_card(run_dir, snapshot);
        let card = ModelCard::read(&card_path)?;
        // The card names a file beside it, never a path elsewhere.
        layout::check_name("tensors file", &card.tensors).with_context(|| format!("{}", card_path.display()))?;
        let file = layout::run::model(run_dir).join(&card.tensors);
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&file)
            .with_context(|| format!("{}: reading the tensors its card names", file.display()))?
            .into_iter()
            .collect();
        Ok(Snapshot { card, tensors })
    }
}

/// A snapshot's network, memory bank and prototypes, ready to infer.
pub struct Model {
    pub card: ModelCard,
    pub cfg: Config,
    pub net: Net,
    pub(crate) device: Device,
    bank: MemoryBank,
    protos: Option<Tensor>,
    // Owns the network's variables; `net` refers to them.
    _vs: VarStore,
}

impl Model {
    pub fn load(s: Snapshot, device: Device) -> anyhow::Result<Self> {
        let Snapshot { card, tensors } = s;
        let cfg = Config::from_saved_json(&card.config)?;
        let classes = card.classes.len() as i64;
        let protos = tensors.get(tensor::PROTOTYPES).map(|p| p.to_device(device));
        if cfg.method.levels.text && protos.is_none() {
            bail!("the snapshot's run uses the text level but the snapshot has no {}", tensor::PROTOTYPES);
        }
        let feature = cfg.model.feature_dim();
        let text_dim = protos.as_ref().map_or(feature, |p| p.size()[1]);
        let mut vs = VarStore::new(device);
        let net = Net::new(&vs.root(), &cfg.model, classes, text_dim);
        for (name, var) in vs.variables() {
            let mut var = var;
            load_into(&tensors, &format!("{}{name}", tensor::NET_PREFIX), &mut var)?;
        }
        // Inference only: no gradients, and TorchScript tracing accepts the weights as constants.
        vs.freeze();
        let labels = tensors.get(tensor::BANK_LABELS);
        let bank = match labels {
            Some(l) => {
                let labels: Vec<i64> = Vec::try_from(l)?;
                let mut bank = MemoryBank::new(&labels, feature, classes, cfg.method.levels.bank_momentum, device);
                load_into(&tensors, tensor::BANK_FEATS, &mut bank.feats)?;
                let written =
                    tensors.get(tensor::BANK_WRITTEN).context("snapshot has bank labels but no bank.written")?;
                bank.written = written.to_kind(Kind::Bool).to_device(device);
                bank
            }
            None if cfg.method.levels.instance => {
                bail!("the snapshot's run uses the instance level but the snapshot has no memory bank")
            }
            None => MemoryBank::new(&[], feature, classes, 0.0, device),
        };
        Ok(Model { card, cfg, net, device, bank, protos, _vs: vs })
    }

    /// The classifier, the run's other levels and their fusion for `images` (already decoded as the card's
    /// preprocessing says), in eval mode: the computation of the run's evaluation.
    pub fn infer(&self, images: &[Img]) -> Inference {
        let raw = forward_set(&self.net, images, &self.bank, self.protos.as_ref(), &self.cfg, self.device);
        infer(&raw, &self.card.fusion, self.card.taus)
    }
}
