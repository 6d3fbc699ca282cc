//! Remote delivery against Postfix's `smtp-sink`, a receiver that is not
//! ours, with the faults its own options make: hard and soft refusals
//! (`-f`, `-r`), a 421 and a hang-up mid-session (`-Q`, `-q`), a slow
//! DATA reply (`-w`), an abort during the body (`-A`), and LMTP (`-L`).
//! Each fault is a clear line in the log (which still parses), the right
//! outcome in the queue, and never a lost message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Dir;
use common::sink::{self, Sink};

/// `example.org` is local; everything else goes through a manualroute
/// router to `hosts` with the transport options `transport`.
fn config(d: &Dir, hosts: &str, transport: &str) -> PathBuf {
    common::smarthost_config(d, "[queue]\nretry = \"F,1h,1m\"", "*", hosts, transport)
}

fn host(s: &Sink) -> String {
    format!("{}::{}", s.addr.ip(), s.port())
}

fn submit(d: &Dir, conf: &Path, rcpts: &[&str]) -> Output {
    let mut args = vec![
        "--config",
        conf.to_str().unwrap(),
        "-odi",
        "-f",
        "sender@example.org",
    ];
    args.extend_from_slice(rcpts);
    let out = d.run(
        &args,
        b"From: sender@example.org\nSubject: sink test\n\nbody line\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

use common::lines_with;

/// The log parses line for line, and the queue holds `queued` messages.
fn check(d: &Dir, conf: &Path, queued: usize) {
    let c = conf.to_str().unwrap();
    common::assert_log_parses(d, conf);
    let count = d.run(&["--config", c, "-bpc"], b"");
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        queued.to_string(),
        "{}",
        d.log("mainlog")
    );
}

#[test]
fn hard_and_soft_refusals_of_rcpt() {
    if !sink::available() {
        return;
    }
    let d = Dir::new();
    // -f and -r imply no PIPELINING: the client's one-command-at-a-time
    // path.
    let hard = Sink::start(d.path(), "127.0.0.2", &["-f", "RCPT"]);
    let conf = config(&d, &host(&hard), "");
    submit(&d, &conf, &["a@one.test", "b@one.test"]);
    let log = d.log("mainlog");
    let failed = lines_with(&log, " ** ");
    assert_eq!(failed.len(), 2, "{log}");
    for l in &failed {
        assert!(
            l.contains(
                "H=127.0.0.2 [127.0.0.2]: SMTP error from remote mail server after RCPT TO:<"
            ) && l.contains(">: 500 5.3.0 Error: command failed"),
            "{l}"
        );
    }
    assert_eq!(hard.messages(), 0);
    // Every recipient failed: one report to the (local) sender lists both,
    // and the message is gone.
    let reports = lines_with(&log, " <= <> R=");
    assert_eq!(reports.len(), 1, "{log}");
    let box_ = d.maildir("example.org", "sender").join("new");
    let files: Vec<_> = std::fs::read_dir(&box_)
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert_eq!(files.len(), 1, "{log}");
    let report = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(
        report.contains("X-Failed-Recipients: a@one.test,\n  b@one.test\n"),
        "{report}"
    );
    check(&d, &conf, 0);

    let d = Dir::new();
    let soft = Sink::start(d.path(), "127.0.0.3", &["-r", "RCPT"]);
    let conf = config(&d, &host(&soft), "");
    submit(&d, &conf, &["c@two.test"]);
    let log = d.log("mainlog");
    let deferred = lines_with(&log, " == c@two.test ");
    assert_eq!(deferred.len(), 1, "{log}");
    assert!(
        deferred[0].contains("defer (-44) H=127.0.0.3 [127.0.0.3]: SMTP error from remote mail server after RCPT TO:<c@two.test>: 450 4.3.0 Error: command failed"),
        "{}",
        deferred[0]
    );
    assert_eq!(soft.messages(), 0);
    check(&d, &conf, 1);
}

#[test]
fn a_421_or_a_hang_up_moves_the_message_to_the_next_host() {
    if !sink::available() {
        return;
    }
    // The first host's line as Exim 4.96 writes it for the same faults
    // (tests/fixtures/exim-4.96/outbound/mainlog).
    for (fault, marker) in [
        (
            ["-Q", "MAIL"],
            " H=127.0.0.4 [127.0.0.4]: SMTP error from remote mail server after pipelined MAIL FROM:<sender@example.org>: 421 4.0.0 Server closing connection",
        ),
        (
            ["-q", "RCPT"],
            " H=127.0.0.4 [127.0.0.4]: Remote host closed connection in response to pipelined RCPT TO:<d@three.test>",
        ),
    ] {
        let d = Dir::new();
        let bad = Sink::start(d.path(), "127.0.0.4", &fault);
        let good = Sink::start(d.path(), "127.0.0.5", &[]);
        let conf = config(&d, &format!("{}:{}", host(&bad), host(&good)), "");
        submit(&d, &conf, &["d@three.test"]);
        let log = d.log("mainlog");
        let delivered = lines_with(&log, " => d@three.test ");
        assert_eq!(delivered.len(), 1, "{fault:?}: {log}");
        assert!(
            delivered[0].contains("H=127.0.0.5 [127.0.0.5]"),
            "{}",
            delivered[0]
        );
        let host = lines_with(&log, marker);
        assert_eq!(host.len(), 1, "{fault:?}: {log}");
        assert!(
            log.find(marker) < log.find(" => d@three.test "),
            "the host line comes first: {log}"
        );
        assert_eq!((bad.messages(), good.messages()), (0, 1), "{fault:?}");
        check(&d, &conf, 0);
    }
}

#[test]
fn a_hang_up_after_the_dot_is_possibly_delivered() {
    if !sink::available() {
        return;
    }
    let d = Dir::new();
    let s = Sink::start(d.path(), "127.0.0.6", &["-q", "."]);
    let conf = config(&d, &host(&s), "");
    submit(&d, &conf, &["e@four.test"]);
    let log = d.log("mainlog");
    let deferred = lines_with(&log, " == e@four.test ");
    assert_eq!(deferred.len(), 1, "{log}");
    assert!(
        deferred[0].contains("(possibly delivered)"),
        "{}",
        deferred[0]
    );
    // Kept: sending again may duplicate, never lose.
    check(&d, &conf, 1);
}

#[test]
fn a_slow_data_reply_times_out_and_the_next_host_takes_it() {
    if !sink::available() {
        return;
    }
    let d = Dir::new();
    let slow = Sink::start(d.path(), "127.0.0.7", &["-w", "4"]);
    let good = Sink::start(d.path(), "127.0.0.8", &[]);
    let conf = config(
        &d,
        &format!("{}:{}", host(&slow), host(&good)),
        "command_timeout = \"1s\"",
    );
    submit(&d, &conf, &["f@five.test"]);
    let log = d.log("mainlog");
    let delivered = lines_with(&log, " => f@five.test ");
    assert_eq!(delivered.len(), 1, "{log}");
    assert!(delivered[0].contains("H=127.0.0.8 [127.0.0.8]"), "{log}");
    assert_eq!(
        lines_with(
            &log,
            " H=127.0.0.7 [127.0.0.7]: SMTP timeout after pipelined MAIL FROM:<sender@example.org>: Connection timed out"
        )
        .len(),
        1,
        "{log}"
    );
    assert_eq!(good.messages(), 1);
    check(&d, &conf, 0);
}

#[test]
fn an_abort_during_the_body_fails_the_message_for_that_host() {
    if !sink::available() {
        return;
    }
    let d = Dir::new();
    let s = Sink::start(d.path(), "127.0.0.9", &["-A", "0"]);
    let conf = config(&d, &host(&s), "");
    // A body larger than the socket buffers: the 550 arrives while the
    // client is still writing.
    let mut args = vec![
        "--config",
        conf.to_str().unwrap(),
        "-odi",
        "-f",
        "sender@example.org",
        "g@six.test",
    ];
    let body = "x".repeat(76) + "\n";
    let msg = format!("Subject: big\n\n{}", body.repeat(40_000));
    args.truncate(6);
    let out = d.run(&args, msg.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.log("mainlog");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ** g@six.test ") || l.contains(" == g@six.test "))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    // The host is named: on the recipient's line, or on a host line of
    // its own before it (Exim's `H=name [ip]: ...`).
    assert!(
        log.lines().any(|l| l.contains("H=127.0.0.9 [127.0.0.9]")),
        "{log}"
    );
    assert_eq!(s.messages(), 0);
    common::assert_log_parses(&d, &conf);
}

#[test]
fn lmtp_to_smtp_sink() {
    if !sink::available() {
        return;
    }
    let d = Dir::new();
    let s = Sink::start(d.path(), "127.0.0.10", &["-L"]);
    let conf = config(&d, &host(&s), "protocol = \"lmtp\"");
    submit(&d, &conf, &["h@seven.test", "i@seven.test"]);
    let log = d.log("mainlog");
    assert_eq!(lines_with(&log, " => h@seven.test ").len(), 1, "{log}");
    assert_eq!(lines_with(&log, " -> i@seven.test ").len(), 1, "{log}");
    assert_eq!(s.messages(), 1);
    assert!(
        s.dumped().contains("X-Client-Proto: LMTP") || s.dumped().contains("LMTP"),
        "{}",
        s.dumped()
    );
    check(&d, &conf, 0);
}
