//! An independent reader checks the conversion: Python's `mailbox` module
//! reads the source mbox and the written Maildir, and every message must
//! match after the documented transformation (mboxrd unquoting, the
//! bookkeeping headers removed), with flags as Python maps them and the
//! `From_` date as the file time.

mod common;

use common::*;
use std::fs;
use std::process::Command;

const CHECK: &str = r#"
import calendar, mailbox, os, re, sys, time

src, md = sys.argv[1], sys.argv[2]
PRIVATE = {b"status", b"x-status", b"x-uid", b"x-imap", b"x-imapbase", b"x-keywords", b"content-length"}

def unquote(b):
    return re.sub(rb"(?m)^>(>*From )", rb"\1", b)

def strip(b):
    head, sep, body = b.partition(b"\n\n")
    out, skip = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                out.append(line)
            continue
        skip = line.split(b":", 1)[0].lower() in PRIVATE
        if not skip:
            out.append(line)
    return b"\n".join(out) + sep + body

box = mailbox.mbox(src, create=False)
names = sorted(os.listdir(os.path.join(md, "new")) + os.listdir(os.path.join(md, "cur")))
sub_of = {n: ("cur" if n in os.listdir(os.path.join(md, "cur")) else "new") for n in names}
maildir = mailbox.Maildir(md, factory=None, create=False)
by_name = {}
for key in maildir.iterkeys():
    by_name[os.path.basename(maildir._toc[key])] = key
keys = list(box.iterkeys())
assert len(keys) == len(names), (len(keys), len(names))
bad = 0
for k, name in zip(keys, names):
    m = box.get_message(k)
    want = strip(unquote(box.get_bytes(k)))
    path = os.path.join(md, sub_of[name], name)
    got = open(path, "rb").read()
    problems = []
    if got != want:
        problems.append("bytes differ")
    conv = mailbox.MaildirMessage(m)
    mine = maildir.get_message(by_name[name])
    if sorted(conv.get_flags()) != sorted(mine.get_flags()):
        problems.append("flags %r, Python says %r" % (mine.get_flags(), conv.get_flags()))
    if conv.get_subdir() == "cur" and mine.get_subdir() != "cur":
        problems.append("should be in cur/")
    if not conv.get_flags() and conv.get_subdir() == "new" and mine.get_subdir() != "new":
        problems.append("should be in new/")
    date = m.get_from().split(None, 1)[1]
    when = calendar.timegm(time.strptime(date, "%a %b %d %H:%M:%S %Y"))
    if int(os.stat(path).st_mtime) != when:
        problems.append("mtime %d, From_ line says %d" % (os.stat(path).st_mtime, when))
    if problems:
        bad += 1
        if bad <= 5:
            print("message", k + 1, name, "; ".join(problems))
print(len(keys), "messages compared,", bad, "bad")
sys.exit(1 if bad else 0)
"#;

#[test]
fn python_mailbox_reads_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let msgs = generate(1500, 7);
    let src = dir.path().join("inbox");
    fs::write(&src, mboxrd(&msgs)).unwrap();
    let dest = dir.path().join("Maildir");
    let out = convert(&[s(&src), s(&dest)]);
    assert_eq!(out.status.code(), Some(0));
    let script = dir.path().join("check.py");
    fs::write(&script, CHECK).unwrap();
    let py = Command::new(python())
        .arg(&script)
        .arg(&src)
        .arg(&dest)
        .output()
        .expect("python3 is needed for this test (Python's mailbox module is the reference)");
    let text = String::from_utf8_lossy(&py.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&py.stderr));
    assert!(py.status.success(), "Python's mailbox disagrees: {text}");
    assert!(text.contains("1500 messages compared, 0 bad"), "{text}");

    // Our own expectation agrees as well (flags, new/ vs cur/, bytes).
    let got = read_maildir(&dest);
    assert_eq!(got.len(), msgs.len());
    for (e, m) in got.iter().zip(&msgs) {
        assert_eq!(e.bytes, m.stored, "{}", m.message_id);
        assert_eq!(e.flags, m.flags, "{}", m.message_id);
        assert_eq!(e.mtime, m.secs, "{}", m.message_id);
    }
}
