//! The config file as written: serde structures, nothing checked yet.
//!
//! `deny_unknown_fields` everywhere: a misspelt key is an error, never a
//! silently ignored security setting.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub gateway: RawGateway,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub defaults: RawLimits,
    #[serde(default)]
    pub tls: BTreeMap<String, RawProfile>,
    #[serde(default)]
    pub app: Vec<RawApp>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    pub journal: Option<RawJournal>,
    pub observe: Option<RawObserve>,
    pub map: Option<RawMap>,
}

/// `[map]`: the map of the information system, served live by the
/// admin listener at `/map`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMap {
    /// it-lanscape's data folder.
    pub data: String,
    /// The mapping file of observed parties to trigrammes.
    pub mapping: Option<String>,
    /// `fr` (default) or `en`: the language the page opens in.
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    pub enabled: Option<bool>,
    pub flush: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub store: String,
    pub node: Option<String>,
    pub lease_timeout: Option<String>,
    pub body_key: Option<String>,
    pub retain_bodies: Option<String>,
    pub retain_events: Option<String>,
    pub prune_interval: Option<String>,
    pub ingest_connections: Option<i64>,
    pub integrity_check: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub name: Option<String>,
    pub drain_timeout: Option<String>,
    pub watch_interval: Option<String>,
    pub workers: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    /// A `[tls.NAME]` profile: the admin listener serves HTTPS with it.
    pub tls: Option<String>,
    /// `[[app]]` names whose client certificate opens the admin listener.
    pub allow: Option<Vec<String>>,
    /// A file (mode 0600) holding the bearer token requests must carry.
    pub token_file: Option<String>,
    /// Serve unprotected off loopback anyway (an explicit choice).
    pub insecure: Option<bool>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub connect_timeout: Option<String>,
    pub handshake_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub max_handshakes: Option<i64>,
    pub max_connections_per_source: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Password of a PKCS#12 `cert`, in a file or an environment variable.
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca: Option<String>,
    #[serde(default)]
    pub crl: Vec<String>,
    pub min_version: Option<String>,
    pub crl_scope: Option<String>,
    pub crl_unknown: Option<String>,
    /// `off` (default), `soft` or `hard`.
    pub ocsp: Option<String>,
    /// Responder asked instead of the one certificates name.
    pub ocsp_url: Option<String>,
    /// `refuse` (default) or `warn`: a CRL past its nextUpdate.
    pub crl_expired: Option<String>,
    /// CRLs fetched over HTTP(S) at start and every `crl_refresh`.
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// Fetch the CRLs named in the CA's and peers' distribution points.
    pub crl_from_certificates: Option<bool>,
    pub crl_refresh: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: String,
    pub cn: Option<String>,
    pub o: Option<String>,
    pub ou: Option<String>,
    pub issuer_cn: Option<String>,
    pub issuer_dn: Option<String>,
    pub san_dns: Option<String>,
    pub san_uri: Option<String>,
    pub fingerprint: Option<String>,
    pub spki: Option<String>,
    /// Free text for people (who the partner is); not used for matching.
    #[allow(dead_code)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub kind: Option<String>,
    /// Every kind but `folder`.
    pub listen: Option<String>,
    pub listen_tls: Option<String>,
    pub client_auth: Option<String>,
    pub allow: Option<Vec<String>>,
    /// `tcp` and `mllp` routes; `http` routes name upstreams per rule.
    pub forward: Option<String>,
    pub forward_tls: Option<String>,
    pub server_name: Option<String>,
    pub connect_timeout: Option<String>,
    pub handshake_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub max_handshakes: Option<i64>,
    pub max_connections_per_source: Option<i64>,
    /// `mllp` routes only.
    pub max_frame_bytes: Option<i64>,
    pub non_hl7: Option<String>,
    pub ack_timeout: Option<String>,
    /// `mllp` routes: a started frame must end within this (default 30s).
    pub frame_timeout: Option<String>,
    /// `mllp` routes: "passthrough" (default) or "store-and-forward".
    pub delivery: Option<String>,
    /// Store-and-forward routes only.
    pub retry_initial: Option<String>,
    pub retry_max: Option<String>,
    pub ae_retries: Option<i64>,
    pub duplicate_window: Option<String>,
    /// `http` routes only.
    pub rule: Option<Vec<RawRule>>,
    pub identity_headers: Option<Vec<String>>,
    pub rate_limit: Option<f64>,
    pub rate_burst: Option<i64>,
    pub max_header_bytes: Option<i64>,
    pub max_body_bytes: Option<i64>,
    pub header_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub max_upstream_requests: Option<i64>,
    pub access_log: Option<String>,
    pub query_in_log: Option<bool>,
    /// `folder` routes only; `upstream` to `convert` as on a rule.
    pub inbox: Option<String>,
    pub done: Option<String>,
    pub rejected: Option<String>,
    pub upstream: Option<String>,
    pub upstream_tls: Option<String>,
    pub token_url: Option<String>,
    pub validate: Option<String>,
    pub referential: Option<String>,
    pub rules: Option<String>,
    pub indicators: Option<String>,
    pub convert: Option<String>,
    pub poll_interval: Option<String>,
    pub settle_time: Option<String>,
    pub max_file_bytes: Option<i64>,
}

/// One `[[route.rule]]` of an `http` route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub host: Option<String>,
    pub path: String,
    pub upstream: String,
    pub upstream_tls: Option<String>,
    pub server_name: Option<String>,
    /// Where an https upstream's access token is asked for (OAuth2 client
    /// credentials over mutual TLS).
    pub token_url: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    /// `bed-availability`: check each request's body before it goes on.
    pub validate: Option<String>,
    pub referential: Option<String>,
    pub rules: Option<String>,
    pub indicators: Option<String>,
    pub convert: Option<String>,
}

impl RawRoute {
    /// The route's own limits (serde's `flatten` would lose
    /// `deny_unknown_fields`, so they are spelled out above).
    pub fn limits(&self) -> RawLimits {
        RawLimits {
            connect_timeout: self.connect_timeout.clone(),
            handshake_timeout: self.handshake_timeout.clone(),
            idle_timeout: self.idle_timeout.clone(),
            max_connections: self.max_connections,
            max_handshakes: self.max_handshakes,
            max_connections_per_source: self.max_connections_per_source,
        }
    }
}

impl RawLimits {
    /// These keys, each falling back to `defaults`' when absent.
    pub fn over(self, defaults: &RawLimits) -> RawLimits {
        RawLimits {
            connect_timeout: self
                .connect_timeout
                .or_else(|| defaults.connect_timeout.clone()),
            handshake_timeout: self
                .handshake_timeout
                .or_else(|| defaults.handshake_timeout.clone()),
            idle_timeout: self.idle_timeout.or_else(|| defaults.idle_timeout.clone()),
            max_connections: self.max_connections.or(defaults.max_connections),
            max_handshakes: self.max_handshakes.or(defaults.max_handshakes),
            max_connections_per_source: self
                .max_connections_per_source
                .or(defaults.max_connections_per_source),
        }
    }
}
