//! The message body in wire form: the stored message (LF line ends, or
//! CRLF already) becomes CRLF lines, dot-stuffed for DATA (RFC 5321
//! §4.5.2), streamed in pieces split anywhere.
//!
//! Nothing is held back between pieces, so the octets a piece encodes to
//! are known as soon as it is encoded: that is the size of its BDAT chunk.
//! A CR is passed on at once, and a LF after it adds nothing but itself; a
//! LF without a CR before it becomes CRLF. A CR not followed by LF stays
//! as it is: the content is not the transport's to change.

/// Converts the stored message to wire form, piece by piece.
#[derive(Debug, Clone)]
pub struct BodyEncoder {
    dot_stuff: bool,
    /// The last octet passed on was a LF (or nothing was yet): a line starts.
    line_start: bool,
    /// The last octet passed on was a CR.
    after_cr: bool,
    /// Octets written so far, stuffing and line ends included.
    written: u64,
}

impl BodyEncoder {
    /// An encoder for DATA (`dot_stuff`) or for BDAT (no stuffing).
    pub fn new(dot_stuff: bool) -> BodyEncoder {
        BodyEncoder {
            dot_stuff,
            line_start: true,
            after_cr: false,
            written: 0,
        }
    }

    /// Appends the wire form of `piece` to `out`; returns how many octets
    /// were appended.
    pub fn encode(&mut self, piece: &[u8], out: &mut Vec<u8>) -> usize {
        let before = out.len();
        out.reserve(piece.len() + piece.len() / 32 + 2);
        let mut rest = piece;
        while !rest.is_empty() {
            if self.line_start && self.dot_stuff && rest[0] == b'.' {
                out.push(b'.');
            }
            // Everything up to and including the next LF is one run.
            let (run, tail) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => rest.split_at(i + 1),
                None => (rest, &[][..]),
            };
            let (text, lf) = match run.split_last() {
                Some((b'\n', text)) => (text, true),
                _ => (run, false),
            };
            out.extend_from_slice(text);
            if let Some(&last) = text.last() {
                self.after_cr = last == b'\r';
            }
            if lf {
                if !self.after_cr {
                    out.push(b'\r');
                }
                out.push(b'\n');
                self.after_cr = false;
                self.line_start = true;
            } else {
                self.line_start = false;
            }
            rest = tail;
        }
        let n = out.len() - before;
        self.written += n as u64;
        n
    }

    /// Appends what ends the body: a CRLF if the body does not end with a
    /// line end, then for DATA the terminating `.` CRLF. Returns how many
    /// octets were appended.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
            self.line_start = true;
            self.after_cr = false;
        }
        if self.dot_stuff {
            out.extend_from_slice(b".\r\n");
        }
        let n = out.len() - before;
        self.written += n as u64;
        n
    }

    /// Octets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}
