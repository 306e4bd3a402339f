//! The simulators against python-hl7 (Debian's python3-hl7): its
//! `mllp_send` sending to our listener, and our sender against a server
//! built on its `hl7.mllp.start_hl7_server`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{bounded, run, template, Listener};
use guichet_hl7::AckCode;
use guichet_testkit::{AckPolicy, Outcome, SendOptions, Template, TemplateContext};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const MLLP_SEND: &str = "/usr/bin/mllp_send";
const PYTHON: &str = "/usr/bin/python3";

/// python-hl7 is installed with its `mllp_send`; CI installs it.
fn python_hl7() -> bool {
    if Path::new(MLLP_SEND).exists() {
        return true;
    }
    println!("SKIPPED: python3-hl7 not installed");
    false
}

#[tokio::test]
async fn mllp_send_gets_our_acks() {
    if !python_hl7() {
        return;
    }
    let mut listener = Listener::with_policy(AckPolicy::Aa).await;
    let ctx = TemplateContext::default();
    let (first, second) = (ctx.refreshed(), ctx.refreshed());
    // A file as people keep them: LF endings (`--loose` turns them to CR).
    let mut file = Template::AdtA01.render(&first);
    file.extend(Template::AdtA01.render(&second));
    let file: Vec<u8> = file
        .into_iter()
        .map(|b| if b == b'\r' { b'\n' } else { b })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adt.hl7");
    std::fs::write(&path, file).unwrap();

    let port = listener.handle.local_addr().port().to_string();
    let output = bounded(
        "mllp_send",
        Command::new(MLLP_SEND)
            .args(["--loose", "-p", &port, "-f"])
            .arg(&path)
            .arg("127.0.0.1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mllp_send failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for ctx in [&first, &second] {
        let msa = format!("MSA|AA|{}", ctx.control_id);
        assert!(stdout.contains(&msa), "{msa} not in {stdout:?}");
    }
    assert!(stdout.contains("|ACK^A01^ACK|"), "{stdout:?}");

    let received = listener.messages(2).await;
    for (m, ctx) in received.iter().zip([&first, &second]) {
        let header = m.header.as_ref().expect("HL7 parsed");
        assert_eq!(header.control_id, ctx.control_id);
        assert_eq!(header.message_type, "ADT^A01^ADT_A01");
        assert_eq!(header.charset, guichet_hl7::Charset::Latin9);
        assert_eq!(m.ack, Some(AckCode::AA));
    }
    assert_eq!(
        received[0].conn, received[1].conn,
        "mllp_send uses one connection"
    );
}

/// A python-hl7 MLLP server: answers every message with `create_ack()`,
/// prints the port it bound.
const PYTHON_SERVER: &str = r#"
import asyncio, sys
import hl7
from hl7.mllp import start_hl7_server

async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()

async def main():
    server = await start_hl7_server(handle, "127.0.0.1", 0, encoding="iso-8859-15")
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

#[tokio::test]
async fn our_sender_against_python_hl7_server() {
    if !python_hl7() {
        return;
    }
    let mut server = Command::new(PYTHON)
        .args(["-c", PYTHON_SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let mut line = String::new();
    bounded(
        "python server port",
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port? {line:?}"));

    for t in [Template::AdtA01, Template::OruR01, Template::MdmT02] {
        let opts = SendOptions {
            count: Some(3),
            ack_timeout: Duration::from_secs(5),
            ..SendOptions::new(format!("127.0.0.1:{port}"))
        };
        let (summary, results) = run(&opts, template(t)).await;
        assert!(summary.all_accepted(), "{t}: {summary} {results:?}");
        assert_eq!((summary.accepted, summary.connections), (3, 1));
        for r in &results {
            assert_eq!((r.ack, r.msa2_matches), (Some(AckCode::AA), true));
            assert_eq!(r.outcome, Outcome::Accepted);
        }
    }
    server.kill().await.unwrap();
}
