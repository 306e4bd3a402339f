//! What the ROR knows: the units of each establishment (by FINESS EG and
//! `idExterneSynchro`), and, optionally, the indicator tuples the
//! national ROR accepts (given to a region at onboarding, not public).
//!
//! Units come from CSV with the header `finess_eg,unit_id,label`, one row
//! per unit, or from JSON: an array of objects with those three keys. The
//! same unit twice is kept (the national ROR has such cases: it answers
//! 412 `multiple-matches`), and reported by [`Referential::duplicates`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::codes::INDICATOR;
use crate::model::Capacity;

/// Why a referential cannot be read: where (1-based line, when the form
/// has lines) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ReferentialError {
    pub line: Option<u64>,
    pub reason: String,
}

fn error(line: Option<u64>, reason: impl Into<String>) -> ReferentialError {
    ReferentialError {
        line,
        reason: reason.into(),
    }
}

/// One unit the ROR knows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KnownUnit {
    pub finess_eg: String,
    pub unit_id: String,
    #[serde(default)]
    pub label: String,
    /// Where it was read (a CSV line), for reports.
    #[serde(skip)]
    pub line: Option<u64>,
}

/// The units of every establishment.
#[derive(Debug, Clone, Default)]
pub struct Referential {
    /// FINESS EG -> its units.
    units: BTreeMap<String, Units>,
}

/// One establishment's units: unit id -> the rows naming it.
#[derive(Debug, Clone, Default)]
pub struct Units(BTreeMap<String, Vec<KnownUnit>>);

impl Units {
    /// The rows naming `unit_id`.
    pub fn rows(&self, unit_id: &str) -> &[KnownUnit] {
        self.0.get(unit_id).map_or(&[], Vec::as_slice)
    }
}

impl Referential {
    /// Reads CSV (`finess_eg,unit_id,label`) or, when the text starts with
    /// `[`, JSON.
    pub fn read(text: &[u8]) -> Result<Referential, ReferentialError> {
        let start = text.iter().find(|b| !b.is_ascii_whitespace());
        match start {
            Some(b'[') => Referential::from_json(text),
            _ => Referential::from_csv(text),
        }
    }

    pub fn from_csv(text: &[u8]) -> Result<Referential, ReferentialError> {
        let (mut reader, headers) = csv_reader(text)?;
        let want = ["finess_eg", "unit_id", "label"];
        if headers.iter().map(str::trim).ne(want) {
            let found: Vec<&str> = headers.iter().collect();
            return Err(error(
                Some(1),
                format!(
                    "the header is {}, not finess_eg,unit_id,label",
                    found.join(",")
                ),
            ));
        }
        let mut referential = Referential::default();
        for row in reader.records() {
            let row = row.map_err(|e| error(e.position().map(|p| p.line()), e.to_string()))?;
            let line = row.position().map(|p| p.line());
            let cell = |i: usize| row.get(i).unwrap_or("").trim().to_string();
            referential.add(KnownUnit {
                finess_eg: cell(0),
                unit_id: cell(1),
                label: cell(2),
                line,
            })?;
        }
        Ok(referential)
    }

    pub fn from_json(text: &[u8]) -> Result<Referential, ReferentialError> {
        let units: Vec<KnownUnit> = serde_json::from_slice(text)
            .map_err(|e| error(Some(e.line() as u64), format!("column {}: {e}", e.column())))?;
        let mut referential = Referential::default();
        for unit in units {
            referential.add(unit)?;
        }
        Ok(referential)
    }

    fn add(&mut self, unit: KnownUnit) -> Result<(), ReferentialError> {
        if unit.finess_eg.is_empty() || unit.unit_id.is_empty() {
            return Err(error(unit.line, "a unit needs finess_eg and unit_id"));
        }
        self.units
            .entry(unit.finess_eg.clone())
            .or_default()
            .0
            .entry(unit.unit_id.clone())
            .or_default()
            .push(unit);
        Ok(())
    }

    /// Whether the establishment has any unit here.
    /// Every row, by establishment then unit.
    pub fn units(&self) -> impl Iterator<Item = &KnownUnit> {
        self.units
            .values()
            .flat_map(|units| units.0.values().flatten())
    }

    pub fn knows(&self, finess_eg: &str) -> bool {
        self.units.contains_key(finess_eg)
    }

    /// The rows naming `unit_id` in establishment `finess_eg`.
    pub fn unit(&self, finess_eg: &str, unit_id: &str) -> &[KnownUnit] {
        self.units_of(finess_eg)
            .map_or(&[], |units| units.rows(unit_id))
    }

    /// The units of establishment `finess_eg`, when it has any: for a
    /// caller that looks up many, the establishment found once.
    pub fn units_of(&self, finess_eg: &str) -> Option<&Units> {
        self.units.get(finess_eg)
    }

    /// Units named more than once.
    pub fn duplicates(&self) -> impl Iterator<Item = &[KnownUnit]> {
        self.units
            .values()
            .flat_map(|units| units.0.values())
            .filter(|rows| rows.len() > 1)
            .map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.units.values().map(|units| units.0.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }
}

/// A CSV reader of `text` and its header line.
fn csv_reader(text: &[u8]) -> Result<(csv::Reader<&[u8]>, csv::StringRecord), ReferentialError> {
    let mut reader = csv::Reader::from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| error(Some(1), e.to_string()))?
        .clone();
    Ok((reader, headers))
}

/// An indicator: the codes of [`INDICATOR`]'s slices, `None` where absent.
pub type Tuple = [Option<String>; INDICATOR.len()];

/// A capacity record's indicator tuple.
pub fn tuple(capacity: &Capacity) -> Tuple {
    INDICATOR.map(|slice| capacity.code(slice).map(str::to_string))
}

/// The indicator tuples the national ROR accepts.
#[derive(Debug, Clone, Default)]
pub struct Indicators(BTreeSet<Tuple>);

impl Indicators {
    /// CSV whose header names the seven indicator slices (any order);
    /// an empty cell is an absent slice.
    pub fn from_csv(text: &[u8]) -> Result<Indicators, ReferentialError> {
        let (mut reader, headers) = csv_reader(text)?;
        let columns: Vec<usize> = INDICATOR
            .iter()
            .map(|slice| {
                headers
                    .iter()
                    .position(|h| h.trim() == slice.name)
                    .ok_or_else(|| {
                        error(Some(1), format!("the header has no column {}", slice.name))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut tuples = BTreeSet::new();
        for row in reader.records() {
            let row = row.map_err(|e| error(e.position().map(|p| p.line()), e.to_string()))?;
            let mut tuple: Tuple = Default::default();
            for (slot, &column) in tuple.iter_mut().zip(&columns) {
                let cell = row.get(column).unwrap_or("").trim();
                *slot = (!cell.is_empty()).then(|| cell.to_string());
            }
            tuples.insert(tuple);
        }
        Ok(Indicators(tuples))
    }

    pub fn contains(&self, tuple: &Tuple) -> bool {
        self.0.contains(tuple)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "finess_eg,unit_id,label\n\
        350054680,SSR38888,\"SSR, aile B\"\n\
        350054680,MCO1,Médecine\n\
        750712184,REA,Réanimation\n\
        750712184,REA,Réanimation (bis)\n";

    #[test]
    fn units_are_read_from_csv_quotes_and_accents_included() {
        let r = Referential::read(CSV.as_bytes()).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.knows("350054680"));
        assert!(!r.knows("010780914"));
        assert_eq!(r.unit("350054680", "SSR38888")[0].label, "SSR, aile B");
        assert!(r.unit("350054680", "REA").is_empty());
    }

    #[test]
    fn a_unit_named_twice_is_kept_and_reported_with_its_lines() {
        let r = Referential::read(CSV.as_bytes()).unwrap();
        assert_eq!(r.unit("750712184", "REA").len(), 2);
        let duplicates: Vec<_> = r.duplicates().collect();
        assert_eq!(duplicates.len(), 1);
        let lines: Vec<_> = duplicates[0].iter().map(|u| u.line).collect();
        assert_eq!(lines, [Some(4), Some(5)]);
    }

    #[test]
    fn json_is_read_too() {
        let json = r#"[{"finess_eg": "350054680", "unit_id": "SSR38888", "label": "SSR"}]"#;
        let r = Referential::read(json.as_bytes()).unwrap();
        assert_eq!(r.unit("350054680", "SSR38888").len(), 1);
    }

    #[test]
    fn bad_referentials_say_where() {
        let e = Referential::read(b"finess,unit\n1,2\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.reason.contains("not finess_eg,unit_id,label"), "{e}");
        let e = Referential::read(b"finess_eg,unit_id,label\n350054680,,x\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: a unit needs finess_eg and unit_id");
        let e = Referential::read(b"[{\"finess_eg\": 1}]").unwrap_err();
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn indicator_tuples_are_read_by_column_name() {
        let text = "temporaryAssignement,capacityStatus,temporalityCapacity,genderCapacityAvailable,capacityClosingType,additionalBedType,crisisType\n\
            01,02,01,,,,\n";
        let indicators = Indicators::from_csv(text.as_bytes()).unwrap();
        let mut tuple: Tuple = Default::default();
        tuple[0] = Some("02".into());
        tuple[1] = Some("01".into());
        tuple[6] = Some("01".into());
        assert!(indicators.contains(&tuple));
        tuple[2] = Some("01".into());
        assert!(!indicators.contains(&tuple));
    }
}
