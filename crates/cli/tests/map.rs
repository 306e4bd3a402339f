//! `guichet map`: the map commands on it-lanscape's demo data folder, as
//! an architect's nightly job runs them.

use std::process::Command;

use serde_json::Value;

use crate::common::{guichet_bin, run_bounded, show, WAIT};

/// `guichet map ARGS` in the current folder, bounded.
fn map(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(guichet_bin());
    cmd.arg("map").args(args);
    run_bounded(cmd, WAIT)
}

fn demo() -> Option<String> {
    guichet_testsupport::fixtures::lanscape_dir().map(|d| d.display().to_string())
}

#[test]
fn kpis_print_it_lanscapes_figures_and_guichets() {
    let Some(data) = demo() else { return };
    let out = map(&["kpis", &data, "--format", "json"]);
    assert!(out.status.success(), "{}", show(&out));
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    let figures: Vec<String> = [
        "applications",
        "procPct",
        "alignPct",
        "multiPct",
        "complPct",
    ]
    .iter()
    .map(|f| k[f].to_string())
    .collect();
    assert_eq!(figures, ["102", "100.0", "96.0", "40.2", "33.3"]);
    assert_eq!(k["flows"], 75);
    assert_eq!(k["encryptedPct"], 24.0);
    assert_eq!(k["hubs"][0]["trigramme"], "GAP");

    let out = map(&[
        "kpis",
        &data,
        "--etab",
        "CH Val-de-Lys",
        "--etab",
        "Clinique des Dunes",
        "--criticality",
        "critique",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (k["applications"].as_u64(), k["alignPct"].as_f64()),
        (Some(20), Some(90.0))
    );

    let out = map(&["kpis", &data]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("process alignment           100.0 %"),
        "{text}"
    );
}

#[test]
fn a_folder_that_cannot_be_read_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), "{\"etablissements\": [}").unwrap();
    let out = map(&["kpis", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.json:1:21: not valid JSON: expected value\n"),
        "{err}"
    );
    let out = map(&["kpis", "/nonexistent/data"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn exports_open_in_the_tools_they_are_for() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    for (format, name) in [
        ("drawio", "map.drawio"),
        ("csv", "matrix.csv"),
        ("mermaid", "flows.mmd"),
        ("json", "model.json"),
    ] {
        let out = map(&["export", &data, "--format", format, "--out", &file(name)]);
        assert!(out.status.success(), "{format}: {}", show(&out));
    }
    // A real XML parser takes the draw.io file (a failure under CI
    // when xmllint is missing).
    if crate::common::have("xmllint") {
        let mut cmd = Command::new("xmllint");
        cmd.args(["--noout", &file("map.drawio")]);
        let out = run_bounded(cmd, WAIT);
        assert!(out.status.success(), "xmllint: {}", show(&out));
    }
    let csv = std::fs::read_to_string(file("matrix.csv")).unwrap();
    assert!(csv.starts_with("source \\ cible,"), "{csv}");
    let mermaid = std::fs::read_to_string(file("flows.mmd")).unwrap();
    assert!(
        mermaid.contains("app_GAP -->|\"HL7 ADT\"| app_ORB"),
        "{mermaid}"
    );
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(file("model.json")).unwrap()).unwrap();
    assert_eq!(model["kpis"]["applications"], 102);
    assert_eq!(
        model["model"]["establishments"].as_array().unwrap().len(),
        3
    );
    assert_eq!(model["model"]["flows"][0]["items"][0]["source"], "GAP");
    assert!(model["matrix"]["cells"].as_array().unwrap().len() > 10);
    // Standard output when no file is named; English on demand.
    let out = map(&["export", &data, "--format", "csv", "--lang", "en"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("source \\ target,"));
}
