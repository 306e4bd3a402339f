//! One stunnel service read into what guichet needs of it: which side is
//! TLS, where it listens and forwards, its certificate files, how it
//! checked its peer. Options it does not carry over become notes here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::options::{is_mapped, process_reason, service_reason};
use super::parse::{Opt, Section, StunnelFile};

/// A `host:port` a service connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    pub host: String,
    pub port: u16,
}

/// How stunnel checked the peer's certificate (`verify`, `verifyChain`,
/// `verifyPeer`, `requireCert`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PeerCheck {
    /// `verify` as written (0 to 4), if it was.
    pub level: Option<u8>,
    /// The chain was verified against CAfile/CApath.
    pub chain: bool,
    /// The peer's certificate had to be one of CAfile's (pinned).
    pub pinned: bool,
    /// A server section refused clients without a certificate.
    pub required: bool,
}

/// A stunnel service, interpreted.
#[derive(Debug, Clone)]
pub(super) struct Service {
    /// Index of its file among those imported.
    pub file: usize,
    pub section: String,
    pub line: usize,
    /// `client = yes`: plain in, TLS out.
    pub client: bool,
    pub accept: SocketAddr,
    pub connect: HostPort,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
    pub check: PeerCheck,
    /// `checkHost`, `checkIP` or `sni`, in that order of preference.
    pub name_check: Option<(String, &'static str)>,
    /// `sslVersion`/`sslVersionMin` asked for TLS 1.3 only.
    pub tls13_only: bool,
    pub ocsp_url: Option<String>,
    pub idle_timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    /// What changes in meaning, or is not carried over, for this section.
    pub notes: Vec<String>,
}

/// Notes for the options of a file's global part that only concern the
/// stunnel process; the service options there are returned as defaults.
pub(super) fn global_options(file: &StunnelFile, notes: &mut Vec<String>) -> Vec<Opt> {
    let mut defaults = Vec::new();
    for opt in &file.global {
        match process_reason(&opt.lower) {
            Some(reason) => notes.push(not_carried(opt, reason)),
            None => defaults.push(opt.clone()),
        }
    }
    defaults
}

pub(super) fn not_carried(opt: &Opt, reason: &str) -> String {
    format!(
        "not carried over: {} = {} (line {}): {reason}",
        opt.key, opt.value, opt.line
    )
}

/// Reads one section, with the file's global service options as defaults.
pub(super) fn read(
    file_index: usize,
    file: &StunnelFile,
    defaults: &[Opt],
    section: &Section,
) -> anyhow::Result<Service> {
    let mut b = Builder::default();
    for opt in defaults {
        b.take(file, opt)?;
    }
    // A section's own connect replaces the global one.
    if section.options.iter().any(|o| o.lower == "connect") {
        b.connect.clear();
    }
    for opt in &section.options {
        b.take(file, opt)?;
    }
    let at = format!("{}: [{}] (line {})", file.shown, section.name, section.line);
    let accept = match b.accept.take() {
        Some(opt) => listen_addr(&opt, &mut b.notes)
            .with_context(|| format!("{at}: accept = {}", opt.value))?,
        None => bail!("{at}: no `accept`: a section needs accept (where it listens) and connect (where it forwards)"),
    };
    let connect = match b.connect.first() {
        Some(opt) => host_port(&opt.value)
            .with_context(|| format!("{at}: connect = {} (line {})", opt.value, opt.line))?,
        None => bail!("{at}: no `connect`: a section needs accept (where it listens) and connect (where it forwards)"),
    };
    for extra in b.connect.iter().skip(1) {
        b.notes.push(not_carried(
            extra,
            "guichet forwards to one target (the first connect); stunnel's round-robin or failover over several is not carried",
        ));
    }
    if !b.client {
        b.server_name_options();
    }
    let check = b.peer_check();
    let name_check = b
        .check_host
        .map(|h| (h, "checkHost"))
        .or(b.check_ip.map(|ip| (ip, "checkIP")))
        .or(b.sni.filter(|_| b.client).map(|s| (s, "sni")));
    Ok(Service {
        file: file_index,
        section: section.name.clone(),
        line: section.line,
        client: b.client,
        accept,
        connect,
        cert: b.cert,
        key: b.key,
        ca_file: b.ca_file,
        crls: b.crls,
        check,
        name_check,
        tls13_only: b.tls13_only,
        ocsp_url: b.ocsp_url,
        idle_timeout: b.idle_timeout,
        connect_timeout: b.connect_timeout,
        notes: b.notes,
    })
}

/// The options of a section, gathered in file order (later ones win).
#[derive(Default)]
struct Builder {
    client: bool,
    accept: Option<Opt>,
    connect: Vec<Opt>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    crls: Vec<PathBuf>,
    level: Option<u8>,
    verify_chain: bool,
    verify_peer: bool,
    require_cert: Option<bool>,
    check_host: Option<String>,
    check_ip: Option<String>,
    sni: Option<String>,
    tls13_only: bool,
    ocsp_url: Option<String>,
    idle_timeout: Option<u64>,
    connect_timeout: Option<u64>,
    notes: Vec<String>,
}

impl Builder {
    fn take(&mut self, file: &StunnelFile, opt: &Opt) -> anyhow::Result<()> {
        let at = || format!("{}:{}: {} = {}", file.shown, opt.line, opt.key, opt.value);
        let path = || resolve(file.dir(), &opt.value);
        match opt.lower.as_str() {
            "client" => self.client = yes_no(&opt.value).with_context(at)?,
            "accept" => self.accept = Some(opt.clone()),
            "connect" => self.connect.push(opt.clone()),
            "cert" => self.cert = Some(path()),
            "key" => self.key = Some(path()),
            "cafile" => self.ca_file = Some(path()),
            "capath" => self.notes.push(not_carried(
                opt,
                "a folder of hashed CA certificates: name the CA file with `ca` in the TLS profile (cat the CAs into one PEM file)",
            )),
            "crlfile" => self.crls.push(path()),
            "crlpath" => self.crl_path(opt, &path()),
            "verify" => {
                let level = opt.value.parse::<u8>().ok().filter(|l| *l <= 4);
                self.level = Some(level.with_context(|| format!("{}: use 0 to 4", at()))?);
            }
            "verifychain" => self.verify_chain = yes_no(&opt.value).with_context(at)?,
            "verifypeer" => self.verify_peer = yes_no(&opt.value).with_context(at)?,
            "requirecert" => self.require_cert = Some(yes_no(&opt.value).with_context(at)?),
            "checkhost" => self.check_host = Some(opt.value.clone()),
            "checkip" => self.check_ip = Some(opt.value.clone()),
            "sni" => self.sni = Some(opt.value.clone()),
            "sslversion" | "sslversionmin" | "sslversionmax" => self.ssl_version(opt),
            "timeoutidle" => self.idle_timeout = Some(seconds(opt).with_context(at)?),
            "timeoutconnect" => self.connect_timeout = Some(seconds(opt).with_context(at)?),
            "ocsp" => self.ocsp_url = Some(opt.value.clone()),
            other => self.unmapped(opt, other),
        }
        Ok(())
    }

    fn unmapped(&mut self, opt: &Opt, lower: &str) {
        debug_assert!(!is_mapped(lower));
        let note = match service_reason(lower).or_else(|| process_reason(lower)) {
            Some(reason) => not_carried(opt, reason),
            None => format!(
                "unknown stunnel option {} = {} (line {}): not carried over; check what it did",
                opt.key, opt.value, opt.line
            ),
        };
        self.notes.push(note);
    }

    /// A folder of CRLs: its files become the profile's `crl` list when
    /// it holds only plain CRL files.
    fn crl_path(&mut self, opt: &Opt, dir: &Path) {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect(),
            Err(e) => {
                return self.notes.push(not_carried(
                    opt,
                    &format!(
                        "cannot read the folder ({e}); list its CRL files in the profile's `crl`"
                    ),
                ))
            }
        };
        files.sort();
        if files.is_empty() {
            return self.notes.push(not_carried(
                opt,
                "the folder holds no file; list CRL files in the profile's `crl`",
            ));
        }
        self.notes.push(format!(
            "CRLpath = {} (line {}): its {} file(s) are listed in the profile's `crl`; a CRL added to the folder later must be added there too",
            opt.value,
            opt.line,
            files.len()
        ));
        self.crls.extend(files);
    }

    fn ssl_version(&mut self, opt: &Opt) {
        let version = opt.value.to_ascii_lowercase();
        let note = match (opt.lower.as_str(), version.as_str()) {
            ("sslversion" | "sslversionmin", "tlsv1.3") => {
                self.tls13_only = true;
                return;
            }
            ("sslversion", "tlsv1.2") => format!(
                "TLS 1.2 is no longer pinned (sslVersion = {}, line {}): guichet's profile allows TLS 1.2 and 1.3, with ECDHE and AEAD suites only; set min_version = \"1.3\" once every peer speaks it",
                opt.value, opt.line
            ),
            ("sslversionmin", "tlsv1.2") => return,
            ("sslversionmax", "tlsv1.2") => format!(
                "TLS 1.3 is no longer excluded (sslVersionMax = {}, line {}): guichet allows TLS 1.2 and 1.3",
                opt.value, opt.line
            ),
            ("sslversionmax", "tlsv1.3" | "all") => return,
            _ => format!(
                "{} = {} (line {}): guichet never speaks below TLS 1.2; its profile allows TLS 1.2 and 1.3 (peers limited to older versions are refused with protocol_version)",
                opt.key, opt.value, opt.line
            ),
        };
        self.notes.push(note);
    }

    /// In server mode the name options concern the client's certificate
    /// (checkHost, checkIP) or pick a service by the name asked (sni):
    /// guichet does neither.
    fn server_name_options(&mut self) {
        if let Some(host) = self.check_host.take() {
            self.notes.push(format!(
                "not carried over: checkHost = {host} (server mode: the client certificate's name); match it in the partner's [[app]] instead (san_dns = {host:?}, or cn)"
            ));
        }
        if let Some(ip) = self.check_ip.take() {
            self.notes.push(format!(
                "not carried over: checkIP = {ip} (server mode: the client certificate's address); match the partner with an [[app]] entry instead"
            ));
        }
        if let Some(sni) = self.sni.take() {
            self.notes.push(format!(
                "not carried over: sni = {sni} (server mode: a service chosen by the name the client asks); guichet has one route per listen address"
            ));
        }
    }

    /// stunnel 5: verify 1 and 2 verify the chain, 3 the chain and the
    /// pinned certificate, 4 the pinned certificate only; from 2 on a
    /// certificate is required.
    fn peer_check(&self) -> PeerCheck {
        let level = self.level.unwrap_or(0);
        let chain = self.verify_chain || (self.level.is_some() && (1..=3).contains(&level));
        let pinned = self.verify_peer || level >= 3;
        let required = self
            .require_cert
            .unwrap_or(level >= 2 || self.verify_chain || self.verify_peer);
        PeerCheck {
            level: self.level,
            chain,
            pinned,
            required,
        }
    }
}

fn yes_no(value: &str) -> anyhow::Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!("expected yes or no"),
    }
}

fn seconds(opt: &Opt) -> anyhow::Result<u64> {
    opt.value
        .parse()
        .ok()
        .context("expected a number of seconds")
}

/// A path as stunnel would open it: relative ones from the config's folder.
fn resolve(dir: &Path, value: &str) -> PathBuf {
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// `accept`: `PORT` (every interface), `HOST:PORT` or `[V6]:PORT`.
fn listen_addr(opt: &Opt, notes: &mut Vec<String>) -> anyhow::Result<SocketAddr> {
    let value = opt.value.as_str();
    if let Ok(port) = value.parse::<u16>() {
        notes.push(format!(
            "accept = {value} (line {}) listened on every interface: written as 0.0.0.0:{port}",
            opt.line
        ));
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let target = host_port(value)?;
    let host = target.host.trim_matches(['[', ']']);
    if host == "*" {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            target.port,
        ));
    }
    let addr = (host, target.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(SocketAddr::is_ipv4).or_else(|| a.next()))
        .with_context(|| format!("{host} does not resolve here; write the address to listen on"))?;
    notes.push(format!(
        "accept = {value} (line {}): {host} resolves to {}, written as {addr}",
        opt.line,
        addr.ip()
    ));
    Ok(addr)
}

/// `connect`: `PORT` (this host) or `HOST:PORT`.
fn host_port(value: &str) -> anyhow::Result<HostPort> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(HostPort {
            host: "127.0.0.1".into(),
            port,
        });
    }
    let (host, port) = value
        .rsplit_once(':')
        .context("expected PORT or HOST:PORT")?;
    let port = port
        .parse::<u16>()
        .ok()
        .context("expected a port number (1 to 65535)")?;
    if host.is_empty() || port == 0 {
        bail!("expected PORT or HOST:PORT");
    }
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_stunnel::parse::parse;

    fn service(text: &str) -> anyhow::Result<Service> {
        let file = parse("/etc/stunnel/s.conf".into(), "s.conf", text).unwrap();
        let mut notes = Vec::new();
        let defaults = global_options(&file, &mut notes);
        read(0, &file, &defaults, &file.sections[0])
    }

    #[test]
    fn verify_levels() {
        let s = service("[a]\naccept=1\nconnect=2\nverify=2\n").unwrap();
        assert!(s.check.chain && s.check.required && !s.check.pinned);
        let s = service("[a]\naccept=1\nconnect=2\nverify=4\n").unwrap();
        assert!(!s.check.chain && s.check.pinned);
        let s = service("[a]\naccept=1\nconnect=2\n").unwrap();
        assert!(!s.check.chain && !s.check.required);
    }

    #[test]
    fn globals_are_defaults_and_paths_resolve() {
        let s = service("cert = c.pem\nverify = 2\n[a]\naccept = 127.0.0.1:1\nconnect = h:2\n")
            .unwrap();
        assert_eq!(s.cert.as_deref(), Some(Path::new("/etc/stunnel/c.pem")));
        assert!(s.check.required);
        assert_eq!(
            s.connect,
            HostPort {
                host: "h".into(),
                port: 2
            }
        );
    }

    #[test]
    fn missing_connect_names_the_section() {
        let e = service("[svc]\naccept = 1\n").unwrap_err();
        assert!(
            e.to_string().contains("[svc] (line 1): no `connect`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_options_are_reported() {
        let s = service("[a]\naccept=1\nconnect=2\nfrobnicate = 3\nciphers = HIGH\n").unwrap();
        let has = |start: &str| s.notes.iter().any(|n| n.starts_with(start));
        assert!(
            has("unknown stunnel option frobnicate = 3 (line 4)"),
            "{:?}",
            s.notes
        );
        assert!(
            has("not carried over: ciphers = HIGH (line 5)"),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn server_mode_name_options_are_reported_not_dropped() {
        let s = service("[a]\naccept=1\nconnect=2\nsni = x\ncheckHost = h\n").unwrap();
        assert!(s.name_check.is_none());
        let has = |start: &str| s.notes.iter().any(|n| n.starts_with(start));
        assert!(
            has("not carried over: sni = x (server mode"),
            "{:?}",
            s.notes
        );
        assert!(
            has("not carried over: checkHost = h (server mode"),
            "{:?}",
            s.notes
        );
        let c = service("[a]\nclient = yes\naccept=1\nconnect=h:2\nsni = x\n").unwrap();
        assert_eq!(c.name_check, Some(("x".to_string(), "sni")));
    }
}
