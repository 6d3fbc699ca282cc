//! A 100 MB message is appended with flat memory: the appender streams it.
//! (Alone in its own test binary so that the process's peak memory is this
//! test's.)

use std::io::Read;
use std::time::SystemTime;

use mailstore::lock::LockOptions;
use mailstore::mbox::{AppendOptions, Appender, Mbox, Variant};

/// Produces `total` bytes of message: a header, then lines, every 50th of
/// which begins with "From " (to be quoted on the way).
struct Generated {
    header: &'static [u8],
    pos: u64,
    total: u64,
}

const LINE: &[u8] = b"some body text of a large message, the same line again and again....\n";
const FROM_LINE: &[u8] = b"From the archive: this line must be quoted by the appender to stay..\n";

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.pos < self.total {
            let p = self.pos as usize;
            // The rest of the current line (or header); all body lines have
            // the same length, so position -> line is arithmetic.
            let src: &[u8] = if p < self.header.len() {
                &self.header[p..]
            } else {
                let body = (p - self.header.len()) as u64;
                let len = LINE.len() as u64;
                let line = if (body / len) % 50 == 49 {
                    FROM_LINE
                } else {
                    LINE
                };
                &line[(body % len) as usize..]
            };
            let k = src
                .len()
                .min(buf.len() - n)
                .min((self.total - self.pos) as usize);
            buf[n..n + k].copy_from_slice(&src[..k]);
            n += k;
            self.pos += k as u64;
        }
        Ok(n)
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mb_message_is_streamed() {
    assert_eq!(LINE.len(), FROM_LINE.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let header: &'static [u8] = b"Subject: big\n\n";
    let lines: u64 = 100 * 1024 * 1024 / LINE.len() as u64;
    let total = header.len() as u64 + lines * LINE.len() as u64;
    let before = peak_rss_kib();
    let app = Appender::new(AppendOptions::default());
    let input = Generated {
        header,
        pos: 0,
        total,
    };
    let appended = app
        .append(&path, "big@example.org", SystemTime::now(), input)
        .unwrap();
    if let (Some(a), Some(b)) = (before, peak_rss_kib()) {
        let grew_mib = (b.saturating_sub(a)) / 1024;
        eprintln!("peak memory grew by {grew_mib} MiB");
        assert!(
            grew_mib < 24,
            "peak memory grew by {grew_mib} MiB appending a 100 MB message"
        );
    } else {
        eprintln!("NOTE: /proc/self/status not readable; memory not checked");
    }
    let quoted_lines = lines / 50;
    assert_eq!(appended.length, appended_len(total, quoted_lines));

    // Read back: one message, the body exactly as generated.
    let mbox = Mbox::open_locked(&path, &LockOptions::reader()).unwrap();
    let msgs: Vec<_> = mbox.reader(Variant::Mboxrd).unwrap().collect();
    assert_eq!(msgs.len(), 1);
    let bytes = msgs[0].bytes();
    assert_eq!(bytes.len() as u64, total);
    let mut again = Generated {
        header,
        pos: 0,
        total,
    };
    let mut want = Vec::with_capacity(total as usize);
    again.read_to_end(&mut want).unwrap();
    assert!(bytes.as_ref() == want.as_slice(), "body differs");
}

/// From_ line + quoted message + blank line.
fn appended_len(total: u64, quoted_lines: u64) -> u64 {
    let from = mailstore::mbox::from_line::format("big@example.org", 0).len() as u64;
    // The date's length does not depend on the time (asctime pads).
    from + total + quoted_lines + 1
}
