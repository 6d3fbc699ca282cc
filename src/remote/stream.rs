//! The byte stream under an outbound session: TCP (optionally from a
//! configured source address), TLS over it (implicit or after STARTTLS),
//! or a Unix socket (LMTP to a local Dovecot).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use smtp::session::TlsInfo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::{ClientTls, Verified};

pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
    /// Taken for a TLS handshake that failed: every operation fails.
    Gone,
}

impl Stream {
    /// This end's address of a TCP connection.
    pub fn local_ip(&self) -> Option<IpAddr> {
        match self {
            Stream::Tcp(s) => s.local_addr().ok().map(|a| a.ip()),
            Stream::Tls(s) => s.get_ref().0.local_addr().ok().map(|a| a.ip()),
            Stream::Unix(_) | Stream::Gone => None,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

/// What a TLS session came to, for the log (`X=`, `CV=`) and for AUTH.
#[derive(Debug, Clone)]
pub struct TlsState {
    pub info: TlsInfo,
    pub verified: bool,
}

/// Connects to `addr`, from the transport's source address of the same
/// family if one is set, within `timeout`.
pub async fn connect(
    addr: SocketAddr,
    interface: &[IpAddr],
    timeout: Duration,
) -> io::Result<Stream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = interface.iter().find(|i| i.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(*src, 0))?;
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "Connection timed out",
        )),
    }
}

pub async fn connect_unix(path: &Path, timeout: Duration) -> io::Result<Stream> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(r) => r.map(Stream::Unix),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "Connection timed out",
        )),
    }
}

/// Runs a TLS handshake over a TCP stream (STARTTLS, or at once for
/// smtps). The server name is the host's name when it has one, else its
/// address.
pub async fn start_tls(
    stream: Stream,
    tls: &ClientTls,
    host: &str,
    addr: IpAddr,
    timeout: Duration,
) -> Result<(Stream, TlsState), String> {
    let Stream::Tcp(tcp) = stream else {
        return Err("TLS over this connection is not possible".into());
    };
    let (config, verified): (Arc<rustls::ClientConfig>, Arc<Verified>) = tls.connection()?;
    let name = ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(addr.into()));
    let connector = TlsConnector::from(config);
    let tls_stream = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("TLS session failure: {e}")),
        Err(_) => return Err("TLS session failure: timed out".into()),
    };
    let info = crate::server::tls::session_info(tls_stream.get_ref().1);
    let state = TlsState {
        info,
        verified: verified.yes(),
    };
    Ok((Stream::Tls(Box::new(tls_stream)), state))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}
