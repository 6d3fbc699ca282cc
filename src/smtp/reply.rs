//! SMTP replies: a three-digit code (RFC 5321 §4.2), an optional enhanced
//! status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034) and one
//! or more lines of text, written as multi-line replies with hyphens.
//!
//! Every reply the session produces by itself is built by one of the
//! constructors at the bottom of this file, so the wording and the codes
//! can be reviewed in one place.

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

    pub fn code(&self) -> u16 {
        self.code
    }
    pub fn status(&self) -> Option<Status> {
        self.status
    }
    pub fn lines(&self) -> &[String] {
        &self.lines
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
    Reply::new(451, st(4, 3, 0), "Local error in processing")
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
}
