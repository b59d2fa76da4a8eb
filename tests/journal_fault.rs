//! The journal fails in the middle of a real run.
//!
//! The real binary rotates and revokes a mixed OpenBao estate (20 tokens, 10
//! AppRole secret-ids, 18 KV secrets, two revocations, kinds interleaved,
//! three credentials at a time). Once a few outcomes are on disk (polled
//! read-only from here), the journal's writes are made to fail from outside
//! the process:
//! - a trigger created by another connection, `RAISE(ABORT, …)` before every
//!   insert into `events` (or before the first insert of one `step`/`status`,
//!   to choose where the failure lands). To the journal's writer this is
//!   what a full disk or an I/O error is: a batch whose INSERT fails inside
//!   its transaction, rolled back, while reads still work;
//! - a real full disk: the state directory on a tmpfs of its own, filled up,
//!   so that SQLite's next write fails with ENOSPC (SQLITE_FULL); run only
//!   where a tmpfs can be mounted (root with CAP_SYS_ADMIN);
//! - the `events` table renamed away: reads fail as well as writes.
//!
//! Not used, because they do not fail the writer here: permissions (SQLite
//! holds its descriptors open), a replaced or deleted file (its writes go on
//! into the unlinked file, unnoticed), another process holding the write
//! lock (fails the writer only after its 30 s busy timeout).
//!
//! Checked after the failure, from OpenBao directly (never from keysweep's
//! counters): the exit status is 3 (the journal unwritable); the last line
//! names the journal failure and its cause; what the run said each credential
//! ended as agrees with the journal; every credential it said was `rotated`
//! or `revoked` has its old secret dead; nobody is locked out (the value each
//! credential's store says is current works); no secret value is in stdout,
//! stderr or any file under the state directory. Then either the fault is
//! undone and the same command resumes the run, or the operator deletes the
//! state directory and a fresh run works from what the claims in the store
//! record; both must end with exit 0, every old secret dead, each store's
//! secret working, one live minted secret per credential, no KV secret
//! rotated more often than the runs account for, and no secret leaked.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::canary::Canary;
use common::*;
use serde_json::{json, Value};

/// Tokens, secret-ids, KV secrets (and one revocation of each kind).
const KINDS: (usize, usize, usize) = (20, 10, 18);
const CONCURRENCY: &str = "3";
/// Outcomes on disk before the journal fails.
const BEFORE_FAULT: usize = 8;
/// The words of the injected failure: the run must pass them on.
const CAUSE: &str = "journal fault injected by the test";

fn outcome_count(journal: &Path) -> usize {
    rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM events WHERE step = 'outcome'", [], |r| r.get::<_, i64>(0)).ok())
        .unwrap_or(0) as usize
}

/// Each credential's outcome as the journal holds it.
fn journal_outcomes(journal: &Path) -> BTreeMap<String, String> {
    let c = rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let table = events_table(&c);
    let mut st =
        c.prepare(&format!("SELECT cred_id, json_extract(detail, '$.outcome.outcome') FROM {table} WHERE step = 'outcome' ORDER BY seq")).unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap().map(|r| r.unwrap()).collect()
}

/// How the journal's writes are made to fail, from outside the process.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A trigger refuses every insert into `events` from now on.
    Refuse,
    /// A trigger refuses the first `step`/`status` record from now on (the
    /// records before it are written; after it the writer refuses all).
    RefuseAt(&'static str, &'static str),
    /// The file system holding the state directory (a tmpfs of its own) is
    /// filled up: SQLite's next write that needs a new block fails with
    /// ENOSPC (SQLITE_FULL).
    DiskFull,
    /// The `events` table renamed away: the journal's reads fail as well as
    /// its writes (as on an I/O error or a damaged file).
    Unreadable,
    /// The operator deletes the state directory mid-run. SQLite would go on
    /// writing to the unlinked file; the writer sees the file gone.
    Deleted,
}

impl Fault {
    fn inject(self, state: &Path) {
        let journal = state.join("journal.db");
        let sql = match self {
            Fault::Refuse => String::new(),
            Fault::RefuseAt(step, status) => format!("WHEN NEW.step = '{step}' AND NEW.status = '{status}'"),
            Fault::DiskFull => {
                fill(&state.parent().unwrap().join("filler"));
                return;
            }
            Fault::Unreadable => format!("ALTER TABLE events RENAME TO {GONE};"),
            Fault::Deleted => {
                // SQLite may add its -wal or -shm while the tree is removed.
                for _ in 0..100 {
                    if std::fs::remove_dir_all(state).is_ok() {
                        return;
                    }
                }
                panic!("could not delete {}", state.display());
            }
        };
        let sql = match self {
            Fault::Unreadable => sql,
            _ => format!("CREATE TRIGGER test_fault BEFORE INSERT ON events {sql} BEGIN SELECT RAISE(ABORT, '{CAUSE}'); END;"),
        };
        let c = rusqlite::Connection::open(journal).unwrap();
        // Keysweep's writer commits batch after batch: with SQLite's own
        // busy handler (sleeps of up to 100 ms) this schema change waited for
        // a gap until the run was over. Retried every 0.2 ms it takes the next.
        c.busy_handler(Some(|n| {
            std::thread::sleep(Duration::from_micros(200));
            n < 50_000
        }))
        .unwrap();
        c.execute_batch(&sql).unwrap();
    }

    fn repair(self, state: &Path) {
        let sql = match self {
            Fault::DiskFull => {
                std::fs::remove_file(state.parent().unwrap().join("filler")).unwrap();
                return;
            }
            Fault::Unreadable => format!("ALTER TABLE {GONE} RENAME TO events;"),
            Fault::Deleted => panic!("a deleted journal is not repaired: the next run starts afresh"),
            _ => "DROP TRIGGER test_fault;".to_string(),
        };
        let c = rusqlite::Connection::open(state.join("journal.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch(&sql).unwrap();
    }

    /// What the run's last line (`keysweep: error: …`) must say: that the
    /// journal failed, and the cause.
    fn final_words(self) -> [&'static str; 2] {
        match self {
            Fault::DiskFull => ["journal write failed", "database or disk is full"],
            Fault::Unreadable => ["reading the journal", "no such table: events"],
            Fault::Deleted => ["journal write failed", "was removed or replaced while this run was writing it"],
            _ => ["journal write failed", CAUSE],
        }
    }
}

/// Where [`Fault::Unreadable`] moves the journal's records.
const GONE: &str = "events_gone";

/// The journal's table of records: `events`, or where the fault moved it.
fn events_table(c: &rusqlite::Connection) -> &'static str {
    let moved: i64 = c.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [GONE], |r| r.get(0)).unwrap();
    if moved > 0 {
        GONE
    } else {
        "events"
    }
}

/// Writes `path` until the file system has no room left.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
}

/// A tmpfs of `size` mounted at `at` for as long as it lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out =
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(at).output().unwrap();
        assert!(out.status.success(), "mount a tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(at.to_path_buf())
    }
}

/// Why a tmpfs cannot be mounted here, if it cannot (mounting needs root
/// with CAP_SYS_ADMIN; many containers and CI runners have neither).
fn cannot_mount() -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(dir.path()).output();
    match out {
        Ok(o) if o.status.success() => {
            let _ = std::process::Command::new("umount").arg(dir.path()).status();
            None
        }
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Some(format!("mount: {e}")),
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A child's stdout and stderr, read on threads of their own (a full pipe
/// would stall the run), and the output once it exits; killed after `limit`.
fn collect(mut child: Child, limit: Duration) -> Output {
    let mut readers = vec![];
    for mut pipe in [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())] {
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![];
            let _ = pipe.read_to_end(&mut buf);
            buf
        }));
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = readers.pop().unwrap().join().unwrap();
    let stdout = readers.pop().unwrap().join().unwrap();
    Output { status, stdout, stderr }
}

fn run_cmd(state: &Path, pb: &Path) -> std::process::Command {
    let mut c = keysweep(state);
    c.args(["run", pb.to_str().unwrap(), "--concurrency", CONCURRENCY]).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Live tokens keysweep minted, counted per credential id (their nonce is
/// `<run>/<credential id>`): every accessor OpenBao holds looked up, over
/// one keep-alive client of the test's own, 16 at a time.
fn live_minted() -> HashMap<String, usize> {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let vd = common::independent::Vd::new();
        let (s, l) = vd.call_as(ROOT_TOKEN, "LIST", "auth/token/accessors", None).await;
        assert_eq!(s, 200, "listing the token accessors: {l}");
        let accessors: Vec<Value> = l["data"]["keys"].as_array().cloned().unwrap_or_default();
        let looked: Vec<(u16, Value)> = futures::stream::iter(accessors)
            .map(|a| vd.call_as(ROOT_TOKEN, "POST", "auth/token/lookup-accessor", Some(json!({ "accessor": a }))))
            .buffer_unordered(16)
            .collect()
            .await;
        let mut n = HashMap::new();
        for (s, d) in looked {
            if let Some(id) = d["data"]["meta"]["keysweep_nonce"].as_str().filter(|_| s == 200).and_then(|n| n.rsplit_once('/')).map(|(_, id)| id) {
                *n.entry(id.to_string()).or_default() += 1;
            }
        }
        n
    })
}

/// What the run told the operator on stderr: `keysweep: [n/N] <id>: <outcome> …`.
fn told(stderr: &str) -> BTreeMap<String, String> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("keysweep: [")?;
            let (_, rest) = rest.split_once("] ")?;
            let (id, rest) = rest.split_once(": ")?;
            Some((id.to_string(), rest.split_whitespace().next()?.to_string()))
        })
        .collect()
}

/// A seeded estate whose credential entries alternate kinds (token,
/// secret-id, KV secret, …, the two revocations among the first dozen), so
/// that the credentials in flight when the journal fails are of every kind.
fn interleaved(b: &Bao, prefix: &str) -> Estate {
    let mut estate = Estate::seed(b, prefix, KINDS.0, KINDS.1, KINDS.2, true);
    let (head, entries) = estate.yaml.split_once("credentials:\n").unwrap();
    let mut groups: Vec<Vec<&str>> = vec![vec![]; 4];
    for l in entries.lines() {
        let g = if l.contains("action: revoke") {
            3
        } else if l.contains("kind: vault_token") {
            0
        } else if l.contains("kind: vault_approle_secret_id") {
            1
        } else {
            2
        };
        groups[g].push(l);
    }
    let revokes = std::mem::take(&mut groups[3]);
    let mut order: Vec<&str> = vec![];
    for i in 0..groups.iter().map(Vec::len).max().unwrap() {
        order.extend(groups[..3].iter().filter_map(|g| g.get(i)));
    }
    for (k, r) in revokes.into_iter().enumerate() {
        order.insert(BEFORE_FAULT + 1 + 2 * k, r);
    }
    assert_eq!(order.len(), entries.lines().count());
    estate.yaml = format!("{head}credentials:\n{}\n", order.join("\n"));
    estate
}

/// One rotated credential as OpenBao has it after the failed run.
struct Seen {
    /// The secret its store says is current is the old one.
    old_current: bool,
    old_alive: bool,
    pending: bool,
    /// A keysweep claim (lease) is kept in its pending entry.
    claimed: bool,
    /// KV secrets: the current version.
    version: u64,
}

impl Seen {
    fn describe(&self) -> &'static str {
        match (self.old_current, self.old_alive, self.pending) {
            (true, true, false) => "untouched",
            (true, true, true) => "staged, not promoted",
            (false, true, _) => "promoted, old not yet retired",
            (false, false, false) => "rotated",
            (false, false, true) => "rotated, pending left",
            (true, false, _) => "old current and dead (lockout)",
        }
    }
}

struct Faulted {
    fault: Fault,
    _mount: Option<Tmpfs>,
    _dir: tempfile::TempDir,
    prefix: String,
    estate: Estate,
    pb: PathBuf,
    state: PathBuf,
    /// Each credential to rotate as OpenBao had it after the failed run.
    seen: HashMap<String, Seen>,
    /// Every secret value seen so far (old, current, pending).
    secrets: Vec<String>,
}

/// The pending entry of a KV path: its secret value (recorded as a canary)
/// and whether it holds a claim. Read raw: the claim and nonce are no
/// secrets. A claim a failed run left must have its lease ended, so that
/// the next run (here or on another machine) settles it at once instead of
/// reporting the credential held for the next ten minutes.
fn pending_of(b: &Bao, path: &str) -> (Option<String>, bool) {
    let (s, p) = b.call("GET", &format!("secret/data/keysweep-pending/{path}"), None);
    if s != 200 {
        return (None, false);
    }
    let value = p["data"]["data"]["value"].as_str().map(str::to_string);
    if let Some(v) = &value {
        canary(v);
    }
    let claim = p["data"]["data"]["keysweep_claim"].as_str().map(|c| serde_json::from_str::<Value>(c).unwrap());
    if let Some(c) = &claim {
        let lease = chrono::DateTime::parse_from_rfc3339(c["lease_until"].as_str().unwrap()).unwrap();
        assert!(lease <= chrono::Utc::now(), "{path}: the claim of run `{}` is still live after its run ended: {c}", c["nonce"]);
    }
    (value, claim.is_some())
}

/// Seeds an estate, runs the real binary, makes the journal's writes fail
/// once [`BEFORE_FAULT`] outcomes are on disk, and checks what the failed
/// run did and left, from OpenBao.
fn faulted_run(prefix: &str, fault: Fault) -> Faulted {
    let b = bao();
    let dir = tempfile::tempdir().unwrap();
    let estate = interleaved(b, prefix);
    let pb = estate.write(dir.path());
    let mount = matches!(fault, Fault::DiskFull).then(|| Tmpfs::mount(&dir.path().join("fs"), "16m"));
    let state = match &mount {
        Some(m) => m.0.join("state"),
        None => dir.path().join("state"),
    };
    let journal = state.join("journal.db");
    let started = Instant::now();
    let mut child = run_cmd(&state, &pb).spawn().unwrap();
    while outcome_count(&journal) < BEFORE_FAULT {
        assert!(child.try_wait().unwrap().is_none(), "{prefix}: the run ended before the journal could fail");
        assert!(started.elapsed() < Duration::from_secs(60), "{prefix}: not {BEFORE_FAULT} outcomes within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let at_fault = outcome_count(&journal);
    fault.inject(&state);
    let out = collect(child, Duration::from_secs(60));
    eprintln!(
        "{prefix} ({fault:?}): the run took {:.1} s; {at_fault} outcome(s) on disk just before the journal failed",
        started.elapsed().as_secs_f64()
    );
    let mut f = Faulted { fault, _mount: mount, _dir: dir, prefix: prefix.to_string(), estate, pb, state, seen: HashMap::new(), secrets: vec![] };
    f.check_failed(&out);
    f
}

impl Faulted {
    fn ids(&self) -> usize {
        self.estate.tokens.len() + self.estate.secret_ids.len() + self.estate.kv.len()
    }

    /// What a run the journal failed under did and left, checked from
    /// OpenBao; remembers how each rotation stands in `seen`.
    fn check_failed(&mut self, out: &Output) {
        let (b, prefix, fault, estate, state) = (bao(), self.prefix.as_str(), self.fault, &self.estate, &self.state);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
        let total = self.ids();
        // With the journal deleted, what the run said is all there is to read.
        let deleted = matches!(fault, Fault::Deleted);
        let outcomes = if deleted { told(&stderr) } else { journal_outcomes(&state.join("journal.db")) };
        eprintln!("{prefix}: exit {:?}; {} outcome(s) in the journal, of {total}: {:?}", out.status.code(), outcomes.len(), count_values(&outcomes));
        assert!(outcomes.len() < total, "{prefix}: every outcome was written: the fault came too late to prove anything");

        // The journal unwritable is exit 3: never 0, nor 1 as if every gap were known.
        assert_eq!(out.status.code(), Some(3), "{prefix}: exit status\nstdout:\n{stdout}\nstderr:\n{stderr}");
        // The operator is told why, in the journal's words and the cause's.
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("keysweep: error:") && fault.final_words().iter().all(|w| last.contains(w)),
            "{prefix}: the last line does not name the journal failure: {last}"
        );

        // What the run told the operator each credential ended as agrees with
        // the journal: its stderr lines, and its report if it wrote one (today
        // it writes none: the run record cannot be finished).
        let mut said = told(&stderr);
        for (id, o) in &said {
            assert_eq!(outcomes.get(id), Some(o), "{prefix}: {id}: stderr says {o}, the journal says {:?}", outcomes.get(id));
        }
        if state.join("runs").exists() {
            for row in report_json(state)["rows"].as_array().unwrap() {
                let (id, o) = (row["id"].as_str().unwrap(), row["outcome"].as_str().unwrap());
                if o == "rotated" || o == "revoked" {
                    assert_eq!(outcomes.get(id).map(String::as_str), Some(o), "{prefix}: {id}: the report says {o}, the journal does not");
                    said.insert(id.to_string(), o.to_string());
                }
            }
        }

        // From OpenBao: every rotation or revocation the run reported is real;
        // nobody is locked out (what each store says is current works), so no
        // credential is left with neither its old nor its new secret working.
        let mut secrets: Vec<String> = estate.secrets.iter().chain(&self.secrets).cloned().collect();
        let mut seen = HashMap::new();
        for (id, old) in &estate.tokens {
            let old_alive = b.token_works(old);
            let reported = said.get(id).map(String::as_str);
            if id.ends_with("revoke-tok") {
                assert!(!(reported == Some("revoked") && old_alive), "{prefix}: {id}: reported revoked, the token still works");
                continue;
            }
            let path = format!("{prefix}/tokens/{id}");
            let cur = b.kv_get(&path).map(|d| d["value"].as_str().unwrap().to_string());
            let (pending, claimed) = pending_of(b, &path);
            // Half the tokens were never in a store: their consumers hold the old one.
            let old_current = cur.as_ref().is_none_or(|c| c == old);
            match &cur {
                Some(c) => assert!(b.token_works(c), "{prefix}: {id} ({reported:?}): the token its store says is current does not work"),
                None => assert!(old_alive, "{prefix}: {id} ({reported:?}): nothing in its store, and its old token is dead"),
            }
            if reported == Some("rotated") {
                assert!(!old_alive && !old_current, "{prefix}: {id}: reported rotated, the old token still works or is still current");
            }
            seen.insert(id.clone(), Seen { old_current, old_alive, pending: pending.is_some(), claimed, version: 0 });
            secrets.extend([cur, pending].into_iter().flatten());
        }
        for (id, _, role_id, old) in &estate.secret_ids {
            let old_alive = b.secret_id_works(role_id, old);
            let reported = said.get(id).map(String::as_str);
            if id.ends_with("revoke-sid") {
                assert!(!(reported == Some("revoked") && old_alive), "{prefix}: {id}: reported revoked, the secret-id still logs in");
                continue;
            }
            let path = format!("{prefix}/approle/{id}");
            let cur =
                b.kv_get(&path).and_then(|d| d["value"].as_str().map(str::to_string)).unwrap_or_else(|| panic!("{prefix}: {id}: its store is empty"));
            let (pending, claimed) = pending_of(b, &path);
            assert!(b.secret_id_works(role_id, &cur), "{prefix}: {id} ({reported:?}): the secret-id its store says is current does not log in");
            if reported == Some("rotated") {
                assert!(!old_alive && cur != *old, "{prefix}: {id}: reported rotated, the old secret-id still logs in or is still current");
            }
            seen.insert(id.clone(), Seen { old_current: cur == *old, old_alive, pending: pending.is_some(), claimed, version: 0 });
            secrets.extend([Some(cur), pending].into_iter().flatten());
        }
        for (id, path, old) in &estate.kv {
            // A KV secret is its own store: what it holds is what consumers use.
            // It is untouched or holds one generated value, and its old version
            // is destroyed only once the new one is current.
            let reported = said.get(id).map(String::as_str);
            let cur =
                b.kv_get(path).and_then(|d| d["value"].as_str().map(str::to_string)).unwrap_or_else(|| panic!("{prefix}: {id}: the secret is gone"));
            let (pending, claimed) = pending_of(b, path);
            let meta = b.kv_meta(path).unwrap();
            let version = meta["current_version"].as_u64().unwrap();
            let old_alive = meta["versions"]["1"]["destroyed"] != true;
            match cur == *old {
                true => {
                    assert!(version == 1 && old_alive, "{prefix}: {id}: the old value is current at version {version}, destroyed: {}", !old_alive)
                }
                false => assert_eq!((version, cur.len()), (2, 40), "{prefix}: {id}: not one generated value"),
            }
            if reported == Some("rotated") {
                assert!(!old_alive && cur != *old, "{prefix}: {id}: reported rotated, version 1 still readable or current");
            }
            seen.insert(id.clone(), Seen { old_current: cur == *old, old_alive, pending: pending.is_some(), claimed, version });
            secrets.extend([Some(cur), pending].into_iter().flatten());
        }
        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        for (id, s) in &seen {
            let kind = id.trim_start_matches(prefix).split('-').nth(1).unwrap_or_default();
            *tally.entry(format!("{kind}: {}{}", s.describe(), if s.claimed { " (claim kept)" } else { "" })).or_default() += 1;
        }
        eprintln!("{prefix}: the rotations as OpenBao has them after the failure: {tally:?}");

        // No secret value anywhere the run wrote or printed.
        if deleted {
            assert!(!state.join("journal.db").exists(), "{prefix}: a journal appeared again where the deleted one was");
            Canary::new(&secrets).assert_clean(&[], &[("stdout", stdout.as_bytes()), ("stderr", stderr.as_bytes())]);
        } else {
            assert_no_secret(&secrets, state, &stdout, &stderr);
        }
        self.seen = seen;
        self.secrets = secrets;
    }
}

/// No secret value in the run's output or anywhere under its state
/// directory. The canary (every form a text can carry a value in) scans the
/// outputs, every file but the journal's, and the journal's rows as text;
/// the journal's raw bytes (with the WAL's superseded and uncommitted
/// frames, megabytes the canary would take half a minute over in a debug
/// build) are searched for each value as it is and JSON-escaped, the forms
/// SQLite keeps text in, in one pass.
fn assert_no_secret(secrets: &[String], state: &Path, stdout: &str, stderr: &str) {
    let canary = Canary::new(secrets);
    let journal = state.join("journal.db");
    let sqlite: Vec<PathBuf> = ["", "-wal", "-shm"].iter().map(|s| PathBuf::from(format!("{}{s}", journal.display()))).collect();
    let mut rows = String::new();
    {
        let c = rusqlite::Connection::open_with_flags(&journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let events = format!("SELECT run_id || cred_id || step || status || detail || at FROM {}", events_table(&c));
        let runs =
            "SELECT id || mode || playbook || fingerprint || selection || started_at || COALESCE(finished_at, '') || COALESCE(report, '') FROM runs";
        for q in [events.as_str(), runs] {
            let mut st = c.prepare(q).unwrap();
            for r in st.query_map([], |r| r.get::<_, String>(0)).unwrap() {
                rows += &r.unwrap();
                rows.push('\n');
            }
        }
    }
    assert!(rows.len() > 1000, "the journal holds almost nothing: {} bytes", rows.len());
    let others: Vec<PathBuf> = all_files(state).into_iter().map(|(p, _)| p).filter(|p| !sqlite.contains(p)).collect();
    assert!(!others.is_empty(), "no file beside the journal (lock, reports)");
    let others: Vec<&Path> = others.iter().map(PathBuf::as_path).collect();
    canary.assert_clean(&others, &[("stdout", stdout.as_bytes()), ("stderr", stderr.as_bytes()), ("the journal's rows", rows.as_bytes())]);
    // The raw bytes, in one pass: candidates by their first 8 bytes.
    let mut index: HashMap<&[u8], Vec<(usize, Vec<u8>)>> = HashMap::new();
    let forms: Vec<(usize, Vec<u8>)> = secrets
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let json = serde_json::to_string(s).unwrap();
            [(i, s.as_bytes().to_vec()), (i, json.as_bytes()[1..json.len() - 1].to_vec())]
        })
        .collect();
    for (i, f) in &forms {
        assert!(f.len() >= 8, "secret #{i} is too short to scan for");
        index.entry(&f[..8]).or_default().push((*i, f.clone()));
    }
    for p in sqlite.iter().filter(|p| p.exists()) {
        let bytes = std::fs::read(p).unwrap();
        for at in 0..bytes.len().saturating_sub(7) {
            if let Some(cands) = index.get(&bytes[at..at + 8]) {
                for (i, f) in cands {
                    assert!(!bytes[at..].starts_with(f), "secret #{i} in {} at byte offset {at}", p.display());
                }
            }
        }
    }
}

fn count_values(m: &BTreeMap<String, String>) -> BTreeMap<&str, usize> {
    let mut c = BTreeMap::new();
    for v in m.values() {
        *c.entry(v.as_str()).or_default() += 1;
    }
    c
}

/// After the failure, a run of the same playbook ends every credential
/// correct: exit 0, old secrets dead, the store's secrets working, exactly
/// one live minted secret per token and secret-id, nothing rotated twice by
/// one run, one outcome each, and still no secret in what it printed or wrote.
fn run_to_correct_end(f: &Faulted, resumes: bool) {
    let b = bao();
    let prefix = f.prefix.as_str();
    let started = Instant::now();
    let out = collect(run_cmd(&f.state, &f.pb).spawn().unwrap(), Duration::from_secs(60));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    eprintln!("{prefix}: the next run took {:.1} s, exit {:?}", started.elapsed().as_secs_f64(), out.status.code());
    assert_eq!(out.status.code(), Some(0), "{prefix}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr.contains("resuming interrupted run"), resumes, "{prefix}: resumed or not:\n{stderr}");
    let r = report_json(&f.state);
    assert_eq!(r["totals"]["rotated"], f.ids() - 2, "{prefix}: {}", r["totals"]);
    assert_eq!(r["totals"]["revoked"], 2, "{prefix}: {}", r["totals"]);

    let mut news = if resumes {
        // The same run, resumed: each KV secret went through one rotation.
        f.estate.assert_all_correct(b, prefix)
    } else {
        // A fresh run rotates each credential again, except where the store
        // says an earlier rotation is unfinished (a claim kept beside a new
        // value already current): that one it finishes, not repeats.
        let others = Estate { tokens: f.estate.tokens.clone(), secret_ids: f.estate.secret_ids.clone(), ..Default::default() };
        let mut news = others.assert_all_correct(b, prefix);
        for (id, path, old) in &f.estate.kv {
            let s = &f.seen[id];
            let want = if !s.old_current && !s.claimed { s.version + 1 } else { 2 };
            let meta = b.kv_meta(path).unwrap();
            assert_eq!(
                meta["current_version"],
                want,
                "{prefix}: {id}: after the failure at version {} ({}, claim kept: {})",
                s.version,
                s.describe(),
                s.claimed
            );
            for v in 1..want {
                assert_eq!(meta["versions"][v.to_string()]["destroyed"], true, "{prefix}: {id}: version {v} left readable");
            }
            let cur = b.kv_get(path).unwrap();
            let new = cur["value"].as_str().unwrap().to_string();
            assert!(new != *old && new.len() == 40 && cur["username"] == "svc", "{prefix}: {id}: not a generated value with the other fields kept");
            assert!(pending_of(b, path) == (None, false), "{prefix}: {id}: a pending value or claim left");
            news.push(new);
        }
        news
    };
    let minted = live_minted();
    for (id, _) in f.estate.tokens.iter().filter(|(id, _)| !id.ends_with("revoke-tok")) {
        assert_eq!(minted.get(id).copied().unwrap_or(0), 1, "{prefix}: {id}: live tokens minted for it");
    }
    // One outcome per credential in the run's journal.
    let c = rusqlite::Connection::open_with_flags(f.state.join("journal.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let run_id = r["run_id"].as_str().unwrap();
    let (n, distinct): (i64, i64) = c
        .query_row("SELECT COUNT(*), COUNT(DISTINCT cred_id) FROM events WHERE step = 'outcome' AND run_id = ?1", [run_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, distinct), (f.ids() as i64, f.ids() as i64), "{prefix}: outcome records");
    news.extend(f.secrets.iter().cloned());
    assert_no_secret(&news, &f.state, &stdout, &stderr);
}

/// Every later write refused; run again while it still is; then the fault
/// undone: the same command resumes the interrupted run.
#[test]
fn refused_mid_run_then_repaired_and_resumed() {
    let mut f = faulted_run("jfr", Fault::Refuse);
    // The next scheduled run comes before anyone repairs it: it resumes the
    // run, fails the same way, and changes nothing for the worse.
    let again = collect(run_cmd(&f.state, &f.pb).spawn().unwrap(), Duration::from_secs(60));
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming interrupted run"));
    f.check_failed(&again);
    f.fault.repair(&f.state);
    run_to_correct_end(&f, true);
}

/// Every later write refused, and the operator deletes the state directory
/// instead of repairing it: a fresh run finds what the failed one left
/// (pending values, promoted ones, claims) in the store and ends correct.
#[test]
fn refused_mid_run_then_state_dir_deleted() {
    let f = faulted_run("jfd", Fault::Refuse);
    std::fs::remove_dir_all(&f.state).unwrap();
    run_to_correct_end(&f, false);
}

/// The first write to fail is a `promote started`: that credential's new
/// secret passed its test and is staged, never promoted.
#[test]
fn refused_at_a_promotion_then_repaired_and_resumed() {
    let f = faulted_run("jfp", Fault::RefuseAt("promote", "started"));
    f.fault.repair(&f.state);
    run_to_correct_end(&f, true);
}

/// The first write to fail is a `retire started`: that credential's new
/// secret is current and its old one still alive, and stays so.
#[test]
fn refused_at_a_retirement_then_state_dir_deleted() {
    let f = faulted_run("jft", Fault::RefuseAt("retire", "started"));
    std::fs::remove_dir_all(&f.state).unwrap();
    run_to_correct_end(&f, false);
}

/// The first write to fail is a `retire done`: that credential's old
/// secret is dead, and the journal does not know it.
#[test]
fn refused_after_a_retirement_then_repaired_and_resumed() {
    let f = faulted_run("jfa", Fault::RefuseAt("retire", "done"));
    f.fault.repair(&f.state);
    run_to_correct_end(&f, true);
}

/// The journal becomes unreadable as well as unwritable (its table renamed
/// away); renamed back, the run resumes.
#[test]
fn unreadable_mid_run_then_repaired_and_resumed() {
    let f = faulted_run("jfu", Fault::Unreadable);
    f.fault.repair(&f.state);
    run_to_correct_end(&f, true);
}

/// The operator deletes the state directory mid-run: the run stops
/// starting credentials and exits 3 naming it (before, SQLite wrote on into
/// the unlinked file and the run ended 0 with its journal gone); a fresh run
/// then ends correct from what the stores' claims say.
#[test]
fn state_dir_deleted_mid_run_then_run_afresh() {
    let f = faulted_run("jfx", Fault::Deleted);
    run_to_correct_end(&f, false);
}

/// A real full disk: the state directory is on a small tmpfs, filled up
/// mid-run, so SQLite's next write fails with ENOSPC (SQLITE_FULL); space
/// is freed and the run resumed. Mounting needs root (CAP_SYS_ADMIN).
#[test]
fn disk_full_mid_run_then_freed_and_resumed() {
    if let Some(why) = cannot_mount() {
        eprintln!("journal_fault: the full-disk case is NOT run: a tmpfs cannot be mounted here ({why})");
        return;
    }
    let f = faulted_run("jff", Fault::DiskFull);
    f.fault.repair(&f.state);
    run_to_correct_end(&f, true);
}
