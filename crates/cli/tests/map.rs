//! `guichet map`: the map commands on it-lanscape's demo data folder, as
//! an architect's nightly job runs them.

use std::process::Command;

use serde_json::Value;

use crate::common::{guichet_bin, run_bounded, show, WAIT};

/// `guichet map ARGS` in the current folder, bounded (generously: a
/// debug build reading a 20,000-application map on a loaded machine).
fn map(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(guichet_bin());
    cmd.arg("map").args(args);
    run_bounded(cmd, WAIT * 4)
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

/// The card `id`'s figure in a dumped DOM.
fn card(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no card {id}"));
    let value = &dom[at..];
    let start = value.find("class=\"v\">").unwrap() + "class=\"v\">".len();
    value[start..start + value[start..].find('<').unwrap()].to_string()
}

/// The site built from the demo data, read in headless Chromium from
/// disk: the dashboard's figures, a filter that changes them, the
/// incident answer, the matrix, in French and English; no request
/// leaves the page, and a page that makes one is caught.
#[test]
fn the_site_opens_from_disk_and_shows_the_map() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let out = map(&["build", &data, "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let Some(browser) = crate::common::browser::Browser::new(dir.path()) else {
        return;
    };
    let url = format!("file://{}", site.join("index.html").display());
    let dom = browser.dom(&url);
    let figures: Vec<String> = [
        "k-applications",
        "k-proc",
        "k-align",
        "k-multi",
        "k-compl",
        "k-flows",
        "k-encrypted",
    ]
    .iter()
    .map(|id| card(&dom, id))
    .collect();
    assert_eq!(
        figures,
        ["102", "100.0 %", "96.0 %", "40.2 %", "33.3 %", "75", "24.0 %"]
    );
    assert!(dom.contains("Alignement des processus"));

    // A filter, as the page's select writes it into the address.
    let dom = browser.dom(&format!(
        "{url}#indicators?etab=CH+Val-de-Lys&criticality=Critique"
    ));
    let figures: Vec<String> = ["k-applications", "k-align", "k-multi", "k-flows"]
        .iter()
        .map(|id| card(&dom, id))
        .collect();
    let out = map(&[
        "kpis",
        &data,
        "--etab",
        "CH Val-de-Lys",
        "--criticality",
        "critical",
        "--format",
        "json",
    ]);
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        figures,
        [
            cli["applications"].to_string(),
            format!("{:.1} %", cli["alignPct"].as_f64().unwrap()),
            format!("{:.1} %", cli["multiPct"].as_f64().unwrap()),
            cli["flows"].to_string()
        ],
        "the page and `map kpis` agree"
    );

    let dom = browser.dom(&format!(
        "{url}#incident?kind=app&value=GAP&status=hs&lang=en"
    ));
    assert!(dom.contains("Impacted applications (8)"), "{dom}");
    let dom = browser.dom(&format!("{url}#quality"));
    assert_eq!(card(&dom, "q-score"), "79");
    assert_eq!(card(&dom, "q-coherence"), "76");
    assert!(dom.contains("Cohérence · 369/483 contrôles"));
    assert!(
        dom.contains("Constats (237)"),
        "234 of it-lanscape's and guichet's 3"
    );
    let dom = browser.dom(&format!("{url}#matrix"));
    assert!(dom.contains("data-state=\"clear\""));
    assert!(dom.contains("data-state=\"encrypted\""));
    for view in ["indicators", "business", "matrix", "quality"] {
        browser.screenshot(&format!("{url}#{view}"), &format!("map-{view}.png"));
    }

    assert_eq!(
        browser.requests(&format!("{url}#business")),
        Vec::<String>::new()
    );
    // The check sees a page that does fetch something.
    let leak = dir.path().join("leak.html");
    std::fs::write(&leak, "<img src=\"http://127.0.0.1:9/x.png\">").unwrap();
    let seen = browser.requests(&format!("file://{}", leak.display()));
    assert_eq!(seen, ["http://127.0.0.1:9/x.png"]);
}

/// The page writes the quality report from its findings: the same
/// Markdown, byte for byte, as `guichet map check --markdown`, in either
/// language.
#[test]
fn the_page_writes_the_same_quality_report_as_check() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(browser) = crate::common::browser::Browser::new(dir.path()) else {
        return;
    };
    for lang in ["fr", "en"] {
        let site = dir.path().join(format!("site-{lang}"));
        let out = map(&[
            "build",
            &data,
            "--lang",
            lang,
            "--out",
            site.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", show(&out));
        let report = dir.path().join(format!("quality-{lang}.md"));
        map(&[
            "check",
            &data,
            "--lang",
            lang,
            "--markdown",
            report.to_str().unwrap(),
        ]);
        let expected = std::fs::read_to_string(&report).unwrap();
        // The page as built, and a line that shows what its download holds.
        let page = std::fs::read_to_string(site.join("index.html")).unwrap();
        let shown = page.replace(
            "</body></html>",
            "<script>document.body.append(Object.assign(document.createElement('pre'), \
             { id: 'report', textContent: qualityMarkdown() }))</script></body></html>",
        );
        let harness = site.join("report.html");
        std::fs::write(&harness, shown).unwrap();
        let dom = browser.dom(&format!("file://{}", harness.display()));
        let start = dom.find("<pre id=\"report\">").expect("the report shown") + 17;
        let text = &dom[start..start + dom[start..].find("</pre>").unwrap()];
        let text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&");
        assert_eq!(text, expected, "{lang}");
    }
}

/// A spreadsheet of flows (as French Excel writes CSV) merged into an
/// establishment's flow file: the map counts them, and importing the same
/// sheet again changes nothing.
#[test]
fn flows_from_a_spreadsheet_join_the_map() {
    let Some(demo) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(&demo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
        }
    }
    let sheet = dir.path().join("flux.csv");
    std::fs::write(
        &sheet,
        "Source;Cible;Protocole;Port;Type message;EAI;Chiffré\nSIL;GAP;HL7;2575;RDE;Enovacom Engine;non\nGAP;ORB;HL7;2575;ADT;Enovacom Engine;non\n",
    )
    .unwrap();
    let into = data.join("ch_val_de_lys.flux.json");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import-flows",
            sheet.to_str().unwrap(),
            "--into",
            into.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        map(&args)
    };
    let out = import(&["--mode", "merge"]);
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("2 row(s) read from sheet \"flux.csv\": 1 added, 1 updated, 26 flow(s)"),
        "{said}"
    );
    let out = import(&["--mode", "merge"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 0 added, 2 updated, 26 flow(s)"));
    let out = map(&["kpis", data.to_str().unwrap(), "--format", "json"]);
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(k["flows"], 76);

    // The sheet's flows alone, with a column named by hand.
    let out = import(&["--column", "messageType=Type message", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 added, 0 updated, 2 flow(s)"));
    let out = import(&["--column", "source=Source"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flow field \"source\""));
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

/// A group far larger than any real one (20,000 applications, a trigramme
/// each, flows between them, one of them to itself and one to nowhere):
/// every command answers, none crashes, and the findings name what is
/// wrong.
#[test]
fn a_folder_of_20000_applications_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let tri = |n: usize| {
        let l = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        format!(
            "{}{}{}",
            l[n / 676 % 26] as char,
            l[n / 26 % 26] as char,
            l[n % 26] as char
        )
    };
    let apps: Vec<Value> = (0..20_000)
        .map(|n| serde_json::json!({"nom": format!("App {n}"), "trigramme": tri(n % 17_576),
             "criticite": "Standard", "hebergement": "SaaS", "editeur": "E", "interfaces": {"Autre": true}}))
        .collect();
    let doc = serde_json::json!({"etablissements": [{"nom": "Groupe", "domaines": [{"nom": "D",
        "processus": [{"nom": "P", "applications": apps}]}]}]});
    std::fs::write(dir.path().join("groupe.json"), doc.to_string()).unwrap();
    let mut flux: Vec<Value> = (0..5_000)
        .map(|n| serde_json::json!({"id": format!("F{n}"), "sourceTrigramme": tri(n), "targetTrigramme": tri(n + 1),
             "protocol": "HL7", "port": 2575, "messageType": "ADT", "interfaceType": "Administrative",
             "eaiName": "EAI", "description": "d"}))
        .collect();
    flux.push(
        serde_json::json!({"id": "SELF", "sourceTrigramme": "AAA", "targetTrigramme": "AAA"}),
    );
    flux.push(
        serde_json::json!({"id": "NOWHERE", "sourceTrigramme": "AAA", "targetTrigramme": "ZZ9"}),
    );
    std::fs::write(
        dir.path().join("groupe.flux.json"),
        serde_json::json!({"etablissement": "Groupe", "flux": flux}).to_string(),
    )
    .unwrap();
    let data = dir.path().to_str().unwrap();
    let out = map(&["kpis", data, "--format", "json"]);
    assert!(out.status.success(), "{}", show(&out));
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (k["applications"].as_u64(), k["flows"].as_u64()),
        (Some(20_000), Some(5_002))
    );
    let out = map(&["check", data, "--format", "json"]);
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = q["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["subject"] == "NOWHERE"
                || f["subject"].as_str().is_some_and(|s| s.starts_with("SELF"))
        })
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"unknown-trigramme"), "{codes:?}");
    assert!(codes.contains(&"self-flow"), "{codes:?}");
    let site = dir.path().join("site");
    let out = map(&["build", data, "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let out = map(&[
        "incident", data, "--app", "AAA", "--status", "hs", "--format", "json",
    ]);
    assert!(out.status.success(), "{}", show(&out));
}

/// `examples/map/run.sh` as its README runs it (on ports of its own): the
/// gateway's two routes observed, one flow declared and seen, one seen
/// and declared nowhere; the site built, and served live at `/map`.
#[test]
fn the_map_example_runs_as_its_readme_says() {
    let Some(data) = demo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/map/run.sh");
    let base = crate::common::free_block(5);
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("GUICHET", guichet_bin())
        .env("DATA", &data)
        .env("WORK", dir.path())
        .env("PORT_BASE", base.to_string());
    let out = run_bounded(cmd, std::time::Duration::from_secs(120));
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
    assert!(out.status.success(), "{}\n{log}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    for line in [
        "SILLAGE^CHVDL (SIL)      GAP^CHVDL (GAP)          RDE^O11",
        "declared flows observed     4.0 %",
        "shadow flows                1",
    ] {
        assert!(said.contains(line), "{line:?} not in:\n{said}");
    }
    let page = std::fs::read_to_string(dir.path().join("site/index.html")).unwrap();
    assert!(crate::common::page_names_route(&page, "pharmacie"));
    let live = std::fs::read_to_string(dir.path().join("site/live.html")).unwrap();
    assert!(
        live.starts_with("<!DOCTYPE html>") && crate::common::page_names_route(&live, "pharmacie"),
        "the live map, from the admin listener:\n{}",
        &live[..live.len().min(300)]
    );
    assert!(
        !page.contains("PATIENT^TEST") && !page.contains("900001"),
        "message content in the site"
    );
}

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    crate::common::http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `guichet run` with `[map]` over a copy of the demo data folder, no
/// journal: `/map` serves the page of the declared map; a file of the
/// folder rewritten broken turns it into 503 naming the file (not the
/// last good page), logged once; repaired, the page comes back.
#[test]
fn the_admin_listener_serves_the_map_live_and_says_when_its_data_breaks() {
    let Some(data) = demo() else { return };
    let bench = crate::common::Bench::new();
    std::fs::create_dir(bench.path("carto")).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&path, bench.path("carto").join(path.file_name().unwrap())).unwrap();
        }
    }
    let admin = crate::common::free_port();
    let config = format!(
        "[gateway]\nwatch_interval = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [map]\ndata = \"carto\"\nlang = \"en\"\n\n\
         [[route]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n"
    );
    let check = bench.guichet(&[
        "check",
        "-c",
        bench.write("guichet.toml", &config).to_str().unwrap(),
    ]);
    let report = show(&check);
    assert!(check.status.success(), "{report}");
    assert!(
        report.contains("[map]: data ")
            && report.contains("3 establishment(s), 75 declared flow(s)"),
        "{report}"
    );
    assert!(
        report.contains("WARNING [map]: no [journal]: the map shows declared flows only"),
        "{report}"
    );

    let gateway = bench.run("guichet.toml", &config);
    crate::common::wait_http(admin, "/readyz", "ready", |code, _| code == 200);
    let (code, page) = get(admin, "/map");
    assert_eq!(code, 200, "{page}\n{}", gateway.log());
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(page.contains("content=\"default-src 'none';"), "its policy");
    let data = crate::common::page_data(&page);
    assert!(
        data["strings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "CH Val-de-Lys"),
        "the establishment in the live page"
    );
    assert_eq!(data["flows"].as_array().map(Vec::len), Some(75));
    assert_eq!(data["quality"]["score"], 79);

    let flows = bench.path("carto/ch_val_de_lys.flux.json");
    let good = std::fs::read(&flows).unwrap();
    std::fs::write(&flows, "{\"flux\": [\n").unwrap();
    let reason =
        crate::common::wait_http(admin, "/map", "the broken file said", |code, _| code == 503);
    assert!(
        reason.starts_with("the map cannot be shown: ")
            && reason.contains("ch_val_de_lys.flux.json:")
            && reason.contains("not valid JSON"),
        "{reason}"
    );
    assert!(!reason.contains("<html"), "{reason}");
    // The log reaches the test through a pipe: wait for the line before
    // counting, so a slow reader is not taken for a missing warning.
    gateway.wait_line("the warning of the broken data", |l| {
        l.contains("/map cannot be rendered")
    });
    for _ in 0..3 {
        assert_eq!(get(admin, "/map").0, 503);
    }
    let warnings = gateway
        .lines()
        .iter()
        .filter(|l| l.contains("/map cannot be rendered"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one warning per new reason:\n{}",
        gateway.log()
    );
    let (_, status) = get(admin, "/status");
    assert!(status.contains("<a href=/map>/map</a>"), "{status}");
    let check = bench.guichet(&["check", "-c", bench.path("guichet.toml").to_str().unwrap()]);
    let report = show(&check);
    assert!(!check.status.success(), "{report}");
    assert!(
        report.contains("[map]: data: ")
            && report.contains("ch_val_de_lys.flux.json:2:0: not valid JSON"),
        "{report}"
    );

    std::fs::write(&flows, good).unwrap();
    let again = crate::common::wait_http(admin, "/map", "the page again", |code, _| code == 200);
    assert_eq!(
        crate::common::page_data(&again)["flows"]
            .as_array()
            .map(Vec::len),
        Some(75)
    );
    let (_, metrics) = get(admin, "/metrics");
    for line in [
        "guichet_map_renders_total{outcome=\"ok\"} 2",
        "guichet_map_renders_total{outcome=\"data_error\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}
