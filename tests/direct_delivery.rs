//! Direct delivery (src/server/direct.rs): a message whose recipients are
//! all local Maildirs is in them, durably, before its `250`; anything else
//! goes through the spool as before. Which path a message took is read
//! from what only the spool path does (a queued message, a success report)
//! and from the committer's counters the daemon logs when it stops (the
//! direct path syncs one file per copy and nothing else).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Dir, SmtpClient, files_in, maildir_messages, wait_until};

/// Sends one message; returns the final reply.
fn send(addr: std::net::SocketAddr, from: &str, rcpts: &[&str], body: &str) -> smtp::Reply {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220, "{greeting}");
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).unwrap();
    assert_eq!(r.code(), 250, "{r}");
    for to in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{to}>")).unwrap();
        assert_eq!(r.code(), 250, "{to}: {r}");
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    let reply = c.cmd(&format!("{body}\r\n.")).unwrap();
    let _ = c.cmd("QUIT");
    reply
}

const BODY: &str = "From: alice@example.org\r\nSubject: both ways\r\nMessage-ID: <same@example.org>\r\n\r\nThe same bytes\r\nwhichever path.\r\n..dot-stuffed line\r\n";

/// The committer's counters from the line the daemon logs when it stops.
fn counters(d: &Dir) -> (u64, u64) {
    let log = d.log("mainlog");
    let line = log
        .lines()
        .rfind(|l| l.contains("commit counters:"))
        .unwrap_or_else(|| panic!("no counters in mainlog:\n{log}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    (field("jobs"), field("data_syncs"))
}

#[test]
fn a_local_message_is_in_its_maildirs_at_the_250_and_as_the_spool_would_write_it() {
    let direct = Dir::new();
    let spooled = Dir::new();
    let mut a = direct.serve(&[]);
    let mut b = spooled.serve(&["direct_max_recipients=0"]);
    let rcpts = ["bob@localhost", "carol@localhost"];
    let ra = send(a.smtp, "alice@example.org", &rcpts, BODY);
    assert_eq!(ra.code(), 250, "{ra}");
    let ida = ra.queued_id().expect("id").to_string();
    // Durable before the reply: nothing to wait for.
    for who in ["bob", "carol"] {
        assert_eq!(
            files_in(&direct.maildir("localhost", who).join("new")).len(),
            1,
            "{who}'s copy at the 250"
        );
    }
    let log = direct.log("mainlog");
    let lines = common::log_lines_of(&log, &ida);
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].contains(" <= alice@example.org "), "{log}");
    assert!(lines[1].contains(" => bob <bob@localhost> R="), "{log}");
    assert!(lines[2].contains(" => carol <carol@localhost> R="), "{log}");
    assert!(lines[3].ends_with(" Completed"), "{log}");

    let rb = send(b.smtp, "alice@example.org", &rcpts, BODY);
    let idb = rb.queued_id().expect("id").to_string();
    common::wait_completed(&spooled, std::slice::from_ref(&idb));
    for (k, who) in ["bob", "carol"].iter().enumerate() {
        let da = maildir_messages(&direct.maildir("localhost", who));
        let db = maildir_messages(&spooled.maildir("localhost", who));
        assert_eq!((da.len(), db.len()), (1, 1));
        // The same name (<ID>.<n>) and the same bytes.
        assert_eq!(da[0].0.replace(&ida, "ID"), db[0].0.replace(&idb, "ID"));
        assert!(
            da[0].0.starts_with(&format!("new/{ida}.{k},S=")),
            "{}",
            da[0].0
        );
        assert_eq!(
            common::normalised_copy(&da[0].1, &ida),
            common::normalised_copy(&db[0].1, &idb)
        );
        assert!(
            common::normalised_copy(&da[0].1, &ida).contains("\n.dot-stuffed line\n"),
            "{}",
            common::normalised_copy(&da[0].1, &ida)
        );
    }
    // The same arrival line (but for the ID).
    assert_eq!(
        common::arrival_fields(&direct, &ida),
        common::arrival_fields(&spooled, &idb)
    );

    assert!(a.stop(Duration::from_secs(20)).is_some_and(|s| s.success()));
    assert!(b.stop(Duration::from_secs(20)).is_some_and(|s| s.success()));
    // Direct: one job with both copies, two files synced. Spool: -D and
    // -H, then the copies.
    assert_eq!(counters(&direct), (1, 2));
    let (_, synced) = counters(&spooled);
    assert!(synced >= 4, "{synced}");
}

/// Mary's mail goes to an mbox, remote.test's to 127.0.0.61 on `port`,
/// the rest of localhost's to Maildirs; the test's client may relay.
fn mixed_config(port: u16) -> String {
    format!(
        r#"local_domains = ["localhost"]
relay_from_hosts = ["127.0.0.1"]

{routes}
[[router]]
name = "smarthost"
driver = "manualroute"
domains = ["remote.test"]
route_list = ["* 127.0.0.61::{port}"]
ignore_target_hosts = []
transport = "remote_smtp"

[[transport]]
name = "remote_smtp"
driver = "smtp"
"#,
        routes = common::MBOX_FOR_MARY
    )
}

#[test]
fn what_the_direct_path_does_not_take_goes_through_the_spool() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home().join("mbox")).unwrap();
    // No remote recipient here: nothing is sent to the port.
    let (conf, mut daemon) = d.serve_with_config(&mixed_config(25));
    // One Maildir and one mbox recipient: split, each copy once.
    let r = send(
        daemon.smtp,
        "alice@example.org",
        &["bob@localhost", "mary@localhost"],
        "Subject: mixed\r\n\r\nto a Maildir and an mbox\r\n",
    );
    let id = r.queued_id().expect("id").to_string();
    common::wait_completed(&d, std::slice::from_ref(&id));
    assert_eq!(maildir_messages(&d.maildir("localhost", "bob")).len(), 1);
    let mbox = std::fs::read_to_string(d.home().join("mbox/mary")).expect("mary's mbox");
    assert_eq!(
        mbox.matches("to a Maildir and an mbox").count(),
        1,
        "{mbox}"
    );
    let c = conf.to_str().unwrap();
    let q = d.run(&["--config", c, "-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "0");

    // A success report is made from the spool: NOTIFY=SUCCESS takes it
    // (DSN is offered to a loopback client only when configured, so ask
    // through -bs, a local submission, which always has it).
    let session = "EHLO me\r\nMAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost> NOTIFY=SUCCESS\r\nDATA\r\nSubject: tell me\r\n\r\nreport it\r\n.\r\nQUIT\r\n";
    let out = d.run(&["--config", c, "-bs"], session.as_bytes());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("250 2.0.0 OK id="),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            maildir_messages(&d.maildir("localhost", "alice"))
                .iter()
                .any(|(_, m)| String::from_utf8_lossy(m).contains("multipart/report"))
        }),
        "no success report for alice; mainlog:\n{}",
        d.log("mainlog")
    );
    assert!(
        daemon
            .stop(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );

    // queue_only: queued, not delivered.
    let q = Dir::new();
    let mut daemon = q.serve(&["queue_only=true"]);
    let r = send(
        daemon.smtp,
        "alice@example.org",
        &["bob@localhost"],
        "Subject: held\r\n\r\nheld\r\n",
    );
    assert_eq!(r.code(), 250, "{r}");
    assert!(maildir_messages(&q.maildir("localhost", "bob")).is_empty());
    let n = q.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "1");
    daemon.kill9();
}

/// A message for a Maildir, an mbox and a remote host is split: the
/// Maildir copy is in place at the `250` (written by the session, once),
/// the rest is spooled and delivered as before, and the queue shows the
/// Maildir recipient as delivered while the remote one waits.
#[test]
fn a_message_for_a_maildir_and_others_is_split() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home().join("mbox")).unwrap();
    // Nothing listens there: the remote recipient is deferred.
    let port = std::net::TcpListener::bind("127.0.0.61:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (conf, mut daemon) = d.serve_with_config(&mixed_config(port));
    let r = send(
        daemon.smtp,
        "alice@example.org",
        &["mary@localhost", "bob@localhost", "carol@remote.test"],
        "Subject: split\r\n\r\nto a Maildir, an mbox and a remote host\r\n",
    );
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    // Bob is recipient 1: his copy is there at the reply, by its name.
    let bob = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(bob.len(), 1, "bob's copy at the 250");
    assert!(
        bob[0].0.starts_with(&format!("new/{id}.1,S=")),
        "{}",
        bob[0].0
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            let log = d.log("mainlog");
            let lines = common::log_lines_of(&log, &id);
            lines.iter().any(|l| l.contains(" => mary"))
                && lines.iter().any(|l| l.contains(" == carol@remote.test"))
        }),
        "mary delivered and carol deferred; mainlog:\n{}",
        d.log("mainlog")
    );
    let c = conf.to_str().unwrap();
    let listed = |d: &Dir| {
        let q = d.run(&["--config", c, "-bp"], b"");
        String::from_utf8_lossy(&q.stdout).into_owned()
    };
    let q = listed(&d);
    assert!(q.contains(&id), "{q}");
    assert!(q.contains("        D bob@localhost\n"), "{q}");
    assert!(q.contains("        D mary@localhost\n"), "{q}");
    assert!(q.contains("          carol@remote.test\n"), "{q}");

    // A queue run delivers nobody again.
    assert!(d.run(&["--config", c, "-qff"], b"").status.success());
    assert_eq!(maildir_messages(&d.maildir("localhost", "bob")).len(), 1);
    let mbox = std::fs::read_to_string(d.home().join("mbox/mary")).expect("mary's mbox");
    assert_eq!(mbox.matches("to a Maildir, an mbox").count(), 1, "{mbox}");
    let log = d.log("mainlog");
    let lines = common::log_lines_of(&log, &id);
    assert!(lines[0].contains(" <= alice@example.org "), "{log}");
    assert!(
        lines[1].contains(" => bob <bob@localhost> R=local"),
        "{log}"
    );
    for who in [" => bob", " => mary"] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(who)).count(),
            1,
            "{who}: {log}"
        );
    }
    assert!(!lines.iter().any(|l| l.ends_with(" Completed")), "{log}");
    assert!(listed(&d).contains("        D bob@localhost\n"));
    daemon.kill9();
}

/// A Maildir whose quota the message passes at RCPT (it is under) but not
/// at its real size.
fn nearly_full(md: &Path) {
    // 2000 bytes allowed, 1900 used.
    common::maildir_with_quota(md, "2000S\n1900 1\n");
}

#[test]
fn over_quota_at_the_real_size() {
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(500));

    // One recipient, over_quota = "reject": 552 at the final dot, nothing
    // written, no report.
    let d = Dir::new();
    nearly_full(&d.maildir("localhost", "full"));
    let mut daemon = d.serve(&["over_quota=\"reject\""]);
    let r = send(daemon.smtp, "alice@localhost", &["full@localhost"], &big);
    assert_eq!(r.code(), 552, "{r}");
    assert_eq!(
        r.status().map(|s| s.to_string()).as_deref(),
        Some("5.2.2"),
        "{r}"
    );
    assert!(files_in(&d.maildir("localhost", "full").join("new")).is_empty());
    assert!(files_in(&d.maildir("localhost", "full").join("tmp")).is_empty());
    let n = d.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "0");
    assert!(maildir_messages(&d.maildir("localhost", "alice")).is_empty());
    daemon.kill9();

    // Two recipients, one over (defer, the default): nothing is published
    // by the direct path; the spool delivers the other and keeps the full
    // one for a retry.
    let d = Dir::new();
    nearly_full(&d.maildir("localhost", "full"));
    let mut daemon = d.serve(&[]);
    let r = send(
        daemon.smtp,
        "alice@localhost",
        &["bob@localhost", "full@localhost"],
        &big,
    );
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    common::wait_logged(&d, &format!("{id} == full@localhost"));
    assert_eq!(maildir_messages(&d.maildir("localhost", "bob")).len(), 1);
    assert!(files_in(&d.maildir("localhost", "full").join("new")).is_empty());
    let n = d.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "1");
    daemon.kill9();
}

/// About `bytes` of body in lines of 77 octets.
fn lines(c: char, bytes: usize) -> String {
    format!("{}\r\n", c.to_string().repeat(75)).repeat(bytes / 77 + 1)
}

#[test]
fn a_full_mailbox_filesystem_sends_the_message_to_the_spool() {
    let d = Dir::new();
    let mail = d.path().join("small");
    if !common::small_tmpfs(&mail, "64k") {
        return;
    }
    let _m = common::Mounted(mail.clone());
    // Fill it, leaving less than the message needs.
    std::fs::write(mail.join("filler"), vec![b'f'; 40 * 1024]).unwrap();
    let maildir = format!("mailbox.maildir=\"{}/{{local}}\"", mail.display());
    let mut daemon = d.serve(&[&maildir]);
    let big = format!(
        "Subject: too big for the disk\r\n\r\n{}\r\n",
        lines('y', 48 * 1024)
    );
    let r = send(daemon.smtp, "alice@example.org", &["bob@localhost"], &big);
    // Accepted into the spool (on another filesystem), whose delivery
    // then defers; nothing in new/, nothing left in tmp/.
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    assert!(
        wait_until(Duration::from_secs(20), || d
            .log("mainlog")
            .contains(&format!("{id} == bob@localhost"))),
        "{}",
        d.log("mainlog")
    );
    assert!(files_in(&mail.join("bob/new")).is_empty());
    assert!(files_in(&mail.join("bob/tmp")).is_empty());
    let n = d.run(&["-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "1");
    daemon.kill9();
}

#[test]
fn a_full_filesystem_for_both_answers_452() {
    let d = Dir::new();
    let home = d.home();
    if !common::small_tmpfs(&home, "256k") {
        return;
    }
    let _m = common::Mounted(home.clone());
    // The write path is under test here, not the check at MAIL.
    let mut daemon = d.serve(&["check_spool_space=0", "check_log_space=0"]);
    // The daemon's own files are there; fill what is left, then free a
    // little (less than the message needs).
    let filler = home.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[b'f'; 4096]).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(16 * 1024)).unwrap();
    }
    let big = format!(
        "Subject: no room anywhere\r\n\r\n{}\r\n",
        lines('z', 64 * 1024)
    );
    let r = send(daemon.smtp, "alice@example.org", &["bob@localhost"], &big);
    assert_eq!(r.code(), 452, "{r}");
    assert!(files_in(&d.maildir("localhost", "bob").join("new")).is_empty());
    daemon.kill9();
}

#[test]
fn a_maildir_moved_aside_between_two_messages_gets_nothing_more() {
    let d = Dir::new();
    let mut daemon = d.serve(&[]);
    let bob = d.maildir("localhost", "bob");
    let r = send(
        daemon.smtp,
        "alice@example.org",
        &["bob@localhost"],
        "Subject: one\r\n\r\nfirst\r\n",
    );
    assert_eq!(r.code(), 250, "{r}");
    // The admin moves the Maildir aside at once (well within the time a
    // checked Maildir is trusted).
    let aside = d.home().join("bob.aside");
    std::fs::rename(&bob, &aside).unwrap();
    let r = send(
        daemon.smtp,
        "alice@example.org",
        &["bob@localhost"],
        "Subject: two\r\n\r\nsecond\r\n",
    );
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    common::wait_completed(&d, std::slice::from_ref(&id));
    let old = maildir_messages(&aside);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(String::from_utf8_lossy(&old[0].1).contains("first"));
    assert!(files_in(&aside.join("tmp")).is_empty());
    let new = maildir_messages(&bob);
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(String::from_utf8_lossy(&new[0].1).contains("second"));
    daemon.kill9();
}
