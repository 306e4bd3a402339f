//! Certificate verifiers that wrap the webpki ones to add the allowlist and
//! to remember what the peer presented.
//!
//! A failed handshake only yields an error; the log must still name the
//! certificate that was refused. The verifiers run synchronously inside the
//! handshake future's poll, so they write what they saw into a task-local
//! slot that `endpoint::observe` scopes around each handshake.

use std::cell::RefCell;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use crate::allowlist::{Allowlist, AppName};
use crate::crl::{LearntPoints, NextUpdates, StaleHook};
use crate::identity::Identity;
use crate::material::Material;
use crate::ocsp::{in_handshake as ocsp_in_handshake, OcspChecker};
use crate::policy::{CrlExpired, RevocationPolicy};

/// What the verifiers saw during one handshake.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub presented: Option<CertificateDer<'static>>,
    pub admitted: Option<(AppName, Arc<Identity>)>,
    /// The profile's OCSP checker, set before the handshake.
    pub ocsp: Option<Arc<OcspChecker>>,
    /// The OCSP status was settled inside the handshake (cache or staple).
    pub ocsp_settled: bool,
}

tokio::task_local! {
    pub(crate) static OBSERVED: RefCell<Observed>;
}

fn record_presented(cert: &CertificateDer<'_>) {
    // Outside a scoped handshake (never in guichet's own paths) there is
    // simply nothing to record into.
    let _ = OBSERVED.try_with(|o| o.borrow_mut().presented = Some(cert.clone().into_owned()));
}

fn record_admitted(app: &AppName, identity: Identity) {
    let _ =
        OBSERVED.try_with(|o| o.borrow_mut().admitted = Some((app.clone(), Arc::new(identity))));
}

pub(crate) fn observed_ocsp() -> Option<Arc<OcspChecker>> {
    OBSERVED
        .try_with(|o| o.borrow().ocsp.clone())
        .ok()
        .flatten()
}

pub(crate) fn record_ocsp_settled() {
    let _ = OBSERVED.try_with(|o| o.borrow_mut().ocsp_settled = true);
}

/// Handshake signatures are checked by the wrapped webpki verifier as is.
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// What the verifiers add to webpki's revocation checks.
///
/// webpki checks nothing at all when it holds no CRL, so a profile with no
/// revocation source would admit every peer of its CA: with
/// `crl_unknown = "refuse"` (the default) such peers are refused with
/// `revocation_unknown` instead, unless the endpoint checks peers with
/// OCSP (its checker is in the handshake's observation slot).
#[derive(Debug, Clone)]
pub(crate) struct RevocationGuard {
    pub refuse_without_crl: bool,
    /// Distribution points of peers to fetch (`crl_from_certificates`).
    pub learn: Option<LearntPoints>,
    /// `crl_expired = "warn"`: peers admitted under a stale CRL are told
    /// to this hook.
    pub stale: Option<(NextUpdates, StaleHook)>,
}

impl RevocationGuard {
    pub fn new(material: &Material, policy: RevocationPolicy) -> Self {
        RevocationGuard {
            refuse_without_crl: material.crls.is_empty() && !policy.allow_unknown,
            learn: material.learn.clone(),
            stale: match (&material.on_stale, policy.expired) {
                (Some(hook), CrlExpired::Warn) => Some((
                    NextUpdates::of(material.crls.iter().map(|c| c.as_ref())),
                    hook.clone(),
                )),
                _ => None,
            },
        }
    }

    /// Applies the guard to webpki's verdict on `end_entity`.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        verdict: Result<(), Error>,
        now: UnixTime,
    ) -> Result<(), Error> {
        let unknown = Error::InvalidCertificate(CertificateError::UnknownRevocationStatus);
        let result = match verdict {
            // An endpoint with OCSP checks has its revocation source:
            // the OCSP check that follows settles the peer.
            Ok(()) if self.refuse_without_crl && observed_ocsp().is_none() => Err(unknown),
            other => other,
        };
        // Only a certificate that chains to our CA (admitted, or refused
        // for want of its CRL) teaches us where its CRL lives.
        if let Some(learn) = &self.learn {
            if matches!(
                &result,
                Ok(())
                    | Err(Error::InvalidCertificate(
                        CertificateError::UnknownRevocationStatus
                    ))
            ) {
                learn.learn(end_entity);
            }
        }
        if let (Ok(()), Some((next_updates, hook))) = (&result, &self.stale) {
            let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if next_updates.stale_for(end_entity, now) {
                hook.call();
            }
        }
        result
    }
}

/// Chain, validity and CRL checks by webpki, then the route's allowlist.
#[derive(Debug)]
pub(crate) struct AllowlistVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub allowlist: Allowlist,
    pub revocation: RevocationGuard,
}

impl ClientCertVerifier for AllowlistVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        record_presented(end_entity);
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ());
        self.revocation.check(end_entity, verdict, now)?;
        ocsp_in_handshake(end_entity, intermediates, &[])?;
        let identity = Identity::from_der(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        match self.allowlist.admit(&identity) {
            Some(app) => {
                record_admitted(app, identity);
                Ok(ClientCertVerified::assertion())
            }
            None => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    delegate_signature_checks!();
}

/// webpki's server verification (chain, CRLs and the dialled name), keeping
/// a copy of the presented certificate for the refusal log.
#[derive(Debug)]
pub(crate) struct RecordingServerVerifier {
    pub inner: Arc<WebPkiServerVerifier>,
    pub revocation: RevocationGuard,
}

impl ServerCertVerifier for RecordingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        record_presented(end_entity);
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        self.revocation.check(end_entity, verdict, now)?;
        ocsp_in_handshake(end_entity, intermediates, ocsp_response)?;
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!();
}
