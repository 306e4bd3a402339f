//! OCSP (RFC 6960): the revocation status of peer certificates, asked of
//! the responder their issuer names, and our own status stapled for peers.
//!
//! rustls' verifiers are synchronous and OCSP needs the network, so a check
//! runs in two steps. Inside the handshake the verifier decides from what
//! is at hand: an answer cached until its nextUpdate, or the response the
//! server stapled. Anything else is settled by the code that drives the
//! handshake ([`crate::ServerTls::accept`], [`crate::ClientTls::connect`]):
//! it asks the responder after the handshake and before returning the
//! stream, within the same deadline, so no application byte is relayed
//! before the status is known.
//!
//! A refusal from the cache or a staple is a TLS alert (`certificate_revoked`);
//! a refusal after a query closes the connection with close_notify.

mod cache;
mod fetch;
mod staple;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, Error as TlsError};
use tracing::warn;
use x509_cert::der::Encode;
use x509_cert::Certificate;

pub use fetch::{ResponderUrl, ResponderUrlError};
pub use staple::Stapler;
pub use wire::CertState;

use crate::identity::Identity;
use crate::material::Material;
use crate::refusal::{Presented, Refusal, RefusalReason};
use cache::{Cache, CacheKey};

/// How many certificates' answers a profile keeps.
const CACHE_CAPACITY: usize = 10_000;

/// A query never waits longer than this, even when the handshake deadline
/// leaves more: in `soft` mode a slow responder must not slow every peer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A responder that did not answer is not asked again for this long: while
/// it is down, peers are refused (`hard`) or admitted (`soft`) at once
/// instead of each waiting for the query to time out.
const RESPONDER_BACKOFF: Duration = Duration::from_secs(10);

/// An answer without nextUpdate ("newer information is always available")
/// is reused for this long.
const NO_NEXT_UPDATE_TTL: Duration = Duration::from_secs(300);

/// What a profile does with OCSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspMode {
    /// No OCSP query, no stapling.
    #[default]
    Off,
    /// Refuse a revoked peer; admit (with a warning) one whose status
    /// cannot be established.
    Soft,
    /// Refuse a revoked peer and one whose status cannot be established.
    Hard,
}

impl OcspMode {
    /// The word used in the configuration and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspMode::Off => "off",
            OcspMode::Soft => "soft",
            OcspMode::Hard => "hard",
        }
    }
}

/// A profile's OCSP settings, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OcspPolicy {
    /// Whether peers are checked, and what an unknown status means.
    pub mode: OcspMode,
    /// Asked instead of the responder the certificates name (AIA).
    pub url: Option<ResponderUrl>,
}

/// The outcome of one check, as a fixed label set for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcspResult {
    /// The responder vouches that the certificate is not revoked.
    Good,
    /// The responder says the certificate is revoked: the peer is refused.
    Revoked,
    /// The responder does not know the certificate.
    Unknown,
    /// No answer could be had or believed (no responder, timeout, bad
    /// signature, stale response, ...).
    Error,
}

impl OcspResult {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspResult::Good => "good",
            OcspResult::Revoked => "revoked",
            OcspResult::Unknown => "unknown",
            OcspResult::Error => "error",
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcspSource {
    /// A fresh answer from the responder.
    Responder,
    /// An answer kept from an earlier check, still within its nextUpdate.
    Cache,
    /// The response the server stapled to its handshake.
    Staple,
}

impl OcspSource {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspSource::Responder => "responder",
            OcspSource::Cache => "cache",
            OcspSource::Staple => "staple",
        }
    }
}

/// Where checks and stapling report, for metrics. The TLS crate keeps no
/// metrics of its own.
pub trait OcspEvents: Send + Sync {
    /// One peer's certificate was checked on `profile`.
    fn checked(&self, profile: &str, result: OcspResult, source: OcspSource);
    /// Our stapled response changed: its nextUpdate, or `None` when
    /// nothing is stapled any more.
    fn stapled(&self, profile: &str, next_update: Option<SystemTime>);
    /// Fetching our own response failed (the last good one is kept).
    fn staple_failed(&self, profile: &str);
}

/// Reports nowhere (`guichet check`, tests, simulators).
#[derive(Debug, Default)]
pub struct NoOcspEvents;

impl OcspEvents for NoOcspEvents {
    fn checked(&self, _: &str, _: OcspResult, _: OcspSource) {}
    fn stapled(&self, _: &str, _: Option<SystemTime>) {}
    fn staple_failed(&self, _: &str) {}
}

/// Why OCSP could not be set up for a profile.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    /// A CA certificate cannot be parsed for building OCSP requests.
    #[error("the CA bundle holds a certificate OCSP cannot read: {0}")]
    Anchor(wire::WireError),
    /// Our own certificate cannot be parsed for building OCSP requests.
    #[error("our certificate cannot be read for stapling: {0}")]
    OwnCert(wire::WireError),
    /// Our key cannot sign, so a stapled response cannot be served.
    #[error("our private key cannot sign for stapling: {0}")]
    Key(String),
    /// The issuer of our certificate is in neither `cert` nor `ca`.
    #[error("stapling needs the issuer of our certificate: put it after the certificate in `cert`, or in `ca`")]
    NoIssuer,
}

/// Why a peer's OCSP status could not be had. The text reaches the
/// refusal log (hard mode) or the warning (soft mode).
#[derive(Debug, thiserror::Error)]
enum StatusError {
    #[error("no certificate to check")]
    NoCertificate,
    #[error("the issuer of the certificate is not known")]
    UnknownIssuer,
    #[error("the certificate names no OCSP responder (AIA) and the profile sets no `ocsp_url`")]
    NoResponder,
    #[error("OCSP responder {url} did not answer moments ago; asking again after {secs}s")]
    ResponderDown { url: String, secs: u64 },
    #[error(transparent)]
    Url(#[from] ResponderUrlError),
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// A response that does not verify, with the responder that sent it.
    #[error("{url}: {error}")]
    Response {
        url: ResponderUrl,
        error: wire::WireError,
    },
}

/// What a check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admit,
    Refuse(RefusalReason, String),
    /// Nothing at hand: a responder must be asked.
    Pending,
}

/// Checks peer certificates of one profile against OCSP responders.
pub struct OcspChecker {
    profile: String,
    policy: OcspPolicy,
    /// The profile's CA bundle: where issuers are found when the peer sends
    /// no intermediate.
    anchors: Vec<Certificate>,
    cache: Cache,
    /// Responders that failed to answer, and until when they are skipped.
    down: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    events: Arc<dyn OcspEvents>,
}

impl fmt::Debug for OcspChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspChecker")
            .field("profile", &self.profile)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OcspChecker {
    /// A checker for `profile`; `None` when its mode is `off`.
    pub fn new(
        profile: &str,
        policy: &OcspPolicy,
        material: &Material,
        events: Arc<dyn OcspEvents>,
    ) -> Result<Option<Arc<Self>>, OcspError> {
        if policy.mode == OcspMode::Off {
            return Ok(None);
        }
        let anchors = material
            .ca_certs
            .iter()
            .map(|der| wire::parse_cert(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(OcspError::Anchor)?;
        Ok(Some(Arc::new(OcspChecker {
            profile: profile.to_string(),
            policy: policy.clone(),
            anchors,
            cache: Cache::new(CACHE_CAPACITY),
            down: Default::default(),
            events,
        })))
    }

    /// How strictly this checker treats an unknown status.
    pub fn mode(&self) -> OcspMode {
        self.policy.mode
    }

    /// Decides from what is at hand inside the handshake: a cached answer,
    /// or a stapled response (which is then cached).
    pub(crate) fn at_hand(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        staple: &[u8],
    ) -> Verdict {
        let Ok(cert) = wire::parse_cert(leaf) else {
            return Verdict::Pending;
        };
        let now = SystemTime::now();
        if let Some(state) = cache_key(&cert).and_then(|k| self.cache.get(&k, now)) {
            return self.judge(Ok(state), OcspSource::Cache);
        }
        if staple.is_empty() {
            return Verdict::Pending;
        }
        match self.verify_staple(&cert, intermediates, staple, now) {
            Ok(state) => self.judge(Ok(state), OcspSource::Staple),
            Err(e) => {
                warn!(profile = %self.profile, "stapled OCSP response not used, asking the responder: {e}");
                Verdict::Pending
            }
        }
    }

    fn verify_staple(
        &self,
        cert: &Certificate,
        intermediates: &[CertificateDer<'_>],
        staple: &[u8],
        now: SystemTime,
    ) -> Result<CertState, StatusError> {
        let issuer = self.issuer_of(cert, intermediates)?;
        let id = wire::cert_id(cert, &issuer)?;
        let answer = wire::verify_response(staple, &id, &issuer, now)?;
        self.remember(cert, &answer, now);
        Ok(answer.state)
    }

    /// Asks the responder, within `deadline` (capped at [`QUERY_TIMEOUT`]).
    pub(crate) async fn ask(&self, chain: &[CertificateDer<'_>], deadline: Duration) -> Verdict {
        let outcome = self.query(chain, deadline.min(QUERY_TIMEOUT)).await;
        let source = match outcome {
            Ok((_, source)) => source,
            Err(_) => OcspSource::Responder,
        };
        self.judge(outcome.map(|(state, _)| state), source)
    }

    async fn query(
        &self,
        chain: &[CertificateDer<'_>],
        deadline: Duration,
    ) -> Result<(CertState, OcspSource), StatusError> {
        let leaf = chain.first().ok_or(StatusError::NoCertificate)?;
        let cert = wire::parse_cert(leaf)?;
        let now = SystemTime::now();
        if let Some(state) = cache_key(&cert).and_then(|k| self.cache.get(&k, now)) {
            return Ok((state, OcspSource::Cache));
        }
        let issuer = self.issuer_of(&cert, &chain[1..])?;
        let url = self.responder(&cert)?;
        let id = wire::cert_id(&cert, &issuer)?;
        let request = wire::request(&id)?;
        self.check_up(&url)?;
        let body = fetch::post(&url, request, deadline)
            .await
            .inspect_err(|_| self.mark_down(&url))?;
        let answer = wire::verify_response(&body, &id, &issuer, SystemTime::now())
            .map_err(|error| StatusError::Response { url, error })?;
        self.remember(&cert, &answer, SystemTime::now());
        Ok((answer.state, OcspSource::Responder))
    }

    /// Refuses at once to ask a responder that failed moments ago.
    fn check_up(&self, url: &ResponderUrl) -> Result<(), StatusError> {
        let Ok(mut down) = self.down.lock() else {
            return Ok(());
        };
        let key = url.to_string();
        match down.get(&key) {
            Some(until) if *until > Instant::now() => Err(StatusError::ResponderDown {
                url: key,
                secs: RESPONDER_BACKOFF.as_secs(),
            }),
            Some(_) => {
                down.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn mark_down(&self, url: &ResponderUrl) {
        if let Ok(mut down) = self.down.lock() {
            // Bounded by the responders the trusted CAs name.
            down.insert(url.to_string(), Instant::now() + RESPONDER_BACKOFF);
        }
    }

    fn remember(&self, cert: &Certificate, answer: &wire::Answer, now: SystemTime) {
        let until = answer.next_update.unwrap_or(now + NO_NEXT_UPDATE_TTL);
        if let Some(key) = cache_key(cert) {
            self.cache.put(key, answer.state, until, now);
        }
    }

    fn issuer_of(
        &self,
        cert: &Certificate,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Certificate, StatusError> {
        let sent: Vec<Certificate> = intermediates
            .iter()
            .filter_map(|der| wire::parse_cert(der).ok())
            .collect();
        wire::find_issuer(cert, sent.iter().chain(&self.anchors))
            .cloned()
            .ok_or(StatusError::UnknownIssuer)
    }

    /// `ocsp_url` when set, else the first responder the certificate names.
    fn responder(&self, cert: &Certificate) -> Result<ResponderUrl, StatusError> {
        if let Some(url) = &self.policy.url {
            return Ok(url.clone());
        }
        let named = wire::responder_urls(cert);
        let first = named.first().ok_or(StatusError::NoResponder)?;
        Ok(ResponderUrl::parse(first)?)
    }

    /// Applies the mode to an outcome, and reports it.
    fn judge(&self, outcome: Result<CertState, StatusError>, source: OcspSource) -> Verdict {
        let result = match &outcome {
            Ok(CertState::Good) => OcspResult::Good,
            Ok(CertState::Revoked) => OcspResult::Revoked,
            Ok(CertState::Unknown) => OcspResult::Unknown,
            Err(_) => OcspResult::Error,
        };
        self.events.checked(&self.profile, result, source);
        let undetermined = match outcome {
            Ok(CertState::Good) => return Verdict::Admit,
            Ok(CertState::Revoked) => {
                return Verdict::Refuse(
                    RefusalReason::Revoked,
                    format!("OCSP ({}): the certificate is revoked", source.as_str()),
                )
            }
            Ok(CertState::Unknown) => {
                "the OCSP responder does not know the certificate".to_string()
            }
            Err(e) => format!("OCSP status unavailable: {e}"),
        };
        match self.policy.mode {
            OcspMode::Hard => Verdict::Refuse(RefusalReason::RevocationUnknown, undetermined),
            OcspMode::Soft | OcspMode::Off => {
                warn!(
                    profile = %self.profile,
                    ocsp = "soft",
                    "peer admitted without an OCSP status: {undetermined}"
                );
                Verdict::Admit
            }
        }
    }
}

/// A certificate's cache key: its issuer's DER name and its serial.
fn cache_key(cert: &Certificate) -> Option<CacheKey> {
    let issuer = cert.tbs_certificate.issuer.to_der().ok()?;
    Some((
        issuer,
        cert.tbs_certificate.serial_number.as_bytes().to_vec(),
    ))
}

/// Called by the verifiers once webpki accepted the chain: refuses in the
/// handshake (with an alert) what the cache or a staple already settles.
pub(crate) fn in_handshake(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    staple: &[u8],
) -> Result<(), TlsError> {
    let Some(checker) = crate::verify::observed_ocsp() else {
        return Ok(());
    };
    match checker.at_hand(leaf, intermediates, staple) {
        Verdict::Pending => Ok(()),
        Verdict::Admit => {
            crate::verify::record_ocsp_settled();
            Ok(())
        }
        Verdict::Refuse(reason, _) => {
            crate::verify::record_ocsp_settled();
            Err(TlsError::InvalidCertificate(match reason {
                RefusalReason::Revoked => CertificateError::Revoked,
                _ => CertificateError::UnknownRevocationStatus,
            }))
        }
    }
}

/// After the handshake: asks the responder when the handshake could not
/// settle the status. `chain` is the peer's certificates, leaf first.
pub(crate) async fn after_handshake(
    checker: &OcspChecker,
    chain: &[CertificateDer<'_>],
    deadline: Duration,
) -> Result<(), Refusal> {
    match checker.ask(chain, deadline).await {
        Verdict::Admit | Verdict::Pending => Ok(()),
        Verdict::Refuse(reason, detail) => Err(Refusal {
            reason,
            detail,
            presented: chain
                .first()
                .and_then(|der| Identity::from_der(der).ok())
                .map(|id| Presented::of(&id)),
        }),
    }
}

/// The OCSP responders a DER certificate names (AIA), for reports.
pub fn responders_of(der: &[u8]) -> Vec<String> {
    wire::parse_cert(der)
        .map(|cert| wire::responder_urls(&cert))
        .unwrap_or_default()
}
