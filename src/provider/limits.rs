//! The one limits layer every adapter's requests pass through ([`Gate`]):
//! the declared rate (never exceeded in any one-second window, burst
//! included), a timeout per request, and one bounded retry with jittered
//! exponential backoff for transient errors only, honouring `Retry-After`.
//! Every retry is bounded (the Vault #28989 lesson: a failing call retried
//! forever), and there is one retry loop per request: the engine adds none.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::playbook::model::Limits;
use crate::provider::{ErrorKind, ProviderError};

/// Default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The window a rate is counted over. A little over one second, so that a
/// request admitted as the window opens and one admitted as it closes reach
/// the server more than a second apart even when the first was delayed on
/// the way: measured at the server, no one-second window sees more than the rate.
pub const RATE_WINDOW: Duration = Duration::from_millis(1050);

/// A sliding-window rate limit: at most `rate` admissions in any
/// [`RATE_WINDOW`], and at most `burst` in any `burst / rate` of it.
pub struct RateWindow {
    rate: usize,
    burst: usize,
    burst_window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl RateWindow {
    pub fn new(rate_per_second: u32, burst: Option<u32>) -> Self {
        let rate = rate_per_second.max(1) as usize;
        let burst = burst.map(|b| b as usize).unwrap_or(rate).clamp(1, rate);
        let burst_window = RATE_WINDOW.mul_f64(burst as f64 / rate as f64);
        RateWindow { rate, burst, burst_window, sent: Mutex::new(VecDeque::with_capacity(rate)) }
    }

    /// How long to wait before one more may be sent at `now`; `None`: send now
    /// (and the admission is recorded).
    fn try_admit(&self, now: Instant) -> Option<Duration> {
        let mut q = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        while q.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
            q.pop_front();
        }
        let mut wait = Duration::ZERO;
        if q.len() >= self.rate {
            wait = wait.max((q[q.len() - self.rate] + RATE_WINDOW).saturating_duration_since(now));
        }
        if q.len() >= self.burst {
            wait = wait.max((q[q.len() - self.burst] + self.burst_window).saturating_duration_since(now));
        }
        if wait.is_zero() {
            q.push_back(now);
            None
        } else {
            Some(wait)
        }
    }

    /// Waits until one more request may be sent, and records it.
    pub async fn admit(&self) {
        while let Some(wait) = self.try_admit(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// An adapter's limits, applied to each of its requests.
pub struct Gate {
    rate: Option<RateWindow>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Gate {
    pub fn new(limits: &Limits) -> Self {
        Gate {
            rate: limits.rate_per_second.map(|r| RateWindow::new(r, limits.burst)),
            timeout: limits.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
            retry: RetryPolicy { max_attempts: limits.max_attempts.unwrap_or(5).max(1), ..RetryPolicy::default() },
        }
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Waits for the rate limit to let one request through.
    pub async fn admit(&self) {
        if let Some(r) = &self.rate {
            r.admit().await;
        }
    }

    /// One request: each attempt admitted by the rate limit and bounded by the
    /// timeout; transient failures retried within the policy.
    pub async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        retry(self.retry, || {
            let attempt = f();
            async move {
                self.admit().await;
                match tokio::time::timeout(self.timeout, attempt).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(ProviderError::new(ErrorKind::Unavailable, op, format!("no answer within {}", humantime::format_duration(self.timeout))))
                    }
                }
            }
        })
        .await
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, base: Duration::from_millis(200), cap: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Wait before attempt `attempt` (1-based count of failures so far):
    /// "full jitter" over an exponential ceiling, but never less than what the
    /// server asked for with Retry-After.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let ceiling = exp.min(self.cap);
        let jittered = Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64));
        match retry_after {
            Some(ra) => ra.min(Duration::from_secs(120)).max(jittered),
            None => jittered.max(Duration::from_millis(10)),
        }
    }
}

/// Runs `op` until it succeeds, fails with a permanent error, or the attempts
/// run out. Only `ProviderError::is_temporary()` errors are retried.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_temporary() && attempt < policy.max_attempts => {
                let d = policy.delay(attempt, e.retry_after);
                tracing::debug!(operation = e.operation, attempt, delay_ms = d.as_millis() as u64, error = %e, "transient error, retrying");
                tokio::time::sleep(d).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy { max_attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(5) }
    }

    #[tokio::test]
    async fn retries_transient_until_success() {
        let n = AtomicU32::new(0);
        let r = retry(fast(), || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(ProviderError::new(ErrorKind::RateLimited, "t", "429"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast(), || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::new(ErrorKind::PermissionDenied, "t", "403"))
        })
        .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::PermissionDenied);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast(), || async {
            n.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::new(ErrorKind::Unavailable, "t", "503"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = fast();
        assert!(p.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(p.delay(10, None) <= Duration::from_millis(10).max(p.cap));
    }

    /// Admissions at the times a window grants them, for `n` requests sent as
    /// fast as allowed from `start`.
    fn schedule(w: &RateWindow, n: usize, start: Instant) -> Vec<Instant> {
        let mut now = start;
        let mut out = vec![];
        while out.len() < n {
            match w.try_admit(now) {
                None => out.push(now),
                Some(wait) => now += wait,
            }
        }
        out
    }

    fn max_in_any_second(times: &[Instant]) -> usize {
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1)).count()).max().unwrap_or(0)
    }

    #[test]
    fn the_rate_holds_in_every_one_second_window_burst_included() {
        for (rate, burst) in [(20, None), (20, Some(20)), (10, Some(2)), (1, None), (7, Some(3))] {
            let w = RateWindow::new(rate, burst);
            let times = schedule(&w, rate as usize * 5 + 3, Instant::now());
            let most = max_in_any_second(&times);
            assert!(most <= rate as usize, "{rate}/s burst {burst:?}: {most} in one second");
            assert_eq!(most, rate as usize, "{rate}/s burst {burst:?}: the rate is also reached");
        }
    }

    #[test]
    fn a_burst_below_the_rate_spaces_requests() {
        let w = RateWindow::new(10, Some(2));
        let t = schedule(&w, 6, Instant::now());
        // Two at once, then two per 0.21 s.
        assert_eq!(t[0], t[1]);
        assert!(t[2].duration_since(t[0]) >= Duration::from_millis(200), "{:?}", t[2].duration_since(t[0]));
    }

    #[tokio::test]
    async fn a_gate_times_out_and_retries_only_transient_errors() {
        let g = Gate::new(&Limits {
            timeout: Some(crate::playbook::model::HumanDuration(Duration::from_millis(20))),
            max_attempts: Some(2),
            ..Default::default()
        });
        let n = AtomicU32::new(0);
        let r: Result<(), _> = g
            .call("t", || async {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Unavailable);
        assert_eq!(n.load(Ordering::SeqCst), 2, "a timeout is transient: retried within max_attempts");
    }
}
