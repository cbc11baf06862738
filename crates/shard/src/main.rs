//! `shard`: raw FER datasets into Parquet shards (`artifacts/shards/<dataset>/`) and split files
//! (`artifacts/splits/<split>.parquet`). Pure Rust, no libtorch.
//!
//! Flow of one dataset: a reader in [`sources`] parses labels and checks rows → [`output`] decodes and
//! encodes images in parallel and writes parts + manifest atomically → [`summary`] prints the table.

mod encode;
mod issues;
mod output;
mod preview;
mod sources;
mod split;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::ValueEnum;
use clap::{Args, Parser, Subcommand};
use exchange::manifest::MANIFEST_FILE;
use serde_json::json;

use encode::{Color, ImageOptions};
use issues::{Issues, OnError};
use sources::{ferplus, synthetic, Scan};

#[derive(Parser)]
#[command(
    name = "shard",
    version,
    about = "Turn raw FER datasets into Parquet shards and split files",
    long_about = "Turn raw FER datasets into Parquet shards (artifacts/shards/<dataset>/part-NNNNN.parquet + \
                  manifest.json) and split files (artifacts/splits/<split>.parquet).\n\n\
                  Rerunning with unchanged inputs and options is a no-op (\"up to date\"); --force redoes it. \
                  A failed or interrupted run leaves earlier output untouched.\n\n\
                  Examples:\n  shard synthetic --preview faces.png\n  shard ferplus --root /data/ferplus\n  \
                  shard rafdb --root data/raw/rafdb\n  shard folder --name sfew --root data/raw/sfew\n  shard split ferplus_10pct"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the built-in synthetic faces (FER+ folder layout, by seed) and shard them.
    Synthetic(SyntheticArgs),
    /// FERPlus from FER2013{Train,Valid,Test}/ + label.csv, or Kaggle fer2013.csv + fer2013new.csv.
    Ferplus(FerplusArgs),
    /// RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/.
    Rafdb(RafdbArgs),
    /// AffectNet: training.csv / validation.csv + Manually_Annotated_Images/, cropped by the face box.
    Affectnet(AffectnetArgs),
    /// Any image-folder dataset: <root>/<train|val|test>/<ClassName>/*.png|jpg (SFEW 2.0, CK+ …).
    Folder(FolderArgs),
    /// Write artifacts/splits/<NAME>.parquet (id, role) from pipelines/splits/<NAME>.toml.
    Split(SplitArgs),
    /// Bring a split up to date with the shards it needs: the dataset its pipelines/splits/<NAME>.toml names
    /// is sharded (skipped when up to date; raw roots from FERPLUS_DIR, RAFDB_DIR, AFFECTNET_DIR), then the
    /// split is written. What `make train` runs.
    Prepare(PrepareArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Where dataset shard folders go.
    #[arg(long, default_value = exchange::layout::SHARDS_ROOT)]
    out_root: PathBuf,
    /// What to do with a malformed row, bad vote, out-of-range label, unreadable image or duplicate id.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_error: OnError,
    /// Resize every face to N×N pixels at shard time.
    #[arg(long, value_name = "N")]
    resize: Option<u32>,
    /// Colour of the stored images.
    #[arg(long, value_enum, default_value_t = Color::Keep)]
    color: Color,
    /// Rows per Parquet part file.
    #[arg(long, default_value_t = 16384)]
    rows_per_part: usize,
    /// Rows per row group (the unit of streaming reads).
    #[arg(long, default_value_t = 1024)]
    row_group_rows: usize,
    /// Keep at most N faces per source split (quick looks, tests).
    #[arg(long, value_name = "N")]
    limit_per_split: Option<usize>,
    /// Rebuild even if the output is up to date.
    #[arg(long)]
    force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct SyntheticArgs {
    #[command(flatten)]
    common: Common,
    /// Where the generated FER+ layout is written.
    #[arg(long, default_value = "data/raw/synthetic")]
    raw_dir: PathBuf,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 48)]
    size: u32,
    #[arg(long, default_value_t = 6000)]
    train: usize,
    /// Faces in valid and test: enough that one standard error of a test accuracy is under a point (about
    /// 0.85 at 3,000), so runs that differ by a seed are told apart by the model, not by which faces were drawn.
    #[arg(long, default_value_t = 2000)]
    valid: usize,
    #[arg(long, default_value_t = 3000)]
    test: usize,
    /// Also write a labeled montage (one row per class) to this PNG.
    #[arg(long, value_name = "PNG")]
    preview: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ferplus::Protocol::Majority)]
    protocol: ferplus::Protocol,
}

#[derive(Args)]
struct FerplusArgs {
    #[command(flatten)]
    common: Common,
    /// Dataset root (FER2013Train/… or fer2013.csv + fer2013new.csv).
    #[arg(long, env = "FERPLUS_DIR", default_value = "data/raw/ferplus")]
    root: PathBuf,
    #[arg(long, value_enum, default_value_t = ferplus::Layout::Auto)]
    layout: ferplus::Layout,
    #[arg(long, value_enum, default_value_t = ferplus::Protocol::Majority)]
    protocol: ferplus::Protocol,
    /// Name of the shard folder and id prefix.
    #[arg(long, default_value = "ferplus")]
    name: String,
}

#[derive(Args)]
struct RafdbArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "RAFDB_DIR", default_value = "data/raw/rafdb")]
    root: PathBuf,
    #[arg(long, default_value = "rafdb")]
    name: String,
}

#[derive(Args)]
struct AffectnetArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "AFFECTNET_DIR", default_value = "data/raw/affectnet")]
    root: PathBuf,
    /// 7 (drops contempt) or 8 classes.
    #[arg(long, default_value_t = 8)]
    classes: usize,
    /// Default: affectnet (8 classes) or affectnet7.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
struct FolderArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long)]
    root: PathBuf,
    /// Dataset name (shard folder and id prefix), e.g. sfew.
    #[arg(long)]
    name: String,
}

#[derive(Args)]
struct SplitArgs {
    /// Split name: reads <splits-dir>/<NAME>.toml.
    name: String,
    #[arg(long, default_value = exchange::layout::SPLIT_CONFIGS)]
    splits_dir: PathBuf,
    #[arg(long, default_value = exchange::layout::SHARDS_ROOT)]
    shards_root: PathBuf,
    #[arg(long, default_value = exchange::layout::SPLITS_ROOT)]
    out_dir: PathBuf,
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PrepareArgs {
    /// Split name: reads <splits-dir>/<NAME>.toml.
    name: String,
    #[arg(long, default_value = exchange::layout::SPLIT_CONFIGS)]
    splits_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_error: OnError,
    /// Print only the dataset the split uses, and do nothing.
    #[arg(long)]
    print_dataset: bool,
    #[arg(long, short)]
    quiet: bool,
}

/// The shard command that builds a dataset with a built-in reader, as command-line words.
fn reader_args(dataset: &str) -> Option<Vec<&'static str>> {
    Some(match dataset {
        "synthetic" => vec!["synthetic"],
        "ferplus" => vec!["ferplus"],
        "rafdb" => vec!["rafdb"],
        "affectnet" => vec!["affectnet"],
        "affectnet7" => vec!["affectnet", "--classes", "7"],
        _ => return None,
    })
}

fn prepare(a: &PrepareArgs) -> anyhow::Result<()> {
    let cfg_path = exchange::layout::split_config(&a.splits_dir, &a.name);
    let dataset = split::load_config(&cfg_path)?.dataset;
    if a.print_dataset {
        println!("{dataset}");
        return Ok(());
    }
    let on_error = OnError::to_possible_value(&a.on_error).map(|v| v.get_name().to_string()).unwrap_or_default();
    let shards_root = Path::new(exchange::layout::SHARDS_ROOT);
    match reader_args(&dataset) {
        Some(words) => {
            let mut argv = vec!["shard"];
            argv.extend(words);
            argv.extend(["--on-error", on_error.as_str()]);
            if a.quiet {
                argv.push("--quiet");
            }
            run(Cli::try_parse_from(argv)?)?;
        }
        None if exchange::layout::shard_dir(shards_root, &dataset).join(MANIFEST_FILE).is_file() => {}
        None => bail!(
            "split {} uses dataset `{dataset}` ({}), which has no built-in reader and no shards yet: shard it first \
             with `shard folder --root <dir> --name {dataset}`",
            a.name,
            cfg_path.display()
        ),
    }
    run(Cli::try_parse_from(["shard", "split", a.name.as_str(), "--splits-dir", &a.splits_dir.display().to_string()])?)
}

fn shard(
    dataset: &str,
    source: serde_json::Value,
    common: &Common,
    scan: Scan,
    mut issues: Issues,
) -> anyhow::Result<()> {
    exchange::layout::check_name("dataset", dataset)?;
    let mut scan = scan;
    sources::dedup_ids(&mut scan, &mut issues)?;
    for w in &scan.warnings {
        eprintln!("warning: {dataset}: {w}");
    }
    let image = ImageOptions { resize: common.resize, color: common.color };
    let job = output::Job {
        dataset: dataset.to_string(),
        out_dir: exchange::layout::shard_dir(&common.out_root, dataset),
        image,
        rows_per_part: common.rows_per_part,
        row_group_rows: common.row_group_rows,
        force: common.force,
        config: json!({
            "dataset": dataset,
            "source": source,
            "image": image,
            "on_error": common.on_error,
            "limit_per_split": common.limit_per_split,
            "rows_per_part": common.rows_per_part,
            "row_group_rows": common.row_group_rows,
        }),
        quiet: common.quiet || common.json,
    };
    match output::run(&job, scan, &mut issues)? {
        output::Outcome::UpToDate(dir) => {
            if common.json {
                println!("{}", json!({"dataset": dataset, "up_to_date": true, "out_dir": dir}));
            } else {
                println!("shard {dataset}: up to date ({}); --force to rebuild", dir.display());
            }
        }
        output::Outcome::Written(s) => {
            if common.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                summary::print_shard(&s);
                for e in &issues.examples {
                    eprintln!("warning: skipped: {e}");
                }
                let skipped: u64 = issues.skipped.values().sum();
                if skipped > issues.examples.len() as u64 {
                    eprintln!(
                        "warning: … and {} more skipped row(s); the summary above and the manifest count them by reason",
                        skipped - issues.examples.len() as u64
                    );
                }
            }
        }
    }
    Ok(())
}

fn root_json(root: &Path) -> serde_json::Value {
    json!(root.display().to_string())
}

fn main() -> anyhow::Result<()> {
    restore_sigpipe();
    run(Cli::parse())
}

/// `shard … | head` ends quietly, as a Unix tool does, instead of panicking on the closed pipe (Rust ignores
/// SIGPIPE by default).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal to its default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synthetic(a) => synthetic_faces(&a),
        Command::Ferplus(a) => {
            let mut issues = Issues::new(a.common.on_error);
            let opts = ferplus::Options {
                dataset: &a.name,
                layout: a.layout,
                protocol: a.protocol,
                limit_per_split: a.common.limit_per_split,
            };
            let scan = ferplus::scan(&a.root, &opts, &mut issues)?;
            let source =
                json!({"reader": "ferplus", "root": root_json(&a.root), "layout": a.layout, "protocol": a.protocol});
            shard(&a.name, source, &a.common, scan, issues)
        }
        Command::Rafdb(a) => {
            let mut issues = Issues::new(a.common.on_error);
            let scan = sources::rafdb::scan(&a.root, &a.name, a.common.limit_per_split, &mut issues)?;
            shard(&a.name, json!({"reader": "rafdb", "root": root_json(&a.root)}), &a.common, scan, issues)
        }
        Command::Affectnet(a) => {
            let name =
                a.name.clone().unwrap_or_else(|| if a.classes == 7 { "affectnet7".into() } else { "affectnet".into() });
            let mut issues = Issues::new(a.common.on_error);
            let scan = sources::affectnet::scan(&a.root, &name, a.classes, a.common.limit_per_split, &mut issues)?;
            shard(
                &name,
                json!({"reader": "affectnet", "root": root_json(&a.root), "classes": a.classes}),
                &a.common,
                scan,
                issues,
            )
        }
        Command::Folder(a) => {
            let mut issues = Issues::new(a.common.on_error);
            let scan = sources::folder::scan(&a.root, &a.name, a.common.limit_per_split, &mut issues)?;
            shard(&a.name, json!({"reader": "folder", "root": root_json(&a.root)}), &a.common, scan, issues)
        }
        Command::Prepare(a) => prepare(&a),
        Command::Split(a) => make_split(&a),
    }
}

/// `shard synthetic`: generate the faces (once per generator config), optionally a preview, then shard them
/// with the FER+ folder reader.
fn synthetic_faces(a: &SyntheticArgs) -> anyhow::Result<()> {
    let cfg = synthetic::GenConfig {
        version: synthetic::GENERATOR_VERSION,
        seed: a.seed,
        size: a.size,
        train: a.train,
        valid: a.valid,
        test: a.test,
        annotators: 10,
    };
    let fresh = synthetic::generate(&a.raw_dir, &cfg, a.common.force, a.common.quiet || a.common.json)
        .with_context(|| format!("generating synthetic faces into {}", a.raw_dir.display()))?;
    if fresh && !a.common.json {
        println!("synthetic: generated {} faces into {}", cfg.train + cfg.valid + cfg.test, a.raw_dir.display());
    }
    if let Some(p) = &a.preview {
        preview::write(p, &cfg, 10)?;
        if !a.common.json {
            println!("synthetic: preview montage -> {}", p.display());
        }
    }
    let mut issues = Issues::new(a.common.on_error);
    let opts = ferplus::Options {
        dataset: "synthetic",
        layout: ferplus::Layout::Folders,
        protocol: a.protocol,
        limit_per_split: a.common.limit_per_split,
    };
    let scan = ferplus::scan(&a.raw_dir, &opts, &mut issues)?;
    shard("synthetic", json!({"reader": "ferplus", "generator": cfg, "protocol": a.protocol}), &a.common, scan, issues)
}

/// `shard split`: the split file from its config, and its per-class table.
fn make_split(a: &SplitArgs) -> anyhow::Result<()> {
    let cfg = exchange::layout::split_config(&a.splits_dir, &a.name);
    match split::run(&a.name, &cfg, &a.shards_root, &a.out_dir, a.force)? {
        split::SplitOutcome::UpToDate(p) => {
            if a.json {
                println!("{}", json!({"split": a.name, "up_to_date": true, "out": p}));
            } else {
                println!("split {}: up to date ({}); --force to rebuild", a.name, p.display());
            }
        }
        split::SplitOutcome::Written(s) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("split {} of {} ({} classes) -> {}", s.name, s.dataset, s.classes.len(), s.out);
                print!("{}", summary::class_split_table(&s.counts));
            }
            for w in &s.warnings {
                eprintln!("warning: split {}: {w}", s.name);
            }
        }
    }
    Ok(())
}
