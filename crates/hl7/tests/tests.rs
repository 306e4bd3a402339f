//! The HL7 v2 codec against real samples and generated input.
//!
//! One binary for the crate's integration tests (cargo links each file of
//! `tests/` as a binary of its own otherwise); each module is one area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ack;
mod fixtures;
mod properties;
mod view;
