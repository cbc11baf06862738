//! `train augment-preview`: a PNG grid for eyeballing the augmentations — per row one labeled face: the
//! original, then weak views, then strong views (RandAugment + Cutout + weak).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use train::data::augment::Img;
use train::data::loader;
use train::data::views::{render_image, Plan};

#[derive(ClapArgs)]
pub struct Args {
    /// Split name (artifacts/splits/<name>.parquet) or a split file.
    #[arg(long, default_value = "synthetic_10pct")]
    split: String,
    /// Shard folder (default: artifacts/shards/<the dataset the split file names>).
    #[arg(long)]
    shards: Option<PathBuf>,
    /// Input size the faces are resized to (as in training).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Faces (rows) in the grid.
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Weak and strong views per face.
    #[arg(long, default_value_t = 4)]
    views: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "artifacts/augment-preview.png")]
    out: PathBuf,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let train::run::inputs::SplitInputs { split, shards, .. } =
        train::run::inputs::resolve_split(&a.split, a.shards.as_deref())?;
    let data = loader::load(&shards, &split, a.size)?;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let s = a.size as usize;
    let cols = 1 + 2 * a.views;
    let rows = a.rows.min(data.labeled.images.len());
    let gap = 2;
    let mut canvas =
        image::RgbImage::from_pixel(((s + gap) * cols) as u32, ((s + gap) * rows) as u32, image::Rgb([255, 255, 255]));
    let pad = (s / 16).max(1);
    for r in 0..rows {
        let img = &data.labeled.images[r * data.labeled.images.len() / rows];
        let mut tiles: Vec<Img> = vec![img.clone()];
        tiles.extend((0..a.views).map(|_| render_image(img, &Plan::weak(pad, &mut rng))));
        tiles.extend((0..a.views).map(|_| render_image(img, &Plan::strong(img.w, img.h, pad, &mut rng))));
        for (c, t) in tiles.iter().enumerate() {
            for y in 0..t.h {
                for x in 0..t.w {
                    let p = &t.data[(y * t.w + x) * t.c..(y * t.w + x + 1) * t.c];
                    let rgb = if t.c == 1 { [p[0]; 3] } else { [p[0], p[1], p[2]] };
                    canvas.put_pixel((c * (s + gap) + x) as u32, (r * (s + gap) + y) as u32, image::Rgb(rgb));
                }
            }
        }
    }
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    canvas.save(&a.out).with_context(|| format!("writing {}", a.out.display()))?;
    println!("augment-preview: {} ({rows} faces: original | {} weak | {} strong)", a.out.display(), a.views, a.views);
    Ok(())
}
