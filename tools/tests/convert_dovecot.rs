//! A real Dovecot serves the converted Maildir, and Python's imaplib checks
//! what an IMAP client sees: folder names, message counts, bytes, sizes,
//! flags, keywords, INTERNALDATE (= the From_ date), UIDVALIDITY and the
//! UIDs carried over from X-UID/X-IMAPbase (others in mbox order), with no
//! error in Dovecot's log.
//!
//! Needs the `dovecot` binary (Debian: dovecot-imapd); without it the test
//! prints a notice and passes. Dovecot runs on 127.0.0.1 with its own
//! base_dir and log, as the user the converted mail belongs to.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn dovecot_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("dovecot"))
        .find(|p| p.is_file())
}

/// One message: its mbox form and what IMAP must show for it.
struct M {
    mbox: String,
    stored: String,
    uid: u32,
    flags: &'static [&'static str],
    secs: i64,
}

fn msg(head_extra: &str, stored: &str, uid: u32, flags: &'static [&'static str], secs: i64) -> M {
    let (head, body) = stored.split_once("\n\n").unwrap();
    let head = if head_extra.is_empty() {
        head.to_string()
    } else {
        format!("{head}\n{head_extra}")
    };
    M {
        mbox: format!("{}{head}\n\n{body}\n", from_line("x@example.org", secs)),
        stored: stored.to_string(),
        uid,
        flags,
        secs,
    }
}

const T: i64 = 1_577_838_000;

/// A folder: file under mail/, IMAP name, UIDVALIDITY, mbox prefix, messages.
type Folder = (&'static str, &'static str, Option<u32>, String, Vec<M>);

fn corpus() -> Vec<Folder> {
    let pseudo = format!(
        "{}From: Mail System Internal Data <MAILER-DAEMON@h>\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 555 0000000003\nStatus: RO\n\nThis text is part of the internal format of your mail folder.\n\n",
        from_line("MAILER-DAEMON", T)
    );
    vec![
        (
            "inbox",
            "INBOX",
            Some(1234),
            String::new(),
            vec![
                msg(
                    "X-IMAPbase: 1234 9 Work $Junk\nX-UID: 4\nX-Keywords: Work, $Junk\nStatus: RO\nX-Status: AF",
                    "Subject: first\nMessage-ID: <1@t>\n\nread, answered, flagged\n>From quoted once in the original\n",
                    4,
                    &["\\Seen", "\\Answered", "\\Flagged", "Work", "$Junk"],
                    T,
                ),
                msg(
                    "X-UID: 7\nStatus: O\nX-Status: T",
                    "Subject: draft\nMessage-ID: <2@t>\n\nold draft\n",
                    7,
                    &["\\Draft"],
                    T + 60,
                ),
                msg(
                    "",
                    "Subject: new\nMessage-ID: <3@t>\n\nnot seen yet\n",
                    9,
                    &[],
                    T + 120,
                ),
            ],
        ),
        (
            "Sent",
            "Sent",
            Some(555),
            pseudo,
            vec![
                msg(
                    "X-UID: 1\nStatus: RO",
                    "Subject: s1\n\none\n",
                    1,
                    &["\\Seen"],
                    T,
                ),
                msg(
                    "X-UID: 2\nStatus: RO",
                    "Subject: s2\n\ntwo\n",
                    2,
                    &["\\Seen"],
                    T + 1,
                ),
            ],
        ),
        (
            "Lists/rust",
            "Lists/rust",
            None,
            String::new(),
            // Dates out of order: UIDs must follow the mbox, not the dates.
            vec![
                msg(
                    "Status: O\nX-Status: D",
                    "Subject: r1\n\nthird day\n",
                    1,
                    &["\\Deleted"],
                    T + 3 * 86_400,
                ),
                msg("", "Subject: r2\n\nfirst day\n", 2, &[], T + 86_400),
                msg("", "Subject: r3\n\nsecond day\n", 3, &[], T + 2 * 86_400),
            ],
        ),
        (
            "v1.2",
            "v1.2",
            None,
            String::new(),
            vec![msg("", "Subject: dotted folder\n\nx\n", 1, &[], T)],
        ),
        (
            "Entwürfe",
            "Entw&APw-rfe",
            None,
            String::new(),
            vec![M {
                mbox: format!(
                    "{}Subject: crlf\r\nStatus: RO\r\n\r\ncaf\u{e9} \r\n\r\n",
                    from_line("x@example.org", T).replace('\n', "\r\n")
                ),
                stored: "Subject: crlf\r\n\r\ncaf\u{e9} \r\n".into(),
                uid: 1,
                flags: &["\\Seen"],
                secs: T,
            }],
        ),
    ]
}

const CHECK: &str = r#"
import datetime, hashlib, imaplib, json, re, sys

port, expected = int(sys.argv[1]), json.load(open(sys.argv[2]))
M = imaplib.IMAP4("127.0.0.1", port)
M.login("test", "secret")
typ, lines = M.list()
names = set()
for l in lines:
    flags, name = re.match(rb'\((.*?)\) "/" (.*)', l).groups()
    if b"\\Noselect" not in flags and b"\\NonExistent" not in flags:
        names.add(name.decode().strip('"'))
problems = []
if names != set(expected):
    problems.append("folders %s, expected %s" % (sorted(names), sorted(expected)))
for folder, want in expected.items():
    typ, data = M.select('"%s"' % folder, readonly=True)
    if typ != "OK":
        problems.append("%s: cannot select: %s" % (folder, data)); continue
    if int(data[0]) != len(want["messages"]):
        problems.append("%s: %s messages, expected %d" % (folder, data[0], len(want["messages"])))
    uv = int(M.response("UIDVALIDITY")[1][0])
    if want["uidvalidity"] is not None and uv != want["uidvalidity"]:
        problems.append("%s: UIDVALIDITY %d, expected %d" % (folder, uv, want["uidvalidity"]))
    typ, data = M.fetch("1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    got = [d for d in data if isinstance(d, tuple)]
    for i, (w, (head, body)) in enumerate(zip(want["messages"], got)):
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = set(re.search(rb"FLAGS \((.*?)\)", head).group(1).decode().split()) - {"\\Recent"}
        date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1).decode()
        when = int(datetime.datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z").timestamp())
        size = int(re.search(rb"RFC822.SIZE (\d+)", head).group(1))
        where = "%s message %d" % (folder, i + 1)
        if uid != w["uid"]: problems.append("%s: UID %d, expected %d" % (where, uid, w["uid"]))
        if flags != set(w["flags"]): problems.append("%s: flags %s, expected %s" % (where, sorted(flags), sorted(w["flags"])))
        if when != w["date"]: problems.append("%s: INTERNALDATE %s, expected %d" % (where, date, w["date"]))
        if size != w["size"] or len(body) != w["size"]: problems.append("%s: size %d/%d, expected %d" % (where, size, len(body), w["size"]))
        if hashlib.sha256(body).hexdigest() != w["sha256"]: problems.append("%s: bytes differ" % where)
M.logout()
for p in problems: print(p)
print("checked", len(expected), "folders,", len(problems), "problems")
sys.exit(1 if problems else 0)
"#;

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// IMAP shows messages with CRLF line ends.
fn crlf(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

struct Dovecot(Child);

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then reap it.
        // SAFETY: kill(2) on the pid of a child we spawned and still own.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, port: u16, maildir: &Path, uid: u32, gid: u32) -> String {
    let (internal, login) = if rustix::process::geteuid().is_root() {
        ("dovecot".to_string(), "dovenull".to_string())
    } else {
        let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
        (me.clone(), me)
    };
    format!(
        "protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {internal}
default_login_user = {login}
mail_location = maildir:{md}
mail_plugins = listescape
first_valid_uid = 1
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
",
        d = dir.display(),
        md = maildir.display(),
    )
}

#[test]
fn dovecot_serves_the_converted_maildir() {
    let Some(dovecot) = dovecot_binary() else {
        eprintln!(
            "NOTICE: dovecot is not installed (Debian: dovecot-imapd); skipping the Dovecot test"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Dovecot's mail process runs as the mail's owner: let it reach the files.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = rustix::process::geteuid().is_root();
    let (uid, gid) = if root {
        (65534, 65534)
    } else {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    };
    let mail = dir.path().join("mail");
    fs::create_dir_all(mail.join("Lists")).unwrap();
    let mut expected = serde_json::Map::new();
    for (file, imap, uidvalidity, prefix, msgs) in corpus() {
        let mut data = prefix.into_bytes();
        let mut list = Vec::new();
        for m in &msgs {
            let (from, rest) = m.mbox.split_once('\n').unwrap();
            data.extend_from_slice(from.as_bytes());
            data.push(b'\n');
            data.extend_from_slice(&quote_rd(rest.as_bytes()));
            let body = crlf(&m.stored);
            list.push(serde_json::json!({
                "uid": m.uid, "flags": m.flags, "date": m.secs,
                "size": body.len(), "sha256": sha256_hex(&body),
            }));
        }
        let path = mail.join(file);
        fs::write(&path, &data).unwrap();
        if root {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        expected.insert(
            imap.into(),
            serde_json::json!({"uidvalidity": uidvalidity, "messages": list}),
        );
    }
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    if root {
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    }
    let maildir = home.join("Maildir");
    let out = convert(&[s(&mail), s(&maildir)]);
    assert_eq!(out.status.code(), Some(0));

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("dovecot.conf");
    fs::write(&conf, config(dir.path(), port, &maildir, uid, gid)).unwrap();
    let server = Dovecot(
        Command::new(&dovecot)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dovecot"),
    );
    let log = dir.path().join("dovecot.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let mut server = server;
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "dovecot did not start: {err}\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let expected_path = dir.path().join("expected.json");
    fs::write(
        &expected_path,
        serde_json::Value::Object(expected).to_string(),
    )
    .unwrap();
    let script = dir.path().join("check.py");
    fs::write(&script, CHECK).unwrap();
    let py = Command::new(python())
        .arg(&script)
        .arg(port.to_string())
        .arg(&expected_path)
        .output()
        .expect("python3 (imaplib) is needed for this test");
    // The log as it stood while serving (stopping the server adds a
    // warning about the signal).
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    drop(server);
    let text = String::from_utf8_lossy(&py.stdout);
    eprintln!(
        "{text}{}\n--- dovecot.log ---\n{log_text}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(py.status.success(), "IMAP check failed: {text}");
    assert!(text.contains("checked 5 folders, 0 problems"), "{text}");
    let bad: Vec<&str> = log_text
        .lines()
        .filter(|l| {
            l.contains("Error:")
                || l.contains("Fatal:")
                || l.contains("Panic:")
                || l.contains("Warning:")
        })
        .collect();
    assert!(bad.is_empty(), "Dovecot complained: {bad:#?}");
}
