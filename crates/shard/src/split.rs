//! Split files: `pipelines/splits/<name>.toml` -> `artifacts/splits/<name>.parquet` (id, role).
//!
//! A split config names the dataset, its class list, which source splits give each role, the labeled budget
//! and a seed. Roles are drawn in a fixed order — test, val (when held out of a source split), labeled,
//! unlabeled — from ids sorted and then shuffled by the seed, so the same config always gives the same file.
//! Reads only `id`, `split` and `label` of the shards (never the images).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use exchange::keys;
use exchange::labels::{parse_class_list, ALL};
use exchange::manifest::{Freshness, InputRecord, Manifest};
use exchange::parquet_io::{write_table, TableReader};
use exchange::schema::split::{Role, SplitRow};
use exchange::Expression;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitConfig {
    /// Free text shown in summaries.
    #[serde(default)]
    pub(crate) description: String,
    /// Shard folder name under the shards root.
    pub(crate) dataset: String,
    /// Classes this split trains on (canonical names or synonyms); default: all 8.
    #[serde(default)]
    pub(crate) classes: Option<Vec<String>>,
    pub(crate) seed: u64,
    pub(crate) labeled: Budget,
    #[serde(default)]
    pub(crate) unlabeled: Option<Pool>,
    pub(crate) val: Holdout,
    pub(crate) test: Pool,
}

/// Source splits to take every sample from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pool {
    pub(crate) from: Vec<String>,
}

/// A role taken whole from source splits, or a stratified fraction held out of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Holdout {
    pub(crate) from: Vec<String>,
    /// Hold out this fraction (stratified) instead of taking everything, e.g. RAF-DB's val from train.
    #[serde(default)]
    pub(crate) fraction: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Proportional to each class's share of the pool.
    Stratified,
    /// The same number per class (as far as each class has samples).
    Balanced,
}

/// How many labeled samples to draw, and from where. Exactly one of `fraction`, `total`, `per_class`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Budget {
    pub(crate) from: Vec<String>,
    #[serde(default)]
    pub(crate) fraction: Option<f64>,
    #[serde(default)]
    pub(crate) total: Option<usize>,
    #[serde(default)]
    pub(crate) per_class: Option<usize>,
    #[serde(default = "default_mode")]
    pub(crate) mode: Mode,
    /// Fixed counts for named classes (e.g. Ada-CM's RAF-DB protocol fixes fear); the rest of the budget is
    /// shared among the other classes by `mode`.
    #[serde(default)]
    pub(crate) fixed: BTreeMap<String, usize>,
}

fn default_mode() -> Mode {
    Mode::Stratified
}

pub(crate) fn load_config(path: &Path) -> anyhow::Result<SplitConfig> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("{}: split config not found (split configs live in pipelines/splits/<name>.toml)", path.display())
    })?;
    let cfg: SplitConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let set = [cfg.labeled.fraction.is_some(), cfg.labeled.total.is_some(), cfg.labeled.per_class.is_some()];
    if set.iter().filter(|x| **x).count() != 1 {
        anyhow::bail!("{}: [labeled] needs exactly one of fraction, total, per_class", path.display());
    }
    if let Some(f) = cfg.labeled.fraction {
        if !(f > 0.0 && f <= 1.0) {
            anyhow::bail!("{}: [labeled] fraction must be in (0, 1], got {f}", path.display());
        }
    }
    if let Some(f) = cfg.val.fraction {
        if !(f > 0.0 && f < 1.0) {
            anyhow::bail!("{}: [val] fraction must be in (0, 1), got {f}", path.display());
        }
    }
    Ok(cfg)
}

/// The classes a config trains on.
pub(crate) fn classes(cfg: &SplitConfig) -> anyhow::Result<Vec<Expression>> {
    match &cfg.classes {
        None => Ok(ALL.to_vec()),
        Some(names) => parse_class_list(names).map_err(|e| anyhow::anyhow!("split classes: {e}")),
    }
}

/// Per-class sample counts that add up to `total` in proportion to `sizes` (largest remainder), capped by
/// availability.
fn proportional(sizes: &[usize], total: usize) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let total = total.min(n);
    let exact: Vec<f64> = sizes.iter().map(|&s| s as f64 * total as f64 / n as f64).collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    let mut left = total - out.iter().sum::<usize>();
    for &i in order.iter().cycle().take(sizes.len() * 2) {
        if left == 0 {
            break;
        }
        if out[i] < sizes[i] {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

/// Equal counts per class summing to `total`, capped by availability, leftovers given to classes with room.
fn balanced(sizes: &[usize], total: usize) -> Vec<usize> {
    let mut out = vec![0usize; sizes.len()];
    let mut left = total.min(sizes.iter().sum());
    while left > 0 {
        let open: Vec<usize> = (0..sizes.len()).filter(|&i| out[i] < sizes[i]).collect();
        let share = (left / open.len()).max(1);
        for i in open {
            let add = share.min(sizes[i] - out[i]).min(left);
            out[i] += add;
            left -= add;
            if left == 0 {
                break;
            }
        }
    }
    out
}

/// Labeled counts per class (indexed like `sizes`).
fn budget_counts(b: &Budget, classes: &[Expression], sizes: &[usize]) -> anyhow::Result<Vec<usize>> {
    let mut fixed = vec![None; classes.len()];
    for (name, n) in &b.fixed {
        let e = Expression::parse(name).with_context(|| format!("[labeled] fixed: unknown class `{name}`"))?;
        let i = classes
            .iter()
            .position(|c| *c == e)
            .with_context(|| format!("[labeled] fixed: `{name}` is not in the split's classes"))?;
        if *n > sizes[i] {
            anyhow::bail!("[labeled] fixed: {name} = {n} but the pool has only {} {name} samples", sizes[i]);
        }
        fixed[i] = Some(*n);
    }
    let free: Vec<usize> = (0..classes.len()).filter(|&i| fixed[i].is_none()).collect();
    let free_sizes: Vec<usize> = free.iter().map(|&i| sizes[i]).collect();
    let fixed_sum: usize = fixed.iter().flatten().sum();
    let free_counts = if let Some(k) = b.per_class {
        free_sizes.iter().map(|&s| k.min(s)).collect()
    } else {
        let total = match (b.fraction, b.total) {
            (Some(f), _) => (f * sizes.iter().sum::<usize>() as f64).round() as usize,
            (_, Some(t)) => t,
            _ => unreachable!("checked when loading"),
        };
        let rest = total.saturating_sub(fixed_sum);
        match b.mode {
            Mode::Stratified if b.fraction.is_some() && b.fixed.is_empty() => {
                // per-class rounding of the fraction, as "10 % of each class" is usually meant
                free_sizes
                    .iter()
                    .map(|&s| ((s as f64) * b.fraction.unwrap_or(0.0)).round().max(1.0).min(s as f64) as usize)
                    .collect()
            }
            Mode::Stratified => proportional(&free_sizes, rest),
            Mode::Balanced => balanced(&free_sizes, rest),
        }
    };
    let mut out: Vec<usize> = fixed.iter().map(|f| f.unwrap_or(0)).collect();
    for (j, &i) in free.iter().enumerate() {
        out[i] = free_counts[j];
    }
    Ok(out)
}

/// A shard row's identity and label: all a split needs.
struct Sample {
    id: String,
    split: String,
    class: usize, // index into the split's classes
}

fn read_index(shard_dir: &Path, classes: &[Expression]) -> anyhow::Result<(Vec<Sample>, Vec<PathBuf>)> {
    let parts = exchange::layout::shard_parts(shard_dir)
        .with_context(|| format!("{}: no shards here; run `make shard DATASET=…` first", shard_dir.display()))?;
    if parts.is_empty() {
        anyhow::bail!("{}: no part-*.parquet files; run `make shard` first", shard_dir.display());
    }
    let mut out = Vec::new();
    for p in &parts {
        for rows in TableReader::<exchange::schema::shard::ShardIndexRow>::open(p)? {
            for r in rows? {
                let Some(e) = r.label.and_then(Expression::from_id) else { continue };
                let Some(class) = classes.iter().position(|c| *c == e) else { continue };
                out.push(Sample { id: r.id, split: r.split, class });
            }
        }
    }
    Ok((out, parts))
}

#[derive(Debug, Serialize)]
pub(crate) struct SplitSummary {
    pub(crate) name: String,
    pub(crate) dataset: String,
    pub(crate) classes: Vec<String>,
    /// role -> class -> count
    pub(crate) counts: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) out: String,
    /// Where the split is not what its config asked for (a budget capped by the pool, no faces left
    /// unlabeled), in words; printed as warnings and kept in the manifest.
    pub(crate) warnings: Vec<String>,
}

pub(crate) enum SplitOutcome {
    UpToDate(PathBuf),
    Written(SplitSummary),
}

fn take_stratified(pool: &mut Vec<&Sample>, counts: &[usize], n_classes: usize) -> Vec<String> {
    let mut taken = vec![0usize; n_classes];
    let mut chosen = Vec::new();
    pool.retain(|s| {
        if taken[s.class] < counts[s.class] {
            taken[s.class] += 1;
            chosen.push(s.id.clone());
            false
        } else {
            true
        }
    });
    chosen
}

pub(crate) fn run(
    name: &str,
    cfg_path: &Path,
    shards_root: &Path,
    out_dir: &Path,
    force: bool,
) -> anyhow::Result<SplitOutcome> {
    exchange::layout::check_name("split", name)?;
    let cfg = load_config(cfg_path)?;
    exchange::layout::check_name("dataset", &cfg.dataset).with_context(|| cfg_path.display().to_string())?;
    let classes = classes(&cfg)?;
    let shard_dir = exchange::layout::shard_dir(shards_root, &cfg.dataset);
    let out = exchange::layout::split_file(out_dir, name);
    let manifest_path = exchange::layout::split_manifest(out_dir, name);

    let (samples, parts) = read_index(&shard_dir, &classes)?;
    let mut inputs = vec![InputRecord::of(cfg_path)?];
    for p in &parts {
        inputs.push(InputRecord::of(p)?);
    }
    let mut manifest = Manifest::new("split", env!("CARGO_PKG_VERSION"), &cfg, inputs)?;
    if !force && Manifest::freshness(&manifest_path, &manifest) == Freshness::UpToDate {
        return Ok(SplitOutcome::UpToDate(out));
    }

    check_sources(&cfg, &samples, cfg_path)?;
    let (role_of, mut warnings) = assign_roles(&cfg, &samples, &classes, cfg_path)?;

    let mut rows: Vec<(&Sample, Role)> =
        samples.iter().filter_map(|s| role_of.get(s.id.as_str()).map(|r| (s, *r))).collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (s, r) in &rows {
        *counts.entry(r.to_string()).or_default().entry(classes[s.class].name().to_string()).or_default() += 1;
    }
    if !counts.contains_key("labeled") {
        anyhow::bail!("{}: the labeled budget selected no samples", cfg_path.display());
    }
    if cfg.unlabeled.is_some() && !counts.contains_key("unlabeled") {
        warnings.push(
            "no face is left unlabeled: the labeled budget took every face the unlabeled role draws from \
             (semi-supervised presets will train as supervised)"
                .into(),
        );
    }
    let split_rows: Vec<SplitRow> = rows.iter().map(|(s, r)| SplitRow { id: s.id.clone(), role: *r }).collect();
    let class_names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
    let n = write_table(
        &out,
        &split_rows,
        &[
            (keys::CLASSES, class_names.join(",")),
            (keys::DATASET, cfg.dataset.clone()),
            (keys::SPLIT, name.to_string()),
        ],
    )?;
    let file_name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    manifest.add_output(out_dir, &file_name, Some(n))?;
    manifest.counts.insert("roles".into(), serde_json::to_value(&counts)?);
    if !warnings.is_empty() {
        manifest.counts.insert("warnings".into(), serde_json::to_value(&warnings)?);
    }
    manifest.write(&manifest_path)?;
    Ok(SplitOutcome::Written(SplitSummary {
        name: name.into(),
        dataset: cfg.dataset,
        classes: class_names.iter().map(|s| s.to_string()).collect(),
        counts,
        out: out.display().to_string(),
        warnings,
    }))
}

/// Every source split a role draws from exists in the dataset's shards.
fn check_sources(cfg: &SplitConfig, samples: &[Sample], cfg_path: &Path) -> anyhow::Result<()> {
    let known: HashSet<&str> = samples.iter().map(|s| s.split.as_str()).collect();
    for (role, from) in [("labeled", &cfg.labeled.from), ("val", &cfg.val.from), ("test", &cfg.test.from)]
        .into_iter()
        .chain(cfg.unlabeled.as_ref().map(|u| ("unlabeled", &u.from)))
    {
        for s in from {
            if !known.contains(s.as_str()) {
                let mut k: Vec<_> = known.iter().collect();
                k.sort();
                anyhow::bail!(
                    "{}: [{role}] takes source split `{s}`, but the {} shards have only {k:?}",
                    cfg_path.display(),
                    cfg.dataset
                );
            }
        }
    }
    Ok(())
}

/// Each face's role: test first, then val, then the labeled budget (stratified), then the unlabeled faces,
/// each drawing only from faces no earlier role took. Returns the roles and the budget's warnings.
fn assign_roles<'a>(
    cfg: &SplitConfig,
    samples: &'a [Sample],
    classes: &[Expression],
    cfg_path: &Path,
) -> anyhow::Result<(HashMap<&'a str, Role>, Vec<String>)> {
    // Sorted by id, then shuffled by the seed: independent of shard order and thread count.
    let mut order: Vec<&Sample> = samples.iter().collect();
    order.sort_by(|a, b| a.id.cmp(&b.id));
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    order.shuffle(&mut rng);
    let in_splits = |from: &[String], s: &Sample| from.contains(&s.split);
    let mut role_of: HashMap<&str, Role> = HashMap::new();

    for s in order.iter().filter(|s| in_splits(&cfg.test.from, s)) {
        role_of.insert(&s.id, Role::Test);
    }
    let free = |role_of: &HashMap<&str, Role>, from: &[String]| -> Vec<&Sample> {
        order.iter().copied().filter(|s| in_splits(from, s) && !role_of.contains_key(s.id.as_str())).collect()
    };
    let n_classes = classes.len();
    let sizes_of = |pool: &[&Sample]| {
        let mut v = vec![0usize; n_classes];
        pool.iter().for_each(|s| v[s.class] += 1);
        v
    };
    let mut pool = free(&role_of, &cfg.val.from);
    let val_ids: Vec<String> = match cfg.val.fraction {
        None => pool.iter().map(|s| s.id.clone()).collect(),
        Some(f) => {
            let sizes = sizes_of(&pool);
            let counts: Vec<usize> = sizes.iter().map(|&n| ((n as f64) * f).round() as usize).collect();
            take_stratified(&mut pool, &counts, n_classes)
        }
    };
    let val_set: HashSet<String> = val_ids.into_iter().collect();
    for s in &order {
        if val_set.contains(&s.id) {
            role_of.insert(&s.id, Role::Val);
        }
    }
    let mut pool = free(&role_of, &cfg.labeled.from);
    let counts =
        budget_counts(&cfg.labeled, classes, &sizes_of(&pool)).with_context(|| cfg_path.display().to_string())?;
    let warnings = budget_warnings(&cfg.labeled, classes, &sizes_of(&pool), &counts);
    let labeled: HashSet<String> = take_stratified(&mut pool, &counts, n_classes).into_iter().collect();
    for s in &order {
        if labeled.contains(&s.id) {
            role_of.insert(&s.id, Role::Labeled);
        }
    }
    if let Some(u) = &cfg.unlabeled {
        for s in free(&role_of, &u.from) {
            role_of.insert(&s.id, Role::Unlabeled);
        }
    }
    Ok((role_of, warnings))
}

/// What the labeled budget asked for and the pool could not give, per class (`counts` is what was drawn).
fn budget_warnings(b: &Budget, classes: &[Expression], sizes: &[usize], counts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let capped: Vec<String> = match b.per_class {
        Some(k) => (0..classes.len())
            .filter(|&i| counts[i] < k)
            .map(|i| format!("{} {} of {k}", classes[i].name(), counts[i]))
            .collect(),
        None => Vec::new(),
    };
    if !capped.is_empty() {
        out.push(format!(
            "[labeled] per_class = {}: the pool is smaller for {} (all of their faces are labeled)",
            b.per_class.unwrap_or(0),
            capped.join(", ")
        ));
    }
    if let (Some(total), None) = (b.total, b.per_class) {
        let drawn: usize = counts.iter().sum();
        if drawn < total {
            out.push(format!("[labeled] total = {total}: the pool holds only {drawn} faces, all labeled"));
        } else if b.mode == Mode::Balanced {
            let most = counts.iter().copied().max().unwrap_or(0);
            let short: Vec<String> = (0..classes.len())
                .filter(|&i| b.fixed.keys().all(|f| Expression::parse(f) != Some(classes[i])) && counts[i] < most)
                .map(|i| format!("{} {} (pool {})", classes[i].name(), counts[i], sizes[i]))
                .collect();
            if !short.is_empty() {
                out.push(format!(
                    "[labeled] mode = \"balanced\": not every class has {most} faces to give; fewer for {}",
                    short.join(", ")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_sums_and_caps() {
        assert_eq!(proportional(&[50, 30, 20], 10), vec![5, 3, 2]);
        assert_eq!(proportional(&[1, 1, 98], 10).iter().sum::<usize>(), 10);
        assert_eq!(proportional(&[3, 3], 100), vec![3, 3]);
    }

    #[test]
    fn balanced_redistributes_what_small_classes_cannot_take() {
        assert_eq!(balanced(&[100, 100, 100, 100], 100), vec![25, 25, 25, 25]);
        assert_eq!(balanced(&[5, 100, 100], 65), vec![5, 30, 30]);
        assert_eq!(balanced(&[2, 2], 10), vec![2, 2]);
    }

    #[test]
    fn a_budget_the_pool_cannot_give_is_a_warning() {
        let classes = exchange::labels::BASIC7[..3].to_vec();
        let budget = |per_class, total, mode| Budget {
            from: vec!["train".into()],
            fraction: None,
            total,
            per_class,
            mode,
            fixed: BTreeMap::new(),
        };
        let sizes = [40, 500, 600];
        let b = budget(Some(500), None, Mode::Stratified);
        let w = budget_warnings(&b, &classes, &sizes, &budget_counts(&b, &classes, &sizes).unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("per_class = 500") && w[0].contains("neutral 40 of 500"), "{w:?}");
        // 60 asked in balanced mode from classes of 16, 19 and 100: 16 + 19 + 25.
        let (sizes, b) = ([16, 19, 100], budget(None, Some(60), Mode::Balanced));
        let counts = budget_counts(&b, &classes, &sizes).unwrap();
        assert_eq!(counts, vec![16, 19, 25]);
        let w = budget_warnings(&b, &classes, &sizes, &counts);
        assert!(w.len() == 1 && w[0].contains("neutral 16 (pool 16)") && w[0].contains("happiness 19"), "{w:?}");
        let b = budget(None, Some(1000), Mode::Stratified);
        let w = budget_warnings(&b, &classes, &sizes, &budget_counts(&b, &classes, &sizes).unwrap());
        assert!(w[0].contains("total = 1000") && w[0].contains("only 135"), "{w:?}");
        let b = budget(None, Some(30), Mode::Balanced);
        assert!(budget_warnings(&b, &classes, &sizes, &budget_counts(&b, &classes, &sizes).unwrap()).is_empty());
    }

    #[test]
    fn fixed_counts_take_their_share_first() {
        let classes = exchange::labels::BASIC7.to_vec();
        let b = Budget {
            from: vec!["train".into()],
            fraction: None,
            total: Some(100),
            per_class: None,
            mode: Mode::Balanced,
            fixed: BTreeMap::from([("fear".to_string(), 10)]),
        };
        let sizes = vec![1000; 7];
        let c = budget_counts(&b, &classes, &sizes).unwrap();
        assert_eq!(c[6], 10);
        assert_eq!(c.iter().sum::<usize>(), 100);
        assert_eq!(c[0], 15);
    }

    #[test]
    fn fraction_is_per_class() {
        let b = Budget {
            from: vec![],
            fraction: Some(0.1),
            total: None,
            per_class: None,
            mode: Mode::Stratified,
            fixed: BTreeMap::new(),
        };
        let classes = exchange::labels::ALL.to_vec();
        let c = budget_counts(&b, &classes, &[1000, 500, 204, 206, 3, 0, 1, 15]).unwrap();
        assert_eq!(c, vec![100, 50, 20, 21, 1, 0, 1, 2]);
    }
}
