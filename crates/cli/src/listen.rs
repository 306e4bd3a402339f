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
    // The record holds whole messages: the listener keeps them.
    opts.show = args.show || args.record.is_some();
    opts.tls = args.tls.options();
    let mut record = args.record.as_deref().map(Record::open).transpose()?;
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
            print_event(&event, args.show);
            if let (Some(record), ListenEvent::Message(received)) = (&mut record, &event) {
                record.write(received)?;
            }
        }
        let stats = handle.join().await;
        println!(
            "{} connection(s), {} message(s), {} refused",
            stats.connections, stats.messages, stats.refused
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn print_event(event: &ListenEvent, show: bool) {
    match event {
        ListenEvent::Connected { conn, peer, client } => match client {
            Some(subject) => println!("conn {conn} from {peer}: connected, certificate {subject}"),
            None => println!("conn {conn} from {peer}: connected"),
        },
        ListenEvent::Message(received) => print_received(received, show),
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

fn print_received(r: &Received, show: bool) {
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
    if let Some(body) = r.body.as_ref().filter(|_| show) {
        print_body(body);
    }
}

/// `--record`: one JSON line per message received, appended.
struct Record {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
}

impl Record {
    fn open(path: &std::path::Path) -> anyhow::Result<Record> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the record {}: {e}", path.display()))?;
        Ok(Record {
            file: std::io::BufWriter::new(file),
            path: path.to_path_buf(),
        })
    }

    /// The message's line, flushed at once: a book reads the file while
    /// the listener runs.
    fn write(&mut self, r: &Received) -> anyhow::Result<()> {
        use std::io::Write;
        let h = r.header.as_ref();
        let field = |f: fn(&guichet_hl7::Header) -> &str| h.map(f);
        let line = serde_json::json!({
            "time": now_rfc3339(),
            "conn": r.conn,
            "peer": r.peer.to_string(),
            "message_type": field(|h| &h.message_type),
            "control_id": field(|h| &h.control_id),
            "sending_application": field(|h| &h.sending_application),
            "sending_facility": field(|h| &h.sending_facility),
            "version": field(|h| &h.version),
            "size": r.size,
            "ack": r.ack.map(|a| a.as_str()),
            "body": r.body.as_deref().map(decoded),
        });
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|e| anyhow::anyhow!("cannot write the record {}: {e}", self.path.display()))
    }
}

/// The message as text, decoded with its MSH-18; segments end with CR.
fn decoded(body: &[u8]) -> String {
    match Message::parse_with(body, ParseOptions::lenient()) {
        Ok(message) => message.charset().decode(body).into_owned(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
