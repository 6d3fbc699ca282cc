//! Entry points that read arbitrary bytes as an mbox, for the fuzz targets
//! in `fuzz/` and for the test that replays their corpus
//! (`tests/fuzz_corpus.rs`). An mbox is outside input twice over: users
//! write their own files, and a converter reads whatever it is given.
//!
//! A cargo-fuzz target is one line:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| mailstore::fuzz::mbox_reader_never_panics(data));
//! ```

use crate::mbox::detect::detect_in;
use crate::mbox::window::{Span, SpanError, Spans};
use crate::mbox::{Detection, Reader, Variant, detect, quote, split_points};

/// Every variant the reader knows.
const VARIANTS: [Variant; 4] = [
    Variant::Mboxo,
    Variant::Mboxrd,
    Variant::Mboxcl,
    Variant::Mboxcl2,
];

/// How many chunks parallel reading is asked for: more than one, so that a
/// cut between messages is exercised, and few enough to be cheap.
const CHUNKS: usize = 3;

/// Bytes per window for reading window by window: small, so that windows
/// are cut between messages and grown for messages that do not fit.
const WINDOW: usize = 48;

/// Detects the variant of `data`, then reads it as every variant, whole
/// and in chunks. Panics, which is how a fuzzer learns of a failure, if
/// the reader panics or if:
///
/// - detection and reading disagree on whether `data` is an mbox;
/// - detection keeps more warnings than it promises;
/// - the messages' ranges do not tile the data, a message's content lies
///   outside its range, or messages are not numbered 1, 2, 3...;
/// - reading the chunks from [`split_points`], or reading window by window
///   as `Windowed::spans` does, gives other messages than reading the whole;
/// - detection window by window decides otherwise or warns otherwise;
/// - mboxrd quoting of a message's bytes does not read back as the same
///   bytes (mboxrd is the reversible variant).
pub fn mbox_reader_never_panics(data: &[u8]) {
    let detection = detect(data);
    for variant in VARIANTS {
        let whole = Reader::new(data, variant);
        assert_eq!(
            whole.is_ok(),
            detection.is_ok(),
            "Reader::new({variant}) and detect disagree: {detection:?}"
        );
        let Ok(reader) = whole else {
            continue;
        };
        let ranges = read_all(data, reader);
        assert_eq!(
            read_in_chunks(data, variant),
            ranges,
            "chunked reading as {variant} differs from reading the whole"
        );
        assert_eq!(
            read_in_windows(data, variant),
            ranges,
            "reading window by window as {variant} differs from reading the whole"
        );
    }
    let windowed = detect_in(&data, WINDOW).map_err(|e| match e {
        SpanError::NotMbox(n) => n,
        SpanError::Read(never) => match never {},
    });
    assert_eq!(windowed, detection, "detection window by window differs");
    if let Ok(Detection {
        warnings,
        suppressed,
        variant,
    }) = detection
    {
        assert!(
            warnings.len() <= Detection::MAX_WARNINGS,
            "{} warnings kept, {suppressed} suppressed, as {variant}",
            warnings.len()
        );
    }
}

/// Reads every message, checks its ranges and quoting, returns the ranges.
fn read_all(data: &[u8], reader: Reader<'_>) -> Vec<std::ops::Range<usize>> {
    let variant = reader.variant();
    let mut at = 0;
    let mut ranges = Vec::new();
    for (i, m) in reader.enumerate() {
        let range = m.range();
        let content = m.content_range();
        assert_eq!(range.start, at, "message {} as {variant}: gap", i + 1);
        assert!(
            range.start < range.end && range.end <= data.len(),
            "message {} as {variant}: range {range:?}",
            i + 1
        );
        assert!(
            content.start <= content.end
                && content.start >= range.start
                && content.end <= range.end,
            "message {} as {variant}: content {content:?} outside {range:?}",
            i + 1
        );
        assert_eq!(m.number(), i + 1, "message numbers as {variant}");
        let bytes = m.bytes();
        let requoted = quote::quote(Variant::Mboxrd, &bytes);
        assert_eq!(
            quote::unquote(Variant::Mboxrd, &requoted),
            bytes,
            "message {} as {variant}: mboxrd quoting does not read back",
            i + 1
        );
        at = range.end;
        ranges.push(range);
    }
    assert_eq!(at, data.len(), "messages as {variant} do not reach the end");
    ranges
}

/// The message ranges from reading the chunks [`split_points`] gives.
fn read_in_chunks(data: &[u8], variant: Variant) -> Vec<std::ops::Range<usize>> {
    let points = split_points(data, variant, CHUNKS);
    let mut ranges = Vec::new();
    for (i, &start) in points.iter().enumerate() {
        let end = points.get(i + 1).copied().unwrap_or(data.len());
        match Reader::chunk(data, start..end, variant) {
            Ok(reader) => ranges.extend(reader.map(|m| m.range())),
            Err(e) => panic!("split point {start} as {variant} is not a chunk start: {e}"),
        }
    }
    ranges
}

/// The message ranges from reading windows of whole messages.
fn read_in_windows(data: &[u8], variant: Variant) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    for span in Spans::new(&data, variant, WINDOW) {
        match span {
            Ok(Span { start, window }) => match Reader::new(window, variant) {
                Ok(r) => ranges.extend(r.map(|m| start + m.range().start..start + m.range().end)),
                Err(e) => panic!("window at {start} as {variant} is not a message start: {e}"),
            },
            Err(e) => panic!("windows as {variant} fail where the whole reads: {e:?}"),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_accepts_mboxes_and_garbage() {
        let d = "Mon Jan  1 00:00:00 2024";
        mbox_reader_never_panics(b"");
        mbox_reader_never_panics(b"not an mbox\n");
        mbox_reader_never_panics(format!("From a {d}\n\nhi\n\nFrom b {d}\n\n>From x\n").as_bytes());
        mbox_reader_never_panics(
            format!("From a {d}\nContent-Length: 3\n\nhi\n\nFrom b {d}\n\n>>From x\n").as_bytes(),
        );
    }
}
