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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;
    use crate::data::DotDecoder;
    use proptest::prelude::*;

    /// The message as a server stores it: every line end CRLF, and a CRLF
    /// after a last line that had none.
    fn expected(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut after_cr = false;
        for &b in message {
            if b == b'\n' && !after_cr {
                out.push(b'\r');
            }
            out.push(b);
            after_cr = b == b'\r';
        }
        if !message.is_empty() && !message.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Encodes `message` cut at `cuts` into wire form.
    fn encode(message: &[u8], cuts: &[usize], dot_stuff: bool) -> Vec<u8> {
        let mut encoder = BodyEncoder::new(dot_stuff);
        let mut wire = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (message.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([message.len()]) {
            let before = wire.len();
            let n = encoder.encode(&message[start..cut], &mut wire);
            // The count is the chunk's exact wire size.
            assert_eq!(n, wire.len() - before);
            assert_eq!(
                encoder.encode(b"", &mut wire),
                0,
                "an empty piece adds nothing"
            );
            start = cut;
        }
        encoder.finish(&mut wire);
        assert_eq!(encoder.written(), wire.len() as u64);
        wire
    }

    /// What the server's DATA reader makes of `wire`: the content, and
    /// whether the end of data came exactly at the end of `wire`.
    fn decode(wire: &[u8]) -> (Vec<u8>, bool) {
        let mut decoder = DotDecoder::new();
        let mut body = Body::new(0, 0);
        let (used, ended) = decoder.feed(wire, &mut body);
        let content = body.finish().expect("no bare CR or LF, no fault");
        (content.data, ended && used == wire.len())
    }

    #[test]
    fn encodes_examples() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"a\n.\n..b\n", b"a\r\n..\r\n...b\r\n.\r\n"),
            (b"a.\nb", b"a.\r\nb\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
        ];
        for (message, wire) in cases {
            for cut in 0..=message.len() {
                assert_eq!(
                    encode(message, &[cut], true),
                    wire,
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(message)
                );
            }
        }
        assert_eq!(encode(b".a\n.", &[], false), b".a\r\n.\r\n");
    }

    fn message() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b".".to_vec()),
                Just(b"..".to_vec()),
                Just(b"\n.\n".to_vec()),
                Just(b"\r\n.\r\n".to_vec()),
                Just(b"a".to_vec()),
                Just("é".as_bytes().to_vec()),
                proptest::collection::vec(b'!'..=b'~', 0..10),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

        /// The server's own DATA reader gives back the message, whatever
        /// the pieces, and finds the end exactly at the end.
        #[test]
        fn data_reader_gives_back_the_message(
            message in message(),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let wire = encode(&message, &cuts, true);
            let (content, ended) = decode(&wire);
            prop_assert!(ended, "{:?}", String::from_utf8_lossy(&wire));
            prop_assert_eq!(content, expected(&message));
        }

        /// BDAT's chunks, put together, are the message with CRLF line
        /// ends, whatever the pieces.
        #[test]
        fn chunks_are_the_message(
            message in message(),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            prop_assert_eq!(encode(&message, &cuts, false), expected(&message));
        }
    }
}
