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

/// (trigramme, status, depth) of each impacted application.
fn impacted(out: &std::process::Output) -> Vec<(String, String, u64)> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["impacted"].as_array().unwrap();
    list.iter()
        .map(|i| {
            let text = |k: &str| i[k].as_str().unwrap().to_string();
            (
                text("trigramme"),
                text("status"),
                i["depth"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn rows(list: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    list.iter()
        .map(|(t, s, d)| (t.to_string(), s.to_string(), *d))
        .collect()
}

/// it-lanscape's answer (from its own code): GAP down slows the seven
/// applications it feeds, nothing deeper.
#[test]
fn incident_gap_down_gives_it_lanscapes_answer() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("incident.md");
    let report_arg = report.to_str().unwrap();
    let args = ["--app", "GAP", "--status", "hs", "--format", "json"];
    let out = map(&[&["incident", &data][..], &args, &["--markdown", report_arg]].concat());
    assert!(out.status.success(), "{}", show(&out));
    let want = [
        ("GAP", "hs", 0),
        ("ENO", "latence", 1),
        ("IFC", "latence", 1),
        ("ORB", "latence", 1),
        ("MAI", "latence", 1),
        ("MYR", "latence", 1),
        ("PYX", "latence", 1),
        ("TAB", "latence", 1),
    ];
    assert_eq!(impacted(&out), rows(&want));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rules"], "it-lanscape");
    assert_eq!(v["start"]["label"], "Maincare IGAP (GAP)");
    assert_eq!(v["impacted"][0]["causes"][0]["kind"], "application");
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.starts_with("# Rapport incident / PRA-PCA\n\nGénéré le "),
        "{md}"
    );
    assert!(md.contains("\n| Applications impactées | 8 |\n"), "{md}");
}

#[test]
fn incident_an_eai_fails_only_as_a_node() {
    let Some(data) = demo() else { return };
    let eai = [
        "incident",
        &data,
        "--eai",
        "Enovacom Engine",
        "--status",
        "hs",
    ];
    let out = map(&eai);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--eai and --route need --eai-nodes"), "{err}");

    let out = map(&[&eai[..], &["--eai-nodes", "--format", "json"]].concat());
    assert!(out.status.success(), "{}", show(&out));
    let through = [
        ("ENO", "latence", 1),
        ("GAP", "latence", 1),
        ("IFC", "latence", 1),
        ("ORB", "latence", 1),
        ("PYX", "latence", 1),
    ];
    assert_eq!(impacted(&out), rows(&through));

    // The EAI's own application: alone by it-lanscape's rules, the EAI's
    // outage once tied to it.
    let eno = [
        "incident", &data, "--app", "ENO", "--status", "hs", "--format", "json",
    ];
    assert_eq!(impacted(&map(&eno)), rows(&[("ENO", "hs", 0)]));
    let out = map(&[&eno[..], &["--eai-nodes"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--eai-app \"Enovacom Engine=ENO\""), "{err}");
    let tie = ["--eai-nodes", "--eai-app", "Enovacom Engine=ENO"];
    let mut want = rows(&through);
    want[0] = ("ENO".into(), "hs".into(), 0);
    assert_eq!(impacted(&map(&[&eno[..], &tie].concat())), want);
}

#[test]
fn incident_on_an_unknown_trigramme_exits_2_and_names_it() {
    let Some(data) = demo() else { return };
    let out = map(&["incident", &data, "--app", "GAX", "--status", "hs"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no application GAX in the map (did you mean GAP, SAX?)\n"
    );
    assert!(out.stdout.is_empty());
}

/// A gateway route is a node under guichet's rules: its outage reaches
/// the target of the traffic that crosses it.
#[test]
fn incident_a_route_of_observed_traffic_fails() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let observed = dir.path().join("observed.json");
    let seen = serde_json::json!([{
        "route": "adt-vdl", "kind": "mllp", "source": "GAP^VDL", "target": "ORB^VDL",
        "message_type": "ADT^A01", "tls_in": true, "tls_out": true, "count": 120,
        "first_seen": "2026-12-01T00:00:00Z", "last_seen": "2026-12-05T23:59:00Z",
        "outcomes": {"AA": 120}, "source_trigramme": "GAP", "target_trigramme": "ORB"
    }]);
    std::fs::write(&observed, seen.to_string()).unwrap();
    let file = observed.to_str().unwrap();
    let route = |name: &str| {
        let args = ["--eai-nodes", "--observed", file, "--format", "json"];
        map(&[
            &["incident", &data, "--route", name, "--status", "hs"][..],
            &args,
        ]
        .concat())
    };
    let out = route("adt-vdl");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(impacted(&out), rows(&[("ORB", "latence", 1)]));
    let out = route("adt");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no observed traffic crosses a route named adt (known: adt-vdl)\n"
    );
}
