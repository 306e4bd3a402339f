//! The receiving application at the end of the chain: answers every
//! message with an AA built by `guichet_hl7::build_ack`, and nothing else.
//!
//! It runs as its own process (`guichet-bench sink`), like a real DPI, and
//! is kept as cheap as possible: no printing, one write per batch of
//! pipelined frames, buffers reused across messages.
//!
//! For the drain of a store-and-forward journal it can also count: with
//! `--expect N --report FILE` it notes each distinct MSH-10, and once N
//! distinct messages are answered writes how long they took (first
//! message read to last ACK written) to FILE and exits.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use guichet_hl7::{
    build_ack, build_reject_for_unparseable, frame, AckCode, AckRequest, Message, MllpCodec,
};
use guichet_testkit::stamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

/// Where a counting sink stops and what it writes.
#[derive(Debug, Clone)]
pub struct Expect {
    pub messages: u64,
    pub report: PathBuf,
}

/// What a counting sink saw, as written to its report file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Distinct MSH-10 answered.
    pub messages: u64,
    /// Messages answered again (same MSH-10): redeliveries.
    pub duplicates: u64,
    /// From the first message read to the last ACK written.
    pub took: Duration,
}

/// The shared tally of a counting sink.
struct Tally {
    expect: Expect,
    state: Mutex<TallyState>,
}

#[derive(Default)]
struct TallyState {
    seen: HashSet<Vec<u8>>,
    duplicates: u64,
    first: Option<Instant>,
}

/// Binds `listen`, prints `port N` on stdout, then answers until killed
/// (or, counting, until the expected messages are answered).
pub fn run(listen: SocketAddr, expect: Option<Expect>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        let port = listener.local_addr()?.port();
        let mut out = std::io::stdout();
        writeln!(out, "port {port}")?;
        out.flush()?;
        let tally = expect.map(|expect| {
            Arc::new(Tally {
                expect,
                state: Mutex::default(),
            })
        });
        serve(listener, tally).await
    })
}

async fn serve(listener: TcpListener, tally: Option<Arc<Tally>>) -> anyhow::Result<()> {
    let timestamp: &'static str = stamp::now_timestamp().leak();
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(answer(stream, timestamp, tally.clone()));
    }
}

/// Answers one connection until it closes; any error just ends it.
async fn answer(mut stream: TcpStream, timestamp: &'static str, tally: Option<Arc<Tally>>) {
    let _ = stream.set_nodelay(true);
    let mut codec = MllpCodec::default();
    let mut input = BytesMut::with_capacity(8 * 1024);
    let mut output = Vec::with_capacity(1024);
    let mut acks = 0u64;
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        output.clear();
        while let Ok(Some(frame)) = codec.decode(&mut input) {
            acks += 1;
            if let Some(tally) = &tally {
                tally.note(&frame.payload);
            }
            output.extend_from_slice(&ack_frame(&frame.payload, acks, timestamp));
        }
        if !output.is_empty() && stream.write_all(&output).await.is_err() {
            return;
        }
        if let Some(tally) = &tally {
            tally.finish_if_done();
        }
    }
}

impl Tally {
    /// Notes one message read, by its MSH-10.
    fn note(&self, payload: &[u8]) {
        let id = Message::parse(payload)
            .map(|m| m.header().field(10).raw().to_vec())
            .unwrap_or_default();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.first.get_or_insert_with(Instant::now);
        if !state.seen.insert(id) {
            state.duplicates += 1;
        }
    }

    /// Once every expected message is answered: writes the report and
    /// ends the process.
    fn finish_if_done(&self) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        let messages = state.seen.len() as u64;
        if messages < self.expect.messages {
            return;
        }
        let count = Count {
            messages,
            duplicates: state.duplicates,
            took: state.first.map_or(Duration::ZERO, |first| first.elapsed()),
        };
        let code = match std::fs::write(&self.expect.report, count.to_text()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cannot write {}: {e}", self.expect.report.display());
                1
            }
        };
        std::process::exit(code);
    }
}

impl Count {
    fn to_text(self) -> String {
        format!(
            "messages {}\nduplicates {}\nnanos {}\n",
            self.messages,
            self.duplicates,
            self.took.as_nanos()
        )
    }

    /// Reads what a counting sink wrote.
    pub fn read(path: &Path) -> anyhow::Result<Count> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the sink's count {}", path.display()))?;
        let value = |key: &str| -> anyhow::Result<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                .with_context(|| format!("no {key} in {}", path.display()))?
                .parse()
                .with_context(|| format!("bad {key} in {}", path.display()))
        };
        Ok(Count {
            messages: value("messages")?,
            duplicates: value("duplicates")?,
            took: Duration::from_nanos(value("nanos")?),
        })
    }
}

/// The framed AA for `payload` (an AR when it is not HL7).
fn ack_frame(payload: &[u8], n: u64, timestamp: &str) -> Vec<u8> {
    let control_id = format!("S{n}");
    let request = AckRequest {
        code: AckCode::AA,
        control_id: &control_id,
        timestamp,
        text: None,
        error: None,
    };
    let ack = match Message::parse(payload) {
        Ok(message) => build_ack(&message, &request),
        Err(_) => build_reject_for_unparseable(&AckRequest {
            code: AckCode::AR,
            ..request
        }),
    };
    frame(&ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count");
        let count = Count {
            messages: 50_000,
            duplicates: 2,
            took: Duration::from_nanos(4_123_456_789),
        };
        std::fs::write(&path, count.to_text()).unwrap();
        assert_eq!(Count::read(&path).unwrap(), count);
    }
}
