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
