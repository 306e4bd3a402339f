//! Stapling: our own certificate's OCSP response, fetched at start and
//! before its nextUpdate, handed to every peer in the handshake so that it
//! need not ask the responder itself.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};
use x509_cert::Certificate;
use x509_ocsp::CertId;

use super::fetch::{self, ResponderUrl};
use super::wire::{self, CertState};
use super::{OcspError, OcspEvents, OcspMode, OcspPolicy, StatusError};
use crate::material::Material;
use crate::policy::provider;

/// How long one fetch of our own response may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed fetch, the next try comes this much later.
const RETRY: Duration = Duration::from_secs(60);
/// Refreshes come at least this often, and at most this often.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Our certificate with its current OCSP response, swapped in whole.
pub struct Stapler {
    profile: String,
    url: ResponderUrl,
    id: CertId,
    issuer: Certificate,
    current: ArcSwap<CertifiedKey>,
    /// nextUpdate of the response stapled now, if any.
    stapled_until: ArcSwap<Option<SystemTime>>,
    events: Arc<dyn OcspEvents>,
}

impl fmt::Debug for Stapler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stapler")
            .field("profile", &self.profile)
            .field("url", &self.url.to_string())
            .finish_non_exhaustive()
    }
}

impl Stapler {
    /// A stapler for the profile's own certificate; `None` when the mode is
    /// `off`, the profile has no certificate, or no responder is known
    /// (neither `ocsp_url` nor an AIA OCSP entry): `guichet check` says so.
    pub fn new(
        profile: &str,
        policy: &OcspPolicy,
        material: &Material,
        events: Arc<dyn OcspEvents>,
    ) -> Result<Option<Arc<Self>>, OcspError> {
        let Some(own) = material.own.as_ref() else {
            return Ok(None);
        };
        if policy.mode == OcspMode::Off {
            return Ok(None);
        }
        let leaf = wire::parse_cert(&own.chain[0]).map_err(OcspError::OwnCert)?;
        let Some(url) = policy.url.clone().or_else(|| {
            wire::responder_urls(&leaf)
                .iter()
                .find_map(|u| ResponderUrl::parse(u).ok())
        }) else {
            return Ok(None);
        };
        let candidates: Vec<Certificate> = own.chain[1..]
            .iter()
            .chain(&material.ca_certs)
            .filter_map(|der| wire::parse_cert(der).ok())
            .collect();
        let issuer = wire::find_issuer(&leaf, &candidates)
            .cloned()
            .ok_or(OcspError::NoIssuer)?;
        let id = wire::cert_id(&leaf, &issuer).map_err(OcspError::OwnCert)?;
        let key = provider()
            .key_provider
            .load_private_key(own.key.clone_key())
            .map_err(|e| OcspError::Key(e.to_string()))?;
        Ok(Some(Arc::new(Stapler {
            profile: profile.to_string(),
            url,
            id,
            issuer,
            current: ArcSwap::from_pointee(CertifiedKey::new(own.chain.clone(), key)),
            stapled_until: ArcSwap::from_pointee(None),
            events,
        })))
    }

    /// The resolver a server config uses to present the current staple.
    pub(crate) fn resolver(self: &Arc<Self>) -> Arc<dyn ResolvesServerCert> {
        Arc::new(StapleResolver(self.clone()))
    }

    /// The OCSP response stapled now, if any.
    pub fn staple(&self) -> Option<Vec<u8>> {
        self.current.load().ocsp.clone()
    }

    /// Fetches, verifies and staples a fresh response. Keeps the previous
    /// one on failure, unless it is past its nextUpdate. Returns when to
    /// refresh next.
    pub async fn refresh(&self) -> Duration {
        let now = SystemTime::now();
        match self.fetch(now).await {
            Ok(answer) if answer.0.state == CertState::Good => {
                let (answer, der) = answer;
                self.swap(Some(der), answer.next_update);
                info!(profile = %self.profile, url = %self.url, "OCSP response stapled");
                next_refresh(answer.next_update, now)
            }
            Ok((answer, _)) => {
                warn!(
                    profile = %self.profile,
                    url = %self.url,
                    status = ?answer.state,
                    "the OCSP responder does not vouch for our own certificate: nothing stapled"
                );
                self.events.staple_failed(&self.profile);
                self.swap(None, None);
                RETRY
            }
            Err(e) => {
                warn!(profile = %self.profile, "OCSP staple not refreshed, keeping the last good one: {e}");
                self.events.staple_failed(&self.profile);
                if self.stapled_until.load().is_some_and(|until| until < now) {
                    self.swap(None, None);
                }
                RETRY
            }
        }
    }

    async fn fetch(&self, now: SystemTime) -> Result<(wire::Answer, Vec<u8>), StatusError> {
        let request = wire::request(&self.id)?;
        let body = fetch::post(&self.url, request, FETCH_TIMEOUT).await?;
        let answer =
            wire::verify_response(&body, &self.id, &self.issuer, now).map_err(|error| {
                StatusError::Response {
                    url: self.url.clone(),
                    error,
                }
            })?;
        Ok((answer, body))
    }

    fn swap(&self, staple: Option<Vec<u8>>, next_update: Option<SystemTime>) {
        let old = self.current.load();
        let mut key = CertifiedKey::new(old.cert.clone(), old.key.clone());
        let stapled = staple.is_some();
        key.ocsp = staple;
        self.current.store(Arc::new(key));
        let until = if stapled {
            Some(next_update.unwrap_or(SystemTime::now() + MAX_INTERVAL))
        } else {
            None
        };
        self.stapled_until.store(Arc::new(until));
        self.events.stapled(&self.profile, until);
    }

    /// Refreshes in the background for as long as a server config uses
    /// this stapler; the task holds only a weak reference.
    pub fn spawn(self: &Arc<Self>) {
        let weak: Weak<Stapler> = Arc::downgrade(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(profile = %self.profile, "no runtime to refresh the OCSP staple: nothing stapled");
            return;
        };
        runtime.spawn(async move {
            loop {
                let Some(stapler) = weak.upgrade() else {
                    return;
                };
                let wait = stapler.refresh().await;
                drop(stapler);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// Half-way to nextUpdate, so a failed refresh has time to be retried
/// before the staple goes stale.
fn next_refresh(next_update: Option<SystemTime>, now: SystemTime) -> Duration {
    let left = match next_update {
        Some(next) => next.duration_since(now).unwrap_or_default(),
        None => 2 * MAX_INTERVAL,
    };
    (left / 2).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

#[derive(Debug)]
struct StapleResolver(Arc<Stapler>);

impl ResolvesServerCert for StapleResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_half_way_to_next_update_within_bounds() {
        let now = SystemTime::now();
        let in_secs = |s: u64| Some(now + Duration::from_secs(s));
        assert_eq!(next_refresh(in_secs(1200), now), Duration::from_secs(600));
        assert_eq!(next_refresh(in_secs(7 * 86400), now), MAX_INTERVAL);
        assert_eq!(next_refresh(in_secs(10), now), MIN_INTERVAL);
        assert_eq!(next_refresh(None, now), MAX_INTERVAL);
        // Already past (within the clock skew allowed): soon.
        assert_eq!(
            next_refresh(Some(now - Duration::from_secs(5)), now),
            MIN_INTERVAL
        );
    }
}
