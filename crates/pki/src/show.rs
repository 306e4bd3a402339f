//! `guichet pki show`: what a certificate file says, in the same terms the
//! gateway's allowlist and logs use (both read [`Identity`]).

use std::fmt;
use std::path::Path;

use guichet_tls::identity::Identity;
use time::OffsetDateTime;
use x509_parser::pem::Pem;

use crate::{files, PkiError};

/// One certificate as an operator reads it, judged at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReport {
    /// The certificate, parsed.
    pub identity: Identity,
    /// The moment "days left" is counted from, in Unix seconds.
    pub now: i64,
    /// The X.509 version (1 to 3): rustls accepts only 3.
    pub version: u32,
}

/// Describes every certificate in `pem` (a chain file shows each, leaf
/// first as written); raw DER is accepted too.
pub fn show(pem: &[u8]) -> Result<String, PkiError> {
    describe(pem, Path::new("<input>"))
}

/// Like [`show`], reading `path`, so errors name the file.
pub fn show_file(path: &Path) -> Result<String, PkiError> {
    describe(&files::read(path)?, path)
}

fn describe(pem: &[u8], path: &Path) -> Result<String, PkiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let reports = certificates(pem, path)?
        .iter()
        .map(|der| CertReport::new(der, now, path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(join(&reports))
}

fn join(reports: &[CertReport]) -> String {
    if let [only] = reports {
        return only.to_string();
    }
    let total = reports.len();
    let mut out = String::new();
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("Certificate {} of {total}\n{report}", i + 1));
    }
    out
}

/// The DER of each `CERTIFICATE` block in `pem`, in file order; other
/// blocks (a key in a combined file) are skipped. Input without any PEM
/// block that looks like DER is returned as one certificate.
pub(crate) fn certificates(pem: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut ders = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| bad(path, format!("broken PEM block: {e}")))?;
        if block.label == "CERTIFICATE" {
            ders.push(block.contents);
        }
    }
    if ders.is_empty() && pem.first() == Some(&0x30) {
        ders.push(pem.to_vec());
    }
    if ders.is_empty() {
        return Err(bad(path, "no BEGIN CERTIFICATE block".to_string()));
    }
    Ok(ders)
}

fn bad(path: &Path, reason: String) -> PkiError {
    PkiError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    }
}

impl CertReport {
    /// The report of one DER certificate read from `path`.
    pub(crate) fn from_der(der: &[u8], now: i64, path: &Path) -> Result<Self, PkiError> {
        Self::new(der, now, path)
    }

    fn new(der: &[u8], now: i64, path: &Path) -> Result<Self, PkiError> {
        let identity = Identity::from_der(der).map_err(|e| bad(path, e.to_string()))?;
        let version = guichet_tls::identity::x509_version(der).unwrap_or(3);
        Ok(CertReport {
            identity,
            now,
            version,
        })
    }

    /// Whole days, rounded down, to the nearest edge of the window.
    fn validity_note(&self) -> String {
        let id = &self.identity;
        let days = |seconds: i64| seconds.div_euclid(86_400);
        if self.now < id.not_before {
            format!(
                "not yet valid, starts in {} days",
                days(id.not_before - self.now)
            )
        } else if self.now > id.not_after {
            format!("EXPIRED {} days ago", days(self.now - id.not_after))
        } else {
            format!("{} days left", id.days_until_expiry(self.now))
        }
    }
}

impl fmt::Display for CertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.identity;
        writeln!(f, "Subject:      {}", id.subject)?;
        writeln!(f, "Issuer:       {}", id.issuer)?;
        writeln!(f, "Serial:       {}", id.serial)?;
        writeln!(f, "Not before:   {}", utc(id.not_before))?;
        writeln!(
            f,
            "Not after:    {} ({})",
            utc(id.not_after),
            self.validity_note()
        )?;
        writeln!(f, "Key:          {}", id.key_algorithm)?;
        writeln!(f, "CA:           {}", if id.is_ca { "yes" } else { "no" })?;
        writeln!(f, "DNS names:    {}", list(&id.san_dns))?;
        writeln!(f, "IP addresses: {}", list(&id.san_ip))?;
        if !id.san_uri.is_empty() {
            writeln!(f, "URIs:         {}", list(&id.san_uri))?;
        }
        if !id.san_email.is_empty() {
            writeln!(f, "Emails:       {}", list(&id.san_email))?;
        }
        writeln!(f, "Key usage:    {}", extended_key_usage(id))?;
        writeln!(f, "SHA-256:      {}", id.fingerprint)?;
        writeln!(f, "SPKI pin:     sha256//{}", id.spki)?;
        self.shape_warnings(f)
    }
}

impl CertReport {
    /// A certificate made without extensions works with neither rustls
    /// nor a name check: said in plain words, with how to make one that does.
    fn shape_warnings(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.identity;
        let name = id.subject.common_name().unwrap_or("NAME");
        let hint = guichet_tls::identity::reissue_hint(name);
        if self.version == 1 {
            writeln!(
                f,
                "WARNING:      X.509 version 1 (no extensions): rustls refuses it, so guichet can neither present it nor admit a peer that presents it; {hint}"
            )
        } else if !id.is_ca && id.san_dns.is_empty() && id.san_ip.is_empty() {
            writeln!(
                f,
                "WARNING:      no subjectAltName: as a server certificate, the name clients dial cannot be matched (names are never read from the CN); {hint}"
            )
        } else {
            Ok(())
        }
    }
}

fn extended_key_usage(id: &Identity) -> String {
    match &id.extended_key_usage {
        None => "any (no extendedKeyUsage extension)".to_string(),
        Some(usages) => list(usages),
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    let texts: Vec<String> = items.iter().map(T::to_string).collect();
    texts.join(", ")
}

/// `2031-04-05 09:30:00 UTC`, without pulling in `time`'s formatting.
fn utc(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix} (seconds since 1970)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn text_without_certificates_is_refused_with_the_path() {
        let err = certificates(b"hello", Path::new("/tmp/x.pem")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/tmp/x.pem is not a readable certificate"),
            "{err}"
        );
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(certificates(key_only, Path::new("k.pem")).is_err());
    }
}
