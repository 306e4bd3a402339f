//! Why a peer was refused, in words an operator acts on.

use std::fmt;
use std::io;

use rustls::{CertificateError, Error as TlsError};

use crate::identity::{Fingerprint, Identity};

/// The reason a TLS peer was refused. The `as_str` form is a fixed label
/// set, safe for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The chain does not lead to a CA of the profile's `ca` bundle.
    UnknownCa,
    /// The peer's certificate is past its notAfter.
    Expired,
    /// The peer's certificate is before its notBefore (or a clock is wrong).
    NotYetValid,
    /// A CRL or an OCSP responder says the certificate is revoked.
    Revoked,
    /// The policy needs a revocation status and none could be had.
    RevocationUnknown,
    /// The extended key usage does not allow this role (client or server).
    WrongUsage,
    /// A valid certificate that no application of the route's allowlist matches.
    NotAllowed,
    /// A listener that requires client certificates got none.
    NoCertificate,
    /// The server's certificate does not name the host we dialled.
    NameMismatch,
    /// A signature in the chain does not verify, or uses an algorithm we refuse.
    BadSignature,
    /// An X.509 version 1 certificate (no extensions): webpki, hence
    /// rustls, accepts only version 3. Made by `openssl x509 -req` without
    /// an extension file, as many stunnel setups were.
    X509Version1,
    /// The server's certificate has no subjectAltName, so the dialled name
    /// cannot match (names are never read from the CN).
    NoSubjectAltName,
    /// Any other certificate defect: malformed, unsupported extension, ...
    BadCertificate,
    /// No protocol version, cipher suite or group in common with the policy.
    IncompatibleProtocol,
    /// The peer speaks only TLS 1.0 or 1.1, which the policy refuses.
    ProtocolVersion,
    /// The peer sent an alert: it refused us, usually our certificate.
    PeerAlert,
    /// The handshake did not finish before its deadline.
    HandshakeTimeout,
    /// The handshake failed for a reason none of the above covers.
    HandshakeFailed,
}

impl RefusalReason {
    /// Every reason, so that metrics can register each label up front.
    pub const ALL: [RefusalReason; 18] = [
        RefusalReason::UnknownCa,
        RefusalReason::Expired,
        RefusalReason::NotYetValid,
        RefusalReason::Revoked,
        RefusalReason::RevocationUnknown,
        RefusalReason::WrongUsage,
        RefusalReason::NotAllowed,
        RefusalReason::NoCertificate,
        RefusalReason::NameMismatch,
        RefusalReason::BadSignature,
        RefusalReason::X509Version1,
        RefusalReason::NoSubjectAltName,
        RefusalReason::BadCertificate,
        RefusalReason::IncompatibleProtocol,
        RefusalReason::ProtocolVersion,
        RefusalReason::PeerAlert,
        RefusalReason::HandshakeTimeout,
        RefusalReason::HandshakeFailed,
    ];

    /// The metric label: snake case, stable, never holds peer data.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::UnknownCa => "unknown_ca",
            RefusalReason::Expired => "expired",
            RefusalReason::NotYetValid => "not_yet_valid",
            RefusalReason::Revoked => "revoked",
            RefusalReason::RevocationUnknown => "revocation_unknown",
            RefusalReason::WrongUsage => "wrong_usage",
            RefusalReason::NotAllowed => "not_allowed",
            RefusalReason::NoCertificate => "no_certificate",
            RefusalReason::NameMismatch => "name_mismatch",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::X509Version1 => "x509_v1",
            RefusalReason::NoSubjectAltName => "no_san",
            RefusalReason::BadCertificate => "bad_certificate",
            RefusalReason::IncompatibleProtocol => "incompatible_protocol",
            RefusalReason::ProtocolVersion => "protocol_version",
            RefusalReason::PeerAlert => "peer_alert",
            RefusalReason::HandshakeTimeout => "handshake_timeout",
            RefusalReason::HandshakeFailed => "handshake_failed",
        }
    }

    /// The sentence an operator reads in logs and in `guichet check`.
    pub fn describe(self) -> &'static str {
        match self {
            RefusalReason::UnknownCa => "certificate not issued by a trusted CA",
            RefusalReason::Expired => "certificate expired",
            RefusalReason::NotYetValid => "certificate not yet valid",
            RefusalReason::Revoked => "certificate revoked",
            RefusalReason::RevocationUnknown => "revocation status unknown (no CRL for the issuer, or no OCSP answer)",
            RefusalReason::WrongUsage => "certificate not valid for this usage (extended key usage)",
            RefusalReason::NotAllowed => "certificate not on this route's allowlist",
            RefusalReason::NoCertificate => "no client certificate presented",
            RefusalReason::NameMismatch => "server certificate does not match the dialled name",
            RefusalReason::BadSignature => "bad certificate signature",
            RefusalReason::X509Version1 => {
                "X.509 version 1 certificate (no extensions): rustls accepts only version 3; reissue it with `guichet pki issue` (or openssl x509 -req with an -extfile)"
            }
            RefusalReason::NoSubjectAltName => {
                "server certificate has no subjectAltName: the dialled name cannot be matched; reissue it with `guichet pki issue --name HOST` (or openssl with subjectAltName in an -extfile)"
            }
            RefusalReason::BadCertificate => "malformed or unacceptable certificate",
            RefusalReason::IncompatibleProtocol => {
                "no common protocol version, cipher suite or group (TLS 1.2+ with ECDHE and AEAD only)"
            }
            RefusalReason::ProtocolVersion => {
                "the peer offers only protocol versions below TLS 1.2 (TLS 1.2 and 1.3 are required)"
            }
            RefusalReason::PeerAlert => "the peer refused the handshake",
            RefusalReason::HandshakeTimeout => "TLS handshake timed out",
            RefusalReason::HandshakeFailed => "TLS handshake failed",
        }
    }

    fn from_certificate_error(e: &CertificateError) -> Self {
        use CertificateError as C;
        match e {
            C::UnknownIssuer => RefusalReason::UnknownCa,
            C::Expired | C::ExpiredContext { .. } => RefusalReason::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => RefusalReason::NotYetValid,
            C::Revoked => RefusalReason::Revoked,
            C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. } => RefusalReason::RevocationUnknown,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => RefusalReason::WrongUsage,
            C::ApplicationVerificationFailure => RefusalReason::NotAllowed,
            C::NotValidForName | C::NotValidForNameContext { .. } => RefusalReason::NameMismatch,
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                RefusalReason::BadSignature
            }
            _ => RefusalReason::BadCertificate,
        }
    }

    /// Classifies an error from a TLS handshake.
    pub fn from_tls_error(e: &TlsError) -> Self {
        match e {
            TlsError::InvalidCertificate(c) => Self::from_certificate_error(c),
            TlsError::NoCertificatesPresented => RefusalReason::NoCertificate,
            TlsError::PeerIncompatible(p) => Self::from_incompatibility(p),
            TlsError::AlertReceived(_) => RefusalReason::PeerAlert,
            _ => RefusalReason::HandshakeFailed,
        }
    }

    /// A ClientHello from TLS 1.0/1.1 lacks the extensions every TLS 1.2+
    /// hello carries; rustls notices that before it compares versions.
    fn from_incompatibility(p: &rustls::PeerIncompatible) -> Self {
        use rustls::PeerIncompatible as P;
        match p {
            P::SignatureAlgorithmsExtensionRequired
            | P::SupportedVersionsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::ServerDoesNotSupportTls12Or13 => RefusalReason::ProtocolVersion,
            _ => RefusalReason::IncompatibleProtocol,
        }
    }

    /// Refines a certificate refusal with what the presented certificate
    /// shows: a version 1 certificate fails webpki's parsing as a generic
    /// defect, and a name mismatch with no subjectAltName at all needs a
    /// new certificate, not another name.
    pub fn refine(self, presented: Option<&[u8]>) -> Self {
        let Some(der) = presented else {
            return self;
        };
        match self {
            RefusalReason::BadCertificate if crate::identity::x509_version(der) == Some(1) => {
                RefusalReason::X509Version1
            }
            RefusalReason::NameMismatch
                if Identity::from_der(der)
                    .is_ok_and(|id| id.san_dns.is_empty() && id.san_ip.is_empty()) =>
            {
                RefusalReason::NoSubjectAltName
            }
            other => other,
        }
    }

    /// Classifies an I/O error from a TLS stream (handshake or later: with
    /// TLS 1.3 a client learns of its refusal on its first read).
    pub fn from_io_error(e: &io::Error) -> Self {
        match tls_error(e) {
            Some(tls) => Self::from_tls_error(tls),
            None if e.kind() == io::ErrorKind::TimedOut => RefusalReason::HandshakeTimeout,
            None => RefusalReason::HandshakeFailed,
        }
    }
}

/// The rustls error inside an I/O error, if that is what it carries.
pub fn tls_error(e: &io::Error) -> Option<&TlsError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
}

/// Subject and fingerprint of the certificate a refused peer presented:
/// enough to find it, nothing about what it would have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The certificate's subject DN, as text.
    pub subject: String,
    /// SHA-256 of the certificate, to find it among others with the same subject.
    pub fingerprint: Fingerprint,
}

impl Presented {
    /// Keeps only what a log needs from a parsed certificate.
    pub fn of(identity: &Identity) -> Self {
        Presented {
            subject: identity.subject.to_string(),
            fingerprint: identity.fingerprint,
        }
    }
}

/// One refused handshake.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The class of the refusal, for metrics and the operator's sentence.
    pub reason: RefusalReason,
    /// The library's own words (alert name, expected name, ...).
    pub detail: String,
    /// The certificate the peer showed; `None` when it showed none or the
    /// refusal came before it was read.
    pub presented: Option<Presented>,
}

impl Refusal {
    /// The reason and the library's detail, without the certificate.
    pub fn summary(&self) -> String {
        format!("{} ({})", self.reason.describe(), self.detail)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        if let Some(p) = &self.presented {
            write!(
                f,
                "; presented subject \"{}\", sha256 {}",
                p.subject, p.fingerprint
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}
