//! `guichet pki csr`: a new private key and the PKCS#10 request to order a
//! real IGC Santé organisation certificate (server or AUTH_CLI) from the
//! ANS, with the subject shape `guichet pki issue` gives test certificates:
//! `C=FR, O=organisation, OU=1+FINESS or 3+SIRET, CN=name`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use crate::subject::check_attribute;
use crate::{files, PkiError, Registry};

/// The key of the request. IGC Santé has long issued RSA 2048 keys, and
/// some partners' stacks accept nothing else; ECDSA is smaller and faster
/// where the certificate profile allows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CsrKeyType {
    /// ECDSA on P-256: the smallest key, for partners that accept ECDSA.
    #[default]
    P256,
    /// ECDSA on P-384.
    P384,
    /// RSA 2048 bits, generated with `openssl`: what IGC Santé has long issued.
    Rsa2048,
    /// RSA 3072 bits, generated with `openssl`.
    Rsa3072,
}

/// What to ask for, and where to write the key and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrRequest {
    /// O: the organisation's name as registered.
    pub organization: String,
    /// Where the structure's identifier comes from, and the number.
    pub registry: Registry,
    /// The structure's number in that registry; only its shape is checked.
    pub number: String,
    /// CN: the server's name, or the application's for AUTH_CLI.
    pub common_name: String,
    /// DNS names for the subjectAltName; when empty and the CN is a host
    /// name, the CN is used (TLS clients read only the SAN).
    pub dns: Vec<String>,
    /// The kind of key to generate.
    pub key_type: CsrKeyType,
    /// The new private key (PKCS#8 PEM, mode 0600); must not exist.
    pub key_path: PathBuf,
    /// The request (PEM); must not exist.
    pub csr_path: PathBuf,
}

/// What `csr` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrFiles {
    /// The private key, mode 0600.
    pub key: PathBuf,
    /// The request, to send to the CA.
    pub csr: PathBuf,
    /// The subject as written in the request, for the operator to check.
    pub subject: String,
}

/// Checks the request, generates the key, writes the key (0600) and then
/// the request. Nothing is written when a file already exists.
pub fn csr(req: &CsrRequest) -> Result<CsrFiles, PkiError> {
    let ou = req.registry.ou(&req.number)?;
    check_attribute("O", &req.organization, &req.csr_path)?;
    check_attribute("CN", &req.common_name, &req.csr_path)?;
    for path in [&req.key_path, &req.csr_path] {
        if path.exists() {
            return Err(PkiError::Exists { path: path.clone() });
        }
    }
    let params = params(req, &ou)?;
    let (key, key_pem) = generate(req.key_type, &req.key_path)?;
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(PkiError::crypto(&req.csr_path))?;
    files::create_new_private(&req.key_path, key_pem.as_bytes())?;
    files::create_new_public(&req.csr_path, request.as_bytes())?;
    Ok(CsrFiles {
        key: req.key_path.clone(),
        csr: req.csr_path.clone(),
        subject: format!(
            "C=FR, O={}, OU={ou}, CN={}",
            req.organization, req.common_name
        ),
    })
}

fn params(req: &CsrRequest, ou: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, req.organization.as_str());
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, req.common_name.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = sans(req)?;
    Ok(params)
}

fn sans(req: &CsrRequest) -> Result<Vec<SanType>, PkiError> {
    let mut hosts: Vec<&str> = req.dns.iter().map(String::as_str).collect();
    if hosts.is_empty() && is_host_name(&req.common_name) {
        hosts.push(&req.common_name);
    }
    hosts
        .into_iter()
        .map(|host| {
            let invalid = || PkiError::InvalidDnsName {
                name: host.to_string(),
                path: req.csr_path.clone(),
            };
            if !is_host_name(host) {
                return Err(invalid());
            }
            host.try_into().map(SanType::DnsName).map_err(|_| invalid())
        })
        .collect()
}

/// Letters, digits, `-`, `.` and a leading `*.`: what a DNS SAN holds.
fn is_host_name(text: &str) -> bool {
    let rest = text.strip_prefix("*.").unwrap_or(text);
    !rest.is_empty()
        && rest.len() <= 253
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !rest.starts_with(['.', '-'])
        && !rest.ends_with('.')
}

/// A fresh key and its PKCS#8 PEM. ECDSA comes from `ring`; `ring` cannot
/// generate RSA keys, so RSA comes from `openssl genpkey`, read from its
/// standard output and never written anywhere but `path`.
fn generate(key_type: CsrKeyType, path: &Path) -> Result<(KeyPair, String), PkiError> {
    let key = match key_type {
        CsrKeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        CsrKeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        CsrKeyType::Rsa2048 => return rsa(2048, path),
        CsrKeyType::Rsa3072 => return rsa(3072, path),
    }
    .map_err(PkiError::crypto(path))?;
    let pem = key.serialize_pem();
    Ok((key, pem))
}

fn rsa(bits: u32, path: &Path) -> Result<(KeyPair, String), PkiError> {
    let failed = |reason: String| PkiError::RsaGeneration { reason };
    let child = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let pem = String::from_utf8(out.stdout).map_err(|e| failed(e.to_string()))?;
    let key = KeyPair::from_pem(&pem).map_err(|e| PkiError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok((key, pem))
}

impl FromStr for CsrKeyType {
    type Err = String;

    /// Reads the `--key-type` spellings.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" => Ok(CsrKeyType::P256),
            "p384" | "p-384" => Ok(CsrKeyType::P384),
            "rsa2048" => Ok(CsrKeyType::Rsa2048),
            "rsa3072" => Ok(CsrKeyType::Rsa3072),
            _ => Err(format!(
                "unknown key type {s:?}: use rsa2048, rsa3072, p256 or p384"
            )),
        }
    }
}

impl fmt::Display for CsrKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CsrKeyType::P256 => "p256",
            CsrKeyType::P384 => "p384",
            CsrKeyType::Rsa2048 => "rsa2048",
            CsrKeyType::Rsa3072 => "rsa3072",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_what_a_dns_san_holds() {
        for ok in ["hl7.ch-example.fr", "a", "*.example.fr", "gw-01"] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in ["", "ROR client", "a_b.fr", ".fr", "-a.fr", "a.fr.", "é.fr"] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn key_types_read_and_print_the_same() {
        for kt in [
            CsrKeyType::P256,
            CsrKeyType::P384,
            CsrKeyType::Rsa2048,
            CsrKeyType::Rsa3072,
        ] {
            assert_eq!(kt.to_string().parse::<CsrKeyType>(), Ok(kt));
        }
        assert!("rsa1024".parse::<CsrKeyType>().is_err());
    }
}
