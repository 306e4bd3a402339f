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
