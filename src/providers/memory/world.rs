//! The state of one in-process owning system: its tokens, its accounts, its
//! store entries, the faults it injects, and the log of every request it
//! answered (in order), which tests read as an independent witness.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Faults;
use crate::provider::{Claim, ErrorKind, ProviderError};
use crate::secret::{ExposeSecret, SecretString};

/// One token the system issued.
pub struct Token {
    pub account: String,
    pub value: SecretString,
    pub created: chrono::DateTime<chrono::Utc>,
    /// The nonce it was minted with, if keysweep minted it.
    pub nonce: Option<String>,
    /// When it was revoked; it keeps working for `revoke_lag` after.
    pub revoked: Option<Instant>,
}

/// One account with a password.
pub struct Account {
    pub password: SecretString,
    pub changed: chrono::DateTime<chrono::Utc>,
    /// Login disabled (a revocation).
    pub disabled: bool,
}

/// One version of a store entry.
#[derive(Clone)]
pub struct Version {
    pub value: SecretString,
    pub fields: BTreeMap<String, String>,
}

/// A store entry: its versions (1-based, all kept), a pending value and a claim.
#[derive(Default)]
pub struct Entry {
    pub versions: Vec<Version>,
    pub pending: Option<(Version, String)>,
    pub claim: Option<Claim>,
}

#[derive(Default)]
pub struct State {
    /// Every token, by id. Insert with [`State::insert_token`] (it keeps the
    /// by-account index).
    pub tokens: BTreeMap<String, Token>,
    /// Token ids by account, oldest first: an account's tokens are found
    /// without scanning the whole system (a 100,000-token estate would make
    /// every lookup, and so every lifecycle, cost a scan).
    by_account: std::collections::HashMap<String, Vec<String>>,
    pub accounts: BTreeMap<String, Account>,
    pub entries: BTreeMap<String, Entry>,
    next_id: u64,
}

impl State {
    /// Adds a token and indexes it by its account.
    pub fn insert_token(&mut self, id: String, t: Token) {
        self.by_account.entry(t.account.clone()).or_default().push(id.clone());
        self.tokens.insert(id, t);
    }

    /// The newest token of `account` that is not revoked.
    pub fn newest_live_token(&self, account: &str) -> Option<String> {
        let ids = self.by_account.get(account)?;
        ids.iter().rev().find(|id| self.tokens.get(*id).is_some_and(|t| t.revoked.is_none())).cloned()
    }

    /// A new token id, unique in this world.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("tok-{:06}", self.next_id)
    }
}

/// One answered request, as the system's own log has it (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub op: &'static str,
    /// What it was about: a token id, an account, a store path.
    pub about: String,
}

/// One in-process system.
pub struct World {
    pub state: Mutex<State>,
    faults: Faults,
    rng: Mutex<StdRng>,
    log: Mutex<Vec<Op>>,
    /// Arrival times of the last second's requests (the server's rate limit).
    arrivals: Mutex<VecDeque<Instant>>,
    /// Requests being worked on now, the most at once, the most allowed (0:
    /// no limit) and the requests refused for it: the system's own count.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    refused_busy: AtomicU64,
    /// What each of those refusals refused (operation, and what it was about).
    refused_log: Mutex<Vec<Op>>,
}

/// One request being worked on (counted until dropped).
struct Working<'a>(&'a World);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worlds() -> &'static Mutex<HashMap<String, Arc<World>>> {
    static W: OnceLock<Mutex<HashMap<String, Arc<World>>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

impl World {
    /// The world named `realm` in this process, made with `faults` the first
    /// time it is asked for (later callers share it and its faults).
    pub fn get(realm: &str, faults: &Faults) -> Arc<World> {
        let mut w = worlds().lock().unwrap_or_else(|e| e.into_inner());
        w.entry(realm.to_string())
            .or_insert_with(|| {
                Arc::new(World {
                    state: Mutex::new(State::default()),
                    faults: faults.clone(),
                    rng: Mutex::new(StdRng::seed_from_u64(faults.seed.unwrap_or(0x6b65_7973))),
                    log: Mutex::new(vec![]),
                    arrivals: Mutex::new(VecDeque::new()),
                    in_flight: AtomicUsize::new(0),
                    peak_in_flight: AtomicUsize::new(0),
                    max_in_flight: AtomicUsize::new(faults.max_in_flight.unwrap_or(0) as usize),
                    refused_busy: AtomicU64::new(0),
                    refused_log: Mutex::new(vec![]),
                })
            })
            .clone()
    }

    /// Forgets the world named `realm` (a test's fresh start).
    pub fn reset(realm: &str) {
        worlds().lock().unwrap_or_else(|e| e.into_inner()).remove(realm);
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request answered so far, in order.
    pub fn log(&self) -> Vec<Op> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn request_count(&self) -> u64 {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Requests being worked on now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests worked on at once since the start (or the last `reset_peak`).
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_peak(&self) {
        self.peak_in_flight.store(self.in_flight(), Ordering::SeqCst);
    }

    /// From now on, answer 429 to a request that finds `n` at work (`None`: no limit).
    pub fn limit_in_flight(&self, n: Option<usize>) {
        self.max_in_flight.store(n.unwrap_or(0), Ordering::SeqCst);
    }

    /// Requests refused with 429 for `max_in_flight` so far.
    pub fn refused_busy(&self) -> u64 {
        self.refused_busy.load(Ordering::SeqCst)
    }

    /// The requests refused for `max_in_flight`, in order.
    pub fn refused_log(&self) -> Vec<Op> {
        self.refused_log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts one request at work, unless `max_in_flight` are already.
    fn start_work(&self, op: &'static str, about: &str) -> Result<Working<'_>, ProviderError> {
        let max = self.max_in_flight.load(Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if max > 0 && now > max {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.refused_busy.fetch_add(1, Ordering::SeqCst);
            self.refused_log.lock().unwrap_or_else(|e| e.into_inner()).push(Op { op, about: about.to_string() });
            let wait = self.faults.latency.map(|l| l.0).unwrap_or_default().max(Duration::from_millis(1));
            return Err(ProviderError::new(ErrorKind::RateLimited, op, "429 Too Many Requests (busy)").with_retry_after(Some(wait)));
        }
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        Ok(Working(self))
    }

    fn chance(&self, p: Option<f64>) -> bool {
        match p {
            Some(p) if p > 0.0 => self.rng.lock().unwrap_or_else(|e| e.into_inner()).random_bool(p.min(1.0)),
            _ => false,
        }
    }

    /// The start of one request: the server's concurrency limit, latency,
    /// its rate limit, and a temporary failure before acting. Logged when it
    /// gets through; counted in flight until it returns.
    pub async fn request(&self, op: &'static str, about: &str) -> Result<(), ProviderError> {
        let _working = self.start_work(op, about)?;
        if let Some(l) = self.faults.latency {
            tokio::time::sleep(l.0).await;
        }
        if let Some(rate) = self.faults.server_rate {
            let now = Instant::now();
            let mut a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
            while a.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                a.pop_front();
            }
            if a.len() >= rate as usize {
                let wait = (a[a.len() - rate as usize] + Duration::from_secs(1)).saturating_duration_since(now);
                return Err(ProviderError::new(ErrorKind::RateLimited, op, "429 Too Many Requests")
                    .with_retry_after(Some(wait.max(Duration::from_millis(1)))));
            }
            a.push_back(now);
        }
        if self.chance(self.faults.temporary) {
            return Err(ProviderError::new(ErrorKind::Unavailable, op, "503 Service Unavailable (injected)"));
        }
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(Op { op, about: about.to_string() });
        Ok(())
    }

    /// After a request acted: its answer may be lost on the way back.
    pub fn answer(&self, op: &'static str) -> Result<(), ProviderError> {
        if self.chance(self.faults.lost_after_act) {
            return Err(ProviderError::new(ErrorKind::Unavailable, op, "connection reset after the request was sent (injected)"));
        }
        Ok(())
    }

    /// A verification answer that is an ambiguous refusal (a WAF page, a
    /// CAPTCHA): neither dead nor alive.
    pub fn ambiguous(&self) -> bool {
        self.chance(self.faults.ambiguous)
    }

    /// Whether a token id still authenticates (revoked ones do for `revoke_lag`).
    pub fn token_works(&self, t: &Token) -> bool {
        match t.revoked {
            None => true,
            Some(at) => self.faults.revoke_lag.is_some_and(|lag| at.elapsed() < lag.0),
        }
    }

    /// Logs in with `value` as token `id` (an independent check for tests).
    pub fn token_accepts(&self, id: &str, value: &str) -> bool {
        let s = self.lock();
        s.tokens.get(id).is_some_and(|t| t.value.expose_secret() == value && self.token_works(t))
    }

    /// Logs in to `account` with `password` (an independent check for tests).
    pub fn password_accepts(&self, account: &str, password: &str) -> bool {
        let s = self.lock();
        s.accounts.get(account).is_some_and(|a| !a.disabled && a.password.expose_secret() == password)
    }

    /// A live token the estate already holds (a test fixture): its id and value.
    pub fn issue_token(&self, account: &str) -> (String, SecretString) {
        let mut s = self.lock();
        let id = s.new_id();
        let value = random_value();
        let t = Token { account: account.into(), value: copy(&value), created: chrono::Utc::now(), nonce: None, revoked: None };
        s.insert_token(id.clone(), t);
        (id, value)
    }

    /// An account with a password the estate already holds (a test fixture).
    pub fn create_account(&self, account: &str) -> SecretString {
        let mut s = self.lock();
        let value = random_value();
        s.accounts.insert(account.into(), Account { password: copy(&value), changed: chrono::Utc::now(), disabled: false });
        value
    }

    /// Puts `value` as the current version of store entry `key` (a fixture).
    pub fn put(&self, key: &str, value: &SecretString, fields: BTreeMap<String, String>) {
        let mut s = self.lock();
        s.entries.entry(key.to_string()).or_default().versions.push(Version { value: copy(value), fields });
    }
}

pub fn copy(v: &SecretString) -> SecretString {
    SecretString::from(v.expose_secret().to_string())
}

/// A fresh secret value, registered for redaction.
pub fn random_value() -> SecretString {
    crate::secret::GeneratePolicy::default().generate()
}
