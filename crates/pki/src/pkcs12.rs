//! `guichet pki show FILE.p12`: what a PKCS#12 file holds, in the same
//! terms as a PEM certificate, plus the chain and whether the key fits.

use std::path::Path;

use guichet_tls::pkcs12::{decode, named_like_pkcs12, protection, shaped_like_pkcs12, Password};
use guichet_tls::{PasswordSource, Pkcs12Error};
use time::OffsetDateTime;

use crate::show::CertReport;
use crate::{files, PkiError};

/// Whether `path` (holding `bytes`) should be read as PKCS#12: named so,
/// or DER that is not a certificate.
pub fn is_pkcs12(path: &Path, bytes: &[u8]) -> bool {
    named_like_pkcs12(path)
        || (shaped_like_pkcs12(bytes) && x509_parser::parse_x509_certificate(bytes).is_err())
}

/// Describes the PKCS#12 file `path`. Without a password source the
/// empty password is tried (what `-passout pass:` writes).
pub fn show_pkcs12(path: &Path, password: Option<&PasswordSource>) -> Result<String, PkiError> {
    let bytes = files::read(path)?;
    let given = password.is_some();
    let password = match password {
        Some(source) => source.read()?,
        None => Password::new(""),
    };
    let bundle = decode(path, &bytes, &password).map_err(|e| match e {
        Pkcs12Error::WrongPassword { path } if !given => PkiError::Pkcs12Password { path },
        other => other.into(),
    })?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let all: Vec<_> = bundle.chain.iter().chain(&bundle.others).collect();
    let reports = all
        .iter()
        .map(|der| CertReport::from_der(der, now, path))
        .collect::<Result<Vec<_>, _>>()?;
    let key = match bundle.key_matches_leaf() {
        Ok(true) => format!(
            "matches certificate 1 ({})",
            reports[0].identity.key_algorithm
        ),
        Ok(false) => "DOES NOT match certificate 1: this file cannot serve TLS".to_string(),
        Err(reason) => format!("unusable ({reason})"),
    };
    let sent = bundle.tls_chain().len();
    let mut out = format!(
        "PKCS#12:      {}\nProtection:   {}\nPrivate key:  {key}\nCertificates: {} (guichet presents {})\n",
        path.display(),
        protection_note(&bytes),
        all.len(),
        presented(sent),
    );
    for (i, report) in reports.iter().enumerate() {
        let role = role(i, bundle.chain.len());
        out.push_str(&format!(
            "\nCertificate {} of {}: {role}\n{report}",
            i + 1,
            all.len()
        ));
    }
    Ok(out)
}

fn protection_note(bytes: &[u8]) -> String {
    match protection(bytes) {
        Some(p) if p.legacy => {
            format!("{p} (LEGACY: re-export with OpenSSL 3 defaults, AES-256-CBC and HMAC-SHA256)")
        }
        Some(p) => p.to_string(),
        None => "unknown".to_string(),
    }
}

fn presented(sent: usize) -> String {
    match sent {
        1 => "certificate 1".to_string(),
        n => format!("certificates 1 to {n}"),
    }
}

fn role(index: usize, chain: usize) -> String {
    match index {
        0 => "the key's certificate".to_string(),
        i if i < chain => format!("issuer of certificate {i}"),
        _ => "not in the key's chain".to_string(),
    }
}
