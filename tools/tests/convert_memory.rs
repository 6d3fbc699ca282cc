//! Memory follows the windows in use, not the mbox: a conversion of an
//! mbox of 54 MiB, read in windows of 256 KiB, peaks far below the
//! mbox's size, with a message that needs a window of its own and every
//! message written and verified byte for byte. (Mapping the whole mbox, as
//! the converter did before, peaked at 64 MiB for this 54 MiB mbox.)

mod common;

use common::*;
use std::fs;
use std::process::Stdio;
use std::time::Duration;

/// Messages of about 24 KB, and one of 2 MB in the middle.
const MESSAGES: usize = 2000;
const PADDING: usize = 24 << 10;
const BIG: usize = 2 << 20;

/// The corpus: `generate`'s messages padded with plain body lines. Only a
/// few keep their Status header or quoted lines (those are copied out of
/// the mapping, up to a commit batch's worth per worker, which is the
/// converter's own memory and not what this test is about).
fn corpus() -> Vec<Generated> {
    let line = "padding text of a long message, the same line again and again...\n";
    generate(MESSAGES, 23)
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            let keep_all = i % 20 == 0;
            if !keep_all {
                m.flags = None;
                let text = String::from_utf8(m.stored.clone()).unwrap();
                let text: String = text
                    .split_inclusive('\n')
                    .filter(|l| !l.trim_start_matches('>').starts_with("From "))
                    .collect();
                m.stored = text.into_bytes();
                m.in_mbox = m.stored.clone();
            }
            let size = if i == MESSAGES / 2 { BIG } else { PADDING };
            let pad = line.repeat(size / line.len());
            m.stored.extend_from_slice(pad.as_bytes());
            m.in_mbox.extend_from_slice(pad.as_bytes());
            m
        })
        .collect()
}

/// Runs convert2maildir with `args` and samples its peak RSS (`VmHWM`)
/// until it exits: (exit code, peak KiB).
fn convert_sampled(args: &[&str]) -> (i32, u64) {
    let mut child = quiet_convert()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start convert2maildir");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    // A zombie has no memory left to show; stop there.
    while let Ok(s) = fs::read_to_string(&status) {
        if s.contains("State:\tZ") {
            break;
        }
        if let Some(kb) = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, peak_kb)
}

#[test]
fn peak_memory_stays_far_below_the_mbox_size() {
    let dir = tempfile::tempdir().unwrap();
    let msgs = corpus();
    let src = dir.path().join("inbox");
    let mbox = mboxrd(&msgs);
    let mbox_kb = mbox.len() as u64 / 1024;
    fs::write(&src, &mbox).unwrap();
    drop(mbox);

    for (name, extra) in [
        ("locked, mapped", &[][..]),
        ("--no-lock, read", &["--no-lock"][..]),
    ] {
        let dest = dir.path().join(format!("Maildir.{}", name.len()));
        // No flushes: the test is about memory, and must not wait on a
        // busy disk (what holds windows is the channel, not the flushes).
        let mut args = vec!["--window", "256K", "--durability", "none"];
        args.extend_from_slice(extra);
        args.extend([s(&src), s(&dest)]);
        let (code, peak_kb) = convert_sampled(&args);
        eprintln!("{name}: mbox {mbox_kb} KiB, peak RSS {peak_kb} KiB");
        assert_eq!(code, 0, "{name}: exit code");
        assert!(peak_kb > 0, "{name}: VmHWM was never read");
        assert!(
            peak_kb < mbox_kb / 2,
            "{name}: peak RSS {peak_kb} KiB for a {mbox_kb} KiB mbox: not windowed"
        );

        // Every message once, in mbox order, as it was.
        let entries = read_maildir(&dest);
        assert_eq!(entries.len(), msgs.len(), "{name}");
        for (i, (e, m)) in entries.iter().zip(&msgs).enumerate() {
            assert!(e.bytes == m.stored, "{name}: message {} differs", i + 1);
            assert_eq!(e.flags, m.flags, "{name}: flags of message {}", i + 1);
        }
    }
}
