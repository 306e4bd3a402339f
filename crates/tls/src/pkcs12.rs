//! Reading our own certificate and key from a PKCS#12 (`.p12`/`.pfx`) file.
//!
//! IGC Santé delivers software certificates as PKCS#12 files, and operators
//! should not have to split them with `openssl pkcs12` into an unencrypted
//! key file: the password stays in a file only the service reads (or in
//! its environment), and the key never touches the disk in clear.
//!
//! Readable: what `openssl pkcs12 -export` writes with OpenSSL 3 defaults
//! (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC, HMAC-SHA256 MAC) and with
//! `-legacy` (pbeWithSHA1And3-KeyTripleDES-CBC, pbeWithSHA1And40BitRC2-CBC,
//! HMAC-SHA1 MAC), as `p12-keystore` does.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use p12_keystore::error::Error as P12Error;
use p12_keystore::Pkcs12Archive;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::material::{self, MaterialError, OwnCert};

mod protection;

pub use protection::{protection, Protection};

/// Where the password of a PKCS#12 file comes from. Only the place is
/// kept in the configuration, never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// A file readable by the service only; one trailing newline is not
    /// part of the password (`echo secret > file` is the common way).
    File(PathBuf),
    /// An environment variable of the process.
    Env(String),
}

/// A password read from its source. No `Debug` output shows it.
pub struct Password(String);

/// The contents of a PKCS#12 file, in the order a TLS peer wants them.
pub struct Pkcs12Bundle {
    /// The certificate of the key, then its issuers as found in the bag,
    /// walking up to (and including) a self-signed root when present.
    pub chain: Vec<CertificateDer<'static>>,
    /// Certificates of the bag that are not in `chain`.
    pub others: Vec<CertificateDer<'static>>,
    /// The one private key of the bag, matching `chain[0]`.
    pub key: PrivateKeyDer<'static>,
}

/// Why a PKCS#12 file or its password cannot give a certificate and key.
///
/// Each message names the file or variable at fault and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("{path} is a PKCS#12 file, which is encrypted: give its password with `password_file` (or `password_env`) in the TLS profile")]
    /// The profile gives no password for an encrypted file.
    NoPassword {
        /// The PKCS#12 file.
        path: PathBuf,
    },
    #[error("cannot read the password file {path}: {error}")]
    /// The password file cannot be read.
    PasswordRead {
        /// The password file.
        path: PathBuf,
        /// What the system said; part of the message, not a source.
        error: std::io::Error,
    },
    #[error("password file {path} is accessible to other users (mode {mode:04o}); run `chmod 600 {path}`")]
    /// The password file is readable by group or others: refused, as a key would be.
    PasswordPermissions {
        /// The password file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    #[error("environment variable {var} (password_env) is not set or not UTF-8; set it in the service's environment, or use password_file")]
    /// The password variable is missing from the environment.
    PasswordEnv {
        /// The variable's name.
        var: String,
    },
    #[error("{path}: wrong password (the PKCS#12 integrity check or decryption fails); check password_file/password_env")]
    /// The password does not open the file.
    WrongPassword {
        /// The PKCS#12 file.
        path: PathBuf,
    },
    #[error("{path} uses a protection guichet cannot read ({reason}); re-export it with `openssl pkcs12 -export` (AES-256-CBC, HMAC-SHA256) or `-legacy` (3DES/RC2, HMAC-SHA1)")]
    /// The file is protected by an algorithm we do not implement.
    Unsupported {
        /// The PKCS#12 file.
        path: PathBuf,
        /// The algorithm or structure the reader refused.
        reason: String,
    },
    #[error("{path} is not a valid PKCS#12 file ({reason}); give a .p12/.pfx file, or a PEM certificate with its `key`")]
    /// The file is not PKCS#12 at all, or is damaged.
    Invalid {
        /// The file given as `cert`.
        path: PathBuf,
        /// The parser's words.
        reason: String,
    },
    #[error("{path} holds {count} private keys; export exactly one certificate with its key (openssl pkcs12 -export -inkey KEY -in CERT -certfile CHAIN)")]
    /// The file holds no key or several: which one to use would be a guess.
    KeyCount {
        /// The PKCS#12 file.
        path: PathBuf,
        /// How many private keys it holds.
        count: usize,
    },
    #[error("{path} holds a private key but no certificate; export the certificate with its key")]
    /// The file holds a key without the certificate that goes with it.
    NoCertificate {
        /// The PKCS#12 file.
        path: PathBuf,
    },
}

impl PasswordSource {
    /// The file to watch for reloads, if the password lives in one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            PasswordSource::File(path) => Some(path),
            PasswordSource::Env(_) => None,
        }
    }

    /// Reads the password; a file must not be open to other users, like
    /// the key it protects.
    pub fn read(&self) -> Result<Password, Pkcs12Error> {
        match self {
            PasswordSource::File(path) => read_password_file(path),
            PasswordSource::Env(var) => std::env::var(var)
                .map(Password)
                .map_err(|_| Pkcs12Error::PasswordEnv { var: var.clone() }),
        }
    }
}

impl Password {
    /// A password given directly (tests, a prompt).
    pub fn new(text: impl Into<String>) -> Self {
        Password(text.into())
    }

    /// An empty password protects nothing: `check` says so.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

fn read_password_file(path: &Path) -> Result<Password, Pkcs12Error> {
    let read_error = |error| Pkcs12Error::PasswordRead {
        path: path.to_path_buf(),
        error,
    };
    let mode = fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(Pkcs12Error::PasswordPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(read_error)?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Password(text.to_string()))
}

/// Whether `path` is named like a PKCS#12 file (`.p12`, `.pfx`).
pub fn named_like_pkcs12(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// Whether `bytes` may be PKCS#12: DER (a SEQUENCE), not PEM text.
pub fn shaped_like_pkcs12(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

/// Decodes `bytes`, the content of `path` (named in errors only).
pub fn decode(path: &Path, bytes: &[u8], password: &Password) -> Result<Pkcs12Bundle, Pkcs12Error> {
    let has_mac = protection(bytes).is_some_and(|p| p.mac.is_some());
    let archive = Pkcs12Archive::from_pkcs12(bytes, &password.0)
        .map_err(|e| decode_error(path, e, has_mac))?;
    let count = archive.keys.len();
    let Some(key) = archive.keys.first().filter(|_| count == 1) else {
        return Err(Pkcs12Error::KeyCount {
            path: path.to_path_buf(),
            count,
        });
    };
    let certs: Vec<Bagged> = archive
        .certs
        .iter()
        .map(|bag| Bagged::new(bag.cert.as_der(), bag.local_key_id.as_deref()))
        .collect();
    let leaf =
        leaf_index(&certs, key.local_key_id.as_ref().map(|id| id.as_ref())).ok_or_else(|| {
            Pkcs12Error::NoCertificate {
                path: path.to_path_buf(),
            }
        })?;
    let order = chain_order(&certs, leaf);
    let der = |i: usize| CertificateDer::from(certs[i].der.clone());
    Ok(Pkcs12Bundle {
        chain: order.iter().map(|&i| der(i)).collect(),
        others: (0..certs.len())
            .filter(|i| !order.contains(i))
            .map(der)
            .collect(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.as_der().to_vec())),
    })
}

/// Never quotes the password: the crate's errors do not carry it. Once a
/// MAC has verified, the password is right, so a failed decryption means
/// an unsupported scheme, not a wrong password.
fn decode_error(path: &Path, error: P12Error, has_mac: bool) -> Pkcs12Error {
    let path = path.to_path_buf();
    match error {
        P12Error::MacError(_) => Pkcs12Error::WrongPassword { path },
        P12Error::UnpadError | P12Error::Pkcs5Error(_) if !has_mac => {
            Pkcs12Error::WrongPassword { path }
        }
        P12Error::UnsupportedEncryptionScheme
        | P12Error::UnsupportedMacAlgorithm
        | P12Error::UnsupportedContentType
        | P12Error::UnsupportedCertificateType
        | P12Error::InvalidParameters
        | P12Error::UnpadError
        | P12Error::Pkcs5Error(_) => Pkcs12Error::Unsupported {
            path,
            reason: error.to_string(),
        },
        P12Error::DerError(e) if e.to_string().contains("unsupported OID") => {
            Pkcs12Error::Unsupported {
                path,
                reason: e.to_string(),
            }
        }
        other => Pkcs12Error::Invalid {
            path,
            reason: other.to_string(),
        },
    }
}

/// One certificate of the bag with what chain building needs.
struct Bagged {
    der: Vec<u8>,
    local_key_id: Option<Vec<u8>>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    is_ca: bool,
}

impl Bagged {
    fn new(der: &[u8], local_key_id: Option<&[u8]>) -> Self {
        let parsed = X509Certificate::from_der(der).ok().map(|(_, c)| c);
        let (subject, issuer, is_ca) = parsed.map_or_else(Default::default, |c| {
            (
                c.subject().as_raw().to_vec(),
                c.issuer().as_raw().to_vec(),
                c.tbs_certificate.is_ca(),
            )
        });
        Bagged {
            der: der.to_vec(),
            local_key_id: local_key_id.map(<[u8]>::to_vec),
            subject,
            issuer,
            is_ca,
        }
    }

    fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }
}

/// The key's certificate: the one with the key's local key id (what
/// OpenSSL and Windows write), else the first one that is not a CA.
fn leaf_index(certs: &[Bagged], key_id: Option<&[u8]>) -> Option<usize> {
    let by_id = key_id.and_then(|id| {
        certs
            .iter()
            .position(|c| c.local_key_id.as_deref() == Some(id))
    });
    by_id.or_else(|| certs.iter().position(|c| !c.is_ca))
}

/// The leaf, then each issuer found in the bag, stopping at a self-signed
/// certificate or a loop.
fn chain_order(certs: &[Bagged], leaf: usize) -> Vec<usize> {
    let mut order = vec![leaf];
    let mut current = leaf;
    while !certs[current].self_signed() {
        let next = (0..certs.len())
            .find(|&i| !order.contains(&i) && certs[i].subject == certs[current].issuer);
        let Some(next) = next else { break };
        order.push(next);
        current = next;
    }
    order
}

impl Pkcs12Bundle {
    /// What a TLS server or client sends: the chain without a self-signed
    /// root, which the peer must already trust to accept us.
    pub fn tls_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = self.chain.clone();
        if chain.len() > 1 && chain.last().is_some_and(|c| is_self_signed(c)) {
            chain.pop();
        }
        chain
    }

    /// Whether the private key belongs to the leaf, as a TLS peer would
    /// find out; `Err` says why the key cannot be used at all.
    pub fn key_matches_leaf(&self) -> Result<bool, rustls::Error> {
        let key = crate::policy::provider()
            .key_provider
            .load_private_key(self.key.clone_key())?;
        let certified = rustls::sign::CertifiedKey::new(self.chain.clone(), key);
        Ok(!matches!(
            certified.keys_match(),
            Err(rustls::Error::InconsistentKeys(
                rustls::InconsistentKeys::KeyMismatch
            ))
        ))
    }
}

fn is_self_signed(der: &[u8]) -> bool {
    Bagged::new(der, None).self_signed()
}

/// Loads our own certificate and key from the PKCS#12 file `path`. A PEM
/// file here is a certificate whose `key` was forgotten.
pub(crate) fn load_own_cert(
    path: &Path,
    password: Option<&PasswordSource>,
) -> Result<OwnCert, MaterialError> {
    let bytes = material::read(path)?;
    if !shaped_like_pkcs12(&bytes) {
        return Err(MaterialError::Unpaired("cert", "key"));
    }
    material::check_key_permissions(path)?;
    let password = password
        .ok_or_else(|| Pkcs12Error::NoPassword {
            path: path.to_path_buf(),
        })?
        .read()?;
    let bundle = decode(path, &bytes, &password)?;
    material::own_cert(bundle.tls_chain(), bundle.key, path, path)
}
