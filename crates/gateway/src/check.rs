//! `guichet check`: everything that can be known about a config without
//! running it.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use guichet_tls::identity::Identity;
use guichet_tls::{Material, Role};

use crate::certs::unix_now;
pub use crate::certs::EXPIRY_WARNING_DAYS;
use crate::config::{Config, ConfigError, FolderSpec, MapSpec, ProfileName, RouteSpec, TlsProfile};
use crate::state::build_states;

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
    /// Adds a finding (the binary adds what only it can check).
    pub fn push(&mut self, level: Level, subject: impl Into<String>, message: impl Into<String>) {
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
            config.routes.len() + config.folders.len(),
            config.profiles.len(),
            config.apps.len()
        ),
    );
    for profile in config.profiles.values() {
        check_profile(&config, profile, now, &mut report);
    }
    if !report.has_errors() {
        if let Err(e) = build_states(
            &config,
            &crate::ocsp::OcspMetrics::default(),
            &crate::revocation::CrlCache::default(),
        )
        .map(|_| ())
        {
            report.push(Level::Error, "TLS", e.to_string());
        }
    }
    for route in &config.routes {
        check_route(route, &mut report);
    }
    for folder in &config.folders {
        check_folder(folder, &mut report);
    }
    if let Some(journal) = &config.journal {
        check_journal(journal, &mut report);
    }
    if let Some(admin) = &config.admin {
        check_admin(admin, &mut report);
    }
    if let Some(map) = &config.map {
        check_map(&config, map, &mut report);
    }
    check_apps_used(&config, &mut report);
    Ok(report)
}

/// What can be known of the journal without opening it (opening a SQLite
/// journal that does not exist yet would create it).
/// An `[[app]]` no listener admits is probably a mistake.
fn check_apps_used(config: &Config, report: &mut Report) {
    for app in config.apps.keys() {
        let admits = |t: &crate::config::ListenTls| match &t.auth {
            crate::config::AuthSpec::Required(rules) => rules.iter().any(|rule| &rule.name == app),
            crate::config::AuthSpec::NoClientCert => false,
        };
        let used = config
            .routes
            .iter()
            .filter_map(|r| r.listen_tls.as_ref())
            .chain(config.admin.as_ref().and_then(|a| a.tls.as_ref()))
            .any(admits);
        if !used {
            report.push(
                Level::Warning,
                format!("[[app]] {app}"),
                "not admitted by any route",
            );
        }
    }
}

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
        guichet_journal::StoreSpec::Postgres(url) => {
            report.push(
                Level::Ok,
                subject,
                format!(
                    "PostgreSQL journal {} as node {:?} (lease {:?})",
                    spec.store, spec.node, spec.lease_timeout
                ),
            );
            check_postgres_transport(url, report);
        }
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

/// How the journal reaches PostgreSQL: the TLS files are loaded (the
/// database is not contacted), and anything short of `verify-full` off
/// this machine is said.
fn check_postgres_transport(url: &str, report: &mut Report) {
    use guichet_journal::{PgSslMode, PgTransport};
    let subject = "[journal] store";
    let transport = match PgTransport::inspect(url) {
        Ok(transport) => transport,
        Err(e) => return report.push(Level::Error, subject, e.to_string()),
    };
    let ca = |t: &PgTransport| {
        t.root_cert
            .as_deref()
            .map_or_else(String::new, |p| p.display().to_string())
    };
    let (level, mut message) = match (transport.mode, transport.weakness()) {
        (_, Some(weakness)) => (Level::Warning, weakness),
        (PgSslMode::Disable, None) => (
            Level::Ok,
            "plain TCP on this machine (loopback or Unix socket): nothing crosses a network".into(),
        ),
        (PgSslMode::VerifyCa, None) => (
            Level::Ok,
            format!(
                "TLS, certificate chain checked against {} (sslmode=verify-ca); note: the \
                 database's name is not checked, so any server holding a certificate of that \
                 CA passes: sslmode=verify-full is recommended",
                ca(&transport)
            ),
        ),
        (_, None) => (
            Level::Ok,
            format!(
                "TLS, certificate and name checked against {} (sslmode={})",
                ca(&transport),
                transport.mode.as_str()
            ),
        ),
    };
    if let Some(cert) = &transport.client_cert {
        message.push_str(&format!("; client certificate {}", cert.display()));
    }
    report.push(level, subject, message);
}

/// How the admin listener is protected, and every way it is weaker than
/// it could be. `/status` shows partners' certificate subjects,
/// fingerprints and addresses.
fn check_admin(spec: &crate::config::AdminSpec, report: &mut Report) {
    let subject = "[admin]";
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let who = match (spec.client_certificates(), spec.token_file.is_some()) {
        (true, true) => "an admitted client certificate and the bearer token",
        (true, false) => "an admitted client certificate",
        (false, true) => "the bearer token (but on /healthz and /readyz)",
        (false, false) => "nothing",
    };
    report.push(
        Level::Ok,
        subject,
        format!("{scheme}://{}: reading it takes {who}", spec.listen),
    );
    if let Some(path) = &spec.token_file {
        match crate::admin::read_token(path) {
            Ok(_) => report.push(
                Level::Ok,
                subject,
                format!("token_file {}: private, long enough", path.display()),
            ),
            Err(e) => report.push(Level::Error, subject, e.to_string()),
        }
    }
    match (spec.exposure(), spec.insecure) {
        (Some(why), false) => report.push(
            Level::Error,
            subject,
            format!("listen = \"{}\": {why}; `guichet run` refuses to start. Add tls = \"PROFILE\" with allow = [\"APP\"] or token_file, keep it on 127.0.0.1, or set insecure = true", spec.listen),
        ),
        (Some(why), true) => report.push(
            Level::Warning,
            subject,
            format!("insecure = true: {why}"),
        ),
        (None, true) => report.push(
            Level::Warning,
            subject,
            "insecure = true is set but not needed: remove it, so `guichet run` refuses this listener should its protection ever be removed",
        ),
        (None, false) if !spec.authenticated() => report.push(
            Level::Ok,
            subject,
            "on loopback without authentication: any local user or process can read partners' details; token_file restricts it",
        ),
        (None, false) => {}
    }
    if spec.tls.is_none() && spec.token_file.is_some() && spec.on_loopback() {
        report.push(
            Level::Ok,
            subject,
            "the token crosses loopback in clear: fine on this host, add tls before moving it off loopback",
        );
    }
}

/// What can be known of `[map]` without rendering it: the data folder
/// and the mapping file can be read, and observed flows will reach the
/// page. (`guichet check` in the binary reads them in depth.)
fn check_map(config: &Config, spec: &MapSpec, report: &mut Report) {
    let subject = "[map]";
    match std::fs::read_dir(&spec.data) {
        Ok(_) => report.push(
            Level::Ok,
            subject,
            format!("data {}: served live at /map", spec.data.display()),
        ),
        Err(e) => report.push(
            Level::Error,
            subject,
            format!("data {}: cannot read the folder: {e}", spec.data.display()),
        ),
    }
    if let Some(mapping) = &spec.mapping {
        if let Err(e) = std::fs::read_to_string(mapping) {
            report.push(
                Level::Error,
                subject,
                format!("mapping {}: cannot read it: {e}", mapping.display()),
            );
        }
    }
    let unobserved = match (&config.journal, config.observe) {
        (None, _) => Some("no [journal]"),
        (Some(_), None) => Some("[observe] enabled = false"),
        (Some(_), Some(_)) => None,
    };
    if let Some(why) = unobserved {
        report.push(
            Level::Warning,
            subject,
            format!("{why}: the map shows declared flows only, none observed"),
        );
    }
}

fn roles(config: &Config, name: &ProfileName) -> Vec<Role> {
    let mut roles = Vec::new();
    let admin_tls = config.admin.as_ref().and_then(|a| a.tls.as_ref());
    if config
        .routes
        .iter()
        .filter_map(|r| r.listen_tls.as_ref())
        .chain(admin_tls)
        .any(|t| &t.profile == name)
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
        own_key(report, profile, &at);
        if !shape(report, &at("cert"), own, &roles) {
            return;
        }
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
    check_ocsp(profile, &material, &roles, report);
    if material.roots.is_some() {
        check_revocation(profile, report);
    }
}

/// What rustls and name checks make of our certificate's shape: a version
/// 1 certificate is refused outright (an error, and nothing else about it
/// is worth saying), a server certificate without subjectAltName cannot
/// match the name clients dial. False when the certificate is unusable.
fn shape(
    report: &mut Report,
    at: &str,
    own: &guichet_tls::material::OwnCert,
    roles: &[Role],
) -> bool {
    let id = &own.identity;
    let name = id.subject.common_name().unwrap_or("NAME").to_string();
    let der = own.chain.first().map(|c| c.as_ref()).unwrap_or_default();
    if guichet_tls::identity::x509_version(der) == Some(1) {
        report.push(
            Level::Error,
            at,
            format!(
                "{} is an X.509 version 1 certificate (no extensions: no subjectAltName, no key usage): rustls refuses it, so no handshake can use it; {}",
                id.subject,
                guichet_tls::identity::reissue_hint(&name)
            ),
        );
        return false;
    }
    if roles.contains(&Role::Server) && id.san_dns.is_empty() && id.san_ip.is_empty() {
        report.push(
            Level::Warning,
            at,
            format!(
                "{} has no subjectAltName: clients that check the server's name (guichet's server_name, and most TLS clients) cannot match it, since names are never read from the CN; {}",
                id.subject,
                guichet_tls::identity::reissue_hint(&name)
            ),
        );
    }
    true
}

/// Where our private key comes from, and how well it is kept.
fn own_key(report: &mut Report, profile: &TlsProfile, at: &dyn Fn(&str) -> String) {
    let files = &profile.files;
    if files.key.is_some() {
        return report.push(
            Level::Ok,
            at("key"),
            "private key matches the certificate, permissions are tight",
        );
    }
    report.push(
        Level::Ok,
        at("cert"),
        "PKCS#12: password accepted, the private key matches the certificate, permissions are tight",
    );
    pkcs12_findings(report, profile, at);
}

/// How well the key inside a PKCS#12 `cert` is kept: its encryption, and
/// where and what its password is.
fn pkcs12_findings(report: &mut Report, profile: &TlsProfile, at: &dyn Fn(&str) -> String) {
    use guichet_tls::PasswordSource;
    let files = &profile.files;
    let protection = files
        .cert
        .as_deref()
        .and_then(|cert| std::fs::read(cert).ok())
        .and_then(|bytes| guichet_tls::pkcs12::protection(&bytes));
    if let Some(p) = protection.filter(|p| p.legacy) {
        report.push(
            Level::Warning,
            at("cert"),
            format!("PKCS#12 protected with legacy algorithms ({p}): a copy of the file is cheap to attack; re-export it with OpenSSL 3 defaults (openssl pkcs12 -export: AES-256-CBC, HMAC-SHA256)"),
        );
    }
    if let Some(PasswordSource::Env(var)) = &files.password {
        report.push(
            Level::Warning,
            at("password_env"),
            format!("the PKCS#12 password is in the environment variable {var}, which child processes inherit and `systemctl show`/`/proc/PID/environ` reveal; prefer password_file (mode 0600, or a systemd credential)"),
        );
    }
    let empty = files
        .password
        .as_ref()
        .and_then(|source| source.read().ok())
        .is_some_and(|password| password.is_empty());
    if empty {
        report.push(
            Level::Warning,
            at("cert"),
            "the PKCS#12 password is empty: the key in the file is as good as unencrypted; re-export it with a strong password",
        );
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
        S::Ocsp(mode) => format!("OCSP ({mode:?})").to_lowercase(),
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
    check_destinations(route, &subject, report);
    check_listener(route, &subject, report);
    check_http(route, &subject, report);
    check_mllp(route, &subject, report);
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

/// Each place a route sends to: it must resolve, and should not be
/// reached in clear text off loopback.
fn check_destinations(route: &RouteSpec, subject: &str, report: &mut Report) {
    check_targets(destinations(route), subject, report);
}

fn check_targets(targets: Vec<(String, &str, u16, bool)>, subject: &str, report: &mut Report) {
    for (what, host, port, tls) in targets {
        match (host, port).to_socket_addrs() {
            Ok(mut addrs) => {
                if addrs.next().is_none() {
                    report.push(
                        Level::Error,
                        subject,
                        format!("{what} host {host} resolves to no address"),
                    );
                }
            }
            Err(e) => report.push(
                Level::Error,
                subject,
                format!("{what} host {host} does not resolve: {e}"),
            ),
        }
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            report.push(
                Level::Warning,
                subject,
                format!("{what}: clear text to {host}:{port} (not loopback)"),
            );
        }
    }
}

/// A folder route: where its files go, what checks them, and folders a
/// rename can move files between.
fn check_folder(folder: &FolderSpec, report: &mut Report) {
    let subject = format!("route {:?}", folder.name.as_str());
    let upstream = &folder.upstream;
    let mut targets = vec![(
        "upstream".to_string(),
        upstream.host.as_str(),
        upstream.port,
        upstream.tls.is_some(),
    )];
    if let Some(token) = &upstream.token {
        targets.push(("token_url".into(), token.host.as_str(), token.port, true));
    }
    check_targets(targets, &subject, report);
    match &folder.validation {
        Some(validation) => check_referential(validation, None, &subject, report),
        None => report.push(
            Level::Warning,
            &subject,
            "no validate: files go to the upstream unchecked",
        ),
    }
    check_same_file_system(folder, &subject, report);
    let convert = folder.validation.as_ref().and_then(|v| v.convert);
    report.push(
        Level::Ok,
        &subject,
        format!(
            "folder {} -> {}{}",
            folder.inbox.display(),
            upstream.origin,
            convert.map_or(String::new(), |c| format!(" (convert {})", c.as_str()))
        ),
    );
}

/// Files move by rename: `done/` and `rejected/` must be on the inbox's
/// file system (checked for the folders that exist already).
fn check_same_file_system(folder: &FolderSpec, subject: &str, report: &mut Report) {
    use std::os::unix::fs::MetadataExt;
    let device = |path: &Path| std::fs::metadata(path).ok().map(|m| m.dev());
    let Some(inbox) = device(&folder.inbox) else {
        report.push(
            Level::Ok,
            subject,
            format!(
                "{} does not exist yet: made at start",
                folder.inbox.display()
            ),
        );
        return;
    };
    for other in [&folder.done, &folder.rejected] {
        if device(other).is_some_and(|d| d != inbox) {
            report.push(
                Level::Error,
                subject,
                format!(
                    "{} is on another file system than the inbox: files move by rename",
                    other.display()
                ),
            );
        }
    }
}

/// The listener: clear text off loopback, its budgets, a TLS listener
/// that asks no certificate.
fn check_listener(route: &RouteSpec, subject: &str, report: &mut Report) {
    if route.listen_tls.is_none() && !route.listen.ip().is_loopback() {
        report.push(
            Level::Warning,
            subject,
            format!("listens in clear text on {} (not loopback): patient data may cross the network unencrypted", route.listen),
        );
    }
    check_budgets(route, report);
    if route.listen_mode() == "tls" {
        report.push(
            Level::Warning,
            subject,
            "client_auth = \"none\": any client may connect; prefer mutual TLS with an allowlist",
        );
    }
}

/// Validating rules that check less than they could.
fn check_validation(http: &crate::config::HttpSpec, subject: &str, report: &mut Report) {
    for rule in &http.rules {
        if let Some(validation) = &rule.validation {
            check_referential(validation, Some(rule.name.as_str()), subject, report);
        }
    }
}

/// A validation without a referential, or with one that names a unit
/// twice (every document naming it is refused).
fn check_referential(
    validation: &crate::config::Validation,
    rule: Option<&str>,
    subject: &str,
    report: &mut Report,
) {
    let (lead, named) = match rule {
        Some(name) => (format!("rule {name:?} "), format!("rule {name:?}: ")),
        None => (String::new(), String::new()),
    };
    let Some(referential) = &validation.referential else {
        report.push(
            Level::Warning,
            subject,
            format!("{lead}validates bed availability without a referential: units and establishments are not checked"),
        );
        return;
    };
    for rows in referential.duplicates() {
        report.push(
            Level::Warning,
            subject,
            format!(
                "{named}the referential names unit {} of {} {} times; documents naming it are refused (unit.ambiguous)",
                rows[0].unit_id,
                rows[0].finess_eg,
                rows.len()
            ),
        );
    }
}

/// An `http` route: applications no rule admits, and settings that cost
/// a partner its answers or expose patient identifiers.
fn check_http(route: &RouteSpec, subject: &str, report: &mut Report) {
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
                        subject,
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
        check_validation(http, subject, report);
        if route.limits.idle_timeout < http.response_timeout {
            report.push(
                Level::Warning,
                subject,
                format!(
                    "idle_timeout ({:?}) is shorter than response_timeout ({:?}): a request waiting for a slow upstream loses its connection before its 504",
                    route.limits.idle_timeout, http.response_timeout
                ),
            );
        }
        if http.rate.is_none() {
            report.push(
                Level::Warning,
                subject,
                "no rate_limit: one partner application can take the whole capacity of the upstreams",
            );
        }
        if http.query_in_log {
            report.push(
                Level::Warning,
                subject,
                "query_in_log = true: query strings (which may carry patient identifiers) are written to the access log",
            );
        }
    }
}

/// A frame_timeout above this lets a trickling peer hold a connection
/// slot for minutes.
const LONG_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Buffers an `mllp` route may hold at worst, above which `check` warns.
const FRAME_MEMORY_WARNING: u128 = 8 << 30;

/// The ways an `mllp` route's own settings are weaker than they could be.
fn check_mllp(route: &RouteSpec, subject: &str, report: &mut Report) {
    let crate::config::RouteKind::Mllp(mllp) = &route.kind else {
        return;
    };
    if mllp.non_hl7 == crate::config::NonHl7Policy::Pass {
        report.push(
            Level::Warning,
            subject,
            "non_hl7 = \"pass\": frames without MSH are forwarded unchecked, with no message event; prefer \"reject\"",
        );
    }
    if mllp.frame_timeout > LONG_FRAME_TIMEOUT {
        report.push(
            Level::Warning,
            subject,
            format!(
                "frame_timeout = {:?}: a peer trickling a frame holds a connection slot that long; 30s is the default",
                mllp.frame_timeout
            ),
        );
    }
    let worst = mllp.max_frame as u128 * route.limits.max_connections as u128;
    if worst > FRAME_MEMORY_WARNING {
        report.push(
            Level::Warning,
            subject,
            format!(
                "max_frame_bytes x max_connections = {} MiB of frame buffers at worst: lower one of them",
                worst >> 20
            ),
        );
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|_| unix.to_string())
}

/// The OCSP mode of a profile, and what it leaves open.
fn check_ocsp(profile: &TlsProfile, material: &Material, roles: &[Role], report: &mut Report) {
    use guichet_tls::OcspMode;
    let subject = format!("[tls.{}] ocsp", profile.name);
    let policy = &profile.ocsp;
    match policy.mode {
        OcspMode::Off => {
            return report.push(
                Level::Ok,
                subject,
                "off: peers' revocation is checked with CRLs only; set ocsp = \"hard\" to ask their responders too",
            )
        }
        OcspMode::Soft => report.push(
            Level::Warning,
            &subject,
            "soft: a peer whose OCSP status cannot be established (responder down, unreachable, unknown certificate) is admitted; use \"hard\" to refuse it",
        ),
        OcspMode::Hard => report.push(
            Level::Ok,
            &subject,
            "hard: peers are refused when revoked or when their status cannot be established",
        ),
    }
    match &policy.url {
        Some(url) => report.push(Level::Ok, &subject, format!("every peer is checked with {url}")),
        None => report.push(
            Level::Ok,
            &subject,
            "peers are checked with the responder their certificate names (AIA); a certificate naming none has no OCSP status",
        ),
    }
    if let (Some(own), true) = (&material.own, roles.contains(&Role::Server)) {
        let named = guichet_tls::ocsp::responders_of(&own.chain[0]);
        if policy.url.is_none() && named.is_empty() {
            report.push(
                Level::Warning,
                &subject,
                "our certificate names no OCSP responder and ocsp_url is not set: nothing is stapled, peers must fetch our status themselves",
            );
        } else {
            report.push(
                Level::Ok,
                &subject,
                "our certificate's OCSP response is stapled (fetched at start and before its nextUpdate)",
            );
        }
    }
}

/// A handshake_timeout longer than this lets silent connections hold their
/// handshake slots long enough to matter.
const LONG_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(30);

/// The connection budgets: what a flood of unauthenticated or
/// single-source connections could take.
fn check_budgets(route: &RouteSpec, report: &mut Report) {
    let subject = format!("route {:?}", route.name.as_str());
    let l = &route.limits;
    let tls = route.listen_tls.is_some();
    let mut summary = format!(
        "budgets: {} connection(s), {} per source address",
        l.max_connections, l.max_connections_per_source
    );
    if tls {
        summary += &format!(", {} in TLS handshake", l.max_handshakes);
    }
    report.push(Level::Ok, &subject, summary);
    if l.max_connections < 2 {
        return;
    }
    if tls && l.max_handshakes >= l.max_connections {
        report.push(
            Level::Warning,
            &subject,
            format!(
                "max_handshakes = {}: connections that never finish their TLS handshake can take every slot for handshake_timeout; set it below max_connections ({})",
                l.max_handshakes, l.max_connections
            ),
        );
    }
    if l.max_connections_per_source >= l.max_connections && !route.listen.ip().is_loopback() {
        report.push(
            Level::Warning,
            &subject,
            format!(
                "max_connections_per_source = {}: one address can take every slot; set it below max_connections ({})",
                l.max_connections_per_source, l.max_connections
            ),
        );
    }
    if tls && l.handshake_timeout > LONG_HANDSHAKE {
        report.push(
            Level::Warning,
            &subject,
            format!(
                "handshake_timeout = {:?}: a connection that sends nothing holds a handshake slot that long; {:?} or less is enough for a real partner",
                l.handshake_timeout, LONG_HANDSHAKE
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[map]` findings of `check` on a config written in `dir`.
    fn map_findings(dir: &Path, head: &str) -> Vec<(Level, String)> {
        let path = dir.join("guichet.toml");
        let text = format!(
            "{head}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[route]]\nname = \"t\"\n\
             listen = \"127.0.0.1:0\"\nforward = \"127.0.0.1:9\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let report = check(&path).unwrap();
        report
            .findings
            .into_iter()
            .filter(|f| f.subject == "[map]")
            .map(|f| (f.level, f.message))
            .collect()
    }

    #[test]
    fn map_without_its_folder_or_mapping_is_an_error_without_a_journal_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let missing = map_findings(
            dir.path(),
            "[map]\ndata = \"carto\"\nmapping = \"mapping.toml\"\n",
        );
        let data = dir.path().join("carto").display().to_string();
        let mapping = dir.path().join("mapping.toml").display().to_string();
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert_eq!(missing[0].0, Level::Error);
        assert!(
            missing[0]
                .1
                .starts_with(&format!("data {data}: cannot read the folder")),
            "{missing:?}"
        );
        assert_eq!(missing[1].0, Level::Error);
        assert!(
            missing[1]
                .1
                .starts_with(&format!("mapping {mapping}: cannot read it")),
            "{missing:?}"
        );
        assert_eq!(
            missing[2],
            (
                Level::Warning,
                "no [journal]: the map shows declared flows only, none observed".into()
            )
        );

        std::fs::create_dir(dir.path().join("carto")).unwrap();
        std::fs::write(dir.path().join("mapping.toml"), "[parties]\n").unwrap();
        let fine = map_findings(
            dir.path(),
            "[journal]\nstore = \"journal.db\"\n\n[map]\ndata = \"carto\"\nmapping = \"mapping.toml\"\n",
        );
        assert_eq!(
            fine,
            [(Level::Ok, format!("data {data}: served live at /map"))]
        );
        let unobserved = map_findings(
            dir.path(),
            "[journal]\nstore = \"journal.db\"\n\n[observe]\nenabled = false\n\n[map]\ndata = \"carto\"\n",
        );
        assert_eq!(unobserved[1].0, Level::Warning, "{unobserved:?}");
        assert!(unobserved[1].1.starts_with("[observe] enabled = false"));
    }
}
