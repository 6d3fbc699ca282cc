//! The daemon's policy over TCP, case by case with its reply code: relay
//! attempts in every disguise, unknown users, the size limit, the recipient
//! limit, bare LF, too many errors, connection limits; each refusal in
//! log/rejectlog. Also `sluice route` / `-bt`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Daemon, Dir, SmtpClient, log_lines_of, wait_until};

/// Connects, checks the greeting and says EHLO.
fn session(addr: SocketAddr) -> SmtpClient {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220, "{greeting}");
    let ehlo = c.cmd("EHLO client.example").unwrap();
    assert_eq!(ehlo.code(), 250, "{ehlo}");
    c
}

/// Asserts a reply's code and enhanced status code (`""`: any or none).
fn expect(reply: &common::Reply, code: u16, status: &str, what: &str) {
    assert_eq!(reply.code(), code, "{what}: {reply}");
    if !status.is_empty() {
        assert_eq!(
            reply.status().map(|s| s.to_string()).as_deref(),
            Some(status),
            "{what}: {reply}, wanted {status}"
        );
    }
}

#[test]
fn relay_attempts_are_refused_in_every_form() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let relay_host = Dir::new();
    let relay_daemon = relay_host.serve(&[r#"relay_from_hosts=["127.0.0.1"]"#]);
    let cases: &[(&str, &str)] = &[
        ("<bob@remote.example>", "relay to a foreign domain"),
        ("<bob%remote.example@localhost>", "% hack"),
        ("<@relay.example:bob@localhost>", "source route"),
        (
            "<@a.example,@b.example:bob@localhost>",
            "source route, two hops",
        ),
        ("<remote.example!bob@localhost>", "bang path"),
        (
            "<\"bob@remote.example\"@localhost>",
            "quoted local part with @",
        ),
        ("<bob@localhost.>", "trailing dot"),
    ];
    let mut c = session(daemon.smtp);
    let mut r = session(relay_daemon.smtp);
    for (addr, what) in cases {
        expect(
            &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
            250,
            "2.1.0",
            what,
        );
        expect(
            &c.cmd(&format!("RCPT TO:{addr}")).unwrap(),
            550,
            "5.7.1",
            what,
        );
        expect(&c.cmd("RSET").unwrap(), 250, "2.0.0", what);
        // A host allowed to relay still may not use the disguised forms;
        // a plain foreign address is its right.
        expect(
            &r.cmd("MAIL FROM:<alice@example.org>").unwrap(),
            250,
            "2.1.0",
            what,
        );
        let reply = r.cmd(&format!("RCPT TO:{addr}")).unwrap();
        if *addr == "<bob@remote.example>" {
            // Past the relay check, to the dnslookup router: the tests'
            // DNS is a closed loopback port, so the lookup defers it
            // (451 4.4.3); with a DNS answer it would be 250.
            assert!(
                reply.code() == 250
                    || (reply.code() == 451 && reply.status() == Some(smtp::Status::new(4, 4, 3))),
                "relay host, {what}: {reply}"
            );
        } else {
            expect(&reply, 550, "5.7.1", &format!("relay host, {what}"));
        }
        expect(&r.cmd("RSET").unwrap(), 250, "2.0.0", what);
    }
    // The local domains themselves are fine, in any case of letters.
    expect(
        &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
        250,
        "2.1.0",
        "",
    );
    expect(
        &c.cmd("RCPT TO:<Bob@LocalHost>").unwrap(),
        250,
        "2.1.5",
        "local",
    );
    expect(&c.cmd("QUIT").unwrap(), 221, "2.0.0", "quit");
    expect(&r.cmd("QUIT").unwrap(), 221, "2.0.0", "quit");

    // Every refusal is in the reject log, and nothing was delivered.
    let reject = d.log("rejectlog");
    for (addr, what) in cases {
        let bare = addr.trim_start_matches('<').trim_end_matches('>');
        assert!(
            reject
                .lines()
                .any(|l| l.contains(bare) && l.contains("rejected")),
            "{what} ({addr}) not in rejectlog:\n{reject}"
        );
    }
    assert_eq!(
        reject.lines().filter(|l| l.contains("rejected")).count(),
        cases.len()
    );
    assert!(!d.home().join("mail/remote.example").exists());
    assert!(!d.home().join("mail/localhost.").exists());
}

#[test]
fn unknown_local_user_with_passwd_users() {
    let d = Dir::new();
    let daemon = d.serve(&["mailbox.users=\"passwd\""]);
    let mut c = session(daemon.smtp);
    expect(
        &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
        250,
        "2.1.0",
        "",
    );
    let no_user = "no-such-user-7f3a";
    expect(
        &c.cmd(&format!("RCPT TO:<{no_user}@localhost>")).unwrap(),
        550,
        "5.1.1",
        "unknown user",
    );
    // root is in every password database.
    expect(
        &c.cmd("RCPT TO:<root@localhost>").unwrap(),
        250,
        "2.1.5",
        "root",
    );
    expect(&c.cmd("QUIT").unwrap(), 221, "2.0.0", "");
    let reject = d.log("rejectlog");
    assert!(
        reject.contains(&format!("rejected RCPT <{no_user}@localhost>")),
        "{reject}"
    );
}

#[test]
fn message_size_limit() {
    let d = Dir::new();
    let daemon = d.serve(&["message_size_limit=1000"]);
    let mut c = session(daemon.smtp);
    // Declared too big.
    expect(
        &c.cmd("MAIL FROM:<alice@example.org> SIZE=1001").unwrap(),
        552,
        "5.3.4",
        "SIZE=",
    );
    // Grown too big.
    expect(
        &c.cmd("MAIL FROM:<alice@example.org> SIZE=900").unwrap(),
        250,
        "2.1.0",
        "",
    );
    expect(&c.cmd("RCPT TO:<bob@localhost>").unwrap(), 250, "2.1.5", "");
    expect(&c.cmd("DATA").unwrap(), 354, "", "");
    let line = "y".repeat(70);
    let mut body = String::from("Subject: big\r\n\r\n");
    for _ in 0..20 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    c.write_raw(body.as_bytes()).unwrap();
    expect(&c.cmd(".").unwrap(), 552, "5.3.4", "data");
    // A small one still goes through on the same connection.
    expect(
        &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
        250,
        "2.1.0",
        "",
    );
    expect(&c.cmd("RCPT TO:<bob@localhost>").unwrap(), 250, "2.1.5", "");
    expect(&c.cmd("DATA").unwrap(), 354, "", "");
    c.write_raw(b"Subject: small\r\n\r\nok\r\n").unwrap();
    let ok = c.cmd(".").unwrap();
    expect(&ok, 250, "2.0.0", "small");
    expect(&c.cmd("QUIT").unwrap(), 221, "2.0.0", "");
    let id = ok.queued_id().map(str::to_owned).unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        log_lines_of(&d.log("mainlog"), &id)
            .last()
            .is_some_and(|l| l.ends_with(" Completed"))
    }));
    let msgs = common::maildir_messages(&d.maildir("localhost", "bob"));
    assert_eq!(msgs.len(), 1, "only the small message");
    let reject = d.log("rejectlog");
    assert_eq!(
        reject
            .lines()
            .filter(|l| l.contains("552 5.3.4") || l.contains("size"))
            .count(),
        2,
        "{reject}"
    );
}

#[test]
fn recipient_limit_bare_lf_and_too_many_errors() {
    let d = Dir::new();
    let daemon = d.serve(&[]);
    let mut c = session(daemon.smtp);

    // 100 recipients in one pipelined write; the 101st gets 452 4.5.3.
    let mut batch = String::from("MAIL FROM:<alice@example.org>\r\n");
    for i in 1..=101 {
        batch.push_str(&format!("RCPT TO:<user{i}@localhost>\r\n"));
    }
    batch.push_str("DATA\r\n");
    c.write_raw(batch.as_bytes()).unwrap();
    expect(&c.reply().unwrap(), 250, "2.1.0", "MAIL");
    for i in 1..=100 {
        expect(&c.reply().unwrap(), 250, "2.1.5", &format!("user{i}"));
    }
    expect(&c.reply().unwrap(), 452, "4.5.3", "user101");
    expect(&c.reply().unwrap(), 354, "", "DATA");
    c.write_raw(b"Subject: crowd\r\n\r\nhello\r\n").unwrap();
    let ok = c.cmd(".").unwrap();
    expect(&ok, 250, "2.0.0", "crowd");
    let id = ok.queued_id().map(str::to_owned).unwrap();

    // Bare LF in the data: refused after the end, the session in step.
    expect(
        &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
        250,
        "2.1.0",
        "",
    );
    expect(&c.cmd("RCPT TO:<bob@localhost>").unwrap(), 250, "2.1.5", "");
    expect(&c.cmd("DATA").unwrap(), 354, "", "");
    c.write_raw(b"Subject: bare\r\n\r\nline one\nline two\r\n")
        .unwrap();
    expect(&c.cmd(".").unwrap(), 554, "5.6.0", "bare LF");
    expect(&c.cmd("NOOP").unwrap(), 250, "2.0.0", "after bare LF");

    // Ten refused commands (a refused message is not one): the tenth is
    // answered, then 421 and the end.
    let mut batch = String::new();
    for i in 1..=10 {
        batch.push_str(&format!("XBAD{i}\r\n"));
    }
    // Pipelined behind the tenth: never answered.
    batch.push_str("NOOP\r\n");
    c.write_raw(batch.as_bytes()).unwrap();
    for i in 1..=10 {
        expect(
            &c.reply().unwrap(),
            500,
            "5.5.2",
            &format!("bad command {i}"),
        );
    }
    expect(&c.reply().unwrap(), 421, "4.7.0", "too many errors");
    c.expect_closed(Duration::from_secs(5)).unwrap();

    // The message went to exactly 100 mailboxes.
    assert!(wait_until(Duration::from_secs(60), || {
        log_lines_of(&d.log("mainlog"), &id)
            .last()
            .is_some_and(|l| l.ends_with(" Completed"))
    }));
    let log = d.log("mainlog");
    let lines = log_lines_of(&log, &id);
    assert_eq!(lines.iter().filter(|l| l.contains(" => ")).count(), 100);
    assert!(!d.maildir("localhost", "user101").exists());
    assert_eq!(
        common::maildir_messages(&d.maildir("localhost", "user100")).len(),
        1
    );
    assert!(common::maildir_messages(&d.maildir("localhost", "bob")).is_empty());

    let reject = d.log("rejectlog");
    assert!(reject.contains("bare LF"), "{reject}");
    assert!(
        reject.contains(
            "SMTP call from (client.example) [127.0.0.1] dropped: too many syntax or protocol errors (last command was \"XBAD10\")"
        ),
        "{reject}"
    );
}

/// A connection from a chosen loopback address (127.0.0.0/8 is all local).
fn connect_from(src: &str, to: SocketAddr) -> SmtpClient {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let std = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{src}:0").parse().unwrap()).unwrap();
        let stream = s.connect(to).await.unwrap();
        stream.into_std().unwrap()
    });
    std.set_nonblocking(false).unwrap();
    SmtpClient::from_stream(std).unwrap()
}

fn greeting(c: &mut SmtpClient) -> common::Reply {
    c.reply().unwrap()
}

#[test]
fn connection_limits_total_and_per_host() {
    let d = Dir::new();
    let daemon: Daemon = d.serve(&["smtp.max_connections=3", "smtp.max_connections_per_host=2"]);
    let a = daemon.smtp;
    let mut one = connect_from("127.0.0.1", a);
    expect(&greeting(&mut one), 220, "", "first");
    let mut two = connect_from("127.0.0.1", a);
    expect(&greeting(&mut two), 220, "", "second");
    // A third from the same host.
    // (No enhanced status code before EHLO has offered them.)
    let mut three = connect_from("127.0.0.1", a);
    let r = greeting(&mut three);
    expect(&r, 421, "", "per host");
    assert!(r.text().contains("from your host"), "{r}");
    three.expect_closed(Duration::from_secs(5)).unwrap();
    // Another host still gets in, up to the total.
    let mut other = connect_from("127.0.0.2", a);
    expect(&greeting(&mut other), 220, "", "other host");
    let mut fourth = connect_from("127.0.0.3", a);
    let r = greeting(&mut fourth);
    expect(&r, 421, "", "total");
    assert!(!r.text().contains("from your host"), "{r}");
    fourth.expect_closed(Duration::from_secs(5)).unwrap();
    // A slot comes back when a connection ends.
    expect(&one.cmd("QUIT").unwrap(), 221, "2.0.0", "");
    one.expect_closed(Duration::from_secs(5)).unwrap();
    let mut again = None;
    assert!(wait_until(Duration::from_secs(5), || {
        let mut c = connect_from("127.0.0.1", a);
        let ok = greeting(&mut c).code() == 220;
        if ok {
            again = Some(c);
        }
        ok
    }));
    let mut again = again.unwrap();
    expect(&again.cmd("EHLO client.example").unwrap(), 250, "", "");
    for c in [&mut two, &mut other, &mut again] {
        expect(&c.cmd("QUIT").unwrap(), 221, "2.0.0", "");
    }
    let reject = d.log("rejectlog");
    assert!(
        reject.contains("too many connections from your host"),
        "{reject}"
    );
    assert!(
        reject
            .lines()
            .any(|l| l.contains("[127.0.0.3]") && l.contains("too many connections")),
        "{reject}"
    );
}

#[test]
fn route_and_bt() {
    let d = Dir::new();
    let home = d.home();
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| {
        let out = d.run(args, b"");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mailbox = home.join("mail/localhost/bob");
    for form in [&["route"][..], &["-bt"][..]] {
        let mut args = form.to_vec();
        args.push("bob@localhost");
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(0), "{form:?}: {out}{err}");
        assert_eq!(
            out,
            format!(
                "bob@localhost\n  router = virtual_mailbox, transport = maildir_delivery\n  mailbox = {}\n",
                mailbox.display()
            ),
            "{form:?}"
        );
        // Undeliverable: exit 2, as Exim's -bt.
        let mut args = form.to_vec();
        args.push("a/b@localhost");
        let (code, out, _) = run(&args);
        assert_eq!(code, Some(2), "{form:?}: {out}");
        assert!(out.contains("a/b@localhost is undeliverable"), "{out}");
        // Another domain goes to the dnslookup router; the tests' DNS is a
        // closed port, so it cannot be resolved now: exit 1.
        let mut args = form.to_vec();
        args.push("bob@remote.example");
        let (code, out, _) = run(&args);
        assert_eq!(code, Some(1), "{form:?}: {out}");
        assert!(
            out.contains("bob@remote.example cannot be resolved at this time"),
            "{out}"
        );
        // One bad address among good ones still makes it 2.
        let mut args = form.to_vec();
        args.extend(["bob@localhost", "bob@remote.example", "a/b@localhost"]);
        let (code, out, _) = run(&args);
        assert_eq!(code, Some(2), "{form:?}: {out}");
        assert!(out.starts_with("bob@localhost\n"), "{out}");
    }
    // No address: a usage error.
    let (code, _, err) = run(&["-bt"]);
    assert_eq!(code, Some(64), "{err}");

    // An alias redirects.
    std::fs::write(home.join("aliases"), "postmaster: bob\n").unwrap();
    let (code, out, err) = run(&["-bt", "postmaster@localhost"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("postmaster@localhost -> bob@"), "{out}");
    assert!(
        out.contains("router = virtual_mailbox, transport = maildir_delivery"),
        "{out}"
    );
    let (code, out, _) = run(&["route", "postmaster@localhost"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("-> bob@"), "{out}");

    // With passwd users, an unknown local part is undeliverable.
    let (code, out, _) = run(&[
        "--set",
        "mailbox.users=\"passwd\"",
        "route",
        "no-such-user-7f3a@localhost",
    ]);
    assert_eq!(code, Some(2), "{out}");
    let (code, out, _) = run(&[
        "--set",
        "mailbox.users=\"passwd\"",
        "route",
        "root@localhost",
    ]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn idle_clients_are_dropped_after_the_command_timeout() {
    use std::io::Read;
    use std::time::Instant;
    let d = Dir::new();
    let certs = common::TestCerts::new(&d.path().join("certs"));
    let [cert, key] = certs.sets();
    let daemon = d.serve(&[
        &cert,
        &key,
        r#"smtp.tls_listen=["127.0.0.1:0"]"#,
        "smtp.command_timeout=\"1s\"",
        "smtp.max_connections_per_host=1",
    ]);
    // Says nothing after the greeting: 421 4.4.2 and the end.
    let started = Instant::now();
    let (mut c, _) = SmtpClient::open(daemon.smtp).unwrap();
    expect(&c.reply().unwrap(), 421, "4.4.2", "idle");
    c.expect_closed(Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log("mainlog")
            .contains("SMTP command timeout on connection from H=[127.0.0.1]")),
        "mainlog: {}",
        d.log("mainlog")
    );
    // Starts TLS and then says nothing: the handshake does not wait for
    // ever, and the connection slot comes back.
    // (The slot of the first connection is released as it closes.)
    let mut c = None;
    assert!(wait_until(Duration::from_secs(5), || {
        c = SmtpClient::open(daemon.smtp)
            .ok()
            .filter(|(_, g)| g.code() == 220)
            .map(|(c, _)| c);
        c.is_some()
    }));
    let mut c = c.unwrap();
    expect(&c.cmd("EHLO client.example").unwrap(), 250, "", "EHLO");
    expect(&c.cmd("STARTTLS").unwrap(), 220, "2.0.0", "STARTTLS");
    c.expect_closed(Duration::from_secs(5)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        SmtpClient::open(daemon.smtp).is_ok_and(|(_, g)| g.code() == 220)
    }));
    // Connects to the implicit-TLS port and says nothing.
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(daemon.smtps.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("closed, not timed out");
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn over_quota_mailbox_is_refused_at_rcpt() {
    for (policy, code, status) in [
        (None, 452, "4.2.2"),
        (Some("over_quota=\"reject\""), 552, "5.2.2"),
    ] {
        let d = Dir::new();
        common::maildir_with_quota(&d.maildir("localhost", "full"), "10S\n100 1\n");
        // Room for a small message.
        common::maildir_with_quota(&d.maildir("localhost", "roomy"), "100000S\n100 1\n");
        let sets: Vec<&str> = policy.into_iter().collect();
        let daemon = d.serve(&sets);
        let mut c = session(daemon.smtp);
        expect(
            &c.cmd("MAIL FROM:<alice@example.org>").unwrap(),
            250,
            "2.1.0",
            "",
        );
        expect(
            &c.cmd("RCPT TO:<full@localhost>").unwrap(),
            code,
            status,
            "full",
        );
        expect(
            &c.cmd("RCPT TO:<roomy@localhost>").unwrap(),
            250,
            "2.1.5",
            "roomy",
        );
        expect(&c.cmd("DATA").unwrap(), 354, "", "");
        c.write_raw(b"Subject: quota\r\n\r\nhello\r\n").unwrap();
        let ok = c.cmd(".").unwrap();
        expect(&ok, 250, "2.0.0", "message");
        let id = ok.queued_id().map(str::to_owned).unwrap();
        assert!(wait_until(Duration::from_secs(20), || {
            log_lines_of(&d.log("mainlog"), &id)
                .last()
                .is_some_and(|l| l.ends_with(" Completed"))
        }));
        assert!(common::maildir_messages(&d.maildir("localhost", "full")).is_empty());
        assert_eq!(
            common::maildir_messages(&d.maildir("localhost", "roomy")).len(),
            1
        );
        // The delivery was counted in the quota file.
        let size =
            std::fs::read_to_string(d.maildir("localhost", "roomy").join("maildirsize")).unwrap();
        assert_eq!(size.lines().count(), 3, "{size}");
        let reject = d.log("rejectlog");
        assert!(
            reject.contains("rejected RCPT <full@localhost>: Mailbox full"),
            "{policy:?}: {reject}"
        );
    }
}
