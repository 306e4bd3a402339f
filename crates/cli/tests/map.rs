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
fn check_prints_it_lanscapes_score_and_findings_as_json() {
    let Some(data) = demo() else { return };
    let out = map(&["check", &data, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "critical findings: {}",
        show(&out)
    );
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&String> = q.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dimensions", "findings", "score"], "exactly these");
    assert_eq!(q["score"], 79);
    let dims: Vec<(String, Value, Value, Value)> =
        ["completeness", "coherence", "validity", "exploitability"]
            .iter()
            .map(|d| {
                let v = &q["dimensions"][d];
                (
                    d.to_string(),
                    v["score"].clone(),
                    v["passed"].clone(),
                    v["total"].clone(),
                )
            })
            .collect();
    let expected = [
        ("completeness", 100, 1755, 1758),
        ("coherence", 76, 369, 483),
        ("validity", 100, 813, 813),
        ("exploitability", 29, 48, 165),
    ]
    .map(|(d, s, p, t)| {
        (
            d.to_string(),
            Value::from(s),
            Value::from(p),
            Value::from(t),
        )
    });
    assert_eq!(dims, expected);
    let findings = q["findings"].as_array().unwrap();
    let theirs: Vec<&Value> = findings.iter().filter(|f| f["extra"] == false).collect();
    assert_eq!(theirs.len(), 234);
    let code = |c: &str| theirs.iter().filter(|f| f["code"] == c).count();
    assert_eq!(code("duplicate-trigramme"), 102);
    let critical = theirs
        .iter()
        .filter(|f| f["severity"] == "critical")
        .count();
    assert_eq!(critical, 6);
    let first = theirs[0];
    for field in ["severity", "dimension", "code", "subject", "message"] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    assert_eq!(first["subject"], "BlocManager (CH Val-de-Lys)");
    let ours: Vec<&Value> = findings.iter().filter(|f| f["extra"] == true).collect();
    assert_eq!(ours.len(), 3);
    assert_eq!(
        (&ours[0]["code"], &ours[0]["severity"]),
        (&"self-flow".into(), &"medium".into())
    );
}

#[test]
fn check_speaks_french_or_english_and_writes_a_markdown_report() {
    let Some(data) = demo() else { return };
    let out = map(&["check", &data]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("score             79/100\n"), "{text}");
    assert!(
        text.contains("Cohérence          76 %  (369/483 checks)\n"),
        "{text}"
    );
    assert!(text.contains("\nCritique (6)\n"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("quality.md");
    let out = map(&[
        "check",
        &data,
        "--lang",
        "en",
        "--markdown",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nCritical (6)\n"), "{text}");
    assert!(
        text.contains("is critical but has neither a server"),
        "{text}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# Data quality\n"), "{md}");
    assert!(md.contains("| Overall score | 79/100 |\n"), "{md}");
}

/// One establishment with one application, and its other files.
fn one_application(dir: &std::path::Path, app: &str) {
    let business = format!(
        r#"{{"etablissements": [{{"nom": "A", "domaines": [{{"nom": "D", "processus":
        [{{"nom": "P", "applications": [{app}]}}]}}]}}]}}"#
    );
    std::fs::write(dir.join("a.json"), business).unwrap();
    std::fs::write(
        dir.join("a.infra.json"),
        r#"{"etablissement": "A", "serveurs": []}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("a.network.json"),
        r#"{"etablissement": "A", "vlans": []}"#,
    )
    .unwrap();
}

#[test]
fn check_exits_1_on_a_critical_finding_0_without_and_2_on_an_unreadable_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    one_application(
        dir.path(),
        r#"{"nom": "Bloc", "trigramme": "BLC", "criticite": "Critique", "hebergement": "Interne"}"#,
    );
    let out = map(&["check", path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    let critical: Vec<&Value> = q["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .collect();
    assert_eq!(critical.len(), 1);
    assert_eq!(
        critical[0]["message"],
        "Bloc (A) est critique mais sans serveur ni hébergement externe explicite."
    );

    one_application(
        dir.path(),
        r#"{"nom": "Bloc", "trigramme": "BLC", "criticite": "Critique", "hebergement": "SaaS"}"#,
    );
    let out = map(&["check", path]);
    assert_eq!(out.status.code(), Some(0), "hosted outside: {}", show(&out));

    std::fs::write(dir.path().join("a.flux.json"), "{\"flux\": [").unwrap();
    let out = map(&["check", path]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a.flux.json"),
        "{}",
        show(&out)
    );
    let out = map(&["check", "/nonexistent/data"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}
