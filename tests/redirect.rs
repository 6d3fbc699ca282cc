//! Redirect data in the embedded default's aliases file, as Exim's
//! `system_aliases` router reads it (`allow_fail`, `allow_defer`):
//! `:fail:` refused at RCPT with its text, `:defer:` put off with its text,
//! `:blackhole:` delivered nowhere and logged as Exim logs it, `:include:`
//! lists, a loop ended at the ancestor, and a pipe without a pipe
//! transport (a configuration error: deferred, the reason logged).

mod common;

use common::Dir;

const CLIENT: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
for rcpt in sys.argv[2:]:
    s.docmd("MAIL FROM:<alice@example.org>")
    code, text = s.docmd("RCPT TO:<%s>" % rcpt)
    print(rcpt, code, text.decode())
    s.docmd("RSET")
s.quit()
"#;

#[test]
fn aliases_with_fail_defer_blackhole_include_and_pipes() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(d.home().join("staff"), "carol, dave\n").unwrap();
    std::fs::write(
        d.home().join("aliases"),
        "gone: :fail: This person left the company\n\
         full: :defer: Mailbox being moved, try later\n\
         nobody: :blackhole:\n\
         staff: :include:staff\n\
         list: \"|/usr/bin/list-manager post\"\n",
    )
    .unwrap();
    let daemon = d.serve(&[]);
    let port = daemon.smtp.port().to_string();
    let out = common::python(
        CLIENT,
        &[
            &port,
            "gone@localhost",
            "full@localhost",
            "nobody@localhost",
            "staff@localhost",
        ],
    );
    assert_eq!(
        out,
        "gone@localhost 550 5.0.0 This person left the company\n\
         full@localhost 451 4.0.0 Mailbox being moved, try later\n\
         nobody@localhost 250 2.1.5 Recipient OK\n\
         staff@localhost 250 2.1.5 Recipient OK\n",
    );
    // Delivered: the blackhole and the list.
    common::python(
        r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("alice@example.org", ["nobody@localhost", "staff@localhost"], "Subject: x\r\n\r\nbody\r\n")
s.quit()
"#,
        &[&port],
    );
    let ok = common::wait_until(std::time::Duration::from_secs(10), || {
        d.log("mainlog").contains(" Completed")
    });
    let log = d.log("mainlog");
    assert!(ok, "{log}");
    assert!(
        log.contains(" => :blackhole: <nobody@localhost> R=system_aliases\n"),
        "{log}"
    );
    assert!(
        log.contains(" => carol <staff@localhost> R=virtual_mailbox"),
        "{log}"
    );
    assert!(
        log.contains(" -> dave <staff@localhost> R=virtual_mailbox")
            || log.contains(" => dave <staff@localhost> R=virtual_mailbox"),
        "{log}"
    );
    drop(daemon);

    // A pipe with no pipe transport: the address waits, the reason logged.
    let out = d.run(
        &["-odi", "-f", "alice@example.org", "list@localhost"],
        b"Subject: y\n\nbody\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.log("mainlog");
    let line = log
        .lines()
        .find(|l| l.contains(" == list@localhost"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("|/usr/bin/list-manager post") && line.contains("configuration error"),
        "{line}"
    );
}
