//! Requests per second per application: one token bucket each.
//!
//! Buckets outlive reloads (the rate in force is passed at each call), so a
//! reload never hands a partner a fresh burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guichet_tls::AppName;

use crate::config::RateLimit;

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<AppName, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Takes one token for `app`, or says how long until one is there.
    pub fn take(&self, app: &AppName, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(limit.burst);
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = match buckets.get_mut(app) {
            Some(b) => b,
            None => buckets.entry(app.clone()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(missing / limit.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let limiter = RateLimiter::default();
        let app = AppName::new("partner-a");
        let other = AppName::new("partner-b");
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&app, limit, t0).is_ok());
        }
        let wait = limiter.take(&app, limit, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            limiter.take(&other, limit, t0).is_ok(),
            "buckets are per app"
        );
        assert!(limiter
            .take(&app, limit, t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .take(&app, limit, t0 + Duration::from_millis(500))
            .is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take(&app, limit, later).is_ok());
        }
        assert!(limiter.take(&app, limit, later).is_err());
    }
}
