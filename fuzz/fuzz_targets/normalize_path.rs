//! Arbitrary request paths through `normalize_path`, the gateway's gate
//! before a path is matched against rules and forwarded.
//!
//! Invariants, from its documentation: no panic; an accepted path holds
//! no dot segment, no empty segment (`//`), no `\` and no `;`; every `%`
//! left starts a valid escape of a character that is neither unreserved
//! (those are decoded) nor a separator, `%` or control (those are
//! refused); the leading `/` is kept or absent as it was; nothing is
//! added (the result is never longer); a path with nothing to decode
//! comes back borrowed and unchanged; and normalising is idempotent.
#![no_main]

use std::borrow::Cow;

use guichet_gateway::http::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(normalized) = normalize_path(path) else {
        return;
    };
    let out = normalized.as_ref();
    assert!(
        !out.split('/').any(|s| s == "." || s == ".."),
        "dot segment in {out:?} (from {path:?})"
    );
    assert!(!out.contains("//"), "empty segment in {out:?}");
    assert!(!out.contains(['\\', ';']), "separator in {out:?}");
    escapes_are_kept_ones(out);
    assert_eq!(out.starts_with('/'), path.starts_with('/'), "{path:?}");
    assert!(out.len() <= path.len(), "{out:?} grew from {path:?}");
    if !path.contains('%') {
        assert!(matches!(normalized, Cow::Borrowed(_)), "{path:?} copied");
        assert_eq!(out, path);
    }
    let again = normalize_path(out).expect("a normalised path is accepted again");
    assert_eq!(again, out, "normalising {path:?} twice changed it");
});

/// Each `%` begins two hex digits that encode a byte `normalize_path`
/// neither decodes nor refuses.
fn escapes_are_kept_ones(out: &str) {
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("a bare % in {out:?}"));
        assert!(
            !(hex.is_ascii_alphanumeric() || b"-._~".contains(&hex)),
            "an unreserved character left encoded in {out:?}"
        );
        assert!(
            !(hex < 0x20 || hex == 0x7f || b"/\\%;".contains(&hex)),
            "an encoded separator, % or control accepted in {out:?}"
        );
    }
}
