//! Relaying between two real daemons, and to a real Exim: daemon A (the
//! relay, on 127.0.0.1) sends through a manualroute router to daemon B (a
//! second Sluice on 127.0.0.2, delivering to Maildirs) or to Exim 4.96.
//!
//! - `kill -9` of A three times while it relays: nothing lost, and the
//!   copies B got twice are at most kills × the most connections A had open
//!   at once (its own log says how many).
//! - SIGTERM of A while transactions are under way: A exits 0 within
//!   `shutdown_timeout`, and after a restart every message is at B once.
//! - Exim as the receiver: PIPELINING and CHUNKING as Exim offers them,
//!   STARTTLS verified against the test CA.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, Dir, SmtpClient, TestCerts, wait_until};

/// Daemon B: a second Sluice on 127.0.0.2, `dest.test` local.
fn receiver(d: &Dir) -> Daemon {
    d.serve_args(
        &["serve", "--listen", "127.0.0.2:0"],
        &[
            "local_domains=[\"dest.test\"]",
            "primary_hostname=\"b.example\"",
        ],
    )
}

/// A's configuration: relaying for 127.0.0.1 to `to` through manualroute.
fn relay_config(d: &Dir, to: SocketAddr, queue_only: bool, extra: &str) -> PathBuf {
    let text = format!(
        r#"primary_hostname = "a.example"
local_domains = ["a.example"]
relay_from_hosts = ["127.0.0.1"]
queue_only = {queue_only}
shutdown_timeout = "20s"

[[router]]
name = "smarthost"
driver = "manualroute"
domains = ["!+local_domains"]
route_list = ["* {}::{}"]
transport = "remote_smtp"

[[transport]]
name = "remote_smtp"
driver = "smtp"
{extra}
"#,
        to.ip(),
        to.port()
    );
    let path = d.path().join(format!("relay-{queue_only}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn relay(d: &Dir, conf: &Path) -> Daemon {
    d.serve_args(
        &[
            "--config",
            conf.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    )
}

/// Sends `n` messages numbered from `first` to `to` over one connection,
/// each with a Message-ID of its own, for `user@dest.test`.
fn send_many(addr: SocketAddr, first: usize, n: usize) {
    let (mut c, greeting) = SmtpClient::open(addr).expect("connect");
    assert_eq!(greeting.code(), 220);
    assert_eq!(c.cmd("EHLO client.example").unwrap().code(), 250);
    for k in first..first + n {
        assert_eq!(
            c.cmd("MAIL FROM:<alice@client.example>").unwrap().code(),
            250
        );
        assert_eq!(c.cmd("RCPT TO:<user@dest.test>").unwrap().code(), 250);
        assert_eq!(c.cmd("DATA").unwrap().code(), 354);
        c.write_raw(
            format!("Message-ID: <m{k}@relay.test>\r\nSubject: {k}\r\n\r\nbody {k}\r\n.\r\n")
                .as_bytes(),
        )
        .unwrap();
        let ok = c.reply().unwrap();
        assert_eq!(ok.code(), 250, "{ok}");
    }
    let _ = c.cmd("QUIT");
}

/// Message-IDs in B's Maildir, with how many times each arrived.
fn arrived(b: &Dir) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for sub in ["new", "cur"] {
        let dir = b.maildir("dest.test", "user").join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            if let Some(id) = text.lines().find_map(|l| l.strip_prefix("Message-ID: ")) {
                *seen.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    seen
}

fn queued(d: &Dir, conf: &Path) -> usize {
    let out = d.run(&["--config", conf.to_str().unwrap(), "-bpc"], b"");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(usize::MAX)
}

/// The most outbound connections A ever had open at once, from its log.
fn max_connections(log: &str) -> usize {
    log.lines()
        .filter_map(|l| l.split("outbound connections: ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Queues `n` messages at A (queue_only) over 4 connections.
fn queue_at_relay(a_dir: &Dir, to: SocketAddr, n: usize) {
    let conf = relay_config(a_dir, to, true, "");
    let mut a = relay(a_dir, &conf);
    let addr = a.smtp;
    let per = n / 4;
    let senders: Vec<_> = (0..4)
        .map(|t| std::thread::spawn(move || send_many(addr, t * per, per)))
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    a.kill9();
    assert_eq!(queued(a_dir, &conf), n);
}

#[test]
fn kill_nine_while_relaying_loses_nothing() {
    const N: usize = 2000;
    let (a_dir, b_dir) = (Dir::new(), Dir::new());
    let _b = receiver(&b_dir);
    let to = _b.smtp;
    queue_at_relay(&a_dir, to, N);

    // Relay: the startup queue run sends what is queued; kill it three
    // times at different points, restarting each time.
    let conf = relay_config(&a_dir, to, false, "");
    let mut kills = 0;
    for threshold in [N / 10, N / 3, (2 * N) / 3] {
        let mut a = relay(&a_dir, &conf);
        let reached = wait_until(Duration::from_secs(60), || {
            arrived(&b_dir).values().sum::<usize>() >= threshold
        });
        assert!(reached, "B got {} of {threshold}", arrived(&b_dir).len());
        a.kill9();
        kills += 1;
    }
    // The last run finishes.
    let _a = relay(&a_dir, &conf);
    let done = wait_until(Duration::from_secs(90), || queued(&a_dir, &conf) == 0);
    let seen = arrived(&b_dir);
    assert!(
        done,
        "A still has {} queued; B has {}",
        queued(&a_dir, &conf),
        seen.len()
    );
    // B delivers what it accepted before answering: wait for its queue too.
    wait_until(Duration::from_secs(30), || arrived(&b_dir).len() == N);
    let seen = arrived(&b_dir);
    let missing: Vec<usize> = (0..N)
        .filter(|k| !seen.contains_key(&format!("<m{k}@relay.test>")))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let most = max_connections(&a_dir.log("mainlog"));
    assert!(most >= 1, "{}", a_dir.log("mainlog"));
    assert!(
        duplicates <= kills * most,
        "{duplicates} copies twice, more than {kills} kills x {most} connections"
    );
    eprintln!(
        "relayed {N}: {duplicates} duplicates after {kills} kills, at most {most} connections at once"
    );
}

#[test]
fn sigterm_waits_for_transactions_under_way() {
    const N: usize = 200;
    let (a_dir, b_dir) = (Dir::new(), Dir::new());
    let _b = receiver(&b_dir);
    let to = _b.smtp;
    queue_at_relay(&a_dir, to, N);
    let conf = relay_config(&a_dir, to, false, "");
    let mut a = relay(&a_dir, &conf);
    let started = wait_until(Duration::from_secs(30), || !arrived(&b_dir).is_empty());
    assert!(started);
    let t = Instant::now();
    let status = a.stop(Duration::from_secs(30)).expect("A exits by itself");
    assert!(status.success(), "{status:?}: {}", a.stderr_text());
    assert!(t.elapsed() < Duration::from_secs(21), "{:?}", t.elapsed());
    assert!(
        a_dir
            .log("mainlog")
            .contains("sluice daemon stopping on signal"),
        "{}",
        a_dir.log("mainlog")
    );
    // Restart: the rest goes out, nothing twice.
    let _a = relay(&a_dir, &conf);
    assert!(wait_until(Duration::from_secs(60), || queued(
        &a_dir, &conf
    ) == 0));
    wait_until(Duration::from_secs(30), || arrived(&b_dir).len() == N);
    let seen = arrived(&b_dir);
    assert_eq!(seen.len(), N);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice across a SIGTERM: {twice:?}");
}

#[test]
fn exim_receives_pipelined_chunked_and_over_verified_tls() {
    if !common::exim::available() {
        return;
    }
    let d = Dir::new();
    let certs = TestCerts::new(&d.path().join("certs"));
    // Exim on 127.0.0.3, with a certificate for that address under the
    // test CA: the route names the host by its address.
    let exim_certs = d.path().join("exim-certs");
    std::fs::create_dir_all(&exim_certs).unwrap();
    let (cert, key) = common::receiver::certificate_files(&certs, &["127.0.0.3"], &exim_certs);
    let exim = common::exim::Exim::start(d.path(), "127.0.0.3", "dest.test", Some((&cert, &key)));
    let conf = relay_config(
        &d,
        exim.addr,
        false,
        &format!(
            "tls = \"verify\"\ntls_verify_certificates = {:?}\n",
            certs.ca_path.display().to_string()
        ),
    );
    let out = d.run(
        &[
            "--config",
            conf.to_str().unwrap(),
            "-odi",
            "-f",
            "alice@a.example",
            "one@dest.test",
            "two@dest.test",
        ],
        b"Subject: to exim\nMessage-ID: <exim.1@relay.test>\n\nhello exim\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = d.log("mainlog");
    assert!(
        wait_until(Duration::from_secs(10), || exim.maildir().len() == 2),
        "sluice: {log}\nexim: {}\nfiles: {}",
        exim.mainlog(),
        String::from_utf8_lossy(
            &std::process::Command::new("find")
                .arg(&exim.dir)
                .output()
                .unwrap()
                .stdout
        )
    );
    let one = String::from_utf8_lossy(&exim.maildir()[0]).into_owned();
    assert!(one.contains("\nhello exim\n"), "{one}");
    assert!(one.contains("Message-ID: <exim.1@relay.test>"), "{one}");
    // Sluice's side: TLS verified.
    let first = log
        .lines()
        .find(|l| l.contains(" => one@dest.test"))
        .unwrap_or("");
    assert!(
        first.contains(" X=TLS1.") && first.contains(" CV=yes"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" -> two@dest.test")),
        "{log}"
    );
    // Exim's side: one message, two recipients, under TLS, by CHUNKING
    // (Exim's `K` flag on its `<=` line).
    let exim_log = exim.mainlog();
    let arrival = exim_log
        .lines()
        .find(|l| l.contains(" <= alice@a.example"))
        .unwrap_or("");
    assert!(arrival.contains(" X=TLS1."), "{exim_log}");
    assert!(arrival.contains(" K "), "CHUNKING not used: {exim_log}");
    let mut f = std::fs::File::create(d.path().join("exim-mainlog")).unwrap();
    let _ = f.write_all(exim_log.as_bytes());
}
