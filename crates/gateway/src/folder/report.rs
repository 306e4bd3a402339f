//! The JSON report written beside each file in `done/` or `rejected/`:
//! what was decided and why, metadata only (rule codes, paths into the
//! document, statuses: never the document's content).

use guichet_ror::rules::Violation;
use serde::Serialize;

use crate::national::Step;

/// Why a file ended where it did; a stable code, also the `reason` label
/// of `guichet_folder_files_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    Delivered,
    /// The rules found errors.
    Invalid,
    TooLarge,
    /// A symbolic link in the inbox: not followed.
    Link,
    /// It could not be read (permissions, I/O).
    Unreadable,
    /// The upstream refused it (4xx).
    Refused,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Delivered => "delivered",
            Reason::Invalid => "invalid",
            Reason::TooLarge => "too_large",
            Reason::Link => "link",
            Reason::Unreadable => "unreadable",
            Reason::Refused => "refused",
        }
    }

    /// `done` or `rejected`.
    pub fn outcome(self) -> &'static str {
        if self == Reason::Delivered {
            "done"
        } else {
            "rejected"
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    /// The name it was dropped under.
    pub file: String,
    /// Its name in `done/` or `rejected/`.
    pub stored_as: String,
    pub route: String,
    /// `done` or `rejected`.
    pub outcome: &'static str,
    pub reason: &'static str,
    /// What went wrong, for a person (no document content).
    pub detail: Option<String>,
    pub taken_at: String,
    pub finished_at: String,
    pub bytes: Option<u64>,
    /// The rules' findings; warnings too on a delivered file.
    pub violations: Vec<Violation>,
    pub delivery: Option<Delivery>,
}

/// How the file went to the upstream.
#[derive(Debug, Serialize)]
pub(super) struct Delivery {
    pub upstream: String,
    pub attempts: u32,
    /// The last answer's status.
    pub status: Option<u16>,
    /// Sent again after a crash or a takeover; the upstream may have had
    /// it before (guichet sends an `Idempotency-Key`).
    pub redelivered: bool,
    /// Each request of the last attempt, when known.
    pub requests: Vec<Request>,
}

#[derive(Debug, Serialize)]
pub(super) struct Request {
    pub target: String,
    pub op: &'static str,
    pub status: u16,
    /// The upstream's issue codes and diagnostics, when it refused.
    pub issues: Vec<String>,
}

impl Request {
    pub fn of(step: &Step) -> Request {
        let issues = step
            .outcome
            .as_ref()
            .and_then(|o| o["issue"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|issue| {
                let code = issue["code"].as_str().unwrap_or("?");
                match issue["diagnostics"].as_str() {
                    Some(text) => format!("{code}: {}", clip(text)),
                    None => code.to_string(),
                }
            })
            .collect();
        Request {
            target: step.unit.clone(),
            op: step.op,
            status: step.status.as_u16(),
            issues,
        }
    }
}

/// At most 300 characters of an upstream's text.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;
    use crate::metrics::FOLDER_FILE_REASONS;

    /// The status page counts files by the labels the metrics list.
    #[test]
    fn every_reason_is_listed_for_the_status_page() {
        let reasons = [
            Reason::Delivered,
            Reason::Invalid,
            Reason::TooLarge,
            Reason::Link,
            Reason::Unreadable,
            Reason::Refused,
        ];
        let labels: Vec<(&str, &str)> = reasons.iter().map(|r| (r.outcome(), r.as_str())).collect();
        assert_eq!(labels, FOLDER_FILE_REASONS);
    }
}
