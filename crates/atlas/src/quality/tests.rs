use std::collections::BTreeMap;

use super::*;
use crate::read_dir;

fn demo() -> Option<Atlas> {
    let dir = guichet_testsupport::fixtures::lanscape_dir()?;
    Some(read_dir(&dir).unwrap())
}

fn folder(files: &[(&str, &str)]) -> Atlas {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    read_dir(dir.path()).unwrap()
}

/// (score, passed, total) of each dimension, in it-lanscape's order.
fn figures(q: &Quality) -> Vec<(u32, usize, usize)> {
    Dimension::ALL
        .iter()
        .map(|d| q.dimensions.get(*d))
        .map(|s| (s.score, s.passed, s.total))
        .collect()
}

fn by_code(findings: &[Finding]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.code).or_default() += 1;
    }
    counts
}

fn severities(q: &Quality) -> Vec<usize> {
    Severity::ALL.iter().map(|s| q.count(*s)).collect()
}

/// One establishment, its applications as JSON objects.
fn business(apps: &str) -> String {
    format!(
        r#"{{"etablissements": [{{"nom": "A", "domaines": [{{"nom": "D", "processus":
        [{{"nom": "P", "applications": [{apps}]}}]}}]}}]}}"#
    )
}

/// The figures Node 20 gives running it-lanscape's `analyzeDataQuality`
/// on the demo folder.
#[test]
fn the_demo_folder_scores_as_it_lanscape_scores_it() {
    let Some(atlas) = demo() else { return };
    let q = analyse(&atlas, Lang::Fr);
    assert_eq!(q.score, 79);
    assert_eq!(
        figures(&q),
        [
            (100, 1755, 1758),
            (76, 369, 483),
            (100, 813, 813),
            (29, 48, 165)
        ]
    );
    assert_eq!(q.findings.len(), 234);
    assert_eq!(severities(&q), [6, 45, 111, 72]);
    let expected = [
        ("duplicate-trigramme", 102),
        ("impact-readiness", 117),
        ("incomplete-application", 3),
        ("orphan-server", 12),
    ];
    assert_eq!(by_code(&q.findings), BTreeMap::from(expected));
    let first = &q.findings[0];
    assert_eq!(
        (first.severity, first.dimension, first.subject.as_str()),
        (
            Severity::Critical,
            Dimension::Exploitability,
            "BlocManager (CH Val-de-Lys)"
        )
    );
    assert_eq!(
        first.message,
        "BlocManager (CH Val-de-Lys) est critique mais sans serveur ni hébergement externe explicite."
    );
    assert_eq!(
        first.title,
        "Application critique non exploitable pour PRA/PCA"
    );
    let last = q.findings.last().unwrap();
    assert_eq!(
        (last.severity, last.title.as_str()),
        (Severity::Low, "Référent manquant")
    );
    assert!(q.has_critical());
}

#[test]
fn english_changes_the_texts_not_the_figures_nor_the_order() {
    let Some(atlas) = demo() else { return };
    let (fr, en) = (analyse(&atlas, Lang::Fr), analyse(&atlas, Lang::En));
    assert_eq!((en.score, figures(&en)), (fr.score, figures(&fr)));
    let subjects = |q: &Quality| {
        q.findings
            .iter()
            .map(|f| f.subject.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(subjects(&en), subjects(&fr));
    assert_eq!(
        en.findings[0].title,
        "Critical application not usable for DR/BC"
    );
    assert_eq!(
        en.findings[0].message,
        "BlocManager (CH Val-de-Lys) is critical but has neither a server nor explicit external hosting."
    );
    assert_eq!(en.dimensions.coherence.label, "Coherence");
}

#[test]
fn guichet_flags_flows_to_themselves_apart_from_the_score() {
    let Some(atlas) = demo() else { return };
    let q = analyse(&atlas, Lang::Fr);
    let subjects: Vec<&str> = q.extra.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(subjects, ["VDL-FLX-007", "CDN-FLX-007", "HSR-FLX-007"]);
    let f = &q.extra[0];
    assert_eq!(
        (f.code, f.severity, f.dimension, f.extra),
        ("self-flow", Severity::Medium, Dimension::Coherence, true)
    );
    assert_eq!(f.message, "VDL-FLX-007 a GAP pour source et pour cible.");
    assert!(q.findings.iter().all(|f| !f.extra && f.code != "self-flow"));
}

#[test]
fn flows_naming_unknown_trigrammes_and_their_dependencies() {
    let apps =
        r#"{"nom": "Gap", "trigramme": "GAP", "hebergement": "SaaS", "criticite": "Standard"}"#;
    let flows = r#"{"flux": [{"id": "F1", "sourceTrigramme": "gap", "targetTrigramme": "XYZ"},
        {"sourceTrigramme": " xyz ", "targetTrigramme": ""}]}"#;
    let q = analyse(
        &folder(&[
            ("a.json", &business(apps)),
            ("a.flux.json", flows),
            ("trigrammes.json", r#"{"gap": "Gap"}"#),
        ]),
        Lang::Fr,
    );
    let unknown: Vec<(Severity, Dimension, &str)> = q
        .findings
        .iter()
        .filter(|f| f.code == "unknown-trigramme")
        .map(|f| (f.severity, f.dimension, f.message.as_str()))
        .collect();
    assert_eq!(
        unknown,
        [
            (
                Severity::High,
                Dimension::Coherence,
                "F1 référence XYZ en cible."
            ),
            (
                Severity::High,
                Dimension::Coherence,
                "XYZ → ? référence XYZ en source."
            ),
            (
                Severity::Medium,
                Dimension::Validity,
                "F1 référence XYZ, absent de data/trigrammes.json."
            ),
            (
                Severity::Medium,
                Dimension::Validity,
                "XYZ → ? référence XYZ, absent de data/trigrammes.json."
            ),
        ]
    );
    let dependency: Vec<&str> = q
        .findings
        .iter()
        .filter(|f| f.title == "Dépendance de flux non exploitable")
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(
        dependency,
        ["XYZ"],
        "once per trigramme, and counted in no dimension"
    );
    assert_eq!(
        q.dimensions.exploitability.total, 2,
        "the flows and the referent"
    );
}

#[test]
fn a_trigramme_carried_twice_is_a_duplicate_each_time() {
    let apps = r#"{"nom": "One", "trigramme": "ONE"}, {"nom": "Also one", "trigramme": " one "},
        {"nom": "Two", "trigramme": "TWO"}, {"nom": "None", "trigramme": "  "}"#;
    let q = analyse(&folder(&[("a.json", &business(apps))]), Lang::Fr);
    let duplicates: Vec<(&str, &str)> = q
        .findings
        .iter()
        .filter(|f| f.code == "duplicate-trigramme")
        .map(|f| (f.subject.as_str(), f.message.as_str()))
        .collect();
    let one = ("ONE", "ONE est porté par plusieurs applications.");
    assert_eq!(duplicates, [one, one]);
}

#[test]
fn an_establishment_without_its_other_files_fails_three_checks() {
    let apps =
        r#"{"nom": "X", "trigramme": "XXX", "criticite": "Critique", "hebergement": "Interne"}"#;
    let q = analyse(&folder(&[("a.json", &business(apps))]), Lang::Fr);
    let missing: Vec<(&str, Severity, &str)> = q
        .findings
        .iter()
        .filter(|f| f.subject == "A")
        .map(|f| (f.code, f.severity, f.title.as_str()))
        .collect();
    assert_eq!(
        missing,
        [
            (
                "missing-establishment-dataset",
                Severity::High,
                "Établissement absent de l’infrastructure"
            ),
            (
                "missing-establishment-dataset",
                Severity::High,
                "Établissement absent du réseau"
            ),
            (
                "impact-readiness",
                Severity::Medium,
                "Flux absents pour un établissement"
            ),
        ]
    );
    // As Node gives it on the same folder.
    assert_eq!(q.score, 38);
    assert_eq!(figures(&q), [(57, 4, 7), (25, 1, 4), (67, 2, 3), (0, 0, 4)]);
    assert_eq!(severities(&q), [1, 6, 4, 0]);
    assert!(q.has_critical(), "critical, no server, not hosted outside");
}

#[test]
fn a_port_written_as_text_is_invalid_as_it_lanscape_says() {
    let flows = r#"{"flux": [{"id": "F1", "port": "2575"}, {"id": "F2", "port": 2575.0},
        {"id": "F3", "port": 0}, {"id": "F4", "port": 70000}]}"#;
    let q = analyse(&folder(&[("a.flux.json", flows)]), Lang::En);
    let ports: Vec<&str> = q
        .findings
        .iter()
        .filter(|f| f.title == "Invalid flow port")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        ports,
        [
            r#"F1 uses "2575"."#,
            r#"F3 uses "empty"."#,
            r#"F4 uses "70000"."#
        ]
    );
}

/// A folder that trips most checks at once (labels by fallback, numbers
/// where text is expected, VLANs without `nom`, bad CIDRs and addresses):
/// the figures and counts Node 20 gives with it-lanscape's code.
#[test]
fn a_folder_full_of_faults_scores_as_it_lanscape_scores_it() {
    let q = analyse(&folder(&FAULTY), Lang::Fr);
    assert_eq!(q.score, 54);
    assert_eq!(
        figures(&q),
        [(49, 47, 95), (55, 17, 31), (63, 29, 46), (50, 5, 10)]
    );
    assert_eq!(q.findings.len(), 86);
    assert_eq!(severities(&q), [0, 20, 64, 2]);
    let expected = [
        ("duplicate-trigramme", 2),
        ("impact-readiness", 7),
        ("incomplete-application", 12),
        ("incomplete-flux", 14),
        ("incomplete-network", 2),
        ("incomplete-server", 20),
        ("invalid-value", 14),
        ("missing-establishment-dataset", 2),
        ("network-infra-mismatch", 5),
        ("orphan-server", 2),
        ("unknown-trigramme", 6),
    ];
    assert_eq!(by_code(&q.findings), BTreeMap::from(expected));
    let subjects: Vec<&str> = q
        .findings
        .iter()
        .filter(|f| f.code == "network-infra-mismatch" && f.severity == Severity::High)
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            "10.9.9.9 (V10)",
            "ghost (V10)",
            "Serveur réseau (VLAN-undefined)"
        ]
    );
    let self_flows: Vec<&str> = q.extra.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(self_flows, ["F1"]);
}

const FAULTY: [(&str, &str); 5] = [
    (
        "a.json",
        r#"{"etablissements":[{"nom":"Site A","domaines":[{"nom":"D","processus":[{"nom":"P","applications":[
 {"nom":"Alpha","trigramme":" alp ","criticite":"Critique","hebergement":"Interne","description":"x","editeur":"E","referent":"R","interfaces":{"Medicale":true}},
 {"nom":"Beta","trigramme":"ALP","criticite":"Standard","hebergement":"SaaS","interfaces":{}},
 {"nom":0,"trigramme":"b-2","criticite":"critique","hebergement":"  "},
 {"trigramme":"","criticite":"Critique","hebergement":"Cloud HDS","referent":" "}
]}]}]},
 {"nom":"Site B","domaines":[]}]}"#,
    ),
    (
        "a.infra.json",
        r#"{"etablissement":"Site A","serveurs":[
 {"VM":"srv1","PrimaryIPAddress":"10.0.0.1","RoleServeur":"App","OS":"L","Antivirus":"y","Backup":"y","Contact":"c","trigramme":"alp"},
 {"nom":"srv2","ip":"10.0.0.256","trigramme":"ZZZ"},
 {"PrimaryIPAddress":1234,"trigramme":""},
 {"VM":"","ip":"","RoleServeur":0}
]}"#,
    ),
    (
        "a.network.json",
        r#"{"etablissement":"Site A","vlans":[
 {"id":10,"nom":"V10","network":"10.0.0.0/24, 10.1.0.0/33","gateway":"10.0.0.254","serveurs":[{"ip":"10.0.0.1","nom":"SRV1"},{"ip":"10.9.9.9"},{"nom":"ghost"}]},
 {"id":11,"name":"V11 by name","network":"","gateway":"999.1.1.1","serveurs":[{"ip":1234}]},
 {"network":false,"serveurs":[{}]}
]}"#,
    ),
    (
        "a.flux.json",
        r#"{"etablissement":"Site A","flux":[
 {"id":"F1","sourceTrigramme":"alp","targetTrigramme":"ALP","protocol":"HL7","port":"2575","messageType":"ADT","interfaceType":"Medicale","eaiName":"E","description":"d"},
 {"sourceTrigramme":"XXX","targetTrigramme":"","protocol":"ftp","port":0,"interfaceType":"Autre"},
 {"sourceTrigramme":"ZZZ","targetTrigramme":"QQQ","port":2575.0,"protocol":"HTTPS","interfaceType":"x"},
 {"id":0,"port":70000}
]}"#,
    ),
    ("trigrammes.json", r#"{"alp":"Alpha","ZZZ":"z"}"#),
];

#[test]
fn the_markdown_report_gives_the_score_dimensions_and_findings_by_severity() {
    let Some(atlas) = demo() else { return };
    let q = analyse(&atlas, Lang::Fr);
    let md = markdown(&q, Lang::Fr);
    assert!(md.starts_with("# Qualité des données\n"), "{md}");
    assert!(md.contains("| Score global | 79/100 |\n"), "{md}");
    assert!(md.contains("| Cohérence | 76% | 369/483 |\n"), "{md}");
    assert!(md.contains("### Critique (6)\n"), "{md}");
    assert!(md.contains("### Faible (72)\n"), "{md}");
    assert!(
        md.contains("## Contrôles propres à guichet (hors score)\n"),
        "{md}"
    );
    let q = analyse(&atlas, Lang::En);
    let md = markdown(&q, Lang::En);
    assert!(md.contains("| Overall score | 79/100 |\n"), "{md}");
    assert!(md.contains("### High (45)\n"), "{md}");
}

#[test]
fn an_empty_dimension_scores_100() {
    let q = analyse(
        &folder(&[("trigrammes.json", r#"{"GAP": "Gap"}"#)]),
        Lang::Fr,
    );
    assert_eq!(figures(&q), [(100, 0, 0); 4]);
    assert_eq!((q.score, q.findings.len()), (100, 0));
    assert!(markdown(&q, Lang::Fr).contains("_Aucune anomalie._"));
}
