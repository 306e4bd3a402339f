//! Validity windows: when a certificate starts and stops being valid.

use std::path::Path;

use time::{Duration, OffsetDateTime};

use crate::PkiError;

/// How far back a default `notBefore` goes, so a peer whose clock is a
/// little behind ours still accepts a certificate issued just now.
const CLOCK_SKEW: Duration = Duration::minutes(1);

/// The window `[not_before, not_before + days]`; `not_before` defaults to
/// one minute ago. `path` is the file being produced, for errors.
pub(crate) fn window(
    not_before: Option<OffsetDateTime>,
    days: u32,
    path: &Path,
) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let start = not_before.unwrap_or_else(|| OffsetDateTime::now_utc() - CLOCK_SKEW);
    let end = start.checked_add(Duration::days(i64::from(days)));
    match end {
        Some(end) if days > 0 && end.year() <= 9999 => Ok((start, end)),
        _ => Err(PkiError::InvalidValidity {
            path: path.to_path_buf(),
            days,
            not_before: start,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_a_minute_ago_for_the_given_days() {
        let before = OffsetDateTime::now_utc();
        let (start, end) = window(None, 825, Path::new("x.pem")).unwrap();
        assert!(start <= before - CLOCK_SKEW + Duration::seconds(1));
        assert!(start >= before - CLOCK_SKEW - Duration::seconds(5));
        assert_eq!(end - start, Duration::days(825));
    }

    #[test]
    fn refuses_empty_and_unencodable_windows() {
        for days in [0, u32::MAX] {
            let err = window(None, days, Path::new("x.pem")).unwrap_err();
            assert!(matches!(err, PkiError::InvalidValidity { .. }), "{err}");
        }
    }
}
