//! TLS for PostgreSQL connections: a tokio-postgres connector over the
//! rustls that reqwest already uses, with libpq's `sslmode` meanings:
//! - `verify-full`: the chain to `sslrootcert` (or the system's roots) and
//!   the host name are verified;
//! - `verify-ca`: the chain is verified, the host name is not;
//! - `require`: encrypted, the server's certificate is not verified at all
//!   (anyone on the path can pose as the server): reported loudly;
//! - `disable`: no TLS (refused at load to a host that is not loopback unless
//!   `allow_plaintext: true`).
//!
//! No channel binding is offered (SCRAM without `-PLUS`), as with libpq's
//! `channel_binding=prefer` against a connector that has none.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::provider::ProviderError;

/// libpq's `sslmode`, the modes keysweep supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS. To a host that is not loopback only with `allow_plaintext: true`.
    Disable,
    /// TLS without verifying the server's certificate (reported by `plan`).
    Require,
    /// TLS; the certificate chain is verified, the host name is not.
    VerifyCa,
    /// TLS; the chain and the host name are verified.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What a connection's TLS is built from (paths are read when connecting).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM CA file; `None` or `system`: the system's roots.
    pub root_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// The rustls client configuration for `mode` (not `Disable`).
pub fn client_config(mode: SslMode, files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, ProviderError> {
    use crate::provider::tls::{rustls_config, Material, Verify};
    let verify = match mode {
        SslMode::Require => Verify::Nothing,
        SslMode::VerifyCa => Verify::ChainOnly,
        _ => Verify::Full,
    };
    let named = |f: &str, v: &Option<String>| v.clone().map(|p| (f.to_string(), p));
    let material = Material {
        ca_cert: named("sslrootcert", &files.root_cert.clone().filter(|r| r != "system")),
        ca_path: None,
        client: named("sslcert", &files.cert).zip(named("sslkey", &files.key)),
    };
    rustls_config("postgres.tls", verify, &material)
}

/// The fix for a refused server certificate, if `text` is one.
pub fn tls_refusal(text: &str) -> Option<&'static str> {
    use crate::provider::tls::Refused;
    match Refused::of(text) {
        Some(Refused::WrongName) => Some("the server's certificate does not name this host (sslmode verify-full): connect by the name the certificate carries, or fix the certificate"),
        Some(Refused::UnknownCa) => Some("the server's certificate was not accepted: set `sslrootcert` to the PEM of the CA that signed it"),
        None if text.contains("server does not support TLS") => {
            Some("the server does not offer TLS: turn `ssl = on` on the server, or (loopback, or with `allow_plaintext: true`) set `sslmode: disable`")
        }
        None => None,
    }
}

/// tokio-postgres's `MakeTlsConnect` over rustls.
#[derive(Clone)]
pub struct MakeRustls(pub Arc<rustls::ClientConfig>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for MakeRustls {
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name =
            ServerName::try_from(domain.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host `{domain}`: {e}")))?;
        Ok(RustlsConnect { config: self.0.clone(), name })
    }
}

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for RustlsConnect {
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(s))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
