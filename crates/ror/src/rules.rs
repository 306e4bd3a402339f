//! The rules a bed-availability document must meet, each with a stable
//! code, a default severity a site may change (or turn off) in a TOML
//! file, and messages in French (the default) and English.
//!
//! ```toml
//! stale_after = "24h"       # date.stale: older capacity updates
//! future_tolerance = "5m"   # date.future: clocks drift
//! [severity]
//! "finess.key" = "warning"
//! "code.deprecated" = "error"
//! "counts.inconsistent" = "off"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::codes::{self, Kind, Slice};
use crate::finess::Finess;
use crate::model::{Capacity, Document, Field, Path, Unit, Value};
use crate::referential::{tuple, Indicators, Referential};

/// How much a broken rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is refused.
    Error,
    /// Reported; the document goes on.
    Warning,
    /// Not checked.
    Off,
}

/// One rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub code: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

const fn rule(code: &'static str, severity: Severity, summary: &'static str) -> Rule {
    Rule {
        code,
        severity,
        summary,
    }
}

/// Every rule, with its default severity.
pub const RULES: [Rule; 18] = [
    rule(
        "xml.invalid",
        Severity::Error,
        "not well-formed XML, or not guichet's XML form",
    ),
    rule(
        "json.invalid",
        Severity::Error,
        "not JSON, or not a Bundle or Location of the ROR",
    ),
    rule(
        "finess.format",
        Severity::Error,
        "a FINESS that is not 9 characters of the right kind",
    ),
    rule(
        "finess.key",
        Severity::Error,
        "a FINESS whose check key (Luhn, A=1, B=2) is wrong",
    ),
    rule(
        "establishment.unknown",
        Severity::Error,
        "a FINESS EG the referential does not know",
    ),
    rule(
        "unit.unknown",
        Severity::Error,
        "a unit the referential does not know for the establishment",
    ),
    rule(
        "unit.ambiguous",
        Severity::Error,
        "a unit the referential names more than once",
    ),
    rule("capacity.negative", Severity::Error, "a negative count"),
    rule(
        "slice.missing",
        Severity::Error,
        "a 1..1 slice of the capacity extension is absent",
    ),
    rule(
        "code.unknown",
        Severity::Error,
        "a code outside the ROR's value set for its slice",
    ),
    rule(
        "code.deprecated",
        Severity::Warning,
        "a code the ANS withdrew from exchanges (R330 07, R332 03)",
    ),
    rule(
        "record.duplicate",
        Severity::Error,
        "the same indicator and capacity type twice for a unit",
    ),
    rule(
        "indicator.invalid",
        Severity::Error,
        "an indicator tuple not in the given list",
    ),
    rule(
        "counts.inconsistent",
        Severity::Warning,
        "occupied + available + reserved + closed > installed + supplementary",
    ),
    rule(
        "date.invalid",
        Severity::Error,
        "a date that is not an ISO 8601 date and time with its offset",
    ),
    rule("date.future", Severity::Error, "a date later than now"),
    rule(
        "date.stale",
        Severity::Warning,
        "a capacity updated longer ago than allowed",
    ),
    rule(
        "document.empty",
        Severity::Warning,
        "a document without any capacity",
    ),
];

/// The language of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

/// Severities and limits, from the defaults or a rules file.
#[derive(Debug, Clone)]
pub struct Settings {
    levels: HashMap<&'static str, Severity>,
    /// `date.stale`: a capacity update older than this.
    pub stale_after: Duration,
    /// `date.future`: a date later than now by more than this.
    pub future_tolerance: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            levels: RULES.iter().map(|r| (r.code, r.severity)).collect(),
            stale_after: Duration::from_secs(24 * 3600),
            future_tolerance: Duration::from_secs(5 * 60),
        }
    }
}

/// Why a rules file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Toml(String),
    #[error("`{0}` is not a rule; the rules are: {1}")]
    UnknownRule(String, String),
    #[error("`{0}` is always an error: a document that cannot be read cannot be checked")]
    Fixed(String),
    #[error("{field}: {reason}")]
    Duration { field: &'static str, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    stale_after: Option<String>,
    future_tolerance: Option<String>,
    #[serde(default)]
    severity: BTreeMap<String, Severity>,
}

impl Settings {
    /// Reads a rules file (see the module's documentation).
    pub fn from_toml(text: &str) -> Result<Settings, SettingsError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| SettingsError::Toml(e.to_string()))?;
        let mut settings = Settings::default();
        for (code, severity) in file.severity {
            let Some(rule) = RULES.iter().find(|r| r.code == code) else {
                let all: Vec<&str> = RULES.iter().map(|r| r.code).collect();
                return Err(SettingsError::UnknownRule(code, all.join(", ")));
            };
            if matches!(rule.code, "xml.invalid" | "json.invalid") && severity != Severity::Error {
                return Err(SettingsError::Fixed(code));
            }
            settings.levels.insert(rule.code, severity);
        }
        let duration = |field, text: Option<String>, default| match text {
            None => Ok(default),
            Some(text) => humantime::parse_duration(&text).map_err(|e| SettingsError::Duration {
                field,
                reason: e.to_string(),
            }),
        };
        settings.stale_after = duration("stale_after", file.stale_after, settings.stale_after)?;
        settings.future_tolerance = duration(
            "future_tolerance",
            file.future_tolerance,
            settings.future_tolerance,
        )?;
        Ok(settings)
    }

    /// The severity of `code`.
    pub fn severity(&self, code: &str) -> Severity {
        self.levels.get(code).copied().unwrap_or(Severity::Error)
    }
}

/// A broken rule, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub code: &'static str,
    pub severity: Severity,
    /// An XPath or JSON path into the document, or `line L, column C`.
    pub path: String,
    pub message: String,
}

/// What the rules are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub referential: Option<&'a Referential>,
    pub indicators: Option<&'a Indicators>,
    pub settings: &'a Settings,
    pub now: OffsetDateTime,
    pub lang: Lang,
}

/// What was found, before it becomes a message in one language.
#[derive(Debug, Clone)]
pub enum Finding {
    Unreadable {
        code: &'static str,
        reason: String,
    },
    FinessFormat {
        which: &'static str,
        value: String,
        reason: String,
    },
    FinessKey {
        which: &'static str,
        value: String,
    },
    EstablishmentUnknown {
        finess: String,
    },
    UnitUnknown {
        unit: String,
        finess: String,
    },
    UnitAmbiguous {
        unit: String,
        rows: usize,
    },
    CapacityNegative {
        count: i64,
    },
    SliceMissing {
        slice: &'static str,
    },
    CodeUnknown {
        slice: &'static str,
        code: String,
        value_set: &'static str,
    },
    CodeDeprecated {
        slice: &'static str,
        code: String,
        label: &'static str,
    },
    RecordDuplicate {
        first: String,
    },
    IndicatorInvalid {
        tuple: String,
    },
    CountsInconsistent {
        used: i64,
        offered: i64,
        group: String,
    },
    DateInvalid {
        text: String,
    },
    DateFuture {
        text: String,
    },
    DateStale {
        text: String,
        hours: i64,
    },
    DocumentEmpty,
}

impl Finding {
    pub fn code(&self) -> &'static str {
        match self {
            Finding::Unreadable { code, .. } => code,
            Finding::FinessFormat { .. } => "finess.format",
            Finding::FinessKey { .. } => "finess.key",
            Finding::EstablishmentUnknown { .. } => "establishment.unknown",
            Finding::UnitUnknown { .. } => "unit.unknown",
            Finding::UnitAmbiguous { .. } => "unit.ambiguous",
            Finding::CapacityNegative { .. } => "capacity.negative",
            Finding::SliceMissing { .. } => "slice.missing",
            Finding::CodeUnknown { .. } => "code.unknown",
            Finding::CodeDeprecated { .. } => "code.deprecated",
            Finding::RecordDuplicate { .. } => "record.duplicate",
            Finding::IndicatorInvalid { .. } => "indicator.invalid",
            Finding::CountsInconsistent { .. } => "counts.inconsistent",
            Finding::DateInvalid { .. } => "date.invalid",
            Finding::DateFuture { .. } => "date.future",
            Finding::DateStale { .. } => "date.stale",
            Finding::DocumentEmpty => "document.empty",
        }
    }

    /// The message, in `lang`. It quotes codes, identifiers and dates of
    /// the document, never anything about a patient (there is none here).
    pub fn message(&self, lang: Lang) -> String {
        match lang {
            Lang::Fr => self.in_french(),
            Lang::En => self.in_english(),
        }
    }

    fn in_french(&self) -> String {
        match self {
            Finding::Unreadable { reason, .. } => format!("document illisible : {reason}"),
            Finding::FinessFormat { which, value, reason } => format!("FINESS {which} « {value} » mal formé : {reason}"),
            Finding::FinessKey { which, value } => format!("FINESS {which} {value} : clé de contrôle incorrecte"),
            Finding::EstablishmentUnknown { finess } => format!("établissement {finess} absent du référentiel"),
            Finding::UnitUnknown { unit, finess } => format!("unité {unit} inconnue pour l'établissement {finess}"),
            Finding::UnitAmbiguous { unit, rows } => format!("unité {unit} présente {rows} fois dans le référentiel"),
            Finding::CapacityNegative { count } => format!("nombre négatif : {count}"),
            Finding::SliceMissing { slice } => format!("{slice} obligatoire (1..1) absent"),
            Finding::CodeUnknown { slice, code, value_set } => format!("{slice} : code « {code} » hors du jeu de valeurs {value_set}"),
            Finding::CodeDeprecated { slice, code, label } => format!("{slice} : code {code} ({label}) retiré des échanges par l'ANS"),
            Finding::RecordDuplicate { first } => format!("même indicateur et même nature de capacité que {first}"),
            Finding::IndicatorInvalid { tuple } => format!("indicateur non reconnu : {tuple}"),
            Finding::CountsInconsistent { used, offered, group } => format!("occupés + disponibles + réservés + fermés = {used} > installés + supplémentaires = {offered} ({group})"),
            Finding::DateInvalid { text } => format!("« {text} » n'est pas une date et heure ISO 8601 avec fuseau (2026-12-05T09:58:00+01:00)"),
            Finding::DateFuture { text } => format!("date {text} dans le futur"),
            Finding::DateStale { text, hours } => format!("capacité mise à jour le {text}, il y a {hours} h"),
            Finding::DocumentEmpty => "aucune capacité dans le document".to_string(),
        }
    }

    fn in_english(&self) -> String {
        match self {
            Finding::Unreadable { reason, .. } => format!("unreadable document: {reason}"),
            Finding::FinessFormat { which, value, reason } => format!("FINESS {which} `{value}` is malformed: {reason}"),
            Finding::FinessKey { which, value } => format!("FINESS {which} {value}: wrong check key"),
            Finding::EstablishmentUnknown { finess } => format!("establishment {finess} is not in the referential"),
            Finding::UnitUnknown { unit, finess } => format!("unit {unit} is unknown for establishment {finess}"),
            Finding::UnitAmbiguous { unit, rows } => format!("unit {unit} is in the referential {rows} times"),
            Finding::CapacityNegative { count } => format!("negative count: {count}"),
            Finding::SliceMissing { slice } => format!("{slice} (1..1) is missing"),
            Finding::CodeUnknown { slice, code, value_set } => format!("{slice}: code `{code}` is not in value set {value_set}"),
            Finding::CodeDeprecated { slice, code, label } => format!("{slice}: code {code} ({label}) was withdrawn from exchanges by the ANS"),
            Finding::RecordDuplicate { first } => format!("same indicator and capacity type as {first}"),
            Finding::IndicatorInvalid { tuple } => format!("not a valid indicator: {tuple}"),
            Finding::CountsInconsistent { used, offered, group } => format!("occupied + available + reserved + closed = {used} > installed + supplementary = {offered} ({group})"),
            Finding::DateInvalid { text } => format!("`{text}` is not an ISO 8601 date and time with offset (2026-12-05T09:58:00+01:00)"),
            Finding::DateFuture { text } => format!("date {text} is in the future"),
            Finding::DateStale { text, hours } => format!("capacity updated at {text}, {hours} h ago"),
            Finding::DocumentEmpty => "the document holds no capacity".to_string(),
        }
    }
}

/// Collects findings as violations, leaving out rules that are off.
struct Report<'a> {
    context: &'a Context<'a>,
    violations: Vec<Violation>,
}

impl Report<'_> {
    fn add(&mut self, at: &Path, finding: Finding) {
        let code = finding.code();
        let severity = self.context.settings.severity(code);
        if severity == Severity::Off {
            return;
        }
        self.violations.push(Violation {
            code,
            severity,
            path: at.to_string(),
            message: finding.message(self.context.lang),
        });
    }

    fn on(&self, code: &str) -> bool {
        self.context.settings.severity(code) != Severity::Off
    }
}

/// The violation for a document that could not be read: always an
/// error, whatever the settings (what cannot be read cannot be checked).
pub fn unreadable(
    code: &'static str,
    path: String,
    reason: String,
    context: &Context<'_>,
) -> Violation {
    let finding = Finding::Unreadable { code, reason };
    Violation {
        code,
        severity: Severity::Error,
        path,
        message: finding.message(context.lang),
    }
}

/// Every rule `document` breaks, in document order.
pub fn check(document: &Document, context: &Context<'_>) -> Vec<Violation> {
    let mut report = Report {
        context,
        violations: Vec::new(),
    };
    let establishment = &document.establishment;
    let site = establishment
        .finess_eg
        .as_ref()
        .and_then(|eg| finess(&mut report, "EG", eg));
    if let Some(ej) = &establishment.finess_ej {
        finess(&mut report, "EJ", ej);
    }
    if let Some(time) = &document.time {
        date(&mut report, &time.value, &time.at, false);
    }
    let known_site = match (site, context.referential) {
        (Some(site), Some(referential)) if !referential.knows(site.as_str()) => {
            let at = &establishment
                .finess_eg
                .as_ref()
                .map(|f| f.at.clone())
                .unwrap_or_default();
            report.add(
                at,
                Finding::EstablishmentUnknown {
                    finess: site.to_string(),
                },
            );
            None
        }
        (site, _) => site,
    };
    for unit in &document.units {
        check_unit(&mut report, unit, known_site.as_ref());
    }
    if document.units.iter().all(|u| u.capacities.is_empty()) {
        report.add(&document.at, Finding::DocumentEmpty);
    }
    report.violations
}

/// The FINESS, when its format is right (its key checked too).
fn finess(report: &mut Report<'_>, which: &'static str, field: &Field<String>) -> Option<Finess> {
    match Finess::parse(&field.value) {
        Ok(number) => {
            if !number.key_is_valid() {
                let value = number.to_string();
                report.add(&field.at, Finding::FinessKey { which, value });
            }
            Some(number)
        }
        Err(e) => {
            let (value, reason) = (field.value.clone(), e.to_string());
            report.add(
                &field.at,
                Finding::FinessFormat {
                    which,
                    value,
                    reason,
                },
            );
            None
        }
    }
}

fn check_unit(report: &mut Report<'_>, unit: &Unit, site: Option<&Finess>) {
    if let (Some(site), Some(referential)) = (site, report.context.referential) {
        let rows = referential.unit(site.as_str(), &unit.id.value).len();
        let id = || unit.id.value.clone();
        match rows {
            1 => {}
            0 => {
                let finess = site.to_string();
                report.add(&unit.id.at, Finding::UnitUnknown { unit: id(), finess });
            }
            rows => report.add(&unit.id.at, Finding::UnitAmbiguous { unit: id(), rows }),
        }
    }
    // Keyed by borrowed codes: a record's indicator is compared, not kept.
    type Key<'u> = (Option<&'u str>, [Option<&'u str>; codes::INDICATOR.len()]);
    let mut seen: BTreeMap<Key<'_>, &Path> = BTreeMap::new();
    for capacity in &unit.capacities {
        check_capacity(report, capacity);
        let key = (
            capacity.code(&codes::CAPACITY_TYPE),
            codes::INDICATOR.map(|slice| capacity.code(slice)),
        );
        if let Some(indicators) = report.context.indicators {
            let owned = tuple(capacity);
            if report.on("indicator.invalid") && !indicators.contains(&owned) {
                let tuple = describe(&owned);
                report.add(&capacity.at, Finding::IndicatorInvalid { tuple });
            }
        }
        match seen.get(&key) {
            Some(first) => {
                let first = first.to_string();
                report.add(&capacity.at, Finding::RecordDuplicate { first });
            }
            None => {
                seen.insert(key, &capacity.at);
            }
        }
    }
    if report.on("counts.inconsistent") {
        counts(report, unit);
    }
}

fn check_capacity(report: &mut Report<'_>, capacity: &Capacity) {
    for (slice, value) in capacity.each() {
        match value {
            None if slice.required => {
                report.add(&capacity.at, Finding::SliceMissing { slice: slice.name });
            }
            None => {}
            Some(field) => check_value(report, slice, field),
        }
    }
}

fn check_value(report: &mut Report<'_>, slice: &'static Slice, field: &Field<Value>) {
    match (&field.value, slice.kind) {
        (Value::Integer(count), _) if *count < 0 => {
            report.add(&field.at, Finding::CapacityNegative { count: *count });
        }
        (Value::Code(code), Kind::Coded) => match slice.code(code) {
            Some(known) if known.deprecated => {
                let (code, label) = (code.to_string(), known.label);
                report.add(
                    &field.at,
                    Finding::CodeDeprecated {
                        slice: slice.name,
                        code,
                        label,
                    },
                );
            }
            Some(known) if known.accepted => {}
            _ => {
                let (code, value_set) = (code.to_string(), slice.value_set);
                report.add(
                    &field.at,
                    Finding::CodeUnknown {
                        slice: slice.name,
                        code,
                        value_set,
                    },
                );
            }
        },
        (Value::DateTime(text), _) => date(report, text, &field.at, true),
        _ => {}
    }
}

/// Checks a date: readable, not in the future, and (for a capacity
/// update) not stale.
fn date(report: &mut Report<'_>, text: &str, at: &Path, capacity: bool) {
    let Ok(when) = OffsetDateTime::parse(text, &Rfc3339) else {
        let text = text.to_string();
        report.add(at, Finding::DateInvalid { text });
        return;
    };
    let settings = report.context.settings;
    let now = report.context.now;
    if when > now + settings.future_tolerance {
        let text = text.to_string();
        report.add(at, Finding::DateFuture { text });
    } else if capacity && now - when > settings.stale_after {
        let (text, hours) = (text.to_string(), (now - when).whole_hours());
        report.add(at, Finding::DateStale { text, hours });
    }
}

/// Per capacity type, temporality, gender and assignment: what is used
/// (occupied, available, reserved, closed) may not exceed what is offered
/// (installed, supplementary). Only where an installed count is given.
fn counts(report: &mut Report<'_>, unit: &Unit) {
    type Group<'u> = [Option<&'u str>; 4];
    let mut totals: BTreeMap<Group<'_>, (i64, i64, bool)> = BTreeMap::new();
    for capacity in &unit.capacities {
        let (Some(status), Some(count)) =
            (capacity.code(&codes::CAPACITY_STATUS), capacity.count())
        else {
            continue;
        };
        let group = [
            capacity.code(&codes::CAPACITY_TYPE),
            capacity.code(&codes::TEMPORALITY),
            capacity.code(&codes::GENDER),
            capacity.code(&codes::TEMPORARY_ASSIGNMENT),
        ];
        let entry = totals.entry(group).or_default();
        match status {
            "02" | "03" | "04" | "05" => entry.0 += count,
            "01" => {
                entry.1 += count;
                entry.2 = true;
            }
            "06" => entry.1 += count,
            _ => {}
        }
    }
    for (group, (used, offered, installed)) in totals {
        if installed && used > offered {
            let names = [
                "capacityType",
                "temporalityCapacity",
                "genderCapacityAvailable",
                "temporaryAssignement",
            ];
            let group = names
                .iter()
                .zip(group)
                .filter_map(|(name, code)| code.map(|c| format!("{name}={c}")))
                .collect::<Vec<_>>()
                .join(", ");
            report.add(
                &unit.at,
                Finding::CountsInconsistent {
                    used,
                    offered,
                    group,
                },
            );
        }
    }
}

/// An indicator tuple, for a message.
fn describe(tuple: &crate::referential::Tuple) -> String {
    codes::INDICATOR
        .iter()
        .zip(tuple)
        .map(|(slice, code)| format!("{}={}", slice.name, code.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(", ")
}

mod clean;

pub(crate) use clean::clean;

#[cfg(test)]
mod tests;
