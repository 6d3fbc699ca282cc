//! Submission through the daemon for a user who cannot write the spool:
//! `nobody` (run with setpriv) calls sendmail, which hands the message to
//! the daemon over the submission socket; the daemon knows the caller by
//! the socket's credentials and applies the local sender rules and
//! `local_rate_limit`. With no daemon, sendmail exits 75.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::others::{self, Host};
use common::{assert_exit, run_with_input};

/// A host whose spool only root may write, and its submission socket (in
/// a directory of its own that `nobody` can reach).
struct Socketed {
    host: Host,
    _run: tempfile::TempDir,
    socket: PathBuf,
}

fn host(extra: &str) -> Socketed {
    let run = tempfile::Builder::new()
        .prefix("sluice-run")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(run.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let socket = run.path().join("sock").join("submit.sock");
    let host = others::host(
        0o755,
        &format!("submission_socket = \"{}\"\n{extra}", socket.display()),
    );
    Socketed {
        host,
        _run: run,
        socket,
    }
}

/// The daemon, as root; killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(h: &Socketed) -> Daemon {
    let mut child = h
        .host
        .command(false)
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

/// A host with the socket and its daemon running; none where tests cannot
/// run as another user.
fn started(extra: &str) -> Option<(Socketed, Daemon)> {
    if !others::usable() {
        return None;
    }
    let h = host(extra);
    let daemon = start(&h);
    Some((h, daemon))
}

fn sendmail(h: &Socketed, args: &[&str], message: &[u8]) -> std::process::Output {
    run_with_input(h.host.command(true).args(args), message)
}

/// Bob's one message, which `nobody` sent with `-f boss@corp.example` (or
/// `MAIL FROM`), a forged `Sender:` and someone else's `From:`: the
/// envelope sender is theirs, the forged header gone, `Sender:` theirs.
fn assert_bob_got_one_sent_as_nobody(h: &Socketed) {
    assert!(common::wait_until(Duration::from_secs(20), || h
        .host
        .delivered("bob")
        .len()
        == 1));
    let m = &h.host.delivered("bob")[0];
    assert!(m.starts_with("Return-path: <nobody@host.test>\n"), "{m}");
    assert!(
        !m.contains("forged@corp.example"),
        "forged Sender: removed: {m}"
    );
    assert!(m.contains("\nSender: nobody@host.test\n"), "{m}");
}

#[test]
fn nobody_submits_through_the_daemon_under_the_local_sender_rules() {
    let Some((h, daemon)) = started("local_rate_limit = 3\n") else {
        return;
    };

    // -t, a forged Sender:, a From: that is not theirs, -f ignored.
    let forged = b"From: The Boss <boss@corp.example>\nSender: forged@corp.example\n\
                   To: bob@host.test\nSubject: from nobody\n\nhello\n";
    let out = sendmail(&h, &["-t", "-i", "-v", "-f", "boss@corp.example"], forged);
    assert_exit(&out, 0);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 23, "-v prints the ID: {id:?}");
    assert_bob_got_one_sent_as_nobody(&h);
    let log = h.host.mainlog();
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
    assert!(common::wait_until(Duration::from_secs(20), || h
        .host
        .delivered("carol")
        .len()
        == 1));
    assert!(h.host.delivered("carol")[0].starts_with("Return-path: <>\n"));

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
        h.host
            .mainlog()
            .matches("U=nobody local_rate_limit reached")
            .count(),
        1,
        "{}",
        h.host.mainlog()
    );
    // Root is not limited, and writes the spool itself.
    let out = run_with_input(
        h.host.command(false).args(["-i", "bob@host.test"]),
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
    let Some((h, _daemon)) = started("") else {
        return;
    };
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
    assert!(h.host.delivered("bob").is_empty());
}

#[test]
fn nobody_runs_an_smtp_session_through_the_daemon() {
    let Some((h, daemon)) = started("local_rate_limit = 1\n") else {
        return;
    };
    let session = "EHLO me\r\nMAIL FROM:<boss@corp.example>\r\nRCPT TO:<bob@host.test>\r\nDATA\r\n\
                   From: boss@corp.example\r\nSender: forged@corp.example\r\nSubject: bs\r\n\r\nover -bs\r\n.\r\n\
                   MAIL FROM:<boss@corp.example>\r\nRCPT TO:<bob@host.test>\r\nDATA\r\n\
                   Subject: second\r\n\r\nover the rate\r\n.\r\nQUIT\r\n";
    let out = run_with_input(h.host.command(true).arg("-bs"), session.as_bytes());
    assert_exit(&out, 0);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("250 2.0.0 OK id="), "{said}");
    assert!(
        said.contains("452 4.7.0") && said.contains("local_rate_limit"),
        "{said}"
    );
    // MAIL FROM was ignored, as -f is; the Sender: rules applied.
    assert_bob_got_one_sent_as_nobody(&h);

    // Without the daemon: 421, and 75.
    drop(daemon);
    let out = run_with_input(h.host.command(true).arg("-bs"), b"QUIT\r\n");
    assert_exit(&out, 75);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("421 4.3.2 "));
}

/// Socket activation as systemd does it (`systemd-socket-activate`, from
/// systemd): the socket is held before the daemon runs; the first
/// submission starts it, and the daemon takes the socket it is given
/// (`FileDescriptorName=submit`) instead of making its own.
#[test]
fn the_daemon_takes_the_socket_systemd_holds() {
    if !common::have("systemd-socket-activate") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-socket-activate (systemd) is needed under CI=true"
        );
        return;
    }
    let h = host("");
    let held = h.socket.with_file_name("held.sock");
    std::fs::create_dir_all(held.parent().unwrap()).unwrap();
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&held)
        .arg("--fdname=submit")
        .arg(format!("--setenv=SLUICE_HOME={}", h.host.home.display()))
        .arg(format!(
            "--setenv=SLUICE_CONFIG={}",
            h.host.config.display()
        ))
        .arg(&h.host.bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || held.exists()));
    // Root, told to go through the daemon: the connection waits in the
    // held socket while the daemon starts.
    let out = run_with_input(
        h.host
            .command(false)
            .args(["--set", "submission=daemon"])
            .arg("--set")
            .arg(format!(
                "submission_socket={:?}",
                held.display().to_string()
            ))
            .args(["-v", "-i", "bob@host.test"]),
        b"Subject: activated\n\nhello\n",
    );
    let _ = activator.kill();
    let _ = activator.wait();
    assert_exit(&out, 0);
    assert!(
        h.host.mainlog().contains("U=root P=local"),
        "{}",
        h.host.mainlog()
    );
    assert!(
        !h.socket.exists(),
        "the daemon used the socket it was given, not its own"
    );
}

/// Four submissions at once under `local_rate_limit = 2`: two are queued,
/// two deferred, however their checks interleave (a message is counted
/// when its check lets it go, not after it is queued).
#[test]
fn parallel_submissions_do_not_pass_the_rate_together() {
    let Some((h, _daemon)) = started("local_rate_limit = 2\n") else {
        return;
    };
    let codes: Vec<i32> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let h = &h;
                s.spawn(move || {
                    let body = format!("Subject: parallel {i}\n\nx\n");
                    sendmail(h, &["-i", "bob@host.test"], body.as_bytes())
                        .status
                        .code()
                        .unwrap_or(-1)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let queued = codes.iter().filter(|&&c| c == 0).count();
    let deferred = codes.iter().filter(|&&c| c == 75).count();
    assert_eq!((queued, deferred), (2, 2), "{codes:?}");
}
