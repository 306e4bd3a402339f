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
        "missing field `forward`",
    );
    assert_error("[[route]\n", "line 1");
    assert_error("", "no [[route]] defined");
    let route = |extra: &str| {
        format!("{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n{extra}\n")
    };
    assert_error(
        &route("listen_tls = \"eai\""),
        "must list the [[app]] names it admits",
    );
    assert_error(
        &route("listen_tls = \"eai\"\nallow = [\"ghost\"]"),
        "no [[app]] named \"ghost\"",
    );
    assert_error(
        &route("listen_tls = \"nope\"\nallow = [\"dpi\"]"),
        "no TLS profile \"nope\"",
    );
    assert_error(&route("allow = [\"dpi\"]"), "need `listen_tls`");
    assert_error(
        &route("listen_tls = \"eai\"\nclient_auth = \"none\"\nallow = [\"dpi\"]"),
        "contradicts",
    );
    assert_error(
        &route("idle_timeout = \"soon\""),
        "idle_timeout: \"soon\" is not a duration",
    );
    assert_error(
        &route("max_connections = 0"),
        "max_connections: 0 is out of range",
    );
    assert_error(
        &route("kind = \"udp\""),
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
    let twice = format!("{PROFILES}\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n[[route]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:3\"\n");
    assert_error(&twice, "already used by another route");
    assert_error(
        &format!(
            "{PROFILES}\n[[route]]\nname = \"r r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n"
        ),
        "must be 1-64 characters",
    );
}

#[test]
fn mllp_routes_take_frame_and_ack_settings() {
    let base = "[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"h:2\"\n";
    let config = parse(&format!("{base}kind = \"mllp\"\n")).unwrap();
    assert_eq!(
        config.routes[0].kind,
        RouteKind::Mllp(MllpSettings {
            max_frame: 16 * 1024 * 1024,
            non_hl7: NonHl7Policy::Reject,
            ack_timeout: Duration::from_secs(30),
            delivery: Delivery::Passthrough,
        })
    );
    let config = parse(&format!(
        "{base}kind = \"mllp\"\nmax_frame_bytes = 65536\nnon_hl7 = \"pass\"\nack_timeout = \"5s\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.routes[0].kind,
        RouteKind::Mllp(MllpSettings {
            max_frame: 65536,
            non_hl7: NonHl7Policy::Pass,
            ack_timeout: Duration::from_secs(5),
            delivery: Delivery::Passthrough,
        })
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
    assert_error(
        &format!("[journal]\nstore = \"j.db\"\nlease_timeout = \"1s\"\n{base}"),
        "[journal] lease_timeout: at least 2s",
    );
    let pg = parse(&format!(
        "[journal]\nstore = \"postgres://g:pw@db/guichet\"\n{base}"
    ))
    .unwrap();
    assert!(matches!(
        pg.journal.unwrap().store,
        guichet_journal::StoreSpec::Postgres(_)
    ));
}
