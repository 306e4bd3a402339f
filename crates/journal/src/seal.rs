//! Optional encryption of stored bodies: bodies are patient data at rest.
//!
//! AES-256-GCM (ring) with a random 96-bit nonce per body. The route name
//! is bound as associated data, so a body cannot be moved to another
//! route's queue unnoticed. A sealed body is
//! `b"GJS1" | key id (4 bytes) | nonce (12) | ciphertext+tag`, the key id
//! being the first 4 bytes of SHA-256(key): a journal opened with another
//! key says so instead of reporting a corrupt body.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::JournalError;

const MAGIC: &[u8; 4] = b"GJS1";
const KEY_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + 4 + NONCE_LEN;

/// The key that seals stored bodies.
pub struct BodyKey {
    key: LessSafeKey,
    id: [u8; 4],
    rng: SystemRandom,
}

impl std::fmt::Debug for BodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyKey({})", self.id_hex())
    }
}

/// Why a key or a sealed body cannot be used. The texts say why, never
/// what the body holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// AES-256-GCM takes a 32-byte key and nothing else.
    #[error("a body key is {KEY_LEN} bytes")]
    KeyLength,
    /// The stored bytes do not start with the sealed-body header.
    #[error("not a sealed body")]
    NotSealed,
    /// Sealed under another key: the key was changed since it was stored.
    #[error("sealed with key {theirs}, the configured key is {ours}")]
    OtherKey {
        /// The short id of the key the body was sealed with.
        theirs: String,
        /// The short id of the key configured now.
        ours: String,
    },
    /// The tag does not verify: the bytes were changed, or the body was
    /// sealed for another route.
    #[error("authentication failed: the body was altered or moved")]
    Altered,
}

impl BodyKey {
    /// Reads a key file: 64 hexadecimal characters (32 bytes), as written
    /// by [`BodyKey::generate_hex`]. The file must not be writable by its
    /// group nor readable by others.
    pub fn load(path: &Path) -> Result<BodyKey, JournalError> {
        let err = |reason: String| JournalError::Key {
            path: path.display().to_string(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o027 != 0 {
            return Err(err(format!(
                "mode {mode:04o} lets others read it: run `chmod 600 {}`",
                path.display()
            )));
        }
        let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = decode_hex(text.trim())
            .filter(|b| b.len() == KEY_LEN)
            .ok_or_else(|| {
                err(
                    "expected 64 hexadecimal characters (create one with `guichet journal keygen`)"
                        .into(),
                )
            })?;
        BodyKey::from_bytes(&bytes).map_err(|e| err(e.to_string()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<BodyKey, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::KeyLength)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut id = [0; 4];
        id.copy_from_slice(&digest.as_ref()[..4]);
        Ok(BodyKey {
            key: LessSafeKey::new(unbound),
            id,
            rng: SystemRandom::new(),
        })
    }

    /// A new random key, hex-encoded, for a key file.
    pub fn generate_hex() -> Result<String, JournalError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| JournalError::Key {
                path: "(new key)".into(),
                reason: "the system random generator failed".into(),
            })?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key's short id (hex), safe to show: it names the key, it does
    /// not reveal it.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals a body for `route`.
    pub fn seal(&self, route: &str, body: &[u8]) -> Result<Vec<u8>, JournalError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| JournalError::Unavailable("the system random generator failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(body);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(route.as_bytes()),
                &mut out[HEADER_LEN..],
            )
            .map_err(|_| JournalError::Unavailable("body encryption failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a body sealed for `route`; the error says why, never what.
    pub fn open(&self, route: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN + AES_256_GCM.tag_len() || &sealed[..4] != MAGIC {
            return Err(SealError::NotSealed);
        }
        if sealed[4..8] != self.id {
            return Err(SealError::OtherKey {
                theirs: sealed[4..8].iter().map(|b| format!("{b:02x}")).collect(),
                ours: self.id_hex(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[8..HEADER_LEN]);
        let mut buf = sealed[HEADER_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(route.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Altered)?;
        let len = plain.len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_route() {
        let key = BodyKey::from_bytes(&[7; 32]).unwrap();
        let sealed = key.seal("adt", b"MSH|^~\\&|secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("adt", &sealed).unwrap(), b"MSH|^~\\&|secret");
        assert!(key
            .open("lab", &sealed)
            .unwrap_err()
            .to_string()
            .contains("authentication"));
        let other = BodyKey::from_bytes(&[8; 32]).unwrap();
        assert!(other
            .open("adt", &sealed)
            .unwrap_err()
            .to_string()
            .contains("sealed with key"));
    }

    #[test]
    fn two_seals_of_one_body_differ() {
        let key = BodyKey::from_bytes(&[7; 32]).unwrap();
        assert_ne!(key.seal("r", b"x").unwrap(), key.seal("r", b"x").unwrap());
    }

    #[test]
    fn key_file_must_be_private_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.key");
        fs::write(&path, BodyKey::generate_hex().unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(BodyKey::load(&path)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        BodyKey::load(&path).unwrap();
        fs::write(&path, "abcd").unwrap();
        assert!(BodyKey::load(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hexadecimal"));
    }
}
