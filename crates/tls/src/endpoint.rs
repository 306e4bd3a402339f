//! Ready-to-use TLS server and client ends, built from loaded material.
//!
//! A route keeps one of each behind an `ArcSwap`; a reload builds new ones
//! and swaps them in, so established connections keep the configuration
//! they were accepted with.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use crate::allowlist::{Allowlist, AppName};
use crate::identity::Identity;
use crate::material::Material;
use crate::ocsp::{self, OcspChecker, Stapler};
use crate::policy::{provider, versions, CrlExpired, MinVersion, RevocationPolicy};
use crate::refusal::{Presented, Refusal, RefusalReason};
use crate::verify::{
    AllowlistVerifier, Observed, RecordingServerVerifier, RevocationGuard, OBSERVED,
};

/// After a refused handshake, how long the connection stays open for the
/// client to read the alert, at most.
///
/// Closing a socket with unread bytes in its receive buffer (the rest of
/// the client's flight, or its first request under TLS 1.3) sends a reset,
/// and a reset can destroy the alert before the client reads it: the
/// partner then sees "connection reset" or "getpeername() failed" instead
/// of the reason. So guichet sends the alert, shuts its write side, and
/// reads what the client still sends until it closes, within these bounds,
/// which also cap how long a hostile peer keeps the connection.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The most bytes read (and discarded) while lingering after a refusal.
pub const REFUSAL_LINGER_BYTES: usize = 64 * 1024;

/// Protocol settings shared by both ends of a profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Lowest protocol version accepted on this profile.
    pub min_version: MinVersion,
    /// How far CRLs are checked, and what an expired CRL means.
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

/// Why a listener or a forward side cannot be built from its profile.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A listener has nothing to present without its certificate and key.
    #[error("a TLS listener needs `cert` and `key` in its profile")]
    MissingOwnCert,
    /// Peers cannot be verified without trust anchors.
    #[error("verifying peers needs a `ca` bundle in the profile")]
    MissingCa,
    /// rustls refused the CA bundle or the CRLs.
    #[error("cannot use the CA bundle or CRLs: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    /// Our own certificate is X.509 version 1, which rustls cannot use.
    #[error("our certificate ({subject}) is X.509 version 1 (no extensions): rustls refuses it; reissue it with `guichet pki issue` (or openssl x509 -req with an -extfile); `guichet check` shows how")]
    OwnCertVersion1 {
        /// The certificate's subject, to find it.
        subject: String,
    },
    /// rustls refused the configuration (key type, protocol versions, ...).
    #[error("TLS configuration refused: {0}")]
    Rustls(rustls::Error),
}

/// Refuses our own certificate up front when it is version 1: rustls would
/// only say `UnsupportedCertVersion`.
fn usable_own(own: &crate::material::OwnCert) -> Result<(), EndpointError> {
    let der = own.chain.first().map(|c| c.as_ref()).unwrap_or_default();
    if crate::identity::x509_version(der) == Some(1) {
        return Err(EndpointError::OwnCertVersion1 {
            subject: own.identity.subject.to_string(),
        });
    }
    Ok(())
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
    /// The allowlist entry that matched the peer's certificate.
    pub app: AppName,
    /// The peer's certificate, parsed once after the handshake.
    pub identity: Arc<Identity>,
}

/// The server end of a TLS listener.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    allowlist: Option<Allowlist>,
    /// Checks client certificates with OCSP (see [`ServerTls::with_ocsp`]).
    ocsp: Option<Arc<OcspChecker>>,
}

/// The client end of a TLS forward side.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    /// Checks server certificates with OCSP (see [`ClientTls::with_ocsp`]).
    ocsp: Option<Arc<OcspChecker>>,
}

impl ServerTls {
    /// The listener end for one profile: presents `material`'s certificate and,
    /// when `auth` requires it, admits only client certificates that chain to
    /// the profile's CA, pass its revocation checks and match the allowlist.
    /// Refuses to build without our own certificate, or without a CA bundle
    /// when client certificates are required.
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
        usable_own(own)?;
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
            ocsp: None,
        })
    }

    /// Runs the server handshake within `deadline`.
    ///
    /// Returns the admitted application when client certificates are
    /// required, `None` when the route does not ask for them. A refused
    /// client is given its alert to read before the connection closes
    /// (see [`REFUSAL_LINGER`]): this returns at most that much later than
    /// the refusal itself.
    pub async fn accept<IO>(
        &self,
        io: IO,
        deadline: Duration,
    ) -> Result<(server::TlsStream<IO>, Option<PeerApp>), Refusal>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_reporting(io, deadline, |_| {}).await
    }

    /// [`ServerTls::accept`], calling `report` with a refusal as soon as
    /// it is known, before the client is given time to read its alert:
    /// logs and metrics then tell the time of the refusal, not of the
    /// close.
    pub async fn accept_reporting<IO>(
        &self,
        io: IO,
        deadline: Duration,
        report: impl FnOnce(&Refusal),
    ) -> Result<(server::TlsStream<IO>, Option<PeerApp>), Refusal>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let handshake = async { self.acceptor.accept(io).into_fallible().await };
        let (result, observed) = observe(deadline, self.ocsp.clone(), handshake).await;
        let mut stream = match result {
            Ok(Ok(stream)) => stream,
            Ok(Err((error, io))) => {
                let refused = refusal(HandshakeError::Io(error), &observed);
                report(&refused);
                linger(io).await;
                return Err(refused);
            }
            Err(timeout) => {
                let refused = refusal(timeout, &observed);
                report(&refused);
                return Err(refused);
            }
        };
        let peer = match (&self.allowlist, observed.admitted) {
            (None, _) => None,
            (Some(_), Some((app, identity))) => Some(PeerApp { app, identity }),
            // A resumed session skips certificate verification: the
            // certificate comes back from the session and is matched again.
            (Some(allowlist), None) => match resumed_peer(allowlist, &stream) {
                Ok(peer) => Some(peer),
                Err(refused) => {
                    report(&refused);
                    // No alert fits after a completed handshake: the
                    // shutdown sends close_notify.
                    linger(stream).await;
                    return Err(refused);
                }
            },
        };
        if peer.is_some() {
            let chain = peer_chain(stream.get_ref().1);
            let left = deadline.saturating_sub(started.elapsed());
            let checked = finish_ocsp(
                self.ocsp.as_deref(),
                observed.ocsp_settled,
                chain,
                &mut stream,
                left,
            )
            .await;
            if let Err(refused) = checked {
                report(&refused);
                return Err(refused);
            }
        }
        Ok((stream, peer))
    }
}

impl ServerTls {
    /// Checks client certificates with OCSP and, with a stapler, staples
    /// our own certificate's response. Without a stapler the config is
    /// left as built.
    pub fn with_ocsp(
        mut self,
        checker: Option<Arc<OcspChecker>>,
        stapler: Option<Arc<Stapler>>,
    ) -> Self {
        self.ocsp = checker;
        if let Some(stapler) = stapler {
            let mut config = ServerConfig::clone(self.acceptor.config());
            config.cert_resolver = stapler.resolver();
            self.acceptor = TlsAcceptor::from(Arc::new(config));
        }
        self
    }
}

/// The peer's certificates, leaf first (also after a resumed session).
fn peer_chain(connection: &rustls::CommonState) -> Vec<CertificateDer<'static>> {
    connection.peer_certificates().unwrap_or_default().to_vec()
}

/// Asks the OCSP responder when the handshake did not settle the peer's
/// status (`settled`: from the cache or a staple). A refused peer is told
/// with close_notify, within a short bound: a peer that does not read must
/// not hold the task.
async fn finish_ocsp<S: AsyncWrite + Unpin>(
    checker: Option<&OcspChecker>,
    settled: bool,
    chain: Vec<CertificateDer<'static>>,
    stream: &mut S,
    left: Duration,
) -> Result<(), Refusal> {
    let Some(checker) = checker.filter(|_| !settled) else {
        return Ok(());
    };
    let refused = match ocsp::after_handshake(checker, &chain, left).await {
        Ok(()) => return Ok(()),
        Err(refused) => refused,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    Err(refused)
}

/// Closes a refused connection so that the client reads what was already
/// sent (the alert): shut the write side (FIN after the alert), then read
/// and discard until the client closes, within [`REFUSAL_LINGER`] and
/// [`REFUSAL_LINGER_BYTES`]. Only then is the socket dropped, with an
/// empty receive buffer in the normal case, hence no reset.
async fn linger<IO>(mut io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut read = 0;
        while read < REFUSAL_LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
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
    /// The dialling end for one profile: verifies the server's chain against
    /// the profile's CA bundle and its name against the one dialled, and
    /// presents our certificate when the profile has one. Refuses to build
    /// without a CA bundle.
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
        if let Some(own) = &material.own {
            usable_own(own)?;
        }
        let mut config = match &material.own {
            Some(own) => builder.with_client_auth_cert(own.chain.clone(), own.key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            ocsp: None,
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
        let started = Instant::now();
        let (result, observed) = observe(
            deadline,
            self.ocsp.clone(),
            self.connector.connect(server_name, io),
        )
        .await;
        let mut stream = match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refusal(HandshakeError::Io(e), &observed)),
            Err(timeout) => return Err(refusal(timeout, &observed)),
        };
        let chain = peer_chain(stream.get_ref().1);
        let left = deadline.saturating_sub(started.elapsed());
        finish_ocsp(
            self.ocsp.as_deref(),
            observed.ocsp_settled,
            chain,
            &mut stream,
            left,
        )
        .await?;
        Ok(stream)
    }

    /// Checks the server's certificate with OCSP: its stapled response
    /// when it sends one, else the responder.
    pub fn with_ocsp(mut self, checker: Option<Arc<OcspChecker>>) -> Self {
        self.ocsp = checker;
        self
    }
}

/// Runs a handshake with a fresh observation slot and a deadline; `Err`
/// when the deadline passed.
async fn observe<F, T>(
    deadline: Duration,
    ocsp: Option<Arc<OcspChecker>>,
    handshake: F,
) -> (Result<T, HandshakeError>, Observed)
where
    F: Future<Output = T>,
{
    let slot = Observed {
        ocsp,
        ..Observed::default()
    };
    OBSERVED
        .scope(RefCell::new(slot), async move {
            let result = tokio::time::timeout(deadline, handshake)
                .await
                .map_err(|_| HandshakeError::Timeout(deadline));
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
        HandshakeError::Io(e) => (
            RefusalReason::from_io_error(&e).refine(observed.presented.as_deref()),
            e.to_string(),
        ),
    };
    Refusal {
        reason,
        detail,
        presented,
    }
}
