//! Everything that can stop a PKI command, each naming the file involved
//! and what the operator can do about it.

use std::io;
use std::path::PathBuf;

/// Underlying errors are part of each message (field `cause`, not
/// `source`), so `{}` and anyhow's `{:#}` both print them exactly once.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {cause}; check the path and its permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },

    #[error("{path} already exists: refusing to overwrite a CA key; choose another --out directory or move the old CA away first")]
    CaKeyExists { path: PathBuf },

    #[error("{path} is missing: this directory holds no CA; run `guichet pki init --out DIR` first or pass the right --ca directory")]
    NoCa { path: PathBuf },

    #[error("certificate name {name:?} (for {path}) {reason}; use letters, digits, '.', '_' and '-', not starting with '.'")]
    InvalidName {
        name: String,
        path: PathBuf,
        reason: &'static str,
    },

    #[error("subject {field} {value:?} (for {path}) {reason}; give 1 to 64 characters, no control characters (shorten a long organisation name, as IGC Santé does)")]
    InvalidSubject {
        field: &'static str,
        value: String,
        path: PathBuf,
        reason: &'static str,
    },

    #[error("{registry} number {number:?} is not {expected}")]
    InvalidStructureId {
        registry: &'static str,
        number: String,
        expected: &'static str,
    },

    #[error("DNS name {name:?} (for {path}) is not a host name; give printable ASCII without spaces, e.g. hl7.example.org")]
    InvalidDnsName { name: String, path: PathBuf },

    #[error("OCSP responder URL {url:?} (for {path}) is not usable; give an http:// URL without spaces, e.g. http://ocsp.example.org/")]
    InvalidOcspUrl { url: String, path: PathBuf },

    #[error("{path}: a validity of {days} days starting {not_before} is out of range; give --days between 1 and a few thousand")]
    InvalidValidity {
        path: PathBuf,
        days: u32,
        not_before: time::OffsetDateTime,
    },

    #[error("{path} is not a usable private key ({reason}); give an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY), ECDSA P-256/P-384 or RSA of at least 2048 bits, e.g. from `openssl genpkey`")]
    BadKey { path: PathBuf, reason: String },

    #[error("{path} is not a readable certificate ({reason}); give a PEM file with BEGIN CERTIFICATE blocks")]
    BadCertificate { path: PathBuf, reason: String },

    #[error("{cert} was not issued by the CA in {ca_dir}; pass the --ca directory that issued it")]
    NotIssuedByCa { cert: PathBuf, ca_dir: PathBuf },

    #[error(
        "{path} line {line}: {reason}; fix or delete that line (format: serial-hex unix-time name)"
    )]
    BadRevocationList {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{path} does not hold a CRL number ({content:?}); put the number of the last CRL issued in it, or delete it to start again at 1")]
    BadCrlNumber { path: PathBuf, content: String },

    #[error(transparent)]
    Pkcs12(#[from] guichet_tls::Pkcs12Error),

    #[error("{path} is protected by a password; give it with --password-file FILE (mode 0600) or --password-env VAR")]
    Pkcs12Password { path: PathBuf },

    #[error("{path} already exists: refusing to overwrite it; choose another --out directory (or --key/--csr paths), or move the old file away")]
    Exists { path: PathBuf },

    #[error("cannot generate an RSA key with `openssl genpkey` ({reason}); install openssl (Debian package openssl), or use --key-type p256")]
    RsaGeneration { reason: String },

    #[error("cannot produce {path}: {cause}; check the CA key and the requested names")]
    Crypto { path: PathBuf, cause: rcgen::Error },
}

impl PkiError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |cause| PkiError::Io {
            action,
            path,
            cause,
        }
    }

    pub(crate) fn crypto(path: impl Into<PathBuf>) -> impl FnOnce(rcgen::Error) -> Self {
        let path = path.into();
        move |cause| PkiError::Crypto { path, cause }
    }
}
