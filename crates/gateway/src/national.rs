//! Sending a bed-availability document to the national ROR: per capacity
//! record a PATCH `replace`, then `add` when the ROR answers that it
//! holds no such record yet (404 `not-found` on the capacity extension).
//!
//! A document is sent record by record; the ROR has no transaction across
//! them. A refused record (an unknown unit, an invalid indicator) does not
//! stop the others; an unavailable ROR stops the document, to be sent
//! again whole: `replace` then `add` sets the same values twice, so a
//! document sent again changes nothing it already set.

use std::time::Duration;

use bytes::Bytes;
use guichet_ror::fhir::Coding;
use guichet_ror::model::{Capacity, Document};
use guichet_ror::patch::{self, Op};
use http::uri::PathAndQuery;
use http::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value as Json};

use crate::upstream::{Call, CallError, UpstreamClient};

/// What an identifier keeps unescaped in the query: letters, digits,
/// `-._~` and the `/` between the site and the unit.
const IDENTIFIER: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The content type of a PATCH body.
const FHIR_JSON: &str = "application/fhir+json";

/// One request sent, and the ROR's answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// `1<FINESS EG>/<unit>`, or the path of a plain delivery.
    pub unit: String,
    /// `replace`, `add`, or the HTTP method of a plain delivery.
    pub op: &'static str,
    pub status: StatusCode,
    /// The ROR's `OperationOutcome`, when it refused.
    pub outcome: Option<Json>,
}

/// What became of a document.
#[derive(Debug, Clone)]
pub enum Sent {
    /// Every record was accepted.
    Accepted(Vec<Step>),
    /// The ROR refused records (the first refusal's status); the others
    /// were applied.
    Refused(StatusCode, Vec<Step>),
    /// The ROR could not be reached, or failed (5xx, 408, 429): to be sent
    /// again.
    Unavailable(String, Vec<Step>),
}

impl Sent {
    pub fn steps(&self) -> &[Step] {
        match self {
            Sent::Accepted(steps) | Sent::Refused(_, steps) | Sent::Unavailable(_, steps) => steps,
        }
    }

    /// A FHIR `batch-response` Bundle: one entry per request sent.
    pub fn bundle(&self) -> Json {
        let entries: Vec<Json> = self
            .steps()
            .iter()
            .map(|step| {
                let mut response = json!({
                    "status": step.status.to_string(),
                    "location": format!("Location?identifier={}", step.unit),
                });
                if let Some(outcome) = &step.outcome {
                    response["outcome"] = outcome.clone();
                }
                json!({"response": response})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": entries})
    }
}

/// The national ROR behind an upstream.
pub struct NationalRor<'a> {
    pub upstream: &'a UpstreamClient,
    /// The upstream URL's path, before `ws-synchro-dispo-lits-fhir/…`.
    pub base: &'a str,
    pub timeout: Duration,
    /// Sent as `Idempotency-Key`, suffixed per request, when set.
    pub key: Option<&'a str>,
}

impl NationalRor<'_> {
    /// Sends every capacity record of `document`.
    pub async fn send(&self, document: &Document) -> Sent {
        let site = document.id_nat_struct().unwrap_or_default();
        let mut steps = Vec::new();
        let mut refused = None;
        for (u, unit) in document.units.iter().enumerate() {
            let identifier = format!("{site}/{}", unit.id.value);
            for (c, capacity) in unit.capacities.iter().enumerate() {
                let key = self.key.map(|k| format!("{k}:{u}:{c}"));
                match self
                    .record(&identifier, capacity, key.as_deref(), &mut steps)
                    .await
                {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        refused.get_or_insert(status);
                    }
                    Err(why) => return Sent::Unavailable(why, steps),
                }
            }
        }
        match refused {
            None => Sent::Accepted(steps),
            Some(status) => Sent::Refused(status, steps),
        }
    }

    /// One record: `replace`, then `add` on 404 on the capacity extension,
    /// then `replace` again when the `add` is refused because the record
    /// appeared in between (another document for the same unit, sent at
    /// the same time, added it first).
    /// `Ok(Some(status))` when refused, `Err` when the ROR is unavailable.
    async fn record(
        &self,
        identifier: &str,
        capacity: &Capacity,
        key: Option<&str>,
        steps: &mut Vec<Step>,
    ) -> Result<Option<StatusCode>, String> {
        let replaced = self
            .operation(identifier, Op::Replace, capacity, key)
            .await?;
        let absent = replaced.status == StatusCode::NOT_FOUND
            && replaced.outcome.as_ref().is_some_and(record_absent);
        steps.push(replaced);
        if absent {
            let added = self.operation(identifier, Op::Add, capacity, key).await?;
            let raced = added.status == StatusCode::BAD_REQUEST
                && added.outcome.as_ref().is_some_and(record_present);
            steps.push(added);
            if raced {
                // Its own idempotency key: the first replace's answer (404)
                // must not be replayed.
                let again = key.map(|k| format!("{k}:after-add"));
                steps.push(
                    self.operation(identifier, Op::Replace, capacity, again.as_deref())
                        .await?,
                );
            }
        }
        match steps.last().map(|step| step.status) {
            Some(s) if unavailable(s) => Err(format!("the ROR answered {s}")),
            Some(s) if !s.is_success() => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    async fn operation(
        &self,
        identifier: &str,
        op: Op,
        capacity: &Capacity,
        key: Option<&str>,
    ) -> Result<Step, String> {
        let escaped = utf8_percent_encode(identifier, IDENTIFIER).to_string();
        let url = format!(
            "{}{}?identifier={escaped}",
            self.base_slash(),
            patch::LOCATION
        );
        let path: PathAndQuery = url
            .parse()
            .map_err(|_| format!("{url:?} is not a URL path"))?;
        let body = patch::parameters(op, capacity, Coding::default()).to_string();
        let key = key.map(|k| format!("{k}:{}", op.name()));
        let mut headers = Vec::new();
        if let Some(key) = key.as_deref() {
            headers.push(("idempotency-key", key));
        }
        let answer = self
            .upstream
            .call(Call {
                method: Method::PATCH,
                path,
                content_type: FHIR_JSON,
                headers,
                body: Bytes::from(body),
                timeout: self.timeout,
            })
            .await
            .map_err(|e| match e {
                CallError::Unavailable(why) | CallError::Token(why) => why,
            })?;
        let outcome = (!answer.status.is_success())
            .then(|| serde_json::from_slice::<Json>(&answer.body).ok())
            .flatten();
        Ok(Step {
            unit: identifier.to_string(),
            op: op.name(),
            status: answer.status,
            outcome,
        })
    }

    fn base_slash(&self) -> String {
        if self.base.ends_with('/') {
            self.base.to_string()
        } else {
            format!("{}/", self.base)
        }
    }
}

/// A status after which the same request may succeed later.
pub fn unavailable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
}

/// Whether an `OperationOutcome` says the capacity record is absent (its
/// expression names the capacity extension, not the `Location`).
fn record_absent(outcome: &Json) -> bool {
    issue_on_capacity(outcome, &["not-found"])
}

/// Whether an `OperationOutcome` refuses an `add` because the capacity
/// record is already there.
fn record_present(outcome: &Json) -> bool {
    issue_on_capacity(outcome, &["business-rule", "duplicate"])
}

/// An issue of one of `codes` whose expression is the capacity extension.
fn issue_on_capacity(outcome: &Json, codes: &[&str]) -> bool {
    outcome["issue"].as_array().is_some_and(|issues| {
        issues.iter().any(|issue| {
            issue["code"].as_str().is_some_and(|c| codes.contains(&c))
                && issue["expression"].as_array().is_some_and(|e| {
                    e.iter()
                        .filter_map(Json::as_str)
                        .any(|e| e.contains("extension"))
                })
        })
    })
}
