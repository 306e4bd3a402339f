//! The simulators against each other, against the gateway and against outside peers.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod interop;
mod simulators;
mod tls;
