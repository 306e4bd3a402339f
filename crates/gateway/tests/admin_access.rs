//! Who may read the admin listener. curl is the
//! operator's browser and Prometheus: with and without an admitted client
//! certificate, with and without the bearer token; the token and the
//! certificate rotate without restart.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    app, cert_der, client_tls, gateway_section, metric_value, profile, server_cert, tls, toml_path,
    Pki, WAIT,
};
use guichet_gateway::{AdminServer, Config, Gateway, Metrics};
use guichet_pki::{IssuedFiles, Usage};
use tokio_util::sync::CancellationToken;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The name on the admin listener's certificate, which curl dials.
const ADMIN: &str = "gw";
const TOKEN: &str = "4f1c2a9be07d46e38a55c0d1f2e3b4a5";

/// A gateway (one idle route) with its admin listener on 127.0.0.1,
/// started as `guichet run` does: prepared before the routes bind.
struct Site {
    pki: Pki,
    monitoring: IssuedFiles,
    partner: IssuedFiles,
    token: PathBuf,
    metrics: Metrics,
    admin: AdminServer,
    _shutdown: Stop,
}

/// Stops the gateway when the test ends.
struct Stop(CancellationToken);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Site {
    async fn start(admin_lines: &str) -> Site {
        let pki = Pki::new();
        let gw = pki.issue(ADMIN, Usage::ServerOnly);
        let monitoring = pki.issue("monitoring", Usage::ClientOnly);
        let partner = pki.issue("partner", Usage::ClientOnly);
        let token = pki.tmp.path().join("admin.token");
        write_token(&token, TOKEN);
        let text = format!(
            "{}{}{}{}[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\n",
            gateway_section("1s", "0s"),
            profile("admin", Some(&gw), &pki.ca_cert(), Some(&pki.crl())),
            app("monitoring", "monitoring"),
            app("partner", "partner"),
            admin_lines.replace("TOKEN_FILE", &toml_path(&token)),
        );
        let path = pki.config_path();
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        let prepared = AdminServer::prepare(&config).unwrap().unwrap();
        let metrics = Metrics::default();
        let gateway = Gateway::bind(config, metrics.clone()).await.unwrap();
        let admin = prepared.start(gateway.status()).unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway.run(shutdown.clone()));
        Site {
            pki,
            monitoring,
            partner,
            token,
            metrics,
            admin,
            _shutdown: Stop(shutdown),
        }
    }

    /// curl on `scheme://gw:PORT/path` with `cert` and extra arguments.
    async fn curl(
        &self,
        scheme: &str,
        path: &str,
        cert: Option<&IssuedFiles>,
        extra: &[&str],
    ) -> Fetched {
        let port = self.admin.local_addr().port();
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            "--resolve".into(),
            format!("{ADMIN}:{port}:127.0.0.1"),
            "--cacert".into(),
            self.pki.ca_cert().display().to_string(),
            "-w".into(),
            "\n%{http_code} %{content_type}".into(),
        ];
        if let Some(cert) = cert {
            args.extend([
                "--cert".into(),
                cert.cert.display().to_string(),
                "--key".into(),
                cert.key.display().to_string(),
            ]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(format!("{scheme}://{ADMIN}:{port}{path}"));
        fetch(args).await
    }

    fn refusals(&self, reason: &str) -> u64 {
        metric_value(
            &self.metrics.render(),
            "guichet_admin_refusals_total",
            &[("reason", reason)],
        )
    }
}

/// What curl got: exit code, status (0 without a response), content
/// type, body and curl's own error text.
#[derive(Debug)]
struct Fetched {
    exit: i32,
    status: u16,
    content_type: String,
    body: String,
    stderr: String,
}

async fn fetch(args: Vec<String>) -> Fetched {
    let run = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl {args:?}: {e}"))
    });
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("curl within its --max-time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (code, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    Fetched {
        exit: out.status.code().unwrap_or(-1),
        status: code.parse().unwrap_or(0),
        content_type: content_type.to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write_token(path: &Path, token: &str) {
    // Written aside and renamed over, as an operator's tooling would.
    let aside = path.with_extension("new");
    std::fs::write(&aside, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// `tls` + `allow`: the handshake admits the allowed application's
/// certificate only; other certificates and none at all are refused,
/// logged and counted by reason. Every path is behind it.
#[tokio::test]
async fn admin_over_tls_admits_only_allowed_client_certificates() {
    let s = Site::start("tls = \"admin\"\nallow = [\"monitoring\"]").await;
    for path in ["/status", "/api/status", "/healthz"] {
        let ok = s.curl("https", path, Some(&s.monitoring), &[]).await;
        assert_eq!(ok.status, 200, "{path}: {ok:?}");
    }
    let page = s.curl("https", "/status", Some(&s.monitoring), &[]).await;
    assert!(
        page.body.contains("<html") || page.body.contains("<!doctype"),
        "{page:?}"
    );

    let other = s.curl("https", "/status", Some(&s.partner), &[]).await;
    assert_eq!(
        other.status, 0,
        "a partner's certificate opened the admin listener: {other:?}"
    );
    assert_ne!(other.exit, 0, "{other:?}");
    assert!(!other.stderr.is_empty(), "curl says nothing: {other:?}");
    let none = s.curl("https", "/healthz", None, &[]).await;
    assert_eq!(
        none.status, 0,
        "no certificate opened the admin listener: {none:?}"
    );
    let plain = s.curl("http", "/status", None, &[]).await;
    assert_ne!(plain.status, 200, "plain HTTP got through: {plain:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.refusals("not_allowed") < 1 || s.refusals("no_certificate") < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            s.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.refusals("not_allowed"), 1);
    assert_eq!(s.refusals("no_certificate"), 1);
}

/// `token_file`: `/status`, `/api/status`, `/metrics` and `/` need the
/// bearer token (401 without it or with another, counted as `no_token`
/// and `bad_token`); `/healthz` and `/readyz` answer load balancers and
/// systemd without it. A Prometheus-style scrape with the token reads the
/// metrics, refusals included.
#[tokio::test]
async fn admin_token_guards_status_and_metrics_but_not_health() {
    let s = Site::start("tls = \"admin\"\ntoken_file = TOKEN_FILE").await;
    for path in ["/healthz", "/readyz"] {
        let open = s.curl("https", path, None, &[]).await;
        assert_eq!(open.status, 200, "{path}: {open:?}");
    }
    for path in ["/status", "/api/status", "/metrics", "/"] {
        let refused = s.curl("https", path, None, &[]).await;
        assert_eq!(refused.status, 401, "{path}: {refused:?}");
        assert!(
            refused.body.contains("bearer token is required"),
            "{refused:?}"
        );
        assert!(!refused.body.contains("monitoring"), "{refused:?}");
        let wrong = s
            .curl(
                "https",
                path,
                None,
                &["-H", &bearer("4f1c2a9be07d46e38a55c0d1f2e3b4a6")],
            )
            .await;
        assert_eq!(wrong.status, 401, "{path}: {wrong:?}");
        let basic = s
            .curl("https", path, None, &["-u", &format!("admin:{TOKEN}")])
            .await;
        assert_eq!(basic.status, 401, "{path}: Basic must not pass: {basic:?}");
    }
    let page = s
        .curl("https", "/api/status", None, &["-H", &bearer(TOKEN)])
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.content_type, "application/json", "{page:?}");

    // What Prometheus does with `authorization: {credentials_file: ...}`.
    let scrape = s
        .curl("https", "/metrics", None, &["-H", &bearer(TOKEN)])
        .await;
    assert_eq!(scrape.status, 200, "{scrape:?}");
    assert_eq!(scrape.content_type, OPENMETRICS);
    let scraped = |reason: &str| {
        metric_value(
            &scrape.body,
            "guichet_admin_refusals_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(
        (scraped("no_token"), scraped("bad_token")),
        (8, 4),
        "{}",
        scrape.body
    );
    assert!(scrape.body.trim_end().ends_with("# EOF"), "{}", scrape.body);
}

/// A new token in `token_file` applies to the next request, without
/// restart; a broken rewrite (world-readable) keeps the last good one.
#[tokio::test]
async fn a_new_admin_token_applies_without_restart() {
    let s = Site::start("token_file = TOKEN_FILE").await;
    let site = &s;
    let status = |token: &'static str| async move {
        site.curl("http", "/api/status", None, &["-H", &bearer(token)])
            .await
            .status
    };
    assert_eq!(status(TOKEN).await, 200);
    const NEXT: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
    write_token(&s.token, NEXT);
    assert_eq!(status(TOKEN).await, 401);
    assert_eq!(status(NEXT).await, 200);
    let aside = s.token.with_extension("new");
    std::fs::write(&aside, "0000000000000000000000000000000000\n").unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&aside, &s.token).unwrap();
    assert_eq!(status("0000000000000000000000000000000000").await, 401);
    assert_eq!(status(NEXT).await, 200);
}

/// `tls` + `allow` + `token_file`: both are required.
#[tokio::test]
async fn admin_with_certificate_and_token_needs_both() {
    let s = Site::start("tls = \"admin\"\nallow = [\"monitoring\"]\ntoken_file = TOKEN_FILE").await;
    let no_token = s.curl("https", "/status", Some(&s.monitoring), &[]).await;
    assert_eq!(no_token.status, 401, "{no_token:?}");
    let both = s
        .curl(
            "https",
            "/status",
            Some(&s.monitoring),
            &["-H", &bearer(TOKEN)],
        )
        .await;
    assert_eq!(both.status, 200, "{both:?}");
    let wrong_cert = s
        .curl(
            "https",
            "/status",
            Some(&s.partner),
            &["-H", &bearer(TOKEN)],
        )
        .await;
    assert_eq!(wrong_cert.status, 0, "{wrong_cert:?}");
}

/// A renewed certificate in the admin profile's files is presented from
/// the next connection on, without restart.
#[tokio::test]
async fn a_renewed_admin_certificate_is_served_without_restart() {
    let s = Site::start("tls = \"admin\"\nallow = [\"monitoring\"]").await;
    let client = client_tls(Some(&s.monitoring), &s.pki.ca_cert());
    let served = || async {
        let stream = tls(&client, s.admin.local_addr(), ADMIN).await.unwrap();
        server_cert(&stream)
    };
    let first = served().await;
    let renewed = s.pki.issue(ADMIN, Usage::ServerOnly);
    let new_der = cert_der(&renewed.cert);
    assert_ne!(first, new_der);
    assert_eq!(served().await, new_der);
    let ok = s.curl("https", "/healthz", Some(&s.monitoring), &[]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}
