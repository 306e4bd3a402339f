//! Running a book: each case against each of its targets, up to
//! `concurrency` at a time (a `sequence` case alone, in its place), the
//! answers and the sinks' new lines checked against the expectations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::book::{Book, Case};
use crate::expect::Answer;
use crate::sink::{parse, Belongs, Emission, Sink, Until, GRACE};
use crate::target::Target;

/// Told of each case as it ends, for progress.
pub type OnCase = Box<dyn Fn(&CaseResult) + Send + Sync>;

/// What the run is given beside the book.
#[derive(Default)]
pub struct RunOptions {
    pub on_case: Option<OnCase>,
    /// Keep every case's emissions, expected or not (`test compare`).
    pub watch_sinks: bool,
    /// Every case against this target only, whatever the book says (a
    /// side of a comparison).
    pub only: Option<String>,
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
    pub downstream: Vec<Emission>,
    /// The answer, kept for a comparison only: a run has checked it.
    #[serde(skip)]
    pub answer: Option<Answer>,
    /// How many of `failures` come first from the answer, kept when the
    /// case is checked again with late lines.
    #[serde(skip)]
    pub answer_failures: usize,
    /// Where the case's lines were looked for in the sink, for those that
    /// come late.
    #[serde(skip)]
    pub watched: Option<Watched>,
}

/// A case told apart from the others: where its lines begin in the sink,
/// and the lines it took. Those of its own that come once it has ended,
/// and that no other case took, are its too.
#[derive(Debug, Clone)]
pub struct Watched {
    from: usize,
    taken: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub source: String,
    pub status: Status,
    pub targets: Targets,
}

/// A case's results by target name, in name order: a vector the size of
/// the case's targets (most often one), where a map's node holds eleven.
/// Serialized as a map.
#[derive(Debug, Clone, Default)]
pub struct Targets(Vec<(String, TargetResult)>);

impl Targets {
    pub fn with_capacity(n: usize) -> Targets {
        Targets(Vec::with_capacity(n))
    }

    /// Adds (or replaces) the result on `name`, in name order.
    pub fn insert(&mut self, name: &str, result: TargetResult) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.0[i].1 = result,
            Err(i) => self.0.insert(i, (name.to_string(), result)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&TargetResult> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut TargetResult> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    pub fn iter(&self) -> TargetsIter<'_> {
        self.0.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn values(&self) -> impl Iterator<Item = &TargetResult> {
        self.0.iter().map(|(_, t)| t)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The results of a case by target name.
pub type TargetsIter<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, TargetResult)>,
    fn(&'a (String, TargetResult)) -> (&'a str, &'a TargetResult),
>;

impl<'a> IntoIterator for &'a Targets {
    type Item = (&'a str, &'a TargetResult);
    type IntoIter = TargetsIter<'a>;

    fn into_iter(self) -> TargetsIter<'a> {
        self.iter()
    }
}

impl Serialize for Targets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
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
        let mut results = futures_util::stream::iter(&group)
            .map(|&(i, case)| {
                let tag = format!("{run_id}-{:04}-{}", i + 1, file_name(case));
                async move { run_case(book, ends, case, &tag, options).await }
            })
            .buffered(width)
            .collect::<Vec<_>>()
            .await;
        take_late(book, ends, &group, &mut results).await;
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

async fn run_case(
    book: &Book,
    ends: &Ends,
    case: &Case,
    tag: &str,
    options: &RunOptions,
) -> CaseResult {
    let watch = options.watch_sinks;
    let names = match &options.only {
        Some(target) => vec![target.as_str()],
        None => book.targets_of(case),
    };
    let mut targets = Targets::with_capacity(names.len());
    for name in names {
        let result = match ends.targets.get(name) {
            Some(target) => {
                let sink = ends.sinks.get(name);
                on_target(book, target, sink, case, tag, watch).await
            }
            None => errored(format!("no target {name:?}"), 0.0),
        };
        targets.insert(name, result);
    }
    CaseResult {
        name: case.name.clone(),
        source: case.source.clone(),
        status: status(&targets),
        targets,
    }
}

fn status(targets: &Targets) -> Status {
    if targets.values().any(|t| t.error.is_some()) {
        Status::Error
    } else if targets.values().any(|t| !t.failures.is_empty()) {
        Status::Fail
    } else {
        Status::Pass
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
    let (emissions, told_apart) = match watched {
        Some(sink) => match wait_lines(book, sink, case, (from, started), watch, alone).await {
            Ok(taken) => taken,
            Err(e) => return errored(e, ms(started)),
        },
        None => (Vec::new(), None),
    };
    let mut failures = case.expect.check_answer(&answer);
    let answer_failures = failures.len();
    failures.extend(case.expect.check_downstream(&parse(&emissions)));
    TargetResult {
        outcome: outcome(&answer),
        duration_ms: ms(started),
        failures,
        error: None,
        downstream: emissions,
        answer: watch.then_some(answer),
        answer_failures,
        watched: told_apart,
    }
}

/// The case's lines: once the count it expects has come (a run), or once
/// it has come or the sink stays quiet for `settle` (a comparison: the
/// other engine may send fewer), or, expecting no count, once the sink
/// stays quiet. A case that runs alone then waits for [`GRACE`] more; the
/// others are looked at again when their group ends ([`take_late`]).
async fn wait_lines(
    book: &Book,
    sink: &Sink,
    case: &Case,
    (from, started): (usize, Instant),
    watch: bool,
    alone: bool,
) -> Result<(Vec<Emission>, Option<Watched>), String> {
    let count = case.expect.downstream.as_ref().and_then(|d| d.count);
    let until = Until {
        count,
        quiet: (count.is_none() || watch).then_some(book.settle),
        deadline: started + book.timeout,
    };
    let mut lines = sink.emissions(from, &case.belongs, &until).await?;
    if alone && count.is_some() {
        let grace = Until {
            count: None,
            quiet: Some(GRACE),
            ..until
        };
        lines = sink.emissions(from, &case.belongs, &grace).await?;
    }
    let (taken, lines): (Vec<usize>, Vec<Emission>) = lines.into_iter().unzip();
    Ok((lines, (!alone).then_some(Watched { from, taken })))
}

/// Once the group's sinks have stayed quiet for [`GRACE`], each case told
/// apart takes the lines of its own that came after it ended and that no
/// case of the group took, and is checked again.
async fn take_late(book: &Book, ends: &Ends, group: &[(usize, &Case)], results: &mut [CaseResult]) {
    for (name, sink) in &ends.sinks {
        let watched: Vec<(&Case, &Watched)> = group
            .iter()
            .zip(results.iter())
            .filter_map(|((_, case), r)| Some((*case, r.targets.get(name)?.watched.as_ref()?)))
            .collect();
        let Some(from) = watched.iter().map(|(_, w)| w.from).min() else {
            continue;
        };
        let belongs: Vec<&Belongs> = watched.iter().map(|(case, _)| &case.belongs).collect();
        let deadline = Instant::now() + book.timeout;
        if sink.quiet(from, &belongs, GRACE, deadline).await.is_err() {
            continue;
        }
        let claimed: BTreeSet<usize> = watched
            .iter()
            .flat_map(|(_, w)| w.taken.iter().copied())
            .collect();
        for ((_, case), result) in group.iter().zip(results.iter_mut()) {
            let Some(target) = result.targets.get_mut(name) else {
                continue;
            };
            let Some(watched) = &target.watched else {
                continue;
            };
            let Ok(lines) = sink.belonging(watched.from, &case.belongs) else {
                continue;
            };
            let late = lines.into_iter().filter(|(at, _)| !claimed.contains(at));
            let before = target.downstream.len();
            target.downstream.extend(late.map(|(_, line)| line));
            if target.downstream.len() > before {
                recheck(case, target);
                result.status = status(&result.targets);
            }
        }
    }
}

/// The case's expectations of its lines checked again, after those of
/// its answer.
fn recheck(case: &Case, target: &mut TargetResult) {
    target.failures.truncate(target.answer_failures);
    let downstream = case.expect.check_downstream(&parse(&target.downstream));
    target.failures.extend(downstream);
}

fn errored(error: String, duration_ms: f64) -> TargetResult {
    TargetResult {
        outcome: "error".into(),
        duration_ms,
        failures: Vec::new(),
        error: Some(error),
        downstream: Vec::new(),
        answer: None,
        answer_failures: 0,
        watched: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_s_targets_are_in_name_order_and_serialized_as_a_map() {
        let mut targets = Targets::with_capacity(2);
        targets.insert("old", errored("down".into(), 1.0));
        targets.insert("new", errored("refused".into(), 2.0));
        targets.insert("old", errored("still down".into(), 3.0));
        let names: Vec<&str> = targets.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["new", "old"]);
        assert_eq!(
            targets.get("old").and_then(|t| t.error.as_deref()),
            Some("still down")
        );
        let json = serde_json::to_value(&targets).unwrap_or_default();
        assert_eq!(json["new"]["error"], "refused");
        assert_eq!(json["old"]["outcome"], "error");
    }
}
