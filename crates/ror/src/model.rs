//! One bed-availability document, whatever form it came in: the
//! establishment, the document's id and time, and per unit its capacity
//! records.
//!
//! Values are kept as sent (a code outside the value sets, a negative
//! count): judging them is the rules' work, and a document must convert
//! between forms without losing what would make it invalid. Each value
//! remembers where it was read ([`Path`]), for the rules' reports.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::codes::{Slice, SLICES};

/// Where a value stands in the document it was read from: an XPath for
/// XML, a JSON path for FHIR. Never part of a value's identity: two
/// documents with the same content are equal whatever their layout.
///
/// Every value of a document has one, and few are ever shown: a path
/// keeps its steps (names and indices, no text) and is rendered only
/// when displayed. The last `STEPS` steps are held inline; a deeper
/// path shares its beginning with its siblings, so a join allocates
/// nothing until that beginning fills.
#[derive(Clone, Default)]
pub struct Path {
    /// The steps before `steps`, when there are more than fit inline.
    parent: Option<Arc<Path>>,
    steps: [Step; STEPS],
    len: u8,
    /// Made by [`Path::new`]: the first step is the root, written as is.
    rooted: bool,
    /// Made by [`Path::untracked`]: steps are not kept, the path renders
    /// empty, and a join costs a copy of nothing.
    untracked: bool,
}

/// The steps a [`Path`] holds inline. With four, each capacity's path
/// starts a beginning (`/bedAvailability/unit[1]/capacity`,
/// `$.entry[0].resource`) that its values' paths share, adding their
/// own steps inline: one allocation per capacity, none per value, and a
/// path small to move.
const STEPS: usize = 4;

/// One step of a [`Path`]: an element or attribute name (the first step
/// is the root, `/bedAvailability` or `$`, written as is), or an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Name(&'static str),
    Index(usize),
}

impl Default for Step {
    fn default() -> Step {
        Step::Name("")
    }
}

impl PartialEq for Path {
    fn eq(&self, _: &Path) -> bool {
        true
    }
}

impl Eq for Path {}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({:?})", self.to_string())
    }
}

impl fmt::Display for Path {
    /// `/` between XML steps, `.` between JSON ones (a path whose root
    /// starts with `$`), none before an index.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.root().is_some_and(|r| r.starts_with('$'));
        self.render(f, json, self.rooted)
    }
}

impl Path {
    /// A path of one step, the root (`/bedAvailability`, `$`).
    pub fn new(root: &'static str) -> Path {
        Path {
            rooted: true,
            ..Path::default()
        }
        .step(Step::Name(root))
    }

    /// A path that keeps no step, nor do the paths joined to it: for a
    /// reader whose document is only judged, and read again with paths
    /// when the rules have something to report.
    pub fn untracked() -> Path {
        Path {
            untracked: true,
            ..Path::default()
        }
    }

    /// This path with the element or attribute `name` after it.
    #[inline]
    pub fn join(&self, name: &'static str) -> Path {
        if self.untracked {
            return Path::untracked();
        }
        self.clone().step(Step::Name(name))
    }

    /// This path with `[index]` after it.
    #[inline]
    pub fn index(&self, index: usize) -> Path {
        if self.untracked {
            return Path::untracked();
        }
        self.clone().step(Step::Index(index))
    }

    fn step(mut self, step: Step) -> Path {
        if usize::from(self.len) == STEPS {
            self = Path {
                rooted: self.rooted,
                parent: Some(Arc::new(self)),
                ..Path::default()
            };
        }
        self.steps[usize::from(self.len)] = step;
        self.len += 1;
        self
    }

    fn root(&self) -> Option<&'static str> {
        match (&self.parent, self.steps[0]) {
            (Some(parent), _) => parent.root(),
            (None, Step::Name(root)) if self.rooted => Some(root),
            _ => None,
        }
    }

    /// Writes the steps; `first`: the first one is the root, as is.
    fn render(&self, f: &mut fmt::Formatter<'_>, json: bool, first: bool) -> fmt::Result {
        let mut first = first;
        if let Some(parent) = &self.parent {
            parent.render(f, json, first)?;
            first = false;
        }
        for step in &self.steps[..usize::from(self.len)] {
            match step {
                Step::Index(i) => write!(f, "[{i}]")?,
                Step::Name(name) if first => f.write_str(name)?,
                Step::Name(name) => {
                    f.write_str(if json { "." } else { "/" })?;
                    f.write_str(name)?;
                }
            }
            first = false;
        }
        Ok(())
    }
}

/// A value and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<T> {
    pub value: T,
    pub at: Path,
}

impl<T> Field<T> {
    pub fn new(value: T, at: Path) -> Field<T> {
        Field { value, at }
    }
}

/// A bed-availability document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// The sender's identifier of this document.
    pub id: Option<Field<String>>,
    /// When the sender produced it (ISO 8601 date and time).
    pub time: Option<Field<String>>,
    pub establishment: Establishment,
    pub units: Vec<Unit>,
    /// Where the document itself starts (`/bedAvailability`, `$`).
    pub at: Path,
}

/// Who the document speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Establishment {
    /// The site's FINESS (EG), as sent.
    pub finess_eg: Option<Field<String>>,
    /// The legal entity's FINESS (EJ), when sent.
    pub finess_ej: Option<Field<String>>,
    /// The sender's address (an MSSanté mailbox, say), when given.
    pub sender: Option<Field<String>>,
}

/// A unit of the establishment, as the ROR knows it by `idExterneSynchro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub id: Field<String>,
    pub capacities: Vec<Capacity>,
    pub at: Path,
}

/// A slice's value, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A code: the table's own text when it is one of its codes (most
    /// are, and so cost no allocation), else the text as sent.
    Code(Cow<'static, str>),
    Integer(i64),
    DateTime(String),
}

impl Value {
    /// The code `text` of `slice`, as sent.
    pub fn code(slice: &Slice, text: &str) -> Value {
        match slice.code(text) {
            Some(known) => Value::Code(Cow::Borrowed(known.code)),
            None => Value::Code(Cow::Owned(text.to_owned())),
        }
    }

    /// The value as text, for reports and for guichet's XML.
    pub fn text(&self) -> String {
        match self {
            Value::Code(code) => code.to_string(),
            Value::DateTime(text) => text.clone(),
            Value::Integer(n) => n.to_string(),
        }
    }
}

/// One capacity record: a value per slice of the extension, absent ones
/// included (so a missing 1..1 slice can be reported).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capacity {
    /// By slice, in the order of [`SLICES`].
    pub slices: [Option<Field<Value>>; SLICES.len()],
    pub at: Path,
}

impl Capacity {
    fn index(slice: &Slice) -> usize {
        slice.index
    }

    /// The value of `slice`, if sent.
    pub fn get(&self, slice: &Slice) -> Option<&Field<Value>> {
        self.slices[Capacity::index(slice)].as_ref()
    }

    pub fn set(&mut self, slice: &Slice, value: Field<Value>) {
        self.slices[Capacity::index(slice)] = Some(value);
    }

    /// The code of a coded slice, if sent.
    pub fn code(&self, slice: &Slice) -> Option<&str> {
        match self.get(slice).map(|f| &f.value) {
            Some(Value::Code(code)) => Some(code.as_ref()),
            _ => None,
        }
    }

    /// `nbCapacity`, if sent.
    pub fn count(&self) -> Option<i64> {
        match self.get(&crate::codes::COUNT).map(|f| &f.value) {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    /// Each slice with its value, in [`SLICES`] order.
    pub fn each(&self) -> impl Iterator<Item = (&'static Slice, Option<&Field<Value>>)> {
        SLICES
            .iter()
            .copied()
            .zip(self.slices.iter().map(Option::as_ref))
    }
}

impl Document {
    /// `1` followed by the site's FINESS: how the ROR names the site
    /// (`IdNatStruct`), or `None` without a FINESS EG.
    pub fn id_nat_struct(&self) -> Option<String> {
        self.establishment
            .finess_eg
            .as_ref()
            .map(|f| format!("1{}", f.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xml_path_is_written_with_slashes_and_indices() {
        let unit = Path::new("/bedAvailability").join("unit").index(1);
        let at = unit.join("capacity").index(2).join("nbCapacity");
        assert_eq!(
            at.to_string(),
            "/bedAvailability/unit[1]/capacity[2]/nbCapacity"
        );
        assert_eq!(unit.join("@id").to_string(), "/bedAvailability/unit[1]/@id");
    }

    #[test]
    fn a_json_path_is_written_with_dots_and_indices() {
        let at = Path::new("$").join("entry").index(0).join("resource");
        let at = at.join("extension").index(1).join("extension").index(3);
        assert_eq!(
            at.to_string(),
            "$.entry[0].resource.extension[1].extension[3]"
        );
        assert_eq!(Path::new("$").to_string(), "$");
    }

    #[test]
    fn a_path_deeper_than_its_inline_steps_is_written_whole() {
        let mut at = Path::new("$");
        let mut expected = String::from("$");
        for i in 0..3 * STEPS {
            at = at.join("part").index(i);
            expected.push_str(&format!(".part[{i}]"));
        }
        assert_eq!(at.to_string(), expected);
        let mut xml = Path::new("Parameters");
        for _ in 0..STEPS {
            xml = xml.join("parameter");
        }
        assert_eq!(
            xml.to_string(),
            format!("Parameters{}", "/parameter".repeat(STEPS))
        );
    }

    #[test]
    fn a_path_without_root_starts_with_a_separator() {
        assert_eq!(Path::default().to_string(), "");
        assert_eq!(Path::default().join("a").index(2).to_string(), "/a[2]");
    }
}
