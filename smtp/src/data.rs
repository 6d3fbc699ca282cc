//! DATA (RFC 5321 §4.1.1.4): the message as dot-stuffed lines, ended by
//! `<CRLF>.<CRLF>`; and what happens when a message ends, by DATA or BDAT.
//!
//! Only CRLF `.` CRLF ends the data. A `.` after a bare LF or a bare CR, or
//! followed by a bare LF, is ordinary content, so `\n.\n`, `\n.\r\n` and
//! `\r\n.\n` never end a message early: a server that ends it there, while
//! the next hop does not (or the other way round), lets a client smuggle a
//! second message past the first one's checks (SMTP smuggling,
//! CVE-2023-51766). The message containing such a line ending is then
//! refused as a whole after its real end ([`super::body`]).

use super::address::Address;
use super::body::{Body, Fault};
use super::reply::{self, Reply};
use super::session::{
    CloseReason, Event, Message, Notice, Pending, Phase, Session, Verdict, decided,
};

/// Where the decoder is within the dot-stuffed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// At the start of a line: right after DATA's CRLF or a CRLF.
    LineStart,
    /// A `.` at the start of a line, not yet passed on.
    Dot,
    /// `.` CR at the start of a line; the CR is held back, since with a LF
    /// it ends the message.
    DotCr,
    /// Inside a line.
    Text,
    /// Just after a CR inside a line.
    Cr,
}

/// Undoes dot-stuffing (RFC 5321 §4.5.2) and finds the end of the data.
#[derive(Debug)]
pub(crate) struct DotDecoder {
    state: DotState,
}

impl DotDecoder {
    pub(crate) fn new() -> DotDecoder {
        DotDecoder {
            state: DotState::LineStart,
        }
    }

    /// Passes the content in `input` to `body`. Returns how many octets were
    /// used and whether the end of data was among them; octets after the
    /// end belong to the next command.
    pub(crate) fn feed(&mut self, input: &[u8], body: &mut Body) -> (usize, bool) {
        let mut i = 0;
        // Start of the content not yet passed to `body`.
        let mut span = 0;
        while i < input.len() {
            match self.state {
                DotState::Text => match input[i..].iter().position(|&b| b == b'\r' || b == b'\n') {
                    None => i = input.len(),
                    Some(k) => {
                        i += k;
                        // A bare LF does not start a line: only CRLF does.
                        if input[i] == b'\r' {
                            self.state = DotState::Cr;
                        }
                        i += 1;
                    }
                },
                DotState::Cr => {
                    self.state = match input[i] {
                        b'\n' => DotState::LineStart,
                        b'\r' => DotState::Cr,
                        _ => DotState::Text,
                    };
                    i += 1;
                }
                DotState::LineStart => {
                    if input[i] == b'.' {
                        body.push(&input[span..i]);
                        i += 1;
                        span = i;
                        self.state = DotState::Dot;
                    } else {
                        self.state = DotState::Text;
                    }
                }
                DotState::Dot => {
                    if input[i] == b'\r' {
                        i += 1;
                        span = i;
                        self.state = DotState::DotCr;
                    } else {
                        // The dot was stuffing: dropped; the line goes on.
                        self.state = DotState::Text;
                    }
                }
                DotState::DotCr => {
                    if input[i] == b'\n' {
                        return (i + 1, true);
                    }
                    // `.` CR without LF: the CR was content after all.
                    body.push(b"\r");
                    self.state = DotState::Cr;
                }
            }
        }
        body.push(&input[span..]);
        (input.len(), false)
    }
}

impl Session {
    pub(super) fn data(&mut self, line: &[u8], args: &[u8], early: bool) {
        if !args.is_empty() {
            return self.refuse(line, reply::syntax("DATA"));
        }
        let lmtp = self.lmtp();
        let Some(tx) = self.tx.as_mut() else {
            return self.refuse(line, reply::bad_sequence("MAIL first"));
        };
        if tx.envelope.chunked {
            // RFC 3030 §2: DATA and BDAT cannot be mixed in a transaction.
            return self.refuse(line, reply::bad_sequence("DATA after BDAT"));
        }
        if tx.envelope.recipients.is_empty() {
            return self.refuse(line, reply::no_valid_recipients(lmtp));
        }
        tx.envelope.pipelined |= early;
        self.reply(&reply::start_data());
        self.phase = Phase::Data(DotDecoder::new());
    }

    /// Passes buffered input to the decoder. False when nothing was buffered.
    pub(super) fn step_data(&mut self) -> bool {
        if self.pos == self.input.len() {
            return false;
        }
        let (Phase::Data(decoder), Some(tx)) = (&mut self.phase, self.tx.as_mut()) else {
            // Cannot happen: DATA starts only inside a transaction.
            self.phase = Phase::Command;
            return true;
        };
        let (used, ended) = decoder.feed(&self.input[self.pos..], &mut tx.body);
        self.pos += used;
        if ended {
            self.early_next = self.pos < self.input.len();
            self.phase = Phase::Command;
            self.finish_message();
        }
        true
    }

    /// The message is complete (final dot, or BDAT LAST): hand it to the
    /// driver, or refuse it for a fault found on the way.
    pub(super) fn finish_message(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let size = tx.body.size();
        let envelope = tx.envelope;
        match tx.body.finish() {
            Ok(content) => {
                let recipients = envelope
                    .recipients
                    .iter()
                    .map(|r| r.address.clone())
                    .collect();
                let message = Message {
                    envelope,
                    data: content.data,
                    eight_bit: content.eight_bit,
                };
                self.ask(
                    Pending::Message { recipients },
                    Event::Message(Box::new(message)),
                );
            }
            Err(fault) => {
                let reply = match fault {
                    Fault::TooBig => reply::too_big(),
                    Fault::BareLf => reply::bare_line_ending("LF"),
                    Fault::BareCr => reply::bare_line_ending("CR"),
                    Fault::LongLine => reply::line_too_long_in_data(self.config.max_data_line),
                };
                // RFC 2033 §4.2: LMTP answers once per accepted recipient.
                let count = if self.lmtp() {
                    envelope.recipients.len()
                } else {
                    1
                };
                for _ in 0..count {
                    self.reply(&reply);
                }
                self.notice(Notice::MessageRefused {
                    envelope: Box::new(envelope),
                    size,
                    reply,
                });
            }
        }
    }

    /// Applies the driver's verdicts on a message: one reply in SMTP, one
    /// per recipient in LMTP.
    pub(super) fn message_verdicts(&mut self, recipients: &[Address], verdicts: Vec<Verdict>) {
        let mut verdicts = verdicts.into_iter();
        let mut missing = || Verdict::Reply(reply::local_error());
        let replies: Vec<Reply> = if self.lmtp() {
            recipients
                .iter()
                .map(|rcpt| {
                    decided(verdicts.next().unwrap_or_else(&mut missing), || {
                        reply::delivered(rcpt.as_str())
                    })
                })
                .collect()
        } else {
            vec![decided(
                verdicts.next().unwrap_or_else(missing),
                reply::message_accepted,
            )]
        };
        let mut closes = false;
        for reply in &replies {
            self.reply(reply);
            closes |= reply.closes();
        }
        if closes {
            self.close(CloseReason::Refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::Reply;
    use super::super::session::{CloseReason, Event, Mode, Notice, Poll, Verdict};
    use super::super::testing::*;
    use super::*;

    /// Decodes `chunks` and returns (content, consumed of the last chunk, ended).
    fn decode(chunks: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let mut body = Body::new(0, 0);
        let mut decoder = DotDecoder::new();
        let mut used = 0;
        let mut ended = false;
        for chunk in chunks {
            assert!(!ended, "input after the end");
            (used, ended) = decoder.feed(chunk, &mut body);
        }
        let content = match body.finish() {
            Ok(c) => c.data,
            Err(f) => format!("{f:?}").into_bytes(),
        };
        (content, used, ended)
    }

    #[test]
    fn decodes_dot_stuffing_and_finds_the_end() {
        // (input chunks, content or fault, used of the last chunk, ended)
        type Case<'a> = (Vec<&'a [u8]>, &'a [u8], usize, bool);
        let cases: Vec<Case> = vec![
            (vec![b".\r\n"], b"", 3, true),
            (vec![b"a\r\n.\r\n"], b"a\r\n", 6, true),
            (vec![b"a\r\n.\r\nQUIT\r\n"], b"a\r\n", 6, true),
            (vec![b"..a\r\n.\r\n"], b".a\r\n", 8, true),
            (vec![b"...\r\n.\r\n"], b"..\r\n", 8, true),
            (vec![b"a.\r\n.b\r\n.\r\n"], b"a.\r\nb\r\n", 11, true),
            (vec![b"a\r\n", b".", b"\r", b"\n"], b"a\r\n", 1, true),
            (vec![b"a\r", b"\n.\r\n"], b"a\r\n", 4, true),
            (vec![b"a\r\n.", b"\r\nX"], b"a\r\n", 2, true),
            (vec![b"a\r\n", b".\r", b"x\r\n.\r\n"], b"BareCr", 6, true),
            // Not the end: these reach the body (and make it refuse).
            (vec![b"a\n.\n"], b"BareLf", 4, false),
            (vec![b"a\n.\r\n"], b"BareLf", 5, false),
            (vec![b"a\r\n.\n"], b"BareLf", 5, false),
            (vec![b"a\r.\r\n"], b"BareCr", 5, false),
            (vec![b"a\r\n.\r.\r\n"], b"BareCr", 8, false),
            (vec![b"a\r\n", b"."], b"a\r\n", 1, false),
        ];
        for (chunks, content, used, ended) in cases {
            let got = decode(&chunks);
            assert_eq!(got, (content.to_vec(), used, ended), "{:?}", chunks);
        }
    }

    /// The end of data is found however the input is split.
    #[test]
    fn end_is_found_at_every_split() {
        let wire: &[u8] = b"Subject: x\r\n\r\n..dot\r\n.x\r\n\r\nend\r\n.\r\nNOOP\r\n";
        let content: &[u8] = b"Subject: x\r\n\r\n.dot\r\nx\r\n\r\nend\r\n";
        for split in 0..wire.len() {
            let (a, b) = wire.split_at(split);
            let mut body = Body::new(0, 0);
            let mut decoder = DotDecoder::new();
            let (used_a, ended_a) = decoder.feed(a, &mut body);
            let total = if ended_a {
                used_a
            } else {
                let (used_b, ended_b) = decoder.feed(b, &mut body);
                assert!(ended_b, "split {split}");
                a.len() + used_b
            };
            assert_eq!(&wire[total..], b"NOOP\r\n", "split {split}");
            assert_eq!(body.finish().unwrap().data, content, "split {split}");
        }
    }

    fn transaction(s: &mut super::Session, rcpts: &[&str]) {
        let mut cmds = String::from("EHLO c\r\nMAIL FROM:<s@example.org>\r\n");
        for r in rcpts {
            cmds.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        s.receive(cmds.as_bytes());
        accept_all(s);
        s.take_output();
    }

    #[test]
    fn message_event_and_reply() {
        let mut s = ready(Mode::Smtp);
        transaction(&mut s, &["a@example.com"]);
        s.receive(b"DATA\r\nSubject: hi\r\n\r\n..x\r\n.\r\nNOOP\r\n");
        let Poll::Decide(Event::Message(m)) = s.poll() else {
            panic!()
        };
        assert_eq!(m.data, b"Subject: hi\r\n\r\n.x\r\n");
        assert_eq!(m.envelope.recipients.len(), 1);
        assert_eq!(m.envelope.protocol, "esmtp");
        assert!(m.envelope.pipelined && !m.envelope.chunked);
        assert_eq!(s.poll(), Poll::Waiting);
        s.verdict(Verdict::Reply(Reply::queued("1sLuIc-000000000Ab-0000")));
        assert_eq!(s.poll(), Poll::Read);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK id=1sLuIc-000000000Ab-0000\r\n250 2.0.0 OK\r\n"
        );
        assert!(s.envelope().is_none());
    }

    #[test]
    fn content_taken_while_it_arrives_is_left_out_of_the_message() {
        let mut s = ready(Mode::Smtp);
        transaction(&mut s, &["a@example.com"]);
        assert_eq!(s.take_content(1), None, "no content before DATA");
        let serial = s.transaction_serial();
        assert!(serial > 0);
        s.receive(b"DATA\r\nSubject: hi\r\n\r\n..x\r\n");
        assert_eq!(s.poll(), Poll::Read);
        assert_eq!(s.take_content(100), None, "less than asked for");
        assert_eq!(s.take_content(10).unwrap(), b"Subject: hi\r\n\r\n.x\r\n");
        assert_eq!(s.take_content(1), None, "taken already");
        s.receive(b"y\r\n.\r\n");
        let Poll::Decide(Event::Message(m)) = s.poll() else {
            panic!()
        };
        assert_eq!(m.data, b"y\r\n");
        assert_eq!(s.take_content(1), None, "the message is complete");
        assert_eq!(s.content_kept(), 0);
        // The next transaction, however pipelined, has its own number.
        s.verdict(Verdict::Reply(Reply::queued("1sLuIc-000000000Ab-0000")));
        talk(&mut s, b"RSET\r\nMAIL FROM:<s@example.org>\r\n");
        assert_eq!(s.transaction_serial(), serial + 1);

        // A message bound to be refused gives nothing more, and says so.
        let mut config = config(Mode::Smtp);
        config.message_size_limit = 40;
        let mut s = ready_with(config);
        transaction(&mut s, &["a@example.com"]);
        s.receive(b"DATA\r\nSubject: hi\r\n\r\n");
        assert_eq!(s.poll(), Poll::Read);
        assert!(!s.content_refused());
        assert!(s.take_content(1).is_some());
        s.receive(&[b'x'; 64]);
        assert_eq!(s.poll(), Poll::Read);
        assert!(s.content_refused());
        assert_eq!(s.take_content(1), None);
        s.receive(b"\r\n.\r\n");
        assert!(matches!(
            s.poll(),
            Poll::Notice(Notice::MessageRefused { .. })
        ));
        assert!(!s.content_refused());
    }

    #[test]
    fn data_sequence_rules() {
        let cases: Vec<(Mode, &[u8], &str)> = vec![
            (
                Mode::Smtp,
                b"DATA\r\n",
                "503 5.5.1 Bad sequence of commands: MAIL first",
            ),
            (
                Mode::Smtp,
                b"MAIL FROM:<>\r\nDATA\r\n",
                "554 5.5.1 No valid recipients",
            ),
            (
                Mode::Lmtp,
                b"MAIL FROM:<>\r\nDATA\r\n",
                "503 5.5.1 No valid recipients",
            ),
            (
                Mode::Smtp,
                b"MAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA x\r\n",
                "501 5.5.4 Syntax: DATA",
            ),
        ];
        for (mode, input, expected) in cases {
            let mut s = ready(mode);
            let hello = if mode == Mode::Lmtp {
                "LHLO c\r\n"
            } else {
                "EHLO c\r\n"
            };
            talk(&mut s, hello.as_bytes());
            let out = talk(&mut s, input);
            assert!(out.ends_with(&format!("{expected}\r\n")), "{out}");
        }
    }

    #[test]
    fn refused_content_is_answered_after_the_dot() {
        let cases: Vec<(&[u8], &str)> = vec![
            (
                b"a\nb\r\n.\r\n",
                "554 5.6.0 Message refused: bare LF in message data; lines must end with CRLF",
            ),
            (
                b"a\rb\r\n.\r\n",
                "554 5.6.0 Message refused: bare CR in message data; lines must end with CRLF",
            ),
            (
                b"0123456789012345678901234567890\r\n.\r\n",
                "554 5.6.0 Message refused: a line exceeds 30 octets",
            ),
            (
                b"x\r\n",
                "552 5.3.4 Message size exceeds fixed maximum message size",
            ),
        ];
        for (data, expected) in cases {
            let mut config = config(Mode::Smtp);
            config.max_data_line = 30;
            config.message_size_limit = 40;
            let mut s = ready_with(config);
            transaction(&mut s, &["a@example.com"]);
            s.receive(b"DATA\r\n");
            s.receive(data);
            if data == b"x\r\n" {
                for _ in 0..20 {
                    s.receive(b"x\r\n");
                }
                s.receive(b".\r\n");
            }
            let Poll::Notice(Notice::MessageRefused { size, reply, .. }) = s.poll() else {
                panic!()
            };
            assert_eq!(reply.to_string(), expected);
            assert!(size > 0);
            assert_eq!(s.poll(), Poll::Read);
            let out = String::from_utf8(s.take_output()).unwrap();
            assert_eq!(
                out,
                format!("354 End data with <CR><LF>.<CR><LF>\r\n{expected}\r\n")
            );
            assert!(s.envelope().is_none());
        }
    }

    #[test]
    fn lmtp_answers_per_recipient() {
        let mut s = ready(Mode::Lmtp);
        s.receive(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\nhi\r\n.\r\n");
        loop {
            match s.poll() {
                Poll::Decide(Event::Message(m)) => {
                    assert_eq!(m.envelope.protocol, "lmtp");
                    break;
                }
                Poll::Decide(_) => s.verdict(Verdict::Accept),
                other => panic!("{other:?}"),
            }
        }
        s.take_output();
        s.verdicts(vec![
            Verdict::Accept,
            Verdict::Reply(Reply::parse("452 4.2.2 Mailbox full").unwrap()),
        ]);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "250 2.0.0 <a@x.example> OK\r\n452 4.2.2 Mailbox full\r\n451 4.3.0 Local error in processing\r\n"
        );
        // One verdict for all: a 421 closes after every recipient's reply.
        let mut s = ready(Mode::Lmtp);
        s.receive(b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\nhi\r\n.\r\n");
        while let Poll::Decide(e) = s.poll() {
            if matches!(e, Event::Message(_)) {
                break;
            }
            s.verdict(Verdict::Accept);
        }
        s.take_output();
        s.verdict(Verdict::Reply(
            Reply::parse("421 4.3.2 shutting down").unwrap(),
        ));
        assert_eq!(s.poll(), Poll::Close(CloseReason::Refused));
        assert_eq!(
            s.take_output(),
            b"421 4.3.2 shutting down\r\n421 4.3.2 shutting down\r\n"
        );
    }
}
