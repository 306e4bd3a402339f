//! Bed availability for the ROR (*Répertoire opérationnel des
//! ressources*, the regional directory of care offer that emergency
//! services search for a bed).
//!
//! - [`finess`]: FINESS numbers, their format and their key.
//! - [`codes`]: the capacity extension's slices and their code tables.
//! - [`model`]: one document, whatever form it came in.
//! - [`patch`]: the national ROR's PATCH form (`Parameters`, a batch of them).
//! - [`referential`]: the units the ROR knows, and the indicators it accepts.
//! - [`store`]: what a stand-in for the national ROR keeps, and how it answers.
//! - [`xml`]: guichet's XML form.
//! - [`rules`]: what a document must meet, each rule with its code.
//! - [`validate`]: the form recognised from the bytes, read, checked.
//! - [`fhir`]: the ROR's FHIR R4 form (a `Bundle` of `Location`s).
//! - [`sample`]: synthetic documents for benchmarks and profiling.
//!
//! No I/O: callers read the bytes, this crate reads the document.

pub mod codes;
pub mod fhir;
pub mod finess;
pub mod model;
pub mod patch;
pub mod referential;
pub mod rules;
pub mod sample;
pub mod store;
pub mod xml;

#[cfg(test)]
mod ans_examples;

mod validate;

pub use validate::{read, validate, validate_keeping, Form, Keep, Unreadable, Verdict};
