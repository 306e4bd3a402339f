//! What the crate's tests share: it-lanscape's demo folder and observed
//! aggregates built for one case each.

use std::collections::BTreeMap;

use crate::model::Atlas;
use crate::observed::ObservedFlow;
use crate::read::read_dir;

/// The demo data folder read whole; `None` (after a SKIPPED line) where
/// the shared fixtures are absent, a failure under CI.
pub fn demo() -> Option<Atlas> {
    let dir = guichet_testsupport::fixtures::lanscape_dir()?;
    Some(read_dir(&dir).expect("the demo folder reads"))
}

/// Three messages seen on `route` from `from` to `to` (trigrammes; `""`
/// leaves the party unnamed), TLS on both sides or neither.
pub fn seen(
    route: &str,
    from: &str,
    to: &str,
    kind: &str,
    message_type: &str,
    tls: bool,
) -> ObservedFlow {
    ObservedFlow {
        route: route.into(),
        kind: kind.into(),
        direction: "relay".into(),
        application: String::new(),
        source: format!("{from}-party"),
        target: format!("{to}-party"),
        message_type: message_type.into(),
        tls_in: tls,
        tls_out: tls,
        count: 3,
        first_seen: "2026-12-06T00:00:00Z".into(),
        last_seen: "2026-12-06T00:01:00Z".into(),
        outcomes: BTreeMap::from([("AA".to_string(), 3)]),
        source_trigramme: (!from.is_empty()).then(|| from.into()),
        target_trigramme: (!to.is_empty()).then(|| to.into()),
    }
}

/// A store-and-forward route's legs as the gateway writes them: `n`
/// messages stored (`in`) and delivered (`out`), and `retries` failed
/// attempts (`retry`).
pub fn stored_and_forwarded(from: &str, to: &str, n: u64, retries: u64) -> Vec<ObservedFlow> {
    let leg = |direction: &str, count: u64, outcome: &str| ObservedFlow {
        direction: direction.into(),
        count,
        outcomes: BTreeMap::from([(outcome.to_string(), count)]),
        ..seen("adt", from, to, "mllp", "ADT^A01", false)
    };
    vec![
        leg("in", n, "stored"),
        leg("retry", retries, "unacknowledged"),
        leg("out", n, "AA"),
    ]
}
