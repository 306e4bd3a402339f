//! `guichet validate` and `guichet convert` on the shipped examples and
//! on generated folders: verdicts, exit codes, report formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{guichet_bin, run_bounded, show, WAIT};

/// The example folder of the repository.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability")
}

/// A time at which the examples' dates are neither future nor stale.
const NOW: &str = "2026-12-05T10:00:00+01:00";

fn guichet(args: &[&str]) -> Output {
    let mut cmd = Command::new(guichet_bin());
    cmd.args(args);
    run_bounded(cmd, WAIT)
}

/// `guichet validate --now NOW ARGS...`: dates checked as of the
/// examples' day.
fn validate_now(args: &[&str]) -> Output {
    guichet(&[&["validate", "--now", NOW], args].concat())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_report(out: &Output) -> Vec<Value> {
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)));
    report.as_array().unwrap().clone()
}

#[test]
fn the_examples_are_judged_file_by_file_and_the_exit_code_says_so() {
    let dir = examples();
    let referential = dir.join("referential.csv");
    let rules = dir.join("rules.toml");
    let out = validate_now(&[
        "--format",
        "json",
        "--lang",
        "en",
        "--referential",
        path(&referential),
        "--rules",
        path(&rules),
        path(&dir),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json_report(&out);
    let verdicts: Vec<(String, bool, Vec<String>)> = report
        .iter()
        .map(|file| {
            let name = file["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            let codes = file["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["code"].as_str().unwrap().to_string())
                .collect();
            (name, file["valid"].as_bool().unwrap(), codes)
        })
        .collect();
    let want = [
        ("finess-key.xml", false, vec!["finess.key"]),
        ("negative-beds.xml", false, vec!["capacity.negative"]),
        ("unknown-unit.json", false, vec!["unit.unknown"]),
        ("chu-rennes-ssr.fhir.json", true, vec![]),
        ("chu-rennes-ssr.xml", true, vec![]),
    ]
    .map(|(name, valid, codes)| {
        (
            name.to_string(),
            valid,
            codes.into_iter().map(String::from).collect::<Vec<_>>(),
        )
    });
    assert_eq!(verdicts, want);
    let negative = &report[1]["violations"][0];
    assert_eq!(negative["severity"], "error");
    assert_eq!(
        negative["path"],
        "/bedAvailability/unit[1]/capacity[2]/nbCapacity"
    );
    assert_eq!(negative["message"], "negative count: -4");
}

#[test]
fn a_valid_file_exits_0_and_warnings_do_not_fail_it() {
    let file = examples().join("valid/chu-rennes-ssr.xml");
    let out = validate_now(&["--lang", "en", path(&file)]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chu-rennes-ssr.xml: valid"), "{text}");
    // Two days later the same file is still valid, its dates stale.
    let later = guichet(&[
        "validate",
        "--lang",
        "en",
        "--now",
        "2026-12-07T10:00:00+01:00",
        path(&file),
    ]);
    assert_eq!(later.status.code(), Some(0), "{}", show(&later));
    assert!(String::from_utf8_lossy(&later.stdout).contains("warning date.stale"));
}

#[test]
fn messages_are_french_by_default() {
    let file = examples().join("invalid/negative-beds.xml");
    let out = validate_now(&[path(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("erreur capacity.negative"), "{text}");
    assert!(text.contains("nombre négatif : -4"), "{text}");
    assert!(
        text.contains("1 fichier(s), 0 valide(s), 1 invalide(s)"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_file() {
    let dir = examples();
    let missing = guichet(&["validate", "/nonexistent/beds"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/beds"));

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("referential.csv");
    std::fs::write(&bad, "finess,unite\n350054680,SSR\n").unwrap();
    let out = guichet(&["validate", "--referential", path(&bad), path(&dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("referential.csv") && stderr.contains("line 1"),
        "{stderr}"
    );

    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, "[severity]\n\"lits.negatifs\" = \"off\"\n").unwrap();
    let out = guichet(&["validate", "--rules", path(&rules), path(&dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`lits.negatifs` is not a rule"));

    let out = guichet(&["validate", "--now", "hier", path(&dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn a_duplicate_unit_in_the_referential_is_reported_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let referential = tmp.path().join("referential.csv");
    let text = std::fs::read_to_string(examples().join("referential.csv")).unwrap()
        + "350054680,REA-1,Réanimation (doublon)\n";
    std::fs::write(&referential, text).unwrap();
    let file = examples().join("valid/chu-rennes-ssr.xml");
    let out = validate_now(&[
        "--lang",
        "en",
        "--referential",
        path(&referential),
        path(&file),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unit REA-1 of 350054680 is named 2 times (lines 4, 6)"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("error unit.ambiguous"));
}

#[test]
fn junit_has_a_case_per_file_and_a_failure_per_invalid_one() {
    if !crate::common::have("python3") {
        return;
    }
    let dir = examples();
    let referential = dir.join("referential.csv");
    let out = validate_now(&[
        "--format",
        "junit",
        "--referential",
        path(&referential),
        path(&dir),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // Read by an XML parser that is not ours.
    let script = "import sys, xml.etree.ElementTree as E\n\
        suite = E.parse(sys.stdin).getroot().find('testsuite')\n\
        cases = suite.findall('testcase')\n\
        failed = [c.get('name').rsplit('/', 1)[1] + ':' + c.find('failure').get('message') for c in cases if c.find('failure') is not None]\n\
        print(suite.get('tests'), suite.get('failures'), len(cases), ' '.join(failed))\n";
    let mut python = Command::new("python3");
    python.args(["-c", script]);
    let parsed = crate::common::run_with_input(&mut python, Some(&out.stdout), WAIT);
    assert!(parsed.status.success(), "{}", show(&parsed));
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "5 3 5 finess-key.xml:finess.key negative-beds.xml:capacity.negative unknown-unit.json:unit.unknown"
    );
}

#[test]
fn convert_goes_to_fhir_and_back_to_the_same_xml() {
    let xml_file = examples().join("valid/chu-rennes-ssr.xml");
    let fhir = guichet(&["convert", "--to", "fhir", path(&xml_file)]);
    assert!(fhir.status.success(), "{}", show(&fhir));
    assert_eq!(
        fhir.stdout,
        std::fs::read(examples().join("valid/chu-rennes-ssr.fhir.json")).unwrap()
    );
    let tmp = tempfile::tempdir().unwrap();
    let fhir_file = tmp.path().join("beds.json");
    std::fs::write(&fhir_file, &fhir.stdout).unwrap();
    let back = guichet(&["convert", "--to", "xml", path(&fhir_file)]);
    assert!(back.status.success(), "{}", show(&back));
    assert_eq!(back.stdout, std::fs::read(&xml_file).unwrap());

    let code = guichet(&[
        "convert",
        "--to",
        "fhir",
        "--coding",
        "code",
        path(&xml_file),
    ]);
    let json: Value = serde_json::from_slice(&code.stdout).unwrap();
    let status = &json["entry"][0]["resource"]["extension"][0]["extension"][1];
    assert_eq!(status["valueCode"], "01");

    let broken = tmp.path().join("broken.xml");
    std::fs::write(
        &broken,
        "<bedAvailability xmlns=\"urn:guichet:bed-availability:1\"><unit>",
    )
    .unwrap();
    let out = guichet(&["convert", "--to", "fhir", path(&broken)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("xml.invalid"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_folder_of_many_files_is_reported_in_order_with_odd_and_oversized_files() {
    let tmp = tempfile::tempdir().unwrap();
    let valid = std::fs::read_to_string(examples().join("valid/chu-rennes-ssr.xml")).unwrap();
    let invalid = std::fs::read_to_string(examples().join("invalid/negative-beds.xml")).unwrap();
    for i in 0..300 {
        let text = if i % 3 == 0 { &invalid } else { &valid };
        std::fs::write(tmp.path().join(format!("lits {i:03} été'&.xml")), text).unwrap();
    }
    std::fs::write(tmp.path().join("notes.txt"), "not a document").unwrap();
    std::fs::write(tmp.path().join(".hidden.xml"), "<").unwrap();
    let big = tmp.path().join("zz-big.xml");
    std::fs::write(&big, valid.repeat(3)).unwrap();
    std::os::unix::fs::symlink(
        examples().join("invalid/finess-key.xml"),
        tmp.path().join("zz-link.xml"),
    )
    .unwrap();
    // A link back up the tree is not followed (the walk would not end).
    std::os::unix::fs::symlink(tmp.path(), tmp.path().join("zz-loop")).unwrap();
    let max = (valid.len() + 10).to_string();
    let out = validate_now(&["--format", "json", "--max-bytes", &max, path(tmp.path())]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json_report(&out);
    assert_eq!(report.len(), 302);
    for (i, file) in report.iter().take(300).enumerate() {
        assert!(file["file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("lits {i:03} été'&.xml")));
        assert_eq!(file["valid"], i % 3 != 0, "{file}");
    }
    assert_eq!(report[300]["violations"][0]["code"], "file.too_large");
    assert_eq!(report[301]["violations"][0]["code"], "finess.key");
}

#[test]
fn the_examples_and_what_convert_writes_match_the_published_schema() {
    if !crate::common::have("xmllint") {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bed-availability.xsd");
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = [
        "valid/chu-rennes-ssr.xml",
        "invalid/finess-key.xml",
        "invalid/negative-beds.xml",
    ]
    .iter()
    .map(|f| examples().join(f))
    .collect();
    let converted = guichet(&[
        "convert",
        "--to",
        "xml",
        path(&examples().join("invalid/unknown-unit.json")),
    ]);
    assert!(converted.status.success(), "{}", show(&converted));
    let written = tmp.path().join("unknown-unit.xml");
    std::fs::write(&written, &converted.stdout).unwrap();
    files.push(written);
    let mut xmllint = Command::new("xmllint");
    xmllint
        .args(["--noout", "--schema", path(&schema)])
        .args(&files);
    let out = run_bounded(xmllint, WAIT);
    assert!(out.status.success(), "{}", show(&out));

    // What the schema refuses, guichet refuses too.
    let bad = tmp.path().join("bad.xml");
    let text = std::fs::read_to_string(&files[0])
        .unwrap()
        .replace("<nbCapacity>30<", "<nbCapacity>trente<");
    std::fs::write(&bad, text).unwrap();
    let mut xmllint = Command::new("xmllint");
    xmllint.args(["--noout", "--schema", path(&schema), path(&bad)]);
    assert!(!run_bounded(xmllint, WAIT).status.success());
    let out = guichet(&["validate", "--format", "json", path(&bad)]);
    assert_eq!(json_report(&out)[0]["violations"][0]["code"], "xml.invalid");
}
