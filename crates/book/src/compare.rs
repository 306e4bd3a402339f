//! Comparing what two engines did with the same cases: the outcome, the
//! answer's fields and what each sent downstream, after normalisation
//! (what always differs: MSH-7, MSH-10, the MSA-2 echo, times, generated
//! names) and learned noise (fields that differ between two runs against
//! the same engine, Diffy's method).
//!
//! HL7 is compared field by field, so trailing empty fields, components
//! and repetitions equal absent ones; JSON leaf by leaf.

use std::collections::{BTreeMap, BTreeSet};

use guichet_hl7::{Message, ParseOptions};
use serde::Serialize;
use serde_json::Value as Json;

use crate::book::Book;
use crate::expect::{answer_text, Answer};
use crate::run::{run, CaseResult, Ends, RunOptions, TargetResult};
use crate::sink::parse;

/// Fields no comparison looks at, whatever the book says.
pub const ALWAYS_IGNORED: [&str; 12] = [
    "MSH-7",
    "MSH-10",
    "MSA-2",
    "EVN-2",
    "$..time",
    "$..lastUpdated",
    "$..lastModified",
    "$..taken_at",
    "$..finished_at",
    "$..stored_as",
    "$..etag",
    "$..started",
];

/// What one engine did with one case, flattened for comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub outcome: String,
    pub answer: BTreeMap<String, String>,
    pub downstream: Vec<BTreeMap<String, String>>,
}

/// One difference between the old engine and the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `outcome`, `answer`, `downstream` or `downstream N`.
    pub part: String,
    /// The field that differs, when a field does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Which fields are left out of comparisons.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<String>,
    /// Learned: differed between two runs against the same engine.
    pub noise: BTreeSet<String>,
}

impl Ignore {
    /// [`ALWAYS_IGNORED`] and the book's own.
    pub fn new(book: &[String]) -> Ignore {
        let patterns = ALWAYS_IGNORED
            .iter()
            .map(|p| p.to_string())
            .chain(book.iter().cloned())
            .collect();
        Ignore {
            patterns,
            noise: BTreeSet::new(),
        }
    }

    fn ignores(&self, key: &str) -> bool {
        self.noise.contains(key) || self.by_pattern(key)
    }

    /// Left out by a default or the book's list (not by learning).
    fn by_pattern(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| matches(p, key))
    }
}

/// Whether `key` (`PID-3(2).1`, `/entry/0/time`) falls under `pattern`
/// (`PID-3`, `$..time`, `/entry`).
fn matches(pattern: &str, key: &str) -> bool {
    if let Some(name) = pattern.strip_prefix("$..") {
        return key.split('/').any(|part| part == name);
    }
    let pattern = match pattern.strip_prefix('$') {
        Some(rest) => crate::expect::json_pointer(rest).unwrap_or_default(),
        None => pattern.to_string(),
    };
    key == pattern
        || key
            .strip_prefix(&pattern)
            .is_some_and(|rest| rest.starts_with(['.', '(', '/', '-', '[']))
}

impl Observed {
    /// What a target's result shows.
    pub fn of(result: &TargetResult) -> Observed {
        let answer = result
            .answer
            .as_ref()
            .map(flatten_answer)
            .unwrap_or_default();
        let downstream = parse(&result.downstream)
            .iter()
            .map(flatten_emission)
            .collect();
        let outcome = match &result.error {
            Some(error) => format!("error: {error}"),
            None => result.outcome.clone(),
        };
        Observed {
            outcome,
            answer,
            downstream,
        }
    }

    /// The differences from `new`, ignoring what `ignore` says.
    pub fn differences(&self, new: &Observed, ignore: &Ignore) -> Vec<Difference> {
        let mut out = Vec::new();
        if self.outcome != new.outcome {
            out.push(Difference {
                part: "outcome".into(),
                field: None,
                old: Some(self.outcome.clone()),
                new: Some(new.outcome.clone()),
            });
        }
        diff_fields("answer", &self.answer, &new.answer, ignore, &mut out);
        if self.downstream.len() != new.downstream.len() {
            out.push(Difference {
                part: "downstream".into(),
                field: Some("count".into()),
                old: Some(self.downstream.len().to_string()),
                new: Some(new.downstream.len().to_string()),
            });
        }
        for (i, (old, new)) in self.downstream.iter().zip(&new.downstream).enumerate() {
            diff_fields(&format!("downstream {}", i + 1), old, new, ignore, &mut out);
        }
        out
    }

    /// Every field that differs from `other`, for learning noise.
    pub fn varying(&self, other: &Observed) -> BTreeSet<String> {
        let mut out = Vec::new();
        let nothing = Ignore::default();
        diff_fields("", &self.answer, &other.answer, &nothing, &mut out);
        for (a, b) in self.downstream.iter().zip(&other.downstream) {
            diff_fields("", a, b, &nothing, &mut out);
        }
        out.into_iter().filter_map(|d| d.field).collect()
    }
}

fn diff_fields(
    part: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    ignore: &Ignore,
    out: &mut Vec<Difference>,
) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a != b && !ignore.ignores(key) {
            out.push(Difference {
                part: part.to_string(),
                field: Some(key.clone()),
                old: a.cloned(),
                new: b.cloned(),
            });
        }
    }
}

fn flatten_answer(answer: &Answer) -> BTreeMap<String, String> {
    match answer {
        Answer::Ack(text) => flatten_hl7(text.as_bytes()),
        Answer::Http { .. } | Answer::Folder { .. } => flatten_bytes(&answer_text(answer)),
    }
}

/// A sink's line: a forwarded HL7 message by its fields, a ROR operation
/// by its JSON leaves.
fn flatten_emission(line: &Json) -> BTreeMap<String, String> {
    match line["body"].as_str() {
        Some(body) => flatten_hl7(body.as_bytes()),
        None => flatten_json(line),
    }
}

/// HL7 or JSON by the first byte; anything else as one value.
fn flatten_bytes(bytes: &[u8]) -> BTreeMap<String, String> {
    if bytes.starts_with(b"MSH") {
        return flatten_hl7(bytes);
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(json) => flatten_json(&json),
        Err(_) => [(
            "body".to_string(),
            String::from_utf8_lossy(bytes).into_owned(),
        )]
        .into(),
    }
}

/// Every non-empty value of a message by its path: `PID-3(2).4`, with
/// `(1)`, `.1` and `.1.1` left out.
pub fn flatten_hl7(text: &[u8]) -> BTreeMap<String, String> {
    let Ok(message) = Message::parse_with(text, ParseOptions::lenient()) else {
        return [(
            "body".to_string(),
            String::from_utf8_lossy(text).into_owned(),
        )]
        .into();
    };
    let d = message.delimiters();
    let mut out = BTreeMap::new();
    let mut occurrences: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for segment in message.segments() {
        let id = segment.id().to_vec();
        let n = occurrences.entry(id.clone()).or_default();
        *n += 1;
        let name = String::from_utf8_lossy(&id).into_owned();
        let name = if *n == 1 {
            name
        } else {
            format!("{name}[{n}]")
        };
        for f in 1..=segment.field_count() {
            let raw = segment.field(f).raw();
            if segment.field(0).raw() == b"MSH" && f <= 2 {
                out.insert(
                    format!("{name}-{f}"),
                    String::from_utf8_lossy(raw).into_owned(),
                );
                continue;
            }
            leaves(
                &format!("{name}-{f}"),
                raw,
                [d.repetition, d.component, d.subcomponent],
                &mut out,
            );
        }
    }
    out
}

/// The non-empty repetitions, components and subcomponents of a field.
fn leaves(field: &str, raw: &[u8], [rep, comp, sub]: [u8; 3], out: &mut BTreeMap<String, String>) {
    for (r, repetition) in raw.split(|b| *b == rep).enumerate() {
        for (c, component) in repetition.split(|b| *b == comp).enumerate() {
            let parts: Vec<&[u8]> = if sub == comp {
                vec![component]
            } else {
                component.split(|b| *b == sub).collect()
            };
            for (s, value) in parts.into_iter().enumerate() {
                if value.is_empty() {
                    continue;
                }
                let mut key = field.to_string();
                if r > 0 {
                    key.push_str(&format!("({})", r + 1));
                }
                if c > 0 || s > 0 {
                    key.push_str(&format!(".{}", c + 1));
                }
                if s > 0 {
                    key.push_str(&format!(".{}", s + 1));
                }
                out.insert(key, String::from_utf8_lossy(value).into_owned());
            }
        }
    }
}

/// Every leaf of a JSON value by its pointer.
pub fn flatten_json(json: &Json) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(json, String::new(), &mut out);
    out
}

fn walk(json: &Json, at: String, out: &mut BTreeMap<String, String>) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                walk(
                    value,
                    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Json::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                walk(value, format!("{at}/{i}"), out);
            }
        }
        Json::String(text) => {
            out.insert(at, text.clone());
        }
        Json::Null => {}
        other => {
            out.insert(at, other.to_string());
        }
    }
}

/// One case compared.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub name: String,
    /// `same`, `different`, or `expected` (the book says why it differs).
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_difference: Option<String>,
    pub differences: Vec<Difference>,
}

/// Compares each case's result on the old target with the new one.
pub fn compare(
    old: &[CaseResult],
    new: &[CaseResult],
    targets: (&str, &str),
    expected: &[Option<String>],
    ignore: &Ignore,
) -> Vec<Compared> {
    old.iter()
        .zip(new)
        .zip(expected)
        .map(|((old, new), expected)| {
            let observed = |case: &CaseResult, target: &str| {
                case.targets
                    .get(target)
                    .map(Observed::of)
                    .unwrap_or_default()
            };
            let differences =
                observed(old, targets.0).differences(&observed(new, targets.1), ignore);
            let verdict = match (differences.is_empty(), expected.is_some()) {
                (true, _) => "same",
                (false, true) => "expected",
                (false, false) => "different",
            };
            Compared {
                name: old.name.clone(),
                verdict,
                expect_difference: expected.clone(),
                differences,
            }
        })
        .collect()
}

/// A comparison's whole result.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub book: String,
    pub old: String,
    pub new: String,
    /// Fields learned as noise (`--learn-noise`).
    pub noise: Vec<String>,
    pub duration_ms: f64,
    pub cases: Vec<Compared>,
}

impl CompareReport {
    /// Cases that differ without the book saying why.
    pub fn unexpected(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.verdict == "different")
            .count()
    }
}

/// Runs every case of `book` against the `old` target and the `new` one
/// (the old one twice first with `learn_noise`) and compares them.
pub async fn compare_targets(
    book: &Book,
    ends: &Ends,
    (old, new): (&str, &str),
    learn_noise: bool,
) -> CompareReport {
    let started = tokio::time::Instant::now();
    let against = |target: &str| RunOptions {
        on_case: None,
        watch_sinks: true,
        only: Some(target.to_string()),
    };
    let mut ignore = Ignore::new(&book.ignore);
    let old_run = run(book, ends, &against(old)).await;
    if learn_noise {
        let again = run(book, ends, &against(old)).await;
        for (first, second) in old_run.cases.iter().zip(&again.cases) {
            let observed =
                |case: &CaseResult| case.targets.get(old).map(Observed::of).unwrap_or_default();
            let varying = observed(first).varying(&observed(second));
            let learned: Vec<String> = varying
                .into_iter()
                .filter(|k| !ignore.by_pattern(k))
                .collect();
            ignore.noise.extend(learned);
        }
    }
    // The old target's connections are no longer needed (unless it is
    // the new one too).
    if old != new {
        if let Some(target) = ends.targets.get(old) {
            target.close_idle();
        }
    }
    let new_run = run(book, ends, &against(new)).await;
    let expected: Vec<Option<String>> = book
        .cases
        .iter()
        .map(|c| c.expect_difference.clone())
        .collect();
    CompareReport {
        book: book.name.clone(),
        old: old.to_string(),
        new: new.to_string(),
        noise: ignore.noise.iter().cloned().collect(),
        cases: compare(
            &old_run.cases,
            &new_run.cases,
            (old, new),
            &expected,
            &ignore,
        ),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_empty_parts_equal_absent_ones() {
        let a = flatten_hl7(
            b"MSH|^~\\&|A|B|||20260101||ADT^A01|1|P|2.5\rPID|1||123^^^CHU~456||DOE^JOHN^^\r",
        );
        let b = flatten_hl7(
            b"MSH|^~\\&|A|B|||20260102||ADT^A01^|2|P|2.5|||\rPID|1||123^^^CHU~456^||DOE^JOHN|||\r",
        );
        let ignore = Ignore::new(&[]);
        let old = Observed {
            answer: a.clone(),
            ..Observed::default()
        };
        let new = Observed {
            answer: b,
            ..Observed::default()
        };
        assert_eq!(old.differences(&new, &ignore), []);
        assert_eq!(a["PID-3(2)"], "456");
        assert_eq!(a["PID-5.2"], "JOHN");
    }

    #[test]
    fn a_changed_field_is_reported_unless_ignored_or_noise() {
        let old = Observed {
            answer: flatten_hl7(b"MSH|^~\\&|A|B\rPID|1||123\rPV1|1|I|CARDIO\r"),
            ..Observed::default()
        };
        let new = Observed {
            answer: flatten_hl7(b"MSH|^~\\&|A|B\rPID|1||123\rPV1|1|I|NEURO\r"),
            ..Observed::default()
        };
        let mut ignore = Ignore::new(&[]);
        let found = old.differences(&new, &ignore);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field.as_deref(), Some("PV1-3"));
        ignore.noise.insert("PV1-3".into());
        assert!(old.differences(&new, &ignore).is_empty());
        assert!(old
            .differences(&new, &Ignore::new(&["PV1".into()]))
            .is_empty());
    }

    #[test]
    fn fields_that_vary_between_two_runs_are_learned() {
        let first = Observed {
            answer: flatten_json(&serde_json::json!({"n": 3, "nonce": "a1"})),
            ..Observed::default()
        };
        let second = Observed {
            answer: flatten_json(&serde_json::json!({"n": 3, "nonce": "b2"})),
            ..Observed::default()
        };
        let learned = first.varying(&second);
        assert_eq!(learned.into_iter().collect::<Vec<_>>(), ["/nonce"]);
    }

    #[test]
    fn json_times_are_ignored_by_default() {
        let old =
            flatten_json(&serde_json::json!({"unit": "1/A", "time": "t1", "capacity": {"n": 3}}));
        let new =
            flatten_json(&serde_json::json!({"unit": "1/A", "time": "t2", "capacity": {"n": 4}}));
        let found = Observed {
            downstream: vec![old],
            ..Observed::default()
        }
        .differences(
            &Observed {
                downstream: vec![new],
                ..Observed::default()
            },
            &Ignore::new(&[]),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field.as_deref(), Some("/capacity/n"));
    }
}
