//! The libtorch chain: `train doctor` runs without LD_LIBRARY_PATH, reports torch 2.13.0, and the binary's
//! libtorch resolves through its rpath.

use std::path::Path;

use test_support::{repo_root, run, text};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_train"))
}

#[test]
fn doctor_reports_libtorch_and_the_binary_needs_no_ld_library_path() {
    let o = std::process::Command::new(bin())
        .current_dir(repo_root())
        .env_remove("LD_LIBRARY_PATH")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["libtorch_version"].as_str().unwrap().starts_with("2.13.0"), "{report}");
    assert!(report["cpu_threads"].as_i64().unwrap() >= 1);
    assert_eq!(report["cuda_available"].as_bool().unwrap(), report["cuda_device_count"].as_i64().unwrap() > 0);
    assert!(report["text_model_present"].as_bool().unwrap(), "make setup provides the text model: {report}");
    assert!(report["face_model_present"].as_bool().unwrap(), "make setup provides the dlib face model: {report}");
    let roots = report["data_roots"].as_array().unwrap();
    assert!(roots.iter().any(|r| r["dataset"] == "ferplus"));

    let human = run(bin(), &repo_root(), &["doctor"]);
    assert!(text(&human).contains("libtorch        2.13.0"), "{}", text(&human));

    let ldd = std::process::Command::new("ldd").arg(bin()).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(libs.contains("libtorch_cpu.so =>"), "{libs}");
    assert!(!libs.contains("not found"), "every library resolves without LD_LIBRARY_PATH:\n{libs}");
}
