//! Redirect data, as Exim's `redirect` router reads it from an aliases
//! entry or a user's forward file: a list of items separated by commas.
//!
//! | item | means |
//! |---|---|
//! | `user`, `user@domain`, `<user@domain>` | an address, routed again |
//! | `:fail: text` | fail the address with `text` (the rest of the list) |
//! | `:defer: text` | defer it with `text` (the rest of the list) |
//! | `:blackhole:` | deliver it nowhere, successfully |
//! | `:include:/path` | the items of another file |
//! | `\|command` | a pipe (needs the router's `pipe_transport`) |
//! | `/path/file`, `/path/dir/` | an mbox file or a Maildir |
//!
//! An item in double quotes may hold commas (`"|/usr/bin/list post, x"`).
//! Parsing is pure; reading files is the router's.

use std::path::PathBuf;

/// One item of redirect data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Address(String),
    Fail(String),
    Defer(String),
    Blackhole,
    Include(PathBuf),
    Pipe(String),
    File(PathBuf),
    Directory(PathBuf),
}

impl Item {
    /// How the item is written, for messages.
    pub fn describe(&self) -> String {
        match self {
            Item::Address(a) => a.clone(),
            Item::Fail(t) => format!(":fail: {t}"),
            Item::Defer(t) => format!(":defer: {t}"),
            Item::Blackhole => ":blackhole:".into(),
            Item::Include(p) => format!(":include:{}", p.display()),
            Item::Pipe(c) => format!("|{c}"),
            Item::File(p) | Item::Directory(p) => p.display().to_string(),
        }
    }
}

/// Parses redirect data into its items. An unterminated quote is an
/// error naming the data.
pub fn parse(data: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = data;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(items);
        }
        // `:fail:` and `:defer:` take the rest of the list as their text.
        for (word, make) in [
            (":fail:", Item::Fail as fn(String) -> Item),
            (":defer:", Item::Defer as fn(String) -> Item),
        ] {
            if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
                items.push(make(rest[word.len()..].trim().to_string()));
                return Ok(items);
            }
        }
        let text = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => out.push(c),
                        None => return Err(format!("{data:?}: unterminated quote")),
                    },
                    Some((_, c)) => out.push(c),
                    None => return Err(format!("{data:?}: unterminated quote")),
                }
            };
            rest = &quoted[end + 1..];
            out
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let t = rest[..end].trim().to_string();
            rest = &rest[end..];
            t
        };
        items.push(item(&text));
    }
}

fn item(text: &str) -> Item {
    let lower = text.to_ascii_lowercase();
    if lower == ":blackhole:" {
        Item::Blackhole
    } else if lower.starts_with(":include:") {
        Item::Include(PathBuf::from(text[":include:".len()..].trim()))
    } else if let Some(cmd) = text.strip_prefix('|') {
        Item::Pipe(cmd.trim().to_string())
    } else if text.starts_with('/') {
        if text.ends_with('/') {
            Item::Directory(PathBuf::from(text))
        } else {
            Item::File(PathBuf::from(text))
        }
    } else {
        Item::Address(
            text.trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_string(),
        )
    }
}

/// Why a user's forward file must not be used, if it must not: Exim's
/// checks (`check_owner`, `modemask = 022`): owned by the user or root,
/// not writable by group or others, and not a symlink to another user's
/// file. `Ok(None)`: usable; the caller defers the address otherwise.
pub fn forward_file_problem(path: &std::path::Path, uid: u32) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::symlink_metadata(path)?;
    let meta = std::fs::metadata(path)?;
    if link.file_type().is_symlink() && link.uid() != uid && link.uid() != 0 {
        return Ok(Some(format!(
            "{} is a symlink owned by uid {}",
            path.display(),
            link.uid()
        )));
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return Ok(Some(format!(
            "{} is owned by uid {}, not the user or root",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Ok(Some(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    if !meta.is_file() {
        return Ok(Some(format!("{} is not a regular file", path.display())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_as_exim_reads_them() {
        let got = parse(
            "bob, <carol@example.org> ,:blackhole:, :include:/etc/lists/staff, \"|/usr/bin/list post, x\", /var/mail/archive, /home/a/Maildir/",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Item::Address("bob".into()),
                Item::Address("carol@example.org".into()),
                Item::Blackhole,
                Item::Include("/etc/lists/staff".into()),
                Item::Pipe("/usr/bin/list post, x".into()),
                Item::File("/var/mail/archive".into()),
                Item::Directory("/home/a/Maildir/".into()),
            ]
        );
        assert_eq!(
            parse("a, :fail: gone, no forwarding, sorry").unwrap(),
            vec![
                Item::Address("a".into()),
                Item::Fail("gone, no forwarding, sorry".into())
            ]
        );
        assert_eq!(
            parse(":DEFER: disk full").unwrap(),
            vec![Item::Defer("disk full".into())]
        );
        assert_eq!(parse("  ,, ").unwrap(), vec![]);
        assert!(parse("\"|unterminated").is_err());
        assert_eq!(
            parse("\"a\\\"b\"").unwrap(),
            vec![Item::Address("a\"b".into())]
        );
    }

    #[test]
    fn forward_files_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("forward");
        std::fs::write(&f, "x\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let me = rustix::process::getuid().as_raw();
        assert_eq!(forward_file_problem(&f, me).unwrap(), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(
            forward_file_problem(&f, me)
                .unwrap()
                .is_some_and(|p| p.contains("writable by group"))
        );
        assert!(forward_file_problem(&dir.path().join("none"), me).is_err());
    }
}
