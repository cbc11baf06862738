//! AffectNet: `training.csv` and `validation.csv` with columns `subDirectory_filePath,face_x,face_y,
//! face_width,face_height,facial_landmarks,expression,valence,arousal`; images under
//! `Manually_Annotated_Images/` (or the root). Faces are cropped by their box. Expression ids 8–10 (none,
//! uncertain, no-face) are dropped by every protocol, contempt (7) by the 7-class one; drops are counted.
//! `validation.csv` becomes split `valid` (the usual AffectNet test set; split configs say which role).

use std::path::Path;

use anyhow::Context;
use exchange::labels::{self, AffectNetLabel};

use super::{require_dir, require_file, stem, ImageSource, Origin, RawRecord, Scan};
use crate::issues::Issues;

const LAYOUT: &str = "AffectNet: training.csv, validation.csv and Manually_Annotated_Images/<subDirectory_filePath>";

pub(crate) fn scan(
    root: &Path,
    dataset: &str,
    classes: usize,
    limit_per_split: Option<usize>,
    issues: &mut Issues,
) -> anyhow::Result<Scan> {
    require_dir(root, LAYOUT)?;
    if classes != 7 && classes != 8 {
        anyhow::bail!("AffectNet protocol must have 7 or 8 classes, not {classes}");
    }
    let images = if root.join("Manually_Annotated_Images").is_dir() {
        root.join("Manually_Annotated_Images")
    } else {
        root.to_path_buf()
    };
    let mut scan = Scan::default();
    for (file, split) in [("training.csv", "train"), ("validation.csv", "valid")] {
        let path = root.join(file);
        require_file(&path, LAYOUT)?;
        scan.inputs.push(path.clone());
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let Columns { path: c_path, x: c_x, y: c_y, w: c_w, h: c_h, expr: c_expr } =
            Columns::of(&rdr.headers()?.clone(), &path)?;
        let mut kept = 0usize;
        for (i, rec) in rdr.into_records().enumerate() {
            let origin = Origin { file: path.clone(), line: i as u64 + 2 };
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    issues.bad("malformed row", format!("{origin}: malformed CSV row: {e}"))?;
                    continue;
                }
            };
            let get = |c: usize| rec.get(c).unwrap_or("").trim();
            let num = |c: usize| get(c).parse::<f64>().ok().map(|v| v.round() as i64);
            let (Some(x), Some(y), Some(w), Some(hh), Some(expr)) =
                (num(c_x), num(c_y), num(c_w), num(c_h), num(c_expr))
            else {
                issues.bad("malformed row", format!("{origin}: face box and expression must be numbers"))?;
                continue;
            };
            let Some(class) = class_of(expr, classes, split, &origin, &mut scan, issues)? else { continue };
            if w <= 0 || hh <= 0 {
                issues.bad("malformed row", format!("{origin}: face box {w}x{hh} is empty"))?;
                continue;
            }
            if limit_per_split.is_some_and(|n| kept >= n) {
                break;
            }
            kept += 1;
            let rel = get(c_path).to_string();
            let sub = rel.replace('\\', "/");
            let id_part =
                sub.rsplit_once('/').map(|(d, f)| format!("{d}_{}", stem(f))).unwrap_or_else(|| stem(&sub).to_string());
            scan.records.push(RawRecord {
                id: format!("{dataset}/{split}/{id_part}"),
                split,
                label: Some(class.id()),
                votes: None,
                image: ImageSource::FileCrop { path: images.join(&sub), x, y, w, h: hh },
                source_path: sub,
                origin,
            });
        }
    }
    scan.inputs.push(images);
    Ok(scan)
}

/// The header's positions of the columns the reader uses.
struct Columns {
    path: usize,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    expr: usize,
}

impl Columns {
    fn of(h: &csv::StringRecord, path: &Path) -> anyhow::Result<Columns> {
        let col = |name: &str| {
            h.iter()
                .position(|c| c.trim() == name)
                .with_context(|| format!("{}: no `{name}` column in the header", path.display()))
        };
        Ok(Columns {
            path: col("subDirectory_filePath")?,
            x: col("face_x")?,
            y: col("face_y")?,
            w: col("face_width")?,
            h: col("face_height")?,
            expr: col("expression")?,
        })
    }
}

/// The class of expression id `expr` under the protocol; `None` when the row is dropped (counted in `scan`)
/// or is an issue.
fn class_of(
    expr: i64,
    classes: usize,
    split: &'static str,
    origin: &Origin,
    scan: &mut Scan,
    issues: &mut Issues,
) -> anyhow::Result<Option<exchange::Expression>> {
    Ok(match labels::affectnet(expr, classes) {
        None => {
            issues.bad("label out of range", format!("{origin}: expression {expr} is not 0–10"))?;
            None
        }
        Some(AffectNetLabel::NotAnExpression(why)) => {
            scan.drop_row(split, format!("expression {why}"));
            None
        }
        Some(AffectNetLabel::OutsideProtocol) => {
            scan.drop_row(split, "contempt (7-class protocol)");
            None
        }
        Some(AffectNetLabel::Class(c)) => Some(c),
    })
}
