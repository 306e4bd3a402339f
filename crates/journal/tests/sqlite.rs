//! The SQLite backend: the shared suite on a file in a temporary folder,
//! then what only a file can get wrong (mode, damage, group commit).

use std::path::{Path, PathBuf};

use crate::suite::{Harness, Skip};
use guichet_journal::StoreSpec;

/// One journal file per case, in its own temporary folder.
async fn fresh(_test: &'static str) -> Result<Harness, Skip> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("journal.db");
    let folder = dir.path().to_path_buf();
    let harness = Harness::from_spec(StoreSpec::Sqlite(path), dir);
    Ok(harness.with_dump(move || {
        let folder = folder.clone();
        async move { read_folder(&folder) }
    }))
}

/// Every byte of every file in `folder`: the database, its WAL, its
/// shared memory.
fn read_folder(folder: &Path) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .expect("the journal folder")
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| std::fs::read(file).expect("a journal file"))
        .collect()
}

journal_suite!(fresh);

// ---- SQLite only ----

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::suite::fixtures::{body, message, store, store_n};
use guichet_journal::{Ingested, IntegrityCheck, Journal, JournalError, OpenOptions};
use tempfile::TempDir;

fn journal_path(dir: &TempDir) -> PathBuf {
    dir.path().join("journal.db")
}

async fn open(path: &Path) -> Result<Journal, JournalError> {
    guichet_journal::open(
        &StoreSpec::Sqlite(path.to_path_buf()),
        OpenOptions::default(),
    )
    .await
}

/// A journal holding `n` stored messages, closed again.
async fn closed_journal(n: usize) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    for chunk in 0..n.div_ceil(50) {
        let batch = (0..50.min(n - chunk * 50))
            .map(|i| message("adt", &format!("C{chunk}-{i}"), 1000))
            .collect();
        journal.ingest(batch).await.unwrap();
    }
    drop(journal);
    wait_closed(&path).await;
    (dir, path)
}

/// Waits until every connection to `path` has closed: the last one to
/// close checkpoints the WAL and deletes it.
async fn wait_closed(path: &Path) {
    let wal = side_file(path, "-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.exists() {
        assert!(
            Instant::now() < deadline,
            "the journal's connections did not close"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The refusal's text, which must name the file.
async fn refusal(path: &Path) -> String {
    match open(path).await {
        Err(e @ JournalError::Open { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            text
        }
        Err(other) => panic!("expected an Open error, got {other:?}"),
        Ok(_) => panic!("{} was opened", path.display()),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_journal_is_private_and_alone_in_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    store(&journal, message("adt", "C1", 1000)).await;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&side_file(&path, "-wal")), 0o600);
    assert_eq!(mode(&side_file(&path, "-shm")), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["journal.db", "journal.db-shm", "journal.db-wal"]);
}

#[tokio::test]
async fn a_missing_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("journal.db");
    let text = refusal(&path).await;
    assert!(text.contains("does not exist"), "{text}");
    assert!(!path.exists());
}

#[tokio::test]
async fn an_empty_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    std::fs::write(&path, b"").unwrap();
    let text = refusal(&path).await;
    assert!(
        text.contains("is empty (0 bytes)") && text.contains("backup"),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}

#[tokio::test]
async fn a_file_of_random_bytes_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &noise).unwrap();
    let text = refusal(&path).await;
    assert!(text.contains("is not an SQLite database"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), noise);
}

#[tokio::test]
async fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE patients (name TEXT); INSERT INTO patients VALUES ('x');")
        .unwrap();
    drop(conn);
    let text = refusal(&path).await;
    assert!(text.contains("not a guichet journal"), "{text}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "the foreign database was changed");
}

#[tokio::test]
async fn a_truncated_journal_is_refused() {
    let (_dir, path) = closed_journal(200).await;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len > 16 * 4096,
        "the journal is too small to truncate: {len}"
    );
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let text = refusal(&path).await;
    assert!(
        text.contains("is truncated") && text.contains(&format!("{} bytes", len / 2)),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len / 2);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(50).unwrap();
    drop(file);
    let text = refusal(&path).await;
    assert!(text.contains("is truncated: 50 bytes"), "{text}");
}

/// Overwrites four pages in the middle of the file.
fn damage_the_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let pages = bytes.len() / page;
    assert!(pages > 16, "{pages} pages");
    let middle = pages / 2 * page;
    bytes[middle..middle + 4 * page].fill(0x5a);
    std::fs::write(path, &bytes).unwrap();
}

/// With the pages checked in the background, a damaged journal opens
/// (start-up does not wait for every page to be read); once the check
/// finds the damage, every ingest is refused with the reason.
#[tokio::test]
async fn a_damaged_journal_checked_in_the_background_refuses_ingests() {
    let (_dir, path) = closed_journal(200).await;
    damage_the_middle(&path);
    let options = OpenOptions {
        check: IntegrityCheck::Background,
        ..OpenOptions::default()
    };
    let spec = StoreSpec::Sqlite(path.clone());
    let journal = guichet_journal::open(&spec, options).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match journal.ingest(vec![message("adt", "D1", 5000)]).await {
            Err(JournalError::Unavailable(why)) if why.contains("is damaged") => {
                assert!(why.contains(&path.display().to_string()), "{why}");
                break;
            }
            other => assert!(Instant::now() < deadline, "still taken: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_journal_damaged_in_the_middle_is_refused() {
    let (_dir, path) = closed_journal(200).await;
    damage_the_middle(&path);
    let text = refusal(&path).await;
    assert!(
        text.contains("is damaged") && text.contains("backup"),
        "{text}"
    );
}

#[tokio::test]
async fn a_journal_from_a_newer_guichet_is_refused() {
    let (_dir, path) = closed_journal(1).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (99, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let text = refusal(&path).await;
    assert!(text.contains("newer guichet (schema version 99"), "{text}");
}

/// The tables of a journal written by guichet before schema version 3,
/// as those versions created them: bodies inline in `messages`.
/// Copied here, not taken from the code, so that a change to the code's
/// migrations cannot change what an old file looks like.
const OLD_V1: &str = "
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at_ms INTEGER NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    peer_app TEXT,
    peer_addr TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    receiving_application TEXT NOT NULL,
    receiving_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    version TEXT NOT NULL,
    body_len INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('queued', 'in_flight', 'failed', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    redelivered INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    ack_code TEXT,
    next_attempt_at_ms INTEGER,
    finished_at_ms INTEGER,
    body BLOB
);
CREATE INDEX messages_pending ON messages (route, id)
    WHERE state IN ('queued', 'in_flight', 'failed');
CREATE INDEX messages_dead ON messages (route) WHERE state = 'dead';
CREATE INDEX messages_dedup ON messages (route, dedup_key, control_id, received_at_ms);
CREATE INDEX messages_received ON messages (received_at_ms);
CREATE INDEX messages_finished ON messages (finished_at_ms) WHERE body IS NOT NULL;
CREATE TABLE leases (
    route TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    message_id INTEGER
);
INSERT INTO schema_migrations (version, applied_at_ms) VALUES (1, 0);
";

const OLD_V2: &str = "
CREATE TABLE flows (
    route TEXT NOT NULL,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    application TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    message_type TEXT NOT NULL,
    tls_in INTEGER NOT NULL,
    tls_out INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    hits INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (route, kind, direction, application, source, target, message_type,
                 tls_in, tls_out, outcome)
);
INSERT INTO schema_migrations (version, applied_at_ms) VALUES (2, 0);
";

/// Schema 3 as its guichet migrated a journal: bodies in their own
/// table; the states' CHECK and the pending index still `IN` lists.
const OLD_V3: &str = "
CREATE TABLE bodies (
    id INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
INSERT INTO bodies (id, body) SELECT id, body FROM messages WHERE body IS NOT NULL;
ALTER TABLE messages ADD COLUMN has_body INTEGER NOT NULL DEFAULT 1;
UPDATE messages SET has_body = 0 WHERE body IS NULL;
DROP INDEX messages_finished;
ALTER TABLE messages DROP COLUMN body;
CREATE INDEX messages_finished ON messages (finished_at_ms) WHERE has_body = 1;
INSERT INTO schema_migrations (version, applied_at_ms) VALUES (3, 0);
";

/// An old journal at `path` of schema `version` (1; 2 with `flows`; 3
/// with bodies apart) holding, by id: 1 queued, 2 delivered with its
/// body, 3 delivered with its body pruned, 4 failed; and a 5th record
/// deleted by a prune, whose id must not come back.
fn old_journal(path: &Path, version: u32) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(OLD_V1).unwrap();
    if version >= 2 {
        conn.execute_batch(OLD_V2).unwrap();
    }
    let rows: [(&str, &str, Option<i64>); 5] = [
        ("O1", "queued", None),
        ("O2", "delivered", Some(2000)),
        ("O3", "delivered", Some(2000)),
        ("O4", "failed", None),
        ("O5", "delivered", Some(2000)),
    ];
    for (cid, state, finished) in rows {
        conn.execute(
            "INSERT INTO messages (route, received_at_ms, peer_app, peer_addr, dedup_key,
                 sending_application, sending_facility, receiving_application,
                 receiving_facility, message_type, control_id, version, body_len, sealed,
                 state, attempts, finished_at_ms, body)
             VALUES ('adt', 1000, 'eai', '127.0.0.1:40000', 'eai', 'EAI', 'CHU', 'DPI', 'CHU',
                 'ADT^A01^ADT_A01', ?1, '2.5', ?2, 0, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                cid,
                body(cid).len() as i64,
                state,
                i64::from(state != "queued"),
                finished,
                body(cid)
            ],
        )
        .unwrap();
    }
    conn.execute_batch(
        "UPDATE messages SET body = NULL WHERE id = 3; DELETE FROM messages WHERE id = 5",
    )
    .unwrap();
    if version >= 3 {
        conn.execute_batch(OLD_V3).unwrap();
    }
    conn.close().unwrap();
}

/// A journal of schema 2 (bodies inline) opens with every message, body
/// and state kept, and goes on: claims, prunes, new ids after the old.
#[tokio::test]
async fn a_journal_with_bodies_inline_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    old_journal(&path, 2);
    let journal = open(&path).await.unwrap();
    let records = journal
        .list(crate::suite::fixtures::filter())
        .await
        .unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.id.0, r.meta.control_id.as_str(), r.state, r.body_len))
        .collect();
    let len = |cid| Some(body(cid).len() as u64);
    use guichet_journal::{MessageId, State};
    assert_eq!(
        seen,
        [
            (4, "O4", State::Failed, len("O4")),
            (3, "O3", State::Delivered, None),
            (2, "O2", State::Delivered, len("O2")),
            (1, "O1", State::Queued, len("O1")),
        ]
    );
    assert_eq!(journal.body(MessageId(2)).await.unwrap(), body("O2"));
    assert!(matches!(
        journal.body(MessageId(3)).await,
        Err(JournalError::NoBody(MessageId(3)))
    ));
    let claimed = journal.claim("adt", 10).await.unwrap();
    let claimed: Vec<_> = claimed.iter().map(|c| (c.id.0, c.body.clone())).collect();
    assert_eq!(claimed, [(1, body("O1")), (4, body("O4"))]);
    let next = store(&journal, message("adt", "N1", 3000)).await;
    assert_eq!(next, MessageId(6), "an id of the old journal came back");
    assert_eq!(journal.body(next).await.unwrap(), body("N1"));
    // the delivered body goes at a prune; the pruned one is not counted
    let pruned = journal.prune(2500, 0).await.unwrap();
    assert_eq!(pruned, crate::suite::fixtures::report(1, 0));
    assert!(matches!(
        journal.body(MessageId(2)).await,
        Err(JournalError::NoBody(MessageId(2)))
    ));
    let pruned = journal.prune(2500, 1500).await.unwrap();
    assert_eq!(pruned, crate::suite::fixtures::report(0, 2));
    drop(journal);
    wait_closed(&path).await;
    // and the migrated file opens again as it is
    let journal = open(&path).await.unwrap();
    assert_eq!(journal.body(MessageId(4)).await.unwrap(), body("O4"));
}

/// A journal of schema 3 (the states' CHECK and the pending index as
/// `IN` lists) is rebuilt at its next opening: every message, body and
/// state kept, duplicates of its messages still found, the ids of pruned
/// messages not given again, an unknown state still refused.
#[tokio::test]
async fn a_journal_of_schema_3_is_rebuilt_with_its_messages() {
    use crate::suite::fixtures::{deduped, filter, ingest_one};
    use guichet_journal::{MessageId, State};
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    old_journal(&path, 3);
    let journal = open(&path).await.unwrap();
    let records = journal.list(filter()).await.unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.id.0, r.meta.control_id.as_str(), r.state, r.body_len))
        .collect();
    let len = |cid| Some(body(cid).len() as u64);
    assert_eq!(
        seen,
        [
            (4, "O4", State::Failed, len("O4")),
            (3, "O3", State::Delivered, None),
            (2, "O2", State::Delivered, len("O2")),
            (1, "O1", State::Queued, len("O1")),
        ]
    );
    let stats = journal.stats().await.unwrap();
    let stats: Vec<_> = stats
        .iter()
        .map(|s| (s.route.as_str(), s.depth, s.in_flight, s.failed, s.dead))
        .collect();
    assert_eq!(stats, [("adt", 2, 0, 1, 0)]);
    let again = ingest_one(&journal, deduped(message("adt", "O2", 3000), 0)).await;
    assert!(
        matches!(again, Ingested::Duplicate(MessageId(2))),
        "{again:?}"
    );
    let claimed = journal.claim("adt", 10).await.unwrap();
    let claimed: Vec<_> = claimed.iter().map(|c| (c.id.0, c.body.clone())).collect();
    assert_eq!(claimed, [(1, body("O1")), (4, body("O4"))]);
    let next = store(&journal, message("adt", "N1", 3000)).await;
    assert_eq!(next, MessageId(6), "an id of the old journal came back");
    drop(journal);
    wait_closed(&path).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 4);
    let refused = conn.execute("UPDATE messages SET state = 'lost' WHERE id = 1", []);
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("CHECK")),
        "{refused:?}"
    );
}

/// A journal written before observed flows existed (schema version 1)
/// gains the flows table, and its bodies their own, at its next opening,
/// its messages kept.
#[tokio::test]
async fn a_journal_of_schema_1_gains_the_flows_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    old_journal(&path, 1);
    let journal = open(&path).await.unwrap();
    assert_eq!(
        journal
            .list(crate::suite::fixtures::filter())
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        journal.body(guichet_journal::MessageId(1)).await.unwrap(),
        body("O1")
    );
    let key = guichet_journal::FlowKey {
        route: "adt".into(),
        kind: "mllp".into(),
        direction: "relay".into(),
        application: String::new(),
        source: "EAI^CHU".into(),
        target: "DPI^CHU".into(),
        message_type: "ADT^A01".into(),
        tls_in: false,
        tls_out: true,
    };
    let count = guichet_journal::FlowCount {
        key,
        outcome: "AA".into(),
        count: 2,
        first_ms: 1,
        last_ms: 2,
    };
    journal.add_flows(vec![count]).await.unwrap();
    assert_eq!(journal.flows().await.unwrap()[0].count, 2);
}

/// What a crash leaves (the file and its WAL, with commits not yet
/// checkpointed) opens, with every committed message.
#[tokio::test]
async fn a_journal_copied_with_its_wal_opens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    let ids = store_n(&journal, "adt", 300).await;
    let copy = tempfile::tempdir().unwrap();
    let copied = journal_path(&copy);
    std::fs::copy(&path, &copied).unwrap();
    std::fs::copy(side_file(&path, "-wal"), side_file(&copied, "-wal")).unwrap();
    let reopened = open(&copied).await.unwrap();
    let claimed = reopened.claim("adt", 1000).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    assert_eq!(claimed[299].body, body("C299"));
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    let second = journal.clone();
    store(&journal, message("adt", "C1", 1000)).await;
    drop(journal);
    store(&second, message("adt", "C2", 1000)).await;
    assert!(side_file(&path, "-wal").exists());
    drop(second);
    wait_closed(&path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingests_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&journal_path(&dir)).await.unwrap();
    let before = journal.commits();
    for i in 0..5 {
        store(&journal, message("adt", &format!("S{i}"), 1000)).await;
    }
    assert_eq!(
        journal.commits() - before,
        5,
        "one commit per awaited ingest"
    );
    let before = journal.commits();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(
                async move { store(&journal, message("adt", &format!("C{i}"), 1000)).await },
            )
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    let commits = journal.commits() - before;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64);
    assert!(
        (1..=16).contains(&commits),
        "{commits} commits for 64 concurrent ingests"
    );
}

/// A batch that cannot commit answers every request with the failure, and
/// stores none of them; reads go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_cannot_commit_stores_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    let first = store(&journal, message("adt", "C0", 1000)).await;
    let intruder = rusqlite::Connection::open(&path).unwrap();
    intruder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let before = journal.commits();
    let ingests: Vec<_> = (1..=8)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                journal
                    .ingest(vec![message("adt", &format!("C{i}"), 1000)])
                    .await
            })
        })
        .collect();
    // reads do not wait for the write lock
    let started = Instant::now();
    assert_eq!(journal.list(Default::default()).await.unwrap().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
    for ingest in ingests {
        match ingest.await.unwrap() {
            Err(e @ JournalError::Unavailable(_)) => assert!(!e.to_string().contains("DUPONT")),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(journal.commits(), before);
    intruder.execute_batch("ROLLBACK").unwrap();
    let listed: Vec<_> = journal
        .list(Default::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![first]);
    let next = store(&journal, message("adt", "C9", 1000)).await;
    assert!(next > first);
}

/// Every message whose ingest returned survives a SIGKILL of the process
/// right after, with its body, while a delivery claims and records
/// beside the ingests (commits not waiting for the disk, interleaved with
/// those that do). The child is this test binary running
/// `child_ingests_until_killed`.
#[tokio::test]
async fn acknowledged_messages_survive_sigkill() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite::child_ingests_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GUICHET_JOURNAL_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (id, cid) = rest.split_once(' ').unwrap();
            acked.push((id.parse::<i64>().unwrap(), cid.to_string()));
            if acked.len() == 300 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 300, "the child stopped early");
    let journal = open(&path).await.unwrap();
    for (id, cid) in &acked {
        let id = guichet_journal::MessageId(*id);
        assert_eq!(journal.get(id).await.unwrap().meta.control_id, *cid);
        assert_eq!(journal.body(id).await.unwrap(), body(cid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the child of acknowledged_messages_survive_sigkill"]
async fn child_ingests_until_killed() {
    let Some(path) = std::env::var_os("GUICHET_JOURNAL_CHILD") else {
        return;
    };
    let journal = open(Path::new(&path)).await.unwrap();
    let delivery = {
        let journal = journal.clone();
        tokio::spawn(async move {
            loop {
                let claimed = journal.claim("adt", 16).await.unwrap();
                let outcomes = claimed
                    .iter()
                    .map(|c| (c.id, crate::suite::fixtures::delivered(2000)))
                    .collect();
                journal.record_many(outcomes).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for seq in 0.. {
                    let cid = format!("K{task}-{seq}");
                    let id = store(&journal, message("adt", &cid, 1000)).await;
                    println!("ACK {id} {cid}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    delivery.await.unwrap();
}

/// `cargo test --release -p guichet-journal --test sqlite -- --ignored
/// --nocapture ingest_throughput`: 32 tasks, 1 KiB messages, one message
/// per durable ingest.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn ingest_throughput() {
    const TASKS: usize = 32;
    const PER_TASK: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&journal_path(&dir)).await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let journal = journal.clone();
            tokio::spawn(async move {
                for seq in 0..PER_TASK {
                    let mut m = message("adt", &format!("T{task}-{seq}"), 1000);
                    m.body.resize(1024, b'x');
                    let out = journal.ingest(vec![m]).await.unwrap();
                    assert!(matches!(out[..], [Ingested::Stored(_)]));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = TASKS * PER_TASK;
    println!(
        "{total} messages of 1 KiB from {TASKS} tasks in {:.2} s: {:.0} msgs/s, {} commits ({:.1} messages per fsync)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        journal.commits(),
        total as f64 / journal.commits() as f64
    );
}

/// Committed pages reach the database file while the journal stays open
/// and no single commit is large enough for the writer to checkpoint by
/// itself: the checkpoint thread copies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_copied_back_while_the_journal_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = open(&path).await.unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    for chunk in 0..20 {
        let batch = (0..50)
            .map(|i| message("adt", &format!("W{chunk}-{i}"), 1000))
            .collect();
        journal.ingest(batch).await.unwrap();
    }
    let wal = std::fs::metadata(side_file(&path, "-wal")).unwrap().len();
    assert!(wal > 64 * 4096, "the WAL holds too little to tell: {wal}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(
            Instant::now() < deadline,
            "nothing was copied back into the database file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // and what was copied reads back
    let claimed = journal.claim("adt", 1000).await.unwrap();
    assert_eq!(claimed.len(), 1000);
}
