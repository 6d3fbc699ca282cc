//! Scripted dialogs: what the server sends, what the client must write,
//! and what comes out.

use std::sync::Arc;

use super::*;
use crate::reply::{Reply, Status};

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
    // With PIPELINING the next envelope could go now; here none does.
    assert_eq!(poll, ClientPoll::Ready);
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

const EHLO_ALL: &str = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";
const EHLO_NONE: &str = "250 mx.test\r\n";

/// A session past EHLO with the `ehlo` reply, TLS never attempted.
fn greeted_with(mut config: ClientConfig, ehlo: &str) -> ClientSession {
    config.tls = TlsPolicy::Never;
    let mut s = ClientSession::new(Arc::new(config));
    let (out, _) = step(&mut s, "220 mx.test ESMTP\r\n");
    assert!(out.ends_with(" client.test\r\n"), "{out}");
    let (_, poll) = step(&mut s, ehlo);
    assert_eq!(poll, ClientPoll::Ready, "{ehlo}");
    s
}

fn greeted(ehlo: &str) -> ClientSession {
    greeted_with(config(), ehlo)
}

fn done(poll: ClientPoll) -> TransactionResult {
    match poll {
        ClientPoll::Done(result) => result,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn host_error(poll: ClientPoll) -> HostError {
    match poll {
        ClientPoll::Close(Some(error)) => error,
        other => panic!("expected a host error, got {other:?}"),
    }
}

/// Each recipient's outcome as `D 250`, `F 550`, `T 450` (deferred), `P`
/// (deferred, possibly delivered), `N 452` (not attempted), `L 5.3.4`
/// (failed here), `H` (deferred by a host error).
fn summary(result: &TransactionResult) -> Vec<String> {
    result
        .recipients
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Delivered(resp) => format!("D {}", resp.reply.code()),
            Outcome::Failed(Cause::Remote(resp)) => format!("F {}", resp.reply.code()),
            Outcome::Failed(Cause::Local(reply)) => format!("L {}", reply.status().unwrap()),
            Outcome::Failed(Cause::Host(_)) => "F host".into(),
            Outcome::Deferred {
                possibly_delivered: true,
                ..
            } => "P".into(),
            Outcome::Deferred {
                cause: Cause::Remote(resp),
                ..
            } => format!("T {}", resp.reply.code()),
            Outcome::Deferred {
                cause: Cause::Host(_),
                ..
            } => "H".into(),
            Outcome::Deferred { .. } => "T local".into(),
            Outcome::NotAttempted(resp) => format!("N {}", resp.reply.code()),
        })
        .collect()
}

/// Sends a message through a pipelining peer whose replies to MAIL, each
/// RCPT and DATA are `group`; returns what the client wrote after the
/// group and the poll.
fn pipelined(rcpts: &[&str], group: &str) -> (ClientSession, String, ClientPoll) {
    let mut s = greeted(EHLO_ALL);
    s.send(envelope(rcpts)).unwrap();
    let (out, poll) = step(&mut s, "");
    assert_eq!(poll, ClientPoll::Read);
    assert!(out.ends_with("DATA\r\n"), "{out}");
    let (out, poll) = step(&mut s, group);
    (s, out, poll)
}

#[test]
fn pipelined_group_with_a_mix_of_recipient_replies() {
    let (mut s, out, poll) = pipelined(
        &["a@x.example", "b@x.example", "c@x.example"],
        "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n450 4.2.0 later\r\n354 go\r\n",
    );
    assert_eq!((out.as_str(), poll), ("", ClientPoll::Body));
    s.write_body(b"x\n");
    s.end_body();
    let (_, poll) = step(&mut s, "250 2.0.0 OK\r\n");
    let result = done(poll);
    assert_eq!(summary(&result), ["D 250", "F 550", "T 450"]);
    let Outcome::Failed(cause) = &result.recipients[1].outcome else {
        panic!()
    };
    assert_eq!(
        cause.describe_command().as_deref(),
        Some("RCPT TO:<b@x.example>")
    );
    assert_eq!(
        cause.to_string(),
        "SMTP error from remote mail server after RCPT TO:<b@x.example>: \
         550 5.1.1 no such user"
    );
    // After a message, the next MAIL follows without RSET.
    assert_eq!(s.poll(), ClientPoll::Ready);
    s.send(envelope(&["d@x.example"])).unwrap();
    assert!(s.take_output().starts_with(b"MAIL FROM:"));
}

#[test]
fn the_group_is_one_write_with_the_parameters_offered() {
    let mut s = greeted(EHLO_ALL);
    let mut env = envelope(&["c@d.example", "e@f.example"]);
    env.eight_bit = true;
    env.smtputf8 = true;
    env.ret = Some(Ret::Headers);
    env.envid = Some("id+1".into());
    env.recipients[0].notify = Some(Notify {
        success: false,
        failure: true,
        delay: true,
    });
    env.recipients[0].orcpt = Some("rfc822;c@d.example".into());
    s.send(env).unwrap();
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        "MAIL FROM:<a@b.example> SIZE=5 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1\r\n\
         RCPT TO:<c@d.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;c@d.example\r\n\
         RCPT TO:<e@f.example>\r\nDATA\r\n"
    );
}

#[test]
fn without_pipelining_one_command_at_a_time() {
    let mut s = greeted(EHLO_NONE);
    let mut env = envelope(&["c@d.example", "e@f.example"]);
    // 8-bit mail goes unchanged, without BODY=, to a peer without 8BITMIME.
    env.eight_bit = true;
    env.ret = Some(Ret::Full);
    s.send(env).unwrap();
    let script = [
        ("", "MAIL FROM:<a@b.example>\r\n"),
        ("250 ok\r\n", "RCPT TO:<c@d.example>\r\n"),
        ("550 no\r\n", "RCPT TO:<e@f.example>\r\n"),
        ("250 ok\r\n", "DATA\r\n"),
    ];
    for (server, client) in script {
        let (out, poll) = step(&mut s, server);
        assert_eq!((out.as_str(), poll), (client, ClientPoll::Read), "{server}");
    }
    assert_eq!(s.timeout(), DATA_INIT_TIMEOUT);
    let (_, poll) = step(&mut s, "354 go\r\n");
    assert_eq!(poll, ClientPoll::Body);
    s.write_body(b"\xe9t\xe9");
    s.end_body();
    assert_eq!(s.take_output(), b"\xe9t\xe9\r\n.\r\n");
    assert_eq!(s.timeout(), FINAL_DOT_TIMEOUT);
    let result = done(step(&mut s, "250 ok\r\n").1);
    assert_eq!(summary(&result), ["F 550", "D 250"]);
    let Outcome::Delivered(resp) = &result.recipients[1].outcome else {
        panic!()
    };
    assert_eq!(resp.describe_command(), "end of data");
    let Outcome::Failed(cause) = &result.recipients[0].outcome else {
        panic!()
    };
    assert_eq!(
        cause.describe_command().as_deref(),
        Some("RCPT TO:<c@d.example>")
    );
}

#[test]
fn a_354_with_no_recipient_accepted_gets_a_lone_dot() {
    let (mut s, out, poll) = pipelined(
        &["a@x.example", "b@x.example"],
        "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n",
    );
    assert_eq!((out.as_str(), poll), (".\r\n", ClientPoll::Read));
    let (out, poll) = step(&mut s, "554 5.5.1 no valid recipients\r\n");
    assert_eq!(out, "RSET\r\n");
    assert_eq!(summary(&done(poll)), ["F 550", "F 550"]);
    assert_eq!(s.poll(), ClientPoll::Read);
    let (_, poll) = step(&mut s, "250 ok\r\n");
    assert_eq!(poll, ClientPoll::Ready);
}

#[test]
fn a_refused_mail_fails_or_defers_everyone_and_resets() {
    for (code, expected) in [("550 5.7.1 no", "F 550"), ("451 4.3.0 later", "T 451")] {
        let group = format!("{code}\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n");
        let (mut s, out, poll) = pipelined(&["a@x.example"], &group);
        assert_eq!(out, "RSET\r\n");
        let result = done(poll);
        assert_eq!(summary(&result), [expected]);
        let (Outcome::Failed(cause) | Outcome::Deferred { cause, .. }) =
            &result.recipients[0].outcome
        else {
            panic!()
        };
        assert_eq!(
            cause.describe_command().as_deref(),
            Some("pipelined MAIL FROM:<a@b.example> SIZE=5")
        );
        assert_eq!(step(&mut s, "250 ok\r\n").1, ClientPoll::Ready);
    }
}

#[test]
fn too_many_recipients_are_not_attempted() {
    let (mut s, _, poll) = pipelined(
        &["a@x.example", "b@x.example", "c@x.example"],
        "250 ok\r\n250 ok\r\n452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n354 go\r\n",
    );
    assert_eq!(poll, ClientPoll::Body);
    s.end_body();
    // The session could take another envelope, but the recipients put
    // off need this connection again: no other message goes behind.
    assert_eq!(s.poll(), ClientPoll::Ready);
    assert!(!s.can_send_next_behind());
    let result = done(step(&mut s, "250 ok\r\n").1);
    assert_eq!(summary(&result), ["D 250", "N 452", "N 452"]);

    // A 452 before any recipient was accepted is a deferral.
    let (_, out, poll) = pipelined(
        &["a@x.example"],
        "250 ok\r\n452 4.3.1 out of storage\r\n554 no valid recipients\r\n",
    );
    assert_eq!(out, "RSET\r\n");
    assert_eq!(summary(&done(poll)), ["T 452"]);
}

#[test]
fn refusals_of_data_and_of_the_message() {
    let (_, _, poll) = pipelined(&["a@x.example"], "250 ok\r\n250 ok\r\n451 4.3.0 later\r\n");
    assert_eq!(summary(&done(poll)), ["T 451"]);
    let (mut s, _, _) = pipelined(&["a@x.example"], "250 ok\r\n250 ok\r\n354 go\r\n");
    s.write_body(b"x");
    s.end_body();
    assert_eq!(s.take_output(), b"x\r\n.\r\n");
    let (out, poll) = step(&mut s, "554 5.7.1 spam\r\n");
    // The transaction is over after the end of data: no RSET.
    assert_eq!(out, "");
    assert_eq!(summary(&done(poll)), ["F 554"]);
    assert_eq!(s.poll(), ClientPoll::Ready);
}

#[test]
fn a_421_anywhere_ends_the_host_and_defers_the_rest() {
    let (mut s, out, poll) = pipelined(
        &["a@x.example", "b@x.example"],
        "250 ok\r\n550 no\r\n421 4.3.2 shutting down\r\n",
    );
    assert_eq!(out, "");
    assert_eq!(summary(&done(poll)), ["F 550", "H"]);
    let error = host_error(s.poll());
    assert!(error.is_temporary());
    assert_eq!(error.status(), Status::new(4, 3, 2));
    assert_eq!(
        error.to_string(),
        "SMTP error from remote mail server after RCPT TO:<b@x.example>: \
         421 4.3.2 shutting down"
    );
    // Closed for good: more input or calls change nothing.
    s.receive(b"250 ok\r\n");
    s.quit();
    assert!(matches!(s.poll(), ClientPoll::Close(Some(_))));
    assert!(s.take_output().is_empty());
}

#[test]
fn a_timeout_after_the_final_dot_may_have_delivered() {
    let (mut s, _, _) = pipelined(
        &["a@x.example", "b@x.example"],
        "250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n",
    );
    s.write_body(b"x\n");
    s.end_body();
    assert_eq!(s.poll(), ClientPoll::Ready);
    assert_eq!(s.timeout(), FINAL_DOT_TIMEOUT);
    s.timed_out();
    let result = done(s.poll());
    assert_eq!(summary(&result), ["P", "F 550"]);
    let Outcome::Deferred { cause, .. } = &result.recipients[0].outcome else {
        panic!()
    };
    assert_eq!(cause.to_string(), "SMTP timeout after end of data");
    assert_eq!(host_error(s.poll()).kind(), &HostErrorKind::Timeout);

    // A timeout before the end of data is an ordinary deferral.
    let mut s = greeted(EHLO_ALL);
    s.send(envelope(&["a@x.example"])).unwrap();
    s.receive(b"250 ok\r\n");
    assert_eq!(s.poll(), ClientPoll::Read);
    assert_eq!(s.timeout(), RCPT_TIMEOUT);
    s.timed_out();
    assert_eq!(summary(&done(s.poll())), ["H"]);
}

#[test]
fn the_connection_lost_after_the_final_dot_may_have_delivered() {
    let (mut s, _, _) = pipelined(&["a@x.example"], "250 ok\r\n250 ok\r\n354 go\r\n");
    s.end_body();
    s.receive_eof();
    assert_eq!(summary(&done(s.poll())), ["P"]);
    assert_eq!(host_error(s.poll()).kind(), &HostErrorKind::Closed);
}

#[test]
fn size_and_smtputf8_are_refused_locally() {
    let mut s = greeted(EHLO_ALL);
    let mut env = envelope(&["a@x.example", "b@x.example"]);
    env.size = 1001;
    s.send(env).unwrap();
    let result = done(s.poll());
    assert!(s.take_output().is_empty(), "nothing is sent");
    assert_eq!(summary(&result), ["L 5.3.4", "L 5.3.4"]);
    assert_eq!(s.poll(), ClientPoll::Ready);

    let mut s = greeted("250-mx.test\r\n250 SIZE 1000\r\n");
    let mut env = envelope(&["a@x.example"]);
    env.smtputf8 = true;
    s.send(env).unwrap();
    let result = done(s.poll());
    assert!(s.take_output().is_empty());
    assert_eq!(summary(&result), ["L 5.6.7"]);
    let Outcome::Failed(cause) = &result.recipients[0].outcome else {
        panic!()
    };
    assert_eq!(cause.reply().unwrap().code(), 553);

    // SIZE without a number sets no limit; a recipient that cannot be
    // written into a command fails alone.
    let mut s = greeted("250-mx.test\r\n250 SIZE\r\n");
    let mut env = envelope(&["a@x.example", "b@x.example\r\nRSET"]);
    env.size = u64::MAX;
    s.send(env).unwrap();
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        format!("MAIL FROM:<a@b.example> SIZE={}\r\n", u64::MAX)
    );
    assert_eq!(step(&mut s, "250 ok\r\n").0, "RCPT TO:<a@x.example>\r\n");
    assert_eq!(step(&mut s, "250 ok\r\n").0, "DATA\r\n");
    step(&mut s, "354 go\r\n");
    s.end_body();
    let result = done(step(&mut s, "250 ok\r\n").1);
    assert_eq!(summary(&result), ["D 250", "L 5.1.3"]);
}

#[test]
fn helo_after_ehlo_is_refused() {
    let mut s = ClientSession::new(Arc::new(config()));
    step(&mut s, "220 mx\r\n");
    let (out, _) = step(&mut s, "500 5.5.1 what?\r\n");
    assert_eq!(out, "HELO client.test\r\n");
    let (_, poll) = step(&mut s, "250 mx\r\n");
    assert_eq!(poll, ClientPoll::Ready);
    assert_eq!(s.capabilities(), Some(&Capabilities::default()));

    // LMTP has no fallback; a 4xx to EHLO is not a reason for HELO.
    for (lmtp, reply) in [(true, "500 what?\r\n"), (false, "450 later\r\n")] {
        let mut c = config();
        c.lmtp = lmtp;
        let mut s = ClientSession::new(Arc::new(c));
        let (out, _) = step(&mut s, "220 mx\r\n");
        assert_eq!(
            out,
            if lmtp {
                "LHLO client.test\r\n"
            } else {
                "EHLO client.test\r\n"
            }
        );
        let (out, poll) = step(&mut s, reply);
        assert_eq!(out, "QUIT\r\n");
        let error = host_error(poll);
        assert_eq!(error.is_temporary(), !lmtp);
        assert!(
            error
                .to_string()
                .contains(" after LHLO client.test: 500 what?")
                == lmtp
        );
    }
}

#[test]
fn a_refused_greeting_ends_the_dialog() {
    let mut s = ClientSession::new(Arc::new(config()));
    assert_eq!(s.timeout(), GREETING_TIMEOUT);
    let (out, poll) = step(&mut s, "554 5.7.1 go away\r\n");
    assert_eq!(out, "QUIT\r\n");
    let error = host_error(poll);
    assert!(!error.is_temporary());
    assert_eq!(
        error.to_string(),
        "SMTP error from remote mail server after initial connection: 554 5.7.1 go away"
    );
}

#[test]
fn starttls_then_ehlo_again_with_capabilities_forgotten() {
    let mut s = ClientSession::new(Arc::new(config()));
    step(&mut s, "220 mx\r\n");
    let (out, poll) = step(&mut s, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
    assert_eq!((out.as_str(), poll), ("STARTTLS\r\n", ClientPoll::Read));
    let (out, poll) = step(&mut s, "220 2.0.0 go ahead\r\n");
    assert_eq!((out.as_str(), poll), ("", ClientPoll::StartTls));
    assert_eq!(s.poll(), ClientPoll::StartTls);
    s.tls_established(false, tls_info());
    assert_eq!(s.capabilities(), None);
    let (out, poll) = step(&mut s, "");
    assert_eq!(
        (out.as_str(), poll),
        ("EHLO client.test\r\n", ClientPoll::Read)
    );
    let (_, poll) = step(&mut s, "250 mx\r\n");
    assert_eq!(poll, ClientPoll::Ready);
    assert!(!s.capabilities().unwrap().pipelining);
    // PIPELINING was offered in clear only: one command at a time now.
    s.send(envelope(&["a@x.example"])).unwrap();
    assert_eq!(s.take_output(), b"MAIL FROM:<a@b.example>\r\n");
}

fn tls_info() -> crate::TlsInfo {
    crate::TlsInfo {
        version: "TLS1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
    }
}

#[test]
fn bytes_with_the_220_to_starttls_end_the_dialog() {
    let mut s = ClientSession::new(Arc::new(config()));
    step(&mut s, "220 mx\r\n");
    step(&mut s, "250-mx\r\n250 STARTTLS\r\n");
    let (out, poll) = step(&mut s, "220 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    assert_eq!(out, "");
    let error = host_error(poll);
    assert!(matches!(error.kind(), HostErrorKind::Protocol(_)));
    assert_eq!(error.after().unwrap().kind, CommandKind::StartTls);
    assert!(error.to_string().contains("after STARTTLS"), "{error}");

    // Bytes that came after the 220 in a later read, before the handshake.
    let mut s = ClientSession::new(Arc::new(config()));
    step(&mut s, "220 mx\r\n");
    step(&mut s, "250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(step(&mut s, "220 go\r\n").1, ClientPoll::StartTls);
    s.receive(b"250 injected\r\n");
    s.tls_established(true, tls_info());
    assert!(matches!(
        host_error(s.poll()).kind(),
        HostErrorKind::Protocol(_)
    ));
}

#[test]
fn tls_required_but_not_offered_or_refused() {
    let mut c = config();
    c.tls = TlsPolicy::Required;
    let mut s = ClientSession::new(Arc::new(c.clone()));
    step(&mut s, "220 mx\r\n");
    let (out, poll) = step(&mut s, "250 mx\r\n");
    assert_eq!(out, "QUIT\r\n");
    let error = host_error(poll);
    assert_eq!(error.kind(), &HostErrorKind::TlsRequired(None));
    assert!(error.is_temporary());

    let mut s = ClientSession::new(Arc::new(c));
    step(&mut s, "220 mx\r\n");
    step(&mut s, "250-mx\r\n250 STARTTLS\r\n");
    let error = host_error(step(&mut s, "454 4.7.0 TLS not available\r\n").1);
    assert!(matches!(error.kind(), HostErrorKind::TlsRequired(Some(_))));

    // If offered: a refused STARTTLS leaves the dialog in clear.
    let mut s = ClientSession::new(Arc::new(config()));
    step(&mut s, "220 mx\r\n");
    step(&mut s, "250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(step(&mut s, "454 4.7.0 no\r\n").1, ClientPoll::Ready);
}

fn with_credentials() -> ClientConfig {
    let mut c = config();
    c.credentials = Some(Credentials {
        username: "user".into(),
        password: "secret".into(),
    });
    c
}

/// Past the EHLO after STARTTLS, with `verified` TLS and `ehlo` offered.
fn after_tls(
    config: ClientConfig,
    verified: bool,
    ehlo: &str,
) -> (ClientSession, String, ClientPoll) {
    let mut s = ClientSession::new(Arc::new(config));
    step(&mut s, "220 mx\r\n");
    step(&mut s, "250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
    step(&mut s, "220 go\r\n");
    s.tls_established(verified, tls_info());
    step(&mut s, "");
    let (out, poll) = step(&mut s, ehlo);
    (s, out, poll)
}

#[test]
fn auth_only_over_verified_tls() {
    let (mut s, out, poll) = after_tls(
        with_credentials(),
        true,
        "250-mx\r\n250 AUTH LOGIN PLAIN\r\n",
    );
    assert_eq!(out, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_eq!(poll, ClientPoll::Read);
    assert_eq!(step(&mut s, "235 2.7.0 ok\r\n").1, ClientPoll::Ready);

    let (mut s, out, _) = after_tls(with_credentials(), true, "250-mx\r\n250 AUTH LOGIN\r\n");
    assert_eq!(out, "AUTH LOGIN\r\n");
    assert_eq!(step(&mut s, "334 VXNlcm5hbWU6\r\n").0, "dXNlcg==\r\n");
    assert_eq!(step(&mut s, "334 UGFzc3dvcmQ6\r\n").0, "c2VjcmV0\r\n");
    assert_eq!(step(&mut s, "235 ok\r\n").1, ClientPoll::Ready);

    // Refused credentials are a permanent host error; no password in it.
    let (mut s, _, _) = after_tls(with_credentials(), true, "250-mx\r\n250 AUTH PLAIN\r\n");
    let error = host_error(step(&mut s, "535 5.7.8 bad credentials\r\n").1);
    assert!(!error.is_temporary());
    assert_eq!(
        error.to_string(),
        "SMTP error from remote mail server after AUTH PLAIN: 535 5.7.8 bad credentials"
    );

    for (verified, ehlo) in [
        (false, "250-mx\r\n250 AUTH PLAIN\r\n"),
        (true, "250 mx\r\n"),
        (true, "250-mx\r\n250 AUTH CRAM-MD5\r\n"),
    ] {
        let (_, out, poll) = after_tls(with_credentials(), verified, ehlo);
        assert_eq!(out, "QUIT\r\n", "{ehlo}");
        assert!(matches!(
            host_error(poll).kind(),
            HostErrorKind::AuthUnavailable(_)
        ));
    }

    // Never in clear, even when offered.
    let mut c = with_credentials();
    c.tls = TlsPolicy::Never;
    let mut s = ClientSession::new(Arc::new(c));
    step(&mut s, "220 mx\r\n");
    let (out, poll) = step(&mut s, "250-mx\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
    assert_eq!(out, "QUIT\r\n");
    assert!(matches!(
        host_error(poll).kind(),
        HostErrorKind::AuthUnavailable(_)
    ));
}

#[test]
fn lmtp_has_one_final_reply_per_accepted_recipient() {
    let mut c = config();
    c.lmtp = true;
    let mut s = greeted_with(c, "250-mx\r\n250 PIPELINING\r\n");
    s.send(envelope(&["a@x.example", "b@x.example", "c@x.example"]))
        .unwrap();
    s.take_output();
    let (_, poll) = step(&mut s, "250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n");
    assert_eq!(poll, ClientPoll::Body);
    s.write_body(b"x\n");
    s.end_body();
    let (_, poll) = step(&mut s, "250 2.0.0 a ok\r\n");
    assert_eq!(poll, ClientPoll::Ready);
    let result = done(step(&mut s, "452 4.2.2 c over quota\r\n").1);
    assert_eq!(summary(&result), ["D 250", "F 550", "T 452"]);
}

#[test]
fn bdat_chunks_are_framed_by_their_wire_size() {
    // Without PIPELINING: each chunk waits for its reply.
    let mut s = greeted("250-mx\r\n250 CHUNKING\r\n");
    s.send(envelope(&["a@x.example"])).unwrap();
    step(&mut s, "");
    let (_, poll) = step(&mut s, "250 ok\r\n");
    assert_eq!(poll, ClientPoll::Read);
    let (out, poll) = step(&mut s, "250 ok\r\n");
    assert_eq!((out.as_str(), poll), ("", ClientPoll::Body));
    s.write_body(b"a\n.b\n");
    s.write_body(b"");
    let (out, poll) = step(&mut s, "");
    assert_eq!(
        (out.as_str(), poll),
        ("BDAT 7\r\na\r\n.b\r\n", ClientPoll::Read)
    );
    assert_eq!(s.timeout(), DATA_BLOCK_TIMEOUT);
    let (_, poll) = step(&mut s, "250 2.0.0 7 octets\r\n");
    assert_eq!(poll, ClientPoll::Body);
    s.write_body(b"end");
    step(&mut s, "250 ok\r\n");
    s.end_body();
    let (out, _) = step(&mut s, "");
    assert_eq!(out, "BDAT 2 LAST\r\n\r\n");
    let result = done(step(&mut s, "250 2.0.0 OK\r\n").1);
    let Outcome::Delivered(resp) = &result.recipients[0].outcome else {
        panic!()
    };
    assert_eq!(resp.command.line, "BDAT 2 LAST");
    assert_eq!(resp.describe_command(), "end of data");

    // With PIPELINING: chunks go without waiting, and no BDAT at all
    // when no recipient was accepted.
    let ehlo = "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
    let mut s = greeted(ehlo);
    s.send(envelope(&["a@x.example"])).unwrap();
    assert_eq!(
        s.take_output(),
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<a@x.example>\r\n"
    );
    assert_eq!(step(&mut s, "250 ok\r\n250 ok\r\n").1, ClientPoll::Body);
    s.write_body(b"a\n");
    assert_eq!(s.poll(), ClientPoll::Body);
    s.write_body(b"b\n");
    s.end_body();
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        "BDAT 3\r\na\r\nBDAT 3\r\nb\r\nBDAT 0 LAST\r\n"
    );
    let result = done(step(&mut s, "250 ok\r\n250 ok\r\n250 ok\r\n").1);
    assert_eq!(summary(&result), ["D 250"]);

    // The last piece in the LAST chunk itself: one chunk, one reply.
    let mut s = greeted(ehlo);
    s.send(envelope(&["a@x.example"])).unwrap();
    s.take_output();
    assert_eq!(step(&mut s, "250 ok\r\n250 ok\r\n").1, ClientPoll::Body);
    s.end_body_with(b"a\n.b\n");
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        "BDAT 7 LAST\r\na\r\n.b\r\n"
    );
    let result = done(step(&mut s, "250 2.0.0 OK\r\n").1);
    assert_eq!(summary(&result), ["D 250"]);

    let mut s = greeted(ehlo);
    s.send(envelope(&["a@x.example"])).unwrap();
    s.take_output();
    let (out, poll) = step(&mut s, "250 ok\r\n550 no\r\n");
    assert_eq!(out, "RSET\r\n");
    assert_eq!(summary(&done(poll)), ["F 550"]);

    // A refused chunk ends the body; the rest is read, then RSET.
    let mut s = greeted(ehlo);
    s.send(envelope(&["a@x.example"])).unwrap();
    step(&mut s, "250 ok\r\n250 ok\r\n");
    s.write_body(b"a\n");
    s.write_body(b"b\n");
    s.take_output();
    let (out, poll) = step(&mut s, "552 5.3.4 too big\r\n");
    assert_eq!((out.as_str(), poll), ("", ClientPoll::Read));
    s.write_body(b"ignored");
    s.end_body();
    assert!(s.take_output().is_empty());
    let (out, poll) = step(&mut s, "503 5.5.1 no transaction\r\n");
    assert_eq!(out, "RSET\r\n");
    assert_eq!(summary(&done(poll)), ["F 552"]);
    // The same when the chunk still in flight was taken.
    let mut s = greeted(ehlo);
    s.send(envelope(&["a@x.example"])).unwrap();
    step(&mut s, "250 ok\r\n250 ok\r\n");
    s.write_body(b"a\n");
    s.write_body(b"b\n");
    s.take_output();
    assert_eq!(step(&mut s, "452 4.3.1 full\r\n").1, ClientPoll::Read);
    let (out, poll) = step(&mut s, "250 ok\r\n");
    assert_eq!(out, "RSET\r\n");
    assert_eq!(summary(&done(poll)), ["T 452"]);
}

/// Runs a fresh session on `server` (then the end of the connection) and
/// returns the host error it ends with.
fn dialog_error(server: &[u8]) -> HostError {
    let mut s = ClientSession::new(Arc::new(config()));
    s.receive(server);
    s.receive_eof();
    loop {
        match s.poll() {
            ClientPoll::Close(Some(error)) => return error,
            ClientPoll::Close(None) => panic!("closed without an error"),
            _ => {}
        }
    }
}

#[test]
fn what_is_not_a_reply_ends_the_dialog() {
    let long_line = format!("220 {}\r\n", "x".repeat(crate::reply::REPLY_LINE_MAX));
    let mut long_reply = String::from("220-mx\r\n");
    for _ in 0..20 {
        long_reply.push_str(&format!("220-{}\r\n", "y".repeat(4000)));
    }
    long_reply.push_str("220 mx\r\n");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"HTTP/1.1 400 Bad Request\r\n", "not an SMTP reply"),
        (b"\r\n", "not an SMTP reply"),
        (b"22 short\r\n", "not an SMTP reply"),
        (b"220-mx\r\n250 mixed\r\n", "changed its code"),
        (b"220-mx\r\n220-more", "in the middle of a reply"),
        (b"220-mx\r\n", "in the middle of a reply"),
        (b"220 mx", "in the middle of a reply"),
        (long_line.as_bytes(), "reply line of more than 4096 octets"),
        (long_reply.as_bytes(), "reply of more than 65536 octets"),
        // Data before the greeting, and a reply nobody asked for.
        (b"hello\r\n220 mx\r\n", "not an SMTP reply"),
        (b"220 mx\r\n250 early\r\n", "a reply when none was expected"),
        (b"\xff\xfe\r\n", "not an SMTP reply"),
    ];
    for (server, expected) in cases {
        let error = dialog_error(server);
        assert!(
            matches!(error.kind(), HostErrorKind::Protocol(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains(expected), "{error} / {expected}");
        assert!(error.is_temporary());
    }
    // A line without end that is already too long is refused at once.
    let mut s = ClientSession::new(Arc::new(config()));
    s.receive(&vec![b'2'; 5000]);
    assert!(matches!(s.poll(), ClientPoll::Close(Some(_))));
    // A long but acceptable reply is fine.
    let mut s = ClientSession::new(Arc::new(config()));
    let fine = format!("220 {}\r\n", "x".repeat(4000));
    assert_eq!(step(&mut s, &fine).1, ClientPoll::Read);
}

#[test]
fn unexpected_bytes_while_idle_end_the_dialog() {
    let mut s = greeted(EHLO_ALL);
    s.receive(b"421 4.4.2 idle timeout\r\n");
    let error = host_error(s.poll());
    assert!(matches!(error.kind(), HostErrorKind::Protocol(_)));
}

#[test]
fn the_peer_closing_while_waiting_is_a_host_error() {
    let mut s = greeted(EHLO_ALL);
    s.send(envelope(&["a@x.example"])).unwrap();
    s.receive_eof();
    assert_eq!(summary(&done(s.poll())), ["H"]);
    let error = host_error(s.poll());
    assert_eq!(error.kind(), &HostErrorKind::Closed);
    assert_eq!(
        error.to_string(),
        "Remote host closed connection in response to pipelined MAIL FROM:<a@b.example> SIZE=5"
    );
}

#[test]
fn quit_waits_for_221_or_the_end() {
    for end in ["221 bye\r\n", ""] {
        let mut s = greeted(EHLO_NONE);
        s.quit();
        assert_eq!(step(&mut s, "").0, "QUIT\r\n");
        if end.is_empty() {
            s.receive_eof();
        }
        assert_eq!(step(&mut s, end).1, ClientPoll::Close(None));
    }
    // Quitting in the middle of a transaction defers its recipients.
    let mut s = greeted(EHLO_ALL);
    s.send(envelope(&["a@x.example"])).unwrap();
    s.quit();
    assert_eq!(summary(&done(s.poll())), ["T local"]);
    assert_eq!(s.poll(), ClientPoll::Read);
    assert!(s.take_output().ends_with(b"QUIT\r\n"));
}

#[test]
fn send_gives_the_envelope_back_when_not_ready() {
    let mut s = ClientSession::new(Arc::new(config()));
    let env = envelope(&["a@x.example"]);
    assert_eq!(s.send(env.clone()), Err(env));
}

#[test]
fn timeouts_follow_the_phase() {
    let mut c = config();
    c.timeouts.rcpt = std::time::Duration::from_secs(7);
    let mut s = greeted_with(c, EHLO_NONE);
    s.send(envelope(&["a@x.example"])).unwrap();
    assert_eq!(s.timeout(), MAIL_TIMEOUT);
    step(&mut s, "250 ok\r\n");
    assert_eq!(s.timeout(), std::time::Duration::from_secs(7));
}

#[test]
fn log_text_escapes_and_caps() {
    let reply = Reply::parse("550 5.1.1 a\nb").unwrap();
    assert_eq!(log_text(&reply), "550-5.1.1 a\\n550 5.1.1 b");
    let long = Reply::plain(550, "x".repeat(3000));
    let text = log_text(&long);
    assert_eq!(text.len(), LOG_TEXT_MAX);
    assert!(text.ends_with("..."));
    let command = Command {
        kind: CommandKind::Rcpt,
        line: "RCPT TO:<a\r\n\\b>".into(),
        pipelined: false,
    };
    assert_eq!(command.describe(), "RCPT TO:<a\\r\\n\\\\b>");
}

#[test]
fn capabilities_survive_odd_lines() {
    let reply = Reply::parse(
        "250 mx\nPIPELINING\nSIZE abc\nauth plain login\n8BITMIME\nCHUNKING\nSTARTTLS\nDSN\nSMTPUTF8\nENHANCEDSTATUSCODES\nX-UNKNOWN 1",
    )
    .unwrap();
    let caps = Capabilities::from_reply(&reply);
    assert_eq!(
        caps,
        Capabilities {
            pipelining: true,
            size: caps.size,
            eight_bit_mime: true,
            smtputf8: true,
            chunking: true,
            starttls: true,
            auth: true,
            auth_plain: true,
            auth_login: true,
            dsn: true,
            enhanced_status_codes: true,
        }
    );
    let sized = Capabilities::from_reply(&Reply::parse("250 mx\nSIZE 100").unwrap());
    assert_eq!(sized.size, Some(100));
    assert!(sized.too_big(101) && !sized.too_big(100));
}

#[test]
fn the_next_envelope_goes_behind_the_final_dot() {
    let (mut s, _, _) = pipelined(&["a@x.example"], "250 ok\r\n250 ok\r\n354 go\r\n");
    assert!(!s.can_send_next_behind(), "not before the end of data");
    s.end_body();
    assert_eq!(s.poll(), ClientPoll::Ready);
    assert!(s.can_send_next_behind());
    s.send(envelope(&["b@x.example"])).unwrap();
    // Refused here in full: its result waits for the first one's.
    let mut big = envelope(&["c@x.example"]);
    big.size = 5000;
    assert_eq!(s.poll(), ClientPoll::Read);
    assert!(s.send(big.clone()).is_err(), "not while MAIL is out");
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        ".\r\nMAIL FROM:<a@b.example> SIZE=5\r\nRCPT TO:<b@x.example>\r\nDATA\r\n"
    );
    s.receive(b"250 2.0.0 first\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    let first = done(s.poll());
    assert_eq!(first.recipients[0].address, "a@x.example");
    assert_eq!(summary(&first), ["D 250"]);
    assert_eq!(s.poll(), ClientPoll::Body);
    s.end_body();
    assert_eq!(s.poll(), ClientPoll::Ready);
    s.send(big).unwrap();
    assert_eq!(s.poll(), ClientPoll::Ready);
    s.quit();
    assert_eq!(s.take_output(), b".\r\nQUIT\r\n");
    assert_eq!(s.poll(), ClientPoll::Read);
    s.receive(b"250 2.0.0 second\r\n221 bye\r\n");
    let second = done(s.poll());
    assert_eq!(second.recipients[0].address, "b@x.example");
    assert_eq!(summary(&second), ["D 250"]);
    let third = done(s.poll());
    assert_eq!(summary(&third), ["L 5.3.4"]);
    assert_eq!(s.poll(), ClientPoll::Close(None));
}

#[test]
fn quit_behind_the_final_dot_still_waits_for_its_reply() {
    let (mut s, _, _) = pipelined(&["a@x.example"], "250 ok\r\n250 ok\r\n354 go\r\n");
    s.end_body();
    s.quit();
    s.take_output();
    // The connection ends before the reply to the dot.
    s.receive_eof();
    assert_eq!(summary(&done(s.poll())), ["P"]);
    assert_eq!(host_error(s.poll()).kind(), &HostErrorKind::Closed);
}

#[test]
fn without_pipelining_the_next_envelope_waits_for_the_reply() {
    let mut s = greeted(EHLO_NONE);
    s.send(envelope(&["a@x.example"])).unwrap();
    step(&mut s, "250 ok\r\n");
    step(&mut s, "250 ok\r\n");
    step(&mut s, "354 go\r\n");
    s.end_body();
    assert_eq!(s.poll(), ClientPoll::Read);
    let env = envelope(&["b@x.example"]);
    assert_eq!(s.send(env.clone()), Err(env));
    assert_eq!(summary(&done(step(&mut s, "250 ok\r\n").1)), ["D 250"]);
    assert_eq!(s.poll(), ClientPoll::Ready);
}

#[test]
fn implicit_tls_authenticates_without_starttls() {
    let mut c = with_credentials();
    c.implicit_tls = true;
    c.tls = TlsPolicy::Required;
    let mut s = ClientSession::new(Arc::new(c.clone()));
    s.tls_established(true, tls_info());
    step(&mut s, "220 mx\r\n");
    let (out, _) = step(&mut s, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    assert!(out.starts_with("AUTH PLAIN "), "{out}");
    assert_eq!(s.tls().map(|t| t.version.as_str()), Some("TLS1.3"));

    // Not reported as established: no STARTTLS, and no AUTH either.
    let mut s = ClientSession::new(Arc::new(c));
    step(&mut s, "220 mx\r\n");
    let (out, poll) = step(&mut s, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");
    assert_eq!(out, "QUIT\r\n");
    assert!(matches!(
        host_error(poll).kind(),
        HostErrorKind::AuthUnavailable(_)
    ));
}

#[test]
fn a_non_ascii_address_needs_smtputf8() {
    let mut s = greeted(EHLO_NONE);
    s.send(envelope(&["\u{3b4}@x.example"])).unwrap();
    assert_eq!(summary(&done(s.poll())), ["L 5.6.7"]);
    assert!(s.take_output().is_empty());

    let mut s = greeted(EHLO_ALL);
    s.send(envelope(&["\u{3b4}@x.example"])).unwrap();
    let out = String::from_utf8(s.take_output()).unwrap();
    assert!(
        out.starts_with("MAIL FROM:<a@b.example> SIZE=5 SMTPUTF8\r\n"),
        "{out}"
    );
}

#[test]
fn statuses_of_host_errors_and_causes() {
    let mut s = ClientSession::new(Arc::new(config()));
    // A 421 greeting: no QUIT to a peer that is leaving.
    let (out, poll) = step(&mut s, "421 mx busy\r\n");
    assert_eq!(out, "");
    let error = host_error(poll);
    assert_eq!(error.status(), Status::new(4, 0, 0));
    assert_eq!(error.reply().map(Reply::code), Some(421));

    let cases = [
        (HostErrorKind::Timeout, "4.4.2"),
        (HostErrorKind::Closed, "4.4.2"),
        (HostErrorKind::Protocol("x".into()), "4.5.0"),
        (HostErrorKind::TlsRequired(None), "4.7.10"),
        (HostErrorKind::AuthUnavailable("x".into()), "4.7.0"),
    ];
    for (kind, status) in cases {
        let error = HostError::new(kind, None);
        assert_eq!(error.status().to_string(), status);
        assert!(error.is_temporary());
        assert_eq!(Cause::Host(error).status().to_string(), status);
    }
    let local = Cause::Local(crate::reply::over_peer_size(10, 5));
    assert_eq!(local.status().to_string(), "5.3.4");
    assert_eq!(local.describe_command(), None);
}

#[test]
fn replies_that_make_no_sense_defer() {
    // 250 to DATA in a pipelined group, 354 to a RCPT.
    let (_, _, poll) = pipelined(
        &["a@x.example", "b@x.example"],
        "250 ok\r\n250 ok\r\n354 what\r\n250 ok\r\n",
    );
    assert_eq!(summary(&done(poll)), ["T 250", "T 354"]);
}

#[test]
fn a_timeout_while_writing_the_body_names_data() {
    let mut s = greeted(EHLO_NONE);
    s.send(envelope(&["a@x.example"])).unwrap();
    step(&mut s, "250 ok\r\n");
    step(&mut s, "250 ok\r\n");
    assert_eq!(step(&mut s, "354 go\r\n").1, ClientPoll::Body);
    assert_eq!(s.timeout(), DATA_BLOCK_TIMEOUT);
    s.write_body(b"part");
    s.timed_out();
    let result = done(s.poll());
    let Outcome::Deferred {
        cause,
        possibly_delivered: false,
    } = &result.recipients[0].outcome
    else {
        panic!("{result:?}")
    };
    assert_eq!(cause.to_string(), "SMTP timeout after DATA");
}
