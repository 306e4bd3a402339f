//! The HTTPS gateway scenarios: guichet's `http` route against
//! nginx and Caddy, each alone in front of the same upstream, with the
//! same certificates.
//!
//! ```text
//! load generator (HTTPS, client certificate) -> gateway (mTLS, allowlist) -> upstream (plain HTTP/1.1)
//! ```
//!
//! Each round starts a fresh upstream and a fresh gateway, checks that
//! the gateway admits the partner and refuses a certificate on no
//! allowlist, then runs the load generator as its own process while the
//! gateway's CPU time (every process of it: nginx's workers) is sampled
//! over the measured window.
//!
//! The validating rule's rounds are guichet's alone, the same way: each
//! request posts a bed-availability document, which the rule forwards
//! unchecked or checks against a referential first.

mod caddy;
pub mod client;
mod guichet;
pub mod load;
mod nginx;
pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;

use crate::children::{free_port, Child};
use crate::peers::{local, Peer, Setup};
use crate::procfs::tree_cpu_time;
use crate::scenario::{Plan, Scenario, Throughput};
use client::{Client, Request};
use load::Mode;

/// What the upstream answers to every request: 200 and this document.
pub const BODY: &[u8] = br#"{"finess":"750000001","service":"ror","beds":{"available":12,"total":48},"updated":"2025-01-01T08:00:00Z"}"#;

/// How long the upstream and a gateway may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Between starting the load generator and its window: time to start and
/// to load its certificates.
const LEAD: Duration = Duration::from_millis(300);
/// How long the load generator may take to finish after its window (the
/// requests in flight, then writing its report).
const FINISH: Duration = Duration::from_secs(30);

/// What a gateway's configuration is made of, besides the certificates.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// The gateway's HTTPS listener.
    pub listen: SocketAddr,
    /// The upstream's plain HTTP listener.
    pub upstream: SocketAddr,
    /// Where its config, logs, pid file and temporary files go.
    pub dir: &'a Path,
    /// Whether it writes an access log (to a file in `dir`).
    pub access_log: bool,
    /// What every request carries, and what guichet's rule does with it.
    pub payload: Payload,
}

/// What every request of a round carries, and what guichet's rule does
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A GET: the HTTPS gateway scenarios.
    Get,
    /// A POST of a bed-availability document, forwarded unchecked.
    Forwarded,
    /// The same document, checked against the referential before it
    /// goes on (`validate = "bed-availability"`).
    Validated,
}

/// What an HTTPS round adds to its throughput figures.
#[derive(Debug, Clone)]
pub struct Detail {
    /// As the load generator saw it: version, suite, group, handshake kind.
    pub tls: Option<String>,
    /// The load generator's CPU time inside the window.
    pub load_cpu: Option<Duration>,
    /// The upstream's CPU time inside the window.
    pub upstream_cpu: Option<Duration>,
    /// How the gateway refused a certificate on no allowlist.
    pub refusal: String,
}

impl Payload {
    fn of(scenario: Scenario) -> Payload {
        match scenario {
            Scenario::HttpForward => Payload::Forwarded,
            Scenario::HttpValidate => Payload::Validated,
            _ => Payload::Get,
        }
    }
}

impl Round<'_> {
    /// The document every request posts, if it posts one.
    pub fn document(&self) -> Option<PathBuf> {
        (self.payload != Payload::Get).then(|| self.dir.join("document.xml"))
    }

    /// The referential guichet's rule checks each document against, if it
    /// checks them.
    pub fn referential(&self) -> Option<PathBuf> {
        (self.payload == Payload::Validated).then(|| self.dir.join("referential.csv"))
    }

    /// Writes the document and the referential the round uses; returns the
    /// document.
    fn write_payload(&self, units: usize) -> anyhow::Result<Option<Bytes>> {
        let Some(document) = self.document() else {
            return Ok(None);
        };
        let text = crate::validate::posted_document(units);
        std::fs::write(&document, &text)?;
        if let Some(referential) = self.referential() {
            std::fs::write(referential, crate::validate::referential_csv(units))?;
        }
        Ok(Some(Bytes::from(text)))
    }
}

/// Measures one round of an HTTPS scenario on `peer` (installed: see
/// [`crate::scenario::measure`]).
pub async fn measure(
    plan: &Plan,
    setup: &Setup,
    scenario: Scenario,
    peer: Peer,
) -> anyhow::Result<Throughput> {
    let dir = setup
        .dir
        .join(format!("{}-{}", scenario.key(), peer.name().to_lowercase()));
    std::fs::create_dir_all(&dir)?;
    let round = Round {
        listen: local(free_port()?),
        upstream: local(free_port()?),
        dir: &dir,
        access_log: plan.http_access_log,
        payload: Payload::of(scenario),
    };
    let document = round.write_payload(plan.document_units)?;
    let mut upstream = start_upstream(plan, round.upstream, &dir).await?;
    let mut gateway = match peer {
        Peer::Guichet => guichet::start(setup, &round)?,
        Peer::Nginx => nginx::start(setup, &round)?,
        Peer::Caddy => caddy::start(setup, &round)?,
        _ => bail!("{peer} is not an HTTPS gateway"),
    };
    gateway.wait_listening(round.listen, START_TIMEOUT).await?;
    let refusal = check_allowlist(setup, round.listen, document.as_deref())
        .await
        .with_context(|| format!("{peer} before the load"))?;
    let processes = Processes {
        gateway: &gateway,
        upstream: &upstream,
    };
    let throughput = generate(plan, setup, scenario, processes, &round, refusal).await?;
    gateway.check_alive()?;
    upstream.check_alive()?;
    Ok(throughput)
}

async fn start_upstream(plan: &Plan, addr: SocketAddr, dir: &Path) -> anyhow::Result<Child> {
    let listen = addr.to_string();
    let args = ["upstream", "--listen", &listen];
    let mut upstream = Child::spawn("upstream", &plan.exe, &args, &[], &dir.join("upstream.log"))?;
    upstream.wait_listening(addr, START_TIMEOUT).await?;
    Ok(upstream)
}

/// The partner gets the upstream's answer through the gateway (posting
/// `document`, if any); a certificate of the same CA on no allowlist is
/// refused, during the handshake or with a 403. Returns how it was
/// refused.
async fn check_allowlist(
    setup: &Setup,
    addr: SocketAddr,
    document: Option<&[u8]>,
) -> anyhow::Result<String> {
    let certs = &setup.certs;
    let client = |identity: &crate::pki::Identity| -> anyhow::Result<Client> {
        let client = Client::new(addr, &certs.ca, &identity.cert, &identity.key, false)?;
        Ok(match document {
            Some(body) => client.posting(body),
            None => client,
        })
    };
    let partner = client(&certs.eai)?;
    let response = async { partner.connect().await?.exchange(Request::Close).await }
        .await
        .context("the admitted partner's request failed")?;
    if response.status != 200 || response.body != BODY {
        bail!(
            "the admitted partner got status {} and {} bytes, not the upstream's answer",
            response.status,
            response.body.len()
        );
    }
    let intruder = client(&certs.intruder)?;
    let refused = async { intruder.connect().await?.exchange(Request::Close).await }.await;
    match refused {
        Ok(response) if response.status == 403 => Ok("403 per request".to_owned()),
        Ok(response) => bail!(
            "allowlist not enforced: a certificate on no allowlist got status {}",
            response.status
        ),
        Err(e) => Ok(format!("refused in the TLS handshake ({})", root_cause(&e))),
    }
}

/// The innermost error's text: the TLS alert, for a refusal.
fn root_cause(e: &anyhow::Error) -> String {
    e.chain()
        .last()
        .map_or_else(String::new, ToString::to_string)
}

/// The processes whose CPU time a round samples.
#[derive(Clone, Copy)]
struct Processes<'a> {
    gateway: &'a Child,
    upstream: &'a Child,
}

impl Processes<'_> {
    /// CPU time so far of the gateway (every process of it) and the upstream.
    fn cpu(self) -> [Option<Duration>; 2] {
        [
            tree_cpu_time(self.gateway.pid()),
            tree_cpu_time(self.upstream.pid()),
        ]
    }
}

/// Runs the load generator over the plan's window and samples the
/// gateway's and the upstream's CPU time over the measured part.
async fn generate(
    plan: &Plan,
    setup: &Setup,
    scenario: Scenario,
    processes: Processes<'_>,
    round: &Round<'_>,
    refusal: String,
) -> anyhow::Result<Throughput> {
    let start_at = load::start_at(LEAD);
    let (_, window) = load::window_at(start_at, plan.warmup, plan.measured);
    let report = round.dir.join("load-report");
    let args = load_args(plan, setup, scenario, round, start_at, &report)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut generator = Child::spawn(
        "load generator",
        &plan.exe,
        &args,
        &[],
        &round.dir.join("load.log"),
    )?;
    tokio::time::sleep_until(window.measure_from.into()).await;
    let before = processes.cpu();
    tokio::time::sleep_until(window.end.into()).await;
    let after = processes.cpu();
    let gateway_peak_kib = crate::procfs::tree_peak_rss_kib(processes.gateway.pid());
    let [gateway_cpu, upstream_cpu] = [0, 1].map(|i| {
        after[i]
            .zip(before[i])
            .map(|(after, before)| after.saturating_sub(before))
    });
    generator.wait_exit(FINISH).await?;
    let outcome = load::read(&report)?;
    let mut throughput = Throughput {
        stats: outcome.stats,
        measured: window.measured(),
        gateway_cpu,
        gateway_peak_kib,
        rounds: Vec::new(),
        backlog: None,
        http: Some(Detail {
            tls: outcome.tls,
            load_cpu: outcome.cpu,
            upstream_cpu,
            refusal,
        }),
    };
    throughput.rounds.push(throughput.per_second());
    Ok(throughput)
}

/// The load generator's arguments for a round of `scenario` starting at
/// `start_at`, its tally written to `report`.
fn load_args(
    plan: &Plan,
    setup: &Setup,
    scenario: Scenario,
    round: &Round<'_>,
    start_at: u64,
    report: &Path,
) -> anyhow::Result<Vec<String>> {
    let (mode, conns) = match scenario {
        Scenario::HttpOne => (Mode::KeepAlive, 1),
        Scenario::HttpMany | Scenario::HttpForward | Scenario::HttpValidate => {
            (Mode::KeepAlive, plan.http_conns)
        }
        Scenario::HttpHandshake => (Mode::Handshake, plan.handshake_senders),
        _ => bail!("{scenario} is not an HTTPS scenario"),
    };
    let certs = &setup.certs;
    let mut args: Vec<String> = vec![
        "http-load".into(),
        "--target".into(),
        round.listen.to_string(),
        "--mode".into(),
        match mode {
            Mode::KeepAlive => "keep-alive",
            Mode::Handshake => "handshake",
        }
        .into(),
        "--conns".into(),
        conns.to_string(),
        "--ca".into(),
        crate::peers::p(&certs.ca),
        "--cert".into(),
        crate::peers::p(&certs.eai.cert),
        "--key".into(),
        crate::peers::p(&certs.eai.key),
        "--start-at".into(),
        start_at.to_string(),
        "--warmup".into(),
        plan.warmup.as_secs_f64().to_string(),
        "--seconds".into(),
        plan.measured.as_secs_f64().to_string(),
        "--report".into(),
        crate::peers::p(report),
    ];
    if let Some(document) = round.document() {
        args.extend(["--body".into(), crate::peers::p(&document)]);
    }
    Ok(args)
}
