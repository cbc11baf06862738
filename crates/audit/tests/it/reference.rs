//! Every metric of the audit against an independent pandas/numpy computation
//! (reference/audit_reference.py) on a synthetic run folder with known truth.

use std::path::Path;

use exchange::fusion::FusionMode;
use serde_json::Value;
use test_support::audit_run::{self as fixture, FixtureSpec};
use test_support::{run, text};

const BIN: &str = env!("CARGO_BIN_EXE_audit");

fn close(a: &Value, b: &Value, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => assert!((x - y).abs() < 1e-6, "{what}: audit {x} vs reference {y}"),
        _ => assert_eq!(a.is_null(), b.is_null(), "{what}: audit {a} vs reference {b}"),
    }
}

fn check(mode: FusionMode) {
    let Some(python) = test_support::reference_python() else {
        panic!("reference Python (.venv-torch) missing: run `make setup`")
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec { unlabeled: 3000, labeled: 400, epochs: 2, seed: 5, fusion: mode };
    let run_dir = fixture::write(dir.path(), "fx", &spec).unwrap();
    let o = run(Path::new(BIN), dir.path(), &[run_dir.to_str().unwrap(), "--json", "--reports-root", "reports"]);
    assert!(o.status.success(), "{}", text(&o));
    let ours: Value = serde_json::from_slice(&o.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/audit_reference.py");
    let r = std::process::Command::new(python).arg(script).arg(&run_dir).output().unwrap();
    assert!(r.status.success(), "reference failed: {}", String::from_utf8_lossy(&r.stderr));
    let theirs: Value = serde_json::from_slice(&r.stdout).unwrap();

    let epochs = ours["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for (e, t) in epochs.iter().zip(theirs.as_array().unwrap()) {
        let ep = e["epoch"].as_u64().unwrap();
        assert_eq!(e["rows"], t["rows"]);
        for l in e["levels"].as_array().unwrap() {
            let name = l["level"].as_str().unwrap();
            let tl = &t["levels"][name];
            close(&l["accuracy"], &tl["accuracy"], &format!("epoch {ep} {name} accuracy"));
            close(&l["selection"]["quantity"], &tl["quantity"], &format!("epoch {ep} {name} quantity"));
            close(&l["selection"]["quality"], &tl["quality"], &format!("epoch {ep} {name} quality"));
            close(&l["ece"], &tl["ece"], &format!("epoch {ep} {name} ECE"));
            let at90 = l["sweep"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| (s["threshold"].as_f64().unwrap() - 0.9).abs() < 1e-6)
                .unwrap();
            close(&at90["quality"], &tl["sweep_0.9"], &format!("epoch {ep} {name} sweep at 0.9"));
        }
        for p in e["agreement"]["pairs"].as_array().unwrap() {
            close(&p[1], &t["pairs"][p[0].as_str().unwrap()], &format!("agreement {}", p[0]));
        }
        close(&e["agreement"]["all"], &t["all"], "all agree");
        close(&e["agreement"]["fused_accuracy_when_agree"], &t["acc_agree"], "acc when agree");
        close(&e["agreement"]["fused_accuracy_when_disagree"], &t["acc_disagree"], "acc when disagree");
        for (a, b) in e["per_class"].as_array().unwrap().iter().zip(t["per_class"].as_array().unwrap()) {
            for k in ["precision", "recall", "pseudo_share", "labeled_prior", "true_share"] {
                close(&a[k], &b[k], &format!("{} {k}", a["class"]));
            }
        }
        assert_eq!(e["confusion"], t["confusion"], "confusion matrix");
        assert_eq!(e["votes"]["wrong"], t["votes"]["wrong"]);
        assert_eq!(e["votes"]["second_choice"], t["votes"]["second_choice"]);
        let no_vote = e["votes"]["no_vote_share"].as_f64().unwrap() * e["votes"]["wrong"].as_f64().unwrap();
        assert!((no_vote - t["votes"]["no_vote"].as_f64().unwrap()).abs() < 1e-6);
        assert!(e["stored_fusion_max_diff"].as_f64().unwrap() < 1e-4, "fusion replay reproduces the stored p_fused");
    }
    // What-if on the last epoch: the same settings replayed by the reference.
    let w = &ours["what_if"];
    let t = &theirs.as_array().unwrap()[1]["what_if"];
    assert_eq!(w["selected"], t["selected"]);
    assert!(w["selected"].as_u64().unwrap() > 100, "the fixture selects pseudo-labels: {}", w["selected"]);
    close(&w["quality"], &t["baseline"], "what-if baseline");
    for setting in ["mean-prob 0.50/0.50/0.00", "weighted-logit 0.30/0.20/0.50", "mean-prob 0.00/0.00/1.00"] {
        let c = w["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["fusion"] == setting)
            .unwrap_or_else(|| panic!("{setting} tried"));
        close(&c["quality"], &t[setting], &format!("what-if {setting}"));
    }
    let q: Vec<f64> = w["candidates"].as_array().unwrap().iter().map(|c| c["quality"].as_f64().unwrap()).collect();
    assert!(q.windows(2).all(|p| p[0] >= p[1]), "candidates best first");
}

#[test]
fn metrics_match_the_reference_mean_prob_run() {
    check(FusionMode::MeanProb);
}

#[test]
fn metrics_match_the_reference_weighted_logit_run() {
    check(FusionMode::WeightedLogit);
}
