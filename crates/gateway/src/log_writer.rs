//! The process's log output: one thread writes the lines in batches, so
//! that logging an HL7 message costs its connection no system call and no
//! lock.
//!
//! Lines reach the thread through one bounded queue, which keeps their
//! order: `tracing`'s own lines (start-up, refusals, warnings), formatted
//! where they happen, and [`Record`]s (the line of each message event),
//! sent as they are and formatted on the writer thread in the layout
//! `tracing` gives its lines. The thread takes what has queued every few
//! milliseconds instead of being woken per line: waking it would cost the
//! sender a futex call. A full queue drops the line and counts it
//! (`guichet_log_lines_dropped_total`); the next lines written say how
//! many were lost. Nothing waits for the terminal or the disk.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// How lines are written: `tracing`'s full text layout, or one JSON object
/// per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Text,
    Json,
}

/// Lines waiting beyond this are dropped (and counted) rather than making
/// a connection wait for the terminal or the disk.
const QUEUE: usize = 65_536;

/// The writer's pause after taking lines; doubled while nothing comes, up
/// to [`IDLE`]. At 40,000 messages a second a batch holds about a hundred
/// lines, written with one system call.
const BUSY: Duration = Duration::from_millis(2);
const IDLE: Duration = Duration::from_millis(50);

/// A batch is written out once it holds this much, whatever remains queued.
const BATCH_BYTES: usize = 256 * 1024;

/// Something logged often enough that its line is formatted by the
/// writer, off the path that logs it.
pub trait Record: Send + Sync {
    /// Writes the whole line, its end of line included.
    fn write(&self, format: LineFormat, out: &mut LineOut<'_>);
}

enum Line {
    /// A line `tracing` formatted.
    Formatted(Vec<u8>),
    Record(Arc<dyn Record>),
}

/// The installed output: the queue's sending end and what the writer and
/// the senders share.
struct Sink {
    tx: SyncSender<Line>,
    format: LineFormat,
    dropped: Counter,
    /// Set once the writer has stopped: later lines go straight to stderr.
    stopped: AtomicBool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts the writer thread and makes it the output of message events.
/// Returns the writer `tracing`'s subscriber should use, and the guard
/// that writes what is still queued when the process ends. Once per
/// process: a second call returns `None`.
pub fn install(format: LineFormat) -> Option<(Lines, Flush)> {
    let (sink, rx) = Sink::new(format, QUEUE);
    let dropped = sink.dropped.clone();
    SINK.set(sink).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = Writer::new(format, rx, dropped, Box::new(io::stderr()));
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let stop = stop.clone();
            move || writer.run(&stop)
        })
        .ok()?;
    Some((
        Lines,
        Flush {
            stop,
            thread: Some(thread),
        },
    ))
}

/// Lines dropped because the writer was behind; registered as
/// `guichet_log_lines_dropped_total`. A counter of its own (always zero)
/// when no writer is installed.
pub fn dropped_counter() -> Counter {
    SINK.get().map(|s| s.dropped.clone()).unwrap_or_default()
}

/// Queues a record's line; false when no writer is installed (a library
/// user, a test), for the caller to log through `tracing` instead. The
/// caller has checked its level is enabled.
pub fn record(record: Arc<dyn Record>) -> bool {
    match SINK.get() {
        Some(sink) => {
            sink.send(Line::Record(record));
            true
        }
        None => false,
    }
}

/// One record's line on its own, as the writer would write it.
pub fn render(record: &dyn Record, format: LineFormat) -> Vec<u8> {
    let mut out = Vec::new();
    record.write(
        format,
        &mut LineOut {
            out: &mut out,
            clock: &mut Clock::default(),
        },
    );
    out
}

impl Sink {
    fn new(format: LineFormat, capacity: usize) -> (Sink, Receiver<Line>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let sink = Sink {
            tx,
            format,
            dropped: Counter::default(),
            stopped: AtomicBool::new(false),
        };
        (sink, rx)
    }

    fn send(&self, line: Line) {
        if self.stopped.load(Ordering::Acquire) {
            self.write_now([line]);
            return;
        }
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// Writes lines straight to stderr, once the writer has stopped.
    fn write_now(&self, lines: impl IntoIterator<Item = Line>) {
        let mut text = Vec::new();
        let mut clock = Clock::default();
        for line in lines {
            clock.line(self.format, line, &mut text);
        }
        let _ = io::stderr().write_all(&text);
    }
}

/// The writer `tracing`'s subscriber is given: each line it formats goes
/// to the queue.
#[derive(Clone, Copy, Debug)]
pub struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineBuf;

    fn make_writer(&'a self) -> LineBuf {
        LineBuf(Vec::new())
    }
}

/// One line being formatted by `tracing`; queued when dropped.
pub struct LineBuf(Vec<u8>);

impl Write for LineBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        if line.is_empty() {
            return;
        }
        match SINK.get() {
            Some(sink) => sink.send(Line::Formatted(line)),
            None => {
                let _ = io::stderr().write_all(&line);
            }
        }
    }
}

/// Held by `main`: when dropped, the writer writes what is queued and
/// stops; lines after that go straight to stderr.
pub struct Flush {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Receiver<Line>>>,
}

impl Drop for Flush {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        let Ok(rx) = thread.join() else { return };
        let Some(sink) = SINK.get() else { return };
        sink.stopped.store(true, Ordering::Release);
        // Lines queued between the writer's last take and `stopped`.
        sink.write_now(rx.try_iter());
    }
}

/// The writer thread's side.
struct Writer {
    format: LineFormat,
    rx: Receiver<Line>,
    dropped: Counter,
    out: Box<dyn Write + Send>,
    clock: Clock,
    batch: Vec<u8>,
    /// Drops already reported in a line.
    reported: u64,
}

impl Writer {
    fn new(
        format: LineFormat,
        rx: Receiver<Line>,
        dropped: Counter,
        out: Box<dyn Write + Send>,
    ) -> Writer {
        Writer {
            format,
            rx,
            dropped,
            out,
            clock: Clock::default(),
            batch: Vec::with_capacity(BATCH_BYTES),
            reported: 0,
        }
    }

    /// Writes what has queued, then pauses; until `stop`, then gives the
    /// queue back for a last look.
    fn run(mut self, stop: &AtomicBool) -> Receiver<Line> {
        let mut pause = BUSY;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let taken = self.round();
            if stopping {
                return self.rx;
            }
            pause = if taken > 0 {
                BUSY
            } else {
                (pause * 2).min(IDLE)
            };
            std::thread::park_timeout(pause);
        }
    }

    /// Takes and writes what has queued, and says what was dropped;
    /// returns the lines taken.
    fn round(&mut self) -> usize {
        let taken = self.take();
        self.report_drops();
        self.write();
        taken
    }

    fn take(&mut self) -> usize {
        let mut taken = 0;
        loop {
            match self.rx.try_recv() {
                Ok(line) => {
                    taken += 1;
                    self.clock.line(self.format, line, &mut self.batch);
                    if self.batch.len() >= BATCH_BYTES {
                        self.write();
                    }
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return taken,
            }
        }
    }

    /// One warning line for the drops since the last one.
    fn report_drops(&mut self) {
        let dropped = self.dropped.get();
        if dropped == self.reported {
            return;
        }
        let lost = dropped - self.reported;
        self.reported = dropped;
        let message = format!(
            "{lost} log lines dropped: the log output could not keep up ({dropped} since start)"
        );
        let mut out = LineOut {
            out: &mut self.batch,
            clock: &mut self.clock,
        };
        out.own_line(self.format, Level::WARN, &message);
    }

    /// Writes the batch with as few system calls as it takes. A failing
    /// output (closed stderr) loses the batch: there is nowhere to say so.
    fn write(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let _ = self.out.write_all(&self.batch);
        self.batch.clear();
    }
}

/// Dates lines; keeps the text of the current second, which every line
/// of a busy second shares.
#[derive(Default)]
struct Clock {
    second: u64,
    /// `2026-12-06T20:15:15` for `second`.
    date: String,
}

impl Clock {
    fn line(&mut self, format: LineFormat, line: Line, out: &mut Vec<u8>) {
        match line {
            Line::Formatted(text) => out.extend_from_slice(&text),
            Line::Record(record) => record.write(format, &mut LineOut { out, clock: self }),
        }
    }
}

/// A line being written by the writer: what a [`Record`] writes with.
pub struct LineOut<'a> {
    out: &'a mut Vec<u8>,
    clock: &'a mut Clock,
}

impl LineOut<'_> {
    /// `2026-12-06T20:15:15.123456Z`, as `tracing` dates its lines.
    pub fn timestamp(&mut self, at: SystemTime) {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let clock = &mut *self.clock;
        if clock.date.is_empty() || since.as_secs() != clock.second {
            clock.second = since.as_secs();
            let t = time::OffsetDateTime::from(at);
            clock.date = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        self.out.extend_from_slice(clock.date.as_bytes());
        self.out.push(b'.');
        self.padded(u64::from(since.subsec_micros()), 6);
        self.out.push(b'Z');
    }

    /// A string as it is.
    pub fn str(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    /// A value through its `Display` (slower than the writers below).
    pub fn display(&mut self, value: impl std::fmt::Display) {
        let _ = write!(self.out, "{value}");
    }

    /// A level as `tracing` shows it: `INFO`, or ` INFO` padded to five
    /// characters in the text layout.
    pub fn level(&mut self, level: Level, padded: bool) {
        let name = level.as_str();
        if padded {
            self.out.resize(self.out.len() + 5 - name.len(), b' ');
        }
        self.str(name);
    }

    /// A number in decimal.
    pub fn number(&mut self, n: u64) {
        self.padded(n, 1);
    }

    /// `n` on at least `width` digits (up to 20), zeros in front.
    fn padded(&mut self, n: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut at = digits.len();
        let mut rest = n;
        while rest > 0 {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let start = at.min(digits.len() - width.clamp(1, digits.len()));
        self.out.extend_from_slice(&digits[start..]);
    }

    /// A duration in milliseconds, to the microsecond: `1.500`.
    pub fn millis(&mut self, d: Duration) {
        let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.number(micros / 1000);
        self.out.push(b'.');
        self.padded(micros % 1000, 3);
    }

    /// An address as its `Display` writes it, IPv4 without `fmt`.
    pub fn addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(v4) => {
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    self.number(u64::from(octet));
                }
                self.out.push(b':');
                self.number(u64::from(v4.port()));
            }
            SocketAddr::V6(_) => self.display(addr),
        }
    }

    /// Text as written, but a control character (a line break in a field,
    /// an escape sequence) shown escaped: one record, one line.
    pub fn text(&mut self, text: &str) {
        if !text.bytes().any(|b| b.is_ascii_control()) {
            self.out.extend_from_slice(text.as_bytes());
            return;
        }
        for c in text.chars() {
            if c.is_ascii_control() {
                let _ = write!(self.out, "{}", c.escape_default());
            } else {
                let mut utf8 = [0; 4];
                self.out
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }

    /// [`LineOut::text`] in quotes, as `tracing` shows string fields.
    pub fn quoted(&mut self, text: &str) {
        self.out.push(b'"');
        self.text(text);
        self.out.push(b'"');
    }

    /// A JSON string.
    pub fn json(&mut self, text: &str) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, text);
    }

    /// A line of the writer's own (lines dropped), at `level`.
    fn own_line(&mut self, format: LineFormat, level: Level, message: &str) {
        let now = SystemTime::now();
        match format {
            LineFormat::Text => {
                self.timestamp(now);
                self.str(" ");
                self.level(level, true);
                self.str(" ");
                self.str(TARGET);
                self.str(": ");
                self.str(message);
                self.str("\n");
            }
            LineFormat::Json => {
                self.str("{\"timestamp\":\"");
                self.timestamp(now);
                self.str("\",\"level\":\"");
                self.level(level, false);
                self.str("\",\"message\":");
                self.json(message);
                self.str(",\"target\":\"");
                self.str(TARGET);
                self.str("\"}\n");
            }
        }
    }
}

/// The target of the writer's own lines.
const TARGET: &str = "guichet_gateway::log_writer";

#[cfg(test)]
mod tests;
