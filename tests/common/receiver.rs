//! A scripted SMTP receiver for the remote delivery tests: a real socket on
//! a loopback address of the test's choosing (each fake MX host its own
//! 127.0.0.x), real TLS with the test CA's certificates, and replies chosen
//! per recipient by its local part:
//!
//! | local part starts with | RCPT reply |
//! |------------------------|------------|
//! | `r550`                 | `550 5.1.1 <addr>: no such user` |
//! | `r451`                 | `451 4.7.1 <addr>: try again later` |
//! | `r452`                 | `452 4.5.3 too many recipients` |
//! | anything else          | `250 2.1.5 ok` |
//!
//! Everything else (the greeting, MAIL, DATA and end-of-data replies,
//! silence, bytes injected after STARTTLS's 220) comes from [`Script`].

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does.
#[derive(Clone)]
pub struct Script {
    /// The greeting line (without CRLF); None: say nothing at all.
    pub greeting: Option<String>,
    /// Bytes sent before the greeting (a peer talking out of turn).
    pub before_greeting: Option<String>,
    pub pipelining: bool,
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Sent right after the 220 to STARTTLS, before the handshake.
    pub after_starttls: Option<String>,
    /// Reply to MAIL; None: 250.
    pub mail_reply: Option<String>,
    /// Reply to DATA; None: 354.
    pub data_reply: Option<String>,
    /// Reply to the final dot; None: 250 with a queue id. `"silence"`:
    /// never answer (the client's final-dot timer runs out).
    pub dot_reply: Option<String>,
    /// LMTP: one reply per accepted recipient after the dot, by the same
    /// local-part rules as RCPT.
    pub lmtp: bool,
    /// The most recipients per transaction before `452 4.5.3`.
    pub max_rcpts: usize,
    /// Offer AUTH PLAIN LOGIN (after STARTTLS when TLS is offered, else
    /// in clear) and accept any credentials, recording them.
    pub auth: bool,
    /// Answer STARTTLS with 220, then send bytes that are not TLS and
    /// close (a handshake that fails).
    pub broken_tls: bool,
    /// TLS from the first byte (SMTPS, port 465), with this configuration.
    pub implicit_tls: Option<Arc<rustls::ServerConfig>>,
    /// Offer DSN (RFC 3461) in the EHLO reply.
    pub dsn: bool,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: Some("220 receiver.test ESMTP scripted".into()),
            before_greeting: None,
            pipelining: true,
            starttls: None,
            after_starttls: None,
            mail_reply: None,
            data_reply: None,
            dot_reply: None,
            lmtp: false,
            max_rcpts: 1000,
            auth: false,
            broken_tls: false,
            implicit_tls: None,
            dsn: false,
        }
    }
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub rcpts: Vec<String>,
    /// The data as sent, dot-unstuffed, CRLF line ends.
    pub data: Vec<u8>,
    pub tls: bool,
}

/// The client addresses connections came from, in order.
pub type Peers = Arc<Mutex<Vec<std::net::IpAddr>>>;

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<AtomicUsize>,
    /// Commands seen, in order, per connection joined ("EHLO x", "MAIL ...").
    pub commands: Arc<Mutex<Vec<String>>>,
    /// Where each connection came from.
    pub peers: Peers,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts a receiver on `ip` (a port of its own).
    pub fn start(ip: &str, script: Script) -> Receiver {
        Receiver::start_on(ip, 0, script)
    }

    /// Starts a receiver on `ip`:`port` (MX hosts share the transport's
    /// port, each on its own address).
    pub fn start_on(ip: &str, port: u16, script: Script) -> Receiver {
        let listener = TcpListener::bind((ip, port)).expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            messages: Arc::default(),
            connections: Arc::default(),
            commands: Arc::default(),
            peers: Arc::default(),
            stop: Arc::default(),
        };
        let peers = r.peers.clone();
        let (messages, connections, commands, stop) = (
            r.messages.clone(),
            r.connections.clone(),
            r.commands.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(a) = conn.peer_addr() {
                    peers.lock().unwrap().push(a.ip());
                }
                let (script, messages, commands) =
                    (script.clone(), messages.clone(), commands.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &script, &messages, &commands);
                });
            }
        });
        r
    }

    /// Starts a receiver on the Unix socket `path` (LMTP as Dovecot is
    /// reached), with the same script; no TLS.
    pub fn start_unix(path: &std::path::Path, script: Script) -> Receiver {
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind the socket");
        let r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            messages: Arc::default(),
            connections: Arc::default(),
            commands: Arc::default(),
            peers: Arc::default(),
            stop: Arc::default(),
        };
        let (messages, connections, commands) = (
            r.messages.clone(),
            r.connections.clone(),
            r.commands.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                connections.fetch_add(1, Ordering::Relaxed);
                let (script, messages, commands) =
                    (script.clone(), messages.clone(), commands.clone());
                std::thread::spawn(move || {
                    let greeting = script.greeting.clone().unwrap_or_default();
                    if conn.write_all(format!("{greeting}\r\n").as_bytes()).is_ok() {
                        let _ = session(Box::new(conn), &script, false, &messages, &commands);
                    }
                });
            }
        });
        r
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

fn rcpt_reply(address: &str) -> String {
    let local = address.split('@').next().unwrap_or("");
    if local.starts_with("r550") {
        format!("550 5.1.1 <{address}>: no such user")
    } else if local.starts_with("r451") {
        format!("451 4.7.1 <{address}>: try again later")
    } else if local.starts_with("r452") {
        "452 4.5.3 too many recipients".into()
    } else {
        "250 2.1.5 ok".into()
    }
}

fn angle(arg: &str) -> String {
    let a = arg.find('<').map_or(arg, |i| &arg[i + 1..]);
    a.split('>').next().unwrap_or("").to_string()
}

fn serve(
    conn: TcpStream,
    script: &Script,
    messages: &Mutex<Vec<Received>>,
    commands: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    if let Some(cfg) = &script.implicit_tls {
        let tls_conn = rustls::ServerConnection::new(cfg.clone()).map_err(std::io::Error::other)?;
        let mut s = rustls::StreamOwned::new(tls_conn, conn);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        let greeting = script.greeting.clone().unwrap_or_default();
        s.write_all(format!("{greeting}\r\n").as_bytes())?;
        let _ = session(Box::new(s), script, true, messages, commands)?;
        return Ok(());
    }
    let mut w = conn.try_clone()?;
    if let Some(b) = &script.before_greeting {
        w.write_all(b.as_bytes())?;
    }
    let Some(greeting) = &script.greeting else {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    };
    w.write_all(format!("{greeting}\r\n").as_bytes())?;
    if greeting.starts_with("421") || greeting.starts_with("554") {
        std::thread::sleep(Duration::from_millis(200));
        return Ok(());
    }
    let mut stream: Box<dyn Io> = Box::new(conn);
    let mut tls = false;
    loop {
        match session(stream, script, tls, messages, commands)? {
            Some(s) => {
                stream = s;
                tls = true;
            }
            None => return Ok(()),
        }
    }
}

/// Runs the dialog; returns a TLS stream after STARTTLS (to run again).
fn session(
    stream: Box<dyn Io>,
    script: &Script,
    tls: bool,
    messages: &Mutex<Vec<Received>>,
    commands: &Mutex<Vec<String>>,
) -> std::io::Result<Option<Box<dyn Io>>> {
    let mut r = BufReader::new(stream);
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end().to_string();
        commands.lock().unwrap().push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") || upper.starts_with("LHLO") {
            let mut caps = vec!["250-receiver.test".to_string()];
            if script.pipelining {
                caps.push("250-PIPELINING".into());
            }
            caps.push("250-SIZE 10000000".into());
            caps.push("250-8BITMIME".into());
            if script.dsn {
                caps.push("250-DSN".into());
            }
            if (script.starttls.is_some() || script.broken_tls) && !tls {
                caps.push("250-STARTTLS".into());
            }
            if script.auth && (tls || script.starttls.is_none()) {
                caps.push("250-AUTH PLAIN LOGIN".into());
            }
            caps.push("250 ENHANCEDSTATUSCODES".into());
            caps.join("\r\n")
        } else if upper.starts_with("HELO") {
            "250 receiver.test".into()
        } else if upper == "STARTTLS" && script.broken_tls {
            r.get_mut().write_all(b"220 2.0.0 go ahead\r\n")?;
            // The client's hello, answered with what is not TLS.
            let mut hello = [0u8; 512];
            let _ = r.get_mut().read(&mut hello)?;
            r.get_mut().write_all(b"this is not TLS\r\n")?;
            return Ok(None);
        } else if upper == "STARTTLS" {
            let Some(cfg) = &script.starttls else {
                r.get_mut().write_all(b"502 5.5.1 no\r\n")?;
                continue;
            };
            let mut out = b"220 2.0.0 go ahead\r\n".to_vec();
            if let Some(extra) = &script.after_starttls {
                out.extend_from_slice(extra.as_bytes());
            }
            r.get_mut().write_all(&out)?;
            let inner = r.into_inner();
            let conn = rustls::ServerConnection::new(cfg.clone()).map_err(std::io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, inner);
            // Drive the handshake now, so a failure ends the connection.
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            return Ok(Some(Box::new(s)));
        } else if upper.starts_with("AUTH PLAIN") {
            "235 2.7.0 authenticated".into()
        } else if upper.starts_with("MAIL") {
            from = angle(&cmd);
            rcpts.clear();
            script
                .mail_reply
                .clone()
                .unwrap_or_else(|| "250 2.1.0 ok".into())
        } else if upper.starts_with("RCPT") {
            let a = angle(&cmd);
            let mut reply = rcpt_reply(&a);
            if reply.starts_with("250") && rcpts.len() >= script.max_rcpts {
                reply = "452 4.5.3 too many recipients".into();
            }
            if reply.starts_with("250") {
                rcpts.push(a);
            }
            reply
        } else if upper == "DATA" {
            if let Some(d) = &script.data_reply {
                d.clone()
            } else if rcpts.is_empty() {
                "554 5.5.1 no valid recipients".into()
            } else {
                r.get_mut().write_all(b"354 go ahead\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l)? == 0 {
                        return Ok(None);
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                match script.dot_reply.as_deref() {
                    Some("silence") => {
                        std::thread::sleep(Duration::from_secs(30));
                        return Ok(None);
                    }
                    Some(reply) if !reply.starts_with('2') => {
                        r.get_mut().write_all(format!("{reply}\r\n").as_bytes())?;
                        continue;
                    }
                    _ => {}
                }
                messages.lock().unwrap().push(Received {
                    from: from.clone(),
                    rcpts: rcpts.clone(),
                    data,
                    tls,
                });
                if script.lmtp {
                    let mut out = String::new();
                    for a in &rcpts {
                        let local = a.split('@').next().unwrap_or("");
                        let reply = if local.starts_with("d550") {
                            format!("550 5.2.1 <{a}>: mailbox disabled")
                        } else if local.starts_with("d452") {
                            format!("452 4.2.2 <{a}>: mailbox full")
                        } else {
                            format!("250 2.0.0 <{a}> delivered")
                        };
                        out.push_str(&reply);
                        out.push_str("\r\n");
                    }
                    r.get_mut().write_all(out.as_bytes())?;
                    continue;
                }
                script
                    .dot_reply
                    .clone()
                    .unwrap_or_else(|| "250 2.0.0 ok queued as SCRIPTED".into())
            }
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 ok".into()
        } else if upper == "QUIT" {
            r.get_mut().write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(None);
        } else if upper == "NOOP" {
            "250 2.0.0 ok".into()
        } else {
            "500 5.5.2 unrecognized".into()
        };
        r.get_mut().write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

/// Which certificate a receiver presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// Signed by the test CA for the name and address connected to.
    Valid,
    /// Signed by the test CA for another name.
    WrongName,
    /// Signed by itself.
    SelfSigned,
    /// Signed by the test CA, expired in 2001.
    Expired,
}

/// A certificate for `names` signed by `certs`' CA (or, for `kind`, a
/// wrong name, its own signature or long expired) and its key, as PEM.
pub fn certificate(certs: &super::TestCerts, names: &[&str], kind: CertKind) -> (String, String) {
    use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
    let names: Vec<String> = match kind {
        CertKind::WrongName => vec!["elsewhere.invalid".to_string()],
        _ => names.iter().map(|n| n.to_string()).collect(),
    };
    let mut params = CertificateParams::new(names.clone()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    if kind == CertKind::Expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = match kind {
        CertKind::SelfSigned => params.self_signed(&key).expect("self-signed"),
        _ => {
            let ca_key =
                KeyPair::from_pem(&std::fs::read_to_string(&certs.ca_key_path).expect("CA key"))
                    .expect("CA key PEM");
            // The CA's name and key are all a signature needs: the same
            // parameters as TestCerts::new gave its certificate.
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "Sluice test CA");
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            let issuer = Issuer::new(ca_params, ca_key);
            params.signed_by(&key, &issuer).expect("signed")
        }
    };
    (cert.pem(), key.serialize_pem())
}

/// [`certificate`] for `names` under the CA, written to `dir` as
/// `cert.pem` and `key.pem`.
pub fn certificate_files(
    certs: &super::TestCerts,
    names: &[&str],
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = certificate(certs, names, CertKind::Valid);
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).expect("write certificate");
    std::fs::write(&k, key).expect("write key");
    (c, k)
}

/// A TLS configuration for a receiver at `names` (host names and
/// addresses), with a certificate of `kind` under `certs`' CA.
pub fn receiver_tls(
    certs: &super::TestCerts,
    names: &[&str],
    kind: CertKind,
) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = certificate(certs, names, kind);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key DER");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    Arc::new(cfg)
}
