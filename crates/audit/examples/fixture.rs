//! Writes a synthetic run folder (shards, split, run.json, pseudo-labels) for trying audit without a
//! training run, and for the 1M-row benchmark:
//!
//!     cargo run --release -p audit --example fixture -- OUT_DIR [UNLABELED_ROWS] [EPOCHS] [mean-prob|weighted-logit]
//!
//! The run lands in OUT_DIR/runs/fixture.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        anyhow::bail!("usage: fixture OUT_DIR [UNLABELED_ROWS=100000] [EPOCHS=1] [FUSION=mean-prob]");
    };
    let rows: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let epochs: u32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let fusion = match args.get(4).map(String::as_str) {
        None | Some("mean-prob") => exchange::fusion::FusionMode::MeanProb,
        Some("weighted-logit") => exchange::fusion::FusionMode::WeightedLogit,
        Some(other) => anyhow::bail!("fusion {other:?}: expected mean-prob or weighted-logit"),
    };
    let spec = test_support::audit_run::FixtureSpec { unlabeled: rows, labeled: rows / 9, epochs, seed: 1, fusion };
    let dir = test_support::audit_run::write(std::path::Path::new(out), "fixture", &spec)?;
    println!("{}", dir.display());
    Ok(())
}
