//! The MLLP receiver behind the gateway in tests, and the sender side's
//! frame reader.
//!
//! One backend serves every test: [`AckPlan`] says how it answers in
//! general (a code, late, never, with a wrong MSA-2, after the sender's end
//! of stream, an unsolicited ACK first...), and a [`Rule`], when set,
//! decides per message (AE to some control ids, AR until the third try,
//! the accept ACK then the application ACK). It records what it read and
//! what it sent, over all connections, in order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use guichet_hl7::{
    accept_ack_due, application_ack_due, build_ack, frame, AckCode, AckRequest, Header, Message,
    MllpCodec, ParseOptions,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::wait::{bounded, until, until_blocking};

/// The largest frame the backend and [`FrameReader`] read.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// What a backend with `answer_not_hl7` answers to a frame without MSH.
pub const NOT_HL7_ANSWER: &[u8] =
    b"MSH|^~\\&|DPI|CHU|||20250101000000||ACK|BACKEND1|P|2.5\rMSA|AR|\r";

/// How the backend answers each message, unless a [`Rule`] decides.
#[derive(Debug, Clone)]
pub struct AckPlan {
    /// MSA-1 of every ACK.
    pub code: AckCode,
    /// MSA-2 differs from the message's MSH-10.
    pub wrong_id: bool,
    /// Waited before each ACK.
    pub delay: Duration,
    /// Never answer.
    pub silent: bool,
    /// Answer only after reading the sender's end of stream.
    pub after_eof: bool,
    /// An ACK payload sent right after accept, before anything is read.
    pub unsolicited: Option<Vec<u8>>,
    /// Answer frames that are not HL7 with an AR (as some engines do).
    pub answer_not_hl7: bool,
    /// Enhanced mode as a receiver follows it: one answer per message at
    /// most, the accept ACK (CA) when MSH-15 asks for it, else `code` when
    /// MSH-16 asks for it, else none.
    pub honour_ack_modes: bool,
    /// Close each connection after answering this many messages.
    pub messages_per_connection: Option<usize>,
}

impl AckPlan {
    /// AA to every message, at once.
    pub fn accept() -> AckPlan {
        AckPlan {
            code: AckCode::AA,
            wrong_id: false,
            delay: Duration::ZERO,
            silent: false,
            after_eof: false,
            unsolicited: None,
            answer_not_hl7: false,
            honour_ack_modes: false,
            messages_per_connection: None,
        }
    }

    /// `code` to every message, at once.
    pub fn code(code: AckCode) -> AckPlan {
        AckPlan {
            code,
            ..AckPlan::accept()
        }
    }
}

/// What the backend answers one message with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// One ACK of this code.
    Ack(AckCode),
    /// These ACKs in turn on the same connection (the accept ACK, then
    /// the application ACK).
    Acks(Vec<AckCode>),
    /// An ACK of this code whose MSA-2 is not the message's MSH-10.
    WrongId(AckCode),
    /// This payload, whatever it holds.
    Frame(Vec<u8>),
    /// Nothing.
    Silence,
}

/// Decides the reply from the control id and how many times that id was
/// received before (0 the first time).
pub type Rule = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// A rule of the control id alone.
pub fn by_id(decide: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Rule {
    Arc::new(move |id, _| decide(id))
}

/// A running MLLP receiver, with what it saw and sent. It runs until the
/// test's runtime ends, or until [`MllpBackend::stop`] closes it and its
/// connections.
#[derive(Clone)]
pub struct MllpBackend {
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// What the backend's tasks share.
struct State {
    plan: AckPlan,
    rule: Mutex<Option<Rule>>,
    accepted: AtomicUsize,
    /// Connections whose end of stream was read (then closed).
    ended: AtomicUsize,
    /// Every byte read, over all connections.
    raw: Mutex<Vec<u8>>,
    received: Mutex<Received>,
    /// Payloads of the frames sent (ACKs), in order.
    sent: Mutex<Vec<Vec<u8>>>,
    stop: CancellationToken,
}

/// Payloads of the frames read and control ids of the HL7 messages among
/// them, in order, and how often each control id came.
#[derive(Default)]
struct Received {
    payloads: Vec<Vec<u8>>,
    ids: Vec<String>,
    per_id: HashMap<String, usize>,
}

impl MllpBackend {
    /// A backend on 127.0.0.1 and a free port.
    pub async fn start(plan: AckPlan) -> MllpBackend {
        MllpBackend::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), plan).await
    }

    /// A backend on `addr` (the address a gateway already forwards to,
    /// when a test brings the receiver up late).
    ///
    /// # Panics
    /// When `addr` cannot be bound.
    pub async fn start_on(addr: SocketAddr, plan: AckPlan) -> MllpBackend {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the MLLP backend");
        let addr = listener.local_addr().expect("the backend's address");
        let state = Arc::new(State {
            plan,
            rule: Mutex::new(None),
            accepted: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            raw: Mutex::default(),
            received: Mutex::default(),
            sent: Mutex::default(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept(listener, state.clone()));
        MllpBackend { addr, state }
    }

    /// A backend on 127.0.0.1 and a free port whose `rule` decides each
    /// answer.
    pub async fn answering(rule: Rule) -> MllpBackend {
        let backend = MllpBackend::start(AckPlan::accept()).await;
        backend.answer_with(rule);
        backend
    }

    /// A backend on a runtime of its own, for a test without one; its
    /// thread ends with [`MllpBackend::stop`] or the test process.
    ///
    /// # Panics
    /// When the runtime or the listener cannot be made.
    pub fn in_thread(plan: AckPlan) -> MllpBackend {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the backend");
            runtime.block_on(async {
                let backend = MllpBackend::start(plan).await;
                let stopped = backend.state.stop.clone();
                let _ = tx.send(backend);
                stopped.cancelled().await;
            });
        });
        rx.recv().expect("the backend's thread starts")
    }

    /// From now on, `rule` decides each answer.
    pub fn answer_with(&self, rule: Rule) {
        *lock(&self.state.rule) = Some(rule);
    }

    /// Back to the [`AckPlan`].
    pub fn answer_per_plan(&self) {
        *lock(&self.state.rule) = None;
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.state.stop.cancel();
    }

    /// The `forward = "..."` value that reaches this receiver.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Every byte read, over all connections.
    pub fn raw(&self) -> Vec<u8> {
        lock(&self.state.raw).clone()
    }

    /// Payloads of the frames read, in order.
    pub fn received(&self) -> Vec<Vec<u8>> {
        lock(&self.state.received).payloads.clone()
    }

    /// Control ids of the HL7 messages read, in order, repeats included.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.state.received).ids.clone()
    }

    /// How many times `id` was read.
    pub fn count(&self, id: &str) -> usize {
        lock(&self.state.received)
            .per_id
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Payloads of the frames sent (ACKs), in order.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        lock(&self.state.sent).clone()
    }

    /// Waits until `n` connections have reached their end of stream, so
    /// everything the gateway forwarded on them has been read.
    pub async fn wait_ended(&self, n: usize) {
        bounded("backend connections ended", async {
            while self.state.ended.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(
            self.state.ended.load(Ordering::SeqCst),
            n,
            "connections ended"
        );
    }

    /// Waits (at most `limit`) until `id` was read `times` times.
    pub async fn wait_for(&self, id: &str, times: usize, limit: Duration) {
        let what = format!("the backend reads {id} {times} time(s)");
        until(limit, &what, || self.ids(), |_| self.count(id) >= times).await;
    }

    /// Waits (at most `limit`) until `n` messages were read.
    pub async fn wait_count(&self, n: usize, limit: Duration) {
        let what = format!("the backend reads {n} messages");
        until(limit, &what, || self.received().len(), |got| *got >= n).await;
    }

    /// [`MllpBackend::wait_for`] for a test without a runtime.
    pub fn wait_for_blocking(&self, id: &str, times: usize, limit: Duration) {
        let what = format!("the backend reads {id} {times} time(s)");
        until_blocking(limit, &what, || self.ids(), |_| self.count(id) >= times);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let tcp = tokio::select! {
            () = state.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => return,
            },
        };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let state = state.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = state.stop.cancelled() => {}
                () = serve(&state, tcp) => {}
            }
        });
    }
}

async fn serve(state: &State, tcp: TcpStream) {
    let (mut rd, mut wr) = tcp.into_split();
    let plan = &state.plan;
    if let Some(ack) = &plan.unsolicited {
        lock(&state.sent).push(ack.clone());
        let _ = wr.write_all(&frame(ack)).await;
    }
    let mut codec = MllpCodec::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut later = Vec::new();
    let mut answered = 0;
    'read: loop {
        buf.reserve(64 * 1024);
        let before = buf.len();
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => lock(&state.raw).extend_from_slice(&buf[before..]),
        }
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            for ack in state.answers(&frame.payload) {
                if plan.after_eof {
                    later.push(ack);
                } else if state.send(&mut wr, ack, plan.delay).await.is_err() {
                    return;
                }
            }
            answered += 1;
            if plan.messages_per_connection == Some(answered) {
                break 'read;
            }
        }
    }
    for ack in later {
        let _ = state.send(&mut wr, ack, Duration::ZERO).await;
    }
    let _ = wr.shutdown().await;
    state.ended.fetch_add(1, Ordering::SeqCst);
}

impl State {
    /// Records `payload` and returns the ACKs it gets, in order.
    fn answers(&self, payload: &[u8]) -> Vec<Vec<u8>> {
        // Lenient like real receivers: a BOM or LF segment ends are accepted.
        let parsed = Message::parse_with(payload, ParseOptions::lenient());
        let header = parsed.as_ref().ok().map(Header::read);
        let (n, seen) = {
            let mut received = lock(&self.received);
            received.payloads.push(payload.to_vec());
            let seen = header.as_ref().map_or(0, |h| {
                received.ids.push(h.control_id.to_string());
                let count = received.per_id.entry(h.control_id.to_string()).or_default();
                *count += 1;
                *count - 1
            });
            (received.payloads.len(), seen)
        };
        let (Ok(message), Some(header)) = (parsed, header) else {
            let answer = self.plan.answer_not_hl7 && !self.plan.silent;
            return answer
                .then(|| NOT_HL7_ANSWER.to_vec())
                .into_iter()
                .collect();
        };
        let rule = lock(&self.rule).clone();
        let reply = match rule {
            Some(rule) => rule(&header.control_id, seen),
            None => self.plan.reply(&header),
        };
        let ack = |code| ack_for(&message, code, &format!("ACK{n}"));
        match reply {
            Reply::Ack(code) => vec![ack(code)],
            Reply::Acks(codes) => codes.into_iter().map(ack).collect(),
            Reply::WrongId(code) => vec![wrong_id(ack(code), code, &header.control_id)],
            Reply::Frame(payload) => vec![payload],
            Reply::Silence => Vec::new(),
        }
    }

    async fn send<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        ack: Vec<u8>,
        delay: Duration,
    ) -> std::io::Result<()> {
        // A zero sleep still waits for the timer's next tick (a
        // millisecond): a backend that answers at once must not.
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Recorded first: once the sender reads it, it is in `sent`.
        lock(&self.sent).push(ack.clone());
        wr.write_all(&frame(&ack)).await
    }
}

impl AckPlan {
    /// The plan's answer to a message with this header.
    fn reply(&self, header: &Header) -> Reply {
        if self.silent {
            return Reply::Silence;
        }
        let code = match self.honour_ack_modes {
            true => match enhanced_answer(header, self.code) {
                Some(code) => code,
                None => return Reply::Silence,
            },
            false => self.code,
        };
        match self.wrong_id {
            true => Reply::WrongId(code),
            false => Reply::Ack(code),
        }
    }
}

/// `ack` with `-OTHER` after its MSA-2 `id`.
fn wrong_id(ack: Vec<u8>, code: AckCode, id: &str) -> Vec<u8> {
    let text = String::from_utf8(ack).expect("an ACK is text");
    let msa = format!("\rMSA|{}|{id}", code.as_str());
    assert!(text.contains(&msa), "{text:?}");
    text.replace(&msa, &format!("{msa}-OTHER")).into_bytes()
}

/// The one answer an enhanced-mode receiver gives, if any.
fn enhanced_answer(header: &Header, application: AckCode) -> Option<AckCode> {
    if accept_ack_due(header, AckCode::CA) {
        Some(AckCode::CA)
    } else if application_ack_due(header, application) {
        Some(application)
    } else {
        None
    }
}

/// `build_ack` with a fixed timestamp.
pub fn ack_for(message: &Message<'_>, code: AckCode, control_id: &str) -> Vec<u8> {
    build_ack(
        message,
        &AckRequest {
            code,
            control_id,
            timestamp: "20240101120000",
            text: None,
            error: None,
        },
    )
}

/// Frames read from one stream, one at a time, each read bounded.
pub struct FrameReader {
    codec: MllpCodec,
    buf: BytesMut,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            codec: MllpCodec::new(MAX_FRAME),
            buf: BytesMut::new(),
        }
    }
}

impl FrameReader {
    /// The next frame's payload; `None` at a clean end of stream.
    ///
    /// # Panics
    /// On bytes outside any frame, a framing error, or nothing in time.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Option<Vec<u8>> {
        bounded("MLLP frame", async {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.buf).expect("an MLLP frame") {
                    assert_eq!(frame.discarded, 0, "bytes outside any frame");
                    return Some(frame.payload.to_vec());
                }
                self.buf.reserve(64 * 1024);
                if rd.read_buf(&mut self.buf).await.expect("a read") == 0 {
                    let last = self.codec.decode_eof(&mut self.buf).expect("an MLLP frame");
                    return last.map(|f| f.payload.to_vec());
                }
            }
        })
        .await
    }

    /// The next frame, which must come.
    pub async fn frame<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Vec<u8> {
        self.next(rd).await.expect("a frame, got end of stream")
    }

    /// Every frame up to the end of stream.
    pub async fn until_end<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next(rd).await {
            frames.push(frame);
        }
        frames
    }
}

/// Writes `payloads`, each framed, in one write.
pub async fn send_frames<W: AsyncWrite + Unpin>(wr: &mut W, payloads: &[&[u8]]) {
    let bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    bounded("write frames", wr.write_all(&bytes))
        .await
        .expect("the frames are written");
}
