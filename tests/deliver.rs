//! `sluice deliver` end to end: real processes, real files, Python's
//! `mailbox` module as the independent reader, real kills.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Dir, files_in, size_field};

fn deliver_maildir(d: &Dir, maildir: &Path, extra: &[&str], msg: &[u8]) -> std::process::Output {
    let mut args = vec!["deliver", "--maildir", maildir.to_str().unwrap()];
    args.extend_from_slice(extra);
    d.run(&args, msg)
}

#[test]
fn python_mailbox_reads_back_the_exact_bytes() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    let messages: Vec<Vec<u8>> = vec![
        b"From: a@example.org\nSubject: plain\n\nhello\n".to_vec(),
        b"Subject: crlf\r\n\r\nline one\r\nline two\r\n".to_vec(),
        b"Subject: eight bit \xe9\xff\n\nbody with \x00 NUL and \xfe bytes\nFrom the start\n>From quoted\n".to_vec(),
        b"Subject: no final newline\n\nlast".to_vec(),
    ];
    for m in &messages {
        let out = deliver_maildir(&d, &md, &[], m);
        common::assert_exit(&out, 0);
    }
    // With -f and -a, and into a folder.
    let out = deliver_maildir(
        &d,
        &md,
        &[
            "-f",
            "s@example.org",
            "-a",
            "rcpt@example.org",
            "--folder",
            "Lists/rust",
        ],
        b"Subject: f\n\nx\n",
    );
    common::assert_exit(&out, 0);

    let script = r#"
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
for key in sorted(md.keys()):
    sys.stdout.buffer.write(md.get_bytes(key).hex().encode() + b"\n")
f = md.get_folder("Lists.rust")
for key in f.keys():
    sys.stdout.buffer.write(b"F " + f.get_bytes(key).hex().encode() + b"\n")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&md)
        .output()
        .expect("python3");
    common::assert_exit(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut folder = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("F ") {
            Some(h) => folder.push(hex(h)),
            None => got.push(hex(line)),
        }
    }
    let mut want = messages.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        folder,
        vec![
            b"Return-Path: <s@example.org>\nDelivered-To: rcpt@example.org\nSubject: f\n\nx\n"
                .to_vec()
        ]
    );

    // Every name carries the true size.
    for sub in ["new", "cur"] {
        for name in files_in(&md.join(sub)) {
            let len = std::fs::metadata(md.join(sub).join(&name)).unwrap().len();
            assert_eq!(size_field(&name), Some(len), "{name}");
        }
    }
    assert!(files_in(&md.join("tmp")).is_empty());
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bad_input_gets_its_exit_code_and_leaves_nothing() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    let cases: &[(&[u8], i32, &str)] = &[
        (b"", 65, "empty"),
        (
            b"\x7fELF\x02\x01\x01\x00\x00\x00binary blob\x00\x00",
            65,
            "not a mail message",
        ),
        (b"hello world, no headers\n", 65, "not a mail message"),
    ];
    for &(input, code, words) in cases {
        let out = deliver_maildir(&d, &md, &[], input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{input:?}: {err}");
        assert!(err.contains(words), "{err}");
        assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    }
    assert!(files_in(&md.join("new")).is_empty());

    // A Maildir path that is a regular file: temporary (an admin can fix it).
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = deliver_maildir(&d, &file, &[], b"Subject: x\n\ny\n");
    common::assert_exit(&out, 75);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));

    // A corrupt maildirsize: temporary, named, nothing delivered.
    let out = deliver_maildir(&d, &md, &[], b"Subject: ok\n\nfirst\n");
    assert!(out.status.success());
    std::fs::write(md.join("maildirsize"), b"10000S,xC\n0 0\n").unwrap();
    let out = deliver_maildir(&d, &md, &[], b"Subject: x\n\ny\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("maildirsize") && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(files_in(&md.join("new")).len(), 1);

    // Over the size limit: 65.
    std::fs::remove_file(md.join("maildirsize")).unwrap();
    let out = d.run(
        &[
            "--set",
            "message_size_limit=100",
            "deliver",
            "--maildir",
            md.to_str().unwrap(),
        ],
        format!("Subject: big\n\n{}\n", "z".repeat(200)).as_bytes(),
    );
    common::assert_exit(&out, 65);
    assert_eq!(files_in(&md.join("new")).len(), 1);
    assert!(files_in(&md.join("tmp")).is_empty());

    // A relative Maildir name without a directory part.
    let out = d.run(
        &["deliver", "--maildir", "RelMaildir"],
        b"Subject: rel\n\nx\n",
    );
    common::assert_exit(&out, 0);
    assert_eq!(files_in(&d.path().join("RelMaildir/new")).len(), 1);

    // Usage errors: 64.
    assert_eq!(d.run(&["deliver"], b"").status.code(), Some(64));
    assert_eq!(
        d.run(
            &["deliver", "--maildir", "x", "--folder", "a..b"],
            b"Subject: x\n\n"
        )
        .status
        .code(),
        Some(73)
    );
}

#[test]
fn quota_policies() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    assert!(
        deliver_maildir(&d, &md, &[], b"Subject: 1\n\n12345\n")
            .status
            .success()
    );
    std::fs::write(md.join("maildirsize"), b"30S\n18 1\n").unwrap();
    let over = b"Subject: 2\n\n0123456789\n";
    for (policy, code, delivered) in [("defer", 75, 1), ("reject", 77, 1), ("discard", 0, 1)] {
        let out = d.run(
            &[
                "--set",
                &format!("over_quota={policy}"),
                "deliver",
                "--maildir",
                md.to_str().unwrap(),
            ],
            over,
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(files_in(&md.join("new")).len(), delivered, "{policy}");
    }
}

#[test]
fn unwritable_maildir_is_temporary() {
    let d = Dir::new();
    let locked = d.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let md = locked.join("Maildir");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    let mut cmd = if common::is_root() {
        // Root ignores modes: run the delivery as nobody, who cannot enter
        // the (root-owned, 0700) test directory at all.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::sluice_bin());
        c
    } else {
        Command::new(common::sluice_bin())
    };
    cmd.env("SLUICE_HOME", d.path().join("home")).args([
        "deliver",
        "--maildir",
        md.to_str().unwrap(),
    ]);
    let out = common::run_with_input(&mut cmd, b"Subject: x\n\ny\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("Permission denied") || err.contains("permission"),
        "{err}"
    );
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    assert!(!md.join("new").exists() || files_in(&md.join("new")).is_empty());
}

#[test]
fn a_100_mb_message_is_streamed_with_flat_memory() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    let mut child = d
        .sluice()
        .args([
            "--set",
            "message_size_limit=0",
            "deliver",
            "--maildir",
            md.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let total: u64 = 100 * 1024 * 1024;
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"Subject: big\n\n").unwrap();
        let line = [b'x'; 1023];
        let mut written = 14u64;
        while written < total {
            stdin.write_all(&line).unwrap();
            stdin.write_all(b"\n").unwrap();
            written += 1024;
        }
        written
    });
    let pid = child.id();
    let mut peak_kb = 0u64;
    // Sample the child's high-water mark while it runs.
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(l) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kb = peak_kb.max(
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    common::assert_exit(&out, 0);
    let names = files_in(&md.join("new"));
    assert_eq!(names.len(), 1);
    assert_eq!(size_field(&names[0]), Some(written));
    assert!(peak_kb > 0, "could not sample memory");
    assert!(
        peak_kb < 40 * 1024,
        "peak RSS {peak_kb} KiB for a 100 MB message: not streamed"
    );
}

#[test]
fn four_writers_and_a_reader_lose_nothing() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    assert!(
        deliver_maildir(&d, &md, &[], b"Subject: seed\n\n0\n")
            .status
            .success()
    );
    let per_writer = 500;
    let stop = d.path().join("stop");
    // An independent reader moving new/ → cur/ as an IMAP server would.
    let mover = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, time
md, stop = sys.argv[1], sys.argv[2]
moved = 0
while True:
    done = os.path.exists(stop)
    for n in os.listdir(md + "/new"):
        try:
            os.rename(md + "/new/" + n, md + "/cur/" + n + ":2,S")
            moved += 1
        except FileNotFoundError:
            pass
    if done:
        break
    time.sleep(0.002)
print(moved)
"#,
        )
        .arg(&md)
        .arg(&stop)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    std::thread::scope(|s| {
        for w in 0..4 {
            let (d, md) = (&d, &md);
            s.spawn(move || {
                for i in 0..per_writer {
                    let msg = format!(
                        "Subject: {w}-{i}\nX-Id: {w}-{i}\n\n{}\n",
                        "b".repeat(i * 7 % 3000)
                    );
                    let out = deliver_maildir(d, md, &[], msg.as_bytes());
                    common::assert_exit(&out, 0);
                }
            });
        }
    });
    std::fs::write(&stop, b"").unwrap();
    let moved = mover.wait_with_output().unwrap();
    assert!(moved.status.success());
    let mut ids = std::collections::BTreeSet::new();
    for sub in ["new", "cur"] {
        for name in files_in(&md.join(sub)) {
            let body = std::fs::read(md.join(sub).join(&name)).unwrap();
            assert_eq!(
                size_field(&name),
                Some(body.len() as u64),
                "{name}: incomplete"
            );
            let text = String::from_utf8(body).unwrap();
            if let Some(id) = text.lines().find_map(|l| l.strip_prefix("X-Id: ")) {
                assert!(ids.insert(id.to_string()), "{id} delivered twice");
            }
        }
    }
    assert_eq!(ids.len(), 4 * per_writer, "distinct complete messages");
    assert!(files_in(&md.join("tmp")).is_empty(), "tmp/ must be empty");
    let moved: usize = String::from_utf8_lossy(&moved.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(moved > 0, "the reader moved nothing: the test did not race");
}

#[test]
fn kill_9_leaves_only_complete_messages_where_readers_look() {
    let d = Dir::new();
    let md = d.path().join("Maildir");
    assert!(
        deliver_maildir(&d, &md, &[], b"Subject: seed\n\n0\n")
            .status
            .success()
    );
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut kills = 0;
    let mut completed = 0;
    let mut i = 0;
    while kills < 200 && i < 1000 {
        i += 1;
        let mut child = d
            .sluice()
            .args(["deliver", "--maildir", md.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Feed the message in pieces so that the kill can land while the
        // file is being written, synced or renamed.
        let chunks = 1 + (next() % 6) as usize;
        let kill_after = next() % 12;
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(format!("Subject: {i}\n\n").as_bytes());
            for _ in 0..chunks {
                let _ = stdin.write_all(&[b'k'; 8191]);
                let _ = stdin.write_all(b"\n");
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        std::thread::sleep(Duration::from_millis(kill_after));
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill(); // SIGKILL
            kills += 1;
        } else {
            completed += 1;
        }
        let _ = child.wait();
        let _ = feeder.join();
    }
    assert!(
        kills >= 200,
        "only {kills} kills landed ({completed} completed)"
    );
    for sub in ["new", "cur"] {
        for name in files_in(&md.join(sub)) {
            let len = std::fs::metadata(md.join(sub).join(&name)).unwrap().len();
            assert_eq!(size_field(&name), Some(len), "{sub}/{name} is partial");
        }
    }
    eprintln!(
        "kills: {kills}, completed: {completed}, in new/: {}, leftovers in tmp/: {}",
        files_in(&md.join("new")).len(),
        files_in(&md.join("tmp")).len()
    );
}

#[test]
fn as_root_d_user_delivers_files_the_user_owns() {
    if !common::is_root() {
        eprintln!("NOTICE: not running as root; the ownership test needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new();
    let out = d.run(
        &[
            "--set",
            "mailbox.users=passwd",
            "--set",
            "primary_hostname=mx.test",
            "deliver",
            "-d",
            "nobody",
        ],
        b"Subject: for nobody\n\nx\n",
    );
    common::assert_exit(&out, 0);
    let md = d.path().join("home/mail/mx.test/nobody");
    let names = files_in(&md.join("new"));
    assert_eq!(names.len(), 1);
    for p in [md.clone(), md.join("new"), md.join("new").join(&names[0])] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.uid(), 65534, "{} is not nobody's", p.display());
    }
    // The shared parent is not given to the first user delivered to.
    assert_eq!(
        std::fs::metadata(d.path().join("home/mail/mx.test"))
            .unwrap()
            .uid(),
        0
    );
    // A user the password database does not know: 67.
    let out = d.run(
        &[
            "--set",
            "mailbox.users=passwd",
            "deliver",
            "-d",
            "no-such-user-xyz",
        ],
        b"Subject: x\n\ny\n",
    );
    common::assert_exit(&out, 67);
}

/// One process per message: the binary must not load `libgcc_s.so.1`,
/// whose constructor probes the CPU with `cpuid` (trapped by hypervisors)
/// on every start; build.rs links the unwinder statically instead. Checked
/// where the toolchain has the static unwinder to give.
#[test]
fn the_binary_does_not_load_the_shared_unwinder() {
    let static_unwinder = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| Path::new(p).is_absolute());
    if static_unwinder.is_none() {
        eprintln!("no libgcc_eh.a here: the shared unwinder is the only one");
        return;
    }
    let out = Command::new("readelf")
        .args(["-d", env!("CARGO_BIN_EXE_sluice")])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success());
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(dynamic.contains("(NEEDED)"), "{dynamic}");
    assert!(!dynamic.contains("libgcc_s"), "{dynamic}");
    let v = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success());
}
