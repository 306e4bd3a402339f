//! The guichet binary, driven as users drive it: one module per area.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod budgets;
mod cli;
mod e2e;
mod folder;
mod http_gateway;
mod init;
mod journal_tls;
mod map;
mod observe;
mod peers;
mod pki_igc_sante;
mod pki_ocsp;
mod seed_simulators;
mod sim_ror;
mod simulators;
mod status_page;
mod store_forward;
mod stunnel_import;
mod test_books;
mod validate;
