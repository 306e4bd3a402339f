//! Certificate serial numbers: random on issue, upper-case hex on disk.
//!
//! The hex form is the one `openssl x509 -serial` and
//! [`Identity::serial`](guichet_tls::identity::Identity::serial) print, so an
//! operator can grep `revoked.txt` with what either tool shows.

use ring::rand::{SecureRandom, SystemRandom};

/// Serial length: RFC 5280 allows 20 octets; CA/Browser rules ask for at
/// least 64 random bits. 16 bytes leaves room for the DER sign byte.
const SERIAL_LEN: usize = 16;

/// A random positive serial of exactly 16 bytes: the top bit is cleared so
/// DER needs no sign byte, and the first byte is never zero so DER keeps
/// all 16.
pub(crate) fn random() -> Result<[u8; SERIAL_LEN], rcgen::Error> {
    let mut bytes = [0u8; SERIAL_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(bytes)
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Reads the hex written by [`to_hex`] (any case, even number of digits).
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_bytes() {
        for _ in 0..64 {
            let serial = random().unwrap();
            assert!((1..0x80).contains(&serial[0]), "{serial:02x?}");
        }
        assert_ne!(random().unwrap(), random().unwrap());
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0x01, 0xAB, 0x00, 0xff];
        assert_eq!(to_hex(&bytes), "01AB00FF");
        assert_eq!(from_hex("01ab00FF").as_deref(), Some(&bytes[..]));
        for bad in ["", "1", "zz", "0é"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }
}
