//! A reader for the layout guichet writes and senders copy: one pass
//! over the text, no tokenizer, values borrowed until they are kept.
//!
//! It accepts only what it fully understands: the declaration, the
//! elements of the format with their known attributes in double quotes,
//! slices of plain text, blanks between elements. Anything else (an
//! escape, a comment, an unknown attribute, any error) gives `None`, and
//! the document is read again by quick-xml, which says where and why. So
//! both readers give the same document, or this one gives none.

use std::ops::Range;

use crate::codes::{Kind, Slice, SLICES};
use crate::model::{Capacity, Document, Field, Path, Unit, Value};

use super::NAMESPACE;

/// A document in the layout this reader knows, its values borrowed from
/// the text: enough to judge it (see `rules::clean`) without building
/// the owned [`Document`], which [`View::document`] makes when needed.
#[derive(Debug, Clone, Default)]
pub(crate) struct View<'t> {
    pub id: Option<&'t str>,
    pub time: Option<&'t str>,
    /// Always there in a view: a document speaks for one establishment.
    pub finess_eg: &'t str,
    pub finess_ej: Option<&'t str>,
    pub sender: Option<&'t str>,
    pub units: Vec<UnitView<'t>>,
    /// Every capacity record, unit after unit.
    pub records: Vec<Record<'t>>,
}

/// A unit of a [`View`]: its id and where its records stand in
/// [`View::records`].
#[derive(Debug, Clone)]
pub(crate) struct UnitView<'t> {
    pub id: &'t str,
    pub records: Range<usize>,
}

/// A capacity record of a [`View`]: a value per slice, in the order of
/// [`SLICES`].
pub(crate) type Record<'t> = [Option<Slot<'t>>; SLICES.len()];

/// A slice's value in a [`View`]: its text as sent, or the whole number
/// of an integer slice (text that is not one is no view's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot<'t> {
    Text(&'t str),
    Integer(i64),
}

/// The document, when `text` is in the layout this reader knows; its
/// values' paths start at `root` (`/bedAvailability`, or untracked).
pub(super) fn read(text: &[u8], root: Path) -> Option<Document> {
    view(text).map(|view| view.document(root))
}

/// The borrowed view of `text`, when it is in the layout this reader
/// knows.
pub(crate) fn view(text: &[u8]) -> Option<View<'_>> {
    let mut scan = Scan {
        text: std::str::from_utf8(text).ok()?,
        at: 0,
    };
    // Room for a usual document's units and records: no growing.
    let mut view = View {
        units: Vec::with_capacity(16),
        records: Vec::with_capacity(16),
        ..View::default()
    };
    let mut establishment = false;
    scan.blanks();
    scan.declaration()?;
    scan.blanks();
    scan.root(&mut view)?;
    loop {
        scan.blanks();
        if scan.eat("</bedAvailability>") {
            break;
        } else if scan.tag("<establishment") {
            if establishment {
                return None;
            }
            scan.establishment(&mut view)?;
            establishment = true;
        } else if scan.tag("<unit") {
            scan.unit(&mut view)?;
        } else {
            return None;
        }
    }
    scan.blanks();
    let whole = scan.at == scan.text.len();
    (whole && establishment).then_some(view)
}

impl View<'_> {
    /// The owned document, its values' paths starting at `root`.
    pub fn document(&self, root: Path) -> Document {
        let mut document = Document {
            at: root,
            ..Document::default()
        };
        let at = document.at.clone();
        document.id = field(self.id, &at, "@id");
        document.time = field(self.time, &at, "@time");
        let at = document.at.join("establishment");
        let establishment = &mut document.establishment;
        establishment.finess_eg = field(Some(self.finess_eg), &at, "@finessEg");
        establishment.finess_ej = field(self.finess_ej, &at, "@finessEj");
        establishment.sender = field(self.sender, &at, "@sender");
        document.units = Vec::with_capacity(self.units.len());
        for (i, unit) in self.units.iter().enumerate() {
            let at = document.at.join("unit").index(i + 1);
            let records = &self.records[unit.records.clone()];
            let capacities = records.iter().enumerate().map(|(j, record)| {
                let at = at.join("capacity").index(j + 1);
                capacity(record, at)
            });
            document.units.push(Unit {
                id: Field::new(unit.id.to_owned(), at.join("@id")),
                capacities: capacities.collect(),
                at,
            });
        }
        document
    }
}

/// A record of a view as a capacity at `at`.
fn capacity(record: &Record<'_>, at: Path) -> Capacity {
    let mut capacity = Capacity {
        at,
        ..Capacity::default()
    };
    for (slice, slot) in SLICES.iter().zip(record) {
        let value = match (*slot, slice.kind) {
            (None, _) => continue,
            (Some(Slot::Integer(n)), _) => Value::Integer(n),
            (Some(Slot::Text(text)), Kind::DateTime) => Value::DateTime(text.to_owned()),
            (Some(Slot::Text(text)), _) => Value::code(slice, text),
        };
        let at = capacity.at.join(slice.name);
        capacity.set(slice, Field::new(value, at));
    }
    capacity
}

/// Where the reader stands in the text.
struct Scan<'t> {
    text: &'t str,
    at: usize,
}

/// An element's attributes, by the names it may have.
type Attributes<'t, const N: usize> = [Option<&'t str>; N];

impl<'t> Scan<'t> {
    /// The bytes from where the reader stands.
    fn rest(&self) -> &'t [u8] {
        self.text.as_bytes().get(self.at..).unwrap_or_default()
    }

    /// The text from `start` for `length` bytes, the reader after it
    /// and the ASCII byte that ends it.
    fn take(&mut self, start: usize, length: usize) -> Option<&'t str> {
        self.at = start + length + 1;
        self.text.get(start..start + length)
    }

    /// Skips blanks; how many.
    fn blanks(&mut self) -> usize {
        let rest = self.rest();
        let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let blanks = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
        self.at += blanks;
        blanks
    }

    /// Steps over `literal` if the text goes on with it.
    fn eat(&mut self, literal: &str) -> bool {
        let found = self.rest().starts_with(literal.as_bytes());
        if found {
            self.at += literal.len();
        }
        found
    }

    /// Steps over `<name` if an element of that name starts here.
    fn tag(&mut self, open: &str) -> bool {
        let rest = self.rest();
        let ends = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/');
        let found = rest.starts_with(open.as_bytes()) && rest.get(open.len()).is_some_and(ends);
        if found {
            self.at += open.len();
        }
        found
    }

    /// The text up to the ASCII `end`, and the reader after `end`.
    fn until(&mut self, end: u8) -> Option<&'t str> {
        let length = memchr::memchr(end, self.rest())?;
        self.take(self.at, length)
    }

    /// `<name>text</name>` of a slice, the reader at its `<`: the
    /// slice and its text as sent, the reader after its end tag; `None`
    /// for anything else, an escape (`&`) included, which quick-xml reads.
    /// The slices are tried from `next` on.
    fn slice(&mut self, next: usize) -> Option<(&'static Slice, &'t str)> {
        let start = self.at;
        let rest = self.rest();
        let tag = rest.get(1..)?;
        let slice = (0..SLICES.len())
            .map(|i| SLICES[(next + i) % SLICES.len()])
            .find(|slice| {
                // The name, then `>`: the tag's whole name.
                let name = slice.name.as_bytes();
                tag.first() == name.first()
                    && tag.get(name.len()) == Some(&b'>')
                    && tag.starts_with(name)
            })?;
        let text_start = slice.name.len() + 2;
        let after = rest.get(text_start..)?;
        // Values are short: a plain loop beats a search's set-up.
        let text_length = after.iter().position(|&b| b == b'<' || b == b'&')?;
        let name = slice.name.as_bytes();
        let end = after.get(text_length..)?;
        let closed = end.starts_with(b"</")
            && end.get(2..2 + name.len()) == Some(name)
            && end.get(2 + name.len()) == Some(&b'>');
        if !closed {
            return None;
        }
        let text = self
            .text
            .get(start + text_start..start + text_start + text_length)?;
        self.at = start + text_start + text_length + name.len() + 3;
        Some((slice, text))
    }

    /// `<?xml ...?>`, if there: nothing in it is read.
    fn declaration(&mut self) -> Option<()> {
        if self.eat("<?xml ") {
            let inside = self.until(b'?')?;
            if inside.contains(['<', '>']) || !self.eat(">") {
                return None;
            }
        }
        Some(())
    }

    /// The attributes named `names`, each at most once, none other, and
    /// whether the element is empty (`/>`).
    fn attributes<const N: usize>(
        &mut self,
        names: [&str; N],
    ) -> Option<(Attributes<'t, N>, bool)> {
        let mut values = [None; N];
        loop {
            let blank = self.blanks() > 0;
            if self.eat("/>") {
                return Some((values, true));
            }
            if self.eat(">") {
                return Some((values, false));
            }
            if !blank {
                return None;
            }
            let name = self.until(b'=')?;
            let slot = names.iter().position(|n| *n == name)?;
            if values[slot].is_some() || !self.eat("\"") {
                return None;
            }
            let value = self.until(b'"')?;
            if value.contains(['&', '<', '>']) {
                return None;
            }
            values[slot] = Some(value);
        }
    }

    fn root(&mut self, view: &mut View<'t>) -> Option<()> {
        if !self.tag("<bedAvailability") {
            return None;
        }
        let ([namespace, id, time], empty) = self.attributes(["xmlns", "id", "time"])?;
        if empty || namespace != Some(NAMESPACE) {
            return None;
        }
        view.id = id;
        view.time = time;
        Some(())
    }

    fn establishment(&mut self, view: &mut View<'t>) -> Option<()> {
        let names = ["finessEg", "finessEj", "sender"];
        let ([eg, ej, sender], empty) = self.attributes(names)?;
        if !empty {
            return None;
        }
        view.finess_eg = eg?;
        view.finess_ej = ej;
        view.sender = sender;
        Some(())
    }

    fn unit(&mut self, view: &mut View<'t>) -> Option<()> {
        let ([id], empty) = self.attributes(["id"])?;
        let id = id?;
        let first = view.records.len();
        if !empty {
            loop {
                self.blanks();
                if self.eat("</unit>") {
                    break;
                }
                if !self.eat("<capacity>") {
                    return None;
                }
                let record = self.capacity()?;
                view.records.push(record);
            }
        }
        let records = first..view.records.len();
        view.units.push(UnitView { id, records });
        Some(())
    }

    /// A capacity's slices, up to its end.
    fn capacity(&mut self) -> Option<Record<'t>> {
        let mut record: Record<'t> = [None; SLICES.len()];
        // The slice likely next: guichet writes them in order.
        let mut next = 0;
        loop {
            self.blanks();
            match self.rest() {
                [b'<', b'/', ..] if self.eat("</capacity>") => return Some(record),
                [b'<', b'/', ..] => return None,
                [b'<', ..] => {}
                _ => return None,
            }
            let (slice, text) = self.slice(next)?;
            next = slice.index + 1;
            let slot = match slice.kind {
                Kind::Integer => Slot::Integer(text.parse().ok()?),
                Kind::Coded | Kind::DateTime => Slot::Text(text),
            };
            let value = &mut record[slice.index];
            if value.is_some() {
                return None;
            }
            *value = Some(slot);
        }
    }
}

/// A value as a field at `at`/`step`.
fn field(value: Option<&str>, at: &Path, step: &'static str) -> Option<Field<String>> {
    value.map(|v| Field::new(v.to_owned(), at.join(step)))
}
