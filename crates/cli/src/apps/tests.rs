use std::path::PathBuf;
use std::sync::Arc;

use guichet_gateway::Config;
use guichet_pki::{CaOptions, IssueRequest};
use guichet_tls::{AppName, Identity};

use super::add::{read_identity, DEFAULT_FIELDS};
use super::*;

/// The part of `CONFIG` before the place a new `[[app]]` goes.
const HEAD: &str = r#"# guichet for the test bench
# (keep this header)

[gateway]
drain_timeout = "5s"   # short, for tests

[tls.dpi]
cert = "pki/dpi.pem"
key = "pki/dpi.key"
ca = "pki/ca.pem"

# The DPI itself.
[[app]]
name = "dpi"
cn = "dpi"        # subject CN
issuer_cn = "guichet test CA"
"#;

/// The part after it.
const TAIL: &str = r#"

# Routes below.
[[route]]
name = "from-eai"
listen = "127.0.0.1:32200"
listen_tls = "dpi"
allow = ["dpi"]   # who may connect
forward = "127.0.0.1:22011"

[[route]]
name = "plain"
listen = "127.0.0.1:21010"
forward = "127.0.0.1:32100"
# the end
"#;

const TODAY: &str = "2024-05-01";

struct Bench {
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// CN=eai, OU=1750000001.
    eai: PathBuf,
    /// CN=dpi, no OU.
    dpi: PathBuf,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    guichet_pki::init(&pki, &CaOptions::default()).unwrap();
    let eai = IssueRequest {
        ou: Some("1750000001".into()),
        ..IssueRequest::new("eai")
    };
    let eai = guichet_pki::issue(&pki, &eai).unwrap().cert;
    let dpi = guichet_pki::issue(&pki, &IssueRequest::new("dpi"))
        .unwrap()
        .cert;
    let config = dir.path().join("guichet.toml");
    Bench {
        _dir: dir,
        config,
        eai,
        dpi,
    }
}

fn config() -> String {
    format!("{HEAD}{TAIL}")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn add_app(
    b: &Bench,
    text: &str,
    name: &str,
    cert: &Path,
    fields: &[&str],
    allow_on: &[&str],
) -> anyhow::Result<Change> {
    let (fields, allow_on) = (strings(fields), strings(allow_on));
    let request = AddRequest {
        name,
        cert,
        fields: &fields,
        allow_on: &allow_on,
    };
    add(&b.config, text, &request, TODAY)
}

fn identity(cert: &Path) -> Identity {
    read_identity(cert).unwrap()
}

fn rule(b: &Bench, text: &str, name: &str) -> Arc<guichet_tls::AppRule> {
    let config = Config::parse(&b.config, text).unwrap();
    config.apps[&AppName::new(name)].clone()
}

#[track_caller]
fn assert_err(result: anyhow::Result<Change>, expected: &str) {
    let err = format!("{:#}", result.err().expect("the edit should be refused"));
    assert!(
        err.contains(expected),
        "{err:?} should contain {expected:?}"
    );
}

#[test]
fn add_keeps_the_rest_of_the_file_byte_for_byte() {
    let b = bench();
    let change = add_app(&b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &[]).unwrap();
    let id = identity(&b.eai);
    let added = format!(
        "\n# added by guichet apps add from {} on 2024-05-01 (subject \"{}\", sha256 {})\n\
         [[app]]\nname = \"eai\"\ncn = \"eai\"\nou = \"1750000001\"\nissuer_dn = \"CN=guichet test CA\"\n",
        b.eai.display(),
        id.subject,
        id.fingerprint
    );
    assert_eq!(change.text, format!("{HEAD}{added}{TAIL}"));
    assert!(rule(&b, &change.text, "eai").matches(&id));
    assert!(!rule(&b, &change.text, "eai").matches(&identity(&b.dpi)));
    assert_eq!(
        change.report,
        [format!(
            "added [[app]] \"eai\" to {}, matching cn = \"eai\", ou = \"1750000001\", issuer_dn = \"CN=guichet test CA\"",
            b.config.display()
        )]
    );
}

#[test]
fn add_without_apps_goes_at_the_end() {
    let b = bench();
    let text = "[tls.dpi]\ncert = \"c.pem\"\nkey = \"k.pem\"\n\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:1\"\nforward = \"127.0.0.1:2\"\n# end\n";
    let change = add_app(&b, text, "eai", &b.eai, &["cn"], &[]).unwrap();
    let (before, after) = change.text.split_once("\n# added by").unwrap();
    assert_eq!(before, text.trim_end_matches("# end\n"));
    assert!(after.ends_with("\n[[app]]\nname = \"eai\"\ncn = \"eai\"\n# end\n"));
}

#[test]
fn default_match_skips_a_missing_ou_but_an_explicit_ou_is_refused() {
    let b = bench();
    let change = add_app(&b, &config(), "dpi2", &b.dpi, &DEFAULT_FIELDS, &[]).unwrap();
    assert!(change
        .text
        .contains("[[app]]\nname = \"dpi2\"\ncn = \"dpi\"\nissuer_dn = \"CN=guichet test CA\"\n"));
    assert!(rule(&b, &change.text, "dpi2").matches(&identity(&b.dpi)));
    let explicit = add_app(&b, &config(), "dpi2", &b.dpi, &["cn", "ou"], &[]);
    assert_err(
        explicit,
        &format!(
            "certificate {} has no OU; choose other --match fields",
            b.dpi.display()
        ),
    );
}

#[test]
fn match_fingerprint_pins_one_certificate() {
    let b = bench();
    let id = identity(&b.eai);
    let change = add_app(&b, &config(), "eai", &b.eai, &["fingerprint"], &[]).unwrap();
    assert!(change.text.contains(&format!(
        "[[app]]\nname = \"eai\"\nfingerprint = \"{}\"\n",
        id.fingerprint
    )));
    let rule = rule(&b, &change.text, "eai");
    assert_eq!(rule.fingerprint, Some(id.fingerprint));
    assert_eq!((rule.cn.as_deref(), rule.issuer_dn.as_ref()), (None, None));
    assert!(rule.matches(&id));
    assert!(!rule.matches(&identity(&b.dpi)));
}

#[test]
fn match_spki_dns_and_o_fields() {
    let b = bench();
    let id = identity(&b.eai);
    let change = add_app(&b, &config(), "eai", &b.eai, &[" SPKI", "dns"], &[]).unwrap();
    assert!(change.text.contains(&format!(
        "name = \"eai\"\nspki = \"{}\"\nsan_dns = \"eai\"\n",
        id.spki
    )));
    assert!(rule(&b, &change.text, "eai").matches(&id));
    assert_err(
        add_app(&b, &config(), "eai", &b.eai, &["o"], &[]),
        "has no O; choose other --match fields",
    );
}

#[test]
fn allow_on_adds_the_name_to_the_route() {
    let b = bench();
    let change = add_app(&b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &["from-eai"]).unwrap();
    assert!(change
        .text
        .contains("\nallow = [\"dpi\", \"eai\"]   # who may connect\n"));
    let config = Config::parse(&b.config, &change.text).unwrap();
    let route = config.route("from-eai").unwrap();
    let names: Vec<String> = match &route.listen_tls.as_ref().unwrap().auth {
        guichet_gateway::config::AuthSpec::Required(rules) => {
            rules.iter().map(|r| r.name.as_str().to_string()).collect()
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(names, ["dpi", "eai"]);
    assert_eq!(change.report[1], "route \"from-eai\" now admits \"eai\"");
}

#[test]
fn allow_on_keeps_one_name_per_line() {
    let b = bench();
    let text = config().replace(
        "allow = [\"dpi\"]   # who may connect",
        "allow = [\n    \"dpi\",\n]",
    );
    let change = add_app(&b, &text, "eai", &b.eai, &["cn"], &["from-eai"]).unwrap();
    assert!(change
        .text
        .contains("allow = [\n    \"dpi\",\n    \"eai\",\n]\n"));
}

#[test]
fn allow_on_refuses_plain_and_unknown_routes() {
    let b = bench();
    assert_err(
        add_app(&b, &config(), "eai", &b.eai, &["cn"], &["plain"]),
        "route \"plain\" has no `listen_tls`",
    );
    assert_err(
        add_app(&b, &config(), "eai", &b.eai, &["cn"], &["nope"]),
        "no [[route]] named \"nope\" (routes: from-eai, plain)",
    );
}

#[test]
fn duplicate_name_is_refused() {
    let b = bench();
    assert_err(
        add_app(&b, &config(), "dpi", &b.eai, &["cn"], &[]),
        "an [[app]] named \"dpi\" already exists",
    );
}

#[test]
fn unknown_field_is_refused_with_the_valid_ones() {
    let b = bench();
    assert_err(
        add_app(&b, &config(), "eai", &b.eai, &["cn", "serial"], &[]),
        "unknown field \"serial\"; use a comma-separated list of cn, o, ou, issuer, dns, uri, fingerprint, spki",
    );
}

#[test]
fn a_name_the_gateway_refuses_is_not_written() {
    let b = bench();
    assert_err(
        add_app(&b, &config(), "e a i", &b.eai, &["cn"], &[]),
        "the change would make the config invalid, so nothing was written",
    );
}

/// `CONFIG` after `apps add --name eai --allow-on from-eai`.
fn with_eai(b: &Bench) -> String {
    add_app(b, &config(), "eai", &b.eai, &DEFAULT_FIELDS, &["from-eai"])
        .unwrap()
        .text
}

#[test]
fn remove_strips_the_app_and_its_allow_entries() {
    let b = bench();
    let change = remove(&b.config, &with_eai(&b), "eai").unwrap();
    assert_eq!(change.text, config());
    assert_eq!(
        change.report,
        [
            format!("removed [[app]] \"eai\" from {}", b.config.display()),
            "taken off the allow list of: from-eai".to_string(),
        ]
    );
}

#[test]
fn remove_first_of_several_keeps_the_list_tidy() {
    let b = bench();
    let text = with_eai(&b).replace("[\"dpi\", \"eai\"]", "[\"eai\", \"dpi\"]");
    let change = remove(&b.config, &text, "eai").unwrap();
    assert!(change
        .text
        .contains("\nallow = [\"dpi\"]   # who may connect\n"));
}

#[test]
fn remove_refuses_to_empty_a_tls_route_and_leaves_the_file() {
    let b = bench();
    fs::write(&b.config, config()).unwrap();
    let result = edit_file(&b.config, |text| remove(&b.config, text, "dpi"));
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains("removing \"dpi\" would leave route(s) \"from-eai\" admitting no application"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&b.config).unwrap(), config());
}

#[test]
fn remove_unknown_app_names_the_known_ones() {
    let b = bench();
    assert_err(
        remove(&b.config, &config(), "eai"),
        "no [[app]] named \"eai\" (apps: dpi)",
    );
}

#[test]
fn list_shows_names_criteria_and_routes() {
    let b = bench();
    let out = list(&b.config, &with_eai(&b)).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAME  MATCH"), "{out}");
    assert!(lines[0].ends_with("ROUTES"), "{out}");
    assert!(
        lines[1].starts_with("dpi   cn=dpi; issuer_cn=guichet test CA "),
        "{out}"
    );
    assert!(lines[1].ends_with("  from-eai"), "{out}");
    assert!(lines[2].starts_with("eai   cn=eai; ou=1750000001; issuer_dn=CN=guichet test CA"));
    assert!(lines[2].ends_with("  from-eai"), "{out}");
    let none = list(&b.config, "[gateway]\n").unwrap();
    assert_eq!(
        none,
        format!(
            "no [[app]] in {}; add one with `guichet apps add`\n",
            b.config.display()
        )
    );
}

#[test]
fn add_through_the_file_keeps_its_permissions() {
    let b = bench();
    fs::write(&b.config, config()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&b.config, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let (fields, allow_on) = (strings(&DEFAULT_FIELDS), strings(&["from-eai"]));
    let request = AddRequest {
        name: "eai",
        cert: &b.eai,
        fields: &fields,
        allow_on: &allow_on,
    };
    edit_file(&b.config, |text| add(&b.config, text, &request, TODAY)).unwrap();
    assert_eq!(fs::read_to_string(&b.config).unwrap(), with_eai(&b));
    Config::load(&b.config).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&b.config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    let leftovers = fs::read_dir(b.config.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 2, "only guichet.toml and pki/");
}

/// An `http` route, beside a tunnel route.
const HTTP: &str = r#"# the regional guichet unique

[tls.gateway]
cert = "pki/dpi.pem"
key = "pki/dpi.key"
ca = "pki/ca.pem"

[[app]]
name = "partner-a"
cn = "partner-a"
issuer_dn = "CN=guichet test CA"

[[app]]
name = "partner-b"
cn = "partner-b"
issuer_dn = "CN=guichet test CA"

[[route]]
name = "guichet-unique"
kind = "http"
listen = "127.0.0.1:8443"
listen_tls = "gateway"

[[route.rule]]
name = "ror-internal"
path = "/ror/internal/"
upstream = "http://127.0.0.1:18081"
allow = ["partner-a"]   # internal API: partner-a only

[[route.rule]]
name = "ror-interop"
path = "/ror/interop/"
upstream = "http://127.0.0.1:18082"
allow = [
    "partner-a",
    "partner-b",
]

[[route]]
name = "from-eai"
listen = "127.0.0.1:32200"
listen_tls = "gateway"
allow = ["partner-b"]
forward = "127.0.0.1:22011"
"#;

/// A partner's certificate shaped like an IGC Santé organisation
/// certificate: O, OU = 1 + FINESS, an application name as CN.
fn igc_sante_partner(b: &Bench) -> PathBuf {
    let pki = b.config.parent().unwrap().join("pki");
    let req = IssueRequest {
        cn: Some("ROR client - GHT Nord".into()),
        o: Some("CENTRE HOSPITALIER DE SAINT-DENIS".into()),
        ou: Some(guichet_pki::Registry::Finess.ou("930000005").unwrap()),
        usage: guichet_pki::Usage::ClientOnly,
        ..IssueRequest::new("partner-c")
    };
    guichet_pki::issue(&pki, &req).unwrap().cert
}

/// `HTTP` after `apps add --name partner-c --allow-on` each of `targets`.
fn http_with(b: &Bench, cert: &Path, targets: &[&str]) -> anyhow::Result<Change> {
    add_partner_c(b, HTTP, cert, targets)
}

/// `text` after `apps add --name partner-c --allow-on` each of `targets`.
fn add_partner_c(b: &Bench, text: &str, cert: &Path, targets: &[&str]) -> anyhow::Result<Change> {
    add_app(b, text, "partner-c", cert, &DEFAULT_FIELDS, targets)
}

#[test]
fn add_an_igc_sante_partner_to_one_rule_of_an_http_route() {
    let b = bench();
    let cert = igc_sante_partner(&b);
    let change = http_with(&b, &cert, &["guichet-unique/ror-internal"]).unwrap();
    let id = identity(&cert);
    let app = format!(
        "\n# added by guichet apps add from {} on 2024-05-01 (subject \"{}\", sha256 {})\n\
         [[app]]\nname = \"partner-c\"\ncn = \"ROR client - GHT Nord\"\nou = \"1930000005\"\nissuer_dn = \"CN=guichet test CA\"\n",
        cert.display(),
        id.subject,
        id.fingerprint
    );
    let expected = HTTP
        .replace(
            "cn = \"partner-b\"\nissuer_dn = \"CN=guichet test CA\"\n",
            &format!("cn = \"partner-b\"\nissuer_dn = \"CN=guichet test CA\"\n{app}"),
        )
        .replace(
            "allow = [\"partner-a\"]   # internal API",
            "allow = [\"partner-a\", \"partner-c\"]   # internal API",
        );
    assert_eq!(change.text, expected);
    assert!(rule(&b, &change.text, "partner-c").matches(&id));
    assert_eq!(
        change.report[1..],
        ["rule \"ror-internal\" of route \"guichet-unique\" now admits \"partner-c\""]
    );
}

#[test]
fn add_to_several_rules_and_routes_keeps_each_list_layout() {
    let b = bench();
    let targets = [
        "guichet-unique/ror-interop",
        "from-eai",
        "guichet-unique/ror-internal",
    ];
    let change = http_with(&b, &b.eai, &targets).unwrap();
    assert!(change
        .text
        .contains("allow = [\n    \"partner-a\",\n    \"partner-b\",\n    \"partner-c\",\n]\n"));
    assert!(change
        .text
        .contains("allow = [\"partner-a\", \"partner-c\"]   # internal API"));
    assert!(change
        .text
        .contains("allow = [\"partner-b\", \"partner-c\"]\nforward"));
    assert_eq!(
        change.report[1..],
        [
            "rule \"ror-interop\" of route \"guichet-unique\" now admits \"partner-c\"",
            "route \"from-eai\" now admits \"partner-c\"",
            "rule \"ror-internal\" of route \"guichet-unique\" now admits \"partner-c\"",
        ]
    );
}

#[test]
fn add_to_a_rule_also_opens_an_explicit_route_allow() {
    let b = bench();
    let text = HTTP.replace(
        "listen_tls = \"gateway\"\n\n[[route.rule]]",
        "listen_tls = \"gateway\"\nallow = [\"partner-a\", \"partner-b\"]\n\n[[route.rule]]",
    );
    let change = add_partner_c(&b, &text, &b.eai, &["guichet-unique/ror-interop"]).unwrap();
    assert!(change
        .text
        .contains("listen_tls = \"gateway\"\nallow = [\"partner-a\", \"partner-b\", \"partner-c\"]\n\n[[route.rule]]"));
    assert_eq!(
        change.report[1..],
        [
            "rule \"ror-interop\" of route \"guichet-unique\" now admits \"partner-c\"",
            "route \"guichet-unique\" now lets \"partner-c\" connect (the route's own allow list)",
        ]
    );
}

#[test]
fn add_to_a_rule_without_allow_creates_it() {
    let b = bench();
    let text = HTTP.replace(
        "allow = [\"partner-a\"]   # internal API: partner-a only\n",
        "",
    );
    let change = add_partner_c(&b, &text, &b.eai, &["guichet-unique/ror-internal"]).unwrap();
    assert!(change
        .text
        .contains("upstream = \"http://127.0.0.1:18081\"\nallow = [\"partner-c\"]\n"));
}

#[test]
fn an_http_route_needs_a_rule_and_other_routes_refuse_one() {
    let b = bench();
    assert_err(
        http_with(&b, &b.eai, &["guichet-unique"]),
        "route \"guichet-unique\" is an http route: each of its rules has its own allow list; give --allow-on guichet-unique/RULE (rules: ror-internal, ror-interop)",
    );
    assert_err(
        http_with(&b, &b.eai, &["guichet-unique/ror"]),
        "route \"guichet-unique\" has no [[route.rule]] named \"ror\" (rules: ror-internal, ror-interop)",
    );
    assert_err(
        http_with(&b, &b.eai, &["from-eai/ror-internal"]),
        "route \"from-eai\" is not an http route, so it has no rules; give --allow-on from-eai",
    );
    assert_err(
        http_with(&b, &b.eai, &["ror/ror-internal"]),
        "no [[route]] named \"ror\" (routes: guichet-unique, from-eai)",
    );
}

#[test]
fn list_shows_route_rule_pairs() {
    let b = bench();
    let text = http_with(&b, &b.eai, &[]).unwrap().text;
    let out = list(&b.config, &text).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].ends_with("  guichet-unique/ror-internal, guichet-unique/ror-interop"),
        "{out}"
    );
    assert!(
        lines[2].ends_with("  guichet-unique/ror-interop, from-eai"),
        "{out}"
    );
    assert!(lines[3].starts_with("partner-c "), "{out}");
    assert!(lines[3].ends_with(" -"), "{out}");
}

#[test]
fn list_flags_a_rule_the_route_allow_makes_unreachable() {
    let b = bench();
    let text = HTTP.replace(
        "listen_tls = \"gateway\"\n\n[[route.rule]]",
        "listen_tls = \"gateway\"\nallow = [\"partner-a\"]\n\n[[route.rule]]",
    );
    let out = list(&b.config, &text).unwrap();
    let partner_b = out.lines().find(|l| l.starts_with("partner-b")).unwrap();
    assert!(
        partner_b.ends_with(
            "  guichet-unique/ror-interop (not in the route's allow: refused at TLS), from-eai"
        ),
        "{out}"
    );
}

#[test]
fn remove_takes_the_app_off_rules_and_routes() {
    let b = bench();
    let targets = ["guichet-unique/ror-interop", "from-eai"];
    let added = http_with(&b, &b.eai, &targets).unwrap().text;
    let change = remove(&b.config, &added, "partner-c").unwrap();
    assert_eq!(change.text, HTTP);
    assert_eq!(
        change.report[1],
        "taken off the allow list of: guichet-unique/ror-interop, from-eai"
    );
    assert_err(
        remove(&b.config, HTTP, "partner-b"),
        "removing \"partner-b\" would leave route(s) \"from-eai\" admitting no application",
    );
}

#[test]
fn remove_refuses_to_empty_a_rule() {
    let b = bench();
    assert_err(
        remove(&b.config, HTTP, "partner-a"),
        "removing \"partner-a\" would leave rule(s) \"guichet-unique/ror-internal\" admitting no application; add another app to their `allow` first, or remove them",
    );
    let text = HTTP.replace(
        "allow = [\"partner-b\"]\nforward",
        "allow = [\"partner-a\"]\nforward",
    );
    assert_err(
        remove(&b.config, &text, "partner-a"),
        "would leave route(s) \"from-eai\" and rule(s) \"guichet-unique/ror-internal\" admitting no application",
    );
}

#[test]
fn remove_from_a_rule_keeps_the_others() {
    let b = bench();
    let text = HTTP.replace(
        "allow = [\"partner-a\"]   # internal",
        "allow = [\"partner-a\", \"partner-b\"]   # internal",
    );
    let text = text.replace(
        "allow = [\"partner-b\"]\nforward",
        "allow = [\"partner-a\", \"partner-b\"]\nforward",
    );
    let change = remove(&b.config, &text, "partner-b").unwrap();
    assert!(change
        .text
        .contains("allow = [\"partner-a\"]   # internal API: partner-a only\n"));
    assert!(change.text.contains("allow = [\n    \"partner-a\",\n]\n"));
    assert!(!change.text.contains("partner-b"));
    assert_eq!(
        change.report[1],
        "taken off the allow list of: guichet-unique/ror-internal, guichet-unique/ror-interop, from-eai"
    );
}

#[test]
fn allow_on_takes_routes_as_an_alias_and_commas() {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from([
        "guichet",
        "apps",
        "add",
        "-c",
        "guichet.toml",
        "--name",
        "partner-c",
        "--cert",
        "partner-c.pem",
        "--routes",
        "guichet-unique/ror-internal,from-eai",
        "--allow-on",
        "guichet-unique/ror-interop",
    ])
    .unwrap();
    let crate::cli::Command::Apps(AppsCommand::Add { allow_on, .. }) = cli.command else {
        panic!("not apps add");
    };
    assert_eq!(
        allow_on,
        [
            "guichet-unique/ror-internal",
            "from-eai",
            "guichet-unique/ror-interop"
        ]
    );
}
