//! The `-H` file: envelope, delivery state and headers, in Exim's layout
//! where it fits (Exim's specification, "Format of the -H file").
//!
//! ```text
//! 1tixMn-00000000C5j-1wRa-H            its own name ("insurance against disk crashes")
//! alice 1000 1000                      caller: login, uid, gid
//! <alice@example.org>                  envelope sender (<> for bounces)
//! 1739545953 0                         arrival second, delay warnings sent
//! -received_time_usec .470123          options, "-name value" or "-name"
//! -received_protocol local
//! -body_linecount 12
//! -body_size 345                       (Sluice) bytes of body in -D after its first line
//! -header_size 512                     (Sluice) bytes of header text below
//! -rcpt_state 1 delivered 1739545960   (Sluice) per-recipient state, see below
//! NN bob@example.net                   non-recipients tree (Exim): addresses done with
//! 2                                    recipient count
//! carol@example.com                    recipients, one per line; with DSN data Exim's
//! bob@example.net                        "addr orcpt len,notify errors_to len,pno#3" form
//!                                      blank line
//! 024F From: alice@example.org         headers: "NNNc " = length incl. newline, flag
//! 039T To: carol@example.com, bob@example.net
//! ```
//!
//! Header flags: `B` Bcc, `C` Cc, `F` From, `I` Message-ID, `P` Received,
//! `R` Reply-To, `S` Sender, `T` To, `*` deleted, space for any other.
//!
//! Options Sluice adds (Exim ignores options it does not know, and so do
//! we: unknown ones are kept and written back unchanged):
//!
//! - `-body_size N` and `-header_size N`: the lengths of the body and of
//!   the header section. A file cut short (or a `-D` of the wrong length) is
//!   reported as torn instead of being read as a shorter message.
//! - `-rcpt_state I STATE ...` for every recipient (0-based index `I`) that
//!   is not simply waiting: `delivered T`, `failed T REASON`,
//!   `deferred T UNTIL ATTEMPTS REASON` (retry not before `UNTIL`), or
//!   `inflight T` (a delivery was started and its outcome is not known;
//!   recovery looks whether it landed). Times are Unix seconds.
//!
//! Option values and reasons escape `\` and control characters (`\\`,
//! `\n`, `\xHH`), so text from a remote client cannot break the layout.
//! Addresses cannot contain control characters at all.
//!
//! The non-recipients tree is written as Exim writes it (a balanced binary
//! tree of the delivered and failed addresses, `XX` when empty). When a
//! file has no `-rcpt_state` lines (one written by Exim), a recipient whose
//! address is in the tree counts as delivered.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::id::MessageId;

/// A point in time, to the microsecond (the arrival time of a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: u64,
    pub micros: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp {
            secs: d.as_secs(),
            micros: d.subsec_micros(),
        }
    }

    /// The arrival time an ID records.
    pub fn of_id(id: &MessageId) -> Timestamp {
        Timestamp {
            secs: id.time(),
            micros: id.micros() as u32,
        }
    }
}

/// Who submitted the message (line 2 of the `-H` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub login: String,
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    /// This process's real uid and gid, with the uid as text for the login.
    /// The spool does not read the password database: a program that knows
    /// the login (the `sluice` binary looks the real uid up) sets it.
    pub fn from_ids() -> Caller {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        Caller {
            login: uid.to_string(),
            uid,
            gid,
        }
    }
}

fn valid_login(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())
}

/// An IP address and port, written as Exim writes them (`192.0.2.1.25`,
/// `::1.57259`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub ip: String,
    pub port: u16,
}

impl HostAddress {
    fn to_spool(&self) -> String {
        format!("{}.{}", self.ip, self.port)
    }

    fn from_spool(s: &str) -> Option<HostAddress> {
        let (ip, port) = s.rsplit_once('.')?;
        Some(HostAddress {
            ip: ip.to_string(),
            port: port.parse().ok()?,
        })
    }
}

/// `RET=` of the SMTP `MAIL` command (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnRet {
    Headers,
    Full,
}

/// `NOTIFY=` of an SMTP `RCPT` command, as bits (none set: not given),
/// with Exim's values (`rf_notify_*` in its structs.h), so that the flags
/// of a recipient line mean the same to Exim and to Sluice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DsnNotify(pub u8);

impl DsnNotify {
    /// Exim's `rf_dsnlasthop`: the next hop got NOTIFY (no DSN due here).
    pub const LAST_HOP: u8 = 1;
    pub const NEVER: u8 = 2;
    pub const SUCCESS: u8 = 4;
    pub const FAILURE: u8 = 8;
    pub const DELAY: u8 = 16;
    pub const ALL: u8 = 31;

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags of a `NOTIFY=` value; none of the three is `NEVER`.
    pub fn from_flags(success: bool, failure: bool, delay: bool) -> DsnNotify {
        if !(success || failure || delay) {
            return DsnNotify(DsnNotify::NEVER);
        }
        let mut bits = 0;
        for (on, bit) in [
            (success, DsnNotify::SUCCESS),
            (failure, DsnNotify::FAILURE),
            (delay, DsnNotify::DELAY),
        ] {
            if on {
                bits |= bit;
            }
        }
        DsnNotify(bits)
    }
}

/// Where a recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RcptState {
    /// Not tried yet (or to be tried at the next queue run).
    #[default]
    Pending,
    /// A delivery started at `since` and its outcome was not recorded (the
    /// process died). Only deliveries that cannot be found again record
    /// their start (an mbox append): they are made again. A Maildir
    /// delivery records none; it is looked for by its name
    /// ([`MessageId::delivery_name`]) before any retry.
    InFlight { since: u64 },
    /// A temporary failure at `at`; next attempt not before `until`.
    /// `first` is when this recipient first failed temporarily (retry
    /// rules count from it); 0 when unknown (a spool written before it
    /// was kept), when the message's arrival stands in for it.
    Deferred {
        first: u64,
        at: u64,
        until: u64,
        attempts: u32,
        why: Diagnosis,
    },
    /// Delivered (durably) at `at`.
    Delivered { at: u64 },
    /// Failed permanently at `at` (a bounce is due).
    Failed { at: u64, why: Diagnosis },
}

/// Why a delivery was deferred or failed: what the log, `-Mvl` and a
/// delivery status notification need. The status and the remote host are
/// optional lines of the `-H` file (`-rcpt_status`, `-rcpt_remote`), absent
/// from spools written before they existed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnosis {
    /// The text: the remote server's reply, or the local error.
    pub text: String,
    /// The RFC 3463 enhanced status code (`5.1.1`), when known.
    pub status: Option<String>,
    /// The host that gave the answer (`mx.example.net [192.0.2.1]`), when a
    /// remote host did.
    pub remote: Option<String>,
}

impl Diagnosis {
    /// A diagnosis with only its text (a spool written before statuses).
    pub fn text(text: impl Into<String>) -> Diagnosis {
        Diagnosis {
            text: text.into(),
            ..Diagnosis::default()
        }
    }

    /// Whether `s` has the shape of an enhanced status code
    /// (`class.subject.detail`, class 2, 4 or 5, up to three digits each).
    pub fn is_status(s: &str) -> bool {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl RcptState {
    /// Delivered or failed: no further attempt.
    pub fn is_done(&self) -> bool {
        matches!(self, RcptState::Delivered { .. } | RcptState::Failed { .. })
    }
}

/// The delivery status notification (RFC 3464) a failed recipient is
/// owed. It is made in three durable steps, so that a crash between any two
/// neither loses nor doubles it: the intent with the report's message ID
/// (`Making`), the report's own `-D`/`-H`, then `Made`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Report {
    /// None made yet: owed once the recipient has failed.
    #[default]
    Due,
    /// Due, with what the attempt that owes it learnt: where it goes
    /// (a router's `errors_to`) and, for a success, the host it was relayed
    /// to without DSN. Kept so that a crash before the report changes
    /// neither.
    Noted {
        to: Option<String>,
        relayed: Option<String>,
    },
    /// Being made as message `id` (the intent is recorded; whether the
    /// message was queued is found by looking for it).
    Making(String),
    /// Being made as message `id` (first) to an address other than the
    /// sender's (second: a router's `errors_to`).
    MakingFor(String, String),
    /// Made and queued as message `id`.
    Made(String),
    /// None is to be sent (the recipient's NOTIFY lacks FAILURE, or the
    /// message is itself a report).
    Waived,
}

impl Report {
    /// Made or waived: nothing more to do for it.
    pub fn is_settled(&self) -> bool {
        matches!(self, Report::Made(_) | Report::Waived)
    }
}

/// One envelope recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipient {
    pub address: String,
    /// `ORCPT=` (RFC 3461), as received (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
    pub notify: DsnNotify,
    /// Where failure reports for this recipient go, when not to the sender.
    pub errors_to: Option<String>,
    pub state: RcptState,
    /// Its failure report, once it has failed.
    pub report: Report,
}

impl Recipient {
    /// No further work: delivered or failed, with the report owed for it
    /// (a failure, or a success asked for with `NOTIFY=SUCCESS`) made or
    /// waived.
    pub fn is_settled(&self) -> bool {
        self.state.is_done() && !self.owes_report()
    }

    /// Failed, or delivered with `NOTIFY=SUCCESS`, and its report not made
    /// (nor waived) yet.
    pub fn owes_report(&self) -> bool {
        let due = match self.state {
            RcptState::Failed { .. } => true,
            RcptState::Delivered { .. } => {
                self.notify.0 & DsnNotify::SUCCESS != 0 && self.notify.0 & DsnNotify::NEVER == 0
            }
            _ => false,
        };
        due && !self.report.is_settled()
    }
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            ..Default::default()
        }
    }
}

/// Everything in a `-H` file before the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub caller: Caller,
    /// The envelope sender without angle brackets; empty for a bounce.
    pub sender: String,
    /// When the message began to arrive. Set from the ID when it is queued.
    pub arrival: Timestamp,
    /// Delay warnings sent so far.
    pub warning_count: u32,
    /// `local`, `smtp`, `esmtp`, `esmtpa`, `esmtps`, `esmtpsa`...
    pub protocol: Option<String>,
    /// Submitted on this host (the command line), not over the network.
    pub local: bool,
    /// An untrusted local submitter set the sender (Exim's
    /// `-sender_set_untrusted`; `-bp` shows their login before it).
    pub sender_set_untrusted: bool,
    /// RFC 1413 ident, or the login of a local caller.
    pub ident: Option<String>,
    pub host_address: Option<HostAddress>,
    pub host_name: Option<String>,
    pub helo_name: Option<String>,
    /// The local address and port the client connected to.
    pub interface_address: Option<HostAddress>,
    /// SMTP AUTH: mechanism, authenticated id, `AUTH=` sender.
    pub auth_mechanism: Option<String>,
    pub auth_id: Option<String>,
    pub auth_sender: Option<String>,
    /// Frozen since this time (no deliveries until thawed).
    pub frozen: Option<u64>,
    /// Thawed by hand (Exim's `-manual_thaw`).
    pub manual_thaw: bool,
    pub dsn_envid: Option<String>,
    pub dsn_ret: Option<DsnRet>,
    /// Lines in the body. Set when the message is queued.
    pub body_linecount: u64,
    /// Bytes of body. Set when the message is queued; `None` in a file
    /// Exim wrote (Exim records no `-body_size`): the `-D` file's length
    /// is then taken as it is.
    pub body_size: Option<u64>,
    pub recipients: Vec<Recipient>,
    /// Options this version does not know, kept in order and written back.
    pub extra: Vec<(String, Option<String>)>,
}

impl Envelope {
    /// An envelope for `sender` (empty for `<>`) and `recipients`, from this
    /// process's ids ([`Caller::from_ids`]; set `caller` to name the user).
    pub fn new(sender: impl Into<String>, recipients: &[&str]) -> Envelope {
        let mut env = Envelope::blank(Caller::from_ids(), sender.into(), Timestamp::now());
        env.recipients = recipients.iter().map(|r| Recipient::new(*r)).collect();
        env
    }

    /// An envelope with only its caller, sender and arrival time set.
    fn blank(caller: Caller, sender: String, arrival: Timestamp) -> Envelope {
        Envelope {
            caller,
            sender,
            arrival,
            warning_count: 0,
            protocol: None,
            local: false,
            sender_set_untrusted: false,
            ident: None,
            host_address: None,
            host_name: None,
            helo_name: None,
            interface_address: None,
            auth_mechanism: None,
            auth_id: None,
            auth_sender: None,
            frozen: None,
            manual_thaw: false,
            dsn_envid: None,
            dsn_ret: None,
            body_linecount: 0,
            body_size: Some(0),
            recipients: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Recipients not yet delivered or failed.
    pub fn undelivered(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.state.is_done())
    }

    /// Whether every recipient is delivered, or failed with its report
    /// made or waived: the message may leave the queue.
    pub fn is_complete(&self) -> bool {
        self.recipients.iter().all(Recipient::is_settled)
    }
}

/// A header line (with its continuation lines), as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Exim's flag character: see the module documentation.
    pub flag: u8,
    /// The full text, ending with `\n`.
    pub text: Vec<u8>,
}

impl Header {
    /// A header with the flag its name calls for. `text` gets a trailing
    /// newline if it lacks one.
    pub fn new(text: impl Into<Vec<u8>>) -> Header {
        let mut text = text.into();
        if text.last() != Some(&b'\n') {
            text.push(b'\n');
        }
        let flag = flag_for(field_name(&text).unwrap_or(b""));
        Header { flag, text }
    }

    /// The field name (before the colon), if the text has one.
    pub fn name(&self) -> Option<&str> {
        field_name(&self.text).and_then(|n| std::str::from_utf8(n).ok())
    }

    /// Whether the field is named `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name().is_some_and(|n| n.eq_ignore_ascii_case(name))
    }

    /// Deleted or rewritten: kept in the file, not delivered.
    pub fn is_deleted(&self) -> bool {
        self.flag == b'*'
    }
}

/// The flag Exim gives a header by its name.
pub fn flag_for(name: &[u8]) -> u8 {
    const FLAGS: &[(&str, u8)] = &[
        ("bcc", b'B'),
        ("cc", b'C'),
        ("from", b'F'),
        ("message-id", b'I'),
        ("received", b'P'),
        ("reply-to", b'R'),
        ("sender", b'S'),
        ("to", b'T'),
    ];
    FLAGS
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        .map_or(b' ', |&(_, f)| f)
}

/// The field name of a header line: printable characters up to a colon
/// (whitespace before the colon is tolerated, as RFC 5322's obsolete syntax
/// allows).
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&c| c == b':')?;
    let name = &line[..colon];
    let trimmed = name
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(&name[..0], |e| &name[..=e]);
    if trimmed.is_empty() || !trimmed.iter().all(|&c| (33..=126).contains(&c)) {
        return None;
    }
    Some(trimmed)
}

/// Splits a message into its header lines and the offset where the body
/// begins (after the blank line; at the first line that is not a header
/// when there is no blank line, as Exim does). Line ends are kept as they
/// are; a last header without a newline gets one. Each header gets the flag
/// its name calls for.
pub fn split_message(data: &[u8]) -> (Vec<Header>, usize) {
    let mut headers: Vec<Header> = Vec::new();
    let mut pos = 0;
    let body_at = loop {
        if pos >= data.len() {
            break data.len();
        }
        let end = data[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..end];
        if line == b"\n" || line == b"\r\n" {
            break end;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && let Some(h) = headers.last_mut() {
            h.text.extend_from_slice(line);
        } else if let (false, Some(name)) = (continuation, field_name(line)) {
            headers.push(Header {
                flag: flag_for(name),
                text: line.to_vec(),
            });
        } else {
            break pos;
        }
        pos = end;
    };
    if let Some(h) = headers.last_mut()
        && h.text.last() != Some(&b'\n')
    {
        h.text.push(b'\n');
    }
    (headers, body_at)
}

/// The contents of a `-H` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFile {
    pub id: MessageId,
    pub envelope: Envelope,
    /// Bytes of header text, as recorded in the file. When the headers
    /// were read too, it equals the sum of their lengths.
    pub header_size: u64,
    /// Empty when only the envelope was read.
    pub headers: Vec<Header>,
}

impl HeaderFile {
    /// The message size Exim's `-bp` shows: headers plus body.
    pub fn size(&self) -> u64 {
        self.header_size + self.envelope.body_size.unwrap_or(0)
    }

    /// Serializes into the `-H` format. Fails (permanently) on an envelope
    /// that cannot be written: control characters in an address or login,
    /// a header without its final newline, an invalid extra option name.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        render(&self.id, &self.envelope, &self.headers)
    }

    /// Parses a `-H` file read from `path` (named in errors). With
    /// `with_headers == false` it stops at the blank line after the
    /// recipients (what a queue listing needs).
    pub fn parse(path: &Path, data: &[u8], with_headers: bool) -> Result<HeaderFile> {
        Parser {
            path,
            data,
            pos: 0,
            line: 0,
        }
        .header_file(with_headers)
    }
}

/// Serializes a `-H` file from its parts (see [`HeaderFile::to_bytes`]).
pub fn render(id: &MessageId, env: &Envelope, headers: &[Header]) -> Result<Vec<u8>> {
    check_envelope(env)?;
    for h in headers {
        if h.text.last() != Some(&b'\n') {
            return Err(bad_env(format!(
                "header {:?} does not end with a newline",
                String::from_utf8_lossy(&h.text)
            )));
        }
        if h.flag.is_ascii_control() || h.flag >= 0x80 || h.flag.is_ascii_digit() {
            return Err(bad_env(format!("header flag {:?}", h.flag as char)));
        }
    }
    let header_size: u64 = headers.iter().map(|h| h.text.len() as u64).sum();

    let mut s = String::with_capacity(512);
    let _ = writeln!(s, "{id}-H");
    let _ = writeln!(
        s,
        "{} {} {}",
        env.caller.login, env.caller.uid, env.caller.gid
    );
    let _ = writeln!(s, "<{}>", env.sender);
    let _ = writeln!(s, "{} {}", env.arrival.secs, env.warning_count);
    let _ = writeln!(s, "-received_time_usec .{:06}", env.arrival.micros);
    let mut opt = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            s.push('-');
            s.push_str(name);
            s.push(' ');
            escape_into(&mut s, v);
            s.push('\n');
        }
    };
    opt("received_protocol", env.protocol.as_deref());
    opt("ident", env.ident.as_deref());
    opt(
        "host_address",
        env.host_address.as_ref().map(|h| h.to_spool()).as_deref(),
    );
    opt("host_name", env.host_name.as_deref());
    opt("helo_name", env.helo_name.as_deref());
    opt(
        "interface_address",
        env.interface_address
            .as_ref()
            .map(|h| h.to_spool())
            .as_deref(),
    );
    opt("host_auth", env.auth_mechanism.as_deref());
    opt("auth_id", env.auth_id.as_deref());
    opt("auth_sender", env.auth_sender.as_deref());
    opt("dsn_envid", env.dsn_envid.as_deref());
    opt(
        "dsn_ret",
        // Exim's numbers (dsn_ret_hdrs 1, dsn_ret_full 2); the names an
        // earlier release wrote are still read.
        env.dsn_ret.map(|r| match r {
            DsnRet::Headers => "1",
            DsnRet::Full => "2",
        }),
    );
    opt("frozen", env.frozen.map(|t| t.to_string()).as_deref());
    let _ = writeln!(s, "-body_linecount {}", env.body_linecount);
    if let Some(n) = env.body_size {
        let _ = writeln!(s, "-body_size {n}");
    }
    let _ = writeln!(s, "-header_size {header_size}");
    if env.local {
        s.push_str("-local\n");
    }
    if env.sender_set_untrusted {
        s.push_str("-sender_set_untrusted\n");
    }
    if env.manual_thaw {
        s.push_str("-manual_thaw\n");
    }
    for (i, r) in env.recipients.iter().enumerate() {
        write_state(&mut s, i, &r.state);
        write_report(&mut s, i, &r.report);
    }
    for (name, value) in &env.extra {
        s.push('-');
        s.push_str(name);
        if let Some(v) = value {
            s.push(' ');
            escape_into(&mut s, v);
        }
        s.push('\n');
    }
    write_tree(&mut s, env);
    let _ = writeln!(s, "{}", env.recipients.len());
    for r in &env.recipients {
        write_recipient(&mut s, r);
    }
    s.push('\n');

    let mut out = s.into_bytes();
    out.reserve(header_size as usize + 6 * headers.len());
    for h in headers {
        out.extend_from_slice(format!("{:03}{} ", h.text.len(), h.flag as char).as_bytes());
        out.extend_from_slice(&h.text);
    }
    Ok(out)
}

fn bad_env(why: String) -> Error {
    Error::BadEnvelope { why }
}

fn check_address(what: &str, a: &str) -> Result<()> {
    if a.chars().any(|c| c.is_control()) {
        return Err(bad_env(format!(
            "{what} {a:?} contains a control character"
        )));
    }
    Ok(())
}

fn check_envelope(env: &Envelope) -> Result<()> {
    if !valid_login(&env.caller.login) {
        return Err(bad_env(format!(
            "caller login {:?} is empty or contains spaces or control characters",
            env.caller.login
        )));
    }
    check_address("sender", &env.sender)?;
    for r in &env.recipients {
        if r.address.is_empty() {
            return Err(bad_env("an empty recipient address".into()));
        }
        check_address("recipient", &r.address)?;
        if let Some(o) = &r.orcpt {
            check_address("ORCPT", o)?;
        }
        if let Some(e) = &r.errors_to {
            check_address("errors_to", e)?;
        }
    }
    for (name, _) in &env.extra {
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(bad_env(format!("option name {name:?}")));
        }
    }
    Ok(())
}

/// One optional value as one word: `-` for none, else escaped with its
/// spaces as `\x20` (and a lone dash as `\x2d`).
pub(crate) fn word_into(s: &mut String, v: Option<&str>) {
    match v {
        None => s.push('-'),
        Some(v) => {
            let mut e = String::new();
            escape_into(&mut e, v);
            let e = e.replace(' ', "\\x20");
            s.push_str(if e == "-" { "\\x2d" } else { &e });
        }
    }
}

/// The inverse of [`word_into`].
pub(crate) fn word(w: &str) -> Option<Option<String>> {
    match w {
        "-" => Some(None),
        w => unescape(w).ok().map(Some),
    }
}

/// `-rcpt_report I making ID`, `made ID` or `waived`; nothing while due.
fn write_report(s: &mut String, i: usize, report: &Report) {
    match report {
        Report::Due => {}
        Report::Noted { to, relayed } => {
            let _ = writeln!(s, "-rcpt_report {i} noted");
            // Values run to the end of their lines (a host has a space).
            if let Some(to) = to {
                let _ = write!(s, "-rcpt_report_to {i} ");
                escape_into(s, to);
                s.push('\n');
            }
            if let Some(host) = relayed {
                let _ = write!(s, "-rcpt_relayed {i} ");
                escape_into(s, host);
                s.push('\n');
            }
        }
        Report::Making(id) => {
            let _ = writeln!(s, "-rcpt_report {i} making {id}");
        }
        Report::MakingFor(id, to) => {
            let _ = writeln!(s, "-rcpt_report {i} making {id}");
            let _ = write!(s, "-rcpt_report_to {i} ");
            escape_into(s, to);
            s.push('\n');
        }
        Report::Made(id) => {
            let _ = writeln!(s, "-rcpt_report {i} made {id}");
        }
        Report::Waived => {
            let _ = writeln!(s, "-rcpt_report {i} waived");
        }
    }
}

fn write_state(s: &mut String, i: usize, st: &RcptState) {
    match st {
        RcptState::Pending => {}
        RcptState::InFlight { since } => {
            let _ = writeln!(s, "-rcpt_state {i} inflight {since}");
        }
        RcptState::Delivered { at } => {
            let _ = writeln!(s, "-rcpt_state {i} delivered {at}");
        }
        RcptState::Failed { at, why } => {
            let _ = write!(s, "-rcpt_state {i} failed {at} ");
            escape_into(s, &why.text);
            s.push('\n');
            write_diagnosis(s, i, why);
        }
        RcptState::Deferred {
            first,
            at,
            until,
            attempts,
            why,
        } => {
            let _ = write!(s, "-rcpt_state {i} deferred {at} {until} {attempts} ");
            escape_into(s, &why.text);
            s.push('\n');
            write_diagnosis(s, i, why);
            if *first != 0 {
                let _ = writeln!(s, "-rcpt_first {i} {first}");
            }
        }
    }
}

/// The optional lines after a failed or deferred `-rcpt_state`.
fn write_diagnosis(s: &mut String, i: usize, why: &Diagnosis) {
    if let Some(st) = &why.status {
        let _ = writeln!(s, "-rcpt_status {i} {st}");
    }
    if let Some(r) = &why.remote {
        let _ = write!(s, "-rcpt_remote {i} ");
        escape_into(s, r);
        s.push('\n');
    }
}

/// Exim's non-recipients tree: the sorted set of done addresses as a
/// balanced binary tree, in pre-order, each node "YN addr" telling whether
/// a left and a right subtree follow.
fn write_tree(s: &mut String, env: &Envelope) {
    let done: BTreeSet<&str> = env
        .recipients
        .iter()
        .filter(|r| r.state.is_done())
        .map(|r| r.address.as_str())
        .collect();
    let done: Vec<&str> = done.into_iter().collect();
    if done.is_empty() {
        s.push_str("XX\n");
        return;
    }
    // Explicit stack instead of recursion: the tree can be large.
    let mut stack = vec![(0usize, done.len())];
    while let Some((lo, hi)) = stack.pop() {
        let mid = lo + (hi - lo) / 2;
        let yn = |b: bool| if b { 'Y' } else { 'N' };
        let _ = writeln!(s, "{}{} {}", yn(lo < mid), yn(mid + 1 < hi), done[mid]);
        // Pre-order: the left subtree is written before the right one.
        if mid + 1 < hi {
            stack.push((mid + 1, hi));
        }
        if lo < mid {
            stack.push((lo, mid));
        }
    }
}

fn write_recipient(s: &mut String, r: &Recipient) {
    // A plain address that happens to end like the extended form ("#1")
    // is written in the extended form, so that it reads back as it was.
    let ambiguous = r
        .address
        .rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    if r.orcpt.is_none() && r.notify.is_empty() && r.errors_to.is_none() && !ambiguous {
        s.push_str(&r.address);
        s.push('\n');
        return;
    }
    let orcpt = r.orcpt.as_deref().unwrap_or("");
    let errors_to = r.errors_to.as_deref().unwrap_or("");
    let _ = writeln!(
        s,
        "{} {} {},{} {} {},-1#3",
        r.address,
        orcpt,
        orcpt.len(),
        r.notify.0,
        errors_to,
        errors_to.len()
    );
}

/// Escapes `\` and control characters so that `v` stays on one line.
pub(crate) fn escape_into(s: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.push(c),
        }
    }
}

/// Reverses [`escape_into`].
pub(crate) fn unescape(v: &str) -> std::result::Result<String, String> {
    if !v.contains('\\') {
        return Ok(v.to_string());
    }
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('x') => {
                let h: String = it.by_ref().take(2).collect();
                if h.len() != 2 {
                    return Err(format!("bad escape \\x{h}"));
                }
                let n = u32::from_str_radix(&h, 16).map_err(|_| format!("bad escape \\x{h}"))?;
                out.push(char::from_u32(n).ok_or_else(|| format!("bad escape \\x{h}"))?);
            }
            Some('u') => {
                if it.next() != Some('{') {
                    return Err("bad escape \\u".into());
                }
                let h: String = it.by_ref().take_while(|&c| c != '}').collect();
                let n =
                    u32::from_str_radix(&h, 16).map_err(|_| format!("bad escape \\u{{{h}}}"))?;
                out.push(char::from_u32(n).ok_or_else(|| format!("bad escape \\u{{{h}}}"))?);
            }
            other => return Err(format!("bad escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

/// A cursor over the bytes of a `-H` file, counting lines for errors.
struct Parser<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    /// Number of the line last returned (1-based).
    line: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, why: impl Into<String>) -> Error {
        Error::format(self.path, self.line, why)
    }

    fn torn(&self, why: impl Into<String>) -> Error {
        Error::Torn {
            path: self.path.to_path_buf(),
            why: why.into(),
        }
    }

    /// The next line without its newline; a file that ends without one is
    /// torn (every line we write ends with a newline).
    fn line(&mut self) -> Result<&'a str> {
        if self.pos >= self.data.len() {
            self.line += 1;
            return Err(self.torn(format!("ends before line {}", self.line)));
        }
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            self.line += 1;
            return Err(self.torn(format!("line {} has no newline", self.line)));
        };
        self.pos += n + 1;
        self.line += 1;
        std::str::from_utf8(&rest[..n]).map_err(|e| {
            self.err(format!(
                "not UTF-8 at byte {} of the line",
                e.valid_up_to() + 1
            ))
        })
    }

    fn number<T: std::str::FromStr>(&self, what: &str, s: &str) -> Result<T> {
        s.parse()
            .map_err(|_| self.err(format!("{what}: {s:?} is not a number")))
    }

    fn header_file(mut self, with_headers: bool) -> Result<HeaderFile> {
        // Line 1: our own name.
        let first = self.line()?;
        let id = first
            .strip_suffix("-H")
            .ok_or_else(|| self.err(format!("first line {first:?} is not \"<ID>-H\"")))?;
        let id = MessageId::parse(id).map_err(|e| self.err(e.to_string()))?;
        if let Some(name) = self.path.file_name().and_then(|n| n.to_str())
            && crate::layout::classify(name) != crate::layout::SpoolFile::Other
            && name != first
            && !name.starts_with(&format!("{first}."))
        {
            return Err(self.err(format!("first line names {first}, the file is {name}")));
        }

        // Line 2: caller.
        let l = self.line()?;
        let parts: Vec<&str> = l.split(' ').collect();
        let [login, uid, gid] = parts[..] else {
            return Err(self.err(format!("expected \"login uid gid\", found {l:?}")));
        };
        let caller = Caller {
            login: login.to_string(),
            uid: self.number("uid", uid)?,
            gid: self.number("gid", gid)?,
        };

        // Line 3: sender.
        let l = self.line()?;
        let sender = l
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .ok_or_else(|| self.err(format!("expected \"<sender>\", found {l:?}")))?
            .to_string();

        // Line 4: arrival and warning count.
        let l = self.line()?;
        let (t, w) = l
            .split_once(' ')
            .ok_or_else(|| self.err(format!("expected \"time warnings\", found {l:?}")))?;
        let arrival = Timestamp {
            secs: self.number("arrival time", t)?,
            micros: 0,
        };
        let mut env = Envelope::blank(caller, sender, arrival);
        // Set by a `-body_size` line, which Exim does not write.
        env.body_size = None;
        env.warning_count = self.number("warning count", w)?;

        // Options, until the first line that does not start with '-'.
        let mut header_size: Option<u64> = None;
        let mut states: Vec<(usize, usize, RcptState)> = Vec::new();
        let mut reports: Vec<(usize, usize, Report)> = Vec::new();
        let mut l = self.line()?;
        while let Some(opt) = l.strip_prefix('-') {
            // "--name" marks a tainted value in Exim; same meaning here.
            let opt = opt.strip_prefix('-').unwrap_or(opt);
            let (name, raw) = match opt.split_once(' ') {
                Some((n, v)) => (n, Some(v)),
                None => (opt, None),
            };
            let value = match raw {
                Some(v) => Some(unescape(v).map_err(|e| self.err(format!("-{name}: {e}")))?),
                None => None,
            };
            let need = |v: Option<String>| {
                v.ok_or_else(|| self.err(format!("option -{name} needs a value")))
            };
            match name {
                "received_time_usec" => {
                    let v = need(value)?;
                    let digits = v.strip_prefix('.').unwrap_or(&v);
                    env.arrival.micros = self.number("received_time_usec", digits)?;
                }
                "received_protocol" => env.protocol = Some(need(value)?),
                "ident" => env.ident = Some(need(value)?),
                "host_address" => {
                    let v = need(value)?;
                    env.host_address = Some(HostAddress::from_spool(&v).ok_or_else(|| {
                        self.err(format!("host_address {v:?} is not \"ip.port\""))
                    })?);
                }
                "host_name" => env.host_name = Some(need(value)?),
                "helo_name" => env.helo_name = Some(need(value)?),
                "interface_address" => {
                    let v = need(value)?;
                    env.interface_address = Some(HostAddress::from_spool(&v).ok_or_else(|| {
                        self.err(format!("interface_address {v:?} is not \"ip.port\""))
                    })?);
                }
                "host_auth" => env.auth_mechanism = Some(need(value)?),
                "auth_id" => env.auth_id = Some(need(value)?),
                "auth_sender" => env.auth_sender = Some(need(value)?),
                "dsn_envid" => env.dsn_envid = Some(need(value)?),
                "dsn_ret" => {
                    env.dsn_ret = Some(match need(value)?.as_str() {
                        "hdrs" | "1" => DsnRet::Headers,
                        "full" | "2" => DsnRet::Full,
                        v => return Err(self.err(format!("dsn_ret {v:?}"))),
                    })
                }
                "frozen" => env.frozen = Some(self.number("frozen", &need(value)?)?),
                "manual_thaw" => env.manual_thaw = true,
                "local" => env.local = true,
                "sender_set_untrusted" => env.sender_set_untrusted = true,
                "body_linecount" => {
                    env.body_linecount = self.number("body_linecount", &need(value)?)?
                }
                "body_size" => {
                    env.body_size = Some(self.number("body_size", &need(value)?)?);
                }
                "header_size" => header_size = Some(self.number("header_size", &need(value)?)?),
                "rcpt_state" => {
                    let v = need(value)?;
                    let (i, st) = self.rcpt_state(&v)?;
                    states.push((self.line, i, st));
                }
                "rcpt_report" => {
                    let v = need(value)?;
                    let (i, report) = self.rcpt_report(&v)?;
                    reports.push((self.line, i, report));
                }
                // Complete the `noted` report of the same recipient just
                // before.
                "rcpt_report_to" | "rcpt_relayed" => {
                    let v = need(value)?;
                    let (i, text) = v.split_once(' ').ok_or_else(|| {
                        self.err(format!("{name} {v:?}: expected \"index value\""))
                    })?;
                    let i: usize = self.number(name, i)?;
                    match reports.last_mut() {
                        Some((_, j, Report::Noted { to, relayed })) if *j == i => {
                            let slot = if name == "rcpt_report_to" {
                                to
                            } else {
                                relayed
                            };
                            *slot = Some(text.to_string());
                        }
                        Some((_, j, report @ Report::Making(_)))
                            if *j == i && name == "rcpt_report_to" =>
                        {
                            if let Report::Making(id) = report {
                                *report = Report::MakingFor(std::mem::take(id), text.to_string());
                            }
                        }
                        _ => {
                            return Err(self.err(format!(
                                "{name} for recipient {i} does not follow its noted rcpt_report"
                            )));
                        }
                    }
                }
                // Optional (newer) lines that complete the state just read.
                "rcpt_status" | "rcpt_remote" | "rcpt_first" => {
                    let v = need(value)?;
                    self.rcpt_detail(name, &v, &mut states)?;
                }
                _ => env.extra.push((name.to_string(), value)),
            }
            l = self.line()?;
        }

        // The non-recipients tree.
        let mut done: HashSet<String> = HashSet::new();
        if l != "XX" {
            let mut pending = 1usize;
            loop {
                let b = l.as_bytes();
                if b.len() < 3 || b[2] != b' ' || !b[..2].iter().all(|c| matches!(c, b'Y' | b'N')) {
                    return Err(self.err(format!(
                        "expected a non-recipient (\"YN address\") or \"XX\", found {l:?}"
                    )));
                }
                pending = pending - 1 + (b[0] == b'Y') as usize + (b[1] == b'Y') as usize;
                done.insert(l[3..].to_string());
                if pending == 0 {
                    break;
                }
                l = self.line()?;
            }
        }

        // Recipients.
        let l = self.line()?;
        let count: usize = self.number("recipient count", l)?;
        for _ in 0..count {
            let l = self.line()?;
            let r = self.recipient(l)?;
            env.recipients.push(r);
        }
        if states.is_empty() {
            for r in &mut env.recipients {
                if done.contains(&r.address) {
                    r.state = RcptState::Delivered { at: 0 };
                }
            }
        }
        for (line, i, st) in states {
            let n = env.recipients.len();
            let r = env.recipients.get_mut(i).ok_or_else(|| {
                Error::format(
                    self.path,
                    line,
                    format!("rcpt_state for recipient {i}, but there are {n}"),
                )
            })?;
            r.state = st;
        }
        for (line, i, report) in reports {
            let n = env.recipients.len();
            let r = env.recipients.get_mut(i).ok_or_else(|| {
                Error::format(
                    self.path,
                    line,
                    format!("rcpt_report for recipient {i}, but there are {n}"),
                )
            })?;
            r.report = report;
        }

        // The blank line that ends the envelope.
        let l = self.line()?;
        if !l.is_empty() {
            return Err(self.err(format!(
                "expected a blank line after {count} recipients, found {l:?}"
            )));
        }

        let mut headers = Vec::new();
        if with_headers {
            let mut total = 0u64;
            while self.pos < self.data.len() {
                let h = self.header()?;
                total += h.text.len() as u64;
                headers.push(h);
            }
            if let Some(want) = header_size
                && want != total
            {
                return Err(self.torn(format!(
                    "headers hold {total} bytes, -header_size says {want}"
                )));
            }
            header_size.get_or_insert(total);
        }
        Ok(HeaderFile {
            id,
            envelope: env,
            header_size: header_size.unwrap_or(0),
            headers,
        })
    }

    fn rcpt_state(&self, v: &str) -> Result<(usize, RcptState)> {
        let mut f = v.splitn(3, ' ');
        let (Some(i), Some(kind), rest) = (f.next(), f.next(), f.next()) else {
            return Err(self.err(format!("rcpt_state {v:?}: expected \"index state ...\"")));
        };
        let i: usize = self.number("rcpt_state index", i)?;
        let rest = rest.unwrap_or("");
        let st = match kind {
            "delivered" => RcptState::Delivered {
                at: self.number("delivery time", rest)?,
            },
            "inflight" => RcptState::InFlight {
                since: self.number("delivery start time", rest)?,
            },
            "failed" => {
                let (at, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                RcptState::Failed {
                    at: self.number("failure time", at)?,
                    why: Diagnosis::text(reason),
                }
            }
            "deferred" => {
                let mut g = rest.splitn(4, ' ');
                let (Some(at), Some(until), Some(attempts)) = (g.next(), g.next(), g.next()) else {
                    return Err(self.err(format!(
                        "rcpt_state {v:?}: expected \"deferred time until attempts reason\""
                    )));
                };
                RcptState::Deferred {
                    first: 0,
                    at: self.number("deferral time", at)?,
                    until: self.number("retry time", until)?,
                    attempts: self.number("attempts", attempts)?,
                    why: Diagnosis::text(g.next().unwrap_or("")),
                }
            }
            k => return Err(self.err(format!("rcpt_state: unknown state {k:?}"))),
        };
        Ok((i, st))
    }

    /// `-rcpt_report I making ID`, `made ID` or `waived`.
    fn rcpt_report(&self, v: &str) -> Result<(usize, Report)> {
        let mut f = v.split(' ');
        let (Some(i), Some(kind)) = (f.next(), f.next()) else {
            return Err(self.err(format!("rcpt_report {v:?}: expected \"index state\"")));
        };
        let i: usize = self.number("rcpt_report index", i)?;
        let id = f.next();
        let report = match (kind, id) {
            ("noted", None) => Report::Noted {
                to: None,
                relayed: None,
            },
            ("making", Some(id)) if MessageId::parse(id).is_ok() => Report::Making(id.into()),
            ("made", Some(id)) if MessageId::parse(id).is_ok() => Report::Made(id.into()),
            ("waived", None) => Report::Waived,
            _ => {
                return Err(self.err(format!(
                    "rcpt_report {v:?}: expected \"I making ID\", \"I made ID\" or \"I waived\""
                )));
            }
        };
        if f.next().is_some() {
            return Err(self.err(format!("rcpt_report {v:?}: too many fields")));
        }
        Ok((i, report))
    }

    /// `-rcpt_status I CODE` or `-rcpt_remote I HOST`: completes the
    /// failed or deferred state of recipient `I` read just before;
    /// `-rcpt_first I T` completes a deferred one.
    fn rcpt_detail(
        &self,
        name: &str,
        v: &str,
        states: &mut [(usize, usize, RcptState)],
    ) -> Result<()> {
        let (i, value) = v
            .split_once(' ')
            .ok_or_else(|| self.err(format!("{name} {v:?}: expected \"index value\"")))?;
        let i: usize = self.number(name, i)?;
        if name == "rcpt_first" {
            return match states.last_mut() {
                Some((_, j, RcptState::Deferred { first, .. })) if *j == i => {
                    *first = self.number("first failure time", value)?;
                    Ok(())
                }
                _ => Err(self.err(format!(
                    "{name} for recipient {i} does not follow its deferred rcpt_state"
                ))),
            };
        }
        let why = match states.last_mut() {
            Some((_, j, RcptState::Failed { why, .. } | RcptState::Deferred { why, .. }))
                if *j == i =>
            {
                why
            }
            _ => {
                return Err(self.err(format!(
                    "{name} for recipient {i} does not follow its failed or deferred rcpt_state"
                )));
            }
        };
        if name == "rcpt_status" {
            if !Diagnosis::is_status(value) {
                return Err(self.err(format!(
                    "{name} {value:?} is not a status code such as 5.1.1"
                )));
            }
            why.status = Some(value.to_string());
        } else {
            // (Option values arrive unescaped.)
            why.remote = Some(value.to_string());
        }
        Ok(())
    }

    /// A recipient line: a plain address, or Exim's extended form
    /// `address [orcpt olen,notify] errors_to elen,pno#N`, read from the
    /// end because addresses may contain spaces.
    fn recipient(&self, l: &'a str) -> Result<Recipient> {
        let ext = l.rsplit_once('#').and_then(|(rest, n)| {
            (!n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                .then(|| n.parse::<u32>().ok().map(|n| (rest, n)))
                .flatten()
        });
        let Some((mut rest, flags)) = ext else {
            if l.is_empty() {
                return Err(self.err("empty recipient address"));
            }
            return Ok(Recipient::new(l));
        };
        let bad = |what: &str| self.err(format!("recipient {l:?}: {what}"));
        // Takes "<field> <len>,<n>" off the end of `rest`.
        let take = |rest: &mut &'a str| -> Result<(String, i64)> {
            let (head, nums) = rest.rsplit_once(' ').ok_or_else(|| bad("missing length"))?;
            let (len, n) = nums.split_once(',').ok_or_else(|| bad("missing ','"))?;
            let len: usize = len.parse().map_err(|_| bad("bad length"))?;
            let n: i64 = n.parse().map_err(|_| bad("bad number"))?;
            let cut = head
                .len()
                .checked_sub(len)
                .ok_or_else(|| bad("length too long"))?;
            let field = head
                .get(cut..)
                .ok_or_else(|| bad("length splits a character"))?;
            let before = head[..cut]
                .strip_suffix(' ')
                .ok_or_else(|| bad("no space before a field"))?;
            *rest = before;
            Ok((field.to_string(), n))
        };
        let (errors_to, _pno) = take(&mut rest)?;
        let (orcpt, notify) = if flags & 2 != 0 {
            take(&mut rest)?
        } else {
            (String::new(), 0)
        };
        if rest.is_empty() {
            return Err(bad("empty address"));
        }
        Ok(Recipient {
            address: rest.to_string(),
            orcpt: (!orcpt.is_empty()).then_some(orcpt),
            notify: DsnNotify(u8::try_from(notify).map_err(|_| bad("bad DSN flags"))?),
            errors_to: (!errors_to.is_empty()).then_some(errors_to),
            state: RcptState::Pending,
            report: Report::Due,
        })
    }

    /// A header: "NNNc " then NNN bytes of text ending with a newline.
    fn header(&mut self) -> Result<Header> {
        self.line += 1;
        let start = self.pos;
        let rest = &self.data[start..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits < 3 {
            return Err(self.err("expected a header (\"NNNc text\")"));
        }
        let len: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.err("header length out of range"))?;
        let (Some(&flag), Some(&b' ')) = (rest.get(digits), rest.get(digits + 1)) else {
            return Err(self.torn(format!("header at line {} is cut short", self.line)));
        };
        if flag == b'\n' || flag.is_ascii_digit() {
            return Err(self.err("expected a header flag after the length"));
        }
        let text_start = start + digits + 2;
        let text = self.data.get(text_start..text_start + len).ok_or_else(|| {
            self.torn(format!(
                "header at line {} says {len} bytes, the file has {}",
                self.line,
                self.data.len().saturating_sub(text_start)
            ))
        })?;
        if text.last() != Some(&b'\n') {
            return Err(self.err(format!("header of {len} bytes does not end with a newline")));
        }
        self.line += text.iter().filter(|&&c| c == b'\n').count() - 1;
        self.pos = text_start + len;
        Ok(Header {
            flag,
            text: text.to_vec(),
        })
    }
}

/// Reads the first line of a `-D` file and returns the offset of the body.
pub fn data_body_offset(path: &Path, id: &MessageId, head: &[u8]) -> Result<u64> {
    let want = format!("{id}-D\n");
    if head.starts_with(want.as_bytes()) {
        Ok(want.len() as u64)
    } else {
        let got = head.split(|&c| c == b'\n').next().unwrap_or(b"");
        Err(Error::format(
            path,
            1,
            format!(
                "first line {:?} is not \"{id}-D\"",
                String::from_utf8_lossy(got)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> MessageId {
        MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap()
    }

    fn sample() -> HeaderFile {
        let mut env = Envelope::new(
            "alice@example.org",
            &["carol@example.com", "bob@example.net"],
        );
        env.caller = Caller {
            login: "alice".into(),
            uid: 1000,
            gid: 100,
        };
        env.arrival = Timestamp {
            secs: 1_739_545_953,
            micros: 470_123,
        };
        env.protocol = Some("esmtpa".into());
        env.host_address = Some(HostAddress {
            ip: "::1".into(),
            port: 57259,
        });
        env.helo_name = Some("client.example".into());
        env.auth_mechanism = Some("plain".into());
        env.auth_id = Some("alice".into());
        env.body_linecount = 2;
        env.body_size = Some(12);
        env.recipients[1].state = RcptState::Delivered { at: 1_739_545_960 };
        env.recipients[0].notify = DsnNotify(DsnNotify::FAILURE | DsnNotify::DELAY);
        env.recipients[0].orcpt = Some("rfc822;carol@example.com".into());
        let headers = vec![
            Header::new("Received: from client.example\n\tby mx.example; Fri, 14 Feb 2025\n"),
            Header::new("From: alice@example.org\n"),
            Header::new("Subject: hi\n"),
        ];
        let header_size = headers.iter().map(|h| h.text.len() as u64).sum();
        HeaderFile {
            id: id(),
            envelope: env,
            header_size,
            headers,
        }
    }

    #[test]
    fn writes_exim_layout() {
        let bytes = sample().to_bytes().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let want = "\
1tixMn-00000000C5j-1wRa-H
alice 1000 100
<alice@example.org>
1739545953 0
-received_time_usec .470123
-received_protocol esmtpa
-host_address ::1.57259
-helo_name client.example
-host_auth plain
-auth_id alice
-body_linecount 2
-body_size 12
-header_size 99
-rcpt_state 1 delivered 1739545960
NN bob@example.net
2
carol@example.com rfc822;carol@example.com 24,24  0,-1#3
bob@example.net

063P Received: from client.example
\tby mx.example; Fri, 14 Feb 2025
024F From: alice@example.org
012  Subject: hi
";
        assert_eq!(text, want);
        let back = HeaderFile::parse(
            Path::new("/q/1tixMn-00000000C5j-1wRa-H"),
            want.as_bytes(),
            true,
        )
        .unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn header_flags_table() {
        let cases: &[(&str, u8)] = &[
            ("From: a\n", b'F'),
            ("from : a\n", b'F'),
            ("TO: a\n", b'T'),
            ("Cc: a\n", b'C'),
            ("Bcc: a\n", b'B'),
            ("Message-ID: <x@y>\n", b'I'),
            ("Received: x\n", b'P'),
            ("Reply-To: a\n", b'R'),
            ("Sender: a\n", b'S'),
            ("Subject: x\n", b' '),
            ("X-To: a\n", b' '),
            ("no colon here\n", b' '),
        ];
        for &(text, flag) in cases {
            assert_eq!(Header::new(text).flag, flag, "{text}");
        }
    }

    #[test]
    fn split_message_table() {
        // (input, header texts, body)
        let cases: &[(&str, &[&str], &str)] = &[
            ("A: 1\nB: 2\n\nbody\n", &["A: 1\n", "B: 2\n"], "body\n"),
            ("To: a\nBcc: b\n\n", &["To: a\n", "Bcc: b\n"], ""),
            ("A: 1\r\n\r\nbody\r\n", &["A: 1\r\n"], "body\r\n"),
            ("A: 1\n  more\nB: 2\n\n", &["A: 1\n  more\n", "B: 2\n"], ""),
            ("A: 1\nnot a header\nx\n", &["A: 1\n"], "not a header\nx\n"),
            ("just text\n", &[], "just text\n"),
            ("\nbody", &[], "body"),
            ("A: no newline", &["A: no newline\n"], ""),
            ("", &[], ""),
            (" leading space\n", &[], " leading space\n"),
        ];
        for &(input, heads, body) in cases {
            let (h, off) = split_message(input.as_bytes());
            for x in &h {
                assert_eq!(x.flag, Header::new(x.text.clone()).flag, "{input:?}");
            }
            let texts: Vec<String> = h
                .iter()
                .map(|h| String::from_utf8(h.text.clone()).unwrap())
                .collect();
            assert_eq!(texts, heads, "{input:?}");
            assert_eq!(&input[off..], body, "{input:?}");
        }
    }

    #[test]
    fn torn_and_malformed_files_are_reported_with_file_and_line() {
        let good = sample().to_bytes().unwrap();
        let p = Path::new("/q/input/n/1tixMn-00000000C5j-1wRa-H");
        // Every cut of the file is detected: none parses.
        for cut in 0..good.len() {
            let r = HeaderFile::parse(p, &good[..cut], true);
            assert!(r.is_err(), "cut at {cut} parsed");
        }
        let cases: &[(&str, &str, &str)] = &[
            (
                "1tixMn-00000000C5j-1wRa-H\n",
                "1tixMn-00000000C5j-1wRa-D\n",
                "line 1: first line",
            ),
            (
                "alice 1000 100\n",
                "alice 1000\n",
                "line 2: expected \"login uid gid\"",
            ),
            (
                "alice 1000 100\n",
                "alice 1000 100 7\n",
                "line 2: expected \"login uid gid\"",
            ),
            (
                "1739545953 0\n",
                "soon 0\n",
                "line 4: arrival time: \"soon\" is not a number",
            ),
            ("-body_size 12\n", "-body_size x\n", "line 12: body_size"),
            (
                "NN bob@example.net\n",
                "QQ bob@example.net\n",
                "line 15: expected a non-recipient",
            ),
            ("\n2\n", "\nmany\n", "line 16: recipient count"),
            (
                "-header_size 99\n",
                "-header_size 98\n",
                "torn file: headers hold 99 bytes",
            ),
            ("024F From", "124F From", "torn file: header at line"),
            (
                "-rcpt_state 1 delivered",
                "-rcpt_state 7 delivered",
                "line 14: rcpt_state for recipient 7",
            ),
            (
                "-received_protocol esmtpa",
                "-received_protocol \\q",
                "line 6: -received_protocol: bad escape",
            ),
        ];
        let text = String::from_utf8(good.clone()).unwrap();
        for &(from, to, want) in cases {
            assert!(text.contains(from), "{from}");
            let bad = text.replacen(from, to, 1);
            let e = HeaderFile::parse(p, bad.as_bytes(), true)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(p.to_str().unwrap()), "{e}");
            assert!(e.contains(want), "{from:?} -> {to:?}: {e}");
        }
        // A file under another message's name.
        let other = Path::new("/q/input/n/1tixMn-00000000C5j-1wRb-H");
        let e = HeaderFile::parse(other, &good, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: first line names"), "{e}");
    }

    #[test]
    fn failure_status_and_remote_are_optional_lines() {
        let mut hf = sample();
        hf.envelope.recipients[0].state = RcptState::Failed {
            at: 7,
            why: Diagnosis {
                text: "550 5.1.1 no such user".into(),
                status: Some("5.1.1".into()),
                remote: Some("mx.example.net [192.0.2.1]".into()),
            },
        };
        let bytes = hf.to_bytes().unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            text.contains(
                "-rcpt_state 0 failed 7 550 5.1.1 no such user\n-rcpt_status 0 5.1.1\n\
                 -rcpt_remote 0 mx.example.net [192.0.2.1]\n"
            ),
            "{text}"
        );
        let p = Path::new("/q/x-H");
        assert_eq!(HeaderFile::parse(p, &bytes, true).unwrap(), hf);
        // Without the optional lines (an earlier release's file): no status.
        let old = text
            .replace("-rcpt_status 0 5.1.1\n", "")
            .replace("-rcpt_remote 0 mx.example.net [192.0.2.1]\n", "");
        let read = HeaderFile::parse(p, old.as_bytes(), true).unwrap();
        assert_eq!(
            read.envelope.recipients[0].state,
            RcptState::Failed {
                at: 7,
                why: Diagnosis::text("550 5.1.1 no such user"),
            }
        );
        // A status that is none, and one for a recipient not just failed.
        for (bad, want) in [
            ("-rcpt_status 0 5.1.1\n", "-rcpt_status 0 x.1.1\n"),
            ("-rcpt_status 0 5.1.1\n", "-rcpt_status 1 5.1.1\n"),
        ] {
            let broken = text.replace(bad, want);
            let e = HeaderFile::parse(p, broken.as_bytes(), true).unwrap_err();
            assert!(e.to_string().contains("rcpt_status"), "{e}");
        }
    }

    #[test]
    fn envelope_only_read_stops_at_the_blank_line() {
        let good = sample().to_bytes().unwrap();
        let p = Path::new("/q/x-H");
        let hf = HeaderFile::parse(p, &good, false).unwrap();
        assert!(hf.headers.is_empty());
        assert_eq!(hf.header_size, 99);
        assert_eq!(hf.size(), 111);
        assert_eq!(hf.envelope, sample().envelope);
    }

    #[test]
    fn exim_written_file_reads() {
        // Shaped like Exim's own output (pastebin.com/xdCZDANb, abridged):
        // no Sluice options, a tree of delivered addresses, a tainted option.
        let exim = "\
1cEEet-0001Cv-Jo-H
mailnull 47 12
<fr@example.com>
1481026543 0
-helo_name server.example
-host_address ::1.57259
-host_auth dovecot_login
-interface_address ::1.25
-received_protocol esmtpa
-body_linecount 10931
-max_received_linelength 76
--auth_id me@example.com
-host_lookup_failed
YN b@example.net
NN a@example.net
3
a@example.net
b@example.net
c@example.net

015F From: fr@x.com
";
        let hf =
            HeaderFile::parse(Path::new("/q/1cEEet-0001Cv-Jo-H"), exim.as_bytes(), true).unwrap();
        let e = &hf.envelope;
        assert_eq!(e.caller.login, "mailnull");
        assert_eq!(e.auth_id.as_deref(), Some("me@example.com"));
        assert_eq!(
            e.interface_address,
            Some(HostAddress {
                ip: "::1".into(),
                port: 25
            })
        );
        let done: Vec<bool> = e.recipients.iter().map(|r| r.state.is_done()).collect();
        assert_eq!(done, [true, true, false]);
        assert_eq!(
            e.extra,
            vec![
                (
                    "max_received_linelength".to_string(),
                    Some("76".to_string())
                ),
                ("host_lookup_failed".to_string(), None)
            ]
        );
        assert_eq!(hf.headers.len(), 1);
    }

    #[test]
    fn bad_envelopes_are_refused_before_writing() {
        let mut hf = sample();
        hf.envelope.recipients[0].address = "a\nb@example.com".into();
        assert!(matches!(hf.to_bytes(), Err(Error::BadEnvelope { .. })));
        let mut hf = sample();
        hf.envelope.caller.login = "two words".into();
        assert!(matches!(hf.to_bytes(), Err(Error::BadEnvelope { .. })));
        let mut hf = sample();
        hf.headers.push(Header {
            flag: b' ',
            text: b"X: no newline".to_vec(),
        });
        assert!(matches!(hf.to_bytes(), Err(Error::BadEnvelope { .. })));
    }

    #[test]
    fn escapes_round_trip() {
        for s in [
            "",
            "plain",
            "a\\b",
            "line\nbreak",
            "tab\there",
            "\x01\x7f",
            "é\u{2028}",
        ] {
            let mut e = String::new();
            escape_into(&mut e, s);
            assert!(!e.contains('\n'));
            assert_eq!(unescape(&e).unwrap(), s, "{e}");
        }
        assert!(unescape("\\z").is_err());
        assert!(unescape("\\x4").is_err());
    }

    // Strings without control characters (addresses) and arbitrary ones.
    fn addr() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 .#@\"+é_-]{1,30}"
    }
    fn text() -> impl Strategy<Value = String> {
        any::<String>()
    }
    fn diagnosis() -> impl Strategy<Value = Diagnosis> {
        (
            text(),
            proptest::option::of("[245]\\.[0-9]{1,3}\\.[0-9]{1,3}"),
            proptest::option::of(text()),
        )
            .prop_map(|(text, status, remote)| Diagnosis {
                text,
                status,
                remote,
            })
    }
    fn state() -> impl Strategy<Value = RcptState> {
        prop_oneof![
            Just(RcptState::Pending),
            any::<u64>().prop_map(|since| RcptState::InFlight { since }),
            any::<u64>().prop_map(|at| RcptState::Delivered { at }),
            (any::<u64>(), diagnosis()).prop_map(|(at, why)| RcptState::Failed { at, why }),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                diagnosis()
            )
                .prop_map(|(first, at, until, attempts, why)| RcptState::Deferred {
                    first,
                    at,
                    until,
                    attempts,
                    why
                }),
        ]
    }
    fn recipient() -> impl Strategy<Value = Recipient> {
        (
            addr(),
            proptest::option::of(addr()),
            0u8..32,
            proptest::option::of(addr()),
            state(),
            prop_oneof![
                Just(Report::Due),
                Just(Report::Making("1xZGKj-00028r-0y".into())),
                Just(Report::MakingFor(
                    "1xZGKj-00028r-0y".into(),
                    "owner@example.org".into()
                )),
                Just(Report::Made("1xZGKj-00028r-0y".into())),
                Just(Report::Waived),
                Just(Report::Noted {
                    to: Some("owner@example.org".into()),
                    relayed: Some("mx.remote.test [192.0.2.1]".into())
                }),
                Just(Report::Noted {
                    to: None,
                    relayed: None
                }),
            ],
        )
            .prop_map(|(address, orcpt, n, errors_to, state, report)| Recipient {
                address,
                orcpt,
                notify: DsnNotify(n),
                errors_to,
                state,
                report,
            })
    }
    fn host() -> impl Strategy<Value = Option<HostAddress>> {
        proptest::option::of(
            ("[0-9a-f:.]{1,39}", any::<u16>()).prop_map(|(ip, port)| HostAddress { ip, port }),
        )
    }
    fn header() -> impl Strategy<Value = Header> {
        (
            prop_oneof![Just(b' '), Just(b'F'), Just(b'*'), Just(b'T')],
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(flag, mut text)| {
                text.push(b'\n');
                Header { flag, text }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn header_file_round_trips(
            secs in 0u64..62u64.pow(6),
            pid in 1u64..4_194_304,
            micros in 0u32..1_000_000,
            sender in proptest::option::of(addr()),
            login in "[a-z_][a-z0-9_-]{0,15}",
            uid in any::<u32>(),
            warning_count in any::<u32>(),
            protocol in proptest::option::of(text()),
            local in any::<bool>(),
            ident in proptest::option::of(text()),
            host_address in host(),
            interface_address in host(),
            host_name in proptest::option::of(text()),
            helo_name in proptest::option::of(text()),
            auth in proptest::option::of((text(), text(), text())),
            frozen in proptest::option::of(any::<u64>()),
            manual_thaw in any::<bool>(),
            dsn_envid in proptest::option::of(text()),
            dsn_ret in proptest::option::of(prop_oneof![Just(DsnRet::Headers), Just(DsnRet::Full)]),
            body in (any::<u64>(), any::<u64>()),
            recipients in proptest::collection::vec(recipient(), 1..20),
            extra in proptest::collection::vec(("[a-z_]{1,12}x", proptest::option::of(text())), 0..3),
            headers in proptest::collection::vec(header(), 0..8),
        ) {
            let id = MessageId::from_parts(crate::id::IdFormat::Long, secs, pid, micros as u64);
            let header_size = headers.iter().map(|h| h.text.len() as u64).sum();
            let (auth_mechanism, auth_id, auth_sender) = match auth {
                Some((a, b, c)) => (Some(a), Some(b), Some(c)),
                None => (None, None, None),
            };
            let hf = HeaderFile {
                id,
                envelope: Envelope {
                    caller: Caller { login, uid, gid: uid / 2 },
                    sender: sender.unwrap_or_default(),
                    arrival: Timestamp { secs, micros },
                    warning_count,
                    protocol,
                    local,
                    sender_set_untrusted: false,
                    ident,
                    host_address,
                    host_name,
                    helo_name,
                    interface_address,
                    auth_mechanism,
                    auth_id,
                    auth_sender,
                    frozen,
                    manual_thaw,
                    dsn_envid,
                    dsn_ret,
                    body_linecount: body.0,
                    body_size: Some(body.1),
                    recipients,
                    extra,
                },
                header_size,
                headers,
            };
            let bytes = hf.to_bytes().unwrap();
            let name = format!("{id}-H");
            let back = HeaderFile::parse(Path::new(&name), &bytes, true).unwrap();
            prop_assert_eq!(&back, &hf);
            // Envelope-only reads agree too.
            let env_only = HeaderFile::parse(Path::new(&name), &bytes, false).unwrap();
            prop_assert_eq!(&env_only.envelope, &hf.envelope);
            prop_assert_eq!(env_only.header_size, hf.header_size);
        }
    }
}
