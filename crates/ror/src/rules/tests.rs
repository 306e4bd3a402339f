use time::macros::datetime;

use super::*;
use crate::fhir::{self, Coding};
use crate::{validate, xml, Verdict};

const SAMPLE: &str = crate::xml::tests::SAMPLE;

fn referential() -> Referential {
    Referential::read(
        b"finess_eg,unit_id,label\n350054680,SSR38888,SSR\n350054680,TWICE,A\n350054680,TWICE,B\n",
    )
    .unwrap()
}

fn indicators() -> Indicators {
    let text = "capacityStatus,temporalityCapacity,genderCapacityAvailable,capacityClosingType,additionalBedType,crisisType,temporaryAssignement\n\
        02,01,01,,,,01\n01,01,01,,,,01\n03,01,01,,,,01\n";
    Indicators::from_csv(text.as_bytes()).unwrap()
}

/// `text` checked as XML and, converted, as FHIR and as a batch of
/// PATCH (when it reads as XML).
fn verdicts(text: &str, lang: Lang) -> Vec<Verdict> {
    let (referential, indicators, settings) = (referential(), indicators(), Settings::default());
    let context = Context {
        referential: Some(&referential),
        indicators: Some(&indicators),
        settings: &settings,
        now: datetime!(2026-12-05 10:00 +01:00),
        lang,
    };
    let mut verdicts = vec![validate(text.as_bytes(), &context)];
    if let Ok(doc) = xml::read(text.as_bytes()) {
        let json = fhir::write(&doc, Coding::default()).to_string();
        verdicts.push(validate(json.as_bytes(), &context));
        let batch = crate::patch::write(&doc, Coding::Code).to_string();
        verdicts.push(validate(batch.as_bytes(), &context));
    }
    verdicts
}

fn codes(verdict: &Verdict) -> Vec<&'static str> {
    verdict.violations.iter().map(|v| v.code).collect()
}

#[test]
fn the_sample_breaks_no_rule_in_either_form() {
    let verdicts = verdicts(SAMPLE, Lang::Fr);
    assert_eq!(verdicts.len(), 3);
    for verdict in verdicts {
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert!(verdict.valid());
    }
}

/// Each rule, broken once, in each form: its code, its severity, and a
/// path into the document.
#[test]
fn each_rule_is_reported_with_its_code_and_where() {
    let capacity = "<capacity>\n      <capacityType>01</capacityType>";
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("finess.format", SAMPLE.replace("finessEg=\"350054680\"", "finessEg=\"35005468\""), Some("@finessEg")),
        ("finess.key", SAMPLE.replace("finessEj=\"350000014\"", "finessEj=\"350000015\""), Some("@finessEj")),
        ("establishment.unknown", SAMPLE.replace("350054680", "750712184"), Some("@finessEg")),
        ("unit.unknown", SAMPLE.replace("SSR38888", "SSR99"), None),
        ("unit.ambiguous", SAMPLE.replace("SSR38888", "TWICE"), None),
        ("capacity.negative", SAMPLE.replace("<nbCapacity>12<", "<nbCapacity>-3<"), Some("nbCapacity")),
        ("slice.missing", SAMPLE.replace("<temporaryAssignement>01</temporaryAssignement>", ""), None),
        ("code.unknown", SAMPLE.replace("<capacityStatus>02<", "<capacityStatus>09<"), Some("capacityStatus")),
        ("code.deprecated", SAMPLE.replace("<genderCapacityAvailable>01<", "<genderCapacityAvailable>03<"), Some("genderCapacityAvailable")),
        ("record.duplicate", SAMPLE.replace("</capacity>", &format!("</capacity>\n    {}", &SAMPLE[SAMPLE.find("<capacity>").unwrap()..SAMPLE.find("</capacity>").unwrap() + 11])), None),
        ("indicator.invalid", SAMPLE.replace("<capacityStatus>02<", "<capacityStatus>05<"), None),
        ("counts.inconsistent", SAMPLE.replace(capacity, &format!(
            "<capacity><capacityType>01</capacityType><capacityStatus>01</capacityStatus><temporalityCapacity>01</temporalityCapacity><nbCapacity>10</nbCapacity><capacitySourceType>02</capacitySourceType><genderCapacityAvailable>01</genderCapacityAvailable><capacityUpdateDate>2026-12-05T09:58:00+01:00</capacityUpdateDate><temporaryAssignement>01</temporaryAssignement></capacity>\n    {capacity}"
        )), None),
        ("date.invalid", SAMPLE.replace("2026-12-05T09:58:00+01:00", "05/12/2026 09:58"), Some("capacityUpdateDate")),
        ("date.future", SAMPLE.replace("2026-12-05T09:58:00+01:00", "2026-12-06T09:58:00+01:00"), Some("capacityUpdateDate")),
        ("date.stale", SAMPLE.replace("2026-12-05T09:58:00+01:00", "2026-12-01T09:58:00+01:00"), Some("capacityUpdateDate")),
        ("document.empty", SAMPLE.replace(&SAMPLE[SAMPLE.find("<capacity>").unwrap()..SAMPLE.find("</capacity>").unwrap() + 11], ""), None),
    ];
    for (code, text, at) in &cases {
        let verdicts = verdicts(text, Lang::En);
        assert_eq!(verdicts.len(), 3, "{code}: the XML must read");
        for (form, verdict) in ["xml", "fhir", "patch"].iter().zip(&verdicts) {
            let found: Vec<_> = verdict
                .violations
                .iter()
                .filter(|v| v.code == *code)
                .collect();
            assert!(
                !found.is_empty(),
                "{code} in {form}: {:?}",
                verdict.violations
            );
            let violation = found[0];
            let default = RULES.iter().find(|r| r.code == *code).unwrap().severity;
            assert_eq!(violation.severity, default, "{code}");
            let want_prefix = if *form == "xml" {
                "/bedAvailability"
            } else {
                "$"
            };
            assert!(
                violation.path.starts_with(want_prefix),
                "{code} {form}: {}",
                violation.path
            );
            if let (Some(at), "xml") = (at, *form) {
                assert!(violation.path.ends_with(at), "{code}: {}", violation.path);
            }
            assert!(!violation.message.is_empty());
        }
    }
    let covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for rule in RULES.iter().filter(|r| {
        !r.code.ends_with(".invalid") || r.code == "indicator.invalid" || r.code == "date.invalid"
    }) {
        assert!(covered.contains(&rule.code), "{} has no case", rule.code);
    }
}

#[test]
fn unreadable_documents_are_refused_with_line_and_column() {
    let broken = SAMPLE.replace("</unit>", "</unt>");
    let verdict = &verdicts(&broken, Lang::En)[0];
    assert_eq!(codes(verdict), ["xml.invalid"]);
    assert!(
        verdict.violations[0].path.starts_with("line 15, column"),
        "{:?}",
        verdict.violations
    );
    assert!(!verdict.valid());

    let verdict = &verdicts("{\"resourceType\": \"Bundle\",", Lang::En)[0];
    assert_eq!(codes(verdict), ["json.invalid"]);
    assert!(verdict.violations[0].path.starts_with("line 1, column"));

    let verdict = &verdicts("{\"resourceType\": \"Patient\"}", Lang::En)[0];
    assert_eq!(codes(verdict), ["json.invalid"]);
    assert_eq!(verdict.violations[0].path, "$.resourceType");

    let verdict = &verdicts("MSH|^~\\&|", Lang::En)[0];
    assert_eq!(codes(verdict), ["xml.invalid"]);
    assert_eq!(verdict.form, None);
}

#[test]
fn the_documentations_example_gives_code_deprecated_for_gender_03() {
    let verdict = &verdicts(&crate::ans_examples::location(25), Lang::Fr)[0];
    let deprecated: Vec<_> = verdict
        .violations
        .iter()
        .filter(|v| v.code == "code.deprecated")
        .collect();
    assert_eq!(deprecated.len(), 1, "{:?}", verdict.violations);
    assert_eq!(deprecated[0].severity, Severity::Warning);
    assert_eq!(deprecated[0].path, "$.extension[0].extension[6]");
    assert!(
        deprecated[0].message.contains("retiré des échanges"),
        "{}",
        deprecated[0].message
    );
}

#[test]
fn messages_are_french_by_default_and_english_on_request() {
    let text = SAMPLE.replace("<nbCapacity>12<", "<nbCapacity>-3<");
    let fr = &verdicts(&text, Lang::default())[0].violations[0];
    let en = &verdicts(&text, Lang::En)[0].violations[0];
    assert_eq!(fr.message, "nombre négatif : -3");
    assert_eq!(en.message, "negative count: -3");
}

#[test]
fn a_rules_file_changes_severities_and_limits() {
    let settings = Settings::from_toml(
        "stale_after = \"2h\"\n[severity]\n\"finess.key\" = \"warning\"\n\"document.empty\" = \"off\"\n",
    )
    .unwrap();
    assert_eq!(settings.severity("finess.key"), Severity::Warning);
    assert_eq!(settings.severity("document.empty"), Severity::Off);
    assert_eq!(settings.stale_after, Duration::from_secs(7200));

    let e = Settings::from_toml("[severity]\n\"finess.clef\" = \"off\"\n").unwrap_err();
    assert!(e.to_string().contains("`finess.clef` is not a rule"), "{e}");
    let e = Settings::from_toml("[severity]\n\"xml.invalid\" = \"warning\"\n").unwrap_err();
    assert!(e.to_string().contains("always an error"), "{e}");
    let e = Settings::from_toml("stale_after = \"two days\"\n").unwrap_err();
    assert!(e.to_string().starts_with("stale_after:"), "{e}");
    assert!(Settings::from_toml("stale = 1\n").is_err());
}

#[test]
fn a_rule_turned_off_is_not_reported() {
    let settings = Settings::from_toml("[severity]\n\"capacity.negative\" = \"off\"\n").unwrap();
    let context = Context {
        referential: None,
        indicators: None,
        settings: &settings,
        now: datetime!(2026-12-05 10:00 +01:00),
        lang: Lang::En,
    };
    let text = SAMPLE.replace("<nbCapacity>12<", "<nbCapacity>-3<");
    assert!(validate(text.as_bytes(), &context).violations.is_empty());
}
