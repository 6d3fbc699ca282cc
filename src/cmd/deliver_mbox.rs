//! `sluice deliver --mbox`: appending to an mbox under the configured locks
//! (mailstore's appender: all or nothing, durable before success).

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mailstore::error::sysexits;

use crate::cmd::deliver::Failure;
use crate::config::Config;
use crate::transport::mbox::MboxTransport;

/// Appends `prefix` + `input` to the mbox at `path`.
pub fn append(
    cfg: &Config,
    path: &Path,
    owner: Option<(u32, u32)>,
    sender: Option<&str>,
    prefix: &[u8],
    input: &mut dyn Read,
) -> Result<(), Failure> {
    // The same mbox transport as the queue's deliveries.
    let transport = MboxTransport {
        variant: cfg.mbox.format,
        locks: cfg.mbox.lock_options(true),
    };
    let over_limit = Arc::new(AtomicBool::new(false));
    let limited = Limit {
        inner: prefix.chain(input),
        left: if cfg.message_size_limit > 0 {
            cfg.message_size_limit
        } else {
            u64::MAX
        },
        tripped: over_limit.clone(),
    };
    match transport.append(path, owner, sender.unwrap_or(""), limited) {
        Ok(done) => {
            for n in done.notices {
                eprintln!("sluice deliver: {}: {n}", path.display());
            }
            Ok(())
        }
        // The appender cut the mbox back; say why in the caller's terms.
        Err(_) if over_limit.load(Ordering::Relaxed) => Err(Failure {
            code: sysexits::DATAERR,
            message: format!(
                "message: larger than the limit of {} bytes",
                cfg.message_size_limit
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Fails the read once more than `left` bytes have come through.
struct Limit<R> {
    inner: R,
    left: u64,
    tripped: Arc<AtomicBool>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.tripped.store(true, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message size limit exceeded",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
