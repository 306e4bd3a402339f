//! The guichet gateway: configuration, routes, forwarding, reload and
//! shutdown.

pub mod admin;
mod budget;
pub mod check;
pub mod config;
mod connection;
mod deliver;
pub mod events;
mod frame_deadline;
mod gateway;
mod housekeeping;
pub mod http;
mod ingest;
pub mod metrics;
pub mod ocsp;
mod proxy;
mod relay;
pub mod revocation;
mod route;
mod state;
pub mod status;
mod stream;
mod watch;

pub use admin::{AdminError, AdminListener, AdminServer};
pub use config::{Config, ConfigError};
pub use events::{EventBus, MessageEvent, MessageOutcome};
pub use gateway::{Gateway, GatewayError, ReloadError, Reloader};
pub use metrics::Metrics;
pub use status::StatusBoard;
