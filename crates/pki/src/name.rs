//! The name of an issued certificate: its common name, its first DNS name
//! and the stem of its files in the CA directory, so it must be all three.

use std::fmt;
use std::path::Path;

use crate::PkiError;

/// Longest common name X.509 allows (`ub-common-name`).
const MAX_LEN: usize = 64;

/// A checked certificate name: `[A-Za-z0-9._-]{1,64}`, not starting with
/// `.` (a hidden file, or `..`) and not `ca` (it would overwrite the CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertName(String);

impl CertName {
    /// Checks `name`; `dir` is only there to say where the files would go.
    pub(crate) fn parse(name: &str, dir: &Path) -> Result<Self, PkiError> {
        let invalid = |reason| PkiError::InvalidName {
            name: name.to_string(),
            path: dir.join(format!("{name}.pem")),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("is empty"));
        }
        if name.len() > MAX_LEN {
            return Err(invalid("is longer than 64 characters"));
        }
        if name.starts_with('.') {
            return Err(invalid("starts with '.'"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid("has a character outside [A-Za-z0-9._-]"));
        }
        if name.eq_ignore_ascii_case("ca") {
            return Err(invalid(
                "is reserved: ca.pem and ca.key are the CA's own files",
            ));
        }
        Ok(CertName(name.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<CertName, PkiError> {
        CertName::parse(name, Path::new("/ca"))
    }

    #[test]
    fn accepts_file_and_host_names() {
        for name in [
            "lab-01",
            "hl7.example.org",
            "SIH_Nord",
            "a",
            &"x".repeat(64),
        ] {
            assert_eq!(
                check(name).map(|n| n.to_string()).ok().as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn refuses_what_would_escape_or_clobber_a_file() {
        for name in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a b",
            "é",
            "CA",
            "ca",
            &"x".repeat(65),
        ] {
            let err = check(name).unwrap_err();
            assert!(
                matches!(err, PkiError::InvalidName { .. }),
                "{name:?}: {err}"
            );
        }
    }
}
