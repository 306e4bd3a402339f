//! A blocking HTTP/1.1 GET on 127.0.0.1, for the status page, metrics and
//! admin endpoints, and polling one until its answer holds; reading a
//! request body on a test upstream.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Buf;
use http_body::Body;
use http_body_util::BodyExt;

use crate::wait::{until_blocking, WAIT};

/// `GET path` on 127.0.0.1:`port` with `Connection: close`, each step
/// bounded by [`WAIT`]: the status code and the body.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::other(format!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}

/// Polls `GET path` until `done(code, body)` holds; returns the body.
///
/// # Panics
/// After [`WAIT`], with `what` and the last answer.
pub fn wait_for(port: u16, path: &str, what: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let answer = until_blocking(
        WAIT,
        &format!("GET {path}: {what}"),
        || get(port, path),
        |answer| matches!(answer, Ok((code, body)) if done(*code, body)),
    );
    match answer {
        Ok((_, body)) => body,
        Err(e) => unreachable!("a failed GET never satisfies the wait: {e}"),
    }
}

/// Reads `body` to its end, handing each data chunk to `each`: how many
/// bytes came, and the error that cut it short, if one did.
pub async fn drain<B>(mut body: B, mut each: impl FnMut(&[u8])) -> (u64, Option<String>)
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    each(data.chunk());
                    bytes += data.remaining() as u64;
                }
            }
            Err(e) => return (bytes, Some(e.to_string())),
        }
    }
    (bytes, None)
}
