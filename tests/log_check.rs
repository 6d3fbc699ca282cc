//! `sluice log check`: the log parser reads a mainlog and rejectlog the
//! daemon wrote (long IDs) line for line, each line re-formatted byte for
//! byte, and reads the logs a real Exim 4.96 wrote (tests/fixtures/exim-4.96).

mod common;

use common::{Dir, log_lines_of, send_message, wait_completed};

/// `sluice log check --json FILE`: exits 0, and its summary.
fn check(d: &Dir, file: &std::path::Path) -> serde_json::Value {
    let out = d.run(&["log", "check", "--json", file.to_str().unwrap()], b"");
    common::assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_daemons_logs_parse_line_for_line() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let ids = [
        send_message(daemon.smtp, &["bob@localhost"], "one", true),
        send_message(
            daemon.smtp,
            &["bob@localhost", "carol@localhost"],
            "two",
            false,
        ),
        // A relay refusal: a rejection in both logs.
        send_message(
            daemon.smtp,
            &["dave@localhost", "eve@remote.example"],
            "three",
            true,
        ),
    ];
    for id in &ids {
        assert_eq!(id.len(), 23, "{id} is not a long ID");
    }
    wait_completed(&d, &ids);
    let log = d.home().join("log");
    let s = check(&d, &log.join("mainlog"));
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

    assert_eq!(check(&d, &log.join("rejectlog"))["kinds"]["rejected"], 1);
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
        let s = check(&d, &std::path::Path::new(fixtures).join(name));
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
