//! `sluice log check`: the log parser reads a mainlog and rejectlog the
//! daemon wrote (long IDs) line for line, each line re-formatted byte for
//! byte, and reads the logs a real Exim 4.96 wrote (tests/fixtures/exim-4.96).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Dir, SmtpClient, log_lines_of, wait_until};

fn send(addr: SocketAddr, rcpts: &[&str], subject: &str, with_id: bool) -> String {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220, "{greeting}");
    assert_eq!(c.cmd("EHLO client.example").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<alice@example.org>").unwrap().code(), 250);
    for r in rcpts {
        c.cmd(&format!("RCPT TO:<{r}>")).unwrap();
    }
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    let id = if with_id {
        format!("Message-ID: <{subject}@example.org>\r\n")
    } else {
        String::new()
    };
    c.write_raw(format!("Subject: {subject}\r\n{id}\r\nbody\r\n").as_bytes())
        .unwrap();
    let ok = c.cmd(".").unwrap();
    assert_eq!(ok.code(), 250, "{ok}");
    let _ = c.cmd("QUIT");
    ok.queued_id()
        .map(str::to_owned)
        .expect("id in the 250 reply")
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_daemons_logs_parse_line_for_line() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let ids = [
        send(daemon.smtp, &["bob@localhost"], "one", true),
        send(
            daemon.smtp,
            &["bob@localhost", "carol@localhost"],
            "two",
            false,
        ),
        // A relay refusal: a rejection in both logs.
        send(
            daemon.smtp,
            &["dave@localhost", "eve@remote.example"],
            "three",
            true,
        ),
    ];
    for id in &ids {
        assert_eq!(id.len(), 23, "{id} is not a long ID");
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            let log = d.log("mainlog");
            ids.iter().all(|id| {
                log_lines_of(&log, id)
                    .last()
                    .is_some_and(|l| l.ends_with(" Completed"))
            })
        }),
        "not all completed; mainlog:\n{}",
        d.log("mainlog")
    );
    let log = d.home().join("log");
    let out = d.run(
        &[
            "log",
            "check",
            "--json",
            log.join("mainlog").to_str().unwrap(),
        ],
        b"",
    );
    common::assert_exit(&out, 0);
    let s = summary(&out);
    let lines = d.log("mainlog").lines().count() as u64;
    assert_eq!(s["lines"], lines, "{s}");
    assert_eq!(s["events"], lines, "every line is one event: {s}");
    assert_eq!(s["not_round_trip"], 0, "{s}");
    assert_eq!(s["kinds"]["<="], 3, "{s}");
    assert_eq!(s["kinds"]["=>"], 4, "{s}");
    assert_eq!(s["kinds"]["Completed"], 3, "{s}");
    assert_eq!(s["kinds"]["rejected"], 1, "{s}");
    // id= without angle brackets, and only for a message that had one.
    let main = d.log("mainlog");
    assert!(main.contains(" id=one@example.org"), "{main}");
    assert!(!main.contains("id=<"), "{main}");
    let two = log_lines_of(&main, &ids[1]);
    assert!(two.iter().all(|l| !l.contains(" id=")), "{two:?}");

    let out = d.run(
        &[
            "log",
            "check",
            "--json",
            log.join("rejectlog").to_str().unwrap(),
        ],
        b"",
    );
    common::assert_exit(&out, 0);
    assert_eq!(summary(&out)["kinds"]["rejected"], 1);
}

#[test]
fn logs_a_real_exim_wrote_parse_and_garbage_is_named() {
    let d = Dir::new();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exim-4.96");
    for name in [
        "mainlog",
        "mainlog-selectors",
        "rejectlog",
        "rejectlog-selectors",
    ] {
        let path = format!("{fixtures}/{name}");
        let out = d.run(&["log", "check", "--json", &path], b"");
        common::assert_exit(&out, 0);
        let s = summary(&out);
        assert!(s["events"].as_u64().unwrap() > 0, "{name}: {s}");
    }
    let bad = d.path().join("bad");
    std::fs::write(
        &bad,
        "2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa Completed\nnot a log line\n",
    )
    .unwrap();
    let out = d.run(&["log", "check", bad.to_str().unwrap()], b"");
    common::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: not a log line"), "{err}");
}
