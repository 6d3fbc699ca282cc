//! A failure report as RFC 3464 and RFC 6522 shape it: pure composition,
//! no I/O. `multipart/report; report-type=delivery-status` with three
//! parts: a text for people in Exim's wording, the `message/delivery-status`
//! fields for programs, and the returned message (`message/rfc822`, or only
//! its header as `text/rfc822-headers` when it is over the size limit or the
//! sender asked `RET=HDRS`; `message/global` and `message/global-headers`
//! for an internationalised message, RFC 6533).

use spool::{Diagnosis, DsnRet, Header};

use crate::clock::rfc5322;

/// One failed recipient.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The envelope recipient, as the message had it.
    pub address: String,
    /// `ORCPT=` as received (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
    pub why: Diagnosis,
    /// When it failed.
    pub at: u64,
}

/// The message being reported on.
#[derive(Debug, Clone)]
pub struct Original<'a> {
    pub id: &'a str,
    pub sender: &'a str,
    pub arrival: u64,
    /// `ENVID=`.
    pub envid: Option<&'a str>,
    pub ret: Option<DsnRet>,
    /// Its header lines as stored (deleted ones left out), LF line ends.
    pub header: &'a [u8],
    pub body: &'a [u8],
    /// It needs SMTPUTF8: its part is `message/global`.
    pub international: bool,
}

/// What the reporting host says about itself.
#[derive(Debug, Clone)]
pub struct Reporter<'a> {
    /// `primary_hostname`: `Reporting-MTA`, the `From:` domain.
    pub host: &'a str,
    /// Above this many bytes only the header is returned
    /// (`bounce_return_size_limit`).
    pub return_size_limit: u64,
    /// `Received: from LOGIN`: the user Sluice runs as.
    pub login: &'a str,
}

/// A composed report: its header lines and body (LF line ends).
#[derive(Debug, Clone)]
pub struct Composed {
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// What sets one kind of report apart in its header.
struct Kind<'a> {
    subject: String,
    /// `X-Failed-Recipients` or `X-Delayed-Recipients`, with the addresses.
    listed: Option<(&'a str, Vec<&'a str>)>,
    /// `auto-replied` (failures, warnings) or `auto-generated` (successes,
    /// RFC 3461 §6.2).
    auto_submitted: &'a str,
}

/// The header of report `dsn_id` to `to`, with the boundary its body uses.
fn frame(
    reporter: &Reporter,
    original: &Original,
    to: &str,
    dsn_id: &str,
    now: i64,
    kind: Kind,
) -> (Vec<Header>, String) {
    let boundary = format!("{dsn_id}-sluice-report");
    let mut headers = vec![Header::new(format!(
        "Received: from {} by {} with local (Sluice {})\n\tid {dsn_id}\n\tfor {to};\n\t{}\n",
        reporter.login,
        reporter.host,
        env!("CARGO_PKG_VERSION"),
        rfc5322(now)
    ))];
    if let Some((field, addresses)) = kind.listed {
        headers.push(Header::new(format!(
            "{field}: {}\n",
            addresses.join(",\n  ")
        )));
    }
    headers.push(Header::new(format!(
        "Auto-Submitted: {}\n",
        kind.auto_submitted
    )));
    headers.push(Header::new(format!(
        "From: Mail Delivery System <Mailer-Daemon@{}>\n",
        reporter.host
    )));
    headers.push(Header::new(format!("To: {to}\n")));
    if let Some(mid) = message_id(original.header) {
        headers.push(Header::new(format!("References: {mid}\n")));
        headers.push(Header::new(format!("In-Reply-To: {mid}\n")));
    }
    headers.extend([
        Header::new(format!(
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n"
        )),
        Header::new("MIME-Version: 1.0\n"),
        Header::new(format!("Subject: {}\n", kind.subject)),
        Header::new(format!("Message-Id: <E{dsn_id}@{}>\n", reporter.host)),
        Header::new(format!("Date: {}\n", rfc5322(now))),
    ]);
    (headers, boundary)
}

/// The start of the part for people.
fn text_part(boundary: &str, ascii: bool) -> String {
    format!(
        "--{boundary}\nContent-type: text/plain; charset={}\n\n\
         This message was created automatically by mail delivery software.\n\n",
        if ascii { "us-ascii" } else { "utf-8" }
    )
}

/// The start of the `message/delivery-status` part: the fields about the
/// message (RFC 3464 §2.2).
fn status_part(boundary: &str, reporter: &Reporter, original: &Original) -> String {
    let mut t = format!(
        "\n--{boundary}\nContent-type: message/{}delivery-status\n\nReporting-MTA: dns; {}\n",
        if original.international {
            "global-"
        } else {
            ""
        },
        reporter.host
    );
    if let Some(envid) = original.envid {
        t.push_str(&format!("Original-Envelope-Id: {envid}\n"));
    }
    t.push_str(&format!(
        "X-Sluice-Queue-Id: {}\nArrival-Date: {}\n",
        original.id,
        rfc5322(original.arrival as i64)
    ));
    t
}

/// A recipient's first fields (RFC 3464 §2.3).
fn recipient_fields(orcpt: Option<&str>, address: &str, action: &str, status: &str) -> String {
    let mut t = String::from("\n");
    if let Some(orcpt) = orcpt {
        t.push_str(&format!("Original-Recipient: {orcpt}\n"));
    }
    let kind = if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    };
    t.push_str(&format!(
        "Final-Recipient: {kind};{address}\nAction: {action}\nStatus: {status}\n"
    ));
    t
}

/// `Remote-MTA` (only when a remote host answered) and `Diagnostic-Code`
/// (`smtp;` for an SMTP or LMTP reply, `X-Sluice;` for a failure found
/// here, as Exim writes `X-Exim;`).
fn diagnostic_fields(why: &Diagnosis) -> String {
    let mut t = String::new();
    let reply = smtp_reply(&why.text);
    if let (Some(host), Some(_)) = (&why.remote, &reply) {
        let name = host.split(" [").next().unwrap_or(host);
        t.push_str(&format!("Remote-MTA: dns; {name}\n"));
    }
    match reply {
        Some((_, reply)) => t.push_str(&format!("Diagnostic-Code: smtp; {reply}\n")),
        None if !why.text.is_empty() => t.push_str(&format!(
            "Diagnostic-Code: X-Sluice; {}\n",
            why.text.replace('\n', " ")
        )),
        None => {}
    }
    t
}

/// The message returned (or its header only), and the closing boundary.
fn returned_part(boundary: &str, original: &Original, full: bool) -> Vec<u8> {
    let kind = match (full, original.international) {
        (true, false) => "message/rfc822",
        (true, true) => "message/global",
        (false, false) => "text/rfc822-headers",
        (false, true) => "message/global-headers",
    };
    let mut out = format!(
        "\n--{boundary}\nContent-type: {kind}\n\nReturn-path: <{}>\n",
        original.sender
    )
    .into_bytes();
    out.extend_from_slice(original.header);
    if full {
        out.push(b'\n');
        out.extend_from_slice(original.body);
        if !original.body.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

/// The report `dsn_id` to `to` about `failures` of `original`, at `now`.
pub fn failure_report(
    reporter: &Reporter,
    original: &Original,
    to: &str,
    dsn_id: &str,
    failures: &[Failure],
    now: i64,
) -> Composed {
    let (headers, boundary) = frame(
        reporter,
        original,
        to,
        dsn_id,
        now,
        Kind {
            subject: "Mail delivery failed: returning message to sender".into(),
            listed: Some((
                "X-Failed-Recipients",
                failures.iter().map(|f| f.address.as_str()).collect(),
            )),
            auto_submitted: "auto-replied",
        },
    );
    let whole = original.header.len() as u64 + 1 + original.body.len() as u64;
    let full = original.ret != Some(DsnRet::Headers) && whole <= reporter.return_size_limit;
    let ascii = to.is_ascii() && failures.iter().all(|f| f.address.is_ascii());
    let mut t = text_part(&boundary, ascii);
    t.push_str(
        "A message that you sent could not be delivered to one or more of its\n\
         recipients. This is a permanent error. The following address(es) failed:\n\n",
    );
    for f in failures {
        describe(&mut t, f);
    }
    if original.ret != Some(DsnRet::Headers) && !full {
        t.push_str(&format!(
            "\nThe message is {whole} bytes long, over the limit of {} for returning it:\nonly its header is returned.\n",
            reporter.return_size_limit
        ));
    }
    t.push_str(&status_part(&boundary, reporter, original));
    for f in failures {
        t.push_str(&recipient_fields(
            f.orcpt.as_deref(),
            &f.address,
            "failed",
            f.why.status.as_deref().unwrap_or("5.0.0"),
        ));
        t.push_str(&diagnostic_fields(&f.why));
        t.push_str(&format!("Last-Attempt-Date: {}\n", rfc5322(f.at as i64)));
    }
    let mut body = t.into_bytes();
    body.extend(returned_part(&boundary, original, full));
    Composed { headers, body }
}

/// What became of a recipient a success report is about (RFC 3464
/// §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// Delivered here.
    Delivered,
    /// Handed to a next hop that does not offer DSN: no report will come
    /// from further on.
    Relayed,
}

/// One recipient of a success report.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub address: String,
    pub orcpt: Option<String>,
    pub action: Success,
    /// The host that took it, for a relayed one.
    pub remote: Option<String>,
    pub at: u64,
}

/// The report `dsn_id` to `to` that `deliveries` of `original` went well
/// (`NOTIFY=SUCCESS`): the header only is returned, and it is marked
/// `Auto-Submitted: auto-generated` (RFC 3461 §6.2).
pub fn success_report(
    reporter: &Reporter,
    original: &Original,
    to: &str,
    dsn_id: &str,
    deliveries: &[Delivery],
    now: i64,
) -> Composed {
    let (headers, boundary) = frame(
        reporter,
        original,
        to,
        dsn_id,
        now,
        Kind {
            subject: "Delivery Status Notification".into(),
            listed: None,
            auto_submitted: "auto-generated",
        },
    );
    let mut t = text_part(&boundary, deliveries.iter().all(|d| d.address.is_ascii()));
    t.push_str(
        "Your message has been delivered to the following address(es), or\n\
         passed on to a host that will not report on it further:\n\n",
    );
    for d in deliveries {
        t.push_str(&format!("  {}\n", d.address));
        match (d.action, &d.remote) {
            (Success::Relayed, Some(host)) => t.push_str(&format!(
                "    relayed to host {host}, which does not offer DSN\n"
            )),
            (Success::Relayed, None) => t.push_str("    relayed\n"),
            (Success::Delivered, _) => t.push_str("    delivered\n"),
        }
    }
    t.push_str(&status_part(&boundary, reporter, original));
    for d in deliveries {
        let action = match d.action {
            Success::Delivered => "delivered",
            Success::Relayed => "relayed",
        };
        t.push_str(&recipient_fields(
            d.orcpt.as_deref(),
            &d.address,
            action,
            "2.0.0",
        ));
        if let (Success::Relayed, Some(host)) = (d.action, &d.remote) {
            let name = host.split(" [").next().unwrap_or(host);
            t.push_str(&format!("Remote-MTA: dns; {name}\n"));
        }
        t.push_str(&format!("Last-Attempt-Date: {}\n", rfc5322(d.at as i64)));
    }
    let mut body = t.into_bytes();
    body.extend(returned_part(&boundary, original, false));
    Composed { headers, body }
}

/// "24 hours", "90 minutes", "5 seconds": how long a message has waited.
fn waited(secs: u64) -> String {
    match secs {
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// A delay warning (`Action: delayed`, RFC 3464): `delays` are the
/// recipients still waiting, with their last error; `until` is when
/// delivery will be given up. The header only is returned.
#[allow(clippy::too_many_arguments)]
pub fn delay_report(
    reporter: &Reporter,
    original: &Original,
    to: &str,
    dsn_id: &str,
    delays: &[Failure],
    until: u64,
    now: i64,
) -> Composed {
    let age = waited((now as u64).saturating_sub(original.arrival));
    let (headers, boundary) = frame(
        reporter,
        original,
        to,
        dsn_id,
        now,
        Kind {
            subject: format!("Warning: message {} delayed {age}", original.id),
            listed: Some((
                "X-Delayed-Recipients",
                delays.iter().map(|f| f.address.as_str()).collect(),
            )),
            auto_submitted: "auto-replied",
        },
    );
    let mut t = text_part(&boundary, delays.iter().all(|d| d.address.is_ascii()));
    t.push_str(&format!(
        "Your message {} has waited {age} in the queue of {} and is not yet\n\
         delivered to these addresses:\n\n",
        original.id, reporter.host
    ));
    for f in delays {
        describe(&mut t, f);
    }
    t.push_str(&format!(
        "\nNothing needs doing: delivery will be tried again until {}. If it\n\
         has not succeeded by then, the message will come back to you.\n",
        rfc5322(until as i64)
    ));
    t.push_str(&status_part(&boundary, reporter, original));
    for f in delays {
        t.push_str(&recipient_fields(
            f.orcpt.as_deref(),
            &f.address,
            "delayed",
            f.why.status.as_deref().unwrap_or("4.0.0"),
        ));
        t.push_str(&diagnostic_fields(&f.why));
        t.push_str(&format!(
            "Last-Attempt-Date: {}\nWill-Retry-Until: {}\n",
            rfc5322(f.at as i64),
            rfc5322(until as i64)
        ));
    }
    let mut body = t.into_bytes();
    body.extend(returned_part(&boundary, original, false));
    Composed { headers, body }
}

/// One address for people: the address, `host NAME [IP]` when a remote
/// host answered, and the error, an SMTP error's context on one line and
/// the reply on the next, as Exim splits it.
fn describe(t: &mut String, f: &Failure) {
    t.push_str(&format!("  {}\n", f.address));
    if let Some(host) = &f.why.remote {
        t.push_str(&format!("    host {host}\n"));
    }
    match smtp_reply(&f.why.text) {
        Some((context, reply)) => {
            t.push_str(&format!("    {context}:\n    {reply}\n"));
        }
        None => {
            for line in f.why.text.lines() {
                t.push_str(&format!("    {line}\n"));
            }
        }
    }
}

/// Splits `... SMTP error from remote mail server after CMD: REPLY` into
/// the part before the reply and the reply.
fn smtp_reply(text: &str) -> Option<(&str, &str)> {
    let start = text.find("SMTP error from remote mail server after ")?;
    let colon = text[start..].find(": ")? + start;
    let reply = &text[colon + 2..];
    (reply.len() >= 3 && reply.as_bytes()[..3].iter().all(u8::is_ascii_digit))
        .then_some((&text[..colon], reply))
}

/// The `Message-ID:` of a header block, angle brackets included.
fn message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut v = value.trim().to_string();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            v.push_str(next.trim());
            lines.next();
        }
        let (open, close) = (v.find('<')?, v.rfind('>')?);
        return (open < close).then(|| v[open..=close].to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> Reporter<'static> {
        Reporter {
            host: "mx.example.org",
            return_size_limit: 100 * 1024,
            login: "mail",
        }
    }

    fn original<'a>(header: &'a [u8], body: &'a [u8]) -> Original<'a> {
        Original {
            id: "1xZGKj-00028m-0t",
            sender: "alice@example.org",
            arrival: 1_796_340_925,
            envid: Some("QQ314159"),
            ret: None,
            header,
            body,
            international: false,
        }
    }

    fn remote_failure() -> Failure {
        Failure {
            address: "bob@remote.test".into(),
            orcpt: Some("rfc822;Bob@Remote.test".into()),
            why: Diagnosis {
                text: "SMTP error from remote mail server after RCPT TO:<bob@remote.test>: 550 5.1.1 no such user".into(),
                status: Some("5.1.1".into()),
                remote: Some("mx1.remote.test [192.0.2.1]".into()),
            },
            at: 1_796_340_926,
        }
    }

    #[test]
    fn a_remote_refusal_is_reported_with_its_host_and_reply() {
        let header = b"Subject: hi\nMessage-ID: <m1@example.org>\n";
        let c = failure_report(
            &reporter(),
            &original(header, b"hello\n"),
            "alice@example.org",
            "1xZGKj-00028r-0y",
            &[remote_failure()],
            1_796_340_927,
        );
        let body = String::from_utf8(c.body).unwrap();
        assert!(body.contains(
            "  bob@remote.test\n    host mx1.remote.test [192.0.2.1]\n    SMTP error from remote mail server after RCPT TO:<bob@remote.test>:\n    550 5.1.1 no such user\n"
        ), "{body}");
        for field in [
            "Reporting-MTA: dns; mx.example.org\n",
            "Original-Envelope-Id: QQ314159\n",
            "Original-Recipient: rfc822;Bob@Remote.test\n",
            "Final-Recipient: rfc822;bob@remote.test\n",
            "Action: failed\n",
            "Status: 5.1.1\n",
            "Remote-MTA: dns; mx1.remote.test\n",
            "Diagnostic-Code: smtp; 550 5.1.1 no such user\n",
            "Content-type: message/rfc822\n\nReturn-path: <alice@example.org>\nSubject: hi\n",
        ] {
            assert!(body.contains(field), "{field:?} missing:\n{body}");
        }
        let names: Vec<String> = c
            .headers
            .iter()
            .map(|h| String::from_utf8_lossy(&h.text).into_owned())
            .collect();
        let all = names.concat();
        for h in [
            "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n",
            "Auto-Submitted: auto-replied\n",
            "X-Failed-Recipients: bob@remote.test\n",
            "References: <m1@example.org>\n",
            "In-Reply-To: <m1@example.org>\n",
            "To: alice@example.org\n",
        ] {
            assert!(all.contains(h), "{h:?} missing:\n{all}");
        }
    }

    #[test]
    fn a_local_failure_is_not_an_smtp_diagnostic_and_names_no_host() {
        let f = Failure {
            address: "carol@example.org".into(),
            orcpt: None,
            why: Diagnosis {
                text: "Unrouteable address".into(),
                status: Some("5.1.1".into()),
                remote: None,
            },
            at: 1,
        };
        let c = failure_report(
            &reporter(),
            &original(b"Subject: x\n", b"b\n"),
            "alice@example.org",
            "1xZGKj-00028r-0y",
            &[f],
            2,
        );
        let body = String::from_utf8(c.body).unwrap();
        assert!(body.contains("Diagnostic-Code: X-Sluice; Unrouteable address\n"));
        assert!(!body.contains("Remote-MTA"));
        assert!(body.contains("  carol@example.org\n    Unrouteable address\n"));
    }

    #[test]
    fn only_the_header_returns_when_too_big_or_asked() {
        let big = vec![b'x'; 200 * 1024];
        for (ret, body_bytes) in [(None, &big[..]), (Some(DsnRet::Headers), &b"small\n"[..])] {
            let mut o = original(b"Subject: big\n", body_bytes);
            o.ret = ret;
            let c = failure_report(
                &reporter(),
                &o,
                "a@b",
                "1xZGKj-00028r-0y",
                &[remote_failure()],
                3,
            );
            let body = String::from_utf8(c.body).unwrap();
            assert!(body.contains("Content-type: text/rfc822-headers\n\nReturn-path: <alice@example.org>\nSubject: big\n\n--"), "{ret:?}");
            assert!(!body.contains("xxxx") && !body.contains("small"));
            assert_eq!(body.contains("over the limit"), ret.is_none());
        }
        let mut o = original(b"Subject: =?utf-8?q?x?=\n", b"b\n");
        o.international = true;
        let c = failure_report(
            &reporter(),
            &o,
            "a@b",
            "1xZGKj-00028r-0y",
            &[remote_failure()],
            3,
        );
        let body = String::from_utf8(c.body).unwrap();
        assert!(body.contains("Content-type: message/global\n"));
        assert!(body.contains("Content-type: message/global-delivery-status\n"));
    }

    #[test]
    fn message_ids_are_found_folded_or_not() {
        assert_eq!(message_id(b"Message-ID:\n <a@b>\n"), Some("<a@b>".into()));
        assert_eq!(message_id(b"message-id: <x@y> (c)\n"), Some("<x@y>".into()));
        assert_eq!(message_id(b"Subject: none\n"), None);
    }
}
