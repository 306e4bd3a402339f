use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const ENDS: FlowEnds = FlowEnds {
    kind: "mllp",
    tls_in: true,
    tls_out: false,
};

fn base() -> Seen<'static> {
    Seen {
        route: "to-dpi",
        direction: RELAY,
        ends: ENDS,
        application: "eai",
        source: Party::default(),
        target: Party::default(),
        message_type: "",
    }
}

fn header(msh3: &str, msh9: &str) -> Header {
    let text = format!("MSH|^~\\&|{msh3}|CHU|DPI^1.2^ISO|CHU|20240101||{msh9}|C1|P|2.5\r");
    Header::read(&guichet_hl7::Message::parse(text.as_bytes()).unwrap())
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[test]
fn messages_add_up_per_parties_type_and_outcome() {
    let observer = Observer::new();
    let a01 = header("EAI", "ADT^A01^ADT_A01");
    let a08 = header("EAI", "ADT^A08");
    for ms in [3000, 1000, 2000] {
        observer.message(&base(), Some(&a01), "AA", at(ms));
    }
    observer.message(&base(), Some(&a01), "AE", at(4000));
    observer.message(&base(), Some(&a08), "AA", at(5000));
    let rows = observer.take();
    let shown: Vec<_> = rows
        .iter()
        .map(|r| {
            let k = &r.key;
            let text = format!(
                "{} {} -> {} {}",
                k.route, k.source, k.target, k.message_type
            );
            (text, r.outcome.as_str(), r.count, r.first_ms, r.last_ms)
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "to-dpi EAI^CHU -> DPI^CHU ADT^A01".into(),
                "AA",
                3,
                1000,
                3000
            ),
            (
                "to-dpi EAI^CHU -> DPI^CHU ADT^A01".into(),
                "AE",
                1,
                4000,
                4000
            ),
            (
                "to-dpi EAI^CHU -> DPI^CHU ADT^A08".into(),
                "AA",
                1,
                5000,
                5000
            ),
        ]
    );
    assert!(rows.iter().all(|r| r.key.tls_in && !r.key.tls_out));
    assert_eq!(observer.take(), vec![], "a take empties the counts");
}

#[test]
fn counts_from_many_threads_are_all_taken() {
    let observer = Arc::new(Observer::new());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let observer = observer.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    observer.record(&base(), "closed", at(i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rows = observer.take();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].count, 8000);
    assert_eq!((rows[0].first_ms, rows[0].last_ms), (0, 999));
}

#[test]
fn an_observer_off_counts_nothing() {
    let observer = Observer::off();
    observer.record(&base(), "closed", at(1));
    observer.message(&base(), Some(&header("EAI", "ADT^A01")), "AA", at(1));
    assert_eq!(observer.take(), vec![]);
}

#[test]
fn parties_compare_as_shown() {
    assert!(Party("EAI", "CHU").is("EAI^CHU"));
    assert!(!Party("EAI", "CHU").is("EAI^CHUX"));
    assert!(!Party("EAI", "CHU").is("EAIxCHU"));
    assert!(Party("EAI", "").is("EAI"));
    assert!(Party("", "CHU").is("^CHU"));
    assert_eq!(Party("", "CHU").shown(), "^CHU");
    assert_eq!(event_type("ADT^A01^ADT_A01"), "ADT^A01");
    assert_eq!(event_type("ACK"), "ACK");
    assert_eq!(first("DPI^1.2^ISO"), "DPI");
}

#[test]
fn msh_components_are_cut_as_a_str_search_would() {
    for field in [
        "",
        "^",
        "^^",
        "ADT",
        "ADT^",
        "ADT^A01",
        "ADT^A01^",
        "ADT^A01^ADT_A01",
        "^A01^X",
        "é^ü^ß",
        "ÉVÉ^Ä01",
    ] {
        let searched = match field.match_indices('^').nth(1) {
            Some((end, _)) => &field[..end],
            None => field,
        };
        assert_eq!(event_type(field), searched, "{field:?}");
        assert_eq!(first(field), field.split('^').next().unwrap(), "{field:?}");
    }
}

#[test]
fn rows_kept_from_a_failed_flush_merge_with_new_ones() {
    let observer = Observer::new();
    observer.record(&base(), "closed", at(10));
    let kept = observer.take();
    observer.record(&base(), "closed", at(5));
    let rows = combine(kept, observer.take());
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].count, rows[0].first_ms, rows[0].last_ms),
        (2, 5, 10)
    );
}
