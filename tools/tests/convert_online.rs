//! Online conversion: a delivery into the mbox while it is being converted
//! waits for the converter's locks, then lands after; nothing is lost, and
//! the next run picks it up.
//!
//! The delivery is `sluice deliver --mbox FILE` when the `sluice` binary
//! has been built next to this one (as `cargo test --workspace` does);
//! otherwise mailstore's mbox appender in a thread, which takes the same
//! locks the same way.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

const LATE: &[u8] = b"Subject: late\nMessage-ID: <late@test>\n\narrived during the conversion\n";

fn sluice_bin() -> Option<PathBuf> {
    let p = bin().parent()?.join("sluice");
    p.is_file().then_some(p)
}

/// Starts a delivery of LATE into `mbox`; returns a flag set when it is done.
fn deliver(mbox: &Path, home: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<bool>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let mbox = mbox.to_path_buf();
    let home = home.to_path_buf();
    let t = std::thread::spawn(move || {
        let ok = match sluice_bin() {
            Some(sluice) => {
                eprintln!("delivering with {}", sluice.display());
                let mut child = Command::new(sluice)
                    .args(["deliver", "--mbox"])
                    .arg(&mbox)
                    .args(["-f", "late@example.org"])
                    .env("SLUICE_HOME", &home)
                    .stdin(Stdio::piped())
                    .spawn()
                    .expect("running sluice deliver");
                child.stdin.take().unwrap().write_all(LATE).unwrap();
                child.wait().unwrap().success()
            }
            None => {
                eprintln!("no sluice binary built: delivering with mailstore's appender");
                let opts = mailstore::mbox::AppendOptions {
                    locks: mailstore::lock::LockOptions {
                        timeout: Duration::from_secs(60),
                        ..mailstore::lock::LockOptions::writer()
                    },
                    ..Default::default()
                };
                mailstore::mbox::Appender::new(opts)
                    .append(&mbox, "late@example.org", SystemTime::now(), LATE)
                    .is_ok()
            }
        };
        flag.store(true, Ordering::SeqCst);
        ok
    });
    (done, t)
}

#[test]
fn a_delivery_during_conversion_waits_and_is_not_lost() {
    const N: usize = 12_000;
    let dir = tempfile::tempdir().unwrap();
    let msgs = generate(N, 3);
    let src = dir.path().join("bob");
    fs::write(&src, mboxrd(&msgs)).unwrap();
    let dest = dir.path().join("Maildir");
    let lockfile = dir.path().join("bob.lock");

    let mut conv = spawn_convert(&src, &dest);
    // Wait for the converter to hold the mbox (its dotlock appears).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lockfile.exists() {
        assert!(
            Instant::now() < deadline,
            "the converter never locked the mbox"
        );
        assert!(
            conv.try_wait().unwrap().is_none(),
            "the converter ended before the delivery could start"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    let (done, delivery) = deliver(&src, dir.path());
    let status = loop {
        if let Some(s) = conv.try_wait().unwrap() {
            break s;
        }
        assert!(
            !done.load(Ordering::SeqCst) || !lockfile.exists(),
            "the delivery finished while the converter still held the mbox"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let conv_done = started.elapsed();
    assert!(status.success(), "converter: {status}");
    assert!(delivery.join().unwrap(), "the delivery failed");
    eprintln!("the converter held the mbox {conv_done:?} after the delivery began");

    // The conversion saw the mbox as it was when locked...
    let entries = read_maildir(&dest);
    assert_eq!(entries.len(), N);
    assert!(
        entries
            .iter()
            .all(|e| message_id(&e.bytes).as_deref() != Some("<late@test>"))
    );
    // ... the message landed after, whole ...
    let data = fs::read(&src).unwrap();
    assert!(
        data.ends_with(b"\narrived during the conversion\n\n"),
        "mbox tail"
    );
    // ... and the pick-up run converts it, and only it.
    let out = convert(&["--json", s(&src), s(&dest)]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["messages"].as_u64(),
            report["already_present"].as_u64()
        ),
        (Some(1), Some(N as u64))
    );
    let entries = read_maildir(&dest);
    let last = entries.last().unwrap();
    assert_eq!(message_id(&last.bytes).as_deref(), Some("<late@test>"));
    assert!(String::from_utf8_lossy(&last.bytes).ends_with("\n\narrived during the conversion\n"));
}
