//! What the sender reports: one result per message, and a summary.

use std::fmt;
use std::time::Duration;

use guichet_hl7::AckCode;

use crate::latency::Histogram;

/// How one message ended, from the sender's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// AA or CA, acknowledging this message's MSH-10.
    Accepted,
    /// AE, AR, CE or CR (or an unknown MSA-1), for this message.
    Rejected,
    /// Sent, but no ACK came: timeout, connection closed or broken, or an
    /// answer that is not an ACK.
    NoAck,
    /// An ACK came whose MSA-2 is not this message's MSH-10.
    Mismatched,
    /// Not sent: no connection could be opened.
    NotSent,
}

/// One message sent (or not), as the CLI prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// Which connection (0-based, below `conns`).
    pub conn: usize,
    /// Send number, 0-based, in the order messages were taken.
    pub seq: u64,
    /// MSH-10 of the message sent.
    pub control_id: String,
    /// MSH-9 of the message sent.
    pub message_type: String,
    /// MSA-1 of the answer, when it is a known acknowledgment code.
    pub ack: Option<AckCode>,
    /// Whether the answer's MSA-2 equals `control_id`.
    pub msa2_matches: bool,
    /// From the first byte written to the whole ACK read.
    pub latency: Duration,
    /// Whether this message opened its connection (the first one, or a
    /// reconnection after a loss).
    pub new_connection: bool,
    pub outcome: Outcome,
    /// What went wrong, in words; for a rejection, MSA-3 when present.
    pub error: Option<String>,
}

/// Totals of a run; `all_accepted` decides the exit status.
#[derive(Debug, Clone, Default)]
pub struct SendSummary {
    /// Messages written to a connection.
    pub sent: u64,
    /// AA or CA acknowledging the right message.
    pub accepted: u64,
    /// AE, AR, CE, CR or an unknown code, for the right message.
    pub errors: u64,
    /// Sent without an ACK in time.
    pub no_ack: u64,
    /// Answered with another message's MSA-2.
    pub mismatched: u64,
    /// Not sent: the connection could not be opened.
    pub not_sent: u64,
    /// Connections opened (a lost connection is opened again).
    pub connections: u64,
    /// Every connection stopped after repeated connection failures while
    /// messages were left to send (those are not counted above).
    pub gave_up: bool,
    /// Latencies of the messages that got an ACK.
    latencies: Histogram,
}

impl SendSummary {
    pub(crate) fn add(&mut self, r: &SendResult) {
        if r.new_connection {
            self.connections += 1;
        }
        match r.outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected => self.errors += 1,
            Outcome::NoAck => self.no_ack += 1,
            Outcome::Mismatched => self.mismatched += 1,
            Outcome::NotSent => self.not_sent += 1,
        }
        if r.outcome != Outcome::NotSent {
            self.sent += 1;
        }
        if matches!(
            r.outcome,
            Outcome::Accepted | Outcome::Rejected | Outcome::Mismatched
        ) {
            self.latencies.record(r.latency);
        }
    }

    /// True when something was sent and every message planned was sent and
    /// accepted.
    pub fn all_accepted(&self) -> bool {
        self.sent > 0 && self.accepted == self.sent && self.not_sent == 0 && !self.gave_up
    }

    /// Median latency of the acknowledged messages.
    pub fn p50(&self) -> Option<Duration> {
        self.latencies.quantile(0.50)
    }

    /// 99th percentile latency of the acknowledged messages.
    pub fn p99(&self) -> Option<Duration> {
        self.latencies.quantile(0.99)
    }
}

impl fmt::Display for SendSummary {
    /// One line: `sent 10, accepted 9, errors 1, no ACK 0, mismatched 0,
    /// not sent 0, connections 1, p50 1.2ms, p99 3.4ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, accepted {}, errors {}, no ACK {}, mismatched {}, not sent {}, connections {}",
            self.sent,
            self.accepted,
            self.errors,
            self.no_ack,
            self.mismatched,
            self.not_sent,
            self.connections
        )?;
        if self.gave_up {
            f.write_str(", gave up after repeated connection failures")?;
        }
        if let (Some(p50), Some(p99)) = (self.p50(), self.p99()) {
            write!(f, ", p50 {p50:.1?}, p99 {p99:.1?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome, new_connection: bool) -> SendResult {
        SendResult {
            conn: 0,
            seq: 0,
            control_id: "X".into(),
            message_type: "ADT^A01".into(),
            ack: None,
            msa2_matches: false,
            latency: Duration::from_millis(2),
            new_connection,
            outcome,
            error: None,
        }
    }

    #[test]
    fn counts_and_verdict() {
        let mut s = SendSummary::default();
        assert!(!s.all_accepted(), "nothing sent is not a success");
        s.add(&result(Outcome::Accepted, true));
        s.add(&result(Outcome::Accepted, false));
        assert!(s.all_accepted());
        assert_eq!((s.sent, s.accepted, s.connections), (2, 2, 1));
        let p50 = s.p50().unwrap();
        assert!(p50 >= Duration::from_millis(2) && p50 < Duration::from_micros(2_032));
        for bad in [
            Outcome::Rejected,
            Outcome::NoAck,
            Outcome::Mismatched,
            Outcome::NotSent,
        ] {
            let mut s = s.clone();
            s.add(&result(bad, false));
            assert!(!s.all_accepted(), "{bad:?}");
        }
        s.add(&result(Outcome::NotSent, false));
        assert_eq!((s.sent, s.not_sent, s.connections), (2, 1, 1));
        assert_eq!(
            s.to_string(),
            "sent 2, accepted 2, errors 0, no ACK 0, mismatched 0, not sent 1, connections 1, p50 2.0ms, p99 2.0ms"
        );
    }
}
