//! The certificates of a run: a throwaway CA and one ECDSA P-256
//! certificate per side, from guichet's own test PKI, used by every peer.
//! The HTTPS gateway scenarios reuse them: `dpi` is the gateway's server
//! certificate, `eai` the admitted partner's client certificate, and
//! `intruder` a certificate of the same CA that no allowlist admits.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use guichet_pki::{CaOptions, IssueRequest, KeySource, KeyType};

/// One side's identity, in the three forms the peers read.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate then key in one file (HAProxy's `crt`), mode 0600.
    pub combined: PathBuf,
}

/// The CA and both sides' identities.
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca: PathBuf,
    pub crl: PathBuf,
    /// The integration engine's side (client-side gateway), CN `eai`.
    pub eai: Identity,
    /// The patient record's side (server-side gateway), CN `dpi`.
    pub dpi: Identity,
    /// Issued by the same CA but on no allowlist, CN `intruder`: every
    /// gateway must refuse it.
    pub intruder: Identity,
}

/// Creates the CA and both certificates in `dir/pki`.
pub fn create(dir: &Path) -> anyhow::Result<Certs> {
    let pki = dir.join("pki");
    let ca = guichet_pki::init(
        &pki,
        &CaOptions {
            key_type: KeyType::EcdsaP256,
            ..CaOptions::default()
        },
    )
    .context("cannot create the benchmark CA")?;
    Ok(Certs {
        ca: ca.cert,
        crl: ca.crl,
        eai: identity(&pki, "eai")?,
        dpi: identity(&pki, "dpi")?,
        intruder: identity(&pki, "intruder")?,
    })
}

/// Issues `name` with DNS `name` and `localhost` and IP 127.0.0.1.
fn identity(pki: &Path, name: &str) -> anyhow::Result<Identity> {
    let request = IssueRequest {
        dns: vec!["localhost".to_owned()],
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        key: KeySource::Generate(KeyType::EcdsaP256),
        ..IssueRequest::new(name)
    };
    let files = guichet_pki::issue(pki, &request)
        .with_context(|| format!("cannot issue the {name} certificate"))?;
    let combined = pki.join(format!("{name}.combined.pem"));
    let mut both = fs::read(&files.cert)?;
    both.extend(fs::read(&files.key)?);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&combined)?
        .write_all(&both)?;
    Ok(Identity {
        cert: files.cert,
        key: files.key,
        combined,
    })
}
