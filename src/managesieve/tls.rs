//! STARTTLS material: the certificate chain and key from `[managesieve] tls_cert` and
//! `tls_key`, loaded into a rustls acceptor; [`TlsCell`] holds the current one so a SIGHUP
//! reload swaps it for new sessions while running ones keep theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    pub path: String,
    pub message: String,
}

/// Reads the PEM files and builds an acceptor (TLS 1.2 and 1.3, ring).
pub fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let err = |path: &Path, message: String| TlsError {
        path: path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(err(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| err(cert, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The acceptor new STARTTLS commands use; `None`: no TLS configured.
#[derive(Clone, Default)]
pub struct TlsCell(Arc<RwLock<Option<TlsAcceptor>>>);

impl TlsCell {
    /// A cell holding `acceptor`.
    pub fn new(acceptor: Option<TlsAcceptor>) -> Self {
        TlsCell(Arc::new(RwLock::new(acceptor)))
    }

    /// The current acceptor.
    pub fn get(&self) -> Option<TlsAcceptor> {
        // Every write replaces the value whole: a poisoned lock still holds a good one.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the acceptor (reload).
    pub fn set(&self, acceptor: Option<TlsAcceptor>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
    }
}
