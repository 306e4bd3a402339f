//! What a stand-in for the national ROR keeps and how it answers: the
//! units of a referential, their capacity records, and the PATCH rules of
//! the national API (replace first; 404 `not-found` on the capacity
//! extension when the record is absent, so the client adds; 404 on
//! `Location` for an unknown unit; 412 `multiple-matches`; 400
//! `business-rule` for an indicator not in the list). No I/O: the
//! simulator's server calls it under a lock.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::codes::{self, CAPACITY_URL};
use crate::fhir::{self, Coding};
use crate::model::{Capacity, Field, Path, Unit};
use crate::patch::{read_parameters, Op, Operation};
use crate::referential::{tuple, Indicators, Referential};

/// One unit as the store keeps it.
#[derive(Debug, Clone)]
struct Stored {
    unit: Unit,
    version: u64,
    updated: OffsetDateTime,
}

/// A refusal, as the national ROR answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The FHIR issue code: `not-found`, `multiple-matches`,
    /// `business-rule`, `invalid`.
    pub code: &'static str,
    /// What the issue is about (`Location`, the capacity extension).
    pub expression: Option<String>,
    pub diagnostics: String,
}

impl Refusal {
    /// The `OperationOutcome` body.
    pub fn outcome(&self) -> Json {
        let mut issue = json!({
            "severity": "error",
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if let Some(expression) = &self.expression {
            issue["expression"] = json!([expression]);
        }
        json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }
}

fn refusal(
    status: u16,
    code: &'static str,
    expression: Option<&str>,
    diagnostics: String,
) -> Refusal {
    Refusal {
        status,
        code,
        expression: expression.map(str::to_string),
        diagnostics,
    }
}

/// An operation the store applied, for the simulator's record.
#[derive(Debug, Clone)]
pub struct Applied {
    pub unit: String,
    pub op: Op,
    /// The record written, or the one deleted.
    pub capacity: Json,
}

/// A PATCH that went through: the unit's `Location` now, and what was done.
#[derive(Debug, Clone)]
pub struct Patched {
    pub location: Json,
    pub version: u64,
    pub updated: OffsetDateTime,
    pub applied: Vec<Applied>,
}

/// The units of the referential and their capacity records.
#[derive(Debug, Clone)]
pub struct Store {
    referential: Referential,
    indicators: Option<Indicators>,
    units: BTreeMap<String, Stored>,
    coding: Coding,
}

/// The expression of a refusal about the capacity extension.
fn extension_expression() -> String {
    format!("Location.extension('{CAPACITY_URL}')")
}

impl Store {
    pub fn new(referential: Referential, indicators: Option<Indicators>) -> Store {
        Store {
            referential,
            indicators,
            units: BTreeMap::new(),
            coding: Coding::CodeableConcept,
        }
    }

    /// Applies a PATCH body to the unit `identifier` (`1<FINESS>/<unit>`),
    /// all or nothing.
    pub fn patch(
        &mut self,
        identifier: &str,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Patched, Refusal> {
        let key = self.unit_key(identifier)?;
        let json: Json = serde_json::from_slice(body).map_err(|e| {
            let reason = format!("not JSON: line {}, column {}: {e}", e.line(), e.column());
            refusal(400, "invalid", None, reason)
        })?;
        let operations = read_parameters(&json, &Path::new("Parameters"))
            .map_err(|e| refusal(400, "invalid", None, e.to_string()))?;
        let mut unit = self
            .units
            .get(&key)
            .map_or_else(|| empty_unit(&key), |s| s.unit.clone());
        let mut applied = Vec::new();
        for operation in operations {
            applied.push(self.apply(&mut unit, operation, &key)?);
        }
        let version = self.units.get(&key).map_or(0, |s| s.version) + 1;
        let stored = Stored {
            unit,
            version,
            updated: now,
        };
        let location = location(&key, &stored, self.coding);
        self.units.insert(key, stored);
        Ok(Patched {
            location,
            version,
            updated: now,
            applied,
        })
    }

    /// `1<FINESS>/<unit>` checked against the referential.
    fn unit_key(&self, identifier: &str) -> Result<String, Refusal> {
        let not_found = || {
            let reason = format!("no Location with identifier {identifier}");
            refusal(404, "not-found", Some("Location"), reason)
        };
        let (site, unit) = identifier.split_once('/').ok_or_else(not_found)?;
        let finess = site.strip_prefix('1').ok_or_else(not_found)?;
        match self.referential.unit(finess, unit).len() {
            0 => Err(not_found()),
            1 => Ok(identifier.to_string()),
            n => Err(refusal(
                412,
                "multiple-matches",
                Some("Location"),
                format!("{n} Locations have the identifier {identifier}"),
            )),
        }
    }

    fn apply(&self, unit: &mut Unit, operation: Operation, key: &str) -> Result<Applied, Refusal> {
        let matching: Vec<usize> = unit
            .capacities
            .iter()
            .enumerate()
            .filter(|(_, c)| selects(&operation.selector, c))
            .map(|(i, _)| i)
            .collect();
        let missing = || {
            let reason = format!("no capacity of {key} matches the path");
            refusal(404, "not-found", Some(&extension_expression()), reason)
        };
        let applied = |op, capacity: &Capacity| Applied {
            unit: key.to_string(),
            op,
            capacity: fhir::capacity_extension(capacity, self.coding),
        };
        match (operation.op, operation.capacity) {
            (Op::Delete, _) => {
                let first = *matching.first().ok_or_else(missing)?;
                let removed = unit.capacities.remove(first);
                Ok(applied(Op::Delete, &removed))
            }
            (_, None) => Err(refusal(
                400,
                "invalid",
                None,
                "the operation has no value".into(),
            )),
            (op, Some(capacity)) => {
                self.check_indicator(&capacity)?;
                let done = applied(op, &capacity);
                match op {
                    Op::Replace => {
                        let &i = matching.first().ok_or_else(missing)?;
                        unit.capacities[i] = capacity;
                    }
                    _ if has_tuple(unit, &capacity) => {
                        let reason = "this indicator is already there: replace it".to_string();
                        let expression = extension_expression();
                        return Err(refusal(400, "business-rule", Some(&expression), reason));
                    }
                    _ => unit.capacities.push(capacity),
                }
                Ok(done)
            }
        }
    }

    fn check_indicator(&self, capacity: &Capacity) -> Result<(), Refusal> {
        let Some(indicators) = &self.indicators else {
            return Ok(());
        };
        let tuple = tuple(capacity);
        if indicators.contains(&tuple) {
            return Ok(());
        }
        let described: Vec<String> = codes::INDICATOR
            .iter()
            .zip(&tuple)
            .map(|(slice, code)| format!("{}={}", slice.name, code.as_deref().unwrap_or("")))
            .collect();
        let reason = format!("not a valid indicator: {}", described.join(" / "));
        Err(refusal(
            400,
            "business-rule",
            Some(&extension_expression()),
            reason,
        ))
    }

    /// A `searchset` page of the units matching `identifier` (all when
    /// `None`) updated at or after `since`, with `total`.
    pub fn search(&self, identifier: Option<&str>, since: Option<OffsetDateTime>) -> Json {
        let entries: Vec<Json> = self
            .units
            .iter()
            .filter(|(key, _)| identifier.is_none_or(|id| id == key.as_str()))
            .filter(|(_, stored)| since.is_none_or(|since| stored.updated >= since))
            .map(|(key, stored)| json!({"resource": location(key, stored, self.coding)}))
            .collect();
        json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": entries.len(),
            "entry": entries,
        })
    }

    /// Every unit with records, as a JSON object by identifier.
    pub fn dump(&self) -> Json {
        let units: serde_json::Map<String, Json> = self
            .units
            .iter()
            .map(|(key, stored)| (key.clone(), location(key, stored, self.coding)))
            .collect();
        Json::Object(units)
    }
}

/// A stored unit as its `Location`, with its version and update time.
fn location(key: &str, stored: &Stored, coding: Coding) -> Json {
    let site = key.split('/').next().unwrap_or("1");
    let mut location = fhir::location(site, &stored.unit, coding);
    let updated = stored.updated.format(&Rfc3339).unwrap_or_default();
    location["id"] = json!(key.replace('/', "-"));
    location["meta"] = json!({"versionId": stored.version.to_string(), "lastUpdated": updated});
    location
}

fn empty_unit(key: &str) -> Unit {
    let id = key.split_once('/').map_or(key, |(_, unit)| unit);
    Unit {
        id: Field::new(id.to_string(), Path::default()),
        capacities: Vec::new(),
        at: Path::default(),
    }
}

/// Whether `capacity` is the record `selector` names: the same code for
/// each slice named, and no code for the indicator slices not named.
fn selects(selector: &[(String, String)], capacity: &Capacity) -> bool {
    codes::INDICATOR.iter().all(|slice| {
        let named = selector.iter().find(|(name, _)| name == slice.name);
        capacity.code(slice) == named.map(|(_, code)| code.as_str())
    }) && !selector.is_empty()
}

fn has_tuple(unit: &Unit, capacity: &Capacity) -> bool {
    let wanted = tuple(capacity);
    unit.capacities.iter().any(|c| tuple(c) == wanted)
}

#[cfg(test)]
mod tests;
