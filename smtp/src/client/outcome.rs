//! What became of a transaction and of the connection: per-recipient
//! outcomes, the reply each rests on and the command that reply answered,
//! and the one error type for failures of the whole host.
//!
//! Every outcome keeps the exact reply for the log, and the command it
//! answered, so a log line can read like Exim's: `SMTP error from remote
//! mail server after RCPT TO:<a@b.example>: 550 5.1.1 ...`. The
//! words after "after" are [`Command::describe`].

use std::fmt;

use crate::reply::{Reply, Status};

/// Which command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// The greeting: no command, the connection itself.
    Connect,
    Ehlo,
    Helo,
    Lhlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// A BDAT chunk that is not the last.
    Bdat,
    /// The final dot after DATA, or BDAT ... LAST: the reply that says
    /// whether the message was taken.
    EndOfData,
    Rset,
    Quit,
}

/// A command as sent, for logs: its kind, its line (AUTH's credentials
/// left out), and whether it went in one write with others (RFC 2920).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub kind: CommandKind,
    /// The command line without CRLF; empty for [`CommandKind::Connect`].
    pub line: String,
    pub pipelined: bool,
}

impl Command {
    pub(crate) fn new(kind: CommandKind, line: impl Into<String>, pipelined: bool) -> Command {
        Command {
            kind,
            line: line.into(),
            pipelined,
        }
    }

    /// The words that follow "after" in a log line, as Exim 4.96 writes
    /// them with its default log selectors: `initial connection`,
    /// `EHLO mx.example`, `STARTTLS`, `MAIL FROM:<a@b.example> SIZE=1234`,
    /// `RCPT TO:<c@d.example>`, `DATA`, `end of data`; a MAIL that went
    /// with its RCPTs is `pipelined MAIL FROM:...`, as Exim 4.96 writes it
    /// (it leaves the word out for the RCPTs). Control characters in the
    /// line are escaped.
    pub fn describe(&self) -> String {
        match self.kind {
            CommandKind::Connect => "initial connection".to_string(),
            CommandKind::EndOfData => "end of data".to_string(),
            // Exim 4.96 marks a MAIL sent with its RCPTs, and only that
            // (tests/fixtures/exim-4.96/outbound).
            CommandKind::Mail if self.pipelined => {
                format!("pipelined {}", escape(&self.line, LOG_TEXT_MAX))
            }
            _ => escape(&self.line, LOG_TEXT_MAX),
        }
    }

    /// `pipelined ` before any command that went in one write with others.
    pub fn describe_pipelined(&self) -> String {
        match self.kind {
            CommandKind::Mail => self.describe(),
            _ if self.pipelined => format!("pipelined {}", self.describe()),
            _ => self.describe(),
        }
    }
}

/// A reply from the peer and the command it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub reply: Reply,
    pub command: Command,
}

impl Response {
    /// [`Command::describe`] of the command answered.
    pub fn describe_command(&self) -> String {
        self.command.describe()
    }

    /// The reply for a log line: see [`log_text`].
    pub fn log_text(&self) -> String {
        log_text(&self.reply)
    }
}

/// Why a recipient ended as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The peer's reply.
    Remote(Response),
    /// Decided here without sending anything for the recipient: the body
    /// is over the peer's SIZE (5.3.4), SMTPUTF8 is needed but not offered
    /// (5.6.7), the address cannot be put in a command (5.1.3).
    Local(Reply),
    /// The connection failed before the recipient was finished.
    Host(HostError),
}

impl Cause {
    /// The enhanced status code that fits: the reply's own, or one derived
    /// from its code, or the host error's.
    pub fn status(&self) -> Status {
        match self {
            Cause::Remote(response) => status_of(&response.reply),
            Cause::Local(reply) => status_of(reply),
            Cause::Host(error) => error.status(),
        }
    }

    /// The reply, if the cause is one (remote or local).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Cause::Remote(response) => Some(&response.reply),
            Cause::Local(reply) => Some(reply),
            Cause::Host(error) => error.reply(),
        }
    }

    /// The words after "after" for a log line, when a command was answered.
    pub fn describe_command(&self) -> Option<String> {
        match self {
            Cause::Remote(response) => Some(response.describe_command()),
            Cause::Local(_) => None,
            Cause::Host(error) => error.after().map(Command::describe),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Remote(r) => write!(
                f,
                "SMTP error from remote mail server after {}: {}",
                r.describe_command(),
                r.log_text()
            ),
            Cause::Local(reply) => write!(f, "{}", log_text(reply)),
            Cause::Host(error) => write!(f, "{error}"),
        }
    }
}

/// What became of one recipient in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer took responsibility (2xx to the end of data; in LMTP, the
    /// recipient's own reply after it).
    Delivered(Response),
    /// Refused for good (5xx, or a local refusal).
    Failed(Cause),
    /// Refused for now (4xx, or a failure of the connection); try again
    /// later or at another host. `possibly_delivered`: the end of data was
    /// sent and no reply came (the timer ran out or the connection broke),
    /// so the peer may have the message (RFC 1047): a retry may deliver it
    /// twice.
    Deferred {
        cause: Cause,
        possibly_delivered: bool,
    },
    /// The peer wanted no more recipients in this transaction (452, RFC
    /// 5321 §4.5.3.1.10): not a failure; put the recipient in the next
    /// transaction.
    NotAttempted(Response),
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered(_))
    }
}

/// One recipient's outcome, in the order of [`super::Envelope::recipients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    pub address: String,
    pub outcome: Outcome,
}

/// The end of one transaction: an outcome for every recipient of the
/// envelope, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    pub recipients: Vec<RecipientResult>,
}

/// What went wrong with the host as a whole; the session closes after it.
/// Recipients not finished when it happened come back deferred with it as
/// their [`Cause::Host`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    kind: HostErrorKind,
    after: Option<Command>,
}

/// The kinds of [`HostError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostErrorKind {
    /// A reply that ends the dialog: 421 anywhere, a refused greeting, a
    /// refused EHLO/LHLO/HELO, a refused AUTH, a refused RSET.
    Reply(Reply),
    /// The driver's timer ran out ([`super::ClientSession::timed_out`]).
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// What the peer sent is not SMTP in step with the commands: not a
    /// reply, too long, cut short, or a reply when none was expected.
    Protocol(String),
    /// TLS is required but STARTTLS is not offered, or was refused with
    /// this reply.
    TlsRequired(Option<Reply>),
    /// Credentials are configured but cannot be used safely: no verified
    /// TLS, or no mechanism this client has (PLAIN, LOGIN) offered.
    AuthUnavailable(String),
}

impl HostError {
    pub(crate) fn new(kind: HostErrorKind, after: Option<Command>) -> HostError {
        HostError { kind, after }
    }

    pub fn kind(&self) -> &HostErrorKind {
        &self.kind
    }

    /// The command after which it happened, if any.
    pub fn after(&self) -> Option<&Command> {
        self.after.as_ref()
    }

    /// The peer's reply, when the error is one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.kind {
            HostErrorKind::Reply(reply) | HostErrorKind::TlsRequired(Some(reply)) => Some(reply),
            _ => None,
        }
    }

    /// Only a 5xx reply (a refused greeting, EHLO or AUTH) is permanent;
    /// everything else may work later.
    pub fn is_temporary(&self) -> bool {
        match &self.kind {
            HostErrorKind::Reply(reply) => !reply.is_permanent(),
            _ => true,
        }
    }

    /// RFC 3463: the reply's status (or one derived from its code); 4.4.2
    /// (bad connection) for a timeout or a closed connection; 4.5.0 (other
    /// protocol status) for a protocol error; 4.7.10 (encryption needed,
    /// RFC 5248) when TLS is required; 4.7.0 (other security status) when
    /// authentication cannot be done safely.
    pub fn status(&self) -> Status {
        match &self.kind {
            HostErrorKind::Reply(reply) => status_of(reply),
            HostErrorKind::Timeout | HostErrorKind::Closed => Status::new(4, 4, 2),
            HostErrorKind::Protocol(_) => Status::new(4, 5, 0),
            HostErrorKind::TlsRequired(_) => Status::new(4, 7, 10),
            HostErrorKind::AuthUnavailable(_) => Status::new(4, 7, 0),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = self
            .after
            .as_ref()
            .map(|c| format!(" after {}", c.describe()))
            .unwrap_or_default();
        // Exim's words for a timeout or a hang-up name the command with
        // `pipelined ` when it went with others.
        let pipelined = |word: &str| {
            self.after
                .as_ref()
                .map(|c| format!(" {word} {}", c.describe_pipelined()))
                .unwrap_or_default()
        };
        match &self.kind {
            HostErrorKind::Reply(reply) => write!(
                f,
                "SMTP error from remote mail server{after}: {}",
                log_text(reply)
            ),
            HostErrorKind::Timeout => write!(f, "SMTP timeout{}", pipelined("after")),
            HostErrorKind::Closed => {
                write!(
                    f,
                    "Remote host closed connection{}",
                    pipelined("in response to")
                )
            }
            HostErrorKind::Protocol(what) => {
                write!(
                    f,
                    "SMTP protocol error{after}: {}",
                    escape(what, LOG_TEXT_MAX)
                )
            }
            HostErrorKind::TlsRequired(None) => {
                write!(f, "TLS required but STARTTLS not offered{after}")
            }
            HostErrorKind::TlsRequired(Some(reply)) => {
                write!(f, "TLS required but refused{after}: {}", log_text(reply))
            }
            HostErrorKind::AuthUnavailable(what) => {
                write!(f, "authentication not possible{after}: {what}")
            }
        }
    }
}

impl std::error::Error for HostError {}

/// The longest text [`log_text`] and [`Command::describe`] produce.
pub const LOG_TEXT_MAX: usize = 1024;

/// A reply as a log line shows it: its wire form, lines joined with an
/// escaped `\n`, control characters and backslashes escaped, at most
/// [`LOG_TEXT_MAX`] octets (cut on a character boundary, `...` appended).
pub fn log_text(reply: &Reply) -> String {
    let wire = reply.to_bytes();
    let text = String::from_utf8_lossy(&wire);
    let text = text.trim_end_matches("\r\n").replace("\r\n", "\n");
    escape(&text, LOG_TEXT_MAX)
}

/// Escapes CR, LF, other control characters and backslashes, and caps the
/// result at `max` octets.
pub(crate) fn escape(text: &str, max: usize) -> String {
    const ELLIPSIS: &str = "...";
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece = match c {
            '\r' => "\\r".to_string(),
            '\n' => "\\n".to_string(),
            '\\' => "\\\\".to_string(),
            c if c.is_control() => format!("\\x{:02x}", u32::from(c)),
            c => c.to_string(),
        };
        if out.len() + piece.len() > max.saturating_sub(ELLIPSIS.len()) {
            out.push_str(ELLIPSIS);
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The reply's enhanced status code, or `X.0.0` of its class.
pub(crate) fn status_of(reply: &Reply) -> Status {
    reply.status().unwrap_or_else(|| {
        let class = match reply.code() / 100 {
            2 => 2,
            5 => 5,
            _ => 4,
        };
        Status::new(class, 0, 0)
    })
}
