//! How a PKCS#12 file is protected, read from the algorithm identifiers
//! that stay in clear: which encryption guards the key and the
//! certificates, and which MAC guards the whole. `pki show` prints it and
//! `check` flags the legacy algorithms that make a copied file cheap to
//! attack.

use std::fmt;

use x509_parser::der_parser::ber::{parse_ber, BerObject, BerObjectContent};
use x509_parser::der_parser::oid::Oid;

/// The protections found in one file, each named once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// How the private key is encrypted (`none` for a plain key bag).
    pub key: Vec<String>,
    /// How the certificate bags are encrypted (`none` when in clear).
    pub certificates: Vec<String>,
    /// The integrity MAC, e.g. `HMAC-SHA256, 2048 iterations`; `None`
    /// when the file has none.
    pub mac: Option<String>,
    /// Whether the key or the file is guarded by a legacy algorithm: RC2,
    /// RC4, 3DES, a SHA-1 MAC or key derivation, no MAC, or a key in clear.
    /// The certificates' encryption does not count: they are public.
    pub legacy: bool,
}

const DATA: &str = "1.2.840.113549.1.7.1";
const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const PBES2: &str = "1.2.840.113549.1.5.13";
const IN_CLEAR: &str = "none (in clear)";

/// Reads the protection of `der`, a PKCS#12 file; `None` when its shape
/// is not PKCS#12.
pub fn protection(der: &[u8]) -> Option<Protection> {
    let (_, pfx) = parse_ber(der).ok()?;
    let items = seq(&pfx)?;
    let mut found = Protection {
        mac: items.get(2).and_then(mac),
        ..Protection::default()
    };
    let auth_safe = content_info(items.get(1)?)?;
    let (DATA, Some(octets)) = (auth_safe.0.as_str(), auth_safe.1.and_then(octets)) else {
        return None;
    };
    let (_, safes) = parse_ber(octets).ok()?;
    for safe in seq(&safes)? {
        found.read_safe(safe);
    }
    found.legacy |= found.mac.is_none()
        || found.mac.as_deref().is_some_and(|m| m.contains("SHA1"))
        || found.key.iter().any(|s| is_legacy(s));
    Some(found)
}

impl Protection {
    fn read_safe(&mut self, safe: &BerObject<'_>) {
        let Some((kind, content)) = content_info(safe) else {
            return;
        };
        match kind.as_str() {
            ENCRYPTED_DATA => {
                let scheme = content
                    .as_ref()
                    .and_then(seq)
                    .and_then(|d| d.get(1).and_then(seq).and_then(|e| e.get(1).map(scheme)));
                push(&mut self.certificates, scheme.unwrap_or_else(unknown));
            }
            DATA => {
                let bags = content
                    .and_then(octets)
                    .and_then(|o| parse_ber(o).ok())
                    .map(|(_, bags)| bags);
                for bag in bags.as_ref().and_then(seq).unwrap_or_default() {
                    self.read_bag(bag);
                }
            }
            _ => {}
        }
    }

    fn read_bag(&mut self, bag: &BerObject<'_>) {
        let Some(items) = seq(bag) else { return };
        match items.first().and_then(oid).as_deref() {
            Some(KEY_BAG) => push(&mut self.key, IN_CLEAR.to_string()),
            Some(SHROUDED_KEY_BAG) => {
                let scheme = items
                    .get(1)
                    .and_then(explicit)
                    .as_ref()
                    .and_then(|v| seq(v).and_then(|i| i.first().map(scheme)));
                push(&mut self.key, scheme.unwrap_or_else(unknown));
            }
            // A certificate bag outside encrypted data is in clear.
            Some(_) => push(&mut self.certificates, "none".to_string()),
            None => {}
        }
    }
}

fn push(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn unknown() -> String {
    "unknown".to_string()
}

fn is_legacy(scheme: &str) -> bool {
    scheme == IN_CLEAR
        || ["RC2", "RC4", "3DES", "DES-CBC", "HMAC-SHA1"]
            .iter()
            .any(|weak| scheme.contains(weak))
}

/// `MacData ::= SEQUENCE { DigestInfo { AlgId, digest }, salt, iterations }`.
fn mac(mac_data: &BerObject<'_>) -> Option<String> {
    let items = seq(mac_data)?;
    let digest = seq(items.first()?)?
        .first()
        .and_then(seq)?
        .first()
        .and_then(oid)?;
    let iterations = items.get(2).and_then(|i| i.as_u64().ok()).unwrap_or(1);
    Some(format!(
        "HMAC-{}, {iterations} iterations",
        digest_name(&digest)
    ))
}

/// An `AlgorithmIdentifier` of a password-based encryption, in words.
fn scheme(alg: &BerObject<'_>) -> String {
    let Some(items) = seq(alg) else {
        return unknown();
    };
    let Some(id) = items.first().and_then(oid) else {
        return unknown();
    };
    if id != PBES2 {
        return pbes1_name(&id);
    }
    let params = items.get(1).and_then(seq).unwrap_or_default();
    let kdf = params.first().and_then(pbkdf2).unwrap_or_else(unknown);
    let cipher = params
        .get(1)
        .and_then(seq)
        .and_then(|c| c.first().and_then(oid))
        .map_or_else(unknown, |c| cipher_name(&c));
    format!("PBES2 ({kdf}, {cipher})")
}

/// `PBKDF2-HMAC-SHA256`, from the key derivation's identifier; the PRF
/// defaults to HMAC-SHA1 when absent (RFC 8018).
fn pbkdf2(kdf: &BerObject<'_>) -> Option<String> {
    let items = seq(kdf)?;
    let params = items.get(1).and_then(seq).unwrap_or_default();
    let prf = params
        .iter()
        .filter_map(seq)
        .find_map(|alg| alg.first().and_then(oid))
        .map_or("SHA1", |p| prf_name(&p));
    Some(format!("PBKDF2-HMAC-{prf}"))
}

fn pbes1_name(id: &str) -> String {
    match id {
        "1.2.840.113549.1.12.1.1" => "pbeWithSHA1And128BitRC4".into(),
        "1.2.840.113549.1.12.1.2" => "pbeWithSHA1And40BitRC4".into(),
        "1.2.840.113549.1.12.1.3" => "pbeWithSHA1And3-KeyTripleDES-CBC (3DES)".into(),
        "1.2.840.113549.1.12.1.4" => "pbeWithSHA1And2-KeyTripleDES-CBC (3DES)".into(),
        "1.2.840.113549.1.12.1.5" => "pbeWithSHA1And128BitRC2-CBC".into(),
        "1.2.840.113549.1.12.1.6" => "pbeWithSHA1And40BitRC2-CBC".into(),
        other => format!("unknown scheme {other}"),
    }
}

fn cipher_name(id: &str) -> String {
    match id {
        "2.16.840.1.101.3.4.1.2" => "AES-128-CBC".into(),
        "2.16.840.1.101.3.4.1.22" => "AES-192-CBC".into(),
        "2.16.840.1.101.3.4.1.42" => "AES-256-CBC".into(),
        "1.2.840.113549.3.7" => "3DES-CBC".into(),
        "1.3.14.3.2.7" => "DES-CBC".into(),
        other => format!("cipher {other}"),
    }
}

fn prf_name(id: &str) -> &'static str {
    match id {
        "1.2.840.113549.2.7" => "SHA1",
        "1.2.840.113549.2.8" => "SHA224",
        "1.2.840.113549.2.9" => "SHA256",
        "1.2.840.113549.2.10" => "SHA384",
        "1.2.840.113549.2.11" => "SHA512",
        _ => "unknown",
    }
}

fn digest_name(id: &str) -> &'static str {
    match id {
        "1.3.14.3.2.26" => "SHA1",
        "2.16.840.1.101.3.4.2.4" => "SHA224",
        "2.16.840.1.101.3.4.2.1" => "SHA256",
        "2.16.840.1.101.3.4.2.2" => "SHA384",
        "2.16.840.1.101.3.4.2.3" => "SHA512",
        _ => "unknown",
    }
}

// ------------------------------------------------------ BER navigation

fn seq<'a, 'b>(obj: &'b BerObject<'a>) -> Option<&'b [BerObject<'a>]> {
    match &obj.content {
        BerObjectContent::Sequence(items) => Some(items),
        _ => None,
    }
}

fn oid(obj: &BerObject<'_>) -> Option<String> {
    obj.as_oid().ok().map(Oid::to_id_string)
}

fn octets<'a>(obj: BerObject<'a>) -> Option<&'a [u8]> {
    match obj.content {
        BerObjectContent::OctetString(bytes) => Some(bytes),
        _ => None,
    }
}

/// The object inside an `[n] EXPLICIT` tag, which a generic parse leaves
/// as raw content.
fn explicit<'a>(obj: &BerObject<'a>) -> Option<BerObject<'a>> {
    match &obj.content {
        BerObjectContent::Unknown(any) => parse_ber(any.data).ok().map(|(_, inner)| inner),
        BerObjectContent::Tagged(_, _, inner) => Some((**inner).clone()),
        _ => None,
    }
}

/// `ContentInfo ::= SEQUENCE { contentType OID, [0] EXPLICIT content }`.
fn content_info<'a>(obj: &BerObject<'a>) -> Option<(String, Option<BerObject<'a>>)> {
    let items = seq(obj)?;
    let kind = items.first().and_then(oid)?;
    Some((kind, items.get(1).and_then(explicit)))
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[String]| match items {
            [] => "(none found)".to_string(),
            _ => items.join(" + "),
        };
        write!(
            f,
            "key {}; certificates {}; MAC {}",
            list(&self.key),
            list(&self.certificates),
            self.mac.as_deref().unwrap_or("none")
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };

    use super::*;

    /// A PKCS#12 file written by `p12-keystore` itself, with a fresh key.
    fn p12(encryption: EncryptionAlgorithm, mac: MacAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gw".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let chain = PrivateKeyChain::new(
            b"id".as_slice(),
            PrivateKey::from_der(&key.serialize_der()).unwrap(),
            [Certificate::from_der(cert.der()).unwrap()],
        );
        let mut store = KeyStore::new();
        store.add_entry("gw", KeyStoreEntry::PrivateKeyChain(chain));
        store
            .writer("pw")
            .encryption_algorithm(encryption)
            .mac_algorithm(mac)
            .write()
            .unwrap()
    }

    #[test]
    fn modern_and_legacy_files_are_told_apart() {
        let modern = protection(&p12(
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ))
        .unwrap();
        assert_eq!(modern.key, ["PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC)"]);
        assert!(modern.mac.as_deref().unwrap().starts_with("HMAC-SHA256, "));
        assert!(!modern.legacy);
        let legacy = protection(&p12(
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ))
        .unwrap();
        assert_eq!(legacy.key, ["pbeWithSHA1And3-KeyTripleDES-CBC (3DES)"]);
        assert!(legacy.legacy);
    }

    /// Every truncation and a flipped byte anywhere: an answer or `None`,
    /// never a panic (the file is the operator's, but may be damaged).
    #[test]
    fn damaged_files_never_panic() {
        let good = p12(
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        );
        for len in 0..good.len() {
            let _ = protection(&good[..len]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xA5;
            let _ = protection(&bad);
        }
        assert_eq!(protection(b"-----BEGIN CERTIFICATE-----"), None);
    }
}
