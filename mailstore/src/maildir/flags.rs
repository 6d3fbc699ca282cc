//! Maildir flags: the letters after `:2,`.
//!
//! Standard flags are upper case (`D` draft, `F` flagged, `P` passed,
//! `R` replied, `S` seen, `T` trashed); Dovecot stores IMAP keywords as lower
//! case letters `a`–`z` (mapped by `dovecot-keywords`). Flags are kept in
//! ASCII order without repeats, as the spec requires ("2,FRS").

/// The standard flags, in ASCII order.
pub const STANDARD: &str = "DFPRST";

/// Normalizes a flag string: valid letters only, ASCII order, no repeats.
/// Returns `Err` with the first letter that is not a flag.
pub fn normalize(flags: &str) -> Result<String, char> {
    let mut seen = [false; 128];
    for c in flags.chars() {
        if !(c.is_ascii_uppercase() && STANDARD.contains(c) || c.is_ascii_lowercase()) {
            return Err(c);
        }
        seen[c as usize] = true;
    }
    Ok((0u8..128)
        .filter(|&b| seen[b as usize])
        .map(char::from)
        .collect())
}

/// `flags` with `add` added and `remove` removed, normalized.
pub fn change(flags: &str, add: &str, remove: &str) -> Result<String, char> {
    let merged: String = flags
        .chars()
        .chain(add.chars())
        .filter(|c| !remove.contains(*c))
        .collect();
    normalize(&merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_and_dedups() {
        let cases: &[(&str, Result<&str, char>)] = &[
            ("SRF", Ok("FRS")),
            ("SS", Ok("S")),
            ("", Ok("")),
            ("TDba", Ok("DTab")),
            ("X", Err('X')),
            ("S,", Err(',')),
        ];
        for &(input, want) in cases {
            assert_eq!(normalize(input), want.map(String::from), "{input}");
        }
    }

    #[test]
    fn change_adds_and_removes() {
        assert_eq!(change("S", "RF", "").unwrap(), "FRS");
        assert_eq!(change("FRS", "", "R").unwrap(), "FS");
        assert_eq!(change("", "T", "T").unwrap(), "");
    }
}
