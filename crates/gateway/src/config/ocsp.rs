//! A profile's OCSP settings: `ocsp = "off" | "soft" | "hard"` and
//! `ocsp_url`.

use guichet_tls::ocsp::ResponderUrl;
use guichet_tls::{OcspMode, OcspPolicy};

use super::raw::RawProfile;
use super::{choice, SettingError};

/// Reads `ocsp` (default `off`) and `ocsp_url` of profile `name`.
pub(super) fn policy(name: &str, raw: &RawProfile) -> Result<OcspPolicy, SettingError> {
    let mode = choice(
        raw.ocsp.as_deref(),
        &format!("[tls.{name}] ocsp"),
        &[
            ("off", OcspMode::Off),
            ("soft", OcspMode::Soft),
            ("hard", OcspMode::Hard),
        ],
    )?;
    let url = raw
        .ocsp_url
        .as_deref()
        .map(ResponderUrl::parse)
        .transpose()
        .map_err(|e| SettingError::field(format!("[tls.{name}] ocsp_url"), e.to_string()))?;
    if url.is_some() && mode == OcspMode::Off {
        return Err(SettingError::conflict(format!(
            "[tls.{name}] ocsp_url is set but ocsp is \"off\"; set ocsp = \"hard\" (or \"soft\"), or remove ocsp_url"
        )));
    }
    if mode != OcspMode::Off && raw.ca.is_none() && raw.cert.is_none() {
        return Err(SettingError::field(
            format!("[tls.{name}] ocsp"),
            "OCSP checks peers against a `ca` bundle and staples our `cert`; this profile has neither",
        ));
    }
    Ok(OcspPolicy { mode, url })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<OcspPolicy, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| e.to_string())?;
        policy("p", &raw).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_and_the_three_modes() {
        assert_eq!(read("ca = \"ca.pem\"").unwrap(), OcspPolicy::default());
        for (word, mode) in [
            ("off", OcspMode::Off),
            ("soft", OcspMode::Soft),
            ("hard", OcspMode::Hard),
        ] {
            let p = read(&format!("ca = \"ca.pem\"\nocsp = \"{word}\"")).unwrap();
            assert_eq!(p.mode, mode);
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = read("ca = \"ca.pem\"\nocsp = \"strict\"").unwrap_err();
        assert!(
            err.starts_with("[tls.p] ocsp: \"strict\" is not allowed"),
            "{err}"
        );
        let err = read("ca = \"ca.pem\"\nocsp = \"hard\"\nocsp_url = \"https://o.example/\"")
            .unwrap_err();
        assert!(err.starts_with("[tls.p] ocsp_url: "), "{err}");
        let err = read("ca = \"ca.pem\"\nocsp_url = \"http://o.example/\"").unwrap_err();
        assert!(err.contains("ocsp is \"off\""), "{err}");
        let err = read("ocsp = \"hard\"").unwrap_err();
        assert!(err.contains("has neither"), "{err}");
    }

    #[test]
    fn ocsp_url_is_kept() {
        let p = read("ca = \"ca.pem\"\nocsp = \"soft\"\nocsp_url = \"http://127.0.0.1:8080/ocsp\"")
            .unwrap();
        assert_eq!(
            p.url.map(|u| u.to_string()).as_deref(),
            Some("http://127.0.0.1:8080/ocsp")
        );
    }
}
