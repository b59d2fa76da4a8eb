//! The provider contract: what an adapter for one owning system implements,
//! what it can do (capabilities), how it fails (errors that know whether they
//! are temporary), and how verification answers (dead / alive / unknown).

pub mod adaptive;
pub mod conformance;
pub mod error;
pub mod http;
pub mod kind;
pub mod limits;
pub mod registry;
pub mod seen;
pub mod tls;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::{ErrorKind, ProviderError};

use crate::playbook::model::Target;
use crate::playbook::StoreLocation;
use crate::secret::{Delivered, SecretString};

/// What a credential kind supports. The loader refuses an action the kind
/// lacks, and the conformance suite picks its cases from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Can issue a replacement (rotate).
    pub rotate: bool,
    /// Can retire the old secret (revoke, and the end of a rotation).
    pub revoke: bool,
    /// The owning system mints the new secret itself (as opposed to accepting
    /// one keysweep generates). Minted secrets are journaled before minting and
    /// orphans from a crash are found and cleaned up.
    pub mints: bool,
    /// Can prove an old secret dead (admin-side or by probing it).
    pub verify_dead: bool,
    /// Needs a delivery store for rotation (false when the credential is itself a store entry).
    pub needs_store: bool,
}

pub use kind::capabilities;

/// The answer of one verification: three-valued, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "evidence", rename_all = "snake_case")]
pub enum Verdict {
    /// The system refused the secret with its own documented refusal.
    Dead(String),
    /// The system accepted the secret.
    Alive(String),
    /// No proof either way (timeout, 429, 5xx, network, ambiguous refusal).
    Unknown(String),
    /// No proof is possible with what keysweep holds (e.g. no old value to
    /// log in with, and the system's admin side cannot tell passwords apart):
    /// probing again cannot change it, so no further probe is spent.
    Unprovable(String),
}

impl Verdict {
    pub fn evidence(&self) -> &str {
        match self {
            Verdict::Dead(e) | Verdict::Alive(e) | Verdict::Unknown(e) | Verdict::Unprovable(e) => e,
        }
    }
}

/// The non-secret identity of one issued secret: an accessor, a key id, a
/// store version. Journaled; never holds secret material.
pub type Handle = BTreeMap<String, String>;

/// A secret the owning system minted, with its non-secret handle.
#[derive(Debug)]
pub struct Minted {
    pub delivered: Delivered,
    pub handle: Handle,
}

/// One item of a provider's inventory (for discovery and stuck-state reports).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryItem {
    pub kind: String,
    /// The identifier a playbook would use (accessor, path, ...).
    pub id: String,
    pub created: Option<String>,
    /// When the secret now in service was set (a token's or key's creation, a
    /// KV version's, a password's last change), where the system records it.
    #[serde(default)]
    pub rotated: Option<String>,
    /// Last successful use, where the system records it.
    pub last_used: Option<String>,
    /// Whether the system records use at all: only then does a missing
    /// `last_used` mean "never used" rather than "unknown".
    #[serde(default)]
    pub usage_tracked: bool,
    /// Kind-specific facts; `privileged` = `true` when the system says it is
    /// admin/superuser or has wide scopes.
    pub details: BTreeMap<String, String>,
}

/// An owning system: issues, tests, retires and proves dead the credentials it owns.
///
/// Every method must be idempotent: the engine re-runs a step after a crash
/// whenever it cannot tell whether the step took effect.
#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;

    /// The handle of the secret in service now. `stored` is the handle the
    /// primary store's current value carries, if any (it wins over the playbook).
    async fn current_handle(&self, target: &Target, stored: Option<&Handle>) -> Result<Handle, ProviderError>;

    /// The handle of a minted secret, from the public fields a store holds
    /// beside its value (an accessor, an access key id).
    fn handle_from_fields(&self, target: &Target, fields: &BTreeMap<String, String>) -> Handle;

    /// Mint a new secret in the owning system, tagged with `nonce` so that an
    /// orphan from a crash can be found again (`Capabilities::mints`). `old` is
    /// the secret being replaced, whose settings the new one copies.
    async fn mint(&self, target: &Target, old: &Handle, nonce: &str) -> Result<Minted, ProviderError>;

    /// `mint`, given the primary store's current value (`current`: the secret
    /// in service and the fields stored beside it), for systems that mint a
    /// replacement from something held there, such as an OAuth refresh token
    /// (Slack's token rotation). Default: [`Provider::mint`].
    async fn mint_from(&self, target: &Target, old: &Handle, _current: Option<&Delivered>, nonce: &str) -> Result<Minted, ProviderError> {
        self.mint(target, old, nonce).await
    }

    /// Whether minting a replacement spends what the secret in service needs
    /// to be replaced again (a single-use refresh token). A minted pending
    /// value another run left is then the only way forward: it is adopted
    /// when it tests alive and kept otherwise, never withdrawn. Default: false.
    fn mint_spends_old(&self, _target: &Target) -> bool {
        false
    }

    /// Retire every secret minted with `nonce` that is not `keep` (orphans of a
    /// crash between mint and store); never `old`, the secret in service.
    /// Returns how many were retired.
    async fn cleanup_minted(&self, target: &Target, old: &Handle, nonce: &str, keep: Option<&Handle>) -> Result<usize, ProviderError>;

    /// `cleanup_minted`, knowing the mint was sent no earlier than `since`
    /// (the claim's record). A system whose secrets carry no nonce (IAM keys)
    /// tells orphans by creation time, and this narrows that window from the
    /// whole run to the mint itself, sparing keys others made meanwhile.
    async fn cleanup_minted_since(
        &self,
        target: &Target,
        old: &Handle,
        nonce: &str,
        keep: Option<&Handle>,
        _since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<usize, ProviderError> {
        self.cleanup_minted(target, old, nonce, keep).await
    }

    /// A new value made by the owning system's own generator, where the
    /// playbook asks for it (e.g. Secrets Manager's GetRandomPassword).
    /// `None`: keysweep generates it from the target's policy.
    async fn generate(&self, _target: &Target) -> Result<Option<SecretString>, ProviderError> {
        Ok(None)
    }

    /// Make the owning system accept a secret keysweep generated (`!mints`).
    /// `new.fields` carries what `new_fields` chose (e.g. the `username` of an
    /// alternating-users pair).
    async fn apply(&self, target: &Target, new: &Delivered) -> Result<(), ProviderError>;

    /// Public fields stored beside a value keysweep generates for `target`,
    /// given the secret in service (`old`): e.g. which user of an
    /// alternating pair the new password is for. Default: none.
    async fn new_fields(&self, _target: &Target, _old: &Handle) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(BTreeMap::new())
    }

    /// The handle of a secret a human issued (a credential with `manual:`
    /// steps), from its value: which token or key it is, asked of the system
    /// where the value does not say (e.g. the newest token the value's own
    /// user holds). `old` is the secret it replaces: an adapter refuses a
    /// value that acts as another account than `old` (never a more privileged
    /// replacement). Default: the public fields stored beside it.
    async fn identify(&self, target: &Target, new: &Delivered, _old: &Handle) -> Result<Handle, ProviderError> {
        Ok(self.handle_from_fields(target, &new.fields))
    }

    /// Authenticate with the new secret; `Alive` means it works.
    async fn test(&self, target: &Target, new: &Delivered, handle: &Handle) -> Verdict;

    /// Revoke / delete / disable the secret named by `old`. Already gone is success.
    async fn retire(&self, target: &Target, old: &Handle) -> Result<(), ProviderError>;

    /// `retire`, given the secret's value (and the fields stored beside it)
    /// where keysweep holds it: the store's version of the old secret, a
    /// pending value being withdrawn, a secret just minted. For systems that
    /// revoke a secret only when it is presented (Slack's `auth.revoke`,
    /// GitHub's token revocation). The engine always calls this; the default
    /// ignores `known` and calls [`Provider::retire`].
    async fn retire_with(&self, target: &Target, old: &Handle, _known: Option<&Delivered>) -> Result<(), ProviderError> {
        self.retire(target, old).await
    }

    /// Whether retiring a secret of `target` needs its value (`retire_with`):
    /// only then does the engine read the old value from the store for it,
    /// so other systems see no extra store read. Default: false.
    fn retire_needs_value(&self, _target: &Target) -> bool {
        false
    }

    /// Whether [`Provider::verify_dead`] of `target` uses the old secret's
    /// value: only then does the engine look for it in the store. A kind
    /// proven dead from the owning system's own record (a KV version's
    /// metadata, a Secrets Manager version's labels) says no. Default: true.
    fn verify_uses_old_value(&self, _target: &Target) -> bool {
        true
    }

    /// Prove the secret named by `old` dead; `old_value` is its value when a
    /// store still holds it (probe with it only when policy allows).
    async fn verify_dead(&self, target: &Target, old: &Handle, old_value: Option<&SecretString>) -> Verdict;

    /// What this system holds, for discovery. An item that is keysweep's own
    /// login session carries `keysweep_session` = `true` in its details.
    async fn inventory(&self) -> Result<Vec<InventoryItem>, ProviderError>;

    /// Whether `old` (the secret in service for `target`) is keysweep's own
    /// login to this provider. Such a credential is worked last, and its old
    /// secret is retired only after `switch_login` moved keysweep onto the new one.
    fn is_own_login(&self, _target: &Target, _old: &Handle) -> bool {
        false
    }

    /// Whether `switch_login` can move keysweep's session onto a new secret
    /// of `target`'s kind. When it cannot, the engine refuses to rotate
    /// keysweep's own login before minting anything.
    fn can_switch_login(&self, _target: &Target) -> bool {
        false
    }

    /// Moves keysweep's own session onto `new`, the promoted replacement of
    /// its own login, before the old one is retired. Providers that cannot
    /// refuse, and the engine then leaves the old secret in service.
    async fn switch_login(&self, target: &Target, _new: &Delivered) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            "switch_login",
            format!("this provider cannot switch keysweep's own login to a new `{}`", target.kind()),
        ))
    }

    /// Ends keysweep's own session, if it opened one (e.g. revokes an AppRole
    /// login token). Best effort; called when a command is done.
    async fn close(&self) {}

    /// This provider as a delivery store, if it is one.
    fn as_store(&self) -> Option<&dyn Store> {
        None
    }

    /// Requests sent so far, where the adapter counts them.
    fn request_count(&self) -> Option<u64> {
        None
    }

    /// The adaptive concurrency limit this adapter's requests feed (see
    /// [`adaptive`]); `None`: its concurrency is the fixed `limits.concurrency`
    /// (default 8), as for the adapters that work over a few database or
    /// directory connections, where a refused connection is not a load signal.
    fn adaptive(&self) -> Option<std::sync::Arc<adaptive::AdaptiveLimit>> {
        None
    }
}

/// A version of a value in a store.
#[derive(Debug)]
pub struct StoredValue {
    pub delivered: Delivered,
    /// Store-specific version id (KV version number, SM version id).
    pub version: String,
}

/// Where a claimed rotation has got to, as its store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimPhase {
    /// The slot is taken; nothing minted or staged yet.
    Claimed,
    /// The owning system is about to mint (or minted, if the answer was lost)
    /// a secret tagged with the claim's nonce: a later run looks for orphans.
    Minting,
    /// A new value is staged as pending.
    Staged,
    /// The new value is current; the old secret may not be retired yet.
    Promoted,
}

/// One run's hold on one credential, kept in the credential's primary store
/// (DESIGN: "the store remembers what the journal may forget"). It is the
/// cross-machine lease (written with check-and-set) and the record that lets
/// any later run, with or without the journal, tell a half-finished rotation
/// of its own from someone else's, finish it, and find orphans of a lost mint.
/// Holds handles, never secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub nonce: String,
    /// Who holds it: run id, host and pid, for the gap reason another run reports.
    pub holder: String,
    /// Until when the holder may be working. A claim past it is abandoned
    /// (its run died or failed) and another run may settle and take it.
    pub lease_until: chrono::DateTime<chrono::Utc>,
    pub phase: ClaimPhase,
    /// The secret in service when the claim was taken: the one to retire.
    #[serde(default)]
    pub old: Handle,
    /// The store version that held the old secret, for probing it after retirement.
    #[serde(default)]
    pub old_version: Option<String>,
    /// The holder's host and process id: on the same host, a claim whose
    /// process is gone is abandoned at once (a `kill -9`), lease or not.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    /// When the holder wrote this claim: for phase `minting`, the moment
    /// before the mint, which bounds when an orphan of it can have been made.
    #[serde(default)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl Claim {
    /// Whether the holder may still be working on it: its lease has not run
    /// out and, when it was taken on this host, its process is still there.
    pub fn live(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        if self.lease_until <= now {
            return false;
        }
        if !self.host.is_empty() && self.host == this_host() && self.pid != 0 && self.pid != std::process::id() {
            return std::path::Path::new(&format!("/proc/{}", self.pid)).exists() || !std::path::Path::new("/proc/self").exists();
        }
        true
    }
}

/// The run's start (whole seconds), from a nonce `<run-id>/<credential>`
/// whose run id begins with `YYYYmmddTHHMMSS` (then `.mmmZ` or `Z`).
pub fn run_start(nonce: &str) -> Option<i64> {
    let stamp = nonce.get(..15)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").ok().map(|t| t.and_utc().timestamp())
}

/// When an orphan of a mint can have been created (epoch seconds, from and
/// until), for systems whose secrets carry no nonce (IAM keys, Okta client
/// secrets): around `mint_sent` when the claim recorded it, else from the
/// run's start on. `None`: no bound is known, so nothing may be taken for an orphan.
pub fn orphan_window(nonce: &str, mint_sent: Option<i64>) -> Option<(i64, Option<i64>)> {
    const CLOCK_SLACK: i64 = 30;
    const ORPHAN_WINDOW: i64 = 300;
    match mint_sent {
        Some(s) => Some((s - CLOCK_SLACK, Some(s + ORPHAN_WINDOW + CLOCK_SLACK))),
        None => run_start(nonce).map(|s| (s - 5, None)),
    }
}

/// This machine's name, as claims record it.
pub fn this_host() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into())
    })
    .clone()
}

/// A place new values are delivered to, with staged (pending) and current versions.
#[async_trait]
pub trait Store: Send + Sync {
    /// The value consumers read now, if any.
    async fn read_current(&self, loc: &StoreLocation) -> Result<Option<StoredValue>, ProviderError>;
    /// A specific (older) version, if still held.
    async fn read_version(&self, loc: &StoreLocation, version: &str) -> Result<Option<Delivered>, ProviderError>;
    /// The staged value, with the tag it was staged under (`tag_for(nonce)`).
    async fn read_pending(&self, loc: &StoreLocation) -> Result<Option<(Delivered, String)>, ProviderError>;
    /// Durably stage `value` as pending under `nonce` (overwrites an older pending).
    async fn stage(&self, loc: &StoreLocation, value: &Delivered, nonce: &str) -> Result<(), ProviderError>;
    /// Make the pending value current. Idempotent: if current already equals
    /// pending, only clears the pending entry. Returns the new current version.
    async fn promote(&self, loc: &StoreLocation, nonce: &str) -> Result<String, ProviderError>;
    /// Drop a pending value that will not be promoted.
    async fn discard_pending(&self, loc: &StoreLocation) -> Result<(), ProviderError>;
    /// The tag `read_pending` reports for a value staged under `nonce`.
    fn tag_for(&self, nonce: &str) -> String {
        nonce.to_string()
    }
    /// Whether the run whose nonce is `nonce` promoted `current` (its value is
    /// that run's). Default: the nonce the store records beside the value.
    fn promoted_by(&self, current: &StoredValue, nonce: &str) -> bool {
        self.current_tag(current).as_deref() == Some(nonce)
    }
    /// The nonce of the run that made `current` current, when the store records it.
    fn current_tag(&self, current: &StoredValue) -> Option<String> {
        current.delivered.fields.get("keysweep_nonce").cloned()
    }
    /// Every pending entry left under this store (for `plan` to report stuck ones).
    async fn list_pending(&self, mount: &str) -> Result<Vec<String>, ProviderError>;

    /// Whether this store keeps claims (a check-and-set lease per credential).
    /// A store that does not leaves cross-machine exclusion to the operator.
    fn supports_claims(&self) -> bool {
        false
    }
    /// Takes `claim` and stages `value` under `nonce` in one check-and-set
    /// write, where the claim is kept beside the pending value: for a slot
    /// this lifecycle found free, so that taking it costs no write of its own.
    /// `Ok(Some(other))`: someone else holds it now (nothing was written).
    /// Default: the claim, then the value (two writes).
    async fn stage_claimed(&self, loc: &StoreLocation, value: &Delivered, nonce: &str, claim: &Claim) -> Result<Option<Claim>, ProviderError> {
        if let Some(other) = self.write_claim(loc, claim, None).await? {
            return Ok(Some(other));
        }
        self.stage(loc, value, nonce).await.map(|()| None)
    }
    /// The claim on `loc`, if one is held or was left behind.
    async fn read_claim(&self, _loc: &StoreLocation) -> Result<Option<Claim>, ProviderError> {
        Ok(None)
    }
    /// Writes `claim` with check-and-set: only when `loc` holds no claim, or
    /// one whose nonce is `replacing` (taking over an abandoned claim, or
    /// updating one's own). `Ok(Some(other))`: someone else holds it now.
    async fn write_claim(&self, _loc: &StoreLocation, _claim: &Claim, _replacing: Option<&str>) -> Result<Option<Claim>, ProviderError> {
        Ok(None)
    }
    /// Ends the claim of `nonce` (and drops what it staged). Never touches
    /// another run's claim.
    async fn release(&self, _loc: &StoreLocation, _nonce: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}
