//! stunnel (Debian stunnel4): a thread per connection. TCP_NODELAY on
//! both sockets, logs at `warning` (no line per connection), foreground.

use std::path::Path;

use super::{p, write_config, Layout, Setup};
use crate::children::Child;

pub(super) fn start(setup: &Setup, layout: &Layout, dir: &Path) -> anyhow::Result<Vec<Child>> {
    let program = setup
        .stunnel
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("stunnel not installed"))?;
    let client = write_config(dir, "eai.conf", &client_side(setup, layout))?;
    let server = write_config(dir, "dpi.conf", &server_side(setup, layout))?;
    let run = |name: &str, config: &str, log: &str| {
        Child::spawn(name, program, &[config], &[], &dir.join(log))
    };
    Ok(vec![
        run("stunnel (EAI side)", &client, "eai.log")?,
        run("stunnel (DPI side)", &server, "dpi.log")?,
    ])
}

const GLOBAL: &str = "foreground = yes
pid =
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
";

/// Client mode: verifies the DPI side's chain, CRL and name `dpi`.
fn client_side(setup: &Setup, layout: &Layout) -> String {
    let certs = &setup.certs;
    format!(
        "{GLOBAL}
[to-dpi]
client = yes
accept = {entry}
connect = {tunnel}
cert = {cert}
key = {key}
CAfile = {ca}
CRLfile = {crl}
verifyChain = yes
checkHost = dpi
sslVersionMin = TLSv1.3
",
        entry = layout.entry,
        tunnel = layout.tunnel,
        cert = p(&certs.eai.cert),
        key = p(&certs.eai.key),
        ca = p(&certs.ca),
        crl = p(&certs.crl),
    )
}

/// Server mode: requires and verifies the EAI side's certificate; admits
/// only `eai` (checkHost on the client certificate's names).
fn server_side(setup: &Setup, layout: &Layout) -> String {
    let certs = &setup.certs;
    format!(
        "{GLOBAL}
[from-eai]
accept = {tunnel}
connect = {sink}
cert = {cert}
key = {key}
CAfile = {ca}
CRLfile = {crl}
verifyChain = yes
requireCert = yes
checkHost = eai
sslVersionMin = TLSv1.3
",
        tunnel = layout.tunnel,
        sink = layout.sink,
        cert = p(&certs.dpi.cert),
        key = p(&certs.dpi.key),
        ca = p(&certs.ca),
        crl = p(&certs.crl),
    )
}
