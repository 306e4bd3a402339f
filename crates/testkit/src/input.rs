//! What the sender sends: the messages of a file, or a template rendered
//! afresh for every send.
//!
//! Files come from editors, Windows shares and captures, not from the
//! wire: segment ends may be `\n` or `\r\n`, a UTF-8 BOM may lead, batch
//! envelopes (FHS/BHS/BTS/FTS) and MLLP framing bytes may surround the
//! messages. All of that is cleaned once here, then each message is checked
//! to be HL7 and sent byte for byte as loaded (its own MSH-10 included).

use std::path::Path;

use bytes::Bytes;
use guichet_hl7::{Header, Message, ParseError};

use crate::templates::{Template, TemplateContext};

/// The messages a sender cycles through.
#[derive(Debug, Clone)]
pub struct Input {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Messages(Vec<Outgoing>),
    Template {
        template: Template,
        context: TemplateContext,
    },
}

/// One message ready for the wire, with what its ACK must echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Segments ended by `\r`, no MLLP framing.
    pub bytes: Bytes,
    /// MSH-10: the ACK's MSA-2 must equal it.
    pub control_id: String,
    /// MSH-9 as written.
    pub message_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{origin} holds no HL7 message (each message starts with a line beginning with MSH)")]
    Empty { origin: String },
    #[error("{origin}, line {line}: text before the first MSH segment; each message must start with a line beginning with MSH")]
    BeforeFirstMessage { origin: String, line: usize },
    #[error("{origin}, message {index} (line {line}): not an HL7 v2 message: {error}")]
    Parse {
        origin: String,
        index: usize,
        line: usize,
        error: ParseError,
    },
}

/// Segment ids of batch envelopes, dropped: each message goes alone.
const ENVELOPES: [&[u8]; 4] = [b"FHS", b"BHS", b"BTS", b"FTS"];
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Input {
    /// The messages of the file at `path`.
    pub fn from_file(path: &Path) -> Result<Input, InputError> {
        let bytes = std::fs::read(path).map_err(|error| InputError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Input::from_bytes(&bytes, &path.display().to_string())
    }

    /// The messages held in `bytes`; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Input, InputError> {
        let messages = split_messages(bytes, origin)?
            .into_iter()
            .enumerate()
            .map(|(i, (line, bytes))| outgoing(bytes, origin, i + 1, line))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Input {
            source: Source::Messages(messages),
        })
    }

    /// `template` rendered for every send with a fresh control id and
    /// timestamp; `context` gives the parties.
    pub fn template(template: Template, context: TemplateContext) -> Input {
        Input {
            source: Source::Template { template, context },
        }
    }

    /// Messages in one pass: those of the file, or one for a template.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Messages(m) => m.len(),
            Source::Template { .. } => 1,
        }
    }

    /// Never true: an empty file is refused when loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message for send number `seq` (0-based): the file's messages in
    /// turn, round and round, or a new rendering of the template.
    pub fn message(&self, seq: u64) -> Outgoing {
        match &self.source {
            Source::Messages(m) => {
                let len = m.len().max(1) as u64;
                let i = usize::try_from(seq % len).unwrap_or(0);
                m[i].clone()
            }
            Source::Template { template, context } => {
                let ctx = context.refreshed();
                Outgoing {
                    bytes: Bytes::from(template.render(&ctx)),
                    control_id: ctx.control_id,
                    message_type: template.message_type().to_owned(),
                }
            }
        }
    }
}

fn outgoing(
    bytes: Vec<u8>,
    origin: &str,
    index: usize,
    line: usize,
) -> Result<Outgoing, InputError> {
    let header = Message::parse(&bytes)
        .map(|msg| Header::read(&msg))
        .map_err(|error| InputError::Parse {
            origin: origin.to_owned(),
            index,
            line,
            error,
        })?;
    Ok(Outgoing {
        bytes: Bytes::from(bytes),
        control_id: header.control_id.into(),
        message_type: header.message_type.into(),
    })
}

/// Cuts `raw` into messages, each with the line number of its MSH.
///
/// Line ends (`\r`, `\n`, `\r\n`) become `\r`; blank lines, MLLP framing
/// bytes and batch envelope segments are dropped.
pub fn split_messages(raw: &[u8], origin: &str) -> Result<Vec<(usize, Vec<u8>)>, InputError> {
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
    let mut messages: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, line) in lines(raw).enumerate() {
        let line: Vec<u8> = line
            .iter()
            .copied()
            .filter(|&b| b != 0x0B && b != 0x1C)
            .collect();
        if line.iter().all(u8::is_ascii_whitespace) || ENVELOPES.iter().any(|e| line.starts_with(e))
        {
            continue;
        }
        if line.starts_with(b"MSH") {
            messages.push((i + 1, Vec::new()));
        }
        let Some((_, message)) = messages.last_mut() else {
            return Err(InputError::BeforeFirstMessage {
                origin: origin.to_owned(),
                line: i + 1,
            });
        };
        message.extend_from_slice(&line);
        message.push(b'\r');
    }
    if messages.is_empty() {
        return Err(InputError::Empty {
            origin: origin.to_owned(),
        });
    }
    Ok(messages)
}

/// Lines ended by `\r\n`, `\n` or `\r`.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = match rest.get(end..end + 2) {
            Some(b"\r\n") => 2,
            _ if end < rest.len() => 1,
            _ => 0,
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_bom_and_blank_lines_are_normalised() {
        let raw = b"\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|20250101||ADT^A01|ID1|P|2.5\r\nPID|1\r\n\r\nMSH|^~\\&|A|B|C|D|20250101||ADT^A08|ID2|P|2.5\nPID|2\rPV1|1\n";
        let input = Input::from_bytes(raw, "test.hl7").unwrap();
        assert_eq!(input.len(), 2);
        let first = input.message(0);
        assert_eq!(
            &first.bytes[..],
            b"MSH|^~\\&|A|B|C|D|20250101||ADT^A01|ID1|P|2.5\rPID|1\r"
        );
        assert_eq!(first.control_id, "ID1");
        let second = input.message(1);
        assert_eq!(second.control_id, "ID2");
        assert_eq!(second.message_type, "ADT^A08");
        assert!(second.bytes.ends_with(b"PID|2\rPV1|1\r"));
        assert_eq!(input.message(2), first, "the file is sent round and round");
    }

    #[test]
    fn mllp_framing_and_batch_envelopes_are_dropped() {
        let raw = b"FHS|^~\\&\rBHS|^~\\&\r\x0bMSH|^~\\&|A|B|C|D|1||ACK|X|P|2.5\rMSA|AA|Y\r\x1c\rBTS|1\rFTS|1\r";
        let input = Input::from_bytes(raw, "capture").unwrap();
        assert_eq!(input.len(), 1);
        assert_eq!(
            &input.message(0).bytes[..],
            b"MSH|^~\\&|A|B|C|D|1||ACK|X|P|2.5\rMSA|AA|Y\r"
        );
    }

    #[test]
    fn errors_name_the_origin_and_the_line() {
        let err = Input::from_bytes(b"\n\nPID|1\nMSH|^~\\&|A\n", "f.hl7").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.hl7, line 3: text before the first MSH segment; each message must start with a line beginning with MSH"
        );
        let err = Input::from_bytes(b" \r\n", "f.hl7").unwrap_err();
        assert!(matches!(err, InputError::Empty { .. }), "{err}");
        let err = Input::from_bytes(b"MSH|^~\\&|A\rMSHX\r", "f.hl7").unwrap_err();
        assert!(
            matches!(
                err,
                InputError::Parse {
                    index: 2,
                    line: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn templates_render_afresh_for_every_send() {
        let input = Input::template(Template::AdtA08, TemplateContext::default());
        assert_eq!(input.len(), 1);
        let (a, b) = (input.message(0), input.message(0));
        assert_ne!(a.control_id, b.control_id);
        assert_eq!(a.message_type, "ADT^A08^ADT_A01");
    }
}
