//! Failure reports end to end: a permanent failure brings a delivery
//! status notification (RFC 3464) to the envelope sender, read back with
//! Python's email package (tests/common/dsn.py) and compared with golden
//! files (tests/dsn_golden/, `SLUICE_BLESS=1` writes them) with IDs and
//! dates tokenised. Also: NOTIFY=NEVER, a report that fails (frozen, not
//! reported), `-Mg`, and a report delivered to a real Exim 4.96.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Dir;
use common::receiver::{Receiver, Script};

/// `example.org` is local (Maildirs with `return_path_add`); `remote.test`
/// goes to `hosts`; any other domain is unrouteable.
fn config(d: &Dir, hosts: &str, top: &str) -> PathBuf {
    let path = common::smarthost_config(d, top, "remote.test", hosts, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "path = \"mail/{domain}/{local}\"",
            "path = \"mail/{domain}/{local}\"\nreturn_path_add = true",
        )
        .replace(
            "domains = [\"!+local_domains\"]",
            "domains = [\"remote.test\"]",
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn send(d: &Dir, conf: &Path, extra: &[&str], sender: &str, rcpts: &[&str]) -> Output {
    let mut args = vec!["--config", conf.to_str().unwrap(), "-odi", "-f", sender];
    args.extend_from_slice(extra);
    args.extend_from_slice(rcpts);
    let out = d.run(
        &args,
        b"From: Alice <alice@example.org>\nSubject: report me\nMessage-ID: <orig-1@example.org>\n\nthe body\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The messages in a local user's Maildir.
fn mailbox(d: &Dir, local: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.maildir("example.org", local).join("new"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Python's reading of a report, tokenised.
fn parsed(file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/dsn.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "dsn.py {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dsn_golden")
        .join(name);
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SLUICE_BLESS=1 writes it)\n{actual}",
            path.display()
        )
    });
    assert_eq!(actual, want, "{} differs", path.display());
}

fn count(d: &Dir, conf: &Path) -> usize {
    let out = d.run(&["--config", conf.to_str().unwrap(), "-bpc"], b"");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

use common::lines_with;

#[test]
fn a_remote_refusal_is_reported_to_the_sender() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.2", Script::default());
    let conf = config(&d, &format!("127.0.0.2::{}", rx.port()), "");
    send(
        &d,
        &conf,
        &[],
        "alice@example.org",
        &["ok@remote.test", "r550x@remote.test", "r550y@remote.test"],
    );
    let log = d.log("mainlog");
    // One report for both failures, logged as Exim logs its own, before
    // the original's Completed.
    let report = lines_with(&log, " <= <> R=");
    assert_eq!(report.len(), 1, "{log}");
    assert!(log.find(" <= <> R=") < log.rfind(" Completed"), "{log}");
    assert_eq!(count(&d, &conf), 0, "{log}");
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1, "{log}");
    golden("remote-550.json", &parsed(&inbox[0]));
}

#[test]
fn an_unrouteable_address_is_reported_and_the_rest_delivered() {
    let d = Dir::new();
    let conf = config(&d, "127.0.0.2::9", "");
    send(
        &d,
        &conf,
        &[],
        "alice@example.org",
        &["nobody@nowhere.example", "bob@example.org"],
    );
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, " ** nobody@nowhere.example: Unrouteable address").len(),
        1,
        "{log}"
    );
    assert_eq!(mailbox(&d, "bob").len(), 1);
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1, "{log}");
    golden("unrouteable.json", &parsed(&inbox[0]));
    // The log still parses line for line.
    common::assert_log_parses(&d, &conf);
}

#[test]
fn notify_never_brings_no_report() {
    let d = Dir::new();
    let conf = config(&d, "127.0.0.2::9", "");
    send(
        &d,
        &conf,
        &["-N", "never"],
        "alice@example.org",
        &["nobody@nowhere.example"],
    );
    let log = d.log("mainlog");
    assert!(lines_with(&log, " <= <> ").is_empty(), "{log}");
    assert!(mailbox(&d, "alice").is_empty());
    // Nothing owed: the message is gone.
    assert_eq!(count(&d, &conf), 0, "{log}");
}

#[test]
fn a_failing_report_is_frozen_not_reported_and_giving_up_ends_it() {
    let d = Dir::new();
    let conf = config(&d, "127.0.0.2::9", "");
    send(&d, &conf, &[], "", &["nobody@nowhere.example"]);
    let log = d.log("mainlog");
    assert!(
        lines_with(&log, " <= <> R=").is_empty(),
        "no report of a report: {log}"
    );
    assert_eq!(
        lines_with(&log, " Frozen (delivery error message)").len(),
        1,
        "{log}"
    );
    let list = d.run(&["--config", conf.to_str().unwrap(), "-bp"], b"");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("*** frozen ***"), "{list}");
    let id = list.split_whitespace().nth(2).unwrap().to_string();

    // -Mg: cancelled, reported to nobody, gone.
    let out = d.run(&["--config", conf.to_str().unwrap(), "-Mg", &id], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.log("mainlog");
    assert!(log.contains(&format!("{id} cancelled by ")), "{log}");
    assert!(log.contains(&format!("{id} Completed")), "{log}");
    assert!(lines_with(&log, " <= <> R=").is_empty(), "{log}");
    assert_eq!(count(&d, &conf), 0);
}

#[test]
fn giving_up_on_a_deferred_message_reports_it() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.3", Script::default());
    let conf = config(&d, &format!("127.0.0.3::{}", rx.port()), "");
    send(&d, &conf, &[], "alice@example.org", &["r451a@remote.test"]);
    assert_eq!(count(&d, &conf), 1);
    let list = d.run(&["--config", conf.to_str().unwrap(), "-bp"], b"");
    let id = String::from_utf8_lossy(&list.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let out = d.run(&["--config", conf.to_str().unwrap(), "-Mg", &id], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, &format!(" <= <> R={id} ")).len(),
        1,
        "{log}"
    );
    assert_eq!(count(&d, &conf), 0, "{log}");
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1);
    let report = parsed(&inbox[0]);
    assert!(
        report.contains("delivery cancelled by administrator"),
        "{report}"
    );
}

/// A report Sluice sends goes to a real Exim 4.96, which logs its arrival
/// with the null sender; Python's reading of the copy Exim delivered
/// matches the golden file.
#[test]
fn exim_receives_a_report() {
    if !common::exim::available() {
        return;
    }
    let d = Dir::new();
    let exim = common::exim::Exim::start(d.path(), "127.0.0.4", "remote.test", None);
    let conf = config(&d, &format!("127.0.0.4::{}", exim.addr.port()), "");
    send(
        &d,
        &conf,
        &[],
        "sender@remote.test",
        &["nobody@nowhere.example"],
    );
    let ok = common::wait_until(std::time::Duration::from_secs(10), || {
        !exim.maildir().is_empty()
    });
    assert!(ok, "Exim got nothing: {}", d.log("mainlog"));
    let elog = exim.mainlog();
    assert_eq!(lines_with(&elog, " <= <> H=").len(), 1, "{elog}");
    let copy = d.path().join("from-exim.eml");
    std::fs::write(&copy, &exim.maildir()[0]).unwrap();
    golden("exim-received.json", &parsed(&copy));
}

/// What Python's smtplib hears: the EHLO keywords, then each command's
/// reply code, for MAIL and RCPT with DSN parameters.
const DSN_CLIENT: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
code, text = s.ehlo("client.test")
print("DSN" if s.has_extn("dsn") else "no DSN")
def cmd(line):
    code, _ = s.docmd(line)
    print(line, code)
    return code
cmd("MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ+2B314")
if cmd("RCPT TO:<bob@localhost> NOTIFY=NEVER,SUCCESS") == 501:
    cmd("RCPT TO:<bob@localhost> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2BX@example.org")
cmd("RSET")
cmd("MAIL FROM:<alice@example.org>")
cmd("RCPT TO:<bob@localhost> NOTIFY=NEVER")
cmd("RSET")
s.quit()
"#;

/// DSN (RFC 3461) is offered only to clients in `dsn_advertise_hosts`
/// (default: `relay_from_hosts`); others get 555 for its parameters. What
/// an allowed client gives lands in the `-H` in Exim's layout.
#[test]
fn dsn_parameters_only_for_allowed_clients_and_stored_as_exim_does() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let port = daemon.smtp.port().to_string();
    let out = common::python(DSN_CLIENT, &[&port]);
    assert!(out.starts_with("no DSN\n"), "{out}");
    assert!(
        out.contains("MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ+2B314 555"),
        "{out}"
    );
    assert!(
        out.contains("RCPT TO:<bob@localhost> NOTIFY=NEVER 555"),
        "{out}"
    );
    drop(daemon);

    let d = Dir::new();
    let daemon = d.serve(&[
        "queue_only=true",
        "smtp.dsn_advertise_hosts=[\"127.0.0.0/8\"]",
    ]);
    let port = daemon.smtp.port().to_string();
    let out = common::python(DSN_CLIENT, &[&port]);
    assert!(out.starts_with("DSN\n"), "{out}");
    assert!(out.contains("RET=HDRS ENVID=QQ+2B314 250"), "{out}");
    assert!(out.contains("NOTIFY=NEVER,SUCCESS 501"), "{out}");
    assert!(
        out.contains("NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2BX@example.org 250"),
        "{out}"
    );

    // A message with them, queued: its -H as Exim writes one.
    let msg = common::python(
        r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("alice@example.org", ["bob@localhost"], "Subject: dsn\r\n\r\nx\r\n",
           mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
           rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Bob+2BX@example.org"])
s.quit()
print("sent")
"#,
        &[&port],
    );
    assert_eq!(msg.trim(), "sent");
    let list = d.run(&["-bp"], b"");
    let id = String::from_utf8_lossy(&list.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let h = d.run(&["-Mvh", &id], b"");
    let h = String::from_utf8_lossy(&h.stdout).into_owned();
    assert!(h.contains("\n-dsn_envid QQ+314\n"), "{h}");
    assert!(h.contains("\n-dsn_ret 1\n"), "{h}");
    // Exim's extended recipient: address, ORCPT, its length and the
    // NOTIFY bits (SUCCESS 4 + DELAY 16), no errors_to (`0,-1`), flags 3.
    assert!(
        h.contains("\nbob@localhost rfc822;Bob+X@example.org 24,20  0,-1#3\n"),
        "{h}"
    );
}

/// NOTIFY=SUCCESS: a report with `Action: delivered` after a local
/// delivery, `Action: relayed` (naming the host) after a remote one to a
/// host without DSN, and none when the host offers DSN (the NOTIFY went on
/// with the message). Headers only, `Auto-Submitted: auto-generated`.
#[test]
fn success_reports_when_asked() {
    let d = Dir::new();
    let plain = Receiver::start("127.0.0.5", Script::default());
    let conf = config(&d, &format!("127.0.0.5::{}", plain.port()), "");
    send(
        &d,
        &conf,
        &["-N", "success"],
        "alice@example.org",
        &["bob@example.org", "carol@remote.test"],
    );
    let log = d.log("mainlog");
    assert_eq!(lines_with(&log, " <= <> R=").len(), 1, "{log}");
    assert_eq!(count(&d, &conf), 0, "{log}");
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1, "{log}");
    golden("success.json", &parsed(&inbox[0]));

    // A next hop with DSN: the NOTIFY goes on, no report from here.
    let d = Dir::new();
    let dsn = Receiver::start(
        "127.0.0.6",
        Script {
            dsn: true,
            ..Script::default()
        },
    );
    let conf = config(&d, &format!("127.0.0.6::{}", dsn.port()), "");
    send(
        &d,
        &conf,
        &["-N", "success,failure"],
        "alice@example.org",
        &["dave@remote.test"],
    );
    let log = d.log("mainlog");
    assert!(lines_with(&log, " <= <> ").is_empty(), "{log}");
    assert_eq!(count(&d, &conf), 0, "{log}");
    let cmds = dsn.commands();
    assert!(
        cmds.iter()
            .any(|c| c == "RCPT TO:<dave@remote.test> NOTIFY=SUCCESS,FAILURE"),
        "{cmds:?}"
    );
}

/// `delay_warning = ["2s", "99d"]`: one warning (`Action: delayed`,
/// `Will-Retry-Until`) once the message has waited 2 s, none at later
/// attempts, none for list mail (`Precedence: bulk`, Exim's default
/// `delay_warning_condition`).
#[test]
fn one_delay_warning() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.7", Script::default());
    let conf = config(
        &d,
        &format!("127.0.0.7::{}", rx.port()),
        "[queue]\nretry = \"F,1h,1s\"\ndelay_warning = [\"2s\", \"99d\"]",
    );
    let c = conf.to_str().unwrap();
    let queue = |d: &Dir, headers: &str| {
        let msg = format!(
            "From: alice@example.org\n{headers}Message-ID: <late@example.org>\nSubject: late\n\nbody\n"
        );
        let out = d.run(
            &[
                "--config",
                c,
                "-odq",
                "-f",
                "alice@example.org",
                "r451a@remote.test",
            ],
            msg.as_bytes(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    queue(&d, "");
    queue(&d, "Precedence: bulk\n");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    for _ in 0..3 {
        let out = d.run(&["--config", c, "-q"], b"");
        assert!(out.status.success());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let log = d.log("mainlog");
    assert!(
        lines_with(&log, " == r451a@remote.test").len() >= 4,
        "{log}"
    );
    assert_eq!(lines_with(&log, " <= <> R=").len(), 1, "{log}");
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1, "{log}");
    golden("delay.json", &parsed(&inbox[0]));
    // Both still queued, waiting.
    assert_eq!(count(&d, &conf), 2);
}

/// `timeout_frozen_after`: a frozen message past it is given up at the
/// next queue run, `cancelled by timeout_frozen_after` as Exim logs it, and
/// reported; `ignore_bounce_errors_after`: a frozen report past it is
/// tried once more ("Unfrozen by errmsg timer") and, failing again,
/// discarded ("ADDR: error ignored").
#[test]
fn frozen_messages_time_out() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.8", Script::default());
    let conf = config(
        &d,
        &format!("127.0.0.8::{}", rx.port()),
        "timeout_frozen_after = \"2s\"\nignore_bounce_errors_after = \"1h\"",
    );
    let c = conf.to_str().unwrap();
    send(&d, &conf, &[], "alice@example.org", &["r451a@remote.test"]);
    let list = d.run(&["--config", c, "-bp"], b"");
    let id = String::from_utf8_lossy(&list.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    assert!(d.run(&["--config", c, "-Mf", &id], b"").status.success());
    // Not yet: still frozen after a run.
    assert!(d.run(&["--config", c, "-q"], b"").status.success());
    assert_eq!(count(&d, &conf), 1);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(d.run(&["--config", c, "-q"], b"").status.success());
    let log = d.log("mainlog");
    assert!(
        log.contains(&format!("{id} cancelled by timeout_frozen_after")),
        "{log}"
    );
    assert_eq!(
        lines_with(&log, &format!(" <= <> R={id} ")).len(),
        1,
        "{log}"
    );
    assert!(log.contains(&format!("{id} Completed")), "{log}");
    assert_eq!(count(&d, &conf), 0, "{log}");
    assert_eq!(mailbox(&d, "alice").len(), 1);

    let d = Dir::new();
    let conf = config(&d, "127.0.0.8::9", "ignore_bounce_errors_after = \"2s\"");
    let c = conf.to_str().unwrap();
    send(&d, &conf, &[], "", &["nobody@nowhere.example"]);
    assert_eq!(count(&d, &conf), 1);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(d.run(&["--config", c, "-q"], b"").status.success());
    let log = d.log("mainlog");
    for want in [
        " Unfrozen by errmsg timer",
        " nobody@nowhere.example: error ignored",
        " Completed",
    ] {
        assert_eq!(lines_with(&log, want).len(), 1, "{want}: {log}");
    }
    assert!(lines_with(&log, " <= <> R=").is_empty(), "{log}");
    assert_eq!(count(&d, &conf), 0, "{log}");
    common::assert_log_parses(&d, &conf);
}

/// `bounce_rate_limit = 2`: of four reports to one address in an hour two
/// are delivered, two wait in the queue (held to the end of the hour, not
/// dropped), and the log says so once.
#[test]
fn a_storm_of_reports_is_held_not_dropped() {
    let d = Dir::new();
    let conf = config(&d, "127.0.0.2::9", "bounce_rate_limit = 2");
    for _ in 0..4 {
        send(
            &d,
            &conf,
            &[],
            "alice@example.org",
            &["nobody@nowhere.example"],
        );
    }
    let log = d.log("mainlog");
    assert_eq!(lines_with(&log, " <= <> R=").len(), 4, "{log}");
    assert_eq!(
        lines_with(
            &log,
            "bounce_rate_limit: more than 2 reports to alice@example.org"
        )
        .len(),
        1,
        "{log}"
    );
    assert_eq!(mailbox(&d, "alice").len(), 2, "{log}");
    // The held ones are queued, for sender <>, due later.
    assert_eq!(count(&d, &conf), 2, "{log}");
    let list = d.run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "queue",
            "list",
            "--json",
        ],
        b"",
    );
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(
        list.matches("held: over bounce_rate_limit").count(),
        2,
        "{list}"
    );
}

/// A message frozen by a release before failure reports ("delivery error
/// message not sent": a failed recipient, frozen, no report) gets its
/// report when an administrator thaws it.
#[test]
fn a_message_frozen_before_reports_existed_gets_one_when_thawed() {
    let d = Dir::new();
    let conf = config(&d, "127.0.0.2::9", "");
    let c = conf.to_str().unwrap();
    // The spool such a release left, written with the spool's own API.
    let queue =
        spool::Queue::open(&d.home().join("spool"), spool::QueueOptions::default()).unwrap();
    let env = spool::Envelope::new("alice@example.org", &["gone@nowhere.example"]);
    let id = queue
        .enter(
            &env,
            &[spool::Header::new("Subject: old failure\n")],
            b"body\n",
        )
        .unwrap();
    let mut locked = queue.begin_delivery(&id).unwrap();
    locked
        .record(
            0,
            spool::RcptOutcome::Failed {
                why: spool::Diagnosis::text("Unrouteable address"),
            },
        )
        .unwrap();
    locked.freeze().unwrap();
    locked.finish().unwrap();
    let id = id.to_string();
    // Frozen, it is left alone; thawed, the next queue run reports it.
    assert!(d.run(&["--config", c, "-q"], b"").status.success());
    assert_eq!(count(&d, &conf), 1);
    assert!(d.run(&["--config", c, "-Mt", &id], b"").status.success());
    assert!(d.run(&["--config", c, "-q"], b"").status.success());
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, &format!(" <= <> R={id} ")).len(),
        1,
        "{log}"
    );
    assert_eq!(count(&d, &conf), 0, "{log}");
    let inbox = mailbox(&d, "alice");
    assert_eq!(inbox.len(), 1, "{log}");
    assert!(parsed(&inbox[0]).contains("Unrouteable address"));
}
