//! One error type for every provider: what happened, whether retrying can
//! help, and scrubbed context. Messages never carry secret values: provider
//! error text passes through [`crate::secret::scrub`] (which first removes
//! every secret value keysweep holds, see [`crate::secret::redact`]) before it
//! is kept, and again through `redact` when displayed, for values registered
//! after the error was built.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad settings or a playbook the provider cannot act on.
    Config,
    /// keysweep's own login to the provider was refused.
    Unauthenticated,
    /// keysweep is logged in but not allowed to do this.
    PermissionDenied,
    /// The thing named does not exist.
    NotFound,
    /// The provider does not do this for this kind of credential.
    Unsupported,
    /// A state the provider will not change by itself (two keys already, a cas mismatch...).
    Conflict,
    /// Throttled (429, ThrottlingException).
    RateLimited,
    /// Timeouts, 5xx, connection errors.
    Unavailable,
    /// Anything else.
    Other,
}

#[derive(Debug, Clone)]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    /// What the provider asked us to wait (Retry-After), if it said.
    pub retry_after: Option<Duration>,
    pub operation: &'static str,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        ProviderError { kind, message: crate::secret::scrub(&message.into()), retry_after: None, operation }
    }
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }
    /// Retrying may help: throttling and unavailability only.
    pub fn is_temporary(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `op (Kind): message`: an operation named `…_secret` or `…_token`
        // followed by `:` read as a `secret: value` echo to the scrubber the
        // engine runs over failure reasons, which ate the kind and left
        // "okta.create_[REDACTED] creating…" in reports.
        write!(f, "{} ({:?}): {}", self.operation, self.kind, crate::secret::redact(&self.message))
    }
}

impl std::error::Error for ProviderError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_every_known_secret_value() {
        // A short value shaped like no token: only redaction by value catches it.
        let v = crate::secret::SecretString::from(format!("{}{}", "pw", "Short9x"));
        let echoed = format!("HTTP 500 echo: {{\"data\":{{\"value\":\"{}\"}}}}", crate::secret::ExposeSecret::expose_secret(&v));
        let e = ProviderError::new(ErrorKind::Unavailable, "vault.kv.write", echoed);
        assert!(!e.message.contains("Short9x"), "{}", e.message);
        assert!(!e.to_string().contains("Short9x"), "{e}");
        assert!(e.to_string().contains("HTTP 500 echo"), "{e}");
        // Registered after the error was built: Display still removes it.
        let e = ProviderError::new(ErrorKind::Other, "op", "late: lateValue42");
        crate::secret::register_str("lateValue42");
        assert!(!e.to_string().contains("lateValue42"), "{e}");
    }

    #[test]
    fn an_operation_named_after_a_secret_survives_the_scrubber_whole() {
        let e = ProviderError::new(ErrorKind::Other, "okta.create_secret", "creating a client secret for app 0oa1: HTTP 400");
        let reason = crate::secret::scrub(&e.to_string());
        assert_eq!(reason, "okta.create_secret (Other): creating a client secret for app 0oa1: HTTP 400");
        // A real echo after it is still caught.
        let e = ProviderError::new(ErrorKind::Other, "okta.create_token", format!("echo client_secret={}", "Zq".repeat(6)));
        assert!(!crate::secret::scrub(&e.to_string()).contains(&"Zq".repeat(6)), "{e}");
    }
}
