//! The national ROR's PATCH form: per capacity record, a FHIR
//! `Parameters` of one operation on the unit's `Location`, sent to
//! `[BASE]/ws-synchro-dispo-lits-fhir/Location?identifier=1<FINESS EG>/<unit>`.
//!
//! The ROR's rule: `replace` first, the record selected by its indicator
//! (a FHIRPath `where(...)` on the indicator's slices); on 404
//! `not-found` whose expression is the capacity extension, `add`. The
//! value is given as the ANS documentation writes it: a part without a
//! name holding an `extension` array with the capacity extension.
//!
//! A document in this form is a FHIR `Bundle` of type `batch`: one entry
//! per record (its `replace`), and an entry without operations for a unit
//! without records, so nothing is lost; id, time, FINESS numbers and
//! sender as in the collection form.

use serde_json::{json, Value as Json};

use crate::codes::{self, INDICATOR};
use crate::fhir::{self, array, shape, Coding, FhirError};
use crate::model::{Capacity, Document, Path, Unit};

/// Where the ROR's bed-availability API takes a unit's `Location`,
/// relative to its base URL.
pub const LOCATION: &str = "ws-synchro-dispo-lits-fhir/Location";

/// The `fullUrl` prefix of a batch's entries, numbered per unit.
pub const UNIT_ENTRY: &str = "urn:guichet:bed-availability:1:unit:";

/// An operation of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Delete,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Delete => "delete",
        }
    }

    fn parse(name: &str) -> Option<Op> {
        [Op::Add, Op::Replace, Op::Delete]
            .into_iter()
            .find(|op| op.name() == name)
    }
}

/// One operation read from a `Parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub op: Op,
    /// The indicator's codes its path selects, by slice name, in the
    /// path's order (none for an `add`).
    pub selector: Vec<(String, String)>,
    /// The capacity record given as the value (none for a `delete`).
    pub capacity: Option<Capacity>,
}

/// The unit's URL relative to the base: `…/Location?identifier=1<FINESS>/<unit>`.
pub fn url(site: &str, unit: &str) -> String {
    format!("{LOCATION}?identifier={site}/{unit}")
}

/// The path of the capacity extensions.
fn extensions_path() -> String {
    format!("Location.extension.where(url='{}')", codes::CAPACITY_URL)
}

/// The FHIRPath that selects `capacity`'s record by its indicator, as the
/// ANS documentation writes it.
pub fn selector(capacity: &Capacity, coding: Coding) -> String {
    let value = match coding {
        Coding::CodeableConcept => "valueCodeableConcept.coding.code",
        Coding::Code => "valueCode",
    };
    let clauses: Vec<String> = INDICATOR
        .iter()
        .filter_map(|slice| {
            let code = capacity.code(slice)?;
            Some(format!(
                "extension.where(url = '{}' and {value} = '{}')",
                slice.name,
                code.replace('\'', "\\'")
            ))
        })
        .collect();
    format!("{}.where({})", extensions_path(), clauses.join(" and "))
}

/// A `Parameters` of one operation on `capacity`.
pub fn parameters(op: Op, capacity: &Capacity, coding: Coding) -> Json {
    let path = match op {
        Op::Add => extensions_path(),
        Op::Replace | Op::Delete => selector(capacity, coding),
    };
    let mut part = vec![
        json!({"name": "type", "valueString": op.name()}),
        json!({"name": "path", "valueString": path}),
    ];
    if op != Op::Delete {
        let extension = fhir::capacity_extension(capacity, coding);
        part.push(json!({"name": "value", "part": [{"extension": [extension]}]}));
    }
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "operation", "part": part}],
    })
}

/// Writes `document` as a `Bundle` of type `batch` of PATCH requests.
pub fn write(document: &Document, coding: Coding) -> Json {
    let mut bundle = fhir::bundle("batch", document);
    let site = document.id_nat_struct().unwrap_or_else(|| "1".into());
    let mut entries = Vec::new();
    for (i, unit) in document.units.iter().enumerate() {
        // The entries of one unit share a fullUrl, so two units of the
        // same id stay two units when read back.
        let full_url = format!("{UNIT_ENTRY}{i}");
        let request = json!({"method": "PATCH", "url": url(&site, &unit.id.value)});
        let entry =
            |resource| json!({"fullUrl": full_url, "request": request, "resource": resource});
        if unit.capacities.is_empty() {
            entries.push(entry(json!({"resourceType": "Parameters"})));
        }
        for capacity in &unit.capacities {
            entries.push(entry(parameters(Op::Replace, capacity, coding)));
        }
    }
    bundle.insert("entry".into(), Json::Array(entries));
    Json::Object(bundle)
}

/// Reads a `Bundle` of type `batch` of PATCH requests.
pub fn read(text: &[u8]) -> Result<Document, FhirError> {
    read_json(&fhir::parse(text)?)
}

/// Reads an already parsed `Bundle` of type `batch`.
pub fn read_json(json: &Json) -> Result<Document, FhirError> {
    let mut document = Document {
        at: Path::new("$"),
        ..Document::default()
    };
    let entries = fhir::read_bundle(json, "batch", &mut document)?;
    let mut group = None;
    for (i, entry) in entries.iter().enumerate() {
        let at = document.at.join("entry").index(i);
        read_entry(entry, &at, &mut document, &mut group)?;
    }
    fhir::require_site(&document)?;
    Ok(document)
}

/// Reads one entry of a batch into `document`: its unit from the URL,
/// its records from the `replace` or `add` operations.
///
/// `group` is the previous entry's `fullUrl`: entries sharing one are one
/// unit's (without one, consecutive entries of the same unit are).
fn read_entry(
    entry: &Json,
    at: &Path,
    document: &mut Document,
    group: &mut Option<String>,
) -> Result<(), FhirError> {
    let url_at = at.join("request.url");
    let url = fhir::member(entry, &["request", "url"]).and_then(Json::as_str);
    let Some(identifier) = url
        .and_then(|u| u.split_once("identifier="))
        .map(|(_, id)| id)
    else {
        return Err(shape(
            &url_at,
            "a PATCH entry needs request.url with ?identifier=1<FINESS>/<unit>",
        ));
    };
    let (finess, id) = fhir::split_unit_id(identifier, &url_at)?;
    fhir::same_site(document, finess)?;
    let resource_at = at.join("resource");
    let operations = read_parameters(entry.get("resource").unwrap_or(&Json::Null), &resource_at)?;
    let full_url = entry
        .get("fullUrl")
        .and_then(Json::as_str)
        .map(str::to_string);
    let same_group = full_url.is_some() && *group == full_url;
    *group = full_url.clone();
    let unit = unit_for(document, full_url.is_some(), same_group, id, &url_at);
    for (i, operation) in operations.into_iter().enumerate() {
        match (operation.op, operation.capacity) {
            (Op::Delete, _) | (_, None) => {
                let at = resource_at.join("parameter").index(i);
                return Err(shape(&at, "a delete carries no capacity to check"));
            }
            (_, Some(capacity)) => unit.capacities.push(capacity),
        }
    }
    Ok(())
}

/// The unit the entry adds to: the last one when the entry is of its
/// group (or, without groups, of the same id), else a new one.
fn unit_for<'d>(
    document: &'d mut Document,
    grouped: bool,
    same_group: bool,
    id: crate::model::Field<String>,
    at: &Path,
) -> &'d mut Unit {
    let same = match grouped {
        true => same_group && !document.units.is_empty(),
        false => document
            .units
            .last()
            .is_some_and(|u| u.id.value == id.value),
    };
    if !same {
        document.units.push(Unit {
            id,
            capacities: Vec::new(),
            at: at.clone(),
        });
    }
    let last = document.units.len() - 1;
    &mut document.units[last]
}

/// Reads the operations of a `Parameters`, as the ANS documentation
/// writes them.
pub fn read_parameters(json: &Json, at: &Path) -> Result<Vec<Operation>, FhirError> {
    if json.get("resourceType").and_then(Json::as_str) != Some("Parameters") {
        return Err(shape(&at.join("resourceType"), "a Parameters is expected"));
    }
    let parameters = array(json.get("parameter"), &at.join("parameter"))?;
    let mut operations = Vec::new();
    for (i, parameter) in parameters.iter().enumerate() {
        let at = at.join("parameter").index(i);
        if parameter.get("name").and_then(Json::as_str) != Some("operation") {
            return Err(shape(
                &at.join("name"),
                "a parameter named operation is expected",
            ));
        }
        operations.push(read_operation(parameter, &at)?);
    }
    Ok(operations)
}

fn read_operation(parameter: &Json, at: &Path) -> Result<Operation, FhirError> {
    let parts = array(parameter.get("part"), &at.join("part"))?;
    let find = |name: &str| {
        parts
            .iter()
            .enumerate()
            .find(|(_, p)| p.get("name").and_then(Json::as_str) == Some(name))
    };
    let Some(op) = find("type")
        .and_then(|(_, p)| p.get("valueString").and_then(Json::as_str))
        .and_then(Op::parse)
    else {
        return Err(shape(
            &at.join("part"),
            "the operation's type is add, replace or delete",
        ));
    };
    let path = find("path")
        .and_then(|(_, p)| p.get("valueString").and_then(Json::as_str))
        .unwrap_or("");
    if !path.starts_with("Location.extension") || !path.contains(codes::CAPACITY_URL) {
        return Err(shape(
            &at.join("part"),
            format!("the path `{path}` is not the capacity extension"),
        ));
    }
    let capacity = match find("value") {
        None => None,
        Some((j, value)) => {
            let at = at.join("part").index(j).join("part[0].extension[0]");
            let Some(extension) = fhir::member(value, &["part", "0", "extension", "0"]) else {
                return Err(shape(&at, "the value holds no capacity extension"));
            };
            Some(fhir::read_capacity(extension, at)?)
        }
    };
    Ok(Operation {
        op,
        selector: parse_selector(path),
        capacity,
    })
}

/// The `(slice, code)` pairs of a `where(url = 'S' and value… = 'C')`
/// path, whatever the spacing.
pub fn parse_selector(path: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find("extension.where(") {
        rest = &rest[start + "extension.where(".len()..];
        let Some((slice, after)) = quoted_after(rest, "url") else {
            continue;
        };
        // `where(url='…')` alone selects the extension, not a slice.
        if after.trim_start().starts_with(')') {
            rest = after;
            continue;
        }
        let value_at = after.find("value").unwrap_or(after.len());
        let Some((code, tail)) = quoted_after(&after[value_at..], "=") else {
            continue;
        };
        if INDICATOR.iter().any(|s| s.name == slice) {
            pairs.push((slice, code));
        }
        rest = tail;
    }
    pairs
}

/// The first quoted string after `key` (and an `=` when `key` is a
/// name), and what follows it.
fn quoted_after<'t>(text: &'t str, key: &str) -> Option<(String, &'t str)> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let rest = rest.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some((rest[..end].to_string(), &rest[end + 1..]))
}

#[cfg(test)]
mod tests;
