//! Bounded retry with jittered exponential backoff, for transient errors only.
//! Every retry is bounded (the Vault #28989 lesson: a failing call retried forever).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::provider::ProviderError;

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
    use crate::provider::ErrorKind;
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
}
