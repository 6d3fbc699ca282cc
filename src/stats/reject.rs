//! Rejection reasons and the host a rejection was for, as eximstats names
//! them, so that the "mail rejection reason" tables list the same rows.
//!
//! eximstats reads a rejection's reason from the text, not from a
//! grammar: the first of a list of known phrases (a DNS list, a relay
//! refusal, a size limit, a dropped connection), else the verb and the
//! first part of the reply (`rejected RCPT: Unrouteable address`),
//! else `Unknown`. The text here is the line after the stamp and the
//! message ID.

/// What a rejection line counts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A 4xx answer: counted in the temporary tables.
    pub temporary: bool,
    pub reason: String,
    /// `[ip]` of the host, or `local`.
    pub ip: String,
}

/// Whether a line eximstats does not read as a message event counts as a
/// rejection: it mentions a refusal.
pub fn is_rejection(text: &str) -> bool {
    text.contains("rejected") || text.contains("refused") || text.contains("dropped")
}

/// The reason and host of a rejection line.
pub fn classify(text: &str) -> Rejection {
    let (temporary, reason) = reason(text);
    Rejection {
        temporary,
        reason: upper_first(&reason),
        ip: ip(text),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `[ip]` after `H=` (directly or after the name and HELO), else after
/// `Connection from ` or `SMTP call from `, else `local`.
fn ip(text: &str) -> String {
    let bracket = |s: &str| -> Option<String> {
        let end = s.find(']')?;
        (end > 1).then(|| s[..=end].to_string())
    };
    if let Some(at) = word_at(text, "H=") {
        let after = &text[at + 2..];
        if after.starts_with('[')
            && let Some(b) = bracket(after)
        {
            return b;
        }
        if let Some(b) = after
            .match_indices(" [")
            .find_map(|(i, _)| bracket(&after[i + 1..]))
        {
            return b;
        }
    }
    if let Some(i) = text.find("Connection from [")
        && let Some(b) = bracket(&text[i + 16..])
    {
        return b;
    }
    if let Some(i) = text.find("SMTP call from ")
        && let Some(j) = text[i..].find('[')
        && let Some(b) = bracket(&text[i + j..])
    {
        return b;
    }
    // `rejected EHLO from host [ip]: ...` names its host after the verb.
    if let Some(i) = text
        .find("rejected EHLO from ")
        .or_else(|| text.find("rejected HELO from "))
        && let Some(j) = text[i..].find('[')
        && let Some(b) = bracket(&text[i + j..])
    {
        return b;
    }
    "local".to_string()
}

/// Where `word` starts at a word boundary in `text`.
fn word_at(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric() && text.as_bytes()[i - 1] != b'_'
    })
}

/// `PREFIX VERB ...: first part of the reply`: the verb is capitals (RCPT,
/// MAIL, DATA, or none), the reply part runs to the next colon or the end.
fn verdict(text: &str, prefix: &str) -> Option<String> {
    for (i, _) in text.match_indices(prefix) {
        let after = &text[i + prefix.len()..];
        let verb_len = after.bytes().take_while(u8::is_ascii_uppercase).count();
        let rest = &after[verb_len..];
        let Some(rest) = rest.strip_prefix(' ') else {
            continue;
        };
        let Some(colon) = rest.find(": ") else {
            continue;
        };
        let reply = &rest[colon + 2..];
        let part = match reply.find(':') {
            Some(end) => &reply[..end],
            None => reply.trim_end(),
        };
        return Some(format!("{prefix}{}: {part}", &after[..verb_len]));
    }
    None
}

/// The text from `phrase` to the end (without trailing blanks).
fn from_phrase(text: &str, phrase: &str) -> Option<String> {
    text.find(phrase).map(|i| text[i..].trim_end().to_string())
}

/// The reason, and whether it was temporary.
fn reason(text: &str) -> (bool, String) {
    if text.contains("SpamAssassin") {
        return (false, "Rejected by SpamAssassin".into());
    }
    if let Some(r) = verdict(text, "temporarily rejected ") {
        return (true, r);
    }
    if text.contains("temporarily refused connection") {
        return (true, "temporarily refused connection".into());
    }
    if let Some(r) = known_phrase(text) {
        return (false, r);
    }
    if (text.contains("rejected HELO from ") || text.contains("rejected EHLO from "))
        && text.contains(": syntactically invalid argument")
    {
        return (
            false,
            "Rejected HELO/EHLO: syntactically invalid argument".into(),
        );
    }
    if let Some(i) = text.find("response to \"RCPT TO")
        && let Some(j) = text[i..].find(" was: ")
    {
        let rest = &text[i + j + 6..];
        return (false, format!("Response to RCPT TO was: {rest}"));
    }
    if let Some(i) = text.find("lookup of host ")
        && text[i + 15..]
            .split_once(' ')
            .is_some_and(|(_, r)| r.starts_with("failed"))
    {
        return (false, "lookup of host failed".into());
    }
    if let Some(r) = verdict(text, "rejected ") {
        return (false, r);
    }
    if let Some(i) = text.find("refused connection from")
        && let Some(j) = text[i..].find(" (")
    {
        return (false, format!("refused connection {}", &text[i + j + 1..]));
    }
    for c in ["Connection from", "connection from"] {
        if let Some(i) = text.find(c)
            && let Some(j) = text[i..].find(" refused")
        {
            return (
                false,
                format!("{} {}", &c[..10], &text[i + j + 1..].trim_end()),
            );
        }
    }
    if text.contains(": Connection refused") {
        return (false, "Connection refused".into());
    }
    if let Some(r) = from_phrase(text, "temporarily rejected connection in ")
        && r.contains("ACL")
    {
        return (true, r);
    }
    (false, "Unknown".into())
}

/// The phrases eximstats knows by name, in its order of preference.
fn known_phrase(text: &str) -> Option<String> {
    if let Some(i) = text.find("listed at ") {
        let rest = &text[i + 10..];
        let end = rest.find(' ').unwrap_or(rest.len());
        if end > 0 {
            return Some(format!("listed at {}", &rest[..end]));
        }
    }
    for fixed in [
        "Forged IP detected in HELO",
        "Invalid domain or IP given in HELO/EHLO",
        "unqualified recipient rejected",
    ] {
        if text.contains(fixed) {
            return Some(fixed.into());
        }
    }
    for c in ["closed connection after ", "closed connection in response "] {
        if let Some(r) = from_phrase(text, c) {
            return Some(r);
        }
    }
    if text.contains("sender rejected") {
        return Some("sender rejected".into());
    }
    if let Some(i) = text.find(" rejected after DATA: ") {
        return Some(text[i + 22..].to_string());
    }
    if let Some(i) = text.find(" rejected DATA: ") {
        return Some(text[i + 1..].to_string());
    }
    if let Some(i) = text.find("DATA ACL discarded recipients")
        && let Some(rest) = text[i + 29..].get(1..)
        && let Some(r) = rest.strip_prefix(": ")
    {
        return Some(r.to_string());
    }
    for fixed in ["VRFY rejected", "too many recipients"] {
        if text.contains(fixed) {
            return Some(fixed.into());
        }
    }
    if let Some(i) = text.find("refused relay")
        && let Some(j) = text[i..].find(" to")
    {
        return Some(text[i..i + j].to_string());
    }
    for c in ["rejected by non-SMTP ACL: ", "rejected by local_scan"] {
        if let Some(r) = from_phrase(text, c) {
            return Some(r);
        }
    }
    for c in [
        "dropped: too many nonmail commands",
        "dropped: too many unrecognized commands",
        "dropped: too many syntax or protocol errors",
    ] {
        if text.contains(c) {
            return Some(c.into());
        }
    }
    if let Some(i) = text.find("SMTP protocol ") {
        let rest = &text[i..];
        let end = [
            rest.find("error").map(|e| e + 5),
            rest.find("violation").map(|v| v + 9),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(end) = end {
            return Some(rest[..end].to_string());
        }
    }
    if text.contains("message too big") {
        return Some("message too big".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reasons and hosts as eximstats 1.61 lists them for these lines.
    #[test]
    fn reasons_are_exims() {
        let cases: &[(&str, bool, &str, &str)] = &[
            (
                "H=(client.test) [127.0.0.1] F=<carol@local.test> rejected RCPT <nobody@local.test>: Unrouteable address",
                false,
                "Rejected RCPT: Unrouteable address",
                "[127.0.0.1]",
            ),
            (
                "H=(client.test) [127.0.0.1] F=<carol@local.test> rejected after DATA: subject says reject me",
                false,
                "Subject says reject me",
                "[127.0.0.1]",
            ),
            (
                "H=(c.example) [127.0.0.1] F=<a@example.org> rejected RCPT <n@localhost>: 550 5.1.1 <n@localhost>: unknown user",
                false,
                "Rejected RCPT: 550 5.1.1 <n@localhost>",
                "[127.0.0.1]",
            ),
            (
                "H=(c.example) [127.0.0.1] F=<> temporarily rejected RCPT <full@localhost>: Mailbox full, try again later",
                true,
                "Temporarily rejected RCPT: Mailbox full, try again later",
                "[127.0.0.1]",
            ),
            (
                "U=root F=<carol@local.test> rejected RCPT <nobody@local.test>: Unrouteable address",
                false,
                "Rejected RCPT: Unrouteable address",
                "local",
            ),
            (
                "SMTP call from (helo) [192.0.2.1] dropped: too many syntax or protocol errors (last command was \"x\")",
                false,
                "Dropped: too many syntax or protocol errors",
                "[192.0.2.1]",
            ),
            (
                "H=mx.example [192.0.2.9]:4711 rejected RCPT <a@b>: listed at zen.example (127.0.0.2)",
                false,
                "Listed at zen.example",
                "[192.0.2.9]",
            ),
            (
                "H=127.0.0.3 [127.0.0.3] Connection refused",
                false,
                "Unknown",
                "[127.0.0.3]",
            ),
            (
                "H=[192.0.2.5] temporarily rejected connection in \"connect\" ACL: too fast",
                true,
                "Temporarily rejected connection in \"connect\" ACL: too fast",
                "[192.0.2.5]",
            ),
        ];
        for (text, temporary, reason, ip) in cases {
            let r = classify(text);
            assert_eq!(
                (r.temporary, r.reason.as_str(), r.ip.as_str()),
                (*temporary, *reason, *ip),
                "{text}"
            );
            assert!(is_rejection(text), "{text}");
        }
        assert!(!is_rejection("exim 4.96 daemon started: pid=1"));
    }
}
