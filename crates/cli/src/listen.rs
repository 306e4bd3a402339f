//! `guichet listen`: a receiving application that answers ACKs.

use std::process::ExitCode;
use std::time::Duration;

use guichet_hl7::{Message, ParseOptions};
use guichet_testkit::{listen, AckPolicy, ListenEvent, ListenOptions, Received};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::ListenArgs;
use crate::runtime::{cancel_on_ctrl_c, runtime};

pub fn listen_command(args: ListenArgs) -> anyhow::Result<ExitCode> {
    let mut opts = ListenOptions::new(args.on);
    opts.ack = args
        .ack
        .parse::<AckPolicy>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    opts.delay = Duration::from_millis(args.delay);
    opts.show = args.show;
    opts.tls = args.tls.options();
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_ctrl_c(shutdown.clone());
        let (tx, mut rx) = mpsc::channel(256);
        let handle = listen(opts, tx, shutdown).await?;
        println!(
            "listening on {} (ack {}); Ctrl-C stops",
            handle.local_addr(),
            args.ack
        );
        while let Some(event) = rx.recv().await {
            print_event(&event);
        }
        let stats = handle.join().await;
        println!(
            "{} connection(s), {} message(s), {} refused",
            stats.connections, stats.messages, stats.refused
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn print_event(event: &ListenEvent) {
    match event {
        ListenEvent::Connected { conn, peer, client } => match client {
            Some(subject) => println!("conn {conn} from {peer}: connected, certificate {subject}"),
            None => println!("conn {conn} from {peer}: connected"),
        },
        ListenEvent::Message(received) => print_received(received),
        ListenEvent::Closed {
            conn,
            peer,
            messages,
            reason,
        } => println!(
            "conn {conn} from {peer}: closed after {messages} message(s){}",
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        ListenEvent::Refused { peer, reason } => println!("refused {peer}: {reason}"),
    }
}

fn print_received(r: &Received) {
    let ack = r.ack.map_or("none", |a| a.as_str());
    match &r.header {
        Some(h) => println!(
            "conn {} {:<20} {:<18} from {}/{} v{} {} bytes -> ACK {ack}{}",
            r.conn,
            h.control_id,
            h.message_type,
            h.sending_application,
            h.sending_facility,
            h.version,
            r.size,
            r.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        None => println!("conn {} not HL7 ({} bytes) -> ACK {ack}", r.conn, r.size),
    }
    if let Some(body) = &r.body {
        print_body(body);
    }
}

/// The whole message, one segment per line, decoded with its MSH-18.
fn print_body(body: &[u8]) {
    let Ok(message) = Message::parse_with(body, ParseOptions::lenient()) else {
        println!("{}", String::from_utf8_lossy(body));
        return;
    };
    let charset = message.charset();
    for segment in message.segments() {
        println!("    {}", charset.decode(segment.raw()));
    }
}
