//! TLS with rustls, *ring* as the only crypto provider (webrtc-rs's DTLS already uses
//! ring; a second provider such as aws-lc-rs would double the crypto code and its build
//! needs). The server side is a [`TlsListener`] for `axum::serve`; the client side is the
//! rustls config the WHIP/WHEP client hands to reqwest.
//!
//! Why a hand-written listener over tokio-rustls rather than `axum-server`: axum 0.8's own
//! `axum::serve` accepts any [`axum::serve::Listener`], so a listener that yields TLS streams
//! keeps the exact server the plain-HTTP path uses (same graceful shutdown, same hyper
//! settings) with one small dependency (tokio-rustls, which reqwest already pulls in), where
//! axum-server would bring a second server loop and its own shutdown handle.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate, key or CA file cannot be used; every variant names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{what} {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("{what} {path}: malformed PEM certificate: {message}")]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(
        "TLS key file {0} holds no PEM private key (expected -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey(PathBuf),
    #[error("TLS key file {path}: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("TLS key file {key} does not fit certificate file {cert}: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The one crypto provider: ring.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Every certificate in a PEM file (a chain, or a set of trusted roots).
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            what,
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// A server config from a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1
/// or SEC1), checked now: unreadable files, no certificate, no or a malformed key and a
/// key that does not match the certificate are errors naming the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates("TLS certificate file", cert)?;
    let key_pem = read("TLS key file", key)?;
    let private = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(key.to_owned()))
        }
        Err(e) => {
            return Err(TlsError::BadKey {
                path: key.to_owned(),
                message: format!("malformed PEM: {e}"),
            })
        }
    };
    let provider = provider();
    // Parse the key on its own first so a garbage key is blamed on the key file, not on
    // the pair.
    if let Err(e) = provider.key_provider.load_private_key(private.clone_key()) {
        return Err(TlsError::BadKey {
            path: key.to_owned(),
            message: format!("unusable private key: {e}"),
        });
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    // axum serves HTTP/1.1 (its http2 feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The trust the WHIP/WHEP client puts in servers.
#[derive(Debug, Clone)]
pub(crate) struct ClientTls {
    /// The rustls config, always present: reqwest built with `rustls-no-provider` must be
    /// handed one (it would otherwise look for a process-wide provider).
    pub(crate) config: rustls::ClientConfig,
    /// Why https:// cannot work (no trust roots at all), reported when one is requested.
    pub(crate) unusable: Option<String>,
}

/// The client's TLS: the operating system's roots (rustls-platform-verifier, as reqwest
/// uses) plus the certificates in `ca_files` (a private CA, or a self-signed server's own
/// certificate).
pub(crate) fn client_tls(ca_files: &[PathBuf]) -> Result<ClientTls, TlsError> {
    let mut extra = Vec::new();
    for path in ca_files {
        extra.extend(certificates("CA certificate file", path)?);
    }
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider) {
        Ok(v) => v,
        // No system roots and no --ca-cert: plain http:// still works, https:// is refused
        // with this reason.
        Err(e) if ca_files.is_empty() => {
            let config = builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            return Ok(ClientTls {
                config,
                unusable: Some(format!("no trusted certificates: {e}; give a CA file")),
            });
        }
        Err(e) => return Err(TlsError::Config(e.to_string())),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(ClientTls {
        config,
        unusable: None,
    })
}

/// Accepts TCP connections and completes their TLS handshakes off the accept path (a
/// slow or silent client holds up nobody), yielding only finished TLS streams to
/// `axum::serve`.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let tls = tokio_rustls::TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, as axum does.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The acceptor task holds a sender for as long as it runs, and it runs until
            // this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
