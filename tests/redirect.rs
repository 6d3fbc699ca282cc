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
    let line = common::line_with(&log, " == list@localhost");
    assert!(
        line.contains("|/usr/bin/list-manager post") && line.contains("configuration error"),
        "{line}"
    );
}

/// A test directory that `nobody`, who runs the pipes, can reach, and an
/// `out` directory in it that it can write; None (skipped) unless root.
fn pipe_dir() -> Option<(Dir, std::path::PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    if !common::is_root() {
        eprintln!("SKIPPED: pipes run as another user only when started by root");
        return None;
    }
    let d = Dir::new();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    Some((d, out))
}

/// A `|command` from the aliases through a `pipe` transport run as
/// `nobody`: delivered (the message on stdin after a `From ` line, a clean
/// environment), exit 75 deferred, exit 1 failed and reported with its
/// output (`return_fail_output`), a hang killed with its process group at
/// the timeout and deferred, and no descriptor of Sluice's inherited.
#[test]
fn pipes_from_the_aliases() {
    let Some((d, out)) = pipe_dir() else { return };
    use std::os::unix::fs::PermissionsExt;
    let marker = format!("pipe-test-{}", std::process::id());
    let script = d.path().join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             OUT={out}\n\
             case \"$1\" in\n\
             append) cat >> $OUT/mbox; env | sort > $OUT/env; exit 0 ;;\n\
             tempfail) exit 75 ;;\n\
             fail) echo \"no such list here\"; exit 1 ;;\n\
             hang) exec /bin/sh -c 'sleep 30; true' {marker} ;;\n\
             fds) exec ls -1 /proc/self/fd > $OUT/fds ;;\n\
             esac\n",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = script.display();
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(
        d.home().join("aliases"),
        format!(
            "append: |{s} append\ntempfail: |{s} tempfail\nfail: |{s} fail\nhang: \"|{s} hang\"\nfds: |{s} fds\n"
        ),
    )
    .unwrap();
    let conf = d.path().join("sluice.toml");
    std::fs::write(
        &conf,
        r#"primary_hostname = "mx.example.org"
local_domains = ["example.org"]

[[router]]
name = "system_aliases"
driver = "redirect"
domains = ["+local_domains"]
file = "aliases"
allow_fail = true
pipe_transport = "address_pipe"

[[router]]
name = "local"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "address_pipe"
driver = "pipe"
user = "nobody"
timeout = "1s"
return_fail_output = true

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"
return_path_add = true
"#,
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    for rcpt in ["append", "tempfail", "fail", "hang", "fds"] {
        let r = d.run(
            &[
                "--config",
                c,
                "-odi",
                "-f",
                "alice@example.org",
                &format!("{rcpt}@example.org"),
            ],
            format!("Subject: to {rcpt}\n\nthe body of {rcpt}\n").as_bytes(),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let log = d.log("mainlog");
    assert!(
        log.contains(&format!(
            " => |{s} append <append@example.org> R=system_aliases T=address_pipe"
        )),
        "{log}"
    );
    let mbox = std::fs::read_to_string(out.join("mbox")).unwrap();
    assert!(mbox.starts_with("From alice@example.org "), "{mbox}");
    assert!(mbox.contains("\nthe body of append\n"), "{mbox}");
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    for want in [
        "LOCAL_PART=append\n",
        "DOMAIN=example.org\n",
        "SENDER=alice@example.org\n",
        "RECIPIENT=append@example.org\n",
        "PATH=/bin:/usr/bin\n",
    ] {
        assert!(env.contains(want), "{want:?} missing:\n{env}");
    }
    assert!(env.contains("MESSAGE_ID="), "{env}");
    assert!(
        !env.contains("SLUICE_HOME"),
        "the environment is not clean:\n{env}"
    );

    let line = |marker: &str| log.lines().find(|l| l.contains(marker)).map(str::to_string);
    let t = line(" == tempfail@example.org").unwrap_or_else(|| panic!("{log}"));
    assert!(t.contains("returned 75"), "{t}");
    let h = line(" == hang@example.org").unwrap_or_else(|| panic!("{log}"));
    assert!(h.contains("timed out"), "{h}");
    // Its process group is gone.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "still running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    let f = line(" ** fail@example.org").unwrap_or_else(|| panic!("{log}"));
    assert!(f.contains("returned 1"), "{f}");
    // Reported, with the command's output.
    let inbox = d.home().join("mail/example.org/alice/new");
    let reports: Vec<String> = std::fs::read_dir(&inbox)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(reports.len(), 1, "{log}");
    assert!(reports[0].contains("no such list here"), "{}", reports[0]);

    let fds = std::fs::read_to_string(out.join("fds")).unwrap();
    let fds: Vec<&str> = fds.lines().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "descriptors the command had");
    // Deferred ones wait: tempfail and hang.
    let n = d.run(&["--config", c, "-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "2");
}

/// A real system user's `.forward` (`file = "{home}/.forward"`,
/// `check_local_user`): its items redirect the user's mail; made
/// group-writable it is not used: the address is deferred and the log
/// says why, as Exim's `modemask` check does.
#[test]
fn a_users_forward_file_is_used_only_when_safe() {
    if !common::is_root() {
        eprintln!("SKIPPED: creating a system user needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = format!("slfwd{}", std::process::id() % 100_000);
    let home = d.path().join(&user);
    let made = std::process::Command::new("useradd")
        .args([
            "--home-dir",
            home.to_str().unwrap(),
            "--create-home",
            "--shell",
            "/usr/sbin/nologin",
            &user,
        ])
        .status()
        .expect("useradd");
    assert!(made.success(), "useradd {user}");
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("userdel").arg(&self.0).status();
        }
    }
    let _gone = Gone(user.clone());
    let uid = std::fs::metadata(&home)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    let forward = home.join(".forward");
    std::fs::write(
        &forward,
        format!(
            "# to the archive, to bob, and to two mailboxes of the user's own\narchive@example.org, bob@example.org, {h}/saved.mbox, {h}/Maildir/\n",
            h = home.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&forward, Some(uid), None).unwrap();
    std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = d.path().join("sluice.toml");
    std::fs::write(
        &conf,
        r#"primary_hostname = "mx.example.org"
local_domains = ["example.org"]

[[router]]
name = "userforward"
driver = "redirect"
domains = ["+local_domains"]
check_local_user = true
file = "{home}/.forward"
file_transport = "address_file"
directory_transport = "address_directory"

[[router]]
name = "local"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"

[[transport]]
name = "address_file"
driver = "mbox"

[[transport]]
name = "address_directory"
driver = "maildir"
"#,
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let send = |subject: &str| {
        let r = d.run(
            &[
                "--config",
                c,
                "-odi",
                "-f",
                "alice@example.org",
                &format!("{user}@example.org"),
            ],
            format!("Subject: {subject}\n\nbody\n").as_bytes(),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    send("forwarded");
    let log = d.log("mainlog");
    for who in ["archive", "bob"] {
        assert!(
            log.contains(&format!(
                " {who} <{user}@example.org> R=local T=maildir_delivery"
            )),
            "{log}"
        );
    }
    // The file and the Maildir, written as the user.
    let owner = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or_else(|e| panic!("{}: {e}\n{log}", p.display()))
    };
    let mbox = home.join("saved.mbox");
    assert_eq!(owner(&mbox), uid);
    assert!(
        std::fs::read_to_string(&mbox)
            .unwrap()
            .contains("Subject: forwarded")
    );
    let new = home.join("Maildir/new");
    let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{log}");
    assert_eq!(owner(&files[0].path()), uid);

    std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o664)).unwrap();
    send("not forwarded");
    let log = d.log("mainlog");
    let line = common::line_with(&log, &format!(" == {user}@example.org"));
    assert!(
        line.contains("forward file not used") && line.contains("writable by group"),
        "{line}"
    );
}

/// A redirect router's `errors_to`: failures of the addresses it makes go
/// to that address (a list's owner), not to the sender.
#[test]
fn errors_to_sends_a_lists_failures_to_its_owner() {
    let d = Dir::new();
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(
        d.home().join("aliases"),
        "list: nobody@nowhere.example, bob\n",
    )
    .unwrap();
    let conf = d.path().join("sluice.toml");
    std::fs::write(
        &conf,
        r#"primary_hostname = "mx.example.org"
qualify_domain = "example.org"
local_domains = ["example.org"]

[[router]]
name = "lists"
driver = "redirect"
domains = ["+local_domains"]
file = "aliases"
errors_to = "owner@example.org"

[[router]]
name = "local"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"
envelope_to_add = true
"#,
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let r = d.run(
        &[
            "--config",
            c,
            "-odi",
            "-f",
            "alice@example.org",
            "list@example.org",
        ],
        b"Subject: to the list\n\nbody\n",
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let log = d.log("mainlog");
    let count = |who: &str| {
        std::fs::read_dir(d.home().join(format!("mail/example.org/{who}/new")))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    assert_eq!(count("bob"), 1, "{log}");
    // envelope_to_add: the address the message was sent to, above it.
    let bobs = std::fs::read_dir(d.home().join("mail/example.org/bob/new"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .next()
        .unwrap();
    assert!(
        bobs.starts_with("Envelope-to: list@example.org\n"),
        "{bobs}"
    );
    assert_eq!(count("owner"), 1, "the owner gets the report: {log}");
    assert_eq!(count("alice"), 0, "not the sender: {log}");
}

/// `use_shell`: the command goes to `/bin/sh -c` as written, envelope
/// values only in the environment; `max_output`: a command that writes
/// more is killed and fails. And an alias loop ends in a mailbox.
#[test]
fn a_shell_pipe_its_output_limit_and_an_alias_loop() {
    let Some((d, out)) = pipe_dir() else { return };
    std::fs::create_dir_all(d.home()).unwrap();
    std::fs::write(
        d.home().join("aliases"),
        format!(
            "shell: |echo $LOCAL_PART for $RECIPIENT from $SENDER > {o}/shell\n\
             chatty: |yes\n\
             ping: pong\npong: ping\n",
            o = out.display()
        ),
    )
    .unwrap();
    let conf = d.path().join("sluice.toml");
    std::fs::write(
        &conf,
        r#"primary_hostname = "mx.example.org"
qualify_domain = "example.org"
local_domains = ["example.org"]

[[router]]
name = "system_aliases"
driver = "redirect"
domains = ["+local_domains"]
file = "aliases"
pipe_transport = "shell_pipe"

[[router]]
name = "local"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "shell_pipe"
driver = "pipe"
user = "nobody"
use_shell = true
max_output = "1K"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"
"#,
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    for rcpt in ["shell", "chatty", "ping"] {
        let r = d.run(
            &[
                "--config",
                c,
                "-odi",
                "-f",
                "alice@example.org",
                &format!("{rcpt}@example.org"),
            ],
            b"Subject: x\n\nbody\n",
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let log = d.log("mainlog");
    let shell = std::fs::read_to_string(out.join("shell")).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(
        shell,
        "shell for shell@example.org from alice@example.org\n"
    );
    let chatty = common::line_with(&log, " ** chatty@example.org");
    assert!(chatty.contains("max_output"), "{chatty}");
    // ping -> pong -> ping again, an ancestor: ping's mailbox.
    assert!(
        log.contains(" => ping <ping@example.org> R=local T=maildir_delivery"),
        "{log}"
    );
}
