//! BDAT (RFC 3030 CHUNKING): the message in chunks of exact octet counts.
//!
//! A chunk's octets follow its BDAT line directly and are never commands,
//! so they are read even when the BDAT is refused; otherwise the client's
//! chunk would be taken as a stream of (invalid) commands.

use super::reply;
use super::session::{Chunk, ChunkRefusal, Phase, Session};

impl Session {
    pub(super) fn bdat(&mut self, line: &[u8], early: bool) {
        let (size, last) = match smtp_proto::Request::parse(&mut line.iter()) {
            Ok(smtp_proto::Request::Bdat {
                chunk_size,
                is_last,
            }) => (u64::try_from(chunk_size).unwrap_or(u64::MAX), is_last),
            // Without a size the chunk cannot be skipped; what follows is
            // read as commands and fails as such.
            _ => return self.refuse(line, reply::syntax("BDAT chunk-size [LAST]")),
        };
        let lmtp = self.lmtp();
        let refusal = match self.tx.as_mut() {
            None => {
                let reply = if self.helo.is_none() && lmtp {
                    reply::bad_sequence("send LHLO first")
                } else if self.helo.is_none() {
                    reply::bad_sequence("send EHLO first")
                } else {
                    reply::bad_sequence("MAIL first")
                };
                Some(ChunkRefusal {
                    reply,
                    counts: true,
                    reset: false,
                })
            }
            Some(tx) if tx.envelope.recipients.is_empty() => Some(ChunkRefusal {
                reply: reply::no_valid_recipients(lmtp),
                counts: true,
                reset: false,
            }),
            // Refused before reading, so an oversized chunk is never kept.
            Some(tx) if tx.body.would_exceed(size) => Some(ChunkRefusal {
                reply: reply::too_big(),
                counts: false,
                reset: true,
            }),
            Some(tx) => {
                tx.envelope.chunked = true;
                tx.envelope.pipelined |= early;
                None
            }
        };
        self.phase = Phase::Chunk(Chunk {
            remaining: size,
            size,
            last,
            refusal,
            line: line.to_vec(),
        });
    }

    /// Reads chunk octets; at the chunk's end, replies. False when the
    /// chunk needs octets and none are buffered.
    pub(super) fn step_chunk(&mut self) -> bool {
        let Phase::Chunk(chunk) = &mut self.phase else {
            return false;
        };
        if chunk.remaining > 0 {
            let avail = self.input.len() - self.pos;
            if avail == 0 {
                return false;
            }
            let take = usize::try_from(chunk.remaining).map_or(avail, |r| r.min(avail));
            if chunk.refusal.is_none()
                && let Some(tx) = self.tx.as_mut()
            {
                tx.body.push(&self.input[self.pos..self.pos + take]);
            }
            self.pos += take;
            chunk.remaining -= take as u64;
            if chunk.remaining > 0 {
                return true;
            }
        }
        let Phase::Chunk(chunk) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return true;
        };
        self.early_next = self.pos < self.input.len();
        match chunk.refusal {
            Some(refusal) => {
                if refusal.reset {
                    // RFC 3030 §2: the transaction failed; the client starts over.
                    self.tx = None;
                }
                if refusal.counts {
                    self.refuse(&chunk.line, refusal.reply);
                } else {
                    self.decline(&chunk.line, refusal.reply);
                }
            }
            None if chunk.last => self.finish_message(),
            None => self.reply(&reply::chunk_received(chunk.size)),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::{Event, Mode, Poll, Verdict};
    use super::super::testing::*;

    fn start(mode: super::super::session::SessionConfig) -> super::Session {
        let mut s = ready_with(mode);
        s.receive(b"EHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n");
        accept_all(&mut s);
        s.take_output();
        s
    }

    #[test]
    fn chunks_make_one_message() {
        let mut s = start(config(Mode::Smtp));
        // Chunks split anywhere, even inside the BDAT line's own input.
        for piece in [
            &b"BDAT 5\r\nHel"[..],
            b"lo",
            b"BDAT 9 LA",
            b"ST\r\n, world",
            b"\r\nNOOP\r\n",
        ] {
            s.receive(piece);
        }
        let Poll::Decide(Event::Message(m)) = s.poll() else {
            panic!()
        };
        assert_eq!(m.data, b"Hello, world\r\n");
        assert!(m.envelope.chunked);
        s.verdict(Verdict::Accept);
        drain(&mut s);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "250 2.0.0 5 octets received\r\n250 2.0.0 OK\r\n250 2.0.0 OK\r\n"
        );
    }

    #[test]
    fn bdat_refusals_still_consume_the_chunk() {
        let cases: Vec<(&[u8], &str)> = vec![
            (
                b"RSET\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n",
                "250 2.0.0 OK\r\n503 5.5.1 Bad sequence of commands: MAIL first\r\n250 2.0.0 OK\r\n",
            ),
            (
                b"RSET\r\nMAIL FROM:<>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
                "250 2.0.0 OK\r\n250 2.1.0 Sender OK\r\n554 5.5.1 No valid recipients\r\n250 2.0.0 OK\r\n",
            ),
            (
                b"BDAT 3\r\nabcDATA\r\n",
                "250 2.0.0 3 octets received\r\n503 5.5.1 Bad sequence of commands: DATA after BDAT\r\n",
            ),
            (
                b"BDAT 3\r\nabcRCPT TO:<b@example.com>\r\n",
                "250 2.0.0 3 octets received\r\n503 5.5.1 Bad sequence of commands: RCPT after BDAT\r\n",
            ),
            (
                b"BDAT x\r\nNOOP\r\n",
                "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n250 2.0.0 OK\r\n",
            ),
            (
                b"BDAT 41\r\n01234567890123456789012345678901234567890BDAT 1 LAST\r\nx",
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n503 5.5.1 Bad sequence of commands: MAIL first\r\n",
            ),
        ];
        for (input, expected) in cases {
            let mut c = config(Mode::Smtp);
            c.message_size_limit = 40;
            let mut s = start(c);
            s.receive(input);
            accept_all(&mut s);
            assert_eq!(
                String::from_utf8(s.take_output()).unwrap(),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bdat_content_is_checked_at_the_last_chunk() {
        let mut s = start(config(Mode::Smtp));
        s.receive(b"BDAT 2\r\na\nBDAT 3 LAST\r\nb\r\n");
        drain(&mut s);
        assert_eq!(
            String::from_utf8(s.take_output()).unwrap(),
            "250 2.0.0 2 octets received\r\n554 5.6.0 Message refused: bare LF in message data; lines must end with CRLF\r\n"
        );
        // BDAT 0 LAST ends an (empty) message.
        let mut s = start(config(Mode::Smtp));
        s.receive(b"BDAT 0 LAST\r\n");
        let Poll::Decide(Event::Message(m)) = s.poll() else {
            panic!()
        };
        assert!(m.data.is_empty());
    }
}
