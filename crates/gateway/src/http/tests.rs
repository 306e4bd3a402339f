use std::path::Path;
use std::sync::Arc;

use http::header::HOST;
use http::Request;

use super::request::{clip, LOGGED_PATH};
use super::rules::{find_rule, host_of, normalize_path, request_authority, rewrite_path};
use crate::config::{Config, HttpSpec};

/// Whether `normalize_path` accepts a path.
fn is_plain_path(path: &str) -> bool {
    normalize_path(path).is_some()
}

/// The host a request is for, lower case and without port (none when
/// there is none or it is ambiguous).
fn request_host<B>(request: &Request<B>) -> Option<String> {
    request_authority(request)
        .ok()
        .flatten()
        .as_ref()
        .map(host_of)
}

fn spec(rules: &str) -> Arc<HttpSpec> {
    let text = format!(
        r#"
[tls.gw]
cert = "gw.pem"
key = "gw.key"
ca = "ca.pem"

[[app]]
name = "a"
cn = "a"

[[route]]
name = "web"
kind = "http"
listen = "127.0.0.1:0"
listen_tls = "gw"
{rules}
"#
    );
    let config = Config::parse(Path::new("/etc/guichet/guichet.toml"), &text).unwrap();
    config.routes[0].http().unwrap().clone()
}

fn rule(name: &str, host: Option<&str>, path: &str, upstream: &str) -> String {
    let host = host
        .map(|h| format!("host = \"{h}\"\n"))
        .unwrap_or_default();
    format!(
        "[[route.rule]]\nname = \"{name}\"\n{host}path = \"{path}\"\nupstream = \"{upstream}\"\nallow = [\"a\"]\n"
    )
}

fn matched(spec: &HttpSpec, host: Option<&str>, path: &str) -> Option<String> {
    find_rule(spec, host, path).map(|(_, r)| r.name.to_string())
}

#[test]
fn longest_prefix_wins_and_host_rules_come_first() {
    let spec = spec(
        &[
            rule("root", None, "/", "http://127.0.0.1:1"),
            rule("ror", None, "/ror/", "http://127.0.0.1:2"),
            rule("ror-internal", None, "/ror/internal/", "http://127.0.0.1:3"),
            rule(
                "annuaire",
                Some("annuaire.example"),
                "/",
                "http://127.0.0.1:4",
            ),
        ]
        .concat(),
    );
    assert_eq!(
        matched(&spec, None, "/ror/internal/beds").as_deref(),
        Some("ror-internal")
    );
    assert_eq!(
        matched(&spec, None, "/ror/interop/beds").as_deref(),
        Some("ror")
    );
    assert_eq!(matched(&spec, None, "/other").as_deref(), Some("root"));
    assert_eq!(
        matched(&spec, Some("annuaire.example"), "/ror/internal/x").as_deref(),
        Some("annuaire")
    );
    let strict = spec_without_root();
    assert_eq!(matched(&strict, None, "/elsewhere"), None);
}

fn spec_without_root() -> Arc<HttpSpec> {
    spec(&rule("ror", None, "/ror/interop", "http://127.0.0.1:2"))
}

#[test]
fn prefixes_match_whole_segments() {
    let spec = spec_without_root();
    assert!(matched(&spec, None, "/ror/interop").is_some());
    assert!(matched(&spec, None, "/ror/interop/x").is_some());
    assert!(matched(&spec, None, "/ror/interoperability").is_none());
}

#[test]
fn paths_that_an_upstream_could_normalise_are_refused() {
    for bad in [
        "/ror/interop/../internal/x",
        "/ror/interop/./x",
        "/ror//internal/x",
        "/ror/interop/%2e%2e/internal",
        "/ror/interop/%2E%2E/internal",
        "/ror/interop%2finternal",
        "/ror/interop%5Cinternal",
        "/ror/interop\\internal",
        "/a%00b",
    ] {
        assert!(!is_plain_path(bad), "{bad} should be refused");
    }
    for bad in [
        "/ror/internal;x/beds",
        "/ror/x/..;/internal/beds",
        "/a%25b",
        "/a%3bb",
        "/a%0ab",
    ] {
        assert!(!is_plain_path(bad), "{bad} should be refused");
    }
    for good in [
        "/",
        "/ror/interop/beds",
        "/ror/interop/a%20b",
        "/ror/interop/v1.2/x..y",
    ] {
        assert!(is_plain_path(good), "{good} should pass");
    }
}

#[test]
fn upstream_paths_replace_the_prefix_like_proxy_pass() {
    let spec = spec(
        &[
            rule("kept", None, "/kept/", "http://127.0.0.1:1"),
            rule("slash", None, "/ror/interop/", "http://127.0.0.1:2/api/"),
            rule("bare", None, "/ror/internal", "http://127.0.0.1:3/v2"),
            rule("root", None, "/ror/annuaire/", "http://127.0.0.1:4/"),
        ]
        .concat(),
    );
    let r = |name: &str| spec.rules.iter().find(|r| r.name.as_str() == name).unwrap();
    assert_eq!(rewrite_path(r("kept"), "/kept/x"), "/kept/x");
    assert_eq!(
        rewrite_path(r("slash"), "/ror/interop/beds/1"),
        "/api/beds/1"
    );
    assert_eq!(rewrite_path(r("slash"), "/ror/interop/"), "/api/");
    assert_eq!(rewrite_path(r("bare"), "/ror/internal/x"), "/v2/x");
    assert_eq!(rewrite_path(r("bare"), "/ror/internal"), "/v2");
    assert_eq!(rewrite_path(r("root"), "/ror/annuaire/rpps/1"), "/rpps/1");
}

#[test]
fn host_comes_from_authority_or_header_without_port() {
    let request = Request::builder()
        .uri("/x")
        .header(HOST, "ROR.Example.org:8443")
        .body(())
        .unwrap();
    assert_eq!(request_host(&request).as_deref(), Some("ror.example.org"));
    let request = Request::builder()
        .uri("https://annuaire.example/x")
        .body(())
        .unwrap();
    assert_eq!(request_host(&request).as_deref(), Some("annuaire.example"));
    let request = Request::builder().uri("/x").body(()).unwrap();
    assert_eq!(request_host(&request), None);
}

#[test]
fn encoded_unreserved_characters_are_decoded_before_matching() {
    assert_eq!(
        normalize_path("/ror/%69nternal/beds").as_deref(),
        Some("/ror/internal/beds")
    );
    assert_eq!(
        normalize_path("/ror/interop/a%20b").as_deref(),
        Some("/ror/interop/a%20b")
    );
    assert_eq!(normalize_path("/bad%2"), None);
    assert_eq!(normalize_path("/bad%zz"), None);
    let spec = spec(
        &[
            rule("public", None, "/ror/", "http://127.0.0.1:1"),
            rule("internal", None, "/ror/internal/", "http://127.0.0.1:2"),
        ]
        .concat(),
    );
    // Without the trailing slash it is still the protected place.
    assert_eq!(
        matched(&spec, None, "/ror/internal").as_deref(),
        Some("internal")
    );
    let r = spec
        .rules
        .iter()
        .find(|r| r.name.as_str() == "internal")
        .unwrap();
    assert_eq!(rewrite_path(r, "/ror/internal"), "/ror/internal");
}

#[test]
fn a_host_header_must_agree_with_the_authority() {
    let agree = Request::builder()
        .uri("https://ror.example/x")
        .header(HOST, "ROR.example")
        .body(())
        .unwrap();
    assert!(request_authority(&agree).is_ok());
    let differ = Request::builder()
        .uri("https://public.example/x")
        .header(HOST, "admin.example")
        .body(())
        .unwrap();
    assert!(request_authority(&differ).is_err());
}

/// Two Host headers are refused, even when they agree.
#[test]
fn f8_two_host_headers_are_refused() {
    for (first, second) in [("ror.example", "admin.example"), ("gw", "gw")] {
        let twice = Request::builder()
            .uri("/x")
            .header(HOST, first)
            .header(HOST, second)
            .body(())
            .unwrap();
        assert!(request_authority(&twice).is_err(), "{first}, {second}");
    }
}

#[test]
fn logged_paths_are_clipped_on_a_character_boundary() {
    let long = format!("/{}", "é".repeat(3000));
    let clipped = clip(&long);
    assert!(clipped.len() <= LOGGED_PATH);
    assert!(long.starts_with(clipped));
}
