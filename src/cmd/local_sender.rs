//! Who a local submitter may say the mail is from, as Exim's rules for
//! local submissions: root, `trusted_users` and members of
//! `trusted_groups` may set any envelope sender with `-f`; anyone may set
//! `<>`; others only what `untrusted_set_sender` allows, and otherwise their
//! `-f` is ignored and the sender is `login@qualify_domain`. For an
//! untrusted submitter a `Sender:` header they wrote is removed
//! (`local_sender_retain = false`) and `Sender: login@qualify_domain` is
//! added when `From:` names another address (`local_from_check`).
//!
//! The rules are pure functions of the configuration and the caller; the
//! only I/O is looking the trusted groups up ([`is_trusted`]).

use spool::{Caller, Header};

use crate::config::Config;

/// Whether `caller`, in `groups`, may set any sender.
pub fn is_trusted(cfg: &Config, caller: &Caller, groups: &[u32]) -> bool {
    caller.uid == 0
        || cfg.trusted_users.iter().any(|u| u == &caller.login)
        || cfg.trusted_groups.iter().any(|g| {
            crate::sys::group_id(g)
                .ok()
                .flatten()
                .is_some_and(|gid| groups.contains(&gid))
        })
}

/// Whether an untrusted submitter may set `sender` (qualified; empty for
/// `<>`): `<>` always, else when a pattern of `untrusted_set_sender`
/// matches (`*`, `*@domain`, `*suffix`, or the address; case-insensitive).
pub fn may_set(patterns: &[String], sender: &str) -> bool {
    sender.is_empty()
        || patterns.iter().any(|p| {
            let (p, s) = (p.to_ascii_lowercase(), sender.to_ascii_lowercase());
            match p.strip_prefix('*') {
                Some(suffix) => s.ends_with(suffix),
                None => p == s,
            }
        })
}

/// The envelope sender of a submission: the one asked for with `-f` when
/// the caller may set it, else `login_address`. The flag says an untrusted
/// caller set it (Exim's `-sender_set_untrusted`: `-bp` shows the login).
pub fn sender(
    asked: Option<String>,
    trusted: bool,
    patterns: &[String],
    login_address: &str,
) -> (String, bool) {
    match asked {
        None => (login_address.to_string(), false),
        Some(s) if trusted => (s, false),
        Some(s) if may_set(patterns, &s) => {
            // `<>` is anyone's to set and overrides nobody's address.
            let set = !s.is_empty() && !s.eq_ignore_ascii_case(login_address);
            (s, set)
        }
        Some(_) => (login_address.to_string(), false),
    }
}

/// For an untrusted submitter: marks their `Sender:` headers deleted
/// (unless `retain`), and returns the `Sender:` header to add when
/// `check` is on and `from` (the addresses of the `From:` the message will
/// carry) does not hold `login_address`.
pub fn fix_headers(
    headers: &mut [Header],
    from: &[String],
    login_address: &str,
    retain: bool,
    check: bool,
) -> Option<Header> {
    if !retain {
        for h in headers.iter_mut().filter(|h| h.is("sender")) {
            h.flag = b'*';
        }
    }
    let own = from.iter().any(|a| a.eq_ignore_ascii_case(login_address));
    (check && !own).then(|| Header::new(format!("Sender: {login_address}\n")))
}

/// A local submitter (`-bs`): the address their mail is from and whether
/// they may say otherwise.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub login_address: String,
    pub trusted: bool,
}

impl Submitter {
    /// This process's real user, under `cfg`.
    pub fn of_process(cfg: &Config) -> Submitter {
        let caller = crate::sys::process_caller();
        Submitter {
            login_address: format!("{}@{}", caller.login, cfg.qualify_domain),
            trusted: is_trusted(cfg, caller, &crate::sys::process_groups()),
        }
    }

    /// The headers of a message they submitted, with the `Sender:` rules
    /// applied when they are not trusted.
    pub fn fix(&self, cfg: &Config, headers: &mut Vec<Header>) {
        if self.trusted {
            return;
        }
        let from: Vec<String> = headers
            .iter()
            .filter(|h| !h.is_deleted() && h.is("from"))
            .flat_map(|h| {
                crate::cmd::submit::address_list(&crate::cmd::submit::header_value(&h.text))
            })
            .collect();
        if let Some(h) = fix_headers(
            headers,
            &from,
            &self.login_address,
            cfg.local_sender_retain,
            cfg.local_from_check,
        ) {
            headers.push(h);
        }
    }
}

/// A local user's SMTP session (`-bs`): who they are for the sender
/// rules, for the `-H` file, and, through the daemon's socket, for their
/// hourly rate.
#[derive(Debug, Clone)]
pub struct Local {
    pub submitter: Submitter,
    pub caller: spool::Caller,
    /// The submission socket's per-uid limits (none for a `-bs` that
    /// writes the spool itself).
    pub limits: Option<std::sync::Arc<crate::submission::server::Limits>>,
}

impl Local {
    /// This process's real user.
    pub fn of_process(cfg: &Config) -> Local {
        Local {
            submitter: Submitter::of_process(cfg),
            caller: crate::sys::process_caller().clone(),
            limits: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn who_may_set_what() {
        let me = "joe@host.example";
        // Trusted: anything.
        assert_eq!(
            sender(Some("boss@corp.example".into()), true, &[], me),
            ("boss@corp.example".into(), false)
        );
        // Untrusted: -f ignored, <> honoured.
        assert_eq!(
            sender(Some("boss@corp.example".into()), false, &[], me),
            (me.into(), false)
        );
        assert_eq!(
            sender(Some(String::new()), false, &[], me),
            (String::new(), false)
        );
        assert_eq!(sender(None, false, &[], me), (me.into(), false));
        // Untrusted, allowed by a pattern: set, and marked so.
        let p = pats(&["*@lists.example", "Alias@Host.Example"]);
        assert_eq!(
            sender(Some("news@lists.example".into()), false, &p, me),
            ("news@lists.example".into(), true)
        );
        assert_eq!(
            sender(Some("alias@host.example".into()), false, &p, me),
            ("alias@host.example".into(), true)
        );
        assert_eq!(
            sender(Some("x@other.example".into()), false, &p, me),
            (me.into(), false)
        );
        assert!(may_set(&pats(&["*"]), "anyone@anywhere.example"));
    }

    #[test]
    fn sender_headers_for_an_untrusted_submitter() {
        let me = "joe@host.example";
        let mut h = vec![
            Header::new("From: Boss <boss@corp.example>\n"),
            Header::new("Sender: forged@corp.example\n"),
        ];
        let add = fix_headers(&mut h, &["boss@corp.example".into()], me, false, true);
        assert!(h[1].is_deleted());
        assert_eq!(
            add.map(|h| h.text),
            Some(b"Sender: joe@host.example\n".to_vec())
        );
        // Their own address in From: needs no Sender:.
        let mut h = vec![Header::new("From: Joe <JOE@host.example>\n")];
        assert!(fix_headers(&mut h, &["JOE@host.example".into()], me, false, true).is_none());
        // Retained and unchecked when configured so.
        let mut h = vec![Header::new("Sender: kept@x.example\n")];
        assert!(fix_headers(&mut h, &["a@b.example".into()], me, true, false).is_none());
        assert!(!h[0].is_deleted());
    }
}
