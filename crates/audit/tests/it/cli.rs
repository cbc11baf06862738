//! `audit` as users run it: reports written, what-if and comparison, clear refusals on bad run folders,
//! and the HTML page rendered by headless Chromium.

use std::path::{Path, PathBuf};

use exchange::fusion::FusionMode;
use exchange::parquet_io::{read_table, write_table};
use exchange::schema::pseudo_label::PseudoLabelRow;
use test_support::audit_run::{self as fixture, FixtureSpec};
use test_support::{run, text};

const BIN: &str = env!("CARGO_BIN_EXE_audit");

fn fixture(dir: &Path, run: &str, seed: u64) -> PathBuf {
    let spec = FixtureSpec { unlabeled: 1500, labeled: 200, epochs: 2, seed, fusion: FusionMode::MeanProb };
    fixture::write(dir, run, &spec).unwrap()
}

/// The run's own metadata of a pseudo-label file (classes, threshold, fusion, run), to write it back after
/// an edit; the table keys are the writer's.
fn run_metadata(file: &Path) -> Vec<(String, String)> {
    let table = [exchange::keys::TABLE, exchange::keys::SCHEMA_VERSION];
    let meta = exchange::parquet_io::file_metadata(file).unwrap();
    meta.into_iter().filter(|(k, _)| k.starts_with("sitfer.") && !table.contains(&k.as_str())).collect()
}

fn audit(cwd: &Path, args: &[&str]) -> (bool, String) {
    let o = run(Path::new(BIN), cwd, args);
    (o.status.success(), text(&o))
}

#[test]
fn latest_run_report_what_if_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), "a-run", 1);
    std::thread::sleep(std::time::Duration::from_millis(20));
    fixture(&dir.path().join("b"), "b-run", 2);
    // b-run lives elsewhere; the latest run under artifacts/runs is a-run.
    std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
    std::fs::rename(dir.path().join("runs"), dir.path().join("artifacts/runs")).unwrap();
    let (ok, out) = audit(dir.path(), &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("audit a-run") && out.contains("What-if at equal quantity") && out.contains("Per class"),
        "{out}"
    );
    let report = dir.path().join("artifacts/reports/a-run");
    for f in ["index.html", "summary.json", "summary.parquet"] {
        assert!(report.join(f).is_file(), "{f} written");
    }

    let (ok, out) = audit(dir.path(), &["a-run", "--fusion", "weighted-logit", "--threshold", "0.6", "--json"]);
    assert!(ok, "{out}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        j["setting"].as_str().unwrap().contains("weighted-logit 0.30/0.20/0.50 at threshold 0.6"),
        "{}",
        j["setting"]
    );
    assert!(dir.path().join("artifacts/reports/a-run--what-if-weighted-logit-0.3-0.2-0.5-t0.6/summary.json").is_file());

    let b = dir.path().join("b/runs/b-run");
    let (ok, out) = audit(dir.path(), &["a-run", b.to_str().unwrap(), "--no-html"]);
    assert!(ok, "{out}");
    assert!(out.contains("metric (last epoch)") && out.contains("fused quality"), "{out}");
    assert!(dir.path().join("artifacts/reports/compare-a-run-vs-b-run/summary.json").is_file());
}

#[test]
fn bad_run_folders_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "r", 3);
    let r = run_dir.to_str().unwrap();

    let (ok, out) = audit(dir.path(), &[dir.path().join("nothing").to_str().unwrap()]);
    assert!(!ok && out.contains("neither a folder nor a run"), "{out}");
    let (ok, out) = audit(dir.path(), &[r, "--shards", "/nonexistent/shards"]);
    assert!(!ok && out.contains("shards not found at /nonexistent/shards"), "{out}");
    let (ok, out) = audit(dir.path(), &[r, "--weights", "1,2"]);
    assert!(!ok && out.contains("expected three"), "{out}");
    let (ok, out) = audit(dir.path(), &[r, "--epoch", "9"]);
    assert!(!ok && out.contains("no pseudo-labels for epoch 9"), "{out}");

    let file = run_dir.join("pseudo_labels/epoch-0002.parquet");
    let rows: Vec<PseudoLabelRow> = read_table(&file).unwrap();
    let meta = run_metadata(&file);
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let rewrite = |f: &dyn Fn(&mut Vec<PseudoLabelRow>)| {
        let mut r2 = rows.clone();
        f(&mut r2);
        write_table(&file, &r2, &meta).unwrap();
    };

    // A few unknown ids: a warning with the count; many: an error.
    rewrite(&|r| r[0].id = "ghost".into());
    let (ok, out) = audit(dir.path(), &[r, "--no-html"]);
    assert!(ok && out.contains("warning") && out.contains("1 of 1500 pseudo-label ids are not in the shards"), "{out}");
    rewrite(&|r| r.iter_mut().take(100).for_each(|x| x.id = format!("ghost{}", x.id)));
    let (ok, out) = audit(dir.path(), &[r, "--no-html"]);
    assert!(!ok && out.contains("100 of 1500") && out.contains("do not belong together"), "{out}");

    rewrite(&|r| r[7].p_ins = Some(vec![0.5, 0.5]));
    let (ok, out) = audit(dir.path(), &[r, "--no-html"]);
    assert!(
        !ok && out.contains("epoch-0002.parquet: row 7") && out.contains("`p_ins` has 2 values, the run has 8 classes"),
        "{out}"
    );
    rewrite(&|r| r[3].p_sem[0] += 0.5);
    let (ok, out) = audit(dir.path(), &[r, "--no-html"]);
    assert!(!ok && out.contains("row 3") && out.contains("`p_sem` is not a probability distribution"), "{out}");

    std::fs::remove_dir_all(run_dir.join("pseudo_labels")).unwrap();
    let (ok, out) = audit(dir.path(), &[r]);
    assert!(!ok && out.contains("no pseudo-label folder"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|b| {
        std::process::Command::new("which")
            .arg(b)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// Appended to a page before it is rendered: after load, every image that did not decode is a console error,
/// and the number of images is logged, so the console tells whether the faces showed.
const IMAGE_CHECK: &str = "<script>window.addEventListener('load', () => { let n = 0; for (const i of \
     document.images) { if (!i.complete || i.naturalWidth === 0) console.error('broken image'); else n++; } \
     console.log('sitfer-check: images ' + n); });</script>";

/// What headless Chromium made of a page: its DOM after load, and the console's messages.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

impl Rendered {
    /// The console messages other than the image check's count.
    fn errors(&self) -> Vec<&String> {
        self.console.iter().filter(|m| !m.contains("sitfer-check: images")).collect()
    }

    /// The images that decoded, as the check counted them.
    fn images(&self) -> usize {
        let line = self.console.iter().find_map(|m| m.split("sitfer-check: images ").nth(1));
        line.and_then(|l| l.split('"').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

fn chromium_command(profile: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(chromium().expect("chromium found"));
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Renders `page` (with [`IMAGE_CHECK`] appended) and returns its DOM and console.
fn render(page: &Path, profile: &Path) -> Rendered {
    let html = std::fs::read_to_string(page).unwrap();
    let checked = page.with_file_name("checked.html");
    std::fs::write(&checked, html.replace("</body>", &format!("{IMAGE_CHECK}</body>"))).unwrap();
    let o = chromium_command(profile)
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", checked.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && dom.contains("</html>"), "chromium failed: {}", String::from_utf8_lossy(&o.stderr));
    let console =
        String::from_utf8_lossy(&o.stderr).lines().filter(|l| l.contains(":CONSOLE")).map(String::from).collect();
    Rendered { dom, console }
}

/// A full-page screenshot of `page`, kept under the target folder as the test's output.
fn screenshot(page: &Path, profile: &Path, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-pages");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(name);
    let o = chromium_command(profile)
        .arg("--window-size=1200,2400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success() && shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false), "screenshot {name}");
    eprintln!("screenshot: {}", shot.display());
    shot
}

/// Per-epoch metrics for a fixture run (which has none): what the learning curves draw. `lift` raises the
/// accuracies, so presets differ.
fn write_curves(run_dir: &Path, epochs: u32, lift: f64) {
    use exchange::schema::metrics::MetricRow;
    let mut rows = Vec::new();
    for e in 1..=epochs {
        let (t, step) = (f64::from(e) / f64::from(epochs), u64::from(e) * 10);
        rows.extend([
            MetricRow::scalar(e, step, "train", "loss", 2.0 - t),
            MetricRow::scalar(e, step, "train", "loss_s", 1.2 - 0.5 * t),
            MetricRow::scalar(e, step, "train", "loss_u", 0.8 - 0.5 * t),
            MetricRow::scalar(e, step, "train", "mask_rate", 0.3 + 0.5 * t),
            MetricRow::scalar(e, step, "train", "lr", 0.03 * (1.0 - 0.5 * t)),
            MetricRow::scalar(e, step, "val", "acc_cls", 0.5 + 0.2 * t + lift),
            MetricRow::scalar(e, step, "test", "acc_cls", 0.48 + 0.2 * t + lift),
        ]);
    }
    write_table(run_dir.join("metrics.parquet"), &rows, &[]).unwrap();
}

/// Replaces the fixture's 1-byte stand-in images with real 16 px PNG faces (test-support's tiny ones), so
/// the gallery has thumbnails to show.
fn give_faces(dir: &Path) {
    use exchange::schema::shard::ShardRow;
    let part = dir.join("shards").join(exchange::layout::shard_part(0));
    let mut rows: Vec<ShardRow> = read_table(&part).unwrap();
    for (i, r) in rows.iter_mut().enumerate() {
        r.image = test_support::tiny::png(usize::from(r.label.unwrap_or(0)), i);
        (r.height, r.width) = (test_support::tiny::SIZE, test_support::tiny::SIZE);
    }
    write_table(&part, &rows, &[(exchange::keys::DATASET, "fixture".into())]).unwrap();
}

/// Two presets over two seeds, audited together: the comparison page.
fn comparison_page(dir: &Path) -> PathBuf {
    use exchange::schema::run_info::RunInfo;
    let mut names = Vec::new();
    for (preset, seed) in [("A", 0), ("A", 1), ("B", 0), ("B", 1)] {
        let run_dir = fixture(dir, &format!("{preset}-s{seed}"), seed + 1);
        let mut info = RunInfo::read(&run_dir).unwrap();
        (info.preset, info.seed) = (preset.into(), Some(seed));
        info.write(&run_dir).unwrap();
        write_curves(&run_dir, 4, if preset == "B" { 0.03 + 0.01 * seed as f64 } else { 0.0 });
        names.push(run_dir.to_str().unwrap().to_string());
    }
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    args.extend(["--reports-root", "reports", "--grid-step", "0", "-q"]);
    let (ok, out) = audit(dir, &args);
    assert!(ok, "{out}");
    std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("index.html"))
        .find(|p| p.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with("compare-"))
        .expect("a comparison page")
}

#[test]
fn html_report_renders_in_headless_chromium() {
    if chromium().is_none() {
        panic!("headless Chromium not found: `make setup` installs Debian's chromium (apt-get install chromium)");
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium-profile");
    // The console check sees errors: a page that throws and has a broken image is caught.
    let bad = dir.path().join("bad/index.html");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, "<html><body><img src=\"data:image/png;base64,AAAA\"><script>nope();</script></body></html>")
        .unwrap();
    let r = render(&bad, &profile);
    assert_eq!((r.errors().len(), r.images()), (2, 0), "{:?}", r.console);

    let run_dir = fixture(dir.path(), "h", 4);
    write_curves(&run_dir, 4, 0.0);
    give_faces(dir.path());
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--reports-root", "reports", "-q"]);
    assert!(ok, "{out}");
    let page = dir.path().join("reports/h/index.html");
    let r = render(&page, &profile);
    assert!(r.errors().is_empty(), "console errors on the run page: {:?}", r.errors());
    for id in
        ["trajectory", "levels", "calibration", "sweep", "classes", "confusion", "what-if", "votes", "faces", "curves"]
    {
        assert!(r.dom.contains(&format!("id=\"{id}\"")), "section {id} rendered");
    }
    // Every face thumbnail decoded.
    let thumbnails = std::fs::read_to_string(&page).unwrap().matches("<img ").count();
    assert!(thumbnails > 0 && r.images() == thumbnails, "{} of {thumbnails} faces shown", r.images());
    // 3 trajectory + 4 reliability + sweep + class bars + confusion = 10 charts, each with drawn content.
    assert!(r.dom.matches("<svg").count() >= 10, "{} charts", r.dom.matches("<svg").count());
    assert!(r.dom.matches("<polyline").count() + r.dom.matches("<path").count() >= 10, "lines drawn");
    assert!(!r.dom.contains("chart failed"));
    screenshot(&page, &profile, "run-page.png");

    let page = comparison_page(dir.path());
    let r = render(&page, &profile);
    assert!(r.errors().is_empty(), "console errors on the comparison page: {:?}", r.errors());
    for id in ["verdict", "compare", "curves"] {
        assert!(r.dom.contains(&format!("id=\"{id}\"")), "comparison section {id} rendered");
    }
    assert!(r.dom.find("id=\"verdict\"") < r.dom.find("id=\"compare\""), "the verdict leads");
    screenshot(&page, &profile, "compare-page.png");
}

#[test]
fn a_run_without_pseudo_labels_is_reported_by_its_classifier_and_joins_a_comparison() {
    use exchange::schema::metrics::MetricRow;
    let dir = tempfile::tempdir().unwrap();
    let with = fixture(dir.path(), "ssl", 4);
    let all = fixture(dir.path(), "all-labels", 5);
    std::fs::remove_dir_all(all.join("pseudo_labels")).unwrap();
    let a = all.to_str().unwrap();
    // Without metrics either, there is nothing to report: still an error.
    let (ok, out) = audit(dir.path(), &[a]);
    assert!(!ok && out.contains("no pseudo-label folder"), "{out}");

    let m = |split: &str, v: f64| MetricRow::scalar(1, 10, split, "acc_cls", v);
    write_table(all.join("metrics.parquet"), &[m("val", 0.61), m("test", 0.64)], &[]).unwrap();
    let (ok, out) = audit(dir.path(), &[a]);
    assert!(ok, "{out}");
    assert!(out.contains("test 64.0%") && out.contains("only the classifier's accuracy is reported"), "{out}");
    let html = std::fs::read_to_string(dir.path().join("artifacts/reports/all-labels/index.html")).unwrap();
    assert!(html.contains("id=\"classifier\"") && html.contains("64.0%"), "classifier line in the page");
    // Asking for an epoch's detail or a what-if of it is still refused.
    let (ok, out) = audit(dir.path(), &[a, "--threshold", "0.5"]);
    assert!(!ok && out.contains("no pseudo-label folder"), "{out}");

    let (ok, out) = audit(dir.path(), &[with.to_str().unwrap(), a, "--no-html"]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("test acc (best val epoch)")).unwrap_or_default();
    assert!(row.contains("64.0%"), "{out}");
    let row = out.lines().find(|l| l.starts_with("fused quality")).unwrap_or_default();
    assert!(row.ends_with("— (—)"), "{out}");
}

/// Presets repeated over seeds get the seed-paired table: B − A per seed is +0.02, +0.03, +0.04 (mean 3.00
/// points, sd 1, t(0.975, 2) = 4.303: interval [0.52, 5.48]), and C's differences straddle zero.
#[test]
fn repeated_presets_get_a_seed_paired_table() {
    use exchange::schema::metrics::MetricRow;
    use exchange::schema::run_info::RunInfo;
    let dir = tempfile::tempdir().unwrap();
    let runs = [("A", 0, 0.70), ("A", 1, 0.72), ("A", 2, 0.71), ("B", 0, 0.72), ("B", 1, 0.75), ("B", 2, 0.75)];
    let runs = runs.into_iter().chain([("C", 0, 0.71), ("C", 1, 0.71), ("C", 2, 0.70)]);
    let mut names = Vec::new();
    for (preset, seed, test) in runs {
        let name = format!("{preset}-s{seed}");
        let run_dir = fixture(dir.path(), &name, 1);
        let mut info = RunInfo::read(&run_dir).unwrap();
        info.preset = preset.into();
        info.seed = Some(seed);
        info.write(&run_dir).unwrap();
        let m = |split: &str, v: f64| MetricRow::scalar(1, 10, split, "acc_cls", v);
        write_table(run_dir.join("metrics.parquet"), &[m("val", 0.6), m("test", test)], &[]).unwrap();
        names.push(run_dir.to_str().unwrap().to_string());
    }
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    args.extend(["--no-html", "--grid-step", "0"]);
    let (ok, out) = audit(dir.path(), &args);
    assert!(ok, "{out}");
    let line = |p: &str| out.lines().find(|l| l.starts_with(&format!("{p} "))).unwrap_or_default().to_string();
    assert!(line("A").contains("71.00% ± 1.00") && line("A").contains("(reference)"), "{out}");
    assert!(line("B").contains("+3.00 [+0.52, +5.48] over 3 pairs  better"), "{out}");
    assert!(line("C").ends_with("not resolved"), "{out}");
    let paired = std::fs::read_dir(dir.path().join("artifacts/reports"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("paired.json"))
        .find(|p| p.is_file())
        .expect("paired.json beside the comparison");
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&paired).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(rows[1]["vs_first"]["verdict"], "better");
    // Nine runs: a short name, not the nine joined.
    let folder = paired.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
    assert!(folder.starts_with("compare-A-s0-and-8-more-") && folder.len() < 40, "{folder}");

    // The page leads with the verdict, and lists the runs.
    let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
    args.extend(["--grid-step", "0"]);
    let (ok, out) = audit(dir.path(), &args);
    assert!(ok, "{out}");
    let page = std::fs::read_to_string(paired.with_file_name("index.html")).unwrap();
    let verdict = page.find("Seed-paired verdict").expect("the verdict section");
    assert!(verdict < page.find("Side by side").unwrap(), "the verdict comes first");
    assert!(page.contains("+3.00 [+0.52, +5.48] over 3 pairs</td><td>better"), "B's row");
    assert!(page.contains("9 runs: <code>A-s0</code>"));

    // Two runs of one preset with the same seed (another split, say): no table, and no failure.
    let (ok, out) = audit(dir.path(), &[&names[0], &names[0], "--no-html", "--grid-step", "0"]);
    assert!(ok && out.contains("no seed-paired table"), "{out}");
}

/// The report folder takes the run folder's own name: a run.json whose `run` field points elsewhere (copied
/// from another run, or crafted) cannot write outside artifacts/reports or over another run's report.
#[test]
fn the_report_is_named_after_the_run_folder_not_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "copy", 1);
    let info = run_dir.join("run.json");
    let crafted = std::fs::read_to_string(&info).unwrap().replace("\"run\": \"copy\"", "\"run\": \"../../escaped\"");
    assert!(crafted.contains("../../escaped"));
    std::fs::write(&info, crafted).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html", "--grid-step", "0"]);
    assert!(ok, "{out}");
    assert!(dir.path().join("artifacts/reports/copy/summary.json").is_file(), "{out}");
    assert!(!dir.path().join("escaped").exists() && !dir.path().join("artifacts/escaped").exists());
}

#[test]
fn grid_steps_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "g", 1);
    for step in ["-1", "nan", "0.001", "2"] {
        let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), &format!("--grid-step={step}")]);
        assert!(!ok && out.contains("--grid-step") && out.contains("0.02 to 0.5"), "{step}: {out}");
    }
}

/// A probability vector with entries outside [0, 1] is named as such, not as "does not sum to 1".
#[test]
fn an_entry_outside_zero_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "p", 1);
    let file = run_dir.join("pseudo_labels/epoch-0002.parquet");
    let meta = run_metadata(&file);
    let keep: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut rows: Vec<PseudoLabelRow> = read_table(&file).unwrap();
    let n = rows[0].p_sem.len();
    rows[0].p_sem = vec![0.0; n];
    rows[0].p_sem[0] = 1.5;
    rows[0].p_sem[1] = -0.5;
    write_table(&file, &rows, &keep).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(!ok && out.contains("entry 0 is 1.5, outside [0, 1]"), "{out}");
}

#[test]
fn evaluations_show_in_the_report_and_a_damaged_one_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "r", 4);
    let evals = exchange::layout::run::evaluations(&run_dir);
    std::fs::create_dir_all(&evals).unwrap();
    let e = exchange::schema::evaluation::Evaluation {
        run: "r".into(),
        snapshot: "last".into(),
        epoch: 2,
        dataset: "elsewhere".into(),
        split: "elsewhere_full".into(),
        role: "test".into(),
        classes: vec!["neutral".into(), "happiness".into()],
        faces: 40,
        dropped: vec![],
        not_in_dataset: vec![],
        accuracy: 0.625,
        balanced_accuracy: 0.6,
        fused_accuracy: None,
        recall: vec![Some(0.5), Some(0.7)],
        confusion: vec![vec![10, 10], vec![5, 15]],
        ece: 0.05,
        created_at: "2026-11-29T00:00:00Z".into(),
    };
    e.write(&evals.join("elsewhere--elsewhere_full--test--last.json")).unwrap();
    std::fs::write(evals.join("zz.json"), "{ not json").unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--reports-root", "reports"]);
    assert!(ok, "a damaged evaluation file does not stop the audit: {out}");
    assert!(out.contains("evaluated on elsewhere / elsewhere_full / test") && out.contains("accuracy 62.5%"), "{out}");
    assert!(out.contains("warning: ") && out.contains("zz.json") && out.contains("line 1"), "{out}");
    let html = std::fs::read_to_string(dir.path().join("reports/r/index.html")).unwrap();
    assert!(html.contains("evaluated on elsewhere / elsewhere_full / test"), "the HTML page shows evaluations too");
}

#[test]
fn a_class_listed_twice_and_a_wrong_class_count_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "d", 5);
    let info = run_dir.join("run.json");
    let original = std::fs::read_to_string(&info).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&original).unwrap();
    let classes = j["classes"].as_array().unwrap().clone();
    // "happy" is happiness again under another spelling.
    let mut twice = classes.clone();
    twice.push(serde_json::Value::from("happy"));
    j["classes"] = serde_json::Value::from(twice);
    std::fs::write(&info, serde_json::to_string(&j).unwrap()).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(!ok && out.contains("class `happy` in `classes` names an expression listed before it"), "{out}");
    // One class fewer than the files hold: every column is wrong, and the first one (p_sem) is named, always.
    j["classes"] = serde_json::Value::from(classes[..classes.len() - 1].to_vec());
    std::fs::write(&info, serde_json::to_string(&j).unwrap()).unwrap();
    for _ in 0..3 {
        let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
        assert!(!ok && out.contains("`p_sem` has"), "{out}");
    }
}

/// A sweep over a seeded subset says so in the per-epoch table (rows/of), and a damaged count is named.
#[test]
fn a_subset_sweep_shows_its_size_and_a_bad_count_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "s", 1);
    let file = run_dir.join("pseudo_labels/epoch-0001.parquet");
    let mut meta = run_metadata(&file);
    let rows: Vec<PseudoLabelRow> = read_table(&file).unwrap();
    let kept: Vec<PseudoLabelRow> = rows.into_iter().step_by(3).collect();
    meta.push((exchange::keys::SWEPT_OF.to_string(), "1500".to_string()));
    let keep: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    write_table(&file, &kept, &keep).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(ok && out.contains(&format!("{}/1500", kept.len())), "{out}");

    let bad: Vec<(&str, String)> = keep
        .iter()
        .map(|(k, v)| (*k, if *k == exchange::keys::SWEPT_OF { "lots".to_string() } else { v.clone() }))
        .collect();
    write_table(&file, &kept, &bad).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(!ok && out.contains("sitfer.swept_of is `lots`"), "{out}");
}

/// A run that aligns its fused distributions stores the aligned ones and the factors: audit replays the fusion
/// with the same alignment (no inconsistency note on the detailed, last epoch), notices aligned rows stored
/// without their factors, and names a damaged factor list.
#[test]
fn aligned_fusions_replay_with_their_factors_and_bad_factors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = fixture(dir.path(), "al", 1);
    let file = run_dir.join("pseudo_labels/epoch-0002.parquet");
    let meta = run_metadata(&file);
    let mut rows: Vec<PseudoLabelRow> = read_table(&file).unwrap();
    let c = rows[0].p_fused.len();
    let factors: Vec<f32> = (0..c).map(|k| 1.0 + k as f32).collect();
    for r in &mut rows {
        r.p_fused.iter_mut().zip(&factors).for_each(|(p, f)| *p *= f);
        let s: f32 = r.p_fused.iter().sum();
        r.p_fused.iter_mut().for_each(|p| *p /= s);
    }
    let listed = factors.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    let with = |v: &str| -> Vec<(&str, String)> {
        meta.iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain([(exchange::keys::ALIGNMENT_FACTORS, v.to_string())])
            .collect()
    };
    write_table(&file, &rows, &with(&listed)).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(ok && !out.contains("the stored p_fused differs"), "{out}");

    let without: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    write_table(&file, &rows, &without).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(ok && out.contains("the stored p_fused differs"), "{out}");

    write_table(&file, &rows, &with("1,2")).unwrap();
    let (ok, out) = audit(dir.path(), &[run_dir.to_str().unwrap(), "--no-html"]);
    assert!(!ok && out.contains(&format!("sitfer.alignment_factors is `1,2`, expected {c} positive numbers")), "{out}");
}
