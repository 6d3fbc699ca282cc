//! The text report, in eximstats's layout: the same section titles,
//! columns and rounding, so that scripts written for eximstats's output
//! (and eximstats's own `-merge`) read it. The `Grand total summary` rows
//! split on white space into the same fields.
//!
//! Sections eximstats does not have (messages per day, the domain and
//! address league tables, which eximstats prints only with `-byedomain`
//! and `-byemail`) come where eximstats would put them, under the titles
//! eximstats gives them.

use std::fmt::Write;

use super::report::{Count, League, Report, Row};

/// eximstats works in whole gigabytes plus bytes.
const GIG: u64 = 1024 * 1024 * 1024;

/// A volume as eximstats rounds it: bytes below 10,000, then KB below
/// 10,000,000 bytes, MB below 10 GB, then GB; each rounded to nearest.
pub fn volume(bytes: u64) -> String {
    volume_parts(bytes, 0)
}

/// [`volume`] of `gigs` gigabytes plus `bytes`.
fn volume_parts(mut bytes: u64, mut gigs: u64) -> String {
    // Whole gigabytes move over only above one: exactly 1 GB stays in
    // bytes, as eximstats has it.
    if bytes > GIG {
        let n = (bytes - 1) / GIG;
        gigs += n;
        bytes -= n * GIG;
    }
    if gigs == 0 {
        if bytes < 10_000 {
            format!("{bytes:6}")
        } else if bytes < 10_000_000 {
            format!("{:4}KB", (bytes + 512) / 1024)
        } else {
            format!("{:4}MB", (bytes + 512 * 1024) / (1024 * 1024))
        }
    } else if gigs < 10 {
        format!("{:4}MB", gigs * 1024 + (bytes + 512 * 1024) / (1024 * 1024))
    } else {
        format!("{:4}GB", gigs + (bytes + GIG / 2) / GIG)
    }
}

/// Back from a rounded volume to (bytes, gigabytes), as eximstats does
/// before it divides for the average.
fn unround(v: &str) -> (u64, u64) {
    let v = v.trim();
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    if let Some(n) = v.strip_suffix("GB") {
        (0, num(n))
    } else if let Some(n) = v.strip_suffix("MB") {
        let n = num(n);
        ((n % 1024) * 1024 * 1024, n / 1024)
    } else if let Some(n) = v.strip_suffix("KB") {
        let n = num(n);
        ((n % (1024 * 1024)) * 1024, n / (1024 * 1024))
    } else {
        let n = num(v);
        (n % GIG, n / GIG)
    }
}

/// The average per message of a rounded volume, eximstats's way: the
/// bytes and the gigabytes are divided apart.
fn average(rounded: &str, messages: u64) -> String {
    let (bytes, gigs) = unround(rounded);
    let m = messages.max(1);
    volume_parts(bytes / m, gigs / m)
}

/// Seconds as `1w2d3h4m5s`, without the zero parts.
pub fn duration(secs: u64) -> String {
    let (s, m, h) = (secs % 60, secs / 60 % 60, secs / 3600 % 24);
    let (d, w) = (secs / 86400 % 7, secs / (86400 * 7));
    let mut out = String::new();
    for (n, unit) in [(w, 'w'), (d, 'd'), (h, 'h'), (m, 'm')] {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
}

fn title(out: &mut String, t: &str) {
    let _ = writeln!(out, "{t}\n{}", "-".repeat(t.len()));
}

/// The sections before the relays.
fn head(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nExim statistics from {} to {}",
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "Times are in {}.", r.zone);
    grand_total(&mut out, r);
    transports(&mut out, r);
    histogram(
        &mut out,
        "Messages received",
        "message",
        &r.per_hour.received,
    );
    histogram(&mut out, "Deliveries", "delivery", &r.per_hour.delivered);
    per_day(&mut out, r);
    queue_times(
        &mut out,
        "all messages",
        &r.queue_time.limits,
        &r.queue_time.all,
    );
    queue_times(
        &mut out,
        "messages with at least one remote delivery",
        &r.queue_time.limits,
        &r.queue_time.remote,
    );
    out
}

/// The sections after the relays.
fn tail(r: &Report) -> String {
    let mut out = String::new();
    counts(&mut out, "mail rejection reason", &r.rejection_reasons);
    counts(
        &mut out,
        "mail temporary rejection reason",
        &r.temporary_rejection_reasons,
    );
    let t = &r.top;
    league(&mut out, "sending host", &t.sending_hosts);
    league(&mut out, "sending email", &t.sending_addresses);
    league(&mut out, "sending edomain", &t.sending_domains);
    league(&mut out, "local sender", &t.local_senders);
    league(&mut out, "host destination", &t.host_destinations);
    league(&mut out, "email destination", &t.address_destinations);
    league(&mut out, "edomain destination", &t.domain_destinations);
    league(&mut out, "local destination", &t.local_destinations);
    counts(&mut out, "rejected ip", &r.rejected_hosts);
    counts(
        &mut out,
        "temporarily rejected ip",
        &r.temporarily_rejected_hosts,
    );
    errors(&mut out, r);
    out
}

fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

fn grand_total(out: &mut String, r: &Report) {
    out.push_str("\nGrand total summary\n-------------------\n");
    let _ = writeln!(out, "{}At least one address", " ".repeat(66));
    out.push_str(
        "  TOTAL               Volume   Messages Addresses     Hosts      Delayed       Failed\n",
    );
    let rec = &r.received;
    let _ = writeln!(
        out,
        "  {:<16} {:>9}     {:6}    {:>6}    {:>6}  {:6} {:4.1}% {:6} {:4.1}%",
        "Received",
        volume(rec.bytes),
        rec.messages,
        "",
        rec.hosts,
        r.delayed.messages,
        percent(r.delayed.messages, rec.messages),
        r.failed.messages,
        percent(r.failed.messages, rec.messages),
    );
    let d = &r.delivered;
    let _ = writeln!(
        out,
        "  {:<16} {:>9}     {:6}    {:>6}    {:>6}",
        "Delivered",
        volume(d.bytes),
        d.messages,
        d.addresses,
        d.hosts
    );
    for (name, x) in [
        ("Rejects", &r.rejected),
        ("Temp Rejects", &r.temporarily_rejected),
    ] {
        if x.messages > 0 {
            let _ = writeln!(
                out,
                "  {name:<16} {:>9}     {:6}    {:>6}    {:>6}",
                "", x.messages, "", x.hosts
            );
        }
    }
    out.push('\n');
}

fn transports(out: &mut String, r: &Report) {
    out.push_str("Deliveries by transport\n-----------------------\n");
    out.push_str("                      Volume    Messages\n");
    for t in &r.transports {
        let _ = writeln!(
            out,
            "  {:<18}  {:>6}      {:6}",
            t.name,
            volume(t.bytes),
            t.messages
        );
    }
    out.push('\n');
}

fn histogram(out: &mut String, text: &str, unit: &str, counts: &[u64]) {
    let max = counts.iter().copied().max().unwrap_or(0);
    let scale = ((max + 25) / 50).max(1);
    let unit = match (scale, unit.strip_suffix('y')) {
        (1, _) => unit.to_string(),
        (_, Some(stem)) => format!("{stem}ies"),
        (_, None) => format!("{unit}s"),
    };
    title(
        out,
        &format!("{text} per hour (each dot is {scale} {unit})"),
    );
    out.push('\n');
    for (h, c) in counts.iter().enumerate() {
        let dots = ".".repeat((c / scale) as usize);
        let _ = writeln!(out, "{h:02}-{:02} {c:6} {dots}", h + 1);
    }
    out.push('\n');
}

fn per_day(out: &mut String, r: &Report) {
    title(out, "Messages per day");
    out.push('\n');
    out.push_str("  Date          Received  Delivered   Deferred     Failed\n");
    for d in &r.per_day {
        let _ = writeln!(
            out,
            "  {:<10}  {:10} {:10} {:10} {:10}",
            d.date, d.received, d.delivered, d.deferred, d.failed
        );
    }
    out.push('\n');
}

fn queue_times(out: &mut String, which: &str, limits: &[u64], bins: &[u64]) {
    title(out, &format!("Time spent on the queue: {which}"));
    out.push('\n');
    let total: u64 = bins.iter().sum();
    let mut cumulative = 0.0;
    let mut first = true;
    for (i, &n) in bins.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let p = percent(n, total);
        cumulative += p;
        let (label, limit) = match limits.get(i) {
            Some(&l) => (if first { "Under" } else { "     " }, l),
            None => ("Over ", limits.last().copied().unwrap_or(0)),
        };
        first = false;
        let _ = writeln!(
            out,
            "{label:>5} {:>4}   {n:6} {p:5.1}%  {cumulative:5.1}%",
            duration(limit)
        );
    }
    out.push('\n');
}

/// The whole report.
pub fn render(r: &Report) -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = write(r, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the whole report to `w` as it is made: a relay's report lists
/// about as many relays as the log has messages, and need not be held in
/// memory as text.
pub fn write(r: &Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    w.write_all(head(r).as_bytes())?;
    relayed(r, w)?;
    w.write_all(tail(r).as_bytes())
}

fn relayed(r: &Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    if r.relayed.is_empty() {
        return w.write_all(b"No relayed messages\n-------------------\n\n");
    }
    let mut out = String::new();
    title(&mut out, "Relayed messages");
    out.push('\n');
    let mut total = 0;
    for (from, to, messages) in r.relayed.iter() {
        total += messages;
        let _ = writeln!(out, "{messages:7} {from} \n      => {to}");
        if out.len() >= 64 * 1024 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    let _ = writeln!(out, "\nTotal: {total} (plus 0 unshown)\n");
    w.write_all(out.as_bytes())
}

/// `Top 50 <text>s by message count` over plain counts.
fn counts(out: &mut String, text: &str, rows: &[Count]) {
    if rows.is_empty() {
        return;
    }
    title(
        out,
        &format!("Top {} {text}s by message count", super::report::TOP),
    );
    let _ = writeln!(out, "{:>10}   {}", "Messages", upper_first(text));
    for c in rows {
        let _ = writeln!(out, "{:10}   {}", c.messages, c.key);
    }
    out.push('\n');
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A league table, by count and by volume.
fn league(out: &mut String, text: &str, l: &League) {
    if l.by_count.is_empty() {
        return;
    }
    let with_addresses = l.by_count.iter().any(|r| r.addresses.is_some());
    for (by, rows) in [("message count", &l.by_count), ("volume", &l.by_volume)] {
        title(out, &format!("Top {} {text}s by {by}", super::report::TOP));
        let mut header = format!("{:>10} ", "Messages");
        if with_addresses {
            let _ = write!(header, "{:>10} ", "Addresses");
        }
        let _ = writeln!(
            out,
            "{header}{:>10} {:>10}   {}",
            "Bytes",
            "Average",
            upper_first(text)
        );
        for r in rows.iter() {
            row(out, r, with_addresses);
        }
        out.push('\n');
    }
}

fn row(out: &mut String, r: &Row, with_addresses: bool) {
    let v = volume(r.bytes);
    let _ = write!(out, "{:10} ", r.messages);
    if with_addresses {
        let _ = write!(out, "{:10} ", r.addresses.unwrap_or(0));
    }
    let _ = writeln!(out, "{:>10} {:>10}   {}", v, average(&v, r.messages), r.key);
}

fn errors(out: &mut String, r: &Report) {
    if r.errors.is_empty() {
        return;
    }
    title(out, "List of errors");
    out.push('\n');
    let mut total = 0;
    for e in &r.errors {
        total += e.messages;
        let _ = write!(out, "{:5} ", e.messages);
        let text = collapse_blanks(&e.key);
        let mut rest = text.as_str();
        // Long texts are wrapped at the first blank after 50 bytes.
        while rest.len() > 65 {
            let Some(cut) = rest
                .bytes()
                .enumerate()
                .skip(50)
                .find(|(_, b)| b.is_ascii_whitespace())
                .map(|(i, _)| i)
                .filter(|&i| i + 1 < rest.len())
            else {
                break;
            };
            let _ = write!(out, "{}\n\t    ", &rest[..cut]);
            rest = &rest[cut + 1..];
        }
        let _ = writeln!(out, "{rest}\n");
    }
    title(out, &format!("Errors encountered: {total}"));
}

/// Runs of white space as one space.
fn collapse_blanks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() && chars.peek().is_some_and(|n| n.is_whitespace()) {
            while chars.peek().is_some_and(|n| n.is_whitespace()) {
                chars.next();
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_round_as_eximstats() {
        let cases: &[(u64, &str)] = &[
            (0, "     0"),
            (9_999, "  9999"),
            (10_000, "  10KB"),
            (2_237, "  2237"),
            (9_999_999, "9766KB"),
            (10_000_000, "  10MB"),
            (GIG, "1024MB"),
            (GIG + 1, "1024MB"),
            (3 * GIG, "3072MB"),
            (10 * GIG + 1, "  10GB"),
            (15 * GIG + GIG / 2, "  16GB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(volume(*bytes), *want, "{bytes}");
        }
        assert_eq!(average("  2237", 6), "   372");
        assert_eq!(average("  10KB", 3), "  3413");
    }

    #[test]
    fn durations() {
        for (s, want) in [
            (0, "0s"),
            (60, "1m"),
            (86400, "1d"),
            (12005, "3h20m5s"),
            (691200, "1w1d"),
        ] {
            assert_eq!(duration(s), want);
        }
    }
}
