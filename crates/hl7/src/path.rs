//! Where a value sits in a message, as people write it: `MSA-1`,
//! `ERR-3.1`, `MSH-9.2`, `PID-3(2).1`, `OBX[2]-5`.
//!
//! `SEG[n]` is the segment's n-th occurrence (1 when absent); `-F` the
//! field in HL7 numbering (MSH-1 is the field separator); `(r)` the
//! repetition (1 when absent); `.C` the component and `.S` the
//! subcomponent.

use std::fmt;
use std::str::FromStr;

use crate::message::{Field, Message};

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// The segment id, in capitals.
    pub segment: String,
    /// Which occurrence of the segment, 1-based.
    pub occurrence: usize,
    /// The field, in HL7 numbering.
    pub field: usize,
    /// Which repetition of the field, 1-based.
    pub repetition: usize,
    /// The component, 1-based; the whole repetition when absent.
    pub component: Option<usize>,
    /// The subcomponent of the component, 1-based.
    pub subcomponent: Option<usize>,
}

/// Why a path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not an HL7 path (e.g. MSA-1, ERR-3.1, PID-3(2).1, OBX[2]-5): {reason}")]
pub struct BadPath {
    /// The path as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for FieldPath {
    type Err = BadPath;

    fn from_str(text: &str) -> Result<FieldPath, BadPath> {
        let bad = |reason| BadPath {
            path: text.to_string(),
            reason,
        };
        let (head, rest) = text
            .split_once('-')
            .ok_or_else(|| bad("no '-' before the field"))?;
        let (segment, occurrence) = match head.split_once('[') {
            Some((id, n)) => (
                id,
                number(n.strip_suffix(']'), "a segment occurrence [n]").map_err(bad)?,
            ),
            None => (head, 1),
        };
        let id_ok = segment.len() == 3 && segment.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            return Err(bad("a segment id is 3 letters or digits"));
        }
        let mut parts = rest.split('.');
        let field_part = parts.next().unwrap_or_default();
        let (field, repetition) = match field_part.split_once('(') {
            Some((f, r)) => (
                f,
                number(r.strip_suffix(')'), "a repetition (r)").map_err(bad)?,
            ),
            None => (field_part, 1),
        };
        let field = field.parse().map_err(|_| bad("a field number"))?;
        let mut next = |what| {
            parts
                .next()
                .map(|p| number(Some(p), what).map_err(bad))
                .transpose()
        };
        let component = next("a component number")?;
        let subcomponent = next("a subcomponent number")?;
        if parts.next().is_some() {
            return Err(bad("at most field.component.subcomponent"));
        }
        Ok(FieldPath {
            segment: segment.to_ascii_uppercase(),
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

fn number(text: Option<&str>, what: &'static str) -> Result<usize, &'static str> {
    text.and_then(|t| t.parse().ok())
        .filter(|n| *n > 0)
        .ok_or(what)
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.segment)?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if self.repetition != 1 {
            write!(f, "({})", self.repetition)?;
        }
        for part in [self.component, self.subcomponent].into_iter().flatten() {
            write!(f, ".{part}")?;
        }
        Ok(())
    }
}

impl<'a> Message<'a> {
    /// The value at `path`, as written (escapes kept); `None` when the
    /// segment is absent, empty when the field is.
    pub fn at(&self, path: &FieldPath) -> Option<Field<'a>> {
        let segment = self
            .segments()
            .filter(|s| s.id() == path.segment.as_bytes())
            .nth(path.occurrence - 1)?;
        let field = segment.field(path.field);
        let value = match (path.component, path.subcomponent) {
            (None, _) if path.repetition == 1 => field,
            (None, _) => field.repetition(path.repetition),
            (Some(c), None) => field.repetition(path.repetition).component(c),
            (Some(c), Some(s)) => field
                .repetition(path.repetition)
                .component(c)
                .subcomponent(s),
        };
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ParseOptions;

    const MESSAGE: &[u8] = b"MSH|^~\\&|EAI|CHU|DPI|CHU|20261205||ADT^A08^ADT_A01|42|P|2.5\rPID|1||123^^^CHU^PI~456^^^INS^NH||DOE^JOHN\rOBX|1|NM|1^a||5\rOBX|2|ST|2^b||x&y\r";

    fn value(path: &str) -> Option<String> {
        let message = Message::parse_with(MESSAGE, ParseOptions::lenient()).unwrap();
        let path: FieldPath = path.parse().unwrap();
        message
            .at(&path)
            .map(|f| String::from_utf8_lossy(f.raw()).into_owned())
    }

    #[test]
    fn paths_reach_fields_repetitions_components_and_occurrences() {
        assert_eq!(value("MSH-1").as_deref(), Some("|"));
        assert_eq!(value("MSH-9").as_deref(), Some("ADT^A08^ADT_A01"));
        assert_eq!(value("MSH-9.2").as_deref(), Some("A08"));
        assert_eq!(value("MSH-10").as_deref(), Some("42"));
        assert_eq!(value("PID-3.1").as_deref(), Some("123"));
        assert_eq!(value("PID-3(2).4").as_deref(), Some("INS"));
        assert_eq!(value("PID-5.2").as_deref(), Some("JOHN"));
        assert_eq!(value("OBX[2]-5").as_deref(), Some("x&y"));
        assert_eq!(value("OBX[2]-5.1.2").as_deref(), Some("y"));
        assert_eq!(value("PID-30").as_deref(), Some(""));
        assert_eq!(value("ERR-3.1"), None);
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        for path in [
            "MSA1",
            "MS-1",
            "PID-x",
            "PID-3.0",
            "OBX[0]-5",
            "PID-3.1.2.3",
        ] {
            let error = path.parse::<FieldPath>().unwrap_err();
            assert!(error.to_string().contains(path), "{error}");
        }
        let round: FieldPath = "OBX[2]-5(3).1.2".parse().unwrap();
        assert_eq!(round.to_string(), "OBX[2]-5(3).1.2");
    }
}
