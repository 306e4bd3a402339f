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
//! - [`observed`], [`mapping`]: the flows the gateway observed, and the
//!   file that names their parties by trigramme.
//!
//! No network I/O: the caller names a folder, this crate reads it.

pub mod figures;
pub mod kpi;
pub mod mapping;
pub mod model;
mod node;
pub mod observed;
pub mod read;
pub mod round;

pub use model::Atlas;
pub use read::{read_dir, ReadError};
