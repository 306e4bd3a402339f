//! A small test PKI for guichet: a CA in a directory, leaf certificates
//! for gateways and partner applications, revocation with a CRL, and a
//! readable view of any certificate file.
//!
//! A CA directory holds `ca.pem`, `ca.key` (0600), `ca.crl`, `crlnumber`,
//! `revoked.txt`, and `NAME.pem` / `NAME.key` (0600) per issued name.
//! Meant for test benches and integration tests, not production PKI: keys
//! are unencrypted files.

#![deny(missing_docs)]
// Tests may panic on the unexpected; the library itself may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod aia;
mod ca;
mod csr;
mod error;
mod files;
mod issue;
mod key;
mod name;
mod pkcs12;
mod revoke;
mod serial;
mod show;
mod subject;
mod validity;

pub use ca::{init, CaFiles, CaOptions};
pub use csr::{csr, CsrFiles, CsrKeyType, CsrRequest};
pub use error::PkiError;
pub use issue::{issue, IssueRequest, IssuedFiles, Usage, DEFAULT_LEAF_DAYS};
pub use key::{KeySource, KeyType};
pub use pkcs12::{is_pkcs12, show_pkcs12};
pub use revoke::{revoke, write_crl, write_crl_dated};
pub use show::{show, show_file, CertReport};
pub use subject::Registry;
