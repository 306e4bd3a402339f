//! The TLS policy every guichet endpoint uses.
//!
//! ANSSI's TLS guide (and the CI-SIS transport rules that follow it) ask for
//! TLS 1.2 or 1.3 only, ephemeral ECDHE key exchange and AEAD ciphers only.
//! The suites and groups are listed here explicitly rather than taken from
//! the library's defaults, so that a dependency upgrade cannot widen them.

use std::sync::{Arc, OnceLock};

use rustls::crypto::ring as ring_provider;
use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// Lowest protocol version a profile accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3: the ANSSI default, for peers that cannot do 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// How far CRLs are checked, and what to do with a certificate whose issuer
/// published no CRL that we hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// Check every certificate in the chain (true) or only the peer's own.
    pub whole_chain: bool,
    /// Admit a certificate whose revocation status cannot be established
    /// (no CRL for its issuer, or no revocation source at all).
    pub allow_unknown: bool,
    /// What a CRL past its nextUpdate means for the peers it covers.
    pub expired: CrlExpired,
}

/// `crl_expired`: a CRL past its nextUpdate may hide revocations published
/// since, so by default it no longer vouches for anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrlExpired {
    /// Peers it covers are refused (`revocation_unknown`).
    #[default]
    Refuse,
    /// It stays in force; the gateway logs a warning and the
    /// `guichet_crl_next_update_seconds` gauge goes negative.
    Warn,
}

/// By default the peer's own certificate is checked against its issuer's
/// CRL, and a missing or expired CRL for that issuer refuses the peer.
impl Default for RevocationPolicy {
    fn default() -> Self {
        RevocationPolicy {
            whole_chain: false,
            allow_unknown: false,
            expired: CrlExpired::Refuse,
        }
    }
}

/// The cryptographic provider restricted to the approved suites and groups.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use ring_provider::cipher_suite as cs;
            use ring_provider::kx_group as kx;
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    cs::TLS13_AES_256_GCM_SHA384,
                    cs::TLS13_AES_128_GCM_SHA256,
                    cs::TLS13_CHACHA20_POLY1305_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                ],
                kx_groups: vec![kx::X25519, kx::SECP256R1, kx::SECP384R1],
                ..ring_provider::default_provider()
            })
        })
        .clone()
}

/// The protocol versions allowed from `min` upwards.
pub fn versions(min: MinVersion) -> &'static [&'static SupportedProtocolVersion] {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        MinVersion::Tls12 => &BOTH,
        MinVersion::Tls13 => &ONLY_13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aead_ecdhe_suites() {
        for suite in &provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_"),
                "{name}"
            );
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }
}
