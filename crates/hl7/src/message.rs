//! A zero-copy view of an HL7 v2 message: segments, fields, repetitions,
//! components and subcomponents are slices of the original bytes.
//!
//! The gateway forwards the bytes it received, never a re-serialisation, so
//! this view only ever reads: nothing here can alter a message. Parsing
//! checks the header (MSH, or FHS/BHS for batches) and its delimiters and
//! allocates nothing; segments are found lazily as they are walked.
//!
//! `Debug` of these types never prints content (only ids and lengths):
//! message bodies are patient data and must not reach a log by accident.

use std::borrow::Cow;
use std::fmt;

use crate::charset::Charset;
use crate::escape;

/// The UTF-8 byte order mark some files start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Segments whose field 1 is the field separator and field 2 MSH-2.
const HEADER_IDS: [&[u8]; 3] = [b"MSH", b"FHS", b"BHS"];

/// The separators a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    /// MSH-1, between fields (`|`).
    pub field: u8,
    /// Between components (`^`).
    pub component: u8,
    /// Between repetitions of a field (`~`).
    pub repetition: u8,
    /// Opens and closes escape sequences (`\`). `None` when MSH-2 omits it,
    /// which HL7 allows for messages without escapes or subcomponents.
    pub escape: Option<u8>,
    /// Between subcomponents (`&`). Equal to `component` when MSH-2 declares
    /// none: splitting a component on it then finds nothing to split.
    pub subcomponent: u8,
    /// v2.7+: the 5th character of MSH-2 (`#`), marking a truncated value.
    pub truncation: Option<u8>,
}

/// How tolerant parsing is about how segments end and what precedes the
/// header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept "\n" and "\r\n" as segment ends, and skip a leading UTF-8
    /// BOM (files, broken senders). Off on the wire, where HL7 says "\r".
    pub lenient_line_endings: bool,
    /// Skip a UTF-8 BOM and whitespace (space, tab, CR, LF) before the
    /// header. Senders that load messages from files put them there; the
    /// message is still the message, and receivers take it. The caller
    /// counts them with [`Leading::of`].
    pub skip_leading: bool,
}

/// What precedes the header of a message: a UTF-8 BOM, whitespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leading {
    /// The bytes start with a UTF-8 BOM.
    pub bom: bool,
    /// Spaces, tabs, CRs and LFs after the BOM (if any), before the header.
    pub whitespace: usize,
}

/// Why bytes are not an HL7 v2 message.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Empty, or the first segment is not MSH, FHS or BHS.
    #[error("not an HL7 v2 message: the first segment is not MSH, FHS or BHS (for files with \"\\n\" line ends or a BOM, parse with lenient_line_endings)")]
    NoHeader,
    /// MSH-1/MSH-2 are missing, repeated, alphanumeric or not printable.
    #[error("unusable delimiters in MSH-1/MSH-2: expected distinct printable non-alphanumeric characters, e.g. \"MSH|^~\\&|\"")]
    BadDelimiters,
}

/// A parsed message: the original bytes plus what is needed to walk them.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// The bytes as received, BOM included.
    raw: &'a [u8],
    /// Where segments start (after a skipped BOM).
    body: usize,
    /// The header segment's span in `raw`.
    header: (usize, usize),
    delimiters: Delimiters,
    lenient: bool,
}

/// One segment, without its terminator.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
}

/// Any level of the hierarchy: a field, repetition, component or
/// subcomponent. One type so that callers can chain
/// `msg.segment("MSH")?.field(9).component(2)`.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
    level: Level,
}

/// Which separators still apply below a [`Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Field,
    Repetition,
    Component,
    Subcomponent,
    /// MSH-1 and MSH-2 (and segment ids): they contain delimiter characters
    /// that do not separate anything.
    Literal,
}

/// The segments of a message, in order; empty lines are skipped.
#[derive(Clone)]
pub struct Segments<'a> {
    spans: Spans<'a>,
    delimiters: Delimiters,
}

/// The repetitions of a field.
#[derive(Clone)]
pub struct Repetitions<'a> {
    rest: Option<&'a [u8]>,
    field: Field<'a>,
}

/// Segment spans (start, end) in the raw bytes, empty ones skipped.
#[derive(Clone)]
struct Spans<'a> {
    raw: &'a [u8],
    pos: usize,
    lenient: bool,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: b'&',
            truncation: None,
        }
    }
}

impl Delimiters {
    /// MSH-2 as written for these delimiters, e.g. `^~\&`.
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut out = vec![self.component, self.repetition];
        out.extend(self.escape);
        if self.subcomponent != self.component {
            out.push(self.subcomponent);
        }
        out.extend(self.truncation);
        out
    }

    /// Reads MSH-1 and MSH-2 from a header segment (MSH, FHS or BHS).
    fn from_header(segment: &[u8]) -> Result<Delimiters, ParseError> {
        let field = *segment.get(3).ok_or(ParseError::BadDelimiters)?;
        let rest = segment.get(4..).unwrap_or_default();
        let msh2 = rest
            .iter()
            .position(|&b| b == field)
            .map_or(rest, |end| &rest[..end]);
        if !(2..=5).contains(&msh2.len()) || !usable_delimiters(field, msh2) {
            return Err(ParseError::BadDelimiters);
        }
        Ok(Delimiters::from_msh2(field, msh2))
    }

    /// MSH-2 is 2 to 5 characters: component, repetition, then optionally
    /// escape, subcomponent and (v2.7+) truncation, in that order.
    fn from_msh2(field: u8, msh2: &[u8]) -> Delimiters {
        let at = |i: usize| msh2.get(i).copied();
        let component = at(0).unwrap_or(b'^');
        Delimiters {
            field,
            component,
            repetition: at(1).unwrap_or(b'~'),
            escape: at(2),
            subcomponent: at(3).unwrap_or(component),
            truncation: at(4),
        }
    }
}

impl ParseOptions {
    /// Options for files and broken senders: "\n" or "\r\n" line ends, a
    /// BOM and whitespace before the header.
    pub fn lenient() -> Self {
        ParseOptions {
            lenient_line_endings: true,
            skip_leading: true,
        }
    }

    /// Options for frames read on the wire, where only the header is read
    /// and the bytes go on untouched: a BOM or whitespace before MSH is
    /// skipped (and counted by the caller) rather than refused, since an
    /// AR would tell the sender never to send the message again; and
    /// segments ending in "\n" or "\r\n" (messages pasted from files) are
    /// split there, so that MSH-15/16 and MSH-18 are read from MSH and not
    /// from the segment after it.
    pub fn wire() -> Self {
        ParseOptions {
            lenient_line_endings: true,
            skip_leading: true,
        }
    }
}

impl Leading {
    /// Reads what precedes the first non-blank byte of `raw`.
    pub fn of(raw: &[u8]) -> Leading {
        let bom = raw.starts_with(BOM);
        let rest = if bom { &raw[BOM.len()..] } else { raw };
        let whitespace = rest
            .iter()
            .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        Leading { bom, whitespace }
    }

    /// Whether anything precedes the header.
    pub fn is_empty(&self) -> bool {
        !self.bom && self.whitespace == 0
    }

    /// How many bytes precede the header.
    pub fn len(&self) -> usize {
        if self.bom {
            BOM.len() + self.whitespace
        } else {
            self.whitespace
        }
    }
}

impl<'a> Message<'a> {
    /// Parses bytes from the wire: segments end with "\r" only.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_with(raw, ParseOptions::default())
    }

    /// Parses with the given tolerance. Only the header is checked; a
    /// message is as good as its header for routing and acknowledging.
    pub fn parse_with(raw: &'a [u8], opts: ParseOptions) -> Result<Self, ParseError> {
        let lenient = opts.lenient_line_endings;
        let body = if opts.skip_leading {
            Leading::of(raw).len()
        } else if lenient && raw.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let header = Spans::new(raw, body, lenient)
            .next()
            .ok_or(ParseError::NoHeader)?;
        let first = &raw[header.0..header.1];
        if !first.get(..3).is_some_and(|id| HEADER_IDS.contains(&id)) {
            return Err(ParseError::NoHeader);
        }
        let delimiters = Delimiters::from_header(first)?;
        Ok(Message {
            raw,
            body,
            header,
            delimiters,
            lenient,
        })
    }

    /// The original bytes, untouched (BOM and line ends included).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The delimiters declared by the header.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// The segments in order, header first; empty lines are skipped.
    pub fn segments(&self) -> Segments<'a> {
        Segments {
            spans: Spans::new(self.raw, self.body, self.lenient),
            delimiters: self.delimiters,
        }
    }

    /// The first segment with this id ("PID", "ZBE", ...).
    pub fn segment(&self, id: &str) -> Option<Segment<'a>> {
        self.segments().find(|s| s.id() == id.as_bytes())
    }

    /// The first segment: MSH, or FHS/BHS for a batch.
    pub fn header(&self) -> Segment<'a> {
        Segment {
            raw: &self.raw[self.header.0..self.header.1],
            delimiters: self.delimiters,
        }
    }

    /// Whether this is a batch (starts with FHS or BHS).
    pub fn is_batch(&self) -> bool {
        self.header().id() != b"MSH"
    }

    /// The MSH that carries version and character set: the header itself,
    /// or the first MSH inside a batch (`None` for an empty batch).
    pub fn first_msh(&self) -> Option<Segment<'a>> {
        let header = self.header();
        if header.id() == b"MSH" {
            Some(header)
        } else {
            self.segment("MSH")
        }
    }

    /// The character set of MSH-18 (first repetition) of [`Self::first_msh`].
    pub fn charset(&self) -> Charset {
        self.first_msh().map_or(Charset::Ascii, |msh| {
            Charset::from_msh18(msh.field(18).repetition(1).raw())
        })
    }
}

impl<'a> Segment<'a> {
    /// The segment id: "MSH", "PID", "ZBE"... (bytes before the first
    /// field separator).
    pub fn id(&self) -> &'a [u8] {
        let sep = self.delimiters.field;
        let end = self
            .raw
            .iter()
            .position(|&b| b == sep)
            .unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    /// The whole segment as written, without its terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Field `n` in HL7 numbering. For MSH/FHS/BHS, field(1) is the field
    /// separator itself and field(2) the encoding characters; otherwise
    /// field(1) is the first after the id. field(0) is the id. Absent fields
    /// are empty.
    pub fn field(&self, n: usize) -> Field<'a> {
        let header = self.is_header();
        let raw = match (header, n) {
            (_, 0) => self.id(),
            (true, 1) => self.separator(),
            (true, n) => nth_part(self.raw, self.delimiters.field, n - 1),
            (false, n) => nth_part(self.raw, self.delimiters.field, n),
        };
        self.numbered(n, header, raw)
    }

    /// Fields 0 to `N - 1`, each as [`Segment::field`] gives it, found in
    /// one pass over the segment instead of one pass per field.
    pub fn first_fields<const N: usize>(&self) -> [Field<'a>; N] {
        let mut fields = [Field::empty(self.delimiters); N];
        let header = self.is_header();
        if let (true, Some(slot)) = (header, fields.get_mut(1)) {
            *slot = self.numbered(1, header, self.separator());
        }
        // Part k of the segment is field k, or field k + 1 in a header
        // segment (whose field 1 is the separator itself). The scan stops
        // at the end of field N - 1: nothing past it is read.
        let after_id = if header { 2 } else { 1 };
        let mut rest = self.raw;
        let mut n = 0;
        while let Some(slot) = fields.get_mut(n) {
            // Fields are short: a plain scan beats memchr's set-up.
            let sep = self.delimiters.field;
            let end = rest.iter().position(|&b| b == sep).unwrap_or(rest.len());
            *slot = self.numbered(n, header, &rest[..end]);
            let Some(next) = rest.get(end + 1..) else {
                break;
            };
            rest = next;
            n = if n == 0 { after_id } else { n + 1 };
        }
        fields
    }

    /// Field `n` of this segment holding `raw`: the id, and a header
    /// segment's separator and encoding characters, are literal (never
    /// split into repetitions or components).
    fn numbered(&self, n: usize, header: bool, raw: &'a [u8]) -> Field<'a> {
        let literal = n == 0 || (header && n <= 2);
        Field {
            raw,
            delimiters: self.delimiters,
            level: if literal {
                Level::Literal
            } else {
                Level::Field
            },
        }
    }

    /// MSH-1 (FHS-1, BHS-1): the field separator as written.
    fn separator(&self) -> &'a [u8] {
        self.raw.get(3..4).unwrap_or_default()
    }

    /// The number of the last field written, empty ones included.
    pub fn field_count(&self) -> usize {
        let parts = self.raw.split(|&b| b == self.delimiters.field).count();
        if self.is_header() {
            parts
        } else {
            parts - 1
        }
    }

    fn is_header(&self) -> bool {
        HEADER_IDS.contains(&self.id())
    }
}

impl<'a> Field<'a> {
    /// An absent value (what every out-of-range accessor returns).
    pub(crate) fn empty(delimiters: Delimiters) -> Self {
        Field {
            raw: &[],
            delimiters,
            level: Level::Literal,
        }
    }

    /// The bytes as written, escape sequences included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether nothing is written here.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the value is HL7's explicit null `""` (delete the value),
    /// which differs from empty (leave it unchanged).
    pub fn is_null(&self) -> bool {
        self.raw == b"\"\""
    }

    /// The repetitions of a field; any lower level is its own single
    /// repetition. An empty field has none.
    pub fn repetitions(&self) -> Repetitions<'a> {
        let rest = (!self.raw.is_empty()).then_some(self.raw);
        Repetitions { rest, field: *self }
    }

    /// Repetition `n`, 1-based; empty when absent.
    pub fn repetition(&self, n: usize) -> Field<'a> {
        match self.level {
            Level::Field => self.part(self.delimiters.repetition, n, Level::Repetition),
            _ => self.only_first(n),
        }
    }

    /// Component `n`, 1-based, of the first repetition; empty when absent.
    /// A value without components is its own component 1.
    pub fn component(&self, n: usize) -> Field<'a> {
        match self.level {
            Level::Field => self.repetition(1).component(n),
            Level::Repetition => self.part(self.delimiters.component, n, Level::Component),
            _ => self.only_first(n),
        }
    }

    /// Subcomponent `n`, 1-based, of the first component; empty when absent.
    pub fn subcomponent(&self, n: usize) -> Field<'a> {
        match self.level {
            Level::Field | Level::Repetition => self.component(1).subcomponent(n),
            Level::Component => self.part(self.delimiters.subcomponent, n, Level::Subcomponent),
            _ => self.only_first(n),
        }
    }

    /// The value with escape sequences decoded (see [`crate::escape`](mod@crate::escape)).
    /// MSH-1 and MSH-2 are returned as written.
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if self.level == Level::Literal {
            return Cow::Borrowed(self.raw);
        }
        escape::unescape(self.raw, &self.delimiters)
    }

    /// The value unescaped, then decoded with the message's character set.
    pub fn text(&self, charset: Charset) -> Cow<'a, str> {
        match self.unescaped() {
            Cow::Borrowed(bytes) => charset.decode(bytes),
            Cow::Owned(bytes) => Cow::Owned(charset.decode_owned(bytes)),
        }
    }

    /// Part `n` (1-based) of this value split on `sep`.
    fn part(&self, sep: u8, n: usize, level: Level) -> Field<'a> {
        match n.checked_sub(1) {
            Some(index) => Field {
                raw: nth_part(self.raw, sep, index),
                delimiters: self.delimiters,
                level,
            },
            None => Field::empty(self.delimiters),
        }
    }

    /// A value that cannot be split further is its own part 1.
    fn only_first(&self, n: usize) -> Field<'a> {
        if n == 1 {
            *self
        } else {
            Field::empty(self.delimiters)
        }
    }
}

/// Whether MSH-1 and MSH-2 (at most 5 characters) are distinct, printable
/// and not alphanumeric (a letter or digit could not be told from data).
fn usable_delimiters(field: u8, msh2: &[u8]) -> bool {
    let mut seen = [0u8; 6];
    for (i, b) in std::iter::once(field)
        .chain(msh2.iter().copied())
        .enumerate()
    {
        let usable = b.is_ascii_graphic() && !b.is_ascii_alphanumeric();
        if !usable || i >= seen.len() || seen[..i].contains(&b) {
            return false;
        }
        seen[i] = b;
    }
    true
}

/// Part `index` (0-based) of `raw` split on `sep`; empty when absent.
fn nth_part(raw: &[u8], sep: u8, index: usize) -> &[u8] {
    raw.split(|&b| b == sep).nth(index).unwrap_or_default()
}

impl<'a> Spans<'a> {
    fn new(raw: &'a [u8], pos: usize, lenient: bool) -> Self {
        Spans { raw, pos, lenient }
    }
}

impl Iterator for Spans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        while let Some(rest) = self.raw.get(self.pos..).filter(|r| !r.is_empty()) {
            let start = self.pos;
            let found = if self.lenient {
                memchr::memchr2(b'\r', b'\n', rest)
            } else {
                memchr::memchr(b'\r', rest)
            };
            let end = found.map_or(self.raw.len(), |i| start + i);
            self.pos = end + 1;
            if end > start {
                return Some((start, end));
            }
        }
        None
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let (start, end) = self.spans.next()?;
        Some(Segment {
            raw: &self.spans.raw[start..end],
            delimiters: self.delimiters,
        })
    }
}

impl<'a> Iterator for Repetitions<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let rest = self.rest?;
        if self.field.level != Level::Field {
            self.rest = None;
            return Some(self.field);
        }
        let sep = self.field.delimiters.repetition;
        let (value, next) = match rest.iter().position(|&b| b == sep) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        self.rest = next;
        Some(Field {
            raw: value,
            delimiters: self.field.delimiters,
            level: Level::Repetition,
        })
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.raw.len())
            .field("header", &self.header())
            .field("delimiters", &self.delimiters)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("id", &String::from_utf8_lossy(self.id()))
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("level", &self.level)
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}
