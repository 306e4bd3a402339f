//! Running a book: each case against each of its targets, up to
//! `concurrency` at a time (a `sequence` case alone, in its place), the
//! answers and the sinks' new lines checked against the expectations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::book::{Book, Case};
use crate::expect::Answer;
use crate::sink::{Belongs, Sink};
use crate::target::Target;

/// Told of each case as it ends, for progress.
pub type OnCase = Box<dyn Fn(&CaseResult) + Send + Sync>;

/// What the run is given beside the book.
#[derive(Default)]
pub struct RunOptions {
    pub on_case: Option<OnCase>,
    /// Keep every case's emissions, expected or not (`test compare`).
    pub watch_sinks: bool,
}

/// A case's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// An expectation was not met.
    Fail,
    /// The case could not be run (no answer, a sink down, TLS refused).
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    /// The ACK code, the HTTP status, `done`/`rejected`, or `error`.
    pub outcome: String,
    pub duration_ms: f64,
    pub failures: Vec<String>,
    /// Why the case could not be run on this target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The sink's lines this case caused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<Json>,
    #[serde(skip)]
    pub answer: Option<Answer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub source: String,
    pub status: Status,
    pub targets: BTreeMap<String, TargetResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub book: String,
    pub started: String,
    pub duration_ms: f64,
    pub cases: Vec<CaseResult>,
}

impl RunReport {
    pub fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }
}

/// The targets and sinks of a run, by target name.
pub struct Ends {
    pub targets: BTreeMap<String, Arc<Target>>,
    pub sinks: BTreeMap<String, Arc<Sink>>,
}

/// Runs every case of `book`.
pub async fn run(book: &Book, ends: &Ends, options: &RunOptions) -> RunReport {
    let started = SystemTime::now();
    let clock = Instant::now();
    let run_id = format!(
        "{:x}",
        started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut cases = Vec::with_capacity(book.cases.len());
    for group in groups(&book.cases) {
        let width = if group.len() == 1 && group[0].1.sequence {
            1
        } else {
            book.concurrency
        };
        let results = futures_util::stream::iter(group)
            .map(|(i, case)| {
                let tag = format!("{run_id}-{:04}-{}", i + 1, file_name(case));
                async move { run_case(book, ends, case, &tag, options.watch_sinks).await }
            })
            .buffered(width)
            .collect::<Vec<_>>()
            .await;
        for result in results {
            if let Some(on_case) = &options.on_case {
                on_case(&result);
            }
            cases.push(result);
        }
    }
    RunReport {
        book: book.name.clone(),
        started: time::OffsetDateTime::from(started)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        duration_ms: clock.elapsed().as_secs_f64() * 1e3,
        cases,
    }
}

/// The cases cut at each `sequence` case, which stands alone.
fn groups(cases: &[Case]) -> Vec<Vec<(usize, &Case)>> {
    let mut groups: Vec<Vec<(usize, &Case)>> = vec![Vec::new()];
    for (i, case) in cases.iter().enumerate() {
        if case.sequence {
            groups.push(vec![(i, case)]);
            groups.push(Vec::new());
        } else if let Some(last) = groups.last_mut() {
            last.push((i, case));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// A name a drop folder accepts: the case's file name, or `case`.
fn file_name(case: &Case) -> String {
    let base = std::path::Path::new(&case.source)
        .file_name()
        .map_or_else(|| "case".to_string(), |n| n.to_string_lossy().into_owned());
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn run_case(book: &Book, ends: &Ends, case: &Case, tag: &str, watch: bool) -> CaseResult {
    let mut targets = BTreeMap::new();
    for name in book.targets_of(case) {
        let result = match ends.targets.get(name) {
            Some(target) => {
                let sink = ends.sinks.get(name);
                on_target(book, target, sink, case, tag, watch).await
            }
            None => errored(format!("no target {name:?}"), 0.0),
        };
        targets.insert(name.to_string(), result);
    }
    let status = if targets.values().any(|t| t.error.is_some()) {
        Status::Error
    } else if targets.values().any(|t| !t.failures.is_empty()) {
        Status::Fail
    } else {
        Status::Pass
    };
    CaseResult {
        name: case.name.clone(),
        source: case.source.clone(),
        status,
        targets,
    }
}

/// One case on one target; with downstream expectations, the sink is held
/// while it runs so the lines that come are this case's.
async fn on_target(
    book: &Book,
    target: &Target,
    sink: Option<&Arc<Sink>>,
    case: &Case,
    tag: &str,
    watch: bool,
) -> TargetResult {
    let started = Instant::now();
    let downstream = case.expect.downstream.as_ref();
    if downstream.is_some() && sink.is_none() {
        return errored(
            format!(
                "the case expects what reaches downstream, and target {:?} has no sink",
                target.name
            ),
            0.0,
        );
    }
    // Every case on a target with a sink may emit: one told apart by time
    // only runs alone.
    let wanted = downstream.is_some() || watch;
    let alone = wanted && case.belongs == Belongs::Window;
    let (_alone, _shared) = match sink {
        Some(sink) if alone => (Some(sink.alone().await), None),
        Some(sink) => (None, Some(sink.shared().await)),
        None => (None, None),
    };
    let watched = sink.filter(|_| wanted);
    let from = match watched.map(|s| s.written()).transpose() {
        Ok(len) => len.unwrap_or(0),
        Err(e) => return errored(e, ms(started)),
    };
    let answer = match target.send(case, tag, book.timeout).await {
        Ok(answer) => answer,
        Err(e) => return errored(e, ms(started)),
    };
    let mut failures = case.expect.check_answer(&answer);
    let mut emissions = Vec::new();
    if let Some(sink) = watched {
        // Comparing, the other engine may send fewer than expected: a quiet
        // sink ends the wait, not the expected count.
        let count = downstream.and_then(|d| d.count).filter(|_| !watch);
        let deadline = started + book.timeout;
        match sink
            .emissions(from, &case.belongs, count, book.settle, deadline)
            .await
        {
            Ok(lines) => emissions = lines,
            Err(e) => return errored(e, ms(started)),
        }
        failures.extend(case.expect.check_downstream(&emissions));
    }
    TargetResult {
        outcome: outcome(&answer),
        duration_ms: ms(started),
        failures,
        error: None,
        downstream: emissions,
        answer: Some(answer),
    }
}

fn errored(error: String, duration_ms: f64) -> TargetResult {
    TargetResult {
        outcome: "error".into(),
        duration_ms,
        failures: Vec::new(),
        error: Some(error),
        downstream: Vec::new(),
        answer: None,
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

/// The answer in a word: the ACK code, the HTTP status, the folder's.
fn outcome(answer: &Answer) -> String {
    match answer {
        Answer::Ack(text) => crate::expect::Path::parse("MSA-1")
            .ok()
            .and_then(|p| p.value_in(text.as_bytes()))
            .unwrap_or_else(|| "no MSA".into()),
        Answer::Http { status, .. } => status.to_string(),
        Answer::Folder { outcome, .. } => outcome.clone(),
    }
}
