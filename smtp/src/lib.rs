#![forbid(unsafe_code)]
//! The SMTP and LMTP protocol, sans I/O: bytes in, replies and events out.
//! No sockets, no clock, no files: the daemon (tokio + rustls) and
//! `sluice -bs` drive a [`Session`] and answer its [`Event`]s with
//! [`Verdict`]s from policy (routing, relay rules, quotas) and the spool;
//! clients (the load generator, the tests) read the server's replies with
//! a [`ReplyReader`], and the daemon's outgoing connections run a
//! [`client::ClientSession`] the same way as a `Session`. This crate's
//! Cargo.toml has no tokio, no rustls and no file I/O, so Cargo keeps it
//! that way.
//!
//! A driver loop is a few lines:
//!
//! ```ignore
//! let mut session = Session::new(config.clone(), Some(peer));
//! loop {
//!     match session.poll() {
//!         Poll::Read => {
//!             conn.write_all(&session.take_output()).await?;
//!             match timeout(session.timeout(), conn.read(&mut buf)).await {
//!                 Ok(Ok(0)) | Ok(Err(_)) => session.receive_eof(),
//!                 Ok(Ok(n)) => session.receive(&buf[..n]),
//!                 Err(_) => session.timed_out(),
//!             }
//!         }
//!         Poll::Decide(event) => {
//!             let verdict = policy.decide(&session, event).await;
//!             session.verdict(verdict);
//!         }
//!         Poll::Notice(notice) => log.notice(&notice),
//!         Poll::StartTls { discarded } => {
//!             conn.write_all(&session.take_output()).await?;
//!             conn = conn.start_tls(&acceptor).await?;
//!             session.tls_established(conn.tls_info());
//!         }
//!         Poll::Close(reason) => {
//!             conn.write_all(&session.take_output()).await?;
//!             break;
//!         }
//!         Poll::Waiting => unreachable!("every Decide is answered above"),
//!     }
//! }
//! ```
//!
//! Files, one per concern: [`session`] (state machine, driver API),
//! [`hello`], [`mail`], [`rcpt`], [`data`], [`bdat`], [`starttls`] (the
//! verbs), [`address`] and [`params`] (envelope grammar), [`body`] (content
//! checks), [`reply`] (reply codes and wording, and the reader of replies
//! received by a client), [`client`] (the client side: the daemon's
//! outgoing SMTP and LMTP), [`received`] (the Received: header), [`fuzz`]
//! (a never-panics entry point for fuzzers).

pub mod address;
mod bdat;
mod body;
pub mod client;
mod command;
mod data;
pub mod fuzz;
mod hello;
mod mail;
pub mod params;
mod rcpt;
pub mod received;
pub mod reply;
pub mod session;
mod starttls;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod transcript;

// The driver's vocabulary, so that drivers write `smtp::Session`.
pub use address::{Address, PathError, relay_form};
pub use client::{ClientConfig, ClientPoll, ClientSession};
pub use params::{BodyType, MailParams, RcptParams};
pub use received::{Stamp, protocol_name, received_header};
pub use reply::{Reply, ReplyError, ReplyReader, Status, local_problem, relay_not_permitted};
pub use session::{
    CloseReason, Event, HelloVerb, Message, Mode, Notice, Poll, Recipient, Session, SessionConfig,
    SmtpEnvelope, TlsInfo, Verdict,
};
