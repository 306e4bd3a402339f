//! HAProxy (Debian haproxy) in `mode tcp`, as many threads as guichet has
//! workers (one per core), `ssl verify required` both ways, no logging.

use std::path::Path;

use super::{p, write_config, Layout, Setup};
use crate::children::Child;

pub(super) fn start(setup: &Setup, layout: &Layout, dir: &Path) -> anyhow::Result<Vec<Child>> {
    let program = setup
        .haproxy
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("haproxy not installed"))?;
    let client = write_config(dir, "eai.cfg", &client_side(setup, layout))?;
    let server = write_config(dir, "dpi.cfg", &server_side(setup, layout))?;
    let run = |name: &str, config: &str, log: &str| {
        Child::spawn(name, program, &["-db", "-f", config], &[], &dir.join(log))
    };
    Ok(vec![
        run("HAProxy (EAI side)", &client, "eai.log")?,
        run("HAProxy (DPI side)", &server, "dpi.log")?,
    ])
}

/// Global and default sections: threads, connection limits, timeouts
/// like guichet's.
fn common(setup: &Setup) -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "global
    nbthread {threads}
    maxconn {max}
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3

defaults
    mode tcp
    maxconn {max}
    timeout connect 5s
    timeout client 15m
    timeout server 15m
",
        max = setup.max_connections + 50,
    )
}

/// Plain in; out with our certificate, verifying the DPI side's chain,
/// CRL and name `dpi`.
fn client_side(setup: &Setup, layout: &Layout) -> String {
    let certs = &setup.certs;
    format!(
        "{common}
frontend to-dpi
    bind {entry}
    default_backend dpi

backend dpi
    server dpi {tunnel} ssl verify required ca-file {ca} crl-file {crl} crt {crt} sni str(dpi) verifyhost dpi ssl-min-ver TLSv1.3
",
        common = common(setup),
        entry = layout.entry,
        tunnel = layout.tunnel,
        ca = p(&certs.ca),
        crl = p(&certs.crl),
        crt = p(&certs.eai.combined),
    )
}

/// TLS in, client certificate required and verified against the CA and
/// CRL, admitting only CN `eai`; plain out to the sink.
fn server_side(setup: &Setup, layout: &Layout) -> String {
    let certs = &setup.certs;
    format!(
        "{common}
frontend from-eai
    bind {tunnel} ssl crt {crt} ca-file {ca} crl-file {crl} verify required ssl-min-ver TLSv1.3
    tcp-request session reject unless {{ ssl_c_s_dn(CN) -m str eai }}
    default_backend sink

backend sink
    server sink {sink}
",
        common = common(setup),
        tunnel = layout.tunnel,
        sink = layout.sink,
        ca = p(&certs.ca),
        crl = p(&certs.crl),
        crt = p(&certs.dpi.combined),
    )
}
