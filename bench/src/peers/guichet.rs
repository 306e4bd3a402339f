//! guichet: two `guichet run` processes with `mllp` routes, so every
//! message is parsed and its ACK matched (events on, as deployed). Logs at
//! guichet's default level (`info`: a line per message, to a file), as a
//! gateway deployed with no `RUST_LOG`.

use std::path::Path;

use super::{p, write_config, Layout, Setup};
use crate::children::Child;
use crate::pki::Identity;

pub(super) fn start(setup: &Setup, layout: &Layout, dir: &Path) -> anyhow::Result<Vec<Child>> {
    let certs = &setup.certs;
    let client = client_side(setup, layout, &certs.eai);
    let server = server_side(setup, layout, &certs.dpi);
    let client = write_config(dir, "eai.toml", &client)?;
    let server = write_config(dir, "dpi.toml", &server)?;
    let env = [("RUST_LOG", "info")];
    let run = |name: &str, config: &str, log: &str| {
        Child::spawn(
            name,
            &setup.guichet,
            &["run", "-c", config],
            &env,
            &dir.join(log),
        )
    };
    Ok(vec![
        run("guichet (EAI side)", &client, "eai.log")?,
        run("guichet (DPI side)", &server, "dpi.log")?,
    ])
}

/// Plain MLLP in, mutual TLS out to the DPI side, which must be `dpi`.
fn client_side(setup: &Setup, layout: &Layout, own: &Identity) -> String {
    format!(
        r#"{common}
[[route]]
name = "to-dpi"
kind = "mllp"
listen = "{entry}"
forward = "{tunnel}"
forward_tls = "eai"
server_name = "dpi"
"#,
        common = common(setup, "eai", own),
        entry = layout.entry,
        tunnel = layout.tunnel,
    )
}

/// Mutual TLS in, admitting only `eai`; plain MLLP out to the sink.
fn server_side(setup: &Setup, layout: &Layout, own: &Identity) -> String {
    format!(
        r#"{common}
[[app]]
name = "eai"
cn = "eai"
issuer_dn = "CN=guichet test CA"

[[route]]
name = "from-eai"
kind = "mllp"
listen = "{tunnel}"
listen_tls = "dpi"
allow = ["eai"]
forward = "{sink}"
"#,
        common = common(setup, "dpi", own),
        tunnel = layout.tunnel,
        sink = layout.sink,
    )
}

fn common(setup: &Setup, profile: &str, own: &Identity) -> String {
    let certs = &setup.certs;
    format!(
        r#"[gateway]
drain_timeout = "1s"
{workers}
[defaults]
connect_timeout = "5s"
handshake_timeout = "10s"
idle_timeout = "15m"
max_connections = {max}
# Every benchmark client is one address (127.0.0.1) and opens its
# connections at once: the budgets would refuse what HAProxy and stunnel
# accept, so they are as large as the route here.
max_handshakes = {max}
max_connections_per_source = {max}

[tls.{profile}]
cert = "{cert}"
key = "{key}"
ca = "{ca}"
crl = ["{crl}"]
min_version = "1.3"
"#,
        workers = setup
            .guichet_workers
            .map_or_else(String::new, |n| format!("workers = {n}\n")),
        max = setup.max_connections + 100,
        cert = p(&own.cert),
        key = p(&own.key),
        ca = p(&certs.ca),
        crl = p(&certs.crl),
    )
}
