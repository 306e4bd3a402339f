//! Running many statements on one connection at once.
//!
//! tokio-postgres sends a query the first time its future is polled and
//! pipelines whatever is in flight on a connection. Polling a list of
//! query futures in list order therefore sends them in that order, all
//! before the first answer: one round trip for the lot.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

pub(super) type Pinned<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Awaits every future, polling them in list order (so their queries are
/// sent in list order), and returns their outputs in the same order.
pub(super) async fn join_in_order<T>(futures: Vec<Pinned<'_, T>>) -> Vec<T> {
    let mut slots: Vec<(Pinned<'_, T>, Option<T>)> =
        futures.into_iter().map(|f| (f, None)).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (future, output) in slots.iter_mut().filter(|(_, output)| output.is_none()) {
            match future.as_mut().poll(cx) {
                Poll::Ready(value) => *output = Some(value),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(
            slots
                .iter_mut()
                .filter_map(|(_, output)| output.take())
                .collect(),
        )
    })
    .await
}
