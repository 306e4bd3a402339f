//! The subject of an issued certificate beyond its file name: the O, OU
//! and CN texts, and the structure identifiers IGC Santé writes in OU.
//!
//! French health-sector partners present IGC Santé organisation
//! certificates whose OU is the structure's identifier (`1` + FINESS or
//! `3` + SIRET), and guichet's default `[[app]]` match reads CN, OU and
//! the issuer; test certificates of that shape let a test bench exercise
//! the very entries production will use.

use std::path::Path;

use crate::PkiError;

/// Longest O, OU or CN that X.509 allows (`ub-organization-name`,
/// `ub-organizational-unit-name`, `ub-common-name`), in characters.
const MAX_CHARS: usize = 64;

/// The register a structure's identifier comes from; IGC Santé writes the
/// register's digit before the number in OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// FINESS, the national register of health and social establishments:
    /// 9 characters, digits except `2A`/`2B` (Corsica) in front.
    Finess,
    /// SIRET, the national register of business establishments: 14 digits.
    Siret,
}

impl Registry {
    /// The OU of an IGC Santé organisation certificate for `number`:
    /// `1750000001` for FINESS 750000001, `3` + SIRET for a SIRET. The
    /// shape is checked, not the check digit: test numbers need not exist.
    pub fn ou(self, number: &str) -> Result<String, PkiError> {
        if !self.fits(number) {
            return Err(PkiError::InvalidStructureId {
                registry: self.label(),
                number: number.to_string(),
                expected: self.expected(),
            });
        }
        Ok(format!("{}{number}", self.prefix()))
    }

    fn fits(self, number: &str) -> bool {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            Registry::Finess => {
                digits(number, 9)
                    || ["2A", "2B"]
                        .iter()
                        .any(|p| number.strip_prefix(p).is_some_and(|rest| digits(rest, 7)))
            }
            Registry::Siret => digits(number, 14),
        }
    }

    fn prefix(self) -> char {
        match self {
            Registry::Finess => '1',
            Registry::Siret => '3',
        }
    }

    fn label(self) -> &'static str {
        match self {
            Registry::Finess => "FINESS",
            Registry::Siret => "SIRET",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Registry::Finess => "9 digits (or 2A/2B and 7 digits), e.g. 750000001",
            Registry::Siret => "14 digits, e.g. 12345678900012",
        }
    }
}

/// Checks one subject attribute before it goes into a certificate: 1 to
/// 64 characters, none of them control characters (they would break every
/// log line and `[[app]]` entry that quotes the name). `field` is the
/// attribute (`O`, `OU`, `CN`) and `path` the certificate to be written.
pub(crate) fn check_attribute(
    field: &'static str,
    value: &str,
    path: &Path,
) -> Result<(), PkiError> {
    let invalid = |reason| PkiError::InvalidSubject {
        field,
        value: value.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    if value.chars().count() > MAX_CHARS {
        return Err(invalid("is longer than 64 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("has a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finess_and_siret_become_the_igc_sante_ou() {
        assert_eq!(Registry::Finess.ou("750000001").unwrap(), "1750000001");
        assert_eq!(Registry::Finess.ou("2A0000014").unwrap(), "12A0000014");
        assert_eq!(Registry::Finess.ou("2B0000012").unwrap(), "12B0000012");
        assert_eq!(
            Registry::Siret.ou("12345678900012").unwrap(),
            "312345678900012"
        );
    }

    #[test]
    fn numbers_of_the_wrong_shape_are_refused_with_the_expected_one() {
        for (registry, number) in [
            (Registry::Finess, "75000001"),
            (Registry::Finess, "7500000012"),
            (Registry::Finess, "1750000001"),
            (Registry::Finess, "2C0000014"),
            (Registry::Finess, "2a0000014"),
            (Registry::Finess, "75000000A"),
            (Registry::Finess, ""),
            (Registry::Siret, "1234567890001"),
            (Registry::Siret, "123 456 789 00012"),
            (Registry::Siret, "750000001"),
        ] {
            let err = registry.ou(number).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{} number {number:?} is not ", registry.label())),
                "{text}"
            );
            assert!(text.contains(registry.expected()), "{text}");
        }
    }

    #[test]
    fn attributes_are_one_to_sixty_four_printable_characters() {
        let path = Path::new("/ca/partner.pem");
        for ok in ["a", "CH de Saint-Denis, site Delafontaine", &"é".repeat(64)] {
            check_attribute("O", ok, path).unwrap();
        }
        for (bad, reason) in [
            ("", "is empty"),
            ("  ", "is empty"),
            (&"x".repeat(65) as &str, "is longer than 64 characters"),
            ("a\nb", "has a control character"),
            ("a\u{7f}", "has a control character"),
        ] {
            let err = check_attribute("O", bad, path).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("subject O {bad:?} (for /ca/partner.pem) {reason}; give 1 to 64 characters, no control characters (shorten a long organisation name, as IGC Santé does)")
            );
        }
    }
}
