//! Where a component connects and as whom: the endpoints, the prefix and the TLS
//! files (a CA to trust, a client certificate and its key), checked whole before any
//! connection so that bad input is one clear error naming the file.
//!
//! With etcd's `--client-cert-auth`, the certificate's common name is the etcd user:
//! the identity whose rights `store::rights` describes.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where and how to connect to etcd.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// `http://host:port` or `https://host:port`; comma-separated lists accepted.
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// TLS: `None` for plaintext.
    pub tls: Option<TlsFiles>,
}

/// The paths of the TLS material, as given (flags or a config file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed etcd's server certificate (PEM, one or more certificates).
    pub ca: Option<PathBuf>,
    /// This component's client certificate (PEM); its CN is the etcd user.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// TLS material read and checked: what `Store::connect` hands the client. Its
/// `Debug` shows no key material.
#[derive(Clone)]
pub struct TlsMaterial {
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The client certificate's common name (the etcd user), if any.
    pub common_name: Option<String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsMaterial")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("identity", &self.identity.as_ref().map(|_| "<certificate and key>"))
            .field("common_name", &self.common_name)
            .finish()
    }
}

/// TLS material that cannot be used. Never retryable: fix the files or the flags.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A file holds no PEM item of the expected kind, or one that does not parse.
    #[error("read {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    /// A certificate is outside its validity period.
    #[error("check {}: certificate {reason}", path.display())]
    Validity { path: PathBuf, reason: String },
    /// The key does not belong to the certificate.
    #[error("check {}: key does not match certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// A client certificate without its key, a key without its certificate, or a
    /// certificate without the CA to check the server against.
    #[error("{0}")]
    Incomplete(String),
}

impl TlsFiles {
    /// Whether any of the three is given.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// Reads and checks every file, at `now` (seconds since the epoch): each exists and
    /// parses, no certificate is expired or not yet valid, the key matches the
    /// certificate.
    pub fn load(&self, now: i64) -> Result<TlsMaterial, TlsError> {
        let ca =
            self.ca.as_ref().ok_or_else(|| TlsError::Incomplete("a client certificate needs the CA that signed etcd's certificate (--etcd-ca)".to_string()))?;
        let ca_pem = read(ca)?;
        for certificate in certificates(ca, &ca_pem)? {
            check_validity(ca, &certificate, now)?;
        }
        let (identity, common_name) = match (&self.cert, &self.key) {
            (None, None) => (None, None),
            (Some(_), None) => return Err(TlsError::Incomplete("--etcd-cert needs its key (--etcd-key)".to_string())),
            (None, Some(_)) => return Err(TlsError::Incomplete("--etcd-key needs its certificate (--etcd-cert)".to_string())),
            (Some(cert), Some(key)) => {
                let cert_pem = read(cert)?;
                let chain = certificates(cert, &cert_pem)?;
                for certificate in &chain {
                    check_validity(cert, certificate, now)?;
                }
                let key_pem = read(key)?;
                let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|error| TlsError::Parse { path: key.clone(), reason: format!("no private key: {error}") })?;
                check_key_matches(cert, key, &chain[0], &private_key)?;
                let common_name = common_name_of(&chain[0]);
                (Some((cert_pem, key_pem)), common_name)
            }
        };
        Ok(TlsMaterial { ca_pem, identity, common_name })
    }
}

impl TlsMaterial {
    pub(crate) fn options(&self) -> etcd_client::TlsOptions {
        let mut options = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(&self.ca_pem));
        if let Some((cert, key)) = &self.identity {
            options = options.identity(etcd_client::Identity::from_pem(cert, key));
        }
        options
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Parse { path: path.to_path_buf(), reason: format!("bad PEM: {error}") })?;
    if certificates.is_empty() {
        return Err(TlsError::Parse { path: path.to_path_buf(), reason: "no PEM certificate".to_string() });
    }
    Ok(certificates)
}

fn check_validity(path: &Path, der: &CertificateDer<'_>, now: i64) -> Result<(), TlsError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|error| TlsError::Parse { path: path.to_path_buf(), reason: format!("bad certificate: {error}") })?;
    let validity = certificate.validity();
    let subject = certificate.subject().to_string();
    if now < validity.not_before.timestamp() {
        return Err(TlsError::Validity { path: path.to_path_buf(), reason: format!("{subject} is not valid before {}", validity.not_before) });
    }
    if now > validity.not_after.timestamp() {
        return Err(TlsError::Validity { path: path.to_path_buf(), reason: format!("{subject} expired at {}", validity.not_after) });
    }
    Ok(())
}

pub(crate) fn common_name_of(der: &CertificateDer<'_>) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let common_name = certificate.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(common_name)
}

fn check_key_matches(cert_path: &Path, key_path: &Path, cert: &CertificateDer<'static>, key: &PrivateKeyDer<'_>) -> Result<(), TlsError> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|error| TlsError::Parse { path: key_path.to_path_buf(), reason: format!("unsupported private key: {error}") })?;
    let certified = rustls::sign::CertifiedKey::new(vec![cert.clone()], signing_key);
    match certified.keys_match() {
        // A key whose public half rustls cannot compute is left to the handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(_) => Err(TlsError::KeyMismatch { key: key_path.to_path_buf(), cert: cert_path.to_path_buf() }),
    }
}
