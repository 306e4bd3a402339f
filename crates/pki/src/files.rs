//! Writing PKI files so that a reader never sees half a file and a private
//! key is never readable by anyone but its owner, not even for an instant.
//!
//! Every file is created with its final mode (`open(2)` with `O_CREAT` and
//! the mode, never a `chmod` afterwards), written in full, synced, then
//! renamed over the old one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::PkiError;

/// Owner read/write only: private keys.
const PRIVATE: u32 = 0o600;
/// World-readable: certificates, CRLs and the revocation state.
const PUBLIC: u32 = 0o644;

/// Replaces `path` with a private (0600) file holding `contents`.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    replace(path, contents, PRIVATE)
}

/// Replaces `path` with a world-readable file holding `contents`.
pub(crate) fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    replace(path, contents, PUBLIC)
}

/// Creates a private (0600) file that must not exist yet; the existence
/// check and the creation are one system call, so two `init` runs cannot
/// both believe they own the CA key.
pub(crate) fn create_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let mut file = create_new(path, PRIVATE).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => PkiError::CaKeyExists {
            path: path.to_path_buf(),
        },
        _ => PkiError::io("create", path)(e),
    })?;
    fill(&mut file, contents).map_err(PkiError::io("write", path))
}

/// Creates a private (0600) file that must not exist yet (a new key of
/// `pki csr`): an operator's key is never overwritten.
pub(crate) fn create_new_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    create_new_with(path, contents, PRIVATE)
}

/// Creates a world-readable file that must not exist yet.
pub(crate) fn create_new_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    create_new_with(path, contents, PUBLIC)
}

fn create_new_with(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = create_new(path, mode).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => PkiError::Exists {
            path: path.to_path_buf(),
        },
        _ => PkiError::io("create", path)(e),
    })?;
    fill(&mut file, contents).map_err(PkiError::io("write", path))
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(PkiError::io("read", path))
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(PkiError::io("read", path))
}

/// Like [`read_to_string`], but a missing file is `None`: state files
/// (revocation list, CRL number) start out absent.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("read", path)(e)),
    }
}

pub(crate) fn create_dir(path: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(path).map_err(PkiError::io("create directory", path))
}

fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let temporary = temporary_sibling(path);
    let written = write_new(&temporary, contents, mode)
        .and_then(|()| fs::rename(&temporary, path).map_err(PkiError::io("replace", path)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = match create_new(path, mode) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left over by a crashed run: its mode is not ours to trust.
            fs::remove_file(path).map_err(PkiError::io("remove stale", path))?;
            create_new(path, mode)
        }
        other => other,
    }
    .map_err(PkiError::io("create", path))?;
    fill(&mut file, contents).map_err(PkiError::io("write", path))
}

fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

fn fill(file: &mut File, contents: &[u8]) -> io::Result<()> {
    file.write_all(contents)?;
    file.sync_all()
}

/// `dir/.name.tmp`: same directory, so the rename cannot cross filesystems.
fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_even_when_replacing_a_public_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_public(&path, b"old").unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!dir.path().join(".k.key.tmp").exists());
    }

    #[test]
    fn create_private_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        create_private(&path, b"first").unwrap();
        let err = create_private(&path, b"second").unwrap_err();
        assert!(matches!(err, PkiError::CaKeyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_stale_temporary_file_is_replaced_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let stale = dir.path().join(".k.key.tmp");
        fs::write(&stale, b"stale").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&path, b"key").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"key");
    }
}
