//! AUTH (RFC 4954) with PLAIN (RFC 4616) or LOGIN, the two mechanisms that
//! send the password itself and so are used only under verified TLS.

use super::Credentials;

/// Which mechanism, by preference: PLAIN takes one round trip, LOGIN two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
}

/// `AUTH PLAIN <base64(\0user\0password)>` (RFC 4616 §2, with an empty
/// authorization identity), without CRLF.
pub(crate) fn plain_line(credentials: &Credentials) -> String {
    let mut message = Vec::new();
    message.push(0);
    message.extend_from_slice(credentials.username.as_bytes());
    message.push(0);
    message.extend_from_slice(credentials.password.as_bytes());
    format!("AUTH PLAIN {}", base64(&message))
}

/// Base64 (RFC 4648 §4) with padding: what SASL responses are sent in.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if group.len() > 1 { sextet(6) } else { '=' });
        out.push(if group.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_base64() {
        // RFC 4648 §10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn plain_response() {
        let c = Credentials {
            username: "tim".into(),
            password: "tanstaaftanstaaf".into(),
        };
        // RFC 4616 §4's example without the authorization identity.
        assert_eq!(plain_line(&c), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    }
}
