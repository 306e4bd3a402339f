use std::path::Path;

use super::*;
use crate::testdata::demo;

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn the_demo_folder_reads_whole() {
    let Some(atlas) = demo() else { return };
    let names: Vec<&str> = atlas
        .establishments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["CH Val-de-Lys", "Clinique des Dunes", "Hôpital Saint-Roch"]
    );
    assert_eq!(atlas.occurrences().count(), 102);
    assert_eq!(atlas.infrastructure.len(), 3);
    assert_eq!(atlas.network.len(), 3);
    assert_eq!(atlas.flows.len(), 3);
    assert_eq!(atlas.trigrammes.len(), 35);
    assert_eq!(atlas.trigrammes["GAP"], "Maincare iGAP");
    let (etab, first) = atlas.all_flows().next().unwrap();
    assert_eq!(etab, "CH Val-de-Lys");
    assert_eq!(first.key(), "VDL-FLX-001");
    assert_eq!(
        (first.source().as_str(), first.target().as_str()),
        ("GAP", "ORB")
    );
    assert!(!first.encrypted(), "HL7 without `crypted` is clear");
}

#[test]
fn invalid_json_names_the_file_line_and_column() {
    let dir = folder(&[(
        "a.json",
        "{\n  \"etablissements\": [\n    {\"nom\": }\n  ]\n}\n",
    )]);
    let err = read_dir(dir.path()).unwrap_err();
    let ReadError::Json { line, column, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*line, *column), (3, 13), "{err}");
    assert!(
        err.to_string().contains("a.json:3:13: not valid JSON"),
        "{err}"
    );
}

#[test]
fn a_schema_error_names_the_json_path_and_what_was_expected() {
    let bad = r#"{"etablissements": [{"nom": "A", "domaines": [{"nom": "D", "processus": {"nom": "P"}}]}]}"#;
    let dir = folder(&[("a.json", bad)]);
    let err = read_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("a.json: at $.etablissements[0].domaines[0].processus: expected an array, found an object"),
        "{err}"
    );
    let bad = r#"{"flux": [{"sourceTrigramme": ["GAP"]}]}"#;
    let dir = folder(&[("a.flux.json", bad)]);
    let err = read_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "at $.flux[0].sourceTrigramme: expected text, a number or a boolean, found an array"
        ),
        "{err}"
    );
    let dir = folder(&[("trigrammes.json", r#"{"GAP": 3}"#)]);
    let err = read_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("at $.GAP: expected text (the application's name), found a number"),
        "{err}"
    );
}

#[test]
fn it_is_as_lenient_as_it_lanscape() {
    let dir = folder(&[
        // No `etablissements`: nothing for the business map.
        ("notes.json", r#"{"comment": "x"}"#),
        // Names: `etablissement`, else `nom`, else the file name.
        (
            "b.infra.json",
            r#"{"nom": "B", "serveurs": [{"nom": "srv", "ip": "10.0.0.1"}]}"#,
        ),
        ("c.network.json", r#"{"vlans": [{"id": 1, "name": "V"}]}"#),
        ("d.flux.json", r#"{"etablissement": "D"}"#),
        (
            "a.json",
            r#"{"etablissements": [{"nom": "A", "domaines": [{"nom": "D", "processus": [{"nom": "P", "applications": [{"nom": "App", "trigramme": " gap ", "port": 1}]}]}]}]}"#,
        ),
        ("README.txt", "not read"),
    ]);
    let atlas = read_dir(dir.path()).unwrap();
    assert_eq!(atlas.establishments.len(), 1);
    assert_eq!(atlas.infrastructure[0].establishment, "B");
    assert_eq!(atlas.infrastructure[0].items[0].name(), "srv");
    assert_eq!(
        crate::model::text(&atlas.infrastructure[0].items[0].ip),
        "10.0.0.1"
    );
    assert_eq!(atlas.network[0].establishment, "c");
    assert_eq!(crate::model::text(&atlas.network[0].items[0].name), "V");
    assert_eq!(atlas.flows[0].establishment, "D");
    assert!(atlas.flows[0].items.is_empty());
    let app = atlas.occurrences().next().unwrap().application;
    assert_eq!(app.trigramme(), "GAP");
    assert!(app.interfaces.is_empty());
}

#[test]
fn an_empty_or_missing_folder_is_refused() {
    let dir = folder(&[("README.txt", "x")]);
    let err = read_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no map data"), "{err}");
    let err = read_dir(Path::new("/nonexistent/atlas"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read /nonexistent/atlas"), "{err}");
}

#[test]
fn mercator_fields_are_read_when_present() {
    let dir = folder(&[(
        "a.flux.json",
        r#"{"flux": [{"sourceTrigramme": "A", "targetTrigramme": "B", "protocol": "HL7", "crypted": true, "bidirectional": "non"},
                     {"sourceTrigramme": "A", "targetTrigramme": "B", "protocol": "SFTP"},
                     {"sourceTrigramme": "A", "targetTrigramme": "B", "protocol": "HTTPS", "crypted": false}]}"#,
    )]);
    let atlas = read_dir(dir.path()).unwrap();
    let flows: Vec<_> = atlas
        .all_flows()
        .map(|(_, f)| (f.encrypted(), f.bidirectional))
        .collect();
    assert_eq!(flows, [(true, Some(false)), (true, None), (false, None)]);
    let dir = folder(&[("a.flux.json", r#"{"flux": [{"crypted": "maybe"}]}"#)]);
    let err = read_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("at $.flux[0].crypted: expected a boolean, found text"),
        "{err}"
    );
}
