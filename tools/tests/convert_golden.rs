//! Golden cases: one mbox per variant and edge, and exactly what the
//! Maildir must hold afterwards (bytes, flags, file times, names).

mod common;

use common::*;
use std::fs;

/// 2020-01-01 00:20:00 UTC and one day later.
const T1: i64 = 1_577_838_000;
const T2: i64 = T1 + 86_400;

struct Case {
    name: &'static str,
    mbox: Vec<u8>,
    args: &'static [&'static str],
    /// (stored bytes, flags: None = new/, mtime)
    want: Vec<(Vec<u8>, Option<&'static str>, i64)>,
    /// A note the report must carry.
    note: Option<&'static str>,
}

fn f(secs: i64) -> String {
    from_line("a@example.org", secs)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn cases() -> Vec<Case> {
    let long_line = format!("Subject: long\n\n{}\n", "x".repeat(200_000));
    let mut big_header = String::new();
    for i in 0..3000 {
        big_header.push_str(&format!("X-Filler-{i:04}: {}\n", "h".repeat(36)));
    }
    let big_header = format!("{big_header}Subject: big header\n\nbody\n");
    vec![
        Case {
            name: "mboxrd quoting at several depths round-trips, flags map",
            mbox: format!(
                "{}Subject: rd\nStatus: RO\nX-Status: AF\n\n>From one\n>>From two\n>>>From three\n>Fromage\n\n{}Subject: plain\n\nhi\n",
                f(T1),
                f(T2)
            )
            .into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: rd\n\nFrom one\n>From two\n>>From three\n>Fromage\n".to_vec(), Some("FRS"), T1),
                (b"Subject: plain\n\nhi\n".to_vec(), None, T2),
            ],
            note: Some("read as mboxrd"),
        },
        Case {
            // mboxo's known loss: an original ">From " line was not quoted by
            // the writer, so it reads back as "From ".
            name: "mboxo unquotes one level only",
            mbox: format!("{}Subject: o\nStatus: O\n\n>From one\n>>From two\n", f(T1)).into_bytes(),
            args: &["--format", "mboxo"],
            want: vec![(b"Subject: o\n\nFrom one\n>>From two\n".to_vec(), Some(""), T1)],
            note: Some("mboxo (as told)"),
        },
        Case {
            name: "mboxcl2: Content-Length right, unquoted From_ line inside a body",
            mbox: {
                let body = format!("one\n\n{}still the first message\n", f(T2));
                format!(
                    "{}Subject: cl2\nContent-Length: {}\n\n{body}\n{}Subject: second\nContent-Length: 3\n\nhi\n",
                    f(T1),
                    body.len(),
                    f(T2)
                )
                .into_bytes()
            },
            args: &[],
            want: vec![
                (
                    format!("Subject: cl2\n\none\n\n{}still the first message\n", f(T2)).into_bytes(),
                    None,
                    T1,
                ),
                (b"Subject: second\n\nhi\n".to_vec(), None, T2),
            ],
            note: Some("mboxcl2"),
        },
        Case {
            name: "Content-Length wrong: split at From_ lines, header dropped",
            mbox: format!(
                "{}Subject: wrong\nContent-Length: 5\n\nlonger than five\n\n{}Subject: b\nContent-Length: 2\n\nb\n",
                f(T1),
                f(T2)
            )
            .into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: wrong\n\nlonger than five\n".to_vec(), None, T1),
                (b"Subject: b\n\nb\n".to_vec(), None, T2),
            ],
            note: Some("Content-Length"),
        },
        Case {
            name: "Content-Length missing on one message",
            mbox: format!(
                "{}Subject: a\nContent-Length: 2\n\na\n\n{}Subject: b\n\nb\n",
                f(T1),
                f(T2)
            )
            .into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: a\n\na\n".to_vec(), None, T1),
                (b"Subject: b\n\nb\n".to_vec(), None, T2),
            ],
            note: None,
        },
        Case {
            name: "CRLF file",
            mbox: format!(
                "{}Subject: crlf\r\nStatus: R\r\n\r\nline\r\n>From x\r\n\r\n{}Subject: two\r\n\r\nz\r\n",
                f(T1).replace('\n', "\r\n"),
                f(T2).replace('\n', "\r\n")
            )
            .into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: crlf\r\n\r\nline\r\nFrom x\r\n".to_vec(), Some("S"), T1),
                (b"Subject: two\r\n\r\nz\r\n".to_vec(), None, T2),
            ],
            note: None,
        },
        Case {
            name: "no final newline",
            mbox: format!("{}Subject: a\n\na\n\n{}Subject: b\n\nno newline", f(T1), f(T2)).into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: a\n\na\n".to_vec(), None, T1),
                (b"Subject: b\n\nno newline".to_vec(), None, T2),
            ],
            note: None,
        },
        Case {
            name: "an empty message",
            mbox: format!("{}\n{}Subject: b\n\nb\n", f(T1), f(T2)).into_bytes(),
            args: &[],
            want: vec![(Vec::new(), None, T1), (b"Subject: b\n\nb\n".to_vec(), None, T2)],
            note: None,
        },
        Case {
            name: "8-bit and invalid UTF-8 bytes",
            mbox: cat(&[
                f(T1).as_bytes(),
                b"Subject: =?utf-8?q?caf=C3=A9?=\nX-Raw: caf\xc3\xa9 \xff\xfe\n\n\x80\x81 body \xc3\x28\n",
            ]),
            args: &[],
            want: vec![(
                b"Subject: =?utf-8?q?caf=C3=A9?=\nX-Raw: caf\xc3\xa9 \xff\xfe\n\n\x80\x81 body \xc3\x28\n".to_vec(),
                None,
                T1,
            )],
            note: None,
        },
        Case {
            name: "a 200 KB line",
            mbox: format!("{}{long_line}", f(T1)).into_bytes(),
            args: &[],
            want: vec![(long_line.clone().into_bytes(), None, T1)],
            note: None,
        },
        Case {
            name: "150 KB of headers, with a Status at the end",
            mbox: format!("{}{}", f(T1), big_header.replace("Subject: big header\n", "Subject: big header\nStatus: RO\n")).into_bytes(),
            args: &[],
            want: vec![(big_header.clone().into_bytes(), Some("S"), T1)],
            note: None,
        },
        Case {
            name: "a 0-byte file is an empty mailbox",
            mbox: Vec::new(),
            args: &[],
            want: vec![],
            note: None,
        },
        Case {
            name: "keywords and UIDs; UW-IMAP's pseudo message is skipped",
            mbox: format!(
                "{}From: Mail System Internal Data <MAILER-DAEMON@h>\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1100000000 0000000009 Work\nStatus: RO\n\nThis text is part of the internal format of your mail folder.\n\n{}Subject: a\nX-UID: 4\nX-Keywords: Work, $Junk\nStatus: RO\n\na\n\n{}Subject: b\nX-UID: 7\nX-Keywords: $Junk\n\nb\n",
                f(T1),
                f(T1),
                f(T2)
            )
            .into_bytes(),
            args: &[],
            want: vec![
                (b"Subject: a\n\na\n".to_vec(), Some("Sab"), T1),
                (b"Subject: b\n\nb\n".to_vec(), Some("b"), T2),
            ],
            note: None,
        },
        Case {
            name: "--keep-status-headers keeps them",
            mbox: format!("{}Subject: k\nStatus: RO\nX-UID: 3\n\nk\n", f(T1)).into_bytes(),
            args: &["--keep-status-headers"],
            want: vec![(b"Subject: k\nStatus: RO\nX-UID: 3\n\nk\n".to_vec(), Some("S"), T1)],
            note: None,
        },
    ]
}

#[test]
fn golden_cases() {
    for case in cases() {
        // Also in windows of 64 bytes: every window is cut after a message
        // or grown to hold one, and the outcome must not change.
        let mut offsets = Vec::new();
        for window in [&[][..], &["--window", "64"][..]] {
            eprintln!("== {} {window:?}", case.name);
            offsets.push(check_case(&case, window));
        }
        assert_eq!(offsets[0], offsets[1], "{}: file names", case.name);
    }
}

/// Converts `case` and checks the Maildir; returns the offsets in the
/// file names (`Q<offset>`), in name order.
fn check_case(case: &Case, window: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mbox");
    fs::write(&src, &case.mbox).unwrap();
    let dest = dir.path().join("Maildir");
    let out = convert(&[&["--json"][..], window, case.args, &[s(&src), s(&dest)]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", case.name);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = read_maildir(&dest);
    assert_eq!(got.len(), case.want.len(), "{}: message count", case.name);
    for (i, (e, (bytes, flags, mtime))) in got.iter().zip(&case.want).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&e.bytes),
            String::from_utf8_lossy(bytes),
            "{}: message {}",
            case.name,
            i + 1
        );
        assert_eq!(&e.bytes, bytes, "{}: message {} bytes", case.name, i + 1);
        assert_eq!(
            e.flags.as_deref(),
            *flags,
            "{}: message {} flags",
            case.name,
            i + 1
        );
        assert_eq!(e.mtime, *mtime, "{}: message {} mtime", case.name, i + 1);
    }
    assert_eq!(report["messages"], case.want.len(), "{}", case.name);
    assert_eq!(report["mismatches"], 0, "{}", case.name);
    if let Some(note) = case.note {
        let notes = report["sources"][0]["notes"].to_string();
        assert!(
            notes.contains(note),
            "{}: notes {notes} lack {note:?}",
            case.name
        );
    }
    // The source is never modified.
    assert_eq!(fs::read(&src).unwrap(), case.mbox, "{}", case.name);
    assert!(!dir.path().join("mbox.lock").exists());
    got.iter()
        .map(|e| {
            let q = e.name.split_once('Q').expect("Q<offset>").1;
            q.split('.').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn dovecot_side_files() {
    let case = cases()
        .into_iter()
        .find(|c| c.name.starts_with("keywords"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mbox");
    fs::write(&src, &case.mbox).unwrap();
    let dest = dir.path().join("Maildir");
    assert_eq!(convert(&[s(&src), s(&dest)]).status.code(), Some(0));
    assert_eq!(
        fs::read_to_string(dest.join("dovecot-keywords")).unwrap(),
        "0 Work\n1 $Junk\n"
    );
    let names: Vec<String> = read_maildir(&dest)
        .into_iter()
        .map(|e| e.name.split(":2,").next().unwrap().to_string())
        .collect();
    assert_eq!(
        fs::read_to_string(dest.join("dovecot-uidlist")).unwrap(),
        format!("3 V1100000000 N9\n4 :{}\n7 :{}\n", names[0], names[1])
    );
}

#[test]
fn bad_files_are_reported_and_the_rest_converted() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    fs::create_dir_all(mail.join("Lists")).unwrap();
    fs::write(mail.join("inbox"), format!("{}Subject: in\n\nin\n", f(T1))).unwrap();
    fs::write(mail.join("notes.txt"), "Just some notes, no mail.\n").unwrap();
    fs::write(
        mail.join("Lists/rust"),
        format!("{}Subject: r\n\nr\n", f(T2)),
    )
    .unwrap();
    fs::write(mail.join("Lists/empty"), "").unwrap();
    let dest = dir.path().join("Maildir");
    let out = convert(&[s(&mail), s(&dest)]);
    assert_eq!(out.status.code(), Some(65), "not an mbox → DATAERR");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("skipped {}", mail.join("notes.txt").display()))
            && text.contains("not begin with a From_ line"),
        "{text}"
    );
    assert_eq!(read_maildir(&dest).len(), 1);
    assert_eq!(read_maildir(&dest.join(".Lists.rust")).len(), 1);
    assert!(read_maildir(&dest.join(".Lists.empty")).is_empty());
    assert!(dest.join(".Lists.rust/maildirfolder").is_file());
    assert!(!dest.join(".notes.txt").exists());
    // Nothing was written by a dry run.
    let dry = dir.path().join("dry");
    let out = convert(&["--dry-run", s(&mail), s(&dry)]);
    assert_eq!(out.status.code(), Some(65));
    assert!(!dry.exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("would write 2 messages"));
}

#[test]
fn ownership_follows_the_source_when_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: ownership is not changed, nothing to check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    fs::create_dir(&spool).unwrap();
    for (user, uid) in [("alice", 4242u32), ("bob", 4343)] {
        let p = spool.join(user);
        fs::write(&p, format!("{}Subject: for {user}\n\nhi\n", f(T1))).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(uid + 1)).unwrap();
    }
    let dest = dir.path().join("home");
    let out = convert(&["--users", s(&spool), s(&dest)]);
    assert_eq!(out.status.code(), Some(0));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for (user, uid) in [("alice", 4242u32), ("bob", 4343)] {
        let md = dest.join(user).join("Maildir");
        let e = read_maildir(&md);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].uid, e[0].gid), (uid, uid + 1));
        for d in [md.clone(), md.join("cur"), md.join("new"), md.join("tmp")] {
            let m = fs::metadata(&d).unwrap();
            assert_eq!(
                (m.uid(), m.permissions().mode() & 0o777),
                (uid, 0o700),
                "{}",
                d.display()
            );
        }
        let f = fs::read_dir(md.join("new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
}
