//! `From ` quoting: how each variant keeps body lines from looking like
//! message separators, and how a reader undoes it.
//!
//! | variant  | writer                         | reader                          |
//! |----------|--------------------------------|---------------------------------|
//! | mboxrd   | `^>*From ` gets one more `>`   | `^>+From ` loses one `>`        |
//! | mboxo    | `^From ` becomes `>From `      | `^>From ` becomes `From `       |
//! | mboxcl   | as mboxo                       | as mboxo                        |
//! | mboxcl2  | nothing (Content-Length rules) | nothing                         |
//!
//! mboxrd is reversible: unquote(quote(x)) == x for every x. mboxo is lossy
//! by nature: a body line that was `>From ` before quoting reads back as
//! `From `, because the writer left it alone and the reader cannot tell it
//! from a quoted `From `.

use std::borrow::Cow;

use memchr::memmem;

use super::Variant;

const FROM: &[u8; 5] = b"From ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `>*From `
    Rd,
    /// `From ` only
    O,
    None,
}

fn rule(variant: Variant) -> Rule {
    match variant {
        Variant::Mboxrd => Rule::Rd,
        Variant::Mboxo | Variant::Mboxcl => Rule::O,
        Variant::Mboxcl2 => Rule::None,
    }
}

/// Removes `variant`'s quoting from message bytes. Borrows when there is
/// nothing to remove (the common case).
pub fn unquote(variant: Variant, bytes: &[u8]) -> Cow<'_, [u8]> {
    let rule = rule(variant);
    if rule == Rule::None {
        return Cow::Borrowed(bytes);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    for i in memmem::find_iter(bytes, b">From ") {
        // Walk back over the run of '>' to see whether it starts a line.
        let mut j = i;
        while j > 0 && bytes[j - 1] == b'>' {
            j -= 1;
        }
        if j != 0 && bytes[j - 1] != b'\n' {
            continue;
        }
        if rule == Rule::O && j != i {
            continue; // mboxo unquotes exactly one level
        }
        let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
        o.extend_from_slice(&bytes[copied..j]);
        copied = j + 1; // drop one '>'
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut o) => {
            o.extend_from_slice(&bytes[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Adds `variant`'s quoting to a whole message in memory.
pub fn quote(variant: Variant, bytes: &[u8]) -> Vec<u8> {
    let mut q = Quoter::new(variant);
    let mut out = Vec::with_capacity(bytes.len() + 16);
    q.push(bytes, &mut out);
    q.finish(&mut out);
    out
}

/// Streaming quoting: feed the message in pieces of any size (a line may
/// be split anywhere), then call [`Quoter::finish`].
#[derive(Debug, Clone)]
pub struct Quoter {
    rule: Rule,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the start of a line (or inside its possible `>*From ` prefix):
    /// `gts` '>' and the first `matched` bytes of "From " seen, not yet
    /// written.
    Prefix { gts: usize, matched: usize },
    /// Elsewhere in a line.
    InLine,
}

impl Quoter {
    /// A quoter positioned at the start of a message.
    pub fn new(variant: Variant) -> Quoter {
        let rule = rule(variant);
        Quoter {
            rule,
            state: if rule == Rule::None {
                State::InLine
            } else {
                State::Prefix { gts: 0, matched: 0 }
            },
        }
    }

    /// Quotes `input`, appending to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.rule == Rule::None {
            out.extend_from_slice(input);
            return;
        }
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::InLine => match memchr::memchr(b'\n', &input[i..]) {
                    Some(p) => {
                        out.extend_from_slice(&input[i..i + p + 1]);
                        i += p + 1;
                        self.state = State::Prefix { gts: 0, matched: 0 };
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        i = input.len();
                    }
                },
                State::Prefix { gts, matched } => {
                    let b = input[i];
                    if matched == 0 && b == b'>' && self.rule == Rule::Rd {
                        self.state = State::Prefix {
                            gts: gts + 1,
                            matched,
                        };
                        i += 1;
                    } else if b == FROM[matched] {
                        i += 1;
                        if matched + 1 == FROM.len() {
                            out.push(b'>');
                            out.resize(out.len() + gts, b'>');
                            out.extend_from_slice(FROM);
                            self.state = State::InLine;
                        } else {
                            self.state = State::Prefix {
                                gts,
                                matched: matched + 1,
                            };
                        }
                    } else {
                        // Not a From line: write what was held back and go on
                        // with this byte as ordinary line content.
                        self.flush_prefix(out);
                    }
                }
            }
        }
    }

    /// Writes whatever prefix is still held back (a message ending in the
    /// middle of `>>Fro`, say).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_prefix(out);
    }

    fn flush_prefix(&mut self, out: &mut Vec<u8>) {
        if let State::Prefix { gts, matched } = self.state {
            out.resize(out.len() + gts, b'>');
            out.extend_from_slice(&FROM[..matched]);
        }
        self.state = State::InLine;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quote_unquote_table() {
        // (variant, original, quoted, read back)
        let table: &[(Variant, &str, &str, &str)] = &[
            (
                Variant::Mboxrd,
                "a\nFrom x\n",
                "a\n>From x\n",
                "a\nFrom x\n",
            ),
            (
                Variant::Mboxrd,
                "a\n>From x\n",
                "a\n>>From x\n",
                "a\n>From x\n",
            ),
            (Variant::Mboxrd, ">>From x", ">>>From x", ">>From x"),
            (Variant::Mboxrd, "From x", ">From x", "From x"),
            (Variant::Mboxrd, "a From x\n", "a From x\n", "a From x\n"),
            (
                Variant::Mboxrd,
                "a\n> From x\n",
                "a\n> From x\n",
                "a\n> From x\n",
            ),
            (Variant::Mboxrd, "a\nFrom\n", "a\nFrom\n", "a\nFrom\n"),
            (Variant::Mboxrd, "a\nFrom:x\n", "a\nFrom:x\n", "a\nFrom:x\n"),
            (
                Variant::Mboxrd,
                "a\r\nFrom x\r\n",
                "a\r\n>From x\r\n",
                "a\r\nFrom x\r\n",
            ),
            (Variant::Mboxrd, "\n>>", "\n>>", "\n>>"),
            (Variant::Mboxo, "a\nFrom x\n", "a\n>From x\n", "a\nFrom x\n"),
            // mboxo's loss: >From written as is, read back as From.
            (
                Variant::Mboxo,
                "a\n>From x\n",
                "a\n>From x\n",
                "a\nFrom x\n",
            ),
            (
                Variant::Mboxo,
                "a\n>>From x\n",
                "a\n>>From x\n",
                "a\n>>From x\n",
            ),
            (
                Variant::Mboxcl,
                "From x\n>From y",
                ">From x\n>From y",
                "From x\nFrom y",
            ),
            (
                Variant::Mboxcl2,
                "From x\n>From y",
                "From x\n>From y",
                "From x\n>From y",
            ),
        ];
        for &(v, orig, quoted, back) in table {
            assert_eq!(
                String::from_utf8_lossy(&quote(v, orig.as_bytes())),
                quoted,
                "{v} quote {orig:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&unquote(v, quoted.as_bytes())),
                back,
                "{v} unquote {quoted:?}"
            );
        }
    }

    #[test]
    fn unquote_borrows_when_nothing_to_do() {
        assert!(matches!(
            unquote(Variant::Mboxrd, b"a\nb >From c\n"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            unquote(Variant::Mboxrd, b"a\n>From c\n"),
            Cow::Owned(_)
        ));
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        // Bodies built from pieces that matter, plus arbitrary bytes.
        let piece = prop_oneof![
            Just(b"From ".to_vec()),
            Just(b">".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"Fro".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn mboxrd_round_trip(b in body()) {
            let q = quote(Variant::Mboxrd, &b);
            let back = unquote(Variant::Mboxrd, &q);
            prop_assert_eq!(back.as_ref(), &b[..]);
            // No line of the quoted text starts with "From ".
            prop_assert!(!q.starts_with(b"From "));
            prop_assert!(memmem::find(&q, b"\nFrom ").is_none());
        }

        #[test]
        fn streaming_equals_whole(b in body(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
            for v in [Variant::Mboxrd, Variant::Mboxo, Variant::Mboxcl2] {
                let whole = quote(v, &b);
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (b.len() + 1)).collect();
                cuts.sort_unstable();
                let mut q = Quoter::new(v);
                let mut out = Vec::new();
                let mut prev = 0;
                for c in cuts.into_iter().chain([b.len()]) {
                    q.push(&b[prev..c], &mut out);
                    prev = c;
                }
                q.finish(&mut out);
                prop_assert_eq!(&out, &whole);
            }
        }

        #[test]
        fn mboxo_quoting_leaves_no_from_line(b in body()) {
            let q = quote(Variant::Mboxo, &b);
            prop_assert!(!q.starts_with(b"From "));
            prop_assert!(memmem::find(&q, b"\nFrom ").is_none());
        }
    }
}
