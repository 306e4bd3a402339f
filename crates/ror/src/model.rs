//! One bed-availability document, whatever form it came in: the
//! establishment, the document's id and time, and per unit its capacity
//! records.
//!
//! Values are kept as sent (a code outside the value sets, a negative
//! count): judging them is the rules' work, and a document must convert
//! between forms without losing what would make it invalid. Each value
//! remembers where it was read ([`Path`]), for the rules' reports.

use std::fmt;

use crate::codes::{Slice, SLICES};

/// Where a value stands in the document it was read from: an XPath for
/// XML, a JSON path for FHIR. Never part of a value's identity: two
/// documents with the same content are equal whatever their layout.
#[derive(Debug, Clone, Default, Eq)]
pub struct Path(pub String);

impl PartialEq for Path {
    fn eq(&self, _: &Path) -> bool {
        true
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Path {
    pub fn new(text: impl Into<String>) -> Path {
        Path(text.into())
    }

    /// This path with `step` after it (`/` between XML steps, `.` between
    /// JSON ones, none before an index).
    pub fn join(&self, step: &str) -> Path {
        let json = self.0.starts_with('$');
        let sep = match (json, step.starts_with('[')) {
            (_, true) => "",
            (true, false) => ".",
            (false, false) => "/",
        };
        Path(format!("{}{sep}{step}", self.0))
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
    Code(String),
    Integer(i64),
    DateTime(String),
}

impl Value {
    /// The value as text, for reports and for guichet's XML.
    pub fn text(&self) -> String {
        match self {
            Value::Code(code) | Value::DateTime(code) => code.clone(),
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
        SLICES
            .iter()
            .position(|s| s.name == slice.name)
            .unwrap_or_else(|| unreachable!("every slice is in SLICES"))
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
            Some(Value::Code(code)) => Some(code),
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
