//! FINESS numbers: the national identifier of health and social
//! establishments, 9 characters.
//!
//! A FINESS names either a legal entity (EJ, *entité juridique*) or a site
//! (EG, *établissement géographique*); the number itself does not say
//! which, the field it stands in does. The first two characters are the
//! département: digits, or `2A`/`2B` for Corsica.
//!
//! The last digit is a check key. No official statement of its algorithm
//! was found: Luhn over the 9 characters, with A read as 1 and B as 2,
//! holds on every real number tried, but the ROR guide's own example
//! (458174839) fails it. So the key is checked apart from the format
//! ([`Finess::key_is_valid`]), as a rule of its own whose severity a
//! site can lower.

use std::fmt;

/// A FINESS number of valid format (its key unchecked).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finess(String);

/// Why a text is not a FINESS number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinessError {
    #[error("a FINESS number has 9 characters, not {0}")]
    Length(usize),
    #[error("a FINESS number starts with 2 digits, 2A or 2B, not `{0}`")]
    Departement(String),
    #[error("a FINESS number ends with 7 digits")]
    Digits,
}

impl Finess {
    /// Parses `text` (surrounding blanks are not trimmed: a sender's
    /// padding is an error to report, not to hide).
    pub fn parse(text: &str) -> Result<Finess, FinessError> {
        format(text)?;
        Ok(Finess(text.to_string()))
    }

    /// Whether `text` is a FINESS of valid format and key: [`Finess::parse`]
    /// then [`Finess::key_is_valid`], without keeping the number.
    pub fn is_valid(text: &str) -> bool {
        format(text).is_ok() && key_is_valid(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the last digit is the Luhn key of the first eight (A = 1,
    /// B = 2).
    pub fn key_is_valid(&self) -> bool {
        key_is_valid(&self.0)
    }
}

/// Why `text` is not a FINESS number, if it is not.
fn format(text: &str) -> Result<(), FinessError> {
    let count = text.chars().count();
    if count != 9 || text.len() != 9 {
        return Err(FinessError::Length(count));
    }
    let (departement, rest) = text.split_at(2);
    let corsica = matches!(departement, "2A" | "2B");
    if !corsica && !departement.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FinessError::Departement(departement.to_string()));
    }
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FinessError::Digits);
    }
    Ok(())
}

/// The Luhn key of a number of valid format (see [`Finess::key_is_valid`]).
fn key_is_valid(number: &str) -> bool {
    let digits = number.bytes().map(|b| match b {
        b'A' => 1,
        b'B' => 2,
        digit => u32::from(digit - b'0'),
    });
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| match i % 2 {
            0 => d,
            _ if d * 2 > 9 => d * 2 - 9,
            _ => d * 2,
        })
        .sum();
    sum % 10 == 0
}

impl fmt::Display for Finess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> bool {
        Finess::parse(text)
            .map(|f| f.key_is_valid())
            .unwrap_or(false)
    }

    #[test]
    fn real_numbers_have_a_valid_key() {
        for real in [
            "010780914",
            "2A0000170",
            "2B0000020",
            "350054680",
            "750712184",
        ] {
            assert!(key(real), "{real}");
        }
    }

    #[test]
    fn a_changed_digit_breaks_the_key() {
        assert!(!key("010780915"));
    }

    #[test]
    fn the_ror_guides_example_fails_the_key_but_has_the_format() {
        let example = Finess::parse("458174839").unwrap();
        assert!(!example.key_is_valid());
    }

    #[test]
    fn format_errors_say_what_is_wrong() {
        assert_eq!(Finess::parse("01078091"), Err(FinessError::Length(8)));
        assert_eq!(
            Finess::parse(" 01078091"),
            Err(FinessError::Departement(" 0".into()))
        );
        assert_eq!(
            Finess::parse("2C0000020"),
            Err(FinessError::Departement("2C".into()))
        );
        assert_eq!(Finess::parse("01078091X"), Err(FinessError::Digits));
        assert_eq!(Finess::parse("0107809é"), Err(FinessError::Length(8)));
    }
}
