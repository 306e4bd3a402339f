//! A document's bytes to a verdict: the form recognised from the content
//! (`<` for guichet's XML, `{` for FHIR JSON), read, then checked.

use serde::Serialize;

use crate::model::Document;
use crate::rules::{self, Context, Severity, Violation};
use crate::{fhir, patch, xml};

/// The forms a document may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    Xml,
    Fhir,
}

/// What the rules say of one document.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `None` when the content is neither XML nor JSON.
    pub form: Option<Form>,
    /// `None` when it could not be read.
    pub document: Option<Document>,
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// No violation of severity error.
    pub fn valid(&self) -> bool {
        !self
            .violations
            .iter()
            .any(|v| v.severity == Severity::Error)
    }
}

/// Why bytes are not a document: the rule (`xml.invalid`,
/// `json.invalid`), where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub code: &'static str,
    pub path: String,
    pub reason: String,
}

fn unreadable(code: &'static str, path: String, reason: String) -> Unreadable {
    Unreadable { code, path, reason }
}

/// Reads `bytes` in whichever form they are: the document, or why it
/// cannot be read.
pub fn read(bytes: &[u8]) -> (Option<Form>, Result<Document, Unreadable>) {
    let bytes = without_bom(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| bytes[i]) {
        Some(b'<') => {
            let read = xml::read(bytes).map_err(|e| {
                let at = format!("line {}, column {}", e.line, e.column);
                unreadable("xml.invalid", at, e.reason)
            });
            (Some(Form::Xml), read)
        }
        Some(b'{') => {
            let read = fhir::parse(bytes)
                .and_then(|json| match fhir::bundle_type(&json) {
                    Some("batch") => patch::read_json(&json),
                    _ => fhir::read_json(&json),
                })
                .map_err(|e| match e {
                    fhir::FhirError::Json {
                        line,
                        column,
                        reason,
                    } => unreadable(
                        "json.invalid",
                        format!("line {line}, column {column}"),
                        reason,
                    ),
                    fhir::FhirError::Shape { path, reason } => {
                        unreadable("json.invalid", path, reason)
                    }
                });
            (Some(Form::Fhir), read)
        }
        _ => {
            let reason = "neither XML (<...) nor JSON ({...})".to_string();
            let at = "line 1, column 1".to_string();
            (None, Err(unreadable("xml.invalid", at, reason)))
        }
    }
}

fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Reads and checks `bytes`.
pub fn validate(bytes: &[u8], context: &Context<'_>) -> Verdict {
    // Most documents are in guichet's layout and break no rule: judged
    // without remembering where each value stands, which is most of
    // what reading costs. One the rules have anything to say of is read
    // again, with paths, for the report.
    if let Some(document) = xml::read_untracked(without_bom(bytes)) {
        let violations = rules::check(&document, context);
        if violations.is_empty() {
            return Verdict {
                form: Some(Form::Xml),
                document: Some(document),
                violations,
            };
        }
    }
    let (form, read) = read(bytes);
    match read {
        Ok(document) => Verdict {
            form,
            violations: rules::check(&document, context),
            document: Some(document),
        },
        Err(why) => Verdict {
            form,
            document: None,
            violations: vec![rules::unreadable(why.code, why.path, why.reason, context)],
        },
    }
}
