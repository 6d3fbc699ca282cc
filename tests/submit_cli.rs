//! `sluice submit`, `sendmail`, `-bm`: what is queued, what is added, exit
//! codes, and the delivery that follows.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Dir, run_with_input};

/// A data directory with a fixed host name and login, so that output is
/// the same on every machine.
fn dir() -> Dir {
    let d = Dir::new();
    std::fs::write(
        d.path().join("sluice.toml"),
        "primary_hostname = \"test.example\"\n",
    )
    .unwrap();
    d
}

/// The binary with this directory's configuration (through
/// $SLUICE_CONFIG, which a background delivery inherits) and a fixed login.
fn command(d: &Dir) -> std::process::Command {
    let mut c = d.sluice();
    c.env("SLUICE_CONFIG", d.path().join("sluice.toml"))
        .env("LOGNAME", "tester")
        .env("USER", "tester");
    c
}

/// `sluice ARGS` with `stdin`.
fn sluice(d: &Dir, args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(command(d).args(args), stdin)
}

/// The binary invoked under another name (`sendmail`, `mailq`).
fn as_program(d: &Dir, name: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(command(d).arg0(name).args(args), stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Queues with -v and returns the ID printed.
fn queued_id(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 23, "{id:?}");
    id
}

fn header_file(d: &Dir, id: &str) -> String {
    let out = sluice(d, &["queue", "show", id, "--headers"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn queues_with_added_headers_and_prints_nothing_without_v() {
    let d = dir();
    let msg = b"Subject: hello\n\nbody line\n";
    let out = sluice(&d, &["submit", "--queue-only", "bob@example.net"], msg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let count = sluice(&d, &["queue", "count"], b"");
    assert_eq!(text(&count.stdout), "1\n");

    let out = sluice(&d, &["submit", "--queue-only", "-v", "bob"], msg);
    let id = queued_id(&out);
    let h = header_file(&d, &id);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines[0], format!("{id}-H"));
    assert!(lines[1].starts_with("tester "), "{h}");
    assert_eq!(lines[2], "<tester@test.example>");
    assert!(h.contains("\n-received_protocol local\n"), "{h}");
    assert!(h.contains("\n-ident tester\n"), "{h}");
    assert!(h.contains("\n1\nbob@test.example\n\n"), "{h}");
    // Received first; the missing Message-ID, From and Date added.
    let headers = &h[h.find("\n\n").unwrap() + 2..];
    assert!(
        headers.starts_with(&format!(
            "{:03}P Received: from tester by test.example with local",
            h_len(headers)
        )),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("I Message-ID: <E{id}@test.example>\n")),
        "{headers}"
    );
    assert!(
        headers.contains("F From: tester@test.example\n"),
        "{headers}"
    );
    assert!(headers.contains("  Date: "), "{headers}");
    assert!(headers.contains("  Subject: hello\n"), "{headers}");
    // The body, and the arrival in the main log and the message log.
    let body = sluice(&d, &["queue", "show", &id, "--body"], b"");
    assert_eq!(text(&body.stdout), format!("{id}-D\nbody line\n"));
    let mainlog = d.log("mainlog");
    assert!(
        mainlog.contains(&format!("{id} <= tester@test.example U=tester P=local S=")),
        "{mainlog}"
    );
    let msglog = sluice(&d, &["queue", "show", &id, "--log"], b"");
    assert!(
        text(&msglog.stdout).contains(" Received from tester@test.example U=tester P=local S=")
    );
}

/// The length field of the first header in the -H header section.
fn h_len(headers: &str) -> usize {
    headers[..3].parse().unwrap()
}

#[test]
fn exit_codes() {
    let d = dir();
    // No recipients: 64, with a message.
    let out = sluice(&d, &["submit"], b"Subject: x\n\nx\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("no recipients"),
        "{}",
        text(&out.stderr)
    );
    let out = sluice(&d, &["submit", "-t"], b"Subject: x\n\nx\n");
    assert_eq!(out.status.code(), Some(64));
    // Nothing on stdin (or only the ending dot): 65.
    for input in [&b""[..], b".\n"] {
        let out = sluice(&d, &["submit", "bob@example.net"], input);
        assert_eq!(out.status.code(), Some(65), "{input:?}");
        assert!(
            text(&out.stderr).contains("0 bytes"),
            "{}",
            text(&out.stderr)
        );
    }
    // Over message_size_limit: 65.
    let out = sluice(
        &d,
        &["--set", "message_size_limit=100", "submit", "b@x"],
        &[b'x'; 500],
    );
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    // A spool that cannot be written: 75 (temporary), nothing queued.
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(d.home().join("spool"), b"not a directory").unwrap();
    let out = sluice(&d, &["submit", "bob@example.net"], b"x\n");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("spool"), "{}", text(&out.stderr));
}

#[test]
fn dot_ends_the_message_unless_i() {
    let d = dir();
    let msg = b"Subject: dots\n\nbefore\n.\nafter\n";
    let id = queued_id(&sluice(&d, &["submit", "--queue-only", "-v", "b@x"], msg));
    let body = sluice(&d, &["queue", "show", &id, "--body"], b"");
    assert_eq!(text(&body.stdout), format!("{id}-D\nbefore\n"));
    for flag in ["-i", "-oi"] {
        let out = as_program(&d, "sendmail", &["-odq", "-v", flag, "b@x"], msg);
        let id = queued_id(&out);
        let body = sluice(&d, &["queue", "show", &id, "--body"], b"");
        assert_eq!(
            text(&body.stdout),
            format!("{id}-D\nbefore\n.\nafter\n"),
            "{flag}"
        );
    }
    // CRLF input is stored with LF.
    let id = queued_id(&sluice(
        &d,
        &["submit", "--queue-only", "-v", "b@x"],
        b"Subject: c\r\n\r\nx\r\n",
    ));
    let body = sluice(&d, &["queue", "show", &id, "--body"], b"");
    assert_eq!(text(&body.stdout), format!("{id}-D\nx\n"));
}

#[test]
fn t_takes_recipients_from_headers_minus_the_arguments() {
    let d = dir();
    let msg = b"To: Ann <ann@example.org>, bob@example.org\nCc: carol\nBcc: dan@example.org\nSubject: t\n\nx\n";
    let out = as_program(
        &d,
        "sendmail",
        &["-t", "-odq", "-v", "bob@example.org"],
        msg,
    );
    let id = queued_id(&out);
    let h = header_file(&d, &id);
    // Exim's rule: bob, named on the command line, is removed.
    assert!(
        h.contains("\n3\nann@example.org\ncarol@test.example\ndan@example.org\n\n"),
        "{h}"
    );
    // Bcc: is kept in the -H file, marked deleted.
    assert!(h.contains("* Bcc: dan@example.org\n"), "{h}");
    assert!(
        h.contains("T To: Ann <ann@example.org>, bob@example.org\n"),
        "{h}"
    );
}

#[test]
fn sendmail_and_bm_forms_and_f_and_full_name() {
    let d = dir();
    let msg = b"Subject: forms\n\nx\n";
    let id = queued_id(&as_program(
        &d,
        "sendmail",
        &[
            "-odq",
            "-v",
            "-f",
            "list-bounces@example.org",
            "-F",
            "The List",
            "a@x",
            "b@x",
        ],
        msg,
    ));
    let h = header_file(&d, &id);
    assert!(h.contains("\n<list-bounces@example.org>\n"), "{h}");
    assert!(
        h.contains("F From: The List <list-bounces@example.org>\n"),
        "{h}"
    );
    assert!(h.contains("\n2\na@x\nb@x\n\n"), "{h}");
    // A bounce sender.
    let id = queued_id(&sluice(&d, &["-bm", "-odq", "-v", "-f", "<>", "a@x"], msg));
    let h = header_file(&d, &id);
    assert!(h.contains("\n<>\n"), "{h}");
    // mailq lists them.
    let out = as_program(&d, "mailq", &[], b"");
    assert_eq!(out.status.code(), Some(0));
    let list = text(&out.stdout);
    assert!(list.contains(&format!("{id} <>\n")), "{list}");
    assert!(
        list.contains(" <list-bounces@example.org>\n          a@x\n          b@x\n\n"),
        "{list}"
    );
}

#[test]
fn without_queue_only_the_message_is_delivered_in_the_background() {
    let d = dir();
    let out = sluice(
        &d,
        &["submit", "-v", "bob@localhost"],
        b"Subject: now\n\ndeliver me\n",
    );
    let id = queued_id(&out);
    let new = d.maildir("localhost", "bob").join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = common::files_in(&new);
        let queued = text(&sluice(&d, &["queue", "count"], b"").stdout);
        if files.len() == 1 && queued == "0\n" {
            let m = std::fs::read(new.join(&files[0])).unwrap();
            assert!(text(&m).contains("deliver me"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{id} not delivered: {files:?}, queue {queued:?}, mainlog: {}, paniclog: {}",
            d.log("mainlog"),
            d.log("paniclog")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Path::new(&new).is_dir());
}

#[test]
fn the_background_delivery_sees_the_same_overrides() {
    let d = dir();
    let layout = "mailbox.maildir=boxes/{local}";
    let out = sluice(
        &d,
        &["--set", layout, "submit", "-v", "carol@localhost"],
        b"Subject: moved\n\nelsewhere\n",
    );
    let id = queued_id(&out);
    let new = d.home().join("boxes/carol/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::files_in(&new).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "{id} not delivered under the overridden layout; mainlog: {}",
            d.log("mainlog")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!d.maildir("localhost", "carol").exists());
}
