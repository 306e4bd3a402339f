//! What an `http` route keeps for its whole life, across reloads.

use std::sync::Arc;

use super::access::AccessLogger;
use super::ratelimit::RateLimiter;
use crate::route::LogThrottle;
use crate::status::HttpTally;

/// What an `http` route keeps for its whole life, across reloads.
pub(crate) struct HttpRuntime {
    pub limiter: RateLimiter,
    pub access: AccessLogger,
    pub(super) refusals_log: LogThrottle,
    /// One permit per request in flight to an upstream.
    pub(super) upstream_slots: Arc<tokio::sync::Semaphore>,
    /// Requests and refusals per rule, for the status page.
    pub(super) tally: Arc<HttpTally>,
}

impl HttpRuntime {
    pub fn new(access: AccessLogger, max_upstream_requests: usize, tally: Arc<HttpTally>) -> Self {
        HttpRuntime {
            limiter: RateLimiter::default(),
            access,
            refusals_log: LogThrottle::default(),
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(max_upstream_requests)),
            tally,
        }
    }
}
