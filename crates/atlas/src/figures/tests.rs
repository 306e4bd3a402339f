use super::*;
use crate::read::read_dir;
use crate::testdata::{demo, seen};

#[test]
fn declared_figures_on_the_demo_data() {
    let Some(atlas) = demo() else { return };
    let f = flow_figures(&atlas, &Filters::default(), &[]);
    assert_eq!(f.flows, 75);
    // HTTPS 9 + SMTP/TLS 6 + SFTP 3 of 75.
    assert_eq!(f.encrypted_pct, 24.0);
    assert_eq!(
        (f.observed, f.observed_pct, f.observed_encrypted_pct),
        (0, None, None)
    );
    let eai: Vec<(&str, usize, f64)> = f
        .eai_dependency
        .iter()
        .map(|e| (e.eai.as_str(), e.flows, e.pct))
        .collect();
    assert_eq!(
        eai,
        [
            ("Enovacom Engine", 33, 44.0),
            ("API", 18, 24.0),
            ("API interne", 12, 16.0),
            ("Passerelle MSS", 6, 8.0),
            ("Direct", 3, 4.0),
            ("ETL", 3, 4.0)
        ]
    );
    let hubs: Vec<(&str, usize)> = f
        .hubs
        .iter()
        .map(|h| (h.trigramme.as_str(), h.flows))
        .collect();
    assert_eq!(
        hubs,
        [
            ("GAP", 39),
            ("ORB", 30),
            ("ORP", 12),
            ("BLO", 6),
            ("CAR", 6),
            ("CRS", 6),
            ("HAD", 6),
            ("IFC", 6),
            ("MAI", 6),
            ("ONC", 6)
        ]
    );
    assert_eq!(f.hubs[0].name, "Maincare iGAP");
    let clear: Vec<&str> = f
        .critical_in_clear
        .iter()
        .map(|c| c.trigramme.as_str())
        .collect();
    assert_eq!(clear, ["BLO", "ENO", "GAP", "IFC", "ORB", "SEC", "URG"]);
    // One establishment's flows only.
    let one = Filters {
        establishments: vec!["Clinique des Dunes".into()],
        ..Filters::default()
    };
    assert_eq!(flow_figures(&atlas, &one, &[]).flows, 25);
}

#[test]
fn observation_tells_what_runs_and_what_runs_undeclared() {
    let Some(atlas) = demo() else { return };
    let observed = [
        // VDL-FLX-001 GAP → ORB ADT over HL7, and its twins in the two
        // other establishments: three declared flows seen.
        seen("eai-to-dpi", "GAP", "ORB", "mllp", "ADT^A01", true),
        // The same pair, a message family no flow declares: shadow.
        seen("eai-to-dpi", "GAP", "ORB", "mllp", "ORU^R01", true),
        // A pair no flow declares, in clear.
        seen("lab", "SIL", "GAP", "tcp", "", false),
        // A party no mapping names.
        seen("api", "", "ORB", "http", "dispo", true),
    ];
    let f = flow_figures(&atlas, &Filters::default(), &observed);
    assert_eq!(f.observed, 4);
    assert_eq!(f.observed_pct, Some(4.0)); // 3 of 75
    assert_eq!(f.observed_encrypted_pct, Some(75.0));
    let shadows: Vec<(&str, &str, &str)> = f
        .shadow_flows
        .iter()
        .map(|s| {
            (
                s.source.as_str(),
                s.target.as_str(),
                s.message_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shadows,
        [
            ("GAP", "ORB", "ORU^R01"),
            ("SIL", "GAP", ""),
            ("-party", "ORB", "dispo")
        ]
    );
    let gap = f
        .critical_in_clear
        .iter()
        .find(|c| c.trigramme == "GAP")
        .unwrap();
    assert_eq!(gap.flows.last().unwrap(), "route lab");
}

#[test]
fn a_bidirectional_flow_matches_either_way() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.flux.json"),
        r#"{"flux": [{"sourceTrigramme": "AAA", "targetTrigramme": "BBB", "protocol": "HL7", "messageType": "ADT"}]}"#,
    )
    .unwrap();
    let mut flow = read_dir(dir.path()).unwrap().flows[0].items[0].clone();
    let back = seen("r", "BBB", "AAA", "mllp", "ADT^A08", false);
    assert!(!matches(&flow, &back));
    flow.bidirectional = Some(true);
    assert!(matches(&flow, &back));
    assert!(!matches(
        &flow,
        &seen("r", "BBB", "AAA", "mllp", "ORU^R01", false)
    ));
    assert!(matches(
        &flow,
        &seen("r", "AAA", "BBB", "http", "rule", false)
    ));
}

#[test]
fn an_undeclared_store_and_forward_route_is_one_shadow_of_its_delivered_messages() {
    let Some(atlas) = demo() else { return };
    let observed = crate::testdata::stored_and_forwarded("SIL", "GAP", 4, 5);
    let f = flow_figures(&atlas, &Filters::default(), &observed);
    let shadows: Vec<(&str, &str, &str, u64)> = f
        .shadow_flows
        .iter()
        .map(|s| {
            (
                s.source.as_str(),
                s.target.as_str(),
                s.route.as_str(),
                s.count,
            )
        })
        .collect();
    assert_eq!(shadows, [("SIL", "GAP", "adt", 4)]);
}
