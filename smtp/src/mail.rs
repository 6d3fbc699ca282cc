//! MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction.

use super::address::{Address, PathKind, parse_path};
use super::body::Body;
use super::command::after_keyword;
use super::params::{self, MailParams, ParamError};
use super::reply;
use super::session::{
    Event, HelloVerb, Pending, Session, SmtpEnvelope, Transaction, Verdict, decided,
};

const USAGE: &str = "MAIL FROM:<address> [parameters]";

impl Session {
    pub(super) fn mail(&mut self, line: &[u8], args: &[u8], early: bool) {
        let Some((verb, _)) = self.helo else {
            let first = if self.lmtp() {
                "send LHLO first"
            } else {
                "send EHLO first"
            };
            return self.refuse(line, reply::bad_sequence(first));
        };
        if self.tx.is_some() {
            return self.refuse(line, reply::bad_sequence("nested MAIL command"));
        }
        let Some(rest) = after_keyword(args, "FROM:") else {
            return self.refuse(line, reply::syntax(USAGE));
        };
        if rest.first() != Some(&b'<') {
            return self.refuse(line, reply::syntax(USAGE));
        }
        let path = match parse_path(rest, PathKind::Reverse) {
            Ok(path) => path,
            Err(e) => return self.refuse(line, reply::bad_sender(&e.to_string())),
        };
        // A source route on the reverse-path is ignored, as RFC 5321
        // §4.1.1.2 says; it cannot make Sluice relay anything.
        let params = match params::parse_mail(&rest[path.len..], verb != HelloVerb::Helo, self.dsn)
        {
            Ok(params) => params,
            Err(ParamError::Syntax(detail)) => {
                return self.refuse(line, reply::param_syntax(&detail));
            }
            Err(ParamError::Unsupported(keyword)) => {
                return self.refuse(line, reply::param_unsupported(&keyword));
            }
        };
        let limit = self.config.message_size_limit;
        if params.size.is_some_and(|size| limit != 0 && size > limit) {
            return self.decline(line, reply::too_big());
        }
        let from = path.address;
        if from.as_ref().is_some_and(|a| !a.is_ascii()) && !params.smtputf8 {
            return self.refuse(line, reply::non_ascii_address());
        }
        let pending = Pending::Mail {
            from: from.clone(),
            params: params.clone(),
            pipelined: early,
        };
        self.ask(pending, Event::Mail { from, params });
    }

    pub(super) fn mail_verdict(
        &mut self,
        from: Option<Address>,
        params: MailParams,
        pipelined: bool,
        verdict: Verdict,
    ) {
        let reply = decided(verdict, reply::sender_ok);
        if !reply.is_positive() {
            return self.refused_by_verdict(&reply);
        }
        let Some((hello_verb, helo)) = self.helo.clone() else {
            // Cannot happen: MAIL is refused before a greeting.
            return self.reply(&reply::local_error());
        };
        let envelope = SmtpEnvelope {
            helo,
            hello_verb,
            protocol: self.protocol(params.smtputf8),
            peer: self.peer.map(|p| p.ip()),
            tls: self.tls.clone(),
            from,
            params,
            recipients: Vec::new(),
            pipelined,
            chunked: false,
        };
        let body = Body::new(self.config.message_size_limit, self.config.max_data_line);
        self.tx = Some(Transaction { envelope, body });
        self.transactions += 1;
        self.reply(&reply);
    }
}

#[cfg(test)]
mod tests {
    use super::super::params::BodyType;
    use super::super::session::{Event, Mode, Poll};
    use super::super::testing::*;

    /// (command after EHLO, expected reply); a transaction exists after 250.
    #[test]
    fn mail_from_replies() {
        let cases: Vec<(&str, &str)> = vec![
            ("MAIL FROM:<a@b.example>", "250 2.1.0 Sender OK"),
            ("mail from:<>", "250 2.1.0 Sender OK"),
            ("MAIL FROM: <a@b.example>", "250 2.1.0 Sender OK"),
            ("MAIL FROM:<@r.example:a@b.example>", "250 2.1.0 Sender OK"),
            (
                "MAIL FROM:<a@b.example> SIZE=52428800 BODY=8BITMIME",
                "250 2.1.0 Sender OK",
            ),
            ("MAIL FROM:<δ@b.example> SMTPUTF8", "250 2.1.0 Sender OK"),
            (
                "MAIL FROM:<a@b.example> SIZE=52428801",
                "552 5.3.4 Message size exceeds fixed maximum message size",
            ),
            (
                "MAIL FROM:<δ@b.example>",
                "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter on MAIL",
            ),
            (
                "MAIL FROM:<a@b.example> RET=HDRS",
                "555 5.5.4 Unsupported parameter RET",
            ),
            (
                "MAIL FROM:<a@b.example> ENVID=x",
                "555 5.5.4 Unsupported parameter ENVID",
            ),
            (
                "MAIL FROM:<a@b.example> BODY=XX",
                "501 5.5.4 Syntax error in parameters: BODY=XX",
            ),
            (
                "MAIL FROM:<a@b.example>SIZE=1",
                "501 5.5.4 Syntax error in parameters: a space must follow the address",
            ),
            (
                "MAIL FROM:a@b.example",
                "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]",
            ),
            (
                "MAIL TO:<a@b.example>",
                "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]",
            ),
            ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"),
            (
                "MAIL FROM:<a@>",
                "501 5.1.7 Bad sender address syntax: invalid domain",
            ),
            (
                "MAIL FROM:<a b@c>",
                "501 5.1.7 Bad sender address syntax: missing @domain",
            ),
        ];
        for (command, expected) in cases {
            let mut s = ready(Mode::Smtp);
            talk(&mut s, b"EHLO c\r\n");
            let out = talk(&mut s, format!("{command}\r\n").as_bytes());
            assert_eq!(out, format!("{expected}\r\n"), "{command}");
            assert_eq!(
                s.envelope().is_some(),
                expected.starts_with("250"),
                "{command}"
            );
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ready(Mode::Smtp);
        let out = talk(
            &mut s,
            b"MAIL FROM:<>\r\nEHLO c\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n",
        );
        assert!(
            out.starts_with("503 5.5.1 Bad sequence of commands: send EHLO first\r\n"),
            "{out}"
        );
        assert!(out.ends_with(
            "250 2.1.0 Sender OK\r\n503 5.5.1 Bad sequence of commands: nested MAIL command\r\n"
        ));
        let mut s = ready(Mode::Lmtp);
        assert_eq!(
            talk(&mut s, b"MAIL FROM:<>\r\n"),
            "503 5.5.1 Bad sequence of commands: send LHLO first\r\n"
        );
    }

    #[test]
    fn parameters_after_helo_are_unsupported() {
        let mut s = ready(Mode::Smtp);
        talk(&mut s, b"HELO c\r\n");
        assert_eq!(
            talk(&mut s, b"MAIL FROM:<a@b.example> BODY=8BITMIME\r\n"),
            "555 5.5.4 Unsupported parameter BODY\r\n"
        );
        assert_eq!(
            talk(&mut s, b"MAIL FROM:<a@b.example>\r\n"),
            "250 2.1.0 Sender OK\r\n"
        );
        assert_eq!(s.envelope().unwrap().protocol, "smtp");
    }

    #[test]
    fn the_event_carries_path_and_parameters() {
        let mut s = ready(Mode::Smtp);
        talk(&mut s, b"EHLO c\r\n");
        s.receive("MAIL FROM:<ünï@b.example> BODY=8BITMIME SMTPUTF8 SIZE=10\r\n".as_bytes());
        let Poll::Decide(Event::Mail { from, params }) = s.poll() else {
            panic!()
        };
        assert_eq!(from.unwrap().as_str(), "ünï@b.example");
        assert_eq!(
            (params.size, params.body, params.smtputf8),
            (Some(10), Some(BodyType::EightBitMime), true)
        );
        s.verdict(super::Verdict::Accept);
        let envelope = s.envelope().unwrap();
        assert_eq!(envelope.protocol, "utf8esmtp");
        assert_eq!(envelope.helo, "c");
    }
}
