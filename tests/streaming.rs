//! A large message for local Maildirs is written into their `tmp/` while
//! it arrives (src/server/streaming.rs): the same bytes as the spool path
//! would deliver, a file in `tmp/` before the final dot, nothing left
//! behind when the size limit is passed or the client goes away, the spool
//! taking over when a copy cannot be finished, and the daemon's memory
//! independent of the message's size.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Dir, SmtpClient, files_in, maildir_messages, wait_until};

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The spool's message files (temporary ones included).
fn spool_files(d: &Dir) -> Vec<PathBuf> {
    files_under(&d.home().join("spool").join("input"))
}

/// A message of about `bytes`, in CRLF lines, with dot-stuffing to undo
/// (a line that starts with a dot).
fn big_message(bytes: usize) -> Vec<u8> {
    let mut m =
        b"From: alice@example.org\r\nSubject: large\r\nMessage-ID: <large@example.org>\r\n\r\n"
            .to_vec();
    let mut n = 0;
    while m.len() < bytes {
        m.extend_from_slice(format!("line {n:07} {}\r\n", "y".repeat(60)).as_bytes());
        if n % 1000 == 0 {
            m.extend_from_slice(b"..a line that starts with a dot\r\n");
        }
        n += 1;
    }
    m
}

/// Opens a transaction for `rcpts` and sends DATA.
fn begin(addr: std::net::SocketAddr, rcpts: &[&str]) -> SmtpClient {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220, "{greeting}");
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    for to in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{to}>")).unwrap();
        assert_eq!(r.code(), 250, "{to}: {r}");
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    c
}

/// Sends a whole message; returns the final reply.
fn send(addr: std::net::SocketAddr, rcpts: &[&str], msg: &[u8]) -> smtp::Reply {
    let mut c = begin(addr, rcpts);
    c.write_raw(msg).unwrap();
    c.cmd(".").unwrap()
}

/// The body of a stored message (after its first blank line), byte for
/// byte.
fn body_of(stored: &[u8]) -> &[u8] {
    let at = memchr_blank(stored).expect("a blank line after the headers");
    &stored[at..]
}

fn memchr_blank(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// The only message in the Maildir `md`, which must be in `new/` under the
/// name the queue gives the first recipient of message `id`.
fn the_one_copy(md: &Path, id: &str) -> Vec<u8> {
    let mut got = maildir_messages(md);
    assert_eq!(got.len(), 1, "{md:?}");
    let (name, bytes) = got.remove(0);
    assert!(name.starts_with(&format!("new/{id}.0,S=")), "{name}");
    bytes
}

/// The largest file in `dir` (0 when empty).
fn largest(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_large_message_is_in_tmp_before_its_dot_and_as_the_spool_would_write_it() {
    let streamed = Dir::new();
    let spooled = Dir::new();
    let mut a = streamed.serve(&[]);
    // Held whole and spooled: the path a small message takes.
    let mut b = spooled.serve(&["direct_max_recipients=0", "smtp.stream_from=0"]);
    let rcpts = ["bob@localhost", "carol@localhost"];
    let msg = big_message(3 << 20);

    // Two thirds of it, then a look at bob's tmp/ before the rest.
    let mut c = begin(a.smtp, &rcpts);
    let cut = msg.len() * 2 / 3;
    c.write_raw(&msg[..cut]).unwrap();
    let tmp = streamed.maildir("localhost", "bob").join("tmp");
    assert!(
        wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20),
        "bob's copy is not being written while the message arrives"
    );
    assert!(files_in(&streamed.maildir("localhost", "bob").join("new")).is_empty());
    c.write_raw(&msg[cut..]).unwrap();
    let ra = c.cmd(".").unwrap();
    assert_eq!(ra.code(), 250, "{ra}");
    let _ = c.cmd("QUIT");
    let ida = ra.queued_id().expect("id").to_string();
    // Durable before the reply: in new/, nothing left in tmp/ nor spooled.
    for who in ["bob", "carol"] {
        let md = streamed.maildir("localhost", who);
        assert_eq!(files_in(&md.join("new")).len(), 1, "{who}");
        assert!(files_in(&md.join("tmp")).is_empty(), "{who}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(&streamed)
            .is_empty()),
        "{:?}",
        spool_files(&streamed)
    );
    let log = streamed.log("mainlog");
    let lines = common::log_lines_of(&log, &ida);
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].contains(" <= alice@example.org "), "{log}");
    assert!(lines[3].ends_with(" Completed"), "{log}");

    let rb = send(b.smtp, &rcpts, &msg);
    let idb = rb.queued_id().expect("id").to_string();
    common::wait_completed(&spooled, std::slice::from_ref(&idb));
    for who in ["bob", "carol"] {
        let da = maildir_messages(&streamed.maildir("localhost", who));
        let db = maildir_messages(&spooled.maildir("localhost", who));
        assert_eq!((da.len(), db.len()), (1, 1));
        assert_eq!(da[0].0.replace(&ida, "ID"), db[0].0.replace(&idb, "ID"));
        let (na, nb) = (
            common::normalised_copy(&da[0].1, &ida),
            common::normalised_copy(&db[0].1, &idb),
        );
        assert!(na == nb, "{who}'s copies differ");
        assert!(
            body_of(&da[0].1) == body_of(&db[0].1),
            "{who}'s bodies differ"
        );
        assert!(!da[0].1.contains(&b'\r'), "LF line ends only");
        assert!(na.contains("\n.a line that starts with a dot\n"));
    }
    // The same arrival line (but for the ID): the same size.
    assert_eq!(
        common::arrival_fields(&streamed, &ida),
        common::arrival_fields(&spooled, &idb)
    );
    assert!(a.stop(Duration::from_secs(20)).is_some_and(|s| s.success()));
    assert!(b.stop(Duration::from_secs(20)).is_some_and(|s| s.success()));
}

#[test]
fn passing_the_size_limit_removes_every_file_before_the_552() {
    let d = Dir::new();
    let daemon = d.serve(&["message_size_limit=\"3M\""]);
    let rcpts = ["bob@localhost", "carol@localhost"];
    let msg = big_message(5 << 20);
    let mut c = begin(daemon.smtp, &rcpts);
    c.write_raw(&msg[..2 << 20]).unwrap();
    let tmp = d.maildir("localhost", "bob").join("tmp");
    assert!(wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20));
    // Past the limit: the files go while the client is still sending.
    c.write_raw(&msg[2 << 20..]).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || files_in(&tmp).is_empty()
            && files_in(&d.maildir("localhost", "carol").join("tmp"))
                .is_empty()
            && spool_files(&d).is_empty()),
        "left: {:?} {:?}",
        files_in(&tmp),
        spool_files(&d)
    );
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 552, "{r}");
    assert_eq!(r.status().map(|s| s.to_string()).as_deref(), Some("5.3.4"));
    for who in ["bob", "carol"] {
        assert!(files_in(&d.maildir("localhost", who).join("new")).is_empty());
    }
    // The session goes on: a small message after it is delivered, and
    // nothing of the refused one with it.
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    let r = c.cmd("Subject: small\r\n\r\nsmall\r\n.").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let got = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(got.len(), 1);
    assert!(body_of(&got[0].1) == b"small\n");
    drop(daemon);
}

#[test]
fn a_client_gone_mid_message_leaves_no_file() {
    let d = Dir::new();
    let _daemon = d.serve(&[]);
    let msg = big_message(3 << 20);
    let mut c = begin(_daemon.smtp, &["bob@localhost"]);
    c.write_raw(&msg[..2 << 20]).unwrap();
    let tmp = d.maildir("localhost", "bob").join("tmp");
    assert!(wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20));
    drop(c);
    assert!(
        wait_until(Duration::from_secs(20), || files_in(&tmp).is_empty()
            && spool_files(&d).is_empty()),
        "left: {:?} {:?}",
        files_in(&tmp),
        spool_files(&d)
    );
    assert!(files_in(&d.maildir("localhost", "bob").join("new")).is_empty());
}

#[test]
fn a_copy_that_cannot_be_finished_sends_the_message_to_the_spool() {
    let msg = big_message(2 << 20);
    // Quota for 2.5 MB with 1 MB used: over at the real size.
    let quota = "2500000S\n1000000 1\n";

    // Two recipients, one over (defer): the spool delivers bob's copy and
    // keeps the other; nothing was published by the stream.
    let d = Dir::new();
    common::maildir_with_quota(&d.maildir("localhost", "full"), quota);
    let _daemon = d.serve(&[]);
    let mut c = begin(_daemon.smtp, &["bob@localhost", "full@localhost"]);
    c.write_raw(&msg[..msg.len() - 4096]).unwrap();
    // Both copies are being written (the stream ran) before the dot.
    for who in ["bob", "full"] {
        let tmp = d.maildir("localhost", who).join("tmp");
        assert!(wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20));
    }
    c.write_raw(&msg[msg.len() - 4096..]).unwrap();
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    common::wait_logged(&d, &format!("{id} == full@localhost"));
    let bob = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(bob.len(), 1);
    assert!(common::normalised_copy(&bob[0].1, &id).contains("\n.a line that starts with a dot\n"));
    let full = d.maildir("localhost", "full");
    assert!(files_in(&full.join("new")).is_empty());
    assert!(files_in(&full.join("tmp")).is_empty());
    let n = d.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "1");

    // One recipient, over_quota = "reject": 552 5.2.2 at the dot, nothing
    // written or spooled.
    let d = Dir::new();
    common::maildir_with_quota(&d.maildir("localhost", "full"), quota);
    let _daemon = d.serve(&["over_quota=\"reject\""]);
    let r = send(_daemon.smtp, &["full@localhost"], &msg);
    assert_eq!(r.code(), 552, "{r}");
    assert_eq!(r.status().map(|s| s.to_string()).as_deref(), Some("5.2.2"));
    let full = d.maildir("localhost", "full");
    assert!(files_in(&full.join("new")).is_empty());
    assert!(files_in(&full.join("tmp")).is_empty());
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(&d).is_empty()),
        "{:?}",
        spool_files(&d)
    );
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The daemon's peak memory after a small message: its own, with a
/// session's work done once.
fn warmed_peak_kib(daemon: &common::Daemon) -> u64 {
    let r = send(
        daemon.smtp,
        &["bob@localhost"],
        b"Subject: s\r\n\r\nsmall\r\n",
    );
    assert_eq!(r.code(), 250, "{r}");
    peak_kib(daemon.pid())
}

#[test]
fn a_large_message_costs_the_daemon_a_few_chunks_of_memory() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let before = warmed_peak_kib(&daemon);
    let msg = big_message(40 << 20);
    let mut c = begin(daemon.smtp, &["bob@localhost", "carol@localhost"]);
    for part in msg.chunks(1 << 20) {
        c.write_raw(part).unwrap();
    }
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let grown = peak_kib(daemon.pid()).saturating_sub(before);
    // Held whole, the message would cost 40 MiB and its LF copy as much
    // again; streamed, a few 256 KiB chunks per writer.
    assert!(
        grown < 16 << 10,
        "the daemon grew by {grown} KiB for a 40 MiB message"
    );
    assert_eq!(maildir_messages(&d.maildir("localhost", "carol")).len(), 1);
}

/// LMTP holds a message whole (each recipient gets its own reply once its
/// copy is durable), but once: its line ends are made LF in place, and the
/// thread that writes the copies takes it rather than a clone (three times
/// the message before).
#[test]
fn a_large_lmtp_message_is_held_once() {
    let d = Dir::new();
    let daemon = d.serve(&[r#"smtp.lmtp_listen=["127.0.0.1:0"]"#]);
    let before = warmed_peak_kib(&daemon);
    let size = 24 << 20;
    let msg = big_message(size);
    let (mut c, greeting) = SmtpClient::open(daemon.lmtp.expect("lmtp listener")).unwrap();
    assert_eq!(greeting.code(), 220, "{greeting}");
    assert_eq!(c.cmd("LHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    for to in ["carol@localhost", "dave@localhost"] {
        assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).unwrap().code(), 250);
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    for part in msg.chunks(1 << 20) {
        c.write_raw(part).unwrap();
    }
    for r in [c.cmd(".").unwrap(), c.reply().unwrap()] {
        assert_eq!(r.code(), 250, "{r}");
    }
    let grown = peak_kib(daemon.pid()).saturating_sub(before);
    let size_kib = (size >> 10) as u64;
    assert!(
        grown < size_kib * 3 / 2,
        "the daemon grew by {grown} KiB for a {size_kib} KiB LMTP message"
    );
    for who in ["carol", "dave"] {
        assert_eq!(maildir_messages(&d.maildir("localhost", who)).len(), 1);
    }
}

#[test]
fn bdat_chunks_are_streamed_as_data_is() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let msg = big_message(3 << 20);
    let r = send(daemon.smtp, &["bob@localhost"], &msg);
    assert_eq!(r.code(), 250, "{r}");
    let by_data = r.queued_id().expect("id").to_string();

    // The same content in BDAT chunks: undo the dot-stuffing DATA needed.
    let content = String::from_utf8(msg).unwrap().replace("\r\n..", "\r\n.");
    let (mut c, _) = SmtpClient::open(daemon.smtp).unwrap();
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RCPT TO:<carol@localhost>").unwrap().code(), 250);
    let bytes = content.as_bytes();
    let cut = bytes.len() / 2;
    for (part, last) in [(&bytes[..cut], false), (&bytes[cut..], true)] {
        let verb = if last { " LAST" } else { "" };
        c.write_raw(format!("BDAT {}{verb}\r\n", part.len()).as_bytes())
            .unwrap();
        c.write_raw(part).unwrap();
        let r = c.reply().unwrap();
        assert_eq!(r.code(), 250, "{r}");
        if last {
            let by_bdat = r.queued_id().expect("id").to_string();
            let bob = maildir_messages(&d.maildir("localhost", "bob"));
            let carol = maildir_messages(&d.maildir("localhost", "carol"));
            let strip = |m: &[u8], id: &str| {
                common::normalised_copy(m, id)
                    .lines()
                    // Each copy's own recipient and time.
                    .filter(|l| !l.starts_with("Delivered-To:") && !l.starts_with("\tfor "))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert!(body_of(&bob[0].1) == body_of(&carol[0].1));
            let (a, b) = (strip(&bob[0].1, &by_data), strip(&carol[0].1, &by_bdat));
            if a != b {
                let head = |t: &str| t.lines().take(12).collect::<Vec<_>>().join("\n");
                panic!("differ:\n{}\n---\n{}", head(&a), head(&b));
            }
        } else {
            // The first chunk is being written before the second comes.
            let tmp = d.maildir("localhost", "carol").join("tmp");
            assert!(wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20));
        }
    }
}

#[test]
fn a_kill_while_streaming_delivers_nothing_and_the_resend_once() {
    let d = Dir::new();
    let mut daemon = d.serve(&[]);
    let msg = big_message(3 << 20);
    let mut c = begin(daemon.smtp, &["bob@localhost"]);
    c.write_raw(&msg[..2 << 20]).unwrap();
    let bob = d.maildir("localhost", "bob");
    assert!(wait_until(Duration::from_secs(20), || largest(
        &bob.join("tmp")
    ) > 1 << 20));
    daemon.kill9();
    drop(c);
    // Left: a file in tmp/ (no reader looks there; removed by age) and the
    // draft's temporary files (spool garbage), no message.
    assert!(files_in(&bob.join("new")).is_empty());
    assert_eq!(files_in(&bob.join("tmp")).len(), 1);
    let n = d.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "0");
    // The client sends it again to the restarted daemon: delivered once.
    let daemon = d.serve(&[]);
    let r = send(daemon.smtp, &["bob@localhost"], &msg);
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    the_one_copy(&bob, &id);
}

#[test]
fn content_taken_in_a_reset_transaction_never_reaches_the_next_one() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let (mut c, _) = SmtpClient::open(daemon.smtp).unwrap();
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    // A BDAT chunk that starts a stream, then, in one write, RSET and a
    // whole small transaction for bob again.
    let first = big_message(2 << 20);
    c.write_raw(format!("BDAT {}\r\n", first.len()).as_bytes())
        .unwrap();
    c.write_raw(&first).unwrap();
    assert_eq!(c.reply().unwrap().code(), 250);
    let tmp = d.maildir("localhost", "bob").join("tmp");
    assert!(wait_until(Duration::from_secs(20), || largest(&tmp) > 1 << 20));
    let small = b"Subject: second\r\n\r\nonly this\r\n";
    let mut pipelined =
        b"RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\n".to_vec();
    pipelined.extend_from_slice(format!("BDAT {} LAST\r\n", small.len()).as_bytes());
    pipelined.extend_from_slice(small);
    c.write_raw(&pipelined).unwrap();
    for _ in 0..3 {
        assert_eq!(c.reply().unwrap().code(), 250);
    }
    let r = c.reply().unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let got = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(got.len(), 1);
    assert!(body_of(&got[0].1) == b"only this\n");
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(
        text.contains("Subject: second") && !text.contains("Subject: large"),
        "{text}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || files_in(&tmp).is_empty()
            && spool_files(&d).is_empty()),
        "left: {:?} {:?}",
        files_in(&tmp),
        spool_files(&d)
    );
}

/// Mary's mail goes to an mbox, the rest of localhost's to Maildirs.
fn mbox_and_maildirs() -> String {
    format!(
        "local_domains = [\"localhost\"]\n\n{}",
        common::MBOX_FOR_MARY
    )
}

/// The body as stored: LF line ends, dot-stuffing undone.
fn stored_body(msg: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(msg).replace("\r\n", "\n");
    let body = text.split_once("\n\n").expect("headers").1;
    body.replace("\n..", "\n.").into_bytes()
}

#[test]
fn a_large_message_for_an_mbox_is_spooled_as_it_arrives() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home().join("mbox")).unwrap();
    let (_, daemon) = d.serve_with_config(&mbox_and_maildirs());
    let before = warmed_peak_kib(&daemon);
    let msg = big_message(24 << 20);
    let mut c = begin(daemon.smtp, &["mary@localhost"]);
    c.write_raw(&msg[..16 << 20]).unwrap();
    // The body is going into the spool before the dot.
    assert!(wait_until(Duration::from_secs(20), || largest(
        &d.home().join("spool")
    ) > 8 << 20));
    c.write_raw(&msg[16 << 20..]).unwrap();
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let grown = peak_kib(daemon.pid()).saturating_sub(before);
    assert!(
        grown < 16 << 10,
        "the daemon grew by {grown} KiB for a 24 MiB message"
    );
    let id = r.queued_id().expect("id").to_string();
    common::wait_completed(&d, std::slice::from_ref(&id));
    let mbox = std::fs::read(d.path().join("home/mbox/mary")).unwrap();
    let body = stored_body(&msg);
    assert!(
        mbox.windows(body.len()).any(|w| w == body.as_slice()),
        "mary's mbox lacks the body"
    );
}

#[test]
fn a_large_message_for_a_maildir_and_an_mbox_is_split_as_it_arrives() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home().join("mbox")).unwrap();
    let (_, daemon) = d.serve_with_config(&mbox_and_maildirs());
    let msg = big_message(3 << 20);
    let mut c = begin(daemon.smtp, &["bob@localhost", "mary@localhost"]);
    c.write_raw(&msg[..2 << 20]).unwrap();
    let bob = d.maildir("localhost", "bob");
    assert!(wait_until(Duration::from_secs(20), || largest(
        &bob.join("tmp")
    ) > 1 << 20));
    c.write_raw(&msg[2 << 20..]).unwrap();
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    // Bob's copy is in at the 250, under the queue's name for it, made by
    // the stream (its line is written before the reply, right after the
    // `<=`), not by the queue.
    assert!(body_of(&the_one_copy(&bob, &id)) == stored_body(&msg).as_slice());
    let log = d.log("mainlog");
    let lines = common::log_lines_of(&log, &id);
    assert!(lines.len() >= 2 && lines[1].contains(" => bob"), "{log}");
    // Mary's comes from the spool; nobody gets it twice.
    common::wait_completed(&d, std::slice::from_ref(&id));
    let mbox = std::fs::read(d.path().join("home/mbox/mary")).unwrap();
    let body = stored_body(&msg);
    assert!(mbox.windows(body.len()).any(|w| w == body.as_slice()));
    let log = d.log("mainlog");
    let lines = common::log_lines_of(&log, &id);
    assert_eq!(
        lines.iter().filter(|l| l.contains(" => bob")).count(),
        1,
        "{log}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" => mary")).count(),
        1,
        "{log}"
    );
    assert_eq!(maildir_messages(&bob).len(), 1);
}

/// A spool file's text with what differs between two runs masked: the
/// message ID, the arrival time, and the digits of dates.
fn comparable_spool_file(text: &str, id: &str) -> String {
    text.replace(id, "ID")
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let timed = i == 3 || l.starts_with("-received_time_usec") || l.contains("+0000");
            if timed {
                l.chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_streamed_message_is_spooled_as_one_held_whole() {
    let msg = big_message(3 << 20);
    let mut spooled = Vec::new();
    for stream_from in ["1M", "0"] {
        let d = Dir::new();
        let daemon = d.serve(&[
            "queue_only=true",
            &format!("smtp.stream_from=\"{stream_from}\""),
        ]);
        let mut c = begin(daemon.smtp, &["bob@localhost", "carol@localhost"]);
        c.write_raw(&msg[..2 << 20]).unwrap();
        if stream_from != "0" {
            // The body is going into the spool before the dot.
            assert!(wait_until(Duration::from_secs(20), || largest(
                &d.home().join("spool")
            ) > 1 << 20));
        }
        c.write_raw(&msg[2 << 20..]).unwrap();
        let r = c.cmd(".").unwrap();
        assert_eq!(r.code(), 250, "{r}");
        let id = r.queued_id().expect("id").to_string();
        let file = |suffix: &str| {
            let path = spool_files(&d)
                .into_iter()
                .find(|p| p.to_string_lossy().ends_with(&format!("{id}-{suffix}")))
                .unwrap_or_else(|| panic!("no -{suffix} for {id}"));
            String::from_utf8(std::fs::read(path).unwrap()).unwrap()
        };
        spooled.push((
            comparable_spool_file(&file("H"), &id),
            file("D").replace(&id, "ID"),
            common::arrival_fields(&d, &id),
        ));
        drop(daemon);
    }
    let (streamed, held) = (&spooled[0], &spooled[1]);
    assert!(streamed.1 == held.1, "the -D files differ");
    assert_eq!(streamed.0, held.0, "the -H files differ");
    assert_eq!(streamed.2, held.2, "the <= lines differ");
}

#[test]
fn routing_changed_during_the_transfer_sends_the_message_to_the_spool() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(d.home().join("aliases"), "sales: bob@localhost\n").unwrap();
    let daemon = d.serve(&[]);
    let msg = big_message(3 << 20);
    let mut c = begin(daemon.smtp, &["sales@localhost"]);
    c.write_raw(&msg[..2 << 20]).unwrap();
    let bob = d.maildir("localhost", "bob");
    assert!(wait_until(Duration::from_secs(20), || largest(
        &bob.join("tmp")
    ) > 1 << 20));
    // Sales moves to carol while the message is on its way.
    std::fs::write(d.home().join("aliases"), "sales: carol@localhost\n").unwrap();
    c.write_raw(&msg[2 << 20..]).unwrap();
    let r = c.cmd(".").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    // Bob's copy was taken back; the spool delivers to carol.
    assert!(files_in(&bob.join("tmp")).is_empty());
    assert!(files_in(&bob.join("new")).is_empty());
    common::wait_completed(&d, std::slice::from_ref(&id));
    let carol = d.maildir("localhost", "carol");
    assert!(body_of(&the_one_copy(&carol, &id)) == stored_body(&msg).as_slice());
    let log = d.log("mainlog");
    assert_eq!(common::deliveries_logged(&log, &id), 1, "{log}");
}
