//! One entry point that runs a whole session from arbitrary bytes, for
//! fuzzers and the property tests below. Whatever the input, the session
//! must not panic, must stop, and must only ever write well-formed reply
//! lines.
//!
//! A cargo-fuzz target depends on this crate and is one line:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| smtp::fuzz::session_never_panics(data));
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use super::reply::Reply;
use super::session::{Mode, Poll, Session, SessionConfig, TlsInfo, Verdict};

/// The fuzz target: runs [`exercise`] on `data` and panics, which is how a
/// fuzzer learns of a failure, if the session did not stop or wrote a
/// malformed reply line. A panic inside the session itself surfaces the
/// same way.
pub fn session_never_panics(data: &[u8]) {
    let outcome = exercise(data);
    assert!(outcome.closed, "the session must end: {outcome:?}");
    assert!(
        well_formed(&outcome.output),
        "malformed reply lines: {}",
        String::from_utf8_lossy(&outcome.output)
    );
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Everything the session wrote.
    pub output: Vec<u8>,
    /// The session closed (QUIT, end of input, errors...).
    pub closed: bool,
    /// Calls to [`Session::poll`].
    pub polls: usize,
}

/// Far more polls than any input of fuzzing size needs; reaching it means
/// the session stopped making progress.
const POLL_LIMIT: usize = 1_000_000;

/// Runs a session on `data`. The first three octets choose the setup:
/// `data[0]` the configuration (bit 0 LMTP, bit 1 TLS available, bit 2
/// tiny limits, bit 3 VRFY events), `data[1]` how the rest is cut into
/// reads, `data[2]` which verdicts the "policy" gives. The rest is what the
/// client sends, then the connection is closed.
pub fn exercise(data: &[u8]) -> Outcome {
    let (setup, input) = data.split_at(data.len().min(3));
    let byte = |i: usize| setup.get(i).copied().unwrap_or(0);
    let (flags, cut, policy) = (byte(0), byte(1), byte(2));

    let mode = if flags & 1 != 0 {
        Mode::Lmtp
    } else {
        Mode::Smtp
    };
    let mut config = SessionConfig::new("fuzz.test", mode);
    config.tls_available = flags & 2 != 0;
    if flags & 4 != 0 {
        config.message_size_limit = 64;
        config.max_recipients = 2;
        config.max_errors = 3;
        config.max_command_line = 40;
        config.max_data_line = 20;
    }
    config.vrfy = flags & 8 != 0;
    let peer = SocketAddr::from(([192, 0, 2, 1], 2525));
    let mut session = Session::new(Arc::new(config), Some(peer));

    let read_size = usize::from(cut % 64) + 1;
    let mut reads = input.chunks(read_size);
    let mut decisions: usize = 0;
    let mut outcome = Outcome {
        output: Vec::new(),
        closed: false,
        polls: 0,
    };
    while outcome.polls < POLL_LIMIT {
        outcome.polls += 1;
        match session.poll() {
            Poll::Read => {
                outcome.output.extend(session.take_output());
                match reads.next() {
                    Some(bytes) => session.receive(bytes),
                    None => session.receive_eof(),
                }
            }
            Poll::Decide(_) => {
                decisions += 1;
                session.verdict(verdict(policy, decisions));
            }
            Poll::Notice(_) => {}
            Poll::StartTls { .. } => {
                session.tls_established(TlsInfo {
                    version: "TLS1.3".into(),
                    cipher: "FUZZ".into(),
                });
            }
            Poll::Close(_) => {
                outcome.closed = true;
                break;
            }
            Poll::Waiting => break,
        }
    }
    outcome.output.extend(session.take_output());
    outcome
}

/// Mostly acceptance, with refusals of every kind mixed in by `policy`.
fn verdict(policy: u8, n: usize) -> Verdict {
    let pick = (usize::from(policy).wrapping_mul(31).wrapping_add(n * 7)) % 16;
    let reply = match pick {
        0 => "550 5.1.1 no such user",
        1 => "451 4.3.0 try later",
        2 if policy & 0x80 != 0 => "421 4.3.2 going away",
        3 => "250 2.0.0 custom ok",
        4 => "354 not a verdict",
        _ => return Verdict::Accept,
    };
    Reply::parse(reply).map_or(Verdict::Accept, Verdict::Reply)
}

/// Every line of `output` is three digits, then `-`, a space or nothing,
/// then text without CR or LF, then CRLF.
pub fn well_formed(output: &[u8]) -> bool {
    let mut rest = output;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line = &rest[..end];
        let ok = line.len() >= 3
            && line[..3].iter().all(u8::is_ascii_digit)
            && matches!(line.get(3), None | Some(b' ' | b'-'))
            && !line.iter().any(|&b| b == b'\r' || b == b'\n');
        if !ok {
            return false;
        }
        rest = &rest[end + 2..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_break_the_session(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let outcome = exercise(&data);
            prop_assert!(outcome.closed, "the session must end: {outcome:?}");
            prop_assert!(well_formed(&outcome.output), "{}", String::from_utf8_lossy(&outcome.output));
        }

        /// Random input shaped like SMTP reaches the deeper states.
        #[test]
        fn random_dialogs_never_break_the_session(
            setup in proptest::collection::vec(any::<u8>(), 3),
            parts in proptest::collection::vec(prop_oneof![
                Just(b"EHLO c\r\n".to_vec()), Just(b"LHLO c\r\n".to_vec()), Just(b"HELO c\r\n".to_vec()),
                Just(b"MAIL FROM:<a@b.example> SIZE=10\r\n".to_vec()),
                Just(b"MAIL FROM:<> SMTPUTF8 BODY=8BITMIME\r\n".to_vec()),
                Just(b"RCPT TO:<c@d.example>\r\n".to_vec()), Just("RCPT TO:<δ@d.example>\r\n".as_bytes().to_vec()),
                Just(b"DATA\r\n".to_vec()), Just(b".\r\n".to_vec()), Just(b"\r\n.\r\n".to_vec()),
                Just(b"\n.\n".to_vec()), Just(b"BDAT 5\r\n".to_vec()), Just(b"BDAT 3 LAST\r\n".to_vec()),
                Just(b"STARTTLS\r\n".to_vec()), Just(b"RSET\r\n".to_vec()), Just(b"VRFY x\r\n".to_vec()),
                Just(b"NOOP\r\n".to_vec()), Just(b"HELP\r\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ], 0..40),
        ) {
            let mut data = setup;
            for part in parts {
                data.extend(part);
            }
            let outcome = exercise(&data);
            prop_assert!(outcome.closed, "the session must end: {outcome:?}");
            prop_assert!(well_formed(&outcome.output), "{}", String::from_utf8_lossy(&outcome.output));
        }
    }

    #[test]
    fn the_fuzz_target_accepts_a_plain_dialog_and_garbage() {
        session_never_panics(b"\0\x3f\0EHLO c\r\nQUIT\r\n");
        session_never_panics(b"\xff\x00\xff\r\r\n\n.\r\n");
        session_never_panics(b"");
    }

    #[test]
    fn well_formed_recognises_reply_lines() {
        let cases: [(&[u8], bool); 7] = [
            (b"", true),
            (b"250 OK\r\n", true),
            (b"250-a\r\n250 b\r\n", true),
            (b"250\r\n", true),
            (b"250 OK", false),
            (b"25 x\r\n", false),
            (b"250 a\rb\r\n", false),
        ];
        for (output, expected) in cases {
            assert_eq!(
                well_formed(output),
                expected,
                "{}",
                String::from_utf8_lossy(output)
            );
        }
    }

    #[test]
    fn a_plain_dialog_runs_to_quit() {
        let mut data = vec![0, 63, 0];
        data.extend_from_slice(
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
        );
        let outcome = exercise(&data);
        let text = String::from_utf8(outcome.output).unwrap();
        assert!(outcome.closed);
        assert!(
            text.starts_with("220 fuzz.test ESMTP Sluice ready\r\n"),
            "{text}"
        );
        // The fifth decision (the message) is policy 0's custom reply.
        assert!(
            text.ends_with("250 2.0.0 custom ok\r\n221 2.0.0 fuzz.test closing connection\r\n"),
            "{text}"
        );
    }
}
