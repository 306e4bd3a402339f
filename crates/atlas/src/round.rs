//! Percentages written as it-lanscape writes them: JavaScript's
//! `toFixed(1)`, which rounds the exact binary value half **up**
//! (6.25 → 6.3), where Rust's `{:.1}` rounds half to even (6.25 → 6.2).

/// `x.toFixed(1)` for a finite, non-negative `x`, as a number.
pub fn to_fixed_1(x: f64) -> f64 {
    to_fixed_1_text(x).parse().unwrap_or(0.0)
}

/// `x.toFixed(1)` for a finite, non-negative `x`, as text.
pub fn to_fixed_1_text(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return format!("{x:.1}");
    }
    // Every f64 has a finite decimal expansion; 1100 places hold it whole,
    // so the digits below are the exact value, not a rounding of it.
    let exact = format!("{x:.1100}");
    let (int, frac) = exact.split_once('.').unwrap_or((&exact, "0"));
    let mut tenths: u64 =
        int.parse::<u64>().unwrap_or(0) * 10 + u64::from(frac.as_bytes()[0] - b'0');
    if frac.as_bytes().get(1).is_some_and(|d| *d >= b'5') {
        tenths += 1;
    }
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// JavaScript's `Math.round`: half towards +∞.
pub fn js_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_up_as_javascript_does() {
        assert_eq!(to_fixed_1_text(6.25), "6.3");
        assert_eq!(to_fixed_1_text(0.05), "0.1"); // 0.05000000000000000277
        assert_eq!(to_fixed_1_text(0.15), "0.1"); // 0.1499999999999999944
        assert_eq!(to_fixed_1_text(100.0), "100.0");
        assert_eq!(to_fixed_1_text(99.95), "100.0"); // 99.9500000000000028
        assert_eq!(to_fixed_1_text(40.19607843137255), "40.2");
        assert_eq!(to_fixed_1_text(0.0), "0.0");
        assert_eq!(to_fixed_1(33.33333333333333), 33.3);
    }

    #[test]
    fn math_round_goes_up_on_halves() {
        assert_eq!(js_round(78.5), 79.0);
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(2.4999), 2.0);
    }
}
