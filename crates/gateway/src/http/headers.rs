//! The headers an `http` route sends upstream: the client's own, minus
//! hop-by-hop headers and every header that could claim an identity, plus
//! guichet's statement of who the client is.
//!
//! Upstreams trust these headers because guichet sets them; a client that
//! sends its own copy must never get it through, whatever its case or how
//! many times it repeats it.

use std::fmt::Write as _;

use guichet_tls::{AppName, Identity};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityForms;

pub const APP: &str = "x-guichet-app";
pub const RULE: &str = "x-guichet-rule";
pub const FINGERPRINT: &str = "x-guichet-cert-fingerprint";
pub const TRAEFIK_INFO: &str = "x-forwarded-tls-client-cert-info";
pub const ENVOY_XFCC: &str = "x-forwarded-client-cert";

/// Hop-by-hop headers (RFC 9110 §7.6.1): they concern one connection and
/// are never forwarded.
static HOP_BY_HOP_NAMES: [HeaderName; 9] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Header names a proxy sets to tell the application behind it who the
/// client is, by prefix. The family is "identity asserted by whoever sits
/// in front": the client's address, its certificate and how it verified,
/// and the user or consumer an authenticating proxy (oauth2-proxy,
/// Authelia, Apache, IIS ARR, AWS ALB, Google IAP, Cloudflare Access, Kong,
/// Azure EasyAuth, WebLogic and WebSphere plug-ins, Envoy...) vouches for.
/// An application behind guichet may trust any of them, so none may come
/// from a client.
const CLAIM_PREFIXES: [&str; 26] = [
    // Addresses, protocol, host and the forwarded certificate.
    "x-forwarded",
    "x-original-",
    "x-guichet-",
    // Client certificates and their verification (nginx, HAProxy, Apache).
    "x-ssl-",
    "ssl-client",
    "x-client-",
    "client-cert",
    // Users vouched for by an authenticating proxy.
    "x-remote-",
    "remote-",
    "x-authenticated-",
    "x-auth-request-",
    "x-auth-user",
    "x-webauth-",
    "x-consumer-",
    "x-credential-",
    "x-anonymous-consumer",
    "x-goog-authenticated-",
    "x-goog-iap-",
    "cf-access-",
    "x-ms-client-principal",
    "x-ms-token-",
    // Certificates and users set by cloud and vendor front ends.
    "x-arr-",
    "x-amzn-",
    "x-envoy-",
    "wl-proxy-",
    // WebSphere's plug-in ($WSRA: address, $WSCC: certificate, ...).
    "$ws",
];

/// Exact names in the same family that share no prefix.
const CLAIM_NAMES: [&str; 8] = [
    "forwarded",
    "x-real-ip",
    "x-rewrite-url",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "proxy-client-ip",
];

/// Whether a client header could pass for a statement by a proxy about the
/// client (its address, its certificate, its user, its application).
/// `name` is lower case, as `http` stores header names.
fn claims_identity(name: &str) -> bool {
    // CGI, WSGI, PHP-FPM and uWSGI read `X_Guichet_App` as `X-Guichet-App`:
    // names with `_` go, as nginx drops them by default.
    name.contains('_')
        || CLAIM_PREFIXES.iter().any(|p| name.starts_with(p))
        || CLAIM_NAMES.contains(&name)
}

/// Removes hop-by-hop headers, including those the `Connection` header
/// names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names, comparing
    // interned names, spares parsing and hashing nine names per message.
    if !headers.keys().any(|name| HOP_BY_HOP_NAMES.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP_NAMES {
        headers.remove(name);
    }
}

/// Removes every header a client could use to pretend to be someone.
pub fn strip_identity_claims(headers: &mut HeaderMap) {
    let claimed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| claims_identity(name.as_str()))
        .cloned()
        .collect();
    for name in claimed {
        headers.remove(name);
    }
}

/// What the upstream is told about a client's certificate and address:
/// the same for every request of a connection, so built once.
pub struct ClientHeaders {
    /// The application the certificate was recognised as, and its value:
    /// the one a rule admits it as, most often.
    app: (AppName, HeaderValue),
    fingerprint: HeaderValue,
    client_ip: HeaderValue,
    traefik: HeaderValue,
    envoy: HeaderValue,
}

impl ClientHeaders {
    /// `fingerprint` is the certificate's SHA-256 in lower-case hex,
    /// `client_ip` the client's address, as the access log writes them.
    pub fn new(app: &AppName, identity: &Identity, fingerprint: &str, client_ip: &str) -> Self {
        ClientHeaders {
            app: (app.clone(), value(app.as_str())),
            fingerprint: value(fingerprint),
            client_ip: value(client_ip),
            traefik: value(&traefik_info(identity)),
            envoy: value(&envoy_xfcc(identity)),
        }
    }
}

/// Who the client is, as the upstream is told.
pub struct Forwarded<'a> {
    pub app: &'a AppName,
    /// The rule's name as a header value.
    pub rule: &'a HeaderValue,
    pub client: &'a ClientHeaders,
    /// The host the client asked for, as it wrote it.
    pub host: Option<&'a HeaderValue>,
    pub forms: IdentityForms,
}

impl Forwarded<'_> {
    /// Writes guichet's identity headers (after the client's copies were
    /// stripped).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let client = self.client;
        let app = match &client.app {
            (known, app) if known == self.app => app.clone(),
            _ => value(self.app.as_str()),
        };
        headers.insert(HeaderName::from_static(APP), app);
        headers.insert(HeaderName::from_static(RULE), self.rule.clone());
        headers.insert(
            HeaderName::from_static(FINGERPRINT),
            client.fingerprint.clone(),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            client.client_ip.clone(),
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
        if let Some(host) = self.host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
        }
        if self.forms.traefik {
            headers.insert(
                HeaderName::from_static(TRAEFIK_INFO),
                client.traefik.clone(),
            );
        }
        if self.forms.envoy {
            headers.insert(HeaderName::from_static(ENVOY_XFCC), client.envoy.clone());
        }
    }
}

/// A header value from text, escaping what a header cannot carry.
pub fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_str(&escape_unsafe(text)).unwrap_or(EMPTY))
}

const EMPTY: HeaderValue = HeaderValue::from_static("");

/// Traefik's `X-Forwarded-Tls-Client-Cert-Info`: `Subject="...";
/// Issuer="...";SerialNumber="...";NB="...";NA="...";SAN="..."`, the whole
/// URL-encoded.
pub fn traefik_info(id: &Identity) -> String {
    let dn = |name: &guichet_tls::DistinguishedName| {
        name.to_string().split(", ").collect::<Vec<_>>().join(",")
    };
    let sans: Vec<String> = id
        .san_dns
        .iter()
        .chain(&id.san_email)
        .chain(&id.san_uri)
        .cloned()
        .chain(id.san_ip.iter().map(ToString::to_string))
        .collect();
    let info = format!(
        "Subject=\"{}\";Issuer=\"{}\";SerialNumber=\"{}\";NB=\"{}\";NA=\"{}\";SAN=\"{}\"",
        dn(&id.subject),
        dn(&id.issuer),
        decimal_serial(&id.serial),
        id.not_before,
        id.not_after,
        sans.join(",")
    );
    query_escape(&info)
}

/// A hex serial number in decimal, as Go's `big.Int.String()` (and so
/// Traefik) prints it.
fn decimal_serial(hex: &str) -> String {
    let mut digits: Vec<u8> = hex
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| d as u8)
        .collect();
    let mut decimal = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        // One long division of the base-16 number by 10.
        let mut remainder = 0u32;
        for d in &mut digits {
            let value = remainder * 16 + u32::from(*d);
            *d = (value / 10) as u8;
            remainder = value % 10;
        }
        decimal.push(b'0' + remainder as u8);
    }
    if decimal.is_empty() {
        return "0".into();
    }
    decimal.iter().rev().map(|d| *d as char).collect()
}

/// Envoy's `x-forwarded-client-cert`: `Hash=<sha256 hex>;Subject="...";
/// URI=...;DNS=...`.
pub fn envoy_xfcc(id: &Identity) -> String {
    let mut out = format!(
        "Hash={};Subject=\"{}\"",
        hex_lower(&id.fingerprint.0),
        // RFC 4514 already escapes `"` and `\` with a backslash, which is
        // what a quoted XFCC value needs.
        id.subject.rfc4514()
    );
    for uri in &id.san_uri {
        let _ = write!(out, ";URI={}", xfcc_value(uri));
    }
    for dns in &id.san_dns {
        let _ = write!(out, ";DNS={}", xfcc_value(dns));
    }
    escape_unsafe(&out)
}

/// XFCC values with `,;=`, quotes or backslashes are quoted, those two
/// escaped.
fn xfcc_value(v: &str) -> String {
    if v.contains([',', ';', '=', '"', '\\']) {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

pub fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Go's `url.QueryEscape`, which Traefik uses: unreserved characters stay,
/// space becomes `+`, every other byte `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Percent-encodes control and non-ASCII bytes so the text is a valid
/// header value (certificate names may hold accents).
fn escape_unsafe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_claims_are_recognised_in_any_case() {
        let mut headers = HeaderMap::new();
        for name in [
            "X-Forwarded-For",
            "x-forwarded-client-cert",
            "X-FORWARDED-TLS-CLIENT-CERT-INFO",
            "Forwarded",
            "X-Real-IP",
            "X-Guichet-App",
            "X-SSL-Client-Cert",
            "ssl-client-verify",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.append("x-forwarded-for", HeaderValue::from_static("second copy"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        strip_identity_claims(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("accept"));
    }

    /// The auth-proxy identity headers that reached upstreams before,
    /// and their families, go in any case and however often repeated.
    #[test]
    fn f5_auth_proxy_identity_headers_are_stripped() {
        let claimed = [
            "X-Remote-User",
            "Remote-User",
            "X-Authenticated-User",
            "X-ARR-ClientCert",
            "X-Client-Verify",
            "X-Amzn-Mtls-Clientcert",
            "X-Cluster-Client-IP",
            "x-remote-user",
            "X-REMOTE-USER",
            "rEmOtE-uSeR",
            "Remote-Groups",
            "Remote-Email",
            "X-Remote-Group",
            "X-Forwarded-User",
            "X-Forwarded-Email",
            "X-Auth-Request-User",
            "X-Auth-Request-Email",
            "X-WEBAUTH-USER",
            "X-SSL-Client-S-DN",
            "Ssl-Client-Verify",
            "X-Client-DN",
            "X-Client-S-DN",
            "X-Amzn-Oidc-Identity",
            "X-Goog-Authenticated-User-Email",
            "Cf-Access-Authenticated-User-Email",
            "X-MS-CLIENT-PRINCIPAL-NAME",
            "X-Consumer-Username",
            "WL-Proxy-Client-Cert",
            "$WSCC",
            "Proxy-Client-IP",
            "Fastly-Client-IP",
            "X-Envoy-External-Address",
        ];
        let mut headers = HeaderMap::new();
        for name in claimed {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name.clone(), HeaderValue::from_static("spoofed"));
            headers.append(name, HeaderValue::from_static("again"));
        }
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("remoteness", HeaderValue::from_static("kept"));
        strip_identity_claims(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            ["accept", "authorization", "remoteness", "x-request-id"],
            "{headers:?}"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-trace"),
        );
        headers.insert("x-trace", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
    }

    #[test]
    fn serials_print_in_decimal_like_go() {
        assert_eq!(decimal_serial("0"), "0");
        assert_eq!(decimal_serial("FF"), "255");
        assert_eq!(
            decimal_serial("432FFB61810BAEC0208031F9117B5E91"),
            "89307412279820470522867246709054594705"
        );
    }

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(
            query_escape("Subject=\"CN=a b,O=é\";"),
            "Subject%3D%22CN%3Da+b%2CO%3D%C3%A9%22%3B"
        );
    }

    #[test]
    fn unsafe_bytes_are_escaped_for_headers() {
        assert_eq!(escape_unsafe("O=Hôpital\n%"), "O=H%C3%B4pital%0A%25");
        assert!(HeaderValue::from_str(&escape_unsafe("é\r\n")).is_ok());
    }
}
