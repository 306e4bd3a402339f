//! The receiving application at the end of the chain: answers every
//! message with an AA built by `guichet_hl7::build_ack`, and nothing else.
//!
//! It runs as its own process (`guichet-bench sink`), like a real DPI, and
//! is kept as cheap as possible: no printing, one write per batch of
//! pipelined frames, buffers reused across messages.

use std::io::Write;
use std::net::SocketAddr;

use bytes::BytesMut;
use guichet_hl7::{
    build_ack, build_reject_for_unparseable, frame, AckCode, AckRequest, Message, MllpCodec,
};
use guichet_testkit::stamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

/// Binds `listen`, prints `port N` on stdout, then answers until killed.
pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        let port = listener.local_addr()?.port();
        let mut out = std::io::stdout();
        writeln!(out, "port {port}")?;
        out.flush()?;
        serve(listener).await
    })
}

async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let timestamp: &'static str = stamp::now_timestamp().leak();
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(answer(stream, timestamp));
    }
}

/// Answers one connection until it closes; any error just ends it.
async fn answer(mut stream: TcpStream, timestamp: &'static str) {
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
            output.extend_from_slice(&ack_frame(&frame.payload, acks, timestamp));
        }
        if !output.is_empty() && stream.write_all(&output).await.is_err() {
            return;
        }
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
