//! Ready-to-use TLS server and client ends, built from loaded material.
//!
//! A route keeps one of each behind an `ArcSwap`; a reload builds new ones
//! and swaps them in, so established connections keep the configuration
//! they were accepted with.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use crate::allowlist::{Allowlist, AppName};
use crate::identity::Identity;
use crate::material::Material;
use crate::policy::{provider, versions, CrlExpired, MinVersion, RevocationPolicy};
use crate::refusal::{Presented, Refusal, RefusalReason};
use crate::verify::{
    AllowlistVerifier, Observed, RecordingServerVerifier, RevocationGuard, OBSERVED,
};

/// Protocol settings shared by both ends of a profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub min_version: MinVersion,
    pub revocation: RevocationPolicy,
}

/// Whether a listener asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Required, verified against the CA bundle and CRLs, then the allowlist.
    Required(Allowlist),
    /// No client certificate asked for (explicit opt-out in the route).
    Disabled,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("a TLS listener needs `cert` and `key` in its profile")]
    MissingOwnCert,
    #[error("verifying peers needs a `ca` bundle in the profile")]
    MissingCa,
    #[error("cannot use the CA bundle or CRLs: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    #[error("TLS configuration refused: {0}")]
    Rustls(rustls::Error),
}

// By hand rather than `#[from]`, which would also make the inner error a
// `source` and print it twice in a `{:#}` chain.
impl From<rustls::server::VerifierBuilderError> for EndpointError {
    fn from(e: rustls::server::VerifierBuilderError) -> Self {
        EndpointError::Verifier(e)
    }
}

impl From<rustls::Error> for EndpointError {
    fn from(e: rustls::Error) -> Self {
        EndpointError::Rustls(e)
    }
}

/// The peer admitted on a listener: which application, and its certificate.
#[derive(Debug, Clone)]
pub struct PeerApp {
    pub app: AppName,
    pub identity: Arc<Identity>,
}

/// The server end of a TLS listener.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    allowlist: Option<Allowlist>,
}

/// The client end of a TLS forward side.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
}

impl ServerTls {
    pub fn new(
        material: &Material,
        auth: ClientAuth,
        settings: TlsSettings,
    ) -> Result<Self, EndpointError> {
        Self::with_alpn(material, auth, settings, &[])
    }

    /// A server end that offers these ALPN protocols, in preference order
    /// (`h2`, `http/1.1` for HTTPS).
    pub fn with_alpn(
        material: &Material,
        auth: ClientAuth,
        settings: TlsSettings,
        alpn: &[&[u8]],
    ) -> Result<Self, EndpointError> {
        let own = material.own.as_ref().ok_or(EndpointError::MissingOwnCert)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(settings.min_version))?;
        let (builder, allowlist) = match auth {
            ClientAuth::Disabled => (builder.with_no_client_auth(), None),
            ClientAuth::Required(allowlist) => {
                let roots = material.roots.clone().ok_or(EndpointError::MissingCa)?;
                let mut webpki = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .with_crls(material.crls.iter().cloned());
                if !settings.revocation.whole_chain {
                    webpki = webpki.only_check_end_entity_revocation();
                }
                if settings.revocation.allow_unknown {
                    webpki = webpki.allow_unknown_revocation_status();
                }
                if settings.revocation.expired == CrlExpired::Refuse {
                    webpki = webpki.enforce_revocation_expiration();
                }
                let verifier = Arc::new(AllowlistVerifier {
                    inner: webpki.build()?,
                    allowlist: allowlist.clone(),
                    revocation: RevocationGuard::new(material, settings.revocation),
                });
                (builder.with_client_cert_verifier(verifier), Some(allowlist))
            }
        };
        let mut config = builder.with_single_cert(own.chain.clone(), own.key.clone_key())?;
        config.ignore_client_order = true;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            allowlist,
        })
    }

    /// Runs the server handshake within `deadline`.
    ///
    /// Returns the admitted application when client certificates are
    /// required, `None` when the route does not ask for them.
    pub async fn accept<IO>(
        &self,
        io: IO,
        deadline: Duration,
    ) -> Result<(server::TlsStream<IO>, Option<PeerApp>), Refusal>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (result, observed) = observe(deadline, self.acceptor.accept(io)).await;
        let stream = result.map_err(|e| refusal(e, &observed))?;
        let peer = match (&self.allowlist, observed.admitted) {
            (None, _) => None,
            (Some(_), Some((app, identity))) => Some(PeerApp { app, identity }),
            // A resumed session skips certificate verification: the
            // certificate comes back from the session and is matched again.
            (Some(allowlist), None) => Some(resumed_peer(allowlist, &stream)?),
        };
        Ok((stream, peer))
    }
}

fn resumed_peer<IO>(
    allowlist: &Allowlist,
    stream: &server::TlsStream<IO>,
) -> Result<PeerApp, Refusal> {
    let no_cert = || Refusal {
        reason: RefusalReason::NoCertificate,
        detail: "resumed session without a client certificate".into(),
        presented: None,
    };
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(no_cert)?;
    let identity = Identity::from_der(cert).map_err(|_| no_cert())?;
    match allowlist.admit(&identity) {
        Some(app) => Ok(PeerApp {
            app: app.clone(),
            identity: Arc::new(identity),
        }),
        None => Err(Refusal {
            reason: RefusalReason::NotAllowed,
            detail: "resumed session".into(),
            presented: Some(Presented::of(&identity)),
        }),
    }
}

impl ClientTls {
    pub fn new(material: &Material, settings: TlsSettings) -> Result<Self, EndpointError> {
        Self::with_alpn(material, settings, &[])
    }

    /// A client end that offers these ALPN protocols, in preference order.
    pub fn with_alpn(
        material: &Material,
        settings: TlsSettings,
        alpn: &[&[u8]],
    ) -> Result<Self, EndpointError> {
        let roots: Arc<RootCertStore> = material.roots.clone().ok_or(EndpointError::MissingCa)?;
        let mut webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .with_crls(material.crls.iter().cloned());
        if !settings.revocation.whole_chain {
            webpki = webpki.only_check_end_entity_revocation();
        }
        if settings.revocation.allow_unknown {
            webpki = webpki.allow_unknown_revocation_status();
        }
        if settings.revocation.expired == CrlExpired::Refuse {
            webpki = webpki.enforce_revocation_expiration();
        }
        let verifier = Arc::new(RecordingServerVerifier {
            inner: webpki.build()?,
            revocation: RevocationGuard::new(material, settings.revocation),
        });
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(settings.min_version))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &material.own {
            Some(own) => builder.with_client_auth_cert(own.chain.clone(), own.key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the client handshake within `deadline`, checking the server's
    /// certificate against `server_name`.
    pub async fn connect<IO>(
        &self,
        server_name: ServerName<'static>,
        io: IO,
        deadline: Duration,
    ) -> Result<client::TlsStream<IO>, Refusal>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (result, observed) = observe(deadline, self.connector.connect(server_name, io)).await;
        result.map_err(|e| refusal(e, &observed))
    }
}

/// Runs a handshake with a fresh observation slot and a deadline.
async fn observe<F, T>(deadline: Duration, handshake: F) -> (Result<T, HandshakeError>, Observed)
where
    F: Future<Output = std::io::Result<T>>,
{
    OBSERVED
        .scope(RefCell::new(Observed::default()), async move {
            let result = match tokio::time::timeout(deadline, handshake).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(e)) => Err(HandshakeError::Io(e)),
                Err(_) => Err(HandshakeError::Timeout(deadline)),
            };
            let observed = OBSERVED.with(|o| o.take());
            (result, observed)
        })
        .await
}

enum HandshakeError {
    Io(std::io::Error),
    Timeout(Duration),
}

fn refusal(error: HandshakeError, observed: &Observed) -> Refusal {
    let presented = observed
        .presented
        .as_ref()
        .and_then(|der| Identity::from_der(der).ok())
        .map(|id| Presented::of(&id));
    let (reason, detail) = match error {
        HandshakeError::Timeout(d) => (
            RefusalReason::HandshakeTimeout,
            format!("no complete handshake within {}s", d.as_secs_f32()),
        ),
        HandshakeError::Io(e) => (RefusalReason::from_io_error(&e), e.to_string()),
    };
    Refusal {
        reason,
        detail,
        presented,
    }
}
