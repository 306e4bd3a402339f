//! The ingest lanes' shared book: which lane takes an ingest, which
//! ingests have been answered, and below which id a message of this node
//! may still be committed.
//!
//! Several ingest lanes let one group's WAL flush overlap the next
//! group's insert. Their commits then come in any order, so three things
//! that one lane gave for free are kept here:
//! - **A sender's order.** An ingest goes to the lane that still holds an
//!   unanswered ingest of the same sender connection (route and peer
//!   address), else to the least busy lane. A sender's ingests are thus
//!   stored in call order, pipelined or not.
//! - **Ingests before bookkeeping.** A claim is applied only once every
//!   ingest queued before it has been answered: lanes answer out of
//!   order, so the count the other lane waits for is the length of the
//!   answered prefix ([`Lanes::applied`]).
//! - **No message skipped by a claim.** Ids come from one sequence and
//!   are drawn at insert time: a lane may commit id 7 after another
//!   committed id 8 and a claim took 8. A claim's cursor must not pass 7
//!   (see [`super::cursor`]). A group drawing ids after this node saw id
//!   `s` committed draws ids above `s`; so the lowest such `s` among the
//!   groups running during a claim bounds what the claim may have missed
//!   ([`Lanes::mark`], [`Lanes::floor_since`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use tokio::sync::watch;

use super::request::{Done, Op};
use crate::{JournalError, MessageId};

/// The book, shared by the store's handle and every lane.
pub(super) struct Lanes {
    book: Mutex<Book>,
    /// How many ingests, in queue order, have all been answered.
    applied: watch::Sender<u64>,
}

#[derive(Debug)]
struct Book {
    /// Ingests queued so far (the next one's number).
    queued: u64,
    /// Numbers of the ingests queued and not answered yet.
    unanswered: BTreeSet<u64>,
    /// Unanswered ingests per lane.
    loads: Vec<usize>,
    /// Sender connections with unanswered ingests: their lane and count.
    senders: HashMap<u64, (usize, usize)>,
    /// The highest id this node knows to be committed.
    seen: i64,
    /// Per lane, `seen` when its running group started (none: idle).
    running: Vec<Option<i64>>,
    /// Groups started so far, on every lane.
    starts: u64,
}

/// Where the ingest lanes stood when a claim was sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    starts: u64,
    seen: i64,
    running: Option<i64>,
}

/// An ingest as a lane's group knows it: its number and its sender.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    number: u64,
    sender: u64,
}

impl Lanes {
    pub(super) fn new(lanes: usize) -> (Lanes, watch::Receiver<u64>) {
        let (applied, follows) = watch::channel(0);
        let book = Book {
            queued: 0,
            unanswered: BTreeSet::new(),
            loads: vec![0; lanes],
            senders: HashMap::new(),
            seen: 0,
            running: vec![None; lanes],
            starts: 0,
        };
        let lanes = Lanes {
            book: Mutex::new(book),
            applied,
        };
        (lanes, follows)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an ingest: `send` puts it on the chosen lane's queue, given
    /// the lane and the ingest's number. Nothing is counted if it fails.
    pub(super) fn queue_ingest<E>(
        &self,
        sender: u64,
        send: impl FnOnce(usize, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut book = self.book();
        let lane = match book.senders.get(&sender) {
            Some(&(lane, _)) => lane,
            None => book.least_busy(),
        };
        let number = book.queued;
        send(lane, number)?;
        book.queued += 1;
        book.unanswered.insert(number);
        book.loads[lane] += 1;
        book.senders.entry(sender).or_insert((lane, 0)).1 += 1;
        Ok(())
    }

    /// Queues another request: `send` gets the number of ingests queued
    /// before it, which it must wait for.
    pub(super) fn queue_other<E>(&self, send: impl FnOnce(u64) -> Result<(), E>) -> Result<(), E> {
        let book = self.book();
        send(book.queued)
    }

    /// `lane` starts a group: it draws ids above what is committed now.
    pub(super) fn started(&self, lane: usize) {
        let mut book = self.book();
        book.running[lane] = Some(book.seen);
        book.starts += 1;
    }

    /// `lane`'s group is over: its ingests are answered, and the ids it
    /// answered are committed.
    pub(super) fn finished(&self, lane: usize, tickets: &[Ticket]) {
        let mut book = self.book();
        book.running[lane] = None;
        for ticket in tickets {
            book.unanswered.remove(&ticket.number);
            book.loads[lane] -= 1;
            if let Some(entry) = book.senders.get_mut(&ticket.sender) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    book.senders.remove(&ticket.sender);
                }
            }
        }
        let prefix = book.unanswered.first().copied().unwrap_or(book.queued);
        self.applied.send_if_modified(|applied| {
            let moved = *applied != prefix;
            *applied = prefix;
            moved
        });
    }

    /// Ids answered or claimed: committed, hence below any id drawn later.
    pub(super) fn saw(&self, id: MessageId) {
        let mut book = self.book();
        book.seen = book.seen.max(id.0);
    }

    /// The ids a committed group's ingests and claims answered.
    pub(super) fn saw_answers(&self, answers: &[Result<Done, JournalError>]) {
        let highest = answers
            .iter()
            .filter_map(|answer| match answer {
                Ok(Done::Ingested(ingested)) => ingested.iter().map(|i| i.id()).max(),
                Ok(Done::Claimed(claimed)) => claimed.iter().map(|c| c.id).max(),
                _ => None,
            })
            .max();
        if let Some(id) = highest {
            self.saw(id);
        }
    }

    /// To take just before a claim is sent.
    pub(super) fn mark(&self) -> Mark {
        let book = self.book();
        Mark {
            starts: book.starts,
            seen: book.seen,
            running: book.running.iter().flatten().min().copied(),
        }
    }

    /// After a claim marked with `mark` answered: the id at or below which
    /// every message of this node it did not see is already claimable by
    /// it, i.e. above which one may still commit (`None`: none may). A
    /// group running at the mark draws ids above its own start's `seen`;
    /// one started since, above the mark's.
    pub(super) fn floor_since(&self, mark: Mark) -> Option<MessageId> {
        let book = self.book();
        if book.running.len() == 1 {
            // One lane commits its groups one after another, in id order:
            // nothing below a claimed id can commit later.
            return None;
        }
        let started_since = book.starts != mark.starts;
        drop(book);
        let floor = match started_since {
            true => Some(mark.running.map_or(mark.seen, |r| r.min(mark.seen))),
            false => mark.running,
        };
        floor.map(MessageId)
    }
}

impl Book {
    /// The lane with the fewest unanswered ingests (the first of equals).
    fn least_busy(&self) -> usize {
        (0..self.loads.len())
            .min_by_key(|&lane| self.loads[lane])
            .unwrap_or(0)
    }
}

impl Ticket {
    pub(super) fn of(number: u64, op: &Op) -> Ticket {
        Ticket {
            number,
            sender: sender_of(op),
        }
    }
}

/// Which sender connection an ingest comes from (its first message's
/// route and peer address; a batch comes from one connection), hashed.
pub(super) fn sender_of(op: &Op) -> u64 {
    let mut hasher = DefaultHasher::new();
    if let Op::Ingest(batch) = op {
        if let Some(first) = batch.first() {
            first.route.hash(&mut hasher);
            first.peer_addr.hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Meta, NewMessage};

    fn ingest(peer: &str) -> Op {
        Op::Ingest(vec![NewMessage {
            route: "adt".into(),
            received_at_ms: 0,
            peer_app: None,
            peer_addr: peer.into(),
            dedup_key: "eai".into(),
            dedup_since_ms: None,
            meta: Meta::default(),
            body: Vec::new(),
            sealed: false,
        }])
    }

    fn queue(lanes: &Lanes, op: &Op) -> (usize, u64) {
        let mut got = (0, 0);
        lanes
            .queue_ingest::<()>(sender_of(op), |lane, number| {
                got = (lane, number);
                Ok(())
            })
            .unwrap();
        got
    }

    #[test]
    fn a_sender_stays_on_its_lane_while_it_waits_and_others_spread() {
        let (lanes, _) = Lanes::new(3);
        let (a, b) = (ingest("10.0.0.1:1"), ingest("10.0.0.2:1"));
        assert_eq!(queue(&lanes, &a), (0, 0));
        assert_eq!(queue(&lanes, &b), (1, 1));
        assert_eq!(queue(&lanes, &a), (0, 2));
        assert_eq!(queue(&lanes, &ingest("10.0.0.3:1")), (2, 3));
        lanes.finished(0, &[Ticket::of(0, &a), Ticket::of(2, &a)]);
        // a has nothing waiting any more: the least busy lane takes it
        assert_eq!(queue(&lanes, &a), (0, 4));
    }

    #[test]
    fn the_applied_count_is_the_answered_prefix() {
        let (lanes, follows) = Lanes::new(2);
        let (a, b) = (ingest("10.0.0.1:1"), ingest("10.0.0.2:1"));
        queue(&lanes, &a);
        queue(&lanes, &b);
        lanes.finished(1, &[Ticket::of(1, &b)]);
        assert_eq!(*follows.borrow(), 0);
        lanes.finished(0, &[Ticket::of(0, &a)]);
        assert_eq!(*follows.borrow(), 2);
    }

    #[test]
    fn the_floor_is_the_lowest_start_of_a_group_running_during_the_claim() {
        let (lanes, _) = Lanes::new(2);
        lanes.saw(MessageId(10));
        let idle = lanes.mark();
        assert_eq!(lanes.floor_since(idle), None);
        lanes.started(0);
        // a group started after the mark: it may draw anything above 10
        assert_eq!(lanes.floor_since(idle), Some(MessageId(10)));
        lanes.saw(MessageId(20));
        let busy = lanes.mark();
        lanes.finished(0, &[]);
        // it was running at the mark with 10 seen at its start
        assert_eq!(lanes.floor_since(busy), Some(MessageId(10)));
        let after = lanes.mark();
        assert_eq!(lanes.floor_since(after), None);
    }

    #[test]
    fn one_lane_has_no_floor() {
        let (lanes, _) = Lanes::new(1);
        lanes.saw(MessageId(10));
        lanes.started(0);
        let busy = lanes.mark();
        lanes.saw(MessageId(20));
        assert_eq!(lanes.floor_since(busy), None);
    }
}
