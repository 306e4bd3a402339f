//! Typed pieces of a checked configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::{AppRule, ProfileFiles, ServerName, TlsSettings};

use super::error::SettingError;
use super::http::HttpSpec;

/// A route's name: unique in a config, safe in logs and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(Arc<str>);

/// A TLS profile's name (`[tls.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileName(Arc<str>);

macro_rules! name_newtype {
    ($t:ident) => {
        impl $t {
            pub fn new(name: &str) -> Self {
                $t(Arc::from(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_newtype!(RouteName);
name_newtype!(ProfileName);

#[derive(Debug, Clone)]
pub enum RouteKind {
    /// A byte tunnel: any protocol, bytes untouched.
    Tcp,
    /// HL7 v2 over MLLP: frame-aware, one event per message and its ACK.
    Mllp(MllpSettings),
    /// An HTTPS reverse proxy: rules by host and path, an allowlist each.
    Http(Arc<HttpSpec>),
}

impl RouteKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteKind::Tcp => "tcp",
            RouteKind::Mllp(_) => "mllp",
            RouteKind::Http(_) => "http",
        }
    }
}

/// What an `mllp` route does beyond forwarding frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MllpSettings {
    /// A frame larger than this closes the connection: memory per
    /// connection stays bounded whatever the peer sends.
    pub max_frame: usize,
    pub non_hl7: NonHl7Policy,
    /// A message whose ACK has not come back by then is reported as
    /// unacknowledged (the connection is left to the applications); in
    /// store-and-forward, the attempt fails and is retried.
    pub ack_timeout: Duration,
    /// A frame begun must end within this, or the connection is closed:
    /// a peer trickling a frame byte by byte never looks idle.
    pub frame_timeout: Duration,
    pub delivery: Delivery,
}

/// Who acknowledges the sender on an `mllp` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver's own ACK goes back to the sender.
    Passthrough,
    /// guichet stores each message in the journal, acknowledges it once
    /// stored, and delivers it itself, in order, with retries.
    StoreAndForward(ForwardPolicy),
}

/// How a store-and-forward route delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardPolicy {
    /// First wait after a failed attempt; doubled each time up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// AE answers retried this many times before the message is dead.
    pub ae_retries: u32,
    /// A message with the (sender, MSH-10) of one stored this recently is
    /// acknowledged again but not queued twice; `None` disables.
    pub duplicate_window: Option<Duration>,
}

impl ForwardPolicy {
    /// The wait before attempt `attempts + 1`, after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.retry_initial, self.retry_max, attempts)
    }
}

/// The wait before attempt `attempts + 1`: `initial`, doubled after each
/// failure, at most `max`.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    initial.saturating_mul(factor).min(max)
}

/// The `[journal]` section: where store-and-forward routes keep messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    pub store: guichet_journal::StoreSpec,
    /// This node's name in the delivery leases (PostgreSQL, several nodes).
    pub node: String,
    /// A node that stops renewing a route's lease loses it after this.
    pub lease_timeout: Duration,
    /// Seals stored bodies (AES-256-GCM) when set.
    pub body_key: Option<std::path::PathBuf>,
    /// Bodies are deleted this long after delivery.
    pub retain_bodies: Duration,
    /// Metadata of delivered messages is kept this long.
    pub retain_events: Duration,
    pub prune_interval: Duration,
    /// PostgreSQL: connections that store ingests, committing on their
    /// own (1 unless set; SQLite has one writer).
    pub ingest_connections: usize,
    /// When an existing SQLite journal's pages are read for damage.
    pub integrity_check: guichet_journal::IntegrityCheck,
}

/// What to do with a frame that holds no HL7 message (no MSH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonHl7Policy {
    /// Answer the sender with an AR and an ERR segment; forward nothing.
    Reject,
    /// Forward it untouched, and report it.
    Pass,
}

/// Where a route forwards to: a host name or IP, resolved at each connect
/// so DNS changes are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

/// A value that is not `HOST:PORT`, as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not HOST:PORT (e.g. \"127.0.0.1:21011\", \"dpi.example:2575\", \"[::1]:2575\")")]
pub struct NotHostPort(pub String);

impl FromStr for Target {
    type Err = NotHostPort;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NotHostPort(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Deadlines and capacity of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// No byte in either direction for this long closes the connection.
    pub idle_timeout: Duration,
    /// Connections over this are refused at once, never queued.
    pub max_connections: usize,
    /// Connections still in their TLS handshake (not yet authenticated)
    /// over this are refused at once: peers that never finish a handshake
    /// cannot take the slots of those that do. At most `max_connections`.
    pub max_handshakes: usize,
    /// Connections from one source address over this are refused at once,
    /// on every kind of route: one host cannot take every slot. At most
    /// `max_connections`.
    pub max_connections_per_source: usize,
}

impl Limits {
    /// The default `max_handshakes` for a route with `max_connections`:
    /// a quarter of it, at least 16 (or all of it when smaller). A
    /// handshake takes milliseconds, so even a busy partner rarely has
    /// more than a few in flight; the rest of the slots stay for
    /// connections that authenticated.
    pub fn default_max_handshakes(max_connections: usize) -> usize {
        (max_connections / 4).max(max_connections.min(16))
    }

    /// The default `max_connections_per_source`: an eighth of
    /// `max_connections`, at least 32 (or all of it when smaller). An
    /// integration engine holds one connection per interface, a few dozen
    /// at most; a single host holding more is a fault or an attack. Raise
    /// it where one engine, or a NAT in front of many, needs more.
    pub fn default_max_connections_per_source(max_connections: usize) -> usize {
        (max_connections / 8).max(max_connections.min(32))
    }
}

/// A named set of certificate files and protocol settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProfile {
    pub name: ProfileName,
    pub files: ProfileFiles,
    pub settings: TlsSettings,
    /// OCSP checks of peers and stapling of our own certificate.
    pub ocsp: guichet_tls::OcspPolicy,
    /// CRLs guichet fetches itself, besides the `crl` files.
    pub crl_fetch: CrlFetch,
}

impl TlsProfile {
    /// The profile `name` refers to, for the setting `field`.
    pub(crate) fn named<'a>(
        profiles: &'a std::collections::BTreeMap<ProfileName, TlsProfile>,
        name: &str,
        field: &str,
    ) -> Result<&'a TlsProfile, SettingError> {
        profiles.get(name).ok_or_else(|| {
            SettingError::field(
                field,
                format!("no TLS profile {name:?}; define it as [tls.{name}]"),
            )
        })
    }
}

/// Where a profile's CRLs are fetched from, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFetch {
    /// `crl_urls`: `http://` or `https://` URLs.
    pub urls: Vec<String>,
    /// `crl_from_certificates`: the distribution points of the CA
    /// certificates and of the peers' certificates.
    pub from_certificates: bool,
    /// `crl_refresh`; a CRL is also fetched again before its nextUpdate.
    pub refresh: Duration,
}

/// One way a profile learns that a certificate was revoked. A profile may
/// hold several; `guichet check` warns about one that holds none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationSource {
    CrlFile(std::path::PathBuf),
    CrlUrl(String),
    CrlFromCertificates,
    /// `ocsp = "soft"` or `"hard"`: the peers' OCSP responders.
    Ocsp(guichet_tls::OcspMode),
}

impl TlsProfile {
    /// Every revocation source of the profile, in config order.
    pub fn revocation_sources(&self) -> Vec<RevocationSource> {
        let files = self
            .files
            .crls
            .iter()
            .cloned()
            .map(RevocationSource::CrlFile);
        let urls = self
            .crl_fetch
            .urls
            .iter()
            .cloned()
            .map(RevocationSource::CrlUrl);
        let certs = self
            .crl_fetch
            .from_certificates
            .then_some(RevocationSource::CrlFromCertificates);
        let ocsp = (self.ocsp.mode != guichet_tls::OcspMode::Off)
            .then_some(RevocationSource::Ocsp(self.ocsp.mode));
        files.chain(urls).chain(certs).chain(ocsp).collect()
    }

    /// Whether guichet fetches CRLs for this profile.
    pub fn fetches_crls(&self) -> bool {
        !self.crl_fetch.urls.is_empty() || self.crl_fetch.from_certificates
    }
}

/// Who may connect to a TLS listener.
#[derive(Debug, Clone)]
pub enum AuthSpec {
    Required(Vec<Arc<AppRule>>),
    NoClientCert,
}

#[derive(Debug, Clone)]
pub struct ListenTls {
    pub profile: ProfileName,
    pub auth: AuthSpec,
}

/// `[map]`: the admin listener serves the map of the information system
/// at `/map`, built from it-lanscape's data folder and the flows the
/// journal observed. Read by whoever renders it (the `guichet` binary):
/// the gateway only names the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// it-lanscape's data folder.
    pub data: PathBuf,
    /// Observed parties to trigrammes (`guichet map ... --mapping`).
    pub mapping: Option<PathBuf>,
    /// The language the page opens in.
    pub lang: MapLang,
}

/// The language the map's page opens in (the other is a click away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapLang {
    #[default]
    Fr,
    En,
}

/// The admin listener (metrics, health, status page) and its protection.
///
/// `/status` and `/api/status` show partners' certificate subjects,
/// fingerprints and addresses: off loopback they need a client
/// certificate (`tls` with `allow`) or a token over TLS, unless
/// `insecure` says otherwise explicitly.
#[derive(Debug, Clone)]
pub struct AdminSpec {
    pub listen: SocketAddr,
    /// HTTPS with this profile; `auth` says whose client certificates
    /// are admitted (the handshake refuses the others).
    pub tls: Option<ListenTls>,
    /// The bearer token's file, required on every path but `/healthz`
    /// and `/readyz`; re-read when it changes.
    pub token_file: Option<PathBuf>,
    /// Serve off loopback without protection anyway.
    pub insecure: bool,
}

impl AdminSpec {
    /// Whether only this host can reach the listener.
    pub fn on_loopback(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// Whether requests must prove who sends them (a client certificate
    /// of an admitted application, or the token).
    pub fn authenticated(&self) -> bool {
        self.client_certificates() || self.token_file.is_some()
    }

    /// Whether the TLS handshake requires an admitted client certificate.
    pub fn client_certificates(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| matches!(t.auth, AuthSpec::Required(_)))
    }

    /// Why the listener is not fit to leave loopback, if it is not:
    /// `guichet run` refuses it unless `insecure = true`.
    pub fn exposure(&self) -> Option<&'static str> {
        if self.on_loopback() {
            return None;
        }
        match (&self.tls, self.authenticated()) {
            (None, _) => Some("plain HTTP off loopback: the status page (partners' certificate subjects, fingerprints and addresses), metrics and any token cross the network in clear"),
            (Some(_), false) => Some("HTTPS off loopback without client certificates (`allow`) or `token_file`: anyone who reaches it reads partners' certificate subjects, fingerprints and addresses"),
            (Some(_), true) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ForwardTls {
    pub profile: ProfileName,
    /// The name the server's certificate must carry (SAN DNS or IP).
    pub server_name: ServerName<'static>,
}

impl ForwardTls {
    /// The TLS of a side that dials out: profile `name` of setting
    /// `field`, which needs a `ca` to verify `peer` (the server, the
    /// upstream); the name `peer`'s certificate must carry is
    /// `server_name`, else the `host` dialled.
    pub(crate) fn checked(
        profiles: &std::collections::BTreeMap<ProfileName, TlsProfile>,
        (field, name): (&str, &str),
        peer: &str,
        server_name: Option<&str>,
        host: &str,
    ) -> Result<ForwardTls, SettingError> {
        let profile = TlsProfile::named(profiles, name, field)?;
        if profile.files.ca.is_none() {
            return Err(SettingError::field(
                field,
                format!("profile {name:?} has no `ca` to verify the {peer} with"),
            ));
        }
        let dialled = server_name.unwrap_or(host);
        let server_name = ServerName::try_from(dialled.to_string()).map_err(|_| {
            SettingError::field(
                "server_name",
                format!("{dialled:?} is not a DNS name or IP address"),
            )
        })?;
        Ok(ForwardTls {
            profile: profile.name.clone(),
            server_name,
        })
    }
}

/// One route, checked.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: RouteName,
    pub kind: RouteKind,
    pub listen: SocketAddr,
    pub listen_tls: Option<ListenTls>,
    /// `None` on `http` routes, whose rules name their upstreams.
    pub forward: Option<Target>,
    pub forward_tls: Option<ForwardTls>,
    pub limits: Limits,
}

impl RouteSpec {
    /// `plain`, `tls` or `mtls`, for the listen side.
    pub fn listen_mode(&self) -> &'static str {
        match &self.listen_tls {
            None => "plain",
            Some(ListenTls {
                auth: AuthSpec::NoClientCert,
                ..
            }) => "tls",
            Some(_) => "mtls",
        }
    }

    /// The delivery policy when this is a store-and-forward route.
    pub fn store_and_forward(&self) -> Option<ForwardPolicy> {
        match &self.kind {
            RouteKind::Mllp(MllpSettings {
                delivery: Delivery::StoreAndForward(policy),
                ..
            }) => Some(*policy),
            _ => None,
        }
    }

    /// The `http` settings when this is an `http` route.
    pub fn http(&self) -> Option<&Arc<HttpSpec>> {
        match &self.kind {
            RouteKind::Http(spec) => Some(spec),
            _ => None,
        }
    }

    /// Where the route forwards, for people: the target, or the upstreams
    /// of an `http` route's rules.
    pub fn forward_label(&self) -> String {
        match (&self.forward, self.http()) {
            (Some(target), _) => target.to_string(),
            (None, Some(http)) => {
                let mut origins: Vec<&str> =
                    http.rules.iter().map(|r| &*r.upstream.origin).collect();
                origins.dedup();
                origins.join(", ")
            }
            (None, None) => String::new(),
        }
    }

    pub fn forward_mode(&self) -> &'static str {
        if let Some(http) = self.http() {
            return match http
                .rules
                .iter()
                .filter(|r| r.upstream.tls.is_some())
                .count()
            {
                0 => "plain",
                n if n == http.rules.len() => "tls",
                _ => "mixed",
            };
        }
        if self.forward_tls.is_some() {
            "tls"
        } else {
            "plain"
        }
    }
}
