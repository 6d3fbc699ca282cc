//! The Received: header Sluice adds to a message, in Exim's default form
//! (its `received_header_text`), and Exim's protocol names.
//!
//! ```text
//! (shown with spaces; each continuation line starts with a TAB)
//! Received: from mail.example.org ([192.0.2.1] helo=client.example)
//!     by mx.example.com with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384
//!     (Sluice 0.1.0)
//!     (envelope-from <alice@example.org>)
//!     id 1sLuIc-000000000Ab-0000
//!     for bob@example.com; Tue, 05 Mar 2024 10:00:00 +0000
//! ```
//!
//! The "from" part is Exim's `$sender_rcvhost`: the verified host name with
//! the address in brackets, or the bracketed address alone; `helo=` only
//! when the HELO name says something the rest does not. The double space
//! before the TLS version is Exim's too (`with $received_protocol ` then
//! ` ($tls_in_ver)`), kept so that tools parsing Exim's headers parse ours.
//! `for` appears only for a single recipient, as in Exim, so a Bcc list is
//! never revealed.

use std::net::IpAddr;

use super::session::{HelloVerb, Mode, SmtpEnvelope};

/// What the header needs beyond the envelope.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// This server's name (`by`).
    pub host: &'a str,
    /// The message ID.
    pub id: &'a str,
    /// The client's host name, if its reverse DNS was verified.
    pub peer_name: Option<&'a str>,
    /// When the message was received, as an RFC 5322 date in local time
    /// (what `clock::rfc5322` writes, like Exim's `$tod_full`).
    pub date: &'a str,
}

/// The complete header, folded as Exim folds it, ending in CRLF.
pub fn received_header(envelope: &SmtpEnvelope, stamp: &Stamp<'_>) -> String {
    let mut h = String::from("Received: ");
    match envelope.peer {
        Some(ip) => {
            h.push_str("from ");
            h.push_str(&rcvhost(ip, stamp.peer_name, &envelope.helo));
            h.push_str("\r\n\t");
        }
        // A local session (`sluice -bs`) has no host to name.
        None => {
            h.push_str(&format!("(helo={})\r\n\t", clean(&envelope.helo)));
        }
    }
    h.push_str(&format!(
        "by {} with {} ",
        clean(stamp.host),
        envelope.protocol
    ));
    if let Some(tls) = &envelope.tls {
        if !tls.version.is_empty() {
            h.push_str(&format!(" ({})", clean(&tls.version)));
        }
        h.push_str(&format!(" tls {}\r\n\t", clean(&tls.cipher)));
    }
    h.push_str(&format!("(Sluice {})\r\n\t", env!("CARGO_PKG_VERSION")));
    if let Some(from) = &envelope.from {
        h.push_str(&format!("(envelope-from <{from}>)\r\n\t"));
    }
    h.push_str(&format!("id {}", clean(stamp.id)));
    if let [only] = envelope.recipients.as_slice() {
        h.push_str(&format!("\r\n\tfor {}", only.address));
    }
    h.push_str("; ");
    h.push_str(&clean(stamp.date));
    h.push_str("\r\n");
    h
}

/// Exim's `$sender_rcvhost` (host.c, host_build_sender_fullhost).
fn rcvhost(ip: IpAddr, verified_name: Option<&str>, helo: &str) -> String {
    let literal = format!("[{ip}]");
    let helo_is_ip = helo_names_ip(helo, ip);
    match verified_name {
        Some(name) => {
            let name = clean(name);
            if helo_is_ip || helo.eq_ignore_ascii_case(&name) {
                format!("{name} ({literal})")
            } else {
                format!("{name} ({literal} helo={})", clean(helo))
            }
        }
        None if helo_is_ip => literal,
        None => format!("{literal} (helo={})", clean(helo)),
    }
}

/// True when the HELO name is an address literal for the client's own
/// address (`[192.0.2.1]`, `[IPv6:2001:db8::1]`): showing it adds nothing.
fn helo_names_ip(helo: &str, ip: IpAddr) -> bool {
    let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
        return false;
    };
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") || tag.eq_ignore_ascii_case("IPv4:") => {
            &inner[5..]
        }
        _ => inner,
    };
    inner.parse::<IpAddr>().is_ok_and(|literal| literal == ip)
}

/// Header text from outside (driver strings) cannot break the header.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Exim's protocol name for the Received: `with` clause and the log's
/// `P=` field: `smtp` after HELO, `esmtp` after EHLO, `lmtp` for LMTP (RFC
/// 3848's names, lower case as Exim writes them); `s` when under TLS, `a`
/// when authenticated; `local-` for a session on stdin (`sluice -bs`), and
/// `utf8` in front when the message uses SMTPUTF8, as Exim does.
pub fn protocol_name(
    mode: Mode,
    verb: HelloVerb,
    tls: bool,
    authenticated: bool,
    local: bool,
    smtputf8: bool,
) -> String {
    let base = match (mode, verb) {
        (Mode::Lmtp, _) => "lmtp",
        (Mode::Smtp, HelloVerb::Helo) => "smtp",
        (Mode::Smtp, _) => "esmtp",
    };
    let mut name = String::new();
    if smtputf8 {
        name.push_str("utf8");
    }
    if local {
        name.push_str("local-");
    }
    name.push_str(base);
    if tls {
        name.push('s');
    }
    if authenticated && base != "smtp" {
        name.push('a');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::super::address::Address;
    use super::super::params::MailParams;
    use super::super::session::{Recipient, TlsInfo};
    use super::*;

    #[test]
    fn names_protocols_as_exim() {
        use HelloVerb::*;
        use Mode::*;
        let cases = [
            ((Smtp, Helo, false, false, false, false), "smtp"),
            ((Smtp, Helo, true, false, false, false), "smtps"),
            ((Smtp, Ehlo, false, false, false, false), "esmtp"),
            ((Smtp, Ehlo, true, false, false, false), "esmtps"),
            ((Smtp, Ehlo, false, true, false, false), "esmtpa"),
            ((Smtp, Ehlo, true, true, false, false), "esmtpsa"),
            ((Smtp, Ehlo, false, false, true, false), "local-esmtp"),
            ((Smtp, Ehlo, true, false, false, true), "utf8esmtps"),
            ((Lmtp, Lhlo, false, false, false, false), "lmtp"),
            ((Lmtp, Lhlo, true, false, false, false), "lmtps"),
        ];
        for ((mode, verb, tls, auth, local, utf8), expected) in cases {
            assert_eq!(protocol_name(mode, verb, tls, auth, local, utf8), expected);
        }
    }

    fn envelope(peer: Option<&str>, helo: &str, tls: bool, rcpts: &[&str]) -> SmtpEnvelope {
        SmtpEnvelope {
            helo: helo.into(),
            hello_verb: HelloVerb::Ehlo,
            protocol: if tls { "esmtps" } else { "esmtp" }.into(),
            peer: peer.map(|p| p.parse().unwrap()),
            tls: tls.then(|| TlsInfo {
                version: "TLS1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
            }),
            from: Some("alice@example.org".parse().unwrap()),
            params: MailParams::default(),
            recipients: rcpts
                .iter()
                .map(|r| Recipient {
                    address: r.parse::<Address>().unwrap(),
                    params: Default::default(),
                })
                .collect(),
            pipelined: false,
            chunked: false,
        }
    }

    #[test]
    fn builds_exim_style_headers() {
        let v = env!("CARGO_PKG_VERSION");
        let stamp = |peer_name| Stamp {
            host: "mx.example.com",
            id: "1sLuIc-000000000Ab-0000",
            peer_name,
            date: "Tue, 05 Mar 2024 10:00:00 +0000",
        };
        let date = "Tue, 05 Mar 2024 10:00:00 +0000";
        let cases = [
            (
                envelope(
                    Some("192.0.2.1"),
                    "client.example",
                    false,
                    &["bob@example.com"],
                ),
                None,
                format!(
                    "Received: from [192.0.2.1] (helo=client.example)\r\n\tby mx.example.com with esmtp (Sluice {v})\r\n\t\
                     (envelope-from <alice@example.org>)\r\n\tid 1sLuIc-000000000Ab-0000\r\n\tfor bob@example.com; {date}\r\n"
                ),
            ),
            (
                envelope(
                    Some("192.0.2.1"),
                    "client.example",
                    true,
                    &["bob@example.com", "carol@example.com"],
                ),
                Some("mail.example.org"),
                format!(
                    "Received: from mail.example.org ([192.0.2.1] helo=client.example)\r\n\tby mx.example.com with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n\t\
                     (Sluice {v})\r\n\t(envelope-from <alice@example.org>)\r\n\tid 1sLuIc-000000000Ab-0000; {date}\r\n"
                ),
            ),
            (
                envelope(Some("192.0.2.1"), "MAIL.example.org", false, &[]),
                Some("mail.example.org"),
                format!(
                    "Received: from mail.example.org ([192.0.2.1])\r\n\tby mx.example.com with esmtp (Sluice {v})\r\n\t\
                     (envelope-from <alice@example.org>)\r\n\tid 1sLuIc-000000000Ab-0000; {date}\r\n"
                ),
            ),
            (
                envelope(
                    Some("2001:db8::1"),
                    "[IPv6:2001:DB8:0::1]",
                    false,
                    &["b@x.example"],
                ),
                None,
                format!(
                    "Received: from [2001:db8::1]\r\n\tby mx.example.com with esmtp (Sluice {v})\r\n\t\
                     (envelope-from <alice@example.org>)\r\n\tid 1sLuIc-000000000Ab-0000\r\n\tfor b@x.example; {date}\r\n"
                ),
            ),
            (
                envelope(None, "localhost", false, &["b@x.example"]),
                None,
                format!(
                    "Received: (helo=localhost)\r\n\tby mx.example.com with esmtp (Sluice {v})\r\n\t\
                     (envelope-from <alice@example.org>)\r\n\tid 1sLuIc-000000000Ab-0000\r\n\tfor b@x.example; {date}\r\n"
                ),
            ),
        ];
        for (env, peer_name, expected) in cases {
            assert_eq!(received_header(&env, &stamp(peer_name)), expected);
        }
        // A bounce (null sender) has no envelope-from.
        let mut bounce = envelope(Some("192.0.2.1"), "[192.0.2.1]", false, &[]);
        bounce.from = None;
        let h = received_header(&bounce, &stamp(None));
        assert!(
            h.starts_with("Received: from [192.0.2.1]\r\n\tby ") && !h.contains("envelope-from"),
            "{h}"
        );
    }
}
