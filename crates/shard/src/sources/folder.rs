//! Image-folder datasets (SFEW 2.0, CK+, anything sorted by hand): `<root>/<split>/<ClassName>/*.{png,jpg}`.
//! Split folders may be named train/Train/training, val/valid/Val/validation, test/Test; class folders by
//! any name [`exchange::Expression::parse`] knows (`Angry`, `Happy`, `Surprised` …).

use std::path::Path;

use exchange::Expression;

use super::{require_dir, stem, ImageSource, Origin, RawRecord, Scan};
use crate::issues::Issues;

const LAYOUT: &str = "<root>/<train|val|test>/<ClassName>/*.png|jpg";

fn split_of(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "train" | "training" => Some("train"),
        "val" | "valid" | "validation" => Some("valid"),
        "test" | "testing" => Some("test"),
        _ => None,
    }
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<std::fs::DirEntry>> {
    let mut v = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

pub(crate) fn scan(
    root: &Path,
    dataset: &str,
    limit_per_split: Option<usize>,
    issues: &mut Issues,
) -> anyhow::Result<Scan> {
    require_dir(root, LAYOUT)?;
    let mut scan = Scan { inputs: vec![root.to_path_buf()], ..Default::default() };
    let mut found_split = false;
    for split_dir in sorted_entries(root)? {
        let sname = split_dir.file_name().to_string_lossy().into_owned();
        let Some(split) = split_of(&sname) else { continue };
        if !split_dir.path().is_dir() {
            continue;
        }
        found_split = true;
        let mut kept = 0usize;
        for class_dir in sorted_entries(&split_dir.path())? {
            if !class_dir.path().is_dir() {
                continue;
            }
            let cname = class_dir.file_name().to_string_lossy().into_owned();
            let Some(class) = Expression::parse(&cname) else {
                anyhow::bail!(
                    "{}: class folder `{cname}` is not an expression name (known: neutral, happy, surprise, sad, angry, \
                     disgust, fear, contempt and their usual spellings)",
                    class_dir.path().display()
                );
            };
            for (i, f) in sorted_entries(&class_dir.path())?.into_iter().enumerate() {
                let fname = f.file_name().to_string_lossy().into_owned();
                if !exchange::layout::is_image_file(&fname) {
                    continue;
                }
                if limit_per_split.is_some_and(|n| kept >= n) {
                    break;
                }
                kept += 1;
                scan.records.push(RawRecord {
                    id: format!("{dataset}/{split}/{}/{}", class.name(), stem(&fname)),
                    split,
                    label: Some(class.id()),
                    votes: None,
                    image: ImageSource::File(f.path()),
                    source_path: format!("{sname}/{cname}/{fname}"),
                    origin: Origin { file: class_dir.path(), line: i as u64 + 1 },
                });
            }
        }
    }
    if !found_split {
        issues.bad("layout", format!("{}: no train/val/test folders found; expected {LAYOUT}", root.display()))?;
    }
    Ok(scan)
}
