//! The entry point that parses arbitrary bytes as a `-H` file, for the
//! fuzz target in `fuzz/` and for the test that replays its corpus
//! (`tests/fuzz_corpus.rs`). A `-H` file is written by Sluice or by Exim,
//! but a queue directory is read after crashes, upgrades and hand edits,
//! so the parser must refuse anything else cleanly.
//!
//! A cargo-fuzz target is one line:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| spool::fuzz::header_file_never_panics(data));
//! ```

use std::path::Path;

use crate::header_file::HeaderFile;

/// Parses `data` as a `-H` file, with and without its headers, and writes
/// back what it read. Panics, which is how a fuzzer learns of a failure,
/// if the parser panics or if:
///
/// - the envelope-only parse (what a queue listing does) fails, or reads
///   another envelope or header size, where the full parse succeeds;
/// - a file that serialises does not parse back to the same contents, or
///   its second serialisation differs from the first.
///
/// A parsed file may still refuse to serialise (a control character in an
/// address, say): [`HeaderFile::to_bytes`] checks what the parser lets
/// through, and that refusal is an error, not a failure here.
pub fn header_file_never_panics(data: &[u8]) {
    // A name that is not a spool file's, so the first-line check against
    // the file name does not apply.
    let path = Path::new("fuzz");
    let Ok(full) = HeaderFile::parse(path, data, true) else {
        let _ = HeaderFile::parse(path, data, false);
        return;
    };
    match HeaderFile::parse(path, data, false) {
        Ok(envelope) => {
            assert_eq!(envelope.id, full.id);
            assert_eq!(envelope.envelope, full.envelope);
            // Without a `-header_size` line (Exim writes none) only the
            // full parse knows the size: it adds up the headers.
            assert!(
                envelope.header_size == full.header_size || envelope.header_size == 0,
                "header size {} read, {} counted",
                envelope.header_size,
                full.header_size
            );
        }
        Err(e) => panic!("the full parse succeeded, the envelope-only one failed: {e}"),
    }
    let Ok(bytes) = full.to_bytes() else {
        return;
    };
    match HeaderFile::parse(path, &bytes, true) {
        Ok(again) => {
            assert_eq!(again, full, "{}", String::from_utf8_lossy(&bytes));
            match again.to_bytes() {
                Ok(twice) => assert_eq!(twice, bytes, "serialising is not stable"),
                Err(e) => panic!("a file read back from its own bytes does not serialise: {e}"),
            }
        }
        Err(e) => panic!(
            "written {e}:\n{}",
            String::from_utf8_lossy(&bytes).escape_debug()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_accepts_a_file_and_garbage() {
        header_file_never_panics(b"");
        header_file_never_panics(b"\xff\n\n");
        header_file_never_panics(
            b"1tixMn-00000000C5j-1wRa-H\nalice 1000 1000\n<alice@example.org>\n1739545953 0\n\
              -received_time_usec .470123\n-body_linecount 1\n-body_size 3\n-header_size 10\n\
              XX\n1\nbob@example.net\n\n010F From: a\n",
        );
    }
}
