//! Key pairs for the CA and for issued certificates: fresh ECDSA keys, or
//! an operator's existing PKCS#8 key (including RSA from `openssl genpkey`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::KeyPair;

use crate::{files, PkiError};

/// The curve of a key we generate. ECDSA only: `ring` cannot generate RSA
/// keys; bring one with [`KeySource::Existing`] instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256, the default: small and accepted by every TLS peer we meet.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
}

/// Where the key of an issued certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A fresh key, written next to the certificate as `NAME.key` (0600).
    Generate(KeyType),
    /// An existing unencrypted PKCS#8 PEM key, left where it is.
    Existing(PathBuf),
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::Generate(KeyType::default())
    }
}

impl KeyType {
    /// Generates a key; `path` is where it will be written, for errors.
    pub(crate) fn generate(self, path: &Path) -> Result<KeyPair, PkiError> {
        let algorithm = match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        KeyPair::generate_for(algorithm).map_err(PkiError::crypto(path))
    }
}

impl FromStr for KeyType {
    type Err = String;

    /// Reads the `--key-type` spellings `p256` and `p384`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" => Ok(KeyType::EcdsaP256),
            "p384" | "p-384" => Ok(KeyType::EcdsaP384),
            _ => Err(format!("unknown key type {s:?}: use p256 or p384")),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "p256",
            KeyType::EcdsaP384 => "p384",
        })
    }
}

/// Reads a PKCS#8 PEM private key (`BEGIN PRIVATE KEY`).
pub(crate) fn load(path: &Path) -> Result<KeyPair, PkiError> {
    let pem = files::read_to_string(path)?;
    KeyPair::from_pem(&pem).map_err(|e| PkiError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// RSA keys also encrypt TLS 1.2 key exchanges, so their certificates need
/// keyEncipherment on top of digitalSignature.
pub(crate) fn is_rsa(key: &KeyPair) -> bool {
    [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .contains(&key.algorithm())
}
