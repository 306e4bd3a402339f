//! `guichet pki revoke` and the CRL: revoked serials are kept in
//! `revoked.txt`, and `ca.crl` is re-signed from it each time.
//!
//! Each CRL gets the next number from `crlnumber` (written before the CRL,
//! so a crash can skip a number but never reuse one), is valid for 30 days
//! and names the CA key in its authority key identifier.

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use crate::ca::{Ca, CaDir};
use crate::name::CertName;
use crate::{files, serial, PkiError};

/// How long a CRL stays authoritative; peers that enforce nextUpdate
/// refuse an older one, so re-run `write_crl` (or any revoke) within it.
const CRL_LIFETIME: Duration = Duration::days(30);

/// One line of `revoked.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Revocation {
    serial: Vec<u8>,
    at: OffsetDateTime,
    /// The certificate name at the time, for the operator reading the file.
    name: String,
}

/// The contents of `revoked.txt`, in revocation order.
#[derive(Debug, Default)]
struct RevocationList {
    entries: Vec<Revocation>,
}

/// Revokes `ca_dir/NAME.pem` and re-signs `ca_dir/ca.crl`, whose path is
/// returned. Revoking the same certificate again changes nothing but the
/// CRL's number and dates.
pub fn revoke(ca_dir: &Path, name: &str) -> Result<PathBuf, PkiError> {
    let name = CertName::parse(name, ca_dir)?;
    let ca = Ca::load(ca_dir)?;
    let serial = serial_of(&ca, &ca.dir.leaf_cert(name.as_str()))?;
    let mut list = RevocationList::load(&ca.dir.revoked())?;
    if !list.contains(&serial) {
        list.entries.push(Revocation {
            serial,
            at: OffsetDateTime::now_utc(),
            name: name.to_string(),
        });
        files::write_public(&ca.dir.revoked(), list.render().as_bytes())?;
    }
    sign_crl(&ca, &list)
}

/// Re-signs `ca_dir/ca.crl` from `revoked.txt` (empty when nothing was
/// revoked yet) and returns its path.
pub fn write_crl(ca_dir: &Path) -> Result<PathBuf, PkiError> {
    let ca = Ca::load(ca_dir)?;
    let list = RevocationList::load(&ca.dir.revoked())?;
    sign_crl(&ca, &list)
}

/// Re-signs `ca_dir/ca.crl` with the dates given, to rehearse what a
/// gateway does with a CRL past its nextUpdate or dated in the future.
pub fn write_crl_dated(
    ca_dir: &Path,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<PathBuf, PkiError> {
    let ca = Ca::load(ca_dir)?;
    let list = RevocationList::load(&ca.dir.revoked())?;
    sign_crl_dated(&ca, &list, this_update, next_update)
}

fn sign_crl(ca: &Ca, list: &RevocationList) -> Result<PathBuf, PkiError> {
    let this_update = OffsetDateTime::now_utc();
    sign_crl_dated(ca, list, this_update, this_update + CRL_LIFETIME)
}

fn sign_crl_dated(
    ca: &Ca,
    list: &RevocationList,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<PathBuf, PkiError> {
    let path = ca.dir.crl();
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(next_crl_number(&ca.dir)?),
        issuing_distribution_point: None,
        revoked_certs: list.entries.iter().map(Revocation::to_params).collect(),
        key_identifier_method: ca.key_id_method(),
    };
    let pem = params
        .signed_by(&ca.issuer)
        .and_then(|crl| crl.pem())
        .map_err(PkiError::crypto(&path))?;
    files::write_public(&path, pem.as_bytes())?;
    Ok(path)
}

/// Reads the last CRL number (none yet: 0), stores the next and returns it.
fn next_crl_number(dir: &CaDir) -> Result<u64, PkiError> {
    let path = dir.crl_number();
    let text = files::read_optional(&path)?.unwrap_or_default();
    let bad = || PkiError::BadCrlNumber {
        path: path.clone(),
        content: text.clone(),
    };
    let last = match text.trim() {
        "" => 0,
        digits => digits.parse::<u64>().map_err(|_| bad())?,
    };
    let next = last.checked_add(1).ok_or_else(bad)?;
    files::write_public(&path, format!("{next}\n").as_bytes())?;
    Ok(next)
}

/// The serial of the first certificate in `path`, once it is known to
/// come from `ca`: revoking another CA's serial would protect nothing.
fn serial_of(ca: &Ca, path: &Path) -> Result<Vec<u8>, PkiError> {
    let der = crate::show::certificates(&files::read(path)?, path)?
        .into_iter()
        .next()
        .unwrap_or_default();
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    match (authority_key_id(&cert), &ca.key_id) {
        (Some(theirs), Some(ours)) if theirs != *ours => Err(PkiError::NotIssuedByCa {
            cert: path.to_path_buf(),
            ca_dir: ca.dir.path().to_path_buf(),
        }),
        _ => Ok(cert.raw_serial().to_vec()),
    }
}

fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .map(|id| id.0.to_vec())
}

/// Why a line of `revoked.txt` cannot be read.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error("expected three fields")]
    FieldCount,
    #[error("bad serial {0:?}")]
    Serial(String),
    #[error("bad unix time {0:?}")]
    Time(String),
}

impl Revocation {
    fn parse(line: &str) -> Result<Self, LineError> {
        let mut fields = line.split_whitespace();
        let (Some(serial), Some(at), Some(name), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(LineError::FieldCount);
        };
        let serial =
            serial::from_hex(serial).ok_or_else(|| LineError::Serial(serial.to_string()))?;
        let at = at
            .parse::<i64>()
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| LineError::Time(at.to_string()))?;
        let name = name.to_string();
        Ok(Revocation { serial, at, name })
    }

    fn to_params(&self) -> RevokedCertParams {
        RevokedCertParams {
            serial_number: SerialNumber::from_slice(&self.serial),
            revocation_time: self.at,
            reason_code: None,
            invalidity_date: None,
        }
    }
}

impl RevocationList {
    fn load(path: &Path) -> Result<Self, PkiError> {
        let text = files::read_optional(path)?.unwrap_or_default();
        let mut list = RevocationList::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = Revocation::parse(line).map_err(|e| PkiError::BadRevocationList {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })?;
            list.entries.push(entry);
        }
        Ok(list)
    }

    fn contains(&self, serial: &[u8]) -> bool {
        self.entries.iter().any(|e| e.serial == serial)
    }

    fn render(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                let hex = serial::to_hex(&e.serial);
                format!("{hex} {} {}\n", e.at.unix_timestamp(), e.name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_lines_round_trip() {
        let text = "01AB 1700000000 lab-01\n\n# comment\n7F00 1700000001 x\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, text).unwrap();
        let list = RevocationList::load(&path).unwrap();
        assert_eq!(list.render(), "01AB 1700000000 lab-01\n7F00 1700000001 x\n");
        assert!(list.contains(&[0x7f, 0x00]));
        assert!(!list.contains(&[0x7f]));
    }

    #[test]
    fn a_broken_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, "01AB 1700000000 a\nzz 1 b\n").unwrap();
        let err = RevocationList::load(&path).unwrap_err();
        assert!(
            matches!(err, PkiError::BadRevocationList { line: 2, .. }),
            "{err}"
        );
    }
}
