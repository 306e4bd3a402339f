//! `guichet pki issue`: a leaf certificate for a gateway, a partner
//! application or a test peer, signed by a CA directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use time::OffsetDateTime;

use crate::ca::{Ca, CaDir};
use crate::name::CertName;
use crate::subject::check_attribute;
use crate::{files, key, serial, validity, KeySource, PkiError};

/// Which side of a TLS connection the certificate may authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Usage {
    /// serverAuth and clientAuth: one certificate for a gateway that both
    /// accepts and originates connections.
    #[default]
    Both,
    /// clientAuth only: a partner application that only connects.
    ClientOnly,
    /// serverAuth only: a service that only accepts connections.
    ServerOnly,
}

/// What to certify. Build with [`IssueRequest::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// File stem (`NAME.pem`, `NAME.key`), first DNS name, and common
    /// name unless `cn` says otherwise.
    pub name: String,
    /// Subject common name (CN) when it is not `name`: partner
    /// certificates carry application names that are no file names, such
    /// as "ROR client - GHT Nord" in an IGC Santé certificate.
    pub cn: Option<String>,
    /// Extra DNS names, after `name`.
    pub dns: Vec<String>,
    /// IP addresses for the subjectAltName, for peers dialled by address.
    pub ips: Vec<IpAddr>,
    /// Lifetime in days from `not_before`.
    pub days: u32,
    /// The extended key usages; both by default.
    pub usage: Usage,
    /// Subject organizational unit (OU); IGC Santé puts the structure's
    /// identifier here (see [`crate::Registry::ou`]).
    pub ou: Option<String>,
    /// Subject organization (O).
    pub o: Option<String>,
    /// Generate a key, or certify an existing one.
    pub key: KeySource,
    /// Start of validity; `None` means one minute ago. Tests set it to make
    /// certificates that are expired or not yet valid.
    pub not_before: Option<OffsetDateTime>,
    /// OCSP responder named in the certificate (Authority Information
    /// Access), where peers ask whether it is revoked.
    pub ocsp_url: Option<String>,
    /// Adds the OCSPSigning extended key usage: a delegated responder's
    /// certificate, which signs OCSP answers for this CA.
    pub ocsp_signing: bool,
    /// CRL distribution points (URIs) the certificate names, as IGC Santé
    /// certificates do; none by default.
    pub crl_urls: Vec<String>,
}

/// What `issue` wrote, or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// `NAME.pem` in the CA directory.
    pub cert: PathBuf,
    /// `NAME.key` (0600) for a generated key; the caller's own file for
    /// [`KeySource::Existing`], which is left untouched.
    pub key: PathBuf,
}

/// Default leaf lifetime: the longest that browsers accepted, which keeps
/// test certificates working for a couple of years.
pub const DEFAULT_LEAF_DAYS: u32 = 825;

impl IssueRequest {
    /// Both usages, an ECDSA P-256 key, 825 days from a minute ago.
    pub fn new(name: impl Into<String>) -> Self {
        IssueRequest {
            name: name.into(),
            cn: None,
            dns: Vec::new(),
            ips: Vec::new(),
            days: DEFAULT_LEAF_DAYS,
            usage: Usage::Both,
            ou: None,
            o: None,
            key: KeySource::default(),
            not_before: None,
            ocsp_url: None,
            ocsp_signing: false,
            crl_urls: Vec::new(),
        }
    }
}

/// Signs a certificate for `req` with the CA in `ca_dir` and writes it to
/// `ca_dir/NAME.pem` (and a fresh key to `ca_dir/NAME.key`), replacing any
/// earlier certificate of that name.
pub fn issue(ca_dir: &Path, req: &IssueRequest) -> Result<IssuedFiles, PkiError> {
    let name = CertName::parse(&req.name, ca_dir)?;
    check_subject(req, &CaDir::new(ca_dir).leaf_cert(name.as_str()))?;
    let ca = Ca::load(ca_dir)?;
    let cert_path = ca.dir.leaf_cert(name.as_str());
    let (subject_key, key_path) = subject_key(&ca.dir, &name, &req.key)?;
    let params = leaf_params(&name, req, key::is_rsa(&subject_key), &cert_path)?;
    let cert = params
        .signed_by(&subject_key, &ca.issuer)
        .map_err(PkiError::crypto(&cert_path))?;
    if let KeySource::Generate(_) = req.key {
        files::write_private(&key_path, subject_key.serialize_pem().as_bytes())?;
    }
    files::write_public(&cert_path, cert.pem().as_bytes())?;
    Ok(IssuedFiles {
        cert: cert_path,
        key: key_path,
    })
}

/// Checks the O, OU and CN texts, before any file is touched.
fn check_subject(req: &IssueRequest, path: &Path) -> Result<(), PkiError> {
    let attributes = [("O", &req.o), ("OU", &req.ou), ("CN", &req.cn)];
    for (field, value) in attributes {
        if let Some(value) = value {
            check_attribute(field, value, path)?;
        }
    }
    Ok(())
}

fn subject_key(
    dir: &CaDir,
    name: &CertName,
    source: &KeySource,
) -> Result<(KeyPair, PathBuf), PkiError> {
    match source {
        KeySource::Generate(key_type) => {
            let path = dir.leaf_key(name.as_str());
            Ok((key_type.generate(&path)?, path))
        }
        KeySource::Existing(path) => Ok((key::load(path)?, path.clone())),
    }
}

fn leaf_params(
    name: &CertName,
    req: &IssueRequest,
    rsa: bool,
    path: &Path,
) -> Result<CertificateParams, PkiError> {
    let (not_before, not_after) = validity::window(req.not_before, req.days, path)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(name, req);
    params.subject_alt_names = subject_alt_names(name, req, path)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = key_usages(rsa);
    params.extended_key_usages = extended_key_usages(req.usage);
    if req.ocsp_signing {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::OcspSigning);
    }
    if let Some(url) = &req.ocsp_url {
        params
            .custom_extensions
            .push(crate::aia::ocsp_extension(url, path)?);
    }
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(
        &serial::random().map_err(PkiError::crypto(path))?,
    ));
    params.not_before = not_before;
    params.not_after = not_after;
    params.crl_distribution_points = req
        .crl_urls
        .iter()
        .map(|uri| rcgen::CrlDistributionPoint {
            uris: vec![uri.clone()],
        })
        .collect();
    Ok(params)
}

/// `O=…, OU=…, CN=…`, most significant first as X.500 orders them; the
/// CN is `cn`, or else NAME.
fn subject(name: &CertName, req: &IssueRequest) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    if let Some(o) = &req.o {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &req.ou {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    let cn = req.cn.as_deref().unwrap_or(name.as_str());
    dn.push(DnType::CommonName, cn);
    dn
}

/// NAME first, then each extra DNS name once, then the IP addresses.
fn subject_alt_names(
    name: &CertName,
    req: &IssueRequest,
    path: &Path,
) -> Result<Vec<SanType>, PkiError> {
    let mut hosts: Vec<&str> = vec![name.as_str()];
    for dns in &req.dns {
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(dns)) {
            hosts.push(dns);
        }
    }
    let mut sans = hosts
        .into_iter()
        .map(|host| dns_name(host, path))
        .collect::<Result<Vec<_>, _>>()?;
    sans.extend(req.ips.iter().copied().map(SanType::IpAddress));
    Ok(sans)
}

fn dns_name(host: &str, path: &Path) -> Result<SanType, PkiError> {
    let invalid = || PkiError::InvalidDnsName {
        name: host.to_string(),
        path: path.to_path_buf(),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    host.try_into().map(SanType::DnsName).map_err(|_| invalid())
}

fn key_usages(rsa: bool) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    if rsa {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

fn extended_key_usages(usage: Usage) -> Vec<ExtendedKeyUsagePurpose> {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    match usage {
        Usage::Both => vec![ServerAuth, ClientAuth],
        Usage::ClientOnly => vec![ClientAuth],
        Usage::ServerOnly => vec![ServerAuth],
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use guichet_tls::identity::Identity;

    use super::*;
    use crate::{CaOptions, Registry};

    fn new_ca() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        crate::init(tmp.path(), &CaOptions::default()).unwrap();
        tmp
    }

    fn identity(cert: &Path) -> Identity {
        let pem = std::fs::read(cert).unwrap();
        let ders = crate::show::certificates(&pem, cert).unwrap();
        Identity::from_der(&ders[0]).unwrap()
    }

    /// What a partner's IGC Santé organisation certificate (AUTH_CLI)
    /// looks like, as far as guichet reads it.
    fn igc_sante_client() -> IssueRequest {
        IssueRequest {
            cn: Some("ROR client - GHT Nord".into()),
            o: Some("CENTRE HOSPITALIER DE SAINT-DENIS".into()),
            ou: Some(Registry::Finess.ou("930000005").unwrap()),
            usage: Usage::ClientOnly,
            ..IssueRequest::new("partner-a")
        }
    }

    #[test]
    fn an_igc_sante_shaped_client_certificate() {
        let tmp = new_ca();
        let files = issue(tmp.path(), &igc_sante_client()).unwrap();
        assert_eq!(files.cert, tmp.path().join("partner-a.pem"));
        assert_eq!(files.key, tmp.path().join("partner-a.key"));
        let id = identity(&files.cert);
        assert_eq!(
            id.subject.to_string(),
            "O=CENTRE HOSPITALIER DE SAINT-DENIS, OU=1930000005, CN=ROR client - GHT Nord"
        );
        assert_eq!(id.subject.common_name(), Some("ROR client - GHT Nord"));
        assert_eq!(id.issuer.to_string(), "CN=guichet test CA");
        assert_eq!(id.extended_key_usage, Some(vec!["clientAuth".to_string()]));
        assert_eq!(id.san_dns, ["partner-a"], "NAME stays the first DNS name");
    }

    #[test]
    fn without_cn_the_name_is_the_common_name() {
        let tmp = new_ca();
        let req = IssueRequest {
            cn: None,
            ..igc_sante_client()
        };
        let id = identity(&issue(tmp.path(), &req).unwrap().cert);
        assert_eq!(
            id.subject.to_string(),
            "O=CENTRE HOSPITALIER DE SAINT-DENIS, OU=1930000005, CN=partner-a"
        );
    }

    #[test]
    fn a_bad_subject_is_refused_before_touching_files() {
        let tmp = new_ca();
        let cert = tmp.path().join("partner-a.pem");
        for (req, field) in [
            (
                IssueRequest {
                    o: Some("CENTRE HOSPITALIER ".repeat(4)),
                    ..igc_sante_client()
                },
                "O",
            ),
            (
                IssueRequest {
                    ou: Some(String::new()),
                    ..igc_sante_client()
                },
                "OU",
            ),
            (
                IssueRequest {
                    cn: Some("two\nlines".into()),
                    ..igc_sante_client()
                },
                "CN",
            ),
        ] {
            let err = issue(tmp.path(), &req).unwrap_err();
            match &err {
                PkiError::InvalidSubject { field: f, path, .. } => {
                    assert_eq!((*f, path), (field, &cert), "{err}");
                }
                other => panic!("unexpected {other}"),
            }
            assert!(!cert.exists() && !tmp.path().join("partner-a.key").exists());
        }
    }
}
