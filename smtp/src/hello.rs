//! HELO, EHLO (RFC 5321 §4.1.1.1) and LHLO (RFC 2033 §4.1), and the
//! extensions the EHLO/LHLO reply advertises.
//!
//! RFC 2034 §3 exempts the replies to these commands from enhanced status
//! codes, refusals included, so every reply here is built without one.

use super::reply::{self, Reply};
use super::session::{Event, HelloVerb, Pending, Session, Verdict, decided};

/// RFC 1035 / RFC 5321 §4.5.3.1.2: a domain name has at most 255 octets.
const HELLO_NAME_MAX: usize = 255;

impl Session {
    pub(super) fn hello(&mut self, verb: HelloVerb, line: &[u8], args: &[u8]) {
        let lmtp = self.lmtp();
        if (verb == HelloVerb::Lhlo) != lmtp {
            return self.refuse(line, reply::wrong_hello(lmtp));
        }
        // The first word is the name; anything after it is ignored, as
        // most servers do for clients that append a comment.
        let word = args.split(|&b| b == b' ').next().unwrap_or_default();
        let name = match std::str::from_utf8(word) {
            Ok(name) if valid_name(name) => name.to_owned(),
            _ => return self.refuse(line, reply::hello_syntax(verb.as_str())),
        };
        // RFC 5321 §4.1.4: a greeting in the middle of a session resets it
        // as RSET does.
        self.tx = None;
        self.helo = None;
        self.ask(
            Pending::Helo {
                verb,
                name: name.clone(),
            },
            Event::Helo { verb, name },
        );
    }

    pub(super) fn hello_verdict(&mut self, verb: HelloVerb, name: String, verdict: Verdict) {
        let standard = self.hello_reply(verb, &name);
        let custom = matches!(verdict, Verdict::Reply(_));
        let reply = decided(verdict, || standard.clone()).without_status();
        if reply.is_positive() {
            let reply = match reply.lines().first() {
                Some(first) if custom => standard.with_first_line(first),
                _ => standard,
            };
            self.reply(&reply);
            self.helo = Some((verb, name));
        } else {
            self.refused_by_verdict(&reply);
        }
    }

    /// `250 <host> Hello <name> [<ip>]`, then for EHLO/LHLO one line per
    /// extension.
    fn hello_reply(&self, verb: HelloVerb, name: &str) -> Reply {
        let host = &self.config.hostname;
        let greet = match self.peer {
            Some(peer) => format!("{host} Hello {name} [{}]", peer.ip()),
            None => format!("{host} Hello {name}"),
        };
        let mut reply = Reply::plain(250, greet);
        if verb != HelloVerb::Helo {
            for keyword in self.extensions() {
                reply.push_line(&keyword);
            }
        }
        reply
    }

    /// The EHLO keywords, in the order Sluice advertises them.
    pub(super) fn extensions(&self) -> Vec<String> {
        let mut out = vec!["PIPELINING".to_owned()];
        match self.config.message_size_limit {
            // RFC 1870 §4: "SIZE" alone (or 0) declares no fixed maximum.
            0 => out.push("SIZE".to_owned()),
            limit => out.push(format!("SIZE {limit}")),
        }
        out.push("8BITMIME".to_owned());
        out.push("SMTPUTF8".to_owned());
        out.push("ENHANCEDSTATUSCODES".to_owned());
        out.push("CHUNKING".to_owned());
        if self.dsn {
            out.push("DSN".to_owned());
        }
        // RFC 3207 §4.2: never offered again once TLS is active.
        if self.config.tls_available && self.tls.is_none() {
            out.push("STARTTLS".to_owned());
        }
        out.push("HELP".to_owned());
        out
    }
}

/// A domain or address literal, leniently: printable ASCII without spaces.
/// Sluice does not refuse a client over a sloppy name (Windows hosts send
/// underscores); policy can, through [`Event::Helo`].
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= HELLO_NAME_MAX && name.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::super::session::{Mode, Poll, TlsInfo};
    use super::super::testing::*;

    const EHLO_KEYWORDS: &str = "250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n\
        250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n";

    #[test]
    fn greetings_by_mode() {
        let ehlo_reply =
            format!("250-mx.test Hello client.test [192.0.2.7]\r\n{EHLO_KEYWORDS}250 HELP\r\n");
        let cases: Vec<(Mode, &[u8], String)> = vec![
            (Mode::Smtp, b"EHLO client.test\r\n", ehlo_reply.clone()),
            (
                Mode::Smtp,
                b"ehlo client.test trailing words\r\n",
                ehlo_reply.clone(),
            ),
            (
                Mode::Smtp,
                b"HELO client.test\r\n",
                "250 mx.test Hello client.test [192.0.2.7]\r\n".into(),
            ),
            (
                Mode::Smtp,
                b"EHLO [192.0.2.7]\r\n",
                ehlo_reply.replace("client.test", "[192.0.2.7]"),
            ),
            (
                Mode::Smtp,
                b"EHLO\r\n",
                "501 Syntax: EHLO hostname\r\n".into(),
            ),
            (
                Mode::Smtp,
                b"HELO \xc3\xa9\r\n",
                "501 Syntax: HELO hostname\r\n".into(),
            ),
            (
                Mode::Smtp,
                b"LHLO client.test\r\n",
                "500 5.5.2 Unrecognized command\r\n".into(),
            ),
            (Mode::Lmtp, b"LHLO client.test\r\n", ehlo_reply.clone()),
            (
                Mode::Lmtp,
                b"EHLO client.test\r\n",
                "502 5.5.1 This is an LMTP server: use LHLO\r\n".into(),
            ),
            (
                Mode::Lmtp,
                b"HELO client.test\r\n",
                "502 5.5.1 This is an LMTP server: use LHLO\r\n".into(),
            ),
        ];
        for (mode, input, expected) in cases {
            let mut s = ready(mode);
            assert_eq!(
                talk(&mut s, input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn starttls_is_advertised_only_before_tls() {
        let mut config = config(Mode::Smtp);
        config.tls_available = true;
        config.message_size_limit = 0;
        let mut s = ready_with(config);
        let out = talk(&mut s, b"EHLO c\r\n");
        assert!(
            out.contains("250-SIZE\r\n") && out.contains("250-STARTTLS\r\n"),
            "{out}"
        );
        s.receive(b"STARTTLS\r\n");
        assert_eq!(s.poll(), Poll::StartTls { discarded: 0 });
        s.tls_established(TlsInfo {
            version: "TLS1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
        });
        s.take_output();
        let out = talk(&mut s, b"EHLO c\r\n");
        assert!(!out.contains("STARTTLS"), "{out}");
    }

    #[test]
    fn refused_greeting_has_no_status_and_counts() {
        let mut s = ready(Mode::Smtp);
        s.receive(b"EHLO bad.example\r\nMAIL FROM:<>\r\n");
        let Poll::Decide(_) = s.poll() else { panic!() };
        s.verdict(super::Verdict::Reply(
            super::Reply::parse("550 5.7.1 go away").unwrap(),
        ));
        drain(&mut s);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "550 go away\r\n503 5.5.1 Bad sequence of commands: send EHLO first\r\n"
        );
        // A custom positive reply replaces the first line only.
        let mut s = ready(Mode::Smtp);
        s.receive(b"EHLO c\r\n");
        let Poll::Decide(_) = s.poll() else { panic!() };
        s.verdict(super::Verdict::Reply(
            super::Reply::parse("250 2.0.0 mx.test at your service").unwrap(),
        ));
        let out = String::from_utf8(s.take_output()).unwrap();
        assert!(
            out.starts_with("250-mx.test at your service\r\n250-PIPELINING\r\n"),
            "{out}"
        );
        assert_eq!(s.helo().map(|h| h.1), Some("c"));
    }
}
