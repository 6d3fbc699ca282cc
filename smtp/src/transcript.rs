//! Plays the dialog transcripts in `tests/smtp_transcripts/*.txt` against
//! the in-memory session. The format is described in that directory's
//! README.md; the same files are meant to run against the daemon.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

// The format helpers are shared with the network runner at the workspace
// root (tests/smtp_transcripts.rs); both include the one file by path.
#[path = "../../tests/smtp_transcripts/wire.rs"]
mod wire;
use wire::{glob, unescape};

use super::reply::Reply;
use super::session::{Event, Mode, Poll, Session, SessionConfig, TlsInfo, Verdict};

/// The message ID the in-memory "spool" reports.
const TEST_ID: &str = "1sLuIc-000000000Ab-0000";

#[derive(Debug)]
enum Step {
    /// Client bytes (C: and R: lines); consecutive ones form one write.
    Send(Vec<u8>),
    /// S: one expected reply line, `*` matching any run of characters.
    Expect(String),
    /// `-- tls`
    Tls,
    /// `-- eof`
    Eof,
    /// `-- closed`
    Closed,
}

#[derive(Debug)]
struct Transcript {
    config: SessionConfig,
    /// (line number, step)
    steps: Vec<(usize, Step)>,
    /// V: lines by event kind, in file order.
    verdicts: HashMap<String, VecDeque<Verdict>>,
}

fn parse(text: &str) -> Result<Transcript, String> {
    let mut config = SessionConfig::new("mx.test", Mode::Smtp);
    // The daemon always has a certificate (a self-signed one by default).
    config.tls_available = true;
    let mut steps = Vec::new();
    let mut verdicts: HashMap<String, VecDeque<Verdict>> = HashMap::new();
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
            "C" => steps.push((n, Step::Send(format!("{rest}\r\n").into_bytes()))),
            "R" => steps.push((n, Step::Send(unescape(rest).map_err(err)?))),
            "S" => steps.push((n, Step::Expect(rest.to_owned()))),
            "V" => {
                let (kind, reply) = rest.split_once(' ').unwrap_or((rest, ""));
                let verdict = if reply == "accept" {
                    Verdict::Accept
                } else {
                    Verdict::Reply(
                        Reply::parse(reply).ok_or_else(|| err(format!("bad reply {reply:?}")))?,
                    )
                };
                verdicts
                    .entry(kind.to_owned())
                    .or_default()
                    .push_back(verdict);
            }
            "O" => {
                if !steps.is_empty() {
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
                        config.mode = match value {
                            "smtp" => Mode::Smtp,
                            "lmtp" => Mode::Lmtp,
                            _ => return Err(err(format!("mode {value}"))),
                        }
                    }
                    "tls" => config.tls_available = flag()?,
                    "vrfy" => config.vrfy = flag()?,
                    "message_size_limit" => config.message_size_limit = number()?,
                    "max_recipients" => config.max_recipients = number()? as usize,
                    "max_errors" => config.max_errors = number()? as usize,
                    "max_command_line" => config.max_command_line = number()? as usize,
                    "max_data_line" => config.max_data_line = number()? as usize,
                    // Only for runners against the daemon: skip this file.
                    "runner" if value == "memory" => {}
                    _ => return Err(err(format!("unknown option {name} {value}"))),
                }
            }
            "" => match line.trim() {
                "-- tls" => steps.push((n, Step::Tls)),
                "-- eof" => steps.push((n, Step::Eof)),
                "-- closed" => steps.push((n, Step::Closed)),
                other => return Err(err(format!("unknown line {other:?}"))),
            },
            _ => return Err(err(format!("unknown tag {tag}:"))),
        }
    }
    Ok(Transcript {
        config,
        steps,
        verdicts,
    })
}

struct Runner {
    session: Session,
    verdicts: HashMap<String, VecDeque<Verdict>>,
    /// Server lines received and not yet matched.
    lines: VecDeque<String>,
    partial: Vec<u8>,
    tls_pending: bool,
    closed: bool,
}

impl Runner {
    fn verdict(&mut self, kind: &str) -> Verdict {
        self.verdicts
            .get_mut(kind)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| match kind {
                "data" => Verdict::Reply(Reply::queued(TEST_ID)),
                _ => Verdict::Accept,
            })
    }

    /// Polls until the session needs the client, collecting its output.
    fn drive(&mut self) -> Result<(), String> {
        loop {
            match self.session.poll() {
                Poll::Read => break,
                Poll::Notice(_) => {}
                Poll::Decide(event) => match event {
                    Event::Message(message) if self.session.mode() == Mode::Lmtp => {
                        let verdicts = message
                            .envelope
                            .recipients
                            .iter()
                            .map(|_| self.lmtp_verdict())
                            .collect();
                        self.session.verdicts(verdicts);
                    }
                    event => {
                        let kind = match event {
                            Event::Connect => "connect",
                            Event::Helo { .. } => "helo",
                            Event::Mail { .. } => "mail",
                            Event::Rcpt { .. } => "rcpt",
                            Event::Vrfy { .. } => "vrfy",
                            Event::Message(_) => "data",
                        };
                        let verdict = self.verdict(kind);
                        self.session.verdict(verdict);
                    }
                },
                Poll::StartTls { .. } => {
                    self.tls_pending = true;
                    break;
                }
                Poll::Close(_) => {
                    self.closed = true;
                    break;
                }
                Poll::Waiting => {
                    return Err("the session waits for nothing the runner gives".into());
                }
            }
        }
        self.partial.extend(self.session.take_output());
        while let Some(end) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.partial.drain(..end + 2).take(end).collect();
            self.lines
                .push_back(String::from_utf8(line).map_err(|_| "reply is not UTF-8")?);
        }
        Ok(())
    }

    fn lmtp_verdict(&mut self) -> Verdict {
        self.verdicts
            .get_mut("data")
            .and_then(VecDeque::pop_front)
            .unwrap_or(Verdict::Accept)
    }
}

fn run(transcript: Transcript) -> Result<(), String> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut r = Runner {
        session: Session::new(Arc::new(transcript.config), Some(peer)),
        verdicts: transcript.verdicts,
        lines: VecDeque::new(),
        partial: Vec::new(),
        tls_pending: false,
        closed: false,
    };
    r.drive()?;
    let mut write: Vec<u8> = Vec::new();
    let mut steps = transcript.steps.into_iter().peekable();
    while let Some((n, step)) = steps.next() {
        let err = |msg: String| format!("line {n}: {msg}");
        match step {
            Step::Send(bytes) => {
                if write.is_empty()
                    && let Some(line) = r.lines.front()
                {
                    return Err(err(format!("unexpected server line {line:?}")));
                }
                write.extend(bytes);
                if !matches!(steps.peek(), Some((_, Step::Send(_)))) {
                    if r.closed {
                        return Err(err("the server has closed the connection".into()));
                    }
                    r.session.receive(&std::mem::take(&mut write));
                    r.drive().map_err(err)?;
                }
            }
            Step::Expect(pattern) => match r.lines.pop_front() {
                Some(line) if glob(&pattern, &line) => {}
                Some(line) => {
                    return Err(err(format!("expected {pattern:?}, server sent {line:?}")));
                }
                None => {
                    return Err(err(format!(
                        "expected {pattern:?}, server sent nothing more"
                    )));
                }
            },
            Step::Tls => {
                if !r.tls_pending {
                    return Err(err("the server did not start TLS".into()));
                }
                if let Some(line) = r.lines.front() {
                    return Err(err(format!("unexpected server line {line:?}")));
                }
                r.tls_pending = false;
                r.session.tls_established(TlsInfo {
                    version: "TLS1.3".into(),
                    cipher: "TLS_AES_256_GCM_SHA384".into(),
                });
                r.drive().map_err(err)?;
            }
            Step::Eof => {
                r.session.receive_eof();
                r.drive().map_err(err)?;
            }
            Step::Closed => {
                if let Some(line) = r.lines.front() {
                    return Err(err(format!("unexpected server line {line:?}")));
                }
                if !r.closed {
                    return Err(err("the server did not close the connection".into()));
                }
            }
        }
    }
    match r.lines.front() {
        Some(line) => Err(format!("end: unexpected server line {line:?}")),
        None => Ok(()),
    }
}

#[test]
fn glob_matches() {
    let cases = [
        ("250 OK", "250 OK", true),
        ("250 *", "250 2.0.0 OK", true),
        (
            "250-* Hello c [127.0.0.1]",
            "250-mx.test Hello c [127.0.0.1]",
            true,
        ),
        ("250 * id=*", "250 2.0.0 OK id=1abc", true),
        ("250 *", "251 x", false),
        ("*", "", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "acb", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
    }
}

#[test]
fn unescapes_raw_lines() {
    assert_eq!(
        unescape(r"a\r\n.\n\t\\\x00\xff").unwrap(),
        b"a\r\n.\n\t\\\x00\xff"
    );
    assert!(unescape(r"\q").is_err());
    assert!(unescape(r"\x4").is_err());
}

/// A transcript that expects the wrong thing must fail: the runner is not
/// a rubber stamp.
#[test]
fn mismatches_are_reported() {
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
            "S: 220 *\nS: 250 *\n",
            "line 2: expected \"250 *\", server sent nothing more",
        ),
        (
            "S: 220 *\nC: NOOP\n-- closed\n",
            "line 3: unexpected server line",
        ),
        (
            "S: 220 *\nC: NOOP\nS: 250 *\n-- closed\n",
            "line 4: the server did not close",
        ),
        ("S: 220 *\n-- tls\n", "line 2: the server did not start TLS"),
        ("C: NOOP\n", "line 1: unexpected server line \"220"),
    ];
    for (text, expected) in cases {
        let got = run(parse(text).unwrap()).unwrap_err();
        assert!(got.starts_with(expected), "{text:?}: {got}");
    }
    assert!(parse("C: x\nO: mode lmtp\n").is_err());
    assert!(parse("Q: x\n").is_err());
}

#[test]
fn transcripts() {
    // The transcripts live with the end-to-end tests at the workspace root,
    // which run the same files against the daemon.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/smtp_transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "transcripts missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy();
        match parse(&text).and_then(run) {
            Ok(()) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
