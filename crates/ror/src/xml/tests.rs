use super::*;
use crate::codes::{CAPACITY_STATUS, GENDER};

pub(crate) const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<bedAvailability xmlns="urn:guichet:bed-availability:1" id="D-2026-0001" time="2026-12-05T10:00:00+01:00">
  <establishment finessEg="350054680" finessEj="350000014" sender="lits@chu-rennes.mssante.fr"/>
  <unit id="SSR38888">
    <capacity>
      <capacityType>01</capacityType>
      <capacityStatus>02</capacityStatus>
      <temporalityCapacity>01</temporalityCapacity>
      <nbCapacity>12</nbCapacity>
      <capacitySourceType>02</capacitySourceType>
      <genderCapacityAvailable>01</genderCapacityAvailable>
      <capacityUpdateDate>2026-12-05T09:58:00+01:00</capacityUpdateDate>
      <temporaryAssignement>01</temporaryAssignement>
    </capacity>
  </unit>
</bedAvailability>
"#;

#[test]
fn a_document_is_read_with_where_each_value_stands() {
    let doc = read(SAMPLE.as_bytes()).unwrap();
    assert_eq!(doc.id.as_ref().unwrap().value, "D-2026-0001");
    let eg = doc.establishment.finess_eg.as_ref().unwrap();
    assert_eq!(eg.value, "350054680");
    assert_eq!(
        eg.at.to_string(),
        "/bedAvailability/establishment/@finessEg"
    );
    let capacity = &doc.units[0].capacities[0];
    assert_eq!(capacity.code(&CAPACITY_STATUS), Some("02"));
    assert_eq!(capacity.count(), Some(12));
    assert_eq!(
        capacity.get(&GENDER).unwrap().at.to_string(),
        "/bedAvailability/unit[1]/capacity[1]/genderCapacityAvailable"
    );
}

#[test]
fn written_then_read_gives_the_same_document() {
    let doc = read(SAMPLE.as_bytes()).unwrap();
    let again = read(write(&doc).as_bytes()).unwrap();
    assert_eq!(doc, again);
    assert_eq!(write(&again), write(&doc));
}

#[test]
fn text_with_markup_characters_survives() {
    let text = SAMPLE.replace("D-2026-0001", "A&amp;B &lt;1&gt;");
    let doc = read(text.as_bytes()).unwrap();
    assert_eq!(doc.id.as_ref().unwrap().value, "A&B <1>");
    assert_eq!(read(write(&doc).as_bytes()).unwrap(), doc);
}

#[test]
fn a_slice_in_pieces_is_read_whole_and_as_sent() {
    let text = SAMPLE
        .replace(">02</capacityStatus>", ">0<!-- split -->2</capacityStatus>")
        .replace(">12</nbCapacity>", ">1<!-- split -->2</nbCapacity>")
        .replace(
            ">01</genderCapacityAvailable>",
            "> 0&amp;1</genderCapacityAvailable>",
        );
    let doc = read(text.as_bytes()).unwrap();
    let capacity = &doc.units[0].capacities[0];
    assert_eq!(capacity.code(&CAPACITY_STATUS), Some("02"));
    assert_eq!(capacity.count(), Some(12));
    assert_eq!(capacity.code(&GENDER), Some(" 0&1"));
}

fn error(text: &str) -> XmlError {
    read(text.as_bytes()).unwrap_err()
}

#[test]
fn malformed_xml_names_line_and_column() {
    let broken = SAMPLE.replace("</capacityStatus>", "</capacityStat>");
    let e = error(&broken);
    assert_eq!(e.line, 7, "{e}");
    assert!(e.reason.contains("capacityStat"), "{e}");
}

#[test]
fn a_count_that_is_not_a_number_is_refused_where_it_stands() {
    let e = error(&SAMPLE.replace("<nbCapacity>12<", "<nbCapacity>douze<"));
    assert_eq!(e.line, 9, "{e}");
    assert!(
        e.reason
            .contains("nbCapacity is a whole number, not `douze`"),
        "{e}"
    );
}

#[test]
fn another_namespace_or_root_is_refused() {
    let e = error(&SAMPLE.replace(":1\"", ":2\""));
    assert!(e.reason.contains("urn:guichet:bed-availability:2"), "{e}");
    let e = error("<Bundle/>");
    assert!(e.reason.contains("<Bundle>"), "{e}");
    let e = error("");
    assert!(e.reason.contains("no <bedAvailability>"), "{e}");
}

#[test]
fn unknown_elements_and_repeated_slices_are_refused() {
    let e = error(&SAMPLE.replace("<capacityType>01</capacityType>", "<lits>3</lits>"));
    assert!(e.reason.contains("<lits> is not a slice"), "{e}");
    let twice = SAMPLE.replace(
        "<capacityType>01</capacityType>",
        "<capacityType>01</capacityType><capacityType>02</capacityType>",
    );
    assert!(error(&twice).reason.contains("capacityType given twice"));
}

#[test]
fn a_document_without_its_establishment_is_refused() {
    let start = SAMPLE.find("  <establishment").unwrap();
    let end = start + SAMPLE[start..].find('\n').unwrap() + 1;
    let e = error(&(SAMPLE[..start].to_string() + &SAMPLE[end..]));
    assert!(e.reason.contains("no <establishment>"), "{e}");
}

#[test]
fn a_truncated_document_is_refused() {
    let cut = &SAMPLE[..SAMPLE.len() / 2];
    assert!(read(cut.as_bytes()).is_err());
}

#[test]
fn line_and_column_count_characters() {
    assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é\nx".as_bytes(), 2), (1, 2));
    assert_eq!(line_column(b"", 10), (1, 1));
}

mod one_pass {
    use proptest::prelude::*;

    use super::*;
    use crate::fhir::tests::round_trip::document;

    /// Every path of `document`, as shown: paths are no part of equality.
    fn paths(document: &Document) -> Vec<String> {
        let fields = [
            &document.id,
            &document.time,
            &document.establishment.finess_eg,
            &document.establishment.finess_ej,
            &document.establishment.sender,
        ];
        let mut all: Vec<String> = fields
            .iter()
            .flat_map(|f| f.as_ref())
            .map(|f| f.at.to_string())
            .collect();
        all.push(document.at.to_string());
        for unit in &document.units {
            all.extend([unit.at.to_string(), unit.id.at.to_string()]);
            for capacity in &unit.capacities {
                all.push(capacity.at.to_string());
                let values = capacity.each().filter_map(|(_, v)| v);
                all.extend(values.map(|v| v.at.to_string()));
            }
        }
        all
    }

    /// What both readers make of `text`: the one pass, when it reads
    /// it, gives quick-xml's document, paths included.
    fn same(text: &[u8]) -> Result<bool, TestCaseError> {
        let Some(fast) = scan::read(text, Path::new("/bedAvailability")) else {
            return Ok(false);
        };
        // Built untracked from its view, as a clean document is kept:
        // the same document with every path empty.
        let untracked = scan::view(text).map(|view| view.document(Path::untracked()));
        prop_assert_eq!(untracked.as_ref(), Some(&fast));
        let untracked = paths(&untracked.unwrap());
        prop_assert!(untracked.iter().all(String::is_empty), "{:?}", untracked);
        let events = read_events(text);
        prop_assert!(events.is_ok(), "{:?}", events);
        let events = events.unwrap();
        prop_assert_eq!(&fast, &events);
        prop_assert_eq!(paths(&fast), paths(&events));
        Ok(true)
    }

    /// Bits of XML and of text that a sender may put anywhere.
    fn bit() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "",
            " ",
            "\t",
            "\r\n",
            "\n",
            "\u{c}",
            "<",
            ">",
            "/",
            "\"",
            "'",
            "=",
            "&",
            "&amp;",
            "&#65;",
            "<!-- c -->",
            "<![CDATA[x]]>",
            "<?pi x?>",
            "x",
            "é",
            ":",
            "<capacity>",
            "</capacity>",
            "</unit>",
            "<unit id=\"u\">",
            "<unit id=\"u\"/>",
            " id=\"v\"",
            " xmlns=\"urn:guichet:bed-availability:1\"",
            "<nbCapacity>1</nbCapacity>",
            "<crisisType>01</crisisType>",
            "\u{feff}",
            "<?xml version=\"1.0\"?>",
        ])
    }

    #[test]
    fn guichet_s_own_layout_is_read_in_one_pass() {
        assert!(scan::read(SAMPLE.as_bytes(), Path::untracked()).is_some());
        let doc = read(SAMPLE.as_bytes()).unwrap();
        assert!(scan::read(write(&doc).as_bytes(), Path::untracked()).is_some());
        let bare = SAMPLE.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "");
        assert!(scan::read(bare.as_bytes(), Path::untracked()).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn one_pass_reads_as_quick_xml_does(doc in document(), cut in any::<prop::sample::Index>(), bits in prop::collection::vec(bit(), 0..3), drop in 0usize..3) {
            let mut text = write(&doc).into_bytes();
            same(&text)?;
            let at = cut.index(text.len() + 1);
            let end = (at + drop).min(text.len());
            let inserted: Vec<u8> = bits.concat().into_bytes();
            text.splice(at..end, inserted);
            same(&text)?;
        }

        #[test]
        fn one_pass_reads_the_sample_changed_as_quick_xml_does(cut in any::<prop::sample::Index>(), bits in prop::collection::vec(bit(), 1..3), drop in 0usize..4) {
            let mut text = SAMPLE.as_bytes().to_vec();
            let at = cut.index(text.len() + 1);
            let end = (at + drop).min(text.len());
            text.splice(at..end, bits.concat().into_bytes());
            same(&text)?;
        }
    }
}
