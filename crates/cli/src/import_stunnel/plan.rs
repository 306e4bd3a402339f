//! The guichet configuration the services become: TLS profiles, the
//! applications admitted, one route per service; and what changes in
//! meaning on the way.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::certs::{carries, peer_certs, pinned_certs, read_all, read_cert, Cert};
use super::service::{HostPort, Service};

/// A `[tls.NAME]` profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    pub name: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub tls13_only: bool,
    pub ocsp_url: Option<String>,
}

/// An `[[app]]` read from a certificate.
#[derive(Debug, Clone)]
pub(super) struct App {
    pub name: String,
    /// `[[app]]` keys and values, in order.
    pub criteria: Vec<(&'static str, String)>,
    /// Where it was read, for the comment above it.
    pub source: String,
}

/// A `[[route]]`.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub name: String,
    /// Where it came from, for the comment above it.
    pub origin: String,
    pub listen: SocketAddr,
    pub listen_tls: Option<String>,
    /// `None` on a plain listener, or with client_auth = "none".
    pub allow: Option<Vec<String>>,
    pub client_auth_none: bool,
    pub forward: HostPort,
    pub forward_tls: Option<String>,
    pub server_name: Option<String>,
    pub idle_timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
}

/// Everything the import writes and says.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub profiles: Vec<Profile>,
    pub apps: Vec<App>,
    pub routes: Vec<Route>,
    /// Per route, in route order: the section's heading and its notes.
    pub notes: Vec<(String, Vec<String>)>,
}

/// Builds the plan. `shown[i]` names file `i` in messages. An error is a
/// merge that cannot work: two routes on one listen address.
pub(super) fn plan(services: &[Service], shown: &[String]) -> anyhow::Result<Plan> {
    check_collisions(services, shown)?;
    let mut plan = Plan::default();
    let names = route_names(services);
    for (i, service) in services.iter().enumerate() {
        let mut notes = service.notes.clone();
        let profile = plan.profile_for(service);
        let route = if service.client {
            client_route(services, i, &names[i], profile, &mut notes)
        } else {
            let tls = plan.server_side(services, i, (&profile, &names[i]), &mut notes);
            Route {
                listen_tls: Some(profile),
                allow: tls.0,
                client_auth_none: tls.1,
                forward_tls: None,
                server_name: None,
                ..base_route(service, &names[i])
            }
        };
        if names[i] != service.section {
            notes.push(format!(
                "route named {:?} (the section's name, made safe{})",
                names[i],
                if sanitise(&service.section) == names[i] {
                    ""
                } else {
                    ", and unique"
                }
            ));
        }
        let heading = format!(
            "[{}] in {} (line {}) -> route {:?}: {} {} -> {} {}",
            service.section,
            shown[service.file],
            service.line,
            route.name,
            if route.listen_tls.is_some() {
                "TLS"
            } else {
                "plain"
            },
            route.listen,
            if route.forward_tls.is_some() {
                "TLS"
            } else {
                "plain"
            },
            target(&route.forward)
        );
        plan.notes.push((heading, notes));
        let origin = format!(
            "stunnel [{}] in {}{}",
            service.section,
            shown[service.file],
            if service.client {
                " (client = yes)"
            } else {
                ""
            }
        );
        plan.routes.push(Route { origin, ..route });
    }
    loop_notes(&mut plan);
    Ok(plan)
}

fn target(t: &HostPort) -> String {
    if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    }
}

fn base_route(service: &Service, name: &str) -> Route {
    Route {
        name: name.to_string(),
        origin: String::new(),
        listen: service.accept,
        listen_tls: None,
        allow: None,
        client_auth_none: false,
        forward: service.connect.clone(),
        forward_tls: None,
        server_name: None,
        idle_timeout: service.idle_timeout,
        connect_timeout: service.connect_timeout,
    }
}

/// Two listeners on one port of one host cannot both bind: the merged
/// config would not start. Refused, naming both sections.
fn check_collisions(services: &[Service], shown: &[String]) -> anyhow::Result<()> {
    let overlap = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
    let mut clashes = Vec::new();
    for (i, a) in services.iter().enumerate() {
        for b in &services[i + 1..] {
            if a.accept.port() == b.accept.port() && overlap(a.accept.ip(), b.accept.ip()) {
                clashes.push(format!(
                    "  [{}] in {} (accept {}) and [{}] in {} (accept {})",
                    a.section, shown[a.file], a.accept, b.section, shown[b.file], b.accept
                ));
            }
        }
    }
    if clashes.is_empty() {
        return Ok(());
    }
    bail!(
        "listen address collision: in one guichet config these sections would listen on the same port of one host:\n{}\n\
         stunnel ran them on different hosts (or containers). Import each host's files into a config of its own, \
         or change one `accept` port before importing; nothing was written",
        clashes.join("\n")
    )
}

/// Section names made safe for route names (letters, digits, `-`, `_`,
/// `.`), unique across the files.
fn route_names(services: &[Service]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    services
        .iter()
        .map(|s| {
            let base = sanitise(&s.section);
            let mut name = base.clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

pub(super) fn sanitise(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_string();
    if cleaned.is_empty() {
        "route".into()
    } else {
        cleaned
    }
}

impl Plan {
    /// The profile of a service's certificate files, shared by services
    /// with the same files; named after the certificate's file.
    fn profile_for(&mut self, s: &Service) -> String {
        let wanted = Profile {
            name: String::new(),
            cert: s.cert.clone(),
            key: s.key.clone(),
            ca: s.ca_file.clone(),
            crls: s.crls.clone(),
            tls13_only: s.tls13_only,
            ocsp_url: s.ocsp_url.clone(),
        };
        if let Some(p) = self.profiles.iter().find(|p| {
            Profile {
                name: String::new(),
                ..(*p).clone()
            } == wanted
        }) {
            return p.name.clone();
        }
        let stem = s
            .cert
            .as_deref()
            .and_then(Path::file_stem)
            .map(|n| sanitise(&n.to_string_lossy()))
            .unwrap_or_else(|| "stunnel".into());
        let mut name = stem.clone();
        let mut n = 2;
        while self.profiles.iter().any(|p| p.name == name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        self.profiles.push(Profile {
            name: name.clone(),
            ..wanted
        });
        name
    }

    /// The TLS listener of a server section: whom it admits. Returns the
    /// allow list and whether the listener asks no certificate.
    fn server_side(
        &mut self,
        services: &[Service],
        i: usize,
        (profile, route): (&str, &str),
        notes: &mut Vec<String>,
    ) -> (Option<Vec<String>>, bool) {
        let s = &services[i];
        revocation_note(s, notes);
        if s.cert.is_none() {
            notes.push(
                "no `cert`: a TLS listener needs one; add cert and key to the profile".into(),
            );
        }
        if s.ca_file.is_none() {
            notes.push(format!(
                "no CAfile: guichet cannot check client certificates without a CA, so this listener asks none (client_auth = \"none\"): any client may connect, as with stunnel; add `ca` to [tls.{profile}] and an allowlist to admit only known applications"
            ));
            return (None, true);
        }
        let level = s
            .check
            .level
            .map_or("no verify".to_string(), |l| format!("verify = {l}"));
        if !s.check.required {
            notes.push(format!(
                "stunnel did not require a client certificate ({level}); guichet requires one from a listed application: clients without one are now refused (client_auth = \"none\" on the route would admit anyone, as stunnel did)"
            ));
        }
        let (certs, tried) = if s.check.pinned {
            pinned_certs(s)
        } else {
            peer_certs(services, i)
        };
        let mut names = Vec::new();
        let mut listed = Vec::new();
        for cert in &certs {
            let name = self.app_for(cert, s.check.pinned);
            listed.push(format!(
                "{name} ({}, from {})",
                cert.id.subject,
                cert.path.display()
            ));
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let before = if s.check.pinned {
            format!("stunnel admitted the certificates listed in the CAfile ({level})")
        } else if s.check.chain {
            let ca = s
                .ca_file
                .as_deref()
                .and_then(|p| read_all(p).into_iter().next());
            let issuer = ca.map_or("its CAfile".to_string(), |c| c.subject.to_string());
            format!("stunnel admitted any certificate issued by {issuer} ({level})")
        } else {
            format!("stunnel did not verify client certificates ({level})")
        };
        if names.is_empty() {
            notes.push(format!(
                "{before}; guichet admits only listed applications, and none could be read ({}): the allowlist is EMPTY and `guichet check` refuses the route until it lists one. Add the partner, by hand as an [[app]] (cn, issuer_dn, fingerprint, ...) named in this route's `allow`, or with `guichet apps add -c <config> --name NAME --cert PARTNER.pem --allow-on {}` once the config is otherwise valid",
                if tried.is_empty() { "no certificate of the peer is named in the imported files, and none lies beside the CAfile".to_string() } else { tried.join("; ") },
                route
            ));
        } else {
            notes.push(format!(
                "{before}; guichet admits only listed applications: {}. Another certificate of the same CA is now refused; add partners with `guichet apps add`",
                listed.join(", ")
            ));
        }
        (Some(names), false)
    }

    /// The `[[app]]` for a certificate: its CN, OU and issuer (as `guichet
    /// apps add` writes by default), or its fingerprint when stunnel
    /// pinned it. Reuses an identical entry.
    fn app_for(&mut self, cert: &Cert, pinned: bool) -> String {
        let id = &cert.id;
        let mut criteria = Vec::new();
        if pinned {
            criteria.push(("fingerprint", id.fingerprint.to_string()));
        } else {
            if let Some(cn) = id.subject.common_name() {
                criteria.push(("cn", cn.to_string()));
            }
            if let Some(ou) = id.subject.values("OU").next() {
                criteria.push(("ou", ou.to_string()));
            }
            if !id.issuer.is_empty() {
                criteria.push(("issuer_dn", id.issuer.to_string()));
            }
            if criteria.is_empty() {
                criteria.push(("fingerprint", id.fingerprint.to_string()));
            }
        }
        if let Some(app) = self.apps.iter().find(|a| a.criteria == criteria) {
            return app.name.clone();
        }
        let base = id
            .subject
            .common_name()
            .map(sanitise)
            .or_else(|| {
                cert.path
                    .file_stem()
                    .map(|s| sanitise(&s.to_string_lossy()))
            })
            .unwrap_or_else(|| "partner".into())
            .to_ascii_lowercase();
        let mut name = base.clone();
        let mut n = 2;
        while self.apps.iter().any(|a| a.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.apps.push(App {
            name: name.clone(),
            criteria,
            source: format!(
                "{} (subject \"{}\", sha256 {})",
                cert.path.display(),
                id.subject,
                id.fingerprint
            ),
        });
        name
    }
}

/// stunnel without CRLfile checked no revocation; guichet refuses peers
/// whose revocation it cannot establish unless told otherwise.
fn revocation_note(s: &Service, notes: &mut Vec<String>) {
    if s.crls.is_empty() && s.ocsp_url.is_none() && s.ca_file.is_some() {
        notes.push(
            "stunnel checked no revocation (no CRLfile): the profile says crl_unknown = \"allow\" to keep that; add the CA's CRL (`crl = [...]`) and remove it"
                .into(),
        );
    }
}

/// A client section: plain in, TLS out, the server's name checked.
fn client_route(
    services: &[Service],
    i: usize,
    name: &str,
    profile: String,
    notes: &mut Vec<String>,
) -> Route {
    let s = &services[i];
    revocation_note(s, notes);
    if s.ca_file.is_none() {
        notes.push(format!(
            "no CAfile: guichet always verifies the server's certificate and needs the CA that issued it; add `ca` to [tls.{profile}] (`guichet check` refuses the route until then)"
        ));
    }
    match (s.check.chain, s.check.pinned) {
        (false, false) => notes.push(format!(
            "stunnel did not verify the server's certificate ({}); guichet verifies its chain against the CA and its name",
            s.check.level.map_or("no verify".into(), |l| format!("verify = {l}"))
        )),
        (_, true) => notes.push(
            "not carried over: the server's pinned certificate (verify = 3/4 or verifyPeer); guichet verifies the server by its chain and name"
                .into(),
        ),
        _ => {}
    }
    let mut forward = s.connect.clone();
    // In a merged config the other file's listener is on this host.
    let peers: Vec<&Service> = services
        .iter()
        .filter(|p| !p.client && p.file != s.file && p.accept.port() == forward.port)
        .collect();
    let original = forward.host.clone();
    if let [peer] = peers.as_slice() {
        if !is_local(&forward.host) {
            forward.host = "127.0.0.1".into();
            notes.push(format!(
                "connect = {}:{}: that is [{}] of the other imported file, in this same config: forwarded to 127.0.0.1:{} (its listener), the server name stays {original:?}",
                original, s.connect.port, peer.section, forward.port
            ));
        }
    }
    let (server_name, why) = match &s.name_check {
        Some((name, option)) => (name.clone(), format!("as {option} asked")),
        None => (original.clone(), "the host it dials".to_string()),
    };
    let checked = if stunnel_checked(&s.name_check) {
        format!("the server's name is checked ({why}): its certificate must carry {server_name:?} in its subjectAltName")
    } else {
        format!(
            "the server's name is now checked: stunnel did not check it (no checkHost), guichet checks that the server's certificate carries {server_name:?} ({why}) in its subjectAltName"
        )
    };
    notes.push(checked);
    if let [peer] = peers.as_slice() {
        if let Some(cert) = peer.cert.as_deref().and_then(|p| read_cert(p).ok()) {
            if !carries(&cert.id, &server_name) {
                notes.push(format!(
                    "{} (the server's certificate) does not carry {server_name:?} in a subjectAltName{}: this name cannot be matched; reissue it with `guichet pki issue --ca DIR --name {server_name}` (see `guichet pki show {}`)",
                    cert.path.display(),
                    if cert.id.san_dns.is_empty() && cert.id.san_ip.is_empty() { " (it has none)" } else { "" },
                    cert.path.display()
                ));
            }
        }
    }
    let explicit = forward.host != original || s.name_check.is_some();
    Route {
        forward,
        listen_tls: None,
        forward_tls: Some(profile),
        server_name: explicit.then_some(server_name),
        ..base_route(s, name)
    }
}

/// checkHost and checkIP made stunnel check the name; sni did not.
fn stunnel_checked(name_check: &Option<(String, &'static str)>) -> bool {
    matches!(name_check, Some((_, "checkHost" | "checkIP")))
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A plain forward to a local port another route of the merged config
/// listens on goes round in a loop: the application that listened there
/// on stunnel's host cannot share the port with guichet.
fn loop_notes(plan: &mut Plan) {
    for (i, route) in plan.routes.iter().enumerate() {
        if route.forward_tls.is_some() || !is_local(&route.forward.host) {
            continue;
        }
        let Some(other) = plan.routes.iter().find(|r| {
            r.listen.port() == route.forward.port
                && (r.listen.ip().is_unspecified() || r.listen.ip().is_loopback())
        }) else {
            continue;
        };
        let note = format!(
            "forwards to {}, where route {:?} of this config listens: on one host that goes round in a loop (stunnel ran them on separate hosts, where that port was the application's). Point `forward` at the port the application listens on here",
            target(&route.forward),
            other.name
        );
        plan.notes[i].1.push(note);
    }
}
