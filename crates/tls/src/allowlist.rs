//! Which partner applications a listener admits, recognised by certificate.
//!
//! A valid chain only proves that some CA vouched for the peer; the
//! allowlist says *which* peer it must be. Every field given in an `[[app]]`
//! entry must match (AND); a listener admits a peer when any of its apps
//! matches (OR).

use std::fmt;
use std::sync::Arc;

use crate::identity::{DistinguishedName, Fingerprint, Identity, SpkiPin};

/// The name of one partner application, as written in `[[app]] name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(Arc<str>);

impl AppName {
    /// Takes the name as written in the configuration; no check is made here.
    pub fn new(name: &str) -> Self {
        AppName(Arc::from(name))
    }

    /// The name as written in the configuration, for logs and labels.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to recognise one application's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRule {
    /// The application this rule recognises, reported when it admits a peer.
    pub name: AppName,
    /// Subject common name, compared exactly.
    pub cn: Option<String>,
    /// Subject organisation, compared exactly.
    pub o: Option<String>,
    /// Subject organisational unit, compared exactly (IGC Santé puts the
    /// structure's FINESS or SIRET there).
    pub ou: Option<String>,
    /// Issuer common name: pins the CA when one bundle holds several.
    pub issuer_cn: Option<String>,
    /// Whole issuer DN, compared attribute by attribute.
    pub issuer_dn: Option<DistinguishedName>,
    /// A DNS subject alternative name the certificate must carry, any case.
    pub san_dns: Option<String>,
    /// A URI subject alternative name the certificate must carry, exactly.
    pub san_uri: Option<String>,
    /// This one certificate only: refuses it again once renewed.
    pub fingerprint: Option<Fingerprint>,
    /// This key only: survives a renewal that keeps the key.
    pub spki: Option<SpkiPin>,
}

impl AppRule {
    /// A rule with no criterion yet; [`AppRule::has_criteria`] must hold
    /// before it is used, or it would match every certificate.
    pub fn named(name: AppName) -> Self {
        AppRule {
            name,
            cn: None,
            o: None,
            ou: None,
            issuer_cn: None,
            issuer_dn: None,
            san_dns: None,
            san_uri: None,
            fingerprint: None,
            spki: None,
        }
    }

    /// Whether the rule names at least one criterion; a rule with none
    /// matches nothing, so that an empty entry cannot admit every peer.
    pub fn has_criteria(&self) -> bool {
        self.cn.is_some()
            || self.o.is_some()
            || self.ou.is_some()
            || self.issuer_cn.is_some()
            || self.issuer_dn.is_some()
            || self.san_dns.is_some()
            || self.san_uri.is_some()
            || self.fingerprint.is_some()
            || self.spki.is_some()
    }

    /// True when every criterion given matches the certificate.
    pub fn matches(&self, id: &Identity) -> bool {
        self.has_criteria()
            && attr_matches(&self.cn, &id.subject, "CN")
            && attr_matches(&self.o, &id.subject, "O")
            && attr_matches(&self.ou, &id.subject, "OU")
            && attr_matches(&self.issuer_cn, &id.issuer, "CN")
            && self
                .issuer_dn
                .as_ref()
                .is_none_or(|dn| dn.same_as(&id.issuer))
            && self
                .san_dns
                .as_ref()
                .is_none_or(|want| id.san_dns.iter().any(|d| d.eq_ignore_ascii_case(want)))
            && self
                .san_uri
                .as_ref()
                .is_none_or(|want| id.san_uri.iter().any(|u| u == want))
            && self.fingerprint.is_none_or(|f| f == id.fingerprint)
            && self.spki.is_none_or(|p| p == id.spki)
    }
}

fn attr_matches(want: &Option<String>, dn: &DistinguishedName, attribute: &str) -> bool {
    want.as_ref()
        .is_none_or(|want| dn.values(attribute).any(|v| v == want))
}

/// The applications one listener admits.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    rules: Vec<Arc<AppRule>>,
}

impl Allowlist {
    /// An allowlist that admits the peers matching any of `rules`, tried in order;
    /// an empty one admits nobody.
    pub fn new(rules: Vec<Arc<AppRule>>) -> Self {
        Allowlist { rules }
    }

    /// The first admitted application whose rule matches, if any.
    pub fn admit(&self, id: &Identity) -> Option<&AppName> {
        self.rules
            .iter()
            .find(|rule| rule.matches(id))
            .map(|rule| &rule.name)
    }

    /// The applications admitted, in configuration order, for reports.
    pub fn names(&self) -> impl Iterator<Item = &AppName> {
        self.rules.iter().map(|r| &r.name)
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        CertificateParams, DistinguishedName as RcgenDn, DnType, Issuer, KeyPair, SanType,
    };

    use super::*;

    /// A certificate for IGC Santé-like identities: CN, O, two OUs, SANs,
    /// issued by "CN=Test CA, O=ASIP".
    fn identity() -> Identity {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        let mut ca_dn = RcgenDn::new();
        ca_dn.push(DnType::OrganizationName, "ASIP");
        ca_dn.push(DnType::CommonName, "Test CA");
        ca_params.distinguished_name = ca_dn;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::default();
        let mut dn = RcgenDn::new();
        dn.push(DnType::OrganizationName, "CH Val de Lys");
        dn.push(DnType::OrganizationalUnitName, "1750000001");
        // rcgen keeps one value per type: a custom type with OU's OID adds
        // the second OU.
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 11]), "Pharmacie");
        dn.push(DnType::CommonName, "EAI-PROD");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName("eai.chvdl.example".try_into().unwrap()),
            SanType::URI("urn:oid:1.2.250.1.71.4.2.2:1750000001".try_into().unwrap()),
        ];
        let cert = params
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        Identity::from_der(cert.der()).unwrap()
    }

    fn rule() -> AppRule {
        AppRule::named(AppName::new("eai"))
    }

    #[test]
    fn every_given_field_must_match() {
        let id = identity();
        let mut r = rule();
        assert!(!r.matches(&id), "a rule without criteria matches nothing");
        r.cn = Some("EAI-PROD".into());
        r.ou = Some("1750000001".into());
        r.issuer_dn = Some("o=ASIP, cn=Test CA".parse().unwrap());
        assert!(r.matches(&id));
        r.o = Some("Another hospital".into());
        assert!(!r.matches(&id), "one wrong field refuses");
    }

    #[test]
    fn multi_valued_attributes_match_any_value() {
        let id = identity();
        let mut r = rule();
        r.ou = Some("Pharmacie".into());
        assert!(r.matches(&id));
        r.ou = Some("pharmacie".into());
        assert!(!r.matches(&id), "subject values compare exactly");
    }

    #[test]
    fn sans_fingerprint_and_pin() {
        let id = identity();
        let mut r = rule();
        r.san_dns = Some("EAI.chvdl.example".into());
        r.san_uri = Some("urn:oid:1.2.250.1.71.4.2.2:1750000001".into());
        r.fingerprint = Some(id.fingerprint);
        r.spki = Some(id.spki);
        assert!(r.matches(&id));
        r.spki = Some(SpkiPin([0; 32]));
        assert!(!r.matches(&id));
    }

    #[test]
    fn allowlist_names_the_first_matching_app() {
        let id = identity();
        let mut other = AppRule::named(AppName::new("lab"));
        other.cn = Some("LAB".into());
        let mut eai = rule();
        eai.issuer_cn = Some("Test CA".into());
        let list = Allowlist::new(vec![Arc::new(other), Arc::new(eai)]);
        assert_eq!(list.admit(&id).map(AppName::as_str), Some("eai"));
        assert!(Allowlist::default().admit(&id).is_none());
    }
}
