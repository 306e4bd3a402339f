//! The map of a hospital group's information system, in the form
//! it-lanscape's users keep it: establishments → domains → processes →
//! applications (each known by its *trigramme*, a three-character code),
//! their servers and VLANs, and the flows between applications.
//!
//! - [`model`]: what the map holds.
//! - [`read`]: it-lanscape's data folder, read as leniently as it-lanscape
//!   reads it; a schema error names the file and the JSON path.
//! - [`kpi`]: the dashboard indicators, by it-lanscape's exact rules
//!   (filters, half-up rounding), and guichet's own.
//! - [`incident`]: what an outage does downstream, by it-lanscape's rules
//!   or guichet's (EAIs and gateway routes as nodes).
//! - [`quality`]: the data-quality score and findings, by it-lanscape's
//!   exact rules, and guichet's own checks apart.
//! - [`observed`], [`mapping`]: the flows the gateway observed, and the
//!   file that names their parties by trigramme.
//!
//! No network I/O: the caller names a folder, this crate reads it.

pub mod export;
pub mod figures;
pub mod incident;
pub mod kpi;
pub mod mapping;
pub mod matrix;
pub mod model;
mod node;
pub mod observed;
pub mod quality;
pub mod read;
pub mod round;
pub mod sheet;
pub mod site;
#[cfg(test)]
mod testdata;

pub use model::Atlas;

/// The language of the texts people read: French (it-lanscape's words,
/// where it has them) by default, or English.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// `fr` or `en`, as HTML's `lang` attribute writes it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }
}
pub use read::{read_dir, ReadError};
