//! Plays the dialog transcripts in `tests/smtp_transcripts/*.txt` over TCP
//! against the daemon (`sluice serve` on 127.0.0.1:0), with a real rustls
//! handshake at `-- tls`. The format is in that directory's README.md; the
//! in-memory runner is `smtp/src/transcript.rs`. Here the daemon's own
//! policy decides, so `V:` lines are ignored and files marked
//! `O: runner memory` are skipped.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "smtp_transcripts/wire.rs"]
mod wire;
use common::{Dir, TestCerts, log_lines_of, wait_until};
use wire::{glob, unescape};

/// How long the runner waits for an expected reply line.
const REPLY_WAIT: Duration = Duration::from_secs(15);
/// Before each write: how long the runner listens for reply lines that no
/// `S:` line accounted for. A late stray line is still caught by the next
/// check or the one at the end, which waits longer.
const QUIET_WAIT: Duration = Duration::from_millis(40);
const END_WAIT: Duration = Duration::from_secs(1);
/// How long `-- closed` waits for the server to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Step {
    /// C: and R: lines; consecutive ones form one write.
    Send(Vec<u8>),
    /// S: one reply line, `*` matching any run of characters.
    Expect(String),
    Tls,
    Eof,
    Closed,
}

#[derive(Debug, Default)]
struct Transcript {
    lmtp: bool,
    tls: bool,
    /// `--set` overrides for the daemon.
    sets: Vec<String>,
    memory_only: bool,
    /// (line number, step)
    steps: Vec<(usize, Step)>,
}

fn parse(text: &str) -> Result<Transcript, String> {
    let mut t = Transcript {
        tls: true,
        ..Default::default()
    };
    for (index, line) in text.lines().enumerate() {
        let n = index + 1;
        let err = |msg: String| format!("line {n}: {msg}");
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = match line.split_once(':') {
            Some((tag, rest)) if tag.len() == 1 => (tag, rest.strip_prefix(' ').unwrap_or(rest)),
            _ => ("", line),
        };
        match tag {
            "C" => t
                .steps
                .push((n, Step::Send(format!("{rest}\r\n").into_bytes()))),
            "R" => t.steps.push((n, Step::Send(unescape(rest).map_err(err)?))),
            "S" => t.steps.push((n, Step::Expect(rest.to_owned()))),
            // The daemon's policy decides; the files only use verdicts it
            // would give itself.
            "V" => {}
            "O" => {
                if !t.steps.is_empty() {
                    return Err(err("options must come before the dialog".into()));
                }
                let (name, value) = rest
                    .split_once(' ')
                    .ok_or_else(|| err("option without value".into()))?;
                let number = || {
                    value
                        .parse::<u64>()
                        .map_err(|_| err(format!("{name}: not a number")))
                };
                let flag = || match value {
                    "yes" => Ok(true),
                    "no" => Ok(false),
                    _ => Err(err(format!("{name}: yes or no"))),
                };
                match name {
                    "mode" => {
                        t.lmtp = match value {
                            "smtp" => false,
                            "lmtp" => true,
                            _ => return Err(err(format!("mode {value}"))),
                        }
                    }
                    "tls" => t.tls = flag()?,
                    "vrfy" => t.sets.push(format!("smtp.vrfy={}", flag()?)),
                    "message_size_limit" => {
                        t.sets.push(format!("message_size_limit={}", number()?))
                    }
                    "max_recipients" => t.sets.push(format!("smtp.max_recipients={}", number()?)),
                    "max_errors" => t.sets.push(format!("smtp.max_errors={}", number()?)),
                    "runner" if value == "memory" => t.memory_only = true,
                    "max_command_line" | "max_data_line" => {
                        return Err(err(format!(
                            "{name} is not a setting of the daemon: mark the file `O: runner memory`"
                        )));
                    }
                    _ => return Err(err(format!("unknown option {name} {value}"))),
                }
            }
            "" => match line.trim() {
                "-- tls" => t.steps.push((n, Step::Tls)),
                "-- eof" => t.steps.push((n, Step::Eof)),
                "-- closed" => t.steps.push((n, Step::Closed)),
                other => return Err(err(format!("unknown line {other:?}"))),
            },
            _ => return Err(err(format!("unknown tag {tag}:"))),
        }
    }
    Ok(t)
}

/// The connection, before and after STARTTLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Only while switching.
    Gone,
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
            Conn::Gone => unreachable!("connection used while switching to TLS"),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => match t.read(buf) {
                // A peer that closes TCP after its close_notify, or without
                // one: both are the end of the connection here.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Conn::Gone => unreachable!("connection used while switching to TLS"),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes),
            Conn::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
            Conn::Gone => unreachable!("connection used while switching to TLS"),
        }
    }
}

/// What the server sent, split into lines.
struct Runner {
    conn: Conn,
    lines: std::collections::VecDeque<String>,
    partial: Vec<u8>,
    eof: bool,
    tls: Arc<rustls::ClientConfig>,
    /// Message IDs from `250 ... id=` replies.
    ids: Vec<String>,
}

impl Runner {
    /// Reads whatever arrives within `wait` (stopping at the first chunk).
    fn fill(&mut self, wait: Duration) -> Result<(), String> {
        if self.eof {
            return Ok(());
        }
        self.conn
            .tcp()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16 * 1024];
        match self.conn.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.partial.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.eof = true,
            Err(e) => return Err(format!("reading: {e}")),
        }
        while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.partial.drain(..end + 2).take(end).collect();
            let line = String::from_utf8(line).map_err(|_| "reply is not UTF-8".to_string())?;
            if line.starts_with("250 ")
                && let Some((_, id)) = line.split_once(" id=")
            {
                self.ids.push(id.to_string());
            }
            self.lines.push_back(line);
        }
        Ok(())
    }

    /// Fails if the server sent a line no `S:` line accounted for.
    fn quiet(&mut self, wait: Duration) -> Result<(), String> {
        if self.lines.is_empty() && self.partial.is_empty() && !wait.is_zero() {
            self.fill(wait)?;
        }
        match (self.lines.front(), self.partial.is_empty()) {
            (Some(line), _) => Err(format!("unexpected server line {line:?}")),
            (None, false) => Err(format!(
                "unexpected server bytes {:?}",
                String::from_utf8_lossy(&self.partial)
            )),
            (None, true) => Ok(()),
        }
    }

    fn next_line(&mut self) -> Result<Option<String>, String> {
        let end = Instant::now() + REPLY_WAIT;
        while self.lines.is_empty() && !self.eof && Instant::now() < end {
            self.fill(end.saturating_duration_since(Instant::now()))?;
        }
        Ok(self.lines.pop_front())
    }

    fn start_tls(&mut self) -> Result<(), String> {
        let Conn::Plain(sock) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err("TLS is already active".into());
        };
        sock.set_read_timeout(Some(REPLY_WAIT))
            .map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("localhost")
            .map_err(|e| e.to_string())?
            .to_owned();
        let conn =
            rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    fn send_eof(&mut self) -> Result<(), String> {
        if let Conn::Tls(t) = &mut self.conn {
            t.conn.send_close_notify();
            t.flush().map_err(|e| e.to_string())?;
        }
        self.conn
            .tcp()
            .shutdown(Shutdown::Write)
            .map_err(|e| e.to_string())
    }
}

/// Plays `t` against a server at `addr`; returns the message IDs the
/// server gave.
fn play(
    t: &Transcript,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Vec<String>, String> {
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(REPLY_WAIT))
        .map_err(|e| e.to_string())?;
    let mut r = Runner {
        conn: Conn::Plain(sock),
        lines: Default::default(),
        partial: Vec::new(),
        eof: false,
        tls,
        ids: Vec::new(),
    };
    let mut write: Vec<u8> = Vec::new();
    let mut steps = t.steps.iter().peekable();
    while let Some((n, step)) = steps.next() {
        let err = |msg: String| format!("line {n}: {msg}");
        match step {
            Step::Send(bytes) => {
                if write.is_empty() {
                    r.quiet(QUIET_WAIT).map_err(err)?;
                }
                write.extend_from_slice(bytes);
                if !matches!(steps.peek(), Some((_, Step::Send(_)))) {
                    if r.eof {
                        return Err(err("the server has closed the connection".into()));
                    }
                    r.conn
                        .write_all(&std::mem::take(&mut write))
                        .map_err(|e| err(format!("writing: {e}")))?;
                }
            }
            Step::Expect(pattern) => match r.next_line().map_err(err)? {
                Some(line) if glob(pattern, &line) => {}
                Some(line) => {
                    return Err(err(format!("expected {pattern:?}, server sent {line:?}")));
                }
                None if r.eof => {
                    return Err(err(format!(
                        "expected {pattern:?}, server closed the connection"
                    )));
                }
                None => {
                    return Err(err(format!(
                        "expected {pattern:?}, server sent nothing more within {REPLY_WAIT:?}"
                    )));
                }
            },
            Step::Tls => {
                r.quiet(QUIET_WAIT).map_err(err)?;
                if r.eof {
                    return Err(err("the server closed instead of starting TLS".into()));
                }
                r.start_tls().map_err(err)?;
            }
            Step::Eof => r.send_eof().map_err(err)?,
            Step::Closed => {
                r.quiet(Duration::ZERO).map_err(err)?;
                let end = Instant::now() + CLOSE_WAIT;
                while !r.eof && r.lines.is_empty() && r.partial.is_empty() && Instant::now() < end {
                    r.fill(end.saturating_duration_since(Instant::now()))
                        .map_err(err)?;
                }
                r.quiet(Duration::ZERO).map_err(err)?;
                if !r.eof {
                    return Err(err("the server did not close the connection".into()));
                }
            }
        }
    }
    r.quiet(END_WAIT).map_err(|e| format!("end: {e}"))?;
    Ok(r.ids)
}

/// The daemon options a transcript needs.
fn daemon_sets(t: &Transcript, certs: &TestCerts, dir: &Dir) -> Vec<String> {
    let mut sets = t.sets.clone();
    if t.lmtp {
        sets.push(r#"smtp.lmtp_listen=["127.0.0.1:0"]"#.into());
    }
    if t.tls {
        sets.extend(certs.sets());
    } else {
        // No usable certificate: the daemon serves without STARTTLS.
        let empty = dir.path().join("no-certificate.pem");
        std::fs::write(&empty, "").unwrap();
        sets.push(format!(
            "smtp.tls_certificate={:?}",
            empty.display().to_string()
        ));
        sets.push(format!(
            "smtp.tls_privatekey={:?}",
            empty.display().to_string()
        ));
    }
    sets
}

/// Starts a daemon for `t` and plays it; checks that every message the
/// daemon accepted over SMTP was delivered.
fn run_file(name: &str, t: &Transcript, certs: &TestCerts) -> Result<(), String> {
    let dir = Dir::new();
    let sets = daemon_sets(t, certs, &dir);
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut daemon = dir.serve(&refs);
    if !t.tls && !dir.log("paniclog").contains("TLS unavailable") {
        return Err("the daemon did not say why it has no TLS".into());
    }
    let addr = if t.lmtp {
        daemon.lmtp.ok_or("no LMTP listener")?
    } else {
        daemon.smtp
    };
    let ids = play(t, addr, certs.client_config())?;
    if !t.lmtp {
        // Every accepted message is delivered and leaves the queue.
        let done = wait_until(Duration::from_secs(20), || {
            let log = dir.log("mainlog");
            ids.iter().all(|id| {
                log_lines_of(&log, id)
                    .iter()
                    .any(|l| l.ends_with(" Completed"))
            })
        });
        if !done {
            return Err(format!(
                "{name}: messages {ids:?} not all delivered; mainlog:\n{}",
                dir.log("mainlog")
            ));
        }
    }
    if !daemon.alive() {
        return Err(format!("the daemon died: {}", daemon.stderr_text()));
    }
    Ok(())
}

fn transcript_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_transcript_passes_against_the_daemon() {
    let files = transcript_files();
    assert!(files.len() >= 10, "transcripts missing");
    let certs_dir = Dir::new();
    let certs = TestCerts::new(certs_dir.path());
    let mut played = Vec::new();
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    // Each file gets its own daemon; they run side by side.
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|file| {
                let certs = &certs;
                s.spawn(move || {
                    let name = file.file_name().unwrap().to_string_lossy().into_owned();
                    let text = std::fs::read_to_string(file).unwrap();
                    let result = match parse(&text) {
                        Ok(t) if t.memory_only => Ok(false),
                        Ok(t) => run_file(&name, &t, certs).map(|()| true),
                        Err(e) => Err(e),
                    };
                    (name, result)
                })
            })
            .collect();
        for h in handles {
            match h.join().expect("runner thread") {
                (name, Ok(true)) => played.push(name),
                (name, Ok(false)) => skipped.push(name),
                (name, Err(e)) => failures.push(format!("{name}: {e}")),
            }
        }
    });
    eprintln!("played {played:?}; skipped (memory only) {skipped:?}");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(played.len() >= 10, "too few transcripts played: {played:?}");
    assert!(played.contains(&"starttls_injection.txt".to_string()));
    assert!(played.contains(&"lmtp.txt".to_string()));
}

/// A transcript that expects the wrong thing fails against the daemon too:
/// the runner is not a rubber stamp.
#[test]
fn mismatches_are_reported() {
    let certs_dir = Dir::new();
    let certs = TestCerts::new(certs_dir.path());
    let dir = Dir::new();
    let sets = certs.sets();
    let daemon = dir.serve(&[&sets[0], &sets[1]]);
    let cases = [
        (
            "S: 220 *\nC: NOOP\nS: 250 2.0.0 Wrong\n",
            "line 3: expected",
        ),
        ("S: 220 *\nC: NOOP\n", "end: unexpected server line"),
        (
            "S: 220 *\nC: NOOP\nC: NOOP\nS: 250 *\n",
            "end: unexpected server line",
        ),
        (
            "S: 220 *\nC: NOOP\nS: 250 *\nC: NOOP\nC: QUIT\nS: 250 *\n",
            "end: unexpected server line \"221",
        ),
        (
            "S: 220 *\nC: NOOP\n-- closed\n",
            "line 3: unexpected server line",
        ),
        (
            "S: 220 *\nC: QUIT\nS: 221 *\n-- closed\nC: NOOP\n",
            "line 5: the server has closed",
        ),
        (
            "S: 220 *\nC: QUIT\nS: 221 *\nS: 250 *\n",
            "line 4: expected \"250 *\", server closed",
        ),
    ];
    for (text, expected) in cases {
        let got = play(&parse(text).unwrap(), daemon.smtp, certs.client_config()).unwrap_err();
        assert!(got.starts_with(expected), "{text:?}: {got}");
    }
    // The greeting is caught before the first write, or at the end when
    // it comes late.
    let got = play(
        &parse("C: NOOP\n").unwrap(),
        daemon.smtp,
        certs.client_config(),
    )
    .unwrap_err();
    assert!(got.contains("unexpected server line \"220"), "{got}");
    // A server that keeps the connection open is not "closed".
    let t = parse("S: 220 *\nC: NOOP\nS: 250 *\n-- closed\n").unwrap();
    let started = Instant::now();
    let got = play(&t, daemon.smtp, certs.client_config()).unwrap_err();
    assert!(got.starts_with("line 4: the server did not close"), "{got}");
    assert!(started.elapsed() >= CLOSE_WAIT);
    // A certificate the client does not trust fails the handshake.
    let other_dir = Dir::new();
    let other = TestCerts::new(other_dir.path());
    let t = parse("S: 220 *\nC: EHLO c\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250 *\nC: STARTTLS\nS: 220 *\n-- tls\n").unwrap();
    let got = play(&t, daemon.smtp, other.client_config()).unwrap_err();
    assert!(got.contains("TLS handshake"), "{got}");
}

#[test]
fn parser_and_glob() {
    let cases = [
        ("250 OK", "250 OK", true),
        ("250 *", "250 2.0.0 OK", true),
        ("250 * id=*", "250 2.0.0 OK id=1abc", true),
        ("250 *", "251 x", false),
        ("a*b*c", "acb", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
    }
    assert_eq!(unescape(r"a\r\n\x00\\").unwrap(), b"a\r\n\x00\\");
    assert!(unescape(r"\q").is_err());
    assert!(parse("C: x\nO: mode lmtp\n").is_err());
    assert!(parse("O: max_data_line 10\n").is_err());
    let t = parse("O: message_size_limit 100\nO: max_errors 3\nO: vrfy yes\nS: 220 *\n").unwrap();
    assert_eq!(
        t.sets,
        [
            "message_size_limit=100",
            "smtp.max_errors=3",
            "smtp.vrfy=true"
        ]
    );
}
