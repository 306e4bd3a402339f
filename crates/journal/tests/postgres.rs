//! The journal on PostgreSQL: the shared suite, then what only a shared
//! database shows: two nodes racing for leases and ingesting the same
//! retransmissions, a node dying with its lease, sessions killed, a
//! database that refuses sessions or writes, migrations at once.
//!
//! Each test gets a database of its own from `guichet_testsupport::postgres`
//! (`./scripts/setup` starts the server; without one they print SKIPPED,
//! and fail on CI).

use std::time::{Duration, Instant};

use crate::suite::fixtures::{body, deduped, message, store_n};
use crate::suite::{Harness, Skip};
use guichet_journal::{open, Filter, Ingested, Journal, JournalError, OpenOptions, StoreSpec};
use guichet_testsupport::postgres::TestDatabase;
use guichet_testsupport::samples::now_ms;
use tokio_postgres::{Client, NoTls};

async fn fresh(_test: &'static str) -> Result<Harness, Skip> {
    let database = TestDatabase::try_create().await.map_err(Skip)?;
    let spec = StoreSpec::Postgres(database.url().to_string());
    let url = database.url().to_string();
    Ok(Harness::from_spec(spec, database).with_dump(move || dump(url.clone())))
}

journal_suite!(fresh);

/// Every byte the journal keeps: each row as text, and bodies raw.
async fn dump(url: String) -> Vec<u8> {
    let client = connect(&url).await;
    let mut raw = Vec::new();
    let sql = "SELECT convert_to(m::text, 'UTF8') AS text, body FROM messages m";
    for row in client.query(sql, &[]).await.unwrap() {
        raw.extend(row.get::<_, Vec<u8>>("text"));
        raw.extend(row.get::<_, Option<Vec<u8>>>("body").unwrap_or_default());
    }
    for table in ["audit", "leases", "schema_migrations"] {
        let sql = format!("SELECT convert_to(t::text, 'UTF8') FROM {table} t");
        for row in client.query(&sql, &[]).await.unwrap() {
            raw.extend(row.get::<_, Vec<u8>>(0));
        }
    }
    raw
}

// ---- helpers ----

async fn database() -> Option<TestDatabase> {
    TestDatabase::create().await
}

async fn node(database: &TestDatabase) -> Journal {
    node_with_lanes(database, 1).await
}

/// A node storing ingests over `lanes` connections.
async fn node_with_lanes(database: &TestDatabase, lanes: usize) -> Journal {
    let spec = StoreSpec::Postgres(database.url().to_string());
    let options = OpenOptions {
        ingest_connections: lanes,
        ..OpenOptions::default()
    };
    open(&spec, options).await.unwrap()
}

/// A direct session on `url`, to look at the tables.
async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn count(database: &TestDatabase, sql: &str) -> i64 {
    connect(database.url())
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

async fn control_ids(database: &TestDatabase) -> std::collections::BTreeSet<String> {
    let rows = connect(database.url())
        .await
        .query("SELECT control_id FROM messages", &[])
        .await
        .unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// Ingests one message; it must be stored or refused as Unavailable.
async fn try_ingest(journal: &Journal, control_id: &str) -> Option<Ingested> {
    match journal
        .ingest(vec![message("adt", control_id, now_ms())])
        .await
    {
        Ok(out) => Some(out[0]),
        Err(JournalError::Unavailable(reason)) => {
            assert!(
                !reason.contains("guichet:guichet") && !reason.contains("DUPONT"),
                "{reason}"
            );
            None
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Ingests until one is stored (panics after `within`); returns how many
/// attempts were refused first.
async fn ingest_until_stored(journal: &Journal, within: Duration) -> usize {
    let start = Instant::now();
    let mut refused = 0;
    while try_ingest(journal, &format!("R{refused}")).await.is_none() {
        refused += 1;
        assert!(
            start.elapsed() < within,
            "ingest still refused after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused
}

// ---- leases between nodes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_nodes_never_both_win_a_lease() {
    let Some(db) = database().await else { return };
    let (a, b) = (node(&db).await, node(&db).await);
    for round in 0..20 {
        let route = format!("route-{round}");
        let (won_a, won_b) = tokio::join!(
            a.acquire_lease(&route, "node-a", 1000, 500),
            b.acquire_lease(&route, "node-b", 1000, 500),
        );
        assert!(
            won_a.unwrap() ^ won_b.unwrap(),
            "round {round}: exactly one node must win"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_holders_lease_is_taken_over_after_its_ttl_and_its_messages_recovered() {
    let Some(db) = database().await else { return };
    const TTL_MS: i64 = 600;
    let (a, b) = (node(&db).await, node(&db).await);
    let batch = (0..3).map(|i| message("adt", &format!("C{i}"), 1000 + i));
    let stored = a.ingest(batch.collect()).await.unwrap();
    let ids: Vec<_> = stored.into_iter().map(Ingested::id).collect();
    let taken_at = now_ms();
    assert!(a
        .acquire_lease("adt", "node-a", taken_at, TTL_MS)
        .await
        .unwrap());
    assert_eq!(a.claim("adt", 2).await.unwrap().len(), 2);
    drop(a); // node-a dies with two messages in flight, its lease unreleased

    // node-b polls with the real clock: refused until the TTL has run out, then taken
    loop {
        let now = now_ms();
        let won = b.acquire_lease("adt", "node-b", now, TTL_MS).await.unwrap();
        assert_eq!(won, now >= taken_at + TTL_MS, "at {} ms", now - taken_at);
        if won {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.recover("adt").await.unwrap(), 2);
    let claimed = b.claim("adt", 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    let flags: Vec<_> = claimed.iter().map(|c| c.redelivered).collect();
    assert_eq!(flags, vec![true, true, false]);
}

// ---- ingest from two nodes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_store_each_retransmission_once_and_every_message() {
    let Some(db) = database().await else { return };
    let nodes = [node(&db).await, node(&db).await];
    let mut tasks = Vec::new();
    for (n, journal) in nodes.iter().enumerate() {
        for task in 0..16 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for seq in 0..20 {
                    // the same message reaches both nodes (a sender's retransmission) ...
                    let shared = format!("S{task}-{seq}");
                    let got = journal
                        .ingest(vec![deduped(message("adt", &shared, 1000), 0)])
                        .await
                        .unwrap();
                    out.push((shared, got[0]));
                    // ... and one only this node
                    let own = format!("N{n}-{task}-{seq}");
                    let got = journal
                        .ingest(vec![deduped(message("adt", &own, 1000), 0)])
                        .await
                        .unwrap();
                    out.push((own, got[0]));
                }
                out
            }));
        }
    }
    let mut by_control_id = std::collections::BTreeMap::<String, Vec<Ingested>>::new();
    for task in tasks {
        for (control_id, ingested) in task.await.unwrap() {
            by_control_id.entry(control_id).or_default().push(ingested);
        }
    }
    assert_eq!(by_control_id.len(), 16 * 20 * 3);
    for (control_id, outcomes) in &by_control_id {
        let stored: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, Ingested::Stored(_)))
            .collect();
        assert_eq!(stored.len(), 1, "{control_id}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| o.id() == stored[0].id()),
            "{control_id}: {outcomes:?}"
        );
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM messages").await,
        16 * 20 * 3
    );
    let claimed = nodes[0].claim("adt", 2000).await.unwrap();
    assert_eq!(claimed.len(), 16 * 20 * 3);
    assert!(claimed.iter().all(|c| c.body == body(&c.meta.control_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_the_database_rejects_fails_alone() {
    let Some(db) = database().await else { return };
    let journal = node(&db).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                // PostgreSQL text cannot hold NUL: this one fails its group
                let control_id = if i == 7 {
                    "BAD\0".to_string()
                } else {
                    format!("C{i}")
                };
                journal
                    .ingest(vec![message("adt", &control_id, 1000)])
                    .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        match (i, task.await.unwrap()) {
            (7, Err(JournalError::Unavailable(_))) => {}
            (7, other) => panic!("expected Unavailable, got {other:?}"),
            (_, result) => assert!(matches!(result.unwrap()[..], [Ingested::Stored(_)])),
        }
    }
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingests_and_claims_queued_together_apply_in_call_order() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let c1 = j
        .ingest(vec![deduped(message("adt", "C1", 1000), 0)])
        .await
        .unwrap()[0]
        .id();
    // a large first request keeps the writer busy while the others queue
    // behind it, so that they share a transaction
    let busy: Vec<_> = (0..500)
        .map(|i| message("other", &format!("B{i}"), 1000))
        .collect();
    let dedup = |control_id: &str| deduped(message("adt", control_id, 1000), 0);
    let (busy, first, claimed, second, claimed_again, third) = tokio::join!(
        biased;
        j.ingest(busy),
        j.ingest(vec![dedup("C1"), dedup("C2")]),
        j.claim("adt", 10),
        j.ingest(vec![dedup("C2"), dedup("C3")]),
        j.claim("adt", 10),
        j.ingest(vec![dedup("C3")]),
    );
    assert_eq!(busy.unwrap().len(), 500);
    let first = first.unwrap();
    let Ingested::Stored(c2) = first[1] else {
        panic!("{first:?}")
    };
    assert_eq!(first, vec![Ingested::Duplicate(c1), Ingested::Stored(c2)]);
    let ids =
        |claimed: Vec<guichet_journal::Claimed>| claimed.iter().map(|c| c.id).collect::<Vec<_>>();
    let (claimed, claimed_again) = (ids(claimed.unwrap()), ids(claimed_again.unwrap()));
    // a claim sees every ingest called before it; one called after it
    // (on the ingest lane) may already be stored too
    assert!(claimed.starts_with(&[c1, c2]), "{claimed:?}");
    let second = second.unwrap();
    let Ingested::Stored(c3) = second[1] else {
        panic!("{second:?}")
    };
    assert_eq!(second, vec![Ingested::Duplicate(c2), Ingested::Stored(c3)]);
    let both: Vec<_> = claimed.into_iter().chain(claimed_again).collect();
    assert_eq!(both, vec![c1, c2, c3]);
    assert_eq!(third.unwrap(), vec![Ingested::Duplicate(c3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_route_delivered_while_senders_retransmit_gets_each_message_once() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let senders: Vec<_> = (0..16)
        .map(|sender| {
            let j = j.clone();
            tokio::spawn(async move {
                for seq in 0..25 {
                    let m = deduped(message("adt", &format!("S{sender}-{seq}"), now_ms()), 0);
                    let first = j.ingest(vec![m.clone()]).await.unwrap()[0];
                    // the sender did not get our ACK and sends it again
                    let again = j.ingest(vec![m]).await.unwrap()[0];
                    assert!(matches!(first, Ingested::Stored(_)), "{first:?}");
                    assert_eq!(again, Ingested::Duplicate(first.id()));
                }
            })
        })
        .collect();
    let mut delivered = std::collections::BTreeSet::new();
    let start = Instant::now();
    while delivered.len() < 16 * 25 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} delivered",
            delivered.len()
        );
        let claimed = j.claim("adt", 7).await.unwrap();
        let ids: Vec<_> = claimed.iter().map(|c| c.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let records: Vec<_> = ids
            .iter()
            .map(|id| j.record(*id, crate::suite::fixtures::delivered(1)))
            .collect();
        for (id, record) in ids.iter().zip(records) {
            record.await.unwrap();
            assert!(delivered.insert(*id), "{id} claimed twice");
        }
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(j.claim("adt", 10).await.unwrap().is_empty());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM messages WHERE state = 'delivered'"
        )
        .await,
        400
    );
}

/// Each sender's ingest is answered only once its message is committed:
/// another session sees it the moment the answer arrives, whatever the
/// senders' concurrency (their groups share commits).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ingest_is_answered_only_after_its_commit() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let senders: Vec<_> = (0..32)
        .map(|sender| {
            let (j, url) = (j.clone(), db.url().to_string());
            tokio::spawn(async move {
                let observer = connect(&url).await;
                let visible = observer
                    .prepare("SELECT count(*) FROM messages WHERE id = $1")
                    .await
                    .unwrap();
                for seq in 0..20 {
                    let m = deduped(message("adt", &format!("S{sender}-{seq}"), now_ms()), 0);
                    let id = j.ingest(vec![m]).await.unwrap()[0].id();
                    // a claim on the other lane, so groups of both kinds mix
                    if seq % 5 == 0 {
                        j.claim("adt", 4).await.unwrap();
                    }
                    let seen: i64 = observer.query_one(&visible, &[&id.0]).await.unwrap().get(0);
                    assert_eq!(seen, 1, "{id} answered before it was committed");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 640);
}

/// Outcomes queued together are recorded by one statement: each is
/// applied, and one of a message not in the journal fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outcomes_recorded_together_apply_each_and_fail_alone() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let ids = store_n(&j, "adt", 3).await;
    assert_eq!(j.claim("adt", 3).await.unwrap().len(), 3);
    // the claim waits for this large ingest: the outcomes queue behind it
    let busy: Vec<_> = (0..500)
        .map(|i| message("other", &format!("B{i}"), 1000))
        .collect();
    let busy = j.ingest(busy);
    let claimed = j.claim("other", 1);
    let missing = guichet_journal::MessageId(ids[2].0 + 10_000);
    use crate::suite::fixtures::{dead, delivered, retry};
    let recorded = [
        j.record(ids[0], delivered(2000)),
        j.record(missing, delivered(2000)),
        j.record(ids[1], retry(3000)),
        j.record(ids[2], dead(4000)),
    ];
    busy.await.unwrap();
    claimed.await.unwrap();
    let mut results = Vec::new();
    for record in recorded {
        results.push(record.await);
    }
    assert!(results[0].is_ok() && results[2].is_ok() && results[3].is_ok());
    assert!(
        matches!(results[1], Err(JournalError::NotFound(id)) if id == missing),
        "{:?}",
        results[1]
    );
    let record = |id| j.get(id);
    let (a, b, c) = (
        record(ids[0]).await.unwrap(),
        record(ids[1]).await.unwrap(),
        record(ids[2]).await.unwrap(),
    );
    use guichet_journal::State;
    assert_eq!(
        (a.state, a.attempts, a.ack_code.as_deref(), a.finished_at_ms),
        (State::Delivered, 1, Some("AA"), Some(2000))
    );
    assert_eq!(
        (b.state, b.attempts, b.next_attempt_at_ms, b.finished_at_ms),
        (State::Failed, 1, Some(3000), None)
    );
    assert_eq!(
        (c.state, c.attempts, c.finished_at_ms),
        (State::Dead, 1, Some(4000))
    );
    assert!(b.last_error.is_some() && c.last_error.is_some());
}

/// A backlog claimed a batch at a time (each claim starting after the
/// last): every message once, in id order, and a retried message (behind
/// the claims' position) or a recovered one is claimed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_is_claimed_in_order_and_put_back_messages_are_claimed_again() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let ids = store_n(&j, "adt", 300).await;
    let other = j.ingest(vec![message("lab", "L", 1000)]).await.unwrap()[0].id();
    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.extend(j.claim("adt", 32).await.unwrap().into_iter().map(|c| c.id));
    }
    assert_eq!(claimed, ids[..96]);
    // the fifth is retried: it is claimed first again
    j.record(ids[4], crate::suite::fixtures::retry(5000))
        .await
        .unwrap();
    let next: Vec<_> = j.claim("adt", 32).await.unwrap();
    assert_eq!(next[0].id, ids[4]);
    assert_eq!(
        next[1..].iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[96..127]
    );
    // a new holder recovers what was in flight: claimed from the start again
    assert_eq!(j.recover("adt").await.unwrap(), 127);
    let mut again = Vec::new();
    loop {
        let batch = j.claim("adt", 32).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let batch: Vec<_> = batch.into_iter().map(|c| c.id).collect();
        assert!(batch.windows(2).all(|w| w[0] < w[1]), "{batch:?}");
        again.extend(batch);
    }
    assert_eq!(again, ids);
    assert_eq!(j.claim("lab", 32).await.unwrap()[0].id, other);
}

/// Makes the insert of control id `LATE` wait, after its id is drawn,
/// for advisory lock 17; and an ingest with duplicate detection of
/// control id `P` wait, before any id is drawn, for its duplicate lock
/// (the journal's namespace, 0x67756963). This session holds both.
const HOLD_INSERTS: &str = "
CREATE FUNCTION hold_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.control_id = 'LATE' THEN PERFORM pg_advisory_xact_lock(17); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hold_insert AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION hold_insert();
SELECT pg_advisory_lock(17),
    pg_advisory_lock(1735747939, hashtext('adt' || chr(31) || 'eai' || chr(31) || 'P'))";

/// Waits until `n` sessions wait for an advisory lock.
async fn until_held(client: &Client, n: i64) {
    let sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    let start = Instant::now();
    while client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) < n {
        assert!(start.elapsed() < Duration::from_secs(30), "never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `future` once, so that its request is queued now, in this order.
async fn queue<F: std::future::Future + Unpin>(future: &mut F) {
    std::future::poll_fn(|cx| {
        let polled = std::pin::Pin::new(&mut *future).poll(cx);
        assert!(polled.is_pending(), "answered at once");
        std::task::Poll::Ready(())
    })
    .await
}

fn from(peer: &str, route: &str, control_id: &str) -> guichet_journal::NewMessage {
    let mut m = message(route, control_id, 1000);
    m.peer_addr = peer.to_string();
    m
}

/// Issue 17: ingest lanes commit out of id order. Sender A's LATE draws
/// its id, then sender B's messages are stored with higher ids and
/// claimed while LATE is not committed yet. Once it is, LATE must be
/// claimed before A's next message: a claim starting after the highest
/// id claimed so far would skip it while the backlog lasts, and deliver
/// A's messages out of order. (Needs two ingest lanes: on one,
/// LATE would queue behind B's batch and never be held.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_committed_after_higher_ids_were_claimed_is_claimed_before_its_senders_next() {
    let Some(db) = database().await else { return };
    let j = node_with_lanes(&db, 2).await;
    let (a, b) = ("10.0.0.1:1000", "10.0.0.2:1000");
    // a message claimed and delivered: the claims' position is past it
    let first = j.ingest(vec![from(a, "adt", "A0")]).await.unwrap()[0].id();
    assert_eq!(j.claim("adt", 1).await.unwrap()[0].id, first);
    j.record(first, crate::suite::fixtures::delivered(1))
        .await
        .unwrap();
    let admin = connect(db.url()).await;
    admin.batch_execute(HOLD_INSERTS).await.unwrap();
    // B's batch waits for its duplicate lock before drawing ids; the
    // claim, queued after it, waits for it; LATE, queued after the claim,
    // draws its id and waits on the other ingest lane
    let mut batch = vec![deduped(from(b, "adt", "P"), 0)];
    batch.extend(["B0", "B1", "B2"].map(|c| from(b, "adt", c)));
    let mut later = Box::pin(j.ingest(batch));
    let mut claimed = Box::pin(j.claim("adt", 4));
    let mut late = Box::pin(j.ingest(vec![from(a, "adt", "LATE")]));
    queue(&mut later).await;
    queue(&mut claimed).await;
    queue(&mut late).await;
    until_held(&admin, 2).await;
    let unlock = "SELECT pg_advisory_unlock(1735747939, \
                  hashtext('adt' || chr(31) || 'eai' || chr(31) || 'P'))";
    admin.batch_execute(unlock).await.unwrap();
    let later: Vec<_> = later.await.unwrap().into_iter().map(Ingested::id).collect();
    let claimed: Vec<_> = claimed.await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(claimed, later);
    let not_yet = tokio::time::timeout(Duration::from_millis(200), &mut late).await;
    assert!(not_yet.is_err(), "LATE answered before its commit");
    admin
        .batch_execute("SELECT pg_advisory_unlock(17)")
        .await
        .unwrap();
    let late = late.await.unwrap()[0].id();
    assert!(late < later[0], "{late:?} was committed in id order");
    let next = j.ingest(vec![from(a, "adt", "A1")]).await.unwrap()[0].id();
    assert_eq!(j.claim("adt", 1).await.unwrap()[0].id, late);
    let rest: Vec<_> = j.claim("adt", 10).await.unwrap();
    assert_eq!(rest.into_iter().map(|c| c.id).collect::<Vec<_>>(), [next]);
}

/// Senders stored on several lanes at once while the route is delivered:
/// each sender's messages are claimed once each, in the order it sent
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_sender_is_delivered_in_its_order_while_lanes_commit_at_once() {
    let Some(db) = database().await else { return };
    let j = node_with_lanes(&db, 2).await;
    let (senders, each) = (16, 40);
    let tasks: Vec<_> = (0..senders)
        .map(|sender| {
            let j = j.clone();
            tokio::spawn(async move {
                let peer = format!("10.0.1.{sender}:2000");
                for seq in 0..each {
                    let m = from(&peer, "adt", &format!("S{sender}-{seq}"));
                    j.ingest(vec![m]).await.unwrap();
                }
            })
        })
        .collect();
    let mut next_seq = vec![0; senders];
    let mut delivered = 0;
    let start = Instant::now();
    while delivered < senders * each {
        assert!(start.elapsed() < Duration::from_secs(60), "{delivered}");
        let claimed = j.claim("adt", 8).await.unwrap();
        for c in &claimed {
            let control_id = &c.meta.control_id;
            let (sender, seq) = control_id[1..].split_once('-').unwrap();
            let (sender, seq): (usize, usize) = (sender.parse().unwrap(), seq.parse().unwrap());
            assert_eq!(seq, next_seq[sender], "{control_id} out of order");
            next_seq[sender] += 1;
            j.record(c.id, crate::suite::fixtures::delivered(1))
                .await
                .unwrap();
        }
        delivered += claimed.len();
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(j.claim("adt", 8).await.unwrap().is_empty());
}

/// Two nodes claiming one route at once (as two lease holders could for
/// a moment if clocks drift) never take the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claiming_at_once_never_take_a_message_twice() {
    let Some(db) = database().await else { return };
    let (a, b) = (node(&db).await, node(&db).await);
    let ids = store_n(&a, "adt", 2000).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let drain = |j: Journal| {
        let (start, taken) = (start.clone(), taken.clone());
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            start.wait().await;
            let mut mine = Vec::new();
            while taken.load(SeqCst) < 2000 {
                let batch = j.claim("adt", 16).await.unwrap();
                let batch: Vec<_> = batch.into_iter().map(|c| c.id).collect();
                assert!(batch.windows(2).all(|w| w[0] < w[1]), "{batch:?}");
                taken.fetch_add(batch.len(), SeqCst);
                let records: Vec<_> = batch
                    .iter()
                    .map(|id| j.record(*id, crate::suite::fixtures::delivered(1)))
                    .collect();
                for record in records {
                    record.await.unwrap();
                }
                mine.extend(batch);
            }
            mine
        })
    };
    let (mine_a, mine_b) = (drain(a), drain(b));
    let (mine_a, mine_b) = (mine_a.await.unwrap(), mine_b.await.unwrap());
    assert!(
        !mine_a.is_empty() && !mine_b.is_empty(),
        "one node took all"
    );
    let mut all: Vec<_> = mine_a.into_iter().chain(mine_b).collect();
    all.sort();
    assert_eq!(all, ids, "each message claimed exactly once");
}

// ---- the database going away ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_reconnects_after_its_session_is_killed() {
    let Some(db) = database().await else { return };
    let journal = node(&db).await;
    assert!(try_ingest(&journal, "before").await.is_some());
    assert!(db.terminate_connections().await >= 2);
    let refused = ingest_until_stored(&journal, Duration::from_secs(10)).await;
    for i in 0..20 {
        assert!(try_ingest(&journal, &format!("after-{i}")).await.is_some());
    }
    // every message reported stored is there (a refused one may be too:
    // a session killed during its commit leaves the outcome unknown)
    let stored = control_ids(&db).await;
    let reported = ["before".to_string(), format!("R{refused}")]
        .into_iter()
        .chain((0..20).map(|i| format!("after-{i}")));
    for control_id in reported {
        assert!(
            stored.contains(&control_id),
            "{control_id} reported stored, missing"
        );
    }
    assert!(stored.len() <= 22 + refused, "{stored:?}");
    assert_eq!(
        journal.list(Filter::default()).await.unwrap().len(),
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_fails_fast_while_the_database_refuses_sessions_then_resumes() {
    let Some(db) = database().await else { return };
    let journal = node(&db).await;
    assert!(try_ingest(&journal, "before").await.is_some());
    let admin = db.admin().await;
    let name = db.name();
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    db.terminate_connections().await;
    for i in 0..5 {
        let start = Instant::now();
        assert_eq!(
            try_ingest(&journal, &format!("down-{i}")).await,
            None,
            "stored while down"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "a refusal took {:?}",
            start.elapsed()
        );
    }
    assert!(matches!(journal.stats().await, Err(JournalError::Query(_))));
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    ingest_until_stored(&journal, Duration::from_secs(10)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 2);
    assert_eq!(journal.list(Filter::default()).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_database_never_reports_an_ingest_as_stored() {
    let Some(db) = database().await else { return };
    let journal = node(&db).await;
    assert!(try_ingest(&journal, "before").await.is_some());
    let admin = db.admin().await;
    let name = db.name();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    db.terminate_connections().await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for seq in 0..5 {
                    assert_eq!(
                        try_ingest(&journal, &format!("ro-{i}-{seq}")).await,
                        None,
                        "stored read-only"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 1);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} RESET default_transaction_read_only"
        ))
        .await
        .unwrap();
    db.terminate_connections().await;
    ingest_until_stored(&journal, Duration::from_secs(10)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 2);
}

// ---- schema and connection settings ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_migrate_once() {
    let Some(db) = database().await else { return };
    let spec = StoreSpec::Postgres(db.url().to_string());
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let spec = spec.clone();
            tokio::spawn(async move { open(&spec, OpenOptions::default()).await.map(drop) })
        })
        .collect();
    for opened in opens {
        opened.await.unwrap().unwrap();
    }
    // One row per migration (messages, flows, the claim's index), each applied once.
    assert_eq!(
        count(&db, "SELECT count(*) FROM schema_migrations").await,
        3
    );
}

/// Issue 17: a journal written before the claim had its own index
/// (schema version 2) opens, gains the index, and keeps every message in
/// its state; the claim then takes the waiting ones in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_2_journal_is_migrated_and_keeps_its_messages() {
    let Some(db) = database().await else { return };
    let j = node(&db).await;
    let ids = store_n(&j, "adt", 6).await;
    assert_eq!(j.claim("adt", 3).await.unwrap().len(), 3);
    j.record(ids[0], crate::suite::fixtures::delivered(2000))
        .await
        .unwrap();
    j.record(ids[1], crate::suite::fixtures::retry(3000))
        .await
        .unwrap();
    drop(j);
    // back to the layout of version 2, as an older guichet left it
    connect(db.url())
        .await
        .batch_execute(
            "DROP INDEX messages_claimable; DELETE FROM schema_migrations WHERE version = 3",
        )
        .await
        .unwrap();
    let claimable_index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'messages_claimable'";
    assert_eq!(count(&db, claimable_index).await, 0);

    let j = node(&db).await;
    assert_eq!(count(&db, claimable_index).await, 1);
    assert_eq!(
        count(&db, "SELECT max(version)::BIGINT FROM schema_migrations").await,
        3
    );
    let states: Vec<_> = j
        .list(Filter::default())
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| (r.id, r.state.as_str()))
        .collect();
    let expected = [
        "delivered",
        "failed",
        "in_flight",
        "queued",
        "queued",
        "queued",
    ];
    assert_eq!(
        states,
        ids.iter().copied().zip(expected).collect::<Vec<_>>()
    );
    let claimed: Vec<_> = j.claim("adt", 10).await.unwrap();
    let claimed: Vec<_> = claimed.iter().map(|c| (c.id, c.body.clone())).collect();
    let waiting = [1, 3, 4, 5].map(|i| (ids[i], body(&format!("C{i}"))));
    assert_eq!(claimed, waiting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_from_a_newer_guichet_is_refused() {
    let Some(db) = database().await else { return };
    drop(node(&db).await);
    connect(db.url())
        .await
        .batch_execute("INSERT INTO schema_migrations VALUES (99, 0)")
        .await
        .unwrap();
    let spec = StoreSpec::Postgres(db.url().to_string());
    match open(&spec, OpenOptions::default()).await {
        Err(JournalError::Open { reason, .. }) => {
            assert!(reason.contains("newer guichet"), "{reason}")
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_password_never_appears_in_errors() {
    let Some(db) = database().await else { return };
    let url = db.url().replacen(":guichet@", ":not-the-password-4711@", 1);
    assert_ne!(
        url,
        db.url(),
        "the test expects the setup's role in the URL"
    );
    let error = open(&StoreSpec::Postgres(url), OpenOptions::default())
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(!shown.contains("not-the-password-4711"), "{shown}");
}

/// `prefer` falls back to plain TCP without a word: refused before any
/// connection (TLS itself is tested in `postgres_tls.rs`).
#[tokio::test]
async fn sslmode_prefer_is_refused_rather_than_silently_downgraded() {
    let spec =
        StoreSpec::Postgres("postgres://guichet:s3cret@db.invalid/guichet?sslmode=prefer".into());
    match open(&spec, OpenOptions::default()).await {
        Err(JournalError::Open { location, reason }) => {
            assert_eq!(location, "postgres://guichet@db.invalid:5432/guichet");
            assert!(reason.contains("does not downgrade silently"), "{reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

// ---- throughput ----

/// `cargo nextest run --release -p guichet-journal --test postgres --run-ignored only durable_ingest_rate --no-capture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn durable_ingest_rate_32_senders_1kib() {
    let Some(db) = database().await else { return };
    let journal = node(&db).await;
    let setting: String = connect(db.url())
        .await
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    for dedup in [false, true] {
        let (total, rate) = ingest_rate(&journal, dedup, Duration::from_secs(5)).await;
        println!(
            "durable ingest, 32 senders, 1 KiB bodies, duplicate detection {}: \
             {total} messages, {rate:.0} msgs/s (synchronous_commit={setting})",
            if dedup { "on" } else { "off" },
        );
    }
}

/// 32 senders each ingesting one message at a time for `run_for`.
async fn ingest_rate(journal: &Journal, dedup: bool, run_for: Duration) -> (u64, f64) {
    let start = Instant::now();
    let senders: Vec<_> = (0..32)
        .map(|sender| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let mut sent = 0u64;
                while start.elapsed() < run_for {
                    let at = now_ms();
                    let mut m = message("adt", &format!("S{sender}-{dedup}-{sent}"), at);
                    m.body = vec![b'x'; 1024];
                    m.dedup_since_ms = dedup.then_some(at - 3_600_000);
                    journal.ingest(vec![m]).await.unwrap();
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut total = 0;
    for sender in senders {
        total += sender.await.unwrap();
    }
    (total, total as f64 / start.elapsed().as_secs_f64())
}
