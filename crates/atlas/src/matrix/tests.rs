use super::*;
use crate::testdata::{demo, seen, stored_and_forwarded};

#[test]
fn declared_pairs_are_encrypted_or_in_clear() {
    let Some(atlas) = demo() else { return };
    let m = of_atlas(&atlas, &[]);
    let gap_orb = m.cell("GAP", "ORB").unwrap();
    // Three establishments declare the same flow: one exchange.
    assert_eq!(gap_orb.exchanges, ["HL7 ADT"]);
    assert_eq!(gap_orb.state, CellState::Clear);
    assert_eq!(m.cell("GAP", "MAI").unwrap().state, CellState::Encrypted);
    assert!(m.cell("ORB", "GAP").is_none_or(|c| c.source == "ORB"));
    assert!(m.applications.contains(&"GAP".to_string()));
    assert!(m.applications.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn observation_marks_each_pair() {
    let Some(atlas) = demo() else { return };
    let observed = [
        seen("eai", "GAP", "ORB", "mllp", "ADT^A01", true),
        seen("lab", "SIL", "GAP", "tcp", "", false),
        seen("mss", "GAP", "MAI", "mllp", "ORU^R01", true),
        seen("api", "", "ORB", "http", "dispo", true),
    ];
    let m = of_atlas(&atlas, &observed);
    let state = |s: &str, t: &str| m.cell(s, t).unwrap().state;
    assert_eq!(state("GAP", "ORB"), CellState::Observed);
    assert_eq!(m.cell("GAP", "ORB").unwrap().observed_count, 3);
    assert_eq!(state("SIL", "GAP"), CellState::Shadow);
    assert_eq!(m.cell("SIL", "GAP").unwrap().exchanges, ["TCP"]);
    // Declared for MSS, observed with another family: something
    // undeclared ran.
    assert_eq!(state("GAP", "MAI"), CellState::Shadow);
    assert_eq!(state("GAP", "IFC"), CellState::DeclaredNotObserved);
    assert!(!m.cells.iter().any(|c| c.source.is_empty()));
}

#[test]
fn a_stored_and_forwarded_message_counts_once_however_often_it_was_tried() {
    let Some(atlas) = demo() else { return };
    let observed = stored_and_forwarded("SIL", "GAP", 4, 5);
    let m = of_atlas(&atlas, &observed);
    let cell = m.cell("SIL", "GAP").unwrap();
    assert_eq!(cell.state, CellState::Shadow);
    assert_eq!(
        cell.observed_count, 4,
        "delivered messages, not legs or attempts"
    );
}
