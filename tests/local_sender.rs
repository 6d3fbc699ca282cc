//! Local sender rules, as Exim's: an untrusted user (here `nobody`, run
//! with setpriv) cannot set the envelope sender with `-f` (except `<>`, or
//! what `untrusted_set_sender` allows, which `-bp` then marks with the
//! login); a `Sender:` header they wrote is removed and `Sender:
//! login@qualify_domain` added when `From:` is another address. Root and
//! `trusted_users` may set any sender.

mod common;

use common::others::{self, Host};
use common::{assert_exit, run_with_input};

/// A host whose spool `nobody` may write.
fn open(config: &str) -> Host {
    others::host(0o777, config)
}

/// Runs the binary as `nobody` (or as root with `as_root`).
fn submit(o: &Host, as_root: bool, args: &[&str], message: &[u8]) -> std::process::Output {
    run_with_input(o.command(!as_root).args(args), message)
}

fn bp(o: &Host) -> String {
    let out = submit(o, true, &["-bp"], b"");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_untrusted_user_cannot_set_the_sender() {
    if !others::usable() {
        return;
    }
    let o = open("");
    let forged = b"From: The Boss <boss@corp.example>\nSender: forged@corp.example\nSubject: from nobody\n\nhello\n";
    let out = submit(
        &o,
        false,
        &["-odi", "-f", "boss@corp.example", "bob@host.test"],
        forged,
    );
    assert_exit(&out, 0);
    let got = o.delivered("bob");
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    // The envelope sender is the login's address: -f was ignored.
    assert!(m.starts_with("Return-path: <nobody@host.test>\n"), "{m}");
    assert!(
        !m.contains("forged@corp.example"),
        "the forged Sender: is removed: {m}"
    );
    assert!(m.contains("\nSender: nobody@host.test\n"), "{m}");
    let log = o.mainlog();
    assert!(
        log.contains("<= nobody@host.test U=nobody P=local"),
        "{log}"
    );

    // Their own address in From: needs no Sender:; <> is theirs to set.
    let own = b"From: nobody@host.test\nSubject: own\n\nhi\n";
    assert_exit(
        &submit(&o, false, &["-odq", "-f", "<>", "bob@host.test"], own),
        0,
    );
    let q = bp(&o);
    assert!(q.contains(" <>\n"), "{q}");
    assert!(!q.contains("(nobody)"), "{q}");
}

#[test]
fn untrusted_set_sender_and_trusted_users() {
    if !others::usable() {
        return;
    }
    let o = open("untrusted_set_sender = [\"*@lists.host.test\"]\n");
    let msg = b"Subject: list\n\nposted\n";
    assert_exit(
        &submit(
            &o,
            false,
            &["-odq", "-f", "news@lists.host.test", "bob@host.test"],
            msg,
        ),
        0,
    );
    // Allowed, and -bp names who set it.
    let q = bp(&o);
    assert!(q.contains("(nobody) <news@lists.host.test>"), "{q}");
    // Not allowed: ignored.
    assert_exit(
        &submit(
            &o,
            false,
            &["-odq", "-f", "x@elsewhere.example", "bob@host.test"],
            msg,
        ),
        0,
    );
    let q = bp(&o);
    assert!(q.contains(" <nobody@host.test>\n"), "{q}");
    assert!(!q.contains("elsewhere"), "{q}");

    // nobody among trusted_users: anything goes, no Sender: added.
    let t = open("trusted_users = [\"nobody\"]\n");
    let forged = b"From: boss@corp.example\nSubject: trusted\n\nhello\n";
    assert_exit(
        &submit(
            &t,
            false,
            &["-odi", "-f", "boss@corp.example", "bob@host.test"],
            forged,
        ),
        0,
    );
    let got = t.delivered("bob");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("Return-path: <boss@corp.example>\n"),
        "{}",
        got[0]
    );
    assert!(!got[0].contains("\nSender:"), "{}", got[0]);
    // And root always.
    let r = open("");
    assert_exit(
        &submit(
            &r,
            true,
            &["-odq", "-f", "boss@corp.example", "bob@host.test"],
            forged,
        ),
        0,
    );
    let q = bp(&r);
    assert!(
        q.contains(" <boss@corp.example>\n") && !q.contains("(root)"),
        "{q}"
    );
}

#[test]
fn mail_from_under_bs_follows_the_same_rules() {
    if !others::usable() {
        return;
    }
    let o = open("");
    let session = "EHLO me\r\nMAIL FROM:<boss@corp.example>\r\nRCPT TO:<bob@host.test>\r\nDATA\r\nFrom: boss@corp.example\r\nSender: forged@corp.example\r\nSubject: bs\r\n\r\nover -bs\r\n.\r\nQUIT\r\n";
    let out = submit(&o, false, &["-bs"], session.as_bytes());
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("250 2.0.0 OK id="), "{said}");
    let got = o.delivered("bob");
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert!(m.starts_with("Return-path: <nobody@host.test>\n"), "{m}");
    assert!(!m.contains("forged@corp.example"), "{m}");
    assert!(m.contains("\nSender: nobody@host.test\n"), "{m}");
    assert!(m.contains("over -bs"), "{m}");
}
