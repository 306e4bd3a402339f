//! The test PKI and the certificates it issues, read back by x509 parsers and openssl.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pki;
