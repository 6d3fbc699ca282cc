//! Free space checks (`check_spool_space` and friends, as Exim's): on a
//! small filesystem the daemon refuses `MAIL` with 452 4.3.1 before any
//! data is sent, counting the `SIZE=` the client announced; a local
//! submission exits 75; deliveries go on.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{Dir, SmtpClient, maildir_messages};

/// Fills the filesystem of `dir` until `leave` bytes are free.
fn fill_to(dir: &Path, name: &str, leave: u64) {
    let free = |p: &Path| {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(p)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df's figure")
    };
    let now = free(dir);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    f.write_all(&vec![b'f'; now.saturating_sub(leave) as usize])
        .unwrap();
    f.sync_all().unwrap();
}

#[test]
fn mail_is_refused_below_the_limits_and_deliveries_go_on() {
    let d = Dir::new();
    let home = d.home();
    if !common::small_tmpfs(&home, "4m") {
        return;
    }
    let _m = common::Mounted(home.clone());
    let limits = ["check_spool_space=\"1M\"", "check_log_space=\"1M\""];
    // One message queued for later, while there is room.
    let q = d.run(
        &[
            "--set",
            limits[0],
            "--set",
            limits[1],
            "-odq",
            "-f",
            "alice@localhost",
            "bob@localhost",
        ],
        b"Subject: queued before\n\nwaiting\n",
    );
    common::assert_exit(&q, 0);

    let mut daemon = d.serve(&limits);
    fill_to(&home, "filler", 1536 * 1024);
    let (mut c, _) = SmtpClient::open(daemon.smtp).expect("connect");
    assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
    // 1.5 MiB free: a message of unknown size is taken...
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RSET").unwrap().code(), 250);
    // ...one announced at 600 kB would leave less than 1 MiB.
    let r = c.cmd("MAIL FROM:<a@example.org> SIZE=600000").unwrap();
    assert_eq!(r.code(), 452, "{r}");
    assert_eq!(r.status().map(|s| s.to_string()).as_deref(), Some("4.3.1"));
    let _ = c.cmd("QUIT");

    // Below the limit: refused whatever the size, logged once.
    fill_to(&home, "filler2", 800 * 1024);
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        let (mut c, _) = SmtpClient::open(daemon.smtp).expect("connect");
        assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
        let r = c.cmd("MAIL FROM:<a@example.org>").unwrap();
        assert_eq!(r.code(), 452, "{r}");
        let _ = c.cmd("QUIT");
    }
    let log = d.log("mainlog");
    assert_eq!(
        log.matches("spool space shortage").count(),
        1,
        "logged once a minute, not per client:\n{log}"
    );
    // A local submission: 75, nothing queued.
    let s = d.run(
        &[
            "--set",
            limits[0],
            "--set",
            limits[1],
            "-odq",
            "bob@localhost",
        ],
        b"Subject: no room\n\nno\n",
    );
    common::assert_exit(&s, 75);
    assert!(
        String::from_utf8_lossy(&s.stderr).contains("spool space shortage"),
        "{}",
        String::from_utf8_lossy(&s.stderr)
    );
    // Deliveries go on: a queue run delivers what was queued.
    let run = d.run(&["--set", limits[0], "--set", limits[1], "-q"], b"");
    common::assert_exit(&run, 0);
    let got = maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(got.len(), 1, "{got:?}");
    daemon.kill9();
}
