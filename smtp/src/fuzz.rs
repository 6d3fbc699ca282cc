//! Entry points that run a whole session from arbitrary bytes, for fuzzers
//! and the property tests below. Whatever the input, the server session
//! must not panic, must stop, and must only ever write well-formed reply
//! lines; the client session must not panic, must stop, must give an
//! outcome for every recipient, and must only ever write CRLF lines (BDAT
//! chunks aside).
//!
//! The envelope grammar has entry points of its own, which reach paths and
//! parameters directly instead of through a dialog: whatever the bytes,
//! what parses must write back (path to text, parameters to a command's
//! tail) and parse again to the same value.
//!
//! A cargo-fuzz target depends on this crate and is one line:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| smtp::fuzz::session_never_panics(data));
//! fuzz_target!(|data: &[u8]| smtp::fuzz::client_never_panics(data));
//! fuzz_target!(|data: &[u8]| smtp::fuzz::address_never_panics(data));
//! fuzz_target!(|data: &[u8]| smtp::fuzz::esmtp_params_never_panics(data));
//! ```

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use super::address::{
    Address, DOMAIN_MAX, LOCAL_PART_MAX, PATH_MAX, PathError, PathKind, parse_path, relay_form,
};
use super::params::{BodyType, MailParams, RcptParams, parse_mail, parse_rcpt};

use super::client::{
    ClientConfig, ClientPoll, ClientSession, Credentials, Envelope, EnvelopeRecipient, Notify,
    TlsPolicy, xtext,
};
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

/// The client's fuzz target: runs [`exercise_client`] on `data` (what a
/// server sends) and panics if the session did not stop, lost a
/// recipient's outcome, or wrote something that is not CRLF lines.
pub fn client_never_panics(data: &[u8]) {
    let outcome = exercise_client(data);
    assert!(outcome.closed, "the client must end: {outcome:?}");
    assert!(
        outcome.complete,
        "every recipient must have an outcome: {outcome:?}"
    );
    assert!(
        crlf_lines(&outcome.output),
        "client output that is not CRLF lines: {}",
        String::from_utf8_lossy(&outcome.output)
    );
}

/// How a client run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutcome {
    /// Everything the client wrote.
    pub output: Vec<u8>,
    /// The session closed.
    pub closed: bool,
    /// Transactions that ended with an outcome.
    pub transactions: usize,
    /// Every transaction had an outcome for each of its recipients.
    pub complete: bool,
    /// Calls to [`ClientSession::poll`].
    pub polls: usize,
}

/// Envelopes a client run sends before QUIT.
const CLIENT_ENVELOPES: usize = 2;

/// Runs a client session against `data`. The first two octets choose the
/// setup: `data[0]` the configuration (bit 0 LMTP, bits 1-2 the TLS
/// policy, bit 3 credentials, bit 4 TLS verified, bit 5 an 8-bit UTF-8
/// message, bit 6 implicit TLS), `data[1]` how the rest is cut into reads.
/// The rest is what the server sends, then the connection is closed.
pub fn exercise_client(data: &[u8]) -> ClientOutcome {
    let (setup, input) = data.split_at(data.len().min(2));
    let byte = |i: usize| setup.get(i).copied().unwrap_or(0);
    let (flags, cut) = (byte(0), byte(1));
    let mut config = ClientConfig::new("fuzz.test");
    config.lmtp = flags & 1 != 0;
    config.tls = match (flags >> 1) & 3 {
        0 => TlsPolicy::Never,
        1 => TlsPolicy::Required,
        _ => TlsPolicy::IfOffered,
    };
    if flags & 8 != 0 {
        config.credentials = Some(Credentials {
            username: "user".into(),
            password: "password".into(),
        });
    }
    let verified = flags & 16 != 0;
    let tls_info = || TlsInfo {
        version: "TLS1.3".into(),
        cipher: "FUZZ".into(),
    };
    let mut session = ClientSession::new(Arc::new(config));
    if flags & 64 != 0 {
        session.tls_established(verified, tls_info());
    }
    let mut recipients: Vec<EnvelopeRecipient> = ["a@x.example", "b@x.example", "c@y.example"]
        .into_iter()
        .map(EnvelopeRecipient::new)
        .collect();
    recipients[1].notify = Some(Notify::NEVER);
    recipients[2].orcpt = Some("rfc822;c@y.example".into());
    let envelope = Envelope {
        from: "s@z.example".into(),
        recipients,
        ret: None,
        envid: Some("fuzz".into()),
        size: 40,
        eight_bit: flags & 32 != 0,
        smtputf8: flags & 32 != 0,
    };
    let body: &[u8] = b"Subject: x\n\n.\n..a\nend";

    let read_size = usize::from(cut % 64) + 1;
    let mut reads = input.chunks(read_size);
    let mut sent = 0;
    let mut pieces = 0;
    let mut outcome = ClientOutcome {
        output: Vec::new(),
        closed: false,
        transactions: 0,
        complete: true,
        polls: 0,
    };
    while outcome.polls < POLL_LIMIT {
        outcome.polls += 1;
        match session.poll() {
            ClientPoll::Read => {
                outcome.output.extend(session.take_output());
                match reads.next() {
                    Some(bytes) => session.receive(bytes),
                    None => session.receive_eof(),
                }
            }
            ClientPoll::StartTls => session.tls_established(verified, tls_info()),
            ClientPoll::Ready if sent < CLIENT_ENVELOPES => {
                sent += 1;
                pieces = 0;
                if session.send(envelope.clone()).is_err() {
                    break;
                }
            }
            ClientPoll::Ready => session.quit(),
            ClientPoll::Body => {
                match body.get(pieces * 7..) {
                    Some(rest) if !rest.is_empty() => {
                        session.write_body(&rest[..rest.len().min(7)]);
                    }
                    _ => session.end_body(),
                }
                pieces += 1;
            }
            ClientPoll::Done(result) => {
                outcome.transactions += 1;
                outcome.complete &= result.recipients.len() == envelope.recipients.len();
            }
            ClientPoll::Close(_) => {
                outcome.closed = true;
                break;
            }
        }
    }
    outcome.output.extend(session.take_output());
    outcome
}

/// `output` is empty or lines that each end in CRLF, with no bare LF,
/// but for the data of each BDAT chunk: the `n` octets after `BDAT n`
/// are the message's own and may end anywhere (RFC 3030 §2), so they are
/// skipped. (Fuzzing found a chunk ending in "Subject" followed by RSET,
/// which is right.) A chunk cut short by the end of the output is fine:
/// the session stopped there.
fn crlf_lines(output: &[u8]) -> bool {
    let mut rest = output;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line = &rest[..end];
        if line.contains(&b'\n') {
            return false;
        }
        rest = &rest[end + 2..];
        if let Some(size) = bdat_size(line) {
            rest = &rest[size.min(rest.len())..];
        }
    }
    true
}

/// The chunk size of a `BDAT n [LAST]` command line.
fn bdat_size(line: &[u8]) -> Option<usize> {
    let size = line.strip_prefix(b"BDAT ")?.split(|&b| b == b' ').next()?;
    std::str::from_utf8(size).ok()?.parse().ok()
}

/// The path parser's fuzz target. `data[0]` chooses the path (bit 0:
/// RCPT's forward-path, else MAIL's reverse-path); the rest is what
/// follows `MAIL FROM:` or `RCPT TO:`. Panics if the parser panics or if
/// a path it accepts
///
/// - is longer than the input, does not end with `>`, or breaks the
///   RFC 5321 length limits it enforces;
/// - as its address text alone does not parse to the same address
///   ([`Address::from_str`]), or in brackets to the same path without its
///   source route (unless the brackets make it longer than a path may
///   be).
pub fn address_never_panics(data: &[u8]) {
    let (setup, input) = data.split_at(data.len().min(1));
    let kind = if setup.first().is_some_and(|b| b & 1 != 0) {
        PathKind::Forward
    } else {
        PathKind::Reverse
    };
    if let Ok(text) = std::str::from_utf8(input)
        && let Ok(address) = Address::from_str(text)
    {
        check_address(&address, PathKind::Forward);
    }
    let Ok(path) = parse_path(input, kind) else {
        return;
    };
    assert!(
        path.len <= input.len() && input[..path.len].ends_with(b">"),
        "path length {} of {:?}",
        path.len,
        String::from_utf8_lossy(input)
    );
    assert!(path.len <= PATH_MAX, "a path of {} octets", path.len);
    match &path.address {
        Some(address) => check_address(address, kind),
        None => assert!(kind == PathKind::Reverse && input.starts_with(b"<>")),
    }
}

/// An accepted address keeps the limits and reads back as itself.
fn check_address(address: &Address, kind: PathKind) {
    let text = address.as_str();
    assert!(
        address.local_part_raw().len() <= LOCAL_PART_MAX && address.domain().len() <= DOMAIN_MAX,
        "{text:?} breaks a length limit"
    );
    // Each accessor must cope with whatever the parser let through.
    let _ = (
        address.local_part(),
        relay_form(address),
        address.is_ascii(),
    );
    assert_eq!(
        Address::from_str(text).as_ref(),
        Ok(address),
        "{text:?} does not read back"
    );
    let bracketed = format!("<{text}>");
    match parse_path(bracketed.as_bytes(), kind) {
        Ok(again) => {
            assert_eq!(again.address.as_ref(), Some(address), "{bracketed:?}");
            assert!(
                !again.source_route && again.len == bracketed.len(),
                "{bracketed:?}"
            );
        }
        // A mailbox alone may be longer than a path may (a 64-octet local
        // part and a 255-octet domain); only the path limit may refuse it.
        Err(PathError::TooLong(_)) if bracketed.len() > PATH_MAX => {}
        Err(e) => panic!("{bracketed:?} does not parse: {e}"),
    }
}

/// The ESMTP parameter parsers' fuzz target. `data[0]` chooses the
/// command and what the session offers (bit 0: RCPT, else MAIL; bit 1:
/// after EHLO, else after HELO; bit 2: DSN offered); the rest is what
/// follows the path. Panics if a parser panics or if accepted parameters,
/// written back as a client writes them (xtext encoded with the client's
/// encoder), do not parse to the same values.
pub fn esmtp_params_never_panics(data: &[u8]) {
    let (setup, input) = data.split_at(data.len().min(1));
    let flags = setup.first().copied().unwrap_or(0);
    let (rcpt, esmtp, dsn) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    if rcpt {
        if let Ok(params) = parse_rcpt(input, dsn) {
            let text = rcpt_params_text(&params);
            assert_eq!(parse_rcpt(text.as_bytes(), dsn), Ok(params), "{text:?}");
        }
    } else if let Ok(params) = parse_mail(input, esmtp, dsn) {
        let text = mail_params_text(&params);
        assert_eq!(
            parse_mail(text.as_bytes(), esmtp, dsn),
            Ok(params),
            "{text:?}"
        );
    }
}

/// MAIL parameters as a command's tail, each after a space.
fn mail_params_text(params: &MailParams) -> String {
    let mut text = String::new();
    if let Some(size) = params.size {
        text.push_str(&format!(" SIZE={size}"));
    }
    match params.body {
        Some(BodyType::SevenBit) => text.push_str(" BODY=7BIT"),
        Some(BodyType::EightBitMime) => text.push_str(" BODY=8BITMIME"),
        None => {}
    }
    if params.smtputf8 {
        text.push_str(" SMTPUTF8");
    }
    if let Some(ret) = params.ret {
        text.push_str(&format!(" RET={}", ret.as_str()));
    }
    if let Some(envid) = &params.envid {
        text.push_str(&format!(" ENVID={}", xtext(envid)));
    }
    text
}

/// RCPT parameters as a command's tail, each after a space.
fn rcpt_params_text(params: &RcptParams) -> String {
    let mut text = String::new();
    if let Some(notify) = params.notify {
        text.push_str(&format!(" NOTIFY={}", notify.value()));
    }
    if let Some(orcpt) = &params.orcpt {
        // The parser keeps the address type as sent and decodes the rest.
        let (kind, address) = orcpt.split_once(';').unwrap_or(("", orcpt));
        text.push_str(&format!(" ORCPT={kind};{}", xtext(address)));
    }
    text
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

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        #[test]
        fn random_server_bytes_never_break_the_client(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            client_never_panics(&data);
        }

        /// Random replies shaped like SMTP reach every state of the client.
        #[test]
        fn random_server_dialogs_never_break_the_client(
            setup in proptest::collection::vec(any::<u8>(), 2),
            parts in proptest::collection::vec(prop_oneof![
                Just(b"220 mx ESMTP\r\n".to_vec()),
                Just(b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-SIZE 100\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n".to_vec()),
                Just(b"250-mx\r\n250 STARTTLS\r\n".to_vec()),
                Just(b"250 2.0.0 ok\r\n".to_vec()), Just(b"250 ok\r\n".to_vec()),
                Just(b"354 go\r\n".to_vec()), Just(b"334 VXNlcm5hbWU6\r\n".to_vec()),
                Just(b"235 ok\r\n".to_vec()), Just(b"220 go ahead\r\n".to_vec()),
                Just(b"221 bye\r\n".to_vec()), Just(b"421 4.3.2 bye\r\n".to_vec()),
                Just(b"452 4.5.3 too many\r\n".to_vec()), Just(b"550 5.1.1 no\r\n".to_vec()),
                Just(b"451 4.3.0 later\r\n".to_vec()), Just(b"500 what\r\n".to_vec()),
                Just(b"250-a\r\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..20),
            ], 0..40),
        ) {
            let mut data = setup;
            for part in parts {
                data.extend(part);
            }
            client_never_panics(&data);
        }
    }

    #[test]
    fn crlf_lines_skips_bdat_chunks() {
        assert!(crlf_lines(b""));
        assert!(crlf_lines(b"EHLO x\r\nBDAT 7\r\nSubjectRSET\r\n"));
        assert!(crlf_lines(b"BDAT 9 LAST\r\na\nb"));
        assert!(!crlf_lines(b"EHLO x\nRSET\r\n"));
        assert!(!crlf_lines(b"RSET"));
        assert!(!crlf_lines(b"BDAT 1\r\na\nRSET\r\n"));
    }

    #[test]
    fn the_client_target_runs_a_plain_dialog_to_quit() {
        // One octet per read: a scripted server cannot answer early.
        let mut data = vec![0, 0];
        data.extend_from_slice(
            b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n\
              250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
        );
        let outcome = exercise_client(&data);
        assert!(outcome.closed && outcome.complete);
        assert_eq!(outcome.transactions, 2);
        let text = String::from_utf8(outcome.output).unwrap();
        assert!(text.ends_with("end\r\n.\r\nQUIT\r\n"), "{text}");
        client_never_panics(b"");
        client_never_panics(b"\xff\xff220 x\r\n");
    }
}
