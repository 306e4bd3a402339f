//! Everything that can stop a PKI command, each naming the file involved
//! and what the operator can do about it.

use std::io;
use std::path::PathBuf;

/// Underlying errors are part of each message (field `cause`, not
/// `source`), so `{}` and anyhow's `{:#}` both print them exactly once.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory of the PKI cannot be read or written.
    #[error("cannot {action} {path}: {cause}; check the path and its permissions")]
    Io {
        /// What was being done: "read", "write", "create", ...
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// What the system said; part of the message, not a source.
        cause: io::Error,
    },

    /// `init` would overwrite an existing CA key.
    #[error("{path} already exists: refusing to overwrite a CA key; choose another --out directory or move the old CA away first")]
    CaKeyExists {
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// The directory given as the CA holds no `ca.pem`.
    #[error("{path} is missing: this directory holds no CA; run `guichet pki init --out DIR` first or pass the right --ca directory")]
    NoCa {
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// A certificate name cannot be used as a file stem.
    #[error("certificate name {name:?} (for {path}) {reason}; use letters, digits, '.', '_' and '-', not starting with '.'")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A subject attribute is empty, too long or holds control characters.
    #[error("subject {field} {value:?} (for {path}) {reason}; give 1 to 64 characters, no control characters (shorten a long organisation name, as IGC Santé does)")]
    InvalidSubject {
        /// The subject attribute: "O", "OU", "CN".
        field: &'static str,
        /// The value as given.
        value: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A FINESS or SIRET number does not have the registry's shape (the
    /// check digit is not verified).
    #[error("{registry} number {number:?} is not {expected}")]
    InvalidStructureId {
        /// The registry the number belongs to: "FINESS" or "SIRET".
        registry: &'static str,
        /// The number as given.
        number: String,
        /// What a valid number looks like.
        expected: &'static str,
    },

    /// A DNS name for the subjectAltName is not a host name.
    #[error("DNS name {name:?} (for {path}) is not a host name; give printable ASCII without spaces, e.g. hl7.example.org")]
    InvalidDnsName {
        /// The name as given.
        name: String,
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// An OCSP responder URL to embed is not a plain http:// URL.
    #[error("OCSP responder URL {url:?} (for {path}) is not usable; give an http:// URL without spaces, e.g. http://ocsp.example.org/")]
    InvalidOcspUrl {
        /// The URL as given.
        url: String,
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// The validity window does not fit in a certificate.
    #[error("{path}: a validity of {days} days starting {not_before} is out of range; give --days between 1 and a few thousand")]
    InvalidValidity {
        /// The file or directory concerned.
        path: PathBuf,
        /// The requested lifetime.
        days: u32,
        /// The requested start of validity.
        not_before: time::OffsetDateTime,
    },

    /// A key file brought in is not a key we can sign with.
    #[error("{path} is not a usable private key ({reason}); give an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY), ECDSA P-256/P-384 or RSA of at least 2048 bits, e.g. from `openssl genpkey`")]
    BadKey {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A certificate file cannot be parsed.
    #[error("{path} is not a readable certificate ({reason}); give a PEM file with BEGIN CERTIFICATE blocks")]
    BadCertificate {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Revoking a certificate that another CA issued.
    #[error("{cert} was not issued by the CA in {ca_dir}; pass the --ca directory that issued it")]
    NotIssuedByCa {
        /// The certificate file.
        cert: PathBuf,
        /// The CA directory given.
        ca_dir: PathBuf,
    },

    /// A line of `revoked.txt` cannot be read.
    #[error(
        "{path} line {line}: {reason}; fix or delete that line (format: serial-hex unix-time name)"
    )]
    BadRevocationList {
        /// The file or directory concerned.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The `crlnumber` file does not hold a number.
    #[error("{path} does not hold a CRL number ({content:?}); put the number of the last CRL issued in it, or delete it to start again at 1")]
    BadCrlNumber {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the file holds instead.
        content: String,
    },

    /// A PKCS#12 file cannot be opened.
    #[error(transparent)]
    Pkcs12(#[from] guichet_tls::Pkcs12Error),

    /// A PKCS#12 file was given without its password.
    #[error("{path} is protected by a password; give it with --password-file FILE (mode 0600) or --password-env VAR")]
    Pkcs12Password {
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// A file to write already exists; PKI commands never overwrite.
    #[error("{path} already exists: refusing to overwrite it; choose another --out directory (or --key/--csr paths), or move the old file away")]
    Exists {
        /// The file or directory concerned.
        path: PathBuf,
    },

    /// `openssl` could not generate an RSA key.
    #[error("cannot generate an RSA key with `openssl genpkey` ({reason}); install openssl (Debian package openssl), or use --key-type p256")]
    RsaGeneration {
        /// What is wrong with it.
        reason: String,
    },

    /// The certificate, CRL or request cannot be built or signed.
    #[error("cannot produce {path}: {cause}; check the CA key and the requested names")]
    Crypto {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the system said; part of the message, not a source.
        cause: rcgen::Error,
    },
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
