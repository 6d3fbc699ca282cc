//! Floods and slow clients: connections beyond the limits get 421 at once,
//! idle ones are closed after `command_timeout`, a command line dripped in
//! byte by byte is cut at `command_timeout`, message data below
//! `data_min_rate` is cut, and a client from another address still gets its
//! greeting at once. (benches/flood.sh measures 10,000 connections.)

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Dir, SmtpClient};

/// The first line the server sends, within `wait`.
fn first_line(s: &mut TcpStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).ok()? == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
    None
}

/// A connection to `to` from `from` (any 127.0.0.0/8 address).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::from((from, 0)))?;
        let stream = s.connect(to).await?;
        stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        })
    })
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_flood_is_refused_or_timed_out_and_others_still_get_in() {
    // Enough descriptors for this process's side of the flood.
    let want = 4096;
    let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if cur.is_some_and(|c| c < want) {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        );
    }
    let d = Dir::new();
    let daemon = d.serve(&[
        "smtp.command_timeout=\"2s\"",
        "smtp.max_connections=200",
        "smtp.max_connections_per_host=20",
    ]);
    let before = rss_kib(daemon.pid());
    let started = Instant::now();
    // 1,000 connections from five addresses; each sends nothing. Each
    // is answered before the next is made: beyond its host's 20, with 421
    // at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for k in 0..1000u32 {
        let from = Ipv4Addr::new(127, 0, 0, 3 + (k % 5) as u8);
        let mut s = connect_from(from, daemon.smtp).expect("connect");
        let line = first_line(&mut s, Duration::from_secs(5)).unwrap_or_default();
        if line.starts_with("220 ") {
            held.push(s);
        } else {
            assert!(line.starts_with("421 "), "connection {k}: {line:?}");
            refused += 1;
        }
    }
    assert_eq!(held.len(), 100, "20 from each of 5 hosts");
    assert_eq!(refused, 900);
    // Someone else still gets in, at once.
    let t = Instant::now();
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), daemon.smtp).expect("connect");
    let greeting = first_line(&mut other, Duration::from_secs(1)).unwrap_or_default();
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The idle ones are closed once command_timeout has passed.
    for (k, s) in held.iter_mut().enumerate() {
        let bye = first_line(s, Duration::from_secs(10)).unwrap_or_default();
        assert!(bye.starts_with("421 "), "{k}: {bye:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let grown = rss_kib(daemon.pid()).saturating_sub(before);
    eprintln!("1,000 connections: RSS grew by {grown} KiB");
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[test]
fn a_command_line_dripped_in_is_cut_at_command_timeout() {
    let d = Dir::new();
    let daemon = d.serve(&["smtp.command_timeout=\"2s\""]);
    let mut s = TcpStream::connect(daemon.smtp).expect("connect");
    assert!(
        first_line(&mut s, Duration::from_secs(5))
            .unwrap_or_default()
            .starts_with("220")
    );
    let t = Instant::now();
    // One byte every 400 ms: each read is quick, the line never ends in time.
    let mut cut = None;
    for b in b"EHLO a-very-slow-client.example.org"
        .iter()
        .cycle()
        .take(40)
    {
        if s.write_all(&[*b]).is_err() {
            cut = Some(t.elapsed());
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => {
                cut = Some(t.elapsed());
                break;
            }
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(text.starts_with("421"), "{text}");
                cut = Some(t.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let cut = cut.expect("the dripping client was never cut off");
    assert!(cut < Duration::from_secs(6), "{cut:?}");
    assert!(
        d.log("mainlog").contains("SMTP command timeout"),
        "{}",
        d.log("mainlog")
    );
}

#[test]
fn message_data_below_data_min_rate_is_cut() {
    let d = Dir::new();
    let daemon = d.serve(&["smtp.data_min_rate=\"1K\"", "smtp.data_rate_window=\"2s\""]);
    let (mut c, _) = SmtpClient::open(daemon.smtp).expect("connect");
    assert_eq!(c.cmd("EHLO drip.test").unwrap().code(), 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").unwrap().code(), 250);
    assert_eq!(c.cmd("RCPT TO:<bob@localhost>").unwrap().code(), 250);
    assert_eq!(c.cmd("DATA").unwrap().code(), 354);
    // 10 bytes every 300 ms: about 33 bytes a second.
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(8) {
        if c.write_raw(b"drip drip\n").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        c.set_read_timeout(Duration::from_millis(10));
        if let Ok(r) = c.reply() {
            assert_eq!(r.code(), 421, "{r}");
            closed = true;
            break;
        }
    }
    assert!(closed, "a drip of 33 bytes/s was not cut");
    assert!(
        d.log("mainlog").contains("below data_min_rate"),
        "{}",
        d.log("mainlog")
    );
    assert!(common::maildir_messages(&d.maildir("localhost", "bob")).is_empty());
    // A client at a normal pace is not affected.
    let id = common::send_message(daemon.smtp, &["bob@localhost"], "normal pace", false);
    assert!(!id.is_empty());
}
