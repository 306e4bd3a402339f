//! OCSP on the wire (RFC 6960): the request for one certificate, and the
//! checks a response must pass before its answer is believed. No I/O.
//!
//! A response is believed only when it is signed by the certificate's
//! issuer, or by a responder certificate that issuer signed for the purpose
//! (extended key usage OCSPSigning), and when it is current: an old
//! "good" replayed by an attacker must not outlive its nextUpdate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, Request, ResponderId, TbsRequest, Version,
};

use crate::policy::provider;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_PE_AUTHORITY_INFO_ACCESS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// Clocks differ: a response dated a little in the future, or a nextUpdate
/// a little in the past, is still believed within this margin.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// The certificate is not revoked, as of the response.
    Good,
    /// The certificate is revoked.
    Revoked,
    /// The responder does not know the certificate.
    Unknown,
}

/// A verified answer and how long it may be relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub state: CertState,
    pub this_update: SystemTime,
    pub next_update: Option<SystemTime>,
}

/// Why a response was not believed. The texts reach the refusal log.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed OCSP {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the OCSP responder answered {0:?} instead of a status")]
    NotSuccessful(OcspResponseStatus),
    #[error("the OCSP response is not a basic response")]
    NotBasic,
    #[error("the OCSP response is not signed by the issuer or a responder it authorised")]
    BadSignature,
    #[error("the OCSP response does not cover this certificate")]
    NotCovered,
    #[error("the OCSP response is dated in the future (thisUpdate)")]
    NotYetValid,
    #[error("the OCSP response is stale (nextUpdate has passed)")]
    Stale,
}

fn malformed(what: &'static str) -> impl Fn(x509_cert::der::Error) -> WireError {
    move |e| WireError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// Decodes a DER certificate for the OCSP computations.
pub(crate) fn parse_cert(der: &[u8]) -> Result<Certificate, WireError> {
    Certificate::from_der(der).map_err(malformed("certificate"))
}

/// The SHA-1 CertID responders expect (RFC 6960 4.1.1; SHA-1 is what every
/// responder supports, and here it only names the certificate).
pub(crate) fn cert_id(leaf: &Certificate, issuer: &Certificate) -> Result<CertId, WireError> {
    let name = issuer
        .tbs_certificate
        .subject
        .to_der()
        .map_err(malformed("issuer name"))?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(x509_cert::der::asn1::Null.into()),
        },
        issuer_name_hash: sha1_octets(&name)?,
        issuer_key_hash: sha1_octets(key)?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    })
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

fn sha1_octets(bytes: &[u8]) -> Result<OctetString, WireError> {
    OctetString::new(sha1(bytes)).map_err(malformed("hash"))
}

/// An unsigned request for one certificate, without a nonce: responders
/// that precompute answers (most CA responders) ignore nonces, and the
/// answer is cached anyway.
pub(crate) fn request(id: &CertId) -> Result<Vec<u8>, WireError> {
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(malformed("request"))
}

/// Decodes and checks a response about `id`, issued under `issuer`.
pub(crate) fn verify_response(
    der: &[u8],
    id: &CertId,
    issuer: &Certificate,
    now: SystemTime,
) -> Result<Answer, WireError> {
    let response = OcspResponse::from_der(der).map_err(malformed("response"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(WireError::NotSuccessful(response.response_status));
    }
    let bytes = response.response_bytes.ok_or(WireError::NotBasic)?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(WireError::NotBasic);
    }
    let basic =
        BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed("response"))?;
    check_signature(&basic, issuer, now)?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|s| same_cert(&s.cert_id, id))
        .ok_or(WireError::NotCovered)?;
    let answer = Answer {
        state: match single.cert_status {
            CertStatus::Good(_) => CertState::Good,
            CertStatus::Revoked(_) => CertState::Revoked,
            CertStatus::Unknown(_) => CertState::Unknown,
        },
        this_update: system_time(&single.this_update),
        next_update: single.next_update.as_ref().map(system_time),
    };
    if answer.this_update > now + CLOCK_SKEW {
        return Err(WireError::NotYetValid);
    }
    if answer
        .next_update
        .is_some_and(|next| next + CLOCK_SKEW < now)
    {
        return Err(WireError::Stale);
    }
    Ok(answer)
}

/// Responders may answer with another hash algorithm than asked; only a
/// same-algorithm answer is compared, which is what every responder does.
fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

fn system_time(t: &OcspGeneralizedTime) -> SystemTime {
    UNIX_EPOCH + t.0.to_unix_duration()
}

/// The response must be signed by the issuer itself, or by a certificate
/// it carries that the issuer signed with the OCSPSigning usage.
fn check_signature(
    basic: &BasicOcspResponse,
    issuer: &Certificate,
    now: SystemTime,
) -> Result<(), WireError> {
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(malformed("response data"))?;
    let signature = basic.signature.raw_bytes();
    let by_issuer = names_responder(&basic.tbs_response_data.responder_id, issuer)
        && verify_signed(
            &issuer.tbs_certificate.subject_public_key_info,
            &basic.signature_algorithm,
            &tbs,
            signature,
        );
    let delegated = || {
        basic.certs.iter().flatten().any(|responder| {
            names_responder(&basic.tbs_response_data.responder_id, responder)
                && authorised_responder(responder, issuer, now)
                && verify_signed(
                    &responder.tbs_certificate.subject_public_key_info,
                    &basic.signature_algorithm,
                    &tbs,
                    signature,
                )
        })
    };
    if by_issuer || delegated() {
        Ok(())
    } else {
        Err(WireError::BadSignature)
    }
}

fn names_responder(id: &ResponderId, cert: &Certificate) -> bool {
    match id {
        ResponderId::ByName(name) => *name == cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => {
            let key = cert
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes();
            hash.as_bytes() == sha1(key).as_slice()
        }
    }
}

/// A delegated responder: issued (and signed) by the issuer, valid now,
/// and marked for OCSP signing.
fn authorised_responder(responder: &Certificate, issuer: &Certificate, now: SystemTime) -> bool {
    let tbs = &responder.tbs_certificate;
    let Ok(signed) = tbs.to_der() else {
        return false;
    };
    let validity = &tbs.validity;
    let not_before = UNIX_EPOCH + validity.not_before.to_unix_duration();
    let not_after = UNIX_EPOCH + validity.not_after.to_unix_duration();
    let current = not_before <= now + CLOCK_SKEW && now <= not_after + CLOCK_SKEW;
    tbs.issuer == issuer.tbs_certificate.subject
        && current
        && has_ocsp_signing(responder)
        && verify_signed(
            &issuer.tbs_certificate.subject_public_key_info,
            &responder.signature_algorithm,
            &signed,
            responder.signature.raw_bytes(),
        )
}

fn has_ocsp_signing(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING))
}

/// Verifies a signature with the algorithms the TLS provider trusts.
pub(crate) fn verify_signed(
    key: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let (Some(signature_alg), Some(key_alg)) = (
        algorithm_contents(algorithm),
        algorithm_contents(&key.algorithm),
    ) else {
        return false;
    };
    let public_key = key.subject_public_key.raw_bytes();
    provider()
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|alg| {
            alg.signature_alg_id().as_ref() == signature_alg.as_slice()
                && alg.public_key_alg_id().as_ref() == key_alg.as_slice()
        })
        .any(|alg| alg.verify_signature(public_key, message, signature).is_ok())
}

/// An AlgorithmIdentifier's contents (OID and parameters, no outer
/// SEQUENCE), which is how webpki names its algorithms.
fn algorithm_contents(algorithm: &AlgorithmIdentifierOwned) -> Option<Vec<u8>> {
    let mut out = algorithm.oid.to_der().ok()?;
    if let Some(parameters) = &algorithm.parameters {
        out.extend(parameters.to_der().ok()?);
    }
    Some(out)
}

/// Finds the certificate that issued `leaf` among `candidates`: same name,
/// and its key verifies the leaf's signature.
pub(crate) fn find_issuer<'a>(
    leaf: &Certificate,
    candidates: impl IntoIterator<Item = &'a Certificate>,
) -> Option<&'a Certificate> {
    let signed = leaf.tbs_certificate.to_der().ok()?;
    candidates.into_iter().find(|c| {
        c.tbs_certificate.subject == leaf.tbs_certificate.issuer
            && verify_signed(
                &c.tbs_certificate.subject_public_key_info,
                &leaf.signature_algorithm,
                &signed,
                leaf.signature.raw_bytes(),
            )
    })
}

/// The OCSP responder URLs a certificate names in its Authority
/// Information Access extension, in order.
pub(crate) fn responder_urls(cert: &Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_PE_AUTHORITY_INFO_ACCESS)
        .filter_map(|e| AuthorityInfoAccessSyntax::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|aia| aia.0)
        .filter(|d| d.access_method == ID_AD_OCSP)
        .filter_map(|d| match d.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA named `CN=Test CA` and its issuer handle.
    fn ca() -> (Certificate, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (parse_cert(cert.der()).unwrap(), Issuer::new(params, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>) -> Certificate {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["peer".to_string()]).unwrap();
        parse_cert(params.signed_by(&key, issuer).unwrap().der()).unwrap()
    }

    #[test]
    fn the_issuer_is_found_by_key_not_only_by_name() {
        let (real, real_issuer) = ca();
        // Same name, another key: a look-alike that did not sign the leaf.
        let (impostor, _) = ca();
        let peer = leaf(&real_issuer);
        let found = find_issuer(&peer, [&impostor, &real]).unwrap();
        assert_eq!(found, &real);
        assert!(find_issuer(&peer, [&impostor]).is_none());
    }

    #[test]
    fn the_request_names_the_certificate_with_sha1_hashes() {
        let (ca_cert, issuer) = ca();
        let peer = leaf(&issuer);
        let id = cert_id(&peer, &ca_cert).unwrap();
        assert_eq!(id.hash_algorithm.oid, ID_SHA1);
        assert_eq!(id.issuer_name_hash.as_bytes().len(), 20);
        assert_eq!(id.serial_number, peer.tbs_certificate.serial_number);
        let decoded = OcspRequest::from_der(&request(&id).unwrap()).unwrap();
        assert_eq!(decoded.tbs_request.request_list[0].req_cert, id);
        assert!(decoded.optional_signature.is_none());
    }

    #[test]
    fn garbage_and_refusals_are_errors_not_answers() {
        let (ca_cert, issuer) = ca();
        let id = cert_id(&leaf(&issuer), &ca_cert).unwrap();
        let now = SystemTime::now();
        assert!(matches!(
            verify_response(b"not der", &id, &ca_cert, now),
            Err(WireError::Malformed { .. })
        ));
        // OCSPResponse { responseStatus tryLater(3) }, as a busy responder says.
        let try_later = [0x30, 0x03, 0x0a, 0x01, 0x03];
        assert_eq!(
            verify_response(&try_later, &id, &ca_cert, now),
            Err(WireError::NotSuccessful(OcspResponseStatus::TryLater))
        );
    }
}
