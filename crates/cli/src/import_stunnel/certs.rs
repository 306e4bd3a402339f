//! The certificates the import reads to fill allowlists and check names:
//! the other side's `cert`, the files beside a CAfile, a CAfile's pinned
//! certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use guichet_tls::Identity;

use super::service::Service;

/// A certificate read from disk.
pub(super) struct Cert {
    pub path: PathBuf,
    pub id: Identity,
}

pub(super) fn read_cert(path: &Path) -> Result<Cert, String> {
    let certs =
        guichet_tls::material::load_certs(path, "certificate").map_err(|e| e.to_string())?;
    let first = certs
        .first()
        .ok_or_else(|| format!("{} holds no certificate", path.display()))?;
    let id = Identity::from_der(first).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Cert {
        path: path.to_path_buf(),
        id,
    })
}

/// Every certificate in a PEM file (a CAfile may hold several).
pub(super) fn read_all(path: &Path) -> Vec<Identity> {
    guichet_tls::material::load_certs(path, "certificate")
        .map(|certs| {
            certs
                .iter()
                .filter_map(|der| Identity::from_der(der).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The certificates of the peers that connect to server section `i`: the
/// `cert` of client sections of the other files that connect to its port;
/// failing that, the certificates beside its CAfile (not its own, not the
/// CA's). Also says what was tried and could not be read.
pub(super) fn peer_certs(services: &[Service], i: usize) -> (Vec<Cert>, Vec<String>) {
    let s = &services[i];
    let mut tried = Vec::new();
    let mut found = Vec::new();
    let named = services
        .iter()
        .filter(|c| c.client && c.file != s.file && c.connect.port == s.accept.port());
    for peer in named {
        if let Some(path) = &peer.cert {
            match read_cert(path) {
                Ok(cert) => found.push(cert),
                Err(e) => tried.push(format!("the peer's cert {}: {e}", path.display())),
            }
        }
    }
    if found.is_empty() {
        found = beside_ca(s, &mut tried);
    }
    (found, tried)
}

/// Leaf certificates in the CAfile's folder, issued by that CA, other
/// than the section's own.
fn beside_ca(s: &Service, tried: &mut Vec<String>) -> Vec<Cert> {
    let Some(ca_file) = &s.ca_file else {
        return Vec::new();
    };
    let ca = read_all(ca_file);
    let own = s
        .cert
        .as_deref()
        .and_then(|p| read_cert(p).ok())
        .map(|c| c.id.fingerprint);
    let dir = ca_file.parent().unwrap_or(Path::new("/"));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tried.push(format!("the CAfile's folder {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| matches!(x.to_str(), Some("crt" | "pem" | "cer")))
        })
        .filter(|p| p != ca_file)
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| read_cert(p).ok())
        .filter(|c| !c.id.is_ca && Some(c.id.fingerprint) != own)
        .filter(|c| ca.is_empty() || ca.iter().any(|a| a.subject == c.id.issuer))
        .collect()
}

/// verify 3/4: the certificates stunnel pinned are those of the CAfile
/// that are not CAs.
pub(super) fn pinned_certs(s: &Service) -> (Vec<Cert>, Vec<String>) {
    let Some(ca_file) = &s.ca_file else {
        return (Vec::new(), Vec::new());
    };
    let mut tried = Vec::new();
    let certs = match guichet_tls::material::load_certs(ca_file, "certificate") {
        Ok(certs) => certs
            .iter()
            .filter_map(|der| Identity::from_der(der).ok())
            .filter(|id| !id.is_ca)
            .map(|id| Cert {
                path: ca_file.clone(),
                id,
            })
            .collect(),
        Err(e) => {
            tried.push(format!("the CAfile: {e}"));
            Vec::new()
        }
    };
    (certs, tried)
}

pub(super) fn carries(id: &Identity, name: &str) -> bool {
    match name.parse::<IpAddr>() {
        Ok(ip) => id.san_ip.contains(&ip),
        Err(_) => id
            .san_dns
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name) || wildcard(d, name)),
    }
}

fn wildcard(pattern: &str, name: &str) -> bool {
    pattern
        .strip_prefix("*.")
        .and_then(|suffix| {
            name.split_once('.')
                .map(|(_, rest)| rest.eq_ignore_ascii_case(suffix))
        })
        .unwrap_or(false)
}
