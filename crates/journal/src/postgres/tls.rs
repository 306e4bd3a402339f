//! TLS to PostgreSQL, set in the `store` URL with libpq's own parameters:
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey`.
//!
//! The modes keep libpq's meaning, with two differences a security product
//! owes its operators:
//! - `prefer` and `allow` are refused: they fall back to plain TCP without a
//!   word when the server (or someone on the path) declines TLS;
//! - no `sslmode` means plain TCP (`disable`), never "TLS if offered";
//!   `guichet check` warns when such a database is off loopback.
//!
//! As in libpq, `require` with an `sslrootcert` verifies the chain
//! (`verify-ca`). `verify-ca` and `verify-full` need an explicit
//! `sslrootcert`: `~/.postgresql/root.crt` is not read. Handshakes use the
//! project's policy (TLS 1.2/1.3, AEAD suites with ECDHE only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guichet_tls::policy::{provider, versions};
use guichet_tls::MinVersion;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How the journal's connections to PostgreSQL are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    /// Plain TCP: bodies and the password cross the network in clear.
    Disable,
    /// Encrypted, but the server is not authenticated: whoever sits on
    /// the path can pose as the database.
    Require,
    /// The server's certificate chains to `sslrootcert`; its name is not
    /// checked, so any server holding a certificate of that CA passes.
    VerifyCa,
    /// Chain and name checked: the recommended mode.
    VerifyFull,
}

impl PgSslMode {
    /// The `sslmode` word for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            PgSslMode::Disable => "disable",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings taken out of a `store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsFiles {
    pub(super) mode: PgSslMode,
    /// CA bundle the server's certificate must chain to.
    pub(super) root_cert: Option<PathBuf>,
    /// Our client certificate and its key, for servers that ask for one.
    pub(super) client: Option<(PathBuf, PathBuf)>,
}

/// The URL parameters read here (tokio-postgres never sees them).
const OWN_PARAMETERS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// TLS parameters passed on to tokio-postgres unchanged.
const PASSED_PARAMETERS: [&str; 1] = ["sslnegotiation"];

/// What a path in a URL query may hold unencoded.
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why the TLS parameters of a journal URL cannot be used. The texts never
/// quote the URL, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UrlError {
    #[error("a URL parameter is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error(
        "URL parameter {0} is not supported; guichet reads sslmode, sslrootcert, \
         sslcert and sslkey (see README, \"PostgreSQL over TLS\")"
    )]
    Unsupported(String),
    #[error(
        "sslrootcert is given but TLS is not asked for: \
         add sslmode=verify-full (recommended)"
    )]
    RootWithoutTls,
    #[error(
        "sslmode={0} needs sslrootcert=FILE, the CA bundle that signed the \
         database's certificate (~/.postgresql/root.crt is not read)"
    )]
    NoRoot(&'static str),
    #[error(
        "sslmode={0} would fall back to plain TCP without a word when TLS is \
         declined, and guichet does not downgrade silently: use \
         sslmode=verify-full with sslrootcert (recommended), or sslmode=disable \
         for a database on loopback"
    )]
    Downgrade(&'static str),
    #[error("sslmode={0:?} is not one of disable, require, verify-ca, verify-full")]
    UnknownMode(String),
    #[error("sslcert and sslkey go together: give both or neither")]
    Unpaired,
    #[error(
        "sslcert is given but TLS is not asked for: \
         add sslmode=verify-full (recommended)"
    )]
    CertWithoutTls,
}

/// The TLS parameters of a URL, as written.
#[derive(Debug, Default)]
pub(super) struct TlsParameters([Option<String>; 4]);

impl TlsParameters {
    /// The effective mode and files, or why they contradict each other.
    pub(super) fn files(self) -> Result<TlsFiles, UrlError> {
        let [mode, root, cert, key] = self.0;
        tls_files(mode.as_deref(), root, cert, key)
    }
}

/// Splits `url` into the URL tokio-postgres parses (our parameters
/// removed) and the TLS settings. Errors never quote the URL.
#[cfg(test)]
fn split_url(url: &str) -> Result<(String, TlsFiles), UrlError> {
    let (rest, parameters) = split_parameters(url)?;
    Ok((rest, parameters.files()?))
}

/// Splits `url` into the URL tokio-postgres parses (our parameters
/// removed) and our parameters, unchecked. Errors never quote the URL.
pub(super) fn split_parameters(url: &str) -> Result<(String, TlsParameters), UrlError> {
    let (head, query) = split_query(url);
    let mut kept = Vec::new();
    let mut own: [Option<String>; 4] = Default::default();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key)?;
        match OWN_PARAMETERS.iter().position(|k| *k == key) {
            Some(i) => own[i] = Some(decode(value)?),
            None if key.starts_with("ssl") && !PASSED_PARAMETERS.contains(&key.as_str()) => {
                return Err(UrlError::Unsupported(key))
            }
            None => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((rest, TlsParameters(own)))
}

/// The URL before its query, and the query. tokio-postgres ends the
/// credentials at the first `@`, so a `?` before it belongs to them.
fn split_query(url: &str) -> (&str, Option<&str>) {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    match url[after_credentials..].find('?') {
        Some(i) => {
            let (head, query) = url.split_at(after_credentials + i);
            (head, Some(&query[1..]))
        }
        None => (url, None),
    }
}

fn decode(value: &str) -> Result<String, UrlError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| UrlError::NotUtf8)
}

/// The effective mode and files, or why they contradict each other.
fn tls_files(
    mode: Option<&str>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
) -> Result<TlsFiles, UrlError> {
    let mode = match (mode, root.is_some()) {
        (None, false) | (Some("disable"), false) => PgSslMode::Disable,
        (None | Some("disable"), true) => return Err(UrlError::RootWithoutTls),
        (Some("require"), false) => PgSslMode::Require,
        // libpq: "require" with a root certificate verifies the chain.
        (Some("require" | "verify-ca"), true) => PgSslMode::VerifyCa,
        (Some("verify-full"), true) => PgSslMode::VerifyFull,
        (Some("verify-ca"), false) => return Err(UrlError::NoRoot("verify-ca")),
        (Some("verify-full"), false) => return Err(UrlError::NoRoot("verify-full")),
        (Some("prefer"), _) => return Err(UrlError::Downgrade("prefer")),
        (Some("allow"), _) => return Err(UrlError::Downgrade("allow")),
        (Some(other), _) => return Err(UrlError::UnknownMode(other.to_string())),
    };
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err(UrlError::Unpaired),
    };
    if mode == PgSslMode::Disable && client.is_some() {
        return Err(UrlError::CertWithoutTls);
    }
    Ok(TlsFiles {
        mode,
        root_cert: root.map(PathBuf::from),
        client,
    })
}

/// `url` with relative `sslrootcert`, `sslcert` and `sslkey` paths made
/// absolute against `base` (the config file's folder, as for every other
/// file guichet reads). Anything it cannot read is left for
/// [`split_parameters`] and [`TlsParameters::files`] to report.
pub(crate) fn resolve_files(url: &str, base: &Path) -> String {
    let (head, Some(query)) = split_query(url) else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if OWN_PARAMETERS[1..].contains(&key) => match decode(value) {
                Ok(path) if !path.is_empty() && Path::new(&path).is_relative() => {
                    let absolute = base.join(path);
                    let text = absolute.to_string_lossy();
                    format!("{key}={}", utf8_percent_encode(&text, PATH_SET))
                }
                _ => pair.to_string(),
            },
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// Why the TLS files of a journal URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum FilesError {
    #[error("{0}")]
    Protocol(rustls::Error),
    #[error("{0}")]
    Material(guichet_tls::MaterialError),
    #[error("{}: {error}", path.display())]
    Root { path: PathBuf, error: rustls::Error },
    #[error("sslcert/sslkey: {0}")]
    ClientCert(rustls::Error),
}

impl TlsFiles {
    /// The rustls configuration for these settings (`None` for plain
    /// TCP), the files read and checked now: a key others can read is
    /// refused, as for every TLS profile.
    pub(super) fn client_config(&self) -> Result<Option<ClientConfig>, FilesError> {
        if self.mode == PgSslMode::Disable {
            return Ok(None);
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(MinVersion::Tls12))
            .map_err(FilesError::Protocol)?;
        let builder = match (self.mode, self.roots()?) {
            (PgSslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
            // verify-ca (with roots) and require (without).
            (_, roots) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(WithoutName {
                    roots,
                    provider: provider(),
                })),
        };
        let mut config = match &self.client {
            Some((cert, key)) => {
                let chain = guichet_tls::material::load_certs(cert, "client certificate (sslcert)")
                    .map_err(FilesError::Material)?;
                let key = guichet_tls::material::load_key(key).map_err(FilesError::Material)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(FilesError::ClientCert)?
            }
            None => builder.with_no_client_auth(),
        };
        // What PostgreSQL 17 expects; earlier servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Some(config))
    }

    fn roots(&self) -> Result<Option<Arc<RootCertStore>>, FilesError> {
        let Some(path) = &self.root_cert else {
            return Ok(None);
        };
        let certs = guichet_tls::material::load_certs(path, "CA bundle (sslrootcert)")
            .map_err(FilesError::Material)?;
        let mut store = RootCertStore::empty();
        for cert in certs {
            store.add(cert).map_err(|error| FilesError::Root {
                path: path.clone(),
                error,
            })?;
        }
        Ok(Some(Arc::new(store)))
    }
}

/// The server verifiers that do not compare the name dialled:
/// `verify-ca` (roots: the server's chain must lead to them, and carry
/// serverAuth) and `require` (no roots: encryption only). The handshake's
/// signature is checked against the certificate presented either way, so
/// the session key is the server's.
#[derive(Debug)]
struct WithoutName {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for WithoutName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn handshake_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// A hint appended to a failed handshake's text: what the operator
/// should look at.
pub(super) fn hint(error_text: &str) -> &'static str {
    if error_text.contains("UnknownIssuer") || error_text.contains("BadSignature") {
        " (the database's certificate does not chain to sslrootcert: is it the CA that signed it?)"
    } else if error_text.contains("not valid for name") || error_text.contains("NotValidForName") {
        " (the database's certificate does not name the host dialled: use the name it \
         carries in the URL, with hostaddr=IP if needed, or sslmode=verify-ca)"
    } else if error_text.contains("Expired") {
        " (the database's certificate has expired)"
    } else if error_text.contains("server does not support TLS") {
        " (the database has ssl = off)"
    } else if error_text.contains("no encryption") {
        " (the database admits only TLS sessions: set sslmode=verify-full with sslrootcert)"
    } else if error_text.contains("client certificate") {
        " (the database asks for a client certificate: give sslcert and sslkey)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(url: &str) -> Result<TlsFiles, String> {
        split_url(url)
            .map(|(_, files)| files)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_sslmode_is_plain_tcp_and_the_url_is_untouched() {
        let url = "postgres://u:p@db/x?application_name=a";
        let (rest, tls) = split_url(url).unwrap();
        assert_eq!(rest, url);
        assert_eq!(tls.mode, PgSslMode::Disable);
    }

    #[test]
    fn own_parameters_are_removed_and_others_kept() {
        let url = "postgres://u:p?w@db:5432/x?sslmode=verify-full&connect_timeout=3\
                   &sslrootcert=/etc/ca%20bundle.pem&sslcert=/c.pem&sslkey=/k.pem";
        let (rest, tls) = split_url(url).unwrap();
        assert_eq!(rest, "postgres://u:p?w@db:5432/x?connect_timeout=3");
        assert_eq!(tls.mode, PgSslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca bundle.pem")));
        assert_eq!(
            tls.client,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let tls = files("postgres://db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.mode, PgSslMode::VerifyCa);
        let tls = files("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(tls.mode, PgSslMode::Require);
    }

    #[test]
    fn silent_downgrades_and_contradictions_are_refused() {
        for (url, says) in [
            ("postgres://db/x?sslmode=prefer", "does not downgrade"),
            ("postgres://db/x?sslmode=allow", "does not downgrade"),
            ("postgres://db/x?sslmode=verify-full", "needs sslrootcert"),
            ("postgres://db/x?sslmode=verify-ca", "needs sslrootcert"),
            (
                "postgres://db/x?sslrootcert=/ca.pem",
                "add sslmode=verify-full",
            ),
            (
                "postgres://db/x?sslmode=disable&sslcert=/c&sslkey=/k",
                "not asked",
            ),
            ("postgres://db/x?sslmode=require&sslcert=/c", "go together"),
            ("postgres://db/x?sslmode=on", "not one of"),
            (
                "postgres://db/x?sslmode=require&sslcrl=/x",
                "sslcrl is not supported",
            ),
        ] {
            let error = files(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn relative_files_are_taken_from_the_config_folder() {
        let url = "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=pki/ca.pem\
                   &sslcert=/abs/c.pem&sslkey=my%20key.pem&application_name=g";
        let resolved = resolve_files(url, Path::new("/etc/guichet"));
        assert_eq!(
            resolved,
            "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=/etc/guichet/pki/ca.pem\
             &sslcert=/abs/c.pem&sslkey=/etc/guichet/my%20key.pem&application_name=g"
        );
        let tls = files(&resolved).unwrap();
        assert_eq!(
            tls.client,
            Some((
                PathBuf::from("/abs/c.pem"),
                PathBuf::from("/etc/guichet/my key.pem")
            ))
        );
    }
}
