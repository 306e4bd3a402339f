//! Certificate revocation lists: what one says about itself, whether a CA
//! of the profile signed it, and where certificates say theirs is
//! published.
//!
//! webpki checks a CRL's signature only when it consults it, at a
//! handshake; a CRL fetched from the network is checked here first, so a
//! wrong or forged file never replaces the good one in force.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// A CRL whose thisUpdate is this far ahead of our clock is still taken:
/// a CA's clock a few seconds ahead must not make a fresh CRL unusable.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// What a CRL says about itself (no revoked serial: those stay in the DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuer's DN as text (`CN=..., O=...`), for logs and labels.
    pub issuer: String,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds; `None` when the CRL names none.
    pub next_update: Option<i64>,
    /// How many certificates the CRL revokes.
    pub revoked: usize,
}

/// Why a CRL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// The bytes are not a DER (or PEM) CRL; holds the parser's words.
    #[error("not a valid certificate revocation list: {0}")]
    Invalid(String),
    #[error(
        "its thisUpdate ({this_update}) is in the future: a CRL not yet valid is refused; check the clocks of the CA and of this host"
    )]
    /// The CRL's thisUpdate is later than now.
    NotYetValid {
        /// The CRL's thisUpdate, as the CRL states it.
        this_update: String,
    },
    /// No CA of the bundle signed the CRL.
    #[error("not signed by any CA of the profile's `ca` bundle (CRL issuer {issuer})")]
    UnknownIssuer {
        /// The issuer DN the CRL claims.
        issuer: String,
    },
}

/// Reads the dates and issuer of a DER CRL.
pub fn inspect(der: &[u8]) -> Result<CrlInfo, CrlError> {
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| CrlError::Invalid(e.to_string()))?;
    Ok(info_of(&crl))
}

fn info_of(crl: &CertificateRevocationList<'_>) -> CrlInfo {
    CrlInfo {
        issuer: crl.issuer().to_string(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        revoked: crl.iter_revoked_certificates().count(),
    }
}

/// Refuses a CRL issued after `now` (beyond [`CLOCK_SKEW_SECS`]).
pub fn check_this_update(info: &CrlInfo, now: i64) -> Result<(), CrlError> {
    if info.this_update > now + CLOCK_SKEW_SECS {
        return Err(CrlError::NotYetValid {
            this_update: rfc3339(info.this_update),
        });
    }
    Ok(())
}

/// Checks that a CA of `cas` (same subject as the CRL's issuer) signed the
/// CRL and that it is already valid at `now`; returns what it says.
pub fn verify(der: &[u8], cas: &[CertificateDer<'_>], now: i64) -> Result<CrlInfo, CrlError> {
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| CrlError::Invalid(e.to_string()))?;
    let info = info_of(&crl);
    check_this_update(&info, now)?;
    let signed = cas
        .iter()
        .filter_map(|ca| X509Certificate::from_der(ca).ok().map(|(_, c)| c))
        .filter(|ca| ca.subject().as_raw() == crl.issuer().as_raw())
        .any(|ca| crl.verify_signature(ca.public_key()).is_ok());
    if !signed {
        return Err(CrlError::UnknownIssuer {
            issuer: info.issuer,
        });
    }
    Ok(info)
}

/// The `http://` and `https://` CRL distribution points a certificate
/// names (LDAP and other schemes are left out: guichet fetches over HTTP).
pub fn distribution_points(cert: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                urls.extend(names.iter().filter_map(|name| match name {
                    GeneralName::URI(uri) if is_http(uri) => Some(uri.to_string()),
                    _ => None,
                }));
            }
        }
    }
    urls
}

fn is_http(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A date for people, in UTC.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Distribution points learnt from peer certificates during handshakes
/// (`crl_from_certificates`), for the gateway to fetch in the background.
///
/// Only certificates that chain to the profile's CA are looked at, and the
/// set is bounded, so a peer cannot make guichet fetch arbitrary URLs.
#[derive(Debug, Clone, Default)]
pub struct LearntPoints {
    inner: Arc<LearntInner>,
}

#[derive(Debug, Default)]
struct LearntInner {
    urls: Mutex<BTreeSet<String>>,
    changed: Notify,
}

impl LearntPoints {
    /// At most this many distinct URLs are learnt per gateway.
    pub const MAX: usize = 64;

    /// Adds the distribution points of `cert`; wakes the fetcher when one
    /// is new.
    pub fn learn(&self, cert: &[u8]) {
        let points = distribution_points(cert);
        if points.is_empty() {
            return;
        }
        let Ok(mut urls) = self.inner.urls.lock() else {
            return;
        };
        let mut added = false;
        for url in points {
            if urls.len() >= Self::MAX {
                break;
            }
            added |= urls.insert(url);
        }
        drop(urls);
        if added {
            self.inner.changed.notify_one();
        }
    }

    /// Every distribution point learnt so far, for the fetcher to poll.
    pub fn urls(&self) -> Vec<String> {
        self.inner
            .urls
            .lock()
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Resolves when a new URL was learnt since the last call.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }
}

/// Called for each peer admitted while the CRL of its issuer is past its
/// nextUpdate (`crl_expired = "warn"`): the gateway counts them.
#[derive(Clone)]
pub struct StaleHook(Arc<dyn Fn() + Send + Sync>);

impl StaleHook {
    /// Wraps the callback run for each peer admitted under a stale CRL.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        StaleHook(Arc::new(f))
    }

    pub(crate) fn call(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for StaleHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaleHook")
    }
}

/// The issuer (raw DN) and nextUpdate of each CRL, to tell whether the one
/// covering a peer is past its nextUpdate.
#[derive(Debug, Clone, Default)]
pub(crate) struct NextUpdates(Vec<(Vec<u8>, i64)>);

impl NextUpdates {
    pub fn of<'a>(crls: impl Iterator<Item = &'a [u8]>) -> Self {
        let entries = crls
            .filter_map(|der| CertificateRevocationList::from_der(der).ok())
            .filter_map(|(_, crl)| {
                let next = crl.next_update()?.timestamp();
                Some((crl.issuer().as_raw().to_vec(), next))
            })
            .collect();
        NextUpdates(entries)
    }

    /// Whether every CRL of `cert`'s issuer is past its nextUpdate at `now`.
    pub fn stale_for(&self, cert: &[u8], now: i64) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(cert) else {
            return false;
        };
        let issuer = cert.issuer().as_raw();
        let mut of_issuer = self
            .0
            .iter()
            .filter(|(i, _)| i.as_slice() == issuer)
            .peekable();
        of_issuer.peek().is_some() && of_issuer.all(|(_, next)| *next < now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_dated_in_the_future_is_refused_and_one_a_few_seconds_ahead_is_not() {
        let info = CrlInfo {
            issuer: "CN=x".into(),
            this_update: 1_000_000,
            next_update: None,
            revoked: 0,
        };
        assert!(check_this_update(&info, 1_000_000 - 10).is_ok());
        assert!(matches!(
            check_this_update(&info, 1_000_000 - 3600),
            Err(CrlError::NotYetValid { .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_crl() {
        assert!(matches!(inspect(b"nope"), Err(CrlError::Invalid(_))));
    }
}
