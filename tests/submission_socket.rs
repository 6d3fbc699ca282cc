//! Submission through the daemon for a user who cannot write the spool:
//! `nobody` (run with setpriv) calls sendmail, which hands the message to
//! the daemon over the submission socket; the daemon knows the caller by
//! the socket's credentials and applies the local sender rules and
//! `local_rate_limit`. With no daemon, sendmail exits 75.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{assert_exit, maildir_messages, run_with_input};

/// A data directory only root can write, a configuration and the binary
/// that `nobody` can read and run.
struct Host {
    _dir: tempfile::TempDir,
    home: PathBuf,
    config: PathBuf,
    bin: PathBuf,
    socket: PathBuf,
}

fn host(extra: &str) -> Host {
    let dir = tempfile::Builder::new()
        .prefix("sluice-submit")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.path().join("run").join("submit.sock");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "primary_hostname = \"host.test\"\nlocal_domains = [\"host.test\"]\n\
             submission_socket = \"{}\"\n{extra}",
            socket.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, PermissionsExt::from_mode(0o644)).unwrap();
    Host {
        _dir: dir,
        home,
        config,
        bin: common::binary_for_others(),
        socket,
    }
}

fn command(h: &Host, as_nobody: bool) -> Command {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&h.bin);
        c
    } else {
        Command::new(&h.bin)
    };
    cmd.env("SLUICE_HOME", &h.home)
        .env("SLUICE_CONFIG", &h.config)
        .env_remove("SLUICE_SET");
    cmd
}

/// The daemon, as root; killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(h: &Host) -> Daemon {
    let mut child = command(h, false)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains(&format!("submit=unix:{}", h.socket.display())),
        "{line}"
    );
    let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "any local user may connect");
    Daemon(child)
}

fn sendmail(h: &Host, args: &[&str], message: &[u8]) -> std::process::Output {
    run_with_input(command(h, true).args(args), message)
}

fn delivered(home: &Path, local: &str) -> Vec<String> {
    maildir_messages(&home.join("mail/host.test").join(local))
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect()
}

fn usable() -> bool {
    let ok = common::is_root() && common::have("setpriv");
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root and setpriv under CI=true"
        );
        eprintln!("skipped: needs root and setpriv (util-linux)");
    }
    ok
}

fn mainlog(h: &Host) -> String {
    std::fs::read_to_string(h.home.join("log/mainlog")).unwrap_or_default()
}

#[test]
fn nobody_submits_through_the_daemon_under_the_local_sender_rules() {
    if !usable() {
        return;
    }
    let h = host("local_rate_limit = 3\n");
    let daemon = start(&h);

    // -t, a forged Sender:, a From: that is not theirs, -f ignored.
    let forged = b"From: The Boss <boss@corp.example>\nSender: forged@corp.example\n\
                   To: bob@host.test\nSubject: from nobody\n\nhello\n";
    let out = sendmail(&h, &["-t", "-i", "-v", "-f", "boss@corp.example"], forged);
    assert_exit(&out, 0);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 23, "-v prints the ID: {id:?}");
    assert!(common::wait_until(Duration::from_secs(20), || delivered(
        &h.home, "bob"
    )
    .len()
        == 1));
    let m = &delivered(&h.home, "bob")[0];
    assert!(m.starts_with("Return-path: <nobody@host.test>\n"), "{m}");
    assert!(
        !m.contains("forged@corp.example"),
        "forged Sender: removed: {m}"
    );
    assert!(m.contains("\nSender: nobody@host.test\n"), "{m}");
    let log = mainlog(&h);
    assert!(
        log.contains(&format!("{id} <= nobody@host.test U=nobody P=local")),
        "{log}"
    );

    // <> is theirs to set.
    let out = sendmail(
        &h,
        &["-f", "<>", "carol@host.test"],
        b"Subject: null\n\nx\n",
    );
    assert_exit(&out, 0);
    assert!(common::wait_until(Duration::from_secs(20), || delivered(
        &h.home, "carol"
    )
    .len()
        == 1));
    assert!(delivered(&h.home, "carol")[0].starts_with("Return-path: <>\n"));

    // Only root says where a message came from.
    let out = sendmail(
        &h,
        &["-oMa", "192.0.2.1", "bob@host.test"],
        b"Subject: x\n\nx\n",
    );
    assert_exit(&out, 77);

    // The third message of the hour goes; the fourth and fifth wait, with
    // one log line.
    assert_exit(
        &sendmail(&h, &["-i", "bob@host.test"], b"Subject: 3\n\n3\n"),
        0,
    );
    for _ in 0..2 {
        let out = sendmail(&h, &["-i", "bob@host.test"], b"Subject: over\n\nx\n");
        assert_exit(&out, 75);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("local_rate_limit"), "{err}");
    }
    assert_eq!(
        mainlog(&h)
            .matches("U=nobody local_rate_limit reached")
            .count(),
        1,
        "{}",
        mainlog(&h)
    );
    // Root is not limited, and writes the spool itself.
    let out = run_with_input(
        command(&h, false).args(["-i", "bob@host.test"]),
        b"Subject: root\n\nx\n",
    );
    assert_exit(&out, 0);

    // Without the daemon: try again later.
    drop(daemon);
    let out = sendmail(&h, &["-i", "bob@host.test"], b"Subject: late\n\nx\n");
    assert_exit(&out, 75);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer"), "{err}");
}

#[test]
fn the_request_line_is_checked_by_the_daemon() {
    if !usable() {
        return;
    }
    let h = host("");
    let _daemon = start(&h);
    // Something that is not sendmail: refused with a reason.
    let mut s = std::os::unix::net::UnixStream::connect(&h.socket).unwrap();
    s.write_all(
        b"SUBMIT {\"config\": \"/tmp/mine.toml\", \"recipients\": [\"bob@host.test\"]}\nSubject: x\n\nx\n",
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let out = out.as_bytes();
    let reply: serde_json::Value = serde_json::from_slice(out).expect("a JSON reply");
    assert_eq!(reply["exit"], 64, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("config"),
        "{reply}"
    );
    assert!(delivered(&h.home, "bob").is_empty());
}
