//! The peers, and the tunnels compared, each as a pair of gateway
//! processes:
//!
//! ```text
//! load -> client-side gateway (plain in, mTLS out) -> server-side gateway (mTLS in, plain out) -> sink
//! ```
//!
//! Every peer gets the same certificates, TLS 1.3 only, client
//! certificates required and verified, the server certificate checked for
//! the name `dpi`, and CRLs checked, as in `examples/tunnel/`.
//!
//! nginx and Caddy are HTTPS gateways, not tunnels: they take part in the
//! HTTPS scenarios only, started by [`crate::http`].

mod guichet;
mod haproxy;
mod stunnel;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::children::{free_port, Child};
use crate::pki::Certs;

/// How long a gateway may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Guichet,
    Haproxy,
    Stunnel,
    /// No tunnel: the load generator talks to the sink. The physical limit.
    Direct,
    /// HTTPS gateways only.
    Nginx,
    Caddy,
}

/// What every peer's configuration is made from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where configs and logs are written.
    pub dir: PathBuf,
    pub certs: Certs,
    pub guichet: PathBuf,
    /// `None` when HAProxy is not installed: that peer is skipped.
    pub haproxy: Option<PathBuf>,
    pub stunnel: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
    pub caddy: Option<PathBuf>,
    /// Connections each gateway must accept (the idle scenario's count).
    pub max_connections: u32,
    /// guichet's `[gateway] workers`; `None` keeps its default (one per
    /// CPU, as HAProxy's `nbthread`).
    pub guichet_workers: Option<u32>,
}

/// The addresses of one pair.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Where the load generator connects: the client-side gateway.
    pub entry: SocketAddr,
    /// The server-side gateway, reached over mutual TLS.
    pub tunnel: SocketAddr,
    /// The receiving application.
    pub sink: SocketAddr,
}

/// A running pair; dropping it stops both gateways.
pub struct Pair {
    pub entry: SocketAddr,
    /// Client side first, then server side; empty for the direct path.
    pub gateways: Vec<Child>,
}

impl Peer {
    pub const ALL: [Peer; 6] = [
        Peer::Guichet,
        Peer::Haproxy,
        Peer::Stunnel,
        Peer::Direct,
        Peer::Nginx,
        Peer::Caddy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Guichet => "guichet",
            Peer::Haproxy => "HAProxy",
            Peer::Stunnel => "stunnel",
            Peer::Direct => "direct",
            Peer::Nginx => "nginx",
            Peer::Caddy => "Caddy",
        }
    }

    /// Why this peer cannot run here, if it cannot.
    pub fn missing(self, setup: &Setup) -> Option<&'static str> {
        match self {
            Peer::Haproxy if setup.haproxy.is_none() => {
                Some("haproxy not installed (apt-get install -y haproxy)")
            }
            Peer::Stunnel if setup.stunnel.is_none() => {
                Some("stunnel not installed (apt-get install -y stunnel4)")
            }
            Peer::Nginx if setup.nginx.is_none() => {
                Some("nginx not installed (apt-get install -y nginx)")
            }
            Peer::Caddy if setup.caddy.is_none() => {
                Some("caddy not installed (apt-get install -y caddy)")
            }
            _ => None,
        }
    }

    /// Starts the pair in front of `sink` and waits until both listen.
    pub async fn start(self, setup: &Setup, sink: SocketAddr, tag: &str) -> anyhow::Result<Pair> {
        if self == Peer::Direct {
            return Ok(Pair {
                entry: sink,
                gateways: Vec::new(),
            });
        }
        let layout = Layout {
            entry: local(free_port()?),
            tunnel: local(free_port()?),
            sink,
        };
        let dir = setup.dir.join(tag);
        std::fs::create_dir_all(&dir)?;
        let mut gateways = match self {
            Peer::Guichet => guichet::start(setup, &layout, &dir)?,
            Peer::Haproxy => haproxy::start(setup, &layout, &dir)?,
            Peer::Stunnel => stunnel::start(setup, &layout, &dir)?,
            Peer::Direct => Vec::new(),
            Peer::Nginx | Peer::Caddy => anyhow::bail!("{self} is not a tunnel"),
        };
        let [client, server] = gateways.as_mut_slice() else {
            anyhow::bail!("{self}: expected two gateway processes");
        };
        server.wait_listening(layout.tunnel, START_TIMEOUT).await?;
        client.wait_listening(layout.entry, START_TIMEOUT).await?;
        Ok(Pair {
            entry: layout.entry,
            gateways,
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Pair {
    /// Fails if a gateway has died (it would otherwise show as errors).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.gateways.iter_mut().try_for_each(Child::check_alive)
    }
}

pub(crate) fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Writes a config file and returns its path as a string for arguments.
pub(crate) fn write_config(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// A path as a config file writes it.
pub(crate) fn p(path: &Path) -> String {
    path.display().to_string()
}
