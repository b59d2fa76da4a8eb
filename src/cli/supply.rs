//! `supply`: a person gives keysweep the value they re-issued for a credential
//! with `manual:` steps (an API token made in a vendor's web UI). The value is
//! read from a hidden prompt (or standard input when piped, e.g. from a
//! password manager's CLI) and staged as *pending* in the credential's
//! primary store: consumers go on reading the old value until the next `run`
//! has tested the new one. That run then promotes it, revokes the old secret
//! by API and proves it dead. Nothing else changes here.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use zeroize::Zeroize;

use super::{common, exit};
use crate::playbook::StoreLocation;
use crate::provider::{ClaimPhase, Store};
use crate::secret::{Delivered, SecretString};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub playbook: PathBuf,
    /// The credential's id (it must have `manual:` steps).
    pub credential: String,
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

    let value = read_value(&c.id)?;
    let providers = crate::provider::registry::connect(&pb, &BTreeSet::from([primary.provider.clone()])).await?;
    let store = providers.store(&primary.provider).with_context(|| format!("provider `{}` is not a store", primary.provider))?;
    let r = stage(store, &primary, &c.id, value).await;
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
/// further is left for `run` to settle.
pub async fn stage(store: &dyn Store, primary: &StoreLocation, id: &str, value: SecretString) -> Result<Result<(), String>> {
    if store.supports_claims() {
        if let Some(cl) = store.read_claim(primary).await? {
            if cl.live(chrono::Utc::now()) {
                let until = cl.lease_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                return Ok(Err(format!("`{id}` is being worked by {} (until {until}); supply the value after that run ends", cl.holder)));
            }
            if cl.phase != ClaimPhase::Claimed {
                return Ok(Err(format!(
                    "an unfinished rotation of `{id}` by {} ({:?}) is recorded at {primary}; `keysweep run` finishes or clears it first",
                    cl.holder, cl.phase
                )));
            }
            store.release(primary, &cl.nonce).await.with_context(|| format!("releasing the ended claim on {primary}"))?;
        }
    }
    let d = Delivered { value, fields: Default::default() };
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
