//! The messages `sluice-load` sends: exactly `size` bytes of RFC 5322 text
//! (header fields, the blank line, a body), every line ending in CRLF, and
//! their DATA form (dot-stuffed, followed by the terminating `.` line).
//!
//! The size is what a server stores before adding its own `Received:`
//! field, so throughput in bytes is comparable between servers.

use std::fmt::Write as _;

/// Characters of a full body line, CRLF not counted: under RFC 5322's
/// recommended 78, so no server or filter rewraps them.
pub const LINE_CHARS: usize = 76;

/// A full body line with its CRLF.
const LINE_BYTES: usize = LINE_CHARS + 2;

/// Body lines are cut from this text, shifted by one character per line so
/// that consecutive lines differ. It has no `.`: the body never needs
/// dot-stuffing, so the bytes on the wire are the message bytes plus the
/// terminator (the stuffing below still guards the header fields).
const FILL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";

/// What stays the same in every message of a run.
#[derive(Debug, Clone)]
pub struct Template {
    /// `From:` and the envelope sender.
    pub from: String,
    /// `To:` and the envelope recipient.
    pub to: String,
    /// The `Date:` field's value (one date for the whole run).
    pub date: String,
    /// Makes `Message-ID:`s unique across runs: `<run>.<seq>@sluice-load`.
    pub run: String,
    /// Bytes of each message.
    pub size: usize,
}

/// The size asked for cannot hold the header fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message size {size} is too small: the header fields of message {seq} need {min} bytes")]
pub struct TooSmall {
    pub size: usize,
    pub seq: u64,
    pub min: usize,
}

impl Template {
    /// Message number `seq` (0-based), exactly `self.size` bytes.
    pub fn build(&self, seq: u64) -> Result<Vec<u8>, TooSmall> {
        let mut msg = self.header(seq, false);
        // +2: the blank line that ends the header.
        let min = msg.len() + 2;
        if self.size < min {
            return Err(TooSmall {
                size: self.size,
                seq,
                min,
            });
        }
        if self.size - min == 1 {
            // A body of one byte cannot end in CRLF: move the byte into
            // the header instead and send an empty body.
            msg = self.header(seq, true);
        }
        msg.push_str("\r\n");
        let mut out = msg.into_bytes();
        let body = self.size - out.len();
        out.reserve_exact(body);
        fill_body(&mut out, body);
        debug_assert_eq!(out.len(), self.size);
        Ok(out)
    }

    fn header(&self, seq: u64, pad: bool) -> String {
        let mut h = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = write!(
            h,
            "From: <{from}>\r\nTo: <{to}>\r\nSubject: sluice-load message {seq}{pad}\r\n\
             Date: {date}\r\nMessage-ID: <{run}.{seq}@sluice-load>\r\n",
            from = self.from,
            to = self.to,
            pad = if pad { "." } else { "" },
            date = self.date,
            run = self.run,
        );
        h
    }
}

/// Appends `len` bytes of body: CRLF-terminated lines of at most
/// [`LINE_CHARS`] characters. `len` is 0 or at least 2.
fn fill_body(out: &mut Vec<u8>, len: usize) {
    if len == 0 {
        return;
    }
    // As few lines as fit, the characters spread evenly over them.
    let lines = len.div_ceil(LINE_BYTES);
    let chars = len - 2 * lines;
    for i in 0..lines {
        let n = chars / lines + usize::from(i < chars % lines);
        out.extend((0..n).map(|j| FILL[(i + j) % FILL.len()]));
        out.extend_from_slice(b"\r\n");
    }
}

/// The bytes sent after `DATA`'s 354: the message with every line that
/// begins with `.` given one more (RFC 5321 4.5.2), then the `.` line.
/// `msg` must end in CRLF, as [`Template::build`]'s messages do.
pub fn data_wire(msg: &[u8]) -> Vec<u8> {
    let dots = msg
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'.' && (i == 0 || msg[i - 1] == b'\n'))
        .count();
    let mut out = Vec::with_capacity(msg.len() + dots + 3);
    let mut line_start = true;
    for &b in msg {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `Date:` value for a Unix time, in UTC (RFC 5322 3.3).
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = mailstore::time::civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(size: usize) -> Template {
        Template {
            from: "sender@example.org".into(),
            to: "load@localhost".into(),
            date: rfc5322_date(1_700_000_000),
            run: "r1".into(),
            size,
        }
    }

    /// Header bytes of message `seq` (the smallest message it can be).
    fn min_size(seq: u64) -> usize {
        match template(0).build(seq) {
            Err(TooSmall { min, .. }) => min,
            Ok(_) => panic!("size 0 accepted"),
        }
    }

    fn check_lines(msg: &[u8]) {
        assert!(msg.ends_with(b"\r\n"), "no final CRLF");
        // Without the final LF, every piece split at LF is a line.
        for (i, line) in msg[..msg.len() - 1].split(|&b| b == b'\n').enumerate() {
            assert!(line.ends_with(b"\r"), "line {i} lacks CR");
            assert!(line.len() - 1 <= LINE_CHARS, "line {i} too long");
            assert!(
                !line[..line.len() - 1].contains(&b'\r'),
                "bare CR in line {i}"
            );
        }
    }

    #[test]
    fn exact_size() {
        let min = min_size(7);
        // Every size from the minimum over several line lengths, and the
        // awkward ones: header only, header + 1, exact multiples of a line.
        let sizes: Vec<usize> = (min..min + 3 * LINE_BYTES + 3)
            .chain([4096, 10_000, 65_536, 1 << 20])
            .collect();
        for size in sizes {
            let msg = template(size).build(7).expect("fits");
            assert_eq!(msg.len(), size, "size {size}");
            check_lines(&msg);
            let blank = msg.windows(4).position(|w| w == b"\r\n\r\n");
            assert!(blank.is_some(), "size {size}: no end of header");
        }
    }

    #[test]
    fn too_small() {
        let min = min_size(12_345);
        assert!(min > 100, "header is {min} bytes");
        for size in [0, 1, min - 1] {
            let err = template(size).build(12_345).expect_err("too small");
            assert_eq!(
                err,
                TooSmall {
                    size,
                    seq: 12_345,
                    min
                }
            );
        }
        assert_eq!(template(min).build(12_345).map(|m| m.len()), Ok(min));
        // Larger numbers make longer Message-IDs and Subjects.
        assert_eq!(min_size(123_456), min + 2);
    }

    #[test]
    fn messages_differ_by_number() {
        let t = template(4096);
        let a = t.build(1).expect("fits");
        let b = t.build(2).expect("fits");
        assert_ne!(a, b);
        let text = String::from_utf8(a).expect("ascii");
        assert!(text.contains("Message-ID: <r1.1@sluice-load>\r\n"));
        assert!(text.starts_with("From: <sender@example.org>\r\nTo: <load@localhost>\r\n"));
    }

    #[test]
    fn body_lines() {
        // (body bytes, expected line lengths without CRLF)
        let cases: &[(usize, &[usize])] = &[
            (0, &[]),
            (2, &[0]),
            (3, &[1]),
            (78, &[76]),
            (79, &[38, 37]),
            (156, &[76, 76]),
            (157, &[51, 50, 50]),
        ];
        for &(len, want) in cases {
            let mut out = Vec::new();
            fill_body(&mut out, len);
            assert_eq!(out.len(), len);
            let got: Vec<usize> = out
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| l.len() - 1)
                .collect();
            assert_eq!(got, want, "len {len}");
            assert!(!out.contains(&b'.'));
        }
    }

    #[test]
    fn dot_stuffing() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b".a\r\n.b\r\n", b"..a\r\n..b\r\n.\r\n"),
            (b"a.b\r\n..\r\n", b"a.b\r\n...\r\n.\r\n"),
            (b"x\r\n\r\n.\r\n", b"x\r\n\r\n..\r\n.\r\n"),
            (b"", b".\r\n"),
        ];
        for &(msg, wire) in cases {
            assert_eq!(data_wire(msg), wire, "{:?}", String::from_utf8_lossy(msg));
        }
        // Built messages need none: the wire form adds only the terminator.
        let msg = template(4096).build(3).expect("fits");
        let wire = data_wire(&msg);
        assert_eq!(wire.len(), msg.len() + 3);
    }

    #[test]
    fn dates() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 +0000"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 +0000"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 +0000"),
        ];
        for (t, want) in cases {
            assert_eq!(rfc5322_date(t), want, "{t}");
        }
    }
}
