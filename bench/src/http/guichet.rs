//! guichet as the HTTPS gateway: one `guichet run` with one `http` route
//! and one rule admitting the partner's application: chain and CRL
//! checked, identity headers (both forms, the default) sent upstream;
//! guichet logs at its default level (`info`), as a gateway deployed with
//! no `RUST_LOG`.
//!
//! For the validating rule's rounds, the rule checks each document against
//! the round's referential, or forwards it unchecked.
//!
//! A second application, `other` (the intruder's certificate), is known
//! to the route but not admitted by the rule: it completes the handshake
//! and gets a 403 per request, as with nginx's fingerprint map.

use super::Round;
use crate::children::Child;
use crate::peers::{p, write_config, Setup};

pub(super) fn start(setup: &Setup, round: &Round<'_>) -> anyhow::Result<Child> {
    let config = write_config(round.dir, "guichet.toml", &config(setup, round))?;
    Child::spawn(
        "guichet",
        &setup.guichet,
        &["run", "-c", &config],
        &[("RUST_LOG", "info")],
        &round.dir.join("guichet.log"),
    )
}

fn config(setup: &Setup, round: &Round<'_>) -> String {
    let certs = &setup.certs;
    let access_log = if round.access_log {
        format!("access_log = \"{}\"\n", p(&round.dir.join("access.jsonl")))
    } else {
        String::new()
    };
    format!(
        r#"[gateway]
drain_timeout = "1s"
{workers}
[tls.gateway]
cert = "{cert}"
key = "{key}"
ca = "{ca}"
crl = ["{crl}"]

[[app]]
name = "partner"
cn = "eai"
issuer_dn = "CN=guichet test CA"

[[app]]
name = "other"
cn = "intruder"
issuer_dn = "CN=guichet test CA"

[[route]]
name = "guichet-unique"
kind = "http"
listen = "{listen}"
listen_tls = "gateway"
idle_timeout = "60s"
max_connections = 4096
# One client address opening connections at once, as for nginx and Caddy.
max_handshakes = 4096
max_connections_per_source = 4096
{access_log}
[[route.rule]]
name = "ror"
path = "/ror/"
upstream = "http://{upstream}"
allow = ["partner"]
{validation}"#,
        validation = validation(round),
        workers = setup
            .guichet_workers
            .map_or_else(String::new, |n| format!("workers = {n}\n")),
        cert = p(&certs.dpi.cert),
        key = p(&certs.dpi.key),
        ca = p(&certs.ca),
        crl = p(&certs.crl),
        listen = round.listen,
        upstream = round.upstream,
    )
}

/// The rule's validation settings, when the round's rule checks its
/// documents.
fn validation(round: &Round<'_>) -> String {
    round.referential().map_or_else(String::new, |referential| {
        format!(
            "validate = \"bed-availability\"\nreferential = \"{}\"\n",
            p(&referential)
        )
    })
}
