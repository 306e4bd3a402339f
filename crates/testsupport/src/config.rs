//! Pieces of `guichet.toml`, written the way a user writes them.

use std::fmt;
use std::path::Path;

use crate::pki::CA_CN;

/// A path as a TOML string.
///
/// # Panics
/// When the path is not UTF-8.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().expect("a UTF-8 path"))
}

/// An `[[app]]` recognised by its certificate's CN, issued by the test CA
/// ([`CA_CN`]).
pub fn app(name: &str, cn: &str) -> String {
    format!("[[app]]\nname = \"{name}\"\ncn = \"{cn}\"\nissuer_cn = \"{CA_CN}\"\n\n")
}

/// A `[tls.NAME]` profile; its text is its `Display`.
#[derive(Debug, Clone)]
pub struct TlsProfile {
    name: String,
    lines: Vec<String>,
}

impl TlsProfile {
    pub fn new(name: &str) -> TlsProfile {
        TlsProfile {
            name: name.into(),
            lines: Vec::new(),
        }
    }

    /// `ca`: the trusted CA bundle.
    pub fn ca(mut self, path: &Path) -> TlsProfile {
        self.lines.push(format!("ca = {}", toml_path(path)));
        self
    }

    /// `cert` and `key`: our own certificate.
    pub fn cert(mut self, cert: &Path, key: &Path) -> TlsProfile {
        self.lines.push(format!("cert = {}", toml_path(cert)));
        self.lines.push(format!("key = {}", toml_path(key)));
        self
    }

    /// `crl`: one revocation list.
    pub fn crl(mut self, path: &Path) -> TlsProfile {
        self.lines.push(format!("crl = [{}]", toml_path(path)));
        self
    }
}

impl fmt::Display for TlsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[tls.{}]", self.name)?;
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        writeln!(f)
    }
}
