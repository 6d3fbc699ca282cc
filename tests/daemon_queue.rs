//! The daemon's life and its queue: started with Exim's flags
//! (`-bd -oX`), stopped with SIGTERM; `queue_only` keeps accepted mail
//! queued until a foreground queue run (`sluice queue-run`, `-q`); a
//! daemon delivers at start whatever an earlier one left queued; strict
//! durability delivers the same way.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Dir, SmtpClient, files_in, log_lines_of, maildir_messages, wait_until};

/// Sends one message to `rcpt@localhost`; returns its ID.
fn send(addr: SocketAddr, rcpt: &str, subject: &str) -> String {
    let (mut c, greeting) = SmtpClient::open(addr).unwrap();
    assert_eq!(greeting.code(), 220);
    assert_eq!(c.cmd("EHLO client.example").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{rcpt}@localhost>"))
            .unwrap()
            .code(),
        250
    );
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    c.write_raw(format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n").as_bytes())
        .unwrap();
    let ok = c.cmd(".").unwrap();
    assert_eq!(ok.code(), 250, "{ok}");
    assert_eq!(c.cmd("QUIT").unwrap().code(), 221);
    ok.queued_id()
        .map(str::to_owned)
        .expect("id in the 250 reply")
}

/// Queued messages: `-H` files in the spool.
fn queued(home: &Path) -> Vec<String> {
    let input = home.join("spool/input");
    let mut ids = Vec::new();
    for sub in files_in(&input) {
        for name in files_in(&input.join(&sub)) {
            if let Some(id) = name.strip_suffix("-H") {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort();
    ids
}

fn completed(d: &Dir, id: &str) -> bool {
    log_lines_of(&d.log("mainlog"), id)
        .last()
        .is_some_and(|l| l.ends_with(" Completed"))
}

#[test]
fn exim_flags_start_the_daemon_and_sigterm_stops_it() {
    let d = Dir::new();
    let mut daemon = d.serve_args(&["-bd", "-oX", "0"], &[]);
    assert_eq!(daemon.smtp.ip().to_string(), "127.0.0.1");
    let id = send(daemon.smtp, "bob", "via -bd");
    assert!(wait_until(Duration::from_secs(20), || completed(&d, &id)));
    let status = daemon
        .stop(Duration::from_secs(10))
        .expect("the daemon exits on SIGTERM");
    assert!(status.success(), "{status}");
    let log = d.log("mainlog");
    assert!(log.contains("sluice daemon started: pid="), "{log}");
    assert!(log.contains("sluice daemon stopping on signal"), "{log}");
    assert_eq!(maildir_messages(&d.maildir("localhost", "bob")).len(), 1);
    assert_eq!(d.log("paniclog"), "");
}

#[test]
fn queue_only_waits_for_a_queue_run() {
    let d = Dir::new();
    let home = d.home();
    let daemon = d.serve(&["queue_only=true"]);
    let first: Vec<String> = (0..3)
        .map(|i| send(daemon.smtp, "carol", &format!("queued {i}")))
        .collect();
    // Accepted, durable, and left alone.
    std::thread::sleep(Duration::from_millis(300));
    let mut want = first.clone();
    want.sort();
    assert_eq!(queued(&home), want);
    assert!(maildir_messages(&d.maildir("localhost", "carol")).is_empty());

    // The modern form.
    let run = d.run(&["queue-run"], b"");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(queued(&home).is_empty());
    assert_eq!(maildir_messages(&d.maildir("localhost", "carol")).len(), 3);
    for id in &first {
        assert!(completed(&d, id), "{id}");
    }

    // And Exim's -q.
    let second = send(daemon.smtp, "carol", "queued again");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(queued(&home), vec![second.clone()]);
    let run = d.run(&["-q"], b"");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(queued(&home).is_empty());
    assert!(completed(&d, &second));
    assert_eq!(maildir_messages(&d.maildir("localhost", "carol")).len(), 4);
}

#[test]
fn a_daemon_delivers_at_start_what_is_queued() {
    let d = Dir::new();
    let home = d.home();
    let mut first = d.serve(&["queue_only=true"]);
    let ids: Vec<String> = (0..3)
        .map(|i| send(first.smtp, "dave", &format!("left {i}")))
        .collect();
    first.kill9();
    assert_eq!(queued(&home).len(), 3);
    // A new daemon, strict durability this time: no client needed.
    let second = d.serve(&["durability=\"strict\""]);
    // (The spool entry goes first, then the Completed line.)
    assert!(
        wait_until(Duration::from_secs(20), || ids
            .iter()
            .all(|id| completed(&d, id))),
        "not delivered: {:?}\n{}",
        queued(&home),
        d.log("mainlog")
    );
    assert!(queued(&home).is_empty());
    // It also takes new mail as usual.
    let id = send(second.smtp, "dave", "fresh");
    assert!(wait_until(Duration::from_secs(20), || completed(&d, &id)));
    let msgs = maildir_messages(&d.maildir("localhost", "dave"));
    assert_eq!(msgs.len(), 4);
    for (name, bytes) in &msgs {
        assert_eq!(common::size_field(name), Some(bytes.len() as u64), "{name}");
    }
}
