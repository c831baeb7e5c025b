//! A small certificate authority for clusters without a PKI of their own (`pacer pki
//! init`, `pacer pki issue`, and `pacer up --secure`): one CA key and certificate in
//! a directory, client certificates whose common name is the etcd user (a node's
//! name, `scheduler`, `admin`, `reader`), and etcd's server certificate. Keys are
//! written 0600 and nothing is overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd};

/// The CA's files in its directory.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// How long a CA lasts, in years.
const CA_YEARS: i32 = 10;
/// How long an issued certificate lasts, in years.
pub const CERT_YEARS: i32 = 2;

/// What a certificate is for: its common name's rights in etcd (`store::rights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// A node's agent: the name is the node's.
    Node,
    /// The schedulers: the name must be `scheduler`.
    Scheduler,
    /// The administrator: the name must be `admin`.
    Admin,
    /// Read-only: the name must be `reader`.
    Reader,
}

impl Role {
    /// The name a certificate of this role must carry, if fixed.
    pub fn fixed_name(self) -> Option<&'static str> {
        match self {
            Role::Node => None,
            Role::Scheduler => Some("scheduler"),
            Role::Admin => Some("admin"),
            Role::Reader => Some("reader"),
        }
    }
}

/// A certificate's validity: from a day (UTC) for whole years, or between two days.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From yesterday (clock skew between machines) for this many years.
    Years(i32),
    /// From the first day to the second, `(year, month, day)` each.
    Between((i32, u8, u8), (i32, u8, u8)),
}

/// Something the CA could not do.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file is in the way: nothing is overwritten.
    #[error("create {}: already exists (nothing is overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The CA files do not parse, or rcgen refused the parameters.
    #[error("{action}: {source}")]
    Certificate { action: String, source: rcgen::Error },
    /// A name that cannot be an identity (or not this role's).
    #[error("issue {name}: {reason}")]
    Name { name: String, reason: String },
}

/// Creates `DIR/ca.key` (0600) and `DIR/ca.crt`; refuses if either exists.
pub fn init(dir: &Path) -> Result<(), PkiError> {
    init_with(dir, Validity::Years(CA_YEARS))
}

/// `init` with a validity of choice (tests make expired CAs).
pub fn init_with(dir: &Path, validity: Validity) -> Result<(), PkiError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(PkiError::Exists(path.clone()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write { path: dir.to_path_buf(), source })?;
    let key = KeyPair::generate().map_err(certificate("generate the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "pacer CA");
    params.distinguished_name.push(DnType::OrganizationName, "pacer");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, validity);
    let cert = params.self_signed(&key).map_err(certificate("sign the CA certificate"))?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// A certificate to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest<'a> {
    /// The common name: the etcd user.
    pub name: &'a str,
    pub role: Role,
    /// For a server certificate (etcd's): its IP addresses and DNS names. Empty for a
    /// client certificate.
    pub hosts: &'a [String],
    pub validity: Validity,
}

/// Issues `DIR/NAME.crt` and `DIR/NAME.key` (0600) signed by the CA in `DIR`;
/// refuses if either exists. Returns the two paths.
pub fn issue(dir: &Path, request: &IssueRequest<'_>) -> Result<(PathBuf, PathBuf), PkiError> {
    let name = request.name;
    let name_error = |reason: &str| PkiError::Name { name: name.to_string(), reason: reason.to_string() };
    // A server certificate (`--host`) is a client certificate too, and its common name
    // an etcd user: it is named by the same rules, or `etcd1 --host …` named
    // `scheduler` or `root` would be that identity.
    match request.role.fixed_name() {
        Some(fixed) if fixed != name => return Err(name_error(&format!("a {:?} certificate is named {fixed}", request.role).to_lowercase())),
        None if crate::store::rights::RESERVED_NAMES.contains(&name) || name == "ca" => {
            return Err(name_error("reserved for another role (--role scheduler|admin|reader)"));
        }
        None if !crate::api::Name::is_valid(name) => {
            return Err(name_error("a node name is letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"));
        }
        _ => {}
    }
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(PkiError::Exists(path.clone()));
        }
    }
    let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let ca_cert = std::fs::read_to_string(&ca_cert_path).map_err(|source| PkiError::Read { path: ca_cert_path.clone(), source })?;
    let ca_key = std::fs::read_to_string(&ca_key_path).map_err(|source| PkiError::Read { path: ca_key_path.clone(), source })?;
    let ca_key = KeyPair::from_pem(&ca_key).map_err(certificate(format!("read {}", ca_key_path.display())))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(certificate(format!("read {}", ca_cert_path.display())))?;

    let key = KeyPair::generate().map_err(certificate("generate a key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name.push(DnType::OrganizationName, "pacer");
    params.distinguished_name.push(DnType::OrganizationalUnitName, format!("{:?}", request.role).to_lowercase());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if !request.hosts.is_empty() {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        for host in request.hosts {
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.clone().try_into().map_err(certificate(format!("issue {name}: host {host:?}")))?),
            };
            params.subject_alt_names.push(san);
        }
    }
    set_validity(&mut params, request.validity);
    let cert = params.signed_by(&key, &issuer).map_err(certificate(format!("sign {name}")))?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((cert_path, key_path))
}

fn certificate(action: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let action = action.into();
    move |source| PkiError::Certificate { action, source }
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    match validity {
        Validity::Years(years) => {
            use chrono::Datelike;
            let start = chrono::Utc::now().date_naive() - chrono::Days::new(1);
            let (year, month, day) = (start.year(), start.month() as u8, start.day() as u8);
            // The 29th of February of a year to come may not exist: the 28th then.
            let end_day = if month == 2 && day == 29 { 28 } else { day };
            params.not_before = date_time_ymd(year, month, day);
            params.not_after = date_time_ymd(year + years, month, end_day);
        }
        Validity::Between((y1, m1, d1), (y2, m2, d2)) => {
            params.not_before = date_time_ymd(y1, m1, d1);
            params.not_after = date_time_ymd(y2, m2, d2);
        }
    }
}

/// Writes a new file with `mode`, failing if it exists (no race with another writer).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists(path.to_path_buf())
        } else {
            PkiError::Write { path: path.to_path_buf(), source }
        }
    })?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|source| PkiError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::store::tls::{TlsError, TlsFiles};

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issued_certificates_load_with_their_name_and_private_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path()).expect("init");
        assert!(matches!(init(dir.path()), Err(PkiError::Exists(_))), "init refuses to overwrite");
        let (cert, key) = issue(dir.path(), &IssueRequest { name: "n1", role: Role::Node, hosts: &[], validity: Validity::Years(1) }).expect("issue");
        assert_eq!(std::fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join(CA_KEY)).expect("ca key").permissions().mode() & 0o777, 0o600);
        let files = TlsFiles { ca: Some(dir.path().join(CA_CERT)), cert: Some(cert), key: Some(key) };
        let material = files.load(now()).expect("loads");
        assert_eq!(material.common_name.as_deref(), Some("n1"));
        assert!(matches!(
            issue(dir.path(), &IssueRequest { name: "n1", role: Role::Node, hosts: &[], validity: Validity::Years(1) }),
            Err(PkiError::Exists(_))
        ));
    }

    #[test]
    fn roles_fix_their_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path()).expect("init");
        let refused = |name: &str, role: Role| issue(dir.path(), &IssueRequest { name, role, hosts: &[], validity: Validity::Years(1) }).is_err();
        assert!(refused("n1", Role::Scheduler));
        assert!(refused("scheduler", Role::Node));
        assert!(refused("../x", Role::Node));
        assert!(!refused("reader", Role::Reader));
        // A server certificate (`--host`) is named by the same rules: it is a client
        // certificate too, whose common name is an etcd user.
        let hosts = ["127.0.0.1".to_string()];
        let refused_server = |name: &str| issue(dir.path(), &IssueRequest { name, role: Role::Node, hosts: &hosts, validity: Validity::Years(1) }).is_err();
        for reserved in ["scheduler", "admin", "reader", "root", "ca", "../x", "-x"] {
            assert!(refused_server(reserved), "{reserved}");
        }
        assert!(!refused_server("etcd-server"));
    }

    #[test]
    fn bad_tls_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path()).expect("init");
        let request = |name| IssueRequest { name, role: Role::Node, hosts: &[], validity: Validity::Years(1) };
        let (cert1, key1) = issue(dir.path(), &request("n1")).expect("n1");
        let (_, key2) = issue(dir.path(), &request("n2")).expect("n2");
        let ca = Some(dir.path().join(CA_CERT));
        let mismatch = TlsFiles { ca: ca.clone(), cert: Some(cert1.clone()), key: Some(key2.clone()) }.load(now()).expect_err("mismatch");
        assert!(matches!(mismatch, TlsError::KeyMismatch { .. }), "{mismatch}");
        assert!(mismatch.to_string().contains("n2.key"), "{mismatch}");
        let expired = issue(dir.path(), &IssueRequest { name: "old", role: Role::Node, hosts: &[], validity: Validity::Between((2000, 1, 1), (2001, 1, 1)) })
            .expect("old");
        let error = TlsFiles { ca: ca.clone(), cert: Some(expired.0.clone()), key: Some(expired.1) }.load(now()).expect_err("expired");
        assert!(error.to_string().contains("old.crt") && error.to_string().contains("expired"), "{error}");
        let missing = TlsFiles { ca: ca.clone(), cert: Some(dir.path().join("absent.crt")), key: Some(key1.clone()) }.load(now()).expect_err("missing");
        assert!(missing.to_string().contains("absent.crt"), "{missing}");
        let not_pem = dir.path().join("garbage.crt");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let garbage = TlsFiles { ca: Some(not_pem), cert: None, key: None }.load(now()).expect_err("garbage");
        assert!(garbage.to_string().contains("garbage.crt"), "{garbage}");
        let without_key = TlsFiles { ca, cert: Some(cert1), key: None }.load(now()).expect_err("no key");
        assert!(matches!(without_key, TlsError::Incomplete(_)));
    }
}
