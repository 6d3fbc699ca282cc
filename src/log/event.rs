//! One type for every log line, and its formatter.
//!
//! A [`Line`] is a time stamp and an [`Event`]; an event is an optional
//! message ID and a [`Kind`]. `Display` writes the exact bytes Exim writes
//! (field order included, see docs/log-format.md); [`super::parse`] reads
//! them back. Fields hold raw text: the formatter makes outside text
//! printable ([`super::escape`]) so that no value can break the line.

use std::fmt::{self, Display, Formatter};

use spool::{Header, MessageId};

use super::escape::{self, TEXT_LIMIT, printing};

/// Exim cuts the logged subject (`T="..."`) at 100 bytes (receive.c).
pub const SUBJECT_LIMIT: usize = 100;

/// A whole log line: `YYYY-MM-DD HH:MM:SS[.mmm][ +hhmm][ [pid]] event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stamp: Stamp,
    /// With Exim's `pid` log selector.
    pub pid: Option<u32>,
    pub event: Event,
}

/// The time stamp: local time, as the writer's clock gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    /// `.mmm`, with Exim's `millisec` log selector.
    pub millis: Option<u16>,
    /// `+hhmm` / `-hhmm`, with Exim's `log_timezone`.
    pub zone: Option<String>,
}

/// What a line says, after the stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The message the line is about; rejections before DATA and daemon
    /// notices have none.
    pub id: Option<MessageId>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `<=` (or `(=` for a fake reject).
    Arrival(Arrival),
    /// `=>`, `->`, `>>`, `*>`.
    Delivered(Delivered),
    /// `==`: a temporary failure, to be retried.
    Deferred(Deferred),
    /// `**`: a permanent failure.
    Failed(Failed),
    /// `Completed`: the message leaves the spool.
    Completed(Completed),
    /// `Frozen` or `Frozen (reason)`.
    Frozen { reason: Option<String> },
    /// `frozen by U`, `unfrozen by U`, `removed by U`.
    Operator { action: Action, by: String },
    /// `H=... F=<...> rejected RCPT <...>: ...` and the other rejections.
    Rejected(Rejected),
    /// Anything else: daemon notices, panics, lines we do not model. The
    /// text is made printable when written.
    Other(String),
}

/// An address as Exim logs it: `address[ <original>][ (parent)]`. For a
/// local delivery `address` is the local part or file, `original` the
/// recipient address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub address: String,
    pub original: Option<String>,
    pub parent: Option<String>,
}

/// `H=name (helo) [ip]:port`. The name is there only when it was looked up
/// (or given with `-oMs`); the HELO name only when given and different from
/// the name; the address is empty only for a name given without one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host {
    pub name: Option<String>,
    pub helo: Option<String>,
    pub ip: String,
    pub port: Option<u16>,
}

/// Who a rejection was for: a remote host or a local user (`U=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Host(Host),
    Local(String),
}

/// The Message-ID header's content (without angle brackets), `id=`; or one
/// Exim made, `id*=` (logged only with the `msg_id_created` selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIdField {
    pub value: String,
    pub created: bool,
}

/// The fields of a `<=` line, in the order receive.c writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Arrival {
    /// Empty for the null sender, written `<>`.
    pub sender: String,
    /// `(=` instead of `<=`.
    pub fake_reject: bool,
    /// `R=`: the message this bounce is about.
    pub bounce_of: Option<String>,
    pub host: Option<Host>,
    /// `I=`: the local interface.
    pub interface: Option<String>,
    /// `U=`: the local user, or the ident of a remote one.
    pub ident: Option<String>,
    /// `Ci=`: connection id.
    pub connection: Option<String>,
    /// `P=`: the protocol (`esmtp`, `local`, `lmtp`...).
    pub protocol: Option<String>,
    /// `X=`: the TLS cipher.
    pub tls: Option<String>,
    /// `CV=`: whether the client certificate was verified.
    pub cert_verified: Option<String>,
    /// `A=`: authenticator.
    pub auth: Option<String>,
    pub prdr: bool,
    /// `K`: the message came with BDAT.
    pub chunking: bool,
    /// `S=`: see [`spooled_size`].
    pub size: u64,
    /// `M8S=`: the BODY= parameter (0, 7 or 8).
    pub body_type: Option<String>,
    pub dkim: Option<String>,
    /// `RT=`: time taken to receive.
    pub receive_time: Option<String>,
    /// `Q=`: named queue.
    pub queue: Option<String>,
    pub message_id: Option<MessageIdField>,
    /// `T="..."`, with the `subject` selector.
    pub subject: Option<String>,
    /// Fields we do not model, `TAG=value` or a bare flag, in order; they
    /// are written after `Q=`.
    pub extra: Vec<String>,
    /// ` from <sender>` (with the `sender_on_delivery`-like selectors).
    pub from: Option<String>,
    /// ` for a b c` (`received_recipients` selector).
    pub recipients: Vec<String>,
}

/// Which delivery flag a [`Delivered`] line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryFlag {
    /// `=>`
    #[default]
    First,
    /// `->`: another address in the same delivery.
    More,
    /// `>>`: cutthrough.
    Cutthrough,
    /// `*>`: suppressed by `-N`.
    Suppressed,
}

impl DeliveryFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryFlag::First => "=>",
            DeliveryFlag::More => "->",
            DeliveryFlag::Cutthrough => ">>",
            DeliveryFlag::Suppressed => "*>",
        }
    }
}

/// The fields of a delivery line, in the order deliver.c writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivered {
    pub flag: DeliveryFlag,
    pub address: Address,
    /// `F=<sender>`.
    pub sender: Option<String>,
    pub queue: Option<String>,
    /// `P=<return path>`.
    pub return_path: Option<String>,
    pub router: Option<String>,
    pub transport: Option<String>,
    /// `S=`: bytes delivered (`delivery_size` selector).
    pub size: Option<u64>,
    pub host: Option<Host>,
    pub interface: Option<String>,
    pub tls: Option<String>,
    pub cert_verified: Option<String>,
    pub auth: Option<String>,
    /// `L`: PIPELINING was used.
    pub pipelining: bool,
    /// `K`: CHUNKING was used.
    pub chunking: bool,
    /// `C="..."`: the remote server's reply.
    pub confirmation: Option<String>,
    /// `QT=`, `DT=`.
    pub queue_time: Option<String>,
    pub delivery_time: Option<String>,
    /// Fields we do not model, in order; written before `C=`.
    pub extra: Vec<String>,
}

/// `== address [R=router] [T=transport] defer (errno)[: message]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deferred {
    pub address: Address,
    pub queue: Option<String>,
    pub router: Option<String>,
    pub transport: Option<String>,
    /// Exim's `basic_errno`: an errno, or one of Exim's negative codes;
    /// `-1` (Exim's ERRNO_UNKNOWNERROR) when there is no errno to give.
    pub errno: i32,
    /// `H=name [ip]` after `defer (n)`: the remote host whose reply this is.
    pub host: Option<Host>,
    /// The rest after `defer (n): `: strerror and the error text.
    pub message: Option<String>,
}

/// Exim's `basic_errno` for a failure that has no errno.
pub const UNKNOWN_ERRNO: i32 = -1;

/// `** address [F=<>] [R=router] [T=transport] [H=host][: message]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failed {
    pub address: Address,
    pub sender: Option<String>,
    pub queue: Option<String>,
    pub return_path: Option<String>,
    pub router: Option<String>,
    pub transport: Option<String>,
    pub host: Option<Host>,
    pub message: Option<String>,
}

/// `Completed[ QT=time]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completed {
    pub queue_time: Option<String>,
}

/// What an operator did (`-Mf`, `-Mt`, `-Mrm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Froze,
    Thawed,
    Removed,
    /// `-Mg`: every pending recipient failed by an administrator.
    Cancelled,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Froze => "frozen",
            Action::Thawed => "unfrozen",
            Action::Removed => "removed",
            Action::Cancelled => "cancelled",
        }
    }
}

/// `origin[ F=<sender>] [temporarily ]rejected stage[: reason]`, Exim's
/// rejection line (acl.c, smtp_in.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub origin: Origin,
    pub sender: Option<String>,
    /// A 4xx answer: Exim says `temporarily rejected`.
    pub temporary: bool,
    pub stage: Stage,
    pub reason: Option<String>,
}

/// What was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `RCPT <address>`
    Rcpt(String),
    /// `MAIL <address>`
    Mail(String),
    /// `after DATA`
    AfterData,
    /// `after DATA for <address>`: one LMTP recipient (Sluice's own).
    AfterDataFor(String),
    /// `after DATA (n bytes)`: over the size limit (Sluice's own).
    AfterDataSize(u64),
    /// Anything else after `rejected ` (a command, `connection in "connect" ACL`).
    Other(String),
}

impl Event {
    pub fn new(id: Option<MessageId>, kind: Kind) -> Event {
        Event { id, kind }
    }

    /// A line of free text, about message `id` if given.
    pub fn other(id: Option<MessageId>, text: impl Into<String>) -> Event {
        Event::new(id, Kind::Other(text.into()))
    }

    pub fn completed(id: MessageId) -> Event {
        Event::new(Some(id), Kind::Completed(Completed::default()))
    }
}

impl Host {
    /// The host of a connection: Exim leaves out the HELO name when there
    /// was none or it equals the looked-up name.
    pub fn new(name: Option<&str>, helo: Option<&str>, ip: &str, port: Option<u16>) -> Host {
        Host {
            name: name.map(str::to_string),
            helo: helo
                .filter(|h| !h.is_empty() && Some(*h) != name)
                .map(str::to_string),
            ip: ip.to_string(),
            port,
        }
    }
}

impl Address {
    pub fn new(address: impl Into<String>) -> Address {
        Address {
            address: address.into(),
            ..Address::default()
        }
    }
}

impl Arrival {
    /// An arrival from `origin` (`H=` for a host, `U=` for a local user),
    /// before the optional fields are set.
    pub fn new(sender: &str, origin: Origin, protocol: &str, size: u64) -> Arrival {
        let (host, ident) = match origin {
            Origin::Host(h) => (Some(h), None),
            Origin::Local(u) => (None, Some(u)),
        };
        Arrival {
            sender: sender.to_string(),
            host,
            ident,
            protocol: Some(protocol.to_string()),
            size,
            ..Arrival::default()
        }
    }
}

impl MessageIdField {
    /// The `id=` of a message with these headers: from its first
    /// Message-ID header. Call it with the headers as they arrived: a
    /// Message-ID that Sluice adds is not logged (Exim's default, without
    /// the `msg_id_created` selector).
    pub fn of(headers: &[Header]) -> Option<MessageIdField> {
        headers
            .iter()
            .find(|h| !h.is_deleted() && h.is("message-id"))
            .and_then(|h| MessageIdField::from_header(&h.text))
    }

    /// The `id=` value for a message that arrived with `header` (the whole
    /// `Message-ID:` line): its addr-spec without angle brackets, as Exim's
    /// receive.c takes it with `parse_extract_address`. `None` when the
    /// header holds nothing.
    pub fn from_header(header: &[u8]) -> Option<MessageIdField> {
        let text = String::from_utf8_lossy(header);
        let (_, value) = text.split_once(':')?;
        // Unfold, and drop the line end.
        let value: String = value
            .split(['\r', '\n'])
            .map(|s| s.trim_matches([' ', '\t']))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let inner = match (value.find('<'), value.rfind('>')) {
            (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_string(),
            _ => value.trim().to_string(),
        };
        (!inner.is_empty()).then_some(MessageIdField {
            value: inner,
            created: false,
        })
    }
}

/// `S=` of an arrival: the bytes of the header lines as spooled (LF line
/// ends, deleted headers left out, the ones Sluice added counted), one for
/// the blank line, and the body. This is receive.c's `msg_size`: the -H
/// file's header bytes plus the -D file's data plus one; the spool size
/// `-bp` shows is the same without the one.
pub fn spooled_size(headers: &[Header], body_len: usize) -> u64 {
    let header_bytes: usize = headers
        .iter()
        .filter(|h| !h.is_deleted())
        .map(|h| h.text.len())
        .sum();
    (header_bytes + 1 + body_len) as u64
}

// ---------------------------------------------------------------------
// The formatter.

impl Display for Line {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stamp)?;
        if let Some(pid) = self.pid {
            write!(f, " [{pid}]")?;
        }
        write!(f, " {}", self.event)
    }
}

impl Display for Stamp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.time)?;
        if let Some(ms) = self.millis {
            write!(f, ".{ms:03}")?;
        }
        if let Some(z) = &self.zone {
            write!(f, " {z}")?;
        }
        Ok(())
    }
}

impl Display for Event {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.id {
            write!(f, "{id} ")?;
        }
        match &self.kind {
            Kind::Arrival(a) => a.fmt(f),
            Kind::Delivered(d) => d.fmt(f),
            Kind::Deferred(d) => d.fmt(f),
            Kind::Failed(x) => x.fmt(f),
            Kind::Completed(c) => {
                f.write_str("Completed")?;
                tag(f, "QT", &c.queue_time)
            }
            Kind::Frozen { reason } => {
                f.write_str("Frozen")?;
                match reason {
                    Some(r) => write!(f, " ({})", escape::text(r)),
                    None => Ok(()),
                }
            }
            Kind::Operator { action, by } => {
                write!(f, "{} by {}", action.as_str(), printing(by))
            }
            Kind::Rejected(r) => r.fmt(f),
            Kind::Other(text) => f.write_str(&escape::text(text)),
        }
    }
}

/// ` NAME=value`, the value made printable, when there is one.
fn tag(f: &mut Formatter<'_>, name: &str, value: &Option<String>) -> fmt::Result {
    match value {
        Some(v) => write!(f, " {name}={}", printing(v)),
        None => Ok(()),
    }
}

/// ` NAME=<value>`.
fn angled(f: &mut Formatter<'_>, name: &str, value: &Option<String>) -> fmt::Result {
    match value {
        Some(v) => write!(f, " {name}=<{}>", printing(v)),
        None => Ok(()),
    }
}

fn flag(f: &mut Formatter<'_>, name: &str, on: bool) -> fmt::Result {
    if on { write!(f, " {name}") } else { Ok(()) }
}

/// `<>` for the null sender.
fn sender(s: &str) -> String {
    if s.is_empty() {
        "<>".to_string()
    } else {
        printing(s)
    }
}

impl Display for Host {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(n) = &self.name {
            write!(f, "{}", printing(n))?;
            sep = " ";
        }
        if let Some(h) = &self.helo {
            write!(f, "{sep}({})", printing(h))?;
            sep = " ";
        }
        // A host named by `-oMs` without `-oMa` has no address.
        if !self.ip.is_empty() {
            write!(f, "{sep}[{}]", printing(&self.ip))?;
            if let Some(p) = self.port {
                write!(f, ":{p}")?;
            }
        }
        Ok(())
    }
}

impl Display for Origin {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Host(h) => write!(f, "H={h}"),
            Origin::Local(u) => write!(f, "U={}", printing(u)),
        }
    }
}

impl Display for Address {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&printing(&self.address))?;
        if let Some(o) = &self.original {
            write!(f, " <{}>", printing(o))?;
        }
        if let Some(p) = &self.parent {
            write!(f, " ({})", printing(p))?;
        }
        Ok(())
    }
}

impl Display for Arrival {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let flag_text = if self.fake_reject { "(=" } else { "<=" };
        write!(f, "{flag_text} {}", sender(&self.sender))?;
        tag(f, "R", &self.bounce_of)?;
        if let Some(h) = &self.host {
            write!(f, " H={h}")?;
        }
        tag(f, "I", &self.interface)?;
        tag(f, "U", &self.ident)?;
        tag(f, "Ci", &self.connection)?;
        tag(f, "P", &self.protocol)?;
        tag(f, "X", &self.tls)?;
        tag(f, "CV", &self.cert_verified)?;
        tag(f, "A", &self.auth)?;
        flag(f, "PRDR", self.prdr)?;
        flag(f, "K", self.chunking)?;
        write!(f, " S={}", self.size)?;
        tag(f, "M8S", &self.body_type)?;
        tag(f, "DKIM", &self.dkim)?;
        tag(f, "RT", &self.receive_time)?;
        tag(f, "Q", &self.queue)?;
        for e in &self.extra {
            write!(f, " {}", printing(e))?;
        }
        if let Some(m) = &self.message_id {
            let name = if m.created { "id*" } else { "id" };
            write!(f, " {name}={}", printing(&m.value))?;
        }
        if let Some(s) = &self.subject {
            write!(f, " T={}", escape::quoted(s, SUBJECT_LIMIT))?;
        }
        if let Some(s) = &self.from {
            write!(f, " from <{}>", printing(s))?;
        }
        if !self.recipients.is_empty() {
            f.write_str(" for")?;
            for r in &self.recipients {
                write!(f, " {}", printing(r))?;
            }
        }
        Ok(())
    }
}

impl Display for Delivered {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.flag.as_str(), self.address)?;
        angled(f, "F", &self.sender)?;
        tag(f, "Q", &self.queue)?;
        angled(f, "P", &self.return_path)?;
        tag(f, "R", &self.router)?;
        tag(f, "T", &self.transport)?;
        if let Some(s) = self.size {
            write!(f, " S={s}")?;
        }
        if let Some(h) = &self.host {
            write!(f, " H={h}")?;
        }
        tag(f, "I", &self.interface)?;
        tag(f, "X", &self.tls)?;
        tag(f, "CV", &self.cert_verified)?;
        tag(f, "A", &self.auth)?;
        flag(f, "L", self.pipelining)?;
        flag(f, "K", self.chunking)?;
        for e in &self.extra {
            write!(f, " {}", printing(e))?;
        }
        if let Some(c) = &self.confirmation {
            write!(f, " C={}", escape::quoted(c, TEXT_LIMIT))?;
        }
        tag(f, "QT", &self.queue_time)?;
        tag(f, "DT", &self.delivery_time)
    }
}

impl Display for Deferred {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "== {}", self.address)?;
        tag(f, "Q", &self.queue)?;
        tag(f, "R", &self.router)?;
        tag(f, "T", &self.transport)?;
        write!(f, " defer ({})", self.errno)?;
        if let Some(h) = &self.host {
            write!(f, " H={h}")?;
        }
        match &self.message {
            Some(m) => write!(f, ": {}", escape::text(m)),
            None => Ok(()),
        }
    }
}

impl Display for Failed {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "** {}", self.address)?;
        angled(f, "F", &self.sender)?;
        tag(f, "Q", &self.queue)?;
        angled(f, "P", &self.return_path)?;
        tag(f, "R", &self.router)?;
        tag(f, "T", &self.transport)?;
        if let Some(h) = &self.host {
            write!(f, " H={h}")?;
        }
        match &self.message {
            Some(m) => write!(f, ": {}", escape::text(m)),
            None => Ok(()),
        }
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Rcpt(a) => write!(f, "RCPT <{}>", printing(a)),
            Stage::Mail(a) => write!(f, "MAIL <{}>", printing(a)),
            Stage::AfterData => f.write_str("after DATA"),
            Stage::AfterDataFor(a) => write!(f, "after DATA for <{}>", printing(a)),
            Stage::AfterDataSize(n) => write!(f, "after DATA ({n} bytes)"),
            Stage::Other(t) => f.write_str(&escape::text(t)),
        }
    }
}

impl Display for Rejected {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        angled(f, "F", &self.sender)?;
        let temp = if self.temporary { "temporarily " } else { "" };
        write!(f, " {temp}rejected {}", self.stage)?;
        match &self.reason {
            Some(r) => write!(f, ": {}", escape::text(r)),
            None => Ok(()),
        }
    }
}

/// The block Exim's log.c writes to rejectlog after a rejection that has
/// the message's headers (after DATA): the envelope, then each header as
/// `<flag> <text>` with its spool flag (a space when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedHeaders<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub headers: &'a [Header],
}

/// Exim lists at most five recipients, then `    ...`.
const REJECT_LOG_RECIPIENTS: usize = 5;

impl RejectedHeaders<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some((first, rest)) = self.recipients.split_first() {
            out.extend_from_slice(
                format!("Envelope-from: <{}>\n", printing(self.sender)).as_bytes(),
            );
            out.extend_from_slice(format!("Envelope-to: <{}>\n", printing(first)).as_bytes());
            for r in rest.iter().take(REJECT_LOG_RECIPIENTS - 1) {
                out.extend_from_slice(format!("    <{}>\n", printing(r)).as_bytes());
            }
            if self.recipients.len() > REJECT_LOG_RECIPIENTS {
                out.extend_from_slice(b"    ...\n");
            }
        }
        for h in self.headers {
            out.push(if h.flag == 0 { b' ' } else { h.flag });
            out.push(b' ');
            // Header continuation lines begin with white space, so no
            // header line can pass for a log line; a stray CR is removed
            // for the same reason.
            out.extend(h.text.iter().filter(|&&b| b != b'\r'));
            if !h.text.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_field_drops_brackets_and_folding() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"Message-ID: <m@x>\n", Some("m@x")),
            (b"Message-Id:<m@x>\r\n", Some("m@x")),
            (b"Message-ID:\n <folded@x>\n", Some("folded@x")),
            (b"Message-ID: (comment) <c@x>\n", Some("c@x")),
            (b"Message-ID: bare@x\n", Some("bare@x")),
            (b"Message-ID: \n", None),
            (b"Message-ID: <>\n", None),
        ];
        for (h, want) in cases {
            assert_eq!(
                MessageIdField::from_header(h).map(|m| m.value),
                want.map(str::to_string),
                "{}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn spooled_size_counts_headers_blank_line_and_body() {
        // Exim 4.96 logged S=423 for a message whose Maildir file (headers
        // with Received:, blank line, body) is 423 bytes:
        // tests/fixtures/exim-4.96/README.md.
        let headers = vec![Header::new("Received: x\n"), Header::new("Subject: s\n")];
        assert_eq!(spooled_size(&headers, 5), 12 + 11 + 1 + 5);
        let mut deleted = Header::new("Bcc: b\n");
        deleted.flag = b'*';
        assert_eq!(spooled_size(&[deleted], 0), 1);
    }

    #[test]
    fn rejected_headers_block_is_exims() {
        let rcpts: Vec<String> = (1..=7).map(|i| format!("r{i}@x")).collect();
        let headers = vec![
            Header::new("Received: from a\n\tby b\n"),
            Header::new("Subject: s\n"),
        ];
        let block = RejectedHeaders {
            sender: "s@x",
            recipients: &rcpts,
            headers: &headers,
        };
        assert_eq!(
            String::from_utf8(block.to_bytes()).unwrap(),
            "Envelope-from: <s@x>\nEnvelope-to: <r1@x>\n    <r2@x>\n    <r3@x>\n    <r4@x>\n    <r5@x>\n    ...\nP Received: from a\n\tby b\n  Subject: s\n"
        );
    }
}
