//! What the status page shows of an `http` route: per rule, requests by
//! the upstream's status class and requests guichet refused; the route's
//! last refusals with their reason.
//!
//! Counted on the request path, so atomics only: the rules' counters are
//! found through an `ArcSwap` (no lock; a rule added by a reload gets its
//! counters on its first request), the last refusals sit in a ring of
//! `ArcSwapOption` slots claimed by an atomic index. A refusal carries
//! the rule, the application or certificate subject and the reason: never
//! the request's path, query or body, which may hold patient data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use guichet_tls::AppName;
use serde::Serialize;

use crate::certs::rfc3339;
use crate::config::{HttpSpec, RuleName};

/// Refusals kept per `http` route.
pub const RECENT_HTTP_REFUSALS: usize = 32;

/// Rules counted per route at most (a route has a few; the bound holds
/// whatever reloads bring).
const MAX_RULES: usize = 256;

/// One `http` route's counters, for its whole life across reloads.
#[derive(Default)]
pub struct HttpTally {
    rules: ArcSwap<Vec<Arc<RuleTally>>>,
    /// Requests that matched no rule, or were refused before one matched.
    unmatched: Counts,
    /// TLS handshakes refused (no certificate, unknown CA, not listed...).
    handshakes_refused: AtomicU64,
    recent: Ring,
}

/// One rule's counters, by name.
struct RuleTally {
    name: RuleName,
    counts: Counts,
}

/// Requests answered, by the upstream's status class, and refused.
#[derive(Default)]
struct Counts {
    /// 2xx, 3xx, 4xx, 5xx from the upstream (1xx counts as 2xx).
    classes: [AtomicU64; 4],
    /// Answered by guichet itself (a refusal, with its reason).
    refused: AtomicU64,
}

/// The last refusals, newest last once sorted by `seq`.
struct Ring {
    next: AtomicU64,
    slots: [ArcSwapOption<(u64, Refused)>; RECENT_HTTP_REFUSALS],
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            next: AtomicU64::new(0),
            slots: std::array::from_fn(|_| ArcSwapOption::empty()),
        }
    }
}

/// A refusal as recorded: shared parts only, turned into text when read.
pub struct Refused {
    pub at: SystemTime,
    pub rule: Option<RuleName>,
    /// The application the certificate was recognised as.
    pub app: Option<AppName>,
    /// The certificate's subject; `None` when none was presented.
    pub subject: Option<Arc<str>>,
    /// `not_admitted`, `no_rule`, `not_allowed`, `no_certificate`, ...
    pub reason: &'static str,
    /// The HTTP status answered; `None` for a refused handshake.
    pub status: Option<u16>,
    /// Words for a refused handshake.
    pub description: Option<String>,
}

impl HttpTally {
    /// Counts one request that ended with `status`; `refused` when guichet
    /// answered it itself.
    pub fn answered(&self, rule: Option<&RuleName>, status: u16, refused: bool) {
        let count = |counts: &Counts| {
            if refused {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            } else {
                let class = usize::from(status.clamp(200, 599) / 100 - 2);
                counts.classes[class].fetch_add(1, Ordering::Relaxed);
            }
        };
        let Some(rule) = rule else {
            return count(&self.unmatched);
        };
        if let Some(tally) = self.rules.load().iter().find(|t| &t.name == rule) {
            return count(&tally.counts);
        }
        self.add_rule(rule);
        match self.rules.load().iter().find(|t| &t.name == rule) {
            Some(tally) => count(&tally.counts),
            None => count(&self.unmatched),
        }
    }

    /// A rule seen for the first time (at its first request).
    fn add_rule(&self, rule: &RuleName) {
        self.rules.rcu(|rules| {
            let mut rules = Vec::clone(rules);
            if rules.len() < MAX_RULES && !rules.iter().any(|t| &t.name == rule) {
                rules.push(Arc::new(RuleTally {
                    name: rule.clone(),
                    counts: Counts::default(),
                }));
            }
            rules
        });
    }

    /// A TLS handshake refused on this route.
    pub fn handshake_refused(&self, refused: Refused) {
        self.handshakes_refused.fetch_add(1, Ordering::Relaxed);
        self.remember(refused);
    }

    /// Keeps a refusal among the last ones.
    pub fn remember(&self, refused: Refused) {
        let seq = self.recent.next.fetch_add(1, Ordering::Relaxed);
        let slot = (seq % RECENT_HTTP_REFUSALS as u64) as usize;
        self.recent.slots[slot].store(Some(Arc::new((seq, refused))));
    }

    /// The route's figures for `/api/status`, rules as configured now.
    pub fn status(&self, spec: &HttpSpec) -> HttpRouteStatus {
        let tallies = self.rules.load();
        let rules = spec
            .rules
            .iter()
            .map(|rule| HttpRuleStatus {
                name: rule.name.to_string(),
                host: rule.host.clone(),
                path: rule.path.clone(),
                upstream: rule.upstream.origin.to_string(),
                allow: rule.allow.names().map(ToString::to_string).collect(),
                requests: tallies
                    .iter()
                    .find(|t| t.name == rule.name)
                    .map(|t| t.counts.read())
                    .unwrap_or_default(),
            })
            .collect();
        HttpRouteStatus {
            rules,
            unmatched: self.unmatched.read(),
            handshakes_refused: self.handshakes_refused.load(Ordering::Relaxed),
            recent_refusals: self.recent(spec),
        }
    }

    /// The last refusals, newest first.
    fn recent(&self, spec: &HttpSpec) -> Vec<HttpRefusalRecord> {
        let mut kept: Vec<Arc<(u64, Refused)>> = self
            .recent
            .slots
            .iter()
            .filter_map(ArcSwapOption::load_full)
            .collect();
        kept.sort_by_key(|r| std::cmp::Reverse(r.0));
        kept.iter().map(|r| record(&r.1, spec)).collect()
    }
}

impl Counts {
    fn read(&self) -> RequestCounts {
        let class = |i: usize| self.classes[i].load(Ordering::Relaxed);
        RequestCounts {
            s2xx: class(0),
            s3xx: class(1),
            s4xx: class(2),
            s5xx: class(3),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

fn record(r: &Refused, spec: &HttpSpec) -> HttpRefusalRecord {
    let rule = r
        .rule
        .as_ref()
        .and_then(|name| spec.rules.iter().find(|rule| &rule.name == name));
    HttpRefusalRecord {
        at: rfc3339(r.at),
        rule: r.rule.as_ref().map(ToString::to_string),
        host: rule.and_then(|rule| rule.host.clone()),
        path: rule.map(|rule| rule.path.clone()),
        application: r.app.as_ref().map(ToString::to_string),
        subject: r.subject.as_deref().map(str::to_string),
        reason: r.reason,
        status: r.status,
        description: r.description.clone(),
    }
}

/// An `http` route in `/api/status`.
#[derive(Debug, Serialize)]
pub struct HttpRouteStatus {
    pub rules: Vec<HttpRuleStatus>,
    /// Requests that matched no rule (or were refused before one did).
    pub unmatched: RequestCounts,
    /// TLS handshakes refused: no certificate, unknown CA, not listed, ...
    pub handshakes_refused: u64,
    /// Newest first.
    pub recent_refusals: Vec<HttpRefusalRecord>,
}

/// One rule of an `http` route and its requests.
#[derive(Debug, Serialize)]
pub struct HttpRuleStatus {
    pub name: String,
    pub host: Option<String>,
    /// The path prefix it serves.
    pub path: String,
    pub upstream: String,
    /// The applications it admits.
    pub allow: Vec<String>,
    pub requests: RequestCounts,
}

/// Requests by the upstream's status class, and those guichet refused.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RequestCounts {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    pub refused: u64,
}

/// A refused request or handshake: who, where (rule and its prefix,
/// never the request's own path), why.
#[derive(Debug, Serialize)]
pub struct HttpRefusalRecord {
    pub at: String,
    pub rule: Option<String>,
    pub host: Option<String>,
    /// The rule's path prefix.
    pub path: Option<String>,
    pub application: Option<String>,
    /// The certificate's subject; `None`: no certificate presented.
    pub subject: Option<String>,
    pub reason: &'static str,
    /// The HTTP status answered; `None` for a refused handshake.
    pub status: Option<u16>,
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(reason: &'static str) -> Refused {
        Refused {
            at: SystemTime::UNIX_EPOCH,
            rule: None,
            app: None,
            subject: None,
            reason,
            status: Some(403),
            description: None,
        }
    }

    #[test]
    fn counts_by_class_and_keeps_the_last_refusals() {
        let tally = HttpTally::default();
        tally.answered(None, 200, false);
        tally.answered(None, 404, false);
        tally.answered(None, 503, false);
        tally.answered(None, 403, true);
        assert_eq!(
            tally.unmatched.read(),
            RequestCounts {
                s2xx: 1,
                s3xx: 0,
                s4xx: 1,
                s5xx: 1,
                refused: 1
            }
        );
        for _ in 0..RECENT_HTTP_REFUSALS {
            tally.remember(refusal("no_rule"));
        }
        tally.remember(refusal("not_admitted"));
        let spec_rules: Vec<Arc<(u64, Refused)>> = tally
            .recent
            .slots
            .iter()
            .filter_map(ArcSwapOption::load_full)
            .collect();
        assert_eq!(spec_rules.len(), RECENT_HTTP_REFUSALS);
        let newest = spec_rules.iter().max_by_key(|r| r.0).unwrap();
        assert_eq!(newest.1.reason, "not_admitted");
    }
}
