//! `http` routes: the HTTPS gateway in front of regional services.
//!
//! The TLS handshake proves which application is calling (its certificate
//! is verified against the CA and CRLs, and recognised by an `[[app]]`).
//! Each request is then matched to a rule by host and path prefix; the
//! rule admits the application or the request gets a 403. Admitted
//! requests go to the rule's upstream with the client's identity in
//! headers that only guichet can set. Rules are read from the route's
//! current state at every request: a reload that removes a partner applies
//! to its next request, even on an open keep-alive connection.

//!
//! Inside, from the top down: [`drive`] runs a client connection;
//! `request` takes each request along its path (prepare, admit, go
//! upstream); `outcome` answers, refuses, logs and counts it; `conn` is
//! what a connection knows of its client; `rules` normalises, matches and
//! rewrites paths; `clock` times request heads; `validate` judges the
//! body of a validating rule's requests.

mod access;
mod body;
mod clock;
mod conn;
mod drive;
pub mod headers;
mod outcome;
mod problem;
mod ratelimit;
mod request;
mod rules;
mod runtime;
mod validate;

pub use crate::upstream::{UpstreamClient, ALPN};
pub use access::AccessLogger;
pub(crate) use drive::{serve, Client};
pub use ratelimit::RateLimiter;
pub use rules::normalize_path;
pub(crate) use runtime::HttpRuntime;

#[cfg(test)]
mod tests;
