//! OCSP in the gateway: one checker and one stapler per TLS profile, and
//! the metrics they report to.
//!
//! Metrics (Prometheus names):
//! - `guichet_ocsp_checks_total{profile,result,source}`: peer certificates
//!   checked; `result` is `good`, `revoked`, `unknown` or `error`, `source`
//!   is `responder`, `cache` or `staple`.
//! - `guichet_ocsp_staple_next_update_seconds{profile}`: seconds until the
//!   nextUpdate of the response we staple (computed at each scrape; absent
//!   while nothing is stapled).
//! - `guichet_ocsp_staple_failures_total{profile}`: failed refreshes of our
//!   own response (the last good one is kept until its nextUpdate).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use guichet_tls::ocsp::{OcspEvents, OcspResult, OcspSource};
use guichet_tls::{Material, OcspChecker, Stapler};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::TlsProfile;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OcspCheckLabels {
    pub profile: String,
    pub result: &'static str,
    pub source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, Ord, PartialOrd, EncodeLabelSet)]
pub struct ProfileLabel {
    pub profile: String,
}

/// The OCSP metrics. Cheap to clone: shared inside.
#[derive(Clone, Default, Debug)]
pub struct OcspMetrics {
    pub checks: Family<OcspCheckLabels, Counter>,
    pub staple_failures: Family<ProfileLabel, Counter>,
    /// nextUpdate of each profile's stapled response.
    staples: Arc<Mutex<BTreeMap<ProfileLabel, SystemTime>>>,
}

impl OcspMetrics {
    /// Registers the families in the `guichet_` registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ocsp_checks",
            "Peer certificates checked with OCSP, per profile, result and source of the answer",
            self.checks.clone(),
        );
        registry.register(
            "ocsp_staple_failures",
            "Failed refreshes of our own stapled OCSP response, per profile",
            self.staple_failures.clone(),
        );
        registry.register_collector(Box::new(StapleCollector(self.staples.clone())));
    }

    /// The count of checks with these labels (tests and status).
    pub fn checks(&self, profile: &str, result: OcspResult, source: OcspSource) -> u64 {
        self.checks
            .get_or_create(&OcspCheckLabels {
                profile: profile.to_string(),
                result: result.as_str(),
                source: source.as_str(),
            })
            .get()
    }
}

impl OcspEvents for OcspMetrics {
    fn checked(&self, profile: &str, result: OcspResult, source: OcspSource) {
        self.checks
            .get_or_create(&OcspCheckLabels {
                profile: profile.to_string(),
                result: result.as_str(),
                source: source.as_str(),
            })
            .inc();
    }

    fn stapled(&self, profile: &str, next_update: Option<SystemTime>) {
        let Ok(mut staples) = self.staples.lock() else {
            return;
        };
        let label = ProfileLabel {
            profile: profile.to_string(),
        };
        match next_update {
            Some(at) => staples.insert(label, at),
            None => staples.remove(&label),
        };
    }

    fn staple_failed(&self, profile: &str) {
        self.staple_failures
            .get_or_create(&ProfileLabel {
                profile: profile.to_string(),
            })
            .inc();
    }
}

/// Seconds to nextUpdate, computed when scraped so the gauge falls in
/// real time between refreshes.
#[derive(Debug)]
struct StapleCollector(Arc<Mutex<BTreeMap<ProfileLabel, SystemTime>>>);

impl Collector for StapleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(staples) = self.0.lock() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "ocsp_staple_next_update_seconds",
            "Seconds until the nextUpdate of our stapled OCSP response, per profile",
            None,
            MetricType::Gauge,
        )?;
        let now = SystemTime::now();
        for (label, at) in staples.iter() {
            let seconds = match at.duration_since(now) {
                Ok(left) => left.as_secs() as i64,
                Err(past) => -(past.duration().as_secs() as i64),
            };
            ConstGauge::new(seconds).encode(family.encode_family(label)?)?;
        }
        Ok(())
    }
}

/// A profile's OCSP ends: the checker of peers, and the stapler of our own
/// certificate when it names a responder.
#[derive(Clone, Default)]
pub struct ProfileOcsp {
    pub checker: Option<Arc<OcspChecker>>,
    pub stapler: Option<Arc<Stapler>>,
}

/// Builds a profile's OCSP ends (nothing when `ocsp = "off"`).
pub fn profile_ocsp(
    profile: &TlsProfile,
    material: &Material,
    metrics: &OcspMetrics,
) -> Result<ProfileOcsp, guichet_tls::ocsp::OcspError> {
    let events: Arc<dyn OcspEvents> = Arc::new(metrics.clone());
    let name = profile.name.as_str();
    Ok(ProfileOcsp {
        checker: OcspChecker::new(name, &profile.ocsp, material, events.clone())?,
        stapler: Stapler::new(name, &profile.ocsp, material, events)?,
    })
}
