//! Remote delivery end to end: `sluice` submits or queues a message, routes
//! it through a `manualroute` router to the `smtp` transport, and delivers
//! it to receivers on loopback addresses of their own (127.0.0.2, .3, ...):
//! the scripted receiver of tests/common/receiver.rs for per-recipient
//! replies, failures, TLS and AUTH. (A real Exim and a second Sluice as
//! receivers: tests/remote_relay.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::receiver::{CertKind, Receiver, Script, receiver_tls};
use common::{Dir, TestCerts};

/// Writes a configuration: `example.org` is local, everything else goes
/// through a manualroute router to `hosts` (Exim's host list) with the
/// transport options `transport`.
fn config(d: &Dir, hosts: &str, transport: &str) -> PathBuf {
    common::smarthost_config(d, "", "*", hosts, transport)
}

/// `sluice -odi -f sender RCPTS < message`: submitted and delivered
/// before the command returns.
fn submit(d: &Dir, conf: &Path, rcpts: &[&str], body: &str) -> Output {
    let mut args = vec![
        "--config",
        conf.to_str().unwrap(),
        "-odi",
        "-f",
        "sender@example.org",
    ];
    args.extend_from_slice(rcpts);
    let msg = format!("From: sender@example.org\nSubject: remote test\n\n{body}\n");
    d.run(&args, msg.as_bytes())
}

use common::lines_with;

#[test]
fn per_recipient_results_in_one_transaction() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.2", Script::default());
    let conf = config(&d, &format!("127.0.0.2::{}", rx.port()), "tls = \"may\"");
    let out = submit(
        &d,
        &conf,
        &[
            "ok1@remote.test",
            "r550x@remote.test",
            "r451y@remote.test",
            "ok2@remote.test",
        ],
        "hello",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rx.received();
    assert_eq!(got.len(), 1, "one transaction for the domain's recipients");
    assert_eq!(got[0].rcpts, vec!["ok1@remote.test", "ok2@remote.test"]);
    assert_eq!(got[0].from, "sender@example.org");
    assert!(String::from_utf8_lossy(&got[0].data).contains("\r\nhello\r\n"));
    // PIPELINING: MAIL, every RCPT and DATA before the first reply is
    // read; no RSET after a transaction that ended well.
    let cmds = rx.commands();
    assert!(!cmds.iter().any(|c| c == "RSET"), "{cmds:?}");

    // As Exim 4.96 writes them (tests/fixtures/exim-4.96-outbound): `=>`
    // for the first address of a transaction, `->` for the others, the
    // host without its port, the failures naming the host.
    let log = d.log("mainlog");
    let first = lines_with(
        &log,
        " => ok1@remote.test R=smarthost T=remote_smtp H=127.0.0.2 [127.0.0.2] C=\"250 2.0.0 ok queued as SCRIPTED\"",
    );
    assert_eq!(first.len(), 1, "{log}");
    let more = lines_with(
        &log,
        " -> ok2@remote.test R=smarthost T=remote_smtp H=127.0.0.2 [127.0.0.2] C=\"250 2.0.0 ok queued as SCRIPTED\"",
    );
    assert_eq!(more.len(), 1, "{log}");
    let failed = lines_with(&log, " ** ");
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0]
            .contains("** r550x@remote.test R=smarthost T=remote_smtp H=127.0.0.2 [127.0.0.2]: ")
            && failed[0].contains(
                "SMTP error from remote mail server after RCPT TO:<r550x@remote.test>: 550 5.1.1"
            ),
        "{}",
        failed[0]
    );
    let deferred = lines_with(&log, " == ");
    assert_eq!(deferred.len(), 1, "{log}");
    assert!(
        deferred[0].contains("== r451y@remote.test R=smarthost T=remote_smtp defer (-44) H=127.0.0.2 [127.0.0.2]: SMTP error from remote mail server after RCPT TO:<r451y@remote.test>: 451 4.7.1"),
        "{}",
        deferred[0]
    );
    // The log parses line for line.
    common::assert_log_parses(&d, &conf);
}

#[test]
fn a_refusing_host_falls_back_to_the_next() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.3", Script::default());
    // 127.0.0.4: nobody listens on that port.
    let closed = std::net::TcpListener::bind("127.0.0.4:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = config(
        &d,
        &format!("127.0.0.4::{closed}:127.0.0.3::{}", rx.port()),
        "",
    );
    let out = submit(&d, &conf, &["bob@remote.test"], "fallback");
    assert!(out.status.success());
    assert_eq!(rx.received().len(), 1);
    let log = d.log("mainlog");
    assert!(
        lines_with(&log, " => bob@remote.test ")
            .iter()
            .any(|l| l.contains("H=127.0.0.3 [127.0.0.3]")),
        "{log}"
    );
    // Exim's line for the host that could not be reached, before the
    // delivery's; the log still reads line for line.
    let refused = log.find("H=127.0.0.4 [127.0.0.4] Connection refused");
    let delivered = log.find(" => bob@remote.test ");
    assert!(refused.is_some() && refused < delivered, "{log}");
    common::assert_log_parses(&d, &conf);
    // The refusing host is remembered.
    let hints = d.run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "queue",
            "hints",
            "--json",
        ],
        b"",
    );
    let text = String::from_utf8_lossy(&hints.stdout);
    assert!(text.contains("\"address\":\"127.0.0.4\""), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
}

#[test]
fn silence_after_the_dot_is_possibly_delivered() {
    let d = Dir::new();
    let rx = Receiver::start(
        "127.0.0.5",
        Script {
            dot_reply: Some("silence".into()),
            ..Script::default()
        },
    );
    let conf = config(
        &d,
        &format!("127.0.0.5::{}", rx.port()),
        "final_timeout = \"2s\"",
    );
    let out = submit(&d, &conf, &["carol@remote.test"], "lost reply");
    assert!(out.status.success());
    let log = d.log("mainlog");
    let deferred = lines_with(&log, " == carol@remote.test");
    assert_eq!(deferred.len(), 1, "{log}");
    assert!(
        deferred[0].contains("(possibly delivered)"),
        "{}",
        deferred[0]
    );
    // Still queued, for a later attempt.
    let list = d.run(&["--config", conf.to_str().unwrap(), "-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "1");
}

#[test]
fn too_many_recipients_go_in_the_next_transaction() {
    let d = Dir::new();
    let rx = Receiver::start(
        "127.0.0.6",
        Script {
            max_rcpts: 2,
            ..Script::default()
        },
    );
    let conf = config(&d, &format!("127.0.0.6::{}", rx.port()), "");
    let rcpts: Vec<String> = (0..5).map(|i| format!("u{i}@remote.test")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let out = submit(&d, &conf, &refs, "five");
    assert!(out.status.success());
    let got = rx.received();
    assert_eq!(got.len(), 3, "2 + 2 + 1 recipients");
    let mut all: Vec<String> = got.iter().flat_map(|m| m.rcpts.clone()).collect();
    all.sort();
    assert_eq!(all, rcpts);
    assert_eq!(rx.connection_count(), 1, "one connection for all three");
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, " => ").len() + lines_with(&log, " -> ").len(),
        5,
        "{log}"
    );
}

#[test]
fn starttls_policies() {
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    let ca = certs.ca_path.display().to_string();
    let cases: &[(&str, CertKind, &str, bool, &str)] = &[
        // (tls, certificate, verify file, delivered, what the log shows)
        ("may", CertKind::SelfSigned, "", true, "CV=no"),
        ("verify", CertKind::Valid, &ca, true, "CV=yes"),
        ("verify", CertKind::WrongName, &ca, false, "TLS"),
        ("verify", CertKind::Expired, &ca, false, "TLS"),
        ("encrypt", CertKind::SelfSigned, "", true, "CV=no"),
    ];
    for (i, (tls, kind, verify, delivered, shows)) in cases.iter().enumerate() {
        let ip = format!("127.0.0.{}", 10 + i);
        let rx = Receiver::start(
            &ip,
            Script {
                starttls: Some(receiver_tls(&certs, &[&ip], *kind)),
                ..Script::default()
            },
        );
        let dd = Dir::new();
        let mut opts = format!("tls = {tls:?}\n");
        if !verify.is_empty() {
            opts.push_str(&format!("tls_verify_certificates = {verify:?}\n"));
        }
        let conf = config(&dd, &format!("{ip}::{}", rx.port()), &opts);
        let out = submit(&dd, &conf, &["dave@remote.test"], "tls");
        assert!(out.status.success());
        let log = dd.log("mainlog");
        let got = rx.received();
        if *delivered {
            assert_eq!(got.len(), 1, "case {i}: {log}");
            assert!(got[0].tls, "case {i}: sent in clear");
            let l = lines_with(&log, " => dave@remote.test");
            assert!(
                l.len() == 1 && l[0].contains(" X=TLS1.3:") && l[0].contains(shows),
                "case {i}: {log}"
            );
        } else {
            assert!(got.is_empty(), "case {i}: delivered despite tls = {tls}");
            let l = lines_with(&log, " == dave@remote.test");
            assert_eq!(l.len(), 1, "case {i}: {log}");
        }
    }
    // tls = "encrypt" to a host without STARTTLS: deferred, nothing in clear.
    let rx = Receiver::start("127.0.0.20", Script::default());
    let dd = Dir::new();
    let conf = config(
        &dd,
        &format!("127.0.0.20::{}", rx.port()),
        "tls = \"encrypt\"",
    );
    submit(&dd, &conf, &["erin@remote.test"], "clear?");
    assert!(rx.received().is_empty());
    assert_eq!(
        lines_with(&dd.log("mainlog"), " == erin@remote.test").len(),
        1
    );
    // Bytes injected after the 220 to STARTTLS: a host error, nothing sent.
    let rx = Receiver::start(
        "127.0.0.21",
        Script {
            starttls: Some(receiver_tls(&certs, &["127.0.0.21"], CertKind::Valid)),
            after_starttls: Some("250 injected\r\n".into()),
            ..Script::default()
        },
    );
    let dd = Dir::new();
    let conf = config(
        &dd,
        &format!("127.0.0.21::{}", rx.port()),
        "tls = \"encrypt\"",
    );
    submit(&dd, &conf, &["frank@remote.test"], "injected");
    assert!(rx.received().is_empty());
    let log = dd.log("mainlog");
    assert_eq!(lines_with(&log, " == frank@remote.test").len(), 1, "{log}");
}

#[test]
fn bad_replies_are_host_errors_and_the_log_still_parses() {
    let scripts: Vec<(&str, Script)> = vec![
        (
            "garbage greeting",
            Script {
                greeting: Some("hello there, not SMTP".into()),
                ..Script::default()
            },
        ),
        (
            "data before the greeting",
            Script {
                before_greeting: Some("250 unexpected\r\n".into()),
                ..Script::default()
            },
        ),
        (
            "a reply holding CR LF and a fake log line",
            Script {
                mail_reply: Some(
                    "451 4.3.0 busy\r\n2026-01-01 00:00:00 1abc-000000-00 => fake@forged R=x"
                        .into(),
                ),
                ..Script::default()
            },
        ),
        (
            "a reply line over 4 KiB",
            Script {
                mail_reply: Some(format!("250 {}", "x".repeat(5000))),
                ..Script::default()
            },
        ),
        (
            "421 at the greeting",
            Script {
                greeting: Some("421 4.3.2 go away".into()),
                ..Script::default()
            },
        ),
    ];
    for (i, (what, script)) in scripts.into_iter().enumerate() {
        let ip = format!("127.0.0.{}", 30 + i);
        let rx = Receiver::start(&ip, script);
        let d = Dir::new();
        let conf = config(
            &d,
            &format!("{ip}::{}", rx.port()),
            "command_timeout = \"3s\"",
        );
        let out = submit(&d, &conf, &["gina@remote.test"], what);
        assert!(out.status.success(), "{what}");
        let log = d.log("mainlog");
        assert_eq!(
            lines_with(&log, " == gina@remote.test").len(),
            1,
            "{what}: {log}"
        );
        assert!(
            !log.contains("=> fake@forged"),
            "{what}: a forged line: {log}"
        );
        assert!(
            d.log("paniclog").is_empty(),
            "{what}: {}",
            d.log("paniclog")
        );
        let check = d.run(&["--config", conf.to_str().unwrap(), "log", "check"], b"");
        assert!(
            check.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        // Still queued: nothing lost.
        let n = d.run(&["--config", conf.to_str().unwrap(), "-bpc"], b"");
        assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "1", "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn auth_only_over_verified_tls() {
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    let ca = certs.ca_path.display().to_string();
    let creds = d.path().join("smarthost.auth");
    std::fs::write(&creds, "user@example.org:s3cret\n").unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let opts = format!(
        "tls = \"verify\"\ntls_verify_certificates = {ca:?}\nauth_credentials_file = {:?}\n",
        creds.display().to_string()
    );
    // A smarthost with a valid certificate, AUTH after STARTTLS.
    let rx = Receiver::start(
        "127.0.0.40",
        Script {
            starttls: Some(receiver_tls(&certs, &["127.0.0.40"], CertKind::Valid)),
            auth: true,
            ..Script::default()
        },
    );
    let conf = config(&d, &format!("127.0.0.40::{}", rx.port()), &opts);
    let out = submit(&d, &conf, &["hank@remote.test"], "authenticated");
    assert!(out.status.success());
    assert_eq!(rx.received().len(), 1, "{}", d.log("mainlog"));
    let cmds = rx.commands();
    let auth: Vec<&String> = cmds.iter().filter(|c| c.starts_with("AUTH")).collect();
    assert_eq!(auth.len(), 1, "{cmds:?}");
    let starttls = cmds.iter().position(|c| c == "STARTTLS").unwrap();
    let auth_at = cmds.iter().position(|c| c.starts_with("AUTH")).unwrap();
    assert!(starttls < auth_at, "AUTH before TLS: {cmds:?}");

    // A smarthost offering AUTH in clear and no STARTTLS: deferred, the
    // password never sent.
    let rx = Receiver::start(
        "127.0.0.41",
        Script {
            auth: true,
            ..Script::default()
        },
    );
    let d2 = Dir::new();
    let conf = config(&d2, &format!("127.0.0.41::{}", rx.port()), &opts);
    submit(&d2, &conf, &["ivan@remote.test"], "not in clear");
    assert!(rx.received().is_empty());
    assert!(
        !rx.commands().iter().any(|c| c.starts_with("AUTH")),
        "{:?}",
        rx.commands()
    );
    assert_eq!(
        lines_with(&d2.log("mainlog"), " == ivan@remote.test").len(),
        1
    );

    // Credentials with a weaker tls policy do not pass the check.
    let conf = config(
        &d2,
        "127.0.0.41",
        &format!(
            "tls = \"may\"\nauth_credentials_file = {:?}\n",
            creds.display().to_string()
        ),
    );
    let out = d2.run(&["--config", conf.to_str().unwrap(), "-bV"], b"");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth_credentials_file"), "{err}");
}

#[test]
fn lmtp_gives_one_reply_per_recipient() {
    let d = Dir::new();
    let rx = Receiver::start(
        "127.0.0.42",
        Script {
            lmtp: true,
            greeting: Some("220 lmtp.test LMTP ready".into()),
            ..Script::default()
        },
    );
    // An accept router handing the domain to an LMTP server, as a host
    // hands mail to Dovecot.
    let text = format!(
        r#"primary_hostname = "mx.example.org"
local_domains = ["example.org", "lmtp.test"]

[[router]]
name = "to_lmtp"
driver = "accept"
domains = ["lmtp.test"]
transport = "lmtp"

[[transport]]
name = "lmtp"
driver = "smtp"
protocol = "lmtp"
hosts = ["127.0.0.42::{}"]
"#,
        rx.port()
    );
    let conf = d.path().join("lmtp.toml");
    std::fs::write(&conf, text).unwrap();
    let out = d.run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "-odi",
            "ok@lmtp.test",
            "d550full@lmtp.test",
            "d452busy@lmtp.test",
        ],
        b"Subject: lmtp\n\nper recipient\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rx.commands().iter().any(|c| c.starts_with("LHLO ")),
        "{:?}",
        rx.commands()
    );
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, " => ok@lmtp.test R=to_lmtp T=lmtp").len(),
        1,
        "{log}"
    );
    assert_eq!(lines_with(&log, " ** d550full@lmtp.test").len(), 1, "{log}");
    assert!(
        lines_with(&log, " ** d550full@lmtp.test")[0].contains("after end of data: 550 5.2.1"),
        "{log}"
    );
    assert_eq!(lines_with(&log, " == d452busy@lmtp.test").len(), 1, "{log}");
}

#[test]
fn a_failed_handshake_under_may_is_retried_in_clear() {
    let d = Dir::new();
    let rx = Receiver::start(
        "127.0.0.43",
        Script {
            broken_tls: true,
            ..Script::default()
        },
    );
    let conf = config(&d, &format!("127.0.0.43::{}", rx.port()), "tls = \"may\"");
    let out = submit(&d, &conf, &["jane@remote.test"], "in clear after all");
    assert!(out.status.success());
    let got = rx.received();
    assert_eq!(got.len(), 1, "{}\n{:?}", d.log("mainlog"), rx.commands());
    assert!(!got[0].tls);
    assert_eq!(
        rx.connection_count(),
        2,
        "a second connection, without STARTTLS"
    );
    // Under encrypt the same host gets nothing.
    let d2 = Dir::new();
    let conf = config(
        &d2,
        &format!("127.0.0.43::{}", rx.port()),
        "tls = \"encrypt\"",
    );
    submit(&d2, &conf, &["kate@remote.test"], "never in clear");
    assert_eq!(rx.received().len(), 1);
    assert_eq!(
        lines_with(&d2.log("mainlog"), " == kate@remote.test").len(),
        1
    );
}

#[test]
fn smtps_and_the_source_address() {
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    let rx = Receiver::start(
        "127.0.0.44",
        Script {
            implicit_tls: Some(receiver_tls(&certs, &["127.0.0.44"], CertKind::Valid)),
            ..Script::default()
        },
    );
    let conf = config(
        &d,
        &format!("127.0.0.44::{}", rx.port()),
        &format!(
            "protocol = \"smtps\"\ntls = \"verify\"\ntls_verify_certificates = {:?}\ninterface = [\"127.0.0.45\"]\n",
            certs.ca_path.display().to_string()
        ),
    );
    let out = submit(&d, &conf, &["liam@remote.test"], "implicit tls");
    assert!(out.status.success());
    let got = rx.received();
    assert_eq!(got.len(), 1, "{}", d.log("mainlog"));
    assert!(got[0].tls);
    assert!(!rx.commands().iter().any(|c| c == "STARTTLS"));
    assert_eq!(
        rx.peers
            .lock()
            .unwrap()
            .first()
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.0.45"),
        "the connection comes from the configured interface"
    );
    let log = d.log("mainlog");
    let l = lines_with(&log, " => liam@remote.test");
    assert!(
        l.len() == 1 && l[0].contains(" X=TLS1.3:") && l[0].contains(" CV=yes"),
        "{log}"
    );
}

#[test]
fn lmtp_over_a_unix_socket() {
    let d = Dir::new();
    let socket = d.path().join("lmtp.sock");
    let rx = Receiver::start_unix(
        &socket,
        Script {
            lmtp: true,
            greeting: Some("220 lmtp.test LMTP ready".into()),
            ..Script::default()
        },
    );
    let text = format!(
        r#"primary_hostname = "mx.example.org"
local_domains = ["example.org", "lmtp.test"]

[[router]]
name = "dovecot"
driver = "accept"
domains = ["lmtp.test"]
transport = "dovecot_lmtp"

[[transport]]
name = "dovecot_lmtp"
driver = "smtp"
protocol = "lmtp"
socket = {:?}
"#,
        socket.display().to_string()
    );
    let conf = d.path().join("lmtp.toml");
    std::fs::write(&conf, text).unwrap();
    let out = d.run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "-odi",
            "ok@lmtp.test",
            "d550gone@lmtp.test",
        ],
        b"Subject: over a socket\n\nhello\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rx.received().len(), 1, "{}", d.log("mainlog"));
    let log = d.log("mainlog");
    assert_eq!(
        lines_with(&log, " => ok@lmtp.test R=dovecot T=dovecot_lmtp").len(),
        1,
        "{log}"
    );
    assert_eq!(lines_with(&log, " ** d550gone@lmtp.test").len(), 1, "{log}");
}

/// Retry rules count from a recipient's first temporary failure, not from
/// the message's arrival (Exim's rule): a message queued for longer than
/// the whole schedule is still retried after its first failure, and gives
/// up (`**`, 5.4.7, with the last error) once the last cutoff has passed
/// since that failure.
#[test]
fn retries_count_from_the_first_failure_and_then_give_up() {
    let d = Dir::new();
    let rx = Receiver::start("127.0.0.2", Script::default());
    let conf = common::smarthost_config(
        &d,
        "[queue]\nretry = \"F,3s,1s\"",
        "*",
        &format!("127.0.0.2::{}", rx.port()),
        "",
    );
    let c = conf.to_str().unwrap();
    let msg = b"From: sender@example.org\nSubject: retry\n\nbody\n";
    let out = d.run(
        &[
            "--config",
            c,
            "-odq",
            "-f",
            "sender@example.org",
            "r451a@remote.test",
        ],
        msg,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Older than the whole schedule before its first try.
    std::thread::sleep(Duration::from_millis(3500));
    let run = |d: &Dir| {
        let out = d.run(&["--config", c, "-q"], b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&d);
    let log = d.log("mainlog");
    assert_eq!(lines_with(&log, " == r451a@remote.test").len(), 1, "{log}");
    assert!(
        lines_with(&log, " ** ").is_empty(),
        "gave up from the arrival: {log}"
    );
    let first_try = std::time::Instant::now();

    // Queue runs until it gives up: not before 3 s after the first failure.
    let gave_up = loop {
        std::thread::sleep(Duration::from_millis(500));
        run(&d);
        let log = d.log("mainlog");
        if let Some(l) = lines_with(&log, " ** r451a@remote.test").first() {
            break l.to_string();
        }
        assert!(
            first_try.elapsed() < Duration::from_secs(20),
            "never gave up: {log}"
        );
    };
    let waited = first_try.elapsed();
    assert!(
        waited >= Duration::from_millis(2000),
        "gave up after {waited:?}"
    );
    assert!(
        gave_up.contains("retry timeout exceeded")
            && gave_up.contains("451 4.7.1 <r451a@remote.test>: try again later"),
        "{gave_up}"
    );
    // Given up, it is reported to the sender once, and leaves the queue.
    let log = d.log("mainlog");
    assert_eq!(lines_with(&log, " <= <> R=").len(), 1, "{log}");
    let left = d.run(&["--config", c, "-bpc"], b"");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0", "{log}");
    // Retried in between, every 1 s at most (the queue runs every 0.5 s).
    let tries = rx
        .commands()
        .iter()
        .filter(|c| c.starts_with("RCPT TO:<r451a@"))
        .count();
    assert!((3..=6).contains(&tries), "{tries} attempts");
}

/// With `helo_data` unset, a host whose name is not fully qualified greets
/// with the address literal of its end of the connection (RFC 5321
/// §4.1.4); a qualified primary_hostname is sent as it is.
#[test]
fn an_unqualified_host_name_greets_with_its_address() {
    for (name, want) in [
        ("vm", "EHLO [127.0.0.1]"),
        ("mx.example.org", "EHLO mx.example.org"),
    ] {
        let d = Dir::new();
        let rx = Receiver::start("127.0.0.2", Script::default());
        let conf = config(&d, &format!("127.0.0.2::{}", rx.port()), "");
        let text = std::fs::read_to_string(&conf).unwrap().replace(
            "primary_hostname = \"mx.example.org\"",
            &format!("primary_hostname = \"{name}\""),
        );
        std::fs::write(&conf, text).unwrap();
        let out = submit(&d, &conf, &["someone@remote.test"], "hello");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(rx.received().len(), 1);
        let cmds = rx.commands();
        assert_eq!(cmds.first().map(String::as_str), Some(want), "{cmds:?}");
    }
}
