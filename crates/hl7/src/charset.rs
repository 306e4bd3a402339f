//! The character sets a message can declare in MSH-18 (HL7 table 0211).
//!
//! Only the sets met in French hospitals are decoded exactly: ASCII,
//! ISO 8859-1, ISO 8859-15 and UTF-8. The 8859 tables are written here
//! (they are 256 entries that differ in 8 places) rather than pulled from a
//! general encoding crate: the view stays small, auditable and fuzzable.
//! These are the ISO tables, not Windows-1252: 0x80..=0x9F decode to the C1
//! controls U+0080..=U+009F.

use std::borrow::Cow;

/// A character set named by MSH-18 (first repetition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Charset {
    /// "ASCII", or MSH-18 empty (HL7's default). Decoding is lenient, see
    /// [`Charset::decode`]; encoding is strict 7-bit.
    #[default]
    Ascii,
    /// "8859/1" (Latin-1).
    Latin1,
    /// "8859/15" (Latin-9), the usual French choice: it differs from 8859/1
    /// only at 0xA4 €, 0xA6 Š, 0xA8 š, 0xB4 Ž, 0xB8 ž, 0xBC Œ, 0xBD œ, 0xBE Ÿ.
    Latin9,
    /// "UNICODE UTF-8".
    Utf8,
    /// A name this crate does not decode exactly (another 8859 part, UCS-2,
    /// JIS...). Treated as 8859/1 so that display never fails; the exact
    /// MSH-18 stays in the message bytes.
    Other,
}

/// A character that the target character set cannot represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("character {character:?} (U+{code:04X}) cannot be written in {charset:?}; pick a character set that has it (e.g. \"UNICODE UTF-8\") or replace it", code = u32::from(*character))]
pub struct Unrepresentable {
    /// The first character that does not fit.
    pub character: char,
    /// The set that was asked for.
    pub charset: Charset,
}

/// Where 8859-15 departs from 8859-1: (byte, character in 8859-15).
const LATIN9_CHANGES: [(u8, char); 8] = [
    (0xA4, '\u{20AC}'), // € (8859-1: ¤)
    (0xA6, '\u{0160}'), // Š (8859-1: ¦)
    (0xA8, '\u{0161}'), // š (8859-1: ¨)
    (0xB4, '\u{017D}'), // Ž (8859-1: ´)
    (0xB8, '\u{017E}'), // ž (8859-1: ¸)
    (0xBC, '\u{0152}'), // Œ (8859-1: ¼)
    (0xBD, '\u{0153}'), // œ (8859-1: ½)
    (0xBE, '\u{0178}'), // Ÿ (8859-1: ¾)
];

impl Charset {
    /// Reads an MSH-18 value. Spelling is matched without regard to case or
    /// surrounding spaces, and a few common non-HL7 spellings seen in the
    /// field ("UTF-8", "ISO-8859-15", ...) are accepted because senders use
    /// them. Empty means ASCII, as HL7 says.
    pub fn from_msh18(value: &[u8]) -> Charset {
        let name = value.trim_ascii();
        let is = |names: &[&str]| {
            names
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
        };
        if name.is_empty() || is(&["ASCII", "US-ASCII"]) {
            Charset::Ascii
        } else if is(&["8859/1", "ISO-8859-1", "ISO8859-1", "ISO_8859-1"]) {
            Charset::Latin1
        } else if is(&["8859/15", "ISO-8859-15", "ISO8859-15", "ISO_8859-15"]) {
            Charset::Latin9
        } else if is(&["UNICODE UTF-8", "UTF-8", "UTF8"]) {
            Charset::Utf8
        } else {
            Charset::Other
        }
    }

    /// The MSH-18 spelling, for writing a header. `Other` has no spelling of
    /// its own (""): echo the original MSH-18 bytes instead.
    pub fn name(&self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Latin1 => "8859/1",
            Charset::Latin9 => "8859/15",
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::Other => "",
        }
    }

    /// Decodes bytes to text, never failing (metadata must always be
    /// loggable). Pure ASCII is borrowed.
    ///
    /// `Ascii` (which is also what an empty MSH-18 means) is read leniently,
    /// because senders often leave MSH-18 empty and still send accents: bytes
    /// above 0x7F are read as UTF-8 when the whole input is valid UTF-8
    /// (accidental 8859 text almost never is), otherwise as 8859-15, the
    /// French default. Invalid UTF-8 under `Utf8` becomes U+FFFD.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self {
            // ASCII reads the same in every set: under ASCII and UTF-8, the
            // one UTF-8 check covers it (no separate pass for ASCII).
            Charset::Ascii => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => Cow::Owned(decode_latin9(bytes)),
            },
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Latin1 | Charset::Other => {
                ascii_str(bytes).map_or_else(|| Cow::Owned(decode_latin1(bytes)), Cow::Borrowed)
            }
            Charset::Latin9 => {
                ascii_str(bytes).map_or_else(|| Cow::Owned(decode_latin9(bytes)), Cow::Borrowed)
            }
        }
    }

    /// Like [`Charset::decode`] for bytes already owned, so UTF-8 is not
    /// copied twice.
    pub fn decode_owned(&self, bytes: Vec<u8>) -> String {
        match self.decode(&bytes) {
            Cow::Owned(text) => text,
            Cow::Borrowed(_) => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }

    /// Encodes text for a message in this set, refusing what it cannot
    /// represent (strict: a silent '?' in a patient name is a data error).
    pub fn encode(&self, text: &str) -> Result<Vec<u8>, Unrepresentable> {
        if *self == Charset::Utf8 {
            return Ok(text.as_bytes().to_vec());
        }
        text.chars()
            .map(|c| {
                self.encode_char(c).ok_or(Unrepresentable {
                    character: c,
                    charset: *self,
                })
            })
            .collect()
    }

    /// Encodes text, writing '?' for what the set cannot represent. For
    /// generated messages (ACK texts) that must always be produced.
    pub fn encode_lossy(&self, text: &str) -> Vec<u8> {
        if *self == Charset::Utf8 {
            return text.as_bytes().to_vec();
        }
        text.chars()
            .map(|c| self.encode_char(c).unwrap_or(b'?'))
            .collect()
    }

    /// One character in a single-byte set (UTF-8 is handled by the callers,
    /// which copy the string's bytes).
    fn encode_char(&self, c: char) -> Option<u8> {
        match self {
            Charset::Ascii => u8::try_from(c).ok().filter(u8::is_ascii),
            Charset::Latin1 | Charset::Other => u8::try_from(c).ok(),
            Charset::Latin9 => latin9_byte(c),
            Charset::Utf8 => None,
        }
    }
}

/// The text when every byte is ASCII (the common case, borrowed).
fn ascii_str(bytes: &[u8]) -> Option<&str> {
    bytes
        .is_ascii()
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn decode_latin9(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| latin9_char(b)).collect()
}

fn latin9_char(byte: u8) -> char {
    LATIN9_CHANGES
        .iter()
        .find(|(b, _)| *b == byte)
        .map_or(char::from(byte), |(_, c)| *c)
}

fn latin9_byte(c: char) -> Option<u8> {
    if let Some((b, _)) = LATIN9_CHANGES.iter().find(|(_, ch)| *ch == c) {
        return Some(*b);
    }
    let byte = u8::try_from(c).ok()?;
    let replaced = LATIN9_CHANGES.iter().any(|(b, _)| *b == byte);
    (!replaced).then_some(byte)
}
