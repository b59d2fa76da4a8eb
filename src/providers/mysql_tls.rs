//! TLS for MySQL / MariaDB connections, with MySQL's own `ssl_mode` names,
//! through mysql_async's rustls connector (`SslOpts`) and the shared `tls:`
//! block (CA, client certificate, server name):
//! - `verify_identity`: the chain to `tls.ca_cert`/`ca_path` (else the
//!   system's roots) and the host name (or `tls.server_name`) are verified;
//! - `verify_ca`: the chain is verified, the host name is not;
//! - `required`: encrypted, the server's certificate is not verified at all
//!   (anyone on the path can pose as the server): reported loudly;
//! - `disabled`: no TLS (refused at load to a host that is not loopback
//!   unless `allow_plaintext: true`).
//!
//! MySQL's `PREFERRED` (TLS if the server offers it, else plaintext) is not
//! offered: with TLS settings, it is TLS or no connection.
//!
//! mysql_async 0.37.1's own "skip the name" switch does not work with the
//! rustls keysweep builds (it looks for the text `NotValidForName` in the
//! error, which rustls 0.23 no longer prints: blackbeam/mysql_async#404). So
//! `verify_ca` also names the server [`ANY_NAME`], a name no certificate can
//! carry (`.invalid` is reserved), so that the name check fails, after the
//! chain has been verified, with an error whose text holds that name: the
//! driver then accepts it. The chain is still checked in full (a certificate
//! from another CA is refused: `tests/mysql_tls.rs`), and once the driver
//! matches the error by its kind instead, the same settings keep working.

use std::path::PathBuf;

use mysql_async::{ClientIdentity, SslOpts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::tls::{self, Material, TlsConfig, Verify};
use crate::provider::ProviderError;

/// The name `verify_ca` checks the certificate against (see the module notes).
pub const ANY_NAME: &str = "NotValidForName.invalid";

/// MySQL's `ssl_mode` (`--ssl-mode`), the modes keysweep supports; the
/// upper-case spellings MySQL's clients use are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// No TLS. To a host that is not loopback only with `allow_plaintext: true`.
    #[serde(alias = "DISABLED")]
    Disabled,
    /// TLS without verifying the server's certificate (reported by `plan`).
    #[serde(alias = "REQUIRED")]
    Required,
    /// TLS; the certificate chain is verified, the host name is not.
    #[serde(alias = "VERIFY_CA")]
    VerifyCa,
    /// TLS; the chain and the host name are verified.
    #[serde(alias = "VERIFY_IDENTITY")]
    VerifyIdentity,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

/// The driver's TLS options for `mode` (`None`: `disabled`). Every file is
/// read and checked here, so that a missing or broken one is named by its
/// setting (the driver reads them again at each connection).
pub fn ssl_opts(mode: SslMode, tls: &TlsConfig) -> Result<Option<SslOpts>, ProviderError> {
    const OP: &str = "mysql.tls";
    let verify = match mode {
        SslMode::Disabled => return Ok(None),
        SslMode::Required => Verify::Nothing,
        SslMode::VerifyCa => Verify::ChainOnly,
        SslMode::VerifyIdentity => Verify::Full,
    };
    let material = Material::of(tls);
    tls::rustls_config(OP, verify, &material)?;
    let mut o = SslOpts::default();
    if let Some(((_, cert), (_, key))) = &material.client {
        o = o.with_client_identity(Some(ClientIdentity::new(PathBuf::from(cert).into(), PathBuf::from(key).into())));
    }
    o = match mode {
        // Nothing is verified (said by `plan` and at every connection). The
        // driver's built-in roots stay: its verifier is built from them first.
        SslMode::Required => o.with_danger_accept_invalid_certs(true),
        _ => {
            // Only the CA named (else the system's roots), as for every other provider.
            let roots = tls::trust_anchors(OP, &material)?;
            let o = o.with_root_certs(vec![tls::pem_bundle(&roots).into()]).with_disable_built_in_roots(true);
            if mode == SslMode::VerifyCa {
                o.with_danger_skip_domain_validation(true).with_danger_tls_hostname_override(Some(ANY_NAME))
            } else {
                o.with_danger_tls_hostname_override(tls.server_name.clone().filter(|n| !n.is_empty()))
            }
        }
    };
    Ok(Some(o))
}

/// The fix for a refused TLS connection, if `text` is one.
pub fn refusal(text: &str) -> Option<String> {
    if text.contains("server does not have this capability") {
        return Some("the server does not offer TLS: give it a certificate (`ssl_cert`, `ssl_key` in its configuration), or (loopback, or with `allow_plaintext: true`) set `ssl_mode: disabled`".into());
    }
    let fix = tls::refusal(text, "tls.ca_cert")?;
    match tls::Refused::of(text) {
        Some(tls::Refused::WrongName) => Some(format!("{fix}; `ssl_mode: verify_ca` checks the chain only")),
        _ => Some(fix),
    }
}
