//! Reading certificates, keys, CA bundles and CRLs from disk.
//!
//! Every error names the file it came from and says what to do: these are
//! the messages an operator sees from `guichet check` and on a failed reload.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::crl::{self, CrlError, LearntPoints, StaleHook};
use crate::identity::Identity;
use crate::pkcs12::{PasswordSource, Pkcs12Error};
use crate::policy::provider;

/// The files one TLS profile names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileFiles {
    /// Our certificate, followed by any intermediates.
    pub cert: Option<PathBuf>,
    /// Our private key, PEM; must be readable by its owner only.
    pub key: Option<PathBuf>,
    /// The password of a PKCS#12 `cert` (which then holds the key too).
    pub password: Option<PasswordSource>,
    /// CA bundle that peers' certificates must chain to.
    pub ca: Option<PathBuf>,
    /// CRLs checked against peers' certificates, DER or PEM.
    pub crls: Vec<PathBuf>,
}

/// Our own certificate chain and the matching private key.
#[derive(Debug)]
pub struct OwnCert {
    /// Our certificate first, then the intermediates to send with it.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of `chain[0]`, checked to match it.
    pub key: PrivateKeyDer<'static>,
    /// `chain[0]` parsed, for reports and expiry warnings.
    pub identity: Identity,
}

/// Everything one TLS profile loaded, checked and ready to build configs.
#[derive(Debug)]
pub struct Material {
    /// What we present; `None` for a client-only profile without a certificate.
    pub own: Option<OwnCert>,
    /// Trust anchors as certificates (for reports) and as a store.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The same anchors as rustls verifies against; `None` without a `ca` file.
    pub roots: Option<Arc<RootCertStore>>,
    /// The CRLs of the profile, already checked to be signed by one of its CAs.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// Where peers' CRL distribution points go when the profile fetches
    /// them (`crl_from_certificates`); set by the gateway after loading.
    pub learn: Option<LearntPoints>,
    /// Told of each peer admitted under a CRL past its nextUpdate
    /// (`crl_expired = "warn"`); set by the gateway after loading.
    pub on_stale: Option<StaleHook>,
}

/// Why a profile's files cannot be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The I/O error is part of the message, not a separate cause, so a
    /// `{:#}` chain says it once.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file named by the profile.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    #[error("{path} holds no {what} (expected a PEM block such as -----BEGIN {pem_label}-----)")]
    /// The file holds no PEM block of the expected kind.
    Empty {
        /// The file named by the profile.
        path: PathBuf,
        /// What the profile expected there ("certificate", "private key", ...).
        what: &'static str,
        /// The PEM label such a block carries.
        pem_label: &'static str,
    },
    #[error("{path} is not a valid {what}: {reason}")]
    /// The file parses as PEM but its content is refused.
    Invalid {
        /// The file named by the profile.
        path: PathBuf,
        /// What the profile expected there.
        what: &'static str,
        /// The parser's or rustls' words.
        reason: String,
    },
    #[error(
        "private key {path} is accessible to other users (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    /// A private key readable by group or others is refused.
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    #[error("private key {key} does not belong to certificate {cert}")]
    /// The key is not the one the certificate's public key belongs to.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    #[error("{0} is given without {1}: a certificate needs its key and a key its certificate")]
    /// One of `cert` and `key` is given without the other: the setting
    /// given, then the one missing.
    Unpaired(&'static str, &'static str),
    /// A PKCS#12 `cert` cannot be opened.
    #[error(transparent)]
    Pkcs12(#[from] Pkcs12Error),
}

impl Material {
    /// Loads and cross-checks the files of one profile.
    pub fn load(files: &ProfileFiles) -> Result<Material, MaterialError> {
        let own = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => Some(load_own_cert(cert, key)?),
            (Some(cert), None) => {
                Some(crate::pkcs12::load_own_cert(cert, files.password.as_ref())?)
            }
            (None, None) => None,
            (None, Some(_)) => return Err(MaterialError::Unpaired("key", "cert")),
        };
        let (ca_certs, roots) = match &files.ca {
            Some(path) => {
                let certs = load_certs(path, "CA bundle")?;
                let store = root_store(path, &certs)?;
                (certs, Some(Arc::new(store)))
            }
            None => (Vec::new(), None),
        };
        let crls = files
            .crls
            .iter()
            .map(|path| load_crl(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Material {
            own,
            ca_certs,
            roots,
            crls,
            learn: None,
            on_stale: None,
        })
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, MaterialError> {
    fs::read(path).map_err(|error| MaterialError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads every certificate of a PEM file, in order.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MaterialError::Invalid {
            path: path.to_path_buf(),
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(MaterialError::Empty {
            path: path.to_path_buf(),
            what,
            pem_label: "CERTIFICATE",
        });
    }
    for cert in &certs {
        Identity::from_der(cert).map_err(|e| MaterialError::Invalid {
            path: path.to_path_buf(),
            what,
            reason: e.to_string(),
        })?;
    }
    Ok(certs)
}

/// Reads a private key after checking that other users cannot read it.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, MaterialError> {
    check_key_permissions(path)?;
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => MaterialError::Empty {
            path: path.to_path_buf(),
            what: "private key",
            pem_label: "PRIVATE KEY",
        },
        other => MaterialError::Invalid {
            path: path.to_path_buf(),
            what: "private key",
            reason: other.to_string(),
        },
    })
}

/// Group read is allowed (a `guichet` group owning `/etc/guichet` is a common
/// layout); group write and any access by others are refused.
pub(crate) fn check_key_permissions(path: &Path) -> Result<(), MaterialError> {
    let meta = fs::metadata(path).map_err(|error| MaterialError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(MaterialError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn load_own_cert(cert_path: &Path, key_path: &Path) -> Result<OwnCert, MaterialError> {
    let chain = load_certs(cert_path, "certificate")?;
    let key = load_key(key_path)?;
    own_cert(chain, key, cert_path, key_path)
}

/// Checks that `key` belongs to the leaf of `chain` (read from
/// `cert_path` and `key_path`, the same file for PKCS#12).
pub(crate) fn own_cert(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<OwnCert, MaterialError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| MaterialError::Invalid {
            path: key_path.to_path_buf(),
            what: "private key (ECDSA P-256/P-384, RSA or Ed25519)",
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(MaterialError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    let identity = Identity::from_der(&chain[0]).map_err(|e| MaterialError::Invalid {
        path: cert_path.to_path_buf(),
        what: "certificate",
        reason: e.to_string(),
    })?;
    Ok(OwnCert {
        chain,
        key,
        identity,
    })
}

fn root_store(
    path: &Path,
    certs: &[CertificateDer<'static>],
) -> Result<RootCertStore, MaterialError> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert.clone())
            .map_err(|e| MaterialError::Invalid {
                path: path.to_path_buf(),
                what: "CA certificate",
                reason: e.to_string(),
            })?;
    }
    Ok(store)
}

/// Reads a CRL in PEM (`X509 CRL`) or DER form.
pub fn load_crl(path: &Path) -> Result<CertificateRevocationListDer<'static>, MaterialError> {
    let bytes = read(path)?;
    let invalid = |reason: String| MaterialError::Invalid {
        path: path.to_path_buf(),
        what: "certificate revocation list",
        reason,
    };
    let crl = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::from_pem_slice(&bytes).map_err(|e| invalid(e.to_string()))?
    } else {
        CertificateRevocationListDer::from(bytes)
    };
    parse_crl(&crl).map_err(|e| match e {
        CrlError::Invalid(reason) => invalid(reason),
        other => invalid(other.to_string()),
    })?;
    Ok(crl)
}

/// Parses the CRL now so a broken file, or one dated in the future, is
/// reported at load, not at the first handshake.
fn parse_crl(crl: &CertificateRevocationListDer<'_>) -> Result<(), CrlError> {
    let info = crl::inspect(crl)?;
    crl::check_this_update(&info, unix_now())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What our own certificate is used for in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Presented by a TLS listener (needs serverAuth).
    Server,
    /// Presented to a forward target (needs clientAuth).
    Client,
}

impl Material {
    /// Checks that our own certificate chains to this profile's CA bundle
    /// and carries the extended key usage `role` needs. Peers may trust
    /// another CA, so callers report a failure as a warning.
    pub fn verify_own(&self, role: Role) -> Result<(), rustls::Error> {
        let (Some(own), Some(roots)) = (&self.own, &self.roots) else {
            return Ok(());
        };
        let now = rustls::pki_types::UnixTime::now();
        let (leaf, intermediates) = (&own.chain[0], &own.chain[1..]);
        match role {
            Role::Server => {
                let parsed = rustls::server::ParsedCertificate::try_from(leaf)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    provider().signature_verification_algorithms.all,
                )
            }
            Role::Client => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.clone(),
                    provider(),
                )
                .with_crls(self.crls.iter().cloned())
                .allow_unknown_revocation_status()
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                verifier
                    .verify_client_cert(leaf, intermediates, now)
                    .map(|_| ())
            }
        }
    }
}
