//! A minimal SMTP client for load generation: greeting, EHLO, optional
//! STARTTLS (or implicit TLS), then MAIL, RCPT, DATA per message, and QUIT.
//! No pipelining: one command, one reply, as a plain client would send.
//!
//! Every reply is read with a timeout; what went wrong is a [`Failure`]
//! that names the command it answered, so the report can group errors by
//! reply code and still show where they came from.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use smtp::{Reply, ReplyReader};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest reply line read (RFC 5321 4.5.3.1.5 allows 512 octets; servers
/// exceed it in practice, so allow far more and still stay bounded).
const MAX_REPLY_LINE: u64 = 64 * 1024;

/// Which step of the dialog a reply or a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    /// The reply to the final dot: the one that says whether the server
    /// took responsibility for the message.
    EndOfData,
    Rset,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a message was not accepted.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a code other than the one expected.
    Reply {
        stage: Stage,
        code: u16,
        text: String,
    },
    /// Reading or writing failed (connection refused or reset, EOF).
    Io { stage: Stage, error: io::Error },
    /// No reply (or write progress) within the timeout.
    Timeout { stage: Stage, after: Duration },
    /// The TLS handshake failed.
    Tls(io::Error),
    /// The server's bytes are not SMTP, or it lacks what was asked for.
    Protocol { stage: Stage, what: String },
}

impl Failure {
    /// How the report groups this failure: the reply code, or the kind of
    /// transport failure.
    pub fn kind(&self) -> String {
        match self {
            Failure::Reply { code, .. } => code.to_string(),
            Failure::Io {
                stage: Stage::Connect,
                ..
            } => "connect".into(),
            Failure::Io { .. } => "io".into(),
            Failure::Timeout { .. } => "timeout".into(),
            Failure::Tls(_) => "tls".into(),
            Failure::Protocol { .. } => "protocol".into(),
        }
    }

    /// Whether the connection can carry another message after this: only a
    /// refusal the server sent in an orderly dialog (not 421, which closes).
    pub fn connection_usable(&self) -> bool {
        match self {
            Failure::Reply { stage, code, .. } => {
                *code != 421
                    && matches!(
                        stage,
                        Stage::Mail | Stage::Rcpt | Stage::Data | Stage::EndOfData
                    )
            }
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Reply { stage, text, .. } => write!(f, "{stage}: {text}"),
            Failure::Io { stage, error } => write!(f, "{stage}: {error}"),
            Failure::Timeout { stage, after } => {
                write!(f, "{stage}: no reply within {} s", after.as_secs_f64())
            }
            Failure::Tls(e) => write!(f, "TLS handshake: {e}"),
            Failure::Protocol { stage, what } => write!(f, "{stage}: {what}"),
        }
    }
}

/// The last line as the server sent it (code, status, text), for error
/// reports: a refusal's reason is on its last line.
fn last_line(reply: &Reply) -> String {
    let mut out = reply.code().to_string();
    if let Some(status) = reply.status() {
        out.push_str(&format!(" {status}"));
    }
    out.push(' ');
    out.push_str(reply.lines().last().map(String::as_str).unwrap_or(""));
    out
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Name sent to the TLS server (SNI) and used for no verification.
    pub host: String,
    pub helo: String,
    pub tls: TlsMode,
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum TlsMode {
    None,
    StartTls(Arc<ClientConfig>),
    /// TLS from the first byte (port 465 style).
    Implicit(Arc<ClientConfig>),
}

impl TlsMode {
    pub fn name(&self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls(_) => "starttls",
            TlsMode::Implicit(_) => "tls",
        }
    }
}

impl fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the connection reads from and writes to: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open SMTP session past EHLO (and TLS when asked for).
pub struct Connection {
    io: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    line: Vec<u8>,
}

impl Connection {
    /// Connects, reads the greeting, says EHLO, and starts TLS if asked.
    pub async fn open(target: &Target) -> Result<Connection, Failure> {
        let tcp = within(target.timeout, Stage::Connect, async {
            TcpStream::connect(target.addr).await
        })
        .await?
        .map_err(|error| Failure::Io {
            stage: Stage::Connect,
            error,
        })?;
        // Commands are small and each waits for its reply: do not let
        // Nagle's algorithm hold them back.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &target.tls {
            TlsMode::Implicit(cfg) => Box::new(handshake(tcp, cfg, target).await?),
            _ => Box::new(tcp),
        };
        let mut c = Connection {
            io: BufReader::new(stream),
            timeout: target.timeout,
            line: Vec::with_capacity(512),
        };
        c.expect(Stage::Greeting, 220).await?;
        let ehlo = c
            .command(Stage::Ehlo, &format!("EHLO {}\r\n", target.helo), 250)
            .await?;
        if let TlsMode::StartTls(cfg) = &target.tls {
            let offered = ehlo
                .lines()
                .iter()
                .any(|l| l.split_ascii_whitespace().next() == Some("STARTTLS"));
            if !offered {
                return Err(Failure::Protocol {
                    stage: Stage::Ehlo,
                    what: "the server does not offer STARTTLS".into(),
                });
            }
            c.command(Stage::StartTls, "STARTTLS\r\n", 220).await?;
            // Bytes the server sent before the handshake would be read as
            // if they came over TLS (the STARTTLS injection flaw).
            if !c.io.buffer().is_empty() {
                return Err(Failure::Protocol {
                    stage: Stage::StartTls,
                    what: "data after the 220 reply, before the TLS handshake".into(),
                });
            }
            let plain = c.io.into_inner();
            let tls = handshake(plain, cfg, target).await?;
            c.io = BufReader::new(Box::new(tls));
            c.command(Stage::Ehlo, &format!("EHLO {}\r\n", target.helo), 250)
                .await?;
        }
        Ok(c)
    }

    /// Sends one message; returns the time from writing the final dot to
    /// the `250`. `wire` is the DATA form (dot-stuffed, terminator included).
    pub async fn send(&mut self, from: &str, to: &str, wire: &[u8]) -> Result<Duration, Failure> {
        self.command(Stage::Mail, &format!("MAIL FROM:<{from}>\r\n"), 250)
            .await?;
        self.command(Stage::Rcpt, &format!("RCPT TO:<{to}>\r\n"), 250)
            .await?;
        self.command(Stage::Data, "DATA\r\n", 354).await?;
        // The whole message, final dot included, in one write: the clock
        // starts when the last byte has been handed to the kernel.
        self.write(Stage::EndOfData, wire).await?;
        let sent = Instant::now();
        self.expect(Stage::EndOfData, 250).await?;
        Ok(sent.elapsed())
    }

    /// Clears a refused transaction so the connection can carry the next.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        self.command(Stage::Rset, "RSET\r\n", 250).await.map(drop)
    }

    /// Says goodbye. A failure here loses nothing: every message already
    /// had its answer.
    pub async fn quit(mut self) {
        let _ = self.command(Stage::Quit, "QUIT\r\n", 221).await;
        let _ = self.io.get_mut().shutdown().await;
    }

    async fn command(&mut self, stage: Stage, line: &str, want: u16) -> Result<Reply, Failure> {
        self.write(stage, line.as_bytes()).await?;
        self.expect(stage, want).await
    }

    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Failure> {
        let io = self.io.get_mut();
        within(self.timeout, stage, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await?
        .map_err(|error| Failure::Io { stage, error })
    }

    /// Reads one reply and checks its code.
    async fn expect(&mut self, stage: Stage, want: u16) -> Result<Reply, Failure> {
        let reply = within(self.timeout, stage, self.read_reply(stage)).await??;
        if reply.code() == want {
            Ok(reply)
        } else {
            Err(Failure::Reply {
                stage,
                code: reply.code(),
                text: last_line(&reply),
            })
        }
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, Failure> {
        let mut reader = ReplyReader::new();
        loop {
            self.line.clear();
            let n = (&mut self.io)
                .take(MAX_REPLY_LINE)
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|error| Failure::Io { stage, error })?;
            if n == 0 {
                return Err(Failure::Io {
                    stage,
                    error: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ),
                });
            }
            if !self.line.ends_with(b"\n") {
                return Err(Failure::Protocol {
                    stage,
                    what: format!("reply line longer than {MAX_REPLY_LINE} bytes"),
                });
            }
            match reader.push_line(&self.line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Protocol {
                        stage,
                        what: e.to_string(),
                    });
                }
            }
        }
    }
}

/// Runs `f` with the dialog's timeout.
async fn within<T>(
    after: Duration,
    stage: Stage,
    f: impl Future<Output = T>,
) -> Result<T, Failure> {
    tokio::time::timeout(after, f)
        .await
        .map_err(|_| Failure::Timeout { stage, after })
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    cfg: &Arc<ClientConfig>,
    target: &Target,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure> {
    let name = ServerName::try_from(target.host.clone()).map_err(|e| Failure::Protocol {
        stage: Stage::StartTls,
        what: format!("{:?} is not a TLS server name: {e}", target.host),
    })?;
    within(
        target.timeout,
        Stage::StartTls,
        TlsConnector::from(cfg.clone()).connect(name, io),
    )
    .await?
    .map_err(Failure::Tls)
}

/// A TLS client configuration that accepts any server certificate: a load
/// generator measures servers, many of which run with self-signed
/// certificates, and must not be used to carry real mail. Signatures are
/// still checked, so the handshake costs what a verifying client's does.
pub fn insecure_tls_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds() {
        let io = |stage| Failure::Io {
            stage,
            error: io::Error::from(io::ErrorKind::ConnectionReset),
        };
        let reply = |stage, code| Failure::Reply {
            stage,
            code,
            text: format!("{code} x"),
        };
        // (failure, kind, connection still usable)
        let cases = [
            (reply(Stage::Rcpt, 550), "550", true),
            (reply(Stage::EndOfData, 451), "451", true),
            (reply(Stage::Mail, 421), "421", false),
            (reply(Stage::Greeting, 554), "554", false),
            (reply(Stage::Ehlo, 500), "500", false),
            (io(Stage::Connect), "connect", false),
            (io(Stage::EndOfData), "io", false),
            (
                Failure::Timeout {
                    stage: Stage::EndOfData,
                    after: Duration::from_secs(1),
                },
                "timeout",
                false,
            ),
            (
                Failure::Protocol {
                    stage: Stage::Data,
                    what: "x".into(),
                },
                "protocol",
                false,
            ),
        ];
        for (f, kind, usable) in cases {
            assert_eq!(f.kind(), kind, "{f}");
            assert_eq!(f.connection_usable(), usable, "{f}");
        }
    }

    /// A scripted server on a socket pair: the client's dialog, replies in
    /// order, and what it does when the server misbehaves.
    async fn serve(script: &'static [&'static [u8]]) -> (Target, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            for reply in script {
                s.write_all(reply).await.expect("write");
                // Read until the client's next command (or the data's end).
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return got,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if got.ends_with(b"\r\n") {
                        break;
                    }
                }
            }
            got
        });
        let target = Target {
            addr,
            host: "127.0.0.1".into(),
            helo: "client.test".into(),
            tls: TlsMode::None,
            timeout: Duration::from_secs(5),
        };
        (target, server)
    }

    #[tokio::test]
    async fn dialog() {
        let (target, server) = serve(&[
            b"220 test ESMTP\r\n",
            b"250-test\r\n250 PIPELINING\r\n",
            b"250 sender ok\r\n",
            b"250 rcpt ok\r\n",
            b"354 go\r\n",
            b"250 queued\r\n",
            b"221 bye\r\n",
        ])
        .await;
        let mut c = Connection::open(&target).await.expect("open");
        let latency = c.send("a@b", "c@d", b"x\r\n.\r\n").await.expect("sent");
        assert!(latency < Duration::from_secs(5));
        c.quit().await;
        let got = server.await.expect("server");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "EHLO client.test\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
        );
    }

    #[tokio::test]
    async fn refused_after_dot() {
        let (target, _server) = serve(&[
            b"220 test\r\n",
            b"250 test\r\n",
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go\r\n",
            b"451 4.3.0 disk trouble\r\n",
        ])
        .await;
        let mut c = Connection::open(&target).await.expect("open");
        let err = c
            .send("a@b", "c@d", b"x\r\n.\r\n")
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), "451");
        assert!(err.connection_usable());
        assert_eq!(err.to_string(), "end of data: 451 4.3.0 disk trouble");
    }

    #[tokio::test]
    async fn closed_before_reply() {
        let (target, _server) = serve(&[
            b"220 test\r\n",
            b"250 test\r\n",
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go\r\n",
        ])
        .await;
        let mut c = Connection::open(&target).await.expect("open");
        let err = c
            .send("a@b", "c@d", b"x\r\n.\r\n")
            .await
            .expect_err("closed");
        assert_eq!(err.kind(), "io", "{err}");
        assert!(!err.connection_usable());
    }

    #[tokio::test]
    async fn starttls_not_offered() {
        let (mut target, _server) = serve(&[b"220 test\r\n", b"250 test\r\n"]).await;
        target.tls = TlsMode::StartTls(insecure_tls_config().expect("tls config"));
        let err = Connection::open(&target).await.err().expect("refused");
        assert_eq!(err.kind(), "protocol", "{err}");
    }

    #[tokio::test]
    async fn garbage_reply() {
        let (target, _server) = serve(&[b"HTTP/1.1 400 Bad Request\r\n"]).await;
        let err = Connection::open(&target).await.err().expect("garbage");
        assert_eq!(err.kind(), "protocol", "{err}");
    }

    #[tokio::test]
    async fn connection_refused() {
        // Bind and drop a listener to get a port nothing listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let target = Target {
            addr,
            host: "127.0.0.1".into(),
            helo: "client.test".into(),
            tls: TlsMode::None,
            timeout: Duration::from_secs(5),
        };
        let err = Connection::open(&target).await.err().expect("refused");
        assert_eq!(err.kind(), "connect", "{err}");
    }
}
