//! Flows from a spreadsheet (CSV, or an XLSX/XLS/ODS workbook) with a
//! column mapping, as it-lanscape's flow import takes them: its field
//! catalogue, its guesses of which column is which, its normalisation,
//! and its two modes (replace the establishment's flows, or merge by `id`
//! else `source|target|protocol|messageType`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// it-lanscape's flow fields, each with the header fragments that name it
/// when no mapping is given (first match wins, case-insensitive).
pub const FIELDS: [(&str, &[&str]); 9] = [
    ("id", &["id", "identifiant", "flux_id"]),
    (
        "sourceTrigramme",
        &["source", "src", "trigramme source", "app source"],
    ),
    (
        "targetTrigramme",
        &["cible", "target", "dst", "trigramme cible", "app cible"],
    ),
    ("protocol", &["protocole", "protocol"]),
    ("port", &["port"]),
    ("messageType", &["message", "message type", "typemessage"]),
    ("interfaceType", &["interface", "type interface"]),
    ("eaiName", &["eai", "broker", "bus"]),
    ("description", &["description", "commentaire"]),
];

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: no sheet named {sheet:?} (sheets: {})", path.display(), found.join(", "))]
    NoSheet {
        path: PathBuf,
        sheet: String,
        found: Vec<String>,
    },
    #[error("{}: no header row", path.display())]
    Empty { path: PathBuf },
    #[error("unknown flow field {field:?} (fields: {})", FIELDS.map(|f| f.0).join(", "))]
    UnknownField { field: String },
    #[error("{field} is mapped to column {column:?}, which the sheet does not have (columns: {})", found.join(", "))]
    NoColumn {
        field: String,
        column: String,
        found: Vec<String>,
    },
}

/// A sheet as text: its name, its header row and the rows under it.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub name: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Reads a CSV file (`,` or `;` separated, as French spreadsheets write
/// them) or a workbook: the sheet named `sheet`, else the first whose name
/// holds "flux", else the first.
pub fn read_sheet(path: &Path, sheet: Option<&str>) -> Result<Sheet, SheetError> {
    let fail = |message: String| SheetError::Read {
        path: path.to_path_buf(),
        message,
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (name, mut grid) = if ext == "csv" {
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        (
            file_name(path),
            csv_grid(&bytes).map_err(|e| fail(e.to_string()))?,
        )
    } else {
        workbook_grid(path, sheet)?
    };
    grid.retain(|row| row.iter().any(|c| !c.is_empty()));
    if grid.is_empty() {
        return Err(SheetError::Empty {
            path: path.to_path_buf(),
        });
    }
    let headers = grid
        .remove(0)
        .iter()
        .enumerate()
        .map(|(i, h)| match h.trim() {
            "" => format!("Colonne {}", i + 1),
            h => h.to_string(),
        })
        .collect();
    Ok(Sheet {
        name,
        headers,
        rows: grid,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn csv_grid(bytes: &[u8]) -> Result<Vec<Vec<String>>, csv::Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first.iter().filter(|b| **b == c).count();
    let delimiter = if count(b';') > count(b',') {
        b';'
    } else {
        b','
    };
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes)
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect()
}

fn workbook_grid(
    path: &Path,
    wanted: Option<&str>,
) -> Result<(String, Vec<Vec<String>>), SheetError> {
    use calamine::Reader as _;
    let fail = |message: String| SheetError::Read {
        path: path.to_path_buf(),
        message,
    };
    let mut book = calamine::open_workbook_auto(path).map_err(|e| fail(e.to_string()))?;
    let names = book.sheet_names();
    let chosen = match wanted {
        Some(w) => names
            .iter()
            .find(|n| n.as_str() == w)
            .cloned()
            .ok_or_else(|| SheetError::NoSheet {
                path: path.to_path_buf(),
                sheet: w.to_string(),
                found: names.clone(),
            })?,
        None => names
            .iter()
            .find(|n| n.to_lowercase().contains("flux"))
            .or(names.first())
            .cloned()
            .ok_or_else(|| SheetError::Empty {
                path: path.to_path_buf(),
            })?,
    };
    let range = book
        .worksheet_range(&chosen)
        .map_err(|e| fail(e.to_string()))?;
    let grid = range
        .rows()
        .map(|row| row.iter().map(cell_text).collect())
        .collect();
    Ok((chosen, grid))
}

/// A cell as text: whole numbers without a decimal part (a port read as
/// 2575.0 is 2575).
fn cell_text(cell: &calamine::Data) -> String {
    match cell {
        calamine::Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        calamine::Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// Which column feeds each field: the explicit `columns` (field →
/// header), then it-lanscape's guesses for the fields left.
pub fn mapping(
    headers: &[String],
    columns: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, usize>, SheetError> {
    let mut out = BTreeMap::new();
    for (field, column) in columns {
        let key = FIELDS
            .iter()
            .map(|f| f.0)
            .find(|k| k == field)
            .ok_or_else(|| SheetError::UnknownField {
                field: field.clone(),
            })?;
        let at = headers
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| SheetError::NoColumn {
                field: field.clone(),
                column: column.clone(),
                found: headers.to_vec(),
            })?;
        out.insert(key, at);
    }
    let lower: Vec<String> = headers.iter().map(|h| h.to_lowercase()).collect();
    for (key, probes) in FIELDS {
        if out.contains_key(key) {
            continue;
        }
        let guess = probes
            .iter()
            .find_map(|p| lower.iter().position(|h| h.contains(p)));
        if let Some(at) = guess {
            out.insert(key, at);
        }
    }
    Ok(out)
}

/// The flows of the sheet's rows, normalised as it-lanscape does
/// (trigrammes trimmed and in upper case, text trimmed, the port a number
/// or `null`); empty cells leave their field out.
pub fn flows(sheet: &Sheet, mapping: &BTreeMap<&'static str, usize>) -> Vec<Map<String, Value>> {
    sheet
        .rows
        .iter()
        .map(|row| {
            let mut flow = Map::new();
            for (key, at) in mapping {
                let Some(cell) = row.get(*at).filter(|c| !c.is_empty()) else {
                    continue;
                };
                let value = match *key {
                    "sourceTrigramme" | "targetTrigramme" => {
                        Value::from(cell.trim().to_uppercase())
                    }
                    "port" => port(cell),
                    "id" => Value::from(cell.clone()),
                    _ => Value::from(cell.trim()),
                };
                flow.insert((*key).to_string(), value);
            }
            flow
        })
        .collect()
}

/// JavaScript's `Number(text)` for a port: an integer, a decimal, or
/// `null` when the text is not a number.
fn port(text: &str) -> Value {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Value::from(n);
    }
    t.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn text_of(flow: &Map<String, Value>, key: &str) -> String {
    match flow.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Whether an incoming row is an existing flow: the same id when the row
/// has one, else the same `source|target|protocol|messageType`. (In
/// it-lanscape a row without id never matches a flow that has one, so
/// importing the same sheet twice doubles every flow.)
fn same_flow(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let id = text_of(new, "id");
    if !id.is_empty() {
        return text_of(old, "id") == id;
    }
    [
        "sourceTrigramme",
        "targetTrigramme",
        "protocol",
        "messageType",
    ]
    .iter()
    .all(|k| text_of(old, k) == text_of(new, k))
}

/// How an import meets the flows already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The sheet's flows replace the establishment's.
    Replace,
    /// A flow with the same key is updated field by field, others added.
    Merge,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: usize,
    pub updated: usize,
    pub total: usize,
}

/// The establishment's flows after the import. Flows without an id get
/// `PREFIX-IMP-NNNN` (it-lanscape draws a random one; a stable id keeps
/// nightly imports comparable); `eaiName` is `null` when not given.
pub fn import(
    existing: Vec<Map<String, Value>>,
    incoming: Vec<Map<String, Value>>,
    mode: Mode,
    prefix: &str,
) -> (Vec<Map<String, Value>>, Imported) {
    let mut merged: Vec<Map<String, Value>> = match mode {
        Mode::Replace => Vec::new(),
        Mode::Merge => existing,
    };
    let mut report = Imported::default();
    let mut next = 1;
    for mut flow in incoming {
        if let Some(old) = merged.iter_mut().find(|f| same_flow(f, &flow)) {
            // A field the sheet leaves empty keeps its value, the id too.
            let id = [&flow, &*old]
                .into_iter()
                .map(|f| text_of(f, "id"))
                .find(|id| !id.is_empty());
            old.extend(flow);
            if let Some(id) = id {
                old.insert("id".into(), Value::from(id));
            }
            report.updated += 1;
            continue;
        }
        flow.entry("eaiName").or_insert(Value::Null);
        if text_of(&flow, "id").is_empty() {
            let id = loop {
                let id = format!("{prefix}-IMP-{next:04}");
                next += 1;
                if !merged
                    .iter()
                    .any(|f| f.get("id").and_then(Value::as_str) == Some(&id))
                {
                    break id;
                }
            };
            flow.insert("id".into(), Value::from(id));
        }
        merged.push(flow);
        report.added += 1;
    }
    report.total = merged.len();
    (merged, report)
}

#[cfg(test)]
mod tests;
