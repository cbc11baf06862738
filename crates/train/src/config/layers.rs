//! How a run's configuration is put together from its layers (defaults, method preset, scale preset,
//! `--set` overrides), how each layer's keys are checked (typos, moved keys) and how a saved config written
//! before `[method]` was grouped is read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use super::method::MOVED;
use super::{list, Config};

/// Deep-merges `over` into `base` (tables merge key by key, everything else replaces).
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn read_toml(path: &Path, what: &str) -> anyhow::Result<toml::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{what} {} not found", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))
}

/// `section.key=value` into a one-key TOML table; the value is parsed as TOML, else taken as a string.
fn override_value(spec: &str) -> anyhow::Result<toml::Value> {
    let (key, raw) = spec.split_once('=').with_context(|| format!("--set {spec:?}: expected section.key=value"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut v = value;
    for part in key.trim().split('.').rev() {
        let mut t = toml::Table::new();
        t.insert(part.to_string(), v);
        v = toml::Value::Table(t);
    }
    Ok(v)
}

/// Resolves preset + scale + overrides from `dir` (normally `pipelines/train`).
pub fn resolve(dir: &Path, preset: &str, scale: &str, overrides: &[String]) -> anyhow::Result<Config> {
    let mut value = toml::Value::try_from(Config::default())?;
    let preset_path = exchange::layout::train_preset(dir, preset);
    if !preset_path.is_file() {
        bail!("preset {preset:?}: no {} (presets: {})", preset_path.display(), list(dir).join(", "));
    }
    let scale_path: PathBuf = exchange::layout::scale_preset(dir, scale);
    for (path, what) in [(&preset_path, "preset"), (&scale_path, "scale preset")] {
        let layer = read_toml(path, what)?;
        check_keys(&value, &layer, &path.display().to_string())?;
        merge(&mut value, layer);
    }
    for spec in overrides {
        let layer = override_value(spec)?;
        check_keys(&value, &layer, &format!("--set {spec}"))?;
        merge(&mut value, layer);
    }
    merge(&mut value, toml::Value::try_from(Names { preset: preset.into(), scale: scale.into() })?);
    let config: Config = value.try_into().context("resolving the run configuration")?;
    config.validate()?;
    Ok(config)
}

#[derive(Serialize)]
struct Names {
    preset: String,
    scale: String,
}

/// Every key of `layer` must exist in `base` (a typo would otherwise be silently ignored); a key that moved
/// ([`MOVED`]) is refused with its new name.
fn check_keys(base: &toml::Value, layer: &toml::Value, origin: &str) -> anyhow::Result<()> {
    fn walk(base: &toml::Value, layer: &toml::Value, prefix: &str, origin: &str) -> anyhow::Result<()> {
        if let (toml::Value::Table(b), toml::Value::Table(l)) = (base, layer) {
            for (k, v) in l {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if let Some(new) = moved(&key, b.get(k), v) {
                    bail!(
                        "{origin}: `{key}` has moved to `{new}` ([method] is grouped by concern: levels, fusion, \
                         selection, losses, released_code; docs/pipeline.md#configuration)"
                    );
                }
                match b.get(k) {
                    None => bail!(
                        "{origin}: unknown setting `{key}`{} (known here: {})",
                        closest(b, k, prefix).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default(),
                        b.keys()
                            .map(|k| if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(bv) => walk(bv, v, &key, origin)?,
                }
            }
        }
        Ok(())
    }
    walk(base, layer, "", origin)
}

/// The setting under `table` (at any depth) whose last name is nearest to the mistyped `name`, within two edits.
fn closest(table: &toml::Table, name: &str, prefix: &str) -> Option<String> {
    fn leaves(t: &toml::Table, path: &str, out: &mut Vec<(String, String)>) {
        for (k, v) in t {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            match v.as_table() {
                Some(sub) => leaves(sub, &p, out),
                None => out.push((k.clone(), p)),
            }
        }
    }
    let mut all = Vec::new();
    leaves(table, prefix, &mut all);
    all.into_iter()
        .map(|(leaf, path)| (strsim::levenshtein(&leaf, name), path))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, path)| path)
}

/// The new name of `key` when it is one of the old flat `[method]` keys: absent from the new layout, or (as
/// `method.fusion`, now a table) given a plain value where a table is expected.
fn moved(key: &str, now: Option<&toml::Value>, given: &toml::Value) -> Option<&'static str> {
    let (_, new) = MOVED.iter().find(|(old, _)| *old == key)?;
    match now {
        Some(toml::Value::Table(_)) if given.is_table() => None,
        Some(toml::Value::Table(_)) | None => Some(new),
        Some(_) => None,
    }
}

/// Rewrites a saved config's old flat `[method]` keys to their grouped places, so run folders and snapshots
/// written before the grouping still load; configs a person writes are refused instead ([`check_keys`]).
/// Every old value is taken out before any group is made: an old key can share its name with a group (the
/// old `fusion` string and the new `[method.fusion]`), so the order of [`MOVED`] does not matter.
fn upgrade_saved(value: &mut toml::Value) {
    upgrade_with(value, MOVED.iter());
}

/// [`upgrade_saved`] along the map `moved` (old key, new key), in the order given.
fn upgrade_with<'m>(value: &mut toml::Value, moved: impl Iterator<Item = &'m (&'m str, &'m str)>) {
    let Some(method) = value.get_mut("method").and_then(toml::Value::as_table_mut) else { return };
    let mut moving = Vec::new();
    for (old, new) in moved {
        let (Some(old), Some((group, key))) =
            (old.strip_prefix("method."), new.strip_prefix("method.").and_then(|n| n.split_once('.')))
        else {
            continue;
        };
        if method.get(old).is_some_and(|v| !v.is_table()) {
            moving.push((group, key, method.remove(old).expect("present")));
        }
    }
    for (group, key, v) in moving {
        let slot = method.entry(group).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(t) = slot.as_table_mut() {
            t.insert(key.to_string(), v);
        }
    }
}

impl Config {
    /// A config a run saved (its folder's `config.toml`), in this layout or the one before `[method]` was
    /// grouped.
    pub fn from_saved_toml(text: &str) -> anyhow::Result<Config> {
        let mut value: toml::Value = toml::from_str(text).context("not valid TOML")?;
        upgrade_saved(&mut value);
        value.try_into().context("not a config this build of train reads")
    }

    /// The config a snapshot's model card holds (JSON), in this layout or the one before the grouping.
    pub(crate) fn from_saved_json(json: &serde_json::Value) -> anyhow::Result<Config> {
        let mut value = toml::Value::try_from(json).context("the model card's config is not a table")?;
        upgrade_saved(&mut value);
        value.try_into().context("the model card's config is not one this build of train reads")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The old flat `fusion` string shares its name with the new `[method.fusion]` group: whichever of the
    /// two moves is listed first, the saved weights and the mode both arrive.
    #[test]
    fn the_saved_config_upgrade_does_not_depend_on_the_order_of_the_moves() {
        let old = "[method]\nfusion = \"weighted-logit\"\nweights = [0.3, 0.2, 0.5]\nthreshold = 0.9\n";
        let upgrade = |moved: Vec<&(&str, &str)>| {
            let mut v: toml::Value = toml::from_str(old).unwrap();
            upgrade_with(&mut v, moved.into_iter());
            v
        };
        let forward = upgrade(MOVED.iter().collect());
        let backward = upgrade(MOVED.iter().rev().collect());
        assert_eq!(forward, backward);
        let want: toml::Value = toml::from_str(
            "[method.fusion]\nmode = \"weighted-logit\"\nweights = [0.3, 0.2, 0.5]\n[method.selection]\nthreshold = 0.9\n",
        )
        .unwrap();
        assert_eq!(forward, want);
    }
}
