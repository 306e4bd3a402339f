use super::*;
use crate::ans_examples::{EXTENSION, SELECTOR};
use crate::codes::{GENDER, TEMPORALITY};
use crate::xml;

/// A documentation body: `{"parameter": [...], "resourceType": "Parameters"}`
/// with the operation `op` at `path`, with the value when `count` is given.
fn documented(op: &str, path: &str, count: Option<i64>) -> Json {
    let mut part = vec![
        json!({"name": "type", "valueString": op}),
        json!({"name": "path", "valueString": path}),
    ];
    if let Some(count) = count {
        let extension: Json =
            serde_json::from_str(&EXTENSION.replace("COUNT", &count.to_string())).unwrap();
        part.push(json!({"name": "value", "part": [{"extension": [extension]}]}));
    }
    json!({"parameter": [{"name": "operation", "part": part}], "resourceType": "Parameters"})
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(s, c)| (s.to_string(), c.to_string()))
        .collect()
}

#[test]
fn the_documentations_add_replace_and_delete_are_read_as_written() {
    let at = Path::new("$");
    let add = documented("add", &extensions_path(), Some(25));
    let ops = read_parameters(&add, &at).unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op, Op::Add);
    assert!(ops[0].selector.is_empty());
    let capacity = ops[0].capacity.as_ref().unwrap();
    assert_eq!(capacity.count(), Some(25));
    assert_eq!(capacity.code(&GENDER), Some("03"));

    let replace = documented("replace", SELECTOR, Some(12));
    let ops = read_parameters(&replace, &at).unwrap();
    assert_eq!(ops[0].op, Op::Replace);
    assert_eq!(ops[0].capacity.as_ref().unwrap().count(), Some(12));
    let want = pairs(&[
        ("capacityStatus", "02"),
        ("temporalityCapacity", "01"),
        ("genderCapacityAvailable", "03"),
        ("temporaryAssignement", "01"),
    ]);
    assert_eq!(ops[0].selector, want);

    let delete = documented("delete", SELECTOR, None);
    let ops = read_parameters(&delete, &at).unwrap();
    assert_eq!((ops[0].op, ops[0].capacity.is_none()), (Op::Delete, true));
    assert_eq!(ops[0].selector, want);
}

#[test]
fn what_guichet_writes_is_the_documentations_form() {
    let replace = documented("replace", SELECTOR, Some(12));
    let capacity = read_parameters(&replace, &Path::new("$")).unwrap()[0]
        .capacity
        .clone()
        .unwrap();
    let written = parameters(Op::Replace, &capacity, Coding::CodeableConcept);
    let path = written
        .pointer("/parameter/0/part/1/valueString")
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(path, SELECTOR.replace("')  and", "') and"));
    assert_eq!(parse_selector(path), parse_selector(SELECTOR));
    let value = written
        .pointer("/parameter/0/part/2/part/0/extension/0")
        .unwrap();
    assert_eq!(value["url"], codes::CAPACITY_URL);
    let add = parameters(Op::Add, &capacity, Coding::CodeableConcept);
    assert_eq!(
        add.pointer("/parameter/0/part/1/valueString").unwrap(),
        &json!(extensions_path())
    );
    let delete = parameters(Op::Delete, &capacity, Coding::Code);
    assert_eq!(
        delete
            .pointer("/parameter/0/part")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(delete
        .pointer("/parameter/0/part/1/valueString")
        .unwrap()
        .as_str()
        .unwrap()
        .contains("valueCode = '02'"));
}

#[test]
fn a_batch_goes_back_to_the_same_document_units_without_records_included() {
    let mut doc = xml::read(crate::xml::tests::SAMPLE.as_bytes()).unwrap();
    let mut empty = doc.units[0].clone();
    empty.id.value = "VIDE".into();
    empty.capacities.clear();
    doc.units.push(empty);
    let mut second = doc.units[0].capacities[0].clone();
    second.set(
        &TEMPORALITY,
        crate::model::Field::new(crate::model::Value::Code("02".into()), Path::default()),
    );
    doc.units[0].capacities.push(second);
    let batch = write(&doc, Coding::default());
    assert_eq!(batch["type"], "batch");
    let entries = batch["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["request"]["method"], "PATCH");
    assert_eq!(
        entries[0]["request"]["url"],
        "ws-synchro-dispo-lits-fhir/Location?identifier=1350054680/SSR38888"
    );
    let back = read(batch.to_string().as_bytes()).unwrap();
    assert_eq!(back, doc);
}

#[test]
fn a_delete_in_a_batch_is_refused_as_a_document() {
    let doc = xml::read(crate::xml::tests::SAMPLE.as_bytes()).unwrap();
    let mut batch = write(&doc, Coding::default());
    batch["entry"][0]["resource"] = documented("delete", SELECTOR, None);
    match read(batch.to_string().as_bytes()) {
        Err(FhirError::Shape { path, reason }) => {
            assert_eq!(path, "$.entry[0].resource.parameter[0]");
            assert!(reason.contains("delete"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_parameters_say_where() {
    let at = Path::new("$");
    let e = read_parameters(&documented("move", SELECTOR, None), &at).unwrap_err();
    assert!(e.to_string().contains("add, replace or delete"), "{e}");
    let e = read_parameters(&documented("replace", "Location.name", Some(1)), &at).unwrap_err();
    assert!(e.to_string().contains("not the capacity extension"), "{e}");
    let e = read_parameters(&json!({"resourceType": "Bundle"}), &at).unwrap_err();
    assert!(e.to_string().contains("Parameters"), "{e}");
}
