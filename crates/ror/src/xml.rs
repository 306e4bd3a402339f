//! guichet's XML form of a bed-availability document.
//!
//! The regional format that establishments send by MSSanté is not public,
//! so guichet defines its own, close to the ROR's FHIR model: one element
//! per slice of the capacity extension, named as the slice, holding the
//! code as sent. The namespace carries the version; the schema is
//! `docs/bed-availability.xsd`.
//!
//! ```xml
//! <bedAvailability xmlns="urn:guichet:bed-availability:1" id="D-1" time="2026-12-05T10:00:00+01:00">
//!   <establishment finessEg="350054680" finessEj="350000014"/>
//!   <unit id="SSR38888">
//!     <capacity>
//!       <capacityType>01</capacityType>
//!       <capacityStatus>02</capacityStatus>
//!       ...
//!     </capacity>
//!   </unit>
//! </bedAvailability>
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::codes::{self, Kind, Slice};
use crate::model::{Capacity, Document, Field, Path, Unit, Value};

/// The namespace of version 1 of the format.
pub const NAMESPACE: &str = "urn:guichet:bed-availability:1";

/// The path of a document's root element.
pub(crate) const ROOT: &str = "/bedAvailability";

/// Why a text is not a document in guichet's XML form: the reason and
/// where (1-based line and column of the byte where reading stopped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// Reads a document: in one pass when it is laid out as guichet writes
/// it, else (and for every error) with quick-xml.
pub fn read(text: &[u8]) -> Result<Document, XmlError> {
    match scan::read(text, Path::new(ROOT)) {
        Some(document) => Ok(document),
        None => read_events(text),
    }
}

/// Reads a document event by event with quick-xml: anything XML allows,
/// and where and why a text is not a document.
fn read_events(text: &[u8]) -> Result<Document, XmlError> {
    let mut parser = Parser {
        reader: Reader::from_reader(text),
        text,
        document: Document {
            at: Path::new(ROOT),
            ..Document::default()
        },
        stack: Vec::new(),
        root_seen: false,
    };
    parser.run()?;
    Ok(parser.document)
}

/// Where the parser stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Open<'t> {
    Root,
    Establishment,
    Unit,
    Capacity,
    /// A slice and its text so far, borrowed from the document while it
    /// needs no unescaping and comes in one piece.
    Slice(&'static Slice, Option<Cow<'t, str>>),
}

struct Parser<'t> {
    reader: Reader<&'t [u8]>,
    text: &'t [u8],
    document: Document,
    stack: Vec<Open<'t>>,
    root_seen: bool,
}

impl<'t> Parser<'t> {
    fn run(&mut self) -> Result<(), XmlError> {
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|e| self.error(e.to_string()))?;
            match event {
                Event::Start(start) => self.open(&start, false)?,
                Event::Empty(start) => self.open(&start, true)?,
                Event::End(_) => self.close()?,
                Event::Text(text) => {
                    let in_slice = matches!(self.stack.last(), Some(Open::Slice(..)));
                    if !in_slice && text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let text = text.unescape().map_err(|e| self.error(e.to_string()))?;
                    self.text(text)?;
                }
                Event::CData(_) => return Err(self.error("CDATA is not used in this format")),
                Event::Eof => break,
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if !self.stack.is_empty() {
            return Err(self.error("the document ends inside an element"));
        }
        if !self.root_seen {
            return Err(self.error("no <bedAvailability> element"));
        }
        if self.document.establishment.finess_eg.is_none() {
            return Err(self.error("no <establishment>: a document speaks for one establishment"));
        }
        Ok(())
    }

    fn open(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<(), XmlError> {
        let name = start.local_name();
        let opened = match (self.stack.last(), name.as_ref()) {
            (None, b"bedAvailability") if !self.root_seen => self.root(start)?,
            (Some(Open::Root), b"establishment") => self.establishment(start)?,
            (Some(Open::Root), b"unit") => self.unit(start)?,
            (Some(Open::Unit), b"capacity") => self.capacity(),
            (Some(Open::Capacity), slice) => {
                match std::str::from_utf8(slice).ok().and_then(codes::slice) {
                    Some(slice) => Open::Slice(slice, None),
                    None => {
                        let slice = String::from_utf8_lossy(slice);
                        return Err(self.error(format!("<{slice}> is not a slice of a capacity")));
                    }
                }
            }
            (None, other) => {
                let other = String::from_utf8_lossy(other);
                return Err(self.error(format!(
                    "the root element is <{other}>, not <bedAvailability>"
                )));
            }
            (Some(_), other) => {
                let other = String::from_utf8_lossy(other);
                return Err(self.error(format!("<{other}> is not expected here")));
            }
        };
        self.stack.push(opened);
        if empty {
            self.close()?;
        }
        Ok(())
    }

    fn root(&mut self, start: &BytesStart<'_>) -> Result<Open<'t>, XmlError> {
        self.root_seen = true;
        let namespace = self.attribute(start, "xmlns")?;
        if namespace.as_deref() != Some(NAMESPACE) {
            let found = namespace.unwrap_or_else(|| "none".into());
            return Err(self.error(format!(
                "the namespace is {found}, not {NAMESPACE} (version 1 of the format)"
            )));
        }
        let at = self.document.at.clone();
        self.document.id = self.field(start, "@id", &at)?;
        self.document.time = self.field(start, "@time", &at)?;
        Ok(Open::Root)
    }

    fn establishment(&mut self, start: &BytesStart<'_>) -> Result<Open<'t>, XmlError> {
        let at = self.document.at.join("establishment");
        let establishment = &mut self.document.establishment;
        if establishment.finess_eg.is_some() {
            return Err(self.error("a document speaks for one establishment"));
        }
        let finess_eg = self.field(start, "@finessEg", &at)?;
        if finess_eg.is_none() {
            return Err(self.error("<establishment> needs finessEg, the site's FINESS"));
        }
        self.document.establishment.finess_eg = finess_eg;
        self.document.establishment.finess_ej = self.field(start, "@finessEj", &at)?;
        self.document.establishment.sender = self.field(start, "@sender", &at)?;
        Ok(Open::Establishment)
    }

    fn unit(&mut self, start: &BytesStart<'_>) -> Result<Open<'t>, XmlError> {
        let at = self
            .document
            .at
            .join("unit")
            .index(self.document.units.len() + 1);
        let Some(id) = self.field(start, "@id", &at)? else {
            return Err(self.error("<unit> needs id, its idExterneSynchro"));
        };
        self.document.units.push(Unit {
            id,
            capacities: Vec::new(),
            at,
        });
        Ok(Open::Unit)
    }

    fn capacity(&mut self) -> Open<'t> {
        if let Some(unit) = self.document.units.last_mut() {
            let at = unit.at.join("capacity").index(unit.capacities.len() + 1);
            unit.capacities.push(Capacity {
                at,
                ..Capacity::default()
            });
        }
        Open::Capacity
    }

    fn text(&mut self, text: Cow<'t, str>) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            // A slice's text is kept as sent, blanks included: a code
            // with a space is wrong, and must stay visibly wrong.
            Some(Open::Slice(_, value)) => {
                match value {
                    Some(before) => before.to_mut().push_str(&text),
                    None => *value = Some(text),
                }
                Ok(())
            }
            _ if text.trim().is_empty() => Ok(()),
            _ => Err(self.error(format!("text `{}` outside a slice", excerpt(text.trim())))),
        }
    }

    fn close(&mut self) -> Result<(), XmlError> {
        let Some(Open::Slice(slice, text)) = self.stack.pop() else {
            return Ok(());
        };
        let text = text.unwrap_or_default();
        let value = match slice.kind {
            Kind::Coded => Value::code(slice, &text),
            Kind::DateTime => Value::DateTime(text.into_owned()),
            Kind::Integer => match text.parse() {
                Ok(n) => Value::Integer(n),
                Err(_) => {
                    return Err(self.error(format!(
                        "{} is a whole number, not `{}`",
                        slice.name,
                        excerpt(&text)
                    )))
                }
            },
        };
        let capacity = self
            .document
            .units
            .last_mut()
            .and_then(|u| u.capacities.last_mut());
        if let Some(capacity) = capacity {
            if capacity.get(slice).is_some() {
                let reason = format!("{} given twice in one capacity", slice.name);
                return Err(self.error(reason));
            }
            let at = capacity.at.join(slice.name);
            capacity.set(slice, Field::new(value, at));
        }
        Ok(())
    }

    /// Attribute `name`, unescaped.
    fn attribute(&self, start: &BytesStart<'_>, name: &str) -> Result<Option<String>, XmlError> {
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.error(e.to_string()))?;
            if attribute.key.as_ref() == name.as_bytes() {
                let value = attribute
                    .unescape_value()
                    .map_err(|e| self.error(e.to_string()))?;
                return Ok(Some(value.into_owned()));
            }
        }
        Ok(None)
    }

    /// Attribute `step` (`@name`) of the element at `at`, with its path.
    fn field(
        &self,
        start: &BytesStart<'_>,
        step: &'static str,
        at: &Path,
    ) -> Result<Option<Field<String>>, XmlError> {
        let value = self.attribute(start, &step[1..])?;
        Ok(value.map(|v| Field::new(v, at.join(step))))
    }

    fn error(&self, reason: impl Into<String>) -> XmlError {
        let offset = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
        let (line, column) = line_column(self.text, offset);
        XmlError {
            line,
            column,
            reason: reason.into(),
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset`.
pub fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// At most 40 characters of `text`, for a message.
fn excerpt(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Writes `document` in guichet's XML form.
pub fn write(document: &Document) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<bedAvailability xmlns=\"{NAMESPACE}\""));
    attribute(&mut out, "id", document.id.as_ref());
    attribute(&mut out, "time", document.time.as_ref());
    out.push_str(">\n");
    let establishment = &document.establishment;
    if establishment.finess_eg.is_some() {
        out.push_str("  <establishment");
        attribute(&mut out, "finessEg", establishment.finess_eg.as_ref());
        attribute(&mut out, "finessEj", establishment.finess_ej.as_ref());
        attribute(&mut out, "sender", establishment.sender.as_ref());
        out.push_str("/>\n");
    }
    for unit in &document.units {
        let _ = writeln!(out, "  <unit id=\"{}\">", escape(unit.id.value.as_str()));
        for capacity in &unit.capacities {
            out.push_str("    <capacity>\n");
            for (slice, value) in capacity.each() {
                if let Some(value) = value {
                    let text = value.value.text();
                    let _ = writeln!(
                        out,
                        "      <{0}>{1}</{0}>",
                        slice.name,
                        escape(text.as_str())
                    );
                }
            }
            out.push_str("    </capacity>\n");
        }
        out.push_str("  </unit>\n");
    }
    out.push_str("</bedAvailability>\n");
    out
}

fn attribute(out: &mut String, name: &str, value: Option<&Field<String>>) {
    if let Some(value) = value {
        let _ = write!(out, " {name}=\"{}\"", escape(value.value.as_str()));
    }
}

pub(crate) mod scan;

#[cfg(test)]
pub(crate) mod tests;
