//! Shared pieces of the simulators' tests: a listener on 127.0.0.1:0 with
//! its events, the sender run to completion, and a test PKI.
//!
//! Every wait is bounded by [`WAIT`], so a broken simulator fails a test
//! instead of hanging it.

// Each module of the test binary uses its own part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use guichet_pki::{CaOptions, IssueRequest, IssuedFiles, Usage};
use guichet_testkit::{
    listen, send, AckPolicy, Input, ListenEvent, ListenHandle, ListenOptions, Received,
    SendOptions, SendResult, SendSummary, Template, TemplateContext,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest any single step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Bounds `fut` by [`WAIT`], naming `what` when it runs out.
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {WAIT:?}"),
    }
}

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
    pub tmp: tempfile::TempDir,
    pub ca_dir: PathBuf,
    pub server: IssuedFiles,
    pub client: IssuedFiles,
}

impl Pki {
    pub fn new() -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let ca_dir = tmp.path().join("ca");
        guichet_pki::init(
            &ca_dir,
            &CaOptions {
                common_name: "testkit CA".into(),
                ..CaOptions::default()
            },
        )
        .unwrap();
        let issue = |name: &str, usage| {
            guichet_pki::issue(
                &ca_dir,
                &IssueRequest {
                    usage,
                    o: Some("CHU de test".into()),
                    ..IssueRequest::new(name)
                },
            )
            .unwrap()
        };
        let server = issue("localhost", Usage::ServerOnly);
        let client = issue("eai", Usage::ClientOnly);
        Pki {
            tmp,
            ca_dir,
            server,
            client,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }
}
