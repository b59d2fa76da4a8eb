//! `supply`: a person gives keysweep the value they re-issued for a credential
//! with `manual:` steps (an API token made in a vendor's web UI). The value is
//! read from a hidden prompt (or standard input when piped, e.g. from a
//! password manager's CLI) and staged as *pending* in the credential's
//! primary store: consumers go on reading the old value until the next `run`
//! has tested the new one. That run then promotes it, revokes the old secret
//! by API and proves it dead. Nothing else changes here. Public fields the
//! vendor showed beside the secret (an OAuth credential's client id) come as
//! `--field KEY=VALUE` and are stored with it; the run's `identify` checks them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use zeroize::Zeroize;

use super::{common, exit};
use crate::playbook::StoreLocation;
use crate::provider::{ClaimPhase, Store};
use crate::secret::{Delivered, ExposeSecret, SecretString};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub playbook: PathBuf,
    /// The credential's id (it must have `manual:` steps).
    pub credential: String,
    /// A public field the vendor showed beside the new secret, stored with it
    /// (e.g. `--field client_id=…` for an OAuth credential made in a web UI).
    /// Never a secret: fields are written to logs, the journal and reports.
    #[arg(long = "field", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
}

/// Keys a supplied field may not take: the value itself and keysweep's own records.
const RESERVED: &[&str] = &["value", "version", "keysweep_nonce", "keysweep_claim"];

/// `KEY=VALUE` arguments as fields, or what is wrong with one.
pub fn parse_fields(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(format!("`--field {a}` is not KEY=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || v.is_empty() {
            return Err(format!("`--field {a}` needs a key and a value"));
        }
        if RESERVED.contains(&k) {
            return Err(format!("`--field {k}=…`: `{k}` is keysweep's own; the secret itself is read from the prompt or standard input"));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("`--field {k}` is given twice"));
        }
    }
    Ok(out)
}

pub async fn run(a: Args) -> Result<i32> {
    let pb = match common::load(&a.playbook) {
        Ok(pb) => pb,
        Err(code) => return Ok(code),
    };
    let Some(c) = pb.credentials.iter().find(|c| c.id == a.credential) else {
        let mut near: Vec<&str> = pb.credentials.iter().filter(|c| c.manual.is_some()).map(|c| c.id.as_str()).collect();
        near.truncate(10);
        eprintln!("keysweep: error: no credential `{}` in {}", a.credential, a.playbook.display());
        eprintln!("  hint: credentials with `manual:` steps: {}", if near.is_empty() { "none".to_string() } else { near.join(", ") });
        return Ok(exit::INVALID);
    };
    if c.manual.is_none() {
        eprintln!("keysweep: error: `{}` has no `manual:` steps: `keysweep run` re-issues it by API", c.id);
        eprintln!("  hint: add `manual:` with the steps a person takes, if no API can re-issue it");
        return Ok(exit::INVALID);
    }
    let Some(primary) = c.deliver_to.first().cloned() else {
        eprintln!("keysweep: error: `{}` is delivered to no store; add `deliver_to:`", c.id);
        return Ok(exit::INVALID);
    };

    let fields = match parse_fields(&a.fields) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("keysweep: error: {why}");
            return Ok(exit::INVALID);
        }
    };
    let value = read_value(&c.id)?;
    if fields.values().any(|v| v.as_str() == value.expose_secret()) {
        eprintln!("keysweep: error: a `--field` holds the secret itself; fields are public. Nothing was staged");
        return Ok(exit::INVALID);
    }
    let providers = crate::provider::registry::connect(&pb, &BTreeSet::from([primary.provider.clone()])).await?;
    let store = providers.store(&primary.provider).with_context(|| format!("provider `{}` is not a store", primary.provider))?;
    let r = stage_delivered(store, &primary, &c.id, Delivered { value, fields }).await;
    providers.close().await;
    if let Err(why) = r? {
        eprintln!("keysweep: error: {why}; nothing was staged");
        return Ok(exit::GAPS);
    }
    println!(
        "keysweep: staged the new value of `{}` at {primary} as pending (consumers still read the old one). \
         `keysweep run {}` now tests it, promotes it, revokes the old secret and proves it dead.",
        c.id,
        a.playbook.display()
    );
    Ok(exit::OK)
}

/// Stages `value` for credential `id` under the supplied nonce. A run
/// working the credential now owns its pending slot (`Ok(Err(why))`); a
/// failed run's claim that holds nothing (phase `claimed`: it was waiting for
/// this value, or refused a wrong one) is released first, and one that got
/// further is left for `run` to settle. A value supplied earlier that no run
/// has taken yet (staged under the supplied nonce, with no claim of a run
/// beside it) is replaced: the person corrects what they gave.
pub async fn stage(store: &dyn Store, primary: &StoreLocation, id: &str, value: SecretString) -> Result<Result<(), String>> {
    stage_delivered(store, primary, id, Delivered { value, fields: Default::default() }).await
}

/// [`stage`], with the public fields given beside the value.
pub async fn stage_delivered(store: &dyn Store, primary: &StoreLocation, id: &str, d: Delivered) -> Result<Result<(), String>> {
    if store.supports_claims() {
        if let Some(cl) = store.read_claim(primary).await? {
            if cl.live(chrono::Utc::now()) {
                let until = cl.lease_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                return Ok(Err(format!("`{id}` is being worked by {} (until {until}); supply the value after that run ends", cl.holder)));
            }
            // An entry a supply staged holds no claim; it reads as an
            // abandoned `staged` one under the supplied nonce (no run uses it).
            let supplied = cl.nonce == crate::engine::supplied_nonce(id);
            if supplied {
                tracing::warn!(credential = id, store = %primary, "replacing the value supplied earlier (no run has taken it yet)");
            } else if cl.phase != ClaimPhase::Claimed {
                return Ok(Err(format!(
                    "an unfinished rotation of `{id}` by {} ({:?}) is recorded at {primary}; `keysweep run` finishes or clears it first",
                    cl.holder, cl.phase
                )));
            } else {
                store.release(primary, &cl.nonce).await.with_context(|| format!("releasing the ended claim on {primary}"))?;
            }
        }
    }
    store.stage(primary, &d, &crate::engine::supplied_nonce(id)).await.with_context(|| format!("staging the value for `{id}` at {primary}"))?;
    Ok(Ok(()))
}

/// The value, from a hidden prompt on a terminal or from standard input;
/// one trailing line break is not part of it.
fn read_value(id: &str) -> Result<SecretString> {
    let mut s = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("new value of `{id}` (input hidden): ")).context("reading the value")?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the value from standard input")?;
        s
    };
    let trimmed = s.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&s).to_string();
    s.zeroize();
    if trimmed.is_empty() {
        anyhow::bail!("no value given for `{id}`; nothing was staged");
    }
    Ok(SecretString::from(trimmed))
}

#[cfg(test)]
mod tests {
    use super::parse_fields;

    #[test]
    fn fields_are_key_value_pairs_and_never_keysweeps_own() {
        let f = parse_fields(&["client_id=abc".into(), " name = x=y ".into()]).unwrap();
        assert_eq!(f.get("client_id").map(String::as_str), Some("abc"));
        assert_eq!(f.get("name").map(String::as_str), Some("x=y"));
        for bad in ["client_id", "=x", "k=", "value=s3cret", "keysweep_nonce=n"] {
            assert!(parse_fields(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(parse_fields(&["a=1".into(), "a=2".into()]).is_err(), "twice");
    }
}
