//! A reader for the layout guichet writes and senders copy: one pass
//! over the text, no tokenizer, values borrowed until they are kept.
//!
//! It accepts only what it fully understands: the declaration, the
//! elements of the format with their known attributes in double quotes,
//! slices of plain text, blanks between elements. Anything else (an
//! escape, a comment, an unknown attribute, any error) gives `None`, and
//! the document is read again by quick-xml, which says where and why. So
//! both readers give the same document, or this one gives none.

use crate::codes::{self, Kind};
use crate::model::{Capacity, Document, Field, Path, Unit, Value};

use super::NAMESPACE;

/// The document, when `text` is in the layout this reader knows; its
/// values' paths start at `root` (`/bedAvailability`, or untracked).
pub(super) fn read(text: &[u8], root: Path) -> Option<Document> {
    let mut scan = Scan {
        text: std::str::from_utf8(text).ok()?,
        at: 0,
    };
    let mut document = Document {
        at: root,
        ..Document::default()
    };
    scan.blanks();
    scan.declaration()?;
    scan.blanks();
    scan.root(&mut document)?;
    loop {
        scan.blanks();
        if scan.eat("</bedAvailability>") {
            break;
        } else if scan.tag("<establishment") {
            scan.establishment(&mut document)?;
        } else if scan.tag("<unit") {
            scan.unit(&mut document)?;
        } else {
            return None;
        }
    }
    scan.blanks();
    let whole = scan.at == scan.text.len();
    (whole && document.establishment.finess_eg.is_some()).then_some(document)
}

/// Where the reader stands in the text.
struct Scan<'t> {
    text: &'t str,
    at: usize,
}

/// An element's attributes, by the names it may have.
type Attributes<'t, const N: usize> = [Option<&'t str>; N];

impl<'t> Scan<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    /// Skips blanks; how many.
    fn blanks(&mut self) -> usize {
        let rest = self.rest();
        let blanks = rest
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        self.at += blanks;
        blanks
    }

    /// Steps over `literal` if the text goes on with it.
    fn eat(&mut self, literal: &str) -> bool {
        let found = self.rest().starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found
    }

    /// Steps over `<name` if an element of that name starts here.
    fn tag(&mut self, open: &str) -> bool {
        let rest = self.rest();
        let ends = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/');
        let found = rest.starts_with(open) && rest.as_bytes().get(open.len()).is_some_and(ends);
        if found {
            self.at += open.len();
        }
        found
    }

    /// The text up to the ASCII `end`, and the reader after `end`.
    fn until(&mut self, end: u8) -> Option<&'t str> {
        let rest = self.rest();
        // Values are short: a plain loop beats a search's set-up.
        let length = rest.bytes().position(|b| b == end)?;
        self.at += length + 1;
        Some(&rest[..length])
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

    fn root(&mut self, document: &mut Document) -> Option<()> {
        if !self.tag("<bedAvailability") {
            return None;
        }
        let ([namespace, id, time], empty) = self.attributes(["xmlns", "id", "time"])?;
        if empty || namespace != Some(NAMESPACE) {
            return None;
        }
        let at = document.at.clone();
        document.id = field(id, &at, "@id");
        document.time = field(time, &at, "@time");
        Some(())
    }

    fn establishment(&mut self, document: &mut Document) -> Option<()> {
        let names = ["finessEg", "finessEj", "sender"];
        let ([eg, ej, sender], empty) = self.attributes(names)?;
        let establishment = &mut document.establishment;
        if !empty || eg.is_none() || establishment.finess_eg.is_some() {
            return None;
        }
        let at = document.at.join("establishment");
        establishment.finess_eg = field(eg, &at, "@finessEg");
        establishment.finess_ej = field(ej, &at, "@finessEj");
        establishment.sender = field(sender, &at, "@sender");
        Some(())
    }

    fn unit(&mut self, document: &mut Document) -> Option<()> {
        let ([id], empty) = self.attributes(["id"])?;
        let at = document.at.join("unit").index(document.units.len() + 1);
        let mut unit = Unit {
            id: field(id, &at, "@id")?,
            capacities: Vec::new(),
            at,
        };
        if !empty {
            loop {
                self.blanks();
                if self.eat("</unit>") {
                    break;
                }
                if !self.eat("<capacity>") {
                    return None;
                }
                let at = unit.at.join("capacity").index(unit.capacities.len() + 1);
                unit.capacities.push(self.capacity(at)?);
            }
        }
        document.units.push(unit);
        Some(())
    }

    /// A capacity's slices, up to its end.
    fn capacity(&mut self, at: Path) -> Option<Capacity> {
        let mut capacity = Capacity {
            at,
            ..Capacity::default()
        };
        loop {
            self.blanks();
            if self.eat("</capacity>") {
                return Some(capacity);
            }
            if !self.eat("<") {
                return None;
            }
            let slice = codes::slice(self.until(b'>')?)?;
            let text = self.until(b'<')?;
            if text.contains('&') || !self.eat("/") || !self.eat(slice.name) || !self.eat(">") {
                return None;
            }
            let value = match slice.kind {
                Kind::Coded => Value::code(slice, text),
                Kind::DateTime => Value::DateTime(text.to_owned()),
                Kind::Integer => Value::Integer(text.parse().ok()?),
            };
            if capacity.get(slice).is_some() {
                return None;
            }
            let at = capacity.at.join(slice.name);
            capacity.set(slice, Field::new(value, at));
        }
    }
}

/// An attribute's value as a field at `at`/`step`.
fn field(value: Option<&str>, at: &Path, step: &'static str) -> Option<Field<String>> {
    value.map(|v| Field::new(v.to_owned(), at.join(step)))
}
