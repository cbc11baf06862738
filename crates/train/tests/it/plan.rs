//! `train plan` and `train config`: what the Makefile asks the trainer instead of copying its rules (the run
//! id, the text prototypes a preset reads), and config values that are refused with their choices.

use std::path::Path;

use test_support::{repo_root, run, text};

fn train(args: &[&str]) -> std::process::Output {
    run(Path::new(env!("CARGO_BIN_EXE_train")), &repo_root(), args)
}

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn plan_names_the_run_and_the_text_prototypes_it_needs() {
    let sitfer = stdout(&train(&["plan", "--split", "ferplus_10pct", "--preset", "sitfer", "--seed", "2"]));
    assert!(sitfer.contains("run_id=ferplus_10pct-sitfer-cpu-s2\n"), "{sitfer}");
    assert!(sitfer.contains("run_dir=artifacts/runs/ferplus_10pct-sitfer-cpu-s2\n"), "{sitfer}");
    assert!(sitfer.contains("text=true\ntext_encoder=minilm\ntext_set=facs\n"), "{sitfer}");

    let plan = train(&["plan", "--split", "x/my.parquet", "--preset", "supervised", "--scale", "tiny", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!((plan["run_id"].as_str(), plan["text"].as_bool()), (Some("my-supervised-tiny"), Some(false)));

    let id = train(&["plan", "--preset", "fixmatch", "--seed", "0", "--get", "run_id"]);
    assert_eq!(stdout(&id), "synthetic_10pct-fixmatch-cpu-s0\n");
    let odd = train(&["plan", "--get", "seed"]);
    assert!(!odd.status.success());
    assert!(text(&odd).contains("no plan value `seed` (expected one of run_id, run_dir, text"), "{}", text(&odd));
}

#[test]
fn the_seed_flag_sets_the_config_and_typed_values_list_their_choices() {
    assert_eq!(stdout(&train(&["config", "--seed", "7", "--set", "run.seed=1", "--get", "run.seed"])), "7\n");
    let init = train(&["config", "--scale", "demo", "--get", "model.init"]);
    assert_eq!(stdout(&init), "dlib\n");
    let file = train(&["config", "--set", "model.init=\"weights/r18.safetensors\"", "--get", "model.init"]);
    assert_eq!(stdout(&file), "weights/r18.safetensors\n");

    let bad = train(&["config", "--set", "optim.kind=\"adamx\""]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("expected one of `adam`, `adamw`, `sgd`, `sgd-nesterov`"), "{}", text(&bad));
}
