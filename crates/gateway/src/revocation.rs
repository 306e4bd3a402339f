//! CRLs that stay fresh: fetched over HTTP(S) at start and every
//! `crl_refresh` (and before their nextUpdate), verified against the
//! profile's CA bundle, then swapped in by rebuilding the TLS ends as a
//! reload does.
//!
//! A fetch that fails keeps the last good CRL in force; the failure is
//! logged and counted. The freshness of every CRL in force (from files and
//! from the network) is published as `guichet_crl_next_update_seconds`,
//! and a CRL past its nextUpdate is logged (hourly at most per issuer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use guichet_tls::crl::{self, CrlError, CrlInfo};
use guichet_tls::http1::ExchangeError;
use guichet_tls::{CrlExpired, LearntPoints, StaleHook};
use http_body_util::Empty;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::certs::unix_now;
use crate::config::{ProfileName, TlsProfile};
use crate::metrics::{CrlFetchLabels, CrlLabels, Metrics, ProfileLabel};

/// One fetch (connect, TLS, request, whole body) must end within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// A CRL body larger than this is refused (IGC Santé's largest CRLs are a
/// few megabytes).
pub const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;
/// The gauges and the expiry warnings are brought up to date this often.
const TICK: Duration = Duration::from_secs(30);
/// After a failed fetch, the next try comes this soon (or at
/// `crl_refresh`, if sooner).
const RETRY: Duration = Duration::from_secs(300);
/// Fetches brought forward by a near nextUpdate are at least this many
/// seconds apart (`crl_refresh` may be shorter).
const MIN_EARLY_FETCH: u64 = 60;
/// A CRL past its nextUpdate is logged again after this long.
const EXPIRED_LOG_EVERY: Duration = Duration::from_secs(3600);

/// One CRL in force, for the gauge and the expiry warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlStatus {
    pub profile: ProfileName,
    pub info: CrlInfo,
    pub expired_policy: CrlExpired,
}

/// A CRL fetched and verified.
#[derive(Debug, Clone)]
struct Fetched {
    der: CertificateRevocationListDer<'static>,
    info: CrlInfo,
}

/// The CRLs fetched so far, per profile and URL, and the distribution
/// points learnt from peers. Survives reloads.
#[derive(Clone, Default)]
pub struct CrlCache {
    fetched: Arc<Mutex<BTreeMap<ProfileName, BTreeMap<String, Fetched>>>>,
    learnt: Arc<Mutex<BTreeMap<ProfileName, LearntPoints>>>,
    /// Wakes the refresher (a reload may have named new URLs).
    poke: Arc<tokio::sync::Notify>,
    /// Where peers admitted under a stale CRL are counted.
    metrics: Metrics,
}

/// Why a fetch failed; `as_str` is the metric's fixed label set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no complete answer within {}s", FETCH_TIMEOUT.as_secs())]
    Timeout,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the CRL is larger than {} bytes", MAX_CRL_BYTES)]
    TooLarge,
    #[error("{0}")]
    Crl(CrlError),
}

impl FetchError {
    pub fn as_str(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge => "too_large",
            FetchError::Crl(CrlError::Invalid(_)) => "invalid",
            FetchError::Crl(CrlError::NotYetValid { .. }) => "not_yet_valid",
            FetchError::Crl(CrlError::UnknownIssuer { .. }) => "signature",
        }
    }
}

impl CrlCache {
    /// The CRLs fetched for `profile`, to add to its material.
    pub fn crls(&self, profile: &ProfileName) -> Vec<CertificateRevocationListDer<'static>> {
        self.fetched
            .lock()
            .map(|f| {
                f.get(profile)
                    .map(|by_url| by_url.values().map(|c| c.der.clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// What the fetched CRLs of `profile` say, for the gauge.
    pub fn infos(&self, profile: &ProfileName) -> Vec<CrlInfo> {
        self.fetched
            .lock()
            .map(|f| {
                f.get(profile)
                    .map(|by_url| by_url.values().map(|c| c.info.clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Where handshakes of `profile` record their peers' distribution
    /// points.
    pub fn learnt(&self, profile: &ProfileName) -> LearntPoints {
        self.learnt
            .lock()
            .map(|mut l| l.entry(profile.clone()).or_default().clone())
            .unwrap_or_default()
    }

    pub fn new(metrics: Metrics) -> Self {
        CrlCache {
            metrics,
            ..CrlCache::default()
        }
    }

    /// Counts, for `profile`, each peer admitted under a CRL past its
    /// nextUpdate (`crl_expired = "warn"`).
    pub fn stale_hook(&self, profile: &ProfileName) -> StaleHook {
        let counter = self
            .metrics
            .crl_stale_admissions
            .get_or_create(&ProfileLabel {
                profile: profile.to_string(),
            })
            .clone();
        StaleHook::new(move || {
            counter.inc();
        })
    }

    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Fetches every CRL the profiles name; returns whether any CRL in
    /// the cache changed. Failures are logged and counted, and keep what
    /// was there.
    pub async fn fetch_all<'a>(
        &self,
        profiles: impl Iterator<Item = &'a TlsProfile>,
        metrics: &Metrics,
    ) -> FetchRound {
        let mut round = FetchRound::default();
        let jobs: Vec<_> = profiles
            .filter(|p| p.fetches_crls())
            .flat_map(|p| {
                let cas = load_cas(p);
                self.urls_of(p, &cas)
                    .into_iter()
                    .map(move |url| (p.name.clone(), url, cas.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut jobs_by_profile: BTreeMap<ProfileName, Vec<String>> = BTreeMap::new();
        for (profile, url, _) in &jobs {
            jobs_by_profile
                .entry(profile.clone())
                .or_default()
                .push(url.clone());
        }
        let results = futures_util::future::join_all(jobs.into_iter().map(
            |(profile, url, cas)| async move {
                let result = fetch_verified(&url, &cas).await;
                (profile, url, result)
            },
        ))
        .await;
        round.changed |= self.forget_unnamed(&jobs_by_profile);
        for (profile, url, result) in results {
            match result {
                Ok(fresh) => round.changed |= self.store(&profile, &url, fresh),
                Err(e) => {
                    round.failed = true;
                    warn!(profile = %profile, url = %url, reason = e.as_str(), "CRL fetch failed, the last good CRL stays in force: {e}");
                    metrics
                        .crl_fetch_failures
                        .get_or_create(&CrlFetchLabels {
                            profile: profile.to_string(),
                            reason: e.as_str(),
                        })
                        .inc();
                }
            }
        }
        round
    }

    /// Drops the CRLs of URLs the configuration no longer names (a reload
    /// removed them); true when one was in force.
    fn forget_unnamed(&self, named: &BTreeMap<ProfileName, Vec<String>>) -> bool {
        let Ok(mut fetched) = self.fetched.lock() else {
            return false;
        };
        let mut changed = false;
        fetched.retain(|profile, by_url| {
            let urls = named.get(profile).map(Vec::as_slice).unwrap_or_default();
            let before = by_url.len();
            by_url.retain(|url, _| urls.contains(url));
            changed |= by_url.len() != before;
            !by_url.is_empty()
        });
        changed
    }

    /// `crl_urls`, then the distribution points of the CA certificates
    /// and of the peers seen (`crl_from_certificates`).
    fn urls_of(&self, profile: &TlsProfile, cas: &[CertificateDer<'static>]) -> Vec<String> {
        let mut urls = profile.crl_fetch.urls.clone();
        if profile.crl_fetch.from_certificates {
            urls.extend(cas.iter().flat_map(|ca| crl::distribution_points(ca)));
            urls.extend(self.learnt(&profile.name).urls());
        }
        urls.sort();
        urls.dedup();
        urls
    }

    /// Keeps `fresh` unless the CRL held for that URL is newer; true when
    /// the CRL in force changes.
    fn store(&self, profile: &ProfileName, url: &str, fresh: Fetched) -> bool {
        let Ok(mut fetched) = self.fetched.lock() else {
            return false;
        };
        let by_url = fetched.entry(profile.clone()).or_default();
        match by_url.get(url) {
            Some(held) if held.der == fresh.der => false,
            Some(held) if held.info.this_update > fresh.info.this_update => {
                warn!(profile = %profile, url, "the CRL served is older than the one in force; kept the newer one");
                false
            }
            _ => {
                info!(profile = %profile, url, issuer = %fresh.info.issuer, revoked = fresh.info.revoked,
                    next_update = %fresh.info.next_update.map(crl::rfc3339).unwrap_or_default(), "CRL fetched");
                by_url.insert(url.to_string(), fresh);
                true
            }
        }
    }
}

/// What one round of fetches did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FetchRound {
    pub changed: bool,
    pub failed: bool,
}

/// The profile's CA certificates (empty when the file cannot be read: the
/// reload reports that, and every fetched CRL then fails verification).
fn load_cas(profile: &TlsProfile) -> Vec<CertificateDer<'static>> {
    profile
        .files
        .ca
        .as_deref()
        .and_then(|path| guichet_tls::material::load_certs(path, "CA bundle").ok())
        .unwrap_or_default()
}

async fn fetch_verified(url: &str, cas: &[CertificateDer<'static>]) -> Result<Fetched, FetchError> {
    let body = tokio::time::timeout(FETCH_TIMEOUT, get(url, cas))
        .await
        .map_err(|_| FetchError::Timeout)??;
    let der = der_of(&body).map_err(FetchError::Crl)?;
    let info = crl::verify(&der, cas, unix_now()).map_err(FetchError::Crl)?;
    Ok(Fetched { der, info })
}

/// CRLs are served in DER (RFC 5280's `application/pkix-crl`) or PEM.
fn der_of(body: &[u8]) -> Result<CertificateRevocationListDer<'static>, CrlError> {
    if body.starts_with(b"-----") {
        CertificateRevocationListDer::from_pem_slice(body)
            .map_err(|e| CrlError::Invalid(e.to_string()))
    } else {
        Ok(CertificateRevocationListDer::from(body.to_vec()))
    }
}

/// GETs `url` (no redirects: a distribution point names the file itself).
async fn get(url: &str, cas: &[CertificateDer<'static>]) -> Result<Bytes, FetchError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| FetchError::Connect(format!("{url:?} is not a valid URL")))?;
    let host = uri
        .host()
        .ok_or_else(|| FetchError::Connect("no host in the URL".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    if https {
        let connector = https_connector(cas)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| FetchError::Connect(format!("{host:?} is not a valid TLS name")))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| FetchError::Connect(format!("TLS: {e}")))?;
        request(tls, &uri).await
    } else {
        request(tcp, &uri).await
    }
}

/// HTTPS distribution points are checked against the profile's CA bundle
/// and the system's (`/etc/ssl/certs/ca-certificates.crt`).
fn https_connector(
    cas: &[CertificateDer<'static>],
) -> Result<tokio_rustls::TlsConnector, FetchError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = guichet_tls::material::load_certs(
        std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"),
        "system CA bundle",
    )
    .unwrap_or_default();
    roots.add_parsable_certificates(cas.iter().cloned().chain(system));
    let config = rustls::ClientConfig::builder_with_provider(guichet_tls::policy::provider())
        .with_protocol_versions(guichet_tls::policy::versions(
            guichet_tls::MinVersion::Tls12,
        ))
        .map_err(|e| FetchError::Connect(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn request<IO>(io: IO, uri: &http::Uri) -> Result<Bytes, FetchError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or("", |a| a.as_str());
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "guichet-crl")
        .header(http::header::ACCEPT, "application/pkix-crl, */*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    guichet_tls::http1::exchange(io, req, MAX_CRL_BYTES)
        .await
        .map_err(|e| match e {
            ExchangeError::Io(e) => FetchError::Connect(e),
            ExchangeError::Status(status) => FetchError::Status(status),
            ExchangeError::TooLarge(_) => FetchError::TooLarge,
        })
}

/// Publishes `guichet_crl_next_update_seconds` for the CRLs in force and
/// logs those past their nextUpdate (at most hourly per CRL).
pub struct Freshness {
    logged: BTreeMap<(ProfileName, String), Instant>,
}

impl Freshness {
    pub fn new() -> Self {
        Freshness {
            logged: BTreeMap::new(),
        }
    }

    pub fn update(&mut self, crls: &[CrlStatus], metrics: &Metrics) {
        let now = unix_now();
        metrics.crl_next_update.clear();
        let mut stalest = BTreeMap::new();
        for crl in crls {
            let Some(next) = crl.info.next_update else {
                continue;
            };
            let labels = CrlLabels {
                profile: crl.profile.to_string(),
                issuer: crl.info.issuer.clone(),
            };
            let left = next - now;
            // Several CRLs of one issuer: the stalest one shows.
            stalest
                .entry(labels)
                .and_modify(|s: &mut i64| *s = (*s).min(left))
                .or_insert(left);
            if left < 0 {
                self.log_expired(crl, next);
            }
        }
        for (labels, left) in stalest {
            metrics.crl_next_update.get_or_create(&labels).set(left);
        }
    }

    fn log_expired(&mut self, crl: &CrlStatus, next: i64) {
        let key = (crl.profile.clone(), crl.info.issuer.clone());
        if self
            .logged
            .get(&key)
            .is_some_and(|at| at.elapsed() < EXPIRED_LOG_EVERY)
        {
            return;
        }
        self.logged.insert(key, Instant::now());
        let due = crl::rfc3339(next);
        match crl.expired_policy {
            CrlExpired::Refuse => {
                error!(profile = %crl.profile, issuer = %crl.info.issuer, next_update = %due,
                "CRL past its nextUpdate: peers it covers are refused (revocation_unknown) until a fresh CRL is loaded")
            }
            CrlExpired::Warn => {
                warn!(profile = %crl.profile, issuer = %crl.info.issuer, next_update = %due,
                "CRL past its nextUpdate stays in force (crl_expired = \"warn\"): revocations published since are not seen")
            }
        }
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self::new()
    }
}

/// When the next fetch is due: `crl_refresh`, sooner when a CRL's
/// nextUpdate comes first (half the time left), or after a failure.
pub fn next_fetch(profiles: &[TlsProfile], cache: &CrlCache, round: FetchRound) -> Duration {
    let now = unix_now();
    // With nothing to fetch, a daily no-op round.
    let mut wait = Duration::from_secs(24 * 3600);
    for p in profiles.iter().filter(|p| p.fetches_crls()) {
        wait = wait.min(p.crl_fetch.refresh);
        if round.failed {
            wait = wait.min(RETRY);
        }
        for info in cache.infos(&p.name) {
            if let Some(next) = info.next_update {
                // Half the time left, but never more often than each
                // minute: a CRL the CA fails to renew is not hammered.
                let half = u64::try_from((next - now) / 2).unwrap_or(0);
                wait = wait.min(Duration::from_secs(half.max(MIN_EARLY_FETCH)));
            }
        }
    }
    wait
}

/// What the refresher needs from the running gateway.
pub trait CrlHost: Send + Sync + 'static {
    /// The profiles in force.
    fn profiles(&self) -> Vec<TlsProfile>;
    /// The CRLs in force (files and fetched).
    fn crls_in_force(&self) -> Vec<CrlStatus>;
    /// Rebuilds the TLS ends with the cache's CRLs.
    fn rebuild(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// Fetches when due, rebuilds when a CRL changed, keeps the gauges fresh.
pub async fn refresh<H: CrlHost>(
    host: H,
    cache: CrlCache,
    metrics: Metrics,
    first: FetchRound,
    shutdown: CancellationToken,
) {
    let mut freshness = Freshness::new();
    let mut due = tokio::time::Instant::now() + next_fetch(&host.profiles(), &cache, first);
    loop {
        freshness.update(&host.crls_in_force(), &metrics);
        let profiles = host.profiles();
        let fetch_now = tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TICK) => false,
            () = tokio::time::sleep_until(due) => true,
            () = cache.poke.notified() => true,
            () = learnt_changed(&cache, &profiles) => true,
        };
        if !fetch_now {
            continue;
        }
        let profiles = host.profiles();
        let round = cache.fetch_all(profiles.iter(), &metrics).await;
        if round.changed {
            host.rebuild().await;
        }
        due = tokio::time::Instant::now() + next_fetch(&profiles, &cache, round);
    }
}

/// Resolves when a handshake of a profile that fetches from certificates
/// learnt a new distribution point.
async fn learnt_changed(cache: &CrlCache, profiles: &[TlsProfile]) {
    let points: Vec<LearntPoints> = profiles
        .iter()
        .filter(|p| p.crl_fetch.from_certificates)
        .map(|p| cache.learnt(&p.name))
        .collect();
    if points.is_empty() {
        return std::future::pending().await;
    }
    let waits = points.iter().map(|p| Box::pin(p.changed()));
    futures_util::future::select_all(waits).await;
}
