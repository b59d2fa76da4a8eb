//! The state directory: one mutating process at a time, and private files.
//!
//! `run` and `resume` hold an exclusive `flock` on `<state dir>/lock` for
//! their whole life, and write who holds it (pid, host, run id, start time)
//! into that file. A second process finds the lock taken and names the holder.
//! The kernel releases a `flock` when its holder dies (even by `kill -9`), so
//! a lock file left by a dead process is simply taken over; its contents are
//! only a description, never the lock itself.
//!
//! Everything keysweep writes under the state directory is for the invoking
//! user only: directories 0700, files 0600 ([`create_private_dir`],
//! [`write_private`], [`private_umask`] for what libraries create).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Makes every file this process creates 0600 and directory 0700 (unless
/// created with an explicit narrower mode), including SQLite's journal files.
pub fn private_umask() {
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no failure mode and no side effects.
    unsafe { libc::geteuid() }
}

/// Narrows `path` to `mode` if it is ours and wider than that.
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let m = std::fs::metadata(path)?;
    if m.uid() == euid() && m.permissions().mode() & 0o777 & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700; narrows an existing
/// `dir` of ours to 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700)
}

/// Opens (creating if needed) `path` for writing with mode 0600, narrowing an
/// existing file of ours to 0600.
pub fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(truncate).mode(0o600).open(path)?;
    tighten(path, 0o600)?;
    Ok(f)
}

/// Narrows everything of ours under `dir` (not following symlinks): directories
/// to 0700, files to 0600 — state written by an older keysweep, or by hand.
pub fn narrow_tree(dir: &Path) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p)?;
        if m.is_dir() {
            tighten(&p, 0o700)?;
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        } else if m.is_file() {
            tighten(&p, 0o600)?;
        }
    }
    Ok(())
}

/// Writes `contents` to `path` (replacing it), mode 0600.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut f = open_private(path, true)?;
    f.write_all(contents.as_ref())?;
    f.flush()
}

/// Writes `path` atomically with `mode`: a new temporary file beside it
/// (created with `mode`, never wider), synced, renamed over `path`. A reader
/// sees the old contents or the new, never part of them.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>, mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed it; set exactly `mode`.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents.as_ref())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Who holds a state directory, as written into its lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// Set once the run is known (a resumed run's id, or the new one's).
    pub run_id: Option<String>,
    pub command: String,
    pub started_at: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let run = self.run_id.as_deref().map(|r| format!("run {r}")).unwrap_or_else(|| "run id not chosen yet".into());
        write!(f, "pid {} on host {} ({run}, `keysweep {}` started {})", self.pid, self.host, self.command, self.started_at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state directory {dir} is in use by {holder}; wait for it to finish, or give this run another --state-dir \
         (if that process is gone, its lock is released and the next run takes it over)"
    )]
    Held { dir: String, holder: String },
    #[error("cannot lock the state directory {dir}: {source}; check that it is a writable local directory")]
    Io { dir: String, source: std::io::Error },
}

/// An exclusive lock on a state directory, released when dropped (or when
/// the process ends, however it ends).
pub struct StateLock {
    file: File,
    path: PathBuf,
    holder: Holder,
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The lock file of a state directory.
pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lock")
}

/// Takes the state directory's lock without waiting, for `command`.
pub fn acquire(state_dir: &Path, command: &str) -> Result<StateLock, LockError> {
    let dir = state_dir.display().to_string();
    let io = |source| LockError::Io { dir: dir.clone(), source };
    create_private_dir(state_dir).map_err(io)?;
    let path = lock_path(state_dir);
    let file = open_private(&path, false).map_err(io)?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(err));
        }
        return Err(LockError::Held { dir, holder: read_holder(&path) });
    }
    let holder = Holder {
        pid: std::process::id(),
        host: hostname(),
        run_id: None,
        command: command.into(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let mut lock = StateLock { file, path, holder };
    lock.write_holder().map_err(io)?;
    if let Err(e) = narrow_tree(state_dir) {
        // Not worth refusing a rotation over; say so.
        eprintln!("keysweep: warning: could not narrow {} to 0700/0600: {e}; check its permissions", state_dir.display());
    }
    Ok(lock)
}

/// What the holder wrote; it may be mid-write for a moment after taking the lock.
fn read_holder(path: &Path) -> String {
    let mut last = String::new();
    for _ in 0..20 {
        let mut s = String::new();
        if File::open(path).and_then(|mut f| f.read_to_string(&mut s)).is_ok() {
            if let Ok(h) = serde_json::from_str::<Holder>(&s) {
                return h.to_string();
            }
        }
        last = s;
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = last;
    "another keysweep process (it has not written its details yet)".into()
}

impl StateLock {
    fn write_holder(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string(&self.holder).expect("holder serializes");
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }

    /// Records the run this process works on, for a second process to name.
    pub fn set_run_id(&mut self, run_id: &str) -> std::io::Result<()> {
        self.holder.run_id = Some(run_id.into());
        self.write_holder()
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // The description stays (the last holder, for whoever looks); only the lock is what counts.
        // SAFETY: unlocking a descriptor we own (closing it would unlock too).
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// The lock this process holds for its whole life (`run`, `resume`).
static HELD: Mutex<Option<StateLock>> = Mutex::new(None);

/// Takes the state directory's lock for the rest of the process.
pub fn hold(state_dir: &Path, command: &str) -> Result<(), LockError> {
    let lock = acquire(state_dir, command)?;
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
    Ok(())
}

/// Names the run in the held lock's file (no-op when no lock is held).
pub fn set_run_id(run_id: &str) {
    if let Some(l) = HELD.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Err(e) = l.set_run_id(run_id) {
            tracing::warn!("could not record run {run_id} in {}: {e}", l.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder_and_a_released_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut first = acquire(&state, "run").unwrap();
        first.set_run_id("20260101T000000.000Z-abc123").unwrap();
        let err = acquire(&state, "run").err().expect("second lock must fail").to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains(&format!("host {}", hostname())), "{err}");
        assert!(err.contains("run 20260101T000000.000Z-abc123"), "{err}");
        drop(first);
        let again = acquire(&state, "resume").unwrap();
        assert_eq!(again.holder().command, "resume");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&lock_path(&state)), 0o600);
    }

    #[test]
    fn private_files_and_dirs_are_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&f, "y").unwrap();
        // An older state dir: a report directory and file readable by others.
        let old = d.join("runs").join("r1");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(old.join("report.json"), "{}").unwrap();
        std::fs::set_permissions(old.join("report.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(acquire(&d, "run").unwrap());
        assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(old.join("report.json")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "y");
    }
}
