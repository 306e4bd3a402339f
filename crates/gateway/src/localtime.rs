//! Local time, with its offset, for what people read (the status page,
//! the demo's trace): `2026-12-06 07:12:03 +01:00`.
//!
//! The C library answers "what is the local offset at this instant" only
//! safely while the process has one thread (`localtime_r` reads the
//! environment, which another thread may be changing; the `time` crate
//! refuses once a second thread exists). So [`init`] asks once, before
//! any thread starts, for every hour of the next 400 days, and keeps only
//! the instants where the offset changes: a daylight-saving change shows
//! on the page at the hour it happens, without asking the C library again.
//! A process that never called [`init`] in time shows UTC, as `+00:00`.

use std::sync::OnceLock;
use std::time::SystemTime;

use time::{Duration, OffsetDateTime, UtcOffset};

/// How far ahead offsets are read at start.
const AHEAD_DAYS: i64 = 400;

static ZONE: OnceLock<Zone> = OnceLock::new();

/// The local offsets from start-up on.
#[derive(Debug)]
struct Zone {
    /// Whether the C library told them (else: UTC).
    known: bool,
    /// The offset before the first change (and when unknown: UTC).
    first: UtcOffset,
    /// From this Unix second on, this offset; sorted.
    changes: Vec<(i64, UtcOffset)>,
}

/// Reads the local offsets now. Call it from `main` before any thread
/// starts; later calls (or a call with threads running) change nothing.
/// Returns false when the offset could not be read (times show in UTC).
pub fn init() -> bool {
    ZONE.get_or_init(read).known
}

fn read() -> Zone {
    let now = OffsetDateTime::now_utc();
    // On the hour: changes of offset fall on whole hours (UTC).
    let start = now - Duration::seconds(now.unix_timestamp().rem_euclid(3600));
    let Ok(first) = UtcOffset::local_offset_at(start) else {
        return Zone {
            known: false,
            first: UtcOffset::UTC,
            changes: Vec::new(),
        };
    };
    // A day at a time, then hour by hour through a day whose offset
    // changed: a few hundred questions instead of ten thousand.
    let mut changes = Vec::new();
    let mut last = first;
    for day in 0..AHEAD_DAYS {
        let end = start + Duration::days(day + 1);
        if UtcOffset::local_offset_at(end).is_ok_and(|o| o == last) {
            continue;
        }
        for hour in 1..=24 {
            let at = start + Duration::days(day) + Duration::hours(hour);
            match UtcOffset::local_offset_at(at) {
                Ok(offset) if offset != last => {
                    changes.push((at.unix_timestamp(), offset));
                    last = offset;
                }
                _ => {}
            }
        }
    }
    Zone {
        known: true,
        first,
        changes,
    }
}

/// The local offset at a Unix second.
fn offset_at(unix: i64) -> UtcOffset {
    let Some(zone) = ZONE.get() else {
        return UtcOffset::UTC;
    };
    let passed = zone.changes.partition_point(|(from, _)| *from <= unix);
    match passed {
        0 => zone.first,
        n => zone.changes[n - 1].1,
    }
}

/// `2026-12-06 07:12:03 +01:00`: local time with its offset.
pub fn format(t: SystemTime) -> String {
    format_datetime(OffsetDateTime::from(t))
}

/// [`format`] of an RFC 3339 time; the text itself if it is none.
pub fn format_rfc3339(text: &str) -> String {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_or_else(|_| text.to_string(), format_datetime)
}

/// [`format`] of a Unix second.
pub fn format_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).map_or_else(|_| unix.to_string(), format_datetime)
}

/// `07:12:03.120`: the local time of day with milliseconds (the trace of
/// the demo, whose lines all fall on the same day).
pub fn time_of_day(t: SystemTime) -> String {
    let local = local(OffsetDateTime::from(t));
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        local.hour(),
        local.minute(),
        local.second(),
        local.millisecond()
    )
}

fn local(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(offset_at(t.unix_timestamp()))
}

fn format_datetime(t: OffsetDateTime) -> String {
    let l = local(t);
    let (h, m, _) = l.offset().as_hms();
    let sign = if l.offset().is_negative() { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}:{:02}",
        l.year(),
        u8::from(l.month()),
        l.day(),
        l.hour(),
        l.minute(),
        l.second(),
        h.unsigned_abs(),
        m.unsigned_abs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_offset_after_the_time() {
        let zone = Zone {
            known: true,
            first: UtcOffset::from_hms(1, 0, 0).unwrap(),
            changes: vec![(1_000, UtcOffset::from_hms(2, 0, 0).unwrap())],
        };
        // No test of this crate calls `init`: this is the zone in force.
        ZONE.set(zone).unwrap();
        assert_eq!(format_unix(999), "1970-01-01 01:16:39 +01:00");
        assert_eq!(format_unix(1_000), "1970-01-01 02:16:40 +02:00");
        assert_eq!(
            format_rfc3339("1970-01-01T00:16:40Z"),
            "1970-01-01 02:16:40 +02:00"
        );
        assert_eq!(format_rfc3339("not a time"), "not a time");
    }
}
