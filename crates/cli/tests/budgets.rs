//! Connection budgets with the real binary: floods of connections closed at accept, and
//! of silent TLS connections timing out, are logged one line a second
//! with the count of lines suppressed, so the log says how many without
//! flooding.

use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

/// The lines of `proc` with `reason=REASON`, and the refusals they stand
/// for: each line is one, plus its `suppressed=` count.
fn refusal_lines(proc: &Proc, reason: &str) -> (usize, u64) {
    let lines: Vec<String> = proc
        .lines()
        .into_iter()
        .filter(|l| field(l, "reason=") == Some(reason))
        .collect();
    let stood_for = lines
        .iter()
        .map(|l| 1 + field(l, "suppressed=").map_or(0, |n| n.parse::<u64>().unwrap()))
        .sum();
    (lines.len(), stood_for)
}

/// Waits for a line with `reason=REASON` after line `from`.
fn wait_reason(proc: &Proc, from: usize, reason: &str) -> String {
    proc.wait_line_after(from, reason, |l| field(l, "reason=") == Some(reason))
}

#[test]
fn f4_connections_closed_at_accept_log_one_line_a_second_with_the_count() {
    let bench = Bench::new();
    let echo = Echo::start();
    let gateway = bench.run(
        "guichet.toml",
        &format!(
            "[gateway]\nwatch_interval = \"0s\"\n\n[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nforward = \"{}\"\nmax_connections_per_source = 1\n",
            echo.addr()
        ),
    );
    let port = gateway.route_port("r");
    let mut held = connect(port);
    round_trip(&mut held, b"held\r");
    for _ in 0..100 {
        let mut over = connect(port);
        assert!(closed_by_peer(&mut over));
    }
    wait_reason(&gateway, 0, "per_source_limit");
    // The throttle counts wall-clock seconds: one more refusal in a later
    // second is logged, with what was suppressed before it.
    std::thread::sleep(Duration::from_millis(1100));
    let from = gateway.line_count();
    let mut last = connect(port);
    assert!(closed_by_peer(&mut last));
    let line = wait_reason(&gateway, from, "per_source_limit");
    assert!(line.contains("max_connections_per_source = 1"), "{line}");
    let (lines, stood_for) = refusal_lines(&gateway, "per_source_limit");
    assert!(
        lines <= 4,
        "{lines} lines for 101 refusals:\n{}",
        gateway.log()
    );
    assert_eq!(stood_for, 101, "{}", gateway.log());
    round_trip(&mut held, b"still served\r");
    assert_eq!(echo.accepted(), 1);
}

#[test]
fn f4_silent_tls_connections_timing_out_log_one_line_a_second_with_the_count() {
    let bench = Bench::new();
    bench.issue("gw", &[]);
    let echo = Echo::start();
    let gateway = bench.run(
        "guichet.toml",
        &format!(
            "[gateway]\nwatch_interval = \"0s\"\n\n{}{}[[route]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"gw\"\nallow = [\"eai\"]\nforward = \"{}\"\nhandshake_timeout = \"300ms\"\n",
            profile("gw", &bench, Some("gw"), true),
            app("eai", "eai"),
            echo.addr()
        ),
    );
    let port = gateway.route_port("r");
    let silent: Vec<TcpStream> = (0..20).map(|_| connect(port)).collect();
    for mut conn in silent {
        assert!(closed_by_peer(&mut conn));
    }
    wait_reason(&gateway, 0, "handshake_timeout");
    std::thread::sleep(Duration::from_millis(1100));
    let from = gateway.line_count();
    let mut last = connect(port);
    assert!(closed_by_peer(&mut last));
    wait_reason(&gateway, from, "handshake_timeout");
    let (lines, stood_for) = refusal_lines(&gateway, "handshake_timeout");
    assert!(
        lines <= 4,
        "{lines} lines for 21 timeouts:\n{}",
        gateway.log()
    );
    assert_eq!(stood_for, 21, "{}", gateway.log());
    assert_eq!(echo.accepted(), 0);
}
