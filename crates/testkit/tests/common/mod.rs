//! Shared pieces of the simulators' tests: a listener on 127.0.0.1:0 with
//! its events, the sender run to completion, and a test PKI.
//!
//! Every wait is bounded by [`WAIT`], so a broken simulator fails a test
//! instead of hanging it.

// Each module of the test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use guichet_testkit::{
    listen, send, AckPolicy, Input, ListenEvent, ListenHandle, ListenOptions, Received,
    SendOptions, SendResult, SendSummary, Template, TemplateContext,
};
use guichet_testsupport::pki::TestPki;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use guichet_testsupport::wait::bounded;

pub fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A running listener and the events it reports.
pub struct Listener {
    pub handle: ListenHandle,
    pub events: mpsc::Receiver<ListenEvent>,
}

impl Listener {
    pub async fn start(opts: ListenOptions) -> Listener {
        let (tx, events) = mpsc::channel(1024);
        let handle = listen(opts, tx, CancellationToken::new()).await.unwrap();
        Listener { handle, events }
    }

    pub async fn with_policy(ack: AckPolicy) -> Listener {
        Listener::start(ListenOptions {
            ack,
            ..ListenOptions::new(localhost())
        })
        .await
    }

    pub fn to(&self) -> String {
        self.handle.local_addr().to_string()
    }

    pub async fn next_event(&mut self) -> ListenEvent {
        bounded("listener event", self.events.recv())
            .await
            .expect("listener event channel closed")
    }

    /// The next `n` messages, skipping connection events.
    pub async fn messages(&mut self, n: usize) -> Vec<Received> {
        let mut out = Vec::new();
        while out.len() < n {
            if let ListenEvent::Message(m) = self.next_event().await {
                out.push(*m);
            }
        }
        out
    }

    /// Events received so far, without waiting.
    pub fn drain(&mut self) -> Vec<ListenEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

/// Runs the sender to the end, bounded, returning every result.
pub async fn run(opts: &SendOptions, input: Input) -> (SendSummary, Vec<SendResult>) {
    let mut results = Vec::new();
    let summary = bounded(
        "sender",
        send(opts, input, CancellationToken::new(), |r| {
            results.push(r.clone())
        }),
    )
    .await
    .unwrap();
    (summary, results)
}

pub fn template(t: Template) -> Input {
    Input::template(t, TemplateContext::default())
}

/// A test CA with a server certificate for `localhost` and a client
/// certificate for `eai`, in a temporary directory.
pub struct Pki {
    pub base: TestPki,
    pub server: IssuedFiles,
    pub client: IssuedFiles,
}

impl Pki {
    pub fn new() -> Pki {
        let base = TestPki::named("testkit CA");
        let issue = |name: &str, usage| {
            base.issue_with(&IssueRequest {
                usage,
                o: Some("CHU de test".into()),
                ..IssueRequest::new(name)
            })
        };
        let server = issue("localhost", Usage::ServerOnly);
        let client = issue("eai", Usage::ClientOnly);
        Pki {
            base,
            server,
            client,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.base.ca_cert()
    }
}
