//! Stopping the daemon with SIGTERM: no new connection, 421 to a session
//! between transactions, a message being sent is received, delivered and
//! answered first, then the daemon exits 0 within `shutdown_timeout`.

mod common;

use std::time::{Duration, Instant};

use common::{Dir, SmtpClient, maildir_messages};

fn sigterm(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
}

/// A session that has sent DATA and had its 354.
fn in_data(addr: std::net::SocketAddr) -> SmtpClient {
    let (mut c, _) = SmtpClient::open(addr).expect("connect");
    assert_eq!(c.cmd("EHLO busy.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    c
}

#[test]
fn sigterm_lets_a_message_in_transfer_finish_and_refuses_the_rest() {
    let d = Dir::new();
    let mut daemon = d.serve(&["shutdown_timeout=\"20s\""]);

    // A client between transactions, and one in the middle of DATA.
    let (mut idle, _) = SmtpClient::open(daemon.smtp).expect("connect");
    assert_eq!(idle.cmd("EHLO idle.test").unwrap().code(), 250);
    let mut busy = in_data(daemon.smtp);
    busy.write_raw(b"Subject: in flight\r\n\r\nthe first half\r\n")
        .unwrap();

    let stopped_at = Instant::now();
    sigterm(daemon.pid());

    // The idle session is told at once.
    idle.set_read_timeout(Duration::from_secs(10));
    let bye = idle.reply().expect("a 421 for the idle session");
    assert_eq!(bye.code(), 421, "{bye}");
    assert_eq!(
        bye.status().map(|s| s.to_string()).as_deref(),
        Some("4.3.2"),
        "{bye}"
    );
    // No new connection is taken.
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(daemon.smtp).is_err()
        }),
        "the daemon still accepts connections after SIGTERM"
    );

    // The message in transfer is finished, delivered and answered.
    std::thread::sleep(Duration::from_millis(300));
    let done = busy
        .cmd("and the second half\r\n.")
        .expect("the final reply");
    assert_eq!(done.code(), 250, "{done}");
    let id = done.queued_id().expect("id").to_string();
    // Then the session is closed with 421.
    let after = busy.cmd("NOOP");
    assert!(
        after.as_ref().map_or(true, |r| r.code() == 421),
        "{after:?}"
    );

    let status = daemon
        .stop(Duration::from_secs(25))
        .expect("the daemon exits by itself");
    assert!(status.success(), "{status:?}: {}", daemon.stderr_text());
    assert!(stopped_at.elapsed() < Duration::from_secs(20));
    let copies = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(copies.len(), 1, "{copies:?}");
    let text = String::from_utf8_lossy(&copies[0].1);
    assert!(
        text.contains("the first half") && text.contains("the second half"),
        "{text}"
    );
    let log = d.log("mainlog");
    assert!(log.contains("sluice daemon stopping on signal"), "{log}");
    assert_eq!(common::deliveries_logged(&log, &id), 1, "{log}");
}

#[test]
fn a_client_that_never_finishes_does_not_hold_the_stop_past_shutdown_timeout() {
    let d = Dir::new();
    let mut daemon = d.serve(&["shutdown_timeout=\"2s\""]);
    let mut busy = in_data(daemon.smtp);
    busy.write_raw(b"Subject: never ends\r\n\r\n").unwrap();
    let stopped_at = Instant::now();
    sigterm(daemon.pid());
    let status = daemon
        .stop(Duration::from_secs(15))
        .expect("the daemon exits by itself");
    assert!(status.success(), "{status:?}");
    let took = stopped_at.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(maildir_messages(&d.maildir("localhost", "bob")).is_empty());
    assert!(
        d.log("mainlog")
            .contains("sessions still open after shutdown_timeout"),
        "{}",
        d.log("mainlog")
    );
}
