//! Sender callouts (`smtp.sender_callout`): asking the sender's own mail
//! host whether it would take mail for the sender, as Exim's
//! `verify = sender/callout` does: connect to the hosts routing found,
//! `EHLO`, `MAIL FROM:<>`, `RCPT TO:<sender>`, `QUIT`, and no message.
//!
//! Off by default, as in Exim: a callout is load on someone else's server
//! for every message received, it can be abused to make this host probe
//! others, and a forged sender in spam makes the callout look like
//! address harvesting to the host asked. Limits, as Exim's: 30 s per
//! response, 60 s for the whole callout, at most 10 at once; answers are
//! cached (positive 24 h, negative 2 h) so that a sender is asked about
//! once a day, not per message. Routing has already refused loopback and
//! this host's own addresses (`ignore_target_hosts`, the MX self check),
//! so a callout never reaches back into this server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::remote::Address;

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
const POSITIVE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const NEGATIVE_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// A reply line longer than this, or a reply of more lines, is garbage.
const LINE_MAX: usize = 4096;
const LINES_MAX: usize = 64;

/// What a callout came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The sender's host would take mail for it.
    Accepted,
    /// It refused (the reply, for the log and the client).
    Refused(String),
    /// No answer could be had (connection, timeout, 4xx): not cached.
    Unknown(String),
}

/// Callouts in flight and their cache, one per daemon.
pub struct Callouts {
    limit: Semaphore,
    cache: Mutex<HashMap<String, (Answer, Instant)>>,
}

impl Default for Callouts {
    fn default() -> Callouts {
        Callouts {
            limit: Semaphore::new(10),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Callouts {
    /// Asks `hosts` (in order, until one answers) about `sender`, or
    /// answers from the cache. `helo`: the name this host greets with.
    pub async fn verify(&self, helo: &str, hosts: &[Address], sender: &str) -> Answer {
        let key = sender.to_ascii_lowercase();
        if let Some((answer, until)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && Instant::now() < *until
        {
            return answer.clone();
        }
        let Ok(_permit) = self.limit.acquire().await else {
            return Answer::Unknown("callouts are shutting down".into());
        };
        let answer = match tokio::time::timeout(TOTAL_TIMEOUT, ask_hosts(helo, hosts, sender)).await
        {
            Ok(a) => a,
            Err(_) => Answer::Unknown("callout took longer than 60 s".into()),
        };
        let lifetime = match answer {
            Answer::Accepted => Some(POSITIVE_LIFETIME),
            Answer::Refused(_) => Some(NEGATIVE_LIFETIME),
            Answer::Unknown(_) => None,
        };
        if let Some(l) = lifetime {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            cache.insert(key, (answer.clone(), now + l));
        }
        answer
    }
}

async fn ask_hosts(helo: &str, hosts: &[Address], sender: &str) -> Answer {
    let mut last = Answer::Unknown("no host to ask".into());
    for h in hosts {
        match ask(helo, h, sender).await {
            Ok(answer @ (Answer::Accepted | Answer::Refused(_))) => return answer,
            Ok(unknown) => last = unknown,
            Err(e) => last = Answer::Unknown(format!("{} [{}]: {e}", h.host, h.ip)),
        }
    }
    last
}

/// One conversation: the reply code and text of each step decide.
async fn ask(helo: &str, h: &Address, sender: &str) -> std::io::Result<Answer> {
    let stream = tokio::time::timeout(RESPONSE_TIMEOUT, TcpStream::connect((h.ip, h.port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let (code, text) = reply(&mut r).await?;
    if code != 220 {
        return Ok(Answer::Unknown(format!("greeting: {text}")));
    }
    send(&mut w, &format!("EHLO {helo}\r\n")).await?;
    let (mut code, _) = reply(&mut r).await?;
    if code / 100 != 2 {
        send(&mut w, &format!("HELO {helo}\r\n")).await?;
        code = reply(&mut r).await?.0;
        if code / 100 != 2 {
            return Ok(Answer::Unknown(format!(
                "{} [{}] refused HELO",
                h.host, h.ip
            )));
        }
    }
    send(&mut w, "MAIL FROM:<>\r\n").await?;
    let (code, text) = reply(&mut r).await?;
    let verdict = |code: u16, text: String| match code / 100 {
        2 => None,
        5 => Some(Answer::Refused(text)),
        _ => Some(Answer::Unknown(text)),
    };
    if let Some(a) = verdict(
        code,
        format!("{} [{}] after MAIL FROM:<>: {text}", h.host, h.ip),
    ) {
        let _ = send(&mut w, "QUIT\r\n").await;
        return Ok(a);
    }
    send(&mut w, &format!("RCPT TO:<{sender}>\r\n")).await?;
    let (code, text) = reply(&mut r).await?;
    let answer = verdict(
        code,
        format!("{} [{}] after RCPT TO:<{sender}>: {text}", h.host, h.ip),
    )
    .unwrap_or(Answer::Accepted);
    let _ = send(&mut w, "QUIT\r\n").await;
    Ok(answer)
}

async fn send(w: &mut tokio::net::tcp::OwnedWriteHalf, line: &str) -> std::io::Result<()> {
    w.write_all(line.as_bytes()).await?;
    w.flush().await
}

/// One reply: its code and its lines joined, within the limits.
async fn reply<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<(u16, String)> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut text = Vec::new();
    for _ in 0..LINES_MAX {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            (&mut *r)
                .take(LINE_MAX as u64 + 2)
                .read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply in 30 s"))??;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(bad("connection closed, or a line too long"));
        }
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| bad("not an SMTP reply"))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        // Escaped: the text goes into a reply and the log.
        text.push(line.escape_debug().to_string());
        if !more {
            return Ok((code, text.join(" ")));
        }
    }
    Err(bad("a reply of too many lines"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_read_within_limits() {
        let mut ok: &[u8] = b"250-mx.example\r\n250 SIZE\r\n";
        assert_eq!(
            reply(&mut ok).await.unwrap(),
            (250, "250-mx.example 250 SIZE".into())
        );
        let mut garbage: &[u8] = b"hello\r\n";
        assert!(reply(&mut garbage).await.is_err());
        let mut cut: &[u8] = b"250-a\r\n";
        assert!(reply(&mut cut).await.is_err());
        let long = format!("250 {}\r\n", "x".repeat(5000));
        let mut long = long.as_bytes();
        assert!(reply(&mut long).await.is_err());
    }
}
