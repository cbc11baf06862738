//! FERPlus (FER+ annotations of FER2013), in both layouts users have:
//!
//! * **folders**: `FER2013{Train,Valid,Test}/` with PNGs and `label.csv` rows
//!   `fer0000000.png,"(0, 0, 48, 48)",n0,…,n9` (written by Microsoft's `generate_training_data.py`);
//! * **csv**: Kaggle's `fer2013.csv` (`emotion,pixels,Usage`) joined row by row with `fer2013new.csv`
//!   (`Usage,Image name,` + 10 votes); a row with an empty image name has no FER+ label and is dropped.
//!
//! Both give identical ids (`<dataset>/<split>/<image stem>`), labels, votes and pixels. Labels follow the
//! FER+ reference code's protocols (`src/ferplus.py`, `_process_data`), implemented in [`majority`] and
//! [`probability`]; the ten raw vote counts are kept on every row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{require_dir, require_file, stem, ImageSource, Origin, RawRecord, Scan};
use crate::issues::Issues;

pub(crate) const SPLITS: [(&str, &str, &str); 3] = [
    ("train", "FER2013Train", "Training"),
    ("valid", "FER2013Valid", "PublicTest"),
    ("test", "FER2013Test", "PrivateTest"),
];

const LAYOUT: &str = "FERPlus as FER2013{Train,Valid,Test}/ folders with PNGs and label.csv, \
                      or Kaggle fer2013.csv beside fer2013new.csv";

/// Number of vote columns: 8 classes, unknown, NF.
pub(crate) const VOTES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    /// FER+ majority: the top class must hold more than half of the votes (after zeroing single votes).
    Majority,
    /// FER+ probability: up to three top classes covering ≥ 75 % of the votes; label = the largest.
    Probability,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Layout {
    Auto,
    Folders,
    Csv,
}

/// Why the protocol drops a face.
pub(crate) const DROP_NO_MAJORITY: &str = "no majority";
pub(crate) const DROP_UNKNOWN: &str = "unknown or not a face";

/// FER+ majority protocol. Returns the class (0..8) or the drop reason.
pub(crate) fn majority(votes: &[i32]) -> Result<u8, &'static str> {
    // Votes of 1 are outliers in the reference code (`<= 1 + eps` zeroed).
    let v: Vec<i64> = votes.iter().map(|&x| if x <= 1 { 0 } else { x as i64 }).collect();
    let sum: i64 = v.iter().sum();
    let max = v.iter().copied().max().unwrap_or(0);
    // `maxval > 0.5 * sum` in integers.
    if max <= 0 || 2 * max <= sum {
        return Err(DROP_NO_MAJORITY);
    }
    let arg = v.iter().position(|&x| x == max).unwrap_or(0);
    if arg >= 8 {
        return Err(DROP_UNKNOWN);
    }
    Ok(arg as u8)
}

/// FER+ probability protocol, transcribed from the reference loop (same tie handling and early stops).
pub(crate) fn probability(votes: &[i32]) -> Result<u8, &'static str> {
    let mut raw: Vec<f64> = votes.iter().map(|&x| if x <= 1 { 0.0 } else { x as f64 }).collect();
    let sum_list: f64 = raw.iter().sum();
    let mut emotion = vec![0.0f64; raw.len()];
    let (mut sum_part, mut count, mut valid) = (0.0, 0usize, true);
    while sum_part < 0.75 * sum_list && count < 3 && valid {
        let maxval = raw.iter().copied().fold(f64::MIN, f64::max);
        for i in 0..raw.len() {
            if raw[i] == maxval {
                emotion[i] = maxval;
                raw[i] = 0.0;
                sum_part += emotion[i];
                count += 1;
                if i >= 8 {
                    valid = false;
                    if emotion.iter().sum::<f64>() > maxval {
                        emotion[i] = 0.0;
                        count -= 1;
                    }
                    break;
                }
            }
        }
    }
    let total: f64 = emotion.iter().sum();
    if total <= 0.5 * sum_list || count > 3 || total <= 0.0 {
        return Err(DROP_NO_MAJORITY);
    }
    let max = emotion.iter().copied().fold(f64::MIN, f64::max);
    let arg = emotion.iter().position(|&x| x == max).unwrap_or(0);
    if arg >= 8 {
        return Err(DROP_UNKNOWN);
    }
    Ok(arg as u8)
}

fn apply(protocol: Protocol, votes: &[i32]) -> Result<u8, &'static str> {
    match protocol {
        Protocol::Majority => majority(votes),
        Protocol::Probability => probability(votes),
    }
}

/// The largest vote count accepted: FER+ had 10 annotators per face; crowd relabelings with more stay far
/// below this. A larger number is a corrupt row, not a vote.
pub(crate) const MAX_VOTES: i32 = 1000;

/// Parses ten vote counts; an error names the field when it is not an integer in `0..=MAX_VOTES`.
fn parse_votes(fields: &[&str]) -> Result<Vec<i32>, String> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.trim();
            // generate_training_data.py writes ints; some copies carry floats like "4.0".
            let v =
                f.parse::<i128>().ok().map(|x| x as f64).or_else(|| f.parse::<f64>().ok().filter(|x| x.fract() == 0.0));
            match v {
                Some(v) if v < 0.0 => Err(format!("vote count {} is negative ({f})", i + 1)),
                Some(v) if v > f64::from(MAX_VOTES) => {
                    Err(format!("vote count {} is {f}, more than the {MAX_VOTES} votes a face can have", i + 1))
                }
                Some(v) => Ok(v as i32),
                None => Err(format!("vote count {} is not a number: `{f}`", i + 1)),
            }
        })
        .collect()
}

pub(crate) struct Options<'a> {
    pub(crate) dataset: &'a str,
    pub(crate) layout: Layout,
    pub(crate) protocol: Protocol,
    /// Keep at most this many rows per split (tests, quick looks); `None` = all.
    pub(crate) limit_per_split: Option<usize>,
}

pub(crate) fn detect(root: &Path) -> anyhow::Result<Layout> {
    if root.join(SPLITS[0].1).is_dir() {
        Ok(Layout::Folders)
    } else if root.join("fer2013.csv").is_file() {
        Ok(Layout::Csv)
    } else {
        require_dir(root, LAYOUT)?;
        anyhow::bail!("{}: neither FER2013Train/ nor fer2013.csv found; expected {LAYOUT}", root.display())
    }
}

pub(crate) fn scan(root: &Path, opts: &Options, issues: &mut Issues) -> anyhow::Result<Scan> {
    let layout = match opts.layout {
        Layout::Auto => detect(root)?,
        l => l,
    };
    match layout {
        Layout::Folders => scan_folders(root, opts, issues),
        Layout::Csv | Layout::Auto => scan_csv(root, opts, issues),
    }
}

fn csv_reader(path: &Path, headers: bool) -> anyhow::Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .has_headers(headers)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("{}: cannot open", path.display()))
}

fn scan_folders(root: &Path, opts: &Options, issues: &mut Issues) -> anyhow::Result<Scan> {
    let mut scan = Scan::default();
    for (split, folder, _) in SPLITS {
        let dir = root.join(folder);
        require_dir(&dir, LAYOUT)?;
        let label_csv = dir.join("label.csv");
        require_file(&label_csv, "label.csv rows `fer0000000.png,\"(0, 0, 48, 48)\",n0,…,n9`")?;
        scan.inputs.push(dir.clone());
        let mut kept = 0usize;
        let mut rows = 0usize;
        for (i, rec) in csv_reader(&label_csv, false)?.into_records().enumerate() {
            rows += 1;
            if opts.limit_per_split.is_some_and(|n| kept >= n) {
                break;
            }
            let origin = Origin { file: label_csv.clone(), line: i as u64 + 1 };
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    issues.bad("malformed row", format!("{origin}: malformed CSV row: {e}"))?;
                    continue;
                }
            };
            let fields: Vec<&str> = rec.iter().collect();
            if fields.len() != 2 + VOTES {
                issues.bad(
                    "malformed row",
                    format!(
                        "{origin}: expected 12 fields (image name, face box, 10 vote counts), found {}",
                        fields.len()
                    ),
                )?;
                continue;
            }
            let name = fields[0].trim();
            if name.is_empty() {
                issues.bad("malformed row", format!("{origin}: empty image name"))?;
                continue;
            }
            let votes = match parse_votes(&fields[2..]) {
                Ok(v) => v,
                Err(m) => {
                    issues.bad("bad vote count", format!("{origin}: {m}"))?;
                    continue;
                }
            };
            match apply(opts.protocol, &votes) {
                Err(reason) => scan.drop_row(split, reason),
                Ok(label) => {
                    kept += 1;
                    scan.records.push(RawRecord {
                        id: format!("{}/{split}/{}", opts.dataset, stem(name)),
                        split,
                        label: Some(label),
                        votes: Some(votes),
                        image: ImageSource::File(dir.join(name)),
                        source_path: format!("{folder}/{name}"),
                        origin,
                    });
                }
            }
        }
        // An empty label file is a copy or download gone wrong, not a partition with no faces: without this
        // the shards would lack the partition and only the split would complain, far from the cause.
        if rows == 0 {
            anyhow::bail!(
                "{}: no rows; expected one row per image of {folder} (`fer0000000.png,\"(0, 0, 48, 48)\",n0,…,n9`)",
                label_csv.display()
            );
        }
    }
    Ok(scan)
}

fn scan_csv(root: &Path, opts: &Options, issues: &mut Issues) -> anyhow::Result<Scan> {
    let pixels_csv = root.join("fer2013.csv");
    let votes_csv = root.join("fer2013new.csv");
    require_file(&pixels_csv, LAYOUT)?;
    require_file(&votes_csv, "fer2013new.csv (the FER+ votes) beside fer2013.csv")?;
    let mut scan = Scan { inputs: vec![pixels_csv.clone(), votes_csv.clone()], ..Default::default() };
    let mut px = csv_reader(&pixels_csv, true)?;
    let mut vt = csv_reader(&votes_csv, true)?;
    let col = |h: &csv::StringRecord, name: &str, file: &PathBuf| {
        h.iter()
            .position(|c| c.trim() == name)
            .with_context(|| format!("{}: no `{name}` column in the header", file.display()))
    };
    let ph = px.headers()?.clone();
    let vh = vt.headers()?.clone();
    let v_name = col(&vh, "Image name", &votes_csv)?;
    let cols = Columns {
        pixels: col(&ph, "pixels", &pixels_csv)?,
        usage: col(&ph, "Usage", &pixels_csv)?,
        v_usage: col(&vh, "Usage", &votes_csv)?,
        v_name,
        v_first: v_name + 1,
    };
    let mut kept = HashMap::<&'static str, usize>::new();
    let mut px_rows = px.into_records();
    let mut vt_rows = vt.into_records();
    let mut line = 1u64;
    loop {
        line += 1;
        let (p, v) = match (px_rows.next(), vt_rows.next()) {
            (None, None) => break,
            (Some(_), None) | (None, Some(_)) => anyhow::bail!(
                "{} and {} have different numbers of rows (they differ from line {line}); they must be the same \
                 FER2013 row order",
                pixels_csv.display(),
                votes_csv.display()
            ),
            (Some(p), Some(v)) => (p, v),
        };
        let origin = Origin { file: pixels_csv.clone(), line };
        let vorigin = Origin { file: votes_csv.clone(), line };
        let (p, v) = match (p, v) {
            (Ok(p), Ok(v)) => (p, v),
            (Err(e), _) => {
                issues.bad("malformed row", format!("{origin}: malformed CSV row: {e}"))?;
                continue;
            }
            (_, Err(e)) => {
                issues.bad("malformed row", format!("{vorigin}: malformed CSV row: {e}"))?;
                continue;
            }
        };
        read_row((&p, &v), &cols, (origin, vorigin), opts, issues, &mut scan, &mut kept)?;
    }
    // Folder layout lists splits in order; keep the same order here so both layouts write identical shards.
    scan.records.sort_by_key(|r| SPLITS.iter().position(|s| s.0 == r.split));
    Ok(scan)
}

/// Where the two Kaggle files keep what the reader needs.
struct Columns {
    pixels: usize,
    usage: usize,
    v_usage: usize,
    v_name: usize,
    v_first: usize,
}

/// One aligned pair of rows (`fer2013.csv`'s pixels, `fer2013new.csv`'s votes): a record, a dropped row, or
/// an issue naming the line.
fn read_row(
    (p, v): (&csv::StringRecord, &csv::StringRecord),
    cols: &Columns,
    (origin, vorigin): (Origin, Origin),
    opts: &Options,
    issues: &mut Issues,
    scan: &mut Scan,
    kept: &mut HashMap<&'static str, usize>,
) -> anyhow::Result<()> {
    if v.len() < cols.v_first + VOTES || p.len() <= cols.pixels.max(cols.usage) {
        issues.bad("malformed row", format!("{origin} / {vorigin}: too few fields"))?;
        return Ok(());
    }
    let usage = p.get(cols.usage).unwrap_or("").trim();
    let Some(&(split, _, _)) = SPLITS.iter().find(|s| s.2 == usage) else {
        issues.bad("malformed row", format!("{origin}: Usage `{usage}` is not Training, PublicTest or PrivateTest"))?;
        return Ok(());
    };
    if v.get(cols.v_usage).unwrap_or("").trim() != usage {
        issues.bad("malformed row", format!("{vorigin}: Usage differs from {origin}; the files are not aligned"))?;
        return Ok(());
    }
    let name = v.get(cols.v_name).unwrap_or("").trim();
    if name.is_empty() {
        scan.drop_row(split, "no FER+ image (empty name)");
        return Ok(());
    }
    if opts.limit_per_split.is_some_and(|n| kept.get(split).copied().unwrap_or(0) >= n) {
        return Ok(());
    }
    let fields: Vec<&str> = v.iter().skip(cols.v_first).take(VOTES).collect();
    let votes = match parse_votes(&fields) {
        Ok(x) => x,
        Err(m) => {
            issues.bad("bad vote count", format!("{vorigin}: {m}"))?;
            return Ok(());
        }
    };
    let text = p.get(cols.pixels).unwrap_or("");
    let pixels: Result<Vec<u8>, _> = text.split_ascii_whitespace().map(str::parse::<u8>).collect();
    let pixels = match pixels {
        Ok(px) if px.len() == 48 * 48 => px,
        Ok(px) => {
            issues.bad("bad image", format!("{origin}: expected 2304 pixels (48x48), found {}", px.len()))?;
            return Ok(());
        }
        Err(_) => {
            issues.bad("bad image", format!("{origin}: pixels must be integers 0–255 separated by spaces"))?;
            return Ok(());
        }
    };
    match apply(opts.protocol, &votes) {
        Err(reason) => scan.drop_row(split, reason),
        Ok(label) => {
            *kept.entry(split).or_default() += 1;
            scan.records.push(RawRecord {
                id: format!("{}/{split}/{}", opts.dataset, stem(name)),
                split,
                label: Some(label),
                votes: Some(votes),
                image: ImageSource::Grey { width: 48, height: 48, pixels },
                source_path: format!("fer2013.csv:{}", origin.line),
                origin,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_follows_the_reference() {
        // fer0000000: 4 neutral, 1 sadness (zeroed), 3 anger, 2 disgust -> 4 of 9 is not > half -> dropped
        assert_eq!(majority(&[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]), Err(DROP_NO_MAJORITY));
        // fer0000001: 6 neutral, 1,1 zeroed, 2 unknown -> 6 of 8 -> neutral
        assert_eq!(majority(&[6, 0, 1, 1, 0, 0, 0, 0, 2, 0]), Ok(0));
        assert_eq!(majority(&[0, 0, 0, 0, 0, 0, 0, 0, 6, 4]), Err(DROP_UNKNOWN));
        assert_eq!(majority(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 10]), Err(DROP_UNKNOWN));
        assert_eq!(majority(&[5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), Err(DROP_NO_MAJORITY));
        assert_eq!(majority(&[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), Err(DROP_NO_MAJORITY));
        assert_eq!(majority(&[0, 0, 0, 0, 0, 0, 0, 3, 0, 0]), Ok(7));
    }

    #[test]
    fn probability_follows_the_reference() {
        // 4+3 of 9 = 7 < 6.75? no: 7 >= 6.75 stops; 7 > 4.5 -> kept, label = neutral
        assert_eq!(probability(&[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]), Ok(0));
        // tie between two classes: both taken, label = first (np.argmax)
        assert_eq!(probability(&[5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), Ok(0));
        // unknown ties with an emotion in the second round: unknown removed, the emotions kept (9 of 12)
        assert_eq!(probability(&[6, 3, 0, 0, 0, 0, 0, 0, 3, 0]), Ok(0));
        // unknown ties with the top class: only half the votes are emotions -> dropped
        assert_eq!(probability(&[4, 0, 0, 0, 0, 0, 0, 0, 4, 2]), Err(DROP_NO_MAJORITY));
        // four-way spread of 2s: count would exceed 3 -> dropped
        assert_eq!(probability(&[2, 2, 2, 2, 2, 0, 0, 0, 0, 0]), Err(DROP_NO_MAJORITY));
        assert_eq!(probability(&[0, 0, 0, 0, 0, 0, 0, 0, 10, 0]), Err(DROP_UNKNOWN));
    }

    #[test]
    fn votes_must_be_numbers() {
        assert!(parse_votes(&["1", "x"]).unwrap_err().contains("not a number: `x`"));
        assert!(parse_votes(&["1", "-2"]).unwrap_err().contains("negative"));
        assert_eq!(parse_votes(&["4.0", " 2"]).unwrap(), vec![4, 2]);
        let e = parse_votes(&["1", "99999999999999999999"]).unwrap_err();
        assert!(e.contains("vote count 2 is 99999999999999999999, more than the 1000"), "{e}");
        assert!(parse_votes(&["1e30"]).unwrap_err().contains("more than"));
    }
}
