//! Certificates and the clock: what the status page, the metrics and the
//! `check` command say about a certificate, and the wall-clock readings
//! they compare expiry dates with.

use std::time::{SystemTime, UNIX_EPOCH};

use guichet_tls::Identity;
use serde::Serialize;

/// Certificates expiring sooner than this are flagged by `check` and
/// highlighted on the status page.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One certificate of the configuration in force.
#[derive(Debug, Clone, Serialize)]
pub struct CertStatus {
    pub profile: String,
    /// `certificate` (ours) or `ca` (trusted for peers).
    pub role: &'static str,
    pub file: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    /// Unix seconds, for computing days left at read time.
    #[serde(skip)]
    pub not_after_unix: i64,
    pub fingerprint: String,
}

/// The certificates a profile loaded, for the status page and metrics.
pub(crate) fn cert_status(
    profile: &str,
    role: &'static str,
    file: &std::path::Path,
    id: &Identity,
) -> CertStatus {
    CertStatus {
        profile: profile.to_string(),
        role,
        file: file.display().to_string(),
        subject: id.subject.to_string(),
        issuer: id.issuer.to_string(),
        not_after: rfc3339_unix(id.not_after),
        not_after_unix: id.not_after,
        fingerprint: id.fingerprint.to_string(),
    }
}

/// Seconds since the Unix epoch, now; 0 if the clock is before it.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch at `at`, as the journal stores times.
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `t` in RFC 3339, or empty if it cannot be written so.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds in RFC 3339, or empty if out of range.
pub(crate) fn rfc3339_unix(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
