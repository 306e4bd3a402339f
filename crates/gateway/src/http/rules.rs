//! Request rules: a path normalised so it can be matched safely, the
//! authority a request is for, the rule it matches, and the path the
//! upstream is asked for.

use http::header::HOST;
use http::uri::PathAndQuery;
use http::Request;

use crate::config::{has_dot_segment, HttpRule, HttpSpec};

/// A path and a query as one.
pub(super) fn with_query(path: &str, query: Option<&str>) -> Result<PathAndQuery, ()> {
    let text = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    PathAndQuery::try_from(text).map_err(|_| ())
}

/// Replaces a request's path (keeping its query).
pub(super) fn set_path<B>(request: &mut Request<B>, path: &str) -> Result<(), ()> {
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(with_query(path, request.uri().query())?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| ())?;
    Ok(())
}

/// The authority a request is for: the URI's (HTTP/2 `:authority`, or an
/// absolute-form request) or the Host header. When both are given they
/// must agree (RFC 9113 §8.3.1, RFC 9112 §3.2.2): the rule is chosen on
/// one and the upstream told the other otherwise. `Err` on a mismatch, a
/// Host header that is no authority, or more than one Host header.
pub(super) fn request_authority<B>(
    request: &Request<B>,
) -> Result<Option<http::uri::Authority>, ()> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        // RFC 9112 §3.2: more than one Host is a 400.
        return Err(());
    }
    let header = match first {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<http::uri::Authority>().ok())
                .ok_or(())?,
        ),
        None => None,
    };
    match (request.uri().authority(), header) {
        (Some(uri), Some(header)) => {
            if uri.host().eq_ignore_ascii_case(header.host()) && uri.port_u16() == header.port_u16()
            {
                Ok(Some(uri.clone()))
            } else {
                Err(())
            }
        }
        (Some(uri), None) => Ok(Some(uri.clone())),
        (None, header) => Ok(header),
    }
}

/// The host part of an authority, lower case, for rule matching and logs.
pub(super) fn host_of(authority: &http::uri::Authority) -> String {
    authority.host().trim_end_matches('.').to_ascii_lowercase()
}

/// The path guichet matches and forwards, or `None` when it cannot be
/// matched safely. Percent-encoded unreserved characters are decoded
/// (`/ror/%69nternal` is `/ror/internal`), so the rule chosen is the one
/// the upstream's own decoding would choose; what stays refused is what an
/// upstream could read as structure: dot segments, empty segments, `;`
/// parameters (`..;`), backslashes, and encoded `/`, `\`, `%`, `;` or
/// control characters.
pub fn normalize_path(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let bytes = path.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let decoded = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.get_or_insert_with(|| bytes[..i].to_vec()).push(decoded);
                i += 3;
                continue;
            }
            if decoded < 0x20 || decoded == 0x7f || b"/\\%;".contains(&decoded) {
                return None;
            }
        }
        if let Some(out) = out.as_mut() {
            out.push(b);
        }
        i += 1;
    }
    let normalized = match out {
        Some(decoded) => std::borrow::Cow::Owned(String::from_utf8(decoded).ok()?),
        None => std::borrow::Cow::Borrowed(path),
    };
    let unsafe_shape = has_dot_segment(&normalized)
        || normalized.contains("//")
        || normalized.contains(['\\', ';']);
    (!unsafe_shape).then_some(normalized)
}

/// The rule for a request: host-specific rules first, then the longest
/// path prefix.
pub(super) fn find_rule<'s>(
    spec: &'s HttpSpec,
    host: Option<&str>,
    path: &str,
) -> Option<(usize, &'s HttpRule)> {
    let best = |with_host: bool| {
        spec.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| match (&r.host, with_host) {
                (Some(h), true) => host == Some(h.as_str()),
                (None, false) => true,
                _ => false,
            })
            .filter(|(_, r)| r.takes_path(path))
            .max_by_key(|(_, r)| r.path.len())
    };
    best(true).or_else(|| best(false))
}

/// The path on the upstream: unchanged, or with the rule's prefix replaced
/// by the upstream URL's path.
pub(super) fn rewrite_path(rule: &HttpRule, path: &str) -> String {
    let Some(base) = &rule.upstream.base_path else {
        return path.to_string();
    };
    let rest = path.strip_prefix(rule.path.as_str()).unwrap_or("");
    match (base.ends_with('/'), rest.starts_with('/')) {
        (true, true) => format!("{base}{}", &rest[1..]),
        (false, false) if !rest.is_empty() => format!("{base}/{rest}"),
        _ => format!("{base}{rest}"),
    }
}
