//! `sendmail`'s side of the submission socket: whether to use it, and the
//! exchange.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use mailstore::error::sysexits;

use super::wire::{Reply, Request};
use crate::cmd::sendmail_args::SubmitArgs;
use crate::config::{Config, Submission};

/// How long to wait for the daemon's verdict once the message is sent.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether this submission goes through the daemon: always or never as
/// configured, else when this user may not write the spool.
pub fn wanted(cfg: &Config) -> bool {
    match cfg.submission {
        Submission::Daemon => true,
        Submission::Spool => false,
        Submission::Auto => !writable(&cfg.spool_dir()),
    }
}

/// Whether the real user can write `dir`, or make it: the nearest
/// existing directory on its path decides.
fn writable(dir: &Path) -> bool {
    let mut d = dir;
    loop {
        if d.exists() {
            return rustix::fs::access(d, rustix::fs::Access::WRITE_OK).is_ok();
        }
        match d.parent() {
            Some(p) => d = p,
            None => return false,
        }
    }
}

/// Sends `input` with `args` to the daemon; prints what it says and
/// returns the exit code, 75 when there is no daemon to take it.
pub fn submit(cfg: &Config, args: &SubmitArgs, input: &[u8]) -> i32 {
    let Some(path) = cfg.submission_socket.as_deref() else {
        eprintln!(
            "sluice: cannot write the spool and no submission_socket is configured: nothing queued"
        );
        return sysexits::TEMPFAIL;
    };
    let reply = exchange(path, args, input).unwrap_or_else(|e| Reply {
        exit: sysexits::TEMPFAIL,
        id: None,
        message: format!(
            "the mail daemon does not answer on {} ({e}): nothing queued, try again later",
            path.display()
        ),
    });
    if !reply.message.is_empty() {
        eprintln!("sluice: {}", reply.message);
    }
    if args.verbose
        && let Some(id) = &reply.id
    {
        println!("{id}");
    }
    reply.exit
}

/// `-bs` for a user who cannot write the spool: the SMTP session on
/// standard input and output is carried to the daemon, which runs it as
/// this user. Without a daemon, the session is refused with `421` and
/// the exit code is 75.
pub fn smtp_session(cfg: &Config) -> i32 {
    let connected = cfg.submission_socket.as_deref().map(UnixStream::connect);
    let Some(Ok(mut s)) = connected else {
        let _ = write!(
            std::io::stdout(),
            "421 4.3.2 {} mail daemon not available, try again later\r\n",
            cfg.primary_hostname
        );
        let _ = std::io::stdout().flush();
        return sysexits::TEMPFAIL;
    };
    if s.write_all(&[super::server::SMTP_REQUEST, b"\n"].concat())
        .is_err()
    {
        return sysexits::TEMPFAIL;
    }
    // What the user types goes to the daemon on a thread of its own; what
    // the daemon says comes back here, until it closes the session.
    if let Ok(mut to_daemon) = s.try_clone() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to_daemon);
            let _ = to_daemon.shutdown(std::net::Shutdown::Write);
        });
    }
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        }
    }
    sysexits::OK
}

fn exchange(path: &Path, args: &SubmitArgs, input: &[u8]) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    s.write_all(&Request::of(args).to_line())?;
    s.write_all(input)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut line = Vec::new();
    BufReader::new(&s).read_until(b'\n', &mut line)?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    Reply::parse(line).ok_or_else(|| {
        std::io::Error::other(format!(
            "an answer that is not the daemon's: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(100)])
        ))
    })
}
