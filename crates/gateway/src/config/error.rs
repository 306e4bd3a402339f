//! Why a configuration is refused.
//!
//! Every message names the file, then where in it (a table, a field) and
//! what to do. The texts are what users and scripts read: each variant's
//! display holds its whole sentence, and no error here has a `source`, so
//! a `{:#}` chain prints each sentence once.

use std::path::PathBuf;

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub problem: Problem,
}

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file could not be read at all.
    #[error("cannot read the config file: {0}")]
    Read(std::io::Error),
    /// Not TOML, or not the shape guichet reads: an unknown key, a wrong
    /// type (the message gives the line and column).
    #[error("{}", .0.to_string().trim_end())]
    Syntax(toml::de::Error),
    /// Well-formed, but a setting cannot be used.
    #[error(transparent)]
    Setting(SettingError),
}

/// A setting that cannot be used, found while turning raw values into
/// checked ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// One field's value: the field as the file spells it (`idle_timeout`,
    /// `[tls.eai] crl_refresh`), and why it is refused.
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    /// Settings that cannot go together, a table that is missing or a
    /// name used twice: the sentence names every field involved.
    #[error("{0}")]
    Conflict(String),
    /// A problem inside a named table: a route, one of its rules, an
    /// `[[app]]`, a `[tls.NAME]` profile.
    #[error("{scope}: {inner}")]
    Within {
        scope: String,
        inner: Box<SettingError>,
    },
}

impl SettingError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SettingError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(sentence: impl Into<String>) -> Self {
        SettingError::Conflict(sentence.into())
    }

    /// This problem, found inside the table `scope` (`route "r"`).
    pub(crate) fn within(self, scope: impl Into<String>) -> Self {
        SettingError::Within {
            scope: scope.into(),
            inner: Box::new(self),
        }
    }

    /// The field whose value is refused, when the problem is one field's.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            SettingError::Field { field, .. } => Some(field),
            SettingError::Conflict(_) => None,
            SettingError::Within { inner, .. } => inner.field_name(),
        }
    }
}
