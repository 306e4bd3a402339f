//! The `http` route kind: an HTTPS reverse proxy whose rules, matched by
//! host and path prefix, each name an upstream and the applications they
//! admit.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::{Allowlist, AppName, AppRule, Identity, ServerName};

use super::raw::{RawRoute, RawRule};
use super::types::{ForwardTls, ProfileName, Target, TlsProfile};
use super::validation::{validation, Validation};
use super::{allowed_apps, check_name, choice, count, duration, in_range, SettingError};

/// What an `http` route does with each request.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub rules: Vec<HttpRule>,
    /// The forms in which the client certificate is described upstream.
    pub identity_headers: IdentityForms,
    /// Requests per second per application; `None`: no limit.
    pub rate: Option<RateLimit>,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    /// A request head must arrive whole within this (slow clients).
    pub header_timeout: Duration,
    /// The upstream must send its response head within this.
    pub response_timeout: Duration,
    /// Requests of this route in flight to its upstreams at once; more get
    /// 503 (each holds an upstream connection: sockets stay bounded).
    /// Fixed at start.
    pub max_upstream_requests: usize,
    pub access_log: AccessLog,
    /// Whether the access log keeps query strings (they may carry patient
    /// identifiers: off by default).
    pub query_in_log: bool,
}

/// Which identity header forms go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityForms {
    /// `X-Forwarded-Tls-Client-Cert-Info`, as Traefik writes it.
    pub traefik: bool,
    /// `x-forwarded-client-cert`, as Envoy writes it.
    pub envoy: bool,
}

/// A token bucket per application.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// Where the JSON access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    File(PathBuf),
}

/// A rule's name: unique in its route, safe in logs and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleName(Arc<str>);

impl RuleName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn new(name: &str) -> Self {
        RuleName(Arc::from(name))
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule: which requests it takes, where it sends them, whom it admits.
#[derive(Debug, Clone)]
pub struct HttpRule {
    pub name: RuleName,
    /// `name` as the value of the header that tells the upstream the
    /// rule, made once.
    pub name_header: http::HeaderValue,
    /// Lower case, without port; `None` matches any host.
    pub host: Option<String>,
    /// A path prefix, matched on segment boundaries.
    pub path: String,
    pub upstream: Upstream,
    pub allow: Allowlist,
    /// `validate`: the check of each request's body before it goes on.
    pub validation: Option<Arc<Validation>>,
}

impl HttpRule {
    /// Whether `path` is under this rule's prefix: `/ror/interop` takes
    /// `/ror/interop` and `/ror/interop/x`, never `/ror/interoperability`.
    ///
    /// A prefix with a trailing slash also takes the path without it
    /// (`/ror/internal/` takes `/ror/internal`): a broader rule must not
    /// serve what the upstream reads as the same place.
    pub fn takes_path(&self, path: &str) -> bool {
        let prefix = self.path.as_str();
        match path.strip_prefix(prefix) {
            None => prefix.len() > 1 && prefix.strip_suffix('/') == Some(path),
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }

    /// The application this rule admits for a certificate, if any.
    pub fn admit(&self, identity: &Identity) -> Option<&AppName> {
        self.allow.admit(identity)
    }
}

/// Where a rule sends its requests.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    /// Set for `https://` upstreams.
    pub tls: Option<ForwardTls>,
    /// With a path in the upstream URL (even `/`), it replaces the rule's
    /// prefix (`/ror/interop/x` to `/api/x`), as nginx's `proxy_pass` does;
    /// without, the path goes unchanged.
    pub base_path: Option<String>,
    /// `scheme://host:port` as configured, for logs and the access log.
    pub origin: Arc<str>,
    /// `token_url`: where guichet asks for the access token it sends as
    /// `Authorization: Bearer` (OAuth2 client credentials, the client
    /// authenticated by its certificate, RFC 8705), over the same TLS
    /// profile as the upstream.
    pub token: Option<Arc<Upstream>>,
}

impl Upstream {
    /// The `host:port` authority requests to this upstream carry.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub(super) const DEFAULT_MAX_HEADER: usize = 16 * 1024;
pub(super) const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
pub(super) const DEFAULT_MAX_UPSTREAM: usize = 1024;

/// Checks an `http` route's own settings and rules.
pub(super) fn http_spec(
    raw: &RawRoute,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    dir: &std::path::Path,
) -> Result<HttpSpec, SettingError> {
    let identity_headers = identity_forms(raw)?;
    let rate = rate_limit(raw)?;
    let max_header_bytes = match raw.max_header_bytes {
        None => DEFAULT_MAX_HEADER,
        Some(n) => in_range(n, "max_header_bytes", 1024..=1_048_576)? as usize,
    };
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY,
        Some(n) => in_range(n, "max_body_bytes", 0..=1_099_511_627_776)? as u64,
    };
    let access_log = access_log(raw, dir)?;
    let checked = rules(raw, profiles, apps, dir)?;
    Ok(HttpSpec {
        rules: checked,
        identity_headers,
        rate,
        max_header_bytes,
        max_body_bytes,
        header_timeout: duration(raw.header_timeout.as_deref(), "header_timeout")?
            .unwrap_or(Duration::from_secs(10)),
        max_upstream_requests: count(
            raw.max_upstream_requests,
            "max_upstream_requests",
            1_000_000,
        )?
        .unwrap_or(DEFAULT_MAX_UPSTREAM),
        response_timeout: duration(raw.response_timeout.as_deref(), "response_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        access_log,
        query_in_log: raw.query_in_log.unwrap_or(false),
    })
}

/// Which identity header forms an `http` route sets (both by default).
fn identity_forms(raw: &RawRoute) -> Result<IdentityForms, SettingError> {
    Ok(match &raw.identity_headers {
        None => IdentityForms {
            traefik: true,
            envoy: true,
        },
        Some(forms) => {
            let mut chosen = IdentityForms {
                traefik: false,
                envoy: false,
            };
            for form in forms {
                let traefik = choice(
                    Some(form.as_str()),
                    "identity_headers",
                    &[("traefik", true), ("envoy", false)],
                )?;
                if traefik {
                    chosen.traefik = true;
                } else {
                    chosen.envoy = true;
                }
            }
            chosen
        }
    })
}

/// The route's rate limit, checked, with its burst (the rate rounded up
/// by default).
fn rate_limit(raw: &RawRoute) -> Result<Option<RateLimit>, SettingError> {
    Ok(match (raw.rate_limit, raw.rate_burst) {
        (None, None) => None,
        (None, Some(_)) => return Err(SettingError::field("rate_burst", "needs rate_limit")),
        (Some(rate), burst) => {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
                return Err(SettingError::field(
                    "rate_limit",
                    format!(
                        "{rate} is out of range (requests per second, above 0, at most 1000000)"
                    ),
                ));
            }
            let burst = match burst {
                None => (rate.ceil() as u32).max(1),
                Some(b) => in_range(b, "rate_burst", 1..=1_000_000)? as u32,
            };
            Some(RateLimit {
                per_second: rate,
                burst,
            })
        }
    })
}

/// Where the access log goes: standard output, or a file relative to the
/// config's directory.
fn access_log(raw: &RawRoute, dir: &std::path::Path) -> Result<AccessLog, SettingError> {
    Ok(match raw.access_log.as_deref() {
        None | Some("-") => AccessLog::Stdout,
        Some("") => {
            return Err(SettingError::field(
                "access_log",
                "give a file, or \"-\" for standard output",
            ))
        }
        Some(file) => {
            let p = std::path::Path::new(file);
            AccessLog::File(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            })
        }
    })
}

/// The route's rules, each checked, with unique names and no two on the
/// same host and path.
fn rules(
    raw: &RawRoute,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    dir: &std::path::Path,
) -> Result<Vec<HttpRule>, SettingError> {
    let rules = raw.rule.as_deref().unwrap_or_default();
    if rules.is_empty() {
        return Err(SettingError::conflict(
            "an http route needs at least one [[route.rule]] (name, path, upstream, allow)",
        ));
    }
    let mut checked: Vec<HttpRule> = Vec::with_capacity(rules.len());
    for raw_rule in rules {
        let rule = http_rule(raw_rule, profiles, apps, dir)
            .map_err(|e| e.within(format!("rule {:?}", raw_rule.name)))?;
        if checked.iter().any(|r| r.name == rule.name) {
            return Err(SettingError::conflict(format!(
                "rule name {:?} is used twice",
                raw_rule.name
            )));
        }
        if let Some(same) = checked
            .iter()
            .find(|r| r.host == rule.host && r.path == rule.path)
        {
            return Err(SettingError::conflict(format!(
                "rules {:?} and {:?} match the same host and path: one would never be used",
                same.name.as_str(),
                raw_rule.name
            )));
        }
        checked.push(rule);
    }
    Ok(checked)
}

fn http_rule(
    raw: &RawRule,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    dir: &std::path::Path,
) -> Result<HttpRule, SettingError> {
    check_name(&raw.name, "name")?;
    let host = raw.host.as_deref().map(rule_host).transpose()?;
    let path = raw.path.clone();
    if !path.starts_with('/') || path.contains(['?', '#', '%', '\\']) || has_dot_segment(&path) {
        return Err(SettingError::field(
            "path",
            format!(
                "{path:?} must be a plain path prefix starting with \"/\" (e.g. \"/ror/interop/\")"
            ),
        ));
    }
    let upstream = upstream(raw, profiles)?;
    if raw.allow.is_empty() {
        return Err(SettingError::field(
            "allow",
            "list the [[app]] names this rule admits",
        ));
    }
    let rules = allowed_apps(&raw.allow, "allow", apps)?;
    Ok(HttpRule {
        name: RuleName(Arc::from(raw.name.as_str())),
        // `check_name` above keeps it to letters, digits and `-_.`.
        name_header: crate::http::headers::value(&raw.name),
        host,
        path,
        upstream,
        allow: Allowlist::new(rules),
        validation: validation(raw, dir)?.map(Arc::new),
    })
}

/// A rule's `host`: a host name, matched in lower case.
fn rule_host(host: &str) -> Result<String, SettingError> {
    let h = host.trim().to_ascii_lowercase();
    if h.is_empty() || h.contains(|c: char| !(c.is_ascii_alphanumeric() || "-.".contains(c))) {
        return Err(SettingError::field(
            "host",
            format!("{h:?} is not a host name (no port, no scheme; e.g. \"ror.example.org\")"),
        ));
    }
    Ok(h)
}

pub(super) fn upstream(
    raw: &RawRule,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
) -> Result<Upstream, SettingError> {
    let url = UpstreamUrl::parse(&raw.upstream, "upstream")?;
    let Target { host, port } = url.target()?;
    let base_path = url.base_path()?;
    let tls = upstream_tls(raw, url.https, &host, profiles)?;
    let token = token_url(raw, tls.as_ref())?;
    Ok(Upstream {
        origin: url.origin(),
        host,
        port,
        tls,
        base_path,
        token,
    })
}

/// `token_url`: an https URL, reached with the upstream's TLS profile
/// (whose certificate authenticates guichet to the token endpoint).
fn token_url(
    raw: &RawRule,
    tls: Option<&ForwardTls>,
) -> Result<Option<Arc<Upstream>>, SettingError> {
    let Some(written) = raw.token_url.as_deref() else {
        return Ok(None);
    };
    let field = "token_url";
    let url = UpstreamUrl::parse(written, field)?;
    let Some(tls) = tls.filter(|_| url.https) else {
        return Err(SettingError::field(
            field,
            "an access token is asked for over mutual TLS: both the upstream and the token URL must be https://",
        ));
    };
    let Target { host, port } = url.target()?;
    // On the upstream's host, the upstream's `server_name` holds too.
    let same_host = UpstreamUrl::parse(&raw.upstream, "upstream")?
        .target()?
        .host
        == host;
    let server_name = match same_host {
        true => tls.server_name.clone(),
        false => ServerName::try_from(host.clone()).map_err(|_| {
            SettingError::field(field, format!("{host:?} is not a DNS name or IP address"))
        })?,
    };
    Ok(Some(Arc::new(Upstream {
        origin: url.origin(),
        base_path: Some(url.path.unwrap_or("/").to_string()),
        tls: Some(ForwardTls {
            profile: tls.profile.clone(),
            server_name,
        }),
        host,
        port,
        token: None,
    })))
}

/// A rule's `upstream` URL cut into its parts: `http://` or `https://`,
/// an authority without user, then an optional path; no query, no
/// fragment.
struct UpstreamUrl<'a> {
    url: &'a str,
    /// The setting that gave it, for errors.
    field: &'static str,
    https: bool,
    /// `host` or `host:port`, as written.
    authority: &'a str,
    /// From the first `/` after the authority, when there is one.
    path: Option<&'a str>,
}

impl<'a> UpstreamUrl<'a> {
    fn parse(url: &'a str, field: &'static str) -> Result<Self, SettingError> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(not_an_upstream_url(url, field));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if authority.contains('@') || rest.contains(['?', '#']) {
            return Err(SettingError::field(
                field,
                format!("{url:?}: no user, query or fragment in the URL"),
            ));
        }
        Ok(UpstreamUrl {
            url,
            field,
            https,
            authority,
            path,
        })
    }

    /// Host and port, the scheme's default port when none is written.
    fn target(&self) -> Result<Target, SettingError> {
        let authority = self.authority;
        let with_port = authority
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.starts_with('[') || h.ends_with(']'));
        let written = if with_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if self.https { 443 } else { 80 })
        };
        written
            .parse()
            .map_err(|_| not_an_upstream_url(self.url, self.field))
    }

    /// The path that replaces the rule's prefix, when the URL has one:
    /// plain, without escapes or dot segments.
    fn base_path(&self) -> Result<Option<String>, SettingError> {
        let Some(p) = self.path else {
            return Ok(None);
        };
        if p.contains(['%', '\\']) || has_dot_segment(p) {
            return Err(SettingError::field(
                self.field,
                format!("{:?}: the path must be plain", self.url),
            ));
        }
        Ok(Some(p.to_string()))
    }

    /// `scheme://authority`, for logs.
    fn origin(&self) -> Arc<str> {
        let scheme = if self.https { "https" } else { "http" };
        Arc::from(format!("{scheme}://{}", self.authority))
    }
}

fn not_an_upstream_url(url: &str, field: &'static str) -> SettingError {
    SettingError::field(
        field,
        format!("{url:?} is not an http:// or https:// URL (e.g. \"http://127.0.0.1:18081\")"),
    )
}

/// An `https://` upstream's TLS: a profile with the `ca` that verifies
/// it, and the name it must present (`server_name`, else the URL's host).
/// An `http://` upstream takes neither.
fn upstream_tls(
    raw: &RawRule,
    https: bool,
    host: &str,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
) -> Result<Option<ForwardTls>, SettingError> {
    let name =
        match (&raw.upstream_tls, https) {
            (None, false) if raw.server_name.is_some() => {
                return Err(SettingError::field(
                    "server_name",
                    "only for https:// upstreams",
                ))
            }
            (None, false) => return Ok(None),
            (Some(_), false) => {
                return Err(SettingError::field(
                    "upstream_tls",
                    "the upstream is http://; use an https:// URL",
                ))
            }
            (None, true) => return Err(SettingError::field(
                "upstream_tls",
                "an https:// upstream needs a [tls.NAME] profile with the `ca` that verifies it",
            )),
            (Some(name), true) => name,
        };
    let server_name = raw.server_name.as_deref();
    let field = ("upstream_tls", name.as_str());
    ForwardTls::checked(profiles, field, "upstream", server_name, host).map(Some)
}

/// Whether a path holds a `.` or `..` segment.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

/// Fields that only mean something on `http` routes.
pub(super) fn http_only_fields(raw: &RawRoute) -> Option<&'static str> {
    [
        ("rule", raw.rule.is_some()),
        ("identity_headers", raw.identity_headers.is_some()),
        ("rate_limit", raw.rate_limit.is_some()),
        ("rate_burst", raw.rate_burst.is_some()),
        ("max_header_bytes", raw.max_header_bytes.is_some()),
        ("max_body_bytes", raw.max_body_bytes.is_some()),
        ("header_timeout", raw.header_timeout.is_some()),
        ("response_timeout", raw.response_timeout.is_some()),
        ("max_upstream_requests", raw.max_upstream_requests.is_some()),
        ("access_log", raw.access_log.is_some()),
        ("query_in_log", raw.query_in_log.is_some()),
    ]
    .into_iter()
    .find(|(_, set)| *set)
    .map(|(field, _)| field)
}
