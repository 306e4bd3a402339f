//! A rule's check of what it carries: `validate = "bed-availability"`,
//! with the ROR's referential, the indicators it accepts, the rules'
//! severities, and the form the document goes on in.
//!
//! The files are read when the config is (at start and at each reload),
//! so a broken referential is a config error, never a refused request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use guichet_ror::referential::{Indicators, Referential};
use guichet_ror::rules::{Context, Lang, Settings, Severity, Violation};
use guichet_ror::{Keep, Verdict};
use time::OffsetDateTime;

use super::error::SettingError;
use super::raw::RawRule;

/// The one validator: bed availability for the ROR.
pub const BED_AVAILABILITY: &str = "bed-availability";

/// How a rule checks its requests' bodies.
#[derive(Debug)]
pub struct Validation {
    /// The units the ROR knows; without it, units are not checked.
    pub referential: Option<Referential>,
    /// The indicator tuples the national ROR accepts.
    pub indicators: Option<Indicators>,
    pub settings: Settings,
    /// The form a valid document goes on in; as received when `None`.
    pub convert: Option<Convert>,
}

impl Validation {
    /// The rules' verdict on `bytes` now, messages in French; the
    /// document kept as `keep` says.
    pub fn judge(&self, bytes: &[u8], keep: Keep) -> Verdict {
        let context = Context {
            referential: self.referential.as_ref(),
            indicators: self.indicators.as_ref(),
            settings: &self.settings,
            now: OffsetDateTime::now_utc(),
            lang: Lang::Fr,
        };
        guichet_ror::validate_keeping(bytes, &context, keep)
    }

    /// [`Validation::judge`], on a blocking thread when `bytes` are many,
    /// so a large document never holds the runtime's other work. A check
    /// that fails is a violation: nothing unchecked goes on.
    pub async fn judge_apart(self: Arc<Self>, bytes: Bytes, keep: Keep) -> Verdict {
        if bytes.len() <= INLINE_BYTES {
            return self.judge(&bytes, keep);
        }
        match tokio::task::spawn_blocking(move || self.judge(&bytes, keep)).await {
            Ok(verdict) => verdict,
            Err(e) => Verdict {
                form: None,
                document: None,
                violations: vec![Violation {
                    code: "validator.failed",
                    severity: Severity::Error,
                    path: String::new(),
                    message: format!("the document could not be checked: {e}"),
                }],
            },
        }
    }
}

/// Documents larger than this are judged on a blocking thread.
const INLINE_BYTES: usize = 256 * 1024;

/// `convert`: the form forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// The ROR's FHIR `Bundle` (`application/fhir+json`).
    Fhir,
    /// guichet's XML form (`application/xml`).
    Xml,
    /// The national ROR's PATCH: per capacity record, `replace`, then
    /// `add` when the ROR does not hold it yet.
    Patch,
}

impl Convert {
    /// The word of the setting.
    pub fn as_str(self) -> &'static str {
        match self {
            Convert::Fhir => "fhir",
            Convert::Xml => "xml",
            Convert::Patch => "patch",
        }
    }
}

/// The rule's validation, if it asks for one; `dir` is the config's
/// folder, against which relative paths are read.
pub(super) fn validation(raw: &RawRule, dir: &Path) -> Result<Option<Validation>, SettingError> {
    let Some(validator) = raw.validate.as_deref() else {
        return match stray_setting(raw) {
            Some(field) => Err(SettingError::field(
                field,
                format!("only with validate = \"{BED_AVAILABILITY}\""),
            )),
            None => Ok(None),
        };
    };
    if validator != BED_AVAILABILITY {
        return Err(SettingError::field(
            "validate",
            format!("{validator:?} is not a validator; the one known is {BED_AVAILABILITY:?}"),
        ));
    }
    Ok(Some(Validation {
        referential: referential(raw, dir)?,
        indicators: indicators(raw, dir)?,
        settings: settings(raw, dir)?,
        convert: convert(raw)?,
    }))
}

/// A validation setting given without `validate`.
fn stray_setting(raw: &RawRule) -> Option<&'static str> {
    [
        ("referential", raw.referential.is_some()),
        ("rules", raw.rules.is_some()),
        ("indicators", raw.indicators.is_some()),
        ("convert", raw.convert.is_some()),
    ]
    .into_iter()
    .find_map(|(field, set)| set.then_some(field))
}

fn referential(raw: &RawRule, dir: &Path) -> Result<Option<Referential>, SettingError> {
    load(
        raw.referential.as_deref(),
        dir,
        "referential",
        Referential::read,
    )
}

fn indicators(raw: &RawRule, dir: &Path) -> Result<Option<Indicators>, SettingError> {
    load(
        raw.indicators.as_deref(),
        dir,
        "indicators",
        Indicators::from_csv,
    )
}

fn settings(raw: &RawRule, dir: &Path) -> Result<Settings, SettingError> {
    let parse = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => Settings::from_toml(text).map_err(|e| e.to_string()),
        Err(_) => Err("not UTF-8".to_string()),
    };
    Ok(load(raw.rules.as_deref(), dir, "rules", parse)?.unwrap_or_default())
}

/// The file the setting `field` names, if it names one, read against
/// `dir` and parsed by `parse`; errors name the setting and the file.
fn load<T, E: std::fmt::Display>(
    path: Option<&str>,
    dir: &Path,
    field: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<Option<T>, SettingError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let parsed = parse(&read(dir, path, field)?)
        .map_err(|e| SettingError::field(field, format!("{path}: {e}")))?;
    Ok(Some(parsed))
}

fn convert(raw: &RawRule) -> Result<Option<Convert>, SettingError> {
    match raw.convert.as_deref() {
        None => Ok(None),
        Some("fhir") => Ok(Some(Convert::Fhir)),
        Some("xml") => Ok(Some(Convert::Xml)),
        Some("patch") => Ok(Some(Convert::Patch)),
        Some(other) => Err(SettingError::field(
            "convert",
            format!("{other:?} is not a form; choose \"fhir\", \"xml\" or \"patch\""),
        )),
    }
}

/// A file the validation reads, at most 64 MiB.
fn read(dir: &Path, path: &str, field: &str) -> Result<Vec<u8>, SettingError> {
    let full: PathBuf = dir.join(path);
    let bytes = std::fs::read(&full)
        .map_err(|e| SettingError::field(field, format!("cannot read {}: {e}", full.display())))?;
    if bytes.len() > 64 * 1024 * 1024 {
        return Err(SettingError::field(
            field,
            format!("{} is over 64 MiB", full.display()),
        ));
    }
    Ok(bytes)
}
