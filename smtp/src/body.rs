//! The message content of one transaction, as DATA (after dot-unstuffing)
//! or BDAT chunks deliver it, with the checks that need no outside
//! knowledge.
//!
//! Faults are recorded, never acted on at once: a DATA message is refused
//! only after its final dot (the client cannot be interrupted while it
//! sends), a BDAT message after its LAST chunk. Once the message is bound to
//! be refused its bytes are no longer kept, so an oversized or malformed
//! message costs no memory however long it runs.

/// Why a message was refused, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Larger than the size limit (552 5.3.4).
    TooBig,
    /// A LF not preceded by CR (554 5.6.0): the ambiguity behind SMTP
    /// smuggling, where servers disagree on where a message ends.
    BareLf,
    /// A CR not followed by LF (554 5.6.0).
    BareCr,
    /// A line longer than the line limit (554 5.6.0).
    LongLine,
}

#[derive(Debug)]
pub(crate) struct Body {
    data: Vec<u8>,
    size: u64,
    /// 0: no size limit.
    size_limit: u64,
    /// Octets allowed on one line, CRLF excluded; 0: no limit.
    line_limit: usize,
    line_len: usize,
    after_cr: bool,
    too_big: bool,
    bare_lf: bool,
    bare_cr: bool,
    long_line: bool,
    eight_bit: bool,
}

impl Body {
    pub(crate) fn new(size_limit: u64, line_limit: usize) -> Body {
        Body {
            data: Vec::new(),
            size: 0,
            size_limit,
            line_limit,
            line_len: 0,
            after_cr: false,
            too_big: false,
            bare_lf: false,
            bare_cr: false,
            long_line: false,
            eight_bit: false,
        }
    }

    /// Octets received so far (unstuffed), kept or not.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Would `more` octets take the message past the size limit?
    pub(crate) fn would_exceed(&self, more: u64) -> bool {
        self.size_limit != 0 && self.size.saturating_add(more) > self.size_limit
    }

    /// Octets kept and not yet handed over.
    pub(crate) fn kept(&self) -> usize {
        self.data.len()
    }

    /// Hands over the octets kept so far (a driver writing the message out
    /// while the rest arrives); [`Body::finish`] then gives only what came
    /// after. The checks still cover the whole message.
    pub(crate) fn take_kept(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// The message is bound to be refused (too big, malformed).
    pub(crate) fn doomed(&self) -> bool {
        self.too_big || self.bare_lf || self.bare_cr || self.long_line
    }

    /// Appends message content.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size_limit != 0 && self.size > self.size_limit {
            self.too_big = true;
        }
        self.scan(bytes);
        if self.doomed() {
            // Free what was kept; nothing of this message will be delivered.
            self.data = Vec::new();
        } else {
            self.data.extend_from_slice(bytes);
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    self.line_len = 0;
                    continue;
                }
                self.bare_cr = true;
            }
            match b {
                b'\r' => self.after_cr = true,
                b'\n' => {
                    self.bare_lf = true;
                    self.line_len = 0;
                }
                _ => {
                    self.line_len += 1;
                    if self.line_limit != 0 && self.line_len > self.line_limit {
                        self.long_line = true;
                    }
                    if b >= 0x80 {
                        self.eight_bit = true;
                    }
                }
            }
        }
    }

    /// The message bytes, or the first fault in [`Fault`] order.
    pub(crate) fn finish(mut self) -> Result<Content, Fault> {
        if self.after_cr {
            self.bare_cr = true;
        }
        if self.too_big {
            Err(Fault::TooBig)
        } else if self.bare_lf {
            Err(Fault::BareLf)
        } else if self.bare_cr {
            Err(Fault::BareCr)
        } else if self.long_line {
            Err(Fault::LongLine)
        } else {
            Ok(Content {
                data: self.data,
                eight_bit: self.eight_bit,
            })
        }
    }
}

/// A complete, accepted message body.
#[derive(Debug)]
pub(crate) struct Content {
    pub data: Vec<u8>,
    pub eight_bit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one (the faults must not depend on where the
    /// input is split) and reports the outcome.
    fn run(chunks: &[&[u8]], size_limit: u64, line_limit: usize) -> Result<(Vec<u8>, bool), Fault> {
        let mut body = Body::new(size_limit, line_limit);
        for chunk in chunks {
            body.push(chunk);
        }
        body.finish().map(|c| (c.data, c.eight_bit))
    }

    #[test]
    fn checks_content() {
        let long = [b'x'; 999];
        let exact = [b'x'; 998];
        let long_line = [&long[..], b"\r\n"].concat();
        let exact_line = [&exact[..], b"\r\n"].concat();
        // (input chunks, size limit, line limit, Ok(eight bit) or the fault)
        type Case<'a> = (Vec<&'a [u8]>, u64, usize, Result<bool, Fault>);
        let cases: Vec<Case> = vec![
            (vec![b"a\r\nb\r\n"], 0, 998, Ok(false)),
            (vec![b"a\r", b"\nb\r\n"], 0, 998, Ok(false)),
            (vec![b""], 0, 998, Ok(false)),
            (vec![b"caf\xc3\xa9\r\n"], 0, 998, Ok(true)),
            (vec![b"a\nb\r\n"], 0, 998, Err(Fault::BareLf)),
            (vec![b"a\r"], 0, 998, Err(Fault::BareCr)),
            (vec![b"a\rb\r\n"], 0, 998, Err(Fault::BareCr)),
            (vec![b"a\r\r\n"], 0, 998, Err(Fault::BareCr)),
            (vec![b"a\r", b"b"], 0, 998, Err(Fault::BareCr)),
            (vec![b"\n.\n"], 0, 998, Err(Fault::BareLf)),
            (vec![&exact_line], 0, 998, Ok(false)),
            (vec![&long_line], 0, 998, Err(Fault::LongLine)),
            (
                vec![&long[..500], &long[500..], b"\r\n"],
                0,
                998,
                Err(Fault::LongLine),
            ),
            (vec![&long_line], 0, 0, Ok(false)),
            (vec![b"0123456789"], 10, 998, Ok(false)),
            (vec![b"01234", b"567890"], 10, 998, Err(Fault::TooBig)),
            // Size is reported first, then bare line endings, then long lines.
            (vec![b"a\nb", &long_line], 5, 998, Err(Fault::TooBig)),
            (vec![&long_line, b"a\rb"], 0, 998, Err(Fault::BareCr)),
        ];
        for (chunks, size_limit, line_limit, expected) in cases {
            let all: Vec<u8> = chunks.concat();
            let got = run(&chunks, size_limit, line_limit);
            let expected = expected.map(|eight| (all.clone(), eight));
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&all));
        }
    }

    #[test]
    fn content_handed_over_early_is_not_given_again() {
        let mut body = Body::new(20, 0);
        body.push(b"Subject: a\r\n\r\n");
        assert_eq!(body.kept(), 14);
        assert_eq!(body.take_kept(), b"Subject: a\r\n\r\n");
        body.push(b"b\r\n");
        assert!(!body.doomed());
        assert_eq!(body.finish().unwrap().data, b"b\r\n");
        // The size limit counts what was handed over.
        let mut body = Body::new(20, 0);
        body.push(b"Subject: a\r\n\r\n");
        body.take_kept();
        body.push(b"bbbbbbbbbb\r\n");
        assert!(body.doomed());
        assert_eq!(body.kept(), 0);
        assert_eq!(body.finish().unwrap_err(), Fault::TooBig);
    }

    #[test]
    fn forgets_data_of_a_doomed_message() {
        let mut body = Body::new(8, 0);
        body.push(b"abcdef");
        assert_eq!(body.data.len(), 6);
        body.push(b"ghij");
        assert!(body.data.is_empty() && body.data.capacity() == 0);
        assert_eq!(body.size(), 10);
        assert!(body.would_exceed(0));
        assert!(!Body::new(0, 0).would_exceed(u64::MAX));
    }
}
