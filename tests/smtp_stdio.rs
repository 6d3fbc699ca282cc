//! `sluice -bs` / `sluice smtp-stdio`: one SMTP session on stdin/stdout, as
//! MUAs and inetd run it; the message is queued durably, delivered before
//! the command exits, and logged as a local arrival.

mod common;

use common::{Dir, files_in};

const DIALOG: &[u8] = b"EHLO mua.example\r\n\
MAIL FROM:<alice@example.org>\r\n\
RCPT TO:<bob@localhost>\r\n\
RCPT TO:<carol@example.net>\r\n\
DATA\r\n\
Subject: over stdio\r\n\
\r\n\
..a dot-stuffed line\r\n\
.\r\n\
QUIT\r\n";

#[test]
fn one_session_on_stdin_and_stdout() {
    for args in [&["-bs"][..], &["smtp-stdio"][..]] {
        let d = Dir::new();
        let out = d.run(args, DIALOG);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replies = String::from_utf8(out.stdout).unwrap();
        let codes: Vec<&str> = replies
            .lines()
            .filter(|l| !l.starts_with("250-"))
            .map(|l| &l[..3])
            .collect();
        // greeting, EHLO, MAIL, RCPT ok, RCPT relay refused, 354, 250 queued, 221
        assert_eq!(
            codes,
            ["220", "250", "250", "250", "550", "354", "250", "221"],
            "{replies}"
        );
        assert!(!replies.contains("STARTTLS"), "no TLS on a pipe: {replies}");
        let id = replies
            .lines()
            .find_map(|l| l.strip_prefix("250 2.0.0 OK id="))
            .expect("queued reply")
            .to_string();
        // Delivered before the command returned.
        let new = d.path().join("home/mail/localhost/bob/new");
        let files = files_in(&new);
        assert_eq!(files.len(), 1, "{args:?}");
        let body = std::fs::read_to_string(new.join(&files[0])).unwrap();
        assert!(
            body.ends_with("Subject: over stdio\n\n.a dot-stuffed line\n"),
            "{body}"
        );
        let mainlog = std::fs::read_to_string(d.path().join("home/log/mainlog")).unwrap();
        assert!(
            mainlog.contains(&format!("{id} <= alice@example.org U=local P=local-esmtp")),
            "{mainlog}"
        );
        assert!(mainlog.contains(&format!("{id} Completed")), "{mainlog}");
    }
}
