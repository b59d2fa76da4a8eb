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
}

#[tokio::main]
async fn main() -> Result<()> {
    let (mut prefix, mut from, mut count, mut conc) = (String::from("bench"), 0usize, 20usize, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--prefix" => prefix = v()?,
            "--from" => from = v()?.parse()?,
            "--count" => count = v()?.parse()?,
            "--concurrency" => conc = v()?.parse::<usize>()?.max(1),
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
            async move { v.rotate(p, &format!("{p}-tok-{i}")).await }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    let rate = count as f64 / secs;
    println!("baseline: {count} tokens rotated and verified in {secs:.2} s, {conc} at once = {rate:.1} credentials/s");
    println!("rate={rate:.3}");
    Ok(())
}
