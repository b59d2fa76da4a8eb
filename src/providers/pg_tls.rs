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

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::provider::{ErrorKind, ProviderError};

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

fn cfg_err(msg: String) -> ProviderError {
    ProviderError::new(ErrorKind::Config, "postgres.tls", msg)
}

/// The rustls client configuration for `mode` (not `Disable`).
pub fn client_config(mode: SslMode, files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, ProviderError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cfg_err(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::Require {
        Arc::new(NoVerify(provider))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match files.root_cert.as_deref().filter(|r| *r != "system") {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| cfg_err(format!("`sslrootcert` `{path}`: {e}")))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| cfg_err(format!("`sslrootcert` `{path}`: not PEM certificates: {e}")))?;
                if certs.is_empty() {
                    return Err(cfg_err(format!("`sslrootcert` `{path}` holds no PEM certificate")));
                }
                for c in certs {
                    roots.add(c).map_err(|e| cfg_err(format!("`sslrootcert` `{path}`: {e}")))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(cfg_err(
                        "`sslrootcert` is not set and the system has no root certificates: name the server's CA in `sslrootcert`".into(),
                    ));
                }
            }
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| cfg_err(format!("TLS setup: {e}")))?;
        if mode == SslMode::VerifyCa {
            Arc::new(ChainOnly(webpki))
        } else {
            webpki
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| cfg_err(format!("`sslcert` `{cert}`: {e}")))?
                .collect::<Result<_, _>>()
                .map_err(|e| cfg_err(format!("`sslcert` `{cert}`: not PEM certificates: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| cfg_err(format!("`sslkey` `{key}`: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| cfg_err(format!("`sslcert`/`sslkey`: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The fix for a refused server certificate, if `text` is one.
pub fn tls_refusal(text: &str) -> Option<&'static str> {
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        Some("the server's certificate does not name this host (sslmode verify-full): connect by the name the certificate carries, or fix the certificate")
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Some("the server's certificate was not accepted: set `sslrootcert` to the PEM of the CA that signed it")
    } else if text.contains("server does not support TLS") {
        Some("the server does not offer TLS: turn `ssl = on` on the server, or (loopback, or with `allow_plaintext: true`) set `sslmode: disable`")
    } else {
        None
    }
}

/// `verify-ca`: the chain must verify; a certificate for another name is accepted.
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

/// `require`: any certificate (the handshake's signatures are still checked).
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
