use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::*;

/// What the writer wrote, kept for the test to read.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A record that writes a fixed line, dated.
struct Fixed(&'static str);

impl Record for Fixed {
    fn write(&self, format: LineFormat, out: &mut LineOut<'_>) {
        out.timestamp(at());
        out.display(format_args!(" {format:?} "));
        out.text(self.0);
        out.str("\n");
    }
}

/// 2025-12-06T05:46:40.123456Z.
fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_765_000_000, 123_456_789)
}

fn writer(format: LineFormat, capacity: usize) -> (Sink, Writer, Output) {
    let (sink, rx) = Sink::new(format, capacity);
    let output = Output::default();
    let writer = Writer::new(format, rx, sink.dropped.clone(), Box::new(output.clone()));
    (sink, writer, output)
}

#[test]
fn records_and_formatted_lines_keep_their_order() {
    let (sink, mut writer, output) = writer(LineFormat::Text, 16);
    sink.send(Line::Formatted(b"first\n".to_vec()));
    sink.send(Line::Record(Arc::new(Fixed("second"))));
    sink.send(Line::Formatted(b"third\n".to_vec()));
    assert_eq!(writer.round(), 3);
    assert_eq!(
        output.text(),
        "first\n2025-12-06T05:46:40.123456Z Text second\nthird\n"
    );
    assert_eq!(writer.round(), 0);
    assert_eq!(sink.dropped.get(), 0);
}

/// A full queue drops the line, never waits: the drop is counted, and
/// the writer's next lines say how many were lost.
#[test]
fn a_full_queue_drops_counts_and_reports() {
    let (sink, mut writer, output) = writer(LineFormat::Text, 2);
    for i in 0..5 {
        sink.send(Line::Formatted(format!("line {i}\n").into_bytes()));
    }
    assert_eq!(sink.dropped.get(), 3);
    assert_eq!(writer.round(), 2);
    let text = output.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(&lines[..2], ["line 0", "line 1"]);
    assert!(
        lines[2].ends_with(
            "  WARN guichet_gateway::log_writer: 3 log lines dropped: the log output could \
             not keep up (3 since start)"
        ),
        "{text}"
    );
    // Reported once: a quiet round says nothing more.
    writer.round();
    assert_eq!(output.text().lines().count(), 3);
}

#[test]
fn the_drop_report_is_json_with_json_lines() {
    let (sink, mut writer, output) = writer(LineFormat::Json, 1);
    sink.send(Line::Formatted(b"{}\n".to_vec()));
    sink.send(Line::Formatted(b"{}\n".to_vec()));
    writer.round();
    let text = output.text();
    let report: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(report["level"], "WARN");
    assert_eq!(report["target"], "guichet_gateway::log_writer");
    assert_eq!(
        report["message"],
        "1 log lines dropped: the log output could not keep up (1 since start)"
    );
}

/// A stopped writer's lines go straight out: nothing queues forever.
#[test]
fn lines_after_the_writer_stopped_are_not_queued() {
    let (sink, mut writer, output) = writer(LineFormat::Text, 4);
    sink.stopped.store(true, Ordering::Release);
    sink.send(Line::Formatted(b"late\n".to_vec()));
    assert_eq!(writer.round(), 0);
    assert_eq!(output.text(), "");
    assert_eq!(sink.dropped.get(), 0);
}

fn written(f: impl FnOnce(&mut LineOut<'_>)) -> String {
    let mut out = Vec::new();
    let mut clock = Clock::default();
    f(&mut LineOut {
        out: &mut out,
        clock: &mut clock,
    });
    String::from_utf8(out).unwrap()
}

/// A line break or an escape sequence in a field cannot start a forged
/// line or colour a terminal.
#[test]
fn control_characters_are_escaped() {
    assert_eq!(
        written(|o| o.text("A\nB\r\u{1b}[31mC\tD")),
        "A\\nB\\r\\u{1b}[31mC\\tD"
    );
    assert_eq!(written(|o| o.quoted("é^ü")), "\"é^ü\"");
    assert_eq!(written(|o| o.json("a\"b\nc")), "\"a\\\"b\\nc\"");
}

/// `tracing`'s date layout, microseconds included, across a second.
#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    let next = at() + Duration::from_millis(900);
    assert_eq!(
        written(|o| {
            o.timestamp(at());
            o.str(" ");
            o.timestamp(next);
        }),
        "2025-12-06T05:46:40.123456Z 2025-12-06T05:46:41.023456Z"
    );
}

/// The writer's own number and address writers agree with `Display`.
#[test]
fn numbers_durations_and_addresses() {
    for n in [0, 7, 10, 999, 1_000_000, u64::MAX] {
        assert_eq!(written(|o| o.number(n)), n.to_string());
    }
    let millis = |micros| written(|o| o.millis(Duration::from_micros(micros)));
    assert_eq!(millis(0), "0.000");
    assert_eq!(millis(7), "0.007");
    assert_eq!(millis(1_500), "1.500");
    assert_eq!(millis(12_345_678), "12345.678");
    assert_eq!(written(|o| o.millis(Duration::from_nanos(999))), "0.000");
    for addr in [
        "127.0.0.1:4000",
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "[::1]:8443",
    ] {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        assert_eq!(written(|o| o.addr(addr)), addr.to_string());
    }
    assert_eq!(written(|o| o.level(Level::INFO, true)), " INFO");
    assert_eq!(written(|o| o.level(Level::ERROR, true)), "ERROR");
    assert_eq!(written(|o| o.level(Level::WARN, false)), "WARN");
}
