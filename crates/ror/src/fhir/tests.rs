use super::*;
use crate::codes::{CAPACITY_STATUS, GENDER, TEMPORARY_ASSIGNMENT};
use crate::xml;

fn documentation_location() -> String {
    crate::ans_examples::location(25)
}

fn sample() -> Document {
    xml::read(crate::xml::tests::SAMPLE.as_bytes()).unwrap()
}

#[test]
fn xml_to_fhir_to_xml_keeps_everything() {
    let doc = sample();
    for coding in [Coding::CodeableConcept, Coding::Code] {
        let fhir = serde_json::to_vec(&write(&doc, coding)).unwrap();
        let back = read(&fhir).unwrap();
        assert_eq!(back, doc, "{coding:?}");
        assert_eq!(xml::write(&back), xml::write(&doc));
    }
}

#[test]
fn the_bundle_is_the_documentations_form() {
    let json = write(&sample(), Coding::default());
    assert_eq!(json["type"], "collection");
    let location = &json["entry"][0]["resource"];
    assert_eq!(location["identifier"][0]["value"], "1350054680/SSR38888");
    assert_eq!(location["identifier"][0]["type"]["coding"][0]["code"], "26");
    let capacity = &location["extension"][0];
    assert_eq!(capacity["url"], CAPACITY_URL);
    let status = &capacity["extension"][1];
    assert_eq!(status["url"], "capacityStatus");
    let coding = &status["valueCodeableConcept"]["coding"][0];
    assert_eq!(coding["code"], "02");
    assert_eq!(coding["display"], "Disponible");
    assert_eq!(coding["system"], CAPACITY_STATUS.system);
    assert_eq!(capacity["extension"][3]["valueInteger"], 12);
}

#[test]
fn a_location_as_the_documentation_writes_it_is_read() {
    let doc = read(documentation_location().as_bytes()).unwrap();
    assert_eq!(
        doc.establishment.finess_eg.as_ref().unwrap().value,
        "350054680"
    );
    assert_eq!(doc.units.len(), 1);
    assert_eq!(doc.units[0].id.value, "SSR38888");
    let capacity = &doc.units[0].capacities[0];
    assert_eq!(capacity.count(), Some(25));
    assert_eq!(capacity.code(&GENDER), Some("03"));
    assert_eq!(capacity.code(&TEMPORARY_ASSIGNMENT), Some("01"));
    assert_eq!(
        capacity.get(&GENDER).unwrap().at.to_string(),
        "$.extension[0].extension[6]"
    );
}

#[test]
fn value_code_is_read_as_well_as_codeable_concept() {
    let text = documentation_location().replace(
        r#""valueCodeableConcept": {"coding": [{"code": "03", "display": "Indifférencié", "system": "https://mos.esante.gouv.fr/NOS/TRE_R332-GenreCapacite/FHIR/TRE-R332-GenreCapacite"}]}"#,
        r#""valueCode": "04""#,
    );
    let doc = read(text.as_bytes()).unwrap();
    assert_eq!(doc.units[0].capacities[0].code(&GENDER), Some("04"));
}

fn shape_error(text: &str) -> (String, String) {
    match read(text.as_bytes()) {
        Err(FhirError::Shape { path, reason }) => (path, reason),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn json_syntax_errors_name_line_and_column() {
    // A brace missing after the count is found where the next line starts.
    let broken = documentation_location().replacen("25}", "25", 1);
    let count_line = broken
        .lines()
        .position(|l| l.contains("\"valueInteger\": 25"))
        .unwrap()
        + 1;
    match read(broken.as_bytes()) {
        Err(FhirError::Json { line, .. }) => assert_eq!(line, count_line + 1),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

#[test]
fn shape_errors_name_the_json_path() {
    let (path, reason) =
        shape_error(&documentation_location().replace("\"nbCapacity\"", "\"lits\""));
    assert_eq!(path, "$.extension[0].extension[0].url");
    assert!(reason.contains("`lits` is not a slice"), "{reason}");

    let (path, reason) = shape_error(
        &documentation_location().replace("\"valueInteger\": 25", "\"valueInteger\": \"25\""),
    );
    assert_eq!(path, "$.extension[0].extension[0].valueInteger");
    assert!(reason.contains("a whole number"), "{reason}");

    let (path, _) =
        shape_error(&documentation_location().replace("\"code\": \"26\"", "\"code\": \"25\""));
    assert_eq!(path, "$.identifier");

    let (path, reason) = shape_error(r#"{"resourceType": "Bundle", "type": "transaction"}"#);
    assert_eq!(path, "$.type");
    assert!(reason.contains("transaction"), "{reason}");

    let (_, reason) = shape_error(r#"{"resourceType": "Patient"}"#);
    assert!(
        reason.contains("a Patient, not a Bundle or a Location"),
        "{reason}"
    );
}

#[test]
fn units_of_two_sites_are_refused() {
    let mut doc = sample();
    let mut other = doc.units[0].clone();
    other.id.value = "MCO1".into();
    doc.units.push(other);
    let mut json = write(&doc, Coding::default());
    json["entry"][1]["resource"]["identifier"][0]["value"] = "1750712184/MCO1".into();
    let (path, reason) = shape_error(&json.to_string());
    assert_eq!(path, "$.entry[1].resource.identifier[0].value");
    assert!(reason.contains("750712184"), "{reason}");
}

pub(crate) mod round_trip {
    use proptest::prelude::*;

    use super::*;
    use crate::codes::SLICES;
    use crate::model::Establishment;

    fn text() -> impl Strategy<Value = String> {
        // Any printable text, markup characters and accents included.
        "[^\\p{C}]{0,12}"
    }

    fn field(value: String) -> Field<String> {
        Field::new(value, Path::default())
    }

    fn capacity() -> impl Strategy<Value = Capacity> {
        let values = proptest::collection::vec(
            prop_oneof![text(), Just("01".to_string()), Just("03".to_string())],
            SLICES.len(),
        );
        (
            values,
            proptest::collection::vec(any::<bool>(), SLICES.len()),
            any::<i64>(),
        )
            .prop_map(|(texts, present, count)| {
                let mut capacity = Capacity::default();
                for ((slice, text), keep) in SLICES.iter().zip(texts).zip(present) {
                    if !keep {
                        continue;
                    }
                    let value = match slice.kind {
                        Kind::Coded => Value::Code(text.into()),
                        Kind::DateTime => Value::DateTime(text),
                        Kind::Integer => Value::Integer(count),
                    };
                    capacity.set(slice, Field::new(value, Path::default()));
                }
                capacity
            })
    }

    pub(crate) fn document() -> impl Strategy<Value = Document> {
        let unit =
            (text(), proptest::collection::vec(capacity(), 0..4)).prop_map(|(id, capacities)| {
                Unit {
                    id: field(id),
                    capacities,
                    at: Path::default(),
                }
            });
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            "[0-9AB]{0,10}",
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(unit, 0..4),
        )
            .prop_map(|(id, time, eg, ej, sender, units)| Document {
                id: id.map(field),
                time: time.map(field),
                establishment: Establishment {
                    finess_eg: Some(field(eg)),
                    finess_ej: ej.map(field),
                    sender: sender.map(field),
                },
                units,
                at: Path::default(),
            })
    }

    proptest! {
        #[test]
        fn xml_to_fhir_or_patch_to_xml_is_lossless(doc in document()) {
            let xml_text = xml::write(&doc);
            let from_xml = xml::read(xml_text.as_bytes()).unwrap();
            prop_assert_eq!(&from_xml, &doc);
            for coding in [Coding::CodeableConcept, Coding::Code] {
                let fhir = serde_json::to_vec(&write(&from_xml, coding)).unwrap();
                let from_fhir = read(&fhir).unwrap();
                prop_assert_eq!(xml::write(&from_fhir), xml_text.clone());
                let batch = serde_json::to_vec(&crate::patch::write(&from_xml, coding)).unwrap();
                let from_batch = crate::patch::read(&batch).unwrap();
                prop_assert_eq!(xml::write(&from_batch), xml_text.clone());
            }
        }
    }
}
