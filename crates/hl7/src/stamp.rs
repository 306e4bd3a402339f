//! Fresh message control ids (MSH-10) and timestamps (MSH-7).
//!
//! Receivers use MSH-10 to pair ACKs with messages and often to detect
//! duplicates, so every message and every ACK a simulator writes gets an id
//! of its own, unique within the process and unlikely to collide with
//! another run (the prefix comes from the start time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use time::OffsetDateTime;

/// HL7 v2.5 limits MSH-10 to 20 characters; ours stay well below.
pub const MAX_CONTROL_ID: usize = 20;

/// A new control id: `G`, the process start in base 36 milliseconds, and a
/// counter, e.g. `GM8Q3ZK2A000042` (15 characters until the year 2059).
pub fn next_control_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let millis = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        format!("G{}", base36(u64::try_from(millis).unwrap_or(0)))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{n:06}")
}

/// The current time as an HL7 DTM in UTC with its zone written out,
/// `YYYYMMDDHHMMSS+0000`, so receivers in any zone read it right.
pub fn now_timestamp() -> String {
    hl7_timestamp(OffsetDateTime::now_utc())
}

/// `t` as an HL7 DTM, `YYYYMMDDHHMMSS±HHMM`.
pub fn hl7_timestamp(t: OffsetDateTime) -> String {
    let (hours, minutes, _) = t.offset().as_hms();
    let sign = if hours < 0 || minutes < 0 { '-' } else { '+' };
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{sign}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        hours.unsigned_abs(),
        minutes.unsigned_abs(),
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn control_ids_are_fresh_and_short() {
        let a = next_control_id();
        let b = next_control_id();
        assert_ne!(a, b);
        assert!(a.len() <= MAX_CONTROL_ID, "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
    }

    #[test]
    fn timestamps_carry_their_zone() {
        assert_eq!(
            hl7_timestamp(datetime!(2025-03-09 07:05:01 +01:00)),
            "20250309070501+0100"
        );
        assert_eq!(
            hl7_timestamp(datetime!(2025-03-09 07:05:01 -03:30)),
            "20250309070501-0330"
        );
        assert_eq!(now_timestamp().len(), 19);
    }

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "Z");
        assert_eq!(base36(36), "10");
    }
}
