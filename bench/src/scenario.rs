//! The scenarios of the benchmark and how one (scenario, peer) is
//! measured: fresh sink, fresh pair of gateways, load, checks. The
//! store-and-forward scenarios, guichet's alone, are measured in
//! [`crate::journal`]; the HTTPS gateway ones, and the validating rule's,
//! in [`crate::http`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::children::{free_port, Child};
use crate::journal::Store;
use crate::load::{self, Stats, Window};
use crate::message::LoadMessage;
use crate::peers::{Pair, Peer, Setup};
use crate::procfs::cpu_time;
use crate::sink::Count;

/// Time given to the gateways to settle before and after idle connections
/// are opened, so RSS reflects steady state.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One connection, one message at a time: latency-bound.
    OneConnection,
    /// Many connections at once: throughput-bound.
    ManyConnections,
    /// A new connection, so TLS handshakes between the gateways, per message.
    HandshakePerMessage,
    /// Many idle mTLS connections held open: memory per connection.
    Idle,
    /// One guichet, plain MLLP, a passthrough route, one connection: what
    /// a drain of the journal is compared with.
    PassthroughOne,
    /// The same with many connections: what store-and-forward costs.
    PassthroughMany,
    /// One guichet, a store-and-forward route, many senders: every ACK
    /// waits for a durable commit.
    StoreAndForward(Store),
    /// The journal filled with the receiver down, then delivered to it.
    Drain(Store),
    /// HTTPS gateway, one kept-alive connection, one request at a time.
    HttpOne,
    /// HTTPS gateway, many kept-alive connections.
    HttpMany,
    /// HTTPS gateway, a new connection (full TLS handshake) per request.
    HttpHandshake,
    /// guichet alone, many kept-alive connections, each request a POST of
    /// a bed-availability document that the rule forwards unchecked: what
    /// the validating rule is compared with.
    HttpForward,
    /// The same with the rule checking each document
    /// (`validate = "bed-availability"`, a referential) before it goes on.
    HttpValidate,
}

/// The sizes of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub warmup: Duration,
    pub measured: Duration,
    pub many_conns: u32,
    pub handshake_senders: u32,
    pub idle_conns: u32,
    /// Kept-alive connections of the HTTPS many-connections scenario.
    pub http_conns: u32,
    /// Whether the HTTPS gateways write an access log (each to a file in
    /// the run's directory).
    pub http_access_log: bool,
    /// Messages stored, then delivered, by a drain scenario.
    pub drain_messages: u64,
    /// Units of the document each validating-rule request posts.
    pub document_units: usize,
    /// Times each throughput scenario is measured per peer; the median is
    /// reported (scheduling on a small shared machine varies between runs).
    pub rounds: u32,
    pub peers: Vec<Peer>,
    pub scenarios: Vec<Scenario>,
    /// The bench binary itself, which runs the sink.
    pub exe: PathBuf,
}

/// What one (scenario, peer) gave.
#[derive(Debug)]
pub enum Outcome {
    Throughput(Throughput),
    Idle(IdleMemory),
    Drain(Drain),
    /// Not run, and why (peer not installed, no gateway to measure).
    Skipped(String),
    /// The measurement itself failed (a gateway did not start, died...).
    Failed(String),
}

#[derive(Debug)]
pub struct Throughput {
    pub stats: Stats,
    pub measured: Duration,
    /// CPU time of both gateway processes inside the window.
    pub gateway_cpu: Option<Duration>,
    /// The gateway processes' peak resident memory (VmHWM, summed) at the
    /// end of the window, in KiB.
    pub gateway_peak_kib: Option<u64>,
    /// Messages per second of every round, in the order measured; this
    /// round is the median one.
    pub rounds: Vec<f64>,
    /// Store-and-forward: messages acknowledged but not yet delivered when
    /// the window ended (the journal's queue depth).
    pub backlog: Option<u64>,
    /// HTTPS scenarios: the TLS negotiated, the load generator's CPU, how
    /// the allowlist refused.
    pub http: Option<crate::http::Detail>,
}

#[derive(Debug)]
pub struct IdleMemory {
    pub conns: u32,
    pub stats: Stats,
    /// How long opening the connections (and one message each) took.
    pub opening: Duration,
    /// Per gateway process: name, VmRSS before and after, in KiB.
    pub sides: Vec<(String, u64, u64)>,
}

/// A journal filled, then delivered to a fast receiver.
#[derive(Debug)]
pub struct Drain {
    /// Filling: the senders' view (every message acknowledged by guichet,
    /// the receiver down).
    pub fill: Stats,
    pub fill_took: Duration,
    /// What the receiver counted.
    pub count: Count,
    /// The messages the receiver was expected to get.
    pub expected: u64,
    /// guichet's CPU time while it delivered.
    pub gateway_cpu: Option<Duration>,
    /// Messages per second of every round, in the order measured.
    pub rounds: Vec<f64>,
}

#[derive(Debug)]
pub struct Measurement {
    pub scenario: Scenario,
    pub peer: Peer,
    pub outcome: Outcome,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::OneConnection,
        Scenario::ManyConnections,
        Scenario::HandshakePerMessage,
        Scenario::Idle,
        Scenario::PassthroughOne,
        Scenario::PassthroughMany,
        Scenario::StoreAndForward(Store::Sqlite),
        Scenario::StoreAndForward(Store::Postgres),
        Scenario::Drain(Store::Sqlite),
        Scenario::Drain(Store::Postgres),
        Scenario::HttpOne,
        Scenario::HttpMany,
        Scenario::HttpHandshake,
    ];

    /// The HTTPS gateway scenarios.
    pub const HTTP: [Scenario; 3] = [
        Scenario::HttpOne,
        Scenario::HttpMany,
        Scenario::HttpHandshake,
    ];

    /// The validating rule and its baseline, measured by `guichet-bench
    /// validate --http`, not by `run`.
    pub const VALIDATING: [Scenario; 2] = [Scenario::HttpForward, Scenario::HttpValidate];

    /// The store-and-forward scenarios (and their passthrough baselines).
    pub const JOURNAL: [Scenario; 6] = [
        Scenario::PassthroughOne,
        Scenario::PassthroughMany,
        Scenario::StoreAndForward(Store::Sqlite),
        Scenario::StoreAndForward(Store::Postgres),
        Scenario::Drain(Store::Sqlite),
        Scenario::Drain(Store::Postgres),
    ];

    /// Measured on one guichet, not on the tunnel of every peer.
    pub fn is_journal(self) -> bool {
        Scenario::JOURNAL.contains(&self)
    }

    /// Measured on an HTTPS gateway.
    pub fn is_http(self) -> bool {
        Scenario::HTTP.contains(&self)
    }

    /// The validating rule or its baseline (guichet only).
    pub fn is_validating(self) -> bool {
        Scenario::VALIDATING.contains(&self)
    }

    /// Measured on the tunnel of every tunnel peer.
    pub fn is_tunnel(self) -> bool {
        !self.is_journal() && !self.is_http() && !self.is_validating()
    }

    /// Whether `peer` takes part: only guichet has a journal, and nginx
    /// and Caddy are HTTPS gateways, not tunnels.
    pub fn runs_on(self, peer: Peer) -> bool {
        match peer {
            Peer::Guichet => true,
            Peer::Nginx | Peer::Caddy => self.is_http(),
            Peer::Haproxy | Peer::Stunnel | Peer::Direct => self.is_tunnel(),
        }
    }

    /// The row label, with the plan's sizes.
    pub fn label(self, plan: &Plan) -> String {
        match self {
            Scenario::OneConnection => "1 connection".to_owned(),
            Scenario::ManyConnections => format!("{} connections", plan.many_conns),
            Scenario::HandshakePerMessage => format!(
                "connection per message ({} senders)",
                plan.handshake_senders
            ),
            Scenario::Idle => format!("{} idle connections", plan.idle_conns),
            Scenario::PassthroughOne => "passthrough, 1 connection".to_owned(),
            Scenario::PassthroughMany => format!("passthrough, {} connections", plan.many_conns),
            Scenario::StoreAndForward(store) => {
                format!(
                    "store-and-forward, {store}, {} connections",
                    plan.many_conns
                )
            }
            Scenario::Drain(store) => format!(
                "journal after an outage, {store}, 1 connection ({} messages)",
                crate::report::rate(plan.drain_messages as f64)
            ),
            Scenario::HttpOne => "keep-alive, 1 connection".to_owned(),
            Scenario::HttpMany => format!("keep-alive, {} connections", plan.http_conns),
            Scenario::HttpHandshake => format!(
                "new TLS connection per request ({} clients)",
                plan.handshake_senders
            ),
            Scenario::HttpForward => "without validation".to_owned(),
            Scenario::HttpValidate => "`validate = \"bed-availability\"`".to_owned(),
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Scenario::OneConnection => "one",
            Scenario::ManyConnections => "many",
            Scenario::HandshakePerMessage => "handshake",
            Scenario::Idle => "idle",
            Scenario::PassthroughOne => "passthrough-one",
            Scenario::PassthroughMany => "passthrough-many",
            Scenario::StoreAndForward(Store::Sqlite) => "sf-sqlite",
            Scenario::StoreAndForward(Store::Postgres) => "sf-postgres",
            Scenario::Drain(Store::Sqlite) => "drain-sqlite",
            Scenario::Drain(Store::Postgres) => "drain-postgres",
            Scenario::HttpOne => "http-one",
            Scenario::HttpMany => "http-many",
            Scenario::HttpHandshake => "http-handshake",
            Scenario::HttpForward => "http-forward",
            Scenario::HttpValidate => "http-validate",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.stats.messages as f64 / self.measured.as_secs_f64()
    }

    /// Gateway CPU (both processes) per message answered.
    pub fn cpu_per_message(&self) -> Option<Duration> {
        let messages = u32::try_from(self.stats.messages).ok().filter(|&m| m > 0)?;
        Some(self.gateway_cpu? / messages)
    }
}

impl Drain {
    /// Messages delivered per second, from the receiver's first message to
    /// its last ACK.
    pub fn per_second(&self) -> f64 {
        let took = self.count.took.as_secs_f64();
        if took > 0.0 {
            self.count.messages as f64 / took
        } else {
            0.0
        }
    }

    /// Messages acknowledged per second while filling (nothing delivered).
    pub fn fill_per_second(&self) -> f64 {
        self.fill.messages as f64 / self.fill_took.as_secs_f64().max(f64::EPSILON)
    }

    /// Every message filled was acknowledged and delivered.
    pub fn is_valid(&self) -> bool {
        self.fill.is_valid() && self.count.messages == self.expected
    }

    pub fn cpu_per_message(&self) -> Option<Duration> {
        let messages = u32::try_from(self.count.messages).ok().filter(|&m| m > 0)?;
        Some(self.gateway_cpu? / messages)
    }
}

impl Outcome {
    /// Messages per second of a valid round, by which rounds are ranked.
    fn rate(&self) -> Option<f64> {
        match self {
            Outcome::Throughput(t) if t.stats.is_valid() => Some(t.per_second()),
            Outcome::Drain(d) if d.is_valid() => Some(d.per_second()),
            _ => None,
        }
    }

    fn set_rounds(&mut self, rounds: Vec<f64>) {
        match self {
            Outcome::Throughput(t) => t.rounds = rounds,
            Outcome::Drain(d) => d.rounds = rounds,
            _ => {}
        }
    }
}

impl IdleMemory {
    /// KiB per connection of each gateway process.
    pub fn per_conn(&self) -> Vec<f64> {
        self.sides
            .iter()
            .map(|(_, before, after)| after.saturating_sub(*before) as f64 / f64::from(self.conns))
            .collect()
    }

    pub fn pair_per_conn(&self) -> f64 {
        self.per_conn().iter().sum()
    }
}

/// One outcome from the rounds of a (scenario, peer): the first failure or
/// invalid round if any (a run with errors is not hidden by a good one),
/// else the round with the median messages per second.
pub fn combine(outcomes: Vec<Outcome>) -> Outcome {
    let mut rounds = Vec::new();
    let mut good = Vec::new();
    for outcome in outcomes {
        match outcome.rate() {
            Some(rate) => {
                rounds.push(rate);
                good.push((rate, outcome));
            }
            None => return outcome,
        }
    }
    good.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, mut median)) = good.into_iter().nth(rounds.len() / 2) else {
        return Outcome::Failed("no round was measured".to_owned());
    };
    median.set_rounds(rounds);
    median
}

/// Measures `scenario` on `peer`, with its own sink and gateways.
pub async fn measure(plan: &Plan, setup: &Setup, scenario: Scenario, peer: Peer) -> Outcome {
    if let Some(why) = peer.missing(setup) {
        return Outcome::Skipped(why.to_owned());
    }
    if scenario == Scenario::Idle && peer == Peer::Direct {
        return Outcome::Skipped("no gateway to measure".to_owned());
    }
    if scenario.is_journal() {
        return crate::journal::measure(plan, setup, scenario, peer).await;
    }
    let result = if scenario.is_http() || scenario.is_validating() {
        crate::http::measure(plan, setup, scenario, peer)
            .await
            .map(Outcome::Throughput)
    } else {
        run(plan, setup, scenario, peer).await
    };
    result.unwrap_or_else(|e| Outcome::Failed(format!("{e:#}")))
}

async fn run(
    plan: &Plan,
    setup: &Setup,
    scenario: Scenario,
    peer: Peer,
) -> anyhow::Result<Outcome> {
    let tag = format!("{}-{}", scenario.key(), peer.name().to_lowercase());
    let (_sink, sink_addr) = start_sink(plan, setup, &tag).await?;
    let mut pair = peer.start(setup, sink_addr, &tag).await?;
    let message = LoadMessage::adt_a01();
    let outcome = match scenario {
        Scenario::Idle => Outcome::Idle(idle(plan, &pair, &message).await?),
        _ => Outcome::Throughput(throughput(plan, &pair, scenario, &message).await),
    };
    pair.check_alive()?;
    Ok(outcome)
}

/// The sink, as its own process, on a fresh port.
pub async fn start_sink(
    plan: &Plan,
    setup: &Setup,
    tag: &str,
) -> anyhow::Result<(Child, SocketAddr)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let sink = start_sink_at(plan, setup, tag, addr, &[]).await?;
    Ok((sink, addr))
}

/// The sink on `addr`, with `extra` arguments.
pub async fn start_sink_at(
    plan: &Plan,
    setup: &Setup,
    tag: &str,
    addr: SocketAddr,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let listen = addr.to_string();
    let log = setup.dir.join(format!("{tag}-sink.log"));
    let mut args = vec!["sink", "--listen", &listen];
    args.extend_from_slice(extra);
    let mut sink = Child::spawn("sink", &plan.exe, &args, &[], &log)?;
    sink.wait_listening(addr, Duration::from_secs(10)).await?;
    Ok(sink)
}

pub async fn throughput(
    plan: &Plan,
    pair: &Pair,
    scenario: Scenario,
    message: &LoadMessage,
) -> Throughput {
    let window = Window::starting_now(plan.warmup, plan.measured);
    let entry = pair.entry;
    let load = async {
        match scenario {
            Scenario::HandshakePerMessage => {
                load::per_message(entry, plan.handshake_senders, window, message).await
            }
            Scenario::OneConnection | Scenario::PassthroughOne => {
                load::persistent(entry, 1, window, message).await
            }
            _ => load::persistent(entry, plan.many_conns, window, message).await,
        }
    };
    let cpu = async {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let before = pair_cpu(pair);
        tokio::time::sleep_until(window.end.into()).await;
        let cpu = pair_cpu(pair).zip(before).map(|(a, b)| a.saturating_sub(b));
        (cpu, pair_peak_kib(pair))
    };
    let (stats, (gateway_cpu, gateway_peak_kib)) = tokio::join!(load, cpu);
    let gateways = !pair.gateways.is_empty();
    let mut throughput = Throughput {
        stats,
        measured: window.measured(),
        gateway_cpu: gateway_cpu.filter(|_| gateways),
        gateway_peak_kib: gateway_peak_kib.filter(|_| gateways),
        rounds: Vec::new(),
        backlog: None,
        http: None,
    };
    throughput.rounds.push(throughput.per_second());
    throughput
}

/// The peak resident memory so far of the pair's gateways, summed.
pub fn pair_peak_kib(pair: &Pair) -> Option<u64> {
    pair.gateways
        .iter()
        .map(|g| crate::procfs::peak_rss_kib(g.pid()).ok())
        .sum()
}

/// CPU time used so far by both gateways of the pair.
pub fn pair_cpu(pair: &Pair) -> Option<Duration> {
    pair.gateways.iter().map(|g| cpu_time(g.pid())).sum()
}

async fn idle(plan: &Plan, pair: &Pair, message: &LoadMessage) -> anyhow::Result<IdleMemory> {
    // One message first, so what the first connection initialises once
    // (TLS contexts, session caches, thread pools) is not counted.
    let (warm, _) = load::open_idle(pair.entry, 1, message).await;
    drop(warm);
    tokio::time::sleep(SETTLE).await;
    let before = rss(pair)?;
    let started = Instant::now();
    let (clients, stats) = load::open_idle(pair.entry, plan.idle_conns, message).await;
    let opening = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = rss(pair)?;
    drop(clients);
    let sides = pair
        .gateways
        .iter()
        .zip(before.into_iter().zip(after))
        .map(|(g, (b, a))| (g.name().to_owned(), b, a))
        .collect();
    Ok(IdleMemory {
        conns: plan.idle_conns,
        stats,
        opening,
        sides,
    })
}

fn rss(pair: &Pair) -> anyhow::Result<Vec<u64>> {
    pair.gateways
        .iter()
        .map(|g| g.rss_kib().with_context(|| format!("RSS of {}", g.name())))
        .collect()
}
