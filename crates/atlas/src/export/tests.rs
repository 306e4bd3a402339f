use std::collections::HashMap;

use quick_xml::events::Event;

use super::*;
use crate::matrix::of_atlas;
use crate::testdata::{demo, seen};

/// Every `mxCell` of a draw.io file: id → (parent, style), read by a real
/// XML parser (which refuses a file that is not well-formed).
fn cells(xml: &str) -> HashMap<String, (String, String)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cells = HashMap::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"mxCell" => {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().into_owned())
                        .unwrap_or_default()
                };
                cells.insert(attr("id"), (attr("parent"), attr("style")));
            }
            _ => {}
        }
    }
    cells
}

#[test]
fn the_drawio_file_holds_domains_processes_and_applications() {
    let Some(atlas) = demo() else { return };
    let xml = drawio::business_map(&atlas.establishments);
    assert!(xml.starts_with("<?xml") && xml.contains("<mxfile"));
    assert_eq!(xml.matches("<diagram ").count(), 3);
    let cells = cells(&xml);
    let depth = |id: &str| {
        let (mut id, mut n) = (id.to_string(), 0);
        while let Some((parent, _)) = cells.get(&id) {
            if parent.is_empty() {
                break;
            }
            id = parent.clone();
            n += 1;
        }
        n
    };
    // Applications are rounded cards three levels below the page's layer.
    let apps: Vec<&String> = cells
        .iter()
        .filter(|(_, (_, style))| style.starts_with("rounded=1"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(apps.len(), 102);
    assert!(
        apps.iter().all(|id| depth(id) == 4),
        "card → process → domain → layer → root"
    );
    let critical = cells
        .values()
        .filter(|(_, s)| s.contains("strokeColor=#b91c1c"))
        .count();
    assert_eq!(critical, 30);
    assert!(xml.contains(r#"value="Maincare IGAP (GAP)""#));
}

#[test]
fn names_are_escaped_in_the_drawio_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"etablissements": [{"nom": "A & <B>", "domaines": [{"nom": "D\"", "processus": [{"nom": "P", "applications": [{"nom": "<x>", "trigramme": "XXX"}]}]}]}]}"#,
    )
    .unwrap();
    let atlas = crate::read::read_dir(dir.path()).unwrap();
    let xml = drawio::business_map(&atlas.establishments);
    assert_eq!(cells(&xml).len(), 5);
    assert!(xml.contains(r#"name="A &amp; &lt;B&gt;""#), "{xml}");
}

#[test]
fn mermaid_draws_a_node_per_application_and_an_arrow_per_pair() {
    let Some(atlas) = demo() else { return };
    let matrix = of_atlas(&atlas, &[]);
    let text = mermaid::flowchart(&atlas, &matrix, crate::Lang::Fr);
    assert!(text.starts_with("flowchart LR\n"));
    assert!(
        text.contains("  app_GAP[\"Maincare iGAP (GAP)\"]\n"),
        "{text}"
    );
    assert!(
        text.contains("  app_GAP -->|\"HL7 ADT\"| app_ORB\n"),
        "{text}"
    );
    assert!(
        text.contains("  app_GAP ==>|\"SMTP/TLS MSS\"| app_MAI\n"),
        "{text}"
    );
    assert!(text.contains("  class app_BLO,"), "{text}");
    let observed = of_atlas(&atlas, &[seen("lab", "SIL", "GAP", "tcp", "", false)]);
    let text = mermaid::flowchart(&atlas, &observed, crate::Lang::En);
    assert!(
        text.contains("  app_SIL -.->|\"TCP (shadow (not declared))\"| app_GAP\n"),
        "{text}"
    );
}

#[test]
fn the_csv_matrix_has_a_row_and_a_column_per_application() {
    let Some(atlas) = demo() else { return };
    let matrix = of_atlas(&atlas, &[]);
    let text = csv::matrix_csv(&matrix, crate::Lang::Fr);
    let rows: Vec<&str> = text.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), matrix.applications.len() + 1);
    let header: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(header[0], "source \\ cible");
    let orb = header.iter().position(|h| *h == "ORB").unwrap();
    let gap = rows.iter().find(|r| r.starts_with("GAP,")).unwrap();
    assert_eq!(gap.split(',').nth(orb).unwrap(), "HL7 ADT [en clair]");
    assert!(csv::matrix_csv(&matrix, crate::Lang::En).starts_with("source \\ target,"));
}
