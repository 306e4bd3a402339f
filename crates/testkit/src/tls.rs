//! TLS for the simulators: the same policy and verification as the gateway
//! (guichet-tls), with settings a test bench needs and no allowlist file.

use std::path::PathBuf;
use std::sync::Arc;

use guichet_tls::{
    Allowlist, AppName, AppRule, ClientAuth, ClientTls, EndpointError, Identity, Material,
    MaterialError, ProfileFiles, RevocationPolicy, ServerName, ServerTls, TlsSettings,
};

/// How the sender reaches a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientOptions {
    /// CA bundle the server's certificate must chain to.
    pub ca: PathBuf,
    /// Our client certificate (and its key) for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name the server's certificate must carry; the host of `--to` when
    /// absent.
    pub server_name: Option<String>,
}

/// How the listener terminates TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When given, clients must present a certificate issued by one of the
    /// CAs of this bundle; when absent, no client certificate is asked for.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("`{0}` is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName(String),
}

impl TlsClientOptions {
    /// The client end, and the name to check the server against.
    pub fn build(&self, host: &str) -> Result<(ClientTls, ServerName<'static>), TlsSetupError> {
        let material = Material::load(&ProfileFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: Some(self.ca.clone()),
            ..ProfileFiles::default()
        })?;
        let client = ClientTls::new(&material, simulator_settings())?;
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsSetupError::ServerName(name.to_owned()))?;
        Ok((client, server_name))
    }
}

impl TlsServerOptions {
    pub(crate) fn build(&self) -> Result<ServerTls, TlsSetupError> {
        let material = Material::load(&ProfileFiles {
            cert: Some(self.cert.clone()),
            key: Some(self.key.clone()),
            ca: self.ca.clone(),
            ..ProfileFiles::default()
        })?;
        let auth = match self.ca {
            Some(_) => ClientAuth::Required(any_client_of(&material)),
            None => ClientAuth::Disabled,
        };
        Ok(ServerTls::new(&material, auth, simulator_settings())?)
    }
}

/// The simulators take no CRL: they check chains and names, and leave
/// revocation to the gateway under test, so they admit a peer whose
/// revocation status they cannot know.
fn simulator_settings() -> TlsSettings {
    TlsSettings {
        revocation: RevocationPolicy {
            allow_unknown: true,
            ..RevocationPolicy::default()
        },
        ..TlsSettings::default()
    }
}

/// An allowlist admitting every certificate issued directly by one of the
/// bundle's CAs: the chain is verified first, so matching the issuer DN
/// against the CA's subject admits exactly the CA's own leaves.
fn any_client_of(material: &Material) -> Allowlist {
    let rules = material
        .ca_certs
        .iter()
        .filter_map(|der| Identity::from_der(der).ok())
        .map(|ca| {
            let mut rule = AppRule::named(AppName::new(&format!("client of {}", ca.subject)));
            rule.issuer_dn = Some(ca.subject);
            Arc::new(rule)
        })
        .collect();
    Allowlist::new(rules)
}
