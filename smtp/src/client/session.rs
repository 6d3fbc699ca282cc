//! The client state machine: reply bytes in, command bytes and outcomes
//! out.
//!
//! Every command written is matched by an entry in a queue of expected
//! replies, in order; a reply pops the front. That one queue serves a
//! single command in flight and a pipelined group alike (RFC 2920 §3.1:
//! the replies come in the order of the commands), and it makes a reply
//! that nobody asked for easy to see: it arrives while the queue is empty.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::auth::{self, Mechanism};
use super::capabilities::Capabilities;
use super::encoder::BodyEncoder;
use super::envelope::{self, Envelope};
use super::outcome::{
    Cause, Command, CommandKind, HostError, HostErrorKind, Outcome, RecipientResult, Response,
    TransactionResult,
};
use super::{ClientConfig, TlsPolicy};
use crate::reply::{self, REPLY_LINE_MAX, Reply, ReplyReader};
use crate::session::TlsInfo;

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPoll {
    /// Write the pending output, then read from the peer (with
    /// [`ClientSession::timeout`]) and call [`ClientSession::receive`],
    /// [`ClientSession::receive_eof`] or [`ClientSession::timed_out`].
    Read,
    /// Write the pending output (the STARTTLS command went before; its 220
    /// is in), run the TLS handshake, then call
    /// [`ClientSession::tls_established`]. Returned until then.
    StartTls,
    /// No transaction in progress: call [`ClientSession::send`] with the
    /// next envelope, or [`ClientSession::quit`]. With PIPELINING this
    /// comes right after the end of data, before its reply: the next MAIL,
    /// RCPTs and DATA (or QUIT) then go behind it (RFC 2920 §3.1), and
    /// results still come out in the order of `send`.
    Ready,
    /// The peer waits for message data: call [`ClientSession::write_body`]
    /// with the next piece of the stored message, or
    /// [`ClientSession::end_body`] after the last, then write the output
    /// within [`ClientSession::timeout`].
    Body,
    /// A transaction ended: the outcome of every recipient of its envelope.
    Done(TransactionResult),
    /// Write the pending output (a QUIT, perhaps) and close the connection.
    /// `None` after QUIT was answered; otherwise what failed. Returned from
    /// then on.
    Close(Option<HostError>),
}

/// How many BDAT chunks may await their replies before the session reads
/// them. The replies are a few dozen octets each, so this many never fill
/// a socket buffer, and writes cannot deadlock against unread replies
/// (RFC 2920 §3.5).
const BDAT_IN_FLIGHT_MAX: usize = 16;

/// What an expected reply answers, and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Greeting,
    Hello,
    StartTls,
    /// AUTH: after the command (PLAIN: the last step), after LOGIN's user
    /// name, after its password.
    Auth(AuthStep),
    Mail,
    Rcpt(usize),
    Data,
    Bdat,
    /// The reply to the end of data; in LMTP, the one for this recipient.
    EndOfData(Option<usize>),
    /// The reply to a lone dot sent after a 354 with no recipient accepted.
    LoneDot,
    Rset,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStep {
    Sent(Mechanism),
    LoginUser,
    LoginPassword,
}

#[derive(Debug, Clone)]
struct Expect {
    awaiting: Awaiting,
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeting, EHLO, STARTTLS, AUTH: the replies drive it.
    Setup,
    /// The 220 to STARTTLS is in; the driver runs the handshake.
    TlsHandshake,
    /// Between transactions.
    Ready,
    /// A transaction is in progress.
    Transaction,
    /// QUIT was sent.
    Quitting,
}

/// Where one recipient of the transaction stands.
#[derive(Debug, Clone)]
enum RcptState {
    /// Its RCPT is not answered yet (or not sent yet).
    Waiting,
    /// Its RCPT was accepted; the end of data will decide.
    Accepted,
    Finished(Outcome),
}

#[derive(Debug)]
struct RcptSlot {
    address: String,
    line: String,
    state: RcptState,
}

#[derive(Debug)]
struct Transaction {
    recipients: Vec<RcptSlot>,
    /// MAIL was refused: the rest of a pipelined group's replies only
    /// need reading.
    mail_refused: bool,
    /// Without PIPELINING: the next recipient whose RCPT is to be sent.
    next_rcpt: usize,
    chunking: bool,
    pipelining: bool,
    /// Set while the peer takes message data.
    body: Option<BodyEncoder>,
    /// BDAT chunks written and not yet answered.
    bdat_in_flight: usize,
    /// A BDAT chunk was refused: no more data is sent.
    body_refused: bool,
    /// The end of data (final dot or BDAT LAST) was sent: from here on, a
    /// lost connection leaves the accepted recipients possibly delivered.
    end_sent: bool,
}

impl Transaction {
    fn any_accepted(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| matches!(r.state, RcptState::Accepted))
    }

    /// Every recipient still waiting or accepted gets `outcome`.
    fn finish_open(&mut self, outcome: impl Fn(&RcptState) -> Outcome) {
        for slot in &mut self.recipients {
            if !matches!(slot.state, RcptState::Finished(_)) {
                slot.state = RcptState::Finished(outcome(&slot.state));
            }
        }
    }

    fn finish_accepted(&mut self, outcome: Outcome) {
        for slot in &mut self.recipients {
            if matches!(slot.state, RcptState::Accepted) {
                slot.state = RcptState::Finished(outcome.clone());
            }
        }
    }

    fn all_finished(&self) -> bool {
        self.recipients
            .iter()
            .all(|r| matches!(r.state, RcptState::Finished(_)))
    }

    fn result(self) -> TransactionResult {
        TransactionResult {
            recipients: self
                .recipients
                .into_iter()
                .map(|slot| RecipientResult {
                    address: slot.address,
                    outcome: match slot.state {
                        RcptState::Finished(outcome) => outcome,
                        // Unreachable by construction: every path that ends
                        // a transaction finishes its recipients first.
                        _ => Outcome::Deferred {
                            cause: Cause::Local(reply::no_outcome()),
                            possibly_delivered: false,
                        },
                    },
                })
                .collect(),
        }
    }
}

/// One outgoing SMTP or LMTP connection. See the module documentation.
#[derive(Debug)]
pub struct ClientSession {
    config: Arc<ClientConfig>,
    state: State,
    expected: VecDeque<Expect>,
    input: Vec<u8>,
    reader: ReplyReader,
    output: Vec<u8>,
    eof: bool,
    /// What the latest EHLO/LHLO offered; `None` before it is answered and
    /// after TLS starts.
    caps: Option<Capabilities>,
    /// STARTTLS was refused and TLS is not required: carry on in clear.
    starttls_refused: bool,
    tls: Option<TlsInfo>,
    tls_verified: bool,
    /// The transaction in progress, up to its end of data.
    tx: Option<Transaction>,
    /// Transactions before `tx`, in order, whose end of data is sent and
    /// awaits its reply; and, behind one of those, transactions refused
    /// here in full (nothing sent), held so that results come out in the
    /// order of [`ClientSession::send`].
    closing: VecDeque<Transaction>,
    done: VecDeque<TransactionResult>,
    /// `Some` once closed: with the error, or `None` after QUIT.
    closed: Option<Option<HostError>>,
    /// The command whose reply came last, for errors while none is awaited.
    last_answered: Option<Command>,
}

impl ClientSession {
    /// A session for a connection just opened: it waits for the greeting.
    pub fn new(config: Arc<ClientConfig>) -> ClientSession {
        let mut expected = VecDeque::new();
        expected.push_back(Expect {
            awaiting: Awaiting::Greeting,
            command: Command::new(CommandKind::Connect, "", false),
        });
        ClientSession {
            config,
            state: State::Setup,
            expected,
            input: Vec::new(),
            reader: ReplyReader::new(),
            output: Vec::new(),
            eof: false,
            caps: None,
            starttls_refused: false,
            tls: None,
            tls_verified: false,
            tx: None,
            closing: VecDeque::new(),
            done: VecDeque::new(),
            closed: None,
            last_answered: None,
        }
    }

    /// Bytes from the peer. Buffered until the session gets to them;
    /// ignored once it is closed.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.closed.is_none() {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The peer closed its side. Replies already received still count.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Runs the session as far as it can go and says what the driver must
    /// do next.
    pub fn poll(&mut self) -> ClientPoll {
        loop {
            if let Some(result) = self.done.pop_front() {
                return ClientPoll::Done(result);
            }
            if let Some(closed) = &self.closed {
                return ClientPoll::Close(closed.clone());
            }
            if self.step_input() {
                continue;
            }
            if self.eof {
                self.peer_closed();
                continue;
            }
            if self.wants_body() {
                return ClientPoll::Body;
            }
            if self.can_pipeline_next() {
                return ClientPoll::Ready;
            }
            if !self.expected.is_empty() {
                return ClientPoll::Read;
            }
            match self.state {
                State::TlsHandshake => return ClientPoll::StartTls,
                State::Ready => return ClientPoll::Ready,
                State::Transaction => {
                    // Cannot happen: a transaction without a reply to wait
                    // for is in its body or finished.
                    self.protocol_error("transaction without a reply to wait for".into());
                }
                State::Setup | State::Quitting => {
                    // Nothing expected: the dialog is over.
                    self.closed = Some(None);
                }
            }
        }
    }

    /// The command bytes produced so far; write them all to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// How long the driver should wait for what the session waits for,
    /// per RFC 5321 §4.5.3.2: the greeting 5 minutes, MAIL 5, RCPT 5, DATA
    /// 2, each write of message data (and each BDAT chunk's reply) 3, the
    /// end of data 10; EHLO, STARTTLS, AUTH, RSET and QUIT 5 (the
    /// configured [`super::Timeouts`]).
    pub fn timeout(&self) -> Duration {
        let t = &self.config.timeouts;
        match self.expected.front().map(|e| e.awaiting) {
            Some(Awaiting::Greeting) => t.greeting,
            Some(Awaiting::Mail) => t.mail,
            Some(Awaiting::Rcpt(_)) => t.rcpt,
            Some(Awaiting::Data) => t.data_init,
            Some(Awaiting::Bdat) => t.data_block,
            Some(Awaiting::EndOfData(_) | Awaiting::LoneDot) => t.final_dot,
            Some(
                Awaiting::Hello
                | Awaiting::StartTls
                | Awaiting::Auth(_)
                | Awaiting::Rset
                | Awaiting::Quit,
            ) => t.command,
            None if self.tx.as_ref().is_some_and(|tx| tx.body.is_some()) => t.data_block,
            None => t.command,
        }
    }

    /// The driver's timer ran out. Recipients not finished are deferred;
    /// those whose end of data was sent are flagged possibly delivered.
    /// While quitting this is a normal end.
    pub fn timed_out(&mut self) {
        if self.closed.is_some() {
            return;
        }
        if self.quit_answered() {
            self.closed = Some(None);
            return;
        }
        self.fail(HostErrorKind::Timeout, false);
    }

    /// The TLS handshake succeeded: after STARTTLS, or before the first
    /// poll for implicit TLS. `verified`: the peer's certificate was
    /// verified for the name connected to (AUTH is attempted only then).
    /// After STARTTLS the session forgets the extensions learned in clear
    /// and sends EHLO again (RFC 3207 §4.2).
    pub fn tls_established(&mut self, verified: bool, info: TlsInfo) {
        if self.closed.is_some() {
            return;
        }
        self.tls = Some(info);
        self.tls_verified = verified;
        if self.state == State::TlsHandshake {
            if !self.input.is_empty() {
                // Bytes that came in clear after the 220 and before the
                // handshake: someone in the path, not the peer.
                return self
                    .protocol_error("data received in clear after the 220 to STARTTLS".into());
            }
            self.caps = None;
            self.state = State::Setup;
            self.send_hello(false);
        }
    }

    /// Starts a transaction. Taken when [`ClientSession::poll`] returned
    /// [`ClientPoll::Ready`]; otherwise the envelope comes back.
    ///
    /// Recipients the peer cannot take are refused here without a byte
    /// sent: all of them when the body is over the peer's SIZE (5.3.4) or
    /// needs SMTPUTF8 the peer lacks (5.6.7), or when the sender cannot be
    /// put in a command; one when its address cannot. If none is left, the
    /// [`ClientPoll::Done`] comes at the next poll.
    pub fn send(&mut self, mut envelope: Envelope) -> Result<(), Envelope> {
        let ready =
            self.state == State::Ready && (self.expected.is_empty() || self.can_pipeline_next());
        if self.closed.is_some() || !ready {
            return Err(envelope);
        }
        let caps = self.caps.clone().unwrap_or_default();
        // Non-ASCII in an address needs SMTPUTF8 whatever the caller said.
        envelope.smtputf8 |=
            !envelope.from.is_ascii() || envelope.recipients.iter().any(|r| !r.address.is_ascii());
        let refuse_all = if !envelope::path_is_sendable(&envelope.from, true) {
            Some(reply::unsendable_sender())
        } else if envelope.smtputf8 && !caps.smtputf8 {
            Some(reply::smtputf8_not_offered())
        } else if caps.too_big(envelope.size) {
            Some(reply::over_peer_size(envelope.size, caps.size.unwrap_or(0)))
        } else {
            None
        };
        let recipients = envelope
            .recipients
            .iter()
            .map(|r| {
                let local = match &refuse_all {
                    Some(reply) => Some(reply.clone()),
                    None if !envelope::path_is_sendable(&r.address, false) => {
                        Some(reply::unsendable_recipient())
                    }
                    None => None,
                };
                RcptSlot {
                    address: r.address.clone(),
                    line: envelope::rcpt_line(r, &caps),
                    state: match local {
                        Some(reply) => RcptState::Finished(Outcome::Failed(Cause::Local(reply))),
                        None => RcptState::Waiting,
                    },
                }
            })
            .collect();
        let mut tx = Transaction {
            recipients,
            mail_refused: false,
            next_rcpt: 0,
            chunking: caps.chunking,
            pipelining: caps.pipelining,
            body: None,
            bdat_in_flight: 0,
            body_refused: false,
            end_sent: false,
        };
        if tx.all_finished() {
            if self.closing.is_empty() {
                self.done.push_back(tx.result());
            } else {
                self.closing.push_back(tx);
            }
            return Ok(());
        }
        let mail = envelope::mail_line(&envelope, &caps);
        if tx.pipelining {
            let waiting: Vec<usize> = (0..tx.recipients.len())
                .filter(|&i| matches!(tx.recipients[i].state, RcptState::Waiting))
                .collect();
            self.write(Awaiting::Mail, CommandKind::Mail, &mail, true);
            for &i in &waiting {
                let line = tx.recipients[i].line.clone();
                self.write(Awaiting::Rcpt(i), CommandKind::Rcpt, &line, true);
            }
            if !tx.chunking {
                self.write(Awaiting::Data, CommandKind::Data, "DATA", true);
            }
            tx.next_rcpt = tx.recipients.len();
        } else {
            self.write(Awaiting::Mail, CommandKind::Mail, &mail, false);
        }
        self.tx = Some(tx);
        self.state = State::Transaction;
        Ok(())
    }

    /// The next piece of the stored message, split anywhere. In DATA mode
    /// it is dot-stuffed into the output; in CHUNKING mode it becomes one
    /// `BDAT <n>` chunk (none if it encodes to nothing). Ignored unless
    /// [`ClientSession::poll`] returned [`ClientPoll::Body`].
    pub fn write_body(&mut self, piece: &[u8]) {
        let Some(tx) = self.tx.as_mut() else { return };
        let Some(encoder) = tx.body.as_mut() else {
            return;
        };
        if !tx.chunking {
            encoder.encode(piece, &mut self.output);
            return;
        }
        let mut chunk = Vec::new();
        if encoder.encode(piece, &mut chunk) == 0 {
            return;
        }
        tx.bdat_in_flight += 1;
        let pipelined = tx.pipelining;
        let line = format!("BDAT {}", chunk.len());
        self.write(Awaiting::Bdat, CommandKind::Bdat, &line, pipelined);
        self.output.extend_from_slice(&chunk);
    }

    /// The message is complete: the final `.` (with a CRLF before it if
    /// the message does not end with one), or `BDAT <n> LAST`. Ignored
    /// unless [`ClientSession::poll`] returned [`ClientPoll::Body`].
    pub fn end_body(&mut self) {
        self.end_body_with(&[]);
    }

    /// [`ClientSession::end_body`] with the message's last piece: with
    /// CHUNKING it goes in the `BDAT <n> LAST` chunk itself, rather than a
    /// chunk of its own followed by an empty `BDAT 0 LAST` (one command and
    /// one reply less).
    pub fn end_body_with(&mut self, last: &[u8]) {
        let lmtp = self.config.lmtp;
        let Some(tx) = self.tx.as_mut() else { return };
        let Some(mut encoder) = tx.body.take() else {
            return;
        };
        tx.end_sent = true;
        let accepted: Vec<usize> = (0..tx.recipients.len())
            .filter(|&i| matches!(tx.recipients[i].state, RcptState::Accepted))
            .collect();
        let pipelined = tx.chunking && tx.pipelining && tx.bdat_in_flight > 0;
        let (kind, line) = if tx.chunking {
            let mut chunk = Vec::new();
            encoder.encode(last, &mut chunk);
            encoder.finish(&mut chunk);
            let line = format!("BDAT {} LAST", chunk.len());
            self.output.extend_from_slice(line.as_bytes());
            self.output.extend_from_slice(b"\r\n");
            self.output.extend_from_slice(&chunk);
            (CommandKind::EndOfData, line)
        } else {
            encoder.encode(last, &mut self.output);
            encoder.finish(&mut self.output);
            (CommandKind::EndOfData, ".".to_string())
        };
        let command = Command::new(kind, line, pipelined);
        if lmtp {
            for i in accepted {
                self.expect(Awaiting::EndOfData(Some(i)), command.clone());
            }
        } else {
            self.expect(Awaiting::EndOfData(None), command);
        }
        // The transaction now only waits for its reply; with PIPELINING
        // the next one may start behind it.
        if let Some(tx) = self.tx.take() {
            self.closing.push_back(tx);
        }
        self.state = State::Ready;
    }

    /// Ends the dialog: QUIT, then the 221 or the end of the connection.
    /// Meant for when [`ClientSession::poll`] returned
    /// [`ClientPoll::Ready`]; in the middle of a transaction its unfinished
    /// recipients come back deferred first.
    pub fn quit(&mut self) {
        if self.closed.is_some() || self.state == State::Quitting {
            return;
        }
        if self.tx.is_some() {
            let reply = reply::transaction_abandoned();
            let txs: Vec<Transaction> = self.closing.drain(..).chain(self.tx.take()).collect();
            for mut tx in txs {
                let end_sent = tx.end_sent;
                tx.finish_open(|state| Outcome::Deferred {
                    cause: Cause::Local(reply.clone()),
                    possibly_delivered: end_sent && matches!(state, RcptState::Accepted),
                });
                self.done.push_back(tx.result());
            }
            self.expected.clear();
        }
        // Otherwise QUIT goes behind the replies still awaited, if any
        // (RFC 2920 §3.1: QUIT may end a pipelined group).
        self.state = State::Quitting;
        self.write(Awaiting::Quit, CommandKind::Quit, "QUIT", false);
    }

    /// The extensions of the latest EHLO/LHLO reply; `None` before it and
    /// right after TLS starts.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// The TLS session, once [`ClientSession::tls_established`] was called.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    // ---- input ----

    /// Reads one complete reply from the input and acts on it. False when
    /// no complete reply is buffered.
    fn step_input(&mut self) -> bool {
        if self.input.is_empty() {
            return false;
        }
        if self.expected.is_empty() {
            self.protocol_error(format!(
                "unexpected data from the server: {:?}",
                String::from_utf8_lossy(&self.input[..self.input.len().min(80)])
            ));
            return true;
        }
        let Some(lf) = self.input.iter().position(|&b| b == b'\n') else {
            // CRLF and a character of slack before the line is too long.
            if self.input.len() > REPLY_LINE_MAX + 2 {
                self.protocol_error(crate::reply::ReplyError::LineTooLong.to_string());
                return true;
            }
            return false;
        };
        let line: Vec<u8> = self.input.drain(..=lf).collect();
        match self.reader.push_line(&line) {
            Ok(None) => true,
            Ok(Some(reply)) => {
                let Some(expect) = self.expected.pop_front() else {
                    return true;
                };
                self.last_answered = Some(expect.command.clone());
                // A reply with more bytes behind it and nothing left to
                // answer: those bytes are answers to commands never sent.
                let unasked = self.expected.is_empty() && !self.input.is_empty();
                if unasked && expect.awaiting == Awaiting::StartTls && reply.code() == 220 {
                    self.protocol_error_after(
                        "data received with the 220 to STARTTLS, before the TLS handshake".into(),
                        expect.command,
                    );
                    return true;
                }
                self.on_reply(expect, reply);
                if unasked && self.closed.is_none() {
                    self.protocol_error("a reply when none was expected".into());
                }
                true
            }
            Err(error) => {
                self.protocol_error(error.to_string());
                true
            }
        }
    }

    /// QUIT was sent and nothing but its reply is outstanding: the end of
    /// the connection or of the timer is as good as a 221.
    fn quit_answered(&self) -> bool {
        self.state == State::Quitting && self.closing.is_empty() && self.tx.is_none()
    }

    fn peer_closed(&mut self) {
        if self.quit_answered() {
            self.closed = Some(None);
        } else if self.reader.is_partial() || !self.input.is_empty() {
            self.protocol_error("connection closed in the middle of a reply".into());
        } else {
            self.fail(HostErrorKind::Closed, false);
        }
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply) {
        if reply.closes() && expect.awaiting != Awaiting::Quit {
            // RFC 5321 §3.8: 421 anywhere, and the peer is gone.
            let after = Some(expect.command);
            return self.fail_with(HostErrorKind::Reply(reply), after, false);
        }
        let response = Response {
            reply,
            command: expect.command,
        };
        match expect.awaiting {
            Awaiting::Greeting => self.on_greeting(response),
            Awaiting::Hello => self.on_hello(response),
            Awaiting::StartTls => self.on_starttls(response),
            Awaiting::Auth(step) => self.on_auth(step, response),
            Awaiting::Mail => self.on_mail(response),
            Awaiting::Rcpt(i) => self.on_rcpt(i, response),
            Awaiting::Data => self.on_data(response),
            Awaiting::Bdat => self.on_bdat(response),
            Awaiting::EndOfData(which) => self.on_end_of_data(which, response),
            Awaiting::LoneDot => self.finish_transaction(true),
            Awaiting::Rset => {
                if !response.reply.is_positive() {
                    self.fail_reply(response, true);
                }
            }
            Awaiting::Quit => self.closed = Some(None),
        }
    }

    // ---- setup: greeting, EHLO, STARTTLS, AUTH ----

    fn on_greeting(&mut self, response: Response) {
        if response.reply.code() == 220 {
            self.send_hello(false);
        } else {
            // RFC 5321 §3.1: after a 554 greeting the client sends QUIT.
            self.fail_reply(response, true);
        }
    }

    fn send_hello(&mut self, helo: bool) {
        let verb = if self.config.lmtp {
            CommandKind::Lhlo
        } else if helo {
            CommandKind::Helo
        } else {
            CommandKind::Ehlo
        };
        let word = match verb {
            CommandKind::Lhlo => "LHLO",
            CommandKind::Helo => "HELO",
            _ => "EHLO",
        };
        let line = format!("{word} {}", self.config.helo_name);
        self.write(Awaiting::Hello, verb, &line, false);
    }

    fn on_hello(&mut self, response: Response) {
        let reply = &response.reply;
        if reply.is_positive() {
            self.caps = Some(match response.command.kind {
                CommandKind::Helo => Capabilities::default(),
                _ => Capabilities::from_reply(reply),
            });
            return self.after_hello();
        }
        if reply.is_permanent() && response.command.kind == CommandKind::Ehlo {
            // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
            return self.send_hello(true);
        }
        self.fail_reply(response, true);
    }

    /// Greeted (again): STARTTLS, AUTH, or ready.
    fn after_hello(&mut self) {
        let caps = self.caps.clone().unwrap_or_default();
        // Under implicit TLS there is no STARTTLS, reported or not.
        if self.tls.is_none() && !self.config.implicit_tls {
            let policy = self.config.tls;
            if policy != TlsPolicy::Never && caps.starttls && !self.starttls_refused {
                return self.write(Awaiting::StartTls, CommandKind::StartTls, "STARTTLS", false);
            }
            if policy == TlsPolicy::Required {
                return self.fail(HostErrorKind::TlsRequired(None), true);
            }
        }
        let Some(credentials) = self.config.credentials.clone() else {
            self.state = State::Ready;
            return;
        };
        let problem = if self.tls.is_none() {
            "the connection is not encrypted"
        } else if !self.tls_verified {
            "the server's certificate is not verified"
        } else if caps.auth_plain {
            let line = auth::plain_line(&credentials);
            self.output.extend_from_slice(line.as_bytes());
            self.output.extend_from_slice(b"\r\n");
            let command = Command::new(CommandKind::Auth, "AUTH PLAIN", false);
            return self.expect(Awaiting::Auth(AuthStep::Sent(Mechanism::Plain)), command);
        } else if caps.auth_login {
            let step = Awaiting::Auth(AuthStep::Sent(Mechanism::Login));
            return self.write(step, CommandKind::Auth, "AUTH LOGIN", false);
        } else if caps.auth {
            "the server offers neither PLAIN nor LOGIN"
        } else {
            "the server does not offer AUTH"
        };
        self.fail(HostErrorKind::AuthUnavailable(problem.into()), true);
    }

    fn on_starttls(&mut self, response: Response) {
        if response.reply.code() == 220 {
            self.state = State::TlsHandshake;
            return;
        }
        if self.config.tls == TlsPolicy::Required {
            let after = Some(response.command.clone());
            return self.fail_with(
                HostErrorKind::TlsRequired(Some(response.reply)),
                after,
                true,
            );
        }
        self.starttls_refused = true;
        self.after_hello();
    }

    fn on_auth(&mut self, step: AuthStep, response: Response) {
        let code = response.reply.code();
        let Some(credentials) = self.config.credentials.clone() else {
            return self.fail_reply(response, true);
        };
        let command = response.command.clone();
        match (step, code) {
            (AuthStep::Sent(Mechanism::Login), 334) => {
                let line = auth::base64(credentials.username.as_bytes());
                self.output.extend_from_slice(line.as_bytes());
                self.output.extend_from_slice(b"\r\n");
                self.expect(Awaiting::Auth(AuthStep::LoginUser), command);
            }
            (AuthStep::LoginUser, 334) => {
                let line = auth::base64(credentials.password.as_bytes());
                self.output.extend_from_slice(line.as_bytes());
                self.output.extend_from_slice(b"\r\n");
                self.expect(Awaiting::Auth(AuthStep::LoginPassword), command);
            }
            (AuthStep::Sent(Mechanism::Plain) | AuthStep::LoginPassword, 235) => {
                self.state = State::Ready;
            }
            _ if response.reply.is_positive() || code == 334 => {
                // A challenge where none fits, or 2xx out of turn: cancel
                // (RFC 4954 §4) and give up on this host.
                self.output.extend_from_slice(b"*\r\n");
                self.protocol_error_after(
                    format!("unexpected reply to AUTH: {}", response.log_text()),
                    command,
                );
            }
            _ => self.fail_reply(response, true),
        }
    }

    // ---- transactions ----

    fn on_mail(&mut self, response: Response) {
        let Some(tx) = self.tx.as_mut() else { return };
        if response.reply.is_positive() {
            if !tx.pipelining {
                self.send_next_rcpt();
            }
            return;
        }
        tx.mail_refused = true;
        let outcome = refusal(&response);
        tx.finish_open(|_| outcome.clone());
        if !tx.pipelining {
            self.finish_transaction(true);
        }
    }

    /// Without PIPELINING: the next RCPT, or DATA/BDAT once all are sent.
    fn send_next_rcpt(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        while tx.next_rcpt < tx.recipients.len() {
            let i = tx.next_rcpt;
            tx.next_rcpt += 1;
            if matches!(tx.recipients[i].state, RcptState::Waiting) {
                let line = tx.recipients[i].line.clone();
                return self.write(Awaiting::Rcpt(i), CommandKind::Rcpt, &line, false);
            }
        }
        self.recipients_done();
    }

    /// Every RCPT is answered: the message, or RSET if nobody is left.
    fn recipients_done(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        if !tx.any_accepted() {
            // With PIPELINING and DATA, the DATA reply is still to come.
            if tx.chunking || !tx.pipelining {
                self.finish_transaction(true);
            }
            return;
        }
        if tx.chunking {
            tx.body = Some(BodyEncoder::new(false));
        } else if !tx.pipelining {
            self.write(Awaiting::Data, CommandKind::Data, "DATA", false);
        }
    }

    fn on_rcpt(&mut self, i: usize, response: Response) {
        let Some(tx) = self.tx.as_mut() else { return };
        let last_of_group = !self
            .expected
            .iter()
            .any(|e| matches!(e.awaiting, Awaiting::Rcpt(_)));
        if !tx.mail_refused
            && let Some(slot) = tx.recipients.get(i)
            && matches!(slot.state, RcptState::Waiting)
        {
            let reply = &response.reply;
            let state = if reply.is_positive() {
                RcptState::Accepted
            } else if reply.code() == 452 && tx.any_accepted() {
                // RFC 5321 §4.5.3.1.10: too many recipients for this
                // transaction; the rest go in the next one.
                RcptState::Finished(Outcome::NotAttempted(response.clone()))
            } else {
                RcptState::Finished(refusal(&response))
            };
            if let Some(slot) = tx.recipients.get_mut(i) {
                slot.state = state;
            }
        }
        if tx.mail_refused {
            if !tx.pipelining || (last_of_group && tx.chunking) {
                self.finish_transaction(true);
            }
            return;
        }
        if !tx.pipelining {
            self.send_next_rcpt();
        } else if last_of_group {
            self.recipients_done();
        }
    }

    fn on_data(&mut self, response: Response) {
        let Some(tx) = self.tx.as_mut() else { return };
        if response.reply.code() == 354 {
            if tx.any_accepted() && !tx.mail_refused {
                tx.body = Some(BodyEncoder::new(true));
            } else {
                // RFC 2920 §3.1: DATA was pipelined but no recipient was
                // taken; an empty message ends it without content.
                self.output.extend_from_slice(b".\r\n");
                let command = Command::new(CommandKind::EndOfData, ".", false);
                if self.config.lmtp {
                    // LMTP answers once per accepted recipient: none.
                    self.finish_transaction(true);
                } else {
                    self.expect(Awaiting::LoneDot, command);
                }
            }
            return;
        }
        let outcome = refusal(&response);
        tx.finish_accepted(outcome);
        self.finish_transaction(true);
    }

    fn on_bdat(&mut self, response: Response) {
        let Some(tx) = self.closing.front_mut().or(self.tx.as_mut()) else {
            return;
        };
        tx.bdat_in_flight = tx.bdat_in_flight.saturating_sub(1);
        if !response.reply.is_positive() && !tx.body_refused {
            // The first refused chunk decides; no more data is sent.
            tx.body = None;
            tx.body_refused = true;
            let outcome = refusal(&response);
            tx.finish_accepted(outcome);
        }
        // Once refused, the transaction ends with the last outstanding
        // chunk reply, whatever it says.
        if tx.body_refused && !self.more_body_replies() {
            self.finish_body_transaction(true);
        }
    }

    fn on_end_of_data(&mut self, which: Option<usize>, response: Response) {
        let Some(tx) = self.closing.front_mut().or(self.tx.as_mut()) else {
            return;
        };
        if !tx.body_refused {
            let outcome = if response.reply.is_positive() {
                Outcome::Delivered(response)
            } else {
                refusal(&response)
            };
            match which {
                Some(i) => {
                    if let Some(slot) = tx.recipients.get_mut(i)
                        && matches!(slot.state, RcptState::Accepted)
                    {
                        slot.state = RcptState::Finished(outcome);
                    }
                }
                None => tx.finish_accepted(outcome),
            }
        }
        // After the end of data the transaction is over whatever the
        // reply: no RSET, the next MAIL follows at once. After a refused
        // chunk the peer may still hold it open.
        let rset = tx.body_refused;
        if !self.more_body_replies() {
            self.finish_body_transaction(rset);
        }
    }

    /// Whether the next reply awaited is still one for the message data of
    /// the same transaction (its chunks and end of data come in a row).
    fn more_body_replies(&self) -> bool {
        self.expected
            .front()
            .is_some_and(|e| matches!(e.awaiting, Awaiting::EndOfData(_) | Awaiting::Bdat))
    }

    /// Ends the transaction whose message data was answered: the oldest
    /// waiting for its end of data, or the one in progress.
    fn finish_body_transaction(&mut self, rset: bool) {
        if let Some(tx) = self.closing.pop_front() {
            self.done.push_back(tx.result());
            // Transactions refused here in full while this one waited.
            while self.closing.front().is_some_and(|next| !next.end_sent) {
                if let Some(tx) = self.closing.pop_front() {
                    self.done.push_back(tx.result());
                }
            }
        } else if let Some(tx) = self.tx.take() {
            self.done.push_back(tx.result());
            self.state = State::Ready;
        }
        if rset {
            self.write(Awaiting::Rset, CommandKind::Rset, "RSET", false);
        }
    }

    /// With PIPELINING, the next transaction may start while the last one
    /// waits for the reply to its end of data (RFC 2920 §3.1), unless a
    /// refused chunk means an RSET must come first.
    /// Whether a driver may send the next message's envelope now, behind
    /// the end of data of the transactions waiting for its reply, without
    /// the earlier message needing this connection again: PIPELINING, every
    /// RCPT answered, and no recipient put off to a next transaction (452).
    pub fn can_send_next_behind(&self) -> bool {
        self.can_pipeline_next()
            && self.closing.iter().all(|tx| {
                tx.recipients.iter().all(|r| {
                    !matches!(
                        r.state,
                        RcptState::Waiting | RcptState::Finished(Outcome::NotAttempted(_))
                    )
                })
            })
    }

    fn can_pipeline_next(&self) -> bool {
        self.state == State::Ready
            && self.tx.is_none()
            && !self.closing.is_empty()
            && self.caps.as_ref().is_some_and(|c| c.pipelining)
            && self.closing.iter().all(|tx| !tx.body_refused)
            && self
                .expected
                .iter()
                .all(|e| matches!(e.awaiting, Awaiting::EndOfData(_)))
    }

    /// Ends the transaction: its result for the driver, RSET if the peer
    /// may still hold it open.
    fn finish_transaction(&mut self, rset: bool) {
        let Some(tx) = self.tx.take() else { return };
        // Recipients still accepted when the transaction ends without a
        // message reply (cannot happen) are deferred by `result`.
        self.done.push_back(tx.result());
        self.state = State::Ready;
        if rset {
            self.write(Awaiting::Rset, CommandKind::Rset, "RSET", false);
        }
    }

    /// Whether the peer waits for message data now: in DATA mode once 354
    /// is in; in CHUNKING mode when no chunk awaits its reply, or with
    /// PIPELINING when fewer than [`BDAT_IN_FLIGHT_MAX`] do.
    fn wants_body(&self) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            return false;
        };
        if tx.body.is_none() {
            return false;
        }
        if self.expected.is_empty() {
            return true;
        }
        tx.chunking
            && tx.pipelining
            && tx.bdat_in_flight < BDAT_IN_FLIGHT_MAX
            && self.expected.iter().all(|e| e.awaiting == Awaiting::Bdat)
    }

    // ---- output and failure ----

    fn write(&mut self, awaiting: Awaiting, kind: CommandKind, line: &str, pipelined: bool) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
        self.expect(awaiting, Command::new(kind, line, pipelined));
    }

    fn expect(&mut self, awaiting: Awaiting, command: Command) {
        self.expected.push_back(Expect { awaiting, command });
    }

    fn protocol_error(&mut self, what: String) {
        let after = self.current_command();
        self.fail_with(HostErrorKind::Protocol(what), after, false);
    }

    /// The command a failure now comes after: the one whose reply is
    /// awaited, or else the last one answered (DATA, while the body is
    /// being written).
    fn current_command(&self) -> Option<Command> {
        self.expected
            .front()
            .map(|e| e.command.clone())
            .or_else(|| self.last_answered.clone())
    }

    fn protocol_error_after(&mut self, what: String, after: Command) {
        self.fail_with(HostErrorKind::Protocol(what), Some(after), false);
    }

    fn fail_reply(&mut self, response: Response, quit: bool) {
        self.fail_with(
            HostErrorKind::Reply(response.reply),
            Some(response.command),
            quit,
        );
    }

    /// Fails the host after the command now waited for.
    fn fail(&mut self, kind: HostErrorKind, quit: bool) {
        let after = self.current_command();
        self.fail_with(kind, after, quit);
    }

    /// The host failed: unfinished recipients are deferred, QUIT is sent if
    /// the peer is still in step (`quit`), and the session closes.
    fn fail_with(&mut self, kind: HostErrorKind, after: Option<Command>, quit: bool) {
        if self.closed.is_some() {
            return;
        }
        let error = HostError::new(kind, after);
        let lost = !matches!(error.kind(), HostErrorKind::Reply(_));
        let txs: Vec<Transaction> = self.closing.drain(..).chain(self.tx.take()).collect();
        for mut tx in txs {
            let end_sent = tx.end_sent;
            tx.finish_open(|state| Outcome::Deferred {
                cause: Cause::Host(error.clone()),
                possibly_delivered: lost && end_sent && matches!(state, RcptState::Accepted),
            });
            self.done.push_back(tx.result());
        }
        if quit {
            self.output.extend_from_slice(b"QUIT\r\n");
        }
        self.expected.clear();
        self.input.clear();
        self.closed = Some(Some(error));
    }
}

/// A 5xx fails; a 4xx defers, and so does a code that makes no sense at
/// this point (a 250 to DATA, a 354 to RCPT): a confused peer is no reason
/// to bounce a message.
fn refusal(response: &Response) -> Outcome {
    if response.reply.is_permanent() {
        Outcome::Failed(Cause::Remote(response.clone()))
    } else {
        Outcome::Deferred {
            cause: Cause::Remote(response.clone()),
            possibly_delivered: false,
        }
    }
}
