//! Bounded waits: every step that faces the network has a deadline, so a
//! broken peer fails the test with a reason instead of hanging it.

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest a single step (a handshake, a reply, a log line) may take:
/// generous for a loaded CI machine, short enough to fail quickly.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// Lets `span` pass on the runtime's clock without waiting for it: time
/// is paused, jumps from timer to timer (the gateway's own timers fire in
/// order, as they would), then runs on again.
///
/// Only for a current-thread runtime whose peers all run on it: I/O from
/// another process does not hold the paused clock back.
pub async fn let_pass(span: Duration) {
    tokio::time::pause();
    tokio::time::sleep(span).await;
    tokio::time::resume();
}

/// `fut`, bounded by `limit`.
///
/// # Panics
/// When `limit` runs out, naming `what`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: nothing within {limit:?}"),
    }
}

/// `fut`, bounded by [`WAIT`].
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    within(WAIT, what, fut).await
}

/// Polls `done` until it holds, at most `limit`.
///
/// # Panics
/// When `limit` runs out, with `what` and the last `state` seen.
pub async fn until<S: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut state: impl FnMut() -> S,
    done: impl Fn(&S) -> bool,
) -> S {
    let deadline = Instant::now() + limit;
    loop {
        let now = state();
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; last seen: {now:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`until`] for a thread without a runtime.
///
/// # Panics
/// When `limit` runs out, with `what` and the last `state` seen.
pub fn until_blocking<S: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    state: impl FnMut() -> S,
    done: impl Fn(&S) -> bool,
) -> S {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime to wait on");
    runtime.block_on(until(limit, what, state, done))
}
