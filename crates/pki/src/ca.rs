//! A certificate authority that lives in one directory: creating it, and
//! loading it back to sign certificates and CRLs.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use crate::{files, key, serial, validity, KeyType, PkiError};

/// What `guichet pki init` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// Subject common name; operators see it as the issuer of every
    /// certificate, so it should say this is a test CA.
    pub common_name: String,
    /// Optional subject organization (O).
    pub organization: Option<String>,
    /// Lifetime in days; long, so test setups do not rot.
    pub days: u32,
    /// The curve of the CA key.
    pub key_type: KeyType,
}

/// The files `init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `ca.pem`: the CA certificate peers trust.
    pub cert: PathBuf,
    /// `ca.key`: the CA private key, mode 0600.
    pub key: PathBuf,
    /// `ca.crl`: the (empty) revocation list.
    pub crl: PathBuf,
}

/// The file names inside a CA directory; the one place they are spelled.
#[derive(Debug, Clone)]
pub(crate) struct CaDir(PathBuf);

/// A CA read back from its directory, ready to sign.
pub(crate) struct Ca {
    pub(crate) dir: CaDir,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    /// The CA's subjectKeyIdentifier, which its certificates and CRLs name
    /// as their authority key identifier.
    pub(crate) key_id: Option<Vec<u8>>,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            common_name: "guichet test CA".to_string(),
            organization: None,
            days: 3650,
            key_type: KeyType::default(),
        }
    }
}

/// Creates a CA in `out` (made if missing): `ca.pem`, `ca.key` (0600) and
/// an empty `ca.crl`. Refuses to touch a directory that already has a key.
pub fn init(out: &Path, opts: &CaOptions) -> Result<CaFiles, PkiError> {
    let dir = CaDir::new(out);
    if dir.key().exists() {
        return Err(PkiError::CaKeyExists { path: dir.key() });
    }
    files::create_dir(out)?;
    let key = opts.key_type.generate(&dir.key())?;
    let cert = ca_params(opts, &dir.cert())?
        .self_signed(&key)
        .map_err(PkiError::crypto(dir.cert()))?;
    files::create_private(&dir.key(), key.serialize_pem().as_bytes())?;
    files::write_public(&dir.cert(), cert.pem().as_bytes())?;
    let crl = crate::write_crl(out)?;
    Ok(CaFiles {
        cert: dir.cert(),
        key: dir.key(),
        crl,
    })
}

fn ca_params(opts: &CaOptions, path: &Path) -> Result<CertificateParams, PkiError> {
    let (not_before, not_after) = validity::window(None, opts.days, path)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(organization) = &opts.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization.as_str());
    }
    params
        .distinguished_name
        .push(DnType::CommonName, opts.common_name.as_str());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from_slice(
        &serial::random().map_err(PkiError::crypto(path))?,
    ));
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

impl CaDir {
    pub(crate) fn new(dir: &Path) -> Self {
        CaDir(dir.to_path_buf())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }

    pub(crate) fn key(&self) -> PathBuf {
        self.0.join("ca.key")
    }

    pub(crate) fn crl(&self) -> PathBuf {
        self.0.join("ca.crl")
    }

    /// One line per revoked certificate: `serial-hex unix-time name`.
    pub(crate) fn revoked(&self) -> PathBuf {
        self.0.join("revoked.txt")
    }

    /// The number of the last CRL written, in decimal.
    pub(crate) fn crl_number(&self) -> PathBuf {
        self.0.join("crlnumber")
    }

    pub(crate) fn leaf_cert(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.pem"))
    }

    pub(crate) fn leaf_key(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.key"))
    }
}

impl Ca {
    /// Reads `ca.pem` and `ca.key` from `dir` and checks they belong
    /// together, so a mixed-up directory fails here and not at a peer.
    pub(crate) fn load(dir: &Path) -> Result<Ca, PkiError> {
        let dir = CaDir::new(dir);
        let cert_path = dir.cert();
        let pem = files::read_optional(&cert_path)?.ok_or(PkiError::NoCa {
            path: cert_path.clone(),
        })?;
        let der = crate::show::certificates(pem.as_bytes(), &cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| bad_ca(&cert_path, "holds no certificate"))?;
        let (_, cert) =
            X509Certificate::from_der(&der).map_err(|e| bad_ca(&cert_path, &e.to_string()))?;
        if !cert.is_ca() {
            return Err(bad_ca(
                &cert_path,
                "is not a CA certificate (basicConstraints CA:false)",
            ));
        }
        let signing_key = key::load(&dir.key())?;
        check_key_matches(&cert, &signing_key, &dir)?;
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), signing_key)
            .map_err(|e| bad_ca(&cert_path, &e.to_string()))?;
        Ok(Ca {
            key_id: subject_key_id(&cert),
            issuer,
            dir,
        })
    }

    /// How CRLs name this CA's key: the same identifier as its certificate.
    pub(crate) fn key_id_method(&self) -> KeyIdMethod {
        self.key_id
            .clone()
            .map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified)
    }
}

fn check_key_matches(
    cert: &X509Certificate<'_>,
    key: &KeyPair,
    dir: &CaDir,
) -> Result<(), PkiError> {
    if cert.public_key().subject_public_key.data.as_ref() == key.der_bytes() {
        return Ok(());
    }
    Err(PkiError::BadKey {
        path: dir.key(),
        reason: format!(
            "it does not match the public key of {}",
            dir.cert().display()
        ),
    })
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

fn bad_ca(path: &Path, reason: &str) -> PkiError {
    PkiError::BadCertificate {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
