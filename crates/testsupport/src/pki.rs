//! A test CA in a temporary folder, made by the product's own PKI code,
//! and keys from openssl for the "bring your own key" paths.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use guichet_pki::{CaOptions, IssueRequest, IssuedFiles, Usage};

use crate::peers::run_ok;

/// The issuer CN of every certificate of [`TestPki::new`].
pub const CA_CN: &str = "guichet test CA";

/// A temporary folder holding one test CA (`ca/`), room for more, and the
/// gateway's config file.
pub struct TestPki {
    pub tmp: tempfile::TempDir,
    /// The CA's folder: `ca.pem`, `ca.key`, `ca.crl`, issued pairs.
    pub ca: PathBuf,
}

impl TestPki {
    /// A CA named [`CA_CN`].
    ///
    /// # Panics
    /// When the temporary folder or the CA cannot be made.
    pub fn new() -> TestPki {
        TestPki::named(CA_CN)
    }

    /// A CA whose certificate's CN is `common_name`.
    ///
    /// # Panics
    /// When the temporary folder or the CA cannot be made.
    pub fn named(common_name: &str) -> TestPki {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let ca = tmp.path().join("ca");
        init(&ca, common_name);
        TestPki { tmp, ca }
    }

    /// A second, independent CA in `dir` of the same temporary folder.
    pub fn other_ca(&self, dir: &str) -> PathBuf {
        let path = self.tmp.path().join(dir);
        init(&path, "another test CA");
        path
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca.join("ca.pem")
    }

    pub fn crl(&self) -> PathBuf {
        self.ca.join("ca.crl")
    }

    /// Where a test writes the gateway's config.
    pub fn config_path(&self) -> PathBuf {
        self.tmp.path().join("guichet.toml")
    }

    /// A certificate for `name` (CN and DNS SAN) with `usage`.
    pub fn issue(&self, name: &str, usage: Usage) -> IssuedFiles {
        self.issue_with(&IssueRequest {
            usage,
            ..IssueRequest::new(name)
        })
    }

    /// A certificate as `req` asks.
    ///
    /// # Panics
    /// When the CA refuses the request.
    pub fn issue_with(&self, req: &IssueRequest) -> IssuedFiles {
        guichet_pki::issue(&self.ca, req).expect("the test CA issues")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

fn init(dir: &Path, common_name: &str) {
    let opts = CaOptions {
        common_name: common_name.into(),
        ..CaOptions::default()
    };
    guichet_pki::init(dir, &opts).expect("a test CA");
}

/// An RSA-2048 PKCS#8 key written by `openssl genpkey` to `path`, mode
/// 0600, as a site's own tooling would make it.
///
/// # Panics
/// When openssl cannot run or fails.
pub fn openssl_rsa_key(path: &Path) -> PathBuf {
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA"])
            .args(["-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(path),
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("the key's mode");
    path.to_path_buf()
}
