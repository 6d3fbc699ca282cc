//! STARTTLS (RFC 3207).
//!
//! After the 220, whatever the client pipelined behind STARTTLS in clear
//! text is thrown away: it was sent before encryption, so a man in the
//! middle may have put it there to run as if it came over TLS
//! (CVE-2011-0411, the Postfix/Exim/... STARTTLS command injection).
//! [`super::Session::tls_established`] then resets the session: RFC 3207
//! §4.2 has the client greet again and the server forget what it learned.

use super::reply;
use super::session::{Phase, Session};

impl Session {
    pub(super) fn starttls(&mut self, line: &[u8], args: &[u8]) {
        if !args.is_empty() {
            return self.refuse(line, reply::syntax("STARTTLS"));
        }
        if self.tls.is_some() {
            return self.refuse(line, reply::tls_active());
        }
        if !self.config.tls_available {
            return self.refuse(line, reply::tls_unavailable());
        }
        if self.tx.is_some() {
            return self.refuse(
                line,
                reply::bad_sequence("STARTTLS inside a mail transaction"),
            );
        }
        self.reply(&reply::start_tls());
        let discarded = self.input.len() - self.pos;
        self.input.clear();
        self.pos = 0;
        self.phase = Phase::StartTls { discarded };
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::{Mode, Poll, TlsInfo};
    use super::super::testing::*;

    fn tls_config() -> super::super::session::SessionConfig {
        let mut c = config(Mode::Smtp);
        c.tls_available = true;
        c
    }

    fn tls() -> TlsInfo {
        TlsInfo {
            version: "TLS1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
        }
    }

    #[test]
    fn pipelined_commands_after_starttls_are_discarded() {
        let mut s = ready_with(tls_config());
        talk(&mut s, b"EHLO c\r\n");
        s.receive(b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n");
        assert_eq!(s.poll(), Poll::StartTls { discarded: 30 });
        assert_eq!(s.take_output(), b"220 2.0.0 Ready to start TLS\r\n");
        // Bytes arriving before the handshake completes are not commands either.
        s.receive(b"RCPT TO:<x@example.com>\r\n");
        assert_eq!(s.poll(), Poll::Waiting);
        s.tls_established(tls());
        assert_eq!(s.poll(), Poll::Read);
        // The session was reset: no greeting, no transaction.
        assert_eq!(
            talk(&mut s, b"MAIL FROM:<>\r\n"),
            "503 5.5.1 Bad sequence of commands: send EHLO first\r\n"
        );
        talk(&mut s, b"EHLO c\r\n");
        assert_eq!(
            talk(&mut s, b"RCPT TO:<x@example.com>\r\n"),
            "503 5.5.1 Bad sequence of commands: MAIL first\r\n"
        );
        talk(&mut s, b"MAIL FROM:<a@example.org>\r\n");
        assert_eq!(s.envelope().unwrap().protocol, "esmtps");
        assert_eq!(s.envelope().unwrap().tls, Some(tls()));
    }

    #[test]
    fn starttls_refusals() {
        let cases: Vec<(bool, &[u8], &str)> = vec![
            (false, b"STARTTLS\r\n", "502 5.5.1 STARTTLS not available"),
            (true, b"STARTTLS now\r\n", "501 5.5.4 Syntax: STARTTLS"),
            (
                true,
                b"MAIL FROM:<>\r\nSTARTTLS\r\n",
                "503 5.5.1 Bad sequence of commands: STARTTLS inside a mail transaction",
            ),
        ];
        for (available, input, expected) in cases {
            let mut c = config(Mode::Smtp);
            c.tls_available = available;
            let mut s = ready_with(c);
            talk(&mut s, b"EHLO c\r\n");
            let out = talk(&mut s, input);
            assert!(out.ends_with(&format!("{expected}\r\n")), "{out}");
        }
        let mut s = ready_with(tls_config());
        s.tls_established(tls());
        talk(&mut s, b"EHLO c\r\n");
        assert_eq!(
            talk(&mut s, b"STARTTLS\r\n"),
            "503 5.5.1 TLS already active\r\n"
        );
    }

    /// Implicit TLS (port 465): the driver reports TLS before the greeting.
    #[test]
    fn implicit_tls_session() {
        let mut s =
            super::super::session::Session::new(std::sync::Arc::new(tls_config()), Some(peer()));
        s.tls_established(tls());
        assert_eq!(
            s.poll(),
            Poll::Decide(super::super::session::Event::Connect)
        );
        s.verdict(super::super::session::Verdict::Accept);
        s.take_output();
        let out = talk(&mut s, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
        assert!(!out.contains("STARTTLS"), "{out}");
        assert_eq!(s.envelope().unwrap().protocol, "esmtps");
        assert_eq!(s.tls(), Some(&tls()));
    }
}
