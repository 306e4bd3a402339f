//! The guichet gateway: configuration, routes, forwarding, reload and
//! shutdown.
//!
//! Modules from the top down; each imports only those below it (see
//! `docs/ARCHITECTURE.md`): the gateway and its reloads; the accept loop
//! and the dispatcher; one module per protocol; dialing and the TCP pump;
//! a route's runtime and state; then the leaves (config, metrics, status,
//! certificates).

mod gateway;
mod housekeeping;
mod reload;
mod watch;

mod accept;
mod dispatch;

mod folder;
pub mod http;
mod mllp;
mod tcp;

mod dial;
mod lease;
mod national;
mod refuse;
mod route;
mod state;
mod upstream;

pub mod admin;
mod budget;
mod certs;
pub mod check;
pub mod config;
pub mod events;
pub mod localtime;
pub mod log_writer;
pub mod metrics;
pub mod observe;
pub mod ocsp;
pub mod revocation;
pub mod status;
mod stream;

pub use admin::{AdminError, AdminListener, AdminServer};
pub use config::{Config, ConfigError};
pub use events::{EventBus, MessageEvent, MessageOutcome, Origin};
pub use gateway::{Gateway, GatewayError};
pub use metrics::Metrics;
pub use reload::{ReloadError, Reloader};
pub use status::StatusBoard;
