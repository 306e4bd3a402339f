use base64::Engine;
use guichet_hl7::{Charset, Header, Message};

use super::*;

fn ctx() -> TemplateContext {
    TemplateContext {
        control_id: "CTRL0001".into(),
        timestamp: "20250309070501+0100".into(),
        ..TemplateContext::default()
    }
}

fn text(msg: &Message<'_>, segment: &str, field: usize) -> String {
    let seg = msg
        .segment(segment)
        .unwrap_or_else(|| panic!("no {segment}"));
    seg.field(field).text(msg.charset()).into_owned()
}

#[test]
fn every_template_parses_with_the_pam_fr_header() {
    for template in Template::ALL {
        let bytes = template.render(&ctx());
        let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{template}: {e:?}"));
        let header = Header::read(&msg);
        assert_eq!(header.message_type, template.message_type(), "{template}");
        assert_eq!(header.version, "2.5^FRA^2.11", "{template}");
        assert_eq!(header.charset, Charset::Latin9, "{template}");
        assert_eq!(header.control_id, "CTRL0001", "{template}");
        assert_eq!(header.sending_application, "EAI");
        assert_eq!(header.sending_facility, "CHU");
        assert_eq!(header.receiving_application, "DPI");
        assert_eq!(header.receiving_facility, "CHU");
        assert_eq!(header.processing_id, "P");
        assert!(
            !header.is_enhanced_mode(),
            "original mode: one ACK per message"
        );
        assert_eq!(text(&msg, "MSH", 7), "20250309070501+0100");
        assert_eq!(text(&msg, "MSH", 17), "FRA");
        assert_eq!(text(&msg, "MSH", 18), "8859/15");
        assert!(
            bytes.ends_with(b"\r"),
            "{template}: last segment ends with CR"
        );
        assert!(!bytes.contains(&b'\n'), "{template}: no LF");
    }
}

#[test]
fn names_round_trip_and_unknown_names_list_the_choices() {
    for (template, name) in Template::ALL.iter().zip(Template::NAMES) {
        assert_eq!(template.name(), name);
        assert_eq!(name.parse::<Template>(), Ok(*template));
        assert_eq!(template.to_string(), name);
    }
    assert_eq!("ADT-A01".parse::<Template>(), Ok(Template::AdtA01));
    let err = "adt-a99".parse::<Template>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown template `adt-a99`; choose one of: adt-a01, adt-a04, adt-a08, adt-a03, mdm-t02, oru-r01"
    );
}

#[test]
fn patient_name_is_latin9_with_oe_ligature() {
    let bytes = Template::AdtA01.render(&ctx());
    assert!(bytes.windows(5).any(|w| w == b"C\xBCUR-"), "Œ is 0xBC");
    assert!(bytes.windows(4).any(|w| w == b"No\xEBl"), "ë is 0xEB");
    assert!(bytes.windows(5).any(|w| w == b"Besan"), "address present");
    assert!(bytes.windows(2).any(|w| w == b"\xE7o"), "ç is 0xE7");
    assert!(
        !bytes.windows(2).any(|w| w == b"\xC5\x92"),
        "no UTF-8 encoding of Œ"
    );
    let msg = Message::parse(&bytes).unwrap();
    let pid5 = msg.segment("PID").unwrap().field(5);
    assert_eq!(
        pid5.repetition(2).component(1).text(msg.charset()),
        "CŒUR-DUPONT"
    );
    assert_eq!(pid5.component(1).text(msg.charset()), "DUPONT");
    assert_eq!(pid5.component(3).text(msg.charset()), "Noël");
}

#[test]
fn movements_carry_a_zbe_segment() {
    for template in [Template::AdtA01, Template::AdtA04, Template::AdtA03] {
        let bytes = template.render(&ctx());
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(text(&msg, "ZBE", 4), "INSERT", "{template}");
        assert_eq!(text(&msg, "ZBE", 2), "20250309070501+0100");
        assert_eq!(
            msg.segment("ZBE").unwrap().field(1).component(1).raw(),
            b"MCTRL0001"
        );
        assert_eq!(
            msg.segment("ZBE").unwrap().field(7).component(10).raw(),
            b"2101",
            "UF code"
        );
        assert_eq!(text(&msg, "EVN", 1), &template.message_type()[4..7]);
    }
    let a08 = Template::AdtA08.render(&ctx());
    assert!(Message::parse(&a08).unwrap().segment("ZBE").is_none());
}

#[test]
fn classes_and_discharge_date() {
    let a04 = Template::AdtA04.render(&ctx());
    assert_eq!(text(&Message::parse(&a04).unwrap(), "PV1", 2), "O");
    let a03 = Template::AdtA03.render(&ctx());
    let msg = Message::parse(&a03).unwrap();
    assert_eq!(text(&msg, "PV1", 2), "I");
    assert_eq!(text(&msg, "PV1", 45), "20250309070501+0100");
}

#[test]
fn mdm_carries_a_base64_pdf() {
    let bytes = Template::MdmT02.render(&ctx());
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(text(&msg, "TXA", 17), "AU");
    let obx = msg.segment("OBX").unwrap();
    assert_eq!(obx.field(2).raw(), b"ED");
    let value = obx.field(5);
    assert_eq!(value.component(2).raw(), b"application");
    assert_eq!(value.component(3).raw(), b"pdf");
    assert_eq!(value.component(4).raw(), b"Base64");
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(value.component(5).raw())
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4\n"));
    assert!(pdf.ends_with(b"%%EOF\n"));
}

#[test]
fn oru_carries_numeric_results_with_units() {
    let bytes = Template::OruR01.render(&ctx());
    let msg = Message::parse(&bytes).unwrap();
    assert!(msg.segment("EVN").is_none(), "ORU_R01 has no EVN");
    assert_eq!(text(&msg, "OBR", 25), "F");
    let obx: Vec<_> = msg.segments().filter(|s| s.id() == b"OBX").collect();
    assert_eq!(obx.len(), 4);
    assert!(obx.iter().all(|s| s.field(2).raw() == b"NM"));
    assert_eq!(obx[0].field(5).raw(), b"140");
    assert_eq!(obx[0].field(6).component(1).raw(), b"mmol/L");
    assert_eq!(
        obx[2].field(6).component(2).raw(),
        b"\xB5mol/L",
        "µ is 0xB5"
    );
    assert_eq!(
        obx[2].field(3).component(2).text(msg.charset()),
        "Créatinine"
    );
    assert_eq!(obx[3].field(8).raw(), b"H");
}

#[test]
fn refreshed_contexts_make_new_messages() {
    let first = TemplateContext::default();
    let second = first.refreshed();
    assert_ne!(first.control_id, second.control_id);
    assert_eq!(first.sending_application, second.sending_application);
    let a = Template::AdtA01.render(&first);
    let b = Template::AdtA01.render(&second);
    let id = |bytes: &[u8]| Header::read(&Message::parse(bytes).unwrap()).control_id;
    assert_eq!(id(&a), first.control_id);
    assert_eq!(id(&b), second.control_id);
}

#[test]
fn parties_are_configurable_and_unrepresentable_characters_are_replaced() {
    let ctx = TemplateContext {
        sending_application: "LABO✓".into(),
        sending_facility: "CH Besançon".into(),
        ..ctx()
    };
    let bytes = Template::OruR01.render(&ctx);
    let header = Header::read(&Message::parse(&bytes).unwrap());
    assert_eq!(header.sending_application, "LABO?");
    assert_eq!(header.sending_facility, "CH Besançon");
}
