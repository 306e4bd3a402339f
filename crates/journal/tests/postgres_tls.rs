//! The journal on PostgreSQL over TLS, against a real server with
//! `ssl = on`, a certificate from the test PKI, and `hostssl`-only access
//! (see `common`): libpq's `sslmode` semantics, client certificates, and
//! errors that say what is wrong without the password.

use std::os::unix::fs::PermissionsExt;

use crate::suite::fixtures::{body, message};
use guichet_journal::{
    open, Journal, JournalError, OpenOptions, PgSslMode, PgTransport, StoreSpec,
};
use guichet_testsupport::pg_cluster::{TlsCluster, CERT_DB, OPEN_DB, PASSWORD, SERVER_NAME};
use guichet_testsupport::samples::now_ms;

async fn cluster() -> Option<TlsCluster> {
    let cluster = TlsCluster::start()?;
    cluster.create_databases().await;
    Some(cluster)
}

/// Two ingest connections, so that every kind of session is checked.
async fn journal(url: &str) -> Result<Journal, JournalError> {
    let options = OpenOptions {
        ingest_connections: 2,
        ..OpenOptions::default()
    };
    open(&StoreSpec::Postgres(url.to_string()), options).await
}

/// The error text of a journal that must not open; it never carries the
/// password.
async fn refused(url: &str) -> String {
    let error = journal(url).await.expect_err("the journal must not open");
    let text = error.to_string();
    eprintln!("refused as expected: {text}");
    assert!(matches!(error, JournalError::Open { .. }), "{text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    text
}

/// Stores one message and delivers it back: the whole path over TLS.
async fn round_trip(journal: &Journal) {
    journal
        .ingest(vec![message("adt", "TLS1", now_ms())])
        .await
        .unwrap();
    let claimed = journal.claim("adt", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].meta.control_id, "TLS1");
    assert_eq!(claimed[0].body, body("TLS1"));
}

fn verify_full(cluster: &TlsCluster, ca: &str) -> String {
    let params = format!(
        "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        cluster.pki_file(ca)
    );
    cluster.url(SERVER_NAME, OPEN_DB, &params)
}

#[tokio::test]
async fn verify_full_with_the_right_ca_stores_and_delivers() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let url = verify_full(&cluster, "ca.pem");
    let journal = journal(&url).await.unwrap();
    round_trip(&journal).await;
    let sessions = cluster.journal_sessions(OPEN_DB).await;
    assert_eq!(
        sessions.len(),
        4,
        "writer, 2 ingest lanes and reader: {sessions:?}"
    );
    assert!(sessions.iter().all(|(ssl, _)| *ssl), "{sessions:?}");
    let transport = PgTransport::inspect(&url).unwrap();
    assert_eq!(transport.mode, PgSslMode::VerifyFull);
    assert!(transport.local, "hostaddr is loopback: {transport:?}");
}

/// The writer reconnects after the database ends its session: over TLS
/// again (the server admits nothing else).
#[tokio::test]
async fn a_lost_session_comes_back_over_tls() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let journal = journal(&verify_full(&cluster, "ca.pem")).await.unwrap();
    round_trip(&journal).await;
    let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
               WHERE application_name LIKE 'guichet-journal-%'";
    let ended: i64 = cluster
        .admin("postgres")
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 4, "writer, 2 ingest lanes and reader");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        let stored = journal
            .ingest(vec![message("adt", &format!("AGAIN{n}"), now_ms())])
            .await;
        if stored.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused: {stored:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sessions = cluster.journal_sessions(OPEN_DB).await;
    assert!(
        !sessions.is_empty() && sessions.iter().all(|(ssl, _)| *ssl),
        "{sessions:?}"
    );
}

#[tokio::test]
async fn wrong_ca_is_refused_with_a_clear_error() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let text = refused(&verify_full(&cluster, "other/ca.pem")).await;
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("is it the CA that signed it?"), "{text}");
    assert!(
        text.contains(&format!("postgres://guichet@{SERVER_NAME}:")),
        "{text}"
    );
}

#[tokio::test]
async fn name_mismatch_is_refused_under_verify_full_but_accepted_under_verify_ca() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let ca = cluster.pki_file("ca.pem");
    let full = cluster.url(
        "127.0.0.1",
        OPEN_DB,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let text = refused(&full).await;
    assert!(text.contains("not valid for name"), "{text}");
    assert!(text.contains("does not name the host dialled"), "{text}");

    let chain_only = cluster.url(
        "127.0.0.1",
        OPEN_DB,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    round_trip(&journal(&chain_only).await.unwrap()).await;
    // libpq: `require` with a root certificate checks the chain too.
    let other = cluster.pki_file("other/ca.pem");
    let require_other = cluster.url(
        "127.0.0.1",
        OPEN_DB,
        &format!("sslmode=require&sslrootcert={other}"),
    );
    assert!(refused(&require_other).await.contains("UnknownIssuer"));
}

#[tokio::test]
async fn require_encrypts_without_verifying_the_server() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let url = cluster.url("127.0.0.1", OPEN_DB, "sslmode=require");
    let journal = journal(&url).await.unwrap();
    round_trip(&journal).await;
    let sessions = cluster.journal_sessions(OPEN_DB).await;
    assert!(
        !sessions.is_empty() && sessions.iter().all(|(ssl, _)| *ssl),
        "{sessions:?}"
    );
    let transport = PgTransport::inspect(&url).unwrap();
    assert_eq!(transport.mode, PgSslMode::Require);
    assert!(transport
        .weakness()
        .unwrap()
        .contains("does not authenticate"));
}

#[tokio::test]
async fn client_certificate_required_by_the_server_is_presented() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let base = format!(
        "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        cluster.pki_file("ca.pem")
    );
    let without = cluster.url(SERVER_NAME, CERT_DB, &base);
    let text = refused(&without).await;
    assert!(
        text.contains("requires a valid client certificate"),
        "{text}"
    );
    assert!(text.contains("give sslcert and sslkey"), "{text}");

    let with = format!(
        "{}&sslcert={}&sslkey={}",
        cluster.url(SERVER_NAME, CERT_DB, &base),
        cluster.pki_file("guichet.pem"),
        cluster.pki_file("guichet.key")
    );
    let journal = journal(&with).await.unwrap();
    round_trip(&journal).await;
    let sessions = cluster.journal_sessions(CERT_DB).await;
    assert!(!sessions.is_empty(), "no session on {CERT_DB}");
    for (ssl, dn) in sessions {
        assert!(ssl);
        assert_eq!(dn.as_deref(), Some("/CN=guichet"));
    }
}

#[tokio::test]
async fn plain_connection_to_a_hostssl_only_server_is_refused() {
    let Some(cluster) = cluster().await else {
        return;
    };
    for params in ["sslmode=disable", ""] {
        let text = refused(&cluster.url("127.0.0.1", OPEN_DB, params)).await;
        assert!(text.contains("no pg_hba.conf entry"), "{text}");
        assert!(text.contains("no encryption"), "{text}");
        assert!(text.contains("set sslmode=verify-full"), "{text}");
    }
}

/// No server needed: refused when the URL is read.
#[test]
fn tls_over_a_unix_socket_is_refused() {
    let url = "postgres://guichet@%2Fvar%2Frun%2Fpostgresql/journal?sslmode=require";
    let error = PgTransport::inspect(url).unwrap_err().to_string();
    assert!(error.contains("TLS on TCP only"), "{error}");
}

/// No server needed: the key is refused when the URL is read.
#[test]
fn client_key_readable_by_others_is_refused() {
    let pki = tempfile::tempdir().unwrap();
    guichet_pki::init(pki.path(), &guichet_pki::CaOptions::default()).unwrap();
    let files = guichet_pki::issue(pki.path(), &guichet_pki::IssueRequest::new("guichet")).unwrap();
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!(
        "postgres://guichet:{PASSWORD}@db.example/journal?sslmode=verify-full\
         &sslrootcert={}&sslcert={}&sslkey={}",
        pki.path().join("ca.pem").display(),
        files.cert.display(),
        files.key.display()
    );
    let error = PgTransport::inspect(&url).unwrap_err().to_string();
    assert!(error.contains("chmod 600"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let transport = PgTransport::inspect(&url).unwrap();
    assert_eq!(transport.client_cert.as_deref(), Some(files.cert.as_path()));
    assert_eq!(transport.weakness(), None);
}
