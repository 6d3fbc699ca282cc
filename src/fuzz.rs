//! Entry points that feed arbitrary bytes to the binary's own parsers: the
//! log-line parser (`sluice log check`, `sluice stats` and the tests read
//! logs with it, Exim's included), the configuration loader and the
//! submission socket's request line (any local user can send one).
//!
//! The crate has no library target, so `fuzz/sluice-main/` compiles this
//! source as a library with `--cfg fuzzing`, under which this module is
//! public; the unit tests below replay the committed fuzz corpus. A
//! cargo-fuzz target is then one line:
//!
//! ```ignore
//! fuzz_target!(|data: &[u8]| sluice_main::fuzz::log_line_never_panics(data));
//! ```

use std::mem::discriminant;

use crate::config;
use crate::log::escape::TEXT_LIMIT;
use crate::log::event::Kind;
use crate::log::parse;

/// The log parser's fuzz target: reads `data` (lossily decoded, as `sluice
/// log check` reads a file) as a log. Panics, which is how a fuzzer
/// learns of a failure, if the parser panics or if a stamped line, once
/// parsed and formatted again,
///
/// - is more than one line, or has no stamp;
/// - does not parse to an event of the same kind;
/// - does not format the same a second time, for a line of printable
///   ASCII without backslashes: the parser is lenient about what it
///   reads, the formatter writes one form. (Other lines do not settle by
///   design: the parser returns control bytes in their escaped, printable
///   form, which the formatter takes for outside text and escapes again.)
///
/// The last two hold only for lines shorter than the cap on outside text
/// ([`TEXT_LIMIT`]), where a cut can take away what made a line one kind
/// rather than another, and only for lines without fields the parser does
/// not know: it keeps those in `extra`, which the formatter writes after
/// the known fields, so a stray `[...]` moved behind `H=name` reads as the
/// host's address.
pub fn log_line_never_panics(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    assert!(parse::entries(&text).len() <= text.lines().count());
    for raw in text.lines() {
        let Some(line) = parse::line(raw) else {
            continue;
        };
        let formatted = line.to_string();
        assert!(
            !formatted.contains('\n'),
            "two lines from one: {formatted:?}"
        );
        let Some(again) = parse::line(&formatted) else {
            panic!("{formatted:?} has no stamp");
        };
        let known = !has_unknown_fields(&line.event.kind);
        if known && raw.len() <= TEXT_LIMIT {
            assert_eq!(
                discriminant(&again.event.kind),
                discriminant(&line.event.kind),
                "{formatted:?} reads as another kind: {again:?}"
            );
        }
        let plain = raw
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'\\');
        if known && plain && raw.len() <= TEXT_LIMIT {
            assert_eq!(again.to_string(), formatted, "formatting did not settle");
        }
    }
}

/// The event kept fields it does not know, to write them back unchanged.
fn has_unknown_fields(kind: &Kind) -> bool {
    match kind {
        Kind::Arrival(a) => !a.extra.is_empty(),
        Kind::Delivered(d) => !d.extra.is_empty(),
        _ => false,
    }
}

/// The configuration loader's fuzz target: reads `data` as a TOML file
/// laid over the embedded default, as `--config FILE` is. Panics if the
/// loader panics or if a configuration it accepts, printed as `sluice
/// config` prints it, does not load again to the same printout.
pub fn config_never_panics(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = config::from_str("fuzz.toml", text) else {
        return;
    };
    let printed = cfg.to_string();
    match config::from_str("fuzz.toml", &printed) {
        Ok(again) => assert_eq!(
            again.to_string(),
            printed,
            "the printout does not load back"
        ),
        Err(e) => panic!("the printout does not load: {e}\n{printed}"),
    }
}

/// The submission socket's fuzz target: reads `data` as the request line
/// a local user sends the daemon (the first line; the rest would be the
/// message). Panics if the parser panics, or if a request it accepts,
/// written again as `sendmail` writes it, does not read back the same.
pub fn submission_request_never_panics(data: &[u8]) {
    use crate::submission::wire;
    let line = data.split(|&b| b == b'\n').next().unwrap_or(data);
    let Ok(args) = wire::parse_request(line) else {
        return;
    };
    let again = wire::Request::of(&args).to_line();
    assert_eq!(
        wire::parse_request(&again[..again.len() - 1]),
        Ok(args),
        "the request does not read back"
    );
}

#[cfg(test)]
#[path = "../fuzz/replay.rs"]
mod replay;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_corpus() {
        super::replay::replay("log_line", log_line_never_panics);
    }

    #[test]
    fn config_corpus() {
        super::replay::replay("config", config_never_panics);
    }

    #[test]
    fn submission_request_corpus() {
        super::replay::replay("submission_request", submission_request_never_panics);
    }

    /// fuzz/sluice-main compiles this crate's source with its own list of
    /// dependencies; one missing there would break only the fuzz build,
    /// long after the change that added it.
    #[test]
    fn the_fuzz_library_has_every_dependency() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dependencies = |path: &str| -> Vec<String> {
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            let manifest: toml::Table = text.parse().unwrap();
            manifest["dependencies"]
                .as_table()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let fuzz = dependencies("fuzz/sluice-main/Cargo.toml");
        let missing: Vec<String> = dependencies("Cargo.toml")
            .into_iter()
            .filter(|d| !fuzz.contains(d))
            .collect();
        assert!(
            missing.is_empty(),
            "add to fuzz/sluice-main/Cargo.toml: {missing:?}"
        );
    }

    #[test]
    fn the_targets_accept_their_inputs_and_garbage() {
        log_line_never_panics(b"");
        log_line_never_panics(b"\xff\n2026-11-25 13:42:27 1tixMn-00000000C5j-1wRa Completed\n");
        config_never_panics(b"");
        config_never_panics(b"[smtp]\nmax_recipients = 5\n");
        config_never_panics(b"[smtp\n");
        submission_request_never_panics(b"SUBMIT {}\nbody");
        submission_request_never_panics(b"SUBMIT {\"recipients\":[1]}");
    }
}
