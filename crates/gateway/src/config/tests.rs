use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("/etc/guichet/guichet.toml"), text).map_err(|e| e.to_string())
}

const PROFILES: &str = r#"
[tls.eai]
cert = "pki/eai.pem"
key = "pki/eai.key"
ca = "pki/ca.pem"
crl = ["pki/ca.crl"]

[[app]]
name = "dpi"
cn = "dpi"
issuer_cn = "guichet test CA"
"#;

#[test]
fn client_and_server_routes_resolve_paths_and_names() {
    let config = parse(&format!(
        r#"{PROFILES}
[[route]]
name = "to-dpi"
listen = "127.0.0.1:21010"
forward = "127.0.0.1:32100"
forward_tls = "eai"
server_name = "dpi"

[[route]]
name = "from-dpi"
listen = "127.0.0.1:32200"
listen_tls = "eai"
allow = ["dpi"]
forward = "localhost:22011"
idle_timeout = "30s"
"#
    ))
    .unwrap();
    let to = config.route("to-dpi").unwrap();
    assert_eq!((to.listen_mode(), to.forward_mode()), ("plain", "tls"));
    assert_eq!(to.forward_tls.as_ref().unwrap().server_name.to_str(), "dpi");
    let from = config.route("from-dpi").unwrap();
    assert_eq!((from.listen_mode(), from.forward_mode()), ("mtls", "plain"));
    assert_eq!(from.limits.idle_timeout, Duration::from_secs(30));
    assert_eq!(from.limits.max_connections, 512);
    let files = &config.profiles[&ProfileName::new("eai")].files;
    assert_eq!(
        files.cert.as_deref(),
        Some(Path::new("/etc/guichet/pki/eai.pem"))
    );
    assert_eq!(config.watched_files().len(), 5);
}

#[test]
fn server_name_defaults_to_forward_host() {
    let config = parse(&format!(
        "{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"dpi.example:2575\"\nforward_tls = \"eai\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.routes[0]
            .forward_tls
            .as_ref()
            .unwrap()
            .server_name
            .to_str(),
        "dpi.example"
    );
}

#[track_caller]
fn assert_error(text: &str, expected: &str) {
    let err = parse(text).expect_err("config should be refused");
    assert!(
        err.contains(expected),
        "error {err:?} should contain {expected:?}"
    );
    assert!(err.starts_with("/etc/guichet/guichet.toml: "), "{err}");
}

#[test]
fn bad_configs_name_the_field() {
    assert_error(
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforwrd = \"x:1\"\n",
        "unknown field `forwrd`",
    );
    assert_error(
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\n",
        "route \"r\": forward: missing",
    );
    assert_error("[[route]\n", "line 1");
    assert_error("", "no [[route]] defined");
    assert_error(
        &route_with("idle_timeout = \"soon\""),
        "idle_timeout: \"soon\" is not a duration",
    );
    assert_error(
        &route_with("max_connections = 0"),
        "max_connections: 0 is out of range",
    );
    assert_error(
        &route_with("kind = \"udp\""),
        "kind: \"udp\" is not allowed; use \"tcp\" or \"mllp\"",
    );
    assert_error(
        &format!(
            "{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"localhost\"\nforward = \"h:2\"\n"
        ),
        "listen: \"localhost\" is not an IP:port",
    );
    assert_error(
        &format!(
            "{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h\"\n"
        ),
        "forward: \"h\" is not HOST:PORT",
    );
    let twice = format!("{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n[[route]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:3\"\n");
    assert_error(&twice, "already used by another route");
    assert_error(
        &format!(
            "{PROFILES}\n[[route]]\nname = \"r r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n"
        ),
        "must be 1-64 characters",
    );
}

/// A route `r` from 127.0.0.1:1 to h:2 with the test profiles and apps,
/// plus `extra` lines.
fn route_with(extra: &str) -> String {
    format!("{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n{extra}\n")
}

#[test]
fn bad_listener_tls_names_the_field() {
    assert_error(
        &route_with("listen_tls = \"eai\""),
        "must list the [[app]] names it admits",
    );
    assert_error(
        &route_with("listen_tls = \"eai\"\nallow = [\"ghost\"]"),
        "no [[app]] named \"ghost\"",
    );
    assert_error(
        &route_with("listen_tls = \"nope\"\nallow = [\"dpi\"]"),
        "no TLS profile \"nope\"",
    );
    assert_error(&route_with("allow = [\"dpi\"]"), "need `listen_tls`");
    assert_error(
        &route_with("listen_tls = \"eai\"\nclient_auth = \"none\"\nallow = [\"dpi\"]"),
        "contradicts",
    );
}

#[test]
fn bad_apps_and_profiles_name_the_field() {
    assert_error("[[app]]\nname = \"x\"\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n", "no criterion");
    assert_error(
        "[[app]]\nname = \"x\"\nfingerprint = \"abc\"\n",
        "fingerprint: a fingerprint is 32 bytes",
    );
    assert_error(
        "[tls.t]\ncert = \"a.pem\"\n",
        "`cert` and `key` go together",
    );
    assert_error(
        "[tls.t]\nmin_version = \"1.1\"\n",
        "min_version: \"1.1\" is not allowed",
    );
}

fn mllp(kind: &RouteKind) -> MllpSettings {
    match kind {
        RouteKind::Mllp(settings) => *settings,
        other => panic!("not an mllp route: {other:?}"),
    }
}

#[test]
fn mllp_routes_take_frame_and_ack_settings() {
    let base = "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n";
    let config = parse(&format!("{base}kind = \"mllp\"\n")).unwrap();
    assert_eq!(
        mllp(&config.routes[0].kind),
        (MllpSettings {
            max_frame: 16 * 1024 * 1024,
            non_hl7: NonHl7Policy::Reject,
            ack_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(30),
            delivery: Delivery::Passthrough,
        })
    );
    let config = parse(&format!(
        "{base}kind = \"mllp\"\nmax_frame_bytes = 65536\nnon_hl7 = \"pass\"\nack_timeout = \"5s\"\nframe_timeout = \"2s\"\n"
    ))
    .unwrap();
    assert_eq!(
        mllp(&config.routes[0].kind),
        (MllpSettings {
            max_frame: 65536,
            non_hl7: NonHl7Policy::Pass,
            ack_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(2),
            delivery: Delivery::Passthrough,
        })
    );
    assert_error(
        &format!("{base}frame_timeout = \"2s\"\n"),
        "frame_timeout: only for kind = \"mllp\" routes",
    );
    assert_error(
        &format!("{base}non_hl7 = \"pass\"\n"),
        "non_hl7: only for kind = \"mllp\" routes",
    );
    assert_error(
        &format!("{base}kind = \"mllp\"\nmax_frame_bytes = 10\n"),
        "max_frame_bytes: 10 is out of range",
    );
    assert_error(
        &format!("{base}kind = \"mllp\"\nnon_hl7 = \"drop\"\n"),
        "non_hl7: \"drop\" is not allowed",
    );
}

#[test]
fn store_and_forward_routes_need_a_journal_and_take_delivery_settings() {
    let base =
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\nkind = \"mllp\"\n";
    assert_error(
        &format!("{base}delivery = \"store-and-forward\"\n"),
        "route \"r\": delivery = \"store-and-forward\" needs a [journal] section",
    );
    let journal = "[journal]\nstore = \"journal.db\"\nnode = \"a\"\n";
    let config = parse(&format!(
        "{journal}{base}delivery = \"store-and-forward\"\nretry_initial = \"2s\"\nretry_max = \"30s\"\nae_retries = 1\nduplicate_window = \"0s\"\n"
    ))
    .unwrap();
    let policy = config.routes[0].store_and_forward().unwrap();
    assert_eq!(
        policy,
        ForwardPolicy {
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
            ae_retries: 1,
            duplicate_window: None,
        }
    );
    assert_eq!(policy.backoff(1), Duration::from_secs(2));
    assert_eq!(policy.backoff(3), Duration::from_secs(8));
    assert_eq!(policy.backoff(30), Duration::from_secs(30));
    let spec = config.journal.unwrap();
    assert_eq!(spec.node, "a");
    assert_eq!(spec.retain_bodies, Duration::from_secs(7 * 86_400));
    assert_eq!(spec.retain_events, Duration::from_secs(400 * 86_400));
    assert_eq!(
        spec.store,
        guichet_journal::StoreSpec::Sqlite(std::path::PathBuf::from("/etc/guichet/journal.db"))
    );
    assert_error(
        &format!("{journal}{base}delivery = \"store-and-forward\"\nnon_hl7 = \"pass\"\n"),
        "non_hl7 = \"pass\" needs delivery = \"passthrough\"",
    );
    assert_error(
        &format!("{base}retry_max = \"1s\"\n"),
        "retry_max: only for delivery = \"store-and-forward\" routes",
    );
    assert_error(
        &format!("{journal}{base}delivery = \"store-and-forward\"\nretry_initial = \"10s\"\nretry_max = \"1s\"\n"),
        "retry_max: must not be shorter than retry_initial",
    );
}

#[test]
fn journal_integrity_check_is_at_open_unless_set() {
    let base =
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\nkind = \"mllp\"\n";
    let check = |setting: &str| {
        parse(&format!("[journal]\nstore = \"j.db\"\n{setting}{base}"))
            .unwrap()
            .journal
            .unwrap()
            .integrity_check
    };
    use guichet_journal::IntegrityCheck;
    assert_eq!(check(""), IntegrityCheck::AtOpen);
    assert_eq!(
        check("integrity_check = \"background\"\n"),
        IntegrityCheck::Background
    );
    assert_eq!(
        check("integrity_check = \"at-open\"\n"),
        IntegrityCheck::AtOpen
    );
    assert_error(
        &format!("[journal]\nstore = \"j.db\"\nintegrity_check = \"never\"\n{base}"),
        "[journal] integrity_check",
    );
}

#[test]
fn journal_checks_its_lease_and_resolves_postgres_files() {
    let base =
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\nkind = \"mllp\"\n";
    assert_error(
        &format!("[journal]\nstore = \"j.db\"\nlease_timeout = \"1s\"\n{base}"),
        "[journal] lease_timeout: at least 2s",
    );
    let pg = parse(&format!(
        "[journal]\nstore = \"postgres://g:pw@db/guichet\"\n{base}"
    ))
    .unwrap()
    .journal
    .unwrap();
    assert!(matches!(pg.store, guichet_journal::StoreSpec::Postgres(_)));
    assert_eq!(pg.ingest_connections, 1);
    let lanes = parse(&format!(
        "[journal]\nstore = \"postgres://g:pw@db/guichet\"\ningest_connections = 3\n{base}"
    ))
    .unwrap();
    assert_eq!(lanes.journal.unwrap().ingest_connections, 3);
    assert_error(
        &format!("[journal]\nstore = \"postgres://g:pw@db/g\"\ningest_connections = 0\n{base}"),
        "[journal] ingest_connections",
    );
    assert_error(
        &format!("[journal]\nstore = \"j.db\"\ningest_connections = 2\n{base}"),
        "[journal] ingest_connections: only for a postgres:// store",
    );
    // TLS files named in the URL are taken from the config's folder.
    let tls = parse(&format!(
        "[journal]\nstore = \"postgres://g:pw@db/guichet?sslmode=verify-full&sslrootcert=pki/db-ca.pem\"\n{base}"
    ))
    .unwrap();
    assert_eq!(
        tls.journal.unwrap().store,
        guichet_journal::StoreSpec::Postgres(
            "postgres://g:pw@db/guichet?sslmode=verify-full&sslrootcert=/etc/guichet/pki/db-ca.pem"
                .into()
        )
    );
}

const HTTP_ROUTE: &str = r#"
[tls.upstream]
ca = "pki/ca.pem"
cert = "pki/gw-client.pem"
key = "pki/gw-client.key"

[[app]]
name = "partner-a"
cn = "partner-a"
ou = "1750000001"

[[app]]
name = "partner-b"
cn = "partner-b"

[[route]]
name = "guichet-unique"
kind = "http"
listen = "127.0.0.1:8443"
listen_tls = "eai"
rate_limit = 20
access_log = "logs/access.jsonl"

[[route.rule]]
name = "ror-internal"
path = "/ror/internal/"
upstream = "http://127.0.0.1:18081"
allow = ["partner-a"]

[[route.rule]]
name = "ror-interop"
host = "ROR.example.org"
path = "/ror/interop"
upstream = "https://ror.example.org:8443/api/"
upstream_tls = "upstream"
allow = ["partner-a", "partner-b"]
"#;

#[test]
fn http_routes_take_rules_upstreams_and_limits() {
    let config = parse(&format!("{PROFILES}{HTTP_ROUTE}")).unwrap();
    let route = config.route("guichet-unique").unwrap();
    let http = route.http().unwrap();
    assert_eq!(route.forward, None);
    assert_eq!(route.listen_mode(), "mtls");
    assert_eq!(route.forward_mode(), "mixed");
    assert_eq!(
        route.forward_label(),
        "http://127.0.0.1:18081, https://ror.example.org:8443"
    );
    // Without `allow` on the route, every [[app]] may complete the handshake.
    match &route.listen_tls.as_ref().unwrap().auth {
        AuthSpec::Required(apps) => assert_eq!(apps.len(), 3),
        AuthSpec::NoClientCert => panic!("client certificates are required"),
    }
    assert_eq!(http.rules.len(), 2);
    let interop = &http.rules[1];
    assert_eq!(interop.host.as_deref(), Some("ror.example.org"));
    assert_eq!(interop.upstream.authority(), "ror.example.org:8443");
    assert_eq!(interop.upstream.base_path.as_deref(), Some("/api/"));
    assert!(interop.takes_path("/ror/interop"));
    assert!(interop.takes_path("/ror/interop/beds"));
    assert!(!interop.takes_path("/ror/interoperability"));
    let rate = http.rate.unwrap();
    assert_eq!((rate.per_second, rate.burst), (20.0, 20));
    assert_eq!(
        http.access_log,
        AccessLog::File("/etc/guichet/logs/access.jsonl".into())
    );
    assert!(!http.query_in_log);
    assert!(http.identity_headers.traefik && http.identity_headers.envoy);
    // The upstream's client certificate is watched for reloads too.
    assert!(config
        .watched_files()
        .contains(&"/etc/guichet/pki/gw-client.key".into()));
}

#[test]
fn http_routes_refuse_what_they_cannot_honour() {
    let with = |extra: &str| {
        format!("{PROFILES}{HTTP_ROUTE}")
            .replace("rate_limit = 20\n", &format!("rate_limit = 20\n{extra}\n"))
    };
    assert_error(
        &with("forward = \"127.0.0.1:1\""),
        "an http route names its upstreams in its [[route.rule]] tables",
    );
    assert_error(&with("client_auth = \"none\""), "cannot be \"none\"");
    assert_error(
        &with("identity_headers = [\"nginx\"]"),
        "\"nginx\" is not allowed",
    );
    assert_error(&with("rate_burst = 0"), "rate_burst: 0 is out of range");
    let text = format!("{PROFILES}{HTTP_ROUTE}");
    assert_error(
        &text.replace("allow = [\"partner-a\"]", "allow = [\"partner-z\"]"),
        "rule \"ror-internal\": allow: no [[app]] named \"partner-z\"",
    );
    assert_error(
        &text.replace("allow = [\"partner-a\"]", "allow = []"),
        "allow: list the [[app]] names this rule admits",
    );
    assert_error(
        &text.replace("path = \"/ror/internal/\"", "path = \"/ror/../internal/\""),
        "must be a plain path prefix",
    );
    assert_error(
        &text.replace("upstream_tls = \"upstream\"\n", ""),
        "an https:// upstream needs a [tls.NAME] profile",
    );
    assert_error(
        &text.replace("http://127.0.0.1:18081", "ftp://127.0.0.1:18081"),
        "is not an http:// or https:// URL",
    );
    assert_error(
        &text
            .replace("path = \"/ror/interop\"", "path = \"/ror/internal/\"")
            .replace("host = \"ROR.example.org\"\n", ""),
        "match the same host and path",
    );
    assert_error(
        &text.replace("listen_tls = \"eai\"\n", ""),
        "an http route serves HTTPS only",
    );
    // Without rules there is nothing to serve.
    let no_rules = &text[..text.find("[[route.rule]]").unwrap()];
    assert_error(no_rules, "needs at least one [[route.rule]]");
    // http settings on another kind are mistakes, not silently ignored.
    assert_error(
        "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\nrate_limit = 5\n",
        "rate_limit: only for kind = \"http\" routes",
    );
}

/// A plain route with `extra` keys, after `defaults` as the `[defaults]`
/// section.
fn budget_config(defaults: &str, extra: &str) -> String {
    format!(
        "[defaults]\n{defaults}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n{extra}\n"
    )
}

fn budgets(defaults: &str, extra: &str) -> (usize, usize, usize) {
    let config = parse(&budget_config(defaults, extra)).unwrap();
    let limits = config.routes[0].limits;
    (
        limits.max_connections,
        limits.max_handshakes,
        limits.max_connections_per_source,
    )
}

#[test]
fn f4_budgets_derive_from_the_routes_own_max_connections() {
    assert_eq!(budgets("", ""), (512, 128, 64));
    assert_eq!(budgets("", "max_connections = 256"), (256, 64, 32));
    assert_eq!(budgets("", "max_connections = 64"), (64, 16, 32));
    assert_eq!(budgets("", "max_connections = 20"), (20, 16, 20));
    assert_eq!(budgets("", "max_connections = 4096"), (4096, 1024, 512));
    // Small routes keep every slot usable by one client.
    assert_eq!(budgets("", "max_connections = 2"), (2, 2, 2));
    // [defaults]' max_connections counts as the route's own.
    assert_eq!(budgets("max_connections = 256", ""), (256, 64, 32));
}

#[test]
fn f4_budgets_are_set_in_defaults_or_per_route() {
    assert_eq!(
        budgets(
            "max_handshakes = 10\nmax_connections_per_source = 5",
            "max_connections = 100"
        ),
        (100, 10, 5)
    );
    assert_eq!(
        budgets("max_handshakes = 10", "max_handshakes = 20"),
        (512, 20, 64)
    );
}

#[test]
fn f4_budgets_out_of_range_are_refused_with_the_field() {
    assert_error(
        &budget_config("", "max_handshakes = 0"),
        "max_handshakes: 0 is out of range",
    );
    assert_error(
        &budget_config("max_connections_per_source = -1", ""),
        "[defaults] max_connections_per_source: -1 is out of range",
    );
    assert_error(
        &budget_config("", "max_connections = 10\nmax_handshakes = 11"),
        "max_handshakes: 11 is more than max_connections (10)",
    );
    assert_error(
        &budget_config("max_connections_per_source = 100", "max_connections = 50"),
        "route \"r\": max_connections_per_source: 100 is more than max_connections (50)",
    );
}

#[test]
fn crl_fetch_settings_are_parsed_and_checked() {
    let base = PROFILES.replace("crl = [\"pki/ca.crl\"]\n", "")
        + "\n[[route]]\nname = \"to-dpi\"\nlisten = \"127.0.0.1:21010\"\nforward = \"127.0.0.1:32100\"\nforward_tls = \"eai\"\n";
    let with = |extra: &str| {
        base.replace(
            "ca = \"pki/ca.pem\"\n",
            &format!("ca = \"pki/ca.pem\"\n{extra}"),
        )
    };
    let config = parse(&with(
        "crl_urls = [\"http://crl.example/ca.crl\"]\ncrl_from_certificates = true\ncrl_refresh = \"10m\"\ncrl_expired = \"warn\"\n",
    ))
    .unwrap();
    let eai = &config.profiles[&ProfileName::new("eai")];
    assert_eq!(eai.crl_fetch.urls, ["http://crl.example/ca.crl"]);
    assert!(eai.crl_fetch.from_certificates);
    assert_eq!(eai.crl_fetch.refresh, Duration::from_secs(600));
    assert_eq!(eai.settings.revocation.expired, CrlExpired::Warn);
    assert_eq!(
        eai.revocation_sources(),
        [
            RevocationSource::CrlUrl("http://crl.example/ca.crl".into()),
            RevocationSource::CrlFromCertificates
        ]
    );
    // Defaults: refuse expired CRLs, refresh hourly, no source.
    let plain = parse(&base).unwrap();
    let eai = &plain.profiles[&ProfileName::new("eai")];
    assert_eq!(eai.settings.revocation.expired, CrlExpired::Refuse);
    assert_eq!(eai.crl_fetch.refresh, Duration::from_secs(3600));
    assert!(eai.revocation_sources().is_empty());

    assert_error(
        &with("crl_urls = [\"ldap://x/ca.crl\"]\n"),
        "is not an http:// or https:// URL",
    );
    assert_error(
        &with("crl_expired = \"ignore\"\n"),
        "crl_expired: \"ignore\" is not allowed",
    );
    assert_error(
        &base.replace(
            "ca = \"pki/ca.pem\"\n",
            "crl_urls = [\"http://x/ca.crl\"]\n",
        ),
        "fetched CRLs are verified against the profile's `ca` bundle",
    );
}

#[test]
fn a_refused_setting_keeps_its_field_apart_from_the_sentence() {
    let path = Path::new("/etc/guichet/guichet.toml");
    let err = Config::parse(path, &route_with("idle_timeout = \"soon\"")).unwrap_err();
    let Problem::Setting(setting) = &err.problem else {
        panic!("not a setting: {err}");
    };
    assert_eq!(setting.field_name(), Some("idle_timeout"));
    assert!(
        matches!(setting, SettingError::Within { scope, .. } if scope == "route \"r\""),
        "{setting:?}"
    );
    let err = Config::parse(path, "").unwrap_err();
    let Problem::Setting(setting) = &err.problem else {
        panic!("not a setting: {err}");
    };
    assert_eq!(setting.field_name(), None);
    let err = Config::parse(path, "[[route]\n").unwrap_err();
    assert!(matches!(err.problem, Problem::Syntax(_)), "{err}");
}

/// A folder route with the journal it needs and `extra` lines.
fn folder_route(extra: &str) -> String {
    format!(
        "{PROFILES}\n[journal]\nstore = \"journal.db\"\n\n[[route]]\nname = \"ror-files\"\nkind = \"folder\"\ninbox = \"/srv/ror/inbox\"\nupstream = \"https://ror.example.org/api\"\nupstream_tls = \"eai\"\n{extra}"
    )
}

#[test]
fn folder_routes_take_their_folders_upstream_and_token() {
    let config = parse(&folder_route(
        "token_url = \"https://auth.example.org/oauth/token\"\nsettle_time = \"3s\"\nretry_max = \"10m\"\n",
    ))
    .unwrap();
    assert!(config.routes.is_empty());
    let folder = &config.folders[0];
    assert_eq!(folder.done, Path::new("/srv/ror/done"));
    assert_eq!(folder.rejected, Path::new("/srv/ror/rejected"));
    assert_eq!(folder.work(), Path::new("/srv/ror/inbox/.guichet"));
    assert_eq!(folder.settle_time, Duration::from_secs(3));
    assert_eq!(folder.max_file_bytes, 10 * 1024 * 1024);
    assert_eq!(folder.backoff(1), Duration::from_secs(1));
    assert_eq!(folder.backoff(30), Duration::from_secs(600));
    assert_eq!(folder.upstream.base_path.as_deref(), Some("/api"));
    let token = folder.upstream.token.as_ref().unwrap();
    assert_eq!(token.base_path.as_deref(), Some("/oauth/token"));
    // Another host than the upstream's: its own name is checked.
    let name = token.tls.as_ref().unwrap().server_name.to_str();
    assert_eq!(name, "auth.example.org");
}

#[test]
fn folder_routes_refuse_what_they_cannot_honour() {
    for (text, expected) in [
        (
            folder_route("listen = \"127.0.0.1:1\"\n"),
            "route \"ror-files\": listen: a folder route listens on nothing",
        ),
        (
            folder_route("done = \"/srv/ror/inbox\"\n"),
            "inbox, done and rejected must be three different folders",
        ),
        (
            folder_route("convert = \"patch\"\n"),
            "convert: only with validate",
        ),
        (folder_route("max_file_bytes = 0\n"), "max_file_bytes"),
        (
            folder_route("").replace("inbox = \"/srv/ror/inbox\"\n", ""),
            "inbox: missing",
        ),
        (
            folder_route("").replace("[journal]\nstore = \"journal.db\"\n", ""),
            "a folder route keeps each file's state in the journal",
        ),
        (
            folder_route("")
                .replace("https://ror.example.org/api", "http://ror.example.org/api")
                .replace(
                    "upstream_tls = \"eai\"\n",
                    "token_url = \"https://a.example.org/t\"\n",
                ),
            "token_url: an access token is asked for over mutual TLS",
        ),
        (
            route_with("inbox = \"/srv/in\"\n"),
            "inbox: only for kind = \"folder\" routes",
        ),
    ] {
        assert_error(&text, expected);
    }
}

#[test]
fn flows_are_observed_wherever_a_journal_is_unless_turned_off() {
    let route = "[[route]]\nname = \"t\"\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n";
    let journal = "[journal]\nstore = \"journal.db\"\n";
    let observed = |head: &str| parse(&format!("{head}\n{route}")).map(|c| c.observe);
    assert_eq!(observed(journal), Ok(Some(Duration::from_secs(5))));
    assert_eq!(observed(""), Ok(None));
    let every = format!("{journal}[observe]\nflush = \"2s\"\n");
    assert_eq!(observed(&every), Ok(Some(Duration::from_secs(2))));
    let off = format!("{journal}[observe]\nenabled = false\n");
    assert_eq!(observed(&off), Ok(None));
    let without = observed("[observe]\nenabled = true\n").unwrap_err();
    assert!(
        without.contains("[observe]") && without.contains("add a [journal] section"),
        "{without}"
    );
    let fast = observed(&format!("{journal}[observe]\nflush = \"100ms\"\n")).unwrap_err();
    assert!(fast.contains("[observe] flush"), "{fast}");
    let typo = observed(&format!("{journal}[observe]\nflsh = \"2s\"\n")).unwrap_err();
    assert!(typo.contains("flsh"), "{typo}");
}

#[test]
fn map_is_served_by_the_admin_listener_with_paths_beside_the_file() {
    let route = "[[route]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n";
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let map = |head: &str| parse(&format!("{head}\n{route}")).map(|c| c.map);
    let spec = map(&format!(
        "{admin}[map]\ndata = \"carto/data\"\nmapping = \"/srv/mapping.toml\"\nlang = \"en\"\n"
    ))
    .unwrap()
    .unwrap();
    assert_eq!(spec.data, Path::new("/etc/guichet/carto/data"));
    assert_eq!(
        spec.mapping.as_deref(),
        Some(Path::new("/srv/mapping.toml"))
    );
    assert_eq!(spec.lang, MapLang::En);
    let plain = map(&format!("{admin}[map]\ndata = \"d\"\n"))
        .unwrap()
        .unwrap();
    assert_eq!((plain.lang, plain.mapping), (MapLang::Fr, None));
    assert_eq!(map(admin), Ok(None));

    let alone = map("[map]\ndata = \"d\"\n").unwrap_err();
    assert!(
        alone.contains("[map]") && alone.contains("add an [admin] section"),
        "{alone}"
    );
    let without_data = map(&format!("{admin}[map]\nlang = \"fr\"\n")).unwrap_err();
    assert!(
        without_data.contains("missing field `data`"),
        "{without_data}"
    );
    let unknown = map(&format!("{admin}[map]\ndata = \"d\"\nrefresh = \"5s\"\n")).unwrap_err();
    assert!(unknown.contains("unknown field `refresh`"), "{unknown}");
    let lang = map(&format!("{admin}[map]\ndata = \"d\"\nlang = \"de\"\n")).unwrap_err();
    assert!(
        lang.contains("[map] lang") && lang.contains("\"de\""),
        "{lang}"
    );
}

#[test]
fn gateway_name_titles_the_page_and_is_checked() {
    let route = r#"
[[route]]
name = "to-dpi"
listen = "127.0.0.1:21010"
forward = "127.0.0.1:32100"
"#;
    let named = parse(&format!("[gateway]\nname = \"  EAI side \"\n{route}")).unwrap();
    assert_eq!(named.name.as_deref(), Some("EAI side"));
    assert_eq!(parse(route).unwrap().name, None);
    let empty = parse(&format!("[gateway]\nname = \" \"\n{route}")).unwrap_err();
    assert!(
        empty.contains("[gateway] name") && empty.contains("is empty"),
        "{empty}"
    );
    let long = "x".repeat(65);
    let too_long = parse(&format!("[gateway]\nname = \"{long}\"\n{route}")).unwrap_err();
    assert!(too_long.contains("longer than 64"), "{too_long}");
    let two_lines = parse(&format!("[gateway]\nname = \"a\\nb\"\n{route}")).unwrap_err();
    assert!(two_lines.contains("control character"), "{two_lines}");
}
