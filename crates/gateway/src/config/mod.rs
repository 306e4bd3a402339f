//! The gateway's configuration: one TOML file, many routes.
//!
//! [`Config::load`] turns the file into typed, cross-checked values once;
//! the rest of the gateway never sees a raw string. Every error names the
//! file and the field (serde's own errors add the line and column).

mod error;
mod folder;
mod http;
mod ocsp;
mod own_cert;
mod raw;
mod types;
mod validation;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use guichet_tls::{
    AppName, AppRule, ClientAuth, CrlExpired, DistinguishedName, Fingerprint, MinVersion,
    ProfileFiles, RevocationPolicy, SpkiPin, TlsSettings,
};

pub use error::{ConfigError, Problem, SettingError};
pub use folder::{FolderSpec, FOLDER};
pub use http::{
    has_dot_segment, AccessLog, HttpRule, HttpSpec, IdentityForms, RateLimit, RuleName, Upstream,
};
pub use types::{
    AdminSpec, AuthSpec, CrlFetch, Delivery, ForwardPolicy, ForwardTls, JournalSpec, Limits,
    ListenTls, MapLang, MapSpec, MllpSettings, NonHl7Policy, NotHostPort, ProfileName,
    RevocationSource, RouteKind, RouteName, RouteSpec, Target, TlsProfile,
};
pub use validation::{Convert, Validation, BED_AVAILABILITY};

use raw::{
    RawAdmin, RawApp, RawConfig, RawJournal, RawLimits, RawMap, RawObserve, RawProfile, RawRoute,
};

/// A whole, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths inside are resolved
    /// against its directory.
    pub source: PathBuf,
    /// `[gateway] name`: what people call this gateway ("EAI side"); it
    /// titles the status page.
    pub name: Option<String>,
    pub drain_timeout: Duration,
    /// How often referenced files are checked for changes; zero disables.
    pub watch_interval: Duration,
    /// Threads serving connections; `None`: one per CPU.
    pub workers: Option<usize>,
    /// The admin server (metrics, health, status page): where it listens
    /// and how it is protected.
    pub admin: Option<AdminSpec>,
    pub profiles: BTreeMap<ProfileName, TlsProfile>,
    pub apps: BTreeMap<AppName, Arc<AppRule>>,
    pub routes: Vec<RouteSpec>,
    /// The `kind = "folder"` routes, which listen on nothing.
    pub folders: Vec<FolderSpec>,
    /// Where store-and-forward and folder routes keep messages; required
    /// when one route uses it.
    pub journal: Option<JournalSpec>,
    /// How often observed flows are added to the journal; `None`: flows
    /// are not observed (no journal, or `[observe] enabled = false`).
    pub observe: Option<Duration>,
    /// The map served live at the admin listener's `/map`.
    pub map: Option<MapSpec>,
}

/// Default `[observe] flush`: a few seconds of figures at risk in a
/// crash, one small write per interval.
const DEFAULT_OBSERVE_FLUSH: Duration = Duration::from_secs(5);

/// Defaults of the limits; the two budgets are derived from the route's
/// own `max_connections` unless set (see [`Limits::default_max_handshakes`]).
const DEFAULT_LIMITS: Limits = Limits {
    connect_timeout: Duration::from_secs(5),
    handshake_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(600),
    max_connections: 512,
    max_handshakes: 128,
    max_connections_per_source: 64,
};

impl Config {
    /// Reads and checks a config file. Certificate files are not opened
    /// here (see `material`), only named.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            problem: Problem::Read(e),
        })?;
        Self::parse(path, &text)
    }

    /// Checks `text` as if it were the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let fail = |problem| ConfigError {
            file: path.to_path_buf(),
            problem,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| fail(Problem::Syntax(e)))?;
        Builder::new(path)
            .build(raw)
            .map_err(|e| fail(Problem::Setting(e)))
    }

    /// Every file the configuration depends on, the config file first.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.source.clone()];
        for profile in self.profiles.values() {
            let f = &profile.files;
            files.extend(
                f.cert
                    .iter()
                    .chain(&f.key)
                    .chain(&f.ca)
                    .chain(&f.crls)
                    .cloned(),
            );
            files.extend(f.password.as_ref().and_then(|p| p.file()).map(Into::into));
        }
        files
    }

    pub fn route(&self, name: &str) -> Option<&RouteSpec> {
        self.routes.iter().find(|r| r.name.as_str() == name)
    }
}

struct Builder {
    dir: PathBuf,
    source: PathBuf,
}

impl Builder {
    fn new(path: &Path) -> Self {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Builder {
            dir,
            source: path.to_path_buf(),
        }
    }

    fn build(&self, raw: RawConfig) -> Result<Config, SettingError> {
        // Checked once here so a mistake names `[defaults]`; each route
        // then merges its own keys over these.
        limits(&raw.defaults, "[defaults]")?;
        let profiles = self.profiles(&raw.tls)?;
        let apps = apps(&raw.app)?;
        let (routes, folders) = self.routes(&raw.route, &raw.defaults, &profiles, &apps)?;
        let journal = raw.journal.as_ref().map(|j| self.journal(j)).transpose()?;
        if journal.is_none() {
            if let Some(route) = routes.iter().find(|r| r.store_and_forward().is_some()) {
                return Err(SettingError::conflict(
                    "delivery = \"store-and-forward\" needs a [journal] section (e.g. store = \"journal.db\")",
                )
                .within(format!("route {:?}", route.name.as_str())));
            }
            if let Some(folder) = folders.first() {
                return Err(SettingError::conflict(
                    "a folder route keeps each file's state in the journal: add a [journal] section (e.g. store = \"journal.db\")",
                )
                .within(format!("route {:?}", folder.name.as_str())));
            }
        }
        let observe = observe(raw.observe.as_ref(), journal.is_some())?;
        let map = raw
            .map
            .as_ref()
            .map(|m| self.map(m, raw.admin.is_some()))
            .transpose()?;
        Ok(Config {
            journal,
            observe,
            map,
            source: self.source.clone(),
            name: gateway_name(raw.gateway.name.as_deref())?,
            drain_timeout: duration(
                raw.gateway.drain_timeout.as_deref(),
                "[gateway] drain_timeout",
            )?
            .unwrap_or(Duration::from_secs(30)),
            watch_interval: raw
                .gateway
                .watch_interval
                .as_deref()
                .map(|v| parse_duration(v, "[gateway] watch_interval", true))
                .transpose()?
                .unwrap_or(Duration::from_secs(2)),
            workers: count(raw.gateway.workers, "[gateway] workers", 256)?,
            admin: raw
                .admin
                .as_ref()
                .map(|a| self.admin(a, &profiles, &apps))
                .transpose()?,
            profiles,
            apps,
            routes,
            folders,
        })
    }

    /// The `[tls.NAME]` profiles, by name.
    fn profiles(
        &self,
        raw: &BTreeMap<String, RawProfile>,
    ) -> Result<BTreeMap<ProfileName, TlsProfile>, SettingError> {
        let mut profiles = BTreeMap::new();
        for (name, profile) in raw {
            check_name(name, "[tls.NAME]")?;
            let profile = self.profile(name, profile)?;
            profiles.insert(profile.name.clone(), profile);
        }
        Ok(profiles)
    }

    /// The `[[route]]` tables, with unique names and listen addresses:
    /// the listening routes, then the folder routes.
    fn routes(
        &self,
        raw: &[RawRoute],
        defaults: &RawLimits,
        profiles: &BTreeMap<ProfileName, TlsProfile>,
        apps: &BTreeMap<AppName, Arc<AppRule>>,
    ) -> Result<(Vec<RouteSpec>, Vec<FolderSpec>), SettingError> {
        let (mut routes, mut folders) = (Vec::new(), Vec::new());
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        for raw_route in raw {
            let within = |e: SettingError| e.within(format!("route {:?}", raw_route.name));
            let name = if raw_route.kind.as_deref() == Some(FOLDER) {
                let folder = folder::folder_spec(raw_route, defaults, profiles, &self.dir)
                    .map_err(within)?;
                folders.push(folder);
                folders[folders.len() - 1].name.clone()
            } else {
                let route =
                    route(raw_route, defaults, profiles, apps, &self.dir).map_err(within)?;
                // Port 0 (any free port, used by tests) may repeat.
                if route.listen.port() != 0 && !addrs.insert(route.listen) {
                    return Err(within(SettingError::conflict(format!(
                        "listen address {} is already used by another route",
                        route.listen
                    ))));
                }
                routes.push(route);
                routes[routes.len() - 1].name.clone()
            };
            if !names.insert(name) {
                return Err(SettingError::conflict(format!(
                    "route name {:?} is used twice",
                    raw_route.name
                )));
            }
        }
        if routes.is_empty() && folders.is_empty() {
            return Err(SettingError::conflict(
                "no [[route]] defined: nothing to run",
            ));
        }
        Ok((routes, folders))
    }

    fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn admin(
        &self,
        raw: &RawAdmin,
        profiles: &BTreeMap<ProfileName, TlsProfile>,
        apps: &BTreeMap<AppName, Arc<AppRule>>,
    ) -> Result<AdminSpec, SettingError> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            SettingError::field(
                "[admin] listen",
                format!(
                    "{:?} is not an IP:port address (e.g. \"127.0.0.1:9010\")",
                    raw.listen
                ),
            )
        })?;
        let tls = match (&raw.tls, &raw.allow) {
            (None, Some(_)) => {
                return Err(SettingError::field(
                    "[admin] allow",
                    "client certificates need `tls = \"PROFILE\"`",
                ))
            }
            (None, None) => None,
            (Some(name), allow) => Some(admin_tls(name, allow.as_deref(), profiles, apps)?),
        };
        let token_file = match raw.token_file.as_deref() {
            Some("") => {
                return Err(SettingError::field(
                    "[admin] token_file",
                    "give the path of the token's file",
                ))
            }
            other => other.map(|v| self.path(v)),
        };
        Ok(AdminSpec {
            listen,
            tls,
            token_file,
            insecure: raw.insecure.unwrap_or(false),
        })
    }

    /// `[map]`: served by the admin listener, so without one it is a
    /// mistake to say.
    fn map(&self, raw: &RawMap, admin: bool) -> Result<MapSpec, SettingError> {
        if !admin {
            return Err(SettingError::conflict(
                "the map is served by the admin listener at /map: add an [admin] section (e.g. listen = \"127.0.0.1:9010\"), or build it with `guichet map build`",
            )
            .within("[map]"));
        }
        let path = |value: &str, field: &str| {
            if value.trim().is_empty() {
                Err(SettingError::field(field, "give a path"))
            } else {
                Ok(self.path(value))
            }
        };
        let lang = match raw.lang.as_deref() {
            None | Some("fr") => MapLang::Fr,
            Some("en") => MapLang::En,
            Some(other) => {
                return Err(SettingError::field(
                    "[map] lang",
                    format!("{other:?}: \"fr\" or \"en\""),
                ))
            }
        };
        Ok(MapSpec {
            data: path(&raw.data, "[map] data")?,
            mapping: raw
                .mapping
                .as_deref()
                .map(|m| path(m, "[map] mapping"))
                .transpose()?,
            lang,
        })
    }

    fn journal(&self, raw: &RawJournal) -> Result<JournalSpec, SettingError> {
        let at = |field: &str| format!("[journal] {field}");
        if raw.store.trim().is_empty() {
            return Err(SettingError::field(
                at("store"),
                "give a SQLite file (e.g. \"journal.db\") or a postgres:// URL",
            ));
        }
        let node = raw.node.clone().unwrap_or_else(default_node);
        check_name(&node, &at("node"))?;
        let lease_timeout = duration(raw.lease_timeout.as_deref(), &at("lease_timeout"))?
            .unwrap_or(Duration::from_secs(15));
        if lease_timeout < Duration::from_secs(2) {
            return Err(SettingError::field(
                at("lease_timeout"),
                "at least 2s (it is renewed every third of it)",
            ));
        }
        let store = guichet_journal::StoreSpec::parse(&raw.store, &self.dir);
        let ingest_connections = count(raw.ingest_connections, &at("ingest_connections"), 16)?;
        if ingest_connections.is_some() && matches!(store, guichet_journal::StoreSpec::Sqlite(_)) {
            return Err(SettingError::field(
                at("ingest_connections"),
                "only for a postgres:// store: a SQLite journal has one writer",
            ));
        }
        let day = Duration::from_secs(86_400);
        let integrity_check = choice(
            raw.integrity_check.as_deref(),
            &at("integrity_check"),
            &[
                ("at-open", guichet_journal::IntegrityCheck::AtOpen),
                ("background", guichet_journal::IntegrityCheck::Background),
            ],
        )?;
        Ok(JournalSpec {
            store,
            node,
            lease_timeout,
            body_key: raw.body_key.as_deref().map(|v| self.path(v)),
            retain_bodies: duration(raw.retain_bodies.as_deref(), &at("retain_bodies"))?
                .unwrap_or(7 * day),
            retain_events: duration(raw.retain_events.as_deref(), &at("retain_events"))?
                .unwrap_or(400 * day),
            prune_interval: duration(raw.prune_interval.as_deref(), &at("prune_interval"))?
                .unwrap_or(Duration::from_secs(3600)),
            ingest_connections: ingest_connections.unwrap_or(1),
            integrity_check,
        })
    }

    fn profile(&self, name: &str, raw: &RawProfile) -> Result<TlsProfile, SettingError> {
        let at = |field: &str| format!("[tls.{name}] {field}");
        let min_version = choice(
            raw.min_version.as_deref(),
            &at("min_version"),
            &[("1.2", MinVersion::Tls12), ("1.3", MinVersion::Tls13)],
        )?;
        let whole_chain = choice(
            raw.crl_scope.as_deref(),
            &at("crl_scope"),
            &[("end-entity", false), ("chain", true)],
        )?;
        let allow_unknown = choice(
            raw.crl_unknown.as_deref(),
            &at("crl_unknown"),
            &[("refuse", false), ("allow", true)],
        )?;
        let password = self.own_cert(name, raw)?;
        let expired = choice(
            raw.crl_expired.as_deref(),
            &at("crl_expired"),
            &[("refuse", CrlExpired::Refuse), ("warn", CrlExpired::Warn)],
        )?;
        if !raw.crl.is_empty() && raw.ca.is_none() {
            return Err(SettingError::field(
                at("crl"),
                "CRLs are only used with a `ca` bundle",
            ));
        }
        let crl_fetch = crl_fetch(raw, &at)?;
        Ok(TlsProfile {
            name: ProfileName::new(name),
            files: ProfileFiles {
                cert: raw.cert.as_deref().map(|v| self.path(v)),
                key: raw.key.as_deref().map(|v| self.path(v)),
                password,
                ca: raw.ca.as_deref().map(|v| self.path(v)),
                crls: raw.crl.iter().map(|v| self.path(v)).collect(),
            },
            settings: TlsSettings {
                min_version,
                revocation: RevocationPolicy {
                    whole_chain,
                    allow_unknown,
                    expired,
                },
            },
            ocsp: ocsp::policy(name, raw)?,
            crl_fetch,
        })
    }
}

/// Default `crl_refresh`: CRLs are published daily, so an hour keeps a
/// revocation at most an hour away from the gateway.
const DEFAULT_CRL_REFRESH: Duration = Duration::from_secs(3600);

fn crl_fetch(raw: &RawProfile, at: &dyn Fn(&str) -> String) -> Result<CrlFetch, SettingError> {
    let from_certificates = raw.crl_from_certificates.unwrap_or(false);
    if (!raw.crl_urls.is_empty() || from_certificates) && raw.ca.is_none() {
        return Err(SettingError::field(
            at(if raw.crl_urls.is_empty() {
                "crl_from_certificates"
            } else {
                "crl_urls"
            }),
            "fetched CRLs are verified against the profile's `ca` bundle; add `ca`",
        ));
    }
    for url in &raw.crl_urls {
        check_crl_url(url)
            .map_err(|why| SettingError::field(at("crl_urls"), format!("{url:?} {why}")))?;
    }
    let refresh =
        duration(raw.crl_refresh.as_deref(), &at("crl_refresh"))?.unwrap_or(DEFAULT_CRL_REFRESH);
    if refresh < Duration::from_secs(1) {
        return Err(SettingError::field(
            at("crl_refresh"),
            "must be at least 1s",
        ));
    }
    Ok(CrlFetch {
        urls: raw.crl_urls.clone(),
        from_certificates,
        refresh,
    })
}

/// An absolute `http://` or `https://` URL with a host.
fn check_crl_url(url: &str) -> Result<(), &'static str> {
    let uri: ::http::Uri = url.parse().map_err(|_| "is not a valid URL")?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(()),
        _ => Err("is not an http:// or https:// URL with a host"),
    }
}

/// The host's name: unique per node in most deployments.
fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| check_name(h, "").is_ok())
        .unwrap_or_else(|| "guichet".to_string())
}

/// One of a fixed set of words; absent means the first.
fn choice<T: Copy>(
    value: Option<&str>,
    field: &str,
    options: &[(&str, T)],
) -> Result<T, SettingError> {
    let Some(value) = value else {
        return Ok(options[0].1);
    };
    options
        .iter()
        .find(|(word, _)| *word == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
            SettingError::field(
                field,
                format!("{value:?} is not allowed; use {}", words.join(" or ")),
            )
        })
}

/// Route, app and profile names appear in logs and metric labels: keep
/// them to a safe alphabet.
fn check_name(name: &str, what: &str) -> Result<(), SettingError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SettingError::field(
            what,
            format!("name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _ ."),
        ))
    }
}

fn parse_duration(value: &str, field: &str, zero_ok: bool) -> Result<Duration, SettingError> {
    let d = humantime::parse_duration(value).map_err(|e| {
        SettingError::field(
            field,
            format!("{value:?} is not a duration ({e}); write e.g. \"10s\", \"5m\", \"1h\""),
        )
    })?;
    if d.is_zero() && !zero_ok {
        return Err(SettingError::field(field, "must be greater than zero"));
    }
    Ok(d)
}

/// Observation is on wherever a journal keeps its aggregates, unless
/// disabled; asked for without a journal, it is a mistake to say.
fn observe(raw: Option<&RawObserve>, journal: bool) -> Result<Option<Duration>, SettingError> {
    let enabled = raw.and_then(|r| r.enabled);
    let flush = duration(raw.and_then(|r| r.flush.as_deref()), "[observe] flush")?
        .unwrap_or(DEFAULT_OBSERVE_FLUSH);
    if flush < Duration::from_secs(1) || flush > Duration::from_secs(3600) {
        return Err(SettingError::field(
            "[observe] flush",
            "between 1s and 1h (e.g. \"5s\")",
        ));
    }
    match (enabled, journal) {
        (Some(false), _) | (None, false) => Ok(None),
        (Some(true) | None, true) => Ok(Some(flush)),
        (Some(true), false) => Err(SettingError::conflict(
            "observed flows are kept in the journal: add a [journal] section (e.g. store = \"journal.db\") or set enabled = false",
        )
        .within("[observe]")),
    }
}

fn duration(value: Option<&str>, field: &str) -> Result<Option<Duration>, SettingError> {
    value.map(|v| parse_duration(v, field, false)).transpose()
}

fn limits(raw: &RawLimits, at: &str) -> Result<Limits, SettingError> {
    let field = |f: &str| match at {
        "" => f.to_string(),
        at => format!("{at} {f}"),
    };
    let base = &DEFAULT_LIMITS;
    let max_connections = count(raw.max_connections, &field("max_connections"), 1_000_000)?
        .unwrap_or(base.max_connections);
    let budget = |value, name: &str, default: fn(usize) -> usize| -> Result<usize, SettingError> {
        let n = count(value, &field(name), 1_000_000)?.unwrap_or(default(max_connections));
        if n > max_connections {
            return Err(SettingError::field(
                field(name),
                format!("{n} is more than max_connections ({max_connections}), so it would limit nothing; lower it or raise max_connections"),
            ));
        }
        Ok(n)
    };
    Ok(Limits {
        connect_timeout: duration(raw.connect_timeout.as_deref(), &field("connect_timeout"))?
            .unwrap_or(base.connect_timeout),
        handshake_timeout: duration(
            raw.handshake_timeout.as_deref(),
            &field("handshake_timeout"),
        )?
        .unwrap_or(base.handshake_timeout),
        idle_timeout: duration(raw.idle_timeout.as_deref(), &field("idle_timeout"))?
            .unwrap_or(base.idle_timeout),
        max_connections,
        max_handshakes: budget(
            raw.max_handshakes,
            "max_handshakes",
            Limits::default_max_handshakes,
        )?,
        max_connections_per_source: budget(
            raw.max_connections_per_source,
            "max_connections_per_source",
            Limits::default_max_connections_per_source,
        )?,
    })
}

/// A count in `1..=max`, when given.
pub(super) fn count(
    value: Option<i64>,
    field: &str,
    max: i64,
) -> Result<Option<usize>, SettingError> {
    value
        .map(|n| in_range(n, field, 1..=max).map(|n| n as usize))
        .transpose()
}

/// `[gateway] name`: one line of at most 64 characters.
fn gateway_name(name: Option<&str>) -> Result<Option<String>, SettingError> {
    let Some(name) = name else {
        return Ok(None);
    };
    let trimmed = name.trim();
    let why = if trimmed.is_empty() {
        "is empty; give what people call this gateway (e.g. \"EAI side\"), or leave it out"
    } else if trimmed.chars().count() > 64 {
        "is longer than 64 characters"
    } else if trimmed.chars().any(char::is_control) {
        "holds a control character (a line break, a tab...)"
    } else {
        return Ok(Some(trimmed.to_string()));
    };
    Err(SettingError::field(
        "[gateway] name",
        format!("{name:?} {why}"),
    ))
}

/// `value` if it lies in `range`; otherwise the error every numeric
/// setting gives, naming the field, the value and the range.
pub(super) fn in_range(
    value: i64,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, SettingError> {
    if range.contains(&value) {
        return Ok(value);
    }
    let (low, high) = (range.start(), range.end());
    Err(SettingError::field(
        field,
        format!("{value} is out of range {low}..={high}"),
    ))
}

/// The `[[app]]` tables, by name.
fn apps(raw: &[RawApp]) -> Result<BTreeMap<AppName, Arc<AppRule>>, SettingError> {
    let mut apps = BTreeMap::new();
    for (i, app) in raw.iter().enumerate() {
        let rule =
            app_rule(app).map_err(|e| e.within(format!("[[app]] #{} ({:?})", i + 1, app.name)))?;
        if apps.insert(rule.name.clone(), Arc::new(rule)).is_some() {
            return Err(SettingError::conflict(format!(
                "[[app]] name {:?} is defined twice",
                app.name
            )));
        }
    }
    Ok(apps)
}

fn app_rule(raw: &RawApp) -> Result<AppRule, SettingError> {
    check_name(&raw.name, "name")?;
    let mut rule = AppRule::named(AppName::new(&raw.name));
    rule.cn = raw.cn.clone();
    rule.o = raw.o.clone();
    rule.ou = raw.ou.clone();
    rule.issuer_cn = raw.issuer_cn.clone();
    rule.issuer_dn = raw
        .issuer_dn
        .as_deref()
        .map(str::parse::<DistinguishedName>)
        .transpose()
        .map_err(|e| SettingError::field("issuer_dn", e.to_string()))?;
    rule.san_dns = raw.san_dns.clone();
    rule.san_uri = raw.san_uri.clone();
    rule.fingerprint = raw
        .fingerprint
        .as_deref()
        .map(str::parse::<Fingerprint>)
        .transpose()
        .map_err(|e| SettingError::field("fingerprint", e.to_string()))?;
    rule.spki = raw
        .spki
        .as_deref()
        .map(str::parse::<SpkiPin>)
        .transpose()
        .map_err(|e| SettingError::field("spki", e.to_string()))?;
    if !rule.has_criteria() {
        return Err(SettingError::conflict(
            "no criterion: give at least one of cn, o, ou, issuer_cn, issuer_dn, san_dns, san_uri, fingerprint, spki",
        ));
    }
    Ok(rule)
}

fn route(
    raw: &RawRoute,
    defaults: &RawLimits,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    dir: &Path,
) -> Result<RouteSpec, SettingError> {
    check_name(&raw.name, "name")?;
    if let Some(field) = folder::folder_field(raw) {
        return Err(SettingError::field(
            field,
            "only for kind = \"folder\" routes (an http route sets it per [[route.rule]])",
        ));
    }
    let kind = route_kind(raw, profiles, apps, dir)?;
    let is_http = matches!(kind, RouteKind::Http(_));
    let listen = listen_addr(raw)?;
    let forward = forward_target(raw, is_http)?;
    let listen_tls = listen_tls(raw, profiles, apps, is_http)?;
    let forward_tls = forward_tls(raw, profiles, forward.as_ref(), is_http)?;
    Ok(RouteSpec {
        name: RouteName::new(&raw.name),
        kind,
        listen,
        listen_tls,
        forward,
        forward_tls,
        limits: limits(&raw.limits().over(defaults), "")?,
    })
}

/// The route's `listen` address.
fn listen_addr(raw: &RawRoute) -> Result<SocketAddr, SettingError> {
    let Some(listen) = &raw.listen else {
        return Err(SettingError::field(
            "listen",
            "missing (the IP:port the route listens on)",
        ));
    };
    listen.parse().map_err(|_| {
        SettingError::field(
            "listen",
            format!(
                "{listen:?} is not an IP:port address (e.g. \"127.0.0.1:21010\" or \"[::]:6661\")"
            ),
        )
    })
}

/// Where a `tcp` or `mllp` route forwards to; an `http` route has none
/// (its rules name their upstreams).
fn forward_target(raw: &RawRoute, is_http: bool) -> Result<Option<Target>, SettingError> {
    match (&raw.forward, is_http) {
        (Some(_), true) => Err(SettingError::field(
            "forward",
            "an http route names its upstreams in its [[route.rule]] tables",
        )),
        (None, true) => Ok(None),
        (None, false) => Err(SettingError::field(
            "forward",
            "missing (HOST:PORT to forward to)",
        )),
        (Some(f), false) => {
            Ok(Some(f.parse().map_err(|e: NotHostPort| {
                SettingError::field("forward", e.to_string())
            })?))
        }
    }
}

/// The listener's TLS: a profile that presents a certificate, and whom it
/// admits; `None` for a plain listener, which cannot check certificates.
fn listen_tls(
    raw: &RawRoute,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    is_http: bool,
) -> Result<Option<ListenTls>, SettingError> {
    let Some(name) = &raw.listen_tls else {
        if is_http {
            return Err(SettingError::field(
                "listen_tls",
                "an http route serves HTTPS only; name the profile with its cert, key and ca",
            ));
        }
        if raw.allow.is_some() || raw.client_auth.is_some() {
            return Err(SettingError::conflict("`allow` and `client_auth` need `listen_tls`: a plain listener cannot check certificates"));
        }
        return Ok(None);
    };
    let p = TlsProfile::named(profiles, name, "listen_tls")?;
    if p.files.cert.is_none() {
        return Err(SettingError::field(
            "listen_tls",
            format!("profile {name:?} has no `cert`/`key` to present"),
        ));
    }
    let auth = listen_auth(raw, p, apps, is_http)?;
    Ok(Some(ListenTls {
        profile: p.name.clone(),
        auth,
    }))
}

/// The forward side's TLS: a profile with the `ca` that verifies the
/// receiver, and the name it must present (`server_name`, else the
/// forward host).
fn forward_tls(
    raw: &RawRoute,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    forward: Option<&Target>,
    is_http: bool,
) -> Result<Option<ForwardTls>, SettingError> {
    let name = match &raw.forward_tls {
        None if raw.server_name.is_some() => {
            return Err(SettingError::conflict("`server_name` needs `forward_tls`"))
        }
        None => return Ok(None),
        Some(_) if is_http => {
            return Err(SettingError::field(
                "forward_tls",
                "an http route sets upstream_tls in each [[route.rule]]",
            ))
        }
        Some(name) => name,
    };
    let host = forward.map_or("", |f| f.host.as_str());
    let server_name = raw.server_name.as_deref();
    let field = ("forward_tls", name.as_str());
    ForwardTls::checked(profiles, field, "server", server_name, host).map(Some)
}

const DEFAULT_MAX_FRAME: i64 = 16 * 1024 * 1024;
/// A started MLLP frame must end within this: generous for a 16 MiB
/// report on a slow link, short enough that tricklers cannot hold slots.
const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum KindWord {
    Tcp,
    Mllp,
    Http,
}

fn route_kind(
    raw: &RawRoute,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    dir: &Path,
) -> Result<RouteKind, SettingError> {
    let word = choice(
        raw.kind.as_deref(),
        "kind",
        &[
            ("tcp", KindWord::Tcp),
            ("mllp", KindWord::Mllp),
            ("http", KindWord::Http),
        ],
    )?;
    if word != KindWord::Http {
        if let Some(field) = http::http_only_fields(raw) {
            return Err(SettingError::field(
                field,
                "only for kind = \"http\" routes",
            ));
        }
    }
    if word != KindWord::Mllp {
        let stray = [
            ("max_frame_bytes", raw.max_frame_bytes.is_some()),
            ("non_hl7", raw.non_hl7.is_some()),
            ("ack_timeout", raw.ack_timeout.is_some()),
            ("frame_timeout", raw.frame_timeout.is_some()),
            ("delivery", raw.delivery.is_some()),
        ];
        if let Some((field, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(SettingError::field(
                *field,
                "only for kind = \"mllp\" routes",
            ));
        }
        return Ok(match word {
            KindWord::Http => RouteKind::Http(Arc::new(http::http_spec(raw, profiles, apps, dir)?)),
            _ => RouteKind::Tcp,
        });
    }
    Ok(RouteKind::Mllp(mllp_settings(raw)?))
}

/// An `mllp` route's frame, ACK and delivery settings.
fn mllp_settings(raw: &RawRoute) -> Result<MllpSettings, SettingError> {
    let max_frame = raw.max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME);
    let max_frame = in_range(max_frame, "max_frame_bytes", 1024..=1_073_741_824)? as usize;
    let non_hl7 = choice(
        raw.non_hl7.as_deref(),
        "non_hl7",
        &[
            ("reject", NonHl7Policy::Reject),
            ("pass", NonHl7Policy::Pass),
        ],
    )?;
    let delivery = delivery(raw)?;
    if non_hl7 == NonHl7Policy::Pass && delivery != Delivery::Passthrough {
        return Err(SettingError::conflict("non_hl7 = \"pass\" needs delivery = \"passthrough\": a frame without MSH cannot be stored, acknowledged and delivered as a message"));
    }
    Ok(MllpSettings {
        max_frame,
        non_hl7,
        ack_timeout: duration(raw.ack_timeout.as_deref(), "ack_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        frame_timeout: duration(raw.frame_timeout.as_deref(), "frame_timeout")?
            .unwrap_or(DEFAULT_FRAME_TIMEOUT),
        delivery,
    })
}

fn delivery(raw: &RawRoute) -> Result<Delivery, SettingError> {
    let stored = choice(
        raw.delivery.as_deref(),
        "delivery",
        &[("passthrough", false), ("store-and-forward", true)],
    )?;
    if !stored {
        let stray = [
            ("retry_initial", raw.retry_initial.is_some()),
            ("retry_max", raw.retry_max.is_some()),
            ("ae_retries", raw.ae_retries.is_some()),
            ("duplicate_window", raw.duplicate_window.is_some()),
        ];
        if let Some((field, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(SettingError::field(
                *field,
                "only for delivery = \"store-and-forward\" routes",
            ));
        }
        return Ok(Delivery::Passthrough);
    }
    let retry_initial =
        duration(raw.retry_initial.as_deref(), "retry_initial")?.unwrap_or(Duration::from_secs(1));
    let retry_max =
        duration(raw.retry_max.as_deref(), "retry_max")?.unwrap_or(Duration::from_secs(60));
    if retry_max < retry_initial {
        return Err(SettingError::field(
            "retry_max",
            "must not be shorter than retry_initial",
        ));
    }
    let ae_retries = in_range(raw.ae_retries.unwrap_or(3), "ae_retries", 0..=1000)? as u32;
    let duplicate_window = match raw.duplicate_window.as_deref() {
        None => Some(Duration::from_secs(86_400)),
        Some(v) => Some(parse_duration(v, "duplicate_window", true)?).filter(|d| !d.is_zero()),
    };
    Ok(Delivery::StoreAndForward(ForwardPolicy {
        retry_initial,
        retry_max,
        ae_retries,
        duplicate_window,
    }))
}

fn listen_auth(
    raw: &RawRoute,
    profile: &TlsProfile,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
    is_http: bool,
) -> Result<types::AuthSpec, SettingError> {
    match raw.client_auth.as_deref() {
        Some("none") if is_http => Err(SettingError::field(
            "client_auth",
            "an http route admits applications by certificate; it cannot be \"none\"",
        )),
        Some("none") => {
            if raw.allow.is_some() {
                return Err(SettingError::conflict(
                    "`allow` contradicts client_auth = \"none\"",
                ));
            }
            Ok(types::AuthSpec::NoClientCert)
        }
        None | Some("required") => {
            if profile.files.ca.is_none() {
                return Err(SettingError::field(
                    "listen_tls",
                    format!(
                        "profile {:?} has no `ca` to verify client certificates; add one, or set client_auth = \"none\"",
                        profile.name.as_str()
                    ),
                ));
            }
            if is_http && raw.allow.is_none() {
                // Any listed application may connect; each rule then says
                // which of them it admits (403 otherwise).
                return Ok(types::AuthSpec::Required(apps.values().cloned().collect()));
            }
            let allow = raw.allow.as_deref().unwrap_or_default();
            if allow.is_empty() {
                return Err(SettingError::field(
                    "allow",
                    "a TLS listener must list the [[app]] names it admits (or set client_auth = \"none\")",
                ));
            }
            Ok(types::AuthSpec::Required(allowed_apps(
                allow, "allow", apps,
            )?))
        }
        Some(other) => Err(SettingError::field(
            "client_auth",
            format!("{other:?}; use \"required\" (default) or \"none\""),
        )),
    }
}

/// The admin listener's TLS: the profile presents its certificate;
/// `allow` names the applications whose client certificates it admits
/// (none asked for without it).
fn admin_tls(
    name: &str,
    allow: Option<&[String]>,
    profiles: &BTreeMap<ProfileName, TlsProfile>,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
) -> Result<ListenTls, SettingError> {
    let profile = TlsProfile::named(profiles, name, "[admin] tls")?;
    if profile.files.cert.is_none() {
        return Err(SettingError::field(
            "[admin] tls",
            format!("profile {name:?} has no `cert`/`key` to present"),
        ));
    }
    let Some(allow) = allow else {
        return Ok(ListenTls {
            profile: profile.name.clone(),
            auth: AuthSpec::NoClientCert,
        });
    };
    if allow.is_empty() {
        return Err(SettingError::field(
            "[admin] allow",
            "list the [[app]] names admitted, or leave `allow` out",
        ));
    }
    if profile.files.ca.is_none() {
        return Err(SettingError::field(
            "[admin] tls",
            format!("profile {name:?} has no `ca` to verify client certificates with"),
        ));
    }
    Ok(ListenTls {
        profile: profile.name.clone(),
        auth: AuthSpec::Required(allowed_apps(allow, "[admin] allow", apps)?),
    })
}

/// The `[[app]]` rules an `allow` list names, in its order.
fn allowed_apps(
    names: &[String],
    field: &str,
    apps: &BTreeMap<AppName, Arc<AppRule>>,
) -> Result<Vec<Arc<AppRule>>, SettingError> {
    names
        .iter()
        .map(|name| {
            apps.get(&AppName::new(name)).cloned().ok_or_else(|| {
                SettingError::field(
                    field,
                    format!("no [[app]] named {name:?}; add it with `guichet apps add`"),
                )
            })
        })
        .collect()
}

impl ListenTls {
    /// The client-certificate policy this listener enforces.
    pub fn client_auth(&self) -> ClientAuth {
        match &self.auth {
            types::AuthSpec::NoClientCert => ClientAuth::Disabled,
            types::AuthSpec::Required(rules) => {
                ClientAuth::Required(guichet_tls::Allowlist::new(rules.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
