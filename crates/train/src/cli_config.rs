//! `train config`: print the resolved configuration of a preset (or one value of it), e.g. for the Makefile
//! to learn which text embeddings a preset needs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;

#[derive(ClapArgs)]
pub struct Args {
    #[arg(long, default_value = "sitfer")]
    preset: String,
    #[arg(long, default_value = "cpu")]
    scale: String,
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
    /// Print only this value (e.g. text.encoder).
    #[arg(long)]
    get: Option<String>,
    #[arg(long, default_value = "pipelines/train")]
    presets: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let cfg = train::config::resolve(&a.presets, &a.preset, &a.scale, &a.sets)?;
    let value = toml::Value::try_from(&cfg)?;
    match &a.get {
        None => print!("{}", toml::to_string_pretty(&cfg)?),
        Some(key) => {
            let mut v = &value;
            for part in key.split('.') {
                v = v.get(part).with_context(|| format!("no setting `{key}`"))?;
            }
            match v {
                toml::Value::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
        }
    }
    Ok(())
}
