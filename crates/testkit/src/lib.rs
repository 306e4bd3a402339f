//! Simulators for testing MLLP flows: a sender and a receiver that speak
//! correct, bounded MLLP (one outstanding message per connection, an ACK
//! deadline, MSA-2 checked, ACKs built by the book), with or without
//! (mutual) TLS, and realistic French test messages (IHE PAM FR); and a
//! stand-in for the national ROR's bed-availability API ([`ror`]).
//!
//! The CLI's `guichet send`, `guichet listen` and `guichet demo` print what
//! these functions report; nothing here writes to stdout.

pub mod input;
pub mod latency;
pub mod listener;
pub mod report;
pub mod ror;
pub mod sender;
pub mod templates;
pub mod tls;

pub use guichet_hl7::stamp;
pub use input::{Input, InputError, Outgoing};
pub use listener::{
    listen, AckPolicy, ListenError, ListenEvent, ListenHandle, ListenOptions, ListenStats, Received,
};
pub use report::{Outcome, SendResult, SendSummary};
pub use ror::{serve_ror, RorError, RorHandle, RorOptions};
pub use sender::{send, SendError, SendOptions};
pub use templates::{Template, TemplateContext, UnknownTemplate};
pub use tls::{TlsClientOptions, TlsServerOptions, TlsSetupError};

/// A byte stream, plain or TLS, behind one type.
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type BoxedIo = Box<dyn Io>;

/// An error and its sources, `: `-separated: `MllpError::Io` says only
/// "MLLP stream", the I/O error under it says what happened.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text += &format!(": {e}");
        source = e.source();
    }
    text
}
