//! The JavaScript semantics it-lanscape's checks rely on: `String()` of a
//! value, `a || b` fallbacks, `Set` membership (which tells `"1"` from
//! `1`) and its regular expressions (IPv4, CIDR, trigramme, external
//! hosting), written out by hand.

use crate::model::{truthy, Scalar};

/// `String(value)`: numbers without a trailing `.0`.
pub(crate) fn string(value: &Scalar) -> String {
    match value {
        Scalar::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
            Some(f) => f.to_string(),
            None => n.to_string(),
        },
        other => other.text(),
    }
}

/// `String(value || '')`.
pub(crate) fn or_empty(value: &Option<Scalar>) -> String {
    truthy_value(value).map(string).unwrap_or_default()
}

/// The value when truthy: what `value || ...` keeps.
pub(crate) fn truthy_value(value: &Option<Scalar>) -> Option<&Scalar> {
    value.as_ref().filter(|v| v.truthy())
}

/// it-lanscape's `blank()` of a field it filled with `a || b || ''`.
pub(crate) fn blank_or_falsy(value: &Option<Scalar>) -> bool {
    !truthy(value) || value.as_ref().is_some_and(Scalar::blank)
}

/// `String(value)` with `undefined` for an absent value (a VLAN's `id`).
pub(crate) fn string_or_undefined(value: &Option<Scalar>) -> String {
    value
        .as_ref()
        .map(string)
        .unwrap_or_else(|| "undefined".to_string())
}

/// A value as a `Set` holds it: its kind and its value.
pub(crate) fn set_key(value: &Scalar) -> String {
    match value {
        Scalar::Text(s) => format!("s:{s}"),
        Scalar::Number(n) => format!("n:{}", n.as_f64().unwrap_or(f64::NAN)),
        Scalar::Bool(b) => format!("b:{b}"),
    }
}

/// One octet of `IPV4_RE`: `25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d`.
fn octet(s: &str) -> bool {
    let digits = !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    digits && (s.len() == 1 || !s.starts_with('0')) && s.parse::<u16>().is_ok_and(|n| n <= 255)
}

/// `IPV4_RE.test(text)`.
pub(crate) fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| octet(p))
}

/// `CIDR_RE.test(text)`: an IPv4 address, `/`, 0 to 32 without a leading
/// zero.
pub(crate) fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let bits_ok = !bits.is_empty()
        && bits.len() <= 2
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits.len() == 1 || !bits.starts_with('0'))
        && bits.parse::<u8>().is_ok_and(|n| n <= 32);
    is_ipv4(ip) && bits_ok
}

/// `cidrListIsValid`: blank, or every comma-separated part a CIDR.
pub(crate) fn cidr_list_is_valid(value: &Option<Scalar>) -> bool {
    if crate::model::blank(value) {
        return true;
    }
    let text = value.as_ref().map(string).unwrap_or_default();
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .all(is_cidr)
}

/// `TRIGRAMME_RE`: three ASCII capitals or digits.
pub(crate) fn is_trigramme(code: &str) -> bool {
    code.len() == 3
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `isExternalHosting`: `/saas|cloud|externe|external/i`.
pub(crate) fn is_external_hosting(value: &Option<Scalar>) -> bool {
    let text = or_empty(value).to_lowercase();
    ["saas", "cloud", "externe", "external"]
        .iter()
        .any(|w| text.contains(w))
}

/// `VALID_PROTOCOLS`, `VALID_INTERFACE_TYPES` and `VALID_CRITICITIES`
/// hold text: only text equal to one of them is in.
pub(crate) fn text_in(value: &Option<Scalar>, set: &[&str]) -> bool {
    value
        .as_ref()
        .and_then(Scalar::as_str)
        .is_some_and(|s| set.contains(&s))
}

/// `Number.isInteger(port) && port >= 1 && port <= 65535`: a number,
/// never text.
pub(crate) fn is_port(value: &Option<Scalar>) -> bool {
    match value {
        Some(Scalar::Number(n)) => n
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0 && (1.0..=65535.0).contains(&f)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_it_lanscapes_expressions() {
        assert!(is_ipv4("10.0.0.1") && is_ipv4("255.255.255.255"));
        assert!(!is_ipv4("10.0.0.01") && !is_ipv4("256.1.1.1") && !is_ipv4("1.2.3"));
        assert!(!is_ipv4("1.2.3.4 ") && !is_ipv4("+1.2.3.4"));
        assert!(is_cidr("10.1.0.0/16") && is_cidr("0.0.0.0/0"));
        assert!(!is_cidr("10.1.0.0/33") && !is_cidr("10.1.0.0/08") && !is_cidr("10.1.0.0"));
        let list = Some(Scalar::Text("10.0.0.0/8, 192.168.1.0/24,".into()));
        assert!(cidr_list_is_valid(&list));
    }

    #[test]
    fn values_are_written_and_compared_as_javascript_does() {
        let n = |t: &str| Scalar::Number(serde_json::from_str(t).unwrap());
        assert_eq!(string(&n("2575.0")), "2575");
        assert_eq!(string(&n("2.5")), "2.5");
        assert_ne!(set_key(&n("1")), set_key(&Scalar::Text("1".into())));
        assert_eq!(set_key(&n("1")), set_key(&n("1.0")));
        assert!(is_port(&Some(n("2575.0"))) && !is_port(&Some(Scalar::Text("2575".into()))));
        assert!(is_trigramme("GAP") && is_trigramme("A1B") && !is_trigramme("GA"));
        assert!(is_external_hosting(&Some(Scalar::Text("Cloud HDS".into()))));
    }
}
