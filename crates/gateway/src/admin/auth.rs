//! Who may read the admin listener: a client certificate of an admitted
//! application (checked in the TLS handshake), a bearer token, or both.
//!
//! `/status` shows partners' certificate subjects, fingerprints and
//! addresses, so off loopback it is never served to whoever asks unless
//! the operator says so (`insecure = true`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use guichet_tls::{Material, ProfileFiles, ServerTls, TlsSettings};
use hyper::header::{HeaderMap, AUTHORIZATION};
use tracing::warn;

use super::AdminError;
use crate::config::{Config, ListenTls};

/// Tokens shorter than this are guessable: refused at start-up.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Why a request or a connection to the admin listener was refused; the
/// `reason` label of `guichet_admin_refusals_total` (TLS refusals use
/// the handshake's own reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    NoToken,
    /// A token that is not the one in `token_file`.
    BadToken,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::NoToken => "no_token",
            Denied::BadToken => "bad_token",
        }
    }
}

/// What identifies a file's content without reading it: a rename, a
/// rewrite or a truncation changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        len: meta.size(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
    })
}

/// The bearer token of `token_file`, kept as its SHA-256 and read again
/// when the file changes (a new token applies without restart).
pub struct TokenFile {
    path: PathBuf,
    current: Mutex<(Option<Stamp>, [u8; 32])>,
}

impl TokenFile {
    /// Loads the token now, so a missing, open or short one stops
    /// start-up with the file named.
    pub fn load(path: &Path) -> Result<TokenFile, AdminError> {
        let digest = read_token(path)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            current: Mutex::new((stamp(path), digest)),
        })
    }

    /// Whether `headers` carry the token; why not otherwise.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let presented = bearer(headers).ok_or(Denied::NoToken)?;
        let digest = sha256(presented);
        if constant_time_eq(&digest, &self.digest()) {
            Ok(())
        } else {
            Err(Denied::BadToken)
        }
    }

    /// The current token's digest, read again if the file changed. A
    /// file that became unreadable, open to others or empty leaves the
    /// last good token in force (and says so).
    fn digest(&self) -> [u8; 32] {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = stamp(&self.path);
        if now != current.0 {
            current.0 = now;
            match read_token(&self.path) {
                Ok(digest) => current.1 = digest,
                Err(e) => warn!("{e}; the previous admin token stays in force"),
            }
        }
        current.1
    }
}

/// Reads a token file: owner-only permissions, at least
/// `MIN_TOKEN_BYTES` once surrounding whitespace is trimmed.
pub fn read_token(path: &Path) -> Result<[u8; 32], AdminError> {
    let fail = |why: String| AdminError::Token {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:o} lets other users read the token; chmod 600 it"
        )));
    }
    let text = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let token = text.trim_ascii();
    if token.len() < MIN_TOKEN_BYTES {
        return Err(fail(format!(
            "the token is {} byte(s); use at least {MIN_TOKEN_BYTES} random ones (e.g. `openssl rand -hex 32`)",
            token.len()
        )));
    }
    Ok(sha256(token))
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compares two digests in a time that does not depend on where they
/// differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The admin listener's TLS end, built again when its profile's files
/// change (certificate renewal, new CRL) so it rotates without restart.
pub struct AdminTls {
    tls: ListenTls,
    files: ProfileFiles,
    settings: TlsSettings,
    stamps: Vec<Option<Stamp>>,
    current: ServerTls,
}

impl AdminTls {
    pub fn new(config: &Config, tls: &ListenTls) -> Result<AdminTls, AdminError> {
        let profile = config
            .profiles
            .get(&tls.profile)
            .ok_or_else(|| AdminError::Tls(format!("no TLS profile {:?}", tls.profile.as_str())))?;
        let files = profile.files.clone();
        let stamps = stamps(&files);
        let current = build(tls, &files, profile.settings)?;
        Ok(AdminTls {
            tls: tls.clone(),
            settings: profile.settings,
            files,
            stamps,
            current,
        })
    }

    /// The TLS end for the next connection.
    pub fn current(&mut self) -> ServerTls {
        let now = stamps(&self.files);
        if now != self.stamps {
            self.stamps = now;
            match build(&self.tls, &self.files, self.settings) {
                Ok(tls) => self.current = tls,
                Err(e) => warn!("{e}; the admin listener keeps its previous certificate"),
            }
        }
        self.current.clone()
    }
}

fn profile_paths(files: &ProfileFiles) -> impl Iterator<Item = &PathBuf> {
    files
        .cert
        .iter()
        .chain(&files.key)
        .chain(&files.ca)
        .chain(&files.crls)
}

fn stamps(files: &ProfileFiles) -> Vec<Option<Stamp>> {
    profile_paths(files).map(|p| stamp(p)).collect()
}

fn build(
    tls: &ListenTls,
    files: &ProfileFiles,
    settings: TlsSettings,
) -> Result<ServerTls, AdminError> {
    let profile = tls.profile.as_str();
    let material =
        Material::load(files).map_err(|e| AdminError::Tls(format!("[tls.{profile}]: {e}")))?;
    ServerTls::new(&material, tls.client_auth(), settings)
        .map_err(|e| AdminError::Tls(format!("[tls.{profile}]: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case() {
        assert_eq!(bearer(&with_auth("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&with_auth("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&with_auth("Basic YWJj")), None);
        assert_eq!(bearer(&with_auth("Bear")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn token_files_must_be_private_and_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let open = read_token(&path).unwrap_err().to_string();
        assert!(open.contains("chmod 600"), "{open}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = TokenFile::load(&path).unwrap();
        assert_eq!(
            token.admit(&with_auth("Bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(
            token.admit(&with_auth("Bearer 0123456789abcdef0124")),
            Err(Denied::BadToken)
        );
        assert_eq!(token.admit(&HeaderMap::new()), Err(Denied::NoToken));
        std::fs::write(&path, "short\n").unwrap();
        let short = read_token(&path).unwrap_err().to_string();
        assert!(short.contains("at least 16"), "{short}");
        // A broken rewrite leaves the last good token in force.
        assert_eq!(
            token.admit(&with_auth("Bearer 0123456789abcdef0123")),
            Ok(())
        );
    }
}
