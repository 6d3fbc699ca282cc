//! SMTP replies: a three-digit code (RFC 5321 §4.2), an optional enhanced
//! status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034) and one
//! or more lines of text, written as multi-line replies with hyphens.
//!
//! Every reply the session produces by itself is built by one of the
//! constructors at the bottom of this file, so the wording and the codes
//! can be reviewed in one place. Clients read the replies a server sends
//! with a [`ReplyReader`], into the same [`Reply`] type.

use std::fmt;

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    class: u8,
    subject: u16,
    detail: u16,
}

/// RFC 3463 §2: subject and detail have at most three digits.
const STATUS_PART_MAX: u16 = 999;

impl Status {
    /// `class` is 2, 4 or 5; `subject` and `detail` are at most 999. Values
    /// out of range are clamped so that a malformed code can never reach the
    /// wire (the class then follows the reply code when the reply is built).
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        let class = match class {
            2 | 4 | 5 => class,
            _ => 5,
        };
        let subject = if subject > STATUS_PART_MAX {
            STATUS_PART_MAX
        } else {
            subject
        };
        let detail = if detail > STATUS_PART_MAX {
            STATUS_PART_MAX
        } else {
            detail
        };
        Status {
            class,
            subject,
            detail,
        }
    }

    /// Parses `"5.7.1"`. Returns `None` unless it is exactly three dotted
    /// numbers with a class of 2, 4 or 5 and parts of at most three digits.
    pub fn parse(text: &str) -> Option<Status> {
        let mut parts = text.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let number = |s: &str| -> Option<u16> {
            if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(Status {
            class,
            subject: number(subject)?,
            detail: number(detail)?,
        })
    }

    pub fn class(self) -> u8 {
        self.class
    }
    pub fn subject(self) -> u16 {
        self.subject
    }
    pub fn detail(self) -> u16 {
        self.detail
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply, possibly several lines long.
///
/// The text is sanitised when the reply is built: line breaks split it into
/// several reply lines and other control characters become spaces, so text
/// that came from outside (an address, a router's message) can never inject
/// a reply line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: Option<Status>,
    lines: Vec<String>,
}

/// Codes outside 200..=599 are not SMTP replies (RFC 5321 §4.2.1).
const CODE_MIN: u16 = 200;
const CODE_MAX: u16 = 599;
/// What an out-of-range code is replaced with: "local error in processing".
const CODE_FALLBACK: u16 = 451;

impl Reply {
    /// A reply with an enhanced status code. The status class is made to
    /// agree with the reply code (RFC 3463 §2: "the class sub-code ... MUST
    /// match the first digit of the reply code").
    pub fn new(code: u16, status: Status, text: impl AsRef<str>) -> Reply {
        let code = checked_code(code);
        let class = (code / 100) as u8;
        let status = if matches!(class, 2 | 4 | 5) {
            Some(Status { class, ..status })
        } else {
            // 3xx replies (354) carry no enhanced code.
            None
        };
        Reply {
            code,
            status,
            lines: sanitise(text.as_ref()),
        }
    }

    /// A reply without an enhanced status code: the greeting, the replies to
    /// HELO/EHLO/LHLO (RFC 2034 §3) and 354.
    pub fn plain(code: u16, text: impl AsRef<str>) -> Reply {
        Reply {
            code: checked_code(code),
            status: None,
            lines: sanitise(text.as_ref()),
        }
    }

    /// Parses a configured reply such as `"550 5.7.1 relay not permitted"` or
    /// `"451 try later"`. Returns `None` when the text does not start with a
    /// code in 200..=599 followed by a space or the end.
    pub fn parse(text: &str) -> Option<Reply> {
        let bytes = text.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return None;
        }
        if bytes.len() > 3 && bytes[3] != b' ' {
            return None;
        }
        let code: u16 = text[..3].parse().ok()?;
        if !(CODE_MIN..=CODE_MAX).contains(&code) {
            return None;
        }
        let rest = text.get(4..).unwrap_or("");
        let (first, after) = match rest.split_once(' ') {
            Some((first, after)) => (first, after),
            None => (rest, ""),
        };
        Some(match Status::parse(first) {
            Some(status) => Reply::new(code, status, after),
            None => Reply::plain(code, rest),
        })
    }

    /// The positive reply to DATA once the message is safely queued:
    /// `250 2.0.0 OK id=<ID>`, as Exim words it.
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, Status::new(2, 0, 0), format!("OK id={id}"))
    }

    /// The message ID in a reply built by [`Reply::queued`], as a client
    /// reads it back: the word after `id=` in the last line of a 2xx reply.
    pub fn queued_id(&self) -> Option<&str> {
        if !self.is_positive() {
            return None;
        }
        let (_, id) = self.lines.last()?.split_once("id=")?;
        id.split_whitespace().next()
    }

    pub fn code(&self) -> u16 {
        self.code
    }
    pub fn status(&self) -> Option<Status> {
        self.status
    }
    /// The text of each line, after the code and the enhanced status code.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
    /// The lines' text joined by spaces, without the code and status.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// 2xx: the command was accepted.
    pub fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }
    /// 4xx: refused for now; the client may try again later.
    pub fn is_temporary(&self) -> bool {
        self.code / 100 == 4
    }
    /// 5xx: refused for good.
    pub fn is_permanent(&self) -> bool {
        self.code / 100 == 5
    }
    /// 421 announces that the server closes the connection (RFC 5321 §3.8).
    pub fn closes(&self) -> bool {
        self.code == 421
    }

    /// The same reply without its enhanced status code.
    pub(crate) fn without_status(mut self) -> Reply {
        self.status = None;
        self
    }

    /// The same reply with the first line's text replaced.
    pub(crate) fn with_first_line(mut self, text: &str) -> Reply {
        let mut lines = sanitise(text);
        lines.extend(self.lines.drain(..).skip(1));
        self.lines = lines;
        self
    }

    /// Adds lines at the end (the EHLO keywords).
    pub(crate) fn push_line(&mut self, text: &str) {
        self.lines.extend(sanitise(text));
    }

    /// Appends the wire form: every line but the last is `code-...`, the last
    /// `code ...`, each ending in CRLF (RFC 5321 §4.2.1).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let mut head = self.code.to_string();
            if i != last {
                head.push('-');
            } else if self.status.is_some() || !line.is_empty() {
                // RFC 5321 §4.2: `Reply-code [ SP textstring ] CRLF`.
                head.push(' ');
            }
            if let Some(status) = self.status {
                head.push_str(&status.to_string());
                if !line.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// One line, as logs want it (Exim's `C="..."`): code, status and the lines
/// joined by spaces.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        for line in &self.lines {
            if !line.is_empty() {
                write!(f, " {line}")?;
            }
        }
        Ok(())
    }
}

/// Most lines of one multi-line reply a [`ReplyReader`] takes: EHLO lists a
/// few dozen at most, and a client must not grow without bound.
pub const MAX_REPLY_LINES: usize = 1000;

/// Longest reply line a [`ReplyReader`] takes, line end excluded. RFC 5321
/// §4.5.3.1.5 allows 512 octets with CRLF, but real servers send longer
/// lines (long EHLO keywords, verbose refusals), so 4 KiB are taken.
pub const REPLY_LINE_MAX: usize = 4 * 1024;

/// Most octets of one reply, all its lines together: 64 KiB.
pub const REPLY_OCTETS_MAX: usize = 64 * 1024;

/// Why what a server sent is not an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The line is not `NNN`, `NNN text` or `NNN-text` with a code in
    /// 200..=599. Holds the start of the line, made printable.
    NotAReply(String),
    /// A line of a multi-line reply has another code than the first
    /// (RFC 5321 §4.2.1: the code "MUST be the same" on every line).
    MixedCodes { first: u16, line: u16 },
    /// The reply ran past [`MAX_REPLY_LINES`] lines.
    TooManyLines,
    /// A line ran past [`REPLY_LINE_MAX`] octets.
    LineTooLong,
    /// The reply ran past [`REPLY_OCTETS_MAX`] octets.
    TooLong,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NotAReply(line) => write!(f, "not an SMTP reply: {line:?}"),
            ReplyError::MixedCodes { first, line } => {
                write!(
                    f,
                    "a multi-line reply changed its code from {first} to {line}"
                )
            }
            ReplyError::TooManyLines => write!(f, "reply of more than {MAX_REPLY_LINES} lines"),
            ReplyError::LineTooLong => {
                write!(f, "reply line of more than {REPLY_LINE_MAX} octets")
            }
            ReplyError::TooLong => write!(f, "reply of more than {REPLY_OCTETS_MAX} octets"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// How much of a line that is not a reply an error quotes.
const QUOTED_MAX: usize = 80;

/// Reads the replies a server sends, one line at a time, for clients: the
/// driver reads up to each LF (bounding the line length itself) and hands
/// the line over; the reader says when a reply is complete.
///
/// ```
/// let mut reader = smtp::ReplyReader::new();
/// assert_eq!(reader.push_line(b"250-mx.example Hello\r\n"), Ok(None));
/// let reply = reader.push_line(b"250 2.0.0 PIPELINING\r\n").unwrap().unwrap();
/// assert_eq!(reply.code(), 250);
/// assert_eq!(reply.lines(), ["mx.example Hello", "2.0.0 PIPELINING"]);
/// ```
#[derive(Debug, Default)]
pub struct ReplyReader {
    /// The code of the reply being read, once its first line is in.
    code: Option<u16>,
    lines: Vec<String>,
    /// Octets of the reply being read, line ends included.
    octets: usize,
}

impl ReplyReader {
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Whether lines of a multi-line reply are in and its last is not: a
    /// connection that ends now ends in the middle of a reply.
    pub fn is_partial(&self) -> bool {
        self.code.is_some()
    }

    /// The lines read so far of an unfinished reply, for error messages.
    pub fn partial_lines(&self) -> &[String] {
        &self.lines
    }

    /// One line as received, with its CRLF (or bare LF) or without. Returns
    /// the reply when this was its last line. After an error the reader
    /// starts afresh, but the connection is best given up: what the server
    /// sends next is not in step with the commands.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let result = self.take_line(line);
        if !matches!(result, Ok(None)) {
            self.code = None;
            self.lines.clear();
            self.octets = 0;
        }
        result
    }

    fn take_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.len() > REPLY_LINE_MAX {
            return Err(ReplyError::LineTooLong);
        }
        self.octets += line.len();
        if self.octets > REPLY_OCTETS_MAX {
            return Err(ReplyError::TooLong);
        }
        let Some((code, more, text)) = parse_reply_line(line) else {
            let quoted = &line[..line.len().min(QUOTED_MAX)];
            return Err(ReplyError::NotAReply(
                String::from_utf8_lossy(quoted).into_owned(),
            ));
        };
        match self.code {
            Some(first) if first != code => {
                return Err(ReplyError::MixedCodes { first, line: code });
            }
            _ => self.code = Some(code),
        }
        self.lines.push(text);
        if !more {
            return Ok(Some(Reply::received(code, std::mem::take(&mut self.lines))));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        Ok(None)
    }
}

/// One reply line: its code, whether more lines follow, its text (control
/// characters made spaces, as [`sanitise`] does).
/// `None` unless it is `NNN`, `NNN text` or `NNN-text` (RFC 5321 §4.2).
fn parse_reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(CODE_MIN..=CODE_MAX).contains(&code) {
        return None;
    }
    let (more, text) = match line.get(3) {
        None => (false, &[][..]),
        Some(b' ') => (false, &line[4..]),
        Some(b'-') => (true, &line[4..]),
        Some(_) => return None,
    };
    // A server that sends text that is not UTF-8 is not speaking SMTP
    // (RFC 5321 §4.2 text is ASCII; RFC 6531 allows UTF-8).
    let text = std::str::from_utf8(text)
        .ok()?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Some((code, more, text))
}

impl Reply {
    /// A reply as a server sent it. The enhanced status code is taken out
    /// of the text only when every line starts with the same one and its
    /// class agrees with the code (RFC 2034 §4 puts it on every line);
    /// otherwise the text stays as sent, so writing the reply again gives
    /// back the lines that came in.
    fn received(code: u16, lines: Vec<String>) -> Reply {
        let first_word = lines
            .first()
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let status = Status::parse(first_word)
            .filter(|s| u16::from(s.class()) == code / 100)
            // "2.00.0" parses, but is not what Display would write back.
            .filter(|s| s.to_string() == first_word);
        let Some(status) = status else {
            return Reply {
                code,
                status: None,
                lines,
            };
        };
        let prefix = status.to_string();
        let rest = |line: &str| -> Option<String> {
            let after = line.strip_prefix(prefix.as_str())?;
            match after.strip_prefix(' ') {
                Some(text) => Some(text.to_owned()),
                None if after.is_empty() => Some(String::new()),
                None => None,
            }
        };
        match lines.iter().map(|l| rest(l)).collect::<Option<Vec<_>>>() {
            Some(stripped) => Reply {
                code,
                status: Some(status),
                lines: stripped,
            },
            None => Reply {
                code,
                status: None,
                lines,
            },
        }
    }
}

fn checked_code(code: u16) -> u16 {
    if (CODE_MIN..=CODE_MAX).contains(&code) {
        code
    } else {
        CODE_FALLBACK
    }
}

/// Splits on line breaks and replaces other control characters, so one
/// reply line can never become two on the wire.
fn sanitise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            line.trim_end_matches('\r')
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
        .collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

// The session's own replies. Codes follow RFC 5321 §4.2.2-4.3.2, enhanced
// codes RFC 3463 as registered by RFC 5248.

const fn st(class: u8, subject: u16, detail: u16) -> Status {
    Status::new(class, subject, detail)
}

pub(crate) fn greeting(host: &str, lmtp: bool) -> Reply {
    let proto = if lmtp { "LMTP" } else { "ESMTP" };
    Reply::plain(220, format!("{host} {proto} Sluice ready"))
}

pub(crate) fn ok() -> Reply {
    Reply::new(250, st(2, 0, 0), "OK")
}

pub(crate) fn sender_ok() -> Reply {
    Reply::new(250, st(2, 1, 0), "Sender OK")
}

pub(crate) fn recipient_ok() -> Reply {
    Reply::new(250, st(2, 1, 5), "Recipient OK")
}

/// The default positive reply for one LMTP recipient after the message.
pub(crate) fn delivered(rcpt: &str) -> Reply {
    Reply::new(250, st(2, 0, 0), format!("<{rcpt}> OK"))
}

pub(crate) fn message_accepted() -> Reply {
    Reply::new(250, st(2, 0, 0), "OK")
}

pub(crate) fn chunk_received(octets: u64) -> Reply {
    Reply::new(250, st(2, 0, 0), format!("{octets} octets received"))
}

pub(crate) fn start_data() -> Reply {
    Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
}

pub(crate) fn start_tls() -> Reply {
    Reply::new(220, st(2, 0, 0), "Ready to start TLS")
}

pub(crate) fn closing(host: &str) -> Reply {
    Reply::new(221, st(2, 0, 0), format!("{host} closing connection"))
}

pub(crate) fn vrfy_disabled() -> Reply {
    Reply::new(
        252,
        st(2, 0, 0),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

pub(crate) fn help(lmtp: bool) -> Reply {
    let hello = if lmtp { "LHLO" } else { "EHLO HELO" };
    let mut reply = Reply::new(214, st(2, 0, 0), "Commands supported:");
    reply.push_line(&format!(
        "{hello} MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"
    ));
    reply
}

pub(crate) fn unrecognised() -> Reply {
    Reply::new(500, st(5, 5, 2), "Unrecognized command")
}

pub(crate) fn not_implemented(verb: &str) -> Reply {
    Reply::new(502, st(5, 5, 1), format!("{verb} not implemented"))
}

pub(crate) fn wrong_hello(lmtp: bool) -> Reply {
    if lmtp {
        Reply::new(502, st(5, 5, 1), "This is an LMTP server: use LHLO")
    } else {
        unrecognised()
    }
}

pub(crate) fn line_too_long(limit: usize) -> Reply {
    Reply::new(
        500,
        st(5, 5, 2),
        format!("Line too long (limit {limit} octets)"),
    )
}

pub(crate) fn hello_syntax(verb: &str) -> Reply {
    Reply::plain(501, format!("Syntax: {verb} hostname"))
}

pub(crate) fn syntax(usage: &str) -> Reply {
    Reply::new(501, st(5, 5, 4), format!("Syntax: {usage}"))
}

pub(crate) fn param_syntax(detail: &str) -> Reply {
    Reply::new(
        501,
        st(5, 5, 4),
        format!("Syntax error in parameters: {detail}"),
    )
}

/// RFC 5321 §4.1.1.11 / §4.2.2: parameters not recognised or not
/// implemented, which includes every parameter of an extension that was
/// not advertised (DSN's RET, ENVID, NOTIFY, ORCPT among them).
pub(crate) fn param_unsupported(keyword: &str) -> Reply {
    Reply::new(555, st(5, 5, 4), format!("Unsupported parameter {keyword}"))
}

pub(crate) fn bad_sender(detail: &str) -> Reply {
    Reply::new(
        501,
        st(5, 1, 7),
        format!("Bad sender address syntax: {detail}"),
    )
}

pub(crate) fn bad_recipient(detail: &str) -> Reply {
    Reply::new(
        501,
        st(5, 1, 3),
        format!("Bad recipient address syntax: {detail}"),
    )
}

/// RFC 6531 §3.5 and RFC 5248: X.6.7, non-ASCII address without SMTPUTF8.
pub(crate) fn non_ascii_address() -> Reply {
    Reply::new(
        553,
        st(5, 6, 7),
        "Non-ASCII address requires the SMTPUTF8 parameter on MAIL",
    )
}

/// Sluice refuses source routes instead of ignoring them (RFC 5321
/// §4.1.1.3 allows ignoring): they exist only to make a server relay.
pub(crate) fn source_route() -> Reply {
    Reply::new(
        550,
        st(5, 7, 1),
        "Relay not permitted: source routes are not accepted",
    )
}

/// For the driver: the refusal of a recipient whose domain is not local
/// (and of the relay forms [`super::relay_form`] names).
pub fn relay_not_permitted() -> Reply {
    Reply::new(550, st(5, 7, 1), "Relay not permitted")
}

pub(crate) fn bad_sequence(detail: &str) -> Reply {
    Reply::new(
        503,
        st(5, 5, 1),
        format!("Bad sequence of commands: {detail}"),
    )
}

/// RFC 5321 §3.3: DATA after no valid RCPT gets 554 (SMTP) or, for LMTP,
/// 503 (RFC 2033 §4.2).
pub(crate) fn no_valid_recipients(lmtp: bool) -> Reply {
    let code = if lmtp { 503 } else { 554 };
    Reply::new(code, st(5, 5, 1), "No valid recipients")
}

pub(crate) fn no_service() -> Reply {
    Reply::new(503, st(5, 5, 1), "No service on this connection: send QUIT")
}

/// RFC 5321 §4.5.3.1.8 and RFC 3463 X.5.3.
pub(crate) fn too_many_recipients() -> Reply {
    Reply::new(452, st(4, 5, 3), "Too many recipients")
}

/// RFC 1870: SIZE above the limit, or a message that grew past it.
pub(crate) fn too_big() -> Reply {
    Reply::new(
        552,
        st(5, 3, 4),
        "Message size exceeds fixed maximum message size",
    )
}

/// A bare LF or CR in message data. 554 (transaction failed) with X.6.0
/// (other media error): the content is refused, not the client's syntax,
/// and nothing more specific is registered.
pub(crate) fn bare_line_ending(what: &str) -> Reply {
    Reply::new(
        554,
        st(5, 6, 0),
        format!("Message refused: bare {what} in message data; lines must end with CRLF"),
    )
}

/// A text line longer than RFC 5322 §2.1.1 allows (998 octets + CRLF by
/// default); same code choice as [`bare_line_ending`].
pub(crate) fn line_too_long_in_data(limit: usize) -> Reply {
    Reply::new(
        554,
        st(5, 6, 0),
        format!("Message refused: a line exceeds {limit} octets"),
    )
}

pub(crate) fn tls_active() -> Reply {
    Reply::new(503, st(5, 5, 1), "TLS already active")
}

pub(crate) fn tls_unavailable() -> Reply {
    Reply::new(502, st(5, 5, 1), "STARTTLS not available")
}

pub(crate) fn too_many_errors(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 7, 0),
        format!("{host} Too many errors, closing connection"),
    )
}

pub(crate) fn timeout(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 4, 2),
        format!("{host} Timeout, closing connection"),
    )
}

pub(crate) fn shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 3, 2),
        format!("{host} Service shutting down, closing connection"),
    )
}

/// What a verdict that is not a valid reply becomes.
pub(crate) fn local_error() -> Reply {
    local_problem("Local error in processing")
}

/// A temporary local problem (RFC 3463 X.3.0, "other or undefined mail
/// system status"): the client keeps the message and tries again. The one
/// place `451 4.3.0` is built; `text` says what failed without naming files.
pub fn local_problem(text: impl AsRef<str>) -> Reply {
    Reply::new(451, st(4, 3, 0), text)
}

// The client's own refusals: what a recipient's outcome rests on when the
// client decides without asking the server (`client::Cause::Local`).

/// RFC 1870 §6 and RFC 3463 X.3.4: the message is over the size limit
/// the server announced, so it is not sent.
pub(crate) fn over_peer_size(size: u64, limit: u64) -> Reply {
    Reply::new(
        552,
        st(5, 3, 4),
        format!("Message of {size} octets exceeds the remote server's size limit of {limit}"),
    )
}

/// RFC 6531 §3.5 and RFC 5248 X.6.7: the message needs SMTPUTF8 and the
/// server does not offer it.
pub(crate) fn smtputf8_not_offered() -> Reply {
    Reply::new(
        553,
        st(5, 6, 7),
        "Message needs SMTPUTF8, which the remote server does not offer",
    )
}

/// A reverse-path that cannot be written into MAIL (control characters,
/// brackets, too long): X.1.7, bad sender address syntax.
pub(crate) fn unsendable_sender() -> Reply {
    Reply::new(
        550,
        st(5, 1, 7),
        "Sender address cannot be sent in an SMTP command",
    )
}

/// A forward-path that cannot be written into RCPT: X.1.3, bad
/// destination address syntax.
pub(crate) fn unsendable_recipient() -> Reply {
    Reply::new(
        553,
        st(5, 1, 3),
        "Recipient address cannot be sent in an SMTP command",
    )
}

/// The driver quit in the middle of a transaction.
pub(crate) fn transaction_abandoned() -> Reply {
    local_problem("Transaction abandoned by the client")
}

/// A recipient a transaction ended without deciding (a fault of the
/// client; deferred so that nothing is lost).
pub(crate) fn no_outcome() -> Reply {
    local_problem("Transaction ended without an outcome for this recipient")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        String::from_utf8(reply.to_bytes()).unwrap()
    }

    #[test]
    fn writes_single_and_multi_line_replies() {
        let cases: Vec<(Reply, &str)> = vec![
            (
                Reply::new(250, Status::new(2, 1, 0), "Sender OK"),
                "250 2.1.0 Sender OK\r\n",
            ),
            (Reply::plain(220, "mx ESMTP"), "220 mx ESMTP\r\n"),
            (
                Reply::new(250, Status::new(2, 0, 0), "a\nb\nc"),
                "250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n",
            ),
            (Reply::plain(250, "one\r\ntwo"), "250-one\r\n250 two\r\n"),
            (Reply::new(250, Status::new(2, 0, 0), ""), "250 2.0.0\r\n"),
            (Reply::plain(250, ""), "250\r\n"),
            // Control characters cannot smuggle a second line.
            (Reply::plain(550, "x\ry\u{7}z"), "550 x y z\r\n"),
            // The status class follows the reply code.
            (
                Reply::new(451, Status::new(5, 7, 1), "t"),
                "451 4.7.1 t\r\n",
            ),
            // 354 never carries a status; an invalid code becomes 451.
            (Reply::new(354, Status::new(2, 0, 0), "go"), "354 go\r\n"),
            (
                Reply::new(999, Status::new(5, 0, 0), "x"),
                "451 4.0.0 x\r\n",
            ),
        ];
        for (reply, expected) in cases {
            assert_eq!(wire(&reply), expected, "{reply:?}");
        }
    }

    #[test]
    fn parses_status_codes() {
        let cases = [
            ("5.7.1", Some((5, 7, 1))),
            ("2.0.0", Some((2, 0, 0))),
            ("4.999.999", Some((4, 999, 999))),
            ("3.0.0", None),
            ("5.7", None),
            ("5.7.1.1", None),
            ("5.1000.1", None),
            ("5..1", None),
            ("5.a.1", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = Status::parse(text).map(|s| (s.class(), s.subject(), s.detail()));
            assert_eq!(got, expected, "{text}");
        }
    }

    #[test]
    fn parses_configured_replies() {
        let cases = [
            (
                "550 5.7.1 relay not permitted",
                Some("550 5.7.1 relay not permitted\r\n"),
            ),
            ("451 try again later", Some("451 try again later\r\n")),
            ("250", Some("250\r\n")),
            ("250 2.0.0", Some("250 2.0.0\r\n")),
            ("550 5.1.1 a\nb", Some("550-5.1.1 a\r\n550 5.1.1 b\r\n")),
            ("199 no", None),
            ("600 no", None),
            ("55 short", None),
            ("550x", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = Reply::parse(text).map(|r| wire(&r));
            assert_eq!(got.as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn classifies_and_displays() {
        let r = Reply::parse("421 4.7.0 bye").unwrap();
        assert!(r.closes() && r.is_temporary() && !r.is_permanent() && !r.is_positive());
        assert_eq!(r.to_string(), "421 4.7.0 bye");
        assert_eq!(r.status(), Some(Status::new(4, 7, 0)));
        assert_eq!(Reply::parse("550 no").unwrap().status(), None);
        assert_eq!(
            relay_not_permitted().to_string(),
            "550 5.7.1 Relay not permitted"
        );
        let q = Reply::queued("1sLuIc-000000000Ab-0000");
        assert!(q.is_positive());
        assert_eq!(wire(&q), "250 2.0.0 OK id=1sLuIc-000000000Ab-0000\r\n");
        let e = Reply::plain(250, "mx Hello").with_first_line("other");
        assert_eq!(wire(&e), "250 other\r\n");
    }

    #[test]
    fn reads_replies_a_server_sends() {
        // (lines as received, code, status, lines' text)
        type Case<'a> = (&'a [&'a [u8]], u16, Option<&'a str>, &'a [&'a str]);
        let cases: Vec<Case> = vec![
            (&[b"220 mx ESMTP\r\n"], 220, None, &["mx ESMTP"]),
            (
                &[b"250 2.1.0 Sender OK\r\n"],
                250,
                Some("2.1.0"),
                &["Sender OK"],
            ),
            (&[b"250 2.0.0\r\n"], 250, Some("2.0.0"), &[""]),
            (&[b"250\r\n"], 250, None, &[""]),
            (&[b"250 \r\n"], 250, None, &[""]),
            // A bare LF and no line end at all are both taken.
            (&[b"354 go\n"], 354, None, &["go"]),
            (&[b"221 bye"], 221, None, &["bye"]),
            (
                &[
                    b"250-mx Hello\r\n",
                    b"250-PIPELINING\r\n",
                    b"250 SIZE 10\r\n",
                ],
                250,
                None,
                &["mx Hello", "PIPELINING", "SIZE 10"],
            ),
            (
                &[b"550-5.7.1 a\r\n", b"550 5.7.1 b\r\n"],
                550,
                Some("5.7.1"),
                &["a", "b"],
            ),
            // Not every line has the status: the text stays as sent.
            (
                &[b"550-5.7.1 a\r\n", b"550 b\r\n"],
                550,
                None,
                &["5.7.1 a", "b"],
            ),
            // A status whose class disagrees with the code is text.
            (&[b"250 5.0.0 odd\r\n"], 250, None, &["5.0.0 odd"]),
            (&[b"250 2.00.0 odd\r\n"], 250, None, &["2.00.0 odd"]),
            (&[b"250 2.0.0x\r\n"], 250, None, &["2.0.0x"]),
            // Control characters cannot smuggle a line into the text.
            (&[b"250 a\rb\x07c\r\n"], 250, None, &["a b c"]),
            (&[b"250 caf\xc3\xa9\r\n"], 250, None, &["caf\u{e9}"]),
        ];
        for (input, code, status, lines) in cases {
            let mut reader = ReplyReader::new();
            let (last, first) = input.split_last().unwrap();
            for line in first {
                assert_eq!(reader.push_line(line), Ok(None), "{input:?}");
                assert!(reader.is_partial());
            }
            let reply = reader.push_line(last).unwrap().unwrap();
            assert!(!reader.is_partial());
            assert_eq!(reply.code(), code, "{input:?}");
            assert_eq!(
                reply.status().map(|s| s.to_string()).as_deref(),
                status,
                "{input:?}"
            );
            assert_eq!(reply.lines(), lines, "{input:?}");
        }
    }

    /// Moved from the load generator's client with its reply parser.
    #[test]
    fn reply_lines() {
        type Parsed = Option<(u16, bool, &'static str)>;
        let cases: &[(&[u8], Parsed)] = &[
            (b"250 OK\r\n", Some((250, false, "OK"))),
            (b"250-PIPELINING\r\n", Some((250, true, "PIPELINING"))),
            (b"220\r\n", Some((220, false, ""))),
            (b"354 go ahead\n", Some((354, false, "go ahead"))),
            (b"451 4.3.0 later\r\n", Some((451, false, "4.3.0 later"))),
            (b"550 \r\n", Some((550, false, ""))),
            (b"25 x\r\n", None),
            (b"2500 x\r\n", None),
            (b"abc def\r\n", None),
            (b"150 x\r\n", None),
            (b"650 x\r\n", None),
            (b"250_x\r\n", None),
            (b"\r\n", None),
            (b"250 \xff\r\n", None),
        ];
        for &(line, want) in cases {
            let got = parse_reply_line(line);
            assert_eq!(
                got.as_ref().map(|(c, m, t)| (*c, *m, t.as_str())),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn what_the_session_writes_reads_back_the_same() {
        let replies = [
            Reply::new(250, Status::new(2, 1, 0), "Sender OK"),
            Reply::new(250, Status::new(2, 0, 0), "a\nb\nc"),
            Reply::new(250, Status::new(2, 0, 0), ""),
            Reply::plain(220, "mx ESMTP Sluice ready"),
            Reply::plain(250, ""),
            Reply::queued("1sLuIc-000000000Ab-0000"),
            help(false),
            too_big(),
        ];
        for reply in replies {
            let bytes = reply.to_bytes();
            let mut reader = ReplyReader::new();
            let mut got = None;
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                got = reader.push_line(line).unwrap();
            }
            assert_eq!(
                got.as_ref(),
                Some(&reply),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_reply() {
        let cases: Vec<(&[&[u8]], ReplyError)> = vec![
            (
                &[b"HTTP/1.1 400 Bad Request\r\n"],
                ReplyError::NotAReply("HTTP/1.1 400 Bad Request\r\n".into()),
            ),
            (&[b"25\r\n"], ReplyError::NotAReply("25\r\n".into())),
            (&[b"250x\r\n"], ReplyError::NotAReply("250x\r\n".into())),
            (&[b"199 no\r\n"], ReplyError::NotAReply("199 no\r\n".into())),
            (&[b"600 no\r\n"], ReplyError::NotAReply("600 no\r\n".into())),
            (&[b"\r\n"], ReplyError::NotAReply("\r\n".into())),
            (
                &[b"250-a\r\n", b"550 b\r\n"],
                ReplyError::MixedCodes {
                    first: 250,
                    line: 550,
                },
            ),
        ];
        for (input, expected) in cases {
            let mut reader = ReplyReader::new();
            let (last, first) = input.split_last().unwrap();
            for line in first {
                assert_eq!(reader.push_line(line), Ok(None));
            }
            assert_eq!(reader.push_line(last), Err(expected), "{input:?}");
            // The reader starts afresh.
            assert!(!reader.is_partial());
            assert!(reader.push_line(b"250 ok\r\n").unwrap().is_some());
        }
        let mut reader = ReplyReader::new();
        for _ in 1..MAX_REPLY_LINES {
            assert_eq!(reader.push_line(b"250-x\r\n"), Ok(None));
        }
        assert_eq!(
            reader.push_line(b"250-x\r\n"),
            Err(ReplyError::TooManyLines)
        );
        // Longer lines than RFC 5321's 512 are taken, up to 4 KiB, and up
        // to 64 KiB in all.
        let line = format!("250-{}\r\n", "x".repeat(REPLY_LINE_MAX - 4));
        let mut reader = ReplyReader::new();
        for _ in 0..(REPLY_OCTETS_MAX / line.len()) {
            assert_eq!(reader.push_line(line.as_bytes()), Ok(None));
        }
        assert_eq!(reader.push_line(line.as_bytes()), Err(ReplyError::TooLong));
        let mut too_long = line.clone().into_bytes();
        too_long.insert(5, b'x');
        assert_eq!(
            ReplyReader::new().push_line(&too_long),
            Err(ReplyError::LineTooLong)
        );
        let long = vec![b'x'; 200];
        match ReplyReader::new().push_line(&long) {
            Err(ReplyError::NotAReply(quoted)) => assert_eq!(quoted.len(), QUOTED_MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_the_queue_id_back() {
        let cases = [
            (
                "250 2.0.0 OK id=1sLuIc-000000000Ab-0000",
                Some("1sLuIc-000000000Ab-0000"),
            ),
            ("250 OK id=abc more", Some("abc")),
            ("250 2.0.0 OK", None),
            ("451 4.3.0 id=abc", None),
        ];
        for (text, expected) in cases {
            let reply = Reply::parse(text).unwrap();
            assert_eq!(reply.queued_id(), expected, "{text}");
        }
        assert_eq!(Reply::queued("X-1").queued_id(), Some("X-1"));
        assert_eq!(Reply::parse("250 2.0.0 a\nb").unwrap().text(), "a b");
    }
}
