//! The sender against the listener over plain TCP on 127.0.0.1, and each
//! against hand-written peers that misbehave.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{bounded, localhost, run, template, Listener};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guichet_hl7::{AckCode, AckSummary, Message, MllpCodec};
use guichet_testkit::{
    AckPolicy, Input, ListenEvent, ListenOptions, Outcome, SendOptions, Template,
};
use guichet_testsupport::mllp::{by_id, AckPlan, MllpBackend, Reply};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

fn options(to: String, count: u64) -> SendOptions {
    SendOptions {
        count: Some(count),
        ack_timeout: Duration::from_secs(5),
        ..SendOptions::new(to)
    }
}

#[tokio::test]
async fn aa_accepts_every_message_on_one_connection() {
    let mut listener = Listener::with_policy(AckPolicy::Aa).await;
    let (summary, results) = run(&options(listener.to(), 5), template(Template::AdtA01)).await;

    assert!(summary.all_accepted(), "{summary}");
    assert_eq!(
        (summary.sent, summary.accepted, summary.connections),
        (5, 5, 1)
    );
    assert!(summary.p50().is_some() && summary.p99() >= summary.p50());
    assert_eq!(results.len(), 5);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.ack, Some(AckCode::AA));
        assert!(r.msa2_matches);
        assert_eq!(r.outcome, Outcome::Accepted);
        assert_eq!(r.error, None);
        assert_eq!(r.message_type, "ADT^A01^ADT_A01");
        assert_eq!(r.new_connection, i == 0);
    }

    let received = listener.messages(5).await;
    let sent: Vec<_> = results.iter().map(|r| r.control_id.clone()).collect();
    let seen: Vec<_> = received
        .iter()
        .map(|m| m.header.as_ref().unwrap().control_id.clone())
        .collect();
    assert_eq!(seen, sent, "received in order, one connection");
    assert!(received.iter().all(|m| m.conn == received[0].conn));
    assert!(received.iter().all(|m| m.ack == Some(AckCode::AA)));
    let stats = listener.handle.stats();
    assert_eq!((stats.connections, stats.messages), (1, 5));
}

#[tokio::test]
async fn ae_and_ar_are_errors() {
    for (policy, code) in [(AckPolicy::Ae, AckCode::AE), (AckPolicy::Ar, AckCode::AR)] {
        let listener = Listener::with_policy(policy).await;
        let (summary, results) = run(&options(listener.to(), 3), template(Template::OruR01)).await;
        assert!(!summary.all_accepted(), "{summary}");
        assert_eq!((summary.sent, summary.errors, summary.accepted), (3, 3, 0));
        assert_eq!(summary.connections, 1, "an error keeps the connection");
        for r in &results {
            assert_eq!(
                (r.ack, r.outcome, r.msa2_matches),
                (Some(code), Outcome::Rejected, true)
            );
            assert_eq!(r.error.as_deref(), Some("simulated by guichet listen"));
        }
    }
}

#[tokio::test]
async fn no_answer_times_out_and_reconnects() {
    let listener = Listener::with_policy(AckPolicy::None).await;
    let opts = SendOptions {
        ack_timeout: Duration::from_millis(300),
        ..options(listener.to(), 2)
    };
    let started = std::time::Instant::now();
    let (summary, results) = run(&opts, template(Template::AdtA08)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!summary.all_accepted());
    assert_eq!((summary.sent, summary.no_ack, summary.accepted), (2, 2, 0));
    assert_eq!(summary.p50(), None, "no latency without ACKs");
    for r in &results {
        assert_eq!((r.ack, r.outcome), (None, Outcome::NoAck));
        assert_eq!(r.error.as_deref(), Some("no ACK within 300ms"));
        assert!(r.latency >= Duration::from_millis(300));
        assert!(
            r.new_connection,
            "a late ACK must not be read as the next one's"
        );
    }
    assert_eq!(summary.connections, 2);
    bounded("listener saw both connections", async {
        while listener.handle.stats().connections < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn four_connections_share_the_messages() {
    let listener = Listener::with_policy(AckPolicy::Aa).await;
    let opts = SendOptions {
        conns: 4,
        ..options(listener.to(), 40)
    };
    let (summary, results) = run(&opts, template(Template::AdtA04)).await;
    assert!(summary.all_accepted(), "{summary}");
    assert_eq!((summary.accepted, summary.connections), (40, 4));
    let conns: BTreeSet<_> = results.iter().map(|r| r.conn).collect();
    assert_eq!(conns, BTreeSet::from([0, 1, 2, 3]));
    let seqs: BTreeSet<_> = results.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..40).collect(), "each send number once");
    let ids: BTreeSet<_> = results.iter().map(|r| r.control_id.clone()).collect();
    assert_eq!(ids.len(), 40, "fresh control ids");
    let stats = listener.handle.stats();
    assert_eq!((stats.connections, stats.messages), (4, 40));
}

#[tokio::test]
async fn file_with_bom_lf_endings_and_several_messages() {
    let mut listener = Listener::with_policy(AckPolicy::Aa).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cahier.hl7");
    let mut file = b"\xEF\xBB\xBF".to_vec();
    for (i, trigger) in ["A01", "A08", "A03"].iter().enumerate() {
        file.extend_from_slice(
            format!(
                "MSH|^~\\&|EAI|CHU|DPI|CHU|20250101120000||ADT^{trigger}|FILE{i}|P|2.5^FRA^2.11|||||FRA|8859/15\n"
            )
            .as_bytes(),
        );
        // Latin-9 bytes as a French EAI writes them: Œ is 0xBC, é 0xE9.
        file.extend_from_slice(b"PID|1||123^^^CHU^PI||C\xBCUR^Zo\xE9\n\n");
    }
    std::fs::write(&path, &file).unwrap();

    let input = Input::from_file(&path).unwrap();
    assert_eq!(input.len(), 3);
    let opts = SendOptions::new(listener.to());
    let (summary, results) = run(&opts, input).await;
    assert!(summary.all_accepted(), "{summary}");
    assert_eq!((summary.sent, summary.connections), (3, 1));
    let ids: Vec<_> = results.iter().map(|r| r.control_id.as_str()).collect();
    assert_eq!(ids, ["FILE0", "FILE1", "FILE2"]);

    let received = listener.messages(3).await;
    let types: Vec<_> = received
        .iter()
        .map(|m| m.header.as_ref().unwrap().message_type.clone())
        .collect();
    assert_eq!(types, ["ADT^A01", "ADT^A08", "ADT^A03"]);
    assert!(received.iter().all(|m| m.conn == received[0].conn));

    // On the wire: CR endings, no BOM, the Latin-9 bytes untouched.
    let mut listener = Listener::start(ListenOptions {
        show: true,
        ..ListenOptions::new(localhost())
    })
    .await;
    let opts = SendOptions {
        count: Some(4),
        ..SendOptions::new(listener.to())
    };
    let (summary, results) = run(&opts, Input::from_file(&path).unwrap()).await;
    assert_eq!(summary.accepted, 4, "{summary}");
    assert_eq!(
        results[3].control_id, "FILE0",
        "the file is sent round and round"
    );
    let received = listener.messages(4).await;
    let body = received[0].body.as_ref().unwrap();
    assert!(body.starts_with(b"MSH|^~\\&|EAI|CHU|DPI|CHU|20250101120000||ADT^A01|FILE0|"));
    assert!(body.ends_with(b"PID|1||123^^^CHU^PI||C\xBCUR^Zo\xE9\r"));
    assert!(!body.contains(&b'\n'));
}

/// A receiver that acknowledges every message with MSA-2 "WRONG".
async fn wrong_msa2_server() -> (String, MllpBackend) {
    let ack = b"MSH|^~\\&|DPI|CHU|EAI|CHU|20250101||ACK^A01^ACK|X1|P|2.5\rMSA|AA|WRONG\r";
    let backend = MllpBackend::answering(by_id(|_| Reply::Frame(ack.to_vec()))).await;
    (backend.target(), backend)
}

#[tokio::test]
async fn an_ack_for_another_message_is_a_mismatch() {
    let (to, server) = wrong_msa2_server().await;
    let (summary, results) = run(&options(to, 2), template(Template::AdtA01)).await;
    server.stop();
    assert!(!summary.all_accepted(), "{summary}");
    assert_eq!(
        (summary.sent, summary.mismatched, summary.accepted),
        (2, 2, 0)
    );
    for r in &results {
        assert!(!r.msa2_matches);
        assert_eq!(r.ack, Some(AckCode::AA));
        assert_eq!(r.outcome, Outcome::Mismatched);
        let want = format!("the ACK names message `WRONG`, not `{}`", r.control_id);
        assert_eq!(r.error.as_deref(), Some(want.as_str()));
    }
    assert_eq!(
        summary.connections, 2,
        "out of step: the connection is replaced"
    );
}

#[tokio::test]
async fn refused_connections_give_up_after_three_attempts() {
    let closed = TcpListener::bind(localhost()).await.unwrap();
    let to = closed.local_addr().unwrap().to_string();
    drop(closed);
    let started = std::time::Instant::now();
    let (summary, results) = run(&options(to, 100), template(Template::AdtA01)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!summary.all_accepted());
    assert_eq!(
        (summary.sent, summary.not_sent, summary.connections),
        (0, 3, 0)
    );
    assert!(summary.gave_up);
    assert!(summary
        .to_string()
        .ends_with(", gave up after repeated connection failures"));
    assert!(results.iter().all(|r| r.outcome == Outcome::NotSent));
    assert!(results[0]
        .error
        .as_deref()
        .unwrap()
        .starts_with("cannot connect to 127.0.0.1:"));
}

/// A receiver that answers the first message of each connection, then
/// closes it.
async fn one_message_per_connection_server() -> (String, MllpBackend) {
    let backend = MllpBackend::start(AckPlan {
        messages_per_connection: Some(1),
        ..AckPlan::accept()
    })
    .await;
    (backend.target(), backend)
}

#[tokio::test]
async fn a_connection_closed_between_messages_is_reopened() {
    let (to, server) = one_message_per_connection_server().await;
    let opts = SendOptions {
        every: Some(Duration::from_millis(100)),
        ..options(to, 3)
    };
    let (summary, results) = run(&opts, template(Template::AdtA08)).await;
    server.stop();
    assert!(summary.all_accepted(), "{summary}");
    assert_eq!(summary.connections, 3);
    assert!(results.iter().all(|r| r.new_connection));
}

#[tokio::test]
async fn every_paces_the_messages() {
    let listener = Listener::with_policy(AckPolicy::Aa).await;
    let opts = SendOptions {
        every: Some(Duration::from_millis(100)),
        conns: 2,
        ..options(listener.to(), 4)
    };
    let started = std::time::Instant::now();
    let (summary, _) = run(&opts, template(Template::AdtA01)).await;
    assert!(summary.all_accepted(), "{summary}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_listener_rejects_frames_that_are_not_hl7() {
    let mut listener = Listener::with_policy(AckPolicy::Aa).await;
    let tcp = TcpStream::connect(listener.to()).await.unwrap();
    let mut framed = Framed::new(tcp, MllpCodec::default());
    framed.send(Bytes::from_static(b"hello")).await.unwrap();
    let answer = bounded("reject", framed.next()).await.unwrap().unwrap();
    let msg = Message::parse(&answer.payload).unwrap();
    let ack = AckSummary::read(&msg).unwrap();
    assert_eq!(
        (ack.code, ack.acknowledged_id.as_str()),
        (Some(AckCode::AR), "")
    );
    let received = listener.messages(1).await;
    assert_eq!(received[0].size, 5);
    assert!(received[0].header.is_none());
    assert_eq!(received[0].ack, Some(AckCode::AR));
}

#[tokio::test]
async fn idle_connections_are_closed_and_stop_closes_the_rest() {
    let mut listener = Listener::start(ListenOptions {
        idle_timeout: Duration::from_millis(200),
        ..ListenOptions::new(localhost())
    })
    .await;
    let _idle = TcpStream::connect(listener.to()).await.unwrap();
    assert!(matches!(
        listener.next_event().await,
        ListenEvent::Connected { conn: 1, .. }
    ));
    match listener.next_event().await {
        ListenEvent::Closed {
            conn: 1,
            messages: 0,
            reason,
            ..
        } => {
            assert_eq!(reason.as_deref(), Some("idle for 200ms"))
        }
        other => panic!("{other:?}"),
    }

    let _open = TcpStream::connect(listener.to()).await.unwrap();
    assert!(matches!(
        listener.next_event().await,
        ListenEvent::Connected { conn: 2, .. }
    ));
    listener.handle.stop();
    match listener.next_event().await {
        ListenEvent::Closed {
            conn: 2, reason, ..
        } => {
            assert_eq!(reason.as_deref(), Some("listener stopped"))
        }
        other => panic!("{other:?}"),
    }
    let Listener { handle, .. } = listener;
    let stats = bounded("join", handle.join()).await;
    assert_eq!(stats.connections, 2);
}

#[tokio::test]
async fn a_delay_holds_the_ack_back() {
    let listener = Listener::start(ListenOptions {
        delay: Duration::from_millis(150),
        ..ListenOptions::new(localhost())
    })
    .await;
    let (summary, results) = run(&options(listener.to(), 2), template(Template::MdmT02)).await;
    assert!(summary.all_accepted(), "{summary}");
    assert!(results
        .iter()
        .all(|r| r.latency >= Duration::from_millis(150)));
}

/// On the paused clock: the pacing and the cancellation are the
/// runtime's timers, so the count does not depend on the machine's load.
#[tokio::test(start_paused = true)]
async fn cancelling_stops_the_sender_between_messages() {
    let listener = Listener::with_policy(AckPolicy::Aa).await;
    let opts = SendOptions {
        every: Some(Duration::from_millis(50)),
        ..options(listener.to(), 1_000_000)
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(220)).await;
        stop.cancel();
    });
    let summary = bounded(
        "cancelled sender",
        guichet_testkit::send(&opts, template(Template::AdtA01), shutdown, |_| {}),
    )
    .await
    .unwrap();
    assert!((3..=6).contains(&summary.sent), "{summary}");
    assert_eq!(summary.accepted, summary.sent);
    assert!(!summary.gave_up);
}
