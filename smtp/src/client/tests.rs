//! Scripted dialogs: what the server sends, what the client must write,
//! and what comes out.

use std::sync::Arc;

use super::*;

fn config() -> ClientConfig {
    ClientConfig::new("client.test")
}

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        from: "a@b.example".into(),
        recipients: recipients
            .iter()
            .map(|r| EnvelopeRecipient::new(*r))
            .collect(),
        ret: None,
        envid: None,
        size: 5,
        eight_bit: false,
        smtputf8: false,
    }
}

/// Feeds `server` and returns what the client wrote and what `poll`
/// returned at the end.
fn step(s: &mut ClientSession, server: &str) -> (String, ClientPoll) {
    s.receive(server.as_bytes());
    let poll = s.poll();
    (String::from_utf8(s.take_output()).unwrap(), poll)
}

#[test]
fn a_plain_transaction() {
    let mut s = ClientSession::new(Arc::new(config()));
    assert_eq!(s.poll(), ClientPoll::Read);
    let (out, poll) = step(&mut s, "220 mx ESMTP\r\n");
    assert_eq!(out, "EHLO client.test\r\n");
    assert_eq!(poll, ClientPoll::Read);
    let (out, poll) = step(&mut s, "250-mx\r\n250 PIPELINING\r\n");
    assert_eq!((out.as_str(), poll), ("", ClientPoll::Ready));
    s.send(envelope(&["c@d.example"])).unwrap();
    let (out, poll) = step(&mut s, "");
    assert_eq!(
        out,
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
    );
    assert_eq!(poll, ClientPoll::Read);
    let (_, poll) = step(&mut s, "250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(poll, ClientPoll::Body);
    s.write_body(b"hi\n.dot\n");
    s.end_body();
    let (out, poll) = step(&mut s, "");
    assert_eq!(out, "hi\r\n..dot\r\n.\r\n");
    assert_eq!(poll, ClientPoll::Read);
    let (_, poll) = step(&mut s, "250 2.0.0 OK id=1\r\n");
    let ClientPoll::Done(result) = poll else {
        panic!("{poll:?}")
    };
    assert!(result.recipients[0].outcome.is_delivered());
    assert_eq!(s.poll(), ClientPoll::Ready);
    s.quit();
    let (out, poll) = step(&mut s, "221 bye\r\n");
    assert_eq!(out, "QUIT\r\n");
    assert_eq!(poll, ClientPoll::Close(None));
}
