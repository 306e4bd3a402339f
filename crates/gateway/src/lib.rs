//! The guichet gateway: configuration, routes, forwarding, reload and
//! shutdown.

pub mod check;
pub mod config;
mod connection;
mod gateway;
pub mod metrics;
mod proxy;
mod route;
mod state;
mod stream;
mod watch;

pub use config::{Config, ConfigError};
pub use gateway::{Gateway, GatewayError, ReloadError, Reloader};
pub use metrics::Metrics;
