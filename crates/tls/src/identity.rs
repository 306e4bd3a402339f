//! What a certificate says about its holder, read once after the handshake.
//!
//! The allowlist, the logs and `guichet pki show` all read the same
//! [`Identity`], so a name printed in a refusal is exactly the name an
//! operator can put in an `[[app]]` entry.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The parsed, owned view of one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Who the certificate names; allowlist rules match on its CN, O and OU.
    pub subject: DistinguishedName,
    /// The CA that signed it, as written in the certificate (not verified here).
    pub issuer: DistinguishedName,
    /// Serial number as upper-case hex, as printed by `openssl x509 -serial`.
    pub serial: String,
    /// Validity window, in seconds since the Unix epoch.
    pub not_before: i64,
    /// End of the validity window, in seconds since the Unix epoch.
    pub not_after: i64,
    /// DNS names of the subject alternative name extension.
    pub san_dns: Vec<String>,
    /// URIs of the subject alternative name extension.
    pub san_uri: Vec<String>,
    /// IP addresses of the subject alternative name extension.
    pub san_ip: Vec<IpAddr>,
    /// E-mail addresses of the subject alternative name extension.
    pub san_email: Vec<String>,
    /// Extended key usages by name (`serverAuth`, `clientAuth`, ...);
    /// `None` when the extension is absent (any usage allowed).
    pub extended_key_usage: Option<Vec<String>>,
    /// Whether basicConstraints says this is a CA certificate.
    pub is_ca: bool,
    /// SHA-256 of the whole certificate (DER).
    pub fingerprint: Fingerprint,
    /// SHA-256 of the SubjectPublicKeyInfo: survives renewal with the same key.
    pub spki: SpkiPin,
    /// The public key algorithm, e.g. `ECDSA P-256` or `RSA 2048`.
    pub key_algorithm: String,
}

/// A distinguished name as an ordered list of `(attribute, value)` pairs.
///
/// Attributes use their usual short names (`CN`, `O`, `OU`, `C`, ...); an
/// unknown attribute keeps its dotted OID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistinguishedName {
    attributes: Vec<(String, String)>,
}

/// SHA-256 fingerprint of a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(
    /// The digest bytes.
    pub [u8; 32],
);

/// SHA-256 pin of a SubjectPublicKeyInfo (the `pin-sha256` of HPKP and
/// `curl --pinnedpubkey sha256//...`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(
    /// The digest bytes.
    pub [u8; 32],
);

/// Why bytes or text cannot be read as a certificate, fingerprint, pin or name.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The DER does not parse as a certificate; holds the parser's words.
    #[error("not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// A configured fingerprint is not 32 bytes of hex; holds the text given.
    #[error("a fingerprint is 32 bytes of hex (64 digits, colons allowed), got {0:?}")]
    BadFingerprint(String),
    /// A configured SPKI pin is not 32 bytes of base64; holds the text given.
    #[error("an SPKI pin is 32 bytes of base64 (optionally prefixed sha256//), got {0:?}")]
    BadSpkiPin(String),
    /// A configured DN is not `ATTR=value` pairs; holds the text given.
    #[error("a distinguished name is ATTR=value pairs separated by commas, got {0:?}")]
    BadName(String),
}

/// The X.509 version of a DER certificate (1, 2 or 3); `None` when it does
/// not parse. rustls accepts only version 3.
pub fn x509_version(der: &[u8]) -> Option<u32> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.version().0 + 1)
}

/// How to make a certificate rustls accepts and a name check can match,
/// for `name` (its CN or the host dialled): the words `check` and
/// `pki show` print under a version 1 or SAN-less certificate.
pub fn reissue_hint(name: &str) -> String {
    format!(
        "`guichet pki issue --ca DIR --name {name}` makes one that works (add --key KEY.pem to keep the key); with openssl, sign it with an extension file: \
openssl x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -out {name}.crt -extfile <(printf 'subjectAltName=DNS:{name}\\nextendedKeyUsage=serverAuth,clientAuth\\n')"
    )
}

impl Identity {
    /// Parses a DER certificate; nothing is verified here.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let mut identity = Identity {
            subject: DistinguishedName::from_x509(cert.subject()),
            issuer: DistinguishedName::from_x509(cert.issuer()),
            serial: hex_upper(cert.raw_serial(), ""),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            san_dns: Vec::new(),
            san_uri: Vec::new(),
            san_ip: Vec::new(),
            san_email: Vec::new(),
            extended_key_usage: extended_key_usage(&cert),
            is_ca: cert.is_ca(),
            fingerprint: Fingerprint(sha256(der)),
            spki: SpkiPin(sha256(cert.public_key().raw)),
            key_algorithm: key_algorithm(&cert),
        };
        identity.read_subject_alt_names(&cert);
        Ok(identity)
    }

    /// Whole days from `now` (Unix seconds) until expiry; negative once expired.
    pub fn days_until_expiry(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    fn read_subject_alt_names(&mut self, cert: &X509Certificate<'_>) {
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return;
        };
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => self.san_dns.push(dns.to_string()),
                GeneralName::URI(uri) => self.san_uri.push(uri.to_string()),
                GeneralName::RFC822Name(mail) => self.san_email.push(mail.to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        self.san_ip.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> Option<Vec<String>> {
    let eku = cert.extended_key_usage().ok()??.value;
    let mut names = Vec::new();
    let known = [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ];
    names.extend(
        known
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, n)| n.to_string()),
    );
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    Some(names)
}

fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => match point.key_size() {
            256 => "ECDSA P-256".to_string(),
            384 => "ECDSA P-384".to_string(),
            521 => "ECDSA P-521".to_string(),
            bits => format!("EC {bits}"),
        },
        Ok(_) | Err(_) => cert.public_key().algorithm.algorithm.to_id_string(),
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The certificates a set of CRLs revokes, as (issuer, serial) pairs: for
/// checking a peer admitted before a CRL update, whose handshake is over.
#[derive(Debug, Clone, Default)]
pub struct Revoked {
    entries: std::collections::HashSet<(String, String)>,
}

impl Revoked {
    /// Reads the CRLs (DER); one that does not parse adds nothing (the
    /// verifier built from the same files has refused it already).
    pub fn from_crls<'a>(crls: impl IntoIterator<Item = &'a [u8]>) -> Self {
        use x509_parser::prelude::FromDer;
        let mut entries = std::collections::HashSet::new();
        for der in crls {
            let Ok((_, crl)) =
                x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            else {
                continue;
            };
            let issuer = DistinguishedName::from_x509(crl.issuer()).to_string();
            for revoked in crl.iter_revoked_certificates() {
                entries.insert((issuer.clone(), hex_upper(revoked.raw_serial(), "")));
            }
        }
        Revoked { entries }
    }

    /// Whether these CRLs revoke this certificate.
    pub fn contains(&self, id: &Identity) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .contains(&(id.issuer.to_string(), id.serial.clone()))
    }

    /// Whether the name holds no attribute at all (an empty subject).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex_upper(bytes: &[u8], separator: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(separator)
}

impl DistinguishedName {
    fn from_x509(name: &X509Name<'_>) -> Self {
        let attributes = name
            .iter_rdn()
            .flat_map(|rdn| rdn.iter())
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let key = short_attribute_name(&oid).map_or(oid, str::to_string);
                let value = atv
                    .as_str()
                    .map_or_else(|_| hex_upper(atv.attr_value().data, ""), str::to_string);
                (key, value)
            })
            .collect();
        DistinguishedName { attributes }
    }

    /// Every `(attribute, value)` pair, in certificate order.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// RFC 4514 text (`CN=a,OU=b,O=c`: the last RDN first, special
    /// characters escaped), as Envoy and Go print names.
    pub fn rfc4514(&self) -> String {
        let mut parts: Vec<String> = self
            .attributes()
            .map(|(k, v)| {
                let mut escaped = String::with_capacity(v.len());
                for (i, c) in v.chars().enumerate() {
                    let edge = (i == 0 && (c == ' ' || c == '#'))
                        || (i + 1 == v.chars().count() && c == ' ');
                    if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
                        escaped.push('\\');
                    }
                    escaped.push(c);
                }
                format!("{k}={escaped}")
            })
            .collect();
        parts.reverse();
        parts.join(",")
    }

    /// All values of one attribute (`CN`, `OU`, ...), in certificate order.
    pub fn values<'a>(&'a self, attribute: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(attribute))
            .map(|(_, v)| v.as_str())
    }

    /// The first common name, which most partners use as the application name.
    pub fn common_name(&self) -> Option<&str> {
        self.values("CN").next()
    }

    /// Whether no CRL was loaded, so that nothing can be found revoked.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// Equality as sets of attributes, ignoring order and the case of
    /// attribute names: `CN=a, O=b` equals `o=b,CN=a`.
    pub fn same_as(&self, other: &DistinguishedName) -> bool {
        // Compared in place: rules check the issuer on every request, and
        // sorted copies cost two allocations per attribute.
        let count = |dn: &DistinguishedName, (key, value): &(String, String)| {
            dn.attributes
                .iter()
                .filter(|(k, v)| k.eq_ignore_ascii_case(key) && v == value)
                .count()
        };
        self.attributes.len() == other.attributes.len()
            && self
                .attributes
                .iter()
                .all(|attribute| count(self, attribute) == count(other, attribute))
    }
}

impl FromStr for DistinguishedName {
    type Err = IdentityError;

    /// Reads `CN=Test CA, O=Example` (RFC 4514 order or any order; `\,`
    /// escapes a comma inside a value).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut attributes = Vec::new();
        for part in split_unescaped(s, ',') {
            let part = part.trim();
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| IdentityError::BadName(s.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(IdentityError::BadName(s.to_string()));
            }
            attributes.push((key.to_ascii_uppercase(), value.replace("\\,", ",")));
        }
        if attributes.is_empty() {
            return Err(IdentityError::BadName(s.to_string()));
        }
        Ok(DistinguishedName { attributes })
    }
}

fn split_unescaped(s: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == separator && !escaped => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => escaped = false,
        }
    }
    parts.push(&s[start..]);
    parts
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={}", v.replace(',', "\\,"))?;
        }
        Ok(())
    }
}

fn short_attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

impl fmt::Display for Fingerprint {
    /// `AB:CD:...`, the form `openssl x509 -fingerprint -sha256` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_upper(&self.0, ":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = IdentityError;

    /// Accepts hex with or without colons, any case, optional `sha256:` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::BadFingerprint(s.to_string());
        let trimmed = s.trim();
        let body = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        let digits: Vec<u8> = body.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for SpkiPin {
    /// Standard base64, the form of `pin-sha256` and curl's pinned keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SpkiPin {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let body = trimmed.strip_prefix("sha256//").unwrap_or(trimmed);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| IdentityError::BadSpkiPin(s.to_string()))?;
        let pin: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::BadSpkiPin(s.to_string()))?;
        Ok(SpkiPin(pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_puts_the_last_rdn_first_and_escapes() {
        let dn: DistinguishedName = "O=CH A\\, B, OU=1750000001, CN=partner+a".parse().unwrap();
        assert_eq!(dn.rfc4514(), "CN=partner\\+a,OU=1750000001,O=CH A\\, B");
        assert_eq!(dn.attributes().count(), 3);
    }

    #[test]
    fn fingerprint_accepts_colons_and_case() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(hex.parse::<Fingerprint>().ok(), colons.parse().ok());
        assert_eq!(
            colons.parse::<Fingerprint>().map(|f| f.to_string()).ok(),
            Some(colons)
        );
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn spki_pin_round_trips_with_prefix() {
        let pin = SpkiPin([7u8; 32]);
        let text = format!("sha256//{pin}");
        assert_eq!(text.parse::<SpkiPin>().ok(), Some(pin));
        assert!("c2hvcnQ=".parse::<SpkiPin>().is_err());
    }

    #[test]
    fn distinguished_names_compare_as_sets() {
        let a: DistinguishedName = "CN=Test CA, O=Hôpital\\, Nord".parse().unwrap();
        let b: DistinguishedName = "o=Hôpital\\, Nord,cn=Test CA".parse().unwrap();
        assert!(a.same_as(&b));
        assert_eq!(a.values("o").collect::<Vec<_>>(), ["Hôpital, Nord"]);
        let c: DistinguishedName = "CN=Other CA, O=Hôpital\\, Nord".parse().unwrap();
        assert!(!a.same_as(&c));
        // Repeated attributes count: the same names, not the same set.
        let twice_cn: DistinguishedName = "CN=a, CN=a, O=b".parse().unwrap();
        let twice_o: DistinguishedName = "CN=a, O=b, O=b".parse().unwrap();
        assert!(!twice_cn.same_as(&twice_o));
        assert!(!twice_o.same_as(&twice_cn));
        assert!(!a.same_as(&"CN=Test CA".parse().unwrap()));
        assert!("no equals sign".parse::<DistinguishedName>().is_err());
    }
}
