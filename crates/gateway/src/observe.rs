//! Flow observation: who talked to whom over which route, how often,
//! encrypted or not, and how it ended. Counted in memory where traffic
//! happens, added to the journal's `flows` table every few seconds.
//!
//! The message path pays a hash, an uncontended lock and an increment:
//! each thread counts into its own shard (no lock is shared between
//! worker threads), and an aggregate's key is compared with the borrowed
//! fields of the observation, so a flow already seen allocates nothing.
//! Metadata only: parties, message type, TLS flags and outcome labels;
//! no field of a message body is ever read here.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use guichet_hl7::Header;
use guichet_journal::{FlowCount, FlowKey, Journal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::RouteSpec;

/// Shards of the in-memory aggregates: threads beyond this share one.
const SHARDS: usize = 16;

/// Rows kept for the next flush while the journal cannot take them; past
/// this, the oldest figures are dropped (and said so) rather than memory.
const MAX_PENDING: usize = 100_000;

/// The in-memory aggregates of every route of a gateway.
pub struct Observer {
    /// Empty when observation is off: recording is then a length check.
    shards: Box<[Mutex<Shard>]>,
    /// Hashes keys with a seed drawn for this process: parties come from
    /// MSH fields a sender writes, so their hashes must not be chosen.
    hasher: foldhash::fast::RandomState,
}

/// Aggregates by the hash of their key; equal hashes keep a short list.
type Shard = HashMap<u64, Vec<Tally>, BuildHasherDefault<Prehashed>>;

/// One aggregate: its key, and a count per outcome.
struct Tally {
    key: FlowKey,
    outcomes: Vec<Count>,
}

struct Count {
    outcome: &'static str,
    n: u64,
    /// Kept as taken: the conversion to milliseconds waits for the take.
    first: SystemTime,
    last: SystemTime,
}

/// What a connection's observations share: the route's kind and whether
/// each side is encrypted, fixed for the connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowEnds {
    pub kind: &'static str,
    pub tls_in: bool,
    pub tls_out: bool,
}

/// A party as observed, in two parts (`MSH-3`, `MSH-4`): shown as
/// `first^second`, or `first` alone when the second is empty.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Party<'a>(pub &'a str, pub &'a str);

/// One observation's key, borrowed from where it was made.
#[derive(Clone, Copy)]
pub(crate) struct Seen<'a> {
    pub route: &'a str,
    pub direction: &'static str,
    pub ends: FlowEnds,
    pub application: &'a str,
    pub source: Party<'a>,
    pub target: Party<'a>,
    pub message_type: &'a str,
}

/// Through the gateway in one go (tcp, http, a relayed message).
pub(crate) const RELAY: &str = "relay";
/// Into a store-and-forward route's journal.
pub(crate) const IN: &str = "in";
/// Delivered from the journal (store-and-forward, folder routes): each
/// message or file once, when its delivery ends (accepted, or given up).
pub(crate) const OUT: &str = "out";
/// A delivery attempt from a store-and-forward journal that failed and is
/// tried again: counts attempts, not messages (the message counts under
/// [`OUT`] once it is delivered or given up).
pub(crate) const RETRY: &str = "retry";

impl Observer {
    /// An observer that counts.
    pub fn new() -> Observer {
        Observer {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// An observer that counts nothing (observation off).
    pub fn off() -> Observer {
        Observer {
            shards: Box::new([]),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// Counts one observation that ended in `outcome` at `at`.
    pub(crate) fn record(&self, seen: &Seen<'_>, outcome: &'static str, at: SystemTime) {
        let Some(shard) = self.shards.get(shard_index() % SHARDS) else {
            return;
        };
        let hash = seen.hash(&self.hasher);
        let Ok(mut shard) = shard.lock() else {
            return;
        };
        let tallies = shard.entry(hash).or_default();
        match tallies.iter_mut().find(|t| seen.is(&t.key)) {
            Some(tally) => tally.add(outcome, at),
            None => tallies.push(Tally {
                key: seen.key(),
                outcomes: vec![Count::new(outcome, at)],
            }),
        }
    }

    /// Counts one HL7 message (or a frame without MSH) of an `mllp` route.
    pub(crate) fn message(
        &self,
        base: &Seen<'_>,
        header: Option<&Header>,
        outcome: &'static str,
        at: SystemTime,
    ) {
        if !self.enabled() {
            return;
        }
        let Some(h) = header else {
            return self.record(base, outcome, at);
        };
        // Field by field: copying `*base` whole costs a memcpy call.
        let seen = Seen {
            route: base.route,
            direction: base.direction,
            ends: base.ends,
            application: base.application,
            source: Party(first(&h.sending_application), first(&h.sending_facility)),
            target: Party(
                first(&h.receiving_application),
                first(&h.receiving_facility),
            ),
            message_type: event_type(&h.message_type),
        };
        self.record(&seen, outcome, at);
    }

    /// Takes every count made since the last take, one row per key and
    /// outcome.
    pub fn take(&self) -> Vec<FlowCount> {
        let mut merged: BTreeMap<(FlowKey, &'static str), FlowCount> = BTreeMap::new();
        for shard in self.shards.iter() {
            let taken = match shard.lock() {
                Ok(mut shard) => std::mem::take(&mut *shard),
                Err(_) => continue,
            };
            for tally in taken.into_values().flatten() {
                for count in tally.outcomes {
                    merge(&mut merged, &tally.key, count);
                }
            }
        }
        merged.into_values().collect()
    }
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new()
    }
}

fn merge(merged: &mut BTreeMap<(FlowKey, &'static str), FlowCount>, key: &FlowKey, c: Count) {
    let (first_ms, last_ms) = (unix_ms(c.first), unix_ms(c.last));
    let row = merged
        .entry((key.clone(), c.outcome))
        .or_insert_with(|| FlowCount {
            key: key.clone(),
            outcome: c.outcome.to_string(),
            count: 0,
            first_ms,
            last_ms,
        });
    row.count += c.n;
    row.first_ms = row.first_ms.min(first_ms);
    row.last_ms = row.last_ms.max(last_ms);
}

impl Tally {
    fn add(&mut self, outcome: &'static str, at: SystemTime) {
        match self.outcomes.iter_mut().find(|c| same(c.outcome, outcome)) {
            Some(count) => {
                count.n += 1;
                count.first = count.first.min(at);
                count.last = count.last.max(at);
            }
            None => self.outcomes.push(Count::new(outcome, at)),
        }
    }
}

impl Count {
    fn new(outcome: &'static str, at: SystemTime) -> Count {
        Count {
            outcome,
            n: 1,
            first: at,
            last: at,
        }
    }
}

impl FlowEnds {
    /// The kind and TLS sides of a listening route.
    pub(crate) fn of(spec: &RouteSpec) -> FlowEnds {
        FlowEnds {
            kind: spec.kind.as_str(),
            tls_in: spec.listen_tls.is_some(),
            tls_out: spec.forward_tls.is_some(),
        }
    }
}

impl Party<'_> {
    fn is(&self, shown: &str) -> bool {
        let (first, second) = (self.0.as_bytes(), self.1.as_bytes());
        let shown = shown.as_bytes();
        if second.is_empty() {
            return shown == first;
        }
        shown.len() == first.len() + 1 + second.len()
            && shown[first.len()] == b'^'
            && shown[..first.len()] == *first
            && shown[first.len() + 1..] == *second
    }

    fn shown(&self) -> String {
        match *self {
            Party(first, "") => first.to_string(),
            Party(first, second) => format!("{first}^{second}"),
        }
    }
}

impl Seen<'_> {
    /// Hashes the fields that most often tell flows apart: the sending and
    /// receiving applications and the message type. The rest (route,
    /// direction, kind, TLS sides, listed application, facilities) rarely
    /// differs between flows that share these, and
    /// [`Seen::is`] compares every field, so leaving them out only saves
    /// the message path some hashing.
    fn hash(&self, hasher: &impl BuildHasher) -> u64 {
        hasher.hash_one((self.source.0, self.target.0, self.message_type))
    }

    fn is(&self, key: &FlowKey) -> bool {
        key.route == self.route
            && key.direction == self.direction
            && key.kind == self.ends.kind
            && key.tls_in == self.ends.tls_in
            && key.tls_out == self.ends.tls_out
            && key.application == self.application
            && key.message_type == self.message_type
            && self.source.is(&key.source)
            && self.target.is(&key.target)
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            route: self.route.to_string(),
            kind: self.ends.kind.to_string(),
            direction: self.direction.to_string(),
            application: self.application.to_string(),
            source: self.source.shown(),
            target: self.target.shown(),
            message_type: self.message_type.to_string(),
            tls_in: self.ends.tls_in,
            tls_out: self.ends.tls_out,
        }
    }
}

/// Whether two outcome labels are equal: both `&'static str`, most often
/// the same one, so the address is compared before the bytes.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// An HD's first component: `EAI` of `EAI^1.2.3^ISO`.
fn first(hd: &str) -> &str {
    before_caret(hd, 0)
}

/// MSH-9's message code and trigger event: `ADT^A01` of `ADT^A01^ADT_A01`.
fn event_type(msh9: &str) -> &str {
    let code = before_caret(msh9, 0);
    before_caret(msh9, (code.len() + 1).min(msh9.len()))
}

/// `s` up to the first `^` at or after `from` (all of it if none). MSH
/// fields are a few bytes long: a plain scan of the bytes costs a tenth
/// of a `str` pattern search on the message path.
fn before_caret(s: &str, from: usize) -> &str {
    let end = s.as_bytes()[from..]
        .iter()
        .position(|&b| b == b'^')
        .map_or(s.len(), |i| from + i);
    // `^` is ASCII, so `end` is a char boundary.
    &s[..end]
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This thread's shard: given out in turn to threads as they first count.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|s| *s)
}

/// The shard maps' keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Adds the counts to the journal every `every`, and once more when
/// `stop` fires. Counts the journal refused are kept for the next flush.
pub(crate) async fn flush_every(
    observer: Arc<Observer>,
    journal: Journal,
    every: Duration,
    stop: CancellationToken,
) {
    let mut pending: Vec<FlowCount> = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        pending = combine(pending, observer.take());
        pending = flush(&journal, pending).await;
        if last {
            return;
        }
    }
}

/// Rows kept from a failed flush, and new ones: one row per key and
/// outcome, as one flush must give them.
fn combine(pending: Vec<FlowCount>, new: Vec<FlowCount>) -> Vec<FlowCount> {
    if pending.is_empty() {
        return new;
    }
    let mut by: BTreeMap<(FlowKey, String), FlowCount> = BTreeMap::new();
    for row in pending.into_iter().chain(new) {
        match by.entry((row.key.clone(), row.outcome.clone())) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(row);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let kept = o.get_mut();
                kept.count += row.count;
                kept.first_ms = kept.first_ms.min(row.first_ms);
                kept.last_ms = kept.last_ms.max(row.last_ms);
            }
        }
    }
    by.into_values().collect()
}

/// Adds `counts`; gives back what is to be tried again.
async fn flush(journal: &Journal, counts: Vec<FlowCount>) -> Vec<FlowCount> {
    if counts.is_empty() {
        return counts;
    }
    let rows = counts.len();
    match journal.add_flows(counts.clone()).await {
        Ok(()) => {
            debug!(rows, "observed flows added to the journal");
            Vec::new()
        }
        Err(e) if rows > MAX_PENDING => {
            warn!(
                rows,
                "observed flows dropped: the journal refused them for too long: {e}"
            );
            Vec::new()
        }
        Err(e) => {
            warn!(rows, "observed flows kept for the next flush: {e}");
            counts
        }
    }
}

#[cfg(test)]
mod tests;
