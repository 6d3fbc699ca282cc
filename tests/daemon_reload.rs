//! SIGHUP: the daemon reads its configuration again (new sessions use it,
//! open ones keep working; a bad file is logged and the old configuration
//! kept; keys that need a restart keep their values) and reopens its logs
//! (after logrotate moved them).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Dir, SmtpClient, wait_until};

fn sighup(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
}

fn config(max_recipients: usize) -> String {
    format!("[smtp]\nmax_recipients = {max_recipients}\n")
}

/// How many of `n` recipients a new session gets accepted in one
/// transaction.
fn accepted_recipients(addr: std::net::SocketAddr, n: usize) -> usize {
    let (mut c, _) = SmtpClient::open(addr).expect("connect");
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    let ok = (0..n)
        .filter(|i| c.cmd(&format!("RCPT TO:<r{i}@localhost>")).unwrap().code() == 250)
        .count();
    let _ = c.cmd("QUIT");
    ok
}

#[test]
fn sighup_reloads_the_configuration_and_reopens_the_logs() {
    let d = Dir::new();
    let (conf, mut daemon) = d.serve_with_config(&config(100));
    assert_eq!(accepted_recipients(daemon.smtp, 103), 100);

    // A session open across the reload.
    let (mut open, _) = SmtpClient::open(daemon.smtp).expect("connect");
    assert_eq!(open.cmd("EHLO open.test").unwrap().code(), 250);

    // logrotate moves mainlog away, the configuration changes (and asks
    // for a durability the running daemon cannot switch to).
    let log_dir = d.home().join("log");
    std::fs::rename(log_dir.join("mainlog"), log_dir.join("mainlog.1")).unwrap();
    std::fs::write(&conf, format!("durability = \"strict\"\n{}", config(102))).unwrap();
    sighup(daemon.pid());
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log("mainlog")
            .contains("configuration reloaded from")),
        "no reload line in a new mainlog; mainlog.1:\n{}",
        std::fs::read_to_string(log_dir.join("mainlog.1")).unwrap_or_default()
    );
    let new_log = d.log("mainlog");
    assert!(
        new_log.contains("restart needed for durability"),
        "{new_log}"
    );
    // New sessions use the new limit.
    assert_eq!(accepted_recipients(daemon.smtp, 103), 102);
    // The open session still works, and delivers.
    assert_eq!(open.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    assert_eq!(open.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    assert_eq!(open.cmd("DATA").unwrap().code(), 354);
    let r = open
        .cmd("Subject: across a reload\r\n\r\nstill here\r\n.")
        .unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    let _ = open.cmd("QUIT");
    common::wait_completed(&d, std::slice::from_ref(&id));
    // The old file got nothing after the move.
    let old = std::fs::read_to_string(log_dir.join("mainlog.1")).unwrap();
    assert!(!old.contains(&id), "{old}");
    assert!(d.log("mainlog").contains(&id));

    // A bad file: logged, the old configuration stays.
    std::fs::write(&conf, "[smtp\nmax_recipients = 150\n").unwrap();
    sighup(daemon.pid());
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log("mainlog")
            .contains("configuration not reloaded, the old one stays")),
        "{}",
        d.log("mainlog")
    );
    assert!(
        d.log("mainlog").contains(conf.to_str().unwrap()),
        "the error names the file"
    );
    assert_eq!(accepted_recipients(daemon.smtp, 103), 102);
    let status = daemon.stop(Duration::from_secs(20)).expect("exits");
    assert!(status.success());
}

/// Whether a STARTTLS handshake with the daemon verifies against `ca`
/// (Python's smtplib and ssl, as a client with that CA only).
fn tls_verifies(addr: std::net::SocketAddr, ca: &Path) -> bool {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    try:
        s.starttls(context=ctx)
        print("verified")
    except ssl.SSLError as e:
        print("refused", e)
"#;
    let out = common::python(script, &[&addr.port().to_string(), ca.to_str().unwrap()]);
    out.starts_with("verified")
}

#[test]
fn sighup_serves_a_renewed_certificate() {
    let d = Dir::new();
    let live = d.path().join("live");
    let old = common::TestCerts::new(&live);
    let new = common::TestCerts::new(&d.path().join("renewed"));
    let sets = old.sets();
    let daemon = d.serve(&[&sets[0], &sets[1]]);
    assert!(tls_verifies(daemon.smtp, &old.ca_path));
    assert!(!tls_verifies(daemon.smtp, &new.ca_path));

    // The renewal writes new files under the same names, then reloads.
    std::fs::copy(&new.cert_path, &old.cert_path).unwrap();
    std::fs::copy(&new.key_path, &old.key_path).unwrap();
    let reloads = d.log("mainlog").matches("configuration reloaded").count();
    sighup(daemon.pid());
    assert!(wait_until(Duration::from_secs(10), || {
        d.log("mainlog").matches("configuration reloaded").count() > reloads
    }));
    assert!(
        tls_verifies(daemon.smtp, &new.ca_path),
        "the renewed certificate"
    );
    assert!(!tls_verifies(daemon.smtp, &old.ca_path));

    // A broken renewal leaves the one in service.
    std::fs::write(&old.cert_path, "not a certificate").unwrap();
    sighup(daemon.pid());
    assert!(wait_until(Duration::from_secs(10), || {
        d.log("mainlog").contains("TLS certificate not reloaded")
    }));
    assert!(tls_verifies(daemon.smtp, &new.ca_path));
}

/// The first refusal a message to `rcpt` gets (at RCPT or after the
/// data), or 250 when it is taken.
fn refusal(addr: std::net::SocketAddr, rcpt: &str) -> u16 {
    let (mut c, _) = SmtpClient::open(addr).expect("connect");
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap();
    if r.code() != 250 {
        return r.code();
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    let code = c
        .cmd("Subject: big\r\n\r\nmore than thirty bytes of body, surely\r\n.")
        .unwrap()
        .code();
    let _ = c.cmd("QUIT");
    code
}

#[test]
fn sighup_changes_the_local_transports_settings() {
    let d = Dir::new();
    let (conf, daemon) = d.serve_with_config("over_quota = \"defer\"\n");
    // A Maildir with a 30-byte quota.
    let md = d.maildir("localhost", "bob");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    std::fs::write(md.join("maildirsize"), b"30S\n0 0\n").unwrap();
    assert_eq!(
        refusal(daemon.smtp, "bob@localhost") / 100,
        4,
        "deferred over quota"
    );

    std::fs::write(&conf, "over_quota = \"reject\"\n").unwrap();
    let reloads = d.log("mainlog").matches("configuration reloaded").count();
    sighup(daemon.pid());
    assert!(wait_until(Duration::from_secs(10), || {
        d.log("mainlog").matches("configuration reloaded").count() > reloads
    }));
    assert_eq!(
        refusal(daemon.smtp, "bob@localhost") / 100,
        5,
        "rejected over quota"
    );
}

/// The daemon's delivery threads (named `delivery-N`), from /proc.
fn delivery_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("delivery-"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sighup_changes_the_number_of_delivery_threads() {
    let d = Dir::new();
    let (conf, daemon) = d.serve_with_config("[queue]\ndelivery_workers = 4\n");
    let pid = daemon.pid();
    assert!(wait_until(Duration::from_secs(10), || delivery_threads(
        pid
    ) == 4));
    for n in [2, 6] {
        std::fs::write(&conf, format!("[queue]\ndelivery_workers = {n}\n")).unwrap();
        sighup(pid);
        assert!(
            wait_until(Duration::from_secs(10), || delivery_threads(pid) == n),
            "{} delivery threads, not {n}",
            delivery_threads(pid)
        );
    }
    // And they deliver.
    assert_eq!(accepted_recipients(daemon.smtp, 1), 1);
    let (mut s, _) = SmtpClient::open(daemon.smtp).expect("connect");
    assert_eq!(s.cmd("EHLO client.test").unwrap().code(), 250);
    assert_eq!(s.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    assert_eq!(s.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    assert_eq!(s.cmd("DATA").unwrap().code(), 354);
    let r = s.cmd("Subject: after\r\n\r\nresized\r\n.").unwrap();
    assert_eq!(r.code(), 250, "{r}");
    let id = r.queued_id().expect("id").to_string();
    common::wait_completed(&d, std::slice::from_ref(&id));
}
