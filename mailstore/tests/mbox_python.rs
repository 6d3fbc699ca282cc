//! Python's `mailbox` module as an independent mbox reader and writer.
//!
//! What Python does, which the comparisons below account for:
//! - reading (`mailbox.mbox`), it starts a message at every line beginning
//!   with `From ` (no blank line or date needed), drops the blank line
//!   before the next one, and removes no quoting at all: `get_bytes`
//!   returns `>From ` lines as they are in the file;
//! - writing, it quotes like mboxo (`\nFrom ` becomes `\n>From `, nothing
//!   else), ends each message with a newline and a blank line, and writes
//!   the `From_` date in UTC.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mailstore::lock::LockOptions;
use mailstore::mbox::{self, AppendOptions, Appender, Mbox, Variant, WarningKind, Zone};

fn python() -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import mailbox")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with the mailbox module is not available");
    }
    ok
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from python"))
        .collect()
}

/// Python reads `path`: (From_ line after "From ", message bytes) each.
fn python_read(path: &Path) -> Vec<(String, Vec<u8>)> {
    let script = r#"
import mailbox, sys
box = mailbox.mbox(sys.argv[1], create=False)
for key in box.iterkeys():
    print(box.get_message(key).get_from(), flush=False)
    print(box.get_bytes(key).hex())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("python output is text");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|c| (c[0].to_string(), unhex(c[1])))
        .collect()
}

/// Python appends raw messages (each given with its own `From_` line).
fn python_write(path: &Path, messages: &[Vec<u8>]) {
    let script = r#"
import mailbox, sys
box = mailbox.mbox(sys.argv[1])
box.lock()
for h in sys.argv[2:]:
    box.add(bytes.fromhex(h))
box.flush()
box.unlock()
box.close()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .args(messages.iter().map(|m| hex(m)))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn messages() -> Vec<Vec<u8>> {
    vec![
        b"From: a@example.org\nSubject: plain\n\nHello.\n".to_vec(),
        b"Subject: from lines\n\nFrom here on\n\nFrom the desk of the director:\n>From a quoted line\n>>From deeper\n\n"
            .to_vec(),
        b"Subject: no final newline\n\nlast line".to_vec(),
        b"Subject: binary\n\n\x00\x01\xff\xfe\x80 latin-1 caf\xe9\n\r\nCR LF line\r\n".to_vec(),
        b"Subject: looks like a separator\n\nx\n\nFrom someone@example.org Tue Jan  2 03:04:05 2024\nbody\n".to_vec(),
        Vec::new(),
    ]
}

fn with_newline(m: &[u8]) -> Vec<u8> {
    let mut v = m.to_vec();
    if !v.is_empty() && !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    v
}

#[test]
fn python_reads_what_we_append() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let app = Appender::new(AppendOptions::default());
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645);
    let msgs = messages();
    for (i, m) in msgs.iter().enumerate() {
        app.append(&path, &format!("sender{i}@example.org"), when, &m[..])
            .unwrap();
    }
    let got = python_read(&path);
    assert_eq!(got.len(), msgs.len(), "Python splits where we do");
    let local = mbox::from_line::format("x", 1_704_164_645);
    let date = String::from_utf8_lossy(&local[7..]).trim_end().to_string(); // after "From x "
    for (i, ((from, bytes), m)) in got.iter().zip(&msgs).enumerate() {
        assert_eq!(from, &format!("sender{i}@example.org {date}"));
        // Python shows our mboxrd quoting as it is in the file...
        assert_eq!(
            bytes,
            &mbox::quote::quote(Variant::Mboxrd, &with_newline(m)),
            "message {i}"
        );
        // ...and removing it gives the original back.
        assert_eq!(
            mbox::quote::unquote(Variant::Mboxrd, bytes).as_ref(),
            &with_newline(m)[..],
            "message {i}"
        );
    }
}

#[test]
fn we_read_what_python_writes() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let msgs = messages();
    let with_from: Vec<Vec<u8>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut v = format!("From py{i}@example.org Tue Jan  2 03:04:05 2024\n").into_bytes();
            v.extend_from_slice(m);
            v
        })
        .collect();
    python_write(&path, &with_from);

    let mbox = Mbox::open_locked(&path, &LockOptions::reader()).unwrap();
    let det = mbox.detect().unwrap();
    // The original had a >>From line, which Python (mboxo) left alone: the
    // detector reads the file as mboxrd and says so.
    assert_eq!(det.variant, Variant::Mboxrd);
    assert!(
        det.warnings
            .iter()
            .any(|w| matches!(w.kind, WarningKind::MboxrdAssumed { count: 1 })),
        "{:?}",
        det.warnings
    );
    let read = |v: Variant| -> Vec<Vec<u8>> {
        mbox.reader(v)
            .unwrap()
            .map(|m| m.bytes().into_owned())
            .collect()
    };

    // Read as mboxo (what Python wrote): every message exactly as given,
    // except that mboxo cannot tell an original ">From " from a quoted
    // "From ": that line comes back without its '>'.
    let as_o = read(Variant::Mboxo);
    assert_eq!(as_o.len(), msgs.len());
    for (i, (got, m)) in as_o.iter().zip(&msgs).enumerate() {
        // Python ends every message with a newline, even an empty one.
        let mut want = with_newline(m);
        if want.is_empty() {
            want.push(b'\n');
        }
        let want = if i == 1 {
            String::from_utf8(want)
                .unwrap()
                .replace("\n>From a quoted", "\nFrom a quoted")
                .into_bytes()
        } else {
            want
        };
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&want),
            "message {i}"
        );
    }
    // Read as detected (mboxrd): the same, and the ">>From" line loses a '>'.
    let as_rd = read(det.variant);
    assert_eq!(
        String::from_utf8_lossy(&as_rd[1]),
        String::from_utf8_lossy(&as_o[1]).replace(">>From deeper", ">From deeper")
    );
    // Envelope and date: Python wrote the date we gave, in UTC.
    for (i, m) in mbox.reader(Variant::Mboxo).unwrap().enumerate() {
        assert_eq!(m.from_line().sender_lossy(), format!("py{i}@example.org"));
        assert_eq!(
            m.from_line().date().timestamp(Zone::Fixed(0)),
            Some(1_704_164_645)
        );
    }
}

#[test]
fn python_default_from_lines_parse() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    // No From_ line given: Python writes "From MAILER-DAEMON <asctime UTC>".
    python_write(
        &path,
        &[
            b"Subject: x\n\nbody\n".to_vec(),
            b"Subject: y\n\nbody\n".to_vec(),
        ],
    );
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mbox = Mbox::open_unlocked(&path).unwrap();
    let msgs: Vec<_> = mbox.reader(Variant::Mboxrd).unwrap().collect();
    assert_eq!(msgs.len(), 2);
    for (m, subject) in msgs.iter().zip(["x", "y"]) {
        assert_eq!(m.from_line().sender(), b"MAILER-DAEMON");
        let t = m.from_line().date().timestamp(Zone::Fixed(0)).unwrap();
        assert!((t - before).abs() < 120, "{t} vs {before}");
        assert_eq!(
            m.bytes().as_ref(),
            format!("Subject: {subject}\n\nbody\n").as_bytes()
        );
    }
}
