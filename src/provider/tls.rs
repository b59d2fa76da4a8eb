//! TLS shared by the adapters: the one `tls:` block (CA, client certificate,
//! server name, verification off), its load-time rules and warnings, and the
//! two ways a connection is built from it — a rustls `ClientConfig` (for the
//! database and directory clients) and a reqwest client (for the HTTP APIs).
//!
//! Verification is on unless the playbook turns it off, which `plan` and
//! every connection report; there is no silent fallback to plaintext or to
//! an unverified connection. Relative paths are made relative to the
//! playbook file that names them when it loads (see the loader).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::provider::kind::Problem;
use crate::provider::{ErrorKind, ProviderError};

/// The keys, in any provider's settings, that name a file or directory
/// keysweep reads when it connects (TLS material, a login's token file): a
/// relative value is relative to the playbook file.
pub const PATH_KEYS: &[&str] = &["ca_cert", "ca_path", "client_cert", "client_key", "sslrootcert", "sslcert", "sslkey", "ca_bundle", "jwt_path"];

/// TLS settings of a provider. Paths are read when keysweep connects; a
/// relative path is relative to the playbook file that names it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) to trust (only these; the system's
    /// roots are then not used). Vault: default `VAULT_CACERT`.
    pub ca_cert: Option<String>,
    /// Directory of PEM CA certificates to trust (every `*.pem`/`*.crt`).
    /// Vault: default `VAULT_CAPATH`.
    pub ca_path: Option<String>,
    /// PEM client certificate presented to the server (certificate login, or
    /// a server that requires client certificates); needs `client_key`.
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert` (PKCS#8, RSA or SEC1).
    pub client_key: Option<String>,
    /// The name the server's certificate is checked against (and sent as
    /// SNI), when it differs from the address's host, e.g. an address by IP.
    pub server_name: Option<String>,
    /// Do not verify the server's certificate. Anyone on the path can then
    /// read keysweep's login and every secret: only for a test server.
    /// Reported by `plan` and at every connection.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The warning for `insecure_skip_verify: true`.
pub const INSECURE_WARNING: &str =
    "TLS certificate verification is OFF (tls.insecure_skip_verify: true): anyone on the network path can read keysweep's login and every secret; only for a test server";

impl TlsConfig {
    pub fn is_set(&self) -> bool {
        *self != TlsConfig::default()
    }

    /// Its own rules, pure: certificate and key come in pairs, a server name
    /// is a host name. `at` is where the block sits (`["tls"]`).
    pub fn check(&self, at: &[&str]) -> Vec<Problem> {
        let mut out = vec![];
        let path = |k: &'static str| -> Vec<&str> {
            let mut p = at.to_vec();
            p.push(k);
            p
        };
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => out.push(Problem::new(
                &path("client_cert"),
                "`client_cert` without `client_key`",
                "add `client_key:` (the PEM private key of the certificate)",
            )),
            (None, Some(_)) => out.push(Problem::new(
                &path("client_key"),
                "`client_key` without `client_cert`",
                "add `client_cert:` (the PEM certificate of the key)",
            )),
            _ => {}
        }
        if self.server_name.as_deref().is_some_and(|n| n.trim().is_empty() || n.contains(['/', ':', ' ', '@'])) {
            out.push(Problem::new(
                &path("server_name"),
                "`server_name` is not a host name",
                "write the name the server's certificate carries, e.g. `db.internal`",
            ));
        }
        if self.insecure_skip_verify && (self.ca_cert.is_some() || self.ca_path.is_some() || self.server_name.is_some()) {
            out.push(Problem::new(
                &path("insecure_skip_verify"),
                "`insecure_skip_verify: true` with a CA or server name: nothing would be verified against them",
                "remove `insecure_skip_verify` (the CA is then checked), or remove the CA and server name",
            ));
        }
        out
    }

    /// [`check`](Self::check) for an HTTP API provider, which is addressed by
    /// the name its certificate carries (no `server_name`).
    pub fn check_http(&self, at: &[&str]) -> Vec<Problem> {
        let mut out = self.check(at);
        if self.server_name.is_some() {
            let mut p = at.to_vec();
            p.push("server_name");
            out.push(Problem::new(
                &p,
                "`server_name` is not supported for an HTTP API provider",
                "address the API by the name its certificate carries, and remove `server_name`",
            ));
        }
        out
    }

    /// The warning `plan` and every connection give, if verification is off.
    pub fn warnings(&self) -> Vec<String> {
        if self.insecure_skip_verify {
            vec![INSECURE_WARNING.to_string()]
        } else {
            vec![]
        }
    }

    /// How much is verified.
    pub fn verify(&self) -> Verify {
        if self.insecure_skip_verify {
            Verify::Nothing
        } else {
            Verify::Full
        }
    }
}

/// How much of the server's certificate is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The chain and the host name (or `server_name`).
    Full,
    /// The chain only (libpq `verify-ca`, MySQL `VERIFY_CA`).
    ChainOnly,
    /// Nothing: encrypted, but anyone on the path can pose as the server.
    Nothing,
}

/// Where the CA, client certificate and key come from, each with the name of
/// the setting it came from (for errors).
#[derive(Debug, Clone, Default)]
pub struct Material {
    pub ca_cert: Option<(String, String)>,
    pub ca_path: Option<(String, String)>,
    pub client: Option<((String, String), (String, String))>,
}

impl Material {
    /// From a `tls:` block, the fields named `tls.<field>`.
    pub fn of(tls: &TlsConfig) -> Material {
        let named = |f: &str, v: &Option<String>| v.clone().map(|p| (format!("tls.{f}"), p));
        Material {
            ca_cert: named("ca_cert", &tls.ca_cert),
            ca_path: named("ca_path", &tls.ca_path),
            client: named("client_cert", &tls.client_cert).zip(named("client_key", &tls.client_key)),
        }
    }

    /// The CA certificates named (file, then every `*.pem`/`*.crt` of the
    /// directory), as DER; empty: none named (the system's roots apply).
    pub fn ca_certs(&self, op: &'static str) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
        let mut out = vec![];
        if let Some((field, path)) = &self.ca_cert {
            out.extend(pem_certs(op, field, path)?);
        }
        if let Some((field, dir)) = &self.ca_path {
            let entries = std::fs::read_dir(dir).map_err(|e| cfg_err(op, format!("`{field}` `{dir}`: {e}")))?;
            let mut files: Vec<std::path::PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt")).collect();
            files.sort();
            if files.is_empty() {
                return Err(cfg_err(op, format!("`{field}` `{dir}` holds no `*.pem` or `*.crt` file")));
            }
            for f in files {
                out.extend(pem_certs(op, field, &f.display().to_string())?);
            }
        }
        Ok(out)
    }

    /// The CA certificates named, as one PEM bundle (for clients that take bytes).
    pub fn ca_pem(&self, op: &'static str) -> Result<Option<Vec<u8>>, ProviderError> {
        let certs = self.ca_certs(op)?;
        Ok((!certs.is_empty()).then(|| pem_bundle(&certs)))
    }
}

fn cfg_err(op: &'static str, msg: String) -> ProviderError {
    ProviderError::new(ErrorKind::Config, op, msg)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn pem_certs(op: &'static str, field: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| cfg_err(op, format!("`{field}` `{path}`: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| cfg_err(op, format!("`{field}` `{path}`: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(cfg_err(op, format!("`{field}` `{path}` holds no PEM certificate")));
    }
    Ok(certs)
}

/// The certificates a verified connection trusts: the CA `material` names,
/// else the system's roots (for clients that build their own verifier).
pub fn trust_anchors(op: &'static str, material: &Material) -> Result<Vec<CertificateDer<'static>>, ProviderError> {
    let named = material.ca_certs(op)?;
    if !named.is_empty() {
        return Ok(named);
    }
    let system: Vec<CertificateDer<'static>> =
        rustls_native_certs::load_native_certs().certs.into_iter().filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok()).collect();
    if system.is_empty() {
        return Err(cfg_err(op, "no CA is named and the system has no root certificates: name the server's CA (`ca_cert`)".into()));
    }
    Ok(system)
}

/// Certificates as one PEM bundle (for clients that take bytes).
pub fn pem_bundle(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    certs.iter().flat_map(|c| pem_encode("CERTIFICATE", c.as_ref()).into_bytes()).collect()
}

/// The rustls client configuration: `verify` against the CA of `material`
/// (else the system's roots), with its client certificate if any.
pub fn rustls_config(op: &'static str, verify: Verify, material: &Material) -> Result<Arc<rustls::ClientConfig>, ProviderError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cfg_err(op, format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify == Verify::Nothing {
        Arc::new(NoVerify(provider))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for c in trust_anchors(op, material)? {
            roots.add(c).map_err(|e| cfg_err(op, format!("CA certificate: {e}")))?;
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| cfg_err(op, format!("TLS setup: {e}")))?;
        if verify == Verify::ChainOnly {
            Arc::new(ChainOnly(webpki))
        } else {
            webpki
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match &material.client {
        Some(((cf, cert), (kf, key))) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| cfg_err(op, format!("`{cf}` `{cert}`: {e}")))?
                .collect::<Result<_, _>>()
                .map_err(|e| cfg_err(op, format!("`{cf}` `{cert}`: not PEM certificates: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| cfg_err(op, format!("`{kf}` `{key}`: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| cfg_err(op, format!("`{cf}`/`{kf}`: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A client certificate chain and its private key, PEM.
pub type ClientPem = (Vec<u8>, zeroize::Zeroizing<Vec<u8>>);

/// The client certificate and key of `material` as PEM bytes (for clients
/// that take bytes); the key is zeroized by the caller's `Zeroizing`.
pub fn client_pem(op: &'static str, material: &Material) -> Result<Option<ClientPem>, ProviderError> {
    let Some(((cf, cert), (kf, key))) = &material.client else { return Ok(None) };
    let c = std::fs::read(cert).map_err(|e| cfg_err(op, format!("`{cf}` `{cert}`: {e}")))?;
    let k = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| cfg_err(op, format!("`{kf}` `{key}`: {e}")))?);
    Ok(Some((c, k)))
}

/// The fix for a refused TLS connection, if `text` is one. `ca_setting` is
/// how the provider names its CA (`tls.ca_cert`, `sslrootcert`).
pub fn refusal(text: &str, ca_setting: &str) -> Option<String> {
    match Refused::of(text)? {
        Refused::WrongName => Some("the server's TLS certificate does not name this host: connect by the name the certificate carries (or set `tls.server_name` where the provider has it), or fix the certificate".into()),
        Refused::UnknownCa => Some(format!("the server's TLS certificate was not accepted: set `{ca_setting}` to the PEM of the CA that signed it")),
    }
}

/// Why a TLS client refused a server's certificate, told from the error
/// text of rustls (`NotValidForName`, `UnknownIssuer`, "invalid peer
/// certificate") or OpenSSL ("certificate verify failed"). One place for
/// the matching; each adapter words the fix in its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The certificate does not name the host connected to.
    WrongName,
    /// The certificate's chain does not lead to a trusted CA.
    UnknownCa,
}

impl Refused {
    pub fn of(text: &str) -> Option<Refused> {
        if text.contains("NotValidForName") || text.contains("not valid for name") {
            Some(Refused::WrongName)
        } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") || text.contains("certificate verify failed") {
            Some(Refused::UnknownCa)
        } else {
            None
        }
    }
}

/// Every `source()` of an error, joined (reqwest hides the TLS reason there).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// The CA, client certificate, verification and server name of `tls` on a
/// reqwest `builder` for an `https://` `base`. A `server_name` becomes the
/// URL's host, resolved to the address's own host's addresses, so that it
/// is both the SNI and the name verified. `env_ca` names the environment
/// variables read when `tls` names no CA file or directory (Vault's
/// `VAULT_CACERT`/`VAULT_CAPATH`), read through `env`.
pub fn reqwest_tls(
    op: &'static str,
    mut builder: reqwest::ClientBuilder,
    base: &mut String,
    tls: &TlsConfig,
    env_ca: Option<(&str, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<reqwest::ClientBuilder, ProviderError> {
    let mut material = Material::of(tls);
    if let Some((file_var, dir_var)) = env_ca {
        if material.ca_cert.is_none() {
            material.ca_cert = env(file_var).filter(|p| !p.is_empty()).map(|p| (format!("tls.ca_cert ({file_var})"), p));
        }
        if material.ca_path.is_none() {
            material.ca_path = env(dir_var).filter(|p| !p.is_empty()).map(|p| (format!("tls.ca_path ({dir_var})"), p));
        }
    }
    let roots = material.ca_certs(op)?;
    if !roots.is_empty() {
        let certs = roots
            .iter()
            .map(|c| reqwest::Certificate::from_der(c.as_ref()).map_err(|e| cfg_err(op, format!("CA certificate: {}", error_chain(&e)))))
            .collect::<Result<Vec<_>, _>>()?;
        // Only the CA named: the system's roots are not trusted for this provider.
        builder = builder.tls_certs_only(certs);
    }
    if let Some((mut pem, key)) = client_pem(op, &material)? {
        pem.push(b'\n');
        pem.extend_from_slice(&key);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| cfg_err(op, format!("`tls.client_cert`/`client_key`: {}", error_chain(&e))));
        pem.zeroize();
        builder = builder.identity(id?);
    }
    if tls.insecure_skip_verify {
        // Said at connect and by `plan` (`TlsConfig::warnings`).
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(name) = tls.server_name.as_deref().filter(|n| !n.is_empty()) {
        let mut url = reqwest::Url::parse(base).map_err(|e| cfg_err(op, format!("address: {e}")))?;
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .map_err(|e| ProviderError::new(ErrorKind::Unavailable, op, format!("resolving `{host}`: {e}")))?
            .collect();
        url.set_host(Some(name)).map_err(|e| cfg_err(op, format!("`tls.server_name` `{name}`: {e}")))?;
        builder = builder.resolve_to_addrs(name, &addrs);
        *base = url.as_str().trim_end_matches('/').to_string();
    }
    Ok(builder)
}

/// Chain verified; a certificate for another name is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Any certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Makes every relative value of a [`PATH_KEYS`] key under `v` (a
/// provider's settings) relative to `dir`, the folder of the playbook file
/// that names it. A value that is an `${env:…}` reference is left alone.
pub fn rebase_paths(v: &mut crate::playbook::doc::Node, dir: &std::path::Path, depth: usize) {
    use crate::playbook::doc::{Str, Value};
    if depth > 4 {
        return;
    }
    match &mut v.value {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let is_path = k.untag().as_str().is_some_and(|k| PATH_KEYS.contains(&k));
                match &mut val.value {
                    Value::String(s) if is_path => {
                        let p = std::path::Path::new(s.as_str());
                        if !s.is_empty() && !s.starts_with("${") && s.as_str() != "system" && p.is_relative() {
                            *s = Str::from(dir.join(p).display().to_string());
                        }
                    }
                    Value::Tagged(_) => {}
                    _ => rebase_paths(val, dir, depth + 1),
                }
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(|x| rebase_paths(x, dir, depth + 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_from_rustls_and_openssl_wordings() {
        let name = "invalid peer certificate: NotValidForName";
        let ca = "invalid peer certificate: UnknownIssuer";
        let openssl = "error:0A000086:SSL routines::certificate verify failed";
        assert_eq!(Refused::of(name), Some(Refused::WrongName));
        assert_eq!(Refused::of(ca), Some(Refused::UnknownCa));
        assert_eq!(Refused::of(openssl), Some(Refused::UnknownCa));
        assert_eq!(Refused::of("connection refused"), None);
        // Every adapter's hint follows the one classification.
        for text in [name, ca, openssl] {
            assert!(refusal(text, "tls.ca_cert").is_some());
            assert!(crate::providers::pg_tls::tls_refusal(text).is_some());
            assert!(crate::providers::vault::http::tls_refusal(text).is_some());
            assert!(crate::providers::mysql_tls::refusal(text).is_some());
        }
        assert!(crate::providers::pg_tls::tls_refusal(openssl).unwrap().contains("sslrootcert"));
        assert!(crate::providers::mysql_tls::refusal(name).unwrap().contains("verify_ca"));
        assert!(crate::providers::mysql_tls::refusal(ca).is_some_and(|h| !h.contains("verify_ca")));
    }

    #[test]
    fn relative_tls_paths_follow_the_playbook_file() {
        let mut v = crate::playbook::doc::parse(
            "kind: vault\naddress: https://v:8200\ntls: { ca_cert: certs/ca.pem, client_key: /abs/k.pem, client_cert: \"${env:CERT}\" }\nsslrootcert: system\nnot_a_path: rel/x\nauth: { method: jwt, jwt_path: ci/id-token }",
            &mut 0,
        )
        .unwrap();
        rebase_paths(&mut v, std::path::Path::new("/etc/keysweep"), 0);
        let at = |a: &str, b: Option<&str>| {
            let n = v.get(a).unwrap();
            b.map_or(n, |b| n.get(b).unwrap()).as_str().map(str::to_string)
        };
        assert_eq!(at("tls", Some("ca_cert")).as_deref(), Some("/etc/keysweep/certs/ca.pem"));
        assert_eq!(at("tls", Some("client_key")).as_deref(), Some("/abs/k.pem"));
        assert_eq!(at("tls", Some("client_cert")).as_deref(), Some("${env:CERT}"));
        assert_eq!(at("sslrootcert", None).as_deref(), Some("system"));
        assert_eq!(at("not_a_path", None).as_deref(), Some("rel/x"));
        assert_eq!(at("auth", Some("jwt_path")).as_deref(), Some("/etc/keysweep/ci/id-token"));
    }

    #[test]
    fn pairs_and_names_are_checked() {
        let t = TlsConfig { client_cert: Some("c".into()), ..Default::default() };
        assert_eq!(t.check(&["tls"]).len(), 1);
        let t = TlsConfig { insecure_skip_verify: true, ca_cert: Some("ca".into()), ..Default::default() };
        assert_eq!(t.check(&["tls"]).len(), 1);
        assert_eq!(t.warnings().len(), 1);
        let t = TlsConfig { server_name: Some("a b".into()), ..Default::default() };
        assert_eq!(t.check(&["tls"]).len(), 1);
        assert!(TlsConfig::default().check(&["tls"]).is_empty());
    }
}
