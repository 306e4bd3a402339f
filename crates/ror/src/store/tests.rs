use time::macros::datetime;

use super::*;
use crate::patch::parameters;
use crate::xml;

const SITE_UNIT: &str = "1350054680/SSR38888";

fn store(indicators: bool) -> Store {
    let referential = Referential::read(
        b"finess_eg,unit_id,label\n350054680,SSR38888,SSR\n350054680,TWICE,A\n350054680,TWICE,B\n",
    )
    .unwrap();
    let indicators = indicators.then(|| {
        let text = "capacityStatus,temporalityCapacity,genderCapacityAvailable,capacityClosingType,additionalBedType,crisisType,temporaryAssignement\n02,01,01,,,,01\n";
        Indicators::from_csv(text.as_bytes()).unwrap()
    });
    Store::new(referential, indicators)
}

fn capacity() -> Capacity {
    let doc = xml::read(crate::xml::tests::SAMPLE.as_bytes()).unwrap();
    doc.units[0].capacities[0].clone()
}

fn body(op: Op, capacity: &Capacity) -> Vec<u8> {
    parameters(op, capacity, Coding::CodeableConcept)
        .to_string()
        .into_bytes()
}

const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 +01:00);

#[test]
fn replace_first_then_add_on_404_then_replace_again() {
    let mut store = store(false);
    let record = capacity();
    let first = store
        .patch(SITE_UNIT, &body(Op::Replace, &record), NOW)
        .unwrap_err();
    assert_eq!((first.status, first.code), (404, "not-found"));
    assert_eq!(
        first.expression.as_deref(),
        Some(extension_expression().as_str())
    );

    let added = store
        .patch(SITE_UNIT, &body(Op::Add, &record), NOW)
        .unwrap();
    assert_eq!(added.version, 1);
    assert_eq!(added.applied[0].op, Op::Add);

    let mut more = record.clone();
    more.set(
        &codes::COUNT,
        Field::new(crate::model::Value::Integer(3), Path::default()),
    );
    let replaced = store
        .patch(SITE_UNIT, &body(Op::Replace, &more), NOW)
        .unwrap();
    assert_eq!(replaced.version, 2);
    let extensions = replaced.location["extension"].as_array().unwrap();
    assert_eq!(extensions.len(), 1);
    assert_eq!(extensions[0]["extension"][3]["valueInteger"], 3);

    let again = store
        .patch(SITE_UNIT, &body(Op::Add, &more), NOW)
        .unwrap_err();
    assert_eq!((again.status, again.code), (400, "business-rule"));

    store
        .patch(SITE_UNIT, &body(Op::Delete, &more), NOW)
        .unwrap();
    let gone = store
        .patch(SITE_UNIT, &body(Op::Delete, &more), NOW)
        .unwrap_err();
    assert_eq!(gone.status, 404);
}

#[test]
fn unknown_and_ambiguous_units_are_refused_as_the_ror_does() {
    let mut store = store(false);
    let unknown = store
        .patch("1350054680/NOPE", &body(Op::Add, &capacity()), NOW)
        .unwrap_err();
    assert_eq!((unknown.status, unknown.code), (404, "not-found"));
    assert_eq!(unknown.expression.as_deref(), Some("Location"));
    let twice = store
        .patch("1350054680/TWICE", &body(Op::Add, &capacity()), NOW)
        .unwrap_err();
    assert_eq!((twice.status, twice.code), (412, "multiple-matches"));
    let outcome = twice.outcome();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "multiple-matches");
}

#[test]
fn an_indicator_not_in_the_list_is_a_business_rule_with_its_tuple() {
    let mut store = store(true);
    store
        .patch(SITE_UNIT, &body(Op::Add, &capacity()), NOW)
        .unwrap();
    let mut closed = capacity();
    closed.set(
        &codes::CAPACITY_STATUS,
        Field::new(crate::model::Value::Code("05".into()), Path::default()),
    );
    let refused = store
        .patch(SITE_UNIT, &body(Op::Add, &closed), NOW)
        .unwrap_err();
    assert_eq!((refused.status, refused.code), (400, "business-rule"));
    assert!(
        refused
            .diagnostics
            .contains("capacityStatus=05 / temporalityCapacity=01"),
        "{}",
        refused.diagnostics
    );
}

#[test]
fn a_bad_body_is_invalid_and_changes_nothing() {
    let mut store = store(false);
    let bad = store
        .patch(SITE_UNIT, b"{\"resourceType\": \"Parameters\",", NOW)
        .unwrap_err();
    assert_eq!((bad.status, bad.code), (400, "invalid"));
    let mut two = parameters(Op::Add, &capacity(), Coding::Code);
    let replace = parameters(Op::Replace, &capacity(), Coding::Code);
    two["parameter"]
        .as_array_mut()
        .unwrap()
        .push(replace["parameter"][0].clone());
    two["parameter"][1]["part"][1]["valueString"] = json!("Location.extension.where(url='x')");
    assert!(store
        .patch(SITE_UNIT, two.to_string().as_bytes(), NOW)
        .is_err());
    assert_eq!(store.search(None, None)["total"], 0);
}

#[test]
fn search_by_identifier_and_last_updated() {
    let mut store = store(false);
    store
        .patch(SITE_UNIT, &body(Op::Add, &capacity()), NOW)
        .unwrap();
    assert_eq!(store.search(Some(SITE_UNIT), None)["total"], 1);
    assert_eq!(store.search(Some("1350054680/TWICE"), None)["total"], 0);
    assert_eq!(
        store.search(None, Some(datetime!(2026-12-05 09:00 +01:00)))["total"],
        1
    );
    assert_eq!(
        store.search(None, Some(datetime!(2026-12-05 11:00 +01:00)))["total"],
        0
    );
    let page = store.search(None, None);
    assert_eq!(page["entry"][0]["resource"]["meta"]["versionId"], "1");
    assert_eq!(store.dump()[SITE_UNIT]["identifier"][0]["value"], SITE_UNIT);
}
