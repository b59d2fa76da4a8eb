//! The journal: a durable, embedded (SQLite) record of every step transition.
//!
//! A step's `started` record is committed before the step acts, and its `done`
//! record before anything relies on its effect, so a run killed at any instant
//! can be resumed from what the journal says. Records hold handles (accessors,
//! versions, nonces), never secret values: every text written passes through
//! [`crate::secret::redact`] (a reason quoting a server's echo of a secret is
//! stored with `[REDACTED]` in its place). The database and its `-wal`/`-shm`
//! files are 0600, their directory 0700.
//!
//! Writes go through one writer thread that commits whatever records are
//! waiting in a single transaction ("group commit"): each caller still waits
//! for its own record to be on disk (`synchronous=FULL`), but a thousand
//! concurrent callers share a handful of fsyncs.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub run_id: String,
    pub cred_id: String,
    /// `plan`, a step name (`stage` … `verify_dead`), or `outcome`.
    pub step: String,
    /// `started`, `done`, `failed` or `info`.
    pub status: String,
    pub detail: Value,
    pub at: String,
}

/// A run as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub mode: String,
    pub playbook: String,
    pub fingerprint: String,
    pub selection: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The final report (JSON) once the run finished.
    pub report: Option<Value>,
}

enum Cmd {
    Event { run_id: String, cred_id: String, step: String, status: String, detail: String },
    StartRun(RunRecord),
    FinishRun { id: String, finished_at: String, report: String },
}

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

pub struct Journal {
    path: PathBuf,
    tx: Mutex<mpsc::Sender<(Vec<Cmd>, Reply)>>,
    reader: Mutex<Connection>,
    /// Raised by the writer at the first write that failed (every later one is refused).
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The journal file's identity (device, inode), to see it removed or
/// replaced under the writer: SQLite goes on writing to an unlinked file,
/// so a state directory deleted mid-run would otherwise lose every record
/// while the run carried on as if they were kept.
fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

fn open_conn(path: &Path) -> Result<Connection> {
    let c = Connection::open(path).with_context(|| format!("opening journal {}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    // 64 MiB of pages kept in memory (the default 2 MiB made every insert of
    // a large run read index pages back from the file).
    c.pragma_update(None, "cache_size", -65536)?;
    Ok(c)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, mode TEXT NOT NULL, playbook TEXT NOT NULL, fingerprint TEXT NOT NULL,
  selection TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, report TEXT);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, cred_id TEXT NOT NULL,
  step TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL);
-- A run's records in order: an index on run_id holds the rowid (seq), so it
-- serves `WHERE run_id = ? ORDER BY seq` without a sort. The earlier index on
-- (run_id, cred_id, seq) cost an insert twice as much and no query used it.
DROP INDEX IF EXISTS events_run;
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id);
";

/// Test hook (cargo feature `crash-hook`, never in a release build):
/// `KEYSWEEP_CRASH_AT=<step>:<status>:<n>` aborts the process right after the
/// n-th matching record is durable, to prove resume from that point. In
/// process ([`Journal::open_crashing`]) the writer instead stops answering
/// from that record on, as a dead process would, and raises a flag, so that
/// a test can drop the run there and resume it.
#[cfg(feature = "crash-hook")]
struct CrashAt {
    step: String,
    status: String,
    after: u64,
    seen: u64,
    in_process: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

#[cfg(feature = "crash-hook")]
impl CrashAt {
    fn from_env() -> Option<CrashAt> {
        let v = std::env::var("KEYSWEEP_CRASH_AT").ok()?;
        let mut it = v.splitn(3, ':');
        let (step, status, n) = (it.next()?, it.next()?, it.next()?.parse().ok()?);
        Some(CrashAt { step: step.into(), status: status.into(), after: n, seen: 0, in_process: None })
    }

    /// Whether `batch` holds the record to crash after.
    fn reached(&mut self, batch: &[(Vec<Cmd>, Reply)]) -> bool {
        let mut now = false;
        for cmd in batch.iter().flat_map(|(cmds, _)| cmds) {
            if let Cmd::Event { step, status, .. } = cmd {
                if *step == self.step && *status == self.status {
                    self.seen += 1;
                    now |= self.seen >= self.after;
                }
            }
        }
        now
    }
}

#[cfg(not(feature = "crash-hook"))]
struct CrashAt;

#[cfg(not(feature = "crash-hook"))]
impl CrashAt {
    fn from_env() -> Option<CrashAt> {
        None
    }
    fn reached(&mut self, _batch: &[(Vec<Cmd>, Reply)]) -> bool {
        false
    }
}

/// Test hook for points between journal records (e.g. after a mint returned,
/// before the store write): `KEYSWEEP_CRASH_AT=<point>:reached:<n>`. Does
/// nothing without the cargo feature `crash-hook`.
pub fn crash_point(point: &str) {
    #[cfg(feature = "crash-hook")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEEN: AtomicU64 = AtomicU64::new(0);
        let Ok(v) = std::env::var("KEYSWEEP_CRASH_AT") else { return };
        let mut it = v.splitn(3, ':');
        let (Some(p), Some("reached"), Some(n)) = (it.next(), it.next(), it.next().and_then(|n| n.parse::<u64>().ok())) else { return };
        if p == point && SEEN.fetch_add(1, Ordering::SeqCst) + 1 >= n {
            eprintln!("keysweep: KEYSWEEP_CRASH_AT reached at {point}; aborting (test hook)");
            std::process::abort();
        }
    }
    #[cfg(not(feature = "crash-hook"))]
    let _ = point;
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        Self::open_with(path, CrashAt::from_env())
    }

    /// Opens the journal with an in-process crash after the `n`-th durable
    /// `step`/`status` record: from then on nothing more is written and no
    /// write is answered (the run hangs where a killed process would have
    /// stopped); the flag returned is raised at that moment.
    #[cfg(feature = "crash-hook")]
    pub fn open_crashing(path: &Path, step: &str, status: &str, n: u64) -> Result<(Journal, std::sync::Arc<std::sync::atomic::AtomicBool>)> {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let crash = CrashAt { step: step.into(), status: status.into(), after: n, seen: 0, in_process: Some(flag.clone()) };
        Ok((Self::open_with(path, Some(crash))?, flag))
    }

    fn open_with(path: &Path, crash: Option<CrashAt>) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::lock::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Created (or narrowed) 0600 before SQLite opens it: SQLite gives the
        // -wal and -shm files the database file's mode.
        crate::lock::open_private(path, false).with_context(|| format!("creating journal {}", path.display()))?;
        for side in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{side}", path.display()));
            if p.exists() {
                crate::lock::open_private(&p, false).with_context(|| format!("narrowing {} to 0600", p.display()))?;
            }
        }
        let mut writer = open_conn(path)?;
        writer.execute_batch(SCHEMA).context("creating journal schema")?;
        let reader = open_conn(path)?;
        let identity = file_id(path).with_context(|| format!("reading {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<(Vec<Cmd>, Reply)>();
        let mut crash = crash;
        let broken_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let raise = broken_flag.clone();
        let file = path.to_path_buf();
        std::thread::Builder::new()
            .name("keysweep-journal".into())
            .spawn(move || {
                // After an in-process crash: writes never answered.
                #[cfg_attr(not(feature = "crash-hook"), allow(unused_mut))]
                let mut dead = false;
                let mut hung: Vec<Reply> = vec![];
                // The first write that failed: every later one is refused
                // with it, so that a record nobody waited for
                // ([`Journal::note`]) is never missing from a journal that
                // goes on to hold later records.
                let mut broken: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                        if batch.len() >= 4096 {
                            break;
                        }
                    }
                    if dead {
                        hung.extend(batch.into_iter().map(|(_, r)| r));
                        continue;
                    }
                    let res = match &broken {
                        Some(e) => Err(format!("an earlier journal write failed ({e}); nothing more is written")),
                        None => match file_id(&file) {
                            Ok(id) if id == identity => write_batch(&mut writer, &batch).map_err(|e| format!("{e:#}")),
                            _ => Err(format!(
                                "the journal {} was removed or replaced while this run was writing it (was the state directory deleted?)",
                                file.display()
                            )),
                        },
                    };
                    if let (None, Err(e)) = (&broken, &res) {
                        broken = Some(e.clone());
                        raise.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    let crash_now = res.is_ok() && crash.as_mut().is_some_and(|c| c.reached(&batch));
                    if crash_now {
                        #[cfg(feature = "crash-hook")]
                        if let Some(flag) = crash.as_ref().and_then(|c| c.in_process.clone()) {
                            dead = true;
                            hung.extend(batch.into_iter().map(|(_, r)| r));
                            flag.store(true, std::sync::atomic::Ordering::SeqCst);
                            continue;
                        }
                        eprintln!("keysweep: KEYSWEEP_CRASH_AT reached; aborting (test hook)");
                        std::process::abort();
                    }
                    for (_, reply) in batch {
                        let _ = reply.send(res.clone());
                    }
                }
            })
            .context("starting journal writer")?;
        Ok(Journal { path: path.to_path_buf(), tx: Mutex::new(tx), reader: Mutex::new(reader), broken: broken_flag })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a write has failed: from then on nothing more is written,
    /// so nothing more should be started.
    pub fn is_broken(&self) -> bool {
        self.broken.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn submit(&self, cmds: Vec<Cmd>) -> Result<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.lock().expect("journal sender").send((cmds, reply)).map_err(|_| anyhow::anyhow!("journal writer stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("journal writer stopped"))?.map_err(|e| anyhow::anyhow!("journal write failed: {e}"))
    }

    /// Durably records one transition. Returns only once it is on disk.
    pub async fn record(&self, run_id: &str, cred_id: &str, step: &str, status: &str, detail: Value) -> Result<()> {
        self.submit(vec![Cmd::Event {
            run_id: run_id.into(),
            cred_id: cred_id.into(),
            step: step.into(),
            status: status.into(),
            detail: redact_json(&detail),
        }])
        .await
    }

    /// Waits until every record sent before is on disk (or their write failed).
    pub async fn sync(&self) -> Result<()> {
        self.submit(vec![]).await
    }

    /// Records one transition without waiting for it to be on disk: it is
    /// written, in order, no later than the next record anyone waits for
    /// (one writer, first in first out), and if it cannot be written no
    /// later record is. For a step's `done`, when the next thing the run
    /// does to any system waits for a `started` record first: a crash
    /// before it is on disk is a crash just before it was sent, which
    /// resume already handles (the step is done again, idempotently).
    pub fn note(&self, run_id: &str, cred_id: &str, step: &str, status: &str, detail: Value) -> Result<()> {
        let (reply, _) = tokio::sync::oneshot::channel();
        let cmd =
            Cmd::Event { run_id: run_id.into(), cred_id: cred_id.into(), step: step.into(), status: status.into(), detail: redact_json(&detail) };
        self.tx.lock().expect("journal sender").send((vec![cmd], reply)).map_err(|_| anyhow::anyhow!("journal writer stopped"))
    }

    /// Records many transitions in one transaction (the plan of a run).
    pub async fn record_many(&self, run_id: &str, events: Vec<(String, String, String, Value)>) -> Result<()> {
        let cmds = events
            .into_iter()
            .map(|(cred_id, step, status, detail)| Cmd::Event { run_id: run_id.into(), cred_id, step, status, detail: redact_json(&detail) })
            .collect();
        self.submit(cmds).await
    }

    pub async fn start_run(&self, run: RunRecord) -> Result<()> {
        self.submit(vec![Cmd::StartRun(run)]).await
    }

    pub async fn finish_run(&self, id: &str, finished_at: &str, report: &Value) -> Result<()> {
        self.submit(vec![Cmd::FinishRun { id: id.into(), finished_at: finished_at.into(), report: redact_json(report) }]).await
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let c = self.reader.lock().expect("journal reader");
        c.query_row(
            "SELECT id, mode, playbook, fingerprint, selection, started_at, finished_at, report FROM runs WHERE id = ?1",
            params![id],
            row_to_run,
        )
        .optional()
        .context("reading run")
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let c = self.reader.lock().expect("journal reader");
        let mut st = c.prepare(
            "SELECT id, mode, playbook, fingerprint, selection, started_at, finished_at, report FROM runs ORDER BY started_at DESC, id DESC",
        )?;
        let rows = st.query_map([], row_to_run)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The newest unfinished run in `mode` of the playbook with this fingerprint.
    pub fn unfinished(&self, fingerprint: &str, mode: &str) -> Result<Option<RunRecord>> {
        Ok(self.runs()?.into_iter().find(|r| r.finished_at.is_none() && r.fingerprint == fingerprint && r.mode == mode))
    }

    /// When each credential of `playbook` was last rotated, by any run
    /// (credential id → time of its `rotated` outcome).
    pub fn last_rotations(&self, playbook: &str) -> Result<std::collections::HashMap<String, String>> {
        let c = self.reader.lock().expect("journal reader");
        let mut st = c.prepare(
            "SELECT e.cred_id, MAX(e.at) FROM events e JOIN runs r ON r.id = e.run_id \
             WHERE e.step = 'outcome' AND r.playbook = ?1 AND json_extract(e.detail, '$.outcome.outcome') = 'rotated' \
             GROUP BY e.cred_id",
        )?;
        let rows = st.query_map(params![playbook], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest finished run of `playbook` in one of `modes`, other than `except`.
    pub fn previous_finished(&self, playbook: &str, modes: &[&str], except: &str) -> Result<Option<RunRecord>> {
        Ok(self.runs()?.into_iter().find(|r| r.finished_at.is_some() && r.playbook == playbook && modes.contains(&r.mode.as_str()) && r.id != except))
    }

    /// Every record of a run, in order, handed to `f` as text (credential,
    /// step, status, detail JSON, time) without building an [`Event`] each.
    pub fn fold(&self, run_id: &str, mut f: impl FnMut(&str, &str, &str, &str, &str)) -> Result<()> {
        let c = self.reader.lock().expect("journal reader");
        let mut st = c.prepare_cached("SELECT cred_id, step, status, detail, at FROM events WHERE run_id = ?1 ORDER BY seq")?;
        let mut rows = st.query(params![run_id])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| r.get_ref(i).and_then(|v| v.as_str().map_err(rusqlite::Error::from));
            f(text(0)?, text(1)?, text(2)?, text(3)?, text(4)?);
        }
        Ok(())
    }

    /// Every record of a run, in order.
    pub fn events(&self, run_id: &str) -> Result<Vec<Event>> {
        let c = self.reader.lock().expect("journal reader");
        let mut st = c.prepare("SELECT seq, run_id, cred_id, step, status, detail, at FROM events WHERE run_id = ?1 ORDER BY seq")?;
        let rows = st
            .query_map(params![run_id], |r| {
                let detail: String = r.get(5)?;
                Ok(Event {
                    seq: r.get(0)?,
                    run_id: r.get(1)?,
                    cred_id: r.get(2)?,
                    step: r.get(3)?,
                    status: r.get(4)?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                    at: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// A record's JSON text with every known secret value removed from its
/// strings (never from its keys or structure, which resume reads back).
fn redact_json(v: &Value) -> String {
    let mut v = v.clone();
    crate::report::redact_value(&mut v);
    v.to_string()
}

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let selection: String = r.get(4)?;
    let report: Option<String> = r.get(7)?;
    Ok(RunRecord {
        id: r.get(0)?,
        mode: r.get(1)?,
        playbook: r.get(2)?,
        fingerprint: r.get(3)?,
        selection: serde_json::from_str(&selection).unwrap_or_default(),
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn write_batch(conn: &mut Connection, batch: &[(Vec<Cmd>, Reply)]) -> Result<()> {
    let tx = conn.transaction()?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    {
        let mut ins = tx.prepare_cached("INSERT INTO events (run_id, cred_id, step, status, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for (cmds, _) in batch {
            for cmd in cmds {
                match cmd {
                    Cmd::Event { run_id, cred_id, step, status, detail } => {
                        ins.execute(params![run_id, cred_id, step, status, detail, now])?;
                    }
                    Cmd::StartRun(r) => {
                        tx.execute(
                            "INSERT OR IGNORE INTO runs (id, mode, playbook, fingerprint, selection, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![r.id, r.mode, r.playbook, r.fingerprint, serde_json::to_string(&r.selection)?, r.started_at],
                        )?;
                    }
                    Cmd::FinishRun { id, finished_at, report } => {
                        tx.execute("UPDATE runs SET finished_at = ?2, report = ?3 WHERE id = ?1", params![id, finished_at, report])?;
                    }
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        {
            let j = Journal::open(&p).unwrap();
            j.start_run(RunRecord {
                id: "r1".into(),
                mode: "run".into(),
                playbook: "p.yaml".into(),
                fingerprint: "f".into(),
                selection: vec!["tag=x".into()],
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: None,
                report: None,
            })
            .await
            .unwrap();
            let futs: Vec<_> = (0..200)
                .map(|i| {
                    let j = &j;
                    async move { j.record("r1", &format!("c{i}"), "stage", "started", json!({"n": i})).await }
                })
                .collect();
            for r in futures::future::join_all(futs).await {
                r.unwrap();
            }
        }
        let j = Journal::open(&p).unwrap();
        let ev = j.events("r1").unwrap();
        assert_eq!(ev.len(), 200);
        assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
        let run = j.unfinished("f", "run").unwrap().expect("unfinished run");
        assert_eq!(run.selection, vec!["tag=x".to_string()]);
        j.finish_run("r1", "2026-01-01T00:01:00Z", &json!({"ok": true})).await.unwrap();
        assert!(j.unfinished("f", "run").unwrap().is_none());
        assert_eq!(j.run("r1").unwrap().unwrap().report, Some(json!({"ok": true})));
    }

    #[tokio::test]
    async fn a_note_is_on_disk_before_the_next_record_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        let j = Journal::open(&p).unwrap();
        for i in 0..100 {
            j.note("r1", &format!("c{i}"), "stage", "done", json!({ "n": i })).unwrap();
        }
        j.record("r1", "last", "promote", "started", json!({})).await.unwrap();
        // Read by another connection, as a resumed run would.
        let other = Connection::open(&p).unwrap();
        let steps: Vec<(String, String)> = other
            .prepare("SELECT cred_id, step FROM events WHERE run_id = 'r1' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(steps.len(), 101);
        assert!(steps[..100].iter().enumerate().all(|(i, (c, s))| *c == format!("c{i}") && s == "stage"), "{steps:?}");
        assert_eq!(steps[100], ("last".to_string(), "promote".to_string()));
    }

    #[tokio::test]
    async fn after_a_write_fails_no_later_record_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        let j = Journal::open(&p).unwrap();
        j.record("r1", "a", "stage", "started", json!({})).await.unwrap();
        // The table goes away under the writer: the next write fails.
        let other = Connection::open(&p).unwrap();
        other.execute_batch("ALTER TABLE events RENAME TO events_gone; ").unwrap();
        j.note("r1", "a", "stage", "done", json!({})).unwrap();
        j.sync().await.expect_err("the note's write failed");
        assert!(j.is_broken());
        // Back in place: the writer still refuses, so the journal never
        // holds a later record without the one that failed.
        other.execute_batch("ALTER TABLE events_gone RENAME TO events;").unwrap();
        let e = j.record("r1", "a", "promote", "started", json!({})).await.expect_err("refused after a failed write");
        assert!(format!("{e:#}").contains("an earlier journal write failed"), "{e:#}");
        let n: i64 = other.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "only the record written before the failure");
    }

    #[tokio::test]
    async fn a_journal_file_removed_under_the_writer_refuses_every_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state").join("j.db");
        let j = Journal::open(&p).unwrap();
        j.record("r1", "a", "stage", "started", json!({})).await.unwrap();
        assert!(!j.is_broken());
        // The operator deletes the state directory mid-run.
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        let e = j.record("r1", "a", "promote", "started", json!({})).await.expect_err("a record into a deleted file");
        assert!(format!("{e:#}").contains("was removed or replaced"), "{e:#}");
        assert!(j.is_broken());
        // A new file at the same path is not this journal either.
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        drop(Journal::open(&p).unwrap());
        j.record("r1", "a", "promote", "started", json!({})).await.expect_err("refused after the file was replaced");
    }

    #[tokio::test]
    async fn records_never_hold_a_known_secret_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let p = state.join("journal.db");
        let v = format!("{}{}", "jrnl", "Secret\"7");
        let _s = crate::secret::SecretString::from(v.clone());
        let j = Journal::open(&p).unwrap();
        j.record("r1", "c", "stage", "failed", json!({ "reason": format!("HTTP 500 echo {v}") })).await.unwrap();
        j.finish_run("r1", "t", &json!({ "why": v })).await.unwrap();
        let ev = j.events("r1").unwrap();
        assert_eq!(ev[0].detail["reason"], "HTTP 500 echo [REDACTED]");
        drop(j);
        for (path, want) in [(state.clone(), 0o700), (p.clone(), 0o600)] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{}", path.display());
        }
        for side in ["-wal", "-shm"] {
            let f = PathBuf::from(format!("{}{side}", p.display()));
            if let Ok(m) = std::fs::metadata(&f) {
                assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
            }
        }
        for side in ["", "-wal"] {
            let bytes = std::fs::read(format!("{}{side}", p.display())).unwrap_or_default();
            assert!(!bytes.windows(10).any(|w| w == &v.as_bytes()[..10]), "journal{side} bytes hold the secret");
        }
    }
}
