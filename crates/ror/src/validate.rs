//! A document's bytes to a verdict: the form recognised from the content
//! (`<` for guichet's XML, `{` for FHIR JSON), read, then checked.

use serde::Serialize;

use crate::model::{Document, Path};
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
    /// `None` when it could not be read, or was not kept ([`Keep`]).
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

/// What a verdict keeps of the document it judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The document, for a caller that converts or reads it.
    Document,
    /// The violations alone, for a caller that sends the bytes on as
    /// received: a document that breaks no rule is then never built.
    Violations,
}

/// Reads and checks `bytes`.
pub fn validate(bytes: &[u8], context: &Context<'_>) -> Verdict {
    validate_keeping(bytes, context, Keep::Document)
}

/// Reads and checks `bytes`, keeping the document when `keep` asks
/// for it (else [`Verdict::document`] is `None`).
pub fn validate_keeping(bytes: &[u8], context: &Context<'_>, keep: Keep) -> Verdict {
    // Most documents are in guichet's layout and break no rule: judged
    // from the text, values borrowed, without building the document
    // (nor, when one is kept, remembering where each value stands).
    // One the rules have anything to say of is built with its paths,
    // for the report.
    if let Some(view) = xml::scan::view(without_bom(bytes)) {
        if rules::clean(&view, context) {
            let document = (keep == Keep::Document).then(|| view.document(Path::untracked()));
            return Verdict {
                form: Some(Form::Xml),
                document,
                violations: Vec::new(),
            };
        }
        let document = view.document(Path::new(xml::ROOT));
        return checked(Some(Form::Xml), document, context, keep);
    }
    let (form, read) = read(bytes);
    match read {
        Ok(document) => checked(form, document, context, keep),
        Err(why) => Verdict {
            form,
            document: None,
            violations: vec![rules::unreadable(why.code, why.path, why.reason, context)],
        },
    }
}

/// The verdict on a document read with its paths.
fn checked(form: Option<Form>, document: Document, context: &Context<'_>, keep: Keep) -> Verdict {
    Verdict {
        form,
        violations: rules::check(&document, context),
        document: (keep == Keep::Document).then_some(document),
    }
}
