//! The client side of SMTP and LMTP, sans I/O: the daemon's outgoing
//! connections. A [`ClientSession`] takes what the peer sends
//! ([`ClientSession::receive`]), says what to do next
//! ([`ClientSession::poll`]) and produces the command bytes to write
//! ([`ClientSession::take_output`]); the driver owns the socket, the TLS
//! library, the clock and the message file.
//!
//! A driver loop (tokio + rustls) is a few lines:
//!
//! ```ignore
//! let mut session = ClientSession::new(config.clone());
//! let mut body = None;
//! loop {
//!     match session.poll() {
//!         ClientPoll::Read => {
//!             conn.write_all(&session.take_output()).await?;
//!             match timeout(session.timeout(), conn.read(&mut buf)).await {
//!                 Ok(Ok(0)) | Ok(Err(_)) => session.receive_eof(),
//!                 Ok(Ok(n)) => session.receive(&buf[..n]),
//!                 Err(_) => session.timed_out(),
//!             }
//!         }
//!         ClientPoll::StartTls => {
//!             conn.write_all(&session.take_output()).await?;
//!             conn = conn.start_tls(&connector, &server_name).await?;
//!             session.tls_established(conn.verified(), conn.tls_info());
//!         }
//!         ClientPoll::Ready => match queue.next_message() {
//!             Some(message) => {
//!                 body = Some(message.open_body()?);
//!                 // Taken whenever poll() said Ready; Err gives it back.
//!                 if let Err(envelope) = session.send(message.envelope()) {
//!                     queue.put_back(envelope);
//!                 }
//!             }
//!             None => session.quit(),
//!         },
//!         ClientPoll::Body => {
//!             // Pieces of any size, split anywhere; each write is one
//!             // BDAT chunk in CHUNKING mode.
//!             match body.as_mut().and_then(|b| b.next_piece()) {
//!                 Some(piece) => session.write_body(&piece),
//!                 None => session.end_body(),
//!             }
//!             let out = session.take_output();
//!             timeout(session.timeout(), conn.write_all(&out)).await??;
//!         }
//!         ClientPoll::Done(result) => queue.record(result),
//!         ClientPoll::Close(error) => {
//!             conn.write_all(&session.take_output()).await.ok();
//!             if let Some(error) = error {
//!                 log.host_error(&error);
//!             }
//!             break;
//!         }
//!     }
//! }
//! ```
//!
//! `tests/client_loopback.rs` holds the same loop in blocking std::net,
//! run against this crate's own server [`crate::Session`].
//!
//! The dialog, with the RFCs it follows:
//!
//! 1. The greeting, 220 (RFC 5321 §3.1). Anything else ends the dialog.
//! 2. EHLO (LHLO for LMTP, RFC 2033); HELO if EHLO gets a 5xx. The
//!    extensions are read from the reply ([`Capabilities`]).
//! 3. STARTTLS when offered and [`TlsPolicy`] allows (RFC 3207); after the
//!    handshake, EHLO again and everything learned before is forgotten
//!    (§4.2). A reply that arrives with the 220 to STARTTLS, before the
//!    handshake, is an attack on the dialog and ends it.
//! 4. AUTH PLAIN or LOGIN (RFC 4954) when credentials are configured, only
//!    over TLS the driver says is verified; never in clear.
//! 5. Transactions ([`ClientSession::send`]): MAIL, RCPT..., then DATA and
//!    the dot-stuffed body, or BDAT chunks (RFC 3030). With PIPELINING (RFC
//!    2920 §3.1) MAIL, every RCPT and DATA go in one write, and the next
//!    transaction's group goes right behind the end of data of the one
//!    before. RSET only after a transaction that failed; after a message
//!    a new MAIL follows at once. Results ([`ClientPoll::Done`]) come out
//!    in the order of `send`.
//! 6. QUIT ([`ClientSession::quit`]), then the 221 or the end of the
//!    connection.
//!
//! What the driver must do in each state:
//!
//! | `poll()` returns | the driver                                                   |
//! |------------------|--------------------------------------------------------------|
//! | `Read`           | writes the output, reads with [`ClientSession::timeout`]     |
//! | `StartTls`       | writes the output, runs the handshake, `tls_established`     |
//! | `Ready`          | calls `send(envelope)` or `quit()`                           |
//! | `Body`           | calls `write_body(piece)` or `end_body()`, writes the output |
//! | `Done(result)`   | records the per-recipient outcomes, polls again              |
//! | `Close(error)`   | writes the output, closes the connection                     |

mod auth;
mod capabilities;
mod encoder;
mod envelope;
mod outcome;
mod session;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

pub use capabilities::Capabilities;
pub use encoder::BodyEncoder;
pub use envelope::{Envelope, EnvelopeRecipient, Notify, Ret};
// The server's parameter fuzz target encodes with the client's xtext.
pub(crate) use envelope::xtext;
pub use outcome::{
    Cause, Command, CommandKind, HostError, HostErrorKind, LOG_TEXT_MAX, Outcome, RecipientResult,
    Response, TransactionResult, log_text,
};
pub use session::{ClientPoll, ClientSession};

/// Whether to use STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never, even when offered.
    Never,
    /// When the peer offers it; in clear otherwise, or when the peer
    /// refuses the STARTTLS command.
    IfOffered,
    /// Only under TLS: a peer that does not offer STARTTLS, or refuses it,
    /// is a host error ([`HostErrorKind::TlsRequired`]).
    Required,
}

/// Credentials for AUTH PLAIN (RFC 4616) or LOGIN. Never sent except over
/// a TLS session the driver reported as verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The password stays out of logs and panic messages.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// RFC 5321 §4.5.3.2.1: the greeting, 5 minutes.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.2: MAIL, 5 minutes.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.3: RCPT, 5 minutes.
pub const RCPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.4: the reply to DATA, 2 minutes.
pub const DATA_INIT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// RFC 5321 §4.5.3.2.5: each write of message data, 3 minutes; also the
/// reply to a BDAT chunk that is not the last.
pub const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// RFC 5321 §4.5.3.2.6: the reply to the final dot (or BDAT LAST), 10
/// minutes.
pub const FINAL_DOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// EHLO, STARTTLS, AUTH, RSET and QUIT, for which RFC 5321 names no time:
/// 5 minutes, as for MAIL.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long to wait for each reply (and each write of message data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub greeting: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub final_dot: Duration,
    pub command: Duration,
}

impl Default for Timeouts {
    /// RFC 5321 §4.5.3.2's values.
    fn default() -> Timeouts {
        Timeouts {
            greeting: GREETING_TIMEOUT,
            mail: MAIL_TIMEOUT,
            rcpt: RCPT_TIMEOUT,
            data_init: DATA_INIT_TIMEOUT,
            data_block: DATA_BLOCK_TIMEOUT,
            final_dot: FINAL_DOT_TIMEOUT,
            command: COMMAND_TIMEOUT,
        }
    }
}

/// How one outgoing connection behaves. Built once per transport and
/// shared by its sessions.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent with EHLO, LHLO or HELO (Exim's `helo_data`).
    pub helo_name: String,
    /// LMTP (RFC 2033): LHLO, and one reply per accepted recipient after
    /// the message.
    pub lmtp: bool,
    pub tls: TlsPolicy,
    /// The connection is under TLS from its start (SMTPS, RFC 8314): no
    /// STARTTLS. The driver calls [`ClientSession::tls_established`]
    /// before the first poll, to say whether the peer was verified.
    pub implicit_tls: bool,
    /// AUTH credentials; `None` never authenticates.
    pub credentials: Option<Credentials>,
    pub timeouts: Timeouts,
}

impl ClientConfig {
    /// SMTP, STARTTLS when offered, no AUTH, RFC timeouts.
    pub fn new(helo_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo_name: helo_name.into(),
            lmtp: false,
            tls: TlsPolicy::IfOffered,
            implicit_tls: false,
            credentials: None,
            timeouts: Timeouts::default(),
        }
    }
}
