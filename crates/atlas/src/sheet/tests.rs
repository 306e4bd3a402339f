use std::io::Write as _;

use super::*;

fn csv_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A real XLSX workbook (inline strings and numbers) with a first sheet
/// that is not the flows and a second named "Flux SIH".
fn workbook(dir: &Path) -> PathBuf {
    let path = dir.join("flux.xlsx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let sheet = |rows: &[&[&str]]| {
        let rows: String = rows
            .iter()
            .enumerate()
            .map(|(r, cells)| {
                let cells: String = cells
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        let at = format!("{}{}", (b'A' + c as u8) as char, r + 1);
                        match v.parse::<f64>() {
                            Ok(n) => format!(r#"<c r="{at}"><v>{n}</v></c>"#),
                            Err(_) => {
                                format!(r#"<c r="{at}" t="inlineStr"><is><t>{v}</t></is></c>"#)
                            }
                        }
                    })
                    .collect();
                format!(r#"<row r="{}">{cells}</row>"#, r + 1)
            })
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
        )
    };
    let files = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Notes" sheetId="1" r:id="rId1"/><sheet name="Flux SIH" sheetId="2" r:id="rId2"/></sheets></workbook>"#.to_string()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/></Relationships>"#.to_string()),
        ("xl/worksheets/sheet1.xml", sheet(&[&["Lisez-moi"]])),
        ("xl/worksheets/sheet2.xml", sheet(&[
            &["Identifiant", "App source", "App cible", "Protocole", "Port", "Type message", "EAI"],
            &["X-1", " gap ", "orb", "HL7", "2575", "ADT", "Enovacom Engine"],
            &["", "LAB", "ORB", "HL7", "n/a", "ORU", ""],
        ])),
    ];
    for (name, text) in files {
        zip.start_file(name, opts).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path
}

#[test]
fn a_workbook_is_read_from_its_flows_sheet_with_guessed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = read_sheet(&workbook(dir.path()), None).unwrap();
    assert_eq!(sheet.name, "Flux SIH");
    let map = mapping(&sheet.headers, &BTreeMap::new()).unwrap();
    let flows = flows(&sheet, &map);
    assert_eq!(
        serde_json::to_value(&flows).unwrap(),
        serde_json::json!([
            {"id": "X-1", "sourceTrigramme": "GAP", "targetTrigramme": "ORB", "protocol": "HL7",
             "port": 2575, "messageType": "ADT", "eaiName": "Enovacom Engine"},
            {"sourceTrigramme": "LAB", "targetTrigramme": "ORB", "protocol": "HL7", "port": null, "messageType": "ORU"}
        ])
    );
    let err = read_sheet(&workbook(dir.path()), Some("Flows"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("no sheet named \"Flows\" (sheets: Notes, Flux SIH)"),
        "{err}"
    );
}

#[test]
fn a_french_csv_with_an_explicit_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_file(
        dir.path(),
        "flux.csv",
        "\u{feff}Émetteur;Destinataire;Proto;Numéro de port;Nature\nGAP;ORB;HL7;2575;\"ADT; mouvements\"\n;;;;\n".as_bytes(),
    );
    let sheet = read_sheet(&path, None).unwrap();
    assert_eq!(sheet.headers[0], "Émetteur");
    assert_eq!(sheet.rows.len(), 1, "an empty row is no flow");
    let columns: BTreeMap<String, String> = [
        ("sourceTrigramme", "Émetteur"),
        ("targetTrigramme", "Destinataire"),
        ("protocol", "Proto"),
        ("messageType", "Nature"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let map = mapping(&sheet.headers, &columns).unwrap();
    // "Numéro de port" is still guessed.
    assert_eq!(map["port"], 3);
    let flow = &flows(&sheet, &map)[0];
    assert_eq!(flow["messageType"], "ADT; mouvements");
    assert_eq!(flow["port"], 2575);

    let bad: BTreeMap<String, String> = [("source".to_string(), "Émetteur".to_string())].into();
    let err = mapping(&sheet.headers, &bad).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown flow field \"source\" (fields: id, sourceTrigramme"),
        "{err}"
    );
    let bad: BTreeMap<String, String> = [("protocol".to_string(), "Protocole".to_string())].into();
    let err = mapping(&sheet.headers, &bad).unwrap_err().to_string();
    assert!(
        err.contains("column \"Protocole\", which the sheet does not have"),
        "{err}"
    );
}

fn flow(json: serde_json::Value) -> Map<String, Value> {
    json.as_object().unwrap().clone()
}

#[test]
fn merge_updates_by_id_or_by_key_and_replace_starts_afresh() {
    let existing = vec![
        flow(
            serde_json::json!({"id": "A-1", "sourceTrigramme": "GAP", "targetTrigramme": "ORB", "protocol": "HL7", "messageType": "ADT", "port": 2575}),
        ),
        flow(
            serde_json::json!({"id": "A-2", "sourceTrigramme": "GAP", "targetTrigramme": "IFC", "protocol": "HL7", "messageType": "DFT"}),
        ),
    ];
    let incoming = vec![
        // Same key, no id: updates A-2 and keeps its id.
        flow(
            serde_json::json!({"sourceTrigramme": "GAP", "targetTrigramme": "IFC", "protocol": "HL7", "messageType": "DFT", "port": 2576}),
        ),
        // By id.
        flow(serde_json::json!({"id": "A-1", "description": "ADT vers DPI"})),
        // New.
        flow(
            serde_json::json!({"sourceTrigramme": "LAB", "targetTrigramme": "ORB", "protocol": "HL7", "messageType": "ORU"}),
        ),
    ];
    let (merged, report) = import(existing.clone(), incoming.clone(), Mode::Merge, "VDL");
    assert_eq!(
        report,
        Imported {
            added: 1,
            updated: 2,
            total: 3
        }
    );
    assert_eq!(merged[1]["id"], "A-2");
    assert_eq!(merged[1]["port"], 2576);
    assert_eq!(merged[0]["description"], "ADT vers DPI");
    assert_eq!(merged[0]["port"], 2575);
    assert_eq!(merged[2]["id"], "VDL-IMP-0001");
    assert_eq!(merged[2]["eaiName"], Value::Null);
    let (replaced, report) = import(existing, incoming, Mode::Replace, "VDL");
    assert_eq!(
        report,
        Imported {
            added: 3,
            updated: 0,
            total: 3
        }
    );
    assert_eq!(replaced[0]["id"], "VDL-IMP-0001");
}
