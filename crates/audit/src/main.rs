//! `audit`: review a run's pseudo-labels against the truth, replay other fusion settings, compare runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use audit::analysis::Override;
use audit::report::{html, summary, terminal};
use audit::{audit_run, Options};
use clap::Parser;
use exchange::fusion::{Fusion, FusionMode};
use exchange::layout::run::INFO_FILE as RUN_INFO_FILE;
use exchange::layout::{self, report};

#[derive(Parser)]
#[command(
    name = "audit",
    version,
    about = "Offline review of pseudo-label quality per level, class and epoch",
    long_about = "Joins every epoch's pseudo-labels of a run (artifacts/runs/<run>/pseudo_labels/) with the true labels \
                  from its shards and reports, per level (semantic, text, instance, fused): quantity and quality at the \
                  run's threshold, argmax accuracy, agreement between levels, per-class precision/recall and histogram \
                  against the labeled prior, calibration (ECE, reliability), a threshold sweep, the fused confusion matrix \
                  and, with annotator votes, how often a wrong pseudo-label is the annotators' second choice.\n\n\
                  Because each level's probabilities are stored, --fusion/--weights/--threshold recompute everything for \
                  another setting without retraining, and the what-if table ranks fusion settings at equal quantity.\n\n\
                  Writes artifacts/reports/<run>/{index.html,summary.json,summary.parquet}; with several runs also a \
                  comparison page.",
    after_help = "Examples:\n  audit                                   # the latest run under artifacts/runs\n  \
                  audit sitfer-10pct fixmatch-10pct       # two runs side by side\n  \
                  audit RUN --fusion weighted-logit --weights 0.3,0.2,0.5 --threshold 0.8\n  \
                  audit RUN --json > summary.json"
)]
struct Cli {
    /// Run folders or run names under --runs-root (default: the most recent run).
    runs: Vec<String>,
    #[arg(long, default_value = layout::RUNS_ROOT)]
    runs_root: PathBuf,
    #[arg(long, default_value = layout::REPORTS_ROOT)]
    reports_root: PathBuf,
    /// Shard folder with the true labels (default: the one the run names in run.json).
    #[arg(long)]
    shards: Option<PathBuf>,
    /// Split file (default: the run's); gives the labeled prior.
    #[arg(long)]
    split: Option<PathBuf>,
    /// What-if: fuse the stored levels with this rule instead of the run's.
    #[arg(long, value_parser = ["mean-prob", "weighted-logit"])]
    fusion: Option<String>,
    /// What-if: weights of semantic,text,instance (e.g. 0.3,0.2,0.5).
    #[arg(long)]
    weights: Option<String>,
    /// What-if: pseudo-label threshold (selected = confidence > threshold).
    #[arg(long)]
    threshold: Option<f32>,
    /// Epoch to show in detail and replay in what-if (default: the last).
    #[arg(long)]
    epoch: Option<u32>,
    /// Step of the what-if weight grid on the simplex: 0 turns what-if off, else 0.02 to 0.5 (a finer grid
    /// grows as 1/step² and writes megabytes of summary for nothing).
    #[arg(long, default_value_t = 0.1, value_parser = parse_grid_step)]
    grid_step: f32,
    /// Faces per class on the run page: the most confident wrong and right pseudo-labels of each class, and
    /// those of the largest confusions, read from the shards (0: none).
    #[arg(long, default_value_t = 4)]
    faces: usize,
    /// Skip the HTML page.
    #[arg(long)]
    no_html: bool,
    /// Print the report as JSON on stdout (tables go nowhere).
    #[arg(long)]
    json: bool,
    /// No tables, only where the reports went.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_weights(s: &str) -> anyhow::Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--weights {s:?}: expected three numbers, e.g. 0.3,0.2,0.5"))?;
    match v.as_slice() {
        [a, b, c] if v.iter().all(|x| *x >= 0.0 && x.is_finite()) && a + b + c > 0.0 => Ok([*a, *b, *c]),
        _ => bail!("--weights {s:?}: expected three non-negative numbers (semantic,text,instance) not all zero"),
    }
}

fn latest_run(root: &Path) -> anyhow::Result<PathBuf> {
    let entries = std::fs::read_dir(root).with_context(|| {
        format!("no runs folder at {} (train writes runs there; or name a run folder)", root.display())
    })?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in entries.flatten() {
        let info = e.path().join(RUN_INFO_FILE);
        if let Ok(t) = info.metadata().and_then(|m| m.modified()) {
            if best.as_ref().is_none_or(|(b, _)| t > *b) {
                best = Some((t, e.path()));
            }
        }
    }
    best.map(|b| b.1).with_context(|| format!("no run folder (with run.json) under {}", root.display()))
}

fn parse_grid_step(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v == 0.0 || (0.02..=0.5).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: expected 0 (no what-if) or a step from 0.02 to 0.5"))
    }
}

/// A run's report folder is named after the run folder itself, never after a name read from inside it: a
/// copied or crafted run.json cannot point the report elsewhere or over another run's report.
fn run_folder_name(dir: &std::path::Path) -> anyhow::Result<String> {
    let full = dir.canonicalize().with_context(|| format!("{}: cannot resolve the run folder", dir.display()))?;
    let name = full.file_name().and_then(|n| n.to_str()).map(str::to_string);
    let name = name.with_context(|| format!("{}: the run folder has no usable name", full.display()))?;
    Ok(layout::check_name("run", &name)?.to_string())
}

/// `compare-a-vs-b` for two runs whose names are short; otherwise `compare-<first>-and-<n>-more-<hash>`, the
/// hash (blake3 of every run name, in order) stable across machines and releases. The page lists the runs.
fn compare_name(folders: &[String]) -> String {
    const SHORT: usize = 64;
    let full = format!("compare-{}", folders.join("-vs-"));
    if folders.len() == 2 && full.len() <= SHORT {
        return full;
    }
    let hash = blake3::hash(folders.join("\n").as_bytes()).to_hex();
    let first: String = folders[0].chars().take(40).collect();
    format!("compare-{first}-and-{}-more-{}", folders.len() - 1, &hash[..8])
}

/// The seed-paired table when some preset repeats over seeds. Runs of one preset can differ in more than
/// their seed (another split): then there is no table, and a line says why.
fn seed_paired(reports: &[audit::report::RunReport]) -> Option<Vec<audit::paired::PresetRow>> {
    let mut presets: Vec<&str> = reports.iter().map(|r| r.preset.as_str()).collect();
    presets.sort_unstable();
    if !presets.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    match audit::paired::table(reports) {
        Ok(rows) if rows.iter().any(|r| r.seeds.len() > 1) => Some(rows),
        Ok(_) => None,
        Err(why) => {
            eprintln!("no seed-paired table: {why}");
            None
        }
    }
}

fn resolve(cli: &Cli) -> anyhow::Result<Vec<PathBuf>> {
    if cli.runs.is_empty() {
        return Ok(vec![latest_run(&cli.runs_root)?]);
    }
    cli.runs
        .iter()
        .map(|r| {
            let p = PathBuf::from(r);
            if p.join(RUN_INFO_FILE).is_file() || p.is_dir() {
                return Ok(p);
            }
            let under = layout::run_dir(&cli.runs_root, r);
            if under.is_dir() {
                Ok(under)
            } else {
                bail!("run {r:?}: neither a folder nor a run under {}", cli.runs_root.display())
            }
        })
        .collect()
}

fn slug(over: &Override) -> String {
    let mut s = String::from("what-if");
    if let Some(f) = over.fusion {
        s += &format!("-{}-{}-{}-{}", f.mode.name(), f.weights[0], f.weights[1], f.weights[2]);
    }
    if let Some(t) = over.threshold {
        s += &format!("-t{t}");
    }
    s
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let weights = cli.weights.as_deref().map(parse_weights).transpose()?;
    if let Some(t) = cli.threshold {
        if !(0.0..1.0).contains(&t) {
            bail!("--threshold {t}: expected a number in [0, 1)");
        }
    }
    let runs = resolve(&cli)?;
    let mut reports = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    for dir in &runs {
        let info = exchange::schema::run_info::RunInfo::read(dir).ok();
        let fusion = fusion_override(&cli, weights, info.as_ref());
        let opts = Options {
            shards: cli.shards.clone(),
            split: cli.split.clone(),
            over: Override { fusion, threshold: cli.threshold },
            epoch: cli.epoch,
            what_if_step: (cli.grid_step > 0.0).then_some(cli.grid_step),
            faces: if cli.no_html { 0 } else { cli.faces },
        };
        let mut report = audit_run(dir, &opts).with_context(|| format!("auditing {}", dir.display()))?;
        let folder = run_folder_name(dir)?;
        // Reports, links and comparisons know the run by its folder.
        report.run = folder.clone();
        let name = if opts.over.is_some() { format!("{folder}--{}", slug(&opts.over)) } else { folder.clone() };
        let out = layout::report_dir(&cli.reports_root, layout::check_name("report", &name)?);
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        summary::write(&out, &report)?;
        if !cli.no_html {
            exchange::atomic::write_bytes(out.join(report::HTML_FILE), html::run_page(&report).as_bytes())?;
        }
        if !cli.json && !cli.quiet {
            print!("{}", terminal::render(&report));
        }
        if !cli.json {
            eprintln!(
                "report: {}",
                out.join(if cli.no_html { report::SUMMARY_JSON } else { report::HTML_FILE }).display()
            );
        }
        folders.push(folder);
        reports.push(report);
    }
    if reports.len() > 1 {
        write_comparison(&cli, &reports, &folders)?;
    }
    if cli.json {
        if reports.len() == 1 {
            println!("{}", serde_json::to_string_pretty(&reports[0])?);
        } else {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
    } else if !cli.quiet {
        eprintln!("audit took {:.2} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The fusion `--fusion`/`--weights` ask for, on top of the run's own (its mode, weights and temperatures
/// kept where not overridden; a new mode starts from that mode's usual weights).
fn fusion_override(
    cli: &Cli,
    weights: Option<[f32; 3]>,
    info: Option<&exchange::schema::run_info::RunInfo>,
) -> Option<Fusion> {
    match (&cli.fusion, weights) {
        (None, None) => None,
        (mode, w) => {
            let base = info.map(|i| i.fusion).unwrap_or(Fusion {
                mode: FusionMode::MeanProb,
                weights: [1.0, 1.0, 1.0],
                tau_text: 1.0,
                tau_ins: 1.0,
            });
            let mode = mode.as_deref().and_then(FusionMode::parse).unwrap_or(base.mode);
            let default_w = if mode == FusionMode::WeightedLogit { [0.3, 0.2, 0.5] } else { [1.0, 1.0, 1.0] };
            let keep_base = mode == base.mode && w.is_none();
            Some(Fusion { mode, weights: w.unwrap_or(if keep_base { base.weights } else { default_w }), ..base })
        }
    }
}

/// The comparison of several runs: summary, seed-paired table, page and terminal tables.
fn write_comparison(cli: &Cli, reports: &[audit::report::RunReport], folders: &[String]) -> anyhow::Result<()> {
    let name = compare_name(folders);
    let out = layout::report_dir(&cli.reports_root, layout::check_name("report", &name)?);
    std::fs::create_dir_all(&out)?;
    exchange::atomic::write_json(out.join(report::SUMMARY_JSON), &reports)?;
    let paired = seed_paired(reports);
    if let Some(rows) = &paired {
        exchange::atomic::write_json(out.join(report::PAIRED_JSON), rows)?;
    }
    if !cli.no_html {
        let page = html::compare_page(reports, paired.as_deref());
        exchange::atomic::write_bytes(out.join(report::HTML_FILE), page.as_bytes())?;
    }
    if !cli.json && !cli.quiet {
        println!("\n{}", terminal::render_compare(reports));
        if let Some(rows) = &paired {
            println!("\n{}", terminal::render_paired(rows));
        }
    }
    if !cli.json {
        eprintln!("comparison: {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_comparisons_get_a_short_stable_name() {
        let few = vec!["a".to_string(), "b".to_string()];
        assert_eq!(super::compare_name(&few), "compare-a-vs-b");
        let many: Vec<String> = (0..8).map(|i| format!("ferplus_10pct-sitfer-paper-seed{i}-long-name")).collect();
        let name = super::compare_name(&many);
        assert!(name.starts_with("compare-ferplus_10pct-sitfer-paper-seed0-long-na-and-7-more-"), "{name}");
        assert!(name.len() <= 80, "{name}");
        assert_eq!(name, super::compare_name(&many));
        // Another order is another comparison (the first run is the reference).
        let mut other = many.clone();
        other.swap(0, 1);
        assert_ne!(super::compare_name(&other)[name.len() - 8..], name[name.len() - 8..]);
        // Three short runs are still named briefly.
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert!(super::compare_name(&three).starts_with("compare-a-and-2-more-"));
    }
}
