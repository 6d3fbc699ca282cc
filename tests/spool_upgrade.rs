//! A spool written by an earlier release (commit bd5f7b2, before failures
//! carried a status code; made by tests/fixtures/spool-bd5f7b2/make.sh) is
//! read and delivered by this one: a message never tried, one half
//! delivered with a deferred recipient, one frozen with a failed recipient,
//! and one whose mbox append was in flight when its queue runner was
//! killed (a `-J` journal holding the intent).

mod common;

use std::path::Path;

use common::{Dir, maildir_messages};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spool-bd5f7b2");
const PENDING: &str = "1xZ2wm-0000000061Y-45o1";
const PARTLY: &str = "1xZ2wm-0000000061A-3vX8";
const FROZEN: &str = "1xZ2wm-0000000061F-3xoa";
const IN_FLIGHT: &str = "1xZ2wm-0000000061g-48S0";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn sluice(d: &Dir, args: &[&str]) -> std::process::Output {
    let mut c = d.sluice();
    c.env("SLUICE_CONFIG", Path::new(FIXTURE).join("sluice.toml"))
        .args(args);
    common::run_with_input(&mut c, b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_spool_of_the_earlier_release_is_read_and_delivered() {
    let d = Dir::new();
    copy_tree(&Path::new(FIXTURE).join("spool"), &d.home().join("spool"));

    // Listed as the earlier release listed it.
    let bp = sluice(&d, &["-bp"]);
    common::assert_exit(&bp, 0);
    let bp = text(&bp.stdout);
    for id in [PENDING, PARTLY, FROZEN, IN_FLIGHT] {
        assert!(bp.contains(id), "{id} missing from -bp:\n{bp}");
    }
    assert!(
        bp.contains(&format!("{FROZEN} <alice@example.org> *** frozen ***")),
        "{bp}"
    );
    assert!(
        bp.contains("        D bob@localhost\n          carol@localhost\n"),
        "{bp}"
    );
    // The old deferral's text is there, without a status code.
    let json = text(&sluice(&d, &["queue", "list", "--json"]).stdout);
    assert!(
        json.contains("not a Maildir: it is not a directory"),
        "{json}"
    );

    // One forced run of the three (carol's retry time may still be ahead:
    // the fixture was made shortly before it was committed). The frozen
    // one is left alone. The mbox directory exists, as /var/mail does.
    std::fs::create_dir_all(d.home().join("mbox")).unwrap();
    let run = sluice(&d, &["queue", "run", "--force", PENDING, PARTLY, IN_FLIGHT]);
    common::assert_exit(&run, 0);
    let bob = maildir_messages(&d.maildir("localhost", "bob"));
    let carol = maildir_messages(&d.maildir("localhost", "carol"));
    assert_eq!(
        bob.len(),
        1,
        "bob: the pending message only (the other was delivered before)"
    );
    assert!(
        bob[0].0.starts_with(&format!("new/{PENDING}.0,")),
        "{:?}",
        bob[0].0
    );
    assert_eq!(carol.len(), 1);
    assert!(
        carol[0].0.starts_with(&format!("new/{PARTLY}.1,")),
        "{:?}",
        carol[0].0
    );
    // The append that was in flight is made again (mbox: at least once).
    let mbox = std::fs::read_to_string(d.home().join("mbox/dave")).unwrap();
    assert_eq!(
        mbox.matches("\nFrom ").count() + mbox.starts_with("From ") as usize,
        1
    );
    assert!(mbox.contains("Subject: inflight"), "{mbox}");

    let left = text(&sluice(&d, &["-bp"]).stdout);
    assert!(left.contains(FROZEN), "{left}");
    for id in [PENDING, PARTLY, IN_FLIGHT] {
        assert!(!left.contains(id), "{id} still queued:\n{left}");
    }
    let mainlog = d.log("mainlog");
    for id in [PENDING, PARTLY, IN_FLIGHT] {
        assert!(
            mainlog.contains(&format!("{id} Completed")),
            "{id}: {mainlog}"
        );
    }
    assert!(
        mainlog.contains(&format!(
            "{PARTLY} => carol <carol@localhost> R=local_user T=maildir_delivery"
        )),
        "{mainlog}"
    );
    assert!(
        mainlog.contains(&format!(
            "{IN_FLIGHT} => dave <dave@localhost> R=mbox_users T=user_mbox"
        )),
        "{mainlog}"
    );

    // The frozen message's failure, as the old release recorded it.
    let mvl = text(&sluice(&d, &["queue", "show", FROZEN, "--headers"]).stdout);
    assert!(mvl.contains("-rcpt_state 0 failed "), "{mvl}");
    assert!(mvl.contains("Unrouteable address"), "{mvl}");
    assert_eq!(d.log("paniclog"), "");
}
