//! TLS for guichet: the ANSSI policy, loading of certificate material, peer
//! identity, the application allowlist, and handshakes that explain their
//! refusals.

#![deny(missing_docs)]

pub mod allowlist;
pub mod crl;
pub mod endpoint;
pub mod http1;
pub mod identity;
pub mod material;
pub mod ocsp;
pub mod pkcs12;
pub mod policy;
pub mod refusal;
mod verify;

pub use allowlist::{Allowlist, AppName, AppRule};
pub use crl::{CrlError, CrlInfo, LearntPoints, StaleHook};
pub use endpoint::{ClientAuth, ClientTls, EndpointError, PeerApp, ServerTls, TlsSettings};
pub use identity::{DistinguishedName, Fingerprint, Identity, Revoked, SpkiPin};
pub use material::{Material, MaterialError, ProfileFiles, Role};
pub use ocsp::{OcspChecker, OcspMode, OcspPolicy, Stapler};
pub use pkcs12::{PasswordSource, Pkcs12Error};
pub use policy::{CrlExpired, MinVersion, RevocationPolicy};
pub use refusal::{Presented, Refusal, RefusalReason};
pub use rustls::pki_types::ServerName;
