//! What guichet's integration tests share, in one place: a dev-dependency
//! only, never linked into the shipped binary.
//!
//! - [`peers`]: is an outside program here? Under `CI=true` a missing one
//!   fails the test instead of skipping it: a skip there would hide a
//!   missing setup step.
//! - [`wait`]: bounded waits, so a broken peer fails a test instead of
//!   hanging it.
//! - [`samples`]: HL7 v2 messages and small encoders.
//! - [`fixtures`]: the shared outside data (real HL7 v2 samples...).
//! - [`pki`]: a test CA in a temporary folder.
//! - [`config`]: pieces of `guichet.toml`.
//! - [`http`]: a blocking HTTP/1.1 GET, and polling one until it holds.
//! - [`mllp`]: the MLLP receiver behind the gateway, answering per plan.
//! - [`postgres`] and [`pg_cluster`]: a database of the test's own on the
//!   shared server, or a TLS server of the test's own.

pub mod config;
pub mod fixtures;
pub mod http;
pub mod mllp;
pub mod peers;
pub mod pg_cluster;
pub mod pki;
pub mod postgres;
pub mod samples;
pub mod wait;
