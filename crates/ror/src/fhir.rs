//! The ROR's FHIR R4 form: a `Bundle` of type `collection` holding one
//! `Location` per unit, each identified by `1<FINESS EG>/<unit id>`
//! (identifier type 26, the unit's `idExterneSynchro`) and carrying one
//! `ror-location-supported-capacity` extension per capacity record. A
//! single `Location` is read too.
//!
//! Coded slices are read from `valueCode` or `valueCodeableConcept` (both
//! circulate); they are written as `valueCodeableConcept` with the table's
//! system and label, as the ANS documentation writes them, unless
//! [`Coding::Code`] is asked for.
//!
//! The document's id and time go in `Bundle.identifier` and
//! `Bundle.timestamp`; the FINESS numbers and the sender's address, which
//! a `Bundle` has no element for, in extensions of `Bundle.meta`.

use serde_json::{json, Map, Value as Json};

use crate::codes::{self, Kind, Slice, CAPACITY_URL};
use crate::model::{Capacity, Document, Field, Path, Unit, Value};
use crate::xml::NAMESPACE;

/// The unit identifier's type: 26, "Identifiant de la zone d'hébergement
/// connu par l'établissement".
pub const UNIT_ID_SYSTEM: &str = "https://mos.esante.gouv.fr/NOS/TRE_R354-TypeIdentifiantRessourceOperationnelle/FHIR/TRE-R354-TypeIdentifiantRessourceOperationnelle";
pub const UNIT_ID_TYPE: &str = "26";

/// `Bundle.meta` extensions for what FHIR has no element for (the site's
/// FINESS is in each unit's identifier too, but a document may have no
/// unit).
pub const FINESS_EG_URL: &str = "urn:guichet:bed-availability:1#finessEg";
pub const FINESS_EJ_URL: &str = "urn:guichet:bed-availability:1#finessEj";
pub const SENDER_URL: &str = "urn:guichet:bed-availability:1#sender";

/// How coded slices are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coding {
    /// `valueCodeableConcept` with system, code and label (the ANS
    /// documentation's form).
    #[default]
    CodeableConcept,
    /// `valueCode`.
    Code,
}

/// Why a text is not a bed-availability document in FHIR form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// Not JSON: where reading stopped (1-based).
    #[error("line {line}, column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    /// JSON, but not this form: the JSON path of the offending element.
    #[error("{path}: {reason}")]
    Shape { path: String, reason: String },
}

pub(crate) fn shape(at: &Path, reason: impl Into<String>) -> FhirError {
    FhirError::Shape {
        path: at.to_string(),
        reason: reason.into(),
    }
}

/// Reads a `Bundle` of `Location`s or one `Location`.
pub fn read(text: &[u8]) -> Result<Document, FhirError> {
    read_json(&parse(text)?)
}

/// The JSON of `text`, or where it stops being JSON.
pub fn parse(text: &[u8]) -> Result<Json, FhirError> {
    serde_json::from_slice(text).map_err(|e| FhirError::Json {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })
}

/// Reads an already parsed `Bundle` or `Location`.
pub fn read_json(json: &Json) -> Result<Document, FhirError> {
    let root = Path::new("$");
    let mut document = Document {
        at: root.clone(),
        ..Document::default()
    };
    match json.get("resourceType").and_then(Json::as_str) {
        Some("Bundle") => {
            let entries = read_bundle(json, "collection", &mut document)?;
            for (i, entry) in entries.iter().enumerate() {
                let at = root.join("entry").index(i).join("resource");
                read_entry(entry, &at, &mut document)?;
            }
            require_site(&document)?;
        }
        Some("Location") => read_location(json, &root, &mut document)?,
        Some(other) => {
            return Err(shape(
                &root.join("resourceType"),
                format!("a {other}, not a Bundle or a Location"),
            ))
        }
        None => return Err(shape(&root, "no resourceType")),
    }
    Ok(document)
}

/// A `Bundle`'s type, when it is one.
pub fn bundle_type(json: &Json) -> Option<&str> {
    match json.get("resourceType").and_then(Json::as_str) {
        Some("Bundle") => json.get("type").and_then(Json::as_str),
        _ => None,
    }
}

/// Reads a `Bundle` of type `kind`: its id, time, FINESS numbers and
/// sender into `document`; returns its entries.
pub(crate) fn read_bundle<'j>(
    json: &'j Json,
    kind: &str,
    document: &mut Document,
) -> Result<&'j [Json], FhirError> {
    let root = document.at.clone();
    match json.get("type").and_then(Json::as_str) {
        Some(found) if found == kind => {}
        other => {
            let found = other.unwrap_or("none");
            let reason = format!(
                "a Bundle of type {found}, not {kind} (a collection of Locations, or a batch of PATCH requests)"
            );
            return Err(shape(&root.join("type"), reason));
        }
    }
    document.id = string(
        member(json, &["identifier", "value"]),
        &root.join("identifier.value"),
    )?;
    document.time = string(json.get("timestamp"), &root.join("timestamp"))?;
    let meta = array(
        member(json, &["meta", "extension"]),
        &root.join("meta.extension"),
    )?;
    for (i, extension) in meta.iter().enumerate() {
        let at = root.join("meta.extension").index(i);
        let value = string(extension.get("valueString"), &at.join("valueString"))?;
        match extension.get("url").and_then(Json::as_str) {
            Some(FINESS_EG_URL) => document.establishment.finess_eg = value,
            Some(FINESS_EJ_URL) => document.establishment.finess_ej = value,
            Some(SENDER_URL) => document.establishment.sender = value,
            _ => {}
        }
    }
    array(json.get("entry"), &root.join("entry"))
}

/// Fails a document that names no site at all.
pub(crate) fn require_site(document: &Document) -> Result<(), FhirError> {
    match document.establishment.finess_eg {
        Some(_) => Ok(()),
        None => Err(shape(
            &document.at,
            "no FINESS EG: neither in meta.extension nor in a unit's identifier",
        )),
    }
}

/// One entry of a collection: a `Location`.
fn read_entry(entry: &Json, at: &Path, document: &mut Document) -> Result<(), FhirError> {
    let Some(resource) = entry.get("resource") else {
        return Err(shape(at, "an entry without a resource"));
    };
    match resource.get("resourceType").and_then(Json::as_str) {
        Some("Location") => read_location(resource, at, document),
        other => {
            let found = other.unwrap_or("nothing");
            let reason = format!("a {found}, not a Location");
            Err(shape(&at.join("resourceType"), reason))
        }
    }
}

fn read_location(json: &Json, at: &Path, document: &mut Document) -> Result<(), FhirError> {
    let (finess, id) = unit_identifier(json, at)?;
    same_site(document, finess)?;
    let mut unit = Unit {
        id,
        capacities: Vec::new(),
        at: at.clone(),
    };
    let extensions = array(json.get("extension"), &at.join("extension"))?;
    for (i, extension) in extensions.iter().enumerate() {
        let url = extension.get("url").and_then(Json::as_str).unwrap_or("");
        if url == CAPACITY_URL {
            let at = at.join("extension").index(i);
            unit.capacities.push(read_capacity(extension, at)?);
        }
    }
    document.units.push(unit);
    Ok(())
}

/// Takes `finess` as the document's site, or checks it is the same.
pub(crate) fn same_site(document: &mut Document, finess: Field<String>) -> Result<(), FhirError> {
    match &document.establishment.finess_eg {
        Some(known) if known.value != finess.value => {
            let reason = format!(
                "a unit of FINESS {}, in a document for {}",
                finess.value, known.value
            );
            Err(shape(&finess.at, reason))
        }
        Some(_) => Ok(()),
        None => {
            document.establishment.finess_eg = Some(finess);
            Ok(())
        }
    }
}

/// `1<FINESS>/<unit id>`, the way the ROR addresses a unit, split.
pub(crate) fn split_unit_id(
    value: &str,
    at: &Path,
) -> Result<(Field<String>, Field<String>), FhirError> {
    let Some((site, unit)) = value.split_once('/') else {
        return Err(shape(
            at,
            format!("`{value}` is not 1<FINESS EG>/<unit id>"),
        ));
    };
    let Some(finess) = site.strip_prefix('1') else {
        return Err(shape(
            at,
            format!("`{site}` is not 1 followed by the site's FINESS"),
        ));
    };
    Ok((
        Field::new(finess.to_string(), at.clone()),
        Field::new(unit.to_string(), at.clone()),
    ))
}

/// The FINESS EG and the unit id of identifier type 26 (`1<FINESS>/<id>`).
fn unit_identifier(json: &Json, at: &Path) -> Result<(Field<String>, Field<String>), FhirError> {
    let identifiers = array(json.get("identifier"), &at.join("identifier"))?;
    let found = identifiers.iter().enumerate().find(|(_, identifier)| {
        let codings = member(identifier, &["type", "coding"]).and_then(Json::as_array);
        codings.is_some_and(|codings| {
            codings
                .iter()
                .any(|c| c.get("code").and_then(Json::as_str) == Some(UNIT_ID_TYPE))
        })
    });
    let Some((i, identifier)) = found else {
        return Err(shape(
            &at.join("identifier"),
            "no identifier of type 26 (the unit's idExterneSynchro)",
        ));
    };
    let at = at.join("identifier").index(i).join("value");
    let Some(value) = identifier.get("value").and_then(Json::as_str) else {
        return Err(shape(&at, "the unit's identifier has no value"));
    };
    split_unit_id(value, &at)
}

pub(crate) fn read_capacity(json: &Json, at: Path) -> Result<Capacity, FhirError> {
    let mut capacity = Capacity {
        at: at.clone(),
        ..Capacity::default()
    };
    let slices = array(json.get("extension"), &at.join("extension"))?;
    for (i, slice_json) in slices.iter().enumerate() {
        let at = at.join("extension").index(i);
        let name = slice_json.get("url").and_then(Json::as_str).unwrap_or("");
        let Some(slice) = codes::slice(name) else {
            return Err(shape(
                &at.join("url"),
                format!("`{name}` is not a slice of a capacity"),
            ));
        };
        if capacity.get(slice).is_some() {
            return Err(shape(&at, format!("{name} given twice in one capacity")));
        }
        let value = slice_value(slice, slice_json, &at)?;
        capacity.set(slice, Field::new(value, at));
    }
    Ok(capacity)
}

fn slice_value(slice: &Slice, json: &Json, at: &Path) -> Result<Value, FhirError> {
    let wrong = |element: &'static str, what: &str| {
        shape(&at.join(element), format!("{} needs {what}", slice.name))
    };
    match slice.kind {
        Kind::Integer => match json.get("valueInteger") {
            Some(n) => n
                .as_i64()
                .map(Value::Integer)
                .ok_or_else(|| wrong("valueInteger", "a whole number")),
            None => Err(wrong("valueInteger", "valueInteger")),
        },
        Kind::DateTime => match json.get("valueDateTime").and_then(Json::as_str) {
            Some(text) => Ok(Value::DateTime(text.to_string())),
            None => Err(wrong("valueDateTime", "valueDateTime, a string")),
        },
        Kind::Coded => {
            if let Some(code) = json.get("valueCode") {
                return code
                    .as_str()
                    .map(|c| Value::code(slice, c))
                    .ok_or_else(|| wrong("valueCode", "a string code"));
            }
            let code = member(json, &["valueCodeableConcept", "coding", "0", "code"]);
            match code.and_then(Json::as_str) {
                Some(code) => Ok(Value::code(slice, code)),
                None => Err(wrong(
                    "valueCodeableConcept",
                    "valueCode or valueCodeableConcept.coding[0].code",
                )),
            }
        }
    }
}

fn string(json: Option<&Json>, at: &Path) -> Result<Option<Field<String>>, FhirError> {
    match json {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(Field::new(text.clone(), at.clone()))),
        Some(_) => Err(shape(at, "a string is expected")),
    }
}

/// The member of `json` at `path` (names, or indices into arrays): what
/// `Json::pointer` finds, without a String for each step.
pub(crate) fn member<'j>(json: &'j Json, path: &[&str]) -> Option<&'j Json> {
    path.iter().try_fold(json, |json, step| match json {
        Json::Object(members) => members.get(*step),
        Json::Array(items) => step.parse().ok().and_then(|i: usize| items.get(i)),
        _ => None,
    })
}

pub(crate) fn array<'j>(json: Option<&'j Json>, at: &Path) -> Result<&'j [Json], FhirError> {
    match json {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(shape(at, "an array is expected")),
    }
}

/// Writes `document` as a `Bundle` of type `collection`.
pub fn write(document: &Document, coding: Coding) -> Json {
    let mut bundle = bundle("collection", document);
    let site = document.id_nat_struct().unwrap_or_else(|| "1".into());
    let entries: Vec<Json> = document
        .units
        .iter()
        .map(|unit| json!({ "resource": location(&site, unit, coding) }))
        .collect();
    bundle.insert("entry".into(), Json::Array(entries));
    Json::Object(bundle)
}

/// A `Bundle` of type `kind` with the document's id, time, FINESS numbers
/// and sender; no entries yet.
pub(crate) fn bundle(kind: &str, document: &Document) -> Map<String, Json> {
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    if let Some(id) = &document.id {
        bundle.insert(
            "identifier".into(),
            json!({"system": NAMESPACE, "value": id.value}),
        );
    }
    bundle.insert("type".into(), json!(kind));
    if let Some(time) = &document.time {
        bundle.insert("timestamp".into(), json!(time.value));
    }
    let establishment = &document.establishment;
    let meta: Vec<Json> = [
        (FINESS_EG_URL, &establishment.finess_eg),
        (FINESS_EJ_URL, &establishment.finess_ej),
        (SENDER_URL, &establishment.sender),
    ]
    .into_iter()
    .filter_map(|(url, value)| {
        value
            .as_ref()
            .map(|v| json!({"url": url, "valueString": v.value}))
    })
    .collect();
    if !meta.is_empty() {
        bundle.insert("meta".into(), json!({ "extension": meta }));
    }
    bundle
}

/// One unit as a `Location`.
pub fn location(site: &str, unit: &Unit, coding: Coding) -> Json {
    let capacities: Vec<Json> = unit
        .capacities
        .iter()
        .map(|capacity| capacity_extension(capacity, coding))
        .collect();
    json!({
        "resourceType": "Location",
        "identifier": [{
            "type": {"coding": [{"system": UNIT_ID_SYSTEM, "code": UNIT_ID_TYPE}]},
            "value": format!("{site}/{}", unit.id.value),
        }],
        "extension": capacities,
    })
}

/// One capacity record as a `ror-location-supported-capacity` extension.
pub fn capacity_extension(capacity: &Capacity, coding: Coding) -> Json {
    let slices: Vec<Json> = capacity
        .each()
        .filter_map(|(slice, value)| value.map(|v| slice_json(slice, &v.value, coding)))
        .collect();
    json!({"url": CAPACITY_URL, "extension": slices})
}

fn slice_json(slice: &Slice, value: &Value, coding: Coding) -> Json {
    match value {
        Value::Integer(n) => json!({"url": slice.name, "valueInteger": n}),
        Value::DateTime(text) => json!({"url": slice.name, "valueDateTime": text}),
        Value::Code(code) if coding == Coding::Code => {
            json!({"url": slice.name, "valueCode": code})
        }
        Value::Code(code) => {
            let mut one = json!({"system": slice.system, "code": code});
            if let Some(known) = slice.code(code) {
                one["display"] = json!(known.label);
            }
            json!({"url": slice.name, "valueCodeableConcept": {"coding": [one]}})
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
