//! The `cert`/`key`/`password_file`/`password_env` keys of a TLS profile:
//! a PEM certificate with its key, or a PKCS#12 file that holds both.

use guichet_tls::pkcs12::named_like_pkcs12;
use guichet_tls::PasswordSource;

use super::raw::RawProfile;
use super::{Builder, SettingError};

impl Builder {
    /// Checks which keys go together and returns where the password of a
    /// PKCS#12 `cert` comes from. A file's content is only read at load
    /// (a `.crt` may hold PKCS#12 too, when a password is given).
    pub(super) fn own_cert(
        &self,
        name: &str,
        raw: &RawProfile,
    ) -> Result<Option<PasswordSource>, SettingError> {
        let at = |field: &str| format!("[tls.{name}] {field}");
        let password = match (&raw.password_file, &raw.password_env) {
            (Some(_), Some(_)) => {
                return Err(SettingError::field(
                    at("password_file"),
                    "give `password_file` or `password_env`, not both",
                ))
            }
            (Some(file), None) => Some(PasswordSource::File(self.path(file))),
            (None, Some(var)) => Some(PasswordSource::Env(var.clone())),
            (None, None) => None,
        };
        let pkcs12 = raw
            .cert
            .as_deref()
            .is_some_and(|c| named_like_pkcs12(&self.path(c)));
        match (&raw.cert, &raw.key) {
            (Some(cert), Some(_)) if pkcs12 => Err(SettingError::field(
                at("key"),
                format!("{cert:?} is a PKCS#12 file, which holds the private key; remove `key`"),
            )),
            (Some(_), Some(_)) if password.is_some() => Err(SettingError::field(
                at("password_file"),
                "a password is only for a PKCS#12 `cert` (.p12/.pfx) without `key`; remove it",
            )),
            (Some(cert), None) if pkcs12 && password.is_none() => Err(SettingError::field(
                at("cert"),
                format!("{cert:?} is a PKCS#12 file: give its password with `password_file = \"FILE\"` (mode 0600) or `password_env = \"VAR\"`"),
            )),
            (Some(_), None) if password.is_some() => Ok(password),
            (None, _) if password.is_some() => Err(SettingError::field(
                at("password_file"),
                "a password without a PKCS#12 `cert`; add `cert = \"FILE.p12\"` or remove it",
            )),
            (Some(_), None) if !pkcs12 => Err(SettingError::conflict(
                "`cert` and `key` go together; give both or neither (or a PKCS#12 .p12 `cert` with `password_file`)",
            )
            .within(format!("[tls.{name}]"))),
            (None, Some(_)) => Err(SettingError::conflict(
                "`cert` and `key` go together; give both or neither",
            )
            .within(format!("[tls.{name}]"))),
            _ => Ok(password),
        }
    }
}
