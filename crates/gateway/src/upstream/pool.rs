//! Kept-alive plain HTTP/1.1 connections to one upstream, driven by the
//! task that uses them.
//!
//! A pooled connection has no task of its own: the request's task polls
//! it while it waits for the answer, and the answer's body polls it while
//! the client reads. A request and its answer never cross tasks, so a
//! request costs no wake-up of another task and no hop between threads.
//! Between requests a connection waits in the pool unpolled; the next
//! user finds out then whether the upstream closed it meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::{Body, ConnectError, UpstreamError, UpstreamStream};
use crate::dial::connect;
use crate::stream::Stream;

/// One upstream's idle connections, most recently used last.
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
    host: String,
    port: u16,
    connect_timeout: Duration,
}

/// A connection in the pool, and since when it waits there.
struct Idle {
    conn: Box<Pooled>,
    since: Instant,
}

/// One HTTP/1.1 connection: the half that sends requests and the half
/// that reads and writes the socket. Boxed once when opened, so moving it
/// between pool, request and body copies a pointer.
struct Pooled {
    send: SendRequest<Body>,
    conn: Connection<TokioIo<UpstreamStream>, Body>,
    /// The connection's future has completed: it is never polled again,
    /// nor reused.
    ended: bool,
}

/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per upstream.
const MAX_IDLE: usize = 1024;

impl Pool {
    pub(super) fn new(host: String, port: u16, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            host,
            port,
            connect_timeout,
        })
    }

    /// Sends `request` on an idle connection, or a new one, and waits for
    /// the answer's head. A request an idle connection could not take (the
    /// upstream closed it while it waited) goes on another one; one that
    /// was sent is never sent twice.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<PooledBody>, UpstreamError> {
        loop {
            let (mut pooled, reused) = match self.take() {
                Some(pooled) => (pooled, true),
                None => (self.open().await?, false),
            };
            // A kept-alive connection is ready at once, or not reused:
            // one still busy with its last exchange is no idle one.
            let ready = if reused {
                pooled.ready_now()
            } else {
                pooled.ready().await
            };
            if let Err(e) = ready {
                if reused {
                    continue;
                }
                return Err(e.map_or(UpstreamError::Closed, UpstreamError::Exchange));
            }
            match pooled.exchange(request).await {
                Ok(response) => return Ok(self.tracked(response, pooled)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::Exchange(e.into_error())),
                },
            }
        }
    }

    fn tracked(
        self: &Arc<Self>,
        response: http::Response<Incoming>,
        pooled: Box<Pooled>,
    ) -> http::Response<PooledBody> {
        response.map(|body| PooledBody {
            body,
            conn: Some(pooled),
            pool: self.clone(),
        })
    }

    /// The most recently used idle connection still young enough.
    fn take(&self) -> Option<Box<Pooled>> {
        let mut idle = lock(&self.idle);
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < IDLE_TIMEOUT && entry.conn.reusable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Back to the pool once its answer was read whole.
    fn put(&self, conn: Box<Pooled>) {
        if !conn.reusable() {
            return;
        }
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        if idle
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.retain(|entry| now.duration_since(entry.since) < IDLE_TIMEOUT);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    async fn open(&self) -> Result<Box<Pooled>, UpstreamError> {
        let tcp = connect(&self.host, self.port, self.connect_timeout)
            .await
            .map_err(|e| UpstreamError::Connect(ConnectError::Unavailable(e)))?;
        let io = TokioIo::new(UpstreamStream::new(Stream::Plain(tcp)));
        let (send, conn) = Builder::new()
            .handshake(io)
            .await
            .map_err(UpstreamError::Exchange)?;
        Ok(Box::new(Pooled {
            send,
            conn,
            ended: false,
        }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Pooled {
    fn reusable(&self) -> bool {
        !self.ended && !self.send.is_closed()
    }

    /// Waits until the connection may take a request, driving it
    /// meanwhile. An error when the connection ended: closed by the
    /// upstream (none) or failed.
    async fn ready(&mut self) -> Result<(), Option<hyper::Error>> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Whether the connection may take a request now, without waiting.
    fn ready_now(&mut self) -> Result<(), Option<hyper::Error>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_ready(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(None),
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Option<hyper::Error>>> {
        if let Poll::Ready(result) = Pin::new(&mut self.conn).poll(cx) {
            self.ended = true;
            return Poll::Ready(Err(result.err()));
        }
        self.send.poll_ready(cx).map_err(Some)
    }

    /// Sends `request` and drives the connection until its answer's head
    /// is in.
    async fn exchange(
        &mut self,
        request: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, hyper::client::conn::TrySendError<http::Request<Body>>>
    {
        let answer = self.send.try_send_request(request);
        let mut answer = std::pin::pin!(answer);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = answer.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if !self.ended && Pin::new(&mut self.conn).poll(cx).is_ready() {
                // The connection ended; it has answered the request (with
                // an error unless the answer came whole), which the next
                // poll gives.
                self.ended = true;
                return answer.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await
    }
}

/// An answer's body, which drives its connection while the client reads
/// it and puts the connection back in the pool once it was read whole.
pub(crate) struct PooledBody {
    body: Incoming,
    /// None once the connection ended or went back to the pool.
    conn: Option<Box<Pooled>>,
    pool: Arc<Pool>,
}

impl PooledBody {
    /// The answer was read whole: its connection may serve another.
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(pooled) = this.conn.as_mut().filter(|p| !p.ended) {
            if Pin::new(&mut pooled.conn).poll(cx).is_ready() {
                // Ended: the body gets its end or its error below.
                this.conn = None;
            }
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An answer read whole (or empty) leaves its connection reusable;
        // one left halfway leaves it mid-message: it is closed.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
