//! Temp-file-and-rename writing, so readers see either the previous output or the complete new one.
//!
//! [`AtomicFile`] stages one file next to its destination (same folder, so the rename cannot cross
//! filesystems), fsyncs it and renames it into place on [`AtomicFile::commit`]; dropped without a commit
//! (error, panic, Ctrl-C unwinding) it deletes the temp file and the destination is untouched.
//! [`StagingDir`] does the same for a whole output folder (a dataset's shards plus manifest), and replaces
//! only a folder its stage owns: one that holds that stage's `manifest.json`, or an empty one. Anything else
//! at the destination (a user's images, another stage's output) is refused before anything is written.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::layout::MANIFEST_FILE;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A hidden sibling path unique to this process and call: `<dir>/.<name>.<tag>-<pid>-<n>`.
fn sibling(dest: &Path, tag: &str) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}

fn parent_of(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync a directory so a rename inside it survives a crash (no-op where directories cannot be opened).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A hidden temp file beside `dest` (`<dir>/.<name>.<random>.tmp`), unique per call and deleted if it is
/// dropped. Created with the mode `File::create` uses (0666 under the umask), not tempfile's private 0600:
/// outputs are data for the user and the next stage, and the rename keeps the temp file's mode.
fn temp_beside(dest: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(dest);
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(fs::Permissions::from_mode(0o666))
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

/// A file written beside its destination and renamed over it on commit.
pub struct AtomicFile {
    dest: PathBuf,
    out: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `dest` (its folder is created if missing). Nothing at `dest` changes until commit.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let tmp = temp_beside(&dest)?;
        Ok(Self { dest, out: BufWriter::with_capacity(1 << 20, tmp) })
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, fsyncs and renames the temp file over the destination.
    /// On failure (a full disk at the last flush, say) the temp file is removed and `dest` is as it was.
    pub fn commit(self) -> Result<()> {
        let tmp = self.out.into_inner().map_err(|e| {
            let (error, out) = e.into_parts();
            Error::io(out.get_ref().path(), error)
        })?;
        tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
        // A failed rename hands the temp file back; dropping it deletes it.
        tmp.persist(&self.dest).map_err(|e| Error::io(&self.dest, e.error))?;
        sync_dir(parent_of(&self.dest));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_bytes(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(|e| Error::io(f.out.get_ref().path(), e))?;
    f.commit()
}

/// For writers that take a path rather than bytes (libtorch's safetensors writer): `write` fills a hidden
/// sibling of `dest`, which is then fsynced and renamed over `dest`. If `write` fails, `dest` is as it was and
/// the sibling is removed.
pub fn write_by_path<E: std::fmt::Display>(
    dest: impl AsRef<Path>,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let dest = dest.as_ref();
    // Only the name is kept: the writer opens the path itself. The TempPath deletes it on every early return.
    let tmp = temp_beside(dest)?.into_temp_path();
    let synced = write(&tmp).map_err(|e| io::Error::other(e.to_string())).and_then(|()| File::open(&tmp)?.sync_all());
    synced.map_err(|e| Error::io(dest, e))?;
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    sync_dir(parent_of(dest));
    Ok(())
}

/// Writes `value` as pretty JSON to `dest` atomically.
pub fn write_json<T: serde::Serialize>(dest: impl AsRef<Path>, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::io(dest.as_ref(), e.into()))?;
    text.push('\n');
    write_bytes(dest, text.as_bytes())
}

/// Reads a JSON file written by [`write_json`] (or by hand): a parse error names the file and the line.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Invalid { path: path.into(), message: format!("line {}: {e}", e.line()) })
}

/// A folder built beside its destination and swapped into place on commit.
///
/// The swap is two renames (old away, new in); a crash between them leaves the old output under a hidden
/// `.name.old-*` sibling rather than losing it.
pub struct StagingDir {
    dest: PathBuf,
    tmp: PathBuf,
    stage: String,
    committed: bool,
}

/// Refuses `dest` unless it is absent, an empty folder, or a folder holding `stage`'s manifest.
pub(crate) fn check_owned(dest: &Path, stage: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Invalid {
            path: dest.to_path_buf(),
            message: format!(
                "{why}: `{stage}` replaces only its own output (a folder with its {MANIFEST_FILE}) or an empty \
                 folder, so it leaves this one alone; choose another output name or root, or move the folder away"
            ),
        })
    };
    let Ok(meta) = fs::symlink_metadata(dest) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return refuse("exists and is not a folder".into());
    }
    let mut entries = fs::read_dir(dest).map_err(|e| Error::io(dest, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let manifest = dest.join(MANIFEST_FILE);
    let owner = fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("stage").and_then(|s| s.as_str()).map(str::to_string));
    match owner {
        Some(o) if o == stage => Ok(()),
        Some(o) => refuse(format!("holds the output of `{o}`, not of `{stage}`")),
        None => refuse(format!("holds files but no {MANIFEST_FILE} written by `{stage}`")),
    }
}

/// The nearest folder above `dest` that a stage owns (it holds a `manifest.json` naming the stage: a
/// dataset's shards, text prototypes, a run), with that stage's name.
pub(crate) fn owning_stage(dest: &Path) -> Option<(PathBuf, String)> {
    let dest = std::path::absolute(dest).ok()?;
    dest.ancestors().skip(1).find_map(|dir| {
        let bytes = fs::read(dir.join(MANIFEST_FILE)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((dir.to_path_buf(), v.get("stage")?.as_str()?.to_string()))
    })
}

/// Refuses a user-chosen output file inside a folder a stage owns ([`owning_stage`]): the stages' own files
/// there are read by other stages and are rewritten only by their stage.
pub fn check_outside_stage_output(dest: &Path) -> Result<()> {
    match owning_stage(dest) {
        Some((dir, stage)) => Err(Error::Invalid {
            path: dest.to_path_buf(),
            message: format!(
                "inside {}, the output folder of `{stage}`; write it somewhere else (its files are that stage's own)",
                dir.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Removes staging folders beside `dest` that processes which no longer run left behind (a killed run).
fn remove_dead_staging(dest: &Path) {
    let (Some(name), Ok(entries)) = (dest.file_name(), fs::read_dir(parent_of(dest))) else {
        return;
    };
    let prefix = format!(".{}.staging-", name.to_string_lossy());
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|rest| rest.split('-').next()?.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Whether a process runs; where that cannot be told, it is assumed to run (nothing is removed).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

impl StagingDir {
    /// A staging folder for `stage`'s output at `dest`, after checking that `dest` may be replaced by it
    /// ([`check_owned`]) and clearing staging folders dead processes left beside it.
    pub fn create(dest: impl AsRef<Path>, stage: &str) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        check_owned(&dest, stage)?;
        let dir = parent_of(&dest);
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        remove_dead_staging(&dest);
        let tmp = sibling(&dest, "staging");
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self { dest, tmp, stage: stage.to_string(), committed: false })
    }

    /// Where to write the new folder's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Replaces the destination folder with the staged one.
    pub fn commit(mut self) -> Result<()> {
        // Again at the swap: the destination may have changed while the stage worked.
        check_owned(&self.dest, &self.stage)?;
        sync_dir(&self.tmp);
        let old = sibling(&self.dest, "old");
        let had_old = self.dest.exists();
        if had_old {
            fs::rename(&self.dest, &old).map_err(|e| Error::io(&self.dest, e))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if had_old {
                let _ = fs::rename(&old, &self.dest);
            }
            return Err(Error::io(&self.dest, e));
        }
        self.committed = true;
        sync_dir(parent_of(&self.dest));
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_by_path_replaces_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.bin");
        write_by_path(&dest, |p| fs::write(p, b"one")).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        let e = write_by_path(&dest, |p| {
            fs::write(p, b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("t.bin") && e.to_string().contains("disk full"), "{e}");
        assert_eq!(fs::read(&dest).unwrap(), b"one", "a failed write leaves the file as it was");
        assert_eq!(entries(dir.path()), vec!["t.bin"], "and no temporary behind");
    }

    #[test]
    fn a_failed_commit_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A folder with a file in it cannot be replaced by a rename: the commit's last step fails.
        let dest = dir.path().join("busy");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("keep"), b"x").unwrap();
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        assert!(f.commit().is_err());
        assert_eq!(entries(dir.path()), vec!["busy"], "no hidden temp file left beside it");
        assert_eq!(entries(&dest), vec!["keep"]);
    }

    #[test]
    fn outputs_inside_a_stage_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs/r1");
        fs::create_dir_all(run.join("sub")).unwrap();
        fs::write(run.join(MANIFEST_FILE), br#"{"stage": "train"}"#).unwrap();
        let e = check_outside_stage_output(&run.join("metrics.parquet")).unwrap_err().to_string();
        assert!(e.contains("metrics.parquet") && e.contains("`train`"), "{e}");
        assert!(check_outside_stage_output(&run.join("sub/p.csv")).is_err(), "nested folders too");
        assert!(check_outside_stage_output(&dir.path().join("runs/p.csv")).is_ok());
        // A manifest.json that no stage wrote (a user's own) does not make a folder a stage's.
        fs::write(dir.path().join("runs").join(MANIFEST_FILE), b"[1, 2]").unwrap();
        assert!(check_outside_stage_output(&dir.path().join("runs/p.csv")).is_ok());
    }

    #[test]
    fn commit_replaces_and_drop_keeps_previous() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.bin");
        write_bytes(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half of the new conte").unwrap();
            // dropped: an interrupted write
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["a.bin"], "temp file must be cleaned up");
        write_bytes(&dest, b"new").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["a.bin"]);
    }

    #[test]
    fn panic_mid_write_keeps_previous() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.json");
        write_json(&dest, &serde_json::json!({"v": 1})).unwrap();
        let d2 = dest.clone();
        let r = std::panic::catch_unwind(move || {
            let mut f = AtomicFile::create(&d2).unwrap();
            f.write_all(b"{\"v\": 2").unwrap();
            panic!("killed mid-write");
        });
        assert!(r.is_err());
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&dest).unwrap()).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(entries(dir.path()), ["m.json"]);
    }

    #[test]
    fn outputs_get_the_mode_a_plain_create_gives_not_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.bin"));
        write_json(&a, &1).unwrap();
        write_by_path(&b, |p| fs::write(p, b"x")).unwrap();
        assert_eq!((mode(&a), mode(&b)), (mode(&plain), mode(&plain)));
        assert_ne!(mode(&plain), 0o600, "the umask here makes the test unable to tell the two apart");
    }

    #[test]
    fn staging_dir_swaps_whole_folder() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("shards").join("ds");
        let s = StagingDir::create(&dest, "shard").unwrap();
        fs::write(s.path().join("part-0.parquet"), b"1").unwrap();
        owned_by(s.path(), "shard");
        s.commit().unwrap();
        assert_eq!(entries(&dest), ["manifest.json", "part-0.parquet"]);

        let s = StagingDir::create(&dest, "shard").unwrap();
        fs::write(s.path().join("part-9.parquet"), b"2").unwrap();
        drop(s); // failed run
        assert_eq!(entries(&dest), ["manifest.json", "part-0.parquet"]);
        assert_eq!(entries(&root.path().join("shards")), ["ds"]);

        let s = StagingDir::create(&dest, "shard").unwrap();
        fs::write(s.path().join("part-1.parquet"), b"3").unwrap();
        owned_by(s.path(), "shard");
        s.commit().unwrap();
        assert_eq!(entries(&dest), ["manifest.json", "part-1.parquet"]);
        assert_eq!(entries(&root.path().join("shards")), ["ds"]);
    }

    fn owned_by(dir: &Path, stage: &str) {
        fs::write(dir.join(MANIFEST_FILE), format!("{{\"stage\": \"{stage}\"}}")).unwrap();
    }

    #[test]
    fn only_the_stages_own_folder_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        // A user's folder: images and a label file, no manifest. It must survive.
        let data = root.path().join("x");
        fs::create_dir_all(data.join("FER2013Train")).unwrap();
        fs::write(data.join("FER2013Train/label.csv"), b"a.png,1").unwrap();
        let e = StagingDir::create(&data, "shard").err().expect("refused").to_string();
        assert!(e.contains("no manifest.json written by `shard`") && e.contains("x"), "{e}");
        assert_eq!(entries(&data), ["FER2013Train"]);
        // Another stage's output is refused too.
        let text = root.path().join("t");
        fs::create_dir_all(&text).unwrap();
        owned_by(&text, "embed-text");
        let e = StagingDir::create(&text, "shard").err().expect("refused").to_string();
        assert!(e.contains("output of `embed-text`"), "{e}");
        // Its own output, an empty folder and a missing one are fine.
        let own = root.path().join("own");
        fs::create_dir_all(&own).unwrap();
        StagingDir::create(&own, "shard").unwrap().commit().unwrap();
        owned_by(&own, "shard");
        StagingDir::create(&own, "shard").unwrap();
        StagingDir::create(root.path().join("new"), "shard").unwrap();
        // A file where the folder belongs.
        fs::write(root.path().join("f"), b"1").unwrap();
        assert!(StagingDir::create(root.path().join("f"), "shard").is_err());
    }

    #[test]
    fn the_ownership_check_repeats_at_the_swap() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("d");
        let s = StagingDir::create(&dest, "shard").unwrap();
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("precious.txt"), b"keep").unwrap();
        assert!(s.commit().is_err());
        assert_eq!(fs::read(dest.join("precious.txt")).unwrap(), b"keep");
    }

    #[test]
    fn staging_left_by_a_dead_process_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("ferplus");
        // pid 0 is never a user process that /proc lists, so it counts as dead.
        let dead = root.path().join(".ferplus.staging-0-0");
        let other = root.path().join(".other.staging-0-0");
        fs::create_dir_all(&dead).unwrap();
        fs::create_dir_all(&other).unwrap();
        let s = StagingDir::create(&dest, "shard").unwrap();
        assert!(!dead.exists(), "the dead process's staging folder is cleaned");
        assert!(other.exists(), "another output's staging folder is not touched");
        drop(s);
    }
}
