//! The daemon against real SMTP clients: Python's smtplib (plain, STARTTLS
//! with a certificate made at test time, implicit TLS, several recipients,
//! a pipelined batch from a raw socket) and swaks. Python's `mailbox` then
//! reads the Maildirs: each message must be the exact bytes sent (LF line
//! ends, dot-unstuffed) under exactly one Received: line, and the main log
//! must tell its story in Exim's format.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Dir, TestCerts, after_stamp, crlf_to_lf, have, log_lines_of, python_maildir, size_field,
    split_received, wait_until,
};

/// One message a client sent.
#[derive(Debug)]
struct Sent {
    case: String,
    tls: bool,
    /// Recipients' local parts (all at localhost).
    rcpts: Vec<String>,
    /// The 250 reply to the end of data.
    reply: String,
    /// The message as handed to the client (CRLF, not dot-stuffed).
    message: Vec<u8>,
}

impl Sent {
    fn id(&self) -> String {
        let id = self
            .reply
            .split_once("id=")
            .unwrap_or_else(|| panic!("{}: no id in {:?}", self.case, self.reply))
            .1;
        id.split_whitespace().next().unwrap().to_string()
    }
}

const SMTPLIB: &str = r#"
import json, smtplib, socket, ssl, sys

host = "127.0.0.1"
port, sport, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
helo = "client.example"
out = []

def message(case, rcpts):
    long_line = b"x" * 900
    return (
        b"From: Alice <alice@example.org>\r\n"
        + b"To: " + b", ".join(r.encode() + b"@localhost" for r in rcpts) + b"\r\n"
        + b"Subject: " + case.encode() + b"\r\n"
        + b"Message-ID: <" + case.encode() + b"@example.org>\r\n"
        + b"\r\n"
        + b"Hello from " + case.encode() + b".\r\n"
        + b".leading dot\r\n"
        + b"..two dots\r\n"
        + b".\r\n"
        + b"caf\xc3\xa9 8-bit \xff\r\n"
        + long_line + b"\r\n"
        + b"\r\n"
        + b"last line\r\n"
    )

def record(case, tls, rcpts, code, reply, msg):
    if isinstance(reply, bytes):
        reply = reply.decode()
    out.append(dict(case=case, tls=tls, rcpts=rcpts, code=code, reply=reply, message=msg.hex()))

def transaction(s, case, tls, rcpts):
    msg = message(case, rcpts)
    code, _ = s.mail("alice@example.org", ["BODY=8BITMIME"])
    assert code == 250, code
    for r in rcpts:
        code, resp = s.rcpt(r + "@localhost")
        assert code == 250, (code, resp)
    code, resp = s.data(msg)
    record(case, tls, rcpts, code, resp, msg)

# Plain.
s = smtplib.SMTP(host, port, local_hostname=helo)
s.ehlo()
assert s.has_extn("starttls") and s.has_extn("pipelining") and s.has_extn("8bitmime")
transaction(s, "plain", False, ["bob"])
s.quit()

# STARTTLS, the certificate checked against the test CA and 127.0.0.1.
s = smtplib.SMTP(host, port, local_hostname=helo)
s.ehlo()
code, _ = s.starttls(context=ctx)
assert code == 220, code
s.ehlo()
assert not s.has_extn("starttls"), "STARTTLS offered again under TLS"
transaction(s, "starttls", True, ["bob"])
# A second message on the same connection.
transaction(s, "starttls-again", True, ["carol"])
s.quit()

# Implicit TLS (as on port 465).
s = smtplib.SMTP_SSL(host, sport, context=ctx, local_hostname=helo)
s.ehlo()
assert not s.has_extn("starttls")
transaction(s, "implicit-tls", True, ["bob"])
s.quit()

# sendmail() with several recipients; its DATA reply is kept.
s = smtplib.SMTP(host, port, local_hostname=helo)
replies = []
data = s.data
def keep(msg):
    r = data(msg)
    replies.append(r)
    return r
s.data = keep
rcpts = ["bob", "carol", "dave"]
msg = message("sendmail-many", rcpts)
refused = s.sendmail("alice@example.org", [r + "@localhost" for r in rcpts], msg)
assert refused == {}, refused
record("sendmail-many", False, rcpts, replies[0][0], replies[0][1], msg)
s.quit()

# A pipelined transaction from a raw socket: the commands in one write,
# then the data, the final dot and QUIT in another.
sock = socket.create_connection((host, port), timeout=30)
f = sock.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline()
        assert line.endswith(b"\r\n"), line
        lines.append(line[:-2].decode())
        if line[3:4] == b" ":
            return lines
assert reply()[0].startswith("220")
sock.sendall(b"EHLO " + helo.encode() + b"\r\nMAIL FROM:<alice@example.org>\r\n"
             b"RCPT TO:<bob@localhost>\r\nRCPT TO:<erin@localhost>\r\nDATA\r\n")
ehlo = reply()
assert "250-PIPELINING" in ehlo, ehlo
for expect in ("250", "250", "250", "354"):
    r = reply()
    assert r[0].startswith(expect), (expect, r)
msg = message("pipelined", ["bob", "erin"])
stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in msg.split(b"\r\n"))
sock.sendall(stuffed + b".\r\nQUIT\r\n")
done = reply()
bye = reply()
assert bye[0].startswith("221"), bye
record("pipelined", False, ["bob", "erin"], int(done[-1][:3]), done[-1][4:], msg)
sock.close()

print(json.dumps(out))
"#;

fn run_smtplib(daemon: &common::Daemon, certs: &TestCerts) -> Vec<Sent> {
    let out = common::python(
        SMTPLIB,
        &[
            &daemon.smtp.port().to_string(),
            &daemon.smtps.expect("smtps listener").port().to_string(),
            certs.ca_path.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON from python");
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["code"], 250, "{c}");
            Sent {
                case: c["case"].as_str().unwrap().to_string(),
                tls: c["tls"].as_bool().unwrap(),
                rcpts: c["rcpts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
                reply: c["reply"].as_str().unwrap().to_string(),
                message: common::unhex(c["message"].as_str().unwrap()),
            }
        })
        .collect()
}

/// Waits until every message is `Completed` in the main log.
fn wait_delivered(d: &Dir, ids: &[String]) {
    let ok = wait_until(Duration::from_secs(30), || {
        let log = d.log("mainlog");
        ids.iter().all(|id| {
            log_lines_of(&log, id)
                .iter()
                .any(|l| l.ends_with(" Completed"))
        })
    });
    assert!(
        ok,
        "not all of {ids:?} completed; mainlog:\n{}\npaniclog:\n{}",
        d.log("mainlog"),
        d.log("paniclog")
    );
}

/// Checks each recipient's copy of each message, read by Python's mailbox,
/// and the message's main-log lines.
fn check_delivered(d: &Dir, sent: &[Sent], helo: &str) {
    let mut boxes: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let log = d.log("mainlog");
    for s in sent {
        let id = s.id();
        let mut size = None;
        for rcpt in &s.rcpts {
            let md = d.maildir("localhost", rcpt);
            let msgs = boxes
                .entry(rcpt.clone())
                .or_insert_with(|| python_maildir(&md));
            let mine: Vec<_> = msgs
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{id}.")))
                .collect();
            assert_eq!(
                mine.len(),
                1,
                "{}: {rcpt} has {} copies",
                s.case,
                mine.len()
            );
            let (key, bytes) = mine[0];
            let (received, rest) =
                split_received(bytes).unwrap_or_else(|| panic!("{}: no Received: on top", s.case));
            let received = String::from_utf8_lossy(received);
            // The exact bytes sent, with LF line ends.
            assert!(
                rest == crlf_to_lf(&s.message).as_slice(),
                "{}: {rcpt} got\n{}\nwanted\n{}",
                s.case,
                String::from_utf8_lossy(rest),
                String::from_utf8_lossy(&crlf_to_lf(&s.message))
            );
            // Exactly one Received: header.
            let header_end = rest
                .windows(2)
                .position(|w| w == b"\n\n")
                .unwrap_or(rest.len());
            assert!(
                !String::from_utf8_lossy(&rest[..header_end])
                    .to_ascii_lowercase()
                    .contains("\nreceived:")
                    && !rest.starts_with(b"Received:"),
                "{}: a second Received:",
                s.case
            );
            assert!(
                received.starts_with(&format!("Received: from [127.0.0.1] (helo={helo})\n")),
                "{}: {received}",
                s.case
            );
            assert!(received.contains(&format!("\tid {id}")), "{received}");
            if s.tls {
                assert!(received.contains(" with esmtps  (TLS1."), "{received}");
                // The cipher suite's standard name, as OpenSSL prints it.
                assert!(received.contains(" tls TLS_"), "{received}");
            } else {
                assert!(received.contains(" with esmtp (Sluice "), "{received}");
            }
            // `for` names a single recipient only.
            assert_eq!(
                received.contains(&format!("\tfor {rcpt}@localhost;")),
                s.rcpts.len() == 1,
                "{received}"
            );
            // The Maildir name carries the size, and all copies are alike.
            let name_size = size_field(key).unwrap_or_else(|| panic!("no S= in {key}"));
            assert_eq!(name_size, bytes.len() as u64, "{key}");
            // S= in the log is the spooled size: the copy without the
            // Return-path line the transport adds on top.
            let spooled = common::without_return_path(bytes).len() as u64;
            assert_eq!(*size.get_or_insert(spooled), spooled);
        }

        // The main log, in Exim's format.
        let lines = log_lines_of(&log, &id);
        let body: Vec<&str> = lines
            .iter()
            .map(|l| {
                after_stamp(l)
                    .unwrap_or_else(|| panic!("bad time stamp: {l}"))
                    .strip_prefix(&format!("{id} "))
                    .unwrap()
            })
            .collect();
        let arrivals: Vec<_> = body.iter().filter(|l| l.starts_with("<= ")).collect();
        assert_eq!(arrivals.len(), 1, "{lines:?}");
        let arrival = arrivals[0];
        let proto = if s.tls {
            "P=esmtps X=TLS1."
        } else {
            "P=esmtp S="
        };
        let want = format!("<= alice@example.org H=({helo}) [127.0.0.1] {proto}");
        assert!(arrival.starts_with(&want), "{arrival}\nwanted {want}");
        if s.tls {
            let x = arrival.split(" X=").nth(1).unwrap();
            let x = x.split(' ').next().unwrap();
            let parts: Vec<&str> = x.split(':').collect();
            assert!(
                parts.len() == 3
                    && parts[1].starts_with("TLS_")
                    && ["128", "256"].contains(&parts[2]),
                "X={x}"
            );
        }
        assert!(
            arrival.contains(&format!(" S={} ", size.unwrap())),
            "S= is the delivered size {size:?}: {arrival}"
        );
        assert!(
            arrival.ends_with(&format!(" id={}@example.org", s.case)),
            "{arrival}"
        );
        let mut deliveries: Vec<String> = body
            .iter()
            .filter_map(|l| l.strip_prefix("=> "))
            .map(str::to_string)
            .collect();
        deliveries.sort();
        let mut want: Vec<String> = s
            .rcpts
            .iter()
            .map(|r| format!("{r} <{r}@localhost> R=virtual_mailbox T=maildir_delivery"))
            .collect();
        want.sort();
        assert_eq!(deliveries, want, "{lines:?}");
        assert_eq!(body.last(), Some(&"Completed"), "{lines:?}");
        assert!(body[0].starts_with("<= "), "{lines:?}");
        assert_eq!(body.len(), 2 + s.rcpts.len(), "{lines:?}");
    }
}

#[test]
fn python_smtplib_plain_starttls_implicit_tls_and_pipelining() {
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    let [c, k] = certs.sets();
    let daemon = d.serve(&[&c, &k, r#"smtp.tls_listen=["127.0.0.1:0"]"#]);
    let sent = run_smtplib(&daemon, &certs);
    let cases: Vec<&str> = sent.iter().map(|s| s.case.as_str()).collect();
    assert_eq!(
        cases,
        [
            "plain",
            "starttls",
            "starttls-again",
            "implicit-tls",
            "sendmail-many",
            "pipelined"
        ]
    );
    let ids: Vec<String> = sent.iter().map(Sent::id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "message IDs repeat: {ids:?}");
    wait_delivered(&d, &ids);
    check_delivered(&d, &sent, "client.example");
    // Nothing else arrived, and nothing is left in tmp/.
    let mut per_box: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sent {
        for r in &s.rcpts {
            *per_box.entry(r).or_default() += 1;
        }
    }
    for (rcpt, n) in per_box {
        let md = d.maildir("localhost", rcpt);
        assert_eq!(python_maildir(&md).len(), n, "{rcpt}");
        assert!(common::files_in(&md.join("tmp")).is_empty());
    }
    assert_eq!(d.log("paniclog"), "");
}

/// What swaks sent as message data: the lines it shows between the 354
/// and the final dot, dot-unstuffed, with CRLF.
fn swaks_data(transcript: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_data = false;
    for line in transcript.lines() {
        if !in_data {
            in_data = line.starts_with("<-  354") || line.starts_with("<~  354");
            continue;
        }
        let Some(text) = line
            .strip_prefix(" -> ")
            .or_else(|| line.strip_prefix(" ~> "))
            .or_else(|| (line == " ->" || line == " ~>").then_some(""))
        else {
            continue;
        };
        if text == "." {
            return out;
        }
        let text = text
            .strip_prefix('.')
            .filter(|_| text.starts_with(".."))
            .unwrap_or(text);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    panic!("no data in the swaks transcript:\n{transcript}");
}

#[test]
fn swaks_plain_and_starttls() {
    if !have("swaks") {
        return;
    }
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    let [c, k] = certs.sets();
    let daemon = d.serve(&[&c, &k]);
    let data = d.path().join("data.txt");
    std::fs::write(
        &data,
        "From: alice@example.org\nTo: frank@localhost\nSubject: swaks\nMessage-ID: <swaks@example.org>\n\n.leading dot\n..two dots\nplain line\n",
    )
    .unwrap();
    let server = format!("127.0.0.1:{}", daemon.smtp.port());
    let mut sent = Vec::new();
    for (case, tls) in [("swaks", false), ("swaks-tls", true)] {
        let mut cmd = std::process::Command::new("swaks");
        cmd.args([
            "--server",
            &server,
            "--helo",
            "swaks.example",
            "--from",
            "alice@example.org",
            "--to",
            "frank@localhost",
            "--data",
            data.to_str().unwrap(),
        ]);
        if tls {
            cmd.arg("-tls");
        }
        let out = cmd.output().expect("swaks");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            assert!(text.contains("=== TLS started"), "{text}");
        }
        let reply = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("<-  250 2.0.0 OK id=")
                    .or_else(|| l.strip_prefix("<~  250 2.0.0 OK id="))
            })
            .unwrap_or_else(|| panic!("no 250 id= in\n{text}"));
        let message = swaks_data(&text);
        assert!(message.starts_with(b"From: alice@example.org\r\n"));
        sent.push(Sent {
            case: case.to_string(),
            tls,
            rcpts: vec!["frank".into()],
            reply: format!("OK id={reply}"),
            message,
        });
    }
    let ids: Vec<String> = sent.iter().map(Sent::id).collect();
    wait_delivered(&d, &ids);
    check_swaks(&d, &sent);
}

/// As `check_delivered`, for swaks's messages (one Message-ID for both).
fn check_swaks(d: &Dir, sent: &[Sent]) {
    let msgs = python_maildir(&d.maildir("localhost", "frank"));
    assert_eq!(msgs.len(), sent.len());
    let log = d.log("mainlog");
    for s in sent {
        let id = s.id();
        let (key, bytes) = msgs
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{id}.0,")))
            .unwrap_or_else(|| panic!("{id} not delivered: {msgs:?}"));
        let (received, rest) = split_received(bytes).expect("Received: on top");
        assert_eq!(rest, crlf_to_lf(&s.message).as_slice(), "{}", s.case);
        let received = String::from_utf8_lossy(received);
        assert!(received.starts_with("Received: from [127.0.0.1] (helo=swaks.example)\n"));
        assert_eq!(
            s.tls,
            received.contains(" with esmtps  (TLS1."),
            "{received}"
        );
        assert_eq!(size_field(key), Some(bytes.len() as u64));
        let lines = log_lines_of(&log, &id);
        assert!(lines[0].contains(&format!(
            "{id} <= alice@example.org H=(swaks.example) [127.0.0.1] P=esmtp"
        )));
        assert!(lines.iter().any(|l| l.ends_with(&format!(
            "{id} => frank <frank@localhost> R=virtual_mailbox T=maildir_delivery"
        ))));
        assert!(lines.last().unwrap().ends_with(&format!("{id} Completed")));
    }
}
