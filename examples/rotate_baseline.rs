//! The benchmark's baselines (scripts/bench.sh): the same rotate-and-verify
//! of a Vault/OpenBao token that `keysweep run` does, written as plainly as
//! a script would, with no journal, claims or pending values. Per token,
//! seven requests:
//!   1. read the stored token (KV v2)            2. look the old token up by accessor
//!   3. create its replacement (same policies)   4. store the new token (KV v2)
//!   5. the new token works (lookup-self)        6. revoke the old one by accessor
//!   7. the old token is refused (lookup-self answers 403)
//!
//! `--concurrency 1` is the sequential script; a high one is what the server
//! (and whatever stands in front of it) sustains for the same calls.
//!
//! `--calls keysweep` makes instead the fifteen calls keysweep's own
//! lifecycle of a token makes (its documented budget in README.md "Round
//! trips per credential" and tests/round_trips.rs): the claim and staged
//! value in a pending KV entry, check-and-set writes, the re-read before
//! retiring, both proofs of death and the release. At a high concurrency it
//! is what the server sustains for the calls keysweep itself sends, without
//! keysweep: the journal, gates, retries and scheduling are what is left out.
//!
//!   VAULT_ADDR=... VAULT_TOKEN=... cargo run --release --example rotate_baseline -- \
//!       --prefix bench --from 0 --count 20 --concurrency 1
//! Works on the tokens `seed_openbao --prefix P --tokens N` created. Prints
//! one line, and `rate=<credentials per second>` last.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

struct Vault {
    http: reqwest::Client,
    addr: String,
    root: String,
}

impl Vault {
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}/v1/{path}", self.addr.trim_end_matches('/'));
        let mut r = self.http.request(method.parse()?, &url).header("X-Vault-Token", token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (s, v) = self.call(method, path, &self.root, body).await?;
        if !(200..300).contains(&s) {
            bail!("{method} {path}: HTTP {s}: {}", v["errors"]);
        }
        Ok(v)
    }

    /// Rotates token `id` (stored at secret/<p>/tokens/<id>) and proves it.
    async fn rotate(&self, p: &str, id: &str) -> Result<()> {
        let path = format!("secret/data/{p}/tokens/{id}");
        let cur = self.ok("GET", &path, None).await?;
        let old = cur["data"]["data"]["value"].as_str().context("no stored value")?.to_string();
        let old_acc = cur["data"]["data"]["accessor"].as_str().context("no stored accessor")?.to_string();
        let look = self.ok("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": old_acc }))).await?;
        let policies = look["data"]["policies"].clone();
        let meta = look["data"]["meta"].clone();
        let new = self.ok("POST", "auth/token/create-orphan", Some(json!({ "policies": policies, "meta": meta, "ttl": "768h" }))).await?;
        let token = new["auth"]["client_token"].as_str().context("no new token")?.to_string();
        let acc = new["auth"]["accessor"].as_str().context("no new accessor")?.to_string();
        self.ok("POST", &path, Some(json!({ "data": { "value": token, "accessor": acc } }))).await?;
        let (s, _) = self.call("GET", "auth/token/lookup-self", &token, None).await?;
        if s != 200 {
            bail!("{id}: the new token is refused (HTTP {s})");
        }
        self.ok("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": old_acc }))).await?;
        let (s, _) = self.call("GET", "auth/token/lookup-self", &old, None).await?;
        if s != 403 {
            bail!("{id}: the old token is not refused (HTTP {s})");
        }
        Ok(())
    }

    /// Rotates token `id` with the calls keysweep's lifecycle makes, in its
    /// order (the pending entry at secret/<p>-pending/tokens/<id>).
    async fn rotate_like_keysweep(&self, p: &str, id: &str) -> Result<()> {
        let path = format!("secret/data/{p}/tokens/{id}");
        let pending = format!("secret/data/{p}-pending/tokens/{id}");
        // stage
        let (s, _) = self.call("GET", &pending, &self.root, None).await?;
        if s != 404 {
            bail!("{id}: a pending entry exists (HTTP {s})");
        }
        let cur = self.ok("GET", &path, None).await?;
        let version = cur["data"]["metadata"]["version"].as_u64().context("no version")?;
        let old = cur["data"]["data"]["value"].as_str().context("no stored value")?.to_string();
        let old_acc = cur["data"]["data"]["accessor"].as_str().context("no stored accessor")?.to_string();
        let look = self.ok("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": old_acc }))).await?;
        let policies = look["data"]["policies"].clone();
        let meta = look["data"]["meta"].clone();
        let claim = json!({ "phase": "minting", "host": "baseline", "nonce": format!("{p}/{id}") });
        self.ok("POST", &pending, Some(json!({ "options": { "cas": 0 }, "data": { "claim": claim } }))).await?;
        let new = self.ok("POST", "auth/token/create-orphan", Some(json!({ "policies": policies, "meta": meta, "ttl": "768h" }))).await?;
        let token = new["auth"]["client_token"].as_str().context("no new token")?.to_string();
        let acc = new["auth"]["accessor"].as_str().context("no new accessor")?.to_string();
        self.ok("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": acc }))).await?;
        let staged = json!({ "value": token, "accessor": acc, "claim": claim });
        self.ok("POST", &pending, Some(json!({ "options": { "cas": 1 }, "data": staged }))).await?;
        // test
        let (s, _) = self.call("GET", "auth/token/lookup-self", &token, None).await?;
        if s != 200 {
            bail!("{id}: the new token is refused (HTTP {s})");
        }
        // promote
        self.ok("POST", &path, Some(json!({ "options": { "cas": version }, "data": { "value": token, "accessor": acc } }))).await?;
        let promoted = json!({ "phase": "promoted", "host": "baseline", "nonce": format!("{p}/{id}") });
        self.ok("POST", &pending, Some(json!({ "options": { "cas": 2 }, "data": { "claim": promoted } }))).await?;
        // retire
        self.ok("GET", &path, None).await?;
        self.ok("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": old_acc }))).await?;
        // verify
        let (s, _) = self.call("POST", "auth/token/lookup-accessor", &self.root, Some(json!({ "accessor": old_acc }))).await?;
        if s == 200 {
            bail!("{id}: the old token's accessor is still known");
        }
        let (s, _) = self.call("GET", "auth/token/lookup-self", &old, None).await?;
        if s != 403 {
            bail!("{id}: the old token is not refused (HTTP {s})");
        }
        // release
        self.ok("DELETE", &pending.replacen("/data/", "/metadata/", 1), None).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let (mut prefix, mut from, mut count, mut conc) = (String::from("bench"), 0usize, 20usize, 1usize);
    let mut like_keysweep = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--prefix" => prefix = v()?,
            "--from" => from = v()?.parse()?,
            "--count" => count = v()?.parse()?,
            "--concurrency" => conc = v()?.parse::<usize>()?.max(1),
            "--calls" => match v()?.as_str() {
                "script" => like_keysweep = false,
                "keysweep" => like_keysweep = true,
                other => bail!("--calls {other}: use `script` (7 calls per token) or `keysweep` (the 15 of keysweep's lifecycle)"),
            },
            other => bail!("unknown argument {other}"),
        }
    }
    let v = Vault {
        http: reqwest::Client::builder().pool_max_idle_per_host(1024).build()?,
        addr: std::env::var("VAULT_ADDR").context("VAULT_ADDR is not set")?,
        root: std::env::var("VAULT_TOKEN").context("VAULT_TOKEN is not set")?,
    };
    let p = prefix.as_str();
    let start = Instant::now();
    futures::stream::iter(from..from + count)
        .map(|i| {
            let v = &v;
            async move {
                let id = format!("{p}-tok-{i}");
                if like_keysweep {
                    v.rotate_like_keysweep(p, &id).await
                } else {
                    v.rotate(p, &id).await
                }
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    let rate = count as f64 / secs;
    let calls = if like_keysweep { "keysweep's 15 calls" } else { "7 calls" };
    println!("baseline: {count} tokens rotated and verified ({calls} each) in {secs:.2} s, {conc} at once = {rate:.1} credentials/s");
    println!("rate={rate:.3}");
    Ok(())
}
