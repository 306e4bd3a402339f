//! The behaviour every journal backend must show, written once.
//!
//! A backend's module (`tests/sqlite.rs`, `tests/postgres.rs`) writes a
//! factory and calls the macro; `tests/tests.rs` declares `#[macro_use] mod
//! suite;` before the backends' modules:
//!
//! ```ignore
//! use crate::suite::{Harness, Skip};
//!
//! async fn fresh(test: &'static str) -> Result<Harness, Skip> {
//!     // one empty store per test; `test` names it (e.g. a schema name)
//!     Ok(Harness::from_spec(StoreSpec::Sqlite(path), temp_dir))
//! }
//!
//! journal_suite!(fresh);
//! ```
//!
//! Each case gets its own empty store and may open several [`Journal`]s
//! on it: two nodes sharing queues (leases), or a reopen after dropping
//! every handle (persistence). A factory that cannot reach its backend
//! returns [`Skip`]: the case prints `SKIPPED: <reason>` and passes.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use guichet_journal::{
    BodyKey, Filter, FlowCount, FlowKey, Ingested, Journal, JournalError, MessageId, MessageRecord,
    Meta, NewMessage, OpenOptions, Outcome, PruneReport, Replay, RouteStats, State, StoreSpec,
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Opener = Box<dyn Fn(OpenOptions) -> BoxFuture<Result<Journal, JournalError>> + Send + Sync>;
type Dumper = Box<dyn Fn() -> BoxFuture<Vec<u8>> + Send + Sync>;

/// Why a backend cannot be tested here (e.g. no PostgreSQL configured).
#[derive(Debug)]
pub struct Skip(pub String);

/// One empty store for one case, and the means to open it.
pub struct Harness {
    /// Opens a [`Journal`] on the case's store; every call reaches the
    /// same store (a second node, or a reopen).
    open: Opener,
    /// Every byte the store keeps at rest, for the check that sealed
    /// bodies leave no plaintext behind; `None` if the backend cannot say.
    dump: Option<Dumper>,
    /// Kept until the case ends: a temporary directory, a schema to drop.
    _guard: Box<dyn Any + Send>,
}

impl Harness {
    /// A store opened by `open`; `guard` lives as long as the case.
    pub fn new<F, Fut>(open: F, guard: impl Any + Send) -> Harness
    where
        F: Fn(OpenOptions) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Journal, JournalError>> + Send + 'static,
    {
        Harness {
            open: Box::new(move |options| Box::pin(open(options))),
            dump: None,
            _guard: Box::new(guard),
        }
    }

    /// A store opened with [`guichet_journal::open`] on `spec`.
    pub fn from_spec(spec: StoreSpec, guard: impl Any + Send) -> Harness {
        Harness::new(
            move |options| {
                let spec = spec.clone();
                async move { guichet_journal::open(&spec, options).await }
            },
            guard,
        )
    }

    /// Lets the sealing case read the raw bytes at rest.
    pub fn with_dump<F, Fut>(mut self, dump: F) -> Harness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        self.dump = Some(Box::new(move || Box::pin(dump())));
        self
    }

    /// A journal without a body key.
    pub async fn open(&self) -> Journal {
        self.open_with(OpenOptions::default()).await
    }

    pub async fn open_with(&self, options: OpenOptions) -> Journal {
        match (self.open)(options).await {
            Ok(journal) => journal,
            Err(e) => panic!("opening the journal under test failed: {e}"),
        }
    }

    /// The raw bytes at rest, if the backend can dump them.
    pub async fn dump(&self) -> Option<Vec<u8>> {
        match &self.dump {
            Some(dump) => Some(dump().await),
            None => None,
        }
    }
}

/// Expands to one `#[tokio::test]` per case of [`cases`], each on a store
/// from `$fresh: async fn(&'static str) -> Result<Harness, Skip>`.
/// Needs `#[macro_use] mod suite;` at the root of the test crate.
macro_rules! journal_suite {
    ($fresh:path) => {
        journal_suite!(@cases $fresh;
            ingest_then_claim_returns_identical_bodies_in_order,
            empty_ingest_stores_nothing,
            ids_increase_across_batches_and_routes,
            ids_are_not_reused_after_prune,
            duplicate_inside_window_is_not_stored_again,
            duplicate_outside_window_is_stored,
            duplicate_inside_one_batch,
            other_route_or_sender_is_not_a_duplicate,
            no_dedup_window_disables_detection,
            claim_respects_order_and_limit,
            claim_is_per_route,
            record_outcomes_set_state_attempts_and_codes,
            record_of_unknown_message_is_not_found,
            retry_keeps_head_of_line,
            dead_lets_the_queue_move_on,
            record_then_claim_in_call_order,
            record_many_records_each_in_call_order,
            recover_flags_redelivered,
            leases_are_exclusive_between_nodes,
            lease_expiry_lets_another_node_take_over,
            lease_release_frees_the_route,
            replay_one_puts_a_message_back_in_line,
            replay_one_of_unknown_message_is_not_found,
            replay_route_by_states,
            replay_after_prune_has_no_body,
            prune_never_touches_pending_messages,
            prune_removes_bodies_then_records_by_cutoffs,
            prune_works_through_many_rows,
            stats_per_route,
            list_is_newest_first_with_full_records,
            list_filters,
            list_message_type_matches_whole_components,
            list_limit_defaults_to_100,
            get_and_body_of_unknown_message,
            audit_is_accepted,
            flows_add_up_by_key_and_outcome,
            flows_persist_across_reopen,
            sealed_bodies_round_trip_and_leave_no_plaintext,
            persists_across_reopen,
            concurrent_ingest_from_32_tasks_stored_once_in_order,
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                match $fresh(stringify!($case)).await {
                    Ok(harness) => $crate::suite::cases::$case(harness).await,
                    Err($crate::suite::Skip(reason)) => println!("SKIPPED: {reason}"),
                }
            }
        )*
    };
}

/// Builders shared by the cases.
pub mod fixtures {
    use super::*;

    /// A message of `route` with control id `control_id`, received at
    /// `at_ms`, duplicate detection off. Its body holds bytes that a text
    /// column would mangle (NUL, MLLP framing bytes, invalid UTF-8).
    pub fn message(route: &str, control_id: &str, at_ms: i64) -> NewMessage {
        NewMessage {
            route: route.to_string(),
            received_at_ms: at_ms,
            peer_app: Some("eai".to_string()),
            peer_addr: "127.0.0.1:40000".to_string(),
            dedup_key: "eai".to_string(),
            dedup_since_ms: None,
            meta: meta("ADT^A01^ADT_A01", control_id),
            body: body(control_id),
            sealed: false,
        }
    }

    pub fn meta(message_type: &str, control_id: &str) -> Meta {
        Meta {
            sending_application: "EAI".to_string(),
            sending_facility: "CHU".to_string(),
            receiving_application: "DPI".to_string(),
            receiving_facility: "CHU".to_string(),
            message_type: message_type.to_string(),
            control_id: control_id.to_string(),
            version: "2.5".to_string(),
        }
    }

    pub fn body(control_id: &str) -> Vec<u8> {
        let mut body = format!(
            "MSH|^~\\&|EAI|CHU|DPI|CHU|20250101||ADT^A01^ADT_A01|{control_id}|P|2.5\r\
             PID|1||123456^^^CHU||DUPONT^JEAN\r"
        )
        .into_bytes();
        body.extend_from_slice(&[0x00, 0x0b, 0x1c, 0x0d, 0xff, 0xfe]);
        body
    }

    /// The same message, with duplicate detection from `since_ms`.
    pub fn deduped(mut message: NewMessage, since_ms: i64) -> NewMessage {
        message.dedup_since_ms = Some(since_ms);
        message
    }

    pub async fn ingest_one(journal: &Journal, message: NewMessage) -> Ingested {
        let mut out = journal.ingest(vec![message]).await.unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    /// Stores `message` and returns its new id.
    pub async fn store(journal: &Journal, message: NewMessage) -> MessageId {
        match ingest_one(journal, message).await {
            Ingested::Stored(id) => id,
            other => panic!("expected Stored, got {other:?}"),
        }
    }

    /// Stores `n` messages of `route` received at 1000, 1001, ...
    pub async fn store_n(journal: &Journal, route: &str, n: usize) -> Vec<MessageId> {
        let batch = (0..n)
            .map(|i| message(route, &format!("C{i}"), 1000 + i as i64))
            .collect();
        let stored = journal.ingest(batch).await.unwrap();
        stored.into_iter().map(Ingested::id).collect()
    }

    pub fn ids(claimed: &[guichet_journal::Claimed]) -> Vec<MessageId> {
        claimed.iter().map(|c| c.id).collect()
    }

    pub fn delivered(at_ms: i64) -> Outcome {
        Outcome::Delivered {
            ack_code: "AA".to_string(),
            at_ms,
        }
    }

    pub fn retry(next_attempt_at_ms: i64) -> Outcome {
        Outcome::Retry {
            error: "connection refused".to_string(),
            ack_code: None,
            next_attempt_at_ms,
        }
    }

    pub fn dead(at_ms: i64) -> Outcome {
        Outcome::Dead {
            error: "AE beyond retries".to_string(),
            ack_code: Some("AE".to_string()),
            at_ms,
        }
    }

    /// Claims `id` (it must be the route's next) and records `outcome`.
    pub async fn finish(journal: &Journal, route: &str, id: MessageId, outcome: Outcome) {
        let claimed = journal.claim(route, 1).await.unwrap();
        assert_eq!(ids(&claimed), vec![id]);
        journal.record(id, outcome).await.unwrap();
    }

    pub async fn state(journal: &Journal, id: MessageId) -> State {
        journal.get(id).await.unwrap().state
    }

    pub fn key() -> BodyKey {
        BodyKey::from_bytes(&[0x5a; 32]).unwrap()
    }

    pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    pub fn by_route(mut stats: Vec<RouteStats>) -> Vec<RouteStats> {
        stats.sort_by(|a, b| a.route.cmp(&b.route));
        stats
    }

    pub fn filter() -> Filter {
        Filter::default()
    }

    pub fn report(bodies_deleted: u64, records_deleted: u64) -> PruneReport {
        PruneReport {
            bodies_deleted,
            records_deleted,
        }
    }
}

/// The cases, one `async fn` each, named as in [`journal_suite`].
pub mod cases {
    use super::fixtures::*;
    use super::*;

    // ---- ingest and claim ----

    pub async fn ingest_then_claim_returns_identical_bodies_in_order(h: Harness) {
        let j = h.open().await;
        let mut sent: Vec<NewMessage> = (0..3)
            .map(|i| message("adt", &format!("C{i}"), 1000 + i))
            .collect();
        sent[1].body = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        sent[2].body = Vec::new();
        let stored = j.ingest(sent.clone()).await.unwrap();
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(
            ids(&claimed),
            stored.iter().map(|s| s.id()).collect::<Vec<_>>()
        );
        assert_eq!(claimed.len(), 3);
        for (c, m) in claimed.iter().zip(&sent) {
            assert_eq!(c.body, m.body);
            assert_eq!(c.route, "adt");
            assert_eq!(c.received_at_ms, m.received_at_ms);
            assert_eq!(c.meta, m.meta);
            assert!(!c.sealed);
            assert_eq!(c.attempts, 0);
            assert!(!c.redelivered);
            assert_eq!(c.next_attempt_at_ms, None);
            assert_eq!(state(&j, c.id).await, State::InFlight);
            assert_eq!(j.body(c.id).await.unwrap(), m.body);
            assert_eq!(
                j.get(c.id).await.unwrap().body_len,
                Some(m.body.len() as u64)
            );
        }
    }

    pub async fn empty_ingest_stores_nothing(h: Harness) {
        let j = h.open().await;
        assert_eq!(j.ingest(Vec::new()).await.unwrap(), Vec::new());
        assert!(j.list(filter()).await.unwrap().is_empty());
        assert!(j.stats().await.unwrap().is_empty());
    }

    pub async fn ids_increase_across_batches_and_routes(h: Harness) {
        let j = h.open().await;
        let mut all = store_n(&j, "a", 2).await;
        all.extend(store_n(&j, "b", 1).await);
        all.extend(store_n(&j, "a", 3).await);
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "ids {all:?}");
    }

    pub async fn ids_are_not_reused_after_prune(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        for id in &ids_ {
            finish(&j, "adt", *id, delivered(2000)).await;
        }
        assert_eq!(j.prune(3000, 3000).await.unwrap(), report(3, 3));
        let next = store(&j, message("adt", "C9", 4000)).await;
        assert!(next > ids_[2], "{next} after {}", ids_[2]);
    }

    // ---- duplicates ----

    pub async fn duplicate_inside_window_is_not_stored_again(h: Harness) {
        let j = h.open().await;
        let first = store(&j, deduped(message("adt", "C1", 1000), 0)).await;
        let again = deduped(message("adt", "C1", 5000), 500);
        assert_eq!(ingest_one(&j, again).await, Ingested::Duplicate(first));
        // the window's start is inclusive
        let again = deduped(message("adt", "C1", 5000), 1000);
        assert_eq!(ingest_one(&j, again).await, Ingested::Duplicate(first));
        // still a duplicate once delivered (the sender lost our ACK)
        finish(&j, "adt", first, delivered(2000)).await;
        let again = deduped(message("adt", "C1", 6000), 0);
        assert_eq!(ingest_one(&j, again).await, Ingested::Duplicate(first));
        assert_eq!(j.list(filter()).await.unwrap().len(), 1);
        assert!(j.claim("adt", 10).await.unwrap().is_empty());
    }

    pub async fn duplicate_outside_window_is_stored(h: Harness) {
        let j = h.open().await;
        let first = store(&j, deduped(message("adt", "C1", 1000), 0)).await;
        let second = store(&j, deduped(message("adt", "C1", 5000), 1001)).await;
        assert!(second > first);
        let third = deduped(message("adt", "C1", 6000), 1001);
        assert_eq!(ingest_one(&j, third).await, Ingested::Duplicate(second));
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), vec![first, second]);
    }

    pub async fn duplicate_inside_one_batch(h: Harness) {
        let j = h.open().await;
        let batch = vec![
            deduped(message("adt", "C1", 1000), 0),
            deduped(message("adt", "C1", 1000), 0),
            deduped(message("adt", "C2", 1000), 0),
        ];
        let out = j.ingest(batch).await.unwrap();
        let Ingested::Stored(a) = out[0] else {
            panic!("{out:?}")
        };
        let Ingested::Stored(b) = out[2] else {
            panic!("{out:?}")
        };
        assert_eq!(
            out,
            vec![
                Ingested::Stored(a),
                Ingested::Duplicate(a),
                Ingested::Stored(b)
            ]
        );
        assert!(b > a);
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), vec![a, b]);
    }

    pub async fn other_route_or_sender_is_not_a_duplicate(h: Harness) {
        let j = h.open().await;
        let first = store(&j, deduped(message("adt", "C1", 1000), 0)).await;
        let other_route = store(&j, deduped(message("lab", "C1", 1000), 0)).await;
        let mut other_sender = deduped(message("adt", "C1", 1000), 0);
        other_sender.dedup_key = "pharmacy".to_string();
        let other_sender = store(&j, other_sender).await;
        assert!(first < other_route && other_route < other_sender);
        assert_eq!(
            ids(&j.claim("adt", 10).await.unwrap()),
            vec![first, other_sender]
        );
        assert_eq!(ids(&j.claim("lab", 10).await.unwrap()), vec![other_route]);
    }

    pub async fn no_dedup_window_disables_detection(h: Harness) {
        let j = h.open().await;
        let a = store(&j, message("adt", "C1", 1000)).await;
        let b = store(&j, message("adt", "C1", 1000)).await;
        let out = j
            .ingest(vec![message("adt", "C1", 1000), message("adt", "C1", 1000)])
            .await
            .unwrap();
        let (c, d) = (out[0].id(), out[1].id());
        assert!(
            matches!(out[..], [Ingested::Stored(_), Ingested::Stored(_)]),
            "{out:?}"
        );
        assert!(a < b && b < c && c < d);
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), vec![a, b, c, d]);
    }

    // ---- claim and record ----

    pub async fn claim_respects_order_and_limit(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 5).await;
        assert!(j.claim("adt", 0).await.unwrap().is_empty());
        assert_eq!(ids(&j.claim("adt", 2).await.unwrap()), ids_[0..2]);
        assert_eq!(ids(&j.claim("adt", 2).await.unwrap()), ids_[2..4]);
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), ids_[4..5]);
        assert!(j.claim("adt", 10).await.unwrap().is_empty());
    }

    pub async fn claim_is_per_route(h: Harness) {
        let j = h.open().await;
        let a = store_n(&j, "a", 2).await;
        let b = store_n(&j, "b", 2).await;
        assert_eq!(ids(&j.claim("b", 10).await.unwrap()), b);
        assert_eq!(ids(&j.claim("a", 10).await.unwrap()), a);
        assert!(j.claim("c", 10).await.unwrap().is_empty());
    }

    pub async fn record_outcomes_set_state_attempts_and_codes(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        assert_eq!(j.claim("adt", 3).await.unwrap().len(), 3);
        let ar = Outcome::Retry {
            error: "timeout".to_string(),
            ack_code: Some("AR".to_string()),
            next_attempt_at_ms: 3000,
        };
        j.record(ids_[0], delivered(2000)).await.unwrap();
        j.record(ids_[1], ar).await.unwrap();
        j.record(ids_[2], dead(2500)).await.unwrap();
        let r = j.get(ids_[0]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.last_error,
                r.ack_code,
                r.next_attempt_at_ms,
                r.finished_at_ms
            ),
            (
                State::Delivered,
                1,
                None,
                Some("AA".into()),
                None,
                Some(2000)
            )
        );
        let r = j.get(ids_[1]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.last_error,
                r.ack_code,
                r.next_attempt_at_ms,
                r.finished_at_ms
            ),
            (
                State::Failed,
                1,
                Some("timeout".into()),
                Some("AR".into()),
                Some(3000),
                None
            )
        );
        let r = j.get(ids_[2]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.last_error,
                r.ack_code,
                r.next_attempt_at_ms,
                r.finished_at_ms
            ),
            (
                State::Dead,
                1,
                Some("AE beyond retries".into()),
                Some("AE".into()),
                None,
                Some(2500)
            )
        );
        let again = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&again), vec![ids_[1]]);
        assert_eq!(
            (again[0].attempts, again[0].next_attempt_at_ms),
            (1, Some(3000))
        );
        j.record(ids_[1], retry(4000)).await.unwrap();
        let r = j.get(ids_[1]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.last_error,
                r.ack_code,
                r.next_attempt_at_ms
            ),
            (
                State::Failed,
                2,
                Some("connection refused".into()),
                None,
                Some(4000)
            )
        );
        finish(&j, "adt", ids_[1], delivered(5000)).await;
        let r = j.get(ids_[1]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.last_error,
                r.ack_code,
                r.next_attempt_at_ms,
                r.finished_at_ms
            ),
            (
                State::Delivered,
                3,
                None,
                Some("AA".into()),
                None,
                Some(5000)
            )
        );
    }

    pub async fn record_of_unknown_message_is_not_found(h: Harness) {
        let j = h.open().await;
        let missing = MessageId(999_999);
        match j.record(missing, delivered(1)).await {
            Err(JournalError::NotFound(id)) => assert_eq!(id, missing),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    pub async fn retry_keeps_head_of_line(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        assert_eq!(ids(&j.claim("adt", 1).await.unwrap()), ids_[0..1]);
        j.record(ids_[0], retry(5000)).await.unwrap();
        let claimed = j.claim("adt", 2).await.unwrap();
        assert_eq!(ids(&claimed), ids_[0..2]);
        assert_eq!(
            (claimed[0].attempts, claimed[0].next_attempt_at_ms),
            (1, Some(5000))
        );
        assert_eq!(
            (claimed[1].attempts, claimed[1].next_attempt_at_ms),
            (0, None)
        );
        assert!(!claimed[0].redelivered);
    }

    pub async fn dead_lets_the_queue_move_on(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        finish(&j, "adt", ids_[0], dead(2000)).await;
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), ids_[1..3]);
        assert_eq!(state(&j, ids_[0]).await, State::Dead);
    }

    pub async fn record_then_claim_in_call_order(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 2).await;
        assert_eq!(ids(&j.claim("adt", 1).await.unwrap()), ids_[0..1]);
        // not awaited yet: the record is queued when called
        let recorded = j.record(ids_[0], delivered(2000));
        let retried = {
            let claimed = j.claim("adt", 10).await.unwrap();
            assert_eq!(ids(&claimed), ids_[1..2]);
            j.record(ids_[1], retry(3000))
        };
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_[1..2]);
        assert_eq!(claimed[0].attempts, 1);
        recorded.await.unwrap();
        retried.await.unwrap();
        assert_eq!(state(&j, ids_[0]).await, State::Delivered);
    }

    /// Several outcomes in one request: each recorded, an unknown id
    /// named without undoing the others, queued when called.
    pub async fn record_many_records_each_in_call_order(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 4).await;
        assert_eq!(ids(&j.claim("adt", 3).await.unwrap()), ids_[0..3]);
        let missing = MessageId(999_999);
        // not awaited yet: the claim queued after it sees its outcomes
        let recorded = j.record_many(vec![
            (ids_[0], delivered(2000)),
            (missing, delivered(2000)),
            (ids_[1], dead(2100)),
            (ids_[2], retry(5000)),
        ]);
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), vec![ids_[2], ids_[3]]);
        assert_eq!(
            (claimed[0].attempts, claimed[0].next_attempt_at_ms),
            (1, Some(5000))
        );
        match recorded.await {
            Err(JournalError::NotFound(id)) => assert_eq!(id, missing),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(state(&j, ids_[0]).await, State::Delivered);
        assert_eq!(state(&j, ids_[1]).await, State::Dead);
        assert_eq!(j.get(ids_[1]).await.unwrap().finished_at_ms, Some(2100));
        j.record_many(Vec::new()).await.unwrap();
    }

    pub async fn recover_flags_redelivered(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        assert_eq!(j.claim("adt", 2).await.unwrap().len(), 2);
        assert_eq!(j.recover("adt").await.unwrap(), 2);
        assert_eq!(j.recover("lab").await.unwrap(), 0);
        let r = j.get(ids_[0]).await.unwrap();
        assert_eq!(
            (r.state, r.redelivered, r.attempts),
            (State::Failed, true, 0)
        );
        let r = j.get(ids_[2]).await.unwrap();
        assert_eq!((r.state, r.redelivered), (State::Queued, false));
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_);
        let flags: Vec<_> = claimed
            .iter()
            .map(|c| (c.redelivered, c.attempts))
            .collect();
        assert_eq!(flags, vec![(true, 0), (true, 0), (false, 0)]);
        assert_eq!(j.recover("adt").await.unwrap(), 3);
    }

    // ---- leases ----

    pub async fn leases_are_exclusive_between_nodes(h: Harness) {
        let a = h.open().await;
        let b = h.open().await;
        assert!(a.acquire_lease("adt", "node-a", 1000, 500).await.unwrap());
        assert!(!b.acquire_lease("adt", "node-b", 1100, 500).await.unwrap());
        // renewed until 1900
        assert!(a.acquire_lease("adt", "node-a", 1400, 500).await.unwrap());
        assert!(!b.acquire_lease("adt", "node-b", 1600, 500).await.unwrap());
        // another route is another lease
        assert!(b.acquire_lease("lab", "node-b", 1600, 500).await.unwrap());
        assert!(!a.acquire_lease("lab", "node-a", 1700, 500).await.unwrap());
        assert!(a.acquire_lease("adt", "node-a", 1800, 500).await.unwrap());
    }

    pub async fn lease_expiry_lets_another_node_take_over(h: Harness) {
        let a = h.open().await;
        let b = h.open().await;
        let ids_ = store_n(&a, "adt", 3).await;
        assert!(a.acquire_lease("adt", "node-a", 1000, 500).await.unwrap());
        assert_eq!(a.claim("adt", 2).await.unwrap().len(), 2);
        // node-a stops renewing: its lease ended at 1500
        assert!(b.acquire_lease("adt", "node-b", 1600, 500).await.unwrap());
        assert!(!a.acquire_lease("adt", "node-a", 1700, 500).await.unwrap());
        assert_eq!(b.recover("adt").await.unwrap(), 2);
        let claimed = b.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_);
        let flags: Vec<_> = claimed.iter().map(|c| c.redelivered).collect();
        assert_eq!(flags, vec![true, true, false]);
    }

    pub async fn lease_release_frees_the_route(h: Harness) {
        let a = h.open().await;
        let b = h.open().await;
        assert!(a
            .acquire_lease("adt", "node-a", 1000, 60_000)
            .await
            .unwrap());
        // only the holder can release
        b.release_lease("adt", "node-b").await.unwrap();
        assert!(!b
            .acquire_lease("adt", "node-b", 1100, 60_000)
            .await
            .unwrap());
        a.release_lease("adt", "node-a").await.unwrap();
        assert!(b
            .acquire_lease("adt", "node-b", 1200, 60_000)
            .await
            .unwrap());
        assert!(!a
            .acquire_lease("adt", "node-a", 1300, 60_000)
            .await
            .unwrap());
        a.release_lease("never-leased", "node-a").await.unwrap();
    }

    // ---- replay ----

    pub async fn replay_one_puts_a_message_back_in_line(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 2).await;
        finish(&j, "adt", ids_[0], delivered(2000)).await;
        assert_eq!(j.replay(Replay::One(ids_[0])).await.unwrap(), 1);
        let r = j.get(ids_[0]).await.unwrap();
        assert_eq!(
            (
                r.state,
                r.attempts,
                r.redelivered,
                r.finished_at_ms,
                r.next_attempt_at_ms
            ),
            (State::Queued, 0, true, None, None)
        );
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_);
        assert!(claimed[0].redelivered && !claimed[1].redelivered);
        assert_eq!(claimed[0].body, body("C0"));
    }

    pub async fn replay_one_of_unknown_message_is_not_found(h: Harness) {
        let j = h.open().await;
        match j.replay(Replay::One(MessageId(424_242))).await {
            Err(JournalError::NotFound(id)) => assert_eq!(id, MessageId(424_242)),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    pub async fn replay_route_by_states(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 4).await;
        let lab = store_n(&j, "lab", 1).await[0];
        finish(&j, "adt", ids_[0], dead(2000)).await;
        finish(&j, "adt", ids_[1], delivered(2000)).await;
        finish(&j, "adt", ids_[2], dead(2000)).await;
        finish(&j, "lab", lab, dead(2000)).await;
        let dead_only = Replay::Route {
            route: "adt".to_string(),
            states: vec![State::Dead],
        };
        assert_eq!(j.replay(dead_only).await.unwrap(), 2);
        let mut states = Vec::new();
        for id in ids_.iter().chain([&lab]) {
            states.push(state(&j, *id).await);
        }
        use State::*;
        assert_eq!(states, vec![Queued, Delivered, Queued, Queued, Dead]);
        let finished = Replay::Route {
            route: "adt".to_string(),
            states: vec![State::Delivered, State::Dead],
        };
        assert_eq!(j.replay(finished).await.unwrap(), 1);
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_);
        let flags: Vec<_> = claimed.iter().map(|c| c.redelivered).collect();
        assert_eq!(flags, vec![true, true, true, false]);
    }

    pub async fn replay_after_prune_has_no_body(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 2).await;
        finish(&j, "adt", ids_[0], delivered(1000)).await;
        finish(&j, "adt", ids_[1], delivered(3000)).await;
        assert_eq!(j.prune(2000, 0).await.unwrap(), report(1, 0));
        let r = j.get(ids_[0]).await.unwrap();
        assert_eq!((r.state, r.body_len), (State::Delivered, None));
        assert!(matches!(j.body(ids_[0]).await, Err(JournalError::NoBody(id)) if id == ids_[0]));
        match j.replay(Replay::One(ids_[0])).await {
            Err(JournalError::NoBody(id)) => assert_eq!(id, ids_[0]),
            other => panic!("expected NoBody, got {other:?}"),
        }
        let route = Replay::Route {
            route: "adt".to_string(),
            states: vec![State::Delivered],
        };
        assert_eq!(j.replay(route).await.unwrap(), 1);
        assert_eq!(state(&j, ids_[0]).await, State::Delivered);
        assert_eq!(ids(&j.claim("adt", 10).await.unwrap()), ids_[1..2]);
    }

    // ---- prune ----

    pub async fn prune_never_touches_pending_messages(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 3).await;
        assert_eq!(j.claim("adt", 2).await.unwrap().len(), 2);
        j.record(ids_[0], retry(1)).await.unwrap();
        assert_eq!(j.prune(i64::MAX, i64::MAX).await.unwrap(), report(0, 0));
        let mut states = Vec::new();
        for (i, id) in ids_.iter().enumerate() {
            let r = j.get(*id).await.unwrap();
            states.push(r.state);
            assert_eq!(j.body(*id).await.unwrap(), body(&format!("C{i}")));
        }
        assert_eq!(states, vec![State::Failed, State::InFlight, State::Queued]);
    }

    pub async fn prune_removes_bodies_then_records_by_cutoffs(h: Harness) {
        let j = h.open().await;
        let d2 = store(&j, message("adt", "D2", 200)).await;
        let x = store(&j, message("adt", "X", 300)).await;
        let d1 = store(&j, message("adt", "D1", 400)).await;
        finish(&j, "adt", d2, delivered(3000)).await;
        finish(&j, "adt", x, dead(1500)).await;
        finish(&j, "adt", d1, delivered(1000)).await;
        let q = store(&j, message("adt", "Q", 50)).await;
        // bodies of messages finished before 2000: d1 and x;
        // records received before 250 and finished: d2
        assert_eq!(j.prune(2000, 250).await.unwrap(), report(2, 1));
        assert!(matches!(j.get(d2).await, Err(JournalError::NotFound(id)) if id == d2));
        for id in [d1, x] {
            let r = j.get(id).await.unwrap();
            assert_eq!(r.body_len, None);
            assert_eq!(r.meta.control_id, if id == d1 { "D1" } else { "X" });
        }
        assert_eq!(
            j.get(q).await.unwrap().body_len,
            Some(body("Q").len() as u64)
        );
        assert_eq!(j.prune(2000, 250).await.unwrap(), report(0, 0));
        assert_eq!(j.prune(2000, 1000).await.unwrap(), report(0, 2));
        let left: Vec<_> = j
            .list(filter())
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, vec![q]);
    }

    pub async fn prune_works_through_many_rows(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 2500).await;
        assert_eq!(j.claim("adt", 2500).await.unwrap().len(), 2500);
        let recorded: Vec<_> = ids_
            .iter()
            .map(|id| j.record(*id, delivered(2000)))
            .collect();
        for r in recorded {
            r.await.unwrap();
        }
        assert_eq!(j.prune(3000, 0).await.unwrap(), report(2500, 0));
        assert_eq!(j.prune(3000, i64::MAX).await.unwrap(), report(0, 2500));
        assert!(j.list(filter()).await.unwrap().is_empty());
    }

    // ---- stats, list, get ----

    pub async fn stats_per_route(h: Harness) {
        let j = h.open().await;
        let a = store_n(&j, "a", 7).await;
        finish(&j, "a", a[0], delivered(2000)).await;
        finish(&j, "a", a[1], delivered(2000)).await;
        finish(&j, "a", a[2], dead(2000)).await;
        assert_eq!(ids(&j.claim("a", 2).await.unwrap()), a[3..5]);
        j.record(a[3], retry(9000)).await.unwrap();
        store(&j, message("b", "B", 5000)).await;
        let c = store(&j, message("c", "C", 6000)).await;
        finish(&j, "c", c, delivered(7000)).await;
        let route = |name: &str| RouteStats {
            route: name.to_string(),
            ..RouteStats::default()
        };
        let expected = vec![
            RouteStats {
                depth: 4,
                in_flight: 1,
                failed: 1,
                dead: 1,
                oldest_pending_ms: Some(1003),
                ..route("a")
            },
            RouteStats {
                depth: 1,
                oldest_pending_ms: Some(5000),
                ..route("b")
            },
            // Route c has only delivered messages: nothing owed, not listed.
        ];
        assert_eq!(by_route(j.stats().await.unwrap()), expected);
    }

    pub async fn list_is_newest_first_with_full_records(h: Harness) {
        let j = h.open().await;
        let first = store(&j, message("adt", "C1", 1000)).await;
        let mut anonymous = message("lab", "C2", 2000);
        anonymous.peer_app = None;
        anonymous.peer_addr = "[::1]:5000".to_string();
        anonymous.meta = meta("ORU^R01", "C2");
        let second = store(&j, anonymous).await;
        let listed = j.list(filter()).await.unwrap();
        let expected_second = MessageRecord {
            id: second,
            route: "lab".to_string(),
            received_at_ms: 2000,
            peer_app: None,
            peer_addr: "[::1]:5000".to_string(),
            meta: meta("ORU^R01", "C2"),
            state: State::Queued,
            attempts: 0,
            redelivered: false,
            last_error: None,
            ack_code: None,
            next_attempt_at_ms: None,
            finished_at_ms: None,
            body_len: Some(body("C2").len() as u64),
            sealed: false,
        };
        let expected_first = MessageRecord {
            id: first,
            route: "adt".to_string(),
            received_at_ms: 1000,
            peer_app: Some("eai".to_string()),
            peer_addr: "127.0.0.1:40000".to_string(),
            meta: meta("ADT^A01^ADT_A01", "C1"),
            body_len: Some(body("C1").len() as u64),
            ..expected_second.clone()
        };
        assert_eq!(listed, vec![expected_second.clone(), expected_first]);
        assert_eq!(j.get(second).await.unwrap(), expected_second);
    }

    pub async fn list_filters(h: Harness) {
        let j = h.open().await;
        let m1 = store(&j, message("a", "C1", 1000)).await;
        let mut oru = message("a", "C2", 2000);
        oru.meta = meta("ORU^R01", "C2");
        let m2 = store(&j, oru).await;
        let mut a08 = message("b", "C1", 3000);
        a08.meta = meta("ADT^A08", "C1");
        let m3 = store(&j, a08).await;
        finish(&j, "a", m1, delivered(4000)).await;
        let list = |f: Filter| {
            let j = j.clone();
            async move {
                j.list(f)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            list(Filter {
                route: some("a"),
                ..filter()
            })
            .await,
            vec![m2, m1]
        );
        assert_eq!(
            list(Filter {
                state: Some(State::Delivered),
                ..filter()
            })
            .await,
            vec![m1]
        );
        assert_eq!(
            list(Filter {
                since_ms: Some(2000),
                ..filter()
            })
            .await,
            vec![m3, m2]
        );
        assert_eq!(
            list(Filter {
                control_id: some("C1"),
                ..filter()
            })
            .await,
            vec![m3, m1]
        );
        assert_eq!(
            list(Filter {
                message_type: some("ADT"),
                ..filter()
            })
            .await,
            vec![m3, m1]
        );
        let adt_of_a = Filter {
            route: some("a"),
            message_type: some("ADT"),
            ..filter()
        };
        assert_eq!(list(adt_of_a).await, vec![m1]);
        let queued_of_b = Filter {
            route: some("b"),
            state: Some(State::Queued),
            ..filter()
        };
        assert_eq!(list(queued_of_b).await, vec![m3]);
        assert_eq!(
            list(Filter {
                limit: 1,
                ..filter()
            })
            .await,
            vec![m3]
        );
        assert_eq!(
            list(Filter {
                route: some("z"),
                ..filter()
            })
            .await,
            vec![]
        );
    }

    pub async fn list_message_type_matches_whole_components(h: Harness) {
        let j = h.open().await;
        let mut stored = Vec::new();
        for (i, t) in [
            "ADT^A01^ADT_A01",
            "ADT^A01",
            "ADT^A011",
            "XADT^A01",
            "ADTXA01",
            "ADT%",
        ]
        .iter()
        .enumerate()
        {
            let mut m = message("adt", &format!("C{i}"), 1000 + i as i64);
            m.meta = meta(t, &format!("C{i}"));
            stored.push(store(&j, m).await);
        }
        let find = |t: &str| {
            let (j, t) = (j.clone(), t.to_string());
            async move {
                let f = Filter {
                    message_type: Some(t),
                    ..filter()
                };
                j.list(f)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(find("ADT^A01").await, vec![stored[1], stored[0]]);
        assert_eq!(find("ADT^A01^ADT_A01").await, vec![stored[0]]);
        assert_eq!(find("ADT^A011").await, vec![stored[2]]);
        assert_eq!(find("ADT").await, vec![stored[2], stored[1], stored[0]]);
        // no pattern characters: "_" and "%" are literal
        assert_eq!(find("ADT_A01").await, vec![]);
        assert_eq!(find("ADT%").await, vec![stored[5]]);
        assert_eq!(find("%").await, vec![]);
        assert_eq!(find("A01").await, vec![]);
    }

    pub async fn list_limit_defaults_to_100(h: Harness) {
        let j = h.open().await;
        let ids_ = store_n(&j, "adt", 150).await;
        let listed = j.list(filter()).await.unwrap();
        assert_eq!(listed.len(), 100);
        assert_eq!(listed[0].id, ids_[149]);
        assert_eq!(listed[99].id, ids_[50]);
        let more = j
            .list(Filter {
                limit: 120,
                ..filter()
            })
            .await
            .unwrap();
        assert_eq!(more.len(), 120);
    }

    pub async fn get_and_body_of_unknown_message(h: Harness) {
        let j = h.open().await;
        let missing = MessageId(777);
        assert!(matches!(j.get(missing).await, Err(JournalError::NotFound(id)) if id == missing));
        assert!(matches!(j.body(missing).await, Err(JournalError::NotFound(id)) if id == missing));
    }

    pub async fn audit_is_accepted(h: Harness) {
        let j = h.open().await;
        let id = store(&j, message("adt", "C1", 1000)).await;
        j.audit(2000, "alice@ops", "printed the body", Some(id))
            .await
            .unwrap();
        j.audit(2001, "alice@ops", "listed route adt", None)
            .await
            .unwrap();
        assert_eq!(j.get(id).await.unwrap().state, State::Queued);
    }

    // ---- observed flows ----

    fn flow_key(route: &str, message_type: &str) -> FlowKey {
        FlowKey {
            route: route.into(),
            kind: "mllp".into(),
            direction: "relay".into(),
            application: "eai".into(),
            source: "EAI^CHU".into(),
            target: "DPI^CHU".into(),
            message_type: message_type.into(),
            tls_in: true,
            tls_out: false,
        }
    }

    fn flow(key: &FlowKey, outcome: &str, count: u64, first_ms: i64, last_ms: i64) -> FlowCount {
        FlowCount {
            key: key.clone(),
            outcome: outcome.into(),
            count,
            first_ms,
            last_ms,
        }
    }

    pub async fn flows_add_up_by_key_and_outcome(h: Harness) {
        let j = h.open().await;
        assert_eq!(j.flows().await.unwrap(), vec![]);
        let (a01, a08) = (flow_key("adt", "ADT^A01"), flow_key("adt", "ADT^A08"));
        j.add_flows(vec![
            flow(&a01, "AA", 3, 1000, 2000),
            flow(&a08, "AA", 1, 1500, 1500),
        ])
        .await
        .unwrap();
        j.add_flows(vec![
            flow(&a01, "AA", 2, 500, 1800),
            flow(&a01, "AE", 1, 3000, 3000),
        ])
        .await
        .unwrap();
        j.add_flows(Vec::new()).await.unwrap();
        let totals = j.flows().await.unwrap();
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].key, a01);
        assert_eq!(totals[0].count, 6);
        assert_eq!((totals[0].first_ms, totals[0].last_ms), (500, 3000));
        let outcomes: Vec<(&str, u64)> = totals[0]
            .outcomes
            .iter()
            .map(|(o, n)| (o.as_str(), *n))
            .collect();
        assert_eq!(outcomes, vec![("AA", 5), ("AE", 1)]);
        assert_eq!(totals[1].key, a08);
        assert_eq!(totals[1].count, 1);
    }

    pub async fn flows_persist_across_reopen(h: Harness) {
        let key = flow_key("adt", "ADT^A01");
        {
            let j = h.open().await;
            j.add_flows(vec![flow(&key, "AA", 7, 1000, 2000)])
                .await
                .unwrap();
        }
        let j = h.open().await;
        j.add_flows(vec![flow(&key, "AA", 1, 3000, 3000)])
            .await
            .unwrap();
        let totals = j.flows().await.unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].count, 8);
        assert_eq!((totals[0].first_ms, totals[0].last_ms), (1000, 3000));
    }

    // ---- sealing, persistence, concurrency ----

    pub async fn sealed_bodies_round_trip_and_leave_no_plaintext(h: Harness) {
        let keyed = h
            .open_with(OpenOptions {
                key: Some(key()),
                ..OpenOptions::default()
            })
            .await;
        let plain = h.open().await;
        let sent = message("adt", "SEALED-1", 1000);
        let id = store(&keyed, sent.clone()).await;
        assert_eq!(keyed.body(id).await.unwrap(), sent.body);
        let r = plain.get(id).await.unwrap();
        // magic, key id, nonce, tag
        assert_eq!(
            (r.sealed, r.body_len),
            (true, Some(sent.body.len() as u64 + 36))
        );
        assert!(matches!(plain.body(id).await, Err(JournalError::Sealed { id: i, .. }) if i == id));
        let claimed = keyed.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), vec![id]);
        assert_eq!(
            (claimed[0].body.as_slice(), claimed[0].sealed),
            (sent.body.as_slice(), false)
        );
        if let Some(raw) = h.dump().await {
            assert!(
                contains(&raw, b"SEALED-1"),
                "the dump misses the stored metadata"
            );
            assert!(!contains(&raw, b"DUPONT^JEAN"), "plaintext body at rest");
        }
    }

    pub async fn persists_across_reopen(h: Harness) {
        let (ids_, before) = {
            let j = h.open().await;
            let ids_ = store_n(&j, "adt", 3).await;
            finish(&j, "adt", ids_[0], delivered(2000)).await;
            assert_eq!(ids(&j.claim("adt", 1).await.unwrap()), ids_[1..2]);
            assert!(j
                .acquire_lease("adt", "node-a", 1000, 60_000)
                .await
                .unwrap());
            j.audit(2000, "alice@ops", "printed the body", Some(ids_[0]))
                .await
                .unwrap();
            (ids_, j.list(filter()).await.unwrap())
        };
        let j = h.open().await;
        assert_eq!(j.list(filter()).await.unwrap(), before);
        assert!(!j
            .acquire_lease("adt", "node-b", 2000, 60_000)
            .await
            .unwrap());
        assert_eq!(j.recover("adt").await.unwrap(), 1);
        let claimed = j.claim("adt", 10).await.unwrap();
        assert_eq!(ids(&claimed), ids_[1..3]);
        assert_eq!(claimed[0].body, body("C1"));
        let next = store(&j, message("adt", "C9", 3000)).await;
        assert!(next > ids_[2]);
    }

    pub async fn concurrent_ingest_from_32_tasks_stored_once_in_order(h: Harness) {
        let j = h.open().await;
        let tasks: Vec<_> = (0..32)
            .map(|task| {
                let j = j.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for seq in 0..16 {
                        let cid = format!("T{task}-{seq}");
                        let id = store(&j, deduped(message("adt", &cid, 1000), 0)).await;
                        mine.push((id, cid));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            let mine = task.await.unwrap();
            assert!(
                mine.windows(2).all(|w| w[0].0 < w[1].0),
                "one task's ids out of order"
            );
            all.extend(mine);
        }
        all.sort();
        assert_eq!(all.len(), 512);
        assert!(
            all.windows(2).all(|w| w[0].0 < w[1].0),
            "an id was given twice"
        );
        let claimed = j.claim("adt", 1000).await.unwrap();
        assert_eq!(claimed.len(), 512);
        for (c, (id, cid)) in claimed.iter().zip(&all) {
            assert_eq!((c.id, &c.meta.control_id), (*id, cid));
            assert_eq!(c.body, body(cid));
        }
    }
}
