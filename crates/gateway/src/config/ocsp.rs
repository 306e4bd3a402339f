//! A profile's OCSP settings: `ocsp = "off" | "soft" | "hard"` and
//! `ocsp_url`.

use guichet_tls::ocsp::ResponderUrl;
use guichet_tls::{OcspMode, OcspPolicy};

use super::choice;
use super::raw::RawProfile;

/// Reads `ocsp` (default `off`) and `ocsp_url` of profile `name`.
pub(super) fn policy(name: &str, raw: &RawProfile) -> Result<OcspPolicy, String> {
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
        .map_err(|e| format!("[tls.{name}] ocsp_url: {e}"))?;
    if url.is_some() && mode == OcspMode::Off {
        return Err(format!(
            "[tls.{name}] ocsp_url is set but ocsp is \"off\"; set ocsp = \"hard\" (or \"soft\"), or remove ocsp_url"
        ));
    }
    if mode != OcspMode::Off && raw.ca.is_none() && raw.cert.is_none() {
        return Err(format!(
            "[tls.{name}] ocsp: OCSP checks peers against a `ca` bundle and staples our `cert`; this profile has neither"
        ));
    }
    Ok(OcspPolicy { mode, url })
}
