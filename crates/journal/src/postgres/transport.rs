//! How the journal reaches its database, in terms an operator acts on:
//! the TLS mode, and whether the hosts are on this machine.

use std::net::IpAddr;
use std::path::PathBuf;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

use super::session::Target;
use super::tls::{PgSslMode, TlsFiles};
use crate::JournalError;

/// How the journal reaches its database: what `guichet check` reports and
/// what start-up warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTransport {
    pub mode: PgSslMode,
    /// The hosts dialled, as written: names, addresses or socket folders.
    pub hosts: Vec<String>,
    /// Every host is a loopback address, `localhost` or a Unix socket
    /// (or `hostaddr` says so): nothing crosses a network.
    pub local: bool,
    /// The CA bundle the database's certificate must chain to.
    pub root_cert: Option<PathBuf>,
    /// The client certificate presented, if any.
    pub client_cert: Option<PathBuf>,
}

impl PgTransport {
    /// Reads a `postgres://` URL and the TLS files it names (a CA that does
    /// not parse, a key others can read are errors), without connecting.
    pub fn inspect(url: &str) -> Result<PgTransport, JournalError> {
        Target::parse(url).map(|target| target.transport().clone())
    }

    /// What an operator should hear at start-up, when the transport is
    /// weaker than it could be; `None` when it is sound.
    pub fn weakness(&self) -> Option<String> {
        match self.mode {
            PgSslMode::Disable if !self.local => Some(format!(
                "plain TCP to {}: message bodies (unless sealed with body_key) and the password \
                 cross the network in clear; use sslmode=verify-full with sslrootcert",
                self.hosts.join(",")
            )),
            PgSslMode::Require => Some(
                "sslmode=require encrypts but does not authenticate the database: whoever sits \
                 on the path can pose as it and read every body; use sslmode=verify-full with \
                 sslrootcert"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The hosts dialled and whether they are all on this machine.
pub(super) fn transport_of(config: &Config, files: &TlsFiles) -> PgTransport {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let local = if config.get_hostaddrs().is_empty() {
        config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => is_loopback(name),
            Host::Unix(_) => true,
        })
    } else {
        config.get_hostaddrs().iter().all(IpAddr::is_loopback)
    };
    PgTransport {
        mode: files.mode,
        hosts,
        local,
        root_cert: files.root_cert.clone(),
        client_cert: files.client.as_ref().map(|(cert, _)| cert.clone()),
    }
}

/// Every host is a Unix socket folder.
pub(super) fn only_unix_sockets(config: &Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty() && hosts.iter().all(|host| matches!(host, Host::Unix(_)))
}

fn is_loopback(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
