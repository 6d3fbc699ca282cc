//! `sluice deliver --mbox` against real, independent lockers: Python's
//! `fcntl.lockf` holding the mbox, and `dotlockfile` (liblockfile) holding
//! the dotlock. The delivery waits and lands once they let go, or exits 75
//! after its lock timeout; Python's `mailbox` reads the result.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Dir, have};

/// Starts a Python process that holds an fcntl (lockf) write lock on
/// `mbox` for `secs` seconds; returns once the lock is held.
fn hold_lockf(mbox: &Path, secs: f64) -> Child {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'a')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n",
        )
        .arg(mbox)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

/// Whether `dotlockfile` (liblockfile) is here to hold locks; with
/// `CI=true` its absence fails the test instead of skipping it.
fn dotlockfile() -> bool {
    if have("dotlockfile") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "dotlockfile (liblockfile-bin) is missing in CI"
    );
    eprintln!("SKIPPED: dotlockfile (Debian package liblockfile-bin) is not installed");
    false
}

/// `sluice deliver --mbox MBOX` with `mbox.lock_timeout` set.
fn deliver(d: &Dir, mbox: &Path, lock_timeout: &str, msg: &[u8]) -> std::process::Output {
    let timeout = format!("mbox.lock_timeout={lock_timeout}");
    d.run(
        &[
            "--set",
            &timeout,
            "deliver",
            "--mbox",
            mbox.to_str().unwrap(),
        ],
        msg,
    )
}

fn mbox_messages(mbox: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import mailbox, sys\n\
             for m in mailbox.mbox(sys.argv[1], create=False):\n\
             \x20   sys.stdout.buffer.write(m.as_bytes().hex().encode() + b'\\n')\n",
        )
        .arg(mbox)
        .output()
        .expect("python3");
    common::assert_exit(&out, 0);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn waits_for_a_python_lockf_holder_then_delivers() {
    let d = Dir::new();
    let mbox = d.path().join("alice");
    std::fs::write(&mbox, b"").unwrap();
    let mut holder = hold_lockf(&mbox, 1.0);
    let start = Instant::now();
    let out = d.run(
        &[
            "deliver",
            "--mbox",
            mbox.to_str().unwrap(),
            "-f",
            "bob@example.org",
        ],
        b"Subject: waited\n\nFrom here on\n",
    );
    let waited = start.elapsed();
    holder.wait().unwrap();
    common::assert_exit(&out, 0);
    assert!(
        waited >= Duration::from_millis(700),
        "did not wait for the lock: {waited:?}"
    );
    let msgs = mbox_messages(&mbox);
    assert_eq!(msgs.len(), 1);
    // Python's mbox reader undoes the >From quoting of a body line.
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("Subject: waited\n"), "{text}");
    assert!(text.contains("Return-Path: <bob@example.org>"), "{text}");
}

#[test]
fn gives_up_with_75_when_the_lockf_holder_stays() {
    let d = Dir::new();
    let mbox = d.path().join("alice");
    std::fs::write(&mbox, b"").unwrap();
    let mut holder = hold_lockf(&mbox, 5.0);
    let out = deliver(&d, &mbox, "1s", b"Subject: x\n\ny\n");
    let _ = holder.kill();
    let _ = holder.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("fcntl"), "the error names the lock: {err}");
    assert_eq!(
        std::fs::metadata(&mbox).unwrap().len(),
        0,
        "nothing half-written"
    );
}

#[test]
fn respects_a_dotlockfile_holder() {
    if !dotlockfile() {
        return;
    }
    let d = Dir::new();
    let mbox = d.path().join("carol");
    std::fs::write(&mbox, b"").unwrap();
    let lock = format!("{}.lock", mbox.display());
    let st = Command::new("dotlockfile")
        .args(["-l", "-r", "0", &lock])
        .status()
        .unwrap();
    assert!(st.success(), "dotlockfile could not lock");
    // Held: a short timeout gives 75.
    let out = deliver(&d, &mbox, "1s", b"Subject: x\n\ny\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("dotlock"), "{err}");
    // Released while we wait: delivered.
    let unlock = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        Command::new("dotlockfile")
            .args(["-u", &lock])
            .status()
            .unwrap()
    });
    let out = d.run(
        &["deliver", "--mbox", mbox.to_str().unwrap()],
        b"Subject: after\n\nok\n",
    );
    assert!(unlock.join().unwrap().success());
    common::assert_exit(&out, 0);
    assert_eq!(mbox_messages(&mbox).len(), 1);
}

#[test]
fn size_limit_and_round_trip() {
    let d = Dir::new();
    let mbox = d.path().join("dave");
    let out = d.run(
        &["deliver", "--mbox", mbox.to_str().unwrap()],
        b"Subject: one\n\n>From quoted\nFrom plain\n",
    );
    common::assert_exit(&out, 0);
    let before = std::fs::read(&mbox).unwrap();
    let out = d.run(
        &[
            "--set",
            "message_size_limit=50",
            "deliver",
            "--mbox",
            mbox.to_str().unwrap(),
        ],
        format!("Subject: two\n\n{}\n", "x".repeat(100)).as_bytes(),
    );
    common::assert_exit(&out, 65);
    assert_eq!(
        std::fs::read(&mbox).unwrap(),
        before,
        "the mbox is back to its old length"
    );
    // mboxrd: the file holds the quoted lines.
    let text = String::from_utf8_lossy(&before);
    assert!(text.starts_with("From MAILER-DAEMON "), "{text}");
    assert!(text.contains("\n>>From quoted\n>From plain\n"), "{text}");
}

/// A live holder (`dotlockfile -p` writes the pid of the shell that keeps
/// it) is respected: the delivery waits, then exits 75 at `lock_timeout`.
/// Once the shell is killed, its lock file holds a dead pid, and the next
/// delivery takes it over at once (not after `dotlock_stale`, 5 minutes),
/// naming the pid.
#[test]
fn a_dead_holders_dotlock_is_taken_over_at_once() {
    if !dotlockfile() {
        return;
    }
    let d = Dir::new();
    let mbox = d.path().join("box");
    std::fs::write(&mbox, b"").unwrap();
    let lock = d.path().join("box.lock");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("dotlockfile -p -l \"$1\" && exec sleep 600")
        .arg("sh")
        .arg(&lock)
        .spawn()
        .unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || lock.exists()),
        "dotlockfile did not lock"
    );
    let pid = holder.id();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid.to_string()
    );

    // Alive: respected until the lock timeout.
    let started = Instant::now();
    let out = deliver(&d, &mbox, "2s", b"Subject: waits\n\nx\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(2), "did not wait");
    assert!(err.contains(&format!("pid {pid}")), "{err}");

    // Killed: the lock stays, with a dead pid in it.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(lock.exists());
    let out = deliver(&d, &mbox, "30s", b"Subject: at once\n\ny\n");
    let err = String::from_utf8_lossy(&out.stderr);
    common::assert_exit(&out, 0);
    assert!(
        err.contains(&format!("held by pid {pid}, which is not running")),
        "the take-over is said, naming the pid: {err}"
    );
    assert!(!lock.exists(), "our own lock was released");
    assert_eq!(mbox_messages(&mbox).len(), 1);
}
