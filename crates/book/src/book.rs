//! A book as written: `book.toml` (name, targets, defaults, concurrency)
//! and its cases, given as `[[case]]` tables, as files of `cases/` each
//! with its expectations in a `.toml` of the same name, or as a template
//! and a CSV of values (one case per row).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use crate::expect::Expect;
use crate::sink::Belongs;

/// A book, read and checked.
#[derive(Debug, Clone)]
pub struct Book {
    pub name: String,
    pub dir: PathBuf,
    pub concurrency: usize,
    /// Longest a case may take on one target.
    pub timeout: Duration,
    /// How long a sink must stay quiet before a case's emissions are
    /// counted (when no count is expected).
    pub settle: Duration,
    pub targets: BTreeMap<String, TargetSpec>,
    pub cases: Vec<Case>,
    /// Fields `test compare` leaves out, beside those always left out.
    pub ignore: Vec<String>,
}

/// A target as the book names it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `mllp://`, `mllps://`, `http://`, `https://` or `folder:///path`.
    pub url: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry; the URL's host when
    /// absent.
    pub server_name: Option<String>,
    /// HTTP: the method (POST when absent) and extra headers.
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A record file of `guichet sim ror --record` or `guichet listen
    /// --record` standing downstream of this target.
    pub sink: Option<PathBuf>,
}

impl TargetSpec {
    /// The same target, its files and a relative drop folder read against
    /// `dir` (the book's folder).
    pub fn within(&self, dir: &Path) -> TargetSpec {
        let file = |path: &Option<PathBuf>| path.as_ref().map(|p| dir.join(p));
        let url = match self.url.strip_prefix("folder://") {
            Some(path) if !path.starts_with('/') => {
                format!("folder://{}", dir.join(path).display())
            }
            _ => self.url.clone(),
        };
        TargetSpec {
            url,
            ca: file(&self.ca),
            cert: file(&self.cert),
            key: file(&self.key),
            sink: file(&self.sink),
            ..self.clone()
        }
    }
}

/// One case: a message and its expectations.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// Where its message came from, for reports.
    pub source: String,
    /// Shared with each request that sends it, not copied.
    pub body: Bytes,
    /// HTTP: the body's content type; guessed from the body when absent.
    pub content_type: Option<String>,
    /// The targets it runs against; every target of the book when empty.
    pub targets: Vec<String>,
    pub expect: Expect,
    /// Runs alone, after the cases before it and before those after it.
    pub sequence: bool,
    /// Which lines of a sink are this case's.
    pub belongs: Belongs,
    /// Why the new engine is meant to differ on this case (`test compare`).
    pub expect_difference: Option<String>,
}

/// Why a book cannot be run: the file and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct BookError {
    pub file: String,
    pub reason: String,
}

impl BookError {
    fn new(file: &Path, reason: impl Into<String>) -> BookError {
        BookError {
            file: file.display().to_string(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    name: Option<String>,
    concurrency: Option<usize>,
    timeout: Option<String>,
    settle: Option<String>,
    #[serde(default)]
    targets: BTreeMap<String, TargetSpec>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    case: Vec<toml::Table>,
    #[serde(default)]
    normalise: RawNormalise,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNormalise {
    /// HL7 paths (`PID-7`, a whole segment `ZBE`) or JSON paths
    /// (`$.meta`, any key of a name `$..id`) left out of comparisons.
    #[serde(default)]
    ignore: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    content_type: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
}

/// One `[[case]]` (or a case's `.toml`), once its `{{column}}`s are
/// filled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    /// The message, relative to the book.
    file: Option<PathBuf>,
    /// The message inline.
    body: Option<String>,
    /// A message with `{{column}}`s, filled from each row of `data`.
    template: Option<PathBuf>,
    /// Read from the table before it is parsed (one case per row).
    #[serde(rename = "data")]
    _data: Option<PathBuf>,
    content_type: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    sequence: bool,
    #[serde(default)]
    expect: Expect,
    expect_difference: Option<String>,
}

impl Book {
    /// Reads the book in `dir`.
    pub fn load(dir: &Path) -> Result<Book, BookError> {
        let file = dir.join("book.toml");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| BookError::new(&file, format!("cannot be read: {e}")))?;
        let raw: RawBook =
            toml::from_str(&text).map_err(|e| BookError::new(&file, e.to_string()))?;
        let duration = |value: Option<&str>, field: &str, default| match value {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v)
                .map_err(|e| BookError::new(&file, format!("{field}: {v:?}: {e}"))),
        };
        let mut book = Book {
            name: raw.name.clone().unwrap_or_else(|| folder_name(dir)),
            dir: dir.to_path_buf(),
            concurrency: raw.concurrency.unwrap_or(4).clamp(1, 256),
            timeout: duration(raw.timeout.as_deref(), "timeout", Duration::from_secs(10))?,
            settle: duration(raw.settle.as_deref(), "settle", Duration::from_millis(500))?,
            targets: raw
                .targets
                .iter()
                .map(|(name, spec)| (name.clone(), spec.within(dir)))
                .collect(),
            cases: Vec::new(),
            ignore: raw.normalise.ignore.clone(),
        };
        for (i, table) in raw.case.iter().enumerate() {
            let at = format!("{} [[case]] {}", file.display(), i + 1);
            book.read_cases(table, &at, &raw.defaults)?;
        }
        book.discover(&raw.defaults)?;
        book.check_targets(&file)?;
        Ok(book)
    }

    /// Cases of a `[[case]]` table: one, or one per row of its data.
    fn read_cases(
        &mut self,
        table: &toml::Table,
        at: &str,
        defaults: &RawDefaults,
    ) -> Result<(), BookError> {
        let data = table.get("data").and_then(toml::Value::as_str);
        let Some(data) = data else {
            let case = self.case(parse_case(table, at)?, at, defaults, None)?;
            self.cases.push(case);
            return Ok(());
        };
        for (row, values) in read_rows(&self.dir.join(data))?.into_iter().enumerate() {
            let at = format!("{at}, {data} row {}", row + 2);
            let filled = fill_table(table, &values, &at)?;
            let case = self.case(parse_case(&filled, &at)?, &at, defaults, Some(&values))?;
            self.cases.push(case);
        }
        Ok(())
    }

    fn case(
        &self,
        raw: RawCase,
        at: &str,
        defaults: &RawDefaults,
        values: Option<&BTreeMap<String, String>>,
    ) -> Result<Case, BookError> {
        let bad = |reason: String| BookError {
            file: at.to_string(),
            reason,
        };
        let (body, source) = match (&raw.file, &raw.body, &raw.template) {
            (Some(file), None, None) => (self.read(file, at)?, file.display().to_string()),
            (None, Some(body), None) => (body.clone().into_bytes(), "inline".to_string()),
            (None, None, Some(template)) => {
                let text = String::from_utf8(self.read(template, at)?)
                    .map_err(|_| bad(format!("{}: not UTF-8", template.display())))?;
                let filled = match values {
                    Some(values) => fill(&text, values).map_err(bad)?,
                    None => return Err(bad("a template needs `data` (a CSV of values)".into())),
                };
                (filled.into_bytes(), template.display().to_string())
            }
            _ => return Err(bad("give one of file, body or template (with data)".into())),
        };
        raw.expect.check_paths().map_err(bad)?;
        Ok(Case {
            belongs: belongs(&body),
            name: raw.name.unwrap_or_else(|| source.clone()),
            source,
            body: Bytes::from(body),
            content_type: raw.content_type.or_else(|| defaults.content_type.clone()),
            targets: if raw.targets.is_empty() {
                defaults.targets.clone()
            } else {
                raw.targets
            },
            expect: raw.expect,
            sequence: raw.sequence,
            expect_difference: raw.expect_difference,
        })
    }

    fn read(&self, file: &Path, at: &str) -> Result<Vec<u8>, BookError> {
        let path = self.dir.join(file);
        std::fs::read(&path).map_err(|e| BookError {
            file: at.to_string(),
            reason: format!("{}: cannot be read: {e}", path.display()),
        })
    }

    /// The files of `cases/`, each with its expectations in the `.toml` of
    /// the same name beside it.
    fn discover(&mut self, defaults: &RawDefaults) -> Result<(), BookError> {
        let folder = self.dir.join("cases");
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return Ok(());
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "toml"))
            .collect();
        files.sort();
        for path in files {
            let expectations = path.with_extension("toml");
            let text = std::fs::read_to_string(&expectations).map_err(|_| {
                BookError::new(
                    &path,
                    format!("no expectations: write {}", expectations.display()),
                )
            })?;
            let at = expectations.display().to_string();
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| BookError::new(&expectations, e.to_string()))?;
            let mut raw = parse_case(&table, &at)?;
            let relative = path.strip_prefix(&self.dir).unwrap_or(&path).to_path_buf();
            raw.name = raw
                .name
                .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
            raw.file = Some(relative);
            let case = self.case(raw, &at, defaults, None)?;
            self.cases.push(case);
        }
        Ok(())
    }

    /// Every target a case names exists.
    fn check_targets(&self, file: &Path) -> Result<(), BookError> {
        for case in &self.cases {
            if let Some(unknown) = case.targets.iter().find(|t| !self.targets.contains_key(*t)) {
                return Err(BookError::new(
                    file,
                    format!("case {:?}: no target {unknown:?} in [targets]", case.name),
                ));
            }
        }
        Ok(())
    }

    /// The targets `case` runs against.
    pub fn targets_of<'a>(&'a self, case: &'a Case) -> Vec<&'a str> {
        match case.targets.is_empty() {
            true => self.targets.keys().map(String::as_str).collect(),
            false => case.targets.iter().map(String::as_str).collect(),
        }
    }
}

/// How a case's emissions are told apart: an HL7 message by its MSH-10,
/// a bed-availability document by its units; anything else by time.
fn belongs(body: &[u8]) -> Belongs {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body[start..].starts_with(b"MSH") {
        let path = "MSH-10".parse::<guichet_hl7::FieldPath>();
        let message = guichet_hl7::Message::parse_with(body, guichet_hl7::ParseOptions::lenient());
        if let (Ok(path), Ok(message)) = (path, message) {
            if let Some(id) = message.at(&path).filter(|f| !f.is_empty()) {
                return Belongs::ControlId(String::from_utf8_lossy(id.raw()).into_owned());
            }
        }
        return Belongs::Window;
    }
    match guichet_ror::read(body).1 {
        Ok(document) if !document.units.is_empty() => {
            let site = document.id_nat_struct().unwrap_or_default();
            Belongs::Units(
                document
                    .units
                    .iter()
                    .map(|u| format!("{site}/{}", u.id.value))
                    .collect(),
            )
        }
        _ => Belongs::Window,
    }
}

fn folder_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "book".into())
}

fn parse_case(table: &toml::Table, at: &str) -> Result<RawCase, BookError> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| BookError {
            file: at.to_string(),
            reason: e.to_string(),
        })
}

/// The rows of a CSV, by column name.
fn read_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>, BookError> {
    let text =
        std::fs::read(path).map_err(|e| BookError::new(path, format!("cannot be read: {e}")))?;
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| BookError::new(path, e.to_string()))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| BookError::new(path, e.to_string()))?;
        rows.push(
            headers
                .iter()
                .map(String::from)
                .zip(record.iter().map(String::from))
                .collect(),
        );
    }
    Ok(rows)
}

/// `text` with each `{{column}}` replaced by the row's value; a column the
/// row lacks is an error.
fn fill(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("a `{{` without its `}}`")?;
        let column = after[..end].trim();
        let value = values
            .get(column)
            .ok_or_else(|| format!("no column {column:?} in the data"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A `[[case]]` table with its strings filled from a row (`data` and
/// `template` name files: left as they are).
fn fill_table(
    table: &toml::Table,
    values: &BTreeMap<String, String>,
    at: &str,
) -> Result<toml::Table, BookError> {
    let mut filled = toml::Table::new();
    for (key, value) in table {
        let value = match key.as_str() {
            "data" | "template" => value.clone(),
            _ => fill_value(value, values).map_err(|reason| BookError {
                file: at.to_string(),
                reason,
            })?,
        };
        filled.insert(key.clone(), value);
    }
    Ok(filled)
}

fn fill_value(
    value: &toml::Value,
    values: &BTreeMap<String, String>,
) -> Result<toml::Value, String> {
    Ok(match value {
        toml::Value::String(text) => toml::Value::String(fill(text, values)?),
        toml::Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|v| fill_value(v, values))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut filled = toml::Table::new();
            for (k, v) in table {
                filled.insert(k.clone(), fill_value(v, values)?);
            }
            toml::Value::Table(filled)
        }
        other => other.clone(),
    })
}
