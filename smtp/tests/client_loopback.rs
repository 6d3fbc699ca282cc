//! The client session against the crate's own server session over a real
//! loopback TCP connection, each driven by a small blocking std::net loop:
//! the message must arrive byte for byte. The client loop here is also
//! the reference for a driver: the daemon's tokio loop does the same with
//! async reads, writes and timers, and rustls for `StartTls`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use smtp::client::{
    ClientConfig, ClientPoll, ClientSession, Envelope, EnvelopeRecipient, HostError, Outcome,
    TlsPolicy, TransactionResult,
};
use smtp::{Event, HelloVerb, Mode, Poll, Reply, Session, SessionConfig, Verdict};

/// How many octets of the stored message the client hands over at once:
/// odd, so pieces end in the middle of lines, of CRLF pairs, before dots.
const PIECE: usize = 1021;

/// One message as stored: envelope and body file contents.
struct Stored {
    envelope: Envelope,
    body: Vec<u8>,
}

/// A blocking client driver: runs `session` over `stream` until it
/// closes, sending `messages` in turn, then QUIT.
fn drive_client(
    mut session: ClientSession,
    mut stream: TcpStream,
    messages: Vec<Stored>,
) -> (Vec<TransactionResult>, Option<HostError>) {
    let mut messages = messages.into_iter();
    let mut body: Option<(Vec<u8>, usize)> = None;
    let mut results = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match session.poll() {
            ClientPoll::Read => {
                stream.write_all(&session.take_output()).expect("write");
                stream
                    .set_read_timeout(Some(session.timeout()))
                    .expect("timeout");
                match stream.read(&mut buf) {
                    Ok(0) => session.receive_eof(),
                    Ok(n) => session.receive(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        session.timed_out()
                    }
                    Err(_) => session.receive_eof(),
                }
            }
            ClientPoll::StartTls => panic!("TLS is not configured in this test"),
            ClientPoll::Ready => match messages.next() {
                Some(message) => {
                    body = Some((message.body, 0));
                    if session.send(message.envelope).is_err() {
                        panic!("send refused after Ready");
                    }
                }
                None => session.quit(),
            },
            ClientPoll::Body => {
                let (data, offset) = body.as_mut().expect("a body for the transaction");
                if *offset < data.len() {
                    let end = (*offset + PIECE).min(data.len());
                    session.write_body(&data[*offset..end]);
                    *offset = end;
                } else {
                    session.end_body();
                }
                stream.write_all(&session.take_output()).expect("write");
            }
            ClientPoll::Done(result) => results.push(result),
            ClientPoll::Close(error) => {
                stream.write_all(&session.take_output()).ok();
                return (results, error);
            }
        }
    }
}

/// A blocking server driver that accepts everything except EHLO when
/// `refuse_ehlo`, and passes on every message received.
fn serve(listener: TcpListener, mode: Mode, refuse_ehlo: bool, messages: mpsc::Sender<Vec<u8>>) {
    let (mut stream, peer) = listener.accept().expect("accept");
    let config = Arc::new(SessionConfig::new("mx.test", mode));
    let mut session = Session::new(config, Some(peer));
    let mut buf = [0u8; 4096];
    loop {
        match session.poll() {
            Poll::Read => {
                stream.write_all(&session.take_output()).expect("write");
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => session.receive_eof(),
                    Ok(n) => session.receive(&buf[..n]),
                }
            }
            Poll::Decide(Event::Helo {
                verb: HelloVerb::Ehlo,
                ..
            }) if refuse_ehlo => {
                let reply = Reply::parse("502 5.5.2 EHLO not here").expect("a reply");
                session.verdict(Verdict::Reply(reply));
            }
            Poll::Decide(Event::Message(message)) => {
                messages.send(message.data).expect("the test listens");
                let count = message.envelope.recipients.len();
                session.verdicts(vec![Verdict::Accept; count]);
            }
            Poll::Decide(_) => session.verdict(Verdict::Accept),
            Poll::Notice(notice) => panic!("the client did something refused: {notice:?}"),
            Poll::StartTls { .. } | Poll::Waiting => panic!("not in this test"),
            Poll::Close(_) => {
                stream.write_all(&session.take_output()).ok();
                return;
            }
        }
    }
}

/// The stored form of a message: LF line ends, one CRLF line, lines that
/// start with dots, no newline at the end; `lines` lines in all.
fn body(lines: usize) -> Vec<u8> {
    let mut out = b"Subject: loopback\n\n".to_vec();
    for i in 0..lines {
        match i % 5 {
            0 => out.extend_from_slice(b".\n"),
            1 => out.extend_from_slice(b"..leading dots\n"),
            2 => out.extend_from_slice(format!("line {i} ends in CRLF already\r\n").as_bytes()),
            3 => out.extend_from_slice("8-bit: caf\u{e9}\n".as_bytes()),
            _ => out.extend_from_slice(format!("plain line {i}\n").as_bytes()),
        }
    }
    out.extend_from_slice(b"no newline at the end");
    out
}

/// What the server must store: every line end CRLF, a CRLF at the end.
fn wire_content(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0u8;
    for &b in stored {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !stored.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn envelope(recipients: &[&str], body: &[u8]) -> Envelope {
    Envelope {
        from: "sender@client.example".into(),
        recipients: recipients
            .iter()
            .map(|r| EnvelopeRecipient::new(*r))
            .collect(),
        ret: None,
        envid: None,
        size: body.len() as u64,
        eight_bit: body.iter().any(|&b| b >= 0x80),
        smtputf8: false,
    }
}

/// Runs one connection: the server in a thread, the client here.
fn run(
    mode: Mode,
    refuse_ehlo: bool,
    messages: Vec<Stored>,
) -> (Vec<TransactionResult>, Option<HostError>, Vec<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || serve(listener, mode, refuse_ehlo, tx));
    let mut config = ClientConfig::new("client.test");
    config.lmtp = mode == Mode::Lmtp;
    config.tls = TlsPolicy::Never;
    let stream = TcpStream::connect(addr).expect("connect");
    let (results, error) = drive_client(ClientSession::new(Arc::new(config)), stream, messages);
    server.join().expect("the server thread");
    (results, error, rx.iter().collect())
}

fn delivered(result: &TransactionResult) -> bool {
    result
        .recipients
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Delivered(_)))
}

#[test]
fn messages_arrive_byte_exact_in_bdat_chunks() {
    let first = body(3000);
    let second = body(7);
    let messages = vec![
        Stored {
            envelope: envelope(&["a@mx.test", "b@mx.test"], &first),
            body: first.clone(),
        },
        Stored {
            envelope: envelope(&["c@mx.test"], &second),
            body: second.clone(),
        },
        Stored {
            envelope: envelope(&["d@mx.test"], b""),
            body: Vec::new(),
        },
    ];
    let (results, error, received) = run(Mode::Smtp, false, messages);
    assert_eq!(error, None);
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(delivered), "{results:?}");
    assert_eq!(received.len(), 3);
    assert!(received[0] == wire_content(&first), "first message differs");
    assert!(
        received[1] == wire_content(&second),
        "second message differs"
    );
    assert_eq!(received[2], b"");
}

#[test]
fn messages_arrive_byte_exact_with_data_after_helo() {
    let stored = body(500);
    let messages = vec![Stored {
        envelope: envelope(&["a@mx.test"], &stored),
        body: stored.clone(),
    }];
    let (results, error, received) = run(Mode::Smtp, true, messages);
    assert_eq!(error, None);
    assert!(delivered(&results[0]), "{results:?}");
    assert!(received[0] == wire_content(&stored), "message differs");
}

#[test]
fn lmtp_gives_each_recipient_its_reply() {
    let stored = body(40);
    let messages = vec![Stored {
        envelope: envelope(&["a@mx.test", "b@mx.test", "c@mx.test"], &stored),
        body: stored.clone(),
    }];
    let (results, error, received) = run(Mode::Lmtp, false, messages);
    assert_eq!(error, None);
    assert_eq!(results[0].recipients.len(), 3);
    assert!(delivered(&results[0]), "{results:?}");
    assert!(received[0] == wire_content(&stored), "message differs");
}
