//! RCPT TO (RFC 5321 §4.1.1.3): adds a recipient to the transaction.

use super::address::{PathKind, parse_path};
use super::command::after_keyword;
use super::params::{self, ParamError};
use super::reply;
use super::session::{Event, Pending, Recipient, Session, Verdict, decided};

const USAGE: &str = "RCPT TO:<address> [parameters]";

impl Session {
    pub(super) fn rcpt(&mut self, line: &[u8], args: &[u8], early: bool) {
        let Some(tx) = self.tx.as_mut() else {
            return self.refuse(line, reply::bad_sequence("MAIL first"));
        };
        if tx.envelope.chunked {
            return self.refuse(line, reply::bad_sequence("RCPT after BDAT"));
        }
        tx.envelope.pipelined |= early;
        let smtputf8 = tx.envelope.params.smtputf8;
        let accepted = tx.envelope.recipients.len();
        let Some(rest) = after_keyword(args, "TO:") else {
            return self.refuse(line, reply::syntax(USAGE));
        };
        if rest.first() != Some(&b'<') {
            return self.refuse(line, reply::syntax(USAGE));
        }
        let path = match parse_path(rest, PathKind::Forward) {
            Ok(path) => path,
            Err(e) => return self.refuse(line, reply::bad_recipient(&e.to_string())),
        };
        if path.source_route {
            return self.refuse(line, reply::source_route());
        }
        let params = match params::parse_rcpt(&rest[path.len..], self.dsn) {
            Ok(params) => params,
            Err(ParamError::Syntax(detail)) => {
                return self.refuse(line, reply::param_syntax(&detail));
            }
            Err(ParamError::Unsupported(keyword)) => {
                return self.refuse(line, reply::param_unsupported(&keyword));
            }
        };
        let Some(to) = path.address else {
            // parse_path never returns the null path for a forward path.
            return self.refuse(line, reply::bad_recipient("empty address"));
        };
        if !to.is_ascii() && !smtputf8 {
            return self.refuse(line, reply::non_ascii_address());
        }
        let max = self.config.max_recipients;
        if max != 0 && accepted >= max {
            // Not an error: RFC 5321 §4.5.3.1.10 has the client send the
            // rest in another transaction.
            return self.decline(line, reply::too_many_recipients());
        }
        let recipient = Recipient {
            address: to.clone(),
            params: params.clone(),
        };
        self.ask(Pending::Rcpt { recipient }, Event::Rcpt { to, params });
    }

    pub(super) fn rcpt_verdict(&mut self, recipient: Recipient, verdict: Verdict) {
        let reply = decided(verdict, reply::recipient_ok);
        if !reply.is_positive() {
            return self.refused_by_verdict(&reply);
        }
        match self.tx.as_mut() {
            Some(tx) => {
                tx.envelope.recipients.push(recipient);
                self.reply(&reply);
            }
            // Cannot happen: RCPT is refused outside a transaction.
            None => self.reply(&reply::local_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::Reply;
    use super::super::session::{Mode, Poll, Verdict};
    use super::super::testing::*;

    #[test]
    fn rcpt_to_replies() {
        let cases: Vec<(&str, &str, &str)> = vec![
            ("", "RCPT TO:<a@b.example>", "250 2.1.5 Recipient OK"),
            ("", "rcpt to: <a@b.example>", "250 2.1.5 Recipient OK"),
            ("", "RCPT TO:<Postmaster>", "250 2.1.5 Recipient OK"),
            ("", "RCPT TO:<\"a b\"@b.example>", "250 2.1.5 Recipient OK"),
            ("", "RCPT TO:<a%c@b.example>", "250 2.1.5 Recipient OK"),
            ("", "RCPT TO:<a@b.example.>", "250 2.1.5 Recipient OK"),
            (
                "",
                "RCPT TO:<@r.example:a@b.example>",
                "550 5.7.1 Relay not permitted: source routes are not accepted",
            ),
            (
                "",
                "RCPT TO:<@r.example,@s.example:a@b.example>",
                "550 5.7.1 Relay not permitted: source routes are not accepted",
            ),
            (
                "",
                "RCPT TO:<>",
                "501 5.1.3 Bad recipient address syntax: empty address",
            ),
            (
                "",
                "RCPT TO:<a@b.example> NOTIFY=NEVER",
                "555 5.5.4 Unsupported parameter NOTIFY",
            ),
            (
                "",
                "RCPT TO:<a@b.example> ORCPT=rfc822;a@b.example",
                "555 5.5.4 Unsupported parameter ORCPT",
            ),
            (
                "",
                "RCPT TO:<a@b.example> =",
                "501 5.5.4 Syntax error in parameters: invalid parameter =",
            ),
            (
                "",
                "RCPT TO:a@b.example",
                "501 5.5.4 Syntax: RCPT TO:<address> [parameters]",
            ),
            (
                "",
                "RCPT FROM:<a@b.example>",
                "501 5.5.4 Syntax: RCPT TO:<address> [parameters]",
            ),
            (
                "",
                "RCPT TO:<δ@b.example>",
                "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter on MAIL",
            ),
            (
                " SMTPUTF8",
                "RCPT TO:<δ@παράδειγμα.example>",
                "250 2.1.5 Recipient OK",
            ),
        ];
        for (mail_params, command, expected) in cases {
            let mut s = ready(Mode::Smtp);
            talk(
                &mut s,
                format!("EHLO c\r\nMAIL FROM:<>{mail_params}\r\n").as_bytes(),
            );
            let out = talk(&mut s, format!("{command}\r\n").as_bytes());
            assert_eq!(out, format!("{expected}\r\n"), "{command}");
        }
    }

    #[test]
    fn rcpt_needs_a_transaction() {
        let mut s = ready(Mode::Smtp);
        let out = talk(&mut s, b"EHLO c\r\nRCPT TO:<a@b.example>\r\n");
        assert!(
            out.ends_with("503 5.5.1 Bad sequence of commands: MAIL first\r\n"),
            "{out}"
        );
    }

    #[test]
    fn limits_accepted_recipients_not_attempts() {
        let mut config = config(Mode::Smtp);
        config.max_recipients = 2;
        let mut s = ready_with(config);
        s.receive(b"EHLO c\r\nMAIL FROM:<>\r\n");
        accept_all(&mut s);
        s.take_output();
        s.receive(b"RCPT TO:<x@b.example>\r\nRCPT TO:<a@b.example>\r\nRCPT TO:<b@b.example>\r\nRCPT TO:<c@b.example>\r\n");
        // The first is refused by policy and does not count toward the limit.
        let Poll::Decide(_) = s.poll() else { panic!() };
        s.verdict(Verdict::Reply(
            Reply::parse("550 5.1.1 no such user").unwrap(),
        ));
        accept_all(&mut s);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "550 5.1.1 no such user\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n"
        );
        let rcpts: Vec<&str> = s
            .envelope()
            .unwrap()
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(rcpts, ["a@b.example", "b@b.example"]);
    }
}
