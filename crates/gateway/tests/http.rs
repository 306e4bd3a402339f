//! `http` routes, the HTTPS gateway in front of regional
//! services. curl is the partner application (its certificate, HTTP/1.1
//! or HTTP/2 by ALPN); the services behind are real HTTP servers on
//! 127.0.0.1 that report what reached them. A keep-alive client (hyper
//! over rustls) stands in for curl where one connection must outlive a
//! reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::http::{
    alpn_client, full, unsized_body, upstream_mtls, upstream_mtls_alpn, Curl, KeepAlive, Seen,
    Upstream, SLOW,
};
use crate::common::{
    app, cert_der, closed_port, gateway_section, metric_value, profile, tls, toml_path, Pki,
    Running, LISTEN, WAIT,
};
use bytes::Bytes;
use guichet_pki::{IssueRequest, IssuedFiles, Usage};
use guichet_testsupport::wait::{let_pass, until};
use guichet_tls::Identity;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTE: &str = "guichet-unique";
/// The name on the gateway's certificate, which clients dial.
const GW: &str = "gw";
/// A second name on it, for host rules.
const ANNUAIRE: &str = "annuaire.example";
const APP_A: &str = "partner-a";
const APP_B: &str = "partner-b";
const APP_C: &str = "partner-c";
const RULE_A: &str = "rule-a";
const RULE_B: &str = "rule-b";

// ------------------------------------------------------------ config

/// The parts of the config file a test chooses.
#[derive(Clone, Default)]
struct Layout {
    /// Lines of the `[[route]]` table, before its rules.
    route: String,
    /// `[[route.rule]]` tables.
    rules: String,
    /// `[tls.NAME]` profiles (and `[[app]]`s) beyond the standard ones.
    extra: String,
}

impl Layout {
    /// `rule-a` (`/a/`, partner-a) and `rule-b` (`/b/`, partner-a and
    /// partner-b), both to `echo`; partner-c is admitted by no rule.
    fn standard(echo: &Upstream) -> Layout {
        Layout::default().rules_to(echo, &[APP_A], &[APP_A, APP_B])
    }

    /// `rule-a` and `rule-b` to `echo`, admitting `a` and `b`.
    fn rules_to(self, echo: &Upstream, a: &[&str], b: &[&str]) -> Layout {
        self.rule(&rule(RULE_A, "/a/", &echo.url(), a, ""))
            .rule(&rule(RULE_B, "/b/", &echo.url(), b, ""))
    }

    fn route(mut self, lines: &str) -> Layout {
        self.route += lines;
        self.route += "\n";
        self
    }

    fn rule(mut self, text: &str) -> Layout {
        self.rules += text;
        self
    }

    fn extra(mut self, text: &str) -> Layout {
        self.extra += text;
        self
    }
}

/// One `[[route.rule]]`.
fn rule(name: &str, path: &str, upstream: &str, allow: &[&str], more: &str) -> String {
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[route.rule]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\nallow = [{}]\n{more}\n",
        allow.join(", ")
    )
}

/// partner-a, partner-b and partner-c, by CN from the test CA.
fn standard_apps() -> String {
    [APP_A, APP_B, APP_C].map(|name| app(name, name)).concat()
}

fn config(pki: &Pki, gw: &IssuedFiles, access: &Path, apps: &str, layout: &Layout) -> String {
    format!(
        "{}{}{}{apps}[[route]]\nname = \"{ROUTE}\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\naccess_log = {}\n{}\n{}",
        gateway_section("1s", "0s"),
        profile("gw", Some(gw), &pki.ca_cert(), Some(&pki.crl())),
        layout.extra,
        toml_path(access),
        layout.route,
        layout.rules,
    )
}

// -------------------------------------------------------------- site

/// A gateway with one `http` route, its partners' certificates, and the
/// echo upstream behind it.
struct Site {
    pki: Pki,
    gw: IssuedFiles,
    a: IssuedFiles,
    b: IssuedFiles,
    c: IssuedFiles,
    echo: Upstream,
    access: PathBuf,
    gateway: Running,
}

impl Site {
    async fn start(pki: Pki, echo: Upstream, layout: &Layout) -> Site {
        let gw = pki.issue_with(&IssueRequest {
            usage: Usage::ServerOnly,
            dns: vec![ANNUAIRE.into()],
            ..IssueRequest::new(GW)
        });
        let [a, b, c] = [APP_A, APP_B, APP_C].map(|name| pki.issue(name, Usage::ClientOnly));
        let access = pki.tmp.path().join("access.jsonl");
        let text = config(&pki, &gw, &access, &standard_apps(), layout);
        let gateway = Running::start(&pki.config_path(), &text).await;
        Site {
            pki,
            gw,
            a,
            b,
            c,
            echo,
            access,
            gateway,
        }
    }

    /// [`Layout::standard`], with `route` lines.
    async fn standard(route: &str) -> Site {
        let echo = Upstream::plain().await;
        let layout = Layout::standard(&echo).route(route);
        Site::start(Pki::new(), echo, &layout).await
    }

    fn curl(&self, cert: &IssuedFiles) -> Curl {
        Curl {
            addr: self.gateway.addr(ROUTE),
            name: GW.into(),
            ca: self.pki.ca_cert(),
            cert: Some(cert.clone()),
            dir: self.pki.tmp.path().to_path_buf(),
        }
    }

    async fn keep_alive(&self, cert: &IssuedFiles, h2: bool) -> KeepAlive {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let tls = alpn_client(Some(cert), &self.pki.ca_cert(), alpn);
        KeepAlive::connect(&tls, self.gateway.addr(ROUTE), GW, h2).await
    }

    /// Rewrites the config file (the gateway reads it at its next reload).
    fn rewrite(&self, apps: &str, layout: &Layout) {
        let text = config(&self.pki, &self.gw, &self.access, apps, layout);
        std::fs::write(self.pki.config_path(), text).unwrap();
    }

    /// Requests are counted when their response ends: poll.
    async fn wait_requests(&self, rule: &str, app: &str, class: &str, want: u64) {
        self.gateway
            .wait_value(
                "guichet_http_requests_total",
                &[
                    ("route", ROUTE),
                    ("rule", rule),
                    ("app", app),
                    ("class", class),
                ],
                want,
            )
            .await;
    }

    fn refusals(&self, reason: &str) -> u64 {
        self.gateway.value(
            "guichet_http_refusals_total",
            &[("route", ROUTE), ("reason", reason)],
        )
    }

    async fn wait_refusals(&self, reason: &str, want: u64) {
        self.gateway
            .wait_value(
                "guichet_http_refusals_total",
                &[("route", ROUTE), ("reason", reason)],
                want,
            )
            .await;
    }

    /// Every sample of `guichet_http_requests_total`, summed.
    fn all_requests(&self) -> u64 {
        self.gateway
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("guichet_http_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    }
}

/// The SHA-256 of a certificate, lower-case hex: envoy's `Hash`.
fn fingerprint(cert: &IssuedFiles) -> String {
    let id = Identity::from_der(&cert_der(&cert.cert)).unwrap();
    id.fingerprint
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn seen_apps(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| s.one("x-guichet-app").to_string())
        .collect()
}

// ------------------------------------------------------ 1. admission

#[tokio::test]
async fn each_partner_reaches_only_the_rules_that_admit_it() {
    let s = Site::standard("").await;
    let (a, b, c) = (s.curl(&s.a), s.curl(&s.b), s.curl(&s.c));

    let echoed = a.run("/a/beds", &[]).await.echoed();
    assert_eq!(echoed["path"], "/a/beds");
    a.run("/b/beds", &[]).await.echoed();
    b.run("/b/beds", &[]).await.echoed();
    b.run("/a/beds", &[]).await.problem(403, Some(RULE_A));
    // partner-c completes the handshake ([[app]]) but no rule admits it.
    c.run("/a/beds", &[]).await.problem(403, Some(RULE_A));
    c.run("/b/beds", &[]).await.problem(403, Some(RULE_B));

    let seen = s.echo.seen();
    assert_eq!(seen_apps(&seen), [APP_A, APP_A, APP_B]);
    let rules: Vec<&str> = seen.iter().map(|s| s.one("x-guichet-rule")).collect();
    assert_eq!(rules, [RULE_A, RULE_B, RULE_B]);

    for (rule, app, class) in [
        (RULE_A, APP_A, "2xx"),
        (RULE_B, APP_A, "2xx"),
        (RULE_B, APP_B, "2xx"),
        (RULE_A, APP_B, "4xx"),
        (RULE_A, APP_C, "4xx"),
        (RULE_B, APP_C, "4xx"),
    ] {
        s.wait_requests(rule, app, class, 1).await;
    }
    assert_eq!(s.all_requests(), 6, "{}", s.gateway.metrics.render());
    assert_eq!(s.refusals("not_admitted"), 3);
    assert_eq!(s.gateway.all_refusals(), 0, "no TLS refusal");
}

#[tokio::test]
async fn certificates_no_app_matches_fail_the_handshake() {
    let s = Site::standard("").await;
    // Same CA, but no [[app]] has this CN.
    let stranger = s.pki.issue("stranger", Usage::ClientOnly);
    // The name of an admitted partner, from another CA.
    let other_ca = s.pki.other_ca("other-ca");
    let forged = guichet_pki::issue(
        &other_ca,
        &IssueRequest {
            usage: Usage::ClientOnly,
            ..IssueRequest::new(APP_A)
        },
    )
    .unwrap();

    for (cert, reason) in [(&stranger, "not_allowed"), (&forged, "unknown_ca")] {
        let out = s.curl(cert).run("/a/beds", &[]).await;
        assert_ne!(out.exit, 0, "{out:?}");
        assert_eq!(out.status, 0, "an HTTP answer came: {out:?}");
        s.gateway.wait_refusals(ROUTE, LISTEN, reason, 1).await;
    }
    let mut anonymous = s.curl(&s.a);
    anonymous.cert = None;
    let out = anonymous.run("/a/beds", &[]).await;
    assert_eq!(out.status, 0, "an HTTP answer came: {out:?}");
    s.gateway
        .wait_refusals(ROUTE, LISTEN, "no_certificate", 1)
        .await;

    assert_eq!(
        s.gateway.all_refusals(),
        3,
        "{}",
        s.gateway.metrics.render()
    );
    assert!(s.echo.seen().is_empty(), "{:#?}", s.echo.seen());
    assert_eq!(s.all_requests(), 0);
    // The control: partner-a itself gets through.
    s.curl(&s.a).run("/a/beds", &[]).await.echoed();
}

#[tokio::test]
async fn unknown_paths_are_404_and_unsafe_paths_are_400() {
    let s = Site::standard("").await;
    let a = s.curl(&s.a);
    // `/a` is rule-a's own place (its prefix is `/a/`): see below.
    let unknown = ["/c/beds", "/", "/ab/beds", "/A/beds"];
    let unsafe_paths = [
        "/a/../b/beds",
        "/a/./beds",
        "/a/%2e%2e/b/beds",
        "/a/%2E%2e/b/beds",
        "/a/.%2e/b/beds",
        "/a//beds",
        "/a/x%2Fy",
        "/a/x%5cy",
        "/a/x%00y",
        "/a;x/beds",
        "/b/..;/a/beds",
        "/a/x%25y",
    ];
    for protocol in ["--http1.1", "--http2"] {
        for path in unknown {
            let out = a.run(path, &[protocol, "--path-as-is"]).await;
            out.problem(404, None);
        }
        for path in unsafe_paths {
            let out = a.run(path, &[protocol, "--path-as-is"]).await;
            out.problem(400, None);
        }
    }
    assert!(s.echo.seen().is_empty(), "{:#?}", s.echo.seen());
    let (n404, n400) = (2 * unknown.len() as u64, 2 * unsafe_paths.len() as u64);
    s.wait_requests("-", APP_A, "4xx", n404 + n400).await;
    assert_eq!(s.refusals("no_rule"), n404);
    assert_eq!(s.refusals("bad_path"), n400);
    // A plain path under the same prefix is served, and so is the prefix
    // without its slash; an encoded letter is decoded before matching, and
    // the upstream gets the path that was matched.
    a.run("/a/beds", &["--path-as-is"]).await.echoed();
    let bare = a.run("/a", &["--path-as-is"]).await.echoed();
    assert_eq!(bare["path"], "/a", "{bare}");
    let encoded = a.run("/%61/beds", &["--path-as-is"]).await.echoed();
    assert_eq!(encoded["path"], "/a/beds", "{encoded}");
}

#[tokio::test]
async fn host_rules_come_first_then_the_longest_prefix_and_paths_are_rewritten() {
    let echo = Upstream::plain().await;
    let layout = Layout::standard(&echo)
        .rule(&rule(
            "rule-api",
            "/a/api/",
            &format!("{}/v2/", echo.url()),
            &[APP_A],
            "",
        ))
        .rule(&rule(
            "rule-annuaire",
            "/",
            &format!("{}/annuaire", echo.url()),
            &[APP_A],
            &format!("host = \"{ANNUAIRE}\"\n"),
        ));
    let s = Site::start(Pki::new(), echo, &layout).await;
    let gw = s.curl(&s.a);
    let annuaire = Curl {
        name: ANNUAIRE.into(),
        ..gw.clone()
    };
    let port = s.gateway.addr(ROUTE).port();
    let upper_host = format!("Host: ANNUAIRE.example:{port}");
    let cases: [(&Curl, &str, &[&str], &str, &str); 6] = [
        (&gw, "/a/api/beds?day=1", &[], "rule-api", "/v2/beds?day=1"),
        (&gw, "/a/apiary", &[], RULE_A, "/a/apiary"),
        (&gw, "/a/", &[], RULE_A, "/a/"),
        (
            &annuaire,
            "/a/api/beds",
            &[],
            "rule-annuaire",
            "/annuaire/a/api/beds",
        ),
        (
            &annuaire,
            "/rpps/1?q=2",
            &["--http2"],
            "rule-annuaire",
            "/annuaire/rpps/1?q=2",
        ),
        // Host names match whatever their case.
        (
            &gw,
            "/x",
            &["--http1.1", "-H", &upper_host],
            "rule-annuaire",
            "/annuaire/x",
        ),
    ];
    for (curl, path, extra, rule, upstream_path) in cases {
        let echoed = curl.run(path, extra).await.echoed();
        assert_eq!(echoed["path"], upstream_path, "{path} {extra:?}");
        let seen = s.echo.seen().pop().unwrap();
        assert_eq!(seen.one("x-guichet-rule"), rule, "{path} {extra:?}");
    }
    // gw has no rule for "/": the host rule is annuaire's alone.
    gw.run("/x", &[]).await.problem(404, None);
}

// ------------------------------------------------ 2. identity headers

/// Headers a client could use to pass for another application, address
/// or certificate: every one holds "SPOOF" or 6.6.6.6 / 7.7.7.7.
const SPOOFED: &[&str] = &[
    "X-Forwarded-For: 6.6.6.6",
    "x-forwarded-for: 7.7.7.7, 6.6.6.6",
    "X-FORWARDED-CLIENT-CERT: Hash=SPOOF;Subject=\"CN=admin\"",
    "X-Forwarded-Tls-Client-Cert-Info: Subject%3D%22CN%3DSPOOF%22",
    "X-Forwarded-Tls-Client-Cert: SPOOF",
    "X-Guichet-App: SPOOF-admin",
    "x-GUICHET-app: SPOOF-root",
    "X-Guichet-Rule: SPOOF",
    "X-Guichet-Cert-Fingerprint: SPOOF",
    "Forwarded: for=6.6.6.6;by=SPOOF",
    "X-Real-IP: 6.6.6.6",
    "x-real-ip: SPOOF",
    "X-Forwarded-Proto: SPOOF",
    "X-Forwarded-Host: SPOOF.example",
    "X-Client-IP: SPOOF",
    // CGI-style servers read `_` as `-`.
    "X_Guichet_App: SPOOF-underscore",
    "X_Forwarded_For: 6.6.6.6",
    // Routing headers some frameworks trust over the path.
    "X-Original-URL: /SPOOF/internal",
    "X-Rewrite-URL: /SPOOF/internal",
    "True-Client-IP: 6.6.6.6",
    "CF-Connecting-IP: 6.6.6.6",
    // Identities vouched for by authenticating proxies, the
    // certificate headers of IIS, AWS and nginx setups, and their kin.
    "X-Remote-User: SPOOF-admin",
    "x-REMOTE-user: SPOOF-second",
    "Remote-User: SPOOF-admin",
    "Remote-Groups: SPOOF-admins",
    "X-Authenticated-User: SPOOF-admin",
    "X-ARR-ClientCert: SPOOF",
    "X-Client-Verify: SUCCESS-SPOOF",
    "X-Amzn-Mtls-Clientcert: SPOOF",
    "X-Cluster-Client-IP: 6.6.6.6",
    "X-Forwarded-User: SPOOF-admin",
    "X-Auth-Request-Email: SPOOF@example.org",
    "X-WEBAUTH-USER: SPOOF-admin",
    "X-Client-DN: CN=SPOOF",
    "Ssl-Client-Subject-DN: CN=SPOOF",
    "WL-Proxy-Client-IP: 6.6.6.6",
];

/// Auth-proxy identity headers (and the identity headers before them): over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn f5_spoofed_identity_headers_never_reach_the_upstream() {
    let s = Site::standard("").await;
    let a = s.curl(&s.a);
    let hash = fingerprint(&s.a);
    for protocol in ["--http1.1", "--http2"] {
        let mut args = vec![protocol, "-H", "X-Keep: kept"];
        for header in SPOOFED {
            args.extend(["-H", header]);
        }
        let out = a.run("/a/beds", &args).await;
        let want_version = if protocol == "--http2" { "2" } else { "1.1" };
        assert_eq!(out.version, want_version, "{out:?}");
        out.echoed();
        let seen = s.echo.seen().pop().unwrap();
        for (name, value) in &seen.headers {
            let lower = value.to_ascii_lowercase();
            assert!(
                !lower.contains("spoof")
                    && !value.contains("6.6.6.6")
                    && !value.contains("7.7.7.7"),
                "{protocol}: the client's {name}: {value} reached the upstream"
            );
        }
        assert_eq!(seen.one("x-guichet-app"), APP_A);
        assert_eq!(seen.one("x-guichet-rule"), RULE_A);
        assert_eq!(seen.one("x-guichet-cert-fingerprint"), hash);
        assert_eq!(seen.one("x-forwarded-for"), "127.0.0.1");
        assert_eq!(seen.one("x-forwarded-proto"), "https");
        let host = format!("{GW}:{}", s.gateway.addr(ROUTE).port());
        assert_eq!(seen.one("x-forwarded-host"), host);
        let xfcc = seen.one("x-forwarded-client-cert");
        assert!(xfcc.starts_with(&format!("Hash={hash};")), "{xfcc}");
        assert!(xfcc.contains("CN=partner-a"), "{xfcc}");
        let info = seen.one("x-forwarded-tls-client-cert-info");
        assert!(info.contains("CN%3Dpartner-a"), "{info}");
        assert!(info.contains("CN%3Dguichet+test+CA"), "{info}");
        for gone in [
            "forwarded",
            "x-real-ip",
            "x-client-ip",
            "x-forwarded-tls-client-cert",
            "x-remote-user",
            "remote-user",
            "x-authenticated-user",
            "x-arr-clientcert",
            "x-client-verify",
            "x-amzn-mtls-clientcert",
            "x-cluster-client-ip",
        ] {
            assert!(seen.all(gone).is_empty(), "{protocol}: {gone} passed");
        }
        assert_eq!(seen.one("x-keep"), "kept", "ordinary headers pass");
    }
    assert_eq!(s.echo.seen().len(), 2);
}

#[tokio::test]
async fn a_form_left_out_of_identity_headers_is_still_stripped() {
    let s = Site::standard("identity_headers = [\"traefik\"]").await;
    let mut args = vec![];
    for header in SPOOFED {
        args.extend(["-H", header]);
    }
    s.curl(&s.a).run("/a/beds", &args).await.echoed();
    let seen = s.echo.only();
    assert!(seen.all("x-forwarded-client-cert").is_empty(), "{seen:#?}");
    let info = seen.one("x-forwarded-tls-client-cert-info");
    assert!(info.contains("CN%3Dpartner-a"), "{info}");
    assert_eq!(seen.one("x-guichet-app"), APP_A);
}

// ------------------------------------------------- 3. HTTP/2, HTTP/1.1

#[tokio::test]
async fn http2_and_http11_both_reach_the_upstream() {
    let s = Site::standard("").await;
    let a = s.curl(&s.a);
    for (args, version) in [
        (&["--http2"][..], "2"),
        (&["--http1.1"][..], "1.1"),
        // curl's own choice: h2 offered first, and taken.
        (&[][..], "2"),
    ] {
        let out = a.run("/a/beds?day=1", args).await;
        assert_eq!(out.version, version, "{args:?}: {out:?}");
        assert_eq!(out.echoed()["path"], "/a/beds?day=1");
    }
    // Bodies pass whole both ways.
    let body = "x".repeat(100_000);
    for protocol in ["--http2", "--http1.1"] {
        let out = a
            .run("/b/upload", &[protocol, "--data-binary", &body])
            .await;
        let echoed = out.echoed();
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["body_bytes"], 100_000, "{protocol}");
        assert_eq!(echoed["body_error"], Value::Null);
    }
    // The same through keep-alive connections of each kind.
    for h2 in [true, false] {
        let mut client = s.keep_alive(&s.a, h2).await;
        for _ in 0..3 {
            let answer = client.get("/b/beds").await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.json()["path"], "/b/beds");
        }
    }
    assert_eq!(s.echo.seen().len(), 3 + 2 + 6);
    s.wait_requests(RULE_A, APP_A, "2xx", 3).await;
    s.wait_requests(RULE_B, APP_A, "2xx", 8).await;
}

// ---------------------------------------------------- 4. body limits

/// A file of `len` bytes `byte` in the test's directory: its path, and
/// the `@path` argument by which curl sends it.
fn body_file(s: &Site, name: &str, byte: u8, len: usize) -> (PathBuf, String) {
    let path = s.pki.tmp.path().join(name);
    std::fs::write(&path, vec![byte; len]).unwrap();
    let arg = format!("@{}", path.display());
    (path, arg)
}

#[tokio::test]
async fn bodies_over_max_body_bytes_are_413() {
    const LIMIT: usize = 1024 * 1024;
    let s = Site::standard(&format!("max_body_bytes = {LIMIT}")).await;
    let a = s.curl(&s.a);
    let (_, at_limit_arg) = body_file(&s, "at-limit.bin", b'a', LIMIT);
    let (_, over_arg) = body_file(&s, "over.bin", b'o', 3 * LIMIT);
    let chunked = "Transfer-Encoding: chunked";

    // At the limit: served, whole, with a length and chunked.
    for extra in [
        vec!["--http1.1", "--data-binary", &at_limit_arg],
        vec!["--http1.1", "-H", chunked, "--data-binary", &at_limit_arg],
        vec!["--http2", "--data-binary", &at_limit_arg],
    ] {
        let echoed = a.run("/a/upload", &extra).await.echoed();
        assert_eq!(echoed["body_bytes"], LIMIT, "{extra:?}");
    }
    let served = s.echo.seen().len();

    // Over, with a Content-Length: refused before the upstream is asked.
    let out = a
        .run("/a/upload", &["--http1.1", "--data-binary", &over_arg])
        .await;
    out.problem(413, Some(RULE_A));
    let out = a
        .run("/a/upload", &["--http2", "--data-binary", &over_arg])
        .await;
    out.problem(413, Some(RULE_A));
    assert_eq!(s.echo.seen().len(), served, "the upstream was asked");

    // Over, with and without a length, by hyper on one HTTP/2 connection,
    // which stays usable. (Without a length the body is cut once past the
    // limit; curl's case is the next test.)
    let mut h2 = s.keep_alive(&s.a, true).await;
    let data = Bytes::from(vec![b'o'; 3 * LIMIT]);
    for body in [full(data.clone()), unsized_body(data.clone())] {
        let request = h2.request("POST", "/a/upload").body(body).unwrap();
        h2.send(request).await.unwrap().problem(413, Some(RULE_A));
        assert_eq!(h2.get("/a/beds").await.unwrap().status, 200);
    }
    // And an HTTP/2 body of unknown length at the limit passes.
    let request = h2
        .request("POST", "/a/upload")
        .body(unsized_body(Bytes::from(vec![b'a'; LIMIT])))
        .unwrap();
    let answer = h2.send(request).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["body_bytes"], LIMIT);

    s.wait_refusals("body_too_large", 4).await;
    for seen in s.echo.seen() {
        assert!(seen.body_bytes <= LIMIT as u64, "{seen:#?}");
    }
    s.wait_requests(RULE_A, APP_A, "4xx", 4).await;
}

/// A body without a length is cut once past the limit, on its way to the
/// upstream. The client, still uploading, must read the 413 all the same,
/// as it does when the declared length is refused (the rest of its body
/// is drained): curl over HTTP/2 from a pipe, and chunked HTTP/1.1.
#[tokio::test]
async fn a_body_cut_at_max_body_bytes_still_gets_its_413() {
    const LIMIT: usize = 1024 * 1024;
    let s = Site::standard(&format!("max_body_bytes = {LIMIT}")).await;
    let a = s.curl(&s.a);
    let (over, over_arg) = body_file(&s, "over.bin", b'o', 3 * LIMIT);
    for _ in 0..3 {
        let out = a
            .run_with_stdin(
                "/a/upload",
                &["--http2", "-X", "POST", "-T", "-"],
                Some(over.clone()),
            )
            .await;
        out.problem(413, Some(RULE_A));
        let out = a
            .run(
                "/a/upload",
                &[
                    "--http1.1",
                    "-H",
                    "Transfer-Encoding: chunked",
                    "--data-binary",
                    &over_arg,
                ],
            )
            .await;
        out.problem(413, Some(RULE_A));
    }
    for seen in s.echo.seen() {
        assert!(seen.body_bytes <= LIMIT as u64, "{seen:#?}");
    }
    s.wait_refusals("body_too_large", 6).await;
}

// ------------------------------------------- 4b. malformed requests

/// Sends `request` as is over TLS (HTTP/1.1) and reads the answer until
/// the gateway closes the connection.
async fn raw_exchange(s: &Site, request: &[u8]) -> String {
    let client = alpn_client(Some(&s.a), &s.pki.ca_cert(), &[b"http/1.1"]);
    let mut stream = tls(&client, s.gateway.addr(ROUTE), GW).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "no end of answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code and the problem body's `detail` of a raw answer.
fn status_and_detail(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, detail)
}

/// Two `Host` headers are a 400 (RFC 9112 §3.2), counted as
/// `bad_host`; the upstream sees nothing.
#[tokio::test]
async fn f8_two_host_headers_are_400_bad_host() {
    let s = Site::standard("").await;
    for hosts in ["Host: gw\r\nHost: gw", "Host: gw\r\nHost: annuaire.example"] {
        let request = format!("GET /a/beds HTTP/1.1\r\n{hosts}\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(&s, request.as_bytes()).await;
        let (status, detail) = status_and_detail(&answer);
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(detail.contains("host more than once"), "{answer}");
    }
    s.wait_refusals("bad_host", 2).await;
    assert!(s.echo.seen().is_empty(), "{:#?}", s.echo.seen());
    // One Host still goes through.
    let one = raw_exchange(
        &s,
        b"GET /a/beds HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_and_detail(&one).0, 200, "{one}");
}

/// A malformed chunked body from the client is the client's fault: a
/// 400 counted as `bad_request_body`, never a 502 counted as
/// `upstream_error` (which feeds the failing-upstream alert).
#[tokio::test]
async fn f8_a_malformed_chunked_body_is_400_not_upstream_error() {
    let s = Site::standard("").await;
    let bodies: [&[u8]; 3] = [
        // A chunk size that is no hex number.
        b"5\r\nhello\r\nZZ\r\nworld\r\n0\r\n\r\n",
        // A chunk longer than its size, with no CRLF where one must be.
        b"3\r\nhello\r\n0\r\n\r\n",
        // A chunk size overflowing 64 bits.
        b"5\r\nhello\r\nFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let mut request =
            b"POST /a/beds HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let answer = raw_exchange(&s, &request).await;
        let (status, detail) = status_and_detail(&answer);
        assert_eq!(status, 400, "{answer}");
        assert!(
            detail.contains("request body could not be read"),
            "{answer}"
        );
    }
    s.wait_refusals("bad_request_body", 3).await;
    assert_eq!(s.refusals("upstream_error"), 0);
    s.wait_requests(RULE_A, APP_A, "4xx", 3).await;
    assert_eq!(s.refusals("upstream_unavailable"), 0);
}

// ------------------------------------------------- 5. slow clients

/// A connection that sends part of a request head, a line now and then,
/// is closed once `header_timeout` has passed (not at `idle_timeout`: it
/// is never idle); returns how long it stayed open.
async fn drip_until_closed(s: &Site, head: &[u8]) -> Duration {
    let client = alpn_client(Some(&s.a), &s.pki.ca_cert(), &[b"http/1.1"]);
    let mut stream = tls(&client, s.gateway.addr(ROUTE), GW).await.unwrap();
    let started = Instant::now();
    stream.write_all(head).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 4096];
    let mut answered = Vec::new();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still open after {:?}; answered {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&answered)
        );
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => answered.extend_from_slice(&buf[..n]),
            Err(_) => {
                let more = stream.write_all(b"X-Drip: 1\r\n").await;
                if more.is_err() || stream.flush().await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let s = Site::standard("header_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let open = drip_until_closed(&s, b"GET /a/beds HTTP/1.1\r\nHost: gw\r\n").await;
    assert!(
        open >= Duration::from_millis(900) && open < Duration::from_secs(5),
        "closed after {open:?}"
    );
    assert!(s.echo.seen().is_empty());
    s.wait_refusals("header_timeout", 1).await;
    // The gateway still serves, on both protocols.
    let a = s.curl(&s.a);
    a.run("/a/beds", &["--http1.1"]).await.echoed();
    a.run("/a/beds", &["--http2"]).await.echoed();
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_is_431() {
    let s = Site::standard("max_header_bytes = 4096").await;
    let a = s.curl(&s.a);
    // HTTP/2: over the limit within one frame (16 KiB; beyond, h2 treats a
    // header block in CONTINUATION frames over the limit as a flood and
    // closes the connection). HTTP/1.1: over hyper's 8 KiB floor (see
    // the next test).
    let (h2_big, h1_big) = ("b".repeat(8_000), "b".repeat(20_000));
    for (protocol, value) in [("--http2", &h2_big), ("--http1.1", &h1_big)] {
        let header = format!("X-Big: {value}");
        let out = a.run("/a/beds", &[protocol, "-H", &header]).await;
        assert_eq!(out.status, 431, "{protocol}: {out:?}");
    }
    assert!(s.echo.seen().is_empty(), "{:#?}", s.echo.seen());
    // Both counted: hyper's HTTP/1.1 431 and guichet's own on HTTP/2.
    s.wait_refusals("header_too_large", 2).await;
    // Under the limit, the same header passes.
    let fits = format!("X-Big: {}", "b".repeat(2_000));
    a.run("/a/beds", &["-H", &fits]).await.echoed();
}

/// `max_header_bytes` accepts 1024 and up; HTTP/1.1 must then refuse a
/// 6 KB head as HTTP/2 does.
#[tokio::test]
async fn http11_honours_a_max_header_bytes_under_8_kib() {
    let s = Site::standard("max_header_bytes = 4096").await;
    let header = format!("X-Big: {}", "b".repeat(6_000));
    for protocol in ["--http2", "--http1.1"] {
        let out = s
            .curl(&s.a)
            .run("/a/beds", &[protocol, "-H", &header])
            .await;
        assert_eq!(
            out.status, 431,
            "{protocol}: a 6 KB head passed max_header_bytes = 4096: {out:?}"
        );
    }
}

/// Oversized heads are refusals, "counted and logged once": on HTTP/2
/// too, where the h2 library answers the 431 itself.
#[tokio::test]
async fn an_oversized_http2_head_is_counted_as_a_refusal() {
    let s = Site::standard("max_header_bytes = 4096").await;
    let big = format!("X-Big: {}", "b".repeat(8_000));
    let out = s.curl(&s.a).run("/a/beds", &["--http2", "-H", &big]).await;
    assert_eq!(out.status, 431, "{out:?}");
    s.wait_refusals("header_too_large", 1).await;
}

/// HTTP/1.1 keep-alive connections wait `idle_timeout` between requests
/// ("idle_timeout: keep-alive idle", http-config.md), as HTTP/2 ones do;
/// `header_timeout` bounds a request head, not the wait for one.
#[tokio::test]
async fn idle_keep_alive_connections_last_idle_timeout_not_header_timeout() {
    let s = Site::standard("header_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let mut h1 = s.keep_alive(&s.a, false).await;
    let mut h2 = s.keep_alive(&s.a, true).await;
    for client in [&mut h1, &mut h2] {
        assert_eq!(client.get("/a/beds").await.unwrap().status, 200);
    }
    // Idle for more than header_timeout, far less than idle_timeout.
    let_pass(Duration::from_millis(2500)).await;
    for (name, client) in [("HTTP/2", &mut h2), ("HTTP/1.1", &mut h1)] {
        let again = client.get("/a/beds").await;
        assert!(
            matches!(&again, Ok(a) if a.status == 200),
            "{name}: a keep-alive connection idle 2.5s (header_timeout 1s, \
             idle_timeout 30s) was closed: {again:?}; refusals header_timeout: {}",
            s.refusals("header_timeout")
        );
    }
    // Waiting between requests is no slow request head.
    assert_eq!(s.refusals("header_timeout"), 0);
}

#[tokio::test]
async fn a_silent_client_is_cut_off_at_header_timeout() {
    let s = Site::standard("header_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let client = alpn_client(Some(&s.a), &s.pki.ca_cert(), &[b"http/1.1"]);
    let mut stream = tls(&client, s.gateway.addr(ROUTE), GW).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buf)).await;
    let open = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a client that sent nothing after the handshake was still connected \
         after {open:?} (header_timeout 1s, idle_timeout 30s): {read:?}"
    );
    assert!(open < Duration::from_secs(5), "closed after {open:?}");
    s.curl(&s.a).run("/a/beds", &[]).await.echoed();
}

// --------------------------------------------- 6. upstream failures

#[tokio::test]
async fn upstream_down_is_502_and_too_slow_is_504() {
    let echo = Upstream::plain().await;
    let down = closed_port().await;
    let layout = Layout::standard(&echo)
        .route("response_timeout = \"1s\"\nconnect_timeout = \"2s\"")
        .rule(&rule(
            "rule-down",
            "/down/",
            &format!("http://{down}"),
            &[APP_A],
            "",
        ));
    let s = Site::start(Pki::new(), echo, &layout).await;
    let a = s.curl(&s.a);

    a.run("/down/beds", &[])
        .await
        .problem(502, Some("rule-down"));
    s.wait_refusals("upstream_unavailable", 1).await;
    s.wait_requests("rule-down", APP_A, "5xx", 1).await;

    let started = Instant::now();
    let out = a.run("/a/slow", &[]).await;
    let waited = started.elapsed();
    out.problem(504, Some(RULE_A));
    assert!(
        waited >= Duration::from_millis(900) && waited < SLOW,
        "504 after {waited:?}"
    );
    s.wait_refusals("upstream_timeout", 1).await;
    s.wait_requests(RULE_A, APP_A, "5xx", 1).await;

    // A quick answer on the same rule is the control.
    a.run("/a/beds", &[]).await.echoed();
    s.wait_requests(RULE_A, APP_A, "2xx", 1).await;
}

/// What a [`RawUpstream`] does with a connection.
#[derive(Clone, Copy, PartialEq)]
enum Keeps {
    /// Answers every request, keeping the connection open.
    Open,
    /// Answers one request, then closes, without saying so in the answer.
    OneAnswer,
    /// Answers one request, reads the next one's head, and closes
    /// without answering it.
    CutSecond,
}

/// A plain HTTP/1.1 upstream on a raw socket, counting the connections
/// it accepts: what hyper's server would hide (a close after an answer
/// that promised keep-alive, a request read and never answered).
struct RawUpstream {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(keeps: Keeps) -> RawUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(Self::serve(socket, keeps));
            }
        });
        RawUpstream { addr, accepted }
    }

    async fn serve(mut socket: tokio::net::TcpStream, keeps: Keeps) {
        const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let mut answered = 0;
        while read_head(&mut socket).await {
            if keeps == Keeps::CutSecond && answered == 1 {
                return;
            }
            if socket.write_all(ANSWER).await.is_err() {
                return;
            }
            answered += 1;
            if keeps == Keeps::OneAnswer {
                return;
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads a request head (the tests' requests have no body); false at the
/// connection's end.
async fn read_head(socket: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// A site whose rule `raw` (`/raw/`, partner-a) goes to `raw`.
async fn raw_site(raw: &RawUpstream, route: &str) -> Site {
    let echo = Upstream::plain().await;
    let layout =
        Layout::standard(&echo)
            .route(route)
            .rule(&rule("raw", "/raw/", &raw.url(), &[APP_A], ""));
    Site::start(Pki::new(), echo, &layout).await
}

/// Issue 17: requests from one client connection and from several, one
/// after the other, share one kept-alive upstream connection.
#[tokio::test]
async fn upstream_connections_are_kept_alive_and_shared() {
    let raw = RawUpstream::start(Keeps::Open).await;
    let s = raw_site(&raw, "").await;
    let mut h1 = s.keep_alive(&s.a, false).await;
    for _ in 0..3 {
        let answer = h1.get("/raw/beds").await.unwrap();
        assert_eq!((answer.status, &answer.body[..]), (200, &b"ok"[..]));
    }
    let a = s.curl(&s.a);
    for _ in 0..2 {
        let out = a.run("/raw/beds", &[]).await;
        assert_eq!(out.status, 200, "{out:?}");
    }
    assert_eq!(raw.accepted(), 1);
    s.wait_requests("raw", APP_A, "2xx", 5).await;
}

/// Issue 17: an upstream that closes a kept-alive connection after its
/// answer costs no request: the next one goes on a new connection.
#[tokio::test]
async fn an_upstream_closing_an_idle_connection_fails_no_request() {
    let raw = RawUpstream::start(Keeps::OneAnswer).await;
    let s = raw_site(&raw, "").await;
    let mut h1 = s.keep_alive(&s.a, false).await;
    for _ in 0..3 {
        let answer = h1.get("/raw/beds").await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        // The upstream's close reaches guichet before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raw.accepted(), 3);
    assert_eq!(s.refusals("upstream_error"), 0);
}

/// Issue 17: an upstream that reads a request on a kept-alive connection
/// and closes it unanswered gets the client a prompt 502 (the request may
/// have had effects: it is not sent again), and the next request a new
/// connection.
#[tokio::test]
async fn an_upstream_cutting_a_pooled_connection_mid_request_is_a_prompt_502() {
    let raw = RawUpstream::start(Keeps::CutSecond).await;
    let s = raw_site(&raw, "response_timeout = \"30s\"").await;
    let mut h1 = s.keep_alive(&s.a, false).await;
    assert_eq!(h1.get("/raw/beds").await.unwrap().status, 200);
    let started = Instant::now();
    let cut = h1.get("/raw/beds").await.unwrap();
    assert_eq!(cut.status, 502, "{cut:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    s.wait_refusals("upstream_error", 1).await;
    assert_eq!(h1.get("/raw/beds").await.unwrap().status, 200);
    assert_eq!(raw.accepted(), 2);
}

// ------------------------------------------------ 7. https upstream

#[tokio::test]
async fn https_upstream_sees_guichets_client_certificate() {
    let pki = Pki::new();
    let upstream_cert = pki.issue("upstream", Usage::ServerOnly);
    let client_cert = pki.issue("gw-client", Usage::ClientOnly);
    let secured = Upstream::tls(upstream_mtls(&upstream_cert, &pki.ca_cert(), "gw-client")).await;
    let url = format!("https://{}", secured.addr);
    let echo = Upstream::plain().await;
    let tls_rule = |name: &str, path: &str, profile: &str| {
        rule(
            name,
            path,
            &url,
            &[APP_A],
            &format!("upstream_tls = \"{profile}\"\nserver_name = \"upstream\"\n"),
        )
    };
    let layout = Layout::standard(&echo)
        .extra(&profile(
            "upstream-mtls",
            Some(&client_cert),
            &pki.ca_cert(),
            Some(&pki.crl()),
        ))
        .extra(&profile(
            "upstream-anon",
            None,
            &pki.ca_cert(),
            Some(&pki.crl()),
        ))
        .rule(&tls_rule("rule-mtls", "/mtls/", "upstream-mtls"))
        .rule(&tls_rule("rule-anon", "/anon/", "upstream-anon"));
    let s = Site::start(pki, echo, &layout).await;
    let a = s.curl(&s.a);

    for _ in 0..2 {
        let echoed = a.run("/mtls/beds", &[]).await.echoed();
        assert_eq!(echoed["peer"], "guichet", "{echoed}");
        // ALPN on the upstream side picked HTTP/2.
        assert_eq!(echoed["version"], "HTTP/2.0", "{echoed}");
    }
    let seen = secured.seen();
    assert_eq!(seen_apps(&seen), [APP_A, APP_A]);
    assert_eq!(seen[0].one("x-guichet-rule"), "rule-mtls");
    assert_eq!(secured.refused(), 0);
    s.wait_requests("rule-mtls", APP_A, "2xx", 2).await;

    // Without a client certificate the upstream refuses the handshake;
    // the partner gets a 502 that says so.
    let out = a.run("/anon/beds", &[]).await;
    out.problem(502, Some("rule-anon"));
    assert_eq!(secured.seen().len(), 2, "the refused request got through");
    // The upstream counts its refusal once its handshake task ends, which
    // may be just after the partner has its answer.
    let what = "the upstream counts the refused handshake";
    until(WAIT, what, || secured.refused(), |refused| *refused >= 1).await;
    s.wait_requests("rule-anon", APP_A, "5xx", 1).await;
    let render = s.gateway.metrics.render();
    let reason = ["upstream_tls", "upstream_error", "upstream_unavailable"]
        .into_iter()
        .find(|r| {
            metric_value(
                &render,
                "guichet_http_refusals_total",
                &[("route", ROUTE), ("reason", r)],
            ) == 1
        });
    // Under TLS 1.3 the client's side of the handshake completes before
    // the upstream checks the certificate; its refusal (an alert) comes
    // with the first read, and still counts as a TLS failure.
    assert_eq!(reason, Some("upstream_tls"), "{render}");
}

/// An upstream that requires a client certificate guichet does not
/// present refuses the handshake with an alert that reaches guichet on
/// its first read. HTTP/2 (whose library keeps only the kind and text of
/// an I/O error) and HTTP/1.1 must count it alike: the same 502 problem,
/// the `upstream_tls` refusal, a 5xx request.
#[tokio::test]
async fn an_upstream_tls_refusal_is_upstream_tls_over_http2_as_over_http11() {
    let pki = Pki::new();
    let upstream_cert = pki.issue("upstream", Usage::ServerOnly);
    let requiring =
        |alpn: &[&[u8]]| upstream_mtls_alpn(&upstream_cert, &pki.ca_cert(), "gw-client", alpn);
    let h2 = Upstream::tls(requiring(&[b"h2"])).await;
    let h1 = Upstream::tls(requiring(&[b"http/1.1"])).await;
    let echo = Upstream::plain().await;
    let tls_rule = |name: &str, path: &str, upstream: &Upstream| {
        let url = format!("https://{}", upstream.addr);
        let tls = "upstream_tls = \"anon\"\nserver_name = \"upstream\"\n";
        rule(name, path, &url, &[APP_A], tls)
    };
    let layout = Layout::standard(&echo)
        .extra(&profile("anon", None, &pki.ca_cert(), Some(&pki.crl())))
        .rule(&tls_rule("rule-h2", "/h2/", &h2))
        .rule(&tls_rule("rule-h1", "/h1/", &h1));
    let s = Site::start(pki, echo, &layout).await;
    let a = s.curl(&s.a);

    let mut problems = Vec::new();
    for (rule, path, upstream) in [("rule-h2", "/h2/beds", &h2), ("rule-h1", "/h1/beds", &h1)] {
        let mut problem = a.run(path, &[]).await.problem(502, Some(rule));
        s.wait_requests(rule, APP_A, "5xx", 1).await;
        // The upstream counts its refusal once its side of the handshake
        // ends, which may be after guichet has answered.
        let refused = async {
            while upstream.refused() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, refused)
            .await
            .unwrap_or_else(|_| panic!("{rule}: the upstream did not refuse"));
        assert!(
            upstream.seen().is_empty(),
            "{rule}: the request got through"
        );
        problem["rule"] = Value::Null;
        let detail = problem["detail"].as_str().unwrap().replace(rule, "RULE");
        problem["detail"] = Value::String(detail);
        problems.push(problem);
    }
    assert_eq!(
        problems[0], problems[1],
        "HTTP/2 (left) and HTTP/1.1 (right)"
    );
    assert_eq!(s.refusals("upstream_tls"), 2);
    assert_eq!(s.refusals("upstream_error"), 0);
    assert_eq!(s.refusals("upstream_unavailable"), 0);
}

// ------------------------------------------------------ 8. rate limit

#[tokio::test]
async fn rate_limit_answers_429_per_application() {
    // 0.5/s with a burst of 2: the third request in a row is refused
    // unless two whole seconds pass, which no loaded machine needs.
    let s = Site::standard("rate_limit = 0.5\nrate_burst = 2").await;
    let mut a = s.keep_alive(&s.a, false).await;
    for _ in 0..2 {
        assert_eq!(a.get("/a/beds").await.unwrap().status, 200);
    }
    let third = a.get("/a/beds").await.unwrap();
    third.problem(429, Some(RULE_A));
    let retry: u64 = third
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    // The bucket is the application's, whatever the rule.
    a.get("/b/beds").await.unwrap().problem(429, Some(RULE_B));

    // Another application has its own bucket.
    let mut b = s.keep_alive(&s.b, true).await;
    for _ in 0..2 {
        assert_eq!(b.get("/b/beds").await.unwrap().status, 200);
    }
    // Refused requests spend tokens too: partner-c, on no rule, gets its
    // 403 twice, then 429.
    let mut c = s.keep_alive(&s.c, false).await;
    for _ in 0..2 {
        assert_eq!(c.get("/a/beds").await.unwrap().status, 403);
    }
    c.get("/a/beds").await.unwrap().problem(429, Some(RULE_A));
    assert_eq!(seen_apps(&s.echo.seen()), [APP_A, APP_A, APP_B, APP_B]);
    s.wait_refusals("rate_limited", 3).await;
    s.wait_requests(RULE_A, APP_A, "4xx", 1).await;
    s.wait_requests(RULE_B, APP_B, "2xx", 2).await;
}

// ----------------------------------------------------------- 9. reload

/// Requests that kept going during reloads: successes and failures.
#[derive(Clone, Default)]
struct Flow {
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Flow {
    fn record(&self, who: &str, answer: Result<crate::common::http::Answer, String>) {
        match answer {
            Ok(a) if a.status == 200 => {
                self.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(a) => self.failures.lock().unwrap().push(format!("{who}: {a:?}")),
            Err(e) => self.failures.lock().unwrap().push(format!("{who}: {e}")),
        }
    }

    /// Waits until `n` more requests succeeded.
    async fn wait_more(&self, n: usize) {
        let target = self.ok.load(Ordering::SeqCst) + n;
        crate::common::bounded("requests during reloads", async {
            while self.ok.load(Ordering::SeqCst) < target
                && self.failures.lock().unwrap().is_empty()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

#[tokio::test]
async fn reloads_never_fail_requests_and_apply_to_open_connections() {
    let s = Site::standard("").await;
    let flow = Flow::default();
    let mut tasks = Vec::new();
    for h2 in [false, true] {
        let mut client = s.keep_alive(&s.a, h2).await;
        let flow = flow.clone();
        tasks.push(tokio::spawn(async move {
            while !flow.stop.load(Ordering::SeqCst) {
                let who = if h2 { "h2 keep-alive" } else { "h1 keep-alive" };
                flow.record(who, client.get("/a/beds").await);
            }
        }));
    }
    // And a new connection (new handshake) per request.
    let fresh = alpn_client(Some(&s.a), &s.pki.ca_cert(), &[b"http/1.1"]);
    let addr = s.gateway.addr(ROUTE);
    let fresh_flow = flow.clone();
    tasks.push(tokio::spawn(async move {
        while !fresh_flow.stop.load(Ordering::SeqCst) {
            let mut client = KeepAlive::connect(&fresh, addr, GW, false).await;
            fresh_flow.record("new connection", client.get("/b/beds").await);
        }
    }));

    // Other applications come and go; partner-a's rights never change.
    for round in 0..6 {
        let extra: Vec<String> = (0..round % 3 + 1).map(|i| format!("extra-{i}")).collect();
        let apps = standard_apps() + &extra.iter().map(|name| app(name, name)).collect::<String>();
        let mut b_allow = vec![APP_A, APP_B];
        b_allow.extend(extra.iter().map(String::as_str));
        let layout = Layout::default().rules_to(&s.echo, &[APP_A], &b_allow);
        s.rewrite(&apps, &layout);
        s.gateway.reloader.reload("test").await.unwrap();
        flow.wait_more(5).await;
    }
    flow.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        crate::common::bounded("request loop end", task)
            .await
            .unwrap();
    }
    let failures = flow.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed during reloads: {failures:#?}"
    );
    assert!(flow.ok.load(Ordering::SeqCst) >= 30);
    assert_eq!(s.gateway.reloads(crate::common::outcome::RELOAD_OK), 6);

    // partner-a leaves rule-a: its next request on an open connection is
    // refused; rule-b still admits it on that same connection.
    let mut h1 = s.keep_alive(&s.a, false).await;
    let mut h2 = s.keep_alive(&s.a, true).await;
    for client in [&mut h1, &mut h2] {
        assert_eq!(client.get("/a/beds").await.unwrap().status, 200);
    }
    let layout = Layout::default().rules_to(&s.echo, &[APP_B], &[APP_A, APP_B]);
    s.rewrite(&standard_apps(), &layout);
    s.gateway.reloader.reload("test").await.unwrap();
    for client in [&mut h1, &mut h2] {
        let refused = client.get("/a/beds").await.unwrap();
        refused.problem(403, Some(RULE_A));
        assert_eq!(client.get("/b/beds").await.unwrap().status, 200);
    }
    // And partner-b, newly admitted, gets in.
    s.curl(&s.b).run("/a/beds", &[]).await.echoed();
}

// ------------------------------------------------------ 10. access log

/// The access log's lines once it holds `n` (it is written by its own
/// thread).
async fn access_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= n || Instant::now() >= deadline {
            assert_eq!(lines.len(), n, "{text}");
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The fields a line may have: none holds a header value or a body.
const ACCESS_FIELDS: [&str; 18] = [
    "time",
    "route",
    "rule",
    "app",
    "subject",
    "fingerprint",
    "client",
    "protocol",
    "method",
    "host",
    "path",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream",
    "reason",
    "complete",
];

#[tokio::test]
async fn access_log_has_one_json_line_per_request_and_no_content() {
    let s = Site::standard("").await;
    let a = s.curl(&s.a);
    let got = a
        .run(
            "/a/beds?nir=185057800608436&name=DUPONT",
            &[
                "-H",
                "Authorization: Bearer SECRET-TOKEN",
                "-H",
                "Cookie: session=SECRET-COOKIE",
                "-H",
                "X-Patient: SECRET-PATIENT",
            ],
        )
        .await;
    got.echoed();
    let body = "PID|1||SECRET-IPP^^^CHU||DUPONT^JEAN";
    let posted = a
        .run("/a/upload", &["--http1.1", "--data-binary", body])
        .await;
    assert_eq!(posted.echoed()["body_bytes"], body.len());
    let refused = s.curl(&s.b).run("/a/beds?ipp=SECRET-IPP", &[]).await;
    refused.problem(403, Some(RULE_A));

    let lines = access_lines(&s.access, 3).await;
    let text = std::fs::read_to_string(&s.access).unwrap();
    for secret in ["SECRET", "DUPONT", "185057800608436", "nir=", "Bearer"] {
        assert!(
            !text.contains(secret),
            "{secret} in the access log:\n{text}"
        );
    }
    for line in &lines {
        for key in line.as_object().unwrap().keys() {
            assert!(ACCESS_FIELDS.contains(&key.as_str()), "{key} in {line}");
        }
        assert_eq!(line["route"], ROUTE);
        assert_eq!(line["client"], "127.0.0.1");
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        assert!(
            line["time"].as_str().is_some_and(|t| t.contains('T')),
            "{line}"
        );
    }
    let find = |method: &str, status: u64| {
        lines
            .iter()
            .find(|l| l["method"] == method && l["status"] == status)
            .unwrap_or_else(|| panic!("no {method} {status} in {lines:#?}"))
    };

    let get = find("GET", 200);
    assert_eq!(get["app"], APP_A);
    assert_eq!(get["rule"], RULE_A);
    assert!(
        get["subject"].as_str().unwrap().contains("CN=partner-a"),
        "{get}"
    );
    assert_eq!(get["fingerprint"], fingerprint(&s.a));
    assert_eq!(get["path"], "/a/beds?REDACTED");
    assert_eq!(get["protocol"], "HTTP/2");
    assert_eq!(get["bytes_in"], 0);
    assert_eq!(get["bytes_out"], got.body.len());
    assert_eq!(get["upstream"], s.echo.url());
    assert_eq!(get["reason"], Value::Null);
    assert_eq!(get["complete"], true, "{get}");

    let post = find("POST", 200);
    assert_eq!(post["path"], "/a/upload");
    assert_eq!(post["protocol"], "HTTP/1.1");
    assert_eq!(post["bytes_in"], body.len());
    assert_eq!(post["bytes_out"], posted.body.len());
    assert_eq!(post["complete"], true, "{post}");

    let forbidden = find("GET", 403);
    assert_eq!(forbidden["app"], APP_B);
    assert_eq!(forbidden["rule"], RULE_A);
    assert_eq!(forbidden["fingerprint"], fingerprint(&s.b));
    assert_eq!(forbidden["path"], "/a/beds?REDACTED");
    assert_eq!(forbidden["reason"], "not_admitted");
    assert_eq!(forbidden["bytes_out"], refused.body.len());
}

/// Guards against a keep-alive helper that would quietly reconnect: a
/// request after the gateway closed the connection must fail.
#[tokio::test]
async fn keep_alive_client_never_reconnects() {
    let s = Site::standard("").await;
    let mut client = s.keep_alive(&s.a, false).await;
    let request = client
        .request("GET", "/a/beds")
        .header("connection", "close")
        .body(full(""))
        .unwrap();
    assert_eq!(client.send(request).await.unwrap().status, 200);
    assert!(client.get("/a/beds").await.is_err());
    assert_eq!(s.echo.seen().len(), 1);
}

/// The handshake is over for a connection admitted before its certificate
/// was revoked: the CRL in force is checked at every request instead.
#[tokio::test]
async fn a_certificate_revoked_after_its_handshake_is_refused_on_its_next_request() {
    let s = Site::standard("").await;
    let mut h1 = s.keep_alive(&s.a, false).await;
    let mut h2 = s.keep_alive(&s.a, true).await;
    for client in [&mut h1, &mut h2] {
        assert_eq!(client.get("/a/beds").await.unwrap().status, 200);
    }
    guichet_pki::revoke(&s.pki.ca, APP_A).unwrap();
    s.gateway.reloader.reload("test").await.unwrap();
    for client in [&mut h1, &mut h2] {
        let answer = client.get("/a/beds").await.unwrap();
        assert_eq!(answer.status, 403, "{answer:?}");
    }
    assert_eq!(s.refusals("revoked"), 2);
    // partner-b, not revoked, goes on.
    s.curl(&s.b).run("/b/beds", &[]).await.echoed();
}

/// Requests in flight to the upstreams are bounded per route: past
/// `max_upstream_requests`, 503 with Retry-After, and the slot comes back
/// once the response has ended.
#[tokio::test]
async fn requests_in_flight_upstream_are_capped() {
    let s = Site::standard("max_upstream_requests = 1\nresponse_timeout = \"10s\"").await;
    let a = s.curl(&s.a);
    // The slow request holds the only slot for SLOW (4 s).
    let slow = tokio::spawn({
        let a = s.curl(&s.a);
        async move { a.run("/a/slow", &[]).await }
    });
    // Once the slow request is in flight, the next one finds no slot. A
    // head start keeps a quick request from taking the slot first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_millis(2500);
    let busy = loop {
        let out = a.run("/a/beds", &[]).await;
        if out.status == 503 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    busy.problem(503, Some(RULE_A));
    assert!(
        busy.headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v == "1"),
        "{busy:?}"
    );
    slow.await.unwrap().echoed();
    a.run("/a/beds", &[]).await.echoed();
    assert_eq!(s.refusals("upstream_busy"), 1);
}

/// `response_timeout` is the upstream's time to answer once it has the
/// whole request: a slow upload is not a slow upstream.
#[tokio::test]
async fn a_slow_upload_is_not_a_slow_upstream() {
    let s = Site::standard("response_timeout = \"1s\"").await;
    let a = s.curl(&s.a);
    // 240 KiB at 80 KiB/s: about 3 s of upload, three times the timeout.
    let (_, body) = body_file(&s, "slow-upload.bin", b'u', 240 * 1024);
    let out = a
        .run(
            "/a/upload",
            &["--http1.1", "--data-binary", &body, "--limit-rate", "80K"],
        )
        .await;
    let echoed = out.echoed();
    assert_eq!(echoed["body_bytes"], 240 * 1024, "{echoed}");
    assert_eq!(s.refusals("upstream_timeout"), 0);
}

/// Log rotation moves the access log away and reloads: lines go on in a
/// new file at the configured path, none lost.
#[tokio::test]
async fn a_reload_reopens_the_access_log() {
    let s = Site::standard("").await;
    let a = s.curl(&s.a);
    a.run("/a/before", &[]).await.echoed();
    let before = access_lines(&s.access, 1).await;
    assert_eq!(before[0]["path"], "/a/before");
    let rotated = s.access.with_extension("jsonl.1");
    std::fs::rename(&s.access, &rotated).unwrap();
    s.gateway.reloader.reload("rotate").await.unwrap();
    a.run("/a/after", &[]).await.echoed();
    let after = access_lines(&s.access, 1).await;
    assert_eq!(after[0]["path"], "/a/after");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1, "{old}");
}

/// The examples folder of bed availability.
fn bed_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bed-availability")
}

/// A site whose rule A validates bed availability against the examples'
/// referential, with `more` settings.
async fn validating_site(more: &str) -> Site {
    let echo = Upstream::plain().await;
    let pki = Pki::new();
    let referential = pki.tmp.path().join("referential.csv");
    std::fs::copy(bed_examples().join("referential.csv"), &referential).unwrap();
    let more =
        format!("validate = \"bed-availability\"\nreferential = \"referential.csv\"\n{more}");
    let layout = Layout::default().rule(&rule(RULE_A, "/a/", &echo.url(), &[APP_A], &more));
    Site::start(pki, echo, &layout).await
}

/// A validating rule (`validate = "bed-availability"`): an invalid
/// document is answered 422 with its violations and never reaches the
/// upstream; a valid one arrives converted to the ROR's FHIR form; both
/// verdicts and the codes broken are counted and logged.
#[tokio::test]
async fn a_validating_rule_refuses_invalid_documents_and_converts_valid_ones() {
    let s = validating_site("convert = \"fhir\"\n").await;
    let a = s.curl(&s.a);
    let file = |name: &str| format!("@{}", bed_examples().join(name).display());

    for protocol in ["--http1.1", "--http2"] {
        let invalid = file("invalid/negative-beds.xml");
        let out = a
            .run("/a/beds", &[protocol, "--data-binary", &invalid])
            .await;
        let problem = out.problem(422, Some(RULE_A));
        let violations = problem["violations"].as_array().unwrap();
        let negative = violations
            .iter()
            .find(|v| v["code"] == "capacity.negative")
            .unwrap_or_else(|| panic!("{problem}"));
        assert_eq!(negative["severity"], "error");
        assert_eq!(
            negative["path"],
            "/bedAvailability/unit[1]/capacity[2]/nbCapacity"
        );
        assert_eq!(negative["message"], "nombre négatif : -4");
    }
    assert!(
        s.echo.seen().is_empty(),
        "an invalid document went upstream"
    );

    let valid = file("valid/chu-rennes-ssr.xml");
    let echoed = a.run("/a/beds", &["--data-binary", &valid]).await.echoed();
    let document = guichet_ror::xml::read(
        &std::fs::read(bed_examples().join("valid/chu-rennes-ssr.xml")).unwrap(),
    )
    .unwrap();
    let fhir =
        guichet_ror::fhir::write(&document, guichet_ror::fhir::Coding::default()).to_string();
    assert_eq!(echoed["body_bytes"], fhir.len());
    let seen = s.echo.only();
    assert_eq!(seen.one("content-type"), "application/fhir+json");
    assert_eq!(seen.one("content-length"), fhir.len().to_string());

    let count = |verdict| {
        s.gateway.value(
            "guichet_http_validations_total",
            &[("route", ROUTE), ("rule", RULE_A), ("verdict", verdict)],
        )
    };
    s.wait_requests(RULE_A, APP_A, "2xx", 1).await;
    assert_eq!((count("valid"), count("invalid")), (1, 2));
    let code = &[
        ("route", ROUTE),
        ("rule", RULE_A),
        ("code", "capacity.negative"),
    ];
    assert_eq!(s.gateway.value("guichet_http_violations_total", code), 2);
    assert_eq!(s.refusals("invalid_document"), 2);

    // The access log is written by a thread of its own: wait for the lines.
    let lines = access_lines(&s.access, 3).await;
    let log = std::fs::read_to_string(&s.access).unwrap();
    let verdicts: Vec<(&str, bool)> = lines
        .iter()
        .map(|l| {
            let codes = l["validation"]["violations"].as_array().unwrap();
            let negative = codes.iter().any(|c| c == "capacity.negative");
            (l["validation"]["verdict"].as_str().unwrap(), negative)
        })
        .collect();
    assert_eq!(
        verdicts,
        [("invalid", true), ("invalid", true), ("valid", false)]
    );
    assert!(
        !log.contains("-4"),
        "a value of the document reached the access log"
    );

    // A compressed body is refused, not judged as garbage nor sent on.
    let gzip = ["-H", "Content-Encoding: gzip", "--data-binary", &valid];
    let out = a.run("/a/beds", &gzip).await;
    let problem = out.problem(415, Some(RULE_A));
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("Content-Encoding"));
    assert_eq!(s.refusals("encoded_body"), 1);
    assert_eq!(s.echo.seen().len(), 1, "a compressed body went upstream");
}

/// Without `convert`, a valid document goes upstream as received, byte
/// for byte (judged without being built when it breaks no rule); an
/// invalid one is still answered 422 with where each violation stands.
#[tokio::test]
async fn a_validating_rule_without_convert_sends_valid_documents_as_received() {
    let s = validating_site("").await;
    let a = s.curl(&s.a);

    let invalid = format!(
        "@{}",
        bed_examples().join("invalid/negative-beds.xml").display()
    );
    let out = a.run("/a/beds", &["--data-binary", &invalid]).await;
    let problem = out.problem(422, Some(RULE_A));
    let negative: Vec<&str> = problem["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["code"] == "capacity.negative")
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        negative,
        ["/bedAvailability/unit[1]/capacity[2]/nbCapacity"]
    );
    assert!(
        s.echo.seen().is_empty(),
        "an invalid document went upstream"
    );

    // The example, dated now: it breaks no rule, not even date.stale.
    let example = std::fs::read(bed_examples().join("valid/chu-rennes-ssr.xml")).unwrap();
    let mut document = guichet_ror::xml::read(&example).unwrap();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    document.time.as_mut().unwrap().value.clone_from(&now);
    let updated = guichet_ror::model::Value::DateTime(now);
    for unit in &mut document.units {
        for capacity in &mut unit.capacities {
            let at = guichet_ror::model::Path::default();
            let date = guichet_ror::model::Field::new(updated.clone(), at);
            capacity.set(&guichet_ror::codes::UPDATE_DATE, date);
        }
    }
    let sent = guichet_ror::xml::write(&document);
    let path = s.pki.tmp.path().join("now.xml");
    std::fs::write(&path, &sent).unwrap();
    let body = format!("@{}", path.display());
    let xml = [
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        &body,
    ];
    let echoed = a.run("/a/beds", &xml).await.echoed();
    assert_eq!(echoed["body_bytes"], sent.len());
    let seen = s.echo.only();
    assert_eq!(seen.one("content-type"), "application/xml");
    assert_eq!(seen.one("content-length"), sent.len().to_string());
    s.wait_requests(RULE_A, APP_A, "2xx", 1).await;
    let valid = &[("route", ROUTE), ("rule", RULE_A), ("verdict", "valid")];
    assert_eq!(s.gateway.value("guichet_http_validations_total", valid), 1);
}

/// Validation settings are checked with the config: a referential that
/// cannot be read, an unknown validator, `convert` without `validate`.
#[tokio::test]
async fn validating_rules_with_bad_settings_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[[route.rule]]\nname = \"r\"\npath = \"/a/\"\nupstream = \"http://127.0.0.1:9\"\nallow = [\"a\"]\n";
    let cases = [
        (
            "validate = \"lits\"\n",
            "validate: \"lits\" is not a validator",
        ),
        ("convert = \"fhir\"\n", "convert: only with validate"),
        (
            "validate = \"bed-availability\"\nreferential = \"nope.csv\"\n",
            "referential: cannot read",
        ),
        (
            "validate = \"bed-availability\"\nconvert = \"hl7\"\n",
            "convert: \"hl7\" is not a form",
        ),
    ];
    for (more, want) in cases {
        let text = format!(
            "[[app]]\nname = \"a\"\ncn = \"a\"\n\n[[route]]\nname = \"{ROUTE}\"\nkind = \"http\"\nlisten = \"127.0.0.1:0\"\n{base}{more}"
        );
        let path = dir.path().join("guichet.toml");
        std::fs::write(&path, &text).unwrap();
        let error = guichet_gateway::Config::load(&path)
            .unwrap_err()
            .to_string();
        assert!(error.contains(want), "{more}: {error}");
    }
}

/// `guichet check` says when a validating rule checks less than it could:
/// no referential, or one that names a unit twice.
#[tokio::test]
async fn check_warns_of_validating_rules_without_a_referential_or_with_a_doubled_unit() {
    let echo = Upstream::plain().await;
    let pki = Pki::new();
    let doubled = pki.tmp.path().join("doubled.csv");
    std::fs::write(
        &doubled,
        "finess_eg,unit_id,label\n350054680,REA,A\n350054680,REA,B\n",
    )
    .unwrap();
    let bare = "validate = \"bed-availability\"\n";
    let with = "validate = \"bed-availability\"\nreferential = \"doubled.csv\"\n";
    let layout = Layout::default()
        .rule(&rule(RULE_A, "/a/", &echo.url(), &[APP_A], bare))
        .rule(&rule(RULE_B, "/b/", &echo.url(), &[APP_A], with));
    let s = Site::start(pki, echo, &layout).await;
    let report = guichet_gateway::check::check(&s.pki.config_path()).unwrap();
    let warnings: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.level == guichet_gateway::check::Level::Warning)
        .map(|f| f.message.as_str())
        .collect();
    let about = |text: &str| warnings.iter().any(|w| w.contains(text));
    assert!(
        about(&format!(
            "rule {RULE_A:?} validates bed availability without a referential"
        )),
        "{warnings:?}"
    );
    assert!(
        about(&format!(
            "rule {RULE_B:?}: the referential names unit REA of 350054680 2 times"
        )),
        "{warnings:?}"
    );
}
