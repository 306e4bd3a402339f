//! The incident simulation on it-lanscape's demo data and on a small
//! hand-built map. Every answer under it-lanscape's rules below was
//! computed by it-lanscape's own `runAnalysis` (pages/incident/index.js)
//! on the same data; its list is per occurrence in insertion order, ours
//! is per application, sorted the same way with the trigramme last.

use super::run::{is_synchronous, looks_like_database, propagate};
use super::*;
use crate::read::read_dir;

fn demo() -> Option<Atlas> {
    let dir = guichet_testsupport::fixtures::lanscape_dir()?;
    Some(read_dir(&dir).unwrap())
}

const LANSCAPE: Rules = Rules {
    eai_nodes: false,
    eai_apps: BTreeMap::new(),
};

fn guichet() -> Rules {
    Rules {
        eai_nodes: true,
        ..Rules::default()
    }
}

fn run(atlas: &Atlas, rules: &Rules, start: Start, status: Status) -> Incident {
    simulate(atlas, &[], rules, &[(start, status)]).unwrap()
}

/// (trigramme, status, depth) of each impacted application, in order.
fn summary(incident: &Incident) -> Vec<(String, &'static str, u8)> {
    incident
        .impacted
        .iter()
        .map(|i| (i.trigramme.clone(), i.status.code(), i.depth))
        .collect()
}

fn rows(list: &[(&str, &'static str, u8)]) -> Vec<(String, &'static str, u8)> {
    list.iter()
        .map(|(t, s, d)| (t.to_string(), *s, *d))
        .collect()
}

/// (kind, label, status) of an application's causes.
fn causes<'a>(incident: &'a Incident, tri: &str) -> Vec<(CauseKind, &'a str, Status)> {
    let impact = incident
        .impacted
        .iter()
        .find(|i| i.trigramme == tri)
        .unwrap();
    impact
        .causes
        .iter()
        .map(|c| (c.kind, c.label.as_str(), c.status))
        .collect()
}

const GAP_DOWN: [(&str, &str, u8); 8] = [
    ("GAP", "hs", 0),
    ("ENO", "latence", 1),
    ("IFC", "latence", 1),
    ("ORB", "latence", 1),
    ("MAI", "latence", 1),
    ("MYR", "latence", 1),
    ("PYX", "latence", 1),
    ("TAB", "latence", 1),
];

#[test]
fn gap_down_slows_the_seven_applications_it_feeds_and_nothing_deeper() {
    let Some(atlas) = demo() else { return };
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Application("gap".into()),
        Status::Hs,
    );
    assert_eq!(summary(&i), rows(&GAP_DOWN));
    assert_eq!(i.rules, "it-lanscape");
    // GAP feeds itself (VDL-FLX-007): it-lanscape keeps that cause.
    assert_eq!(
        causes(&i, "GAP"),
        [
            (CauseKind::Application, "Maincare IGAP (GAP)", Status::Hs),
            (
                CauseKind::Upstream,
                "Maincare IGAP → Maincare IGAP",
                Status::Latence
            ),
        ]
    );
    let orb = &i.impacted[3];
    assert_eq!(
        (orb.name.as_str(), orb.criticality.as_str()),
        ("ORBIS DPI", "Critique")
    );
    assert_eq!(
        orb.establishments(),
        ["CH Val-de-Lys", "Clinique des Dunes", "Hôpital Saint-Roch"]
    );
    assert_eq!(
        (i.blocked.len(), i.propagation.len(), i.processes().len()),
        (36, 24, 24)
    );
    // Degraded, the same; intermittent stays where it is.
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Application("GAP".into()),
        Status::Degrade,
    );
    let mut degraded = rows(&GAP_DOWN);
    degraded[0].1 = "degrade";
    assert_eq!(summary(&i), degraded);
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Application("GAP".into()),
        Status::Intermittent,
    );
    assert_eq!(summary(&i), rows(&[("GAP", "intermittent", 0)]));
}

#[test]
fn a_database_server_takes_its_application_down_an_application_server_degrades_it() {
    let Some(atlas) = demo() else { return };
    let after = |server: &str| {
        let start = Start::Server(server.into());
        run(&atlas, &LANSCAPE, start, Status::Hs)
    };
    let i = after("vdl-orbis-db-01");
    let orp_cen = [("CEN", "latence", 1), ("ORP", "latence", 1)];
    let mut want = vec![("ORB", "hs", 0)];
    want.extend(orp_cen);
    assert_eq!(summary(&i), rows(&want));
    assert!(i.impacted[0].causes[0].database_server);
    assert_eq!(i.starts[0].label, "vdl-orbis-db-01 (ORB) • CH Val-de-Lys");
    let i = after("CH Val-de-Lys::vdl-orbis-app-01");
    want[0].1 = "degrade";
    assert_eq!(summary(&i), rows(&want));
    // GAP has three servers (one per establishment): degraded, and the
    // seven it feeds slowed.
    let i = after("vdl-gap-01");
    let mut gap = rows(&GAP_DOWN);
    gap[0].1 = "degrade";
    assert_eq!(summary(&i), gap);
}

#[test]
fn a_stopped_flow_slows_its_target_and_its_source() {
    let Some(atlas) = demo() else { return };
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Flow("VDL-FLX-001".into()),
        Status::Hs,
    );
    assert_eq!(
        summary(&i),
        rows(&[("GAP", "latence", 0), ("ORB", "latence", 0)])
    );
    let label = "Maincare IGAP → ORBIS DPI • CH Val-de-Lys";
    assert_eq!(causes(&i, "ORB"), [(CauseKind::Flow, label, Status::Hs)]);
    assert_eq!(
        causes(&i, "GAP"),
        [(CauseKind::FlowOutgoing, label, Status::Hs)]
    );
    assert_eq!(i.blocked.len(), 1);
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Flow("CDN-FLX-019".into()),
        Status::Degrade,
    );
    assert_eq!(
        summary(&i),
        rows(&[("ORB", "latence", 0), ("CEN", "latence", 0)])
    );
}

#[test]
fn a_hosting_provider_is_judged_on_each_applications_first_occurrence() {
    let Some(atlas) = demo() else { return };
    let i = run(&atlas, &LANSCAPE, Start::Hosting("SaaS".into()), Status::Hs);
    let saas = [
        ("CGP", "hs", 0),
        ("M36", "hs", 0),
        ("ORB", "latence", 1),
        ("BLU", "hs", 0),
        ("CGR", "hs", 0),
        ("DOC", "hs", 0),
        ("DWR", "hs", 0),
        ("HAD", "hs", 0),
        ("MAI", "hs", 0),
        ("MYR", "hs", 0),
        ("NOM", "hs", 0),
        ("OCT", "hs", 0),
        ("TAB", "hs", 0),
        ("WPR", "hs", 0),
    ];
    assert_eq!(summary(&i), rows(&saas));
    assert_eq!(causes(&i, "ORB").len(), 3);
    // Every application is first met in CH Val-de-Lys: it-lanscape finds
    // none hosted by the Clinique des Dunes.
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Hosting("Clinique des Dunes".into()),
        Status::Degrade,
    );
    assert!(i.impacted.is_empty());
}

#[test]
fn an_eai_is_a_label_for_it_lanscape_and_a_node_for_guichet() {
    let Some(atlas) = demo() else { return };
    let eno = Start::Application("ENO".into());
    let i = run(&atlas, &LANSCAPE, eno.clone(), Status::Hs);
    assert_eq!(summary(&i), rows(&[("ENO", "hs", 0)]));
    let err = simulate(
        &atlas,
        &[],
        &LANSCAPE,
        &[(Start::Eai("Enovacom Engine".into()), Status::Hs)],
    );
    assert_eq!(err, Err(StartError::NeedsEaiNodes));

    // Untied, the EAI is its own node: every target of the 33 flows
    // through it is slowed, ENO included (GAP → ENO goes through it).
    let start = Start::Eai("enovacom engine".into());
    let i = run(&atlas, &guichet(), start.clone(), Status::Hs);
    let through = [
        ("ENO", "latence", 1),
        ("GAP", "latence", 1),
        ("IFC", "latence", 1),
        ("ORB", "latence", 1),
        ("PYX", "latence", 1),
    ];
    assert_eq!(summary(&i), rows(&through));
    assert_eq!(i.starts[0].node.as_deref(), Some("eai:Enovacom Engine"));
    assert_eq!(
        eai_lookalikes(&atlas, &guichet(), "eno"),
        ["Enovacom Engine"]
    );

    // Tied to ENO, the application's outage is the EAI's.
    let mut tied = guichet();
    tied.eai_apps.insert("Enovacom Engine".into(), "ENO".into());
    assert!(eai_lookalikes(&atlas, &tied, "ENO").is_empty());
    let mut want = rows(&through);
    want[0] = ("ENO".into(), "hs", 0);
    assert_eq!(summary(&run(&atlas, &tied, eno, Status::Hs)), want);
    assert_eq!(summary(&run(&atlas, &tied, start, Status::Hs)), want);
    // Crossing an EAI costs no depth: GAP's answer does not change.
    let gap = Start::Application("GAP".into());
    assert_eq!(
        summary(&run(&atlas, &tied, gap, Status::Hs)),
        rows(&GAP_DOWN)
    );
}

#[test]
fn unknown_starts_name_what_was_not_found_and_what_is_close() {
    let Some(atlas) = demo() else { return };
    let err = |start: Start| {
        simulate(&atlas, &[], &guichet(), &[(start, Status::Hs)])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(Start::Application("GAX".into())),
        "no application GAX in the map (did you mean GAP, SAX?)"
    );
    assert_eq!(
        err(Start::Server("gap-01".into())),
        "no server gap-01 in the map (did you mean CH Val-de-Lys::vdl-gap-01, \
         Clinique des Dunes::cdn-gap-01, Hôpital Saint-Roch::hsr-gap-01?)"
    );
    assert_eq!(
        err(Start::Flow("vdl-flx-001".into())),
        "no flow vdl-flx-001 in the map (a flow is named by its id, else SOURCE-TARGET) \
         (did you mean VDL-FLX-001?)"
    );
    assert!(err(Start::Eai("Enovacom".into())).contains("Enovacom Engine"));
}

/// The rules' building blocks, as it-lanscape's regular expressions and
/// `propagateStatus` decide them.
#[test]
fn attenuation_interface_types_and_database_roles() {
    for t in [
        "API REST",
        "Synchrone",
        "temps réel",
        "Temps-Reel",
        "EAI",
        "Middleware",
    ] {
        assert!(is_synchronous(t), "{t}");
    }
    for t in [
        "Administrative",
        "Planification",
        "Batch",
        "temps\nreel",
        "",
    ] {
        assert!(!is_synchronous(t), "{t}");
    }
    for r in [
        "Base de données DPI",
        "SQL Server",
        "srv-db-01",
        "Oracle",
        "DATA",
    ] {
        assert!(looks_like_database(r), "{r}");
    }
    for r in ["Serveur applicatif DPI", "databases", "mydb", "Données", ""] {
        assert!(!looks_like_database(r), "{r}");
    }
    use Status::*;
    assert_eq!(propagate(Hs, 1, "API"), Some(Degrade));
    assert_eq!(propagate(Intermittent, 1, "API"), Some(Intermittent));
    assert_eq!(propagate(Hs, 1, "Medicale"), Some(Latence));
    assert_eq!(propagate(Intermittent, 1, "Medicale"), None);
    assert_eq!(propagate(Degrade, 2, "API"), Some(Latence));
    assert_eq!(propagate(Latence, 2, "API"), None);
    assert_eq!(propagate(Hs, 5, "API"), None);
}

/// A hospital of six applications, written to a folder as it-lanscape
/// keeps it:
///
/// ```text
/// ADT ─F1 Administrative─▶ DPI   (through the EAI "Moteur EAI")
/// ADT ─F2 Facturation────▶ FAC   (through "Moteur EAI")
/// DPI ─F3 API────────────▶ LAB   (through "Moteur EAI")
/// LAB ─F4 Medicale───────▶ DPI   (Direct)
/// RAD ─F5 Medicale───────▶ DPI   (through "Passerelle", no application)
/// EAI is the application "Moteur EAI": the EAI ties to it by name.
/// observed: route adt-in carries ADT → DPI (ADT^A01, an instance of F1);
///           route mllp-lab carries LAB → RAD (ORU^R01, declared nowhere).
/// ```
fn small() -> (tempfile::TempDir, Atlas) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in SMALL {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let atlas = read_dir(dir.path()).unwrap();
    (dir, atlas)
}

pub(crate) const SMALL: [(&str, &str); 4] = [
    (
        "ch_test.json",
        r#"{"etablissements": [{"nom": "CH Test", "domaines": [{"nom": "Soins", "processus": [
  {"nom": "Séjour", "applications": [
    {"nom": "Admissions", "trigramme": "ADT", "criticite": "Critique", "hebergement": "CH Test"},
    {"nom": "Dossier patient", "trigramme": "DPI", "criticite": "Critique", "hebergement": "CH Test"},
    {"nom": "Laboratoire", "trigramme": "LAB", "criticite": "Standard", "hebergement": "SaaS"},
    {"nom": "Radiologie", "trigramme": "RAD", "criticite": "Standard", "hebergement": "CH Test"}]},
  {"nom": "Support", "applications": [
    {"nom": "Facturation", "trigramme": "FAC", "criticite": "Standard", "hebergement": "CH Test"},
    {"nom": "Moteur EAI", "trigramme": "EAI", "criticite": "Standard", "hebergement": "CH Test"}]}]}]}]}"#,
    ),
    (
        "ch_test.flux.json",
        r#"{"etablissement": "CH Test", "flux": [
  {"id": "F1", "sourceTrigramme": "ADT", "targetTrigramme": "DPI", "protocol": "HL7", "messageType": "ADT", "interfaceType": "Administrative", "eaiName": "Moteur EAI"},
  {"id": "F2", "sourceTrigramme": "ADT", "targetTrigramme": "FAC", "protocol": "HL7", "messageType": "DFT", "interfaceType": "Facturation", "eaiName": "Moteur EAI"},
  {"id": "F3", "sourceTrigramme": "DPI", "targetTrigramme": "LAB", "protocol": "HTTPS", "messageType": "ORM", "interfaceType": "API", "eaiName": "Moteur EAI"},
  {"id": "F4", "sourceTrigramme": "LAB", "targetTrigramme": "DPI", "protocol": "HL7", "messageType": "ORU", "interfaceType": "Medicale", "eaiName": "Direct"},
  {"id": "F5", "sourceTrigramme": "RAD", "targetTrigramme": "DPI", "protocol": "HL7", "messageType": "ORU", "interfaceType": "Medicale", "eaiName": "Passerelle"}]}"#,
    ),
    (
        "ch_test.infra.json",
        r#"{"etablissement": "CH Test", "serveurs": [
  {"VM": "lab-app", "RoleServeur": "Serveur applicatif", "trigramme": "LAB"},
  {"VM": "lab-sql", "RoleServeur": "SQL Server", "trigramme": "LAB"},
  {"VM": "dpi-01", "RoleServeur": "DPI", "trigramme": "DPI"}]}"#,
    ),
    (
        "trigrammes.json",
        r#"{"ADT": "Admissions", "DPI": "Dossier patient", "LAB": "Laboratoire",
  "RAD": "Radiologie", "FAC": "Facturation", "EAI": "Moteur EAI"}"#,
    ),
];

fn observed(route: &str, from: &str, to: &str, message: &str) -> ObservedFlow {
    crate::testdata::seen(route, from, to, "mllp", message, true)
}

fn small_observed() -> Vec<ObservedFlow> {
    vec![
        observed("adt-in", "ADT", "DPI", "ADT^A01"),
        observed("mllp-lab", "LAB", "RAD", "ORU^R01"),
    ]
}

/// it-lanscape's answers on the small map (from its own code).
#[test]
fn the_small_map_by_it_lanscapes_rules() {
    let (_dir, atlas) = small();
    let app = |t: &str, s| run(&atlas, &LANSCAPE, Start::Application(t.into()), s);
    assert_eq!(summary(&app("EAI", Status::Hs)), rows(&[("EAI", "hs", 0)]));
    let adt = [
        ("ADT", "hs", 0),
        ("DPI", "latence", 1),
        ("FAC", "latence", 1),
    ];
    assert_eq!(summary(&app("ADT", Status::Hs)), rows(&adt));
    let dpi = app("DPI", Status::Hs);
    assert_eq!(
        summary(&dpi),
        rows(&[("DPI", "hs", 0), ("LAB", "degrade", 1)])
    );
    let server = |v: &str| run(&atlas, &LANSCAPE, Start::Server(v.into()), Status::Hs);
    let lab = |s| rows(&[("DPI", "latence", 1), ("LAB", s, 0)]);
    assert_eq!(summary(&server("lab-app")), lab("degrade"));
    assert_eq!(summary(&server("CH Test::lab-sql")), lab("hs"));
    // F3 is synchronous (API): both ends degraded, each also reached by the
    // other's propagation.
    let f3 = run(&atlas, &LANSCAPE, Start::Flow("F3".into()), Status::Hs);
    assert_eq!(
        summary(&f3),
        rows(&[("DPI", "degrade", 0), ("LAB", "degrade", 0)])
    );
    assert_eq!(
        causes(&f3, "LAB"),
        [
            (
                CauseKind::Flow,
                "Dossier patient → Laboratoire • CH Test",
                Status::Hs
            ),
            (
                CauseKind::Upstream,
                "Dossier patient → Laboratoire",
                Status::Degrade
            ),
        ]
    );
}

/// guichet's answers on the small map, by reasoning on the rules:
///
/// - EAI (the application "Moteur EAI", tied by name) down: the flows
///   through it stop. Depth 1: DPI (F1, Administrative) latence, FAC (F2)
///   latence, LAB (F3, API: synchronous, hs → degrade) degrade. Depth 2
///   from LAB (degrade): DPI again by F4 (latence, no better: one more
///   cause) and RAD by the observed route mllp-lab (latence). Depth 3 from
///   RAD (latence): nothing. Sorted: DPI (critical), then EAI hs, LAB
///   degrade, FAC latence 1, RAD latence 2.
/// - "Passerelle" down (no application of that name): DPI latence at 1.
/// - Route mllp-lab down: RAD latence at 1 (no declared flow lends it an
///   interface type: asynchronous). Route adt-in down: DPI latence at 1.
/// - ADT down: as by it-lanscape's rules (crossing the EAI or the route
///   costs no depth): ADT hs, DPI and FAC latence at 1.
#[test]
fn the_small_map_by_guichets_rules() {
    let (_dir, atlas) = small();
    let seen = small_observed();
    let sim = |start: Start| {
        let incident = simulate(&atlas, &seen, &guichet(), &[(start, Status::Hs)]).unwrap();
        assert_eq!(incident.rules, "guichet");
        incident
    };
    let eai = sim(Start::Application("EAI".into()));
    let want = [
        ("DPI", "latence", 1),
        ("EAI", "hs", 0),
        ("LAB", "degrade", 1),
        ("FAC", "latence", 1),
        ("RAD", "latence", 2),
    ];
    assert_eq!(summary(&eai), rows(&want));
    assert_eq!(
        causes(&eai, "DPI"),
        [
            (
                CauseKind::Upstream,
                "Moteur EAI → Dossier patient",
                Status::Latence
            ),
            (
                CauseKind::Upstream,
                "Laboratoire → Dossier patient",
                Status::Latence
            ),
        ]
    );
    assert_eq!(summary(&sim(Start::Eai("Moteur EAI".into()))), rows(&want));
    let one = |t: &str| rows(&[(t, "latence", 1)]);
    let passerelle = sim(Start::Eai("Passerelle".into()));
    assert_eq!(summary(&passerelle), one("DPI"));
    assert_eq!(passerelle.starts[0].node.as_deref(), Some("eai:Passerelle"));
    assert_eq!(summary(&sim(Start::Route("mllp-lab".into()))), one("RAD"));
    assert_eq!(summary(&sim(Start::Route("adt-in".into()))), one("DPI"));
    let adt = [
        ("ADT", "hs", 0),
        ("DPI", "latence", 1),
        ("FAC", "latence", 1),
    ];
    assert_eq!(summary(&sim(Start::Application("ADT".into()))), rows(&adt));
    let unknown = simulate(
        &atlas,
        &seen,
        &guichet(),
        &[(Start::Route("x".into()), Status::Hs)],
    );
    assert_eq!(
        unknown.unwrap_err().to_string(),
        "no observed traffic crosses a route named x (known: adt-in, mllp-lab)"
    );
}

/// The report's opening, as it-lanscape writes it for the same scenario
/// (checked line for line against its `buildIncidentMarkdownReport`; the
/// rules line is guichet's, the "external components" row is not, as
/// guichet has no free-text components).
const GAP_REPORT_HEAD: &str = "\
# Rapport incident / PRA-PCA

Généré le 06/12/2026 03:00.

Règles : it-lanscape

## Scénario

| Composant | Type | Statut | Périmètre | Détail |
| --- | --- | --- | --- | --- |
| Maincare IGAP (GAP) | application | Indisponible | CH Val-de-Lys | DP Administrative / GAP |

## Synthèse des impacts

| Indicateur | Valeur |
| --- | --- |
| Composants du scénario | 1 |
| Applications impactées | 8 |
| Processus touchés | 24 |
| Flux bloqués ou dégradés | 36 |

## CH Val-de-Lys

### Applications impactées

| Application | Trigramme | Statut | Criticité | Processus | Hébergeur | Causes |
| --- | --- | --- | --- | --- | --- | --- |
| Maincare IGAP | GAP | Indisponible | Critique | DP Administrative / GAP | CH Val-de-Lys | \
Maincare IGAP (GAP) (Indisponible)<br>Maincare IGAP → Maincare IGAP (Latence) |
";

#[test]
fn the_report_reads_like_it_lanscapes() {
    let Some(atlas) = demo() else { return };
    let i = run(
        &atlas,
        &LANSCAPE,
        Start::Application("GAP".into()),
        Status::Hs,
    );
    let fr = report::markdown(&i, report::Lang::Fr, "06/12/2026 03:00");
    assert!(fr.starts_with(GAP_REPORT_HEAD), "{fr}");
    let sections: Vec<&str> = fr.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        sections,
        [
            "## Scénario",
            "## Synthèse des impacts",
            "## CH Val-de-Lys",
            "## Clinique des Dunes",
            "## Hôpital Saint-Roch"
        ]
    );
    assert!(fr.contains(
        "#### ORBIS DPI (ORB)\n\nTemps de réponse élevé\n\n\
         - Identifier et traiter le composant source en priorité\n"
    ));
    assert!(fr.contains("| Maincare IGAP | ORBIS DPI | Administrative | HL7 | ADT |\n"));
    assert!(fr.contains("| Maincare IGAP | ORBIS DPI | Latence | Administrative |\n"));
}

#[test]
fn the_report_in_english_names_guichets_relays() {
    let (_dir, atlas) = small();
    let start = Start::Eai("Passerelle".into());
    let i = simulate(
        &atlas,
        &small_observed(),
        &guichet(),
        &[(start, Status::Hs)],
    )
    .unwrap();
    let en = report::markdown(&i, report::Lang::En, "2026-12-06 03:00 UTC");
    for line in [
        "# Incident report / DRP-BCP",
        "Rules: guichet (EAIs and routes as nodes)",
        "| Passerelle | EAI | Down | Not given |  |",
        "| Dossier patient | DPI | Latency | Critique | Soins / Séjour | CH Test | \
         Passerelle → Dossier patient (Latency) |",
        "| Radiologie | Dossier patient | Medicale | HL7 | ORU |",
        "- Find and fix the source component first",
    ] {
        assert!(en.lines().any(|l| l == line), "{line}\n{en}");
    }
    let none = simulate(
        &atlas,
        &[],
        &LANSCAPE,
        &[(Start::Hosting("SaaS".into()), Status::Intermittent)],
    );
    let fr = report::markdown(&none.unwrap(), report::Lang::Fr, "x");
    assert!(
        fr.contains(
            "| Laboratoire | LAB | Intermittent | Standard | Soins / Séjour | SaaS | \
                         Hébergeur : SaaS (Intermittent) |"
        ),
        "{fr}"
    );
}
