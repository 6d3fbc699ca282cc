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
        "primary_hostname = \"test.example\"\n[dns]\nservers = [\"127.0.0.1:9\"]\ntimeout = \"1s\"\nattempts = 1\n",
    )
    .unwrap();
    d
}

/// The binary with this directory's configuration (through
/// $SLUICE_CONFIG, which a background delivery inherits). `$LOGNAME` and
/// `$USER` say "tester", which the submission must ignore: the submitter is
/// the real uid's password-database entry.
fn command(d: &Dir) -> std::process::Command {
    // The configuration file holds the tests' DNS (a closed loopback
    // port); the commands also run as `sendmail` and `mailq`.
    let mut c = d.sluice_bare();
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
    let login = common::login();
    let h = header_file(&d, &id);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines[0], format!("{id}-H"));
    assert!(lines[1].starts_with(&format!("{login} ")), "{h}");
    assert_eq!(lines[2], format!("<{login}@test.example>"));
    assert!(h.contains("\n-received_protocol local\n"), "{h}");
    assert!(h.contains(&format!("\n-ident {login}\n")), "{h}");
    assert!(h.contains("\n1\nbob@test.example\n\n"), "{h}");
    // Received first; the missing Message-ID, From and Date added.
    let headers = &h[h.find("\n\n").unwrap() + 2..];
    assert!(
        headers.starts_with(&format!(
            "{:03}P Received: from {login} by test.example with local",
            h_len(headers)
        )),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("I Message-ID: <E{id}@test.example>\n")),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("F From: {login}@test.example\n")),
        "{headers}"
    );
    assert!(headers.contains("  Date: "), "{headers}");
    assert!(headers.contains("  Subject: hello\n"), "{headers}");
    // The body, and the arrival in the main log and the message log.
    let body = sluice(&d, &["queue", "show", &id, "--body"], b"");
    assert_eq!(text(&body.stdout), format!("{id}-D\nbody line\n"));
    let mainlog = d.log("mainlog");
    assert!(
        mainlog.contains(&format!(
            "{id} <= {login}@test.example U={login} P=local S="
        )),
        "{mainlog}"
    );
    let msglog = sluice(&d, &["queue", "show", &id, "--log"], b"");
    assert!(text(&msglog.stdout).contains(&format!(
        " Received from {login}@test.example U={login} P=local S="
    )));
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

/// As root from cron or a daemon: no $USER, $LOGNAME or $HOME. The sender,
/// the log and the Received: header name root, from the password database.
#[test]
fn root_without_environment_is_root() {
    if !common::is_root() {
        eprintln!("SKIPPED: root_without_environment_is_root needs root");
        return;
    }
    let d = dir();
    let out = run_with_input(
        d.sluice()
            .env("SLUICE_CONFIG", d.path().join("sluice.toml"))
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("HOME")
            .args(["-odq", "-v", "bob@remote.example"]),
        b"Subject: x\n\nhi\n",
    );
    let id = queued_id(&out);
    let h = header_file(&d, &id);
    assert!(h.lines().nth(1).unwrap().starts_with("root 0 "), "{h}");
    assert!(h.contains("\n<root@test.example>\n"), "{h}");
    assert!(
        h.contains("P Received: from root by test.example with local"),
        "{h}"
    );
    assert!(h.contains("F From: root@test.example\n"), "{h}");
    let mainlog = d.log("mainlog");
    assert!(
        mainlog.contains(&format!("{id} <= root@test.example U=root P=local S=")),
        "{mainlog}"
    );
}

/// `qualify_domain` names the submitter's domain and qualifies bare local
/// parts; `primary_hostname` stays in the Received: header.
#[test]
fn qualify_domain_is_the_submitters_domain() {
    let d = dir();
    let login = common::login();
    let id = queued_id(&sluice(
        &d,
        &[
            "--set",
            "qualify_domain=mail.example",
            "submit",
            "-odq",
            "-v",
            "bob",
        ],
        b"Subject: q\n\nx\n",
    ));
    let h = header_file(&d, &id);
    assert!(h.contains(&format!("\n<{login}@mail.example>\n")), "{h}");
    assert!(h.contains("\n1\nbob@mail.example\n\n"), "{h}");
    assert!(
        h.contains(&format!("Received: from {login} by test.example")),
        "{h}"
    );
}

/// A uid with no password-database entry cannot name a sender: 67, as
/// Exim refuses it, and nothing is queued.
#[test]
fn a_uid_without_a_passwd_entry_is_refused() {
    if !common::is_root() || !common::have("setpriv") {
        eprintln!("SKIPPED: needs root and setpriv (util-linux)");
        return;
    }
    let d = dir();
    // The binary must be reachable by that uid.
    let bin = common::binary_for_others();
    let uid = "54321"; // no entry in /etc/passwd of a test machine
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .any(|l| l.split(':').nth(2) == Some(uid))
    );
    let out = run_with_input(
        std::process::Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ])
            .arg(&bin)
            .args(["-odq", "bob@example.net"])
            .env("SLUICE_HOME", d.home())
            .env("SLUICE_CONFIG", d.path().join("sluice.toml")),
        b"Subject: x\n\nx\n",
    );
    common::assert_exit(&out, 67);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("uid {uid} has no entry in the password database")),
        "{err}"
    );
    assert!(!d.home().join("spool").exists() || sluice(&d, &["-bpc"], b"").stdout == b"0\n");
}

/// Every option of sendmail's set (Exim's), through the binary under both
/// names: accepted and queued. Anything else: 64, naming the option.
#[test]
fn the_sendmail_option_table() {
    let d = dir();
    let accepted: &[&[&str]] = &[
        &["-oA/etc/aliases"],
        &["-oB"],
        &["-odb"],
        &["-odq"],
        &["-oee"],
        &["-oem"],
        &["-oep"],
        &["-oeq"],
        &["-oew"],
        &["-oi"],
        &["-oitrue"],
        &["-oMa", "192.0.2.9"],
        &["-oMr", "esmtp"],
        &["-oMs", "client.example"],
        &["-oMt", "ident"],
        &["-om"],
        &["-oo"],
        &["-oP", "/run/x.pid"],
        &["-or30s"],
        &["-os30s"],
        &["-oX", "2525"],
        &["-B8BITMIME"],
        &["-B7BIT"],
        &["-r", "a@example.org"],
        &["-F", "A Name"],
        &["-v"],
        &["-i"],
        &["-f", "a@example.org"],
        &["-bm"],
        &["-N", "success,failure"],
        &["-R", "hdrs"],
        &["-V", "envid-1"],
    ];
    let msg = b"Subject: opts\n\nx\n";
    let mut queued = 0;
    for opts in accepted {
        for name in ["sendmail", "sluice-submit"] {
            let mut args: Vec<&str> = vec!["-odq"];
            args.extend_from_slice(opts);
            args.push("bob@example.net");
            let out = if name == "sendmail" {
                as_program(&d, "sendmail", &args, msg)
            } else {
                let mut a = vec!["submit"];
                a.extend_from_slice(&args);
                sluice(&d, &a, msg)
            };
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {opts:?}: {}",
                text(&out.stderr)
            );
            queued += 1;
        }
    }
    // -t needs its recipients in the headers; -odi waits for delivery.
    let out = as_program(&d, "sendmail", &["-odq", "-t"], b"To: t@example.net\n\nx\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    queued += 1;
    let count = text(&sluice(&d, &["-bpc"], b"").stdout);
    assert_eq!(count.trim(), queued.to_string());

    let refused: &[&[&str]] = &[&["-oZZ"], &["-X"], &["-X", "/tmp/trace"], &["-G"]];
    for opts in refused {
        let mut args: Vec<&str> = opts.to_vec();
        args.push("bob@example.net");
        let out = as_program(&d, "sendmail", &args, msg);
        common::assert_exit(&out, 64);
        assert_eq!(
            text(&out.stderr).trim(),
            format!("sendmail: unknown option {}", opts[0])
        );
        let mut a = vec!["submit"];
        a.extend_from_slice(&args);
        let out = sluice(&d, &a, msg);
        common::assert_exit(&out, 64);
        assert!(
            text(&out.stderr).contains(&format!("unknown option {}", opts[0])),
            "{}",
            text(&out.stderr)
        );
        // sluice with sendmail flags first (sluice -oi -X ...).
        let mut a = vec!["-oi"];
        a.extend_from_slice(&args);
        let out = sluice(&d, &a, msg);
        common::assert_exit(&out, 64);
        assert_eq!(
            text(&out.stderr).trim(),
            format!("sluice: unknown option {}", opts[0])
        );
    }
    // Nothing more was queued.
    let count = text(&sluice(&d, &["-bpc"], b"").stdout);
    assert_eq!(count.trim(), queued.to_string());
}

/// sendmail's DSN options are stored in the -H file as Exim stores the SMTP
/// parameters, and -oM* as the origin (root only).
#[test]
fn dsn_options_and_origin_are_stored() {
    let d = dir();
    let id = queued_id(&as_program(
        &d,
        "sendmail",
        &[
            "-odq",
            "-v",
            "-N",
            "failure,delay",
            "-R",
            "hdrs",
            "-V",
            "env-77",
            "a@example.net",
        ],
        b"Subject: dsn\n\nx\n",
    ));
    let h = header_file(&d, &id);
    assert!(h.contains("\n-dsn_envid env-77\n"), "{h}");
    assert!(h.contains("\n-dsn_ret 1\n"), "{h}");
    // NOTIFY goes on the recipient line (Exim's "address orcpt dsnflags#"
    // form); the spool's parser reads it back as the same flags.
    let q = spool::Queue::open(&d.home().join("spool"), spool::QueueOptions::default()).unwrap();
    let env = q
        .read(&spool::MessageId::parse(&id).unwrap())
        .unwrap()
        .envelope;
    assert_eq!(
        env.recipients[0].notify,
        spool::DsnNotify(spool::DsnNotify::FAILURE | spool::DsnNotify::DELAY)
    );
    if common::is_root() {
        let id = queued_id(&as_program(
            &d,
            "sendmail",
            &[
                "-odq",
                "-v",
                "-oMa",
                "192.0.2.9",
                "-oMs",
                "c.example",
                "-oMr",
                "esmtp",
                "-oMt",
                "who",
                "a@x",
            ],
            b"Subject: origin\n\nx\n",
        ));
        let h = header_file(&d, &id);
        assert!(h.contains("\n-host_address 192.0.2.9.0\n"), "{h}");
        assert!(h.contains("\n-host_name c.example\n"), "{h}");
        assert!(h.contains("\n-received_protocol esmtp\n"), "{h}");
        assert!(h.contains("\n-ident who\n"), "{h}");
        let mainlog = d.log("mainlog");
        assert!(
            mainlog.contains(&format!(
                "{id} <= root@test.example H=c.example [192.0.2.9] U=who P=esmtp S="
            )),
            "{mainlog}"
        );
    }
}

/// -odi: the delivery attempt is over when the command exits.
#[test]
fn odi_delivers_before_exiting() {
    let d = dir();
    let out = as_program(
        &d,
        "sendmail",
        &["-odi", "bob@localhost"],
        b"Subject: fg\n\nnow\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let new = d.maildir("localhost", "bob").join("new");
    assert_eq!(common::files_in(&new).len(), 1, "{}", d.log("mainlog"));
    assert_eq!(text(&sluice(&d, &["-bpc"], b"").stdout), "0\n");
}
