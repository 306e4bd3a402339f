//! The figures it-lanscape's dashboard shows, on its demo data and on
//! small folders built for one rule each. Every expected value below was
//! computed by it-lanscape's own `useMetrics` and filter code on the same
//! data.

use super::*;
use crate::read::read_dir;
use crate::testdata::demo;

/// Occurrences, then the four percentages.
type Figures = (usize, f64, f64, f64, f64);
/// Domain, process, application, multi-establishment, editor.
type Row<'a> = (&'a str, &'a str, &'a str, bool, &'a str);

fn figures(k: &Kpis) -> Figures {
    (
        k.applications,
        k.proc_pct,
        k.align_pct,
        k.multi_pct,
        k.compl_pct,
    )
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_demo_data_gives_it_lanscapes_figures() {
    let Some(atlas) = demo() else { return };
    let k = kpis(&atlas, &Filters::default());
    assert_eq!(figures(&k), (102, 100.0, 96.0, 40.2, 33.3));
    let json = serde_json::to_string(&k).unwrap();
    assert_eq!(
        json,
        r#"{"applications":102,"procPct":100.0,"alignPct":96.0,"multiPct":40.2,"complPct":33.3}"#
    );
}

#[test]
fn filters_change_the_figures_as_in_the_dashboard() {
    let Some(atlas) = demo() else { return };
    let cases: [(Filters, Figures); 11] = [
        (
            Filters {
                establishments: names(&["CH Val-de-Lys"]),
                ..Filters::default()
            },
            (34, 100.0, 0.0, 41.2, 33.3),
        ),
        (
            Filters {
                establishments: names(&["CH Val-de-Lys", "Clinique des Dunes"]),
                ..Filters::default()
            },
            (68, 100.0, 96.0, 41.2, 33.3),
        ),
        (
            Filters {
                domains: names(&["DP Commun"]),
                ..Filters::default()
            },
            (12, 100.0, 100.0, 16.7, 33.3),
        ),
        (
            Filters {
                criticality: Some(Criticality::Critical),
                ..Filters::default()
            },
            (30, 100.0, 90.0, 26.7, 33.3),
        ),
        (
            Filters {
                criticality: Some(Criticality::Standard),
                ..Filters::default()
            },
            (72, 100.0, 100.0, 45.8, 33.3),
        ),
        (
            Filters {
                interface: Some("Medicale".into()),
                ..Filters::default()
            },
            (39, 100.0, 100.0, 35.9, 33.3),
        ),
        (
            Filters {
                multi: Some(true),
                ..Filters::default()
            },
            (41, 94.4, 100.0, 100.0, 33.3),
        ),
        (
            Filters {
                multi: Some(false),
                ..Filters::default()
            },
            (61, 100.0, 85.7, 0.0, 33.3),
        ),
        (
            Filters {
                hosting: Some("SaaS".into()),
                ..Filters::default()
            },
            (39, 100.0, 100.0, 100.0, 33.3),
        ),
        (
            Filters {
                domains: names(&["DP Commun", "DP Administrative"]),
                criticality: Some(Criticality::Critical),
                multi: Some(false),
                ..Filters::default()
            },
            (4, 66.7, 0.0, 0.0, 33.3),
        ),
        (
            // No establishment left: it-lanscape writes NaN; guichet 0.
            Filters {
                establishments: names(&["Nowhere"]),
                ..Filters::default()
            },
            (0, 0.0, 0.0, 0.0, 0.0),
        ),
    ];
    for (filters, want) in cases {
        assert_eq!(figures(&kpis(&atlas, &filters)), want, "{filters:?}");
    }
}

/// A data folder of one business-map file per establishment, each a list
/// of `(domain, process, application, multi, editor)`.
fn landscape(etabs: &[(&str, &[Row])]) -> Atlas {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, apps)) in etabs.iter().enumerate() {
        let domains: Vec<serde_json::Value> = apps
            .iter()
            .map(|(d, p, a, multi, editor)| {
                serde_json::json!({"nom": d, "processus": [{"nom": p, "applications": [
                    {"nom": a, "editeur": editor, "referent": "", "lienPRTG": null,
                     "multiEtablissement": multi, "criticite": "Standard", "trigramme": "AAA"}
                ]}]})
            })
            .collect();
        let doc = serde_json::json!({"etablissements": [{"nom": name, "domaines": domains}]});
        std::fs::write(dir.path().join(format!("e{i}.json")), doc.to_string()).unwrap();
    }
    read_dir(dir.path()).unwrap()
}

#[test]
fn one_establishment_is_aligned_by_definition() {
    let atlas = landscape(&[(
        "A",
        &[("D", "P", "X", false, "ed"), ("D", "Q", "Y", true, "")],
    )]);
    let k = kpis(&atlas, &Filters::default());
    // One establishment: 100; no key in two establishments: 0.
    assert_eq!(figures(&k), (2, 100.0, 0.0, 50.0, 16.7));
}

#[test]
fn establishments_sharing_no_process_are_not_aligned() {
    let atlas = landscape(&[
        ("A", &[("D", "P", "X", false, "e")]),
        ("B", &[("D", "Q", "X", false, "e")]),
        ("C", &[("D", "P", "Y", false, "e")]),
    ]);
    // Pairs: A-B 0/2, A-C 1/1, B-C 0/2 → 33.3; P in A and C with other
    // applications → 0 aligned of 1.
    assert_eq!(
        figures(&kpis(&atlas, &Filters::default())),
        (3, 33.3, 0.0, 0.0, 33.3)
    );
}

#[test]
fn a_tie_at_a_twentieth_rounds_up() {
    // 1 multi-establishment occurrence of 16: 6.25 % → "6.3" (Rust's
    // `{:.1}` would write 6.2).
    let apps: Vec<Row> = (0..16)
        .map(|i| ("D", "P", ["X", "Y"][i % 2], i == 0, ""))
        .collect();
    let atlas = landscape(&[("A", &apps)]);
    assert_eq!(kpis(&atlas, &Filters::default()).multi_pct, 6.3);
}

#[test]
fn no_application_gives_zeros() {
    let atlas = landscape(&[("A", &[]), ("B", &[])]);
    // Two establishments with no process: the union is empty, similarity 1.
    assert_eq!(
        figures(&kpis(&atlas, &Filters::default())),
        (0, 100.0, 0.0, 0.0, 0.0)
    );
}
