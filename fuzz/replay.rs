//! Replays a fuzz target's committed inputs through its entry point, in
//! plain `cargo test`: the seed corpus (`fuzz/corpus/TARGET/`) and every
//! input that once failed (`fuzz/regressions/TARGET/`). Each crate that
//! owns targets includes this file in a test with `#[path]`, so the fuzzer
//! itself is not needed to keep old crashes fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Runs `entry` on every committed input of `target` and fails, naming
/// each input that panicked, if any did.
pub fn replay(target: &str, entry: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "fuzz/corpus/{target}/ has no seeds");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} failed on {failed:#?}");
}

/// The files of `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = fuzz_dir();
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        // A target without regressions has no such directory.
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `fuzz/` beside the crate (a workspace member) or in it (the root).
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("fuzz"))
        .find(|dir| dir.join("corpus").is_dir())
        .expect("fuzz/corpus above the crate")
}
