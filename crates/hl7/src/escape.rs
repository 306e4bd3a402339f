//! HL7 v2 escape sequences (chapter 2, "Use of escape sequences in text
//! fields"), decoded and encoded on bytes.
//!
//! Working on bytes, not on `str`, is what keeps non-ASCII text intact: the
//! delimiters are ASCII, so an 8859 or UTF-8 byte next to `\T\` is copied as
//! it is and decoded to characters later, with the message's MSH-18.
//!
//! Decoding choices:
//! - `\F\ \S\ \T\ \R\ \E\` become the message's own delimiters, `\P\` its
//!   truncation character (v2.7+, only when MSH-2 declares one).
//! - `\Xhh..\` becomes the raw bytes (an even, non-zero number of hex digits;
//!   anything else is left as written).
//! - `\.br\` becomes a single `\n`: a line break that cannot be mistaken for
//!   the `\r` segment terminator if the text is ever written again, and the
//!   line ending Rust text uses.
//! - Everything else (`\H\ \N\`, other formatting commands, `\C..\ \M..\`
//!   charset switches, `\Z..\` local sequences, unknown letters) and an
//!   escape character without its closing partner are kept unchanged, so
//!   nothing is lost that a later reader might understand better.

use std::borrow::Cow;

use crate::message::Delimiters;

/// Decodes the escape sequences of one value (a field, component or
/// subcomponent, never a whole segment: a sequence cannot cross a
/// delimiter). Borrows when there is nothing to decode.
pub fn unescape<'a>(raw: &'a [u8], d: &Delimiters) -> Cow<'a, [u8]> {
    match d.escape {
        Some(esc) if raw.contains(&esc) => Cow::Owned(unescape_with(raw, esc, d)),
        _ => Cow::Borrowed(raw),
    }
}

/// Encodes text so that it reads back as itself with [`unescape`]: each
/// delimiter becomes its sequence, and the bytes that would break the
/// segment or the MLLP frame (CR, LF, 0x0B, 0x1C) become `\Xhh\`. Borrows
/// when there is nothing to encode.
///
/// Without an escape character (MSH-2 may omit it) a delimiter cannot be
/// represented; it becomes a space, so the output can never split a field.
pub fn escape<'a>(text: &'a [u8], d: &Delimiters) -> Cow<'a, [u8]> {
    if !text.iter().any(|&b| sequence_for(b, d).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    for &b in text {
        match (sequence_for(b, d), d.escape) {
            (None, _) => out.push(b),
            (Some(seq), Some(esc)) => {
                out.push(esc);
                out.extend_from_slice(seq);
                out.push(esc);
            }
            (Some(_), None) => out.push(b' '),
        }
    }
    Cow::Owned(out)
}

/// The body of the sequence that stands for `b`, if `b` must be escaped.
fn sequence_for(b: u8, d: &Delimiters) -> Option<&'static [u8]> {
    let seq: &'static [u8] = match b {
        _ if b == d.field => b"F",
        _ if b == d.component => b"S",
        _ if b == d.subcomponent => b"T",
        _ if b == d.repetition => b"R",
        _ if Some(b) == d.escape => b"E",
        _ if Some(b) == d.truncation => b"P",
        b'\r' => b"X0D",
        b'\n' => b"X0A",
        0x0B => b"X0B",
        0x1C => b"X1C",
        _ => return None,
    };
    Some(seq)
}

fn unescape_with(raw: &[u8], esc: u8, d: &Delimiters) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.iter().position(|&b| b == esc) {
        out.extend_from_slice(&rest[..start]);
        let body = &rest[start + 1..];
        let Some(len) = body.iter().position(|&b| b == esc) else {
            // Unterminated: keep the escape character and what follows.
            out.extend_from_slice(&rest[start..]);
            return out;
        };
        if !decode_sequence(&body[..len], d, &mut out) {
            out.extend_from_slice(&rest[start..start + len + 2]);
        }
        rest = &body[len + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// Appends what `seq` (the bytes between two escape characters) stands
/// for; `false` when it is not a sequence this module decodes.
fn decode_sequence(seq: &[u8], d: &Delimiters, out: &mut Vec<u8>) -> bool {
    let single = match seq {
        b"F" => Some(d.field),
        b"S" => Some(d.component),
        b"T" => Some(d.subcomponent),
        b"R" => Some(d.repetition),
        b"E" => d.escape,
        b"P" => d.truncation,
        b".br" => Some(b'\n'),
        [b'X', hex @ ..] => return decode_hex(hex, out),
        _ => None,
    };
    single.map(|b| out.push(b)).is_some()
}

/// `\Xhh..\`: appends the bytes when the digits are valid, else nothing.
fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || hex.len() % 2 != 0 {
        return false;
    }
    let bytes: Option<Vec<u8>> = hex
        .chunks_exact(2)
        .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
        .collect();
    bytes.map(|b| out.extend_from_slice(&b)).is_some()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}
