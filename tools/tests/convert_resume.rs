//! Resume and idempotence: a run killed with SIGKILL in the middle, then run
//! again, leaves every message exactly once; a mail client rewriting the
//! mbox between runs (flags changed, offsets shifted) does not make
//! converted messages look new; mail appended since is picked up.

mod common;

use common::*;
use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

fn count_files(md: &std::path::Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|s| fs::read_dir(md.join(s)).map_or(0, |r| r.count()))
        .sum()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn kill_9_then_rerun_converts_each_message_once() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let msgs = generate(N, 11);
    let src = dir.path().join("inbox");
    fs::write(&src, mboxrd(&msgs)).unwrap();
    let dest = dir.path().join("Maildir");

    // Start a run and kill it once a good share of the messages is written.
    let mut child = spawn_convert(&src, &dest);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_at = None;
    while Instant::now() < deadline {
        let n = if dest.join("new").is_dir() {
            count_files(&dest)
        } else {
            0
        };
        if n >= N / 4 {
            child.kill().unwrap(); // SIGKILL
            killed_at = Some(n);
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed; make the corpus bigger");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait().unwrap();
    let killed_at = killed_at.expect("the run never got a quarter through");
    let after_kill = count_files(&dest);
    eprintln!("killed with {killed_at} files seen, {after_kill} present");
    assert!(after_kill < N, "the kill came too late to test anything");

    // Again, verifying: everything converted once.
    let out = convert(&["--json", "--verify", s(&src), s(&dest)]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(report["mismatches"], 0);
    assert_eq!(
        report["messages"].as_u64().unwrap() + report["already_present"].as_u64().unwrap(),
        N as u64,
        "{report}"
    );
    assert_each_once(&dest, N);
    let entries = read_maildir(&dest);
    let stored: HashSet<&[u8]> = msgs.iter().map(|m| m.stored.as_slice()).collect();
    assert!(
        entries.iter().all(|e| stored.contains(e.bytes.as_slice())),
        "every file is a source message, whole"
    );

    // A third run has nothing to do.
    let report = json(&convert(&["--json", s(&src), s(&dest)]));
    assert_eq!(
        (
            report["messages"].as_u64(),
            report["already_present"].as_u64()
        ),
        (Some(0), Some(N as u64))
    );

    // A mail client rewrites the mbox: marks the first 100 messages read
    // (offsets shift), gives them UIDs; two new messages arrive.
    let mut rewritten = msgs.clone();
    for m in rewritten.iter_mut().take(100) {
        let text = String::from_utf8(m.in_mbox.clone()).unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        let head: Vec<&str> = head.lines().filter(|l| !l.starts_with("Status:")).collect();
        m.in_mbox = format!("{}\nStatus: RO\nX-UID: 1\n\n{body}", head.join("\n")).into_bytes();
    }
    let new = generate(N + 2, 12).split_off(N);
    rewritten.extend(new.iter().cloned());
    fs::write(&src, mboxrd(&rewritten)).unwrap();
    let out = convert(&["--json", s(&src), s(&dest)]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(report["messages"], 2, "{report}");
    assert_eq!(report["already_present"], N as u64);
    assert_eq!(read_maildir(&dest).len(), N + 2);
}

#[test]
fn lost_manifest_lines_are_rebuilt_from_the_files() {
    // A crash between the files becoming durable and their manifest lines
    // being written: the files are recognised by their content.
    let dir = tempfile::tempdir().unwrap();
    let msgs = generate(300, 5);
    let src = dir.path().join("inbox");
    fs::write(&src, mboxrd(&msgs)).unwrap();
    let dest = dir.path().join("Maildir");
    assert_eq!(convert(&[s(&src), s(&dest)]).status.code(), Some(0));
    let manifest = dest.join("convert2maildir.state/manifest");
    let text = fs::read_to_string(&manifest).unwrap();
    // Keep the run line and the first 50 message lines, and tear the next.
    let mut kept: Vec<&str> = text.lines().take(51).collect();
    let torn = &text.lines().nth(51).unwrap()[..20];
    kept.push("");
    fs::write(&manifest, format!("{}{torn}", kept.join("\n"))).unwrap();
    // And a half-written file in tmp/ from the "crashed" run.
    let run = text.lines().next().unwrap().strip_prefix("R\t").unwrap();
    fs::write(
        dest.join("tmp")
            .join(format!("{run}Q0000000999999.test.example")),
        "partial",
    )
    .unwrap();
    let report = json(&convert(&["--json", s(&src), s(&dest)]));
    assert_eq!(
        (
            report["messages"].as_u64(),
            report["already_present"].as_u64()
        ),
        (Some(0), Some(300))
    );
    assert_eq!(read_maildir(&dest).len(), 300); // and tmp/ is clean again
    // What was rebuilt is in the manifest now: a further run reads no file.
    let lines = fs::read_to_string(&manifest).unwrap();
    let whole = |l: &&str| l.starts_with("M\t") && l.split('\t').count() == 5;
    assert_eq!(lines.lines().filter(whole).count(), 300);
}

/// `kill -9` while the converter holds the mbox's dotlock: the lock file
/// stays behind holding a dead pid. The re-run takes it over at once (well
/// inside a 10 s lock timeout, where the age rule alone would wait 5
/// minutes) and converts every message exactly once.
#[test]
fn kill_9_while_holding_the_dotlock_then_rerun_takes_the_lock_over() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let msgs = generate(N, 21);
    let src = dir.path().join("big.mbox");
    fs::write(&src, mboxrd(&msgs)).unwrap();
    let lock = dir.path().join("big.mbox.lock");
    let dest = dir.path().join("Maildir");

    let mut child = spawn_convert(&src, &dest);
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Ok(text) = fs::read_to_string(&lock) {
            break text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its lock was seen");
        }
        assert!(Instant::now() < deadline, "the lock file never appeared");
        std::thread::sleep(Duration::from_micros(200));
    };
    child.kill().unwrap(); // SIGKILL, with the lock held
    child.wait().unwrap();
    assert!(lock.exists(), "the killed run left its lock file");
    // The pid written may be read while the file is being written; once
    // the process is dead, the file holds its pid.
    let left = fs::read_to_string(&lock).unwrap();
    assert_eq!(
        left.trim(),
        child.id().to_string(),
        "seen first: {holder:?}"
    );

    let out = convert(&["--json", "--lock-timeout", "10", s(&src), s(&dest)]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        report["messages"].as_u64().unwrap() + report["already_present"].as_u64().unwrap(),
        N as u64,
        "{report}"
    );
    let notes = report.to_string(); // the notes of the source and the run
    assert!(
        notes.contains(&format!("held by pid {}, which is not running", child.id())),
        "the take-over is reported, naming the dead pid: {notes}"
    );
    assert_each_once(&dest, N);
    assert!(!lock.exists(), "the re-run released its lock");
}
