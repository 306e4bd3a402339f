//! The load generator: a sending application that waits for each ACK
//! before its next message on a connection, as MLLP senders do, and checks
//! every ACK's MSA-2 against the control id it sent.
//!
//! Each connection is a task with its own statistics (no shared lock on
//! the hot path), merged when the run ends. Only messages answered inside
//! the measured window count; the warm-up before it is sent and checked
//! but not counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use guichet_hl7::MllpCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::Decoder;

use crate::message::{check_ack, AckCheck, ControlId, LoadMessage};
use guichet_testkit::latency::Histogram;

/// Longest wait for one ACK (or one connection) before it counts as an error.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections opened at once while building up idle connections.
const OPENING_PARALLELISM: usize = 64;

/// The part of a run that is measured: from `measure_from` to `end`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub end: Instant,
}

/// What a run saw. A run with any error or mismatch is invalid.
#[derive(Debug, Default)]
pub struct Stats {
    pub latency: Histogram,
    /// Messages acknowledged correctly inside the window.
    pub messages: u64,
    /// ACKs that were not AA with MSA-2 = the message's MSH-10.
    pub mismatches: u64,
    /// Connections that failed: refused, reset, closed early, timed out.
    pub errors: u64,
    pub first_error: Option<String>,
}

/// One connection to the entry of the chain.
pub struct Client {
    stream: TcpStream,
    input: BytesMut,
    codec: MllpCodec,
    message: LoadMessage,
}

impl Window {
    /// Starts now: `warmup`, then `measured`.
    pub fn starting_now(warmup: Duration, measured: Duration) -> Window {
        let measure_from = Instant::now() + warmup;
        Window {
            measure_from,
            end: measure_from + measured,
        }
    }

    /// From now on, for a day: every answer counts.
    pub fn always() -> Window {
        let now = Instant::now();
        Window {
            measure_from: now,
            end: now + Duration::from_secs(86_400),
        }
    }

    pub fn measured(&self) -> Duration {
        self.end - self.measure_from
    }
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latency.merge(&other.latency);
        self.messages += other.messages;
        self.mismatches += other.mismatches;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// Counts one answered message that was sent at `sent`.
    fn answered(&mut self, check: AckCheck, sent: Instant, window: &Window) {
        let now = Instant::now();
        if check != AckCheck::Accepted {
            self.mismatches += 1;
        } else if now >= window.measure_from && now <= window.end {
            self.messages += 1;
            self.latency.record(now - sent);
        }
    }

    pub fn is_valid(&self) -> bool {
        self.errors == 0 && self.mismatches == 0 && self.messages > 0
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr, message: &LoadMessage) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            input: BytesMut::with_capacity(4096),
            codec: MllpCodec::default(),
            message: message.clone(),
        })
    }

    /// Sends the message with `id` and checks the ACK that comes back.
    pub async fn exchange(&mut self, id: ControlId) -> anyhow::Result<AckCheck> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange_now(id))
            .await
            .map_err(|_| anyhow::anyhow!("no ACK within {EXCHANGE_TIMEOUT:?}"))?
    }

    async fn exchange_now(&mut self, id: ControlId) -> anyhow::Result<AckCheck> {
        self.stream.write_all(self.message.with_id(id)).await?;
        loop {
            if let Some(frame) = self.codec.decode(&mut self.input)? {
                return Ok(check_ack(&frame.payload, id));
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                anyhow::bail!("connection closed while waiting for an ACK");
            }
        }
    }
}

/// `conns` connections, each sending one message after another until the
/// window ends.
pub async fn persistent(
    addr: SocketAddr,
    conns: u32,
    window: Window,
    message: &LoadMessage,
) -> Stats {
    senders(conns, message, move |conn, message| async move {
        one_connection(addr, conn, window, u64::MAX, &message).await
    })
    .await
}

/// `conns` connections sending `total` messages between them, each
/// message once its connection's previous one is acknowledged; every
/// answered message counts.
pub async fn exactly(addr: SocketAddr, conns: u32, total: u64, message: &LoadMessage) -> Stats {
    let window = Window::always();
    let conns = conns.max(1);
    senders(conns, message, move |conn, message| async move {
        let share =
            total / u64::from(conns) + u64::from(u64::from(conn) < total % u64::from(conns));
        one_connection(addr, conn, window, share, &message).await
    })
    .await
}

/// Sends on one connection until the window ends or `most` messages
/// were sent.
async fn one_connection(
    addr: SocketAddr,
    conn: u32,
    window: Window,
    most: u64,
    message: &LoadMessage,
) -> Stats {
    let mut stats = Stats::default();
    let mut client = match Client::connect(addr, message).await {
        Ok(client) => client,
        Err(e) => {
            stats.error(format!("connect: {e:#}"));
            return stats;
        }
    };
    let mut seq = 0;
    while seq < most && Instant::now() < window.end {
        seq += 1;
        let sent = Instant::now();
        match client.exchange(ControlId::new(conn, seq)).await {
            Ok(check) => stats.answered(check, sent, &window),
            Err(e) => {
                stats.error(format!("connection {conn}, message {seq}: {e:#}"));
                break;
            }
        }
    }
    stats
}

/// `clients` senders that each open a connection per message (so the
/// gateways run a TLS handshake per message), until the window ends. The
/// latency includes the connection and both handshakes.
pub async fn per_message(
    addr: SocketAddr,
    clients: u32,
    window: Window,
    message: &LoadMessage,
) -> Stats {
    senders(clients, message, move |conn, message| async move {
        connection_per_message(addr, conn, window, &message).await
    })
    .await
}

/// Runs `count` senders side by side and merges what they measured.
async fn senders<F, Fut>(count: u32, message: &LoadMessage, sender: F) -> Stats
where
    F: Fn(u32, LoadMessage) -> Fut,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for conn in 0..count {
        tasks.spawn(sender(conn, message.clone()));
    }
    collect(tasks).await
}

async fn connection_per_message(
    addr: SocketAddr,
    conn: u32,
    window: Window,
    message: &LoadMessage,
) -> Stats {
    let mut stats = Stats::default();
    let mut seq = 0;
    while Instant::now() < window.end {
        seq += 1;
        let sent = Instant::now();
        let result = async {
            let mut client = Client::connect(addr, message).await?;
            client.exchange(ControlId::new(conn, seq)).await
        };
        match result.await {
            Ok(check) => stats.answered(check, sent, &window),
            Err(e) => {
                stats.error(format!("sender {conn}, message {seq}: {e:#}"));
                break;
            }
        }
    }
    stats
}

/// Opens `n` connections and sends one message on each (so every hop of
/// the chain is established and has carried data), then returns them open.
pub async fn open_idle(addr: SocketAddr, n: u32, message: &LoadMessage) -> (Vec<Client>, Stats) {
    let gate = Arc::new(Semaphore::new(OPENING_PARALLELISM));
    let mut tasks = JoinSet::new();
    for conn in 0..n {
        let message = message.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut client = Client::connect(addr, &message).await?;
            let check = client.exchange(ControlId::new(conn, 1)).await?;
            anyhow::Ok((client, check))
        });
    }
    let mut clients = Vec::with_capacity(n as usize);
    let mut stats = Stats::default();
    let always = Window::always();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((client, check))) => {
                stats.answered(check, always.measure_from, &always);
                clients.push(client);
            }
            Ok(Err(e)) => stats.error(format!("opening an idle connection: {e:#}")),
            Err(e) => stats.error(e),
        }
    }
    (clients, stats)
}

async fn collect(mut tasks: JoinSet<Stats>) -> Stats {
    let mut total = Stats::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(stats) => total.merge(stats),
            Err(e) => total.error(e),
        }
    }
    total
}
