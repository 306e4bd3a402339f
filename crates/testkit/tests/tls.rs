//! The simulators over TLS and mutual TLS, with certificates from the test
//! PKI.

use std::time::Duration;

use crate::common::{localhost, run, template, Listener, Pki};
use guichet_testkit::{
    ListenEvent, ListenOptions, Outcome, SendOptions, Template, TlsClientOptions, TlsServerOptions,
};

fn tls_listener(pki: &Pki, require_client_cert: bool) -> ListenOptions {
    ListenOptions {
        tls: Some(TlsServerOptions {
            cert: pki.server.cert.clone(),
            key: pki.server.key.clone(),
            ca: require_client_cert.then(|| pki.ca()),
        }),
        ..ListenOptions::new(localhost())
    }
}

fn tls_sender(pki: &Pki, to: String, client_cert: bool, server_name: &str) -> SendOptions {
    SendOptions {
        tls: Some(TlsClientOptions {
            ca: pki.ca(),
            cert: client_cert.then(|| pki.client.cert.clone()),
            key: client_cert.then(|| pki.client.key.clone()),
            server_name: Some(server_name.into()),
        }),
        count: Some(3),
        ack_timeout: Duration::from_secs(5),
        ..SendOptions::new(to)
    }
}

#[tokio::test]
async fn mutual_tls_carries_many_messages_on_one_connection() {
    let pki = Pki::new();
    let mut listener = Listener::start(tls_listener(&pki, true)).await;
    let opts = tls_sender(&pki, listener.to(), true, "localhost");
    let (summary, results) = run(&opts, template(Template::AdtA01)).await;
    assert!(summary.all_accepted(), "{summary} {results:?}");
    assert_eq!((summary.accepted, summary.connections), (3, 1));
    match listener.next_event().await {
        ListenEvent::Connected { client, .. } => {
            let client = client.expect("the client's subject");
            assert!(client.contains("CN=eai"), "{client}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(listener.messages(3).await.len(), 3);
    assert_eq!(listener.handle.stats().refused, 0);
}

#[tokio::test]
async fn server_only_tls_needs_no_client_certificate() {
    let pki = Pki::new();
    let mut listener = Listener::start(tls_listener(&pki, false)).await;
    let opts = tls_sender(&pki, listener.to(), false, "localhost");
    let (summary, _) = run(&opts, template(Template::OruR01)).await;
    assert!(summary.all_accepted(), "{summary}");
    match listener.next_event().await {
        ListenEvent::Connected { client, .. } => assert_eq!(client, None),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let pki = Pki::new();
    let mut listener = Listener::start(tls_listener(&pki, true)).await;
    let opts = SendOptions {
        count: Some(1),
        ..tls_sender(&pki, listener.to(), false, "localhost")
    };
    let (summary, results) = run(&opts, template(Template::AdtA01)).await;
    assert!(!summary.all_accepted(), "{summary}");
    assert_eq!(summary.accepted, 0);
    // TLS 1.3 clients finish their handshake before the server checks
    // them: the refusal shows when the ACK is awaited.
    assert!(
        matches!(results[0].outcome, Outcome::NoAck | Outcome::NotSent),
        "{results:?}"
    );
    match listener.next_event().await {
        ListenEvent::Refused { reason, .. } => {
            assert!(
                reason.starts_with("no client certificate presented"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(listener.handle.stats().refused, 1);
    assert_eq!(listener.handle.stats().connections, 0);
}

#[tokio::test]
async fn the_server_name_is_checked() {
    let pki = Pki::new();
    let listener = Listener::start(tls_listener(&pki, true)).await;
    let opts = SendOptions {
        count: Some(1),
        ..tls_sender(&pki, listener.to(), true, "dpi.other.example")
    };
    let (summary, results) = run(&opts, template(Template::AdtA01)).await;
    assert_eq!((summary.sent, summary.not_sent), (0, 1), "{summary}");
    let error = results[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("TLS handshake with 127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("does not match the dialled name"), "{error}");
}

#[tokio::test]
async fn unusable_tls_files_are_errors_up_front() {
    let pki = Pki::new();
    let mut opts = tls_sender(&pki, "127.0.0.1:1".into(), true, "localhost");
    if let Some(tls) = opts.tls.as_mut() {
        tls.ca = pki.base.tmp.path().join("missing.pem");
    }
    let err = guichet_testkit::send(
        &opts,
        template(Template::AdtA01),
        tokio_util::sync::CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("TLS towards 127.0.0.1:1: cannot read "),
        "{text}"
    );
    assert!(text.contains("missing.pem"), "{text}");
}
