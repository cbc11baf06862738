//! A tiny labeled face dataset for trainings that must finish in seconds: 16 px grey faces whose class
//! decides where a bright square sits (so a few steps learn something), written as exchange files in the
//! artifacts layout — shards, a split with every role, and one-hot text prototypes for the encoders the
//! presets name.

use std::path::Path;

use exchange::parquet_io::write_table;
use exchange::schema::shard::ShardRow;
use exchange::schema::split::{Role, SplitRow};
use exchange::schema::text::PrototypeRow;
use exchange::{keys, layout};

pub const CLASSES: usize = 8;
pub const SIZE: u32 = 16;
/// The dataset name the shards and split record.
pub const DATASET: &str = "tiny";
/// The split's name (`<root>/splits/tiny.parquet`).
pub const SPLIT: &str = "tiny";

/// A PNG face of `class`; `i` adds texture so no two faces are equal.
pub fn png(class: usize, i: usize) -> Vec<u8> {
    let img = image::GrayImage::from_fn(SIZE, SIZE, |x, y| {
        let inside = (x as usize / 4 + y as usize / 8 * 4) == class;
        image::Luma([if inside { 220 } else { 40 + ((x as usize * 7 + y as usize * 3 + i) % 30) as u8 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("encoding a PNG in memory");
    out
}

/// Writes 160 faces under `root` as `shards/tiny/`, `splits/tiny.parquet` (32 labeled, 80 unlabeled, 24 val,
/// 24 test) and `text/{minilm/facs,random/template}/prototypes.parquet`. `scramble` relabels every
/// unlabeled face in the shards (a run must not see those labels).
pub fn write(root: &Path, scramble: bool) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    let mut split = Vec::new();
    for i in 0..160 {
        let class = i % CLASSES;
        let role = match i {
            0..=31 => Role::Labeled,
            32..=111 => Role::Unlabeled,
            112..=135 => Role::Val,
            _ => Role::Test,
        };
        let label = if scramble && role == Role::Unlabeled { (class * 5 + 3) % CLASSES } else { class };
        let id = format!("t{i:04}");
        shards.push(ShardRow {
            id: id.clone(),
            dataset: DATASET.into(),
            split: "train".into(),
            label: Some(label as u8),
            votes: None,
            image: png(class, i),
            height: SIZE,
            width: SIZE,
            channels: 1,
            source_path: String::new(),
        });
        split.push(SplitRow { id, role });
    }
    let shard_dir = layout::shard_dir(&root.join("shards"), DATASET);
    std::fs::create_dir_all(&shard_dir)?;
    write_table(shard_dir.join(layout::shard_part(0)), &shards, &[(keys::DATASET, DATASET.into())])?;
    let names: Vec<&str> = exchange::labels::ALL.iter().map(|e| e.name()).collect();
    std::fs::create_dir_all(root.join("splits"))?;
    write_table(
        layout::split_file(&root.join("splits"), SPLIT),
        &split,
        &[(keys::CLASSES, names.join(",")), (keys::DATASET, DATASET.into())],
    )?;
    for (enc, set, dim) in [("minilm", "facs", 12usize), ("random", "template", 512)] {
        let protos: Vec<PrototypeRow> = (0..CLASSES)
            .map(|c| {
                let mut v = vec![0.0f32; dim];
                v[c] = 1.0;
                PrototypeRow { class: c as u8, class_name: names[c].into(), n_descriptions: 1, vector: v }
            })
            .collect();
        let d = layout::text_dir(&root.join("text"), enc, set);
        std::fs::create_dir_all(&d)?;
        write_table(d.join(layout::PROTOTYPES_FILE), &protos, &[])?;
    }
    Ok(())
}
