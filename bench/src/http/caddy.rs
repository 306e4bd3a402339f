//! Caddy (Debian caddy, Go) as the HTTPS gateway, the closest packaged
//! stand-in for Traefik: `client_auth` in `require_and_verify` mode
//! against the CA, the admitted partner's certificate as the only
//! `trusted_leaf_cert_file` (Caddy's allowlist: any other certificate is
//! refused during the handshake), and `reverse_proxy` to the upstream.
//! Caddy 2.6 checks no CRL. No admin endpoint, no automatic HTTPS (so no
//! listener on port 80), HTTP/3 off; state under the run's directory.

use super::Round;
use crate::children::Child;
use crate::peers::{p, write_config, Setup};

pub(super) fn start(setup: &Setup, round: &Round<'_>) -> anyhow::Result<Child> {
    let program = setup
        .caddy
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("caddy not installed"))?;
    let config = write_config(round.dir, "Caddyfile", &caddyfile(setup, round))?;
    let home = p(&round.dir.join("caddy-home"));
    let env = [
        ("HOME", home.as_str()),
        ("XDG_DATA_HOME", home.as_str()),
        ("XDG_CONFIG_HOME", home.as_str()),
    ];
    let args = ["run", "--adapter", "caddyfile", "--config", &config];
    Child::spawn("Caddy", program, &args, &env, &round.dir.join("caddy.log"))
}

fn caddyfile(setup: &Setup, round: &Round<'_>) -> String {
    let certs = &setup.certs;
    let access_log = if round.access_log {
        format!(
            "log {{
        output file {} {{
            roll_disabled
        }}
        format json
    }}",
            p(&round.dir.join("access.jsonl"))
        )
    } else {
        String::new()
    };
    format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {storage}
    log {{
        level WARN
    }}
    servers {{
        protocols h1 h2
    }}
}}

https://localhost:{port} {{
    bind {host}
    tls {cert} {key} {{
        protocols tls1.2 tls1.3
        client_auth {{
            mode require_and_verify
            trusted_ca_cert_file {ca}
            trusted_leaf_cert_file {partner}
        }}
    }}
    {access_log}
    handle /ror/* {{
        reverse_proxy {upstream} {{
            header_up X-Client-Subject {{tls_client_subject}}
            header_up X-Client-Fingerprint {{tls_client_fingerprint}}
            transport http {{
                keepalive 60s
                keepalive_idle_conns 128
                keepalive_idle_conns_per_host 64
            }}
        }}
    }}
    handle {{
        respond 404
    }}
}}
"#,
        storage = p(&round.dir.join("caddy-data")),
        port = round.listen.port(),
        host = round.listen.ip(),
        cert = p(&certs.dpi.cert),
        key = p(&certs.dpi.key),
        ca = p(&certs.ca),
        partner = p(&certs.eai.cert),
        upstream = round.upstream,
    )
}
