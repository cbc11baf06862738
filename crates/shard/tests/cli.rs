//! End-to-end tests of `shard`: every supported input format on fixtures built here, both FERPlus layouts
//! giving identical shards from real FER+ PNGs, splits, and every bad-input path.

use std::fs;
use std::path::{Path, PathBuf};

use exchange::manifest::Manifest;
use exchange::parquet_io::read_table;
use exchange::schema::shard::ShardRow;
use exchange::schema::split::{Role, SplitRow};
use test_support::{ferplus_dir, repo_root, text};

fn run(cwd: &Path, args: &[&str]) -> std::process::Output {
    test_support::run(Path::new(env!("CARGO_BIN_EXE_shard")), cwd, args)
}

fn grey_png(path: &Path, seed: u8, size: u32) {
    let img = image::GrayImage::from_fn(size, size, |x, y| image::Luma([(x * 5 + y * 3) as u8 ^ seed]));
    img.save(path).unwrap();
}

fn rgb_jpg(path: &Path, seed: u8, size: u32) {
    let img = image::RgbImage::from_fn(size, size, |x, y| image::Rgb([x as u8 ^ seed, y as u8, seed]));
    img.save(path).unwrap();
}

/// A FER+ folder layout with `n` faces per split; votes chosen so the majority protocol keeps all but one.
fn ferplus_fixture(root: &Path, n: usize) {
    for folder in ["FER2013Train", "FER2013Valid", "FER2013Test"] {
        let dir = root.join(folder);
        fs::create_dir_all(&dir).unwrap();
        let mut csv = String::new();
        for i in 0..n {
            let name = format!("fer{i:07}.png");
            grey_png(&dir.join(&name), i as u8, 12);
            let class = i % 8;
            let mut votes = [0; 10];
            votes[class] = 8;
            votes[(class + 1) % 8] = 2;
            if i == n - 1 {
                votes = [0, 0, 0, 0, 0, 0, 0, 0, 9, 1]; // unknown: dropped by the protocol
            }
            let v: Vec<String> = votes.iter().map(|x| x.to_string()).collect();
            csv.push_str(&format!("{name},\"(0, 0, 12, 12)\",{}\n", v.join(",")));
        }
        fs::write(dir.join("label.csv"), csv).unwrap();
    }
}

fn shards(dir: &Path) -> Vec<ShardRow> {
    let mut parts: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    parts.iter().flat_map(|p| read_table::<ShardRow>(p).unwrap()).collect()
}

fn shard_ok(cwd: &Path, args: &[&str]) -> String {
    let o = run(cwd, args);
    assert!(o.status.success(), "shard {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn shard_err(cwd: &Path, args: &[&str]) -> String {
    let o = run(cwd, args);
    assert!(!o.status.success(), "shard {args:?} should have failed:\n{}", text(&o));
    text(&o)
}

#[test]
fn ferplus_folders_shard_with_protocol_summary_and_up_to_date() {
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 9);
    let out = shard_ok(t.path(), &["ferplus", "--root", "raw", "-q"]);
    assert!(out.contains("unknown or not a face"), "summary names drop reasons:\n{out}");
    let rows = shards(&t.path().join("artifacts/shards/ferplus"));
    assert_eq!(rows.len(), 3 * 8);
    assert_eq!(rows[0].id, "ferplus/train/fer0000000");
    assert_eq!((rows[0].label, rows[3].label), (Some(0), Some(3)));
    assert_eq!(rows[0].votes.as_deref(), Some(&[8, 2, 0, 0, 0, 0, 0, 0, 0, 0][..]));
    assert_eq!((rows[0].height, rows[0].width, rows[0].channels), (12, 12, 1));
    let m = Manifest::read(t.path().join("artifacts/shards/ferplus/manifest.json")).unwrap();
    assert_eq!(m.counts["total_rows"], 24);
    assert_eq!(m.counts["dropped"]["train"]["unknown or not a face"], 1);

    let part = t.path().join("artifacts/shards/ferplus/part-00000.parquet");
    let before = fs::metadata(&part).unwrap().modified().unwrap();
    let again = shard_ok(t.path(), &["ferplus", "--root", "raw"]);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(fs::metadata(&part).unwrap().modified().unwrap(), before, "an up-to-date run writes nothing");

    // Resize + RGB are options that change the output (and so the manifest fingerprint).
    let out = shard_ok(t.path(), &["ferplus", "--root", "raw", "--resize", "20", "--color", "rgb", "-q"]);
    assert!(!out.contains("up to date"));
    let rows = shards(&t.path().join("artifacts/shards/ferplus"));
    assert_eq!((rows[0].height, rows[0].width, rows[0].channels), (20, 20, 3));
}

#[test]
fn both_ferplus_layouts_give_identical_shards_from_real_pngs() {
    let Some(real) = ferplus_dir("both_ferplus_layouts_give_identical_shards_from_real_pngs") else { return };
    let t = tempfile::tempdir().unwrap();
    let folders = t.path().join("folders");
    let kaggle = t.path().join("kaggle");
    fs::create_dir_all(&kaggle).unwrap();
    let mut px_csv = String::from("emotion,pixels,Usage\n");
    let mut votes_csv =
        String::from("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n");
    for (folder, usage) in
        [("FER2013Train", "Training"), ("FER2013Valid", "PublicTest"), ("FER2013Test", "PrivateTest")]
    {
        fs::create_dir_all(folders.join(folder)).unwrap();
        let labels = fs::read_to_string(real.join(folder).join("label.csv")).unwrap();
        let mut kept = String::new();
        for line in labels.lines().take(15) {
            let name = line.split(',').next().unwrap();
            fs::copy(real.join(folder).join(name), folders.join(folder).join(name)).unwrap();
            kept.push_str(line);
            kept.push('\n');
            let img = image::open(real.join(folder).join(name)).unwrap().to_luma8();
            let px: Vec<String> = img.as_raw().iter().map(|p| p.to_string()).collect();
            px_csv.push_str(&format!("0,{},{usage}\n", px.join(" ")));
            let votes = line.split_once(")\",").unwrap().1;
            votes_csv.push_str(&format!("{usage},{name},{votes}\n"));
        }
        // A Kaggle row without a FER+ image name: dropped, and counted.
        px_csv.push_str(&format!("0,{},{usage}\n", vec!["0"; 2304].join(" ")));
        votes_csv.push_str(&format!("{usage},,0,0,0,0,0,0,0,0,0,10\n"));
        fs::write(folders.join(folder).join("label.csv"), kept).unwrap();
    }
    fs::write(kaggle.join("fer2013.csv"), px_csv).unwrap();
    fs::write(kaggle.join("fer2013new.csv"), votes_csv).unwrap();

    shard_ok(t.path(), &["ferplus", "--root", "folders", "--out-root", "a", "-q"]);
    let out = shard_ok(t.path(), &["ferplus", "--root", "kaggle", "--out-root", "b", "-q"]);
    assert!(out.contains("no FER+ image (empty name)"), "{out}");
    let (a, b) = (shards(&t.path().join("a/ferplus")), shards(&t.path().join("b/ferplus")));
    assert!(a.len() >= 30, "most of 45 real faces pass the majority protocol: {}", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            ShardRow { source_path: String::new(), ..x.clone() },
            ShardRow { source_path: String::new(), ..y.clone() }
        );
        assert!(x.source_path.starts_with("FER2013") && y.source_path.starts_with("fer2013.csv:"));
    }
}

#[test]
fn real_ferplus_slice_shards() {
    let Some(real) = ferplus_dir("real_ferplus_slice_shards") else { return };
    let t = tempfile::tempdir().unwrap();
    let out = shard_ok(t.path(), &["ferplus", "--root", real.to_str().unwrap(), "--limit-per-split", "200", "-q"]);
    let rows = shards(&t.path().join("artifacts/shards/ferplus"));
    assert_eq!(rows.len(), 600, "{out}");
    assert!(rows.iter().all(|r| r.label.is_some_and(|l| l < 8) && r.votes.as_ref().is_some_and(|v| v.len() == 10)));
    assert!(rows.iter().all(|r| (r.height, r.width, r.channels) == (48, 48, 1)));
    // every FER+ class but the rarest appears in a 200-face slice of train
    let mut seen = [0; 8];
    rows.iter().filter(|r| r.split == "train").for_each(|r| seen[r.label.unwrap() as usize] += 1);
    assert!(seen[0] > 30 && seen[1] > 30, "neutral and happiness dominate FER+: {seen:?}");
}

#[test]
fn rafdb_affectnet_and_folder_fixtures() {
    let t = tempfile::tempdir().unwrap();
    // RAF-DB basic
    let r = t.path().join("rafdb");
    fs::create_dir_all(r.join("EmoLabel")).unwrap();
    fs::create_dir_all(r.join("Image/aligned")).unwrap();
    let mut list = String::new();
    for (i, split) in [(1, "train"), (2, "train"), (3, "test")] {
        let name = format!("{split}_{i:05}");
        rgb_jpg(&r.join(format!("Image/aligned/{name}_aligned.jpg")), i as u8, 16);
        list.push_str(&format!("{name}.jpg {}\n", i * 2));
    }
    fs::write(r.join("EmoLabel/list_patition_label.txt"), list).unwrap();
    shard_ok(t.path(), &["rafdb", "--root", "rafdb", "-q"]);
    let rows = shards(&t.path().join("artifacts/shards/rafdb"));
    assert_eq!(rows.iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![6, 1, 4]); // fear, happiness, anger
    assert_eq!(rows[2].split, "test");
    assert_eq!(rows[0].channels, 3);

    // AffectNet: crop by box, 7 vs 8 classes, non-expressions dropped
    let a = t.path().join("affectnet");
    fs::create_dir_all(a.join("Manually_Annotated_Images/101")).unwrap();
    let head =
        "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n";
    let mut train = head.to_string();
    for (i, expr) in [(0, 1), (1, 7), (2, 9)] {
        rgb_jpg(&a.join(format!("Manually_Annotated_Images/101/img{i}.jpg")), i as u8, 40);
        train.push_str(&format!("101/img{i}.jpg,4,6,20,24,\"1;2\",{expr},0.1,0.2\n"));
    }
    fs::write(a.join("training.csv"), train).unwrap();
    fs::write(a.join("validation.csv"), format!("{head}101/img0.jpg,0,0,40,40,,3,0,0\n")).unwrap();
    let out = shard_ok(t.path(), &["affectnet", "--root", "affectnet", "--classes", "7", "-q"]);
    assert!(out.contains("contempt (7-class protocol)") && out.contains("expression uncertain"), "{out}");
    let rows = shards(&t.path().join("artifacts/shards/affectnet7"));
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].width, rows[0].height), (20, 24), "cropped to the face box");
    assert_eq!((rows[0].label, rows[1].label, rows[1].split.as_str()), (Some(1), Some(2), "valid"));
    shard_ok(t.path(), &["affectnet", "--root", "affectnet", "-q"]);
    assert_eq!(shards(&t.path().join("artifacts/shards/affectnet")).len(), 3);

    // Image folders (SFEW-style class names)
    let f = t.path().join("sfew");
    for (split, class) in [("Train", "Angry"), ("Train", "Happy"), ("Val", "Surprise")] {
        fs::create_dir_all(f.join(split).join(class)).unwrap();
        grey_png(&f.join(split).join(class).join("a.png"), 1, 10);
        rgb_jpg(&f.join(split).join(class).join("b.jpg"), 2, 10);
    }
    fs::write(f.join("Train/Angry/notes.txt"), "not an image").unwrap();
    shard_ok(t.path(), &["folder", "--name", "sfew", "--root", "sfew", "-q"]);
    let rows = shards(&t.path().join("artifacts/shards/sfew"));
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].id, "sfew/train/anger/a");
    assert_eq!(rows[4].split, "valid");
    fs::create_dir_all(f.join("Train/Bored")).unwrap();
    let err = shard_err(t.path(), &["folder", "--name", "sfew", "--root", "sfew", "--force"]);
    assert!(err.contains("Bored") && err.contains("not an expression name"), "{err}");
}

#[test]
fn bad_input_is_reported_with_file_and_line_or_skipped_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("raw");
    let label = raw.join("FER2013Train/label.csv");

    // missing folder
    let err = shard_err(t.path(), &["ferplus", "--root", "nowhere"]);
    assert!(err.contains("nowhere") && err.contains("FER2013"), "{err}");

    // malformed row, then skip
    ferplus_fixture(&raw, 5);
    let good = fs::read_to_string(&label).unwrap();
    fs::write(&label, good.replacen("fer0000001.png,\"(0, 0, 12, 12)\",", "fer0000001.png,", 1)).unwrap();
    let err = shard_err(t.path(), &["ferplus", "--root", "raw"]);
    assert!(err.contains("label.csv:2") && err.contains("expected 12 fields"), "{err}");
    let out = shard_ok(t.path(), &["ferplus", "--root", "raw", "--on-error", "skip"]);
    assert!(out.contains("malformed row"), "{out}");
    let m = Manifest::read(t.path().join("artifacts/shards/ferplus/manifest.json")).unwrap();
    assert_eq!(m.counts["skipped"]["malformed row"], 1);

    // vote count that is not a number
    fs::write(&label, good.replacen(",8,2,", ",eight,2,", 1)).unwrap();
    let err = shard_err(t.path(), &["ferplus", "--root", "raw"]);
    assert!(err.contains("label.csv:1") && err.contains("not a number: `eight`"), "{err}");

    // duplicate id
    fs::write(&label, format!("{good}{}", good.lines().next().unwrap())).unwrap();
    let err = shard_err(t.path(), &["ferplus", "--root", "raw"]);
    assert!(err.contains("duplicate sample id `ferplus/train/fer0000000`") && err.contains("label.csv:1"), "{err}");
    fs::write(&label, &good).unwrap();

    // an empty label file (a copy gone wrong): refused at shard time, naming it, not found later at split
    let test_label = raw.join("FER2013Test/label.csv");
    let test_good = fs::read(&test_label).unwrap();
    fs::write(&test_label, "").unwrap();
    let err = shard_err(t.path(), &["ferplus", "--root", "raw"]);
    assert!(err.contains("FER2013Test/label.csv: no rows"), "{err}");
    fs::write(&test_label, test_good).unwrap();

    // label out of range (RAF-DB)
    let r = t.path().join("rafdb");
    fs::create_dir_all(r.join("EmoLabel")).unwrap();
    fs::create_dir_all(r.join("Image/aligned")).unwrap();
    fs::write(r.join("EmoLabel/list_patition_label.txt"), "train_00001.jpg 1\ntrain_00002.jpg 9\n").unwrap();
    let err = shard_err(t.path(), &["rafdb", "--root", "rafdb"]);
    assert!(err.contains("list_patition_label.txt:2") && err.contains("not 1–7"), "{err}");

    // truncated image: error names the csv line and the image; the previous shards survive
    shard_ok(t.path(), &["ferplus", "--root", "raw", "--force", "-q"]);
    let out_dir = t.path().join("artifacts/shards/ferplus");
    let before = shards(&out_dir);
    let manifest_before = fs::read(out_dir.join("manifest.json")).unwrap();
    let img = raw.join("FER2013Valid/fer0000002.png");
    let bytes = fs::read(&img).unwrap();
    fs::write(&img, &bytes[..bytes.len() / 2]).unwrap();
    let err = shard_err(t.path(), &["ferplus", "--root", "raw"]);
    assert!(err.contains("FER2013Valid/label.csv:3") && err.contains("fer0000002.png"), "{err}");
    assert_eq!(shards(&out_dir), before, "a failed run leaves the previous output untouched");
    assert_eq!(fs::read(out_dir.join("manifest.json")).unwrap(), manifest_before);
    let leftovers: Vec<_> =
        fs::read_dir(t.path().join("artifacts/shards")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("ferplus")], "no staging folders left behind");
    let out = shard_ok(t.path(), &["ferplus", "--root", "raw", "--on-error", "skip", "-q"]);
    assert!(out.contains("unreadable image"), "{out}");
    assert_eq!(shards(&out_dir).len(), before.len() - 1);
}

fn split_rows(p: &Path) -> Vec<SplitRow> {
    read_table::<SplitRow>(p).unwrap()
}

#[test]
fn synthetic_data_and_splits_are_deterministic_and_stratified() {
    let t = tempfile::tempdir().unwrap();
    let splits = repo_root().join("pipelines/splits");
    let splits = splits.to_str().unwrap();
    let gen = ["synthetic", "--train", "400", "--valid", "60", "--test", "60", "--size", "32", "-q"];
    let out = shard_ok(t.path(), &[&gen[..], &["--preview", "preview.png"]].concat());
    assert!(out.contains("generated 520 faces"), "{out}");
    let preview = image::open(t.path().join("preview.png")).unwrap();
    assert!(preview.width() > 10 * 32 && preview.height() >= 8 * 32);
    let rows = shards(&t.path().join("artifacts/shards/synthetic"));
    assert!(rows.len() > 400 && rows.len() < 520, "the majority protocol drops some ambiguous faces: {}", rows.len());
    let mut per_class = [0; 8];
    rows.iter().for_each(|r| per_class[r.label.unwrap() as usize] += 1);
    assert!(per_class.iter().all(|&n| n > 5), "every class is present: {per_class:?}");

    shard_ok(t.path(), &["split", "synthetic_10pct", "--splits-dir", splits]);
    let a = split_rows(&t.path().join("artifacts/splits/synthetic_10pct.parquet"));
    let again = shard_ok(t.path(), &["split", "synthetic_10pct", "--splits-dir", splits]);
    assert!(again.contains("up to date"), "{again}");
    shard_ok(t.path(), &["split", "synthetic_10pct", "--splits-dir", splits, "--force", "--out-dir", "other"]);
    assert_eq!(a, split_rows(&t.path().join("other/synthetic_10pct.parquet")), "same config, same split");

    // Regenerating the raw data from scratch gives the same shards and split.
    fs::remove_dir_all(t.path().join("data")).unwrap();
    shard_ok(t.path(), &[&gen[..], &["--force", "--out-root", "again"]].concat());
    assert_eq!(shards(&t.path().join("again/synthetic")), rows);

    let train: Vec<&ShardRow> = rows.iter().filter(|r| r.split == "train").collect();
    let labeled: Vec<&SplitRow> = a.iter().filter(|r| r.role == Role::Labeled).collect();
    let unlabeled = a.iter().filter(|r| r.role == Role::Unlabeled).count();
    assert_eq!(labeled.len() + unlabeled, train.len(), "train = labeled + unlabeled");
    assert!(
        (labeled.len() as f64 - 0.1 * train.len() as f64).abs() <= 8.0,
        "{} labeled of {}",
        labeled.len(),
        train.len()
    );
    assert_eq!(a.iter().filter(|r| r.role == Role::Val).count(), rows.iter().filter(|r| r.split == "valid").count());
    assert_eq!(a.iter().filter(|r| r.role == Role::Test).count(), rows.iter().filter(|r| r.split == "test").count());
    let ids: std::collections::HashSet<&str> = a.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), a.len(), "each id has one role");

    // The full split labels every train face and has no unlabeled role.
    shard_ok(t.path(), &["split", "synthetic_full", "--splits-dir", splits]);
    let full = split_rows(&t.path().join("artifacts/splits/synthetic_full.parquet"));
    assert_eq!(full.iter().filter(|r| r.role == Role::Labeled).count(), train.len());
    assert_eq!(full.iter().filter(|r| r.role == Role::Unlabeled).count(), 0);

    // A config naming a source split the shards lack is refused with both names.
    fs::create_dir_all(t.path().join("cfg")).unwrap();
    let bad = fs::read_to_string(repo_root().join("pipelines/splits/synthetic_10pct.toml"))
        .unwrap()
        .replace("from = [\"valid\"]", "from = [\"dev\"]");
    fs::write(t.path().join("cfg/bad.toml"), bad).unwrap();
    let err = shard_err(t.path(), &["split", "bad", "--splits-dir", "cfg"]);
    assert!(err.contains("`dev`") && err.contains("bad.toml"), "{err}");
}

// ---- Nothing lost, nothing accepted silently ----------------------------------------------------------

/// The output folder of `shard ferplus --root data/x --out-root data --name x` is the input folder itself:
/// it holds no shard manifest, so it is refused and every input file survives.
#[test]
fn an_output_that_is_the_input_folder_is_refused_and_survives() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ferplus_fixture(&data.join("x"), 3);
    let before = fs::read_dir(data.join("x/FER2013Train")).unwrap().count();
    let e = shard_err(t.path(), &["ferplus", "--root", "data/x", "--out-root", "data", "--name", "x", "-q"]);
    assert!(e.contains("no manifest.json written by `shard`") && e.contains("leaves this one alone"), "{e}");
    assert!(data.join("x/FER2013Train/label.csv").is_file(), "the input's label file survives");
    assert_eq!(fs::read_dir(data.join("x/FER2013Train")).unwrap().count(), before);
    assert!(data.join("x/FER2013Valid/fer0000000.png").is_file());
}

/// A dataset name that would leave the shards root is refused before anything is written.
#[test]
fn a_dataset_name_with_a_path_is_refused_and_the_folder_it_names_survives() {
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 3);
    fs::create_dir_all(t.path().join("important")).unwrap();
    fs::write(t.path().join("important/notes.txt"), b"keep").unwrap();
    for name in ["../../important", "../important", "a/b", "..", "/abs"] {
        let e = shard_err(t.path(), &["ferplus", "--root", "raw", "--name", name, "-q"]);
        assert!(e.contains("dataset") && e.contains("single plain"), "{name}: {e}");
    }
    assert_eq!(fs::read(t.path().join("important/notes.txt")).unwrap(), b"keep");
    let e = shard_err(t.path(), &["split", "../../../trav", "--splits-dir", "."]);
    assert!(e.contains("split \"../../../trav\"") && e.contains("single plain"), "{e}");
}

/// A staging folder a killed run left beside the output is cleaned by the next run.
#[test]
fn a_dead_runs_staging_folder_is_cleaned() {
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 3);
    let stale = t.path().join("artifacts/shards/.ferplus.staging-0-0");
    fs::create_dir_all(&stale).unwrap();
    shard_ok(t.path(), &["ferplus", "--root", "raw", "-q"]);
    assert!(!stale.exists());
    let names: Vec<String> = fs::read_dir(t.path().join("artifacts/shards"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ferplus"]);
}

/// A vote count past any real one is a bad row, not a saturated 2147483647.
#[test]
fn an_absurd_vote_count_is_an_error_naming_the_row() {
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 3);
    let csv = t.path().join("raw/FER2013Test/label.csv");
    let text = fs::read_to_string(&csv).unwrap().replacen(",8,2,", ",99999999999999999999,2,", 1);
    fs::write(&csv, text).unwrap();
    let e = shard_err(t.path(), &["ferplus", "--root", "raw", "-q"]);
    assert!(e.contains("label.csv:1") && e.contains("more than the 1000 votes"), "{e}");
}

/// The same image name in two source splits is said (a possible leak); skipped rows beyond the five shown
/// are counted.
#[test]
fn repeated_names_across_splits_and_many_skipped_rows_are_reported() {
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 9);
    let csv = t.path().join("raw/FER2013Train/label.csv");
    let mut text = fs::read_to_string(&csv).unwrap();
    for i in 0..7 {
        text.push_str(&format!("missing{i}.png,\"(0, 0, 12, 12)\",8,2,0,0,0,0,0,0,0,0\n"));
    }
    fs::write(&csv, text).unwrap();
    let out = shard_ok(t.path(), &["ferplus", "--root", "raw", "--on-error", "skip", "-q"]);
    assert!(
        out.contains("appear in more than one source split") && out.contains("`fer0000000` in train and valid"),
        "{out}"
    );
    assert_eq!(out.matches("warning: skipped:").count(), 5, "{out}");
    assert!(out.contains("and 2 more skipped row(s)"), "{out}");
}

/// `shard … | head` closes the pipe early: the process ends quietly (SIGPIPE), never with a panic.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let t = tempfile::tempdir().unwrap();
    ferplus_fixture(&t.path().join("raw"), 3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shard"))
        .current_dir(t.path())
        .args(["ferplus", "--root", "raw", "--json", "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is printed
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A JPEG cut in half and a FIFO named like an image are bad inputs like any other: the run stops naming the
/// file (nothing hangs, no grey-filled face is stored), or with `--on-error skip` they are counted and left out.
#[test]
fn a_cut_jpeg_and_a_fifo_are_named_not_read() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("faces");
    fs::create_dir_all(f.join("Train/Happy")).unwrap();
    grey_png(&f.join("Train/Happy/a.png"), 1, 16);
    rgb_jpg(&f.join("Train/Happy/b.jpg"), 2, 32);
    let whole = fs::read(f.join("Train/Happy/b.jpg")).unwrap();
    fs::write(f.join("Train/Happy/b.jpg"), &whole[..whole.len() / 2]).unwrap();
    let err = shard_err(t.path(), &["folder", "--name", "faces", "--root", "faces"]);
    assert!(err.contains("b.jpg") && err.contains("truncated JPEG"), "{err}");
    fs::write(f.join("Train/Happy/b.jpg"), &whole).unwrap();
    let fifo = std::ffi::CString::new(f.join("Train/Happy/pipe.png").display().to_string()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let err = shard_err(t.path(), &["folder", "--name", "faces", "--root", "faces"]);
    assert!(err.contains("pipe.png") && err.contains("not a regular file"), "{err}");
    shard_ok(t.path(), &["folder", "--name", "faces", "--root", "faces", "--on-error", "skip", "-q"]);
    assert_eq!(shards(&t.path().join("artifacts/shards/faces")).len(), 2);
}
