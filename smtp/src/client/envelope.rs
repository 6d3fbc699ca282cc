//! What one transaction sends: the envelope (RFC 5321 §3.3), with the
//! ESMTP parameters of SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
//! (RFC 6531) and DSN (RFC 3461), and the command lines built from it.

use super::capabilities::Capabilities;

/// One message to send: the reverse-path, the recipients, and what the
/// session must know of the body before it sends a byte of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path without angle brackets; empty for the null path
    /// `<>` (bounces).
    pub from: String,
    pub recipients: Vec<EnvelopeRecipient>,
    /// DSN `RET=` (RFC 3461 §4.3); sent only to a peer that offers DSN.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, unencoded (RFC 3461 §4.4); the session xtext-encodes
    /// it, and sends it only to a peer that offers DSN.
    pub envid: Option<String>,
    /// The body's size in octets as stored. With LF line ends the wire
    /// form is a little larger; RFC 1870 §6 asks for an estimate, and the
    /// refusal against the peer's SIZE limit uses this number.
    pub size: u64,
    /// The body has octets above 127: `BODY=8BITMIME` when the peer offers
    /// 8BITMIME. To a peer without it the body goes unchanged, as Exim does.
    pub eight_bit: bool,
    /// The sender, a recipient or a header needs UTF-8 (RFC 6531): sent
    /// with `SMTPUTF8`, and refused locally (5.6.7) to a peer without it.
    pub smtputf8: bool,
}

/// One recipient with its DSN parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRecipient {
    /// The forward-path without angle brackets.
    pub address: String,
    /// DSN `NOTIFY=` (RFC 3461 §4.1); `None` sends no parameter.
    pub notify: Option<Notify>,
    /// DSN `ORCPT=` as `addr-type;address`, e.g. `rfc822;a@example.org`,
    /// unencoded; the session xtext-encodes the address part (RFC 3461
    /// §4.2).
    pub orcpt: Option<String>,
}

impl EnvelopeRecipient {
    /// A recipient without DSN parameters.
    pub fn new(address: impl Into<String>) -> EnvelopeRecipient {
        EnvelopeRecipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// DSN `NOTIFY=` (RFC 3461 §4.1): which reports the recipient's sender
/// wants. All three false is `NOTIFY=NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// The parameter value: `NEVER` or e.g. `SUCCESS,FAILURE`.
    pub fn value(self) -> String {
        let mut words = Vec::new();
        if self.success {
            words.push("SUCCESS");
        }
        if self.failure {
            words.push("FAILURE");
        }
        if self.delay {
            words.push("DELAY");
        }
        if words.is_empty() {
            "NEVER".into()
        } else {
            words.join(",")
        }
    }
}

/// DSN `RET=` (RFC 3461 §4.3): what a failure report carries back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }
}

/// A path that can go into a command line: no control characters (a CR
/// or LF would end the command early and smuggle another), no angle
/// brackets, no space outside a quoted local part (a space would end the
/// path and start a parameter), and within RFC 5321 §4.5.3.1.3's 256
/// octets with brackets. `allow_empty` for `<>`.
pub(crate) fn path_is_sendable(path: &str, allow_empty: bool) -> bool {
    if path.is_empty() {
        return allow_empty;
    }
    // The quoted local part, if any: `"..."@`.
    let quoted_end = path
        .strip_prefix('"')
        .and_then(|rest| rest.find("\"@"))
        .map_or(0, |i| i + 1);
    path.len() + 2 <= crate::address::PATH_MAX
        && !path
            .char_indices()
            .any(|(i, c)| c.is_control() || c == '<' || c == '>' || (c == ' ' && i >= quoted_end))
}

/// RFC 3461 §4: `xtext`, with `+XX` for `+`, `=`, and octets outside
/// 33..=126.
pub(crate) fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// `MAIL FROM:<...>` with the parameters the peer offers, without CRLF.
pub(crate) fn mail_line(envelope: &Envelope, caps: &Capabilities) -> String {
    let mut line = format!("MAIL FROM:<{}>", envelope.from);
    if caps.size.is_some() {
        line.push_str(&format!(" SIZE={}", envelope.size));
    }
    if envelope.eight_bit && caps.eight_bit_mime {
        line.push_str(" BODY=8BITMIME");
    }
    if envelope.smtputf8 && caps.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        if let Some(ret) = envelope.ret {
            line.push_str(" RET=");
            line.push_str(ret.as_str());
        }
        if let Some(envid) = &envelope.envid {
            line.push_str(" ENVID=");
            line.push_str(&xtext(envid));
        }
    }
    line
}

/// `RCPT TO:<...>` with the DSN parameters when the peer offers DSN,
/// without CRLF.
pub(crate) fn rcpt_line(recipient: &EnvelopeRecipient, caps: &Capabilities) -> String {
    let mut line = format!("RCPT TO:<{}>", recipient.address);
    if caps.dsn {
        if let Some(notify) = recipient.notify {
            line.push_str(" NOTIFY=");
            line.push_str(&notify.value());
        }
        if let Some(orcpt) = &recipient.orcpt {
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            line.push_str(" ORCPT=");
            line.push_str(&xtext(kind));
            line.push(';');
            line.push_str(&xtext(address));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_xtext() {
        let cases = [
            ("a@b.example", "a@b.example"),
            ("a+b=c", "a+2Bb+3Dc"),
            ("a b", "a+20b"),
            ("caf\u{e9}", "caf+C3+A9"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(xtext(input), expected, "{input}");
        }
    }

    #[test]
    fn notify_values() {
        assert_eq!(Notify::NEVER.value(), "NEVER");
        let n = Notify {
            success: true,
            failure: true,
            delay: false,
        };
        assert_eq!(n.value(), "SUCCESS,FAILURE");
    }

    #[test]
    fn paths_that_can_be_sent() {
        let cases = [
            ("a@b.example", false, true),
            ("", true, true),
            ("", false, false),
            ("a@b\r\nRCPT TO:<c@d>", false, false),
            ("a b@c", false, false),
            (" a@c", false, false),
            ("\"a b\"@c.example", false, true),
            ("\"a\"@c d", false, false),
            ("a>b@c", false, false),
            ("\u{3b4}@d.example", false, true),
        ];
        for (path, allow_empty, expected) in cases {
            assert_eq!(path_is_sendable(path, allow_empty), expected, "{path:?}");
        }
        assert!(!path_is_sendable(&"a".repeat(255), false));
    }
}
