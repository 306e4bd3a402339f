//! One group of requests as one transaction, in few round trips.
//!
//! Statements are sent in rounds: everything that does not depend on an
//! answer goes in the current round, and a round is awaited only when a
//! later statement depends on it. A run of consecutive ingests is stored
//! by one `INSERT`; when some of its messages ask for duplicate detection,
//! the run first needs the database's answer for them (one more round).
//! So a group of ingests costs one round trip, or two with duplicate
//! detection, and the COMMIT rides in the last round: when a statement
//! fails, the server answers that COMMIT by rolling back.

use std::ops::Range;

use tokio_postgres::Client;

use super::ingest::Plan;
use super::ops::{self, Output, Statements, Step};
use super::pipeline::join_in_order;
use super::request::{Done, Op, Request};
use super::session::describe;
use crate::{JournalError, MessageId, NewMessage};

/// Why a group was not committed.
pub(super) enum Failure {
    /// The transaction failed and was rolled back; the connection is fine.
    Aborted(String),
    /// The connection is gone (or in an unknown state): the outcome of an
    /// interrupted commit is unknown, so nothing is reported as stored.
    Lost(String),
}

pub(super) type Answers = Vec<Result<Done, JournalError>>;

/// Why a statement's output could not be given to the requests it
/// answers: the server and this code disagree, so nothing is trusted.
#[derive(Debug, thiserror::Error)]
enum Unfiled {
    #[error("a statement answered something unexpected")]
    Unexpected,
    #[error("the inserted rows' ids do not follow the run's order")]
    OutOfOrder,
}

/// What to do with a step's output.
enum Slot {
    Ignore,
    /// The COMMIT: once it is sent, a failure to read the answers leaves
    /// the outcome unknown.
    Commit,
    /// The answer of request `i`.
    Answer(usize),
    /// The database's duplicate answers for the run being planned.
    Earlier,
    /// The ids of the run of requests `requests`, planned by `plan`.
    Inserted {
        requests: Range<usize>,
        plan: Plan,
    },
    /// The messages found by the run of outcomes `requests`.
    Recorded(Range<usize>),
}

/// A group's transaction under way.
struct Group<'a> {
    client: &'a Client,
    statements: &'a Statements,
    requests: &'a [Request],
    round: Vec<(Slot, Step<'a>)>,
    answers: Vec<Option<Result<Done, JournalError>>>,
    earlier: Vec<Option<MessageId>>,
}

/// Runs `requests` in one transaction; every answer, or why none.
pub(super) async fn transaction(
    client: &Client,
    statements: &Statements,
    requests: &[Request],
) -> Result<Answers, Failure> {
    let mut group = Group {
        client,
        statements,
        requests,
        round: Vec::new(),
        answers: requests.iter().map(|_| None).collect(),
        earlier: Vec::new(),
    };
    let lazy = requests
        .iter()
        .all(|request| request.op.can_commit_lazily());
    group.send(Slot::Ignore, ops::begin(client, lazy));
    if let Some(locks) = ops::dedup_locks(client, statements, requests.iter().map(|r| &r.op)) {
        group.send(Slot::Ignore, locks);
    }
    let mut next = 0;
    while next < requests.len() {
        next = match (
            ingest_run_end(requests, next),
            record_run_end(requests, next),
        ) {
            (end, _) if end > next => group.ingest(next..end).await?,
            (_, end) if end > next + 1 => group.records(next..end),
            _ => group.request(next),
        };
    }
    group.send(Slot::Commit, ops::commit(client));
    group.flush().await?;
    group.finish()
}

/// The end of the run of ingests starting at `start` (`start` if none).
fn ingest_run_end(requests: &[Request], start: usize) -> usize {
    let run = requests[start..]
        .iter()
        .take_while(|r| matches!(r.op, Op::Ingest(_)))
        .count();
    start + run
}

/// The end of the run of outcomes of distinct messages starting at
/// `start` (one statement records a message once).
fn record_run_end(requests: &[Request], start: usize) -> usize {
    let mut seen = std::collections::HashSet::new();
    let run = requests[start..]
        .iter()
        .take_while(|r| matches!(r.op, Op::Record { id, .. } if seen.insert(id)))
        .count();
    start + run
}

fn messages(requests: &[Request]) -> Vec<&NewMessage> {
    requests
        .iter()
        .flat_map(|request| match &request.op {
            Op::Ingest(batch) => batch.as_slice(),
            _ => &[],
        })
        .collect()
}

impl<'a> Group<'a> {
    fn send(&mut self, slot: Slot, step: Step<'a>) {
        self.round.push((slot, step));
    }

    /// Queues request `i`'s statement; returns the next request's index.
    fn request(&mut self, i: usize) -> usize {
        let step = ops::request(self.client, self.statements, &self.requests[i].op);
        self.send(Slot::Answer(i), step);
        i + 1
    }

    /// Queues the statement of a run of outcomes; returns the index after it.
    fn records(&mut self, run: Range<usize>) -> usize {
        let outcomes: Vec<_> = self.requests[run.clone()]
            .iter()
            .filter_map(|request| match &request.op {
                Op::Record { id, outcome } => Some((*id, outcome)),
                _ => None,
            })
            .collect();
        let step = ops::record_run(self.client, self.statements, &outcomes);
        let end = run.end;
        self.send(Slot::Recorded(run), step);
        end
    }

    /// Queues the insert of a run of ingests, after awaiting the duplicate
    /// lookup if the run needs one. Returns the index after the run.
    async fn ingest(&mut self, run: Range<usize>) -> Result<usize, Failure> {
        let requests = self.requests;
        let messages = messages(&requests[run.clone()]);
        self.earlier.clear();
        if messages.iter().any(|m| m.dedup_since_ms.is_some()) {
            self.send(
                Slot::Earlier,
                ops::earlier(self.client, self.statements, &messages),
            );
            self.flush().await?;
        }
        let plan = Plan::new(&messages, &self.earlier);
        let step = ops::insert_run(self.client, self.statements, &plan.inserts(&messages));
        let end = run.end;
        self.send(
            Slot::Inserted {
                requests: run,
                plan,
            },
            step,
        );
        Ok(end)
    }

    /// Sends the round and files its answers. A statement that fails
    /// means the transaction did not commit (the server answers a COMMIT
    /// after a failure by rolling back): it is rolled back, or the
    /// connection counts as lost if that cannot be done.
    async fn flush(&mut self) -> Result<(), Failure> {
        let (slots, steps): (Vec<Slot>, Vec<Step<'a>>) =
            std::mem::take(&mut self.round).into_iter().unzip();
        let commits = slots.iter().any(|slot| matches!(slot, Slot::Commit));
        let outputs = join_in_order(steps).await;
        let (mut failed, mut unfiled) = (None, None);
        for (slot, output) in slots.into_iter().zip(outputs) {
            match output {
                Ok(output) => {
                    if let Err(reason) = self.file(slot, output) {
                        unfiled.get_or_insert(reason);
                    }
                }
                Err(e) => {
                    failed.get_or_insert(describe(&e));
                }
            }
        }
        match (failed, unfiled) {
            (Some(reason), _) => Err(abort(self.client, reason).await),
            (None, Some(reason)) if commits => {
                Err(Failure::Lost(format!("{reason}, after the commit")))
            }
            (None, Some(reason)) => Err(abort(self.client, reason.to_string()).await),
            (None, None) => Ok(()),
        }
    }

    fn file(&mut self, slot: Slot, output: Output) -> Result<(), Unfiled> {
        match (slot, output) {
            (Slot::Ignore | Slot::Commit, _) => {}
            (Slot::Answer(i), Output::Answer(answer)) => self.answers[i] = Some(answer),
            (Slot::Earlier, Output::Earlier(earlier)) => self.earlier = earlier,
            (Slot::Inserted { requests, plan }, Output::Inserted(ids)) => {
                self.file_run(requests, &plan, &ids)?
            }
            (Slot::Recorded(requests), Output::Recorded(found)) => {
                for i in requests {
                    let Op::Record { id, .. } = &self.requests[i].op else {
                        return Err(Unfiled::Unexpected);
                    };
                    self.answers[i] = Some(match found.contains(id) {
                        true => Ok(Done::Unit),
                        false => Err(JournalError::NotFound(*id)),
                    });
                }
            }
            _ => return Err(Unfiled::Unexpected),
        }
        Ok(())
    }

    /// Splits a run's outcomes between its requests.
    fn file_run(
        &mut self,
        requests: Range<usize>,
        plan: &Plan,
        ids: &[MessageId],
    ) -> Result<(), Unfiled> {
        let in_order = ids.windows(2).all(|w| w[0] < w[1]);
        let outcomes = plan.outcomes(ids).filter(|_| in_order);
        let mut outcomes = outcomes.ok_or(Unfiled::OutOfOrder)?.into_iter();
        for i in requests {
            let count = match &self.requests[i].op {
                Op::Ingest(batch) => batch.len(),
                _ => 0,
            };
            self.answers[i] = Some(Ok(Done::Ingested(outcomes.by_ref().take(count).collect())));
        }
        Ok(())
    }

    fn finish(self) -> Result<Answers, Failure> {
        self.answers
            .into_iter()
            .map(|answer| {
                answer.ok_or_else(|| {
                    Failure::Lost("a request got no answer, after the commit".into())
                })
            })
            .collect()
    }
}

/// Rolls back after a failure; a connection that cannot is treated as lost.
async fn abort(client: &Client, reason: String) -> Failure {
    if client.is_closed() {
        return Failure::Lost(reason);
    }
    match client.batch_execute("ROLLBACK").await {
        Ok(()) => Failure::Aborted(reason),
        Err(e) => Failure::Lost(format!("{reason}; then {}", describe(&e))),
    }
}
