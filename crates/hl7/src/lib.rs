//! HL7 v2 for the gateway: MLLP framing, a zero-copy message view, PHI-free
//! metadata and acknowledgments. No I/O.
//!
//! The gateway forwards the bytes it received; this crate only reads them
//! (the view never alters or re-serialises a message) and extracts the
//! header and MSA fields that events and logs may carry. Layers, bottom up:
//! bytes -> [`mllp`] frames -> [`message`] view -> [`header`] metadata ->
//! [`ack`] answers. [`escape`](mod@escape) and [`charset`] turn values into text.

#![deny(missing_docs)]

pub mod ack;
pub mod charset;
pub mod escape;
pub mod header;
pub mod message;
pub mod mllp;
pub mod path;
pub mod stamp;

pub use ack::{
    accept_ack_due, application_ack_due, build_ack, build_reject_for_unparseable, AckRequest,
    ErrorCode, ErrorDetail, Severity,
};
pub use charset::{Charset, Unrepresentable};
pub use escape::{escape, unescape};
pub use header::{AckCode, AckMode, AckSummary, Header, Meta, Text};
pub use message::{
    Delimiters, Field, Leading, Message, ParseError, ParseOptions, Repetitions, Segment, Segments,
};
pub use mllp::{frame, Frame, MllpCodec, MllpError, DEFAULT_MAX_FRAME};
pub use path::{BadPath, FieldPath};
