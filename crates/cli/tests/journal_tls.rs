//! A store-and-forward route whose journal is a PostgreSQL reached over
//! TLS with `sslmode=verify-full`, end to end with the real binary: the
//! server (ssl = on, hostssl lines only, a certificate from the test PKI)
//! is the journal tests' own, started for this test.

use std::time::{Duration, Instant};

use crate::common::{free_port, show, Bench, Proc};
use guichet_testsupport::pg_cluster::{TlsCluster, OPEN_DB, PASSWORD, SERVER_NAME};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

#[test]
fn store_and_forward_over_a_verify_full_journal_delivers_every_message() {
    let Some(cluster) = TlsCluster::start() else {
        return;
    };
    block_on(cluster.create_databases());
    let bench = Bench::new();
    // A relative sslrootcert: taken from the config's folder.
    std::fs::copy(cluster.pki.path().join("ca.pem"), bench.path("db-ca.pem")).unwrap();
    let receiver_port = free_port();
    let _receiver = Proc::spawn("listen", {
        let mut cmd = std::process::Command::new(crate::common::guichet_bin());
        cmd.args(["listen", "--on", &format!("127.0.0.1:{receiver_port}")]);
        cmd
    });
    let store = format!(
        "postgres://guichet:{PASSWORD}@{SERVER_NAME}:{}/{OPEN_DB}?hostaddr=127.0.0.1\
         &sslmode=verify-full&sslrootcert=db-ca.pem",
        cluster.port
    );
    let config = format!(
        "[journal]\nstore = \"{store}\"\nnode = \"a\"\n\n\
         [[route]]\nname = \"adt\"\nkind = \"mllp\"\ndelivery = \"store-and-forward\"\n\
         listen = \"127.0.0.1:0\"\nforward = \"127.0.0.1:{receiver_port}\"\n\
         retry_initial = \"50ms\"\nretry_max = \"300ms\"\n"
    );
    let path = bench.write("guichet.toml", &config);
    let check = bench.ok(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        check.contains(&format!(
            "ok      [journal] store: TLS, certificate and name checked against {} (sslmode=verify-full)",
            bench.p("db-ca.pem")
        )),
        "{check}"
    );
    assert!(!check.contains(PASSWORD), "{check}");

    let gateway = bench.run("guichet.toml", &config);
    let port = gateway.route_port("adt");
    let sent = bench.guichet(&[
        "send",
        "--to",
        &format!("127.0.0.1:{port}"),
        "--template",
        "adt-a01",
        "--count",
        "5",
    ]);
    assert!(sent.status.success(), "{}", show(&sent));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = bench.ok(&["journal", "-c", "guichet.toml", "list", "--json"]);
        let delivered = listed
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["state"] == "delivered")
            .count();
        if delivered == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered:\n{listed}\n{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions: Vec<bool> = block_on(cluster.journal_sessions(OPEN_DB))
        .into_iter()
        .map(|(ssl, _)| ssl)
        .collect();
    assert!(
        sessions.len() >= 2 && sessions.iter().all(|ssl| *ssl),
        "{sessions:?}"
    );
    assert!(!gateway.log().contains(PASSWORD), "{}", gateway.log());
    assert!(
        !gateway.log().contains("journal database:"),
        "no transport warning expected:\n{}",
        gateway.log()
    );
    drop(gateway);

    // The same database without authenticating it: it works, and start-up
    // says what is missing.
    let unverified = format!(
        "postgres://guichet:{PASSWORD}@127.0.0.1:{}/{OPEN_DB}?sslmode=require",
        cluster.port
    );
    let gateway = bench.run("require.toml", &config.replace(&store, &unverified));
    let warning = gateway.wait_line("the transport warning", |l| l.contains("journal database:"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("sslmode=require encrypts but does not authenticate"),
        "{warning}"
    );
    assert!(!warning.contains(PASSWORD), "{warning}");
    gateway.route_port("adt");
}
