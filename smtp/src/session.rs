//! The session state machine: bytes in, reply bytes and events out.
//!
//! The session never blocks and never does I/O. The driver feeds it what the
//! client sent ([`Session::receive`]), asks it what to do next
//! ([`Session::poll`]), writes what it produced ([`Session::take_output`]),
//! and answers the events that need a policy decision
//! ([`Session::verdict`]). Commands are processed strictly in order: a
//! pipelined batch runs until a command needs a verdict, waits for it, and
//! resumes with the next buffered command, so replies always come out in
//! command order (RFC 2920 §3.1).
//!
//! Which state the connection is in, and what the driver must do there:
//!
//! | phase        | waiting for                 | `poll()` returns                     |
//! |--------------|-----------------------------|--------------------------------------|
//! | Verdict      | the driver's verdict        | `Decide(event)` once, then `Waiting` |
//! | Command      | a complete command line     | `Read` when none is buffered         |
//! | Data / Chunk | message bytes               | `Read` until the message ends        |
//! | StartTls     | the TLS handshake           | `StartTls` once, then `Waiting`      |
//! | closed       | nothing                     | `Close(reason)`                      |

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::address::Address;
use super::body::Body;
use super::command::{self, Verb};
use super::data::DotDecoder;
use super::params::{MailParams, RcptParams};
use super::received::protocol_name;
use super::reply::{self, Reply};

/// RFC 5321 §4.5.3.1.4: a command line has at most 512 octets with CRLF.
/// That covers every parameter Sluice advertises with a 256-octet path.
pub const COMMAND_LINE_MAX: usize = 512;
/// RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6: 998 octets per text line + CRLF.
pub const TEXT_LINE_MAX: usize = 998;
/// Exim's default `message_size_limit`, 50M.
pub const MESSAGE_SIZE_LIMIT: u64 = 50 * 1024 * 1024;
/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
pub const MAX_RECIPIENTS: usize = 100;
/// Errors before the session gives up with 421 (Postfix's soft default is
/// 10 before it starts to delay; Sluice disconnects there).
pub const MAX_ERRORS: usize = 10;
/// RFC 5321 §4.5.3.2.7: the server's timeout for the next command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.5: the client's timeout per data block.
pub const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// RFC 5321 §4.5.3.2.6: the client waits 10 minutes for the reply to the
/// final dot, so the verdict on a message must come sooner.
pub const FINAL_DOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// SMTP (RFC 5321) or LMTP (RFC 2033).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Smtp,
    Lmtp,
}

/// What one listener's sessions are allowed to do. Built once from the
/// configuration and shared by every session of the listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name the server gives itself in replies (Exim's primary_hostname).
    pub hostname: String,
    pub mode: Mode,
    /// Whether STARTTLS may be offered (a certificate is loaded). It is
    /// offered only while the connection is not yet under TLS.
    pub tls_available: bool,
    /// Octets; 0: no limit (then SIZE is advertised without a number).
    pub message_size_limit: u64,
    /// Accepted recipients per message; further RCPTs get 452 4.5.3.
    /// 0: no limit.
    pub max_recipients: usize,
    /// Refused commands before 421 4.7.0 and disconnection. 0: no limit.
    pub max_errors: usize,
    /// Longest command line, CRLF included.
    pub max_command_line: usize,
    /// Longest line of message data, CRLF excluded; 0: no limit.
    pub max_data_line: usize,
    /// Whether VRFY asks the driver (an [`Event::Vrfy`]) or answers 252.
    pub vrfy: bool,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub final_dot_timeout: Duration,
}

impl SessionConfig {
    /// The defaults: RFC limits, Exim's 50M size limit, 100 recipients.
    pub fn new(hostname: impl Into<String>, mode: Mode) -> SessionConfig {
        SessionConfig {
            hostname: hostname.into(),
            mode,
            tls_available: false,
            message_size_limit: MESSAGE_SIZE_LIMIT,
            max_recipients: MAX_RECIPIENTS,
            max_errors: MAX_ERRORS,
            max_command_line: COMMAND_LINE_MAX,
            max_data_line: TEXT_LINE_MAX,
            vrfy: false,
            command_timeout: COMMAND_TIMEOUT,
            data_timeout: DATA_BLOCK_TIMEOUT,
            final_dot_timeout: FINAL_DOT_TIMEOUT,
        }
    }
}

/// The greeting command the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloVerb {
    Helo,
    Ehlo,
    Lhlo,
}

impl HelloVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            HelloVerb::Helo => "HELO",
            HelloVerb::Ehlo => "EHLO",
            HelloVerb::Lhlo => "LHLO",
        }
    }
}

/// The TLS session, as the driver describes it after the handshake: for the
/// Received: line and Exim's `X=` log field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLS1.3`.
    pub version: String,
    /// Cipher suite, standard name, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: Address,
    pub params: RcptParams,
}

/// The envelope of the transaction in progress or of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEnvelope {
    /// The HELO/EHLO/LHLO argument.
    pub helo: String,
    pub hello_verb: HelloVerb,
    /// Exim's protocol name for the Received: line and `P=`: `smtp`,
    /// `esmtp`, `esmtps`, `lmtp`, `local-esmtp`, `utf8esmtps`...
    pub protocol: String,
    /// The client's address; `None` for a local session (`sluice -bs`).
    pub peer: Option<IpAddr>,
    pub tls: Option<TlsInfo>,
    /// `None` for the null reverse-path `<>` (bounces).
    pub from: Option<Address>,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// The client pipelined commands of this transaction (Exim's `L`).
    pub pipelined: bool,
    /// The message came in BDAT chunks (Exim's `K`).
    pub chunked: bool,
}

/// A complete message, ready for the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub envelope: SmtpEnvelope,
    /// The message as received: dot-unstuffed, CRLF line ends as sent.
    pub data: Vec<u8>,
    /// The data has octets above 127.
    pub eight_bit: bool,
}

/// Something the driver must decide; answer with [`Session::verdict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client connected. Accept to greet it (connection limits, DNS
    /// blocklists decide otherwise). A 421 closes the connection; a 554
    /// leaves it open, refusing every command but QUIT (RFC 5321 §3.1).
    Connect,
    /// HELO, EHLO or LHLO with a syntactically valid name.
    Helo { verb: HelloVerb, name: String },
    /// MAIL FROM with a valid path and only advertised parameters.
    /// `from` is `None` for `<>`.
    Mail {
        from: Option<Address>,
        params: MailParams,
    },
    /// RCPT TO with a valid address (source routes are already refused;
    /// use [`super::relay_form`] for the other relay forms).
    Rcpt { to: Address, params: RcptParams },
    /// VRFY, only when [`SessionConfig::vrfy`] is set.
    Vrfy { query: String },
    /// A complete message. SMTP expects one verdict (the reply after the
    /// final dot, `250 2.0.0 OK id=...` once the spool has it durably);
    /// LMTP one per accepted recipient, in order ([`Session::verdicts`]).
    Message(Box<Message>),
}

/// The driver's answer to an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept with the session's standard reply.
    Accept,
    /// Answer with this reply: 2xx accepts, 4xx/5xx refuses, 421 also
    /// closes the connection. Other codes count as `451 4.3.0`.
    Reply(Reply),
}

impl From<Reply> for Verdict {
    fn from(reply: Reply) -> Verdict {
        Verdict::Reply(reply)
    }
}

/// Something worth logging that needs no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The session refused a command by itself (syntax, sequence, limits).
    /// `command` is the line made printable.
    CommandRefused { command: String, reply: Reply },
    /// A message was received to its end but refused by the session (size,
    /// bare CR or LF, line length); no [`Event::Message`] follows.
    MessageRefused {
        envelope: Box<SmtpEnvelope>,
        size: u64,
        reply: Reply,
    },
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection; `in_message` if during DATA/BDAT.
    PeerClosed { in_message: bool },
    /// Too many refused commands (421 4.7.0 sent).
    TooManyErrors,
    /// A verdict said 421, or refused the connection with a 4xx.
    Refused,
    /// [`Session::timed_out`] (421 4.4.2 sent).
    Timeout,
    /// [`Session::shutdown`] (421 4.3.2 sent).
    Shutdown,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Write the pending output, then read from the client (with
    /// [`Session::timeout`]) and call [`Session::receive`] or
    /// [`Session::receive_eof`].
    Read,
    /// Decide, then call [`Session::verdict`] (or [`Session::verdicts`]).
    Decide(Event),
    /// Log it (or not) and poll again.
    Notice(Notice),
    /// Write the pending output (the 220), run the TLS handshake on the
    /// connection, then call [`Session::tls_established`]. `discarded`
    /// octets the client had pipelined after STARTTLS were thrown away
    /// (CVE-2011-0411); more than 0 is worth a log line.
    StartTls { discarded: usize },
    /// Write the pending output and close the connection.
    Close(CloseReason),
    /// A verdict or the TLS handshake is still outstanding.
    Waiting,
}

/// The transaction in progress: from an accepted MAIL to the end of the
/// message, RSET, or a new greeting.
#[derive(Debug)]
pub(super) struct Transaction {
    pub envelope: SmtpEnvelope,
    pub body: Body,
}

/// What a pending verdict will be applied to.
#[derive(Debug)]
pub(super) enum Pending {
    Connect,
    Helo {
        verb: HelloVerb,
        name: String,
    },
    Mail {
        from: Option<Address>,
        params: MailParams,
        pipelined: bool,
    },
    Rcpt {
        recipient: Recipient,
    },
    Vrfy,
    Message {
        recipients: Vec<Address>,
    },
}

/// A BDAT chunk being read: its octets are consumed even when the command
/// is refused, or the client's next chunk would be read as commands.
#[derive(Debug)]
pub(super) struct Chunk {
    pub remaining: u64,
    pub size: u64,
    pub last: bool,
    pub refusal: Option<ChunkRefusal>,
    /// The BDAT line, for the notice.
    pub line: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct ChunkRefusal {
    pub reply: Reply,
    /// A protocol error, counted toward `max_errors`.
    pub counts: bool,
    /// The transaction ends (the message grew too large).
    pub reset: bool,
}

#[derive(Debug)]
pub(super) enum Phase {
    Command,
    Verdict(Pending),
    Data(DotDecoder),
    Chunk(Chunk),
    StartTls { discarded: usize },
    TlsHandshake,
}

/// One SMTP or LMTP connection. See the module documentation.
#[derive(Debug)]
pub struct Session {
    pub(super) config: Arc<SessionConfig>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) tls: Option<TlsInfo>,
    pub(super) helo: Option<(HelloVerb, String)>,
    pub(super) tx: Option<Transaction>,
    /// Transactions opened so far (see [`Session::transaction_serial`]).
    pub(super) transactions: u64,
    pub(super) phase: Phase,
    pub(super) closed: Option<CloseReason>,
    /// After a 554 greeting: every command but QUIT gets 503.
    pub(super) no_service: bool,
    pub(super) input: Vec<u8>,
    /// Start of the unprocessed input.
    pub(super) pos: usize,
    eof: bool,
    /// Discarding the rest of an overlong command line.
    skip_line: bool,
    /// The next command was already buffered when the current one was
    /// taken, i.e. the client sent it before seeing the reply (pipelining).
    pub(super) early_next: bool,
    output: Vec<u8>,
    event: Option<Event>,
    notices: VecDeque<Notice>,
    errors: usize,
    /// DSN (RFC 3461) is offered to this client: advertised, and its
    /// parameters accepted ([`Session::offer_dsn`]).
    pub(super) dsn: bool,
}

impl Session {
    /// Offers DSN to this client, or not (the default): whom it is offered
    /// to is policy (`dsn_advertise_hosts`), since a report to a forged
    /// sender is mail to a third party.
    pub fn offer_dsn(&mut self, on: bool) {
        self.dsn = on;
    }

    /// A new session for a client at `peer` (`None` for a local session on
    /// stdin). The first poll asks for a verdict on [`Event::Connect`]. For
    /// implicit TLS (port 465), call [`Session::tls_established`] first.
    pub fn new(config: Arc<SessionConfig>, peer: Option<SocketAddr>) -> Session {
        Session {
            config,
            peer,
            tls: None,
            helo: None,
            tx: None,
            transactions: 0,
            phase: Phase::Verdict(Pending::Connect),
            closed: None,
            no_service: false,
            input: Vec::new(),
            pos: 0,
            eof: false,
            skip_line: false,
            early_next: false,
            output: Vec::new(),
            event: Some(Event::Connect),
            notices: VecDeque::new(),
            errors: 0,
            dsn: false,
        }
    }

    /// Bytes from the client. Buffered until the session gets to them;
    /// ignored after the session closed or while TLS is being set up.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.closed.is_some()
            || matches!(self.phase, Phase::StartTls { .. } | Phase::TlsHandshake)
        {
            return;
        }
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.input.len() / 2 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The client closed its side. Commands already buffered still run.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Runs the session as far as it can go and says what the driver must
    /// do next.
    pub fn poll(&mut self) -> Poll {
        loop {
            if let Some(notice) = self.notices.pop_front() {
                return Poll::Notice(notice);
            }
            if let Some(reason) = self.closed {
                return Poll::Close(reason);
            }
            if let Some(event) = self.event.take() {
                return Poll::Decide(event);
            }
            let progressed = match &self.phase {
                Phase::Command => self.step_command(),
                Phase::Data(_) => self.step_data(),
                Phase::Chunk(_) => self.step_chunk(),
                Phase::Verdict(_) | Phase::TlsHandshake => return Poll::Waiting,
                Phase::StartTls { discarded } => {
                    let discarded = *discarded;
                    self.phase = Phase::TlsHandshake;
                    return Poll::StartTls { discarded };
                }
            };
            if !progressed {
                if self.eof {
                    let in_message = matches!(self.phase, Phase::Data(_) | Phase::Chunk(_));
                    self.close(CloseReason::PeerClosed { in_message });
                    continue;
                }
                return Poll::Read;
            }
        }
    }

    /// The reply bytes produced so far; write them all to the client.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Answers the event [`Session::poll`] returned. Ignored when no event
    /// is outstanding. For an LMTP message the verdict applies to every
    /// recipient.
    pub fn verdict(&mut self, verdict: Verdict) {
        let Some(pending) = self.take_pending() else {
            return;
        };
        match pending {
            Pending::Connect => self.connect_verdict(verdict),
            Pending::Helo { verb, name } => self.hello_verdict(verb, name, verdict),
            Pending::Mail {
                from,
                params,
                pipelined,
            } => self.mail_verdict(from, params, pipelined, verdict),
            Pending::Rcpt { recipient } => self.rcpt_verdict(recipient, verdict),
            Pending::Vrfy => self.vrfy_verdict(verdict),
            Pending::Message { recipients } => {
                let each = vec![verdict; recipients.len().max(1)];
                self.message_verdicts(&recipients, each)
            }
        }
    }

    /// Answers an LMTP message with one verdict per accepted recipient, in
    /// the order of [`SmtpEnvelope::recipients`]. A missing verdict counts as
    /// `451 4.3.0`; extra ones are ignored. For an SMTP message, or any
    /// other event, the first verdict is the answer.
    pub fn verdicts(&mut self, verdicts: Vec<Verdict>) {
        if let Phase::Verdict(Pending::Message { .. }) = self.phase {
            if let Some(Pending::Message { recipients }) = self.take_pending() {
                self.message_verdicts(&recipients, verdicts);
            }
            return;
        }
        let first = verdicts.into_iter().next();
        self.verdict(first.unwrap_or_else(|| Verdict::Reply(reply::local_error())));
    }

    /// The TLS handshake after STARTTLS succeeded (or, for implicit TLS,
    /// the connection is under TLS from the start). RFC 3207 §4.2: the
    /// server forgets what the client said before, so it must greet again.
    pub fn tls_established(&mut self, info: TlsInfo) {
        self.tls = Some(info);
        self.helo = None;
        self.tx = None;
        self.input.clear();
        self.pos = 0;
        self.skip_line = false;
        self.early_next = false;
        if matches!(self.phase, Phase::StartTls { .. } | Phase::TlsHandshake) {
            self.phase = Phase::Command;
        }
    }

    /// The driver's timer ran out: 421 4.4.2 and close.
    pub fn timed_out(&mut self) {
        if self.closed.is_none() {
            self.reply(&reply::timeout(&self.config.hostname));
            self.close(CloseReason::Timeout);
        }
    }

    /// The server is stopping: 421 4.3.2 and close.
    pub fn shutdown(&mut self) {
        if self.closed.is_none() {
            self.reply(&reply::shutting_down(&self.config.hostname));
            self.close(CloseReason::Shutdown);
        }
    }

    /// A message is on its way in: DATA or a BDAT chunk being read, BDAT
    /// chunks received without the LAST one yet, or the message waiting
    /// for its verdict. A server that is stopping lets it finish (and
    /// answers it) before it sends 421.
    pub fn receiving_message(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data(_) | Phase::Chunk(_) | Phase::Verdict(Pending::Message { .. })
        ) || self.tx.as_ref().is_some_and(|tx| tx.body.size() > 0)
    }

    /// How long the driver should wait in the current state, per RFC 5321
    /// §4.5.3.2: for the next command, `command_timeout` (5 minutes); for
    /// the next block of message data, `data_timeout` (3 minutes); for its
    /// own verdict on a MAIL or RCPT, `command_timeout` (the client waits 5
    /// minutes for that reply); for its verdict on a message,
    /// `final_dot_timeout` (the client waits 10 minutes after the dot). The
    /// client's 2-minute wait for 354 needs nothing: DATA is answered at once.
    pub fn timeout(&self) -> Duration {
        match &self.phase {
            Phase::Data(_) | Phase::Chunk(_) => self.config.data_timeout,
            Phase::Verdict(Pending::Message { .. }) => self.config.final_dot_timeout,
            _ => self.config.command_timeout,
        }
    }

    /// The content of the message on its way in that the session has kept
    /// so far, once it is at least `at_least` octets (dot-unstuffed, line
    /// ends as sent), for a driver that writes a large message out while
    /// the rest arrives. The message's [`Event::Message`] then carries only
    /// the content after the last octet taken; its checks (size, line
    /// ends, line length) still cover all of it. `None` with no message on
    /// its way in, or one already bound to be refused.
    pub fn take_content(&mut self, at_least: usize) -> Option<Vec<u8>> {
        let tx = self.tx.as_mut()?;
        (!tx.body.doomed() && tx.body.kept() >= at_least.max(1)).then(|| tx.body.take_kept())
    }

    /// Octets of the message on its way in kept by the session and not
    /// yet taken (0 with no message on its way in).
    pub fn content_kept(&self) -> usize {
        self.tx.as_ref().map_or(0, |tx| tx.body.kept())
    }

    /// Counts the transactions opened (accepted `MAIL`s): what a driver
    /// holds for one transaction (content it took) belongs to the
    /// transaction it was taken in, never to one opened after it, however
    /// the commands between them were pipelined.
    pub fn transaction_serial(&self) -> u64 {
        self.transactions
    }

    /// The message on its way in is bound to be refused (too big for
    /// `message_size_limit`, a bare CR or LF, a line too long): content
    /// taken from it will not be delivered.
    pub fn content_refused(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.body.doomed())
    }

    /// The transaction in progress, if any: sender, recipients so far.
    pub fn envelope(&self) -> Option<&SmtpEnvelope> {
        self.tx.as_ref().map(|tx| &tx.envelope)
    }

    /// The accepted greeting, if any.
    pub fn helo(&self) -> Option<(HelloVerb, &str)> {
        self.helo
            .as_ref()
            .map(|(verb, name)| (*verb, name.as_str()))
    }

    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    // ---- internals shared by the verb handlers ----

    pub(super) fn lmtp(&self) -> bool {
        self.config.mode == Mode::Lmtp
    }

    pub(super) fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Refuses a command by the session's own rules: reply, notice, and an
    /// error toward `max_errors`.
    pub(super) fn refuse(&mut self, line: &[u8], reply: Reply) {
        self.decline(line, reply);
        self.count_error();
    }

    /// Refuses without counting an error (limits that a well-behaved client
    /// can reach: too many recipients, too large).
    pub(super) fn decline(&mut self, line: &[u8], reply: Reply) {
        self.reply(&reply);
        self.notices.push_back(Notice::CommandRefused {
            command: command::printable(line),
            reply,
        });
    }

    /// A refusal by a verdict: counts as an error, the driver logs it.
    pub(super) fn refused_by_verdict(&mut self, reply: &Reply) {
        self.reply(reply);
        if reply.closes() {
            self.close(CloseReason::Refused);
        } else {
            self.count_error();
        }
    }

    fn count_error(&mut self) {
        self.errors += 1;
        let max = self.config.max_errors;
        if max != 0 && self.errors >= max && self.closed.is_none() {
            self.reply(&reply::too_many_errors(&self.config.hostname));
            self.close(CloseReason::TooManyErrors);
        }
    }

    pub(super) fn notice(&mut self, notice: Notice) {
        self.notices.push_back(notice);
    }

    pub(super) fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.input.clear();
            self.pos = 0;
        }
    }

    /// Stops until the driver decides on `event`.
    pub(super) fn ask(&mut self, pending: Pending, event: Event) {
        self.phase = Phase::Verdict(pending);
        self.event = Some(event);
    }

    fn take_pending(&mut self) -> Option<Pending> {
        if self.closed.is_some() {
            return None;
        }
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Verdict(pending) => {
                self.event = None;
                Some(pending)
            }
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Exim's protocol name for a message starting now.
    pub(super) fn protocol(&self, smtputf8: bool) -> String {
        let verb = self
            .helo
            .as_ref()
            .map_or(HelloVerb::Helo, |(verb, _)| *verb);
        protocol_name(
            self.config.mode,
            verb,
            self.tls.is_some(),
            false,
            self.peer.is_none(),
            smtputf8,
        )
    }

    /// Takes the next command line and runs it. False when no complete line
    /// is buffered.
    fn step_command(&mut self) -> bool {
        let max = self.config.max_command_line;
        let avail = &self.input[self.pos..];
        if avail.is_empty() {
            return false;
        }
        let lf = avail.iter().position(|&b| b == b'\n');
        if self.skip_line {
            match lf {
                Some(i) => {
                    self.pos += i + 1;
                    self.skip_line = false;
                    self.early_next = self.pos < self.input.len();
                    return true;
                }
                None => {
                    self.pos = self.input.len();
                    return false;
                }
            }
        }
        match lf {
            Some(i) => {
                let line = avail[..=i].to_vec();
                self.pos += i + 1;
                let early = self.early_next;
                self.early_next = self.pos < self.input.len();
                if line.len() > max {
                    self.refuse(&line, reply::line_too_long(max));
                } else {
                    self.command(&line, early);
                }
                true
            }
            // No line ending within the limit: this line can only be too
            // long. Say so now and skip to its end, without buffering it.
            None if avail.len() >= max => {
                let line = avail[..max].to_vec();
                self.pos = self.input.len();
                self.skip_line = true;
                self.refuse(&line, reply::line_too_long(max));
                true
            }
            None => false,
        }
    }

    fn command(&mut self, line: &[u8], early: bool) {
        let (verb, args) = command::split(command::strip_eol(line));
        if self.no_service && verb != Verb::Quit {
            self.refuse(line, reply::no_service());
            return;
        }
        match verb {
            Verb::Helo => self.hello(HelloVerb::Helo, line, args),
            Verb::Ehlo => self.hello(HelloVerb::Ehlo, line, args),
            Verb::Lhlo => self.hello(HelloVerb::Lhlo, line, args),
            Verb::Mail => self.mail(line, args, early),
            Verb::Rcpt => self.rcpt(line, args, early),
            Verb::Data => self.data(line, args, early),
            Verb::Bdat => self.bdat(line, early),
            Verb::StartTls => self.starttls(line, args),
            Verb::Vrfy => self.vrfy(line),
            Verb::Rset => {
                if args.is_empty() {
                    self.tx = None;
                    self.reply(&reply::ok());
                } else {
                    self.refuse(line, reply::syntax("RSET"));
                }
            }
            Verb::Noop => self.reply(&reply::ok()),
            Verb::Help => self.reply(&reply::help(self.lmtp())),
            Verb::Quit => {
                self.reply(&reply::closing(&self.config.hostname));
                self.close(CloseReason::Quit);
            }
            Verb::NotImplemented(name) => self.refuse(line, reply::not_implemented(name)),
            Verb::Unknown => self.refuse(line, reply::unrecognised()),
        }
    }

    fn connect_verdict(&mut self, verdict: Verdict) {
        let greeting = reply::greeting(&self.config.hostname, self.lmtp());
        // RFC 2034 §3: no enhanced status code in the greeting.
        let reply = decided(verdict, || greeting).without_status();
        self.reply(&reply);
        if reply.is_temporary() {
            self.close(CloseReason::Refused);
        } else if reply.is_permanent() {
            self.no_service = true;
        }
    }

    /// VRFY: 252 unless the configuration lets the driver answer.
    fn vrfy(&mut self, line: &[u8]) {
        let query = match smtp_proto::Request::parse(&mut line.iter()) {
            Ok(smtp_proto::Request::Vrfy { value }) => value.into_owned(),
            _ => return self.refuse(line, reply::syntax("VRFY address")),
        };
        if self.config.vrfy {
            self.ask(Pending::Vrfy, Event::Vrfy { query });
        } else {
            self.reply(&reply::vrfy_disabled());
        }
    }

    fn vrfy_verdict(&mut self, verdict: Verdict) {
        let reply = decided(verdict, reply::vrfy_disabled);
        self.reply(&reply);
        if reply.closes() {
            self.close(CloseReason::Refused);
        }
    }
}

/// The reply a verdict stands for: `default` for Accept; the driver's
/// reply if it is a 2xx, 4xx or 5xx; 451 4.3.0 otherwise.
pub(super) fn decided(verdict: Verdict, default: impl FnOnce() -> Reply) -> Reply {
    match verdict {
        Verdict::Accept => default(),
        Verdict::Reply(reply) if matches!(reply.code() / 100, 2 | 4 | 5) => reply,
        Verdict::Reply(_) => reply::local_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn greets_after_the_connect_verdict() {
        let cases: Vec<(Verdict, &str, Option<CloseReason>)> = vec![
            (Verdict::Accept, "220 mx.test ESMTP Sluice ready\r\n", None),
            (
                Verdict::Reply(Reply::parse("220 2.0.0 welcome").unwrap()),
                "220 welcome\r\n",
                None,
            ),
            (
                Verdict::Reply(Reply::parse("421 4.7.0 too busy").unwrap()),
                "421 too busy\r\n",
                Some(CloseReason::Refused),
            ),
            (
                Verdict::Reply(Reply::parse("554 go away").unwrap()),
                "554 go away\r\n",
                None,
            ),
        ];
        for (verdict, greeting, closed) in cases {
            let mut s = Session::new(Arc::new(config(Mode::Smtp)), Some(peer()));
            assert_eq!(
                (s.peer(), s.tls(), s.is_closed()),
                (Some(peer()), None, false)
            );
            assert_eq!(s.poll(), Poll::Decide(Event::Connect));
            assert_eq!(s.poll(), Poll::Waiting);
            s.verdict(verdict);
            match closed {
                Some(reason) => assert_eq!(s.poll(), Poll::Close(reason)),
                None => assert_eq!(s.poll(), Poll::Read),
            }
            assert_eq!(s.is_closed(), closed.is_some());
            assert_eq!(String::from_utf8(s.take_output()).unwrap(), greeting);
        }
    }

    #[test]
    fn no_service_after_554_greeting_until_quit() {
        let mut s = Session::new(Arc::new(config(Mode::Smtp)), Some(peer()));
        let _ = s.poll();
        s.verdict(Verdict::Reply(Reply::parse("554 5.7.1 no").unwrap()));
        let out = talk(&mut s, b"EHLO x\r\nMAIL FROM:<>\r\nQUIT\r\n");
        assert_eq!(
            out,
            "554 no\r\n503 5.5.1 No service on this connection: send QUIT\r\n\
             503 5.5.1 No service on this connection: send QUIT\r\n221 2.0.0 mx.test closing connection\r\n"
        );
        assert_eq!(s.poll(), Poll::Close(CloseReason::Quit));
    }

    #[test]
    fn timeouts_follow_the_state() {
        let mut s = ready(Mode::Smtp);
        assert_eq!(s.timeout(), COMMAND_TIMEOUT);
        s.receive(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
        accept_all(&mut s);
        s.receive(b"DATA\r\n");
        accept_all(&mut s);
        assert_eq!(s.timeout(), DATA_BLOCK_TIMEOUT);
        s.receive(b"x\r\n.\r\n");
        assert!(matches!(s.poll(), Poll::Decide(Event::Message(_))));
        assert_eq!(s.timeout(), FINAL_DOT_TIMEOUT);
        s.verdict(Verdict::Accept);
        assert_eq!(s.poll(), Poll::Read);
        assert_eq!(s.timeout(), COMMAND_TIMEOUT);
    }

    #[test]
    fn timer_and_shutdown_close_with_421() {
        let mut s = ready(Mode::Smtp);
        s.timed_out();
        assert_eq!(s.poll(), Poll::Close(CloseReason::Timeout));
        assert_eq!(
            s.take_output(),
            b"421 4.4.2 mx.test Timeout, closing connection\r\n"
        );
        s.shutdown();
        assert!(s.take_output().is_empty(), "only one 421");
        let mut s = ready(Mode::Smtp);
        s.shutdown();
        assert_eq!(s.poll(), Poll::Close(CloseReason::Shutdown));
        assert_eq!(
            s.take_output(),
            b"421 4.3.2 mx.test Service shutting down, closing connection\r\n"
        );
    }

    #[test]
    fn eof_closes_after_buffered_commands() {
        let mut s = ready(Mode::Smtp);
        s.receive(b"NOOP\r\nNOOP");
        s.receive_eof();
        assert_eq!(
            s.poll(),
            Poll::Close(CloseReason::PeerClosed { in_message: false })
        );
        assert_eq!(s.take_output(), b"250 2.0.0 OK\r\n");

        let mut s = ready(Mode::Smtp);
        s.receive(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA\r\nhalf a mess");
        accept_all(&mut s);
        s.receive_eof();
        assert_eq!(
            s.poll(),
            Poll::Close(CloseReason::PeerClosed { in_message: true })
        );
    }

    #[test]
    fn verdicts_without_a_pending_event_are_ignored() {
        let mut s = ready(Mode::Smtp);
        s.verdict(Verdict::Accept);
        s.verdicts(vec![]);
        assert!(!s.has_output());
        assert_eq!(s.poll(), Poll::Read);
    }

    #[test]
    fn invalid_verdict_codes_become_451() {
        let mut s = ready(Mode::Smtp);
        s.receive(b"MAIL FROM:<>\r\n");
        s.receive(b"EHLO c\r\n");
        // MAIL before EHLO is refused; the EHLO then asks.
        let mut out = String::new();
        loop {
            match s.poll() {
                Poll::Decide(_) => s.verdict(Verdict::Reply(Reply::parse("354 go ahead").unwrap())),
                Poll::Notice(_) => {}
                _ => break,
            }
        }
        out.push_str(&String::from_utf8(s.take_output()).unwrap());
        assert_eq!(
            out,
            "503 5.5.1 Bad sequence of commands: send EHLO first\r\n451 Local error in processing\r\n"
        );
    }

    /// Exim's L flag: set when the client sent a command of the transaction
    /// before the reply to the one before it.
    #[test]
    fn records_pipelining() {
        let one_by_one: [&[u8]; 4] = [
            b"EHLO c\r\n",
            b"MAIL FROM:<>\r\n",
            b"RCPT TO:<a@b.example>\r\n",
            b"DATA\r\n",
        ];
        let batched: [&[u8]; 2] = [
            b"EHLO c\r\n",
            b"MAIL FROM:<>\r\nRCPT TO:<a@b.example>\r\nDATA\r\n",
        ];
        for (writes, pipelined) in [(&one_by_one[..], false), (&batched[..], true)] {
            let mut s = ready(Mode::Smtp);
            for write in writes {
                talk(&mut s, write);
            }
            s.receive(b".\r\n");
            let Poll::Decide(Event::Message(m)) = s.poll() else {
                panic!()
            };
            assert_eq!(m.envelope.pipelined, pipelined);
        }
    }

    #[test]
    fn verdicts_convert_from_replies() {
        let reply = Reply::parse("550 5.7.1 no").unwrap();
        assert_eq!(Verdict::from(reply.clone()), Verdict::Reply(reply));
    }

    #[test]
    fn reports_refusals_as_notices() {
        let mut s = ready(Mode::Smtp);
        s.receive(b"XYZZY \x01\r\n");
        assert_eq!(
            s.poll(),
            Poll::Notice(Notice::CommandRefused {
                command: "XYZZY \\x01".into(),
                reply: reply::unrecognised()
            })
        );
        assert_eq!(s.poll(), Poll::Read);
    }
}
