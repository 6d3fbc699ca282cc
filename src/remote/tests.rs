//! The engine against a receiver on loopback, without routing: jobs made
//! by hand, as the delivery agent makes them.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use smtp::client::{ClientConfig, Envelope, EnvelopeRecipient};

use super::*;

/// A receiver that accepts everything, counting connections and messages.
fn sink() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (port, conns, msgs, _) = slow_sink(None);
    (port, conns, msgs)
}

/// [`sink`] that answers each end of data after `dot_delay`, and counts
/// the messages whose next MAIL had arrived by then (pipelined behind the
/// end of data).
fn slow_sink(
    dot_delay: Option<Duration>,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (conns, msgs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let behind = Arc::new(AtomicUsize::new(0));
    let (c, m, b) = (conns.clone(), msgs.clone(), behind.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let (m, b) = (m.clone(), b.clone());
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                w.write_all(b"220 sink ESMTP\r\n").unwrap();
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            m.fetch_add(1, Ordering::SeqCst);
                            if let Some(delay) = dot_delay {
                                std::thread::sleep(delay);
                                // What came after the dot, unanswered.
                                let _ = r
                                    .get_ref()
                                    .set_read_timeout(Some(Duration::from_millis(20)));
                                if r.fill_buf().is_ok_and(|buf| buf.starts_with(b"MAIL FROM:")) {
                                    b.fetch_add(1, Ordering::SeqCst);
                                }
                                let _ = r.get_ref().set_read_timeout(None);
                            }
                            let _ = w.write_all(b"250 2.0.0 queued\r\n");
                        }
                        continue;
                    }
                    let reply: &[u8] = match &line.to_ascii_uppercase()[..4.min(line.len())] {
                        "EHLO" => b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n");
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, conns, msgs, behind)
}

fn settings(max_per_destination: usize) -> Arc<Settings> {
    Arc::new(Settings {
        transport: "remote_smtp".into(),
        client: Arc::new(ClientConfig::new("client.test")),
        tls: tls::ClientTls::new(tls::Policy::May, None).unwrap(),
        implicit_tls: false,
        helo_literal: false,
        socket: None,
        interface: Vec::new(),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        hosts_max_try: 5,
        connection_max_messages: 500,
        max_per_destination,
        port: 25,
        hosts: Vec::new(),
    })
}

fn job(
    settings: &Arc<Settings>,
    addresses: Vec<Address>,
    rcpt: &str,
    tx: mpsc::Sender<Vec<RcptResult>>,
) -> Job {
    Job {
        settings: settings.clone(),
        addresses,
        envelope: Envelope {
            from: "a@client.test".into(),
            recipients: vec![EnvelopeRecipient::new(rcpt)],
            ret: None,
            envid: None,
            size: 20,
            eight_bit: false,
            smtputf8: false,
        },
        indexes: vec![0],
        data: Arc::new(b"Subject: t\n\nhello\n".to_vec()),
        done: Box::new(move |r| {
            let _ = tx.send(r);
        }),
    }
}

fn at(port: u16, host: &str) -> Address {
    Address {
        host: host.into(),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        mx: None,
    }
}

#[test]
fn many_messages_share_few_connections() {
    let (port, conns, msgs) = sink();
    let remote = Remote::new(100, None, Schedule::parse("F,1h,1m").unwrap(), None);
    let s = settings(3);
    let (tx, rx) = mpsc::channel();
    for _ in 0..300 {
        remote.submit(job(&s, vec![at(port, "sink.test")], "b@x.test", tx.clone()));
    }
    for _ in 0..300 {
        let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].outcome, Outcome::Delivered, "{r:?}");
        assert_eq!(
            r[0].detail.confirmation.as_deref(),
            Some("250 2.0.0 queued")
        );
    }
    assert_eq!(msgs.load(Ordering::SeqCst), 300);
    let c = conns.load(Ordering::SeqCst);
    assert!((1..=3).contains(&c), "{c} connections for 3 allowed");
    assert!(remote.connections().1 <= 3);
}

/// With PIPELINING, a connection sends the next message's envelope as
/// soon as the previous end of data is written, without waiting for its
/// reply: one round trip less per message (RFC 2920 §3.1).
#[test]
fn the_next_envelope_goes_behind_the_end_of_data() {
    let (port, conns, msgs, behind) = slow_sink(Some(Duration::from_millis(30)));
    let remote = Remote::new(100, None, Schedule::parse("F,1h,1m").unwrap(), None);
    let s = settings(1);
    let (tx, rx) = mpsc::channel();
    for _ in 0..20 {
        remote.submit(job(&s, vec![at(port, "sink.test")], "b@x.test", tx.clone()));
    }
    for _ in 0..20 {
        let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(r[0].outcome, Outcome::Delivered, "{r:?}");
    }
    assert_eq!(msgs.load(Ordering::SeqCst), 20);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    // Every message but the last had the next one's MAIL behind it.
    let b = behind.load(Ordering::SeqCst);
    assert!(b >= 18, "{b} of 19 envelopes went behind an end of data");
}

#[test]
fn a_refusing_host_is_skipped_and_remembered() {
    let (port, _, msgs) = sink();
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let remote = Remote::new(100, None, Schedule::parse("F,1h,10m").unwrap(), None);
    let s = settings(2);
    let (tx, rx) = mpsc::channel();
    let hosts = vec![at(closed, "down.test"), at(port, "up.test")];
    remote.submit(job(&s, hosts.clone(), "b@x.test", tx.clone()));
    let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(r[0].outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r[0].detail.host.as_ref().unwrap().host, "up.test");
    assert_eq!(msgs.load(Ordering::SeqCst), 1);
    let hints = remote.hints();
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert_eq!(hints[0].host, "down.test");
    assert!(hints[0].error.contains("Connection refused"), "{hints:?}");
    // Only the refusing host: in its retry wait, not tried again.
    remote.submit(job(&s, vec![at(closed, "down.test")], "c@x.test", tx));
    let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    match &r[0].outcome {
        Outcome::Deferred { diagnostic, .. } => {
            assert!(
                diagnostic.contains("retry time not reached"),
                "{diagnostic}"
            )
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(r[0].detail.errno, -53);
}

#[test]
fn stop_hands_back_what_has_not_started() {
    let remote = Remote::new(1, None, Schedule::parse("F,1h,1m").unwrap(), None);
    // A host that accepts and never speaks holds the only connection.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = settings(1);
    let (tx, rx) = mpsc::channel();
    remote.submit(job(
        &s,
        vec![at(port, "silent.test")],
        "a@x.test",
        tx.clone(),
    ));
    remote.submit(job(
        &s,
        vec![at(port, "silent.test")],
        "b@x.test",
        tx.clone(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    remote.stop();
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(r.is_empty(), "the waiting job comes back untried: {r:?}");
    drop(silent);
}
