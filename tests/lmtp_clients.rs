//! The daemon's LMTP listeners (TCP and a Unix socket) against Python's
//! `smtplib.LMTP`: one reply per accepted recipient after the data, in
//! RCPT order, with recipients refused at RCPT (a foreign domain, a full
//! mailbox) and one refused after the data (a mailbox this message would
//! overfill), under both `over_quota` policies.

mod common;

use common::{
    Dir, crlf_to_lf, log_lines_of, maildir_with_quota, python, python_maildir, split_received,
};

const LMTP: &str = r#"
import json, smtplib, sys

target, rcpts = sys.argv[1], sys.argv[2:]
if target.startswith("/"):
    s = smtplib.LMTP(target, local_hostname="mta.example")
else:
    host, port = target.rsplit(":", 1)
    s = smtplib.LMTP(host, int(port), local_hostname="mta.example")
code, _ = s.ehlo()
assert code == 250, code
assert s.does_esmtp and s.has_extn("pipelining"), s.esmtp_features
msg = (b"From: alice@example.org\r\nSubject: lmtp " + target.encode() + b"\r\n\r\n"
       + b".leading dot\r\n" + b"body " * 60 + b"\r\nend\r\n")
out = {"message": msg.hex(), "rcpt": [], "data": []}
code, _ = s.mail("alice@example.org")
assert code == 250, code
accepted = []
for r in rcpts:
    code, resp = s.rcpt(r)
    out["rcpt"].append([r, code, resp.decode()])
    if code == 250:
        accepted.append(r)
if accepted:
    # RFC 2033: after the final dot, one reply per accepted recipient.
    code, resp = s.data(msg)
    out["data"].append([accepted[0], code, resp.decode()])
    for r in accepted[1:]:
        code, resp = s.getreply()
        out["data"].append([r, code, resp.decode()])
code, _ = s.noop()
assert code == 250, "the session is in step after the replies"
s.quit()
print(json.dumps(out))
"#;

/// (recipient, code, text) triples from the script's JSON.
fn triples(v: &serde_json::Value) -> Vec<(String, u64, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t[0].as_str().unwrap().to_string(),
                t[1].as_u64().unwrap(),
                t[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Sends one message over LMTP to `target` and checks each reply.
/// `expect_rcpt`/`expect_data`: (recipient, code, enhanced status prefix).
fn exchange(
    target: &str,
    rcpts: &[&str],
    expect_rcpt: &[(&str, u64, &str)],
    expect_data: &[(&str, u64, &str)],
) -> Vec<u8> {
    let mut args = vec![target];
    args.extend_from_slice(rcpts);
    let out: serde_json::Value = serde_json::from_str(&python(LMTP, &args)).unwrap();
    let check = |got: Vec<(String, u64, String)>, want: &[(&str, u64, &str)], stage: &str| {
        assert_eq!(got.len(), want.len(), "{stage}: {got:?}");
        for ((r, code, text), (wr, wcode, wstatus)) in got.iter().zip(want) {
            assert_eq!(
                (r.as_str(), *code),
                (*wr, *wcode),
                "{target} {stage}: {text}"
            );
            assert!(
                text.starts_with(wstatus),
                "{target} {stage} {r}: {code} {text}, wanted {wstatus}"
            );
        }
    };
    check(triples(&out["rcpt"]), expect_rcpt, "RCPT");
    check(triples(&out["data"]), expect_data, "after DATA");
    common::unhex(out["message"].as_str().unwrap())
}

/// `over_quota` under test: (setting, code, enhanced status).
fn lmtp_round(policy: Option<(&str, u64, &str)>) {
    let d = Dir::new();
    let sock = d.path().join("lmtp.sock");
    let listen = format!(
        "smtp.lmtp_listen=[\"127.0.0.1:0\", \"unix:{}\"]",
        sock.display()
    );
    let mut sets = vec![listen.as_str()];
    let (full_code, full_status) = match policy {
        Some((set, code, status)) => {
            sets.push(set);
            (code, status)
        }
        None => (452, "4.2.2"),
    };
    // `full` is over its quota already; `tight` has room for an empty
    // message only, so it passes RCPT and fails at delivery.
    maildir_with_quota(&d.maildir("localhost", "full"), "10S\n100 1\n");
    maildir_with_quota(&d.maildir("localhost", "tight"), "1000S\n900 1\n");
    let daemon = d.serve(&sets);
    assert_eq!(daemon.lmtp_unix.as_deref(), Some(sock.as_path()));
    let tcp = daemon.lmtp.expect("LMTP TCP listener").to_string();
    let unix = sock.to_str().unwrap().to_string();

    let rcpts = [
        "alice@localhost",
        "nobody@remote.example",
        "full@localhost",
        "tight@localhost",
        "bob@localhost",
    ];
    let expect_rcpt = [
        ("alice@localhost", 250, "2.1.5"),
        ("nobody@remote.example", 550, "5.7.1"),
        ("full@localhost", full_code, full_status),
        ("tight@localhost", 250, "2.1.5"),
        ("bob@localhost", 250, "2.1.5"),
    ];
    let expect_data = [
        ("alice@localhost", 250, "2.0.0"),
        ("tight@localhost", full_code, full_status),
        ("bob@localhost", 250, "2.0.0"),
    ];
    let mut sent = Vec::new();
    for target in [&tcp, &unix] {
        sent.push(exchange(target, &rcpts, &expect_rcpt, &expect_data));
    }
    // Only accepted recipients: a single reply after the data.
    sent.push(exchange(
        &unix,
        &["carol@localhost"],
        &[("carol@localhost", 250, "2.1.5")],
        &[("carol@localhost", 250, "2.0.0")],
    ));

    // The replies came only once the deliveries were durable: the files
    // are there now, each the exact message under one Received: line.
    let wanted: Vec<Vec<u8>> = sent.iter().map(|m| crlf_to_lf(m)).collect();
    for (who, n) in [("alice", 2), ("bob", 2), ("carol", 1)] {
        let msgs = python_maildir(&d.maildir("localhost", who));
        assert_eq!(msgs.len(), n, "{who}");
        for (key, bytes) in &msgs {
            let (received, rest) =
                split_received(bytes).unwrap_or_else(|| panic!("{who} {key}: no Received:"));
            assert!(wanted.iter().any(|w| w == rest), "{who} {key}");
            let received = String::from_utf8_lossy(received);
            assert!(received.contains("helo=mta.example"), "{received}");
            assert_eq!(
                common::size_field(key),
                Some(bytes.len() as u64),
                "{who} {key}"
            );
        }
    }
    for who in ["full", "tight"] {
        assert!(
            python_maildir(&d.maildir("localhost", who)).is_empty(),
            "{who} got mail"
        );
    }
    assert!(!d.maildir("remote.example", "nobody").exists());
    // Nothing went through the queue.
    let queued = d.run(&["queue-run"], b"");
    assert!(queued.status.success());
    assert!(
        common::files_in(&d.home().join("spool/input"))
            .iter()
            .all(|sub| { common::files_in(&d.home().join("spool/input").join(sub)).is_empty() })
    );

    // The main log: each LMTP message arrives, is delivered to its
    // accepted recipients, and completes, in Exim's format.
    let log = d.log("mainlog");
    let ids: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(" <= alice@example.org ")
                && (l.contains(" H=(mta.example) [127.0.0.1] P=lmtp S=")
                    || l.contains(" U=local P=local-lmtp S="))
        })
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{log}");
    for (id, n) in ids.iter().zip([2, 2, 1]) {
        let lines = log_lines_of(&log, id);
        let deliveries = lines.iter().filter(|l| l.contains(" => ")).count();
        assert_eq!(deliveries, n, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| !l.contains(" => ") || !l.contains(" P=lmtp")),
            "P= on a delivery line is the return path in Exim's format: {lines:?}"
        );
        assert!(lines.last().unwrap().ends_with(" Completed"), "{lines:?}");
        // S= on the arrival is the size delivered.
        let who = if n == 1 { "carol" } else { "alice" };
        let (_, bytes) = python_maildir(&d.maildir("localhost", who))
            .into_iter()
            .find(|(k, _)| k.starts_with(&format!("{id}.")))
            .unwrap_or_else(|| panic!("{id} not in {who}'s Maildir"));
        assert!(
            lines[0].contains(&format!(" S={} ", bytes.len()))
                || lines[0].ends_with(&format!(" S={}", bytes.len())),
            "{lines:?}"
        );
    }
    // Refusals are in the reject log.
    let reject = d.log("rejectlog");
    for who in ["nobody@remote.example", "full@localhost", "tight@localhost"] {
        assert!(reject.contains(who), "{who} not in rejectlog:\n{reject}");
    }
}

#[test]
fn lmtp_over_tcp_and_unix_socket_with_quota_deferred() {
    lmtp_round(None);
}

#[test]
fn lmtp_over_tcp_and_unix_socket_with_quota_rejected() {
    lmtp_round(Some(("over_quota=\"reject\"", 552, "5.2.2")));
}
