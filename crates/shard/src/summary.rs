//! The one-screen summaries printed at the end of `shard <dataset>` and `shard split`.

use std::collections::{BTreeMap, BTreeSet};

use exchange::labels::ALL;

use crate::output::Summary;

/// Prints rows as left-aligned text columns (first row = header).
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| if c == 0 { format!("{s:<w$}", w = widths[c]) } else { format!("{s:>w$}", w = widths[c]) })
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str("  ");
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1)));
            out.push('\n');
        }
    }
    out
}

/// Split order for display: train, valid, test, then anything else.
fn split_order(splits: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = splits.collect::<BTreeSet<_>>().into_iter().collect();
    let rank =
        |s: &str| ["labeled", "unlabeled", "train", "valid", "val", "test"].iter().position(|x| *x == s).unwrap_or(6);
    v.sort_by_key(|s| (rank(s), s.clone()));
    v
}

/// Class × split counts with totals.
pub(crate) fn class_split_table(rows: &BTreeMap<String, BTreeMap<String, u64>>) -> String {
    let splits = split_order(rows.keys().cloned());
    let mut classes: Vec<String> = ALL.iter().map(|c| c.name().to_string()).collect();
    for extra in rows.values().flat_map(|m| m.keys()) {
        if !classes.contains(extra) {
            classes.push(extra.clone());
        }
    }
    let mut t =
        vec![std::iter::once("class".to_string()).chain(splits.iter().cloned()).chain(["total".into()]).collect()];
    for c in &classes {
        let counts: Vec<u64> =
            splits.iter().map(|s| rows.get(s).and_then(|m| m.get(c)).copied().unwrap_or(0)).collect();
        if counts.iter().all(|&n| n == 0) {
            continue;
        }
        let total: u64 = counts.iter().sum();
        t.push(
            std::iter::once(c.clone()).chain(counts.iter().map(u64::to_string)).chain([total.to_string()]).collect(),
        );
    }
    let col_totals: Vec<u64> = splits.iter().map(|s| rows.get(s).map(|m| m.values().sum()).unwrap_or(0)).collect();
    let all: u64 = col_totals.iter().sum();
    t.push(
        std::iter::once("total".to_string())
            .chain(col_totals.iter().map(u64::to_string))
            .chain([all.to_string()])
            .collect(),
    );
    table(&t)
}

pub(crate) fn print_shard(s: &Summary) {
    println!(
        "shard {}: {} faces in {} part(s), {:.1} MB -> {}",
        s.dataset,
        s.total_rows,
        s.parts,
        s.bytes as f64 / 1e6,
        s.out_dir
    );
    print!("{}", class_split_table(&s.rows));
    if !s.dropped.is_empty() {
        println!("  dropped by the protocol:");
        for (split, reasons) in &s.dropped {
            for (reason, n) in reasons {
                println!("    {split:<6} {reason:<32} {n:>7}");
            }
        }
    }
    if !s.skipped.is_empty() {
        println!("  skipped bad rows (--on-error skip):");
        for (reason, n) in &s.skipped {
            println!("    {reason:<39} {n:>7}");
        }
    }
    println!("  {:.2} s ({:.0} faces/s)", s.seconds, s.total_rows as f64 / s.seconds.max(1e-9));
}
