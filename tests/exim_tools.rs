//! Exim's own log readers read our mainlog: Debian's `eximstats` counts
//! every message received and delivered, and `exigrep ID` finds a
//! message's `<=`, `=>` and `Completed` lines. The daemon runs with classic
//! (16-character) IDs, the only form the 4.96 tools know.
//!
//! Without the tools the test prints `SKIPPED: ...` and passes, except
//! under `CI=true`, where it fails (`.ci/run` installs exim4-daemon-light,
//! which brings them).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Dir, maildir_messages, send_message, wait_completed};

/// The program on PATH or in /usr/sbin (where Debian puts them, and which
/// is not on every user's PATH).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Both tools, or `None` after saying why the test is skipped (a failure
/// under CI, where they must be there).
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("eximstats"), find_tool("exigrep")) {
        (Some(s), Some(g)) => Some((s, g)),
        _ => {
            let why = "eximstats or exigrep is not installed (apt-get install exim4-daemon-light)";
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true and {why}"
            );
            println!("SKIPPED: {why}");
            None
        }
    }
}

/// A row of eximstats' "Grand total summary": its numbers.
fn grand_total(report: &str, row: &str) -> Vec<u64> {
    let summary = report
        .split_once("Grand total summary")
        .unwrap_or_else(|| panic!("no grand total in\n{report}"))
        .1;
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .unwrap_or_else(|| panic!("no {row} row in\n{report}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn eximstats_and_exigrep_read_our_mainlog() {
    let Some((eximstats, exigrep)) = tools() else {
        return;
    };
    let d = Dir::new();
    let daemon = d.serve(&[r#"message_id_format="classic""#]);
    let ids = [
        send_message(daemon.smtp, &["bob@localhost"], "one", true),
        send_message(
            daemon.smtp,
            &["bob@localhost", "carol@localhost"],
            "two",
            true,
        ),
        // The foreign recipient is refused (relay): a rejection line.
        send_message(
            daemon.smtp,
            &["dave@localhost", "eve@remote.example"],
            "three",
            true,
        ),
    ];
    for id in &ids {
        assert_eq!(id.len(), 16, "{id} is not a classic ID");
    }
    wait_completed(&d, &ids);
    let mainlog = d.home().join("log/mainlog");

    let out = Command::new(&eximstats)
        .args(["-nr", "-t0"])
        .arg(&mainlog)
        .output()
        .expect("run eximstats");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Received: volume, messages. Delivered: volume, deliveries, addresses;
    // eximstats counts a delivery per `=>` line (its report on Exim's own
    // log in tests/fixtures/exim-4.96 shows 7 for 6 messages), so the
    // message to two recipients counts twice.
    let received = grand_total(&report, "Received");
    let delivered = grand_total(&report, "Delivered");
    assert_eq!(received[1], 3, "received:\n{report}");
    assert_eq!(delivered[1], 4, "delivered:\n{report}");
    assert_eq!(delivered[2], 4, "delivered addresses:\n{report}");
    // The volumes add up S= of the arrivals, and S= of the message per
    // delivery: each S= is the size of the delivered Maildir file without
    // the Return-path line the transport adds (Exim's S= is the spooled
    // size too).
    let sizes = |who: &[&str]| -> u64 {
        who.iter()
            .flat_map(|w| maildir_messages(&d.maildir("localhost", w)))
            .map(|(_, bytes)| common::without_return_path(&bytes).len() as u64)
            .sum()
    };
    // bob has messages one and two, dave three.
    assert_eq!(
        received[0],
        sizes(&["bob", "dave"]),
        "received volume:\n{report}"
    );
    assert_eq!(
        delivered[0],
        sizes(&["bob", "carol", "dave"]),
        "delivered volume:\n{report}"
    );
    assert_eq!(
        grand_total(&report, "Rejects").first(),
        Some(&1),
        "rejects:\n{report}"
    );

    for id in &ids {
        let out = Command::new(&exigrep)
            .arg(id)
            .arg(&mainlog)
            .output()
            .expect("run exigrep");
        let found = String::from_utf8_lossy(&out.stdout);
        for mark in [" <= ", " => ", " Completed"] {
            assert!(
                found.lines().any(|l| l.contains(&format!("{id}{mark}"))),
                "exigrep {id} has no{mark} line:\n{found}\nmainlog:\n{}",
                d.log("mainlog")
            );
        }
    }
}
