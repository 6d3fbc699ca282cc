//! One outbound connection: connect (TCP from the configured source
//! address, or a Unix socket), drive the sans-IO [`ClientSession`] through
//! the greeting, EHLO, STARTTLS and AUTH, then one transaction per job
//! until the pool has no more for this destination.
//!
//! Nothing here decides what a reply means for a recipient: the session
//! does, and [`super::deliver`] turns its results into outcomes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use smtp::client::{ClientConfig, ClientPoll, ClientSession, HostError, TransactionResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::{self, Stream, TlsState};
use super::tls::Policy;
use super::{Address, Settings};

/// Bytes of the message handed to the session at once.
const PIECE: usize = 64 * 1024;

/// A connection with its session, ready for a transaction.
pub struct Live {
    stream: Stream,
    session: ClientSession,
    pub address: Address,
    pub tls: Option<TlsState>,
    /// Messages sent on this connection.
    pub messages: usize,
    /// The next message's envelope went behind the last end of data
    /// (PIPELINING); its transaction continues with [`Live::transact`]
    /// given no envelope.
    pub next_sent: bool,
    buf: Vec<u8>,
}

/// Offers the envelope of the next message for the same destination, if
/// one is waiting, to go behind the current end of data.
pub type NextEnvelope<'a> = &'a mut (dyn FnMut() -> Option<smtp::client::Envelope> + Send);

/// Why a connection could not be made ready.
#[derive(Debug)]
pub enum ConnectError {
    /// connect() failed: the errno and its text (`Connection refused`).
    Io { errno: i32, text: String },
    /// The session ended before it was ready (greeting, EHLO, STARTTLS,
    /// AUTH).
    Host(HostError),
    /// A STARTTLS handshake failed; `tls = may` reconnects in clear.
    Tls(String),
}

impl ConnectError {
    /// Exim's errno for the log: the system's for a failed connect, -37
    /// (`ERRNO_TLSFAILURE`) for a failed handshake, -38 when TLS was
    /// required and not offered, 0 otherwise (an SMTP reply).
    pub fn errno(&self) -> i32 {
        match self {
            ConnectError::Io { errno, .. } => *errno,
            ConnectError::Tls(_) => -37,
            ConnectError::Host(e) => match e.kind() {
                smtp::client::HostErrorKind::TlsRequired(_) => -38,
                smtp::client::HostErrorKind::Timeout => 110,
                _ => 0,
            },
        }
    }

    pub fn text(&self) -> String {
        match self {
            ConnectError::Io { text, .. } => text.clone(),
            ConnectError::Tls(t) => t.clone(),
            ConnectError::Host(e) => e.to_string(),
        }
    }
}

fn io_error(e: &std::io::Error) -> ConnectError {
    let errno = e.raw_os_error().unwrap_or(match e.kind() {
        std::io::ErrorKind::TimedOut => 110,
        _ => 0,
    });
    // "Connection refused", not "Connection refused (os error 111)".
    let text = match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_string(),
        None => e.to_string(),
    };
    ConnectError::Io { errno, text }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

/// Connects to `address` and drives the session until it is ready for a
/// message. `clear`: STARTTLS is not attempted (the retry after a failed
/// handshake under `tls = may`).
pub async fn open(
    settings: &Settings,
    address: &Address,
    clear: bool,
) -> Result<Live, ConnectError> {
    let stream = match &settings.socket {
        Some(path) => stream::connect_unix(path, settings.connect_timeout)
            .await
            .map_err(|e| io_error(&e))?,
        None => stream::connect(
            SocketAddr::new(address.ip, address.port),
            &settings.interface,
            settings.connect_timeout,
        )
        .await
        .map_err(|e| io_error(&e))?,
    };
    let mut config: ClientConfig = (*settings.client).clone();
    if settings.helo_literal
        && let Some(local) = stream.local_ip()
    {
        config.helo_name = address_literal(local);
    }
    if clear {
        config.tls = smtp::client::TlsPolicy::Never;
    }
    let mut live = Live {
        stream,
        session: ClientSession::new(Arc::new(config)),
        address: address.clone(),
        tls: None,
        messages: 0,
        next_sent: false,
        buf: vec![0; 16 * 1024],
    };
    if settings.implicit_tls {
        let (s, state) = take_tls(&mut live, settings).await?;
        live.stream = s;
        live.session
            .tls_established(state.verified, state.info.clone());
        live.tls = Some(state);
    }
    match live.step(settings, None, None).await {
        Step::Ready => Ok(live),
        Step::Closed(Some(e)) => Err(ConnectError::Host(e)),
        Step::Closed(None) => Err(ConnectError::Io {
            errno: 0,
            text: "Remote host closed connection".into(),
        }),
        Step::TlsFailed(why) => Err(ConnectError::Tls(why)),
        Step::Done(_) => Err(ConnectError::Io {
            errno: 0,
            text: "unexpected transaction result".into(),
        }),
    }
}

async fn take_tls(
    live: &mut Live,
    settings: &Settings,
) -> Result<(Stream, TlsState), ConnectError> {
    let s = std::mem::replace(&mut live.stream, Stream::Gone);
    stream::start_tls(
        s,
        &settings.tls,
        &live.address.host,
        live.address.ip,
        settings.command_timeout,
    )
    .await
    .map_err(ConnectError::Tls)
}

/// Where the session stopped.
pub enum Step {
    Ready,
    Done(TransactionResult),
    Closed(Option<HostError>),
    TlsFailed(String),
}

impl Live {
    /// Drives the session until it is ready, a transaction is done, or it
    /// closed. `body`: the message being sent, if any. `next`: where the
    /// next message's envelope comes from, to be pipelined behind this
    /// one's end of data.
    pub async fn step(
        &mut self,
        settings: &Settings,
        mut body: Option<&mut Body<'_>>,
        mut next: Option<NextEnvelope<'_>>,
    ) -> Step {
        // With PIPELINING the session is ready for the next envelope as
        // soon as the end of data is written. The next message's envelope
        // may go then, but never its data: this message's result is
        // recorded before another message's end of data goes out.
        let want_result = body.is_some();
        loop {
            match self.session.poll() {
                ClientPoll::Ready if !want_result => return Step::Ready,
                ClientPoll::Ready
                    if !self.next_sent && next.is_some() && self.session.can_send_next_behind() =>
                {
                    let Some(envelope) = next.as_mut().and_then(|n| n()) else {
                        next = None;
                        continue;
                    };
                    // Checked ready above: only a closed session refuses.
                    self.next_sent = self.session.send(envelope).is_ok();
                    if !self.flush().await {
                        self.session.receive_eof();
                    }
                }
                ClientPoll::Body if !(want_result && self.next_sent) => {
                    // The last piece goes with the end of the message (in
                    // BDAT's LAST chunk).
                    match body.as_deref_mut().map(Body::next_piece) {
                        Some(Some((piece, false))) => self.session.write_body(piece),
                        Some(Some((piece, true))) => self.session.end_body_with(piece),
                        Some(None) | None => self.session.end_body(),
                    }
                    let out = self.session.take_output();
                    let wait = self.session.timeout();
                    match tokio::time::timeout(wait, self.stream.write_all(&out)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => self.session.receive_eof(),
                        Err(_) => self.session.timed_out(),
                    }
                }
                // With the next envelope sent, what the session wants to
                // send is that message's data (BDAT needs no 354): not
                // before this message's result (read instead).
                ClientPoll::Read | ClientPoll::Ready | ClientPoll::Body => {
                    if !self.flush().await {
                        self.session.receive_eof();
                        continue;
                    }
                    let wait = self.session.timeout();
                    match tokio::time::timeout(wait, self.stream.read(&mut self.buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => self.session.receive_eof(),
                        Ok(Ok(n)) => self.session.receive(&self.buf[..n]),
                        Err(_) => self.session.timed_out(),
                    }
                }
                ClientPoll::StartTls => {
                    if !self.flush().await {
                        self.session.receive_eof();
                        continue;
                    }
                    match take_tls(self, settings).await {
                        Ok((s, state)) => {
                            self.stream = s;
                            self.session
                                .tls_established(state.verified, state.info.clone());
                            self.tls = Some(state);
                        }
                        Err(e) => return Step::TlsFailed(e.text()),
                    }
                }
                ClientPoll::Done(result) => return Step::Done(result),
                ClientPoll::Close(error) => {
                    let _ = self.flush().await;
                    return Step::Closed(error);
                }
            }
        }
    }

    /// Writes what the session produced; false when the peer is gone.
    async fn flush(&mut self) -> bool {
        if !self.session.has_output() {
            return true;
        }
        let out = self.session.take_output();
        let wait = self.session.timeout();
        matches!(
            tokio::time::timeout(wait, self.stream.write_all(&out)).await,
            Ok(Ok(()))
        )
    }

    /// Sends one message: its envelope, unless it went already behind the
    /// previous message (`envelope` None, [`Live::next_sent`]), then its
    /// data, and waits for its result. `next` may pipeline the following
    /// message's envelope behind this one's end of data.
    pub async fn transact(
        &mut self,
        settings: &Settings,
        envelope: Option<smtp::client::Envelope>,
        data: &[u8],
        next: Option<NextEnvelope<'_>>,
    ) -> Step {
        match envelope {
            Some(envelope) => {
                if self.session.send(envelope).is_err() {
                    return Step::Closed(None);
                }
            }
            None if self.next_sent => {}
            None => return Step::Closed(None),
        }
        self.next_sent = false;
        let mut body = Body { data, pos: 0 };
        let step = self.step(settings, Some(&mut body), next).await;
        if matches!(step, Step::Done(_)) {
            self.messages += 1;
        }
        step
    }

    /// The peer advertised DSN (RFC 3461).
    pub fn offers_dsn(&self) -> bool {
        self.session.capabilities().is_some_and(|c| c.dsn)
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// QUIT, waiting briefly for the 221.
    pub async fn quit(mut self, settings: &Settings) {
        if self.next_sent {
            // A pipelined envelope whose message will not follow (the
            // daemon stops): the peer may be reading message data, where
            // QUIT would be text. Closing without the end of data makes
            // it drop the transaction.
            let _ = self.stream.shutdown().await;
            return;
        }
        self.session.quit();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.step(settings, None, None)).await;
        let _ = self.stream.shutdown().await;
    }
}

/// The message, handed to the session in pieces.
pub struct Body<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Body<'_> {
    /// The next piece, and whether it is the last.
    fn next_piece(&mut self) -> Option<(&[u8], bool)> {
        if self.pos >= self.data.len() {
            return None;
        }
        let end = (self.pos + PIECE).min(self.data.len());
        let piece = &self.data[self.pos..end];
        self.pos = end;
        Some((piece, end == self.data.len()))
    }
}

/// Whether a policy lets a failed handshake fall back to clear text.
pub fn falls_back(policy: Policy) -> bool {
    policy == Policy::May
}

#[cfg(test)]
mod tests {
    use super::address_literal;

    #[test]
    fn address_literals_as_rfc_5321_writes_them() {
        assert_eq!(address_literal("192.0.2.1".parse().unwrap()), "[192.0.2.1]");
        assert_eq!(
            address_literal("2001:db8::1".parse().unwrap()),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(
            address_literal("::ffff:192.0.2.1".parse().unwrap()),
            "[192.0.2.1]"
        );
    }
}
