//! Machine-readable outputs: `summary.json` (the whole report) and `summary.parquet`, a long table
//! (run, epoch, level, metric, class, value) that a notebook filters and pivots with polars or pandas.

use std::path::Path;

use polars::prelude::*;

use super::RunReport;

pub fn long_rows(r: &RunReport) -> DataFrame {
    let mut run = Vec::new();
    let mut epoch = Vec::new();
    let mut level = Vec::new();
    let mut metric = Vec::new();
    let mut class: Vec<Option<String>> = Vec::new();
    let mut value: Vec<Option<f64>> = Vec::new();
    let mut push = |e: u32, l: &str, m: &str, c: Option<&str>, v: Option<f64>| {
        run.push(r.run.clone());
        epoch.push(e as i32);
        level.push(l.to_string());
        metric.push(m.to_string());
        class.push(c.map(str::to_string));
        value.push(v);
    };
    for e in &r.epochs {
        for l in &e.levels {
            push(e.epoch, &l.level, "accuracy", None, Some(l.accuracy));
            push(e.epoch, &l.level, "quantity", None, Some(l.selection.quantity));
            push(e.epoch, &l.level, "quality", None, l.selection.quality);
            push(e.epoch, &l.level, "ece", None, Some(l.ece));
        }
        if let Some(a) = e.agreement.all {
            push(e.epoch, "all", "agreement", None, Some(a));
        }
        for (k, v) in &e.agreement.pairs {
            push(e.epoch, k, "agreement", None, Some(*v));
        }
        for c in &e.per_class {
            push(e.epoch, "fused", "precision", Some(&c.class), c.precision);
            push(e.epoch, "fused", "recall", Some(&c.class), c.recall);
            push(e.epoch, "fused", "pseudo_share", Some(&c.class), c.pseudo_share);
        }
        if let Some(v) = &e.votes {
            push(e.epoch, "fused", "wrong_is_second_choice", None, v.rate);
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("run".into(), run),
        Column::new("epoch".into(), epoch),
        Column::new("level".into(), level),
        Column::new("metric".into(), metric),
        Column::new("class".into(), class),
        Column::new("value".into(), value),
    ])
    .expect("columns have one length")
}

pub fn write(dir: &Path, r: &RunReport) -> anyhow::Result<()> {
    exchange::atomic::write_json(dir.join(exchange::layout::report::SUMMARY_JSON), r)?;
    let mut df = long_rows(r);
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    exchange::atomic::write_bytes(dir.join(exchange::layout::report::SUMMARY_PARQUET), &buf)?;
    Ok(())
}
