//! Test books: a folder of cases (a message and what it must give),
//! replayed against an integration engine over MLLP, HTTP(S) or a drop
//! folder, each case's answer and what reached the engine's recording
//! sink checked against its expectations; reports for people and for CI.
//!
//! `book` reads a book; `target` sends a case and reads the answer;
//! `sink` reads what an engine sent downstream; `expect` checks; `run`
//! runs the cases; `report` writes JSON and JUnit.

pub mod book;
pub mod compare;
pub mod expect;
pub mod generate;
pub mod html;
pub mod report;
pub mod run;
pub mod sink;
pub mod target;

pub use book::{Book, BookError, Case};
pub use run::{run, CaseResult, Ends, RunOptions, RunReport, Status, TargetResult};
