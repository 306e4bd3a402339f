//! `guichet check`: everything that can be known about a config without
//! running it.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use guichet_tls::identity::Identity;
use guichet_tls::{Material, Role};

use crate::config::{Config, ConfigError, ProfileName, RouteSpec, TlsProfile};
use crate::state::build_states;

/// Certificates expiring sooner than this are flagged by `check` and
/// highlighted on the status page.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Error,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    /// What the finding is about: `[tls.eai] cert`, `route "to-dpi"`, ...
    pub subject: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, level: Level, subject: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            subject: subject.into(),
            message: message.into(),
        });
    }

    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    pub fn has_errors(&self) -> bool {
        self.count(Level::Error) > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let level = match finding.level {
                Level::Ok => "ok     ",
                Level::Warning => "WARNING",
                Level::Error => "ERROR  ",
            };
            writeln!(f, "{level} {}: {}", finding.subject, finding.message)?;
        }
        write!(
            f,
            "{} error(s), {} warning(s)",
            self.count(Level::Error),
            self.count(Level::Warning)
        )
    }
}

/// Checks a config file. A file that does not parse is an `Err`; problems
/// with what it references are findings.
pub fn check(path: &Path) -> Result<Report, ConfigError> {
    let config = Config::load(path)?;
    let now = unix_now();
    let mut report = Report::default();
    report.push(
        Level::Ok,
        path.display().to_string(),
        format!(
            "{} route(s), {} TLS profile(s), {} application(s)",
            config.routes.len(),
            config.profiles.len(),
            config.apps.len()
        ),
    );
    for profile in config.profiles.values() {
        check_profile(&config, profile, now, &mut report);
    }
    if !report.has_errors() {
        if let Err(e) = build_states(&config, &crate::revocation::CrlCache::default()).map(|_| ()) {
            report.push(Level::Error, "TLS", e.to_string());
        }
    }
    for route in &config.routes {
        check_route(route, &mut report);
    }
    if let Some(journal) = &config.journal {
        check_journal(journal, &mut report);
    }
    for app in config.apps.keys() {
        let used = config.routes.iter().any(|r| {
            r.listen_tls.as_ref().is_some_and(|t| match &t.auth {
                crate::config::AuthSpec::Required(rules) => {
                    rules.iter().any(|rule| &rule.name == app)
                }
                crate::config::AuthSpec::NoClientCert => false,
            })
        });
        if !used {
            report.push(
                Level::Warning,
                format!("[[app]] {app}"),
                "not admitted by any route",
            );
        }
    }
    Ok(report)
}

/// What can be known of the journal without opening it (opening a SQLite
/// journal that does not exist yet would create it).
fn check_journal(spec: &crate::config::JournalSpec, report: &mut Report) {
    let subject = "[journal]";
    match &spec.store {
        guichet_journal::StoreSpec::Sqlite(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                report.push(
                    Level::Error,
                    subject,
                    format!("store: folder {} does not exist", dir.display()),
                );
            } else if path.exists() {
                report.push(
                    Level::Ok,
                    subject,
                    format!(
                        "SQLite journal {} (checked in depth at start-up)",
                        path.display()
                    ),
                );
            } else {
                report.push(
                    Level::Ok,
                    subject,
                    format!(
                        "SQLite journal {} will be created (mode 0600) at first start",
                        path.display()
                    ),
                );
            }
        }
        guichet_journal::StoreSpec::Postgres(_) => report.push(
            Level::Ok,
            subject,
            format!(
                "PostgreSQL journal {} as node {:?} (lease {:?})",
                spec.store, spec.node, spec.lease_timeout
            ),
        ),
    }
    match spec.body_key.as_deref() {
        Some(key) => match guichet_journal::BodyKey::load(key) {
            Ok(k) => report.push(Level::Ok, subject, format!("body_key {} (key id {})", key.display(), k.id_hex())),
            Err(e) => report.push(Level::Error, subject, e.to_string()),
        },
        None => report.push(
            Level::Warning,
            subject,
            "stored bodies are not sealed (patient data at rest in clear): set body_key, or rely on disk encryption",
        ),
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn roles(config: &Config, name: &ProfileName) -> Vec<Role> {
    let mut roles = Vec::new();
    if config
        .routes
        .iter()
        .any(|r| r.listen_tls.as_ref().is_some_and(|t| &t.profile == name))
    {
        roles.push(Role::Server);
    }
    if config
        .routes
        .iter()
        .any(|r| r.forward_tls.as_ref().is_some_and(|t| &t.profile == name))
    {
        roles.push(Role::Client);
    }
    roles
}

fn check_profile(config: &Config, profile: &TlsProfile, now: i64, report: &mut Report) {
    let at = |field: &str| {
        format!("[tls.{}] {field}", profile.name)
            .trim_end()
            .to_string()
    };
    let material = match Material::load(&profile.files) {
        Ok(m) => m,
        Err(e) => return report.push(Level::Error, at(""), e.to_string()),
    };
    let roles = roles(config, &profile.name);
    if roles.is_empty() {
        report.push(Level::Warning, at(""), "not used by any route");
    }
    if let Some(own) = &material.own {
        expiry(report, &at("cert"), &own.identity, now);
        report.push(
            Level::Ok,
            at("key"),
            "private key matches the certificate, permissions are tight",
        );
        for role in &roles {
            let usage = match role {
                Role::Server => "server (listen_tls)",
                Role::Client => "client (forward_tls)",
            };
            match material.verify_own(*role) {
                Ok(()) if material.roots.is_some() => {
                    report.push(Level::Ok, at("cert"), format!("chains to the profile's CA, valid as {usage}"))
                }
                Ok(()) => {}
                Err(e) => report.push(
                    Level::Warning,
                    at("cert"),
                    format!("does not verify against the profile's CA as {usage}: {e} (fine only if peers trust another CA)"),
                ),
            }
        }
    }
    for der in &material.ca_certs {
        if let Ok(ca) = Identity::from_der(der) {
            if !ca.is_ca {
                report.push(
                    Level::Warning,
                    at("ca"),
                    format!("{} is not a CA certificate", ca.subject),
                );
            }
            expiry(report, &at("ca"), &ca, now);
        }
    }
    for (path, crl) in profile.files.crls.iter().zip(&material.crls) {
        check_crl(report, &at("crl"), path, crl, now);
    }
    if material.roots.is_some() {
        check_revocation(profile, report);
    }
}

/// A profile with a `ca` verifies peers: say how it learns of
/// revocations, and every way that is weaker than it could be.
fn check_revocation(profile: &TlsProfile, report: &mut Report) {
    use guichet_tls::CrlExpired;
    let at = |field: &str| {
        format!("[tls.{}] {field}", profile.name)
            .trim_end()
            .to_string()
    };
    let revocation = profile.settings.revocation;
    let sources = profile.revocation_sources();
    if sources.is_empty() && revocation.allow_unknown {
        report.push(
            Level::Warning,
            at("crl_unknown"),
            "no revocation source (no `crl`, `crl_urls`, `crl_from_certificates`, `ocsp`) and crl_unknown = \"allow\": a revoked certificate is admitted; add `crl_urls` (the CA's distribution points) or `crl_from_certificates = true`",
        );
    } else if sources.is_empty() {
        report.push(
            Level::Warning,
            at(""),
            "no revocation source (no `crl`, `crl_urls`, `crl_from_certificates`, `ocsp`): every peer is refused (revocation_unknown); add `crl_urls` (the CA's distribution points) or `crl_from_certificates = true`",
        );
    } else if revocation.allow_unknown {
        report.push(
            Level::Warning,
            at("crl_unknown"),
            "\"allow\": a peer whose issuer has no CRL here is admitted unchecked; use \"refuse\" (the default)",
        );
    }
    if !sources.is_empty() && revocation.expired == CrlExpired::Warn {
        report.push(
            Level::Warning,
            at("crl_expired"),
            "\"warn\": a CRL past its nextUpdate stays in force and hides revocations published since; use \"refuse\" (the default) with `crl_urls` to keep CRLs fresh",
        );
    }
    if profile.fetches_crls()
        && profile.crl_fetch.refresh > std::time::Duration::from_secs(24 * 3600)
    {
        report.push(
            Level::Warning,
            at("crl_refresh"),
            "longer than a day: IGC Santé publishes its CRLs daily, so a revocation may stay unseen that long; use 1h (the default)",
        );
    }
    if !sources.is_empty() {
        let words: Vec<String> = sources.iter().map(source_word).collect();
        report.push(
            Level::Ok,
            at(""),
            format!("revocation: {}", words.join(", ")),
        );
    }
}

fn source_word(source: &crate::config::RevocationSource) -> String {
    use crate::config::RevocationSource as S;
    match source {
        S::CrlFile(path) => format!("CRL file {}", path.display()),
        S::CrlUrl(url) => format!("CRL fetched from {url}"),
        S::CrlFromCertificates => "CRLs from the certificates' distribution points".into(),
    }
}

fn expiry(report: &mut Report, subject: &str, id: &Identity, now: i64) {
    let days = id.days_until_expiry(now);
    let who = &id.subject;
    if id.not_before > now {
        report.push(
            Level::Error,
            subject,
            format!("{who} is not valid before {}", date(id.not_before)),
        );
    } else if days < 0 {
        report.push(
            Level::Error,
            subject,
            format!("{who} EXPIRED on {}", date(id.not_after)),
        );
    } else if days < EXPIRY_WARNING_DAYS {
        report.push(
            Level::Warning,
            subject,
            format!(
                "{who} expires in {days} day(s), on {}: renew it",
                date(id.not_after)
            ),
        );
    } else {
        report.push(
            Level::Ok,
            subject,
            format!("{who} expires in {days} days ({})", date(id.not_after)),
        );
    }
}

fn check_crl(report: &mut Report, subject: &str, path: &Path, crl: &[u8], now: i64) {
    use x509_parser::prelude::FromDer;
    let Ok((_, parsed)) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl)
    else {
        return;
    };
    let revoked = parsed.iter_revoked_certificates().count();
    let file = path.display();
    match parsed.next_update() {
        Some(next) if next.timestamp() < now => report.push(
            Level::Warning,
            subject,
            format!(
                "{file} is stale: next update was due {}; fetch a fresh CRL",
                date(next.timestamp())
            ),
        ),
        _ => report.push(
            Level::Ok,
            subject,
            format!("{file}: {revoked} revoked certificate(s)"),
        ),
    }
}

/// Where a route sends data: its forward target, or each rule's upstream.
fn destinations(route: &RouteSpec) -> Vec<(String, &str, u16, bool)> {
    match (&route.forward, route.http()) {
        (Some(target), _) => vec![(
            "forward".to_string(),
            target.host.as_str(),
            target.port,
            route.forward_tls.is_some(),
        )],
        (None, Some(http)) => http
            .rules
            .iter()
            .map(|rule| {
                (
                    format!("rule {:?}: upstream", rule.name.as_str()),
                    rule.upstream.host.as_str(),
                    rule.upstream.port,
                    rule.upstream.tls.is_some(),
                )
            })
            .collect(),
        (None, None) => Vec::new(),
    }
}

fn check_route(route: &RouteSpec, report: &mut Report) {
    let subject = format!("route {:?}", route.name.as_str());
    for (what, host, port, tls) in destinations(route) {
        match (host, port).to_socket_addrs() {
            Ok(mut addrs) => {
                if addrs.next().is_none() {
                    report.push(
                        Level::Error,
                        &subject,
                        format!("{what} host {host} resolves to no address"),
                    );
                }
            }
            Err(e) => report.push(
                Level::Error,
                &subject,
                format!("{what} host {host} does not resolve: {e}"),
            ),
        }
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            report.push(
                Level::Warning,
                &subject,
                format!("{what}: clear text to {host}:{port} (not loopback)"),
            );
        }
    }
    if route.listen_tls.is_none() && !route.listen.ip().is_loopback() {
        report.push(
            Level::Warning,
            &subject,
            format!("listens in clear text on {} (not loopback): patient data may cross the network unencrypted", route.listen),
        );
    }
    if route.listen_mode() == "tls" {
        report.push(
            Level::Warning,
            &subject,
            "client_auth = \"none\": any client may connect; prefer mutual TLS with an allowlist",
        );
    }
    if let (Some(http), Some(tls)) = (route.http(), &route.listen_tls) {
        if let crate::config::AuthSpec::Required(apps) = &tls.auth {
            for app in apps {
                let admitted = http
                    .rules
                    .iter()
                    .any(|rule| rule.allow.names().any(|name| *name == app.name));
                if !admitted {
                    report.push(
                        Level::Warning,
                        &subject,
                        format!(
                            "application {:?} completes the TLS handshake but no rule admits it: its requests get 403",
                            app.name.as_str()
                        ),
                    );
                }
            }
        }
    }
    if let Some(http) = route.http() {
        if route.limits.idle_timeout < http.response_timeout {
            report.push(
                Level::Warning,
                &subject,
                format!(
                    "idle_timeout ({:?}) is shorter than response_timeout ({:?}): a request waiting for a slow upstream loses its connection before its 504",
                    route.limits.idle_timeout, http.response_timeout
                ),
            );
        }
        if http.rate.is_none() {
            report.push(
                Level::Warning,
                &subject,
                "no rate_limit: one partner application can take the whole capacity of the upstreams",
            );
        }
        if http.query_in_log {
            report.push(
                Level::Warning,
                &subject,
                "query_in_log = true: query strings (which may carry patient identifiers) are written to the access log",
            );
        }
    }
    report.push(
        Level::Ok,
        &subject,
        format!(
            "{} {} -> {} {}",
            route.listen_mode(),
            route.listen,
            route.forward_mode(),
            route.forward_label()
        ),
    );
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|_| unix.to_string())
}
