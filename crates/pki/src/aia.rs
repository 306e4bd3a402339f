//! The Authority Information Access extension (RFC 5280 4.2.2.1) naming
//! an OCSP responder: how a peer learns where to ask about a certificate.

use std::path::Path;

use rcgen::CustomExtension;

use crate::PkiError;

/// id-pe-authorityInfoAccess.
const ID_PE_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp, DER-encoded with its tag.
const ID_AD_OCSP: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];

/// An AIA extension with one OCSP access description, `url`.
pub(crate) fn ocsp_extension(url: &str, path: &Path) -> Result<CustomExtension, PkiError> {
    let valid = url.starts_with("http://")
        && url.len() > "http://".len()
        && url.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(PkiError::InvalidOcspUrl {
            url: url.to_string(),
            path: path.to_path_buf(),
        });
    }
    // uniformResourceIdentifier [6] IMPLICIT IA5String
    let location = tlv(0x86, url.as_bytes());
    let description = tlv(0x30, &[ID_AD_OCSP, &location].concat());
    let aia = tlv(0x30, &description);
    Ok(CustomExtension::from_oid_content(
        ID_PE_AUTHORITY_INFO_ACCESS,
        aia,
    ))
}

/// One DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_contents_use_the_long_length_form() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn an_issued_certificate_names_its_responder() {
        use x509_parser::extensions::{GeneralName, ParsedExtension};
        let tmp = tempfile::tempdir().unwrap();
        crate::init(tmp.path(), &crate::CaOptions::default()).unwrap();
        let req = crate::IssueRequest {
            ocsp_url: Some("http://127.0.0.1:8080/ocsp".into()),
            ocsp_signing: true,
            ..crate::IssueRequest::new("responder")
        };
        let files = crate::issue(tmp.path(), &req).unwrap();
        let pem = std::fs::read(&files.cert).unwrap();
        let der = crate::show::certificates(&pem, &files.cert).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let urls: Vec<String> = cert
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => Some(aia),
                _ => None,
            })
            .flat_map(|aia| aia.accessdescs.iter())
            .filter(|d| d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1")
            .filter_map(|d| match &d.access_location {
                GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(urls, ["http://127.0.0.1:8080/ocsp"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.ocsp_signing && eku.server_auth && eku.client_auth);
    }

    #[test]
    fn only_http_urls_are_written() {
        let path = Path::new("x.pem");
        assert!(ocsp_extension("http://127.0.0.1:8080/", path).is_ok());
        for bad in [
            "https://ocsp.example.org/",
            "http://",
            "http://a b/",
            "ldap://x",
        ] {
            assert!(matches!(
                ocsp_extension(bad, path),
                Err(PkiError::InvalidOcspUrl { .. })
            ));
        }
    }
}
