//! What a case must give, and the check of what it gave: the answer's
//! outcome (ACK code, HTTP status, drop-folder verdict, validation verdict
//! and violation codes), fields of the answer (HL7 paths like `MSA-1`, or
//! JSON paths like `$.entry[0].response.status`), and what reached the
//! target's recording sink.

use std::collections::BTreeMap;

use guichet_hl7::{FieldPath, Message, ParseOptions};
use serde::Deserialize;
use serde_json::Value as Json;

/// A case's expectations; absent ones are not checked.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// MLLP: the ACK code (MSA-1): AA, AE, AR, CA, CE or CR.
    pub ack: Option<String>,
    /// MLLP: the error code of the ACK (ERR-3.1).
    pub err: Option<String>,
    /// HTTP: the status.
    #[serde(default, deserialize_with = "loose")]
    pub status: Option<u16>,
    /// Drop folder: `done` or `rejected`.
    pub verdict: Option<String>,
    /// The validation verdict: whether the document broke no rule of
    /// severity error (from a 422's violations or a folder's report).
    #[serde(default, deserialize_with = "loose")]
    pub valid: Option<bool>,
    /// Violation codes the answer must report.
    #[serde(default)]
    pub violations: Vec<String>,
    /// Fields of the answer: HL7 paths on an ACK, JSON paths on a JSON
    /// answer or a folder's report.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// What must reach the target's sink.
    pub downstream: Option<Downstream>,
}

/// What must reach the sink standing downstream of the target.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Downstream {
    /// How many emissions (messages, ROR operations).
    #[serde(default, deserialize_with = "loose")]
    pub count: Option<usize>,
    /// None at all.
    #[serde(default)]
    pub nothing: bool,
    /// Fields every emission must hold: HL7 paths on a forwarded message,
    /// JSON paths on a record line.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// A number or a flag, written as such or as text: a data-driven case's
/// `status = "{{status}}"` is text once filled.
fn loose<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose<T> {
        Native(T),
        Text(String),
    }
    match Option::<Loose<T>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Loose::Native(value)) => Ok(Some(value)),
        Some(Loose::Text(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}"))),
    }
}

/// What a target answered to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An MLLP target's ACK, as text.
    Ack(String),
    Http {
        status: u16,
        body: Vec<u8>,
    },
    /// A drop folder's outcome (`done`, `rejected`) and its report.
    Folder {
        outcome: String,
        report: Json,
    },
}

/// A field path: HL7 (`MSA-1`, `PID-3(2).1`) or JSON (`$.a.b[0]`, `/a/b/0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    Hl7(FieldPath),
    Json(String),
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        if text.starts_with('/') {
            return Ok(Path::Json(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix('$') {
            return json_pointer(rest).map(Path::Json);
        }
        match text.parse::<FieldPath>() {
            Ok(path) => Ok(Path::Hl7(path)),
            Err(hl7) => Err(format!("{hl7}; a JSON path starts with $ or /")),
        }
    }

    /// The value at this path in `text` (an HL7 message or JSON).
    pub fn value_in(&self, text: &[u8]) -> Option<String> {
        match self {
            Path::Hl7(path) => {
                let message = Message::parse_with(text, ParseOptions::lenient()).ok()?;
                let field = message.at(path)?;
                Some(String::from_utf8_lossy(field.raw()).into_owned())
            }
            Path::Json(pointer) => {
                let json: Json = serde_json::from_slice(text).ok()?;
                json.pointer(pointer).map(scalar)
            }
        }
    }
}

/// `.a.b[0].c` as the JSON pointer `/a/b/0/c`.
pub(crate) fn json_pointer(rest: &str) -> Result<String, String> {
    let mut pointer = String::new();
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let n = index
                .strip_suffix(']')
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or_else(|| format!("${rest}: [{index} is not an index"))?;
            pointer.push_str(&format!("/{n}"));
        }
    }
    Ok(pointer)
}

/// A JSON value as the text an expectation compares it with.
fn scalar(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Expect {
    /// Every field path can be read.
    pub fn check_paths(&self) -> Result<(), String> {
        let downstream = self.downstream.iter().flat_map(|d| d.fields.keys());
        for key in self.fields.keys().chain(downstream) {
            Path::parse(key).map_err(|e| format!("field {key:?}: {e}"))?;
        }
        Ok(())
    }

    /// What of the expectations `answer` breaks, each said for a person.
    pub fn check_answer(&self, answer: &Answer) -> Vec<String> {
        let mut failures = Vec::new();
        let text = answer_text(answer);
        if let Some(ack) = &self.ack {
            want(
                &mut failures,
                "ACK (MSA-1)",
                ack,
                hl7_value(answer, "MSA-1"),
            );
        }
        if let Some(err) = &self.err {
            want(
                &mut failures,
                "error code (ERR-3.1)",
                err,
                hl7_value(answer, "ERR-3.1"),
            );
        }
        if let Some(status) = self.status {
            let got = match answer {
                Answer::Http { status, .. } => Some(status.to_string()),
                _ => None,
            };
            want(&mut failures, "HTTP status", &status.to_string(), got);
        }
        if let Some(verdict) = &self.verdict {
            let got = match answer {
                Answer::Folder { outcome, .. } => Some(outcome.clone()),
                _ => None,
            };
            want(&mut failures, "drop-folder verdict", verdict, got);
        }
        self.check_validation(answer, &mut failures);
        for (key, expected) in &self.fields {
            let got = Path::parse(key).ok().and_then(|p| p.value_in(&text));
            want(&mut failures, key, expected, got);
        }
        failures
    }

    /// The validation verdict and the violation codes of `answer`.
    fn check_validation(&self, answer: &Answer, failures: &mut Vec<String>) {
        let (valid, codes) = validation(answer);
        if let Some(expected) = self.valid {
            want(
                failures,
                "validation verdict",
                verdict_word(expected),
                valid.map(|v| verdict_word(v).to_string()),
            );
        }
        for code in &self.violations {
            if !codes.contains(code) {
                failures.push(format!(
                    "violation {code}: not reported (reported: {})",
                    list(&codes)
                ));
            }
        }
    }

    /// What of the downstream expectations `emissions` (the sink's lines
    /// for this case) break.
    pub fn check_downstream(&self, emissions: &[Json]) -> Vec<String> {
        let Some(downstream) = &self.downstream else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        if downstream.nothing && !emissions.is_empty() {
            failures.push(format!(
                "downstream: expected nothing, {} arrived",
                emissions.len()
            ));
        }
        if let Some(count) = downstream.count.filter(|c| *c != emissions.len()) {
            failures.push(format!(
                "downstream: expected {count}, {} arrived",
                emissions.len()
            ));
        }
        for (i, emission) in emissions.iter().enumerate() {
            for (key, expected) in &downstream.fields {
                let got = Path::parse(key)
                    .ok()
                    .and_then(|p| emission_value(&p, emission));
                if got.as_deref() != Some(expected.as_str()) {
                    let got = got.unwrap_or_else(|| "nothing".into());
                    failures.push(format!(
                        "downstream {}: {key}: expected {expected}, got {got}",
                        i + 1
                    ));
                }
            }
        }
        failures
    }
}

/// Notes a failure when `got` is not `expected`.
fn want(failures: &mut Vec<String>, what: &str, expected: &str, got: Option<String>) {
    if got.as_deref() != Some(expected) {
        let got = got.unwrap_or_else(|| "nothing".into());
        failures.push(format!("{what}: expected {expected}, got {got}"));
    }
}

/// A field of one sink line: HL7 paths read its `body` (a message a
/// listener recorded), JSON paths the line itself.
pub fn emission_value(path: &Path, emission: &Json) -> Option<String> {
    match path {
        Path::Hl7(_) => path.value_in(emission["body"].as_str()?.as_bytes()),
        Path::Json(pointer) => emission.pointer(pointer).map(scalar),
    }
}

/// The answer as bytes a path reads: the ACK, the HTTP body, the report.
pub fn answer_text(answer: &Answer) -> Vec<u8> {
    match answer {
        Answer::Ack(text) => text.clone().into_bytes(),
        Answer::Http { body, .. } => body.clone(),
        Answer::Folder { report, .. } => report.to_string().into_bytes(),
    }
}

fn hl7_value(answer: &Answer, path: &str) -> Option<String> {
    match answer {
        Answer::Ack(text) => Path::parse(path).ok()?.value_in(text.as_bytes()),
        _ => None,
    }
}

/// The validation verdict and violation codes an answer reports: a 422's
/// problem body, or a folder's report; a 2xx or `done` without them is
/// valid.
fn validation(answer: &Answer) -> (Option<bool>, Vec<String>) {
    let (listed, passed) = match answer {
        Answer::Http { status, body } => {
            let json: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
            (json["violations"].clone(), (200..300).contains(status))
        }
        Answer::Folder { outcome, report } => (report["violations"].clone(), outcome == "done"),
        Answer::Ack(_) => return (None, Vec::new()),
    };
    let violations = listed.as_array().cloned().unwrap_or_default();
    let codes = violations
        .iter()
        .filter_map(|v| v["code"].as_str().map(String::from))
        .collect();
    let errors = violations.iter().any(|v| v["severity"] == "error");
    let valid = match (errors, passed) {
        (true, _) => Some(false),
        (false, true) => Some(true),
        (false, false) if violations.is_empty() => None,
        (false, false) => Some(true),
    };
    (valid, codes)
}

fn verdict_word(valid: bool) -> &'static str {
    if valid {
        "valid"
    } else {
        "invalid"
    }
}

fn list(codes: &[String]) -> String {
    if codes.is_empty() {
        "none".into()
    } else {
        codes.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(
            Path::parse("$.entry[0].response.status").unwrap(),
            Path::Json("/entry/0/response/status".into())
        );
        assert_eq!(Path::parse("/a/b").unwrap(), Path::Json("/a/b".into()));
        assert!(matches!(Path::parse("MSA-1").unwrap(), Path::Hl7(_)));
        assert!(Path::parse("status").is_err());
    }

    #[test]
    fn an_ack_is_checked_by_code_and_fields() {
        let ack = Answer::Ack("MSH|^~\\&|DPI|CHU|EAI|CHU|20261205||ACK^A01^ACK|9|P|2.5\rMSA|AE|42\rERR|||207^Application internal error^HL70357|E\r".into());
        let expect = Expect {
            ack: Some("AE".into()),
            err: Some("207".into()),
            fields: [("MSA-2".to_string(), "42".to_string())].into(),
            ..Expect::default()
        };
        assert!(
            expect.check_answer(&ack).is_empty(),
            "{:?}",
            expect.check_answer(&ack)
        );
        let wrong = Expect {
            ack: Some("AA".into()),
            ..Expect::default()
        };
        assert_eq!(
            wrong.check_answer(&ack),
            ["ACK (MSA-1): expected AA, got AE"]
        );
    }

    #[test]
    fn a_refused_document_gives_its_verdict_and_codes() {
        let body =
            br#"{"status":422,"violations":[{"code":"capacity.negative","severity":"error"}]}"#;
        let answer = Answer::Http {
            status: 422,
            body: body.to_vec(),
        };
        let expect = Expect {
            status: Some(422),
            valid: Some(false),
            violations: vec!["capacity.negative".into()],
            ..Expect::default()
        };
        assert!(expect.check_answer(&answer).is_empty());
        let wrong = Expect {
            valid: Some(true),
            violations: vec!["finess.key".into()],
            ..Expect::default()
        };
        assert_eq!(wrong.check_answer(&answer).len(), 2);
    }

    #[test]
    fn downstream_counts_and_fields_are_checked() {
        let sent = serde_json::json!({"body": "MSH|^~\\&|EAI|CHU|DPI|CHU|20261205||ADT^A08^ADT_A01|42|P|2.5\r"});
        let expect = Expect {
            downstream: Some(Downstream {
                count: Some(1),
                fields: [("MSH-9.2".to_string(), "A08".to_string())].into(),
                ..Downstream::default()
            }),
            ..Expect::default()
        };
        assert!(expect
            .check_downstream(std::slice::from_ref(&sent))
            .is_empty());
        assert_eq!(
            expect.check_downstream(&[]),
            ["downstream: expected 1, 0 arrived"]
        );
    }
}
