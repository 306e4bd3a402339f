//! The gateway on real sockets and real certificates: one module per area.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod admin;
mod admin_access;
mod budgets;
mod crl;
mod drain;
mod half_close;
mod http;
mod idle;
mod key_types;
mod limits;
mod mllp;
mod mllp_hardening;
mod ocsp;
mod pkcs12;
mod readable_refusals;
mod refusals;
mod reload;
mod roundtrip;
mod store_forward;
mod upstream_down;
