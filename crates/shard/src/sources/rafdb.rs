//! RAF-DB (basic): `EmoLabel/list_patition_label.txt` lines `train_00001.jpg 5` (labels 1–7 = surprise, fear,
//! disgust, happiness, sadness, anger, neutral) and aligned faces `Image/aligned/train_00001_aligned.jpg`.
//! The split is the file-name prefix (`train_` / `test_`); RAF-DB has no validation split of its own
//! (split configs hold one out of train).

use std::path::Path;

use anyhow::Context;
use exchange::labels;

use super::{require_dir, require_file, stem, ImageSource, Origin, RawRecord, Scan};
use crate::issues::Issues;

const LAYOUT: &str = "RAF-DB basic: EmoLabel/list_patition_label.txt and Image/aligned/<name>_aligned.jpg";

pub(crate) fn scan(
    root: &Path,
    dataset: &str,
    limit_per_split: Option<usize>,
    issues: &mut Issues,
) -> anyhow::Result<Scan> {
    require_dir(root, LAYOUT)?;
    let list = root.join("EmoLabel").join("list_patition_label.txt");
    require_file(&list, LAYOUT)?;
    let images = root.join("Image").join("aligned");
    require_dir(&images, LAYOUT)?;
    let text = std::fs::read_to_string(&list).with_context(|| format!("{}: cannot read", list.display()))?;
    let mut scan = Scan { inputs: vec![list.clone(), images.clone()], ..Default::default() };
    let mut kept = std::collections::HashMap::<&str, usize>::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin { file: list.clone(), line: i as u64 + 1 };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(label), None) = (parts.next(), parts.next(), parts.next()) else {
            issues.bad("malformed row", format!("{origin}: expected `<image name> <label 1-7>`, found `{line}`"))?;
            continue;
        };
        let split = if name.starts_with("train") {
            "train"
        } else if name.starts_with("test") {
            "test"
        } else {
            issues
                .bad("malformed row", format!("{origin}: image name `{name}` starts with neither train_ nor test_"))?;
            continue;
        };
        let Some(class) = label.parse::<i64>().ok().and_then(labels::rafdb) else {
            issues.bad("label out of range", format!("{origin}: label `{label}` is not 1–7"))?;
            continue;
        };
        if limit_per_split.is_some_and(|n| kept.get(split).copied().unwrap_or(0) >= n) {
            continue;
        }
        *kept.entry(split).or_default() += 1;
        let file = format!("{}_aligned.jpg", stem(name));
        scan.records.push(RawRecord {
            id: format!("{dataset}/{split}/{}", stem(name)),
            split,
            label: Some(class.id()),
            votes: None,
            image: ImageSource::File(images.join(&file)),
            source_path: format!("Image/aligned/{file}"),
            origin,
        });
    }
    Ok(scan)
}
