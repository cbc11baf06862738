//! What `predict`, `evaluate` and `export` share: which trained network to use ([`ModelArgs`] → [`open`]),
//! and the faces of a split's role decoded as that network expects ([`split_faces`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use exchange::layout;
use exchange::schema::split::Role;
use train::data::loader::{load_faces, Faces, RoleSet};
use train::run::inputs::{resolve_split, SplitInputs};
use train::snapshot::{Model, Snapshot};

#[derive(ClapArgs, Clone)]
pub struct ModelArgs {
    /// The trained run: a name under --runs-root, or a run folder.
    #[arg(long)]
    pub run: String,
    /// `best`: the weights of the epoch chosen on val (what the run reports); `last`: the final epoch's. A run
    /// trained before runs wrote snapshots has only its checkpoint: `last` converts it once.
    #[arg(long, default_value = "best", value_parser = ["best", "last"])]
    pub snapshot: String,
    #[arg(long, default_value = layout::RUNS_ROOT)]
    pub runs_root: PathBuf,
    /// Where the run's text prototypes are (only for converting an old run's checkpoint).
    #[arg(long, default_value = layout::TEXT_ROOT)]
    pub text_root: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl ModelArgs {
    pub fn run_dir(&self) -> anyhow::Result<PathBuf> {
        let as_path = Path::new(&self.run);
        let dir = if as_path.join(layout::run::INFO_FILE).is_file() {
            as_path.to_path_buf()
        } else {
            layout::run_dir(&self.runs_root, layout::check_name("run", &self.run)?)
        };
        if !dir.join(layout::run::INFO_FILE).is_file() {
            bail!("{}: not a run folder (no {}); train one with `train run`", dir.display(), layout::run::INFO_FILE);
        }
        Ok(dir)
    }
}

/// The run's snapshot, loaded on the chosen device.
pub fn open(a: &ModelArgs) -> anyhow::Result<Model> {
    let run_dir = a.run_dir()?;
    let card = layout::run::snapshot_card(&run_dir, &a.snapshot);
    if !card.is_file() {
        if let Some(pid) = train::run::folder::being_trained(&run_dir) {
            bail!(
                "{}: no `{}` snapshot yet: the run is being trained (pid {pid}) and writes its snapshots at the end \
                 of each epoch; wait for its first epoch to end",
                run_dir.display(),
                a.snapshot
            );
        }
        let has_ckpt = layout::run::latest_checkpoint(&run_dir).is_file();
        match (a.snapshot.as_str(), has_ckpt) {
            ("last", true) => {
                let (epoch, finished) = train::run::snapshot_from_checkpoint(&run_dir, &a.text_root)
                    .with_context(|| format!("{}: converting the latest checkpoint", run_dir.display()))?;
                let unfinished =
                    if finished { "" } else { " — the run has not finished: this is not its final epoch" };
                eprintln!(
                    "{}: wrote the `last` snapshot (epoch {epoch}) from its checkpoint{unfinished}",
                    run_dir.display()
                );
            }
            ("best", true) => bail!(
                "{}: no `best` snapshot (the run was trained before runs kept the val-chosen weights, or has no \
                 val set); use --snapshot last",
                run_dir.display()
            ),
            _ => bail!(
                "{}: no {} snapshot and no checkpoint (did the run finish an epoch?)",
                run_dir.display(),
                a.snapshot
            ),
        }
    }
    let device = tch_common::device::parse(&a.device)?;
    Model::load(Snapshot::read(&run_dir, &a.snapshot)?, device)
        .with_context(|| format!("{}: loading the {} snapshot", run_dir.display(), a.snapshot))
}

/// How many of `ids` the run trained on, as (labeled, unlabeled), read from the split its `run.json` names;
/// `None` where that split is no longer there to tell.
pub fn training_overlap(run_dir: &Path, ids: &[String]) -> Option<(usize, usize)> {
    use exchange::schema::split::{Role, SplitRow};
    let info = exchange::schema::run_info::RunInfo::read(run_dir).ok()?;
    let rows: Vec<SplitRow> = exchange::parquet_io::read_table(&info.split).ok()?;
    let roles: std::collections::HashMap<&str, Role> = rows.iter().map(|r| (r.id.as_str(), r.role)).collect();
    let count = |role| ids.iter().filter(|id| roles.get(id.as_str()) == Some(&role)).count();
    Some((count(Role::Labeled), count(Role::Unlabeled)))
}

/// Warns when the chosen faces include the run's own training faces: their score says how well the run
/// fits what it saw, not how it does on new faces.
pub fn warn_training_overlap(run_dir: &Path, chosen: &ChosenFaces) {
    match training_overlap(run_dir, &chosen.set.ids) {
        Some((0, 0)) => {}
        Some((labeled, unlabeled)) => eprintln!(
            "warning: {} of these {} faces are the run's own training faces ({labeled} labeled, {unlabeled} \
             unlabeled): their score overstates accuracy on faces the run has not seen",
            labeled + unlabeled,
            chosen.set.ids.len()
        ),
        None => eprintln!(
            "note: the run's split is not where run.json says; cannot tell whether these faces overlap its training faces"
        ),
    }
}

/// Which faces of which dataset: a split's role, or a dataset's own partition.
#[derive(ClapArgs)]
pub struct FaceArgs {
    /// A split (name under artifacts/splits/ or a file) whose --role faces to use.
    #[arg(long, conflicts_with = "dataset")]
    pub split: Option<String>,
    /// labeled, unlabeled, val or test (with --split).
    #[arg(long, default_value = "test")]
    pub role: String,
    /// Instead of a split: a sharded dataset (artifacts/shards/<name>) whose --partition faces to use.
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset's own partition (train, valid, test), with --dataset.
    #[arg(long, default_value = "test", requires = "dataset")]
    pub partition: String,
    /// Shard folder (default: artifacts/shards/<dataset>).
    #[arg(long)]
    pub shards: Option<PathBuf>,
}

/// The faces chosen, and how a report names them.
pub struct ChosenFaces {
    pub dataset: String,
    /// The split's name, or `partition`.
    pub split: String,
    /// The split role, or the partition's name.
    pub role: String,
    pub shards: PathBuf,
    pub set: RoleSet,
}

impl FaceArgs {
    pub fn given(&self) -> bool {
        self.split.is_some() || self.dataset.is_some()
    }
}

/// The faces `a` names, decoded as `model`'s card says; undecodable ones are named and skipped.
pub fn faces(a: &FaceArgs, model: &Model) -> anyhow::Result<ChosenFaces> {
    let input = &model.card.input;
    let chosen = match (&a.split, &a.dataset) {
        (Some(split), _) => {
            let role: Role = a.role.parse().map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            let SplitInputs { split, name, dataset, shards } = resolve_split(split, a.shards.as_deref())?;
            let set = load_faces(&shards, &Faces::SplitRole(&split, role), input.image_size, input.grey)?;
            ChosenFaces { dataset, split: name, role: a.role.clone(), shards, set }
        }
        (None, Some(dataset)) => {
            let shards = a.shards.clone().unwrap_or_else(|| layout::shard_dir(Path::new(layout::SHARDS_ROOT), dataset));
            layout::check_name("dataset", dataset)?;
            let set = load_faces(&shards, &Faces::Partition(&a.partition), input.image_size, input.grey)?;
            ChosenFaces { dataset: dataset.clone(), split: "partition".into(), role: a.partition.clone(), shards, set }
        }
        (None, None) => bail!("which faces? give --split NAME [--role test] or --dataset NAME [--partition test]"),
    };
    for (id, e) in &chosen.set.skipped {
        eprintln!("warning: {}: face {id} skipped: undecodable image ({e})", chosen.shards.display());
    }
    Ok(chosen)
}
