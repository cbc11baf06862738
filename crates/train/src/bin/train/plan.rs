//! `train plan`: what a run needs and what it is called, before anything is trained, so scripts and the
//! Makefile ask the trainer instead of keeping copies of its rules (the run id's format, which text
//! prototypes a preset reads).

use anyhow::bail;
use clap::Args as ClapArgs;
use serde::Serialize;

#[derive(ClapArgs)]
pub struct Args {
    /// The arguments `train run` would be given (the split need not exist yet).
    #[command(flatten)]
    run: crate::config::RunArgs,
    /// Print only this value (run_id, run_dir, text, text_encoder, text_set).
    #[arg(long, conflicts_with = "json")]
    get: Option<String>,
    /// Print the plan as one JSON object.
    #[arg(long)]
    json: bool,
}

/// A run's plan. Without `--get` or `--json` it prints as `key=value` lines a shell can `eval`.
#[derive(Serialize)]
struct Plan {
    run_id: String,
    run_dir: String,
    /// Whether the preset reads text prototypes (then `embed-text --encoder <text_encoder> --set <text_set>`
    /// must have made them).
    text: bool,
    text_encoder: String,
    text_set: String,
}

impl Plan {
    fn fields(&self) -> [(&'static str, String); 5] {
        [
            ("run_id", self.run_id.clone()),
            ("run_dir", self.run_dir.clone()),
            ("text", self.text.to_string()),
            ("text_encoder", self.text_encoder.clone()),
            ("text_set", self.text_set.clone()),
        ]
    }
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let cfg = a.run.preset.resolve()?;
    let (run_id, run_dir) = a.run.run_folder()?;
    let plan = Plan {
        run_id,
        run_dir: run_dir.display().to_string(),
        text: cfg.method.levels.text,
        text_encoder: cfg.text.encoder.clone(),
        text_set: cfg.text.set.clone(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let fields = plan.fields();
    if let Some(key) = &a.get {
        let Some((_, value)) = fields.iter().find(|(k, _)| k == key) else {
            let keys: Vec<_> = fields.iter().map(|(k, _)| *k).collect();
            bail!("no plan value `{key}` (expected one of {})", keys.join(", "));
        };
        println!("{value}");
        return Ok(());
    }
    for (key, value) in fields {
        println!("{key}={}", shell_quoted(&value));
    }
    Ok(())
}

/// `value` as one shell word: as it is when it is plain, else single-quoted.
fn shell_quoted(value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:+".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quoted;

    #[test]
    fn odd_values_become_one_shell_word() {
        assert_eq!(shell_quoted("ferplus_10pct-sitfer-cpu-s0"), "ferplus_10pct-sitfer-cpu-s0");
        assert_eq!(shell_quoted("my runs/it's"), r"'my runs/it'\''s'");
        assert_eq!(shell_quoted(""), "''");
    }
}
