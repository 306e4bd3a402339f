//! The journal's backends: the shared suite on each, then what only one backend can get wrong.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod suite;

mod postgres;
mod postgres_tls;
mod sqlite;
