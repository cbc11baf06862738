//! The stages under faults and hostile inputs, through the real binary: nothing a stage wrote is replaced by
//! another command's output, signals stop runs with a checkpoint and leave no process behind, and odd
//! inputs are named instead of hanging or being read as something else.

use std::path::Path;

use exchange::layout;
use test_support::tiny;

use super::use_model::{ok, train_bin, trained};

/// `train predict <images> --out OUT` for the run under `run`.
fn predict(root: &Path, run: &Path, inputs: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec!["predict".to_string(), "--run".into(), run.display().to_string()];
    args.extend(["--device".into(), "cpu".into(), "--out".into(), out.display().to_string()]);
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    train_bin(root, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn failed(o: std::process::Output) -> String {
    let t = test_support::text(&o);
    assert!(!o.status.success(), "should have failed:\n{t}");
    t
}

/// predict's `--out` replaces only an earlier prediction file: a run's metrics, a split, a file inside a run
/// folder or a user's own CSV are refused and stay byte for byte as they were.
#[test]
fn predict_never_replaces_a_file_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = trained(root);
    let imgs = root.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::write(imgs.join("a.png"), tiny::png(2, 7)).unwrap();
    let metrics = layout::run::metrics(&run);
    let split = layout::split_file(&root.join("splits"), tiny::SPLIT);
    let notes = root.join("notes.csv");
    std::fs::write(&notes, "subject,score\n1,2\n").unwrap();
    let keep = [&metrics, &split, &notes].map(|p| (p.clone(), std::fs::read(p).unwrap()));
    for (out, says) in [
        (metrics.clone(), "output folder of `train`"),
        (run.join("predictions.csv"), "output folder of `train`"),
        (split.clone(), "is not a prediction file"),
        (notes.clone(), "is not a prediction file"),
    ] {
        let t = failed(predict(root, &run, &[&imgs], &out));
        assert!(t.contains(says) && t.contains(&out.display().to_string()), "{}: {t}", out.display());
    }
    for (p, bytes) in keep {
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{} changed", p.display());
    }
    // Its own earlier output is replaced, in either format.
    for name in ["pred.csv", "pred.parquet"] {
        ok(predict(root, &run, &[&imgs], &root.join(name)));
        ok(predict(root, &run, &[&imgs], &root.join(name)));
    }
}

/// Signals to the `--nproc 2` launcher: SIGTERM and SIGINT are passed on (both ranks stop after a checkpoint,
/// exit 130); after SIGKILL of the launcher the ranks stop by themselves. No rank outlives it by more than a
/// minute, and each time the next round resumes the run (its lock was released, a checkpoint is there).
#[test]
fn the_launchers_signals_reach_its_ranks_and_none_is_orphaned() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    super::run::write_data(root, false);
    let sets = ["schedule.epochs=1", "schedule.steps_per_epoch=100000", "run.checkpoint_every=1"];
    let latest = root.join("runs/sig/checkpoints/latest.json");
    let step = || -> u64 {
        std::fs::read_to_string(&latest)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["step"].as_u64())
            .unwrap_or(0)
    };
    let gone = |pid: u32| !Path::new(&format!("/proc/{pid}")).exists() || zombie(pid);
    for (round, signal) in [libc::SIGTERM, libc::SIGKILL, libc::SIGINT].into_iter().enumerate() {
        let extra: &[&str] = if round == 0 { &["--nproc", "2"] } else { &["--nproc", "2", "--resume"] };
        let mut launcher = super::run::command(root, "sig", &sets, extra).spawn().unwrap();
        let t0 = Instant::now();
        let ranks = loop {
            let r = super::run::ranks_of(launcher.id());
            if r.len() == 2 {
                break r;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "round {round}: the ranks did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        // Training is under way once the ranks have run for a while (joined, data loaded, stepping).
        std::thread::sleep(Duration::from_secs(4));
        let before = step();
        unsafe { libc::kill(launcher.id() as i32, signal) };
        let status = launcher.wait().unwrap();
        if signal != libc::SIGKILL {
            assert_eq!(status.code(), Some(130), "round {round}: the launcher reports the interruption");
        }
        let t0 = Instant::now();
        while !ranks.iter().all(|(pid, _)| gone(*pid)) {
            assert!(t0.elapsed() < Duration::from_secs(60), "round {round} (signal {signal}): ranks still running");
            std::thread::sleep(Duration::from_millis(100));
        }
        // After SIGKILL the ranks are told by the kernel, not by the launcher; what is asked of them is to
        // stop and release the run (the next round resumes it), a checkpoint being best effort.
        if signal != libc::SIGKILL {
            assert!(step() > before, "round {round} (signal {signal}): the ranks wrote a checkpoint as they stopped");
        }
    }
}

/// Whether `pid` has exited but was not yet reaped by its parent.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).map(|st| st == "Z"))
        .unwrap_or(true)
}

/// A rank whose MASTER_PORT is held by a program that is no c10d store stops within `--dist-timeout` with a
/// message that names the port, without libtorch's C++ backtrace; a timeout of 0 is refused.
#[test]
fn a_foreign_server_on_master_port_fails_in_time() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    super::run::write_data(root, false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds connections, never answers: what an HTTP server does to a store client's request.
    std::thread::spawn(move || {
        let _held: Vec<_> = listener.incoming().collect();
    });
    let t0 = Instant::now();
    let o = super::run::command(root, "foreign", &[], &["--dist-timeout", "3"])
        .envs([("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", &port.to_string())])
        .output()
        .unwrap();
    let took = t0.elapsed();
    let t = failed(o);
    assert!(took < Duration::from_secs(20), "took {took:?}:\n{t}");
    assert!(t.contains("rank 1 of 2 could not join the group") && t.contains(&port.to_string()), "{t}");
    assert!(!t.contains("frame #") && !t.contains("Exception raised from"), "{t}");
    let t = failed(super::run::command(root, "zero", &[], &["--dist-timeout", "0"]).output().unwrap());
    assert!(t.contains("--dist-timeout"), "{t}");
}

/// A JPEG cut in half is named and skipped (not read with grey rows); a folder linked back up the tree is
/// searched once; a FIFO named like an image is skipped, not read forever. One readable image, one row.
#[test]
fn predict_names_odd_inputs_and_does_not_hang() {
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = trained(root);
    let imgs = root.join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    std::fs::write(imgs.join("a.png"), tiny::png(2, 7)).unwrap();
    let face = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 60]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&face).unwrap();
    std::fs::write(imgs.join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    symlink("..", imgs.join("sub/up")).unwrap();
    symlink(".", imgs.join("again")).unwrap();
    symlink(".", imgs.join("more")).unwrap();
    let fifo = std::ffi::CString::new(imgs.join("pipe.png").display().to_string()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let out = root.join("odd.parquet");
    let mut args = vec!["predict".to_string(), "--run".into(), run.display().to_string()];
    args.extend(["--device", "cpu", "--json", "--out"].map(String::from));
    args.extend([out.display().to_string(), imgs.display().to_string()]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(root)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("predict still running after 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = ok(child.wait_with_output().unwrap());
    assert!(t.contains("cut.jpg") && t.contains("truncated JPEG"), "{t}");
    assert!(t.contains("pipe.png") && t.contains("not a regular file"), "{t}");
    let rows: Vec<exchange::schema::prediction::PredictionRow> = exchange::parquet_io::read_table(&out).unwrap();
    assert_eq!(rows.len(), 1, "{t}");
    assert!(rows[0].id.ends_with("a.png"));
}

/// A small tmpfs at `dir` with about `free` bytes left, or `None` (and a loud line) where this process cannot
/// mount one (not root, or no CAP_SYS_ADMIN): the disk-full cases need a real full filesystem.
pub(crate) fn nearly_full_tmpfs(dir: &Path, free: u64) -> Option<TmpfsGuard> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED (disk-full case): cannot mount a tmpfs here (needs root); {} not tested", dir.display());
        return None;
    }
    let guard = TmpfsGuard(dir.to_path_buf());
    std::fs::write(dir.join("filler"), vec![7u8; (1 << 20) - free as usize]).unwrap();
    Some(guard)
}

/// Unmounts the tmpfs when the test ends, pass or fail.
pub(crate) struct TmpfsGuard(std::path::PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `train export` onto a full disk: an error naming the file (no abort, exit 1), and no temp file left.
#[test]
fn export_to_a_full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = trained(root);
    let Some(_mounted) = nearly_full_tmpfs(&root.join("full"), 16 << 10) else { return };
    let out = root.join("full/exported");
    let args = ["export", "--run", run.to_str().unwrap(), "--device", "cpu", "--out", out.to_str().unwrap()];
    let o = train_bin(root, &args);
    let code = o.status.code();
    let t = failed(o);
    assert_eq!(code, Some(1), "an error, not an abort:\n{t}");
    assert!(t.contains("No space left on device") && t.contains("exported"), "{t}");
    let left: Vec<String> = std::fs::read_dir(&out)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| !n.starts_with('.')), "temp files left behind: {left:?}");
}

/// predict of a 2-class run on the 8-class split scores only the faces of the run's two classes (what
/// `evaluate` does) and says how many of other classes it left out, instead of an accuracy over all faces.
#[test]
fn predict_scores_only_the_runs_classes() {
    use exchange::parquet_io::{read_table, write_table};
    use exchange::schema::split::SplitRow;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tiny::write(root, false).unwrap();
    let split8 = layout::split_file(&root.join("splits"), tiny::SPLIT);
    let two: Vec<SplitRow> = read_table::<SplitRow>(&split8)
        .unwrap()
        .into_iter()
        .filter(|r| r.id[1..].parse::<usize>().unwrap() % tiny::CLASSES < 2)
        .collect();
    let split2 = root.join("splits/two.parquet");
    let meta =
        [(exchange::keys::DATASET, tiny::DATASET.to_string()), (exchange::keys::CLASSES, "neutral,happiness".into())];
    write_table(&split2, &two, &meta).unwrap();
    let run = super::use_model::trained_on(root, &split2, "two");
    let out = root.join("p.parquet");
    let shards = layout::shard_dir(&root.join("shards"), tiny::DATASET);
    let args = [
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--device",
        "cpu",
        "--shards",
        shards.to_str().unwrap(),
        "--split",
        split8.to_str().unwrap(),
        "--role",
        "test",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    let t = ok(train_bin(root, &args));
    let summary: serde_json::Value = serde_json::from_str(t.lines().last().unwrap()).unwrap();
    let rows: Vec<exchange::schema::prediction::PredictionRow> = read_table(&out).unwrap();
    let mine: Vec<_> = rows.iter().filter(|r| matches!(r.label.as_deref(), Some("neutral" | "happiness"))).collect();
    let right = mine.iter().filter(|r| r.label.as_deref() == Some(r.predicted.as_str())).count();
    assert_eq!(summary["scored"], mine.len(), "{t}");
    assert_eq!(summary["accuracy"].as_f64().unwrap(), right as f64 / mine.len() as f64, "{t}");
    let others: u64 = summary["other_classes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(others as usize, rows.len() - mine.len(), "{t}");
}

/// `export` (and `evaluate`, `predict`: the same opening) of a run still in its first epoch says that it is
/// being trained, instead of suggesting a `--snapshot last` that its lock would refuse.
#[test]
fn a_run_in_its_first_epoch_is_named_as_being_trained() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    super::run::write_data(root, false);
    let sets = ["schedule.epochs=1", "schedule.steps_per_epoch=100000"];
    let mut child = super::run::command(root, "busy", &sets, &[]).spawn().unwrap();
    let run = root.join("runs/busy");
    let t0 = Instant::now();
    while !run.join(layout::run::INFO_FILE).is_file() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for snapshot in ["best", "last"] {
        let args =
            ["export", "--run", run.to_str().unwrap(), "--device", "cpu", "--snapshot", snapshot, "--out", "exp"];
        let t = failed(train_bin(root, &args));
        assert!(t.contains("is being trained (pid") && t.contains("first epoch"), "{snapshot}: {t}");
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().unwrap();
}

/// Settings no machine here can hold are refused at once, with the numbers, before a folder is made or a face
/// loaded: a batch of 10⁸ faces, 100,000 loader threads, 1024-px faces in batches of 64 on the CPU.
#[test]
fn settings_the_machine_cannot_hold_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    super::run::write_data(root, false);
    for (sets, want) in [
        (&["schedule.batch_labeled=100000000"][..], "schedule.batch_labeled = 100000000"),
        (&["run.loader_threads=100000"][..], "run.loader_threads = 100000"),
        (
            &["model.image_size=1024", "schedule.batch_labeled=64", "schedule.batch_unlabeled=64"][..],
            "model.image_size = 1024",
        ),
    ] {
        let t0 = std::time::Instant::now();
        let t = super::run::cli_err(root, "huge", sets, &[]);
        assert!(t.contains(want), "{sets:?}: {t}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{sets:?}: refused only after {:?}", t0.elapsed());
    }
    assert!(!root.join("runs/huge").exists(), "nothing written for a refused config");
}
