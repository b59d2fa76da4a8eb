//! Adaptive concurrency per provider (AIMD): how many of a provider's
//! credentials keysweep works on at once, and how many of its requests are in
//! flight, found from the provider's own answers instead of a number someone
//! had to tune.
//!
//! - The limit starts at [`START`] and grows while the provider answers in
//!   about its usual time: by one per answer until the first back-off (slow
//!   start, doubling every round trip), by one per round trip after it
//!   (additive increase). It grows only while it is in use (half of it or
//!   more taken), never above the declared cap (`limits.concurrency`, default
//!   [`DEFAULT_CAP`]).
//! - It halves (never below 1) on an answer that says "too much": 429 or any
//!   `Retry-After`, 5xx, a timeout, a connection that failed (the
//!   `ProviderError` kinds `RateLimited` and `Unavailable`), and when answers
//!   come back well above the usual time: when even the fastest answer of
//!   two round trips running (a window of `limit` answers each) took more
//!   than twice its operation's usual (fastest) time, or more than
//!   [`MIN_SIGNIFICANT`] over it when that is larger. The fastest answer, not
//!   the average: a queue at the server delays every answer, a stall on this
//!   side (a busy machine) only some. One halving per round trip: an answer
//!   to a request sent before the last halving does not halve again.
//! - After a halving it grows back to one below the limit that was too much,
//!   and stays there for [`HOLD`] before it probes that limit again. Without
//!   the hold it probed every few round trips, and each probe is a refusal
//!   that falls on whichever request comes last, which is most often a
//!   request coming back from its retry: the others filled the provider
//!   while it waited. A request so refused on every attempt failed its
//!   credential (one of 600 in CI).
//!
//! The limit is enforced twice, with the same number: on credentials (the
//! engine takes a [`Slot`] per lifecycle, so a started rotation finishes
//! before new ones start, and no more claims and pending values are open than
//! the provider can work through), and on requests (the provider's
//! [`super::limits::Gate`] takes one per request, so a halving takes effect on
//! the very next request rather than when lifecycles in flight end). The
//! request slot is held only while one request is on the wire: a lifecycle
//! never waits for a request slot while holding another of the same provider.
//!
//! Written here rather than taken from a crate: the limiters published for
//! tokio/tower tie the feedback to the permit of one request, while here the
//! credential's permit spans many requests, and each answer is judged against
//! its own operation's usual time (a token lookup and a KV write differ).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ErrorKind;

/// The cap when the playbook declares no `limits.concurrency`: high enough
/// that the limiter, not the cap, decides.
pub const DEFAULT_CAP: usize = 256;
/// Where the limit starts (the former fixed default).
pub const START: usize = 8;
/// Latency rise smaller than this is noise (scheduling, a busy machine),
/// whatever the operation's usual time.
pub const MIN_SIGNIFICANT: Duration = Duration::from_millis(5);
/// How fast an operation's usual time follows slower answers (per answer).
const DRIFT: f64 = 0.0005;
/// The fewest answers in a latency window.
const MIN_WINDOW: u32 = 8;
/// Slow windows in a row that halve the limit.
const SLOW_WINDOWS: u32 = 2;
/// How long after a halving the limit stays below the one that was too much.
/// Longer than the first retries' waits (0.2–0.8 s), so that a request
/// refused by one probe is not refused again by the next.
pub const HOLD: Duration = Duration::from_secs(2);

/// What one answer says about the provider's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (any answer of the provider's own, refusals included).
    Answered,
    /// 429, `Retry-After`, 5xx, timeout, no connection: too much.
    Overloaded,
}

impl Signal {
    /// The signal of an error of `kind`.
    pub fn of_error(kind: ErrorKind) -> Signal {
        match kind {
            ErrorKind::RateLimited | ErrorKind::Unavailable => Signal::Overloaded,
            _ => Signal::Answered,
        }
    }

    /// The signal of an HTTP answer.
    pub fn of_status(status: u16, retry_after: bool) -> Signal {
        if status == 429 || status >= 500 || retry_after {
            Signal::Overloaded
        } else {
            Signal::Answered
        }
    }

    /// The signal of a request's result.
    pub fn of<T>(r: &Result<T, super::ProviderError>) -> Signal {
        match r {
            Ok(_) => Signal::Answered,
            Err(e) if e.retry_after.is_some() => Signal::Overloaded,
            Err(e) => Signal::of_error(e.kind),
        }
    }
}

/// A semaphore whose size follows the limit: grown by adding permits, shrunk
/// by forgetting free ones and, for those in use, forgetting them as they
/// come back (`debt`).
struct Pool {
    sem: Arc<Semaphore>,
    size: usize,
    debt: usize,
    in_use: usize,
}

impl Pool {
    fn new(n: usize) -> Self {
        Pool { sem: Arc::new(Semaphore::new(n)), size: n, debt: 0, in_use: 0 }
    }

    fn resize(&mut self, to: usize) {
        if to > self.size {
            let mut add = to - self.size;
            let repaid = add.min(self.debt);
            self.debt -= repaid;
            add -= repaid;
            self.sem.add_permits(add);
        } else if to < self.size {
            let cut = self.size - to;
            let forgotten = self.sem.forget_permits(cut);
            self.debt += cut - forgotten;
        }
        self.size = to;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Lifecycles,
    Requests,
}

struct State {
    limit: f64,
    slow_start: bool,
    last_halving: Option<Instant>,
    /// The limit that was too much, and until when the limit stays below it.
    too_much: Option<(f64, Instant)>,
    /// Answers in the current latency window, and the smallest excess among them.
    window: u32,
    window_min: f64,
    /// Windows in a row whose fastest answer was slow.
    slow: u32,
    usual: HashMap<&'static str, f64>,
    lifecycles: Pool,
    requests: Pool,
    peak: usize,
    halvings: u32,
}

impl State {
    fn pool(&mut self, w: Which) -> &mut Pool {
        match w {
            Which::Lifecycles => &mut self.lifecycles,
            Which::Requests => &mut self.requests,
        }
    }

    fn apply(&mut self) {
        let n = self.limit.floor() as usize;
        self.peak = self.peak.max(n);
        self.lifecycles.resize(n);
        self.requests.resize(n);
    }
}

/// One provider's adaptive limit.
pub struct AdaptiveLimit {
    cap: usize,
    hold: Duration,
    state: Mutex<State>,
}

/// What the limiter did over a run (for the run's summary line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub cap: usize,
    pub limit: usize,
    pub peak: usize,
    pub halvings: u32,
}

impl AdaptiveLimit {
    /// A limit starting at [`START`] (or `cap`, if lower), growing to `cap`.
    pub fn new(cap: usize) -> Arc<Self> {
        Self::with_hold(cap, HOLD)
    }

    fn with_hold(cap: usize, hold: Duration) -> Arc<Self> {
        let cap = cap.max(1);
        let start = START.min(cap);
        Arc::new(AdaptiveLimit {
            cap,
            hold,
            state: Mutex::new(State {
                limit: start as f64,
                slow_start: true,
                last_halving: None,
                too_much: None,
                window: 0,
                window_min: f64::INFINITY,
                slow: 0,
                usual: HashMap::new(),
                lifecycles: Pool::new(start),
                requests: Pool::new(start),
                peak: start,
                halvings: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }

    pub fn summary(&self) -> Summary {
        let s = self.lock();
        Summary { cap: self.cap, limit: s.limit.floor() as usize, peak: s.peak, halvings: s.halvings }
    }

    async fn take(self: &Arc<Self>, w: Which) -> Slot {
        let sem = self.lock().pool(w).sem.clone();
        let permit = sem.acquire_owned().await.expect("the limiter's semaphore is never closed");
        self.lock().pool(w).in_use += 1;
        Slot { permit: Some(permit), limit: self.clone(), which: w }
    }

    /// Waits for room for one more credential of this provider.
    pub async fn lifecycle(self: &Arc<Self>) -> Slot {
        self.take(Which::Lifecycles).await
    }

    /// Waits for room for one more request to this provider.
    pub async fn request(self: &Arc<Self>) -> Slot {
        self.take(Which::Requests).await
    }

    /// One answer to operation `op`, sent at `sent`, that took `latency`.
    pub fn record(&self, op: &'static str, sent: Instant, latency: Duration, signal: Signal) {
        let mut s = self.lock();
        let before_halving = s.last_halving.is_some_and(|h| sent < h);
        if signal == Signal::Overloaded {
            if !before_halving {
                self.halve(&mut s);
            }
            return;
        }
        let lat = latency.as_secs_f64();
        let usual = s.usual.entry(op).or_insert(lat);
        if lat < *usual {
            *usual = lat;
        } else {
            *usual += (lat - *usual) * DRIFT;
        }
        let usual = *usual;
        if before_halving {
            return; // sent at the old limit: says nothing about the new one
        }
        let excess = (lat - usual).max(0.0) / usual.max(MIN_SIGNIFICANT.as_secs_f64());
        s.window_min = s.window_min.min(excess);
        s.window += 1;
        if s.window >= (s.limit as u32).max(MIN_WINDOW) {
            s.slow = if s.window_min > 1.0 { s.slow + 1 } else { 0 };
            s.window = 0;
            s.window_min = f64::INFINITY;
            if s.slow >= SLOW_WINDOWS {
                self.halve(&mut s);
                return;
            }
        }
        let mut most = self.cap as f64;
        if let Some((too_much, until)) = s.too_much {
            if Instant::now() < until {
                most = most.min((too_much - 1.0).max(1.0));
            } else {
                s.too_much = None;
            }
        }
        let in_use = s.lifecycles.in_use.max(s.requests.in_use) as f64;
        if in_use * 2.0 >= s.limit && s.limit < most {
            let step = if s.slow_start { 1.0 } else { 1.0 / s.limit };
            s.limit = (s.limit + step).min(most);
            s.apply();
        }
    }

    fn halve(&self, s: &mut State) {
        s.too_much = Some((s.limit.floor(), Instant::now() + self.hold));
        s.limit = (s.limit / 2.0).max(1.0);
        s.slow_start = false;
        s.last_halving = Some(Instant::now());
        s.window = 0;
        s.window_min = f64::INFINITY;
        s.slow = 0;
        s.halvings += 1;
        s.apply();
    }

    /// Slots of each pool taken now (for tests).
    pub fn in_use(&self) -> (usize, usize) {
        let s = self.lock();
        (s.lifecycles.in_use, s.requests.in_use)
    }
}

/// A place in an [`AdaptiveLimit`]: given back when dropped (or, when the
/// limit shrank below what is in use, forgotten).
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limit: Arc<AdaptiveLimit>,
    which: Which,
}

impl Slot {
    /// Tells this slot's limit about one answer (see [`AdaptiveLimit::record`]).
    pub fn record(&self, op: &'static str, sent: Instant, latency: Duration, signal: Signal) {
        self.limit.record(op, sent, latency, signal);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.limit.lock();
        let pool = s.pool(self.which);
        pool.in_use -= 1;
        let permit = self.permit.take();
        if pool.debt > 0 {
            pool.debt -= 1;
            if let Some(p) = permit {
                p.forget();
            }
        } else {
            drop(permit);
        }
    }
}

/// How many of one provider's credentials a run works on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Adaptive, up to `cap` (declared in `limits.concurrency`, or [`DEFAULT_CAP`]).
    Adaptive { cap: usize, declared: bool },
    /// Fixed at `n` (declared, or the engine's `FIXED_DEFAULT`).
    Fixed { n: usize, declared: bool },
}

impl Concurrency {
    /// The concurrency of a provider of this kind with these limits.
    pub fn of(kind: &dyn crate::provider::kind::ProviderKind) -> Concurrency {
        let declared = kind.limits().concurrency;
        if kind.adaptive_concurrency() {
            Concurrency::Adaptive { cap: declared.unwrap_or(DEFAULT_CAP).max(1), declared: declared.is_some() }
        } else {
            Concurrency::Fixed { n: declared.unwrap_or(crate::engine::FIXED_DEFAULT).max(1), declared: declared.is_some() }
        }
    }

    /// The most it ever allows.
    pub fn cap(&self) -> usize {
        match *self {
            Concurrency::Adaptive { cap, .. } => cap,
            Concurrency::Fixed { n, .. } => n,
        }
    }
}

impl std::fmt::Display for Concurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by = |d: bool| if d { "limits.concurrency" } else { "default" };
        match *self {
            Concurrency::Adaptive { cap, declared } => {
                write!(f, "adaptive, from {} up to {cap} ({} cap)", START.min(cap), by(declared))
            }
            Concurrency::Fixed { n, declared } => write!(f, "fixed at {n} ({})", by(declared)),
        }
    }
}

/// The global cap of a run: the one set (`--concurrency`), or the sum of the
/// providers' own caps, so that it never caps a provider by itself.
pub fn global(set: Option<usize>, per_provider: &[(String, Concurrency)]) -> usize {
    set.unwrap_or_else(|| per_provider.iter().map(|(_, c)| c.cap()).sum()).max(1)
}

/// What a set global cap takes from providers that would allow more.
pub fn global_notes(set: Option<usize>, per_provider: &[(String, Concurrency)]) -> Vec<String> {
    let Some(g) = set else { return vec![] };
    per_provider
        .iter()
        .filter(|(_, c)| c.cap() > g)
        .map(|(name, c)| format!("--concurrency {g} is below provider `{name}`'s own cap of {}: at most {g} of its credentials at once", c.cap()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "t.op";
    const MS50: Duration = Duration::from_millis(50);

    /// `n` answers of `latency`, each sent now, with the limit in use: as
    /// the engine does, a credential starts whenever there is room.
    async fn answers(l: &Arc<AdaptiveLimit>, held: &mut Vec<Slot>, n: usize, latency: Duration, signal: Signal) {
        for _ in 0..n {
            while held.len() < l.limit() {
                held.push(l.lifecycle().await);
            }
            l.record(OP, Instant::now(), latency, signal);
        }
    }

    /// Holds `n` lifecycle slots.
    async fn busy(l: &Arc<AdaptiveLimit>, n: usize) -> Vec<Slot> {
        let mut v = vec![];
        for _ in 0..n {
            v.push(l.lifecycle().await);
        }
        v
    }

    #[tokio::test]
    async fn grows_while_latency_holds_and_the_limit_is_used() {
        let l = AdaptiveLimit::new(128);
        assert_eq!(l.limit(), START);
        let h = &mut vec![];
        answers(&l, h, 20, MS50, Signal::Answered).await;
        assert!(l.limit() > START, "{}", l.limit());
        answers(&l, h, 500, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 128, "grows to the cap, never past it");
        answers(&l, h, 500, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 128);
    }

    #[tokio::test]
    async fn does_not_grow_when_the_limit_is_not_used() {
        let l = AdaptiveLimit::new(128);
        let _one = busy(&l, 1).await;
        for _ in 0..200 {
            l.record(OP, Instant::now(), MS50, Signal::Answered);
        }
        assert_eq!(l.limit(), START, "one credential at a time says nothing about more");
    }

    #[tokio::test]
    async fn halves_on_429_and_5xx_once_per_round_trip_never_below_one() {
        let l = AdaptiveLimit::new(128);
        let h = &mut vec![];
        answers(&l, h, 56, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 64);
        let sent = Instant::now();
        l.record(OP, sent, MS50, Signal::of_status(429, true));
        assert_eq!(l.limit(), 32);
        // Other answers to requests sent before that halving: no second halving.
        for _ in 0..10 {
            l.record(OP, sent, MS50, Signal::of_status(503, false));
        }
        assert_eq!(l.limit(), 32);
        l.record(OP, Instant::now(), MS50, Signal::of_status(502, false));
        assert_eq!(l.limit(), 16);
        l.record(OP, Instant::now(), MS50, Signal::of_error(ErrorKind::Unavailable));
        assert_eq!(l.limit(), 8);
        for _ in 0..10 {
            l.record(OP, Instant::now(), MS50, Signal::of_error(ErrorKind::RateLimited));
        }
        assert_eq!(l.limit(), 1, "never below one");
        // A refusal of the provider's own (401, 403, 404) is an answer, not load.
        assert_eq!(Signal::of_status(403, false), Signal::Answered);
        assert_eq!(Signal::of_error(ErrorKind::PermissionDenied), Signal::Answered);
    }

    #[tokio::test]
    async fn halves_when_latency_rises_well_above_the_usual() {
        let l = AdaptiveLimit::new(128);
        let h = &mut vec![];
        answers(&l, h, 24, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 32);
        // Somewhat slower (1.5×): within tolerance, still growing.
        answers(&l, h, 30, Duration::from_millis(75), Signal::Answered).await;
        let grown = l.limit();
        assert!(grown > 32, "{grown}");
        assert_eq!(l.summary().halvings, 0);
        // A stall on this side delays some answers, not the fastest of a window.
        for i in 0..300 {
            let lat = if i % 4 == 0 { MS50 } else { Duration::from_millis(400) };
            answers(&l, h, 1, lat, Signal::Answered).await;
        }
        assert_eq!(l.summary().halvings, 0);
        let grown = l.limit();
        // Every answer three times the usual, two whole windows running: halved.
        answers(&l, h, 3 * grown + 2, Duration::from_millis(150), Signal::Answered).await;
        assert!(l.summary().halvings >= 1);
        assert!(l.limit() <= grown / 2 + 1, "{} after {grown}", l.limit());
    }

    #[tokio::test]
    async fn small_latencies_are_not_taken_for_overload() {
        let l = AdaptiveLimit::new(64);
        let h = &mut vec![];
        answers(&l, h, 20, Duration::from_micros(50), Signal::Answered).await;
        // 40× a tiny usual time is still under MIN_SIGNIFICANT of excess.
        answers(&l, h, 100, Duration::from_millis(2), Signal::Answered).await;
        assert_eq!(l.limit(), 64);
        assert_eq!(l.summary().halvings, 0);
    }

    #[tokio::test]
    async fn recovers_additively_after_a_halving() {
        let l = AdaptiveLimit::new(128);
        let h = &mut vec![];
        answers(&l, h, 24, MS50, Signal::Answered).await;
        l.record(OP, Instant::now(), MS50, Signal::Overloaded);
        assert_eq!(l.limit(), 16);
        // About one per round trip (a limit's worth of answers): 20 answers at 16 add one.
        answers(&l, h, 20, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 17);
        // Back to one below the limit that was too much (32), and held there.
        answers(&l, h, 2000, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 31);
        assert_eq!(l.summary().halvings, 1);
    }

    #[tokio::test]
    async fn probes_the_limit_that_was_too_much_again_after_the_hold() {
        let hold = Duration::from_millis(100);
        let l = AdaptiveLimit::with_hold(128, hold);
        let h = &mut vec![];
        answers(&l, h, 24, MS50, Signal::Answered).await;
        l.record(OP, Instant::now(), MS50, Signal::Overloaded);
        answers(&l, h, 500, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 31, "held below 32 within the hold");
        tokio::time::sleep(hold).await;
        answers(&l, h, 2000, MS50, Signal::Answered).await;
        assert!(l.limit() > 60, "{}", l.limit());
        // Too much again: halved, and held below the new too-much.
        let at = l.limit();
        l.record(OP, Instant::now(), MS50, Signal::Overloaded);
        answers(&l, h, 5000, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), at - 1);
    }

    #[tokio::test]
    async fn a_declared_cap_below_the_start_is_the_start() {
        let l = AdaptiveLimit::new(3);
        assert_eq!(l.limit(), 3);
        let h = &mut vec![];
        answers(&l, h, 100, MS50, Signal::Answered).await;
        assert_eq!(l.limit(), 3);
    }

    #[tokio::test]
    async fn slots_follow_the_limit_down_and_up() {
        let l = AdaptiveLimit::new(128);
        let held = busy(&l, START).await;
        // Halved to 4 with 8 in use: no new slot until 4 came back.
        l.record(OP, Instant::now(), MS50, Signal::Overloaded);
        assert_eq!(l.limit(), 4);
        let mut held = held;
        let waiting = {
            let l = l.clone();
            tokio::spawn(async move { l.lifecycle().await })
        };
        for _ in 0..4 {
            held.pop();
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished(), "a slot was given while more than the limit were in use");
        }
        held.pop();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("a slot once under the limit").unwrap();
        assert_eq!(l.in_use().0, 4);
        drop(got);
        drop(held);
        assert_eq!(l.in_use().0, 0);
        // Back up: all `limit` slots can be taken at once.
        let _all = tokio::time::timeout(Duration::from_secs(5), busy(&l, 4)).await.expect("4 slots at limit 4");
    }
}
