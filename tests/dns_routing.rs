//! The dnslookup router against a DNS server the test runs on 127.0.0.1
//! (real DNS messages over UDP, tests/common/dns.rs), named in
//! `dns.servers`: MX order, implicit MX, null MX, NXDOMAIN, SERVFAIL, a
//! server that does not answer, an MX that is this host, the default
//! `ignore_target_hosts`, `-bt`/`-bv` output and exit codes, and one
//! delivery through an MX to a receiver of its own address.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Dir;
use common::dns::{DnsServer, Zone};
use common::receiver::{Receiver, Script};

/// A configuration whose last router is dnslookup; `ignore` is its
/// `ignore_target_hosts` (None: the default, which drops loopback).
fn config(d: &Dir, dns: &DnsServer, port: u16, ignore: Option<&str>, extra: &str) -> PathBuf {
    let ignore = ignore
        .map(|i| format!("ignore_target_hosts = {i}\n"))
        .unwrap_or_default();
    common::remote_config(
        d,
        &format!(
            "{extra}\n\n[dns]\nservers = [\"{}\"]\ntimeout = \"1s\"\nattempts = 1",
            dns.addr
        ),
        &format!("name = \"dnslookup\"\ndriver = \"dnslookup\"\n{ignore}"),
        &format!("port = {port}"),
    )
}

fn bt(d: &Dir, conf: &Path, flag: &str, addrs: &[&str]) -> (i32, String) {
    let mut args = vec!["--config", conf.to_str().unwrap(), flag];
    args.extend_from_slice(addrs);
    let out: Output = run(d, &args, b"");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `sluice ARGS` without the test harness's default DNS (these tests name
/// their own server in the configuration).
fn run(d: &Dir, args: &[&str], stdin: &[u8]) -> Output {
    common::run_with_input(d.sluice_bare().args(args), stdin)
}

fn zone() -> Zone {
    Zone::default()
        // Two MX preferences; the lower has two hosts.
        .mx("multi.test", 20, "backup.multi.test")
        .mx("multi.test", 10, "a.multi.test")
        .mx("multi.test", 10, "b.multi.test")
        .a("a.multi.test", "127.0.0.51")
        .a("b.multi.test", "127.0.0.52")
        .a("backup.multi.test", "127.0.0.53")
        // No MX: the domain's own address.
        .a("implicit.test", "127.0.0.54")
        // RFC 7505.
        .mx("nullmx.test", 0, ".")
        .servfail("broken.test")
        .silent("slow.test")
        // The lowest MX is this host (it listens on 127.0.0.1).
        .mx("loop.test", 10, "self.loop.test")
        .mx("loop.test", 20, "other.loop.test")
        .a("self.loop.test", "127.0.0.1")
        .a("other.loop.test", "127.0.0.55")
        // A lower MX than this host's is kept.
        .mx("below.test", 5, "first.below.test")
        .mx("below.test", 10, "self.below.test")
        .a("first.below.test", "127.0.0.56")
        .a("self.below.test", "127.0.0.1")
}

#[test]
fn mx_order_and_bt_output() {
    let d = Dir::new();
    let dns = DnsServer::start(zone());
    let conf = config(&d, &dns, 2525, Some("[]"), "");
    let (code, out) = bt(&d, &conf, "-bt", &["u@multi.test"]);
    assert_eq!(code, 0, "{out}");
    let hosts: Vec<&str> = out.lines().filter(|l| l.starts_with("  host ")).collect();
    assert_eq!(hosts.len(), 3, "{out}");
    assert!(
        out.contains("  router = dnslookup, transport = remote_smtp"),
        "{out}"
    );
    // Preference 10 first (either order), then 20.
    let first_two: Vec<&str> = hosts[..2].to_vec();
    assert!(
        first_two.contains(&"  host a.multi.test [127.0.0.51] MX=10")
            && first_two.contains(&"  host b.multi.test [127.0.0.52] MX=10"),
        "{out}"
    );
    assert_eq!(hosts[2], "  host backup.multi.test [127.0.0.53] MX=20");
    // Randomised within a preference: both orders appear over a few runs.
    let mut orders = std::collections::HashSet::new();
    for _ in 0..20 {
        let (_, o) = bt(&d, &conf, "-bt", &["u@multi.test"]);
        let first = o
            .lines()
            .find(|l| l.starts_with("  host "))
            .unwrap_or("")
            .to_string();
        orders.insert(first);
    }
    assert_eq!(orders.len(), 2, "{orders:?}");

    let (code, out) = bt(&d, &conf, "-bt", &["u@implicit.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  host implicit.test [127.0.0.54]\n"), "{out}");
}

#[test]
fn failures_and_exit_codes() {
    let d = Dir::new();
    let dns = DnsServer::start(zone());
    let conf = config(&d, &dns, 2525, Some("[]"), "");
    let (code, out) = bt(&d, &conf, "-bt", &["u@nullmx.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("null MX"), "{out}");
    let (code, out) = bt(&d, &conf, "-bt", &["u@nowhere.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    let (code, out) = bt(&d, &conf, "-bt", &["u@broken.test"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = bt(&d, &conf, "-bt", &["u@slow.test"]);
    assert_eq!(code, 1, "{out}");
    // -bv: verified / failed to verify, the same exit codes; the worst
    // address decides.
    let (code, out) = bt(&d, &conf, "-bv", &["u@multi.test", "v@implicit.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("u@multi.test verified"), "{out}");
    let (code, out) = bt(&d, &conf, "-bv", &["u@multi.test", "w@broken.test"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = bt(&d, &conf, "-bv", &["u@broken.test", "x@nullmx.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("x@nullmx.test failed to verify"), "{out}");
}

#[test]
fn an_mx_that_is_this_host() {
    let d = Dir::new();
    let dns = DnsServer::start(zone());
    let conf = config(&d, &dns, 2525, Some("[]"), "");
    // The lowest MX is here: nothing left.
    let (code, out) = bt(&d, &conf, "-bt", &["u@loop.test"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("lowest numbered MX record points to local host"),
        "{out}"
    );
    // A lower one than this host's stays; this host and higher go.
    let (code, out) = bt(&d, &conf, "-bt", &["u@below.test"]);
    assert_eq!(code, 0, "{out}");
    let hosts: Vec<&str> = out.lines().filter(|l| l.starts_with("  host ")).collect();
    assert_eq!(
        hosts,
        ["  host first.below.test [127.0.0.56] MX=5"],
        "{out}"
    );
    // By name, through hosts_treat_as_local.
    let conf = config(
        &d,
        &dns,
        2525,
        Some("[]"),
        "hosts_treat_as_local = [\"a.multi.test\", \"b.multi.test\"]",
    );
    let (code, out) = bt(&d, &conf, "-bt", &["u@multi.test"]);
    assert_eq!(code, 1, "{out}");
    // Delivery: deferred and the message frozen, with Exim's text.
    let conf = config(&d, &dns, 2525, Some("[]"), "");
    let out = run(
        &d,
        &["--config", conf.to_str().unwrap(), "-odi", "u@loop.test"],
        b"Subject: loop\n\nx\n",
    );
    assert!(out.status.success());
    let log = d.log("mainlog");
    assert!(
        log.contains("Frozen (lowest numbered MX record points to local host)")
            || log.contains("lowest numbered MX record points to local host"),
        "{log}"
    );
    let list = run(&d, &["--config", conf.to_str().unwrap(), "-bp"], b"");
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("*** frozen ***"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
}

#[test]
fn loopback_answers_are_ignored_by_default() {
    let d = Dir::new();
    let dns = DnsServer::start(zone());
    let conf = config(&d, &dns, 2525, None, "");
    let (code, out) = bt(&d, &conf, "-bt", &["u@implicit.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("  host "), "{out}");
}

#[test]
fn delivers_through_the_lowest_mx_and_falls_back() {
    let d = Dir::new();
    // Every MX host on the same port, each on its own address.
    let port = std::net::TcpListener::bind("127.0.0.57:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let primary = Receiver::start_on("127.0.0.58", port, Script::default());
    let backup = Receiver::start_on("127.0.0.59", port, Script::default());
    let zone = Zone::default()
        .mx("deliver.test", 10, "mx1.deliver.test")
        .mx("deliver.test", 20, "mx2.deliver.test")
        .a("mx1.deliver.test", "127.0.0.58")
        .a("mx2.deliver.test", "127.0.0.59")
        // mx1 refuses (nobody listens on 127.0.0.60), mx2 takes it.
        .mx("fallback.test", 10, "down.fallback.test")
        .mx("fallback.test", 20, "mx2.deliver.test")
        .a("down.fallback.test", "127.0.0.60");
    let dns = DnsServer::start(zone);
    let conf = config(&d, &dns, port, Some("[]"), "");
    let out = run(
        &d,
        &[
            "--config",
            conf.to_str().unwrap(),
            "-odi",
            "a@deliver.test",
            "b@fallback.test",
        ],
        b"Subject: by mx\n\nx\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(primary.received().len(), 1);
    assert_eq!(primary.received()[0].rcpts, ["a@deliver.test"]);
    assert_eq!(backup.received().len(), 1);
    assert_eq!(backup.received()[0].rcpts, ["b@fallback.test"]);
    let log = d.log("mainlog");
    assert!(
        log.contains("=> a@deliver.test R=dnslookup T=remote_smtp H=mx1.deliver.test [127.0.0.58]"),
        "{log}"
    );
    assert!(
        log.contains(
            "=> b@fallback.test R=dnslookup T=remote_smtp H=mx2.deliver.test [127.0.0.59]"
        ),
        "{log}"
    );
}

/// What a client hears for MAIL FROM each sender, then RCPT TO a local
/// user, as "CODE ENHANCED" lines.
const SENDERS: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
for sender in sys.argv[2:]:
    s.docmd("MAIL FROM:<%s>" % sender)
    code, text = s.docmd("RCPT TO:<root@example.org>")
    print(sender or "<>", code, text.decode().split(" ")[0])
    s.docmd("RSET")
s.quit()
"#;

/// `smtp.verify_sender`: MAIL FROM's address is routed at RCPT time, with
/// the answers the issue and RFC 7505 give; not for relay clients.
#[test]
fn sender_verification() {
    let dns = DnsServer::start(zone());
    let senders = [
        "someone@implicit.test",
        "x@nx.test",
        "x@broken.test",
        "x@nullmx.test",
        "nosuchuser4242@example.org",
        "",
    ];
    let d = Dir::new();
    let conf = config(&d, &dns, 25, Some("[]"), "[smtp]\nverify_sender = true");
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        "transport = \"maildir_delivery\"",
        "transport = \"maildir_delivery\"\ncheck_local_user = true",
    );
    std::fs::write(&conf, text).unwrap();
    let c = conf.to_str().unwrap();
    let daemon = d.serve_args(
        &["--config", c, "serve", "--listen", "127.0.0.1:0"],
        &[&dns.set()],
    );
    let port = daemon.smtp.port().to_string();
    let mut args = vec![port.as_str()];
    args.extend_from_slice(&senders);
    let out = common::python(SENDERS, &args);
    assert_eq!(
        out,
        "someone@implicit.test 250 2.1.5\n\
         x@nx.test 550 5.1.8\n\
         x@broken.test 451 4.1.8\n\
         x@nullmx.test 550 5.7.27\n\
         nosuchuser4242@example.org 550 5.1.0\n\
         <> 250 2.1.5\n",
        "{}",
        d.log("rejectlog")
    );
    assert!(
        d.log("rejectlog")
            .contains("Sender verify failed: <x@nx.test>")
    );
    drop(daemon);

    // A relay client's senders are not checked.
    let daemon = d.serve_args(
        &["--config", c, "serve", "--listen", "127.0.0.1:0"],
        &[&dns.set(), "relay_from_hosts=[\"127.0.0.1\"]"],
    );
    let port = daemon.smtp.port().to_string();
    let out = common::python(SENDERS, &[&port, "x@nx.test"]);
    assert_eq!(out, "x@nx.test 250 2.1.5\n");
}

/// `smtp.sender_callout`: the sender's host is asked (MAIL FROM:<>, RCPT
/// TO:<sender>, no message): accepted 250, refused 550 5.1.0, no answer
/// 451 4.4.0; answers cached, so a sender is asked once.
#[test]
fn sender_callouts_and_their_cache() {
    let rx = Receiver::start("127.0.0.61", Script::default());
    let dns = DnsServer::start(
        zone()
            .a("callout.test", "127.0.0.61")
            .a("down.test", "127.0.0.62"),
    );
    let d = Dir::new();
    let conf = config(
        &d,
        &dns,
        rx.port(),
        Some("[]"),
        "[smtp]\nverify_sender = true\nsender_callout = true",
    );
    let c = conf.to_str().unwrap();
    let daemon = d.serve_args(
        &["--config", c, "serve", "--listen", "127.0.0.1:0"],
        &[&dns.set()],
    );
    let port = daemon.smtp.port().to_string();
    let out = common::python(
        SENDERS,
        &[
            &port,
            "ok@callout.test",
            "r550x@callout.test",
            "ok@callout.test",
            "r550x@callout.test",
            "someone@down.test",
        ],
    );
    assert_eq!(
        out,
        "ok@callout.test 250 2.1.5\n\
         r550x@callout.test 550 5.1.0\n\
         ok@callout.test 250 2.1.5\n\
         r550x@callout.test 550 5.1.0\n\
         someone@down.test 451 4.4.0\n"
    );
    // Each sender asked once; no message sent.
    assert_eq!(rx.connection_count(), 2);
    let cmds = rx.commands();
    assert!(cmds.iter().any(|c| c == "MAIL FROM:<>"), "{cmds:?}");
    assert!(
        cmds.iter().any(|c| c == "RCPT TO:<r550x@callout.test>"),
        "{cmds:?}"
    );
    assert!(!cmds.iter().any(|c| c == "DATA"), "{cmds:?}");
    assert!(rx.received().is_empty());
}

/// SIGHUP with other `dns.servers`: routing asks the new servers.
#[test]
fn a_reload_changes_the_dns_servers() {
    let d = Dir::new();
    let port = std::net::TcpListener::bind("127.0.0.63:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = Receiver::start_on("127.0.0.63", port, Script::default());
    let after = Receiver::start_on("127.0.0.64", port, Script::default());
    let old = DnsServer::start(Zone::default().a("reload.test", "127.0.0.63"));
    let new = DnsServer::start(Zone::default().a("reload.test", "127.0.0.64"));
    let relay = "relay_from_hosts = [\"127.0.0.1/32\"]";
    let conf = config(&d, &old, port, Some("[]"), relay);
    // Started without the harness's --set of dns.servers, which would pin
    // them across the reload.
    let mut child = d
        .sluice_bare()
        .args([
            "--config",
            conf.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let smtp: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("smtp="))
        .expect("the smtp listener")
        .parse()
        .unwrap();
    let send = |rcpt: &str| {
        let (mut c, _) = common::SmtpClient::open(smtp).expect("connect");
        assert_eq!(c.cmd("EHLO client.test").unwrap().code(), 250);
        assert_eq!(c.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).unwrap().code(), 250);
        assert_eq!(c.cmd("DATA").unwrap().code(), 354);
        assert_eq!(c.cmd("Subject: x\r\n\r\nx\r\n.").unwrap().code(), 250);
        let _ = c.cmd("QUIT");
    };
    send("a@reload.test");
    assert!(common::wait_until(
        std::time::Duration::from_secs(20),
        || { before.received().len() == 1 }
    ));
    let conf_new = config(&d, &new, port, Some("[]"), relay);
    assert_eq!(conf_new, conf);
    let reloads = d.log("mainlog").matches("configuration reloaded").count();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    assert!(common::wait_until(
        std::time::Duration::from_secs(10),
        || { d.log("mainlog").matches("configuration reloaded").count() > reloads }
    ));
    send("b@reload.test");
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || after
            .received()
            .len()
            == 1),
        "{}",
        d.log("mainlog")
    );
    assert_eq!(before.received().len(), 1);
    let _ = child.kill();
    let _ = child.wait();
}
