use super::*;
use crate::testdata::demo;

#[test]
fn the_page_holds_everything_and_fetches_nothing() {
    let Some(atlas) = demo() else { return };
    let data = SiteData::new(&atlas, &[], crate::Lang::Fr, "2026-12-06T03:00:00Z");
    let html = page(&data).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"fr\">"));
    assert!(html.contains("default-src 'none'"));
    // The SVG namespace is a name, not an address that is fetched.
    let rest = html.replace("'http://www.w3.org/2000/svg'", "");
    for remote in ["http://", "https://", "src=\"", "href=\"http"] {
        assert!(!rest.contains(remote), "{remote} in the page");
    }
    // The data cannot close its script element early.
    let start = html.find("<script id=\"atlas-data\"").unwrap();
    let json_end = html[start..].find("</script>").unwrap();
    assert!(!html[start + 40..start + json_end].contains('<'));
}

#[test]
fn markup_in_the_data_stays_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"etablissements": [{"nom": "</script><script>alert(1)</script>", "domaines": []}]}"#,
    )
    .unwrap();
    let atlas = crate::read::read_dir(dir.path()).unwrap();
    let html = page(&SiteData::new(&atlas, &[], crate::Lang::En, "now")).unwrap();
    assert_eq!(html.matches("</script>").count(), 2, "only the page's own");
    assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
}

/// Each text is sent once, and what is packed unpacks to what was
/// computed: the findings' messages, the flows, the observed routes.
#[test]
fn each_text_is_sent_once_and_unpacks_whole() {
    let Some(atlas) = demo() else { return };
    let data = serde_json::to_value(SiteData::new(&atlas, &[], crate::Lang::Fr, "now")).unwrap();
    let strings: Vec<&str> = data["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = strings.iter().copied().collect();
    assert_eq!(unique.len(), strings.len(), "a text sent twice");

    let text = |v: &serde_json::Value| strings[v.as_u64().unwrap() as usize].to_string();
    let quality = crate::quality::analyse(&atlas, crate::Lang::Fr);
    let messages: Vec<String> = data["quality"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match &f[2] {
            serde_json::Value::String(whole) => whole.clone(),
            rest => text(&f[1]) + &text(rest),
        })
        .collect();
    let expected: Vec<String> = quality.all().map(|f| f.message.clone()).collect();
    assert_eq!(messages, expected);

    let flows = data["flows"].as_array().unwrap();
    assert_eq!(flows.len(), atlas.all_flows().count());
    let (_, first) = atlas.all_flows().next().unwrap();
    assert_eq!(flows[0][1], first.key());
    assert_eq!(text(&flows[0][2]), first.source());
    assert!(data.get("matrix").is_none() && data["quality"].get("markdown").is_none());
}

/// The page draws its matrix from the observed aggregates: each carries
/// the messages it adds, as the matrix counts them, so a store-and-forward
/// route's `in` and `retry` legs add none.
#[test]
fn observed_counts_are_the_messages_the_matrix_adds() {
    let atlas = crate::model::Atlas::default();
    let legs = crate::testdata::stored_and_forwarded("SIL", "GAP", 3, 5);
    let data = serde_json::to_value(SiteData::new(&atlas, &legs, crate::Lang::Fr, "now")).unwrap();
    let counts: u64 = data["observed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    let matrix = crate::matrix::matrix(&[], &legs);
    let cells: u64 = matrix.cells.iter().map(|c| c.observed_count).sum();
    assert_eq!((counts, cells), (3, 3));
}
