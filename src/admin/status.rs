//! The status page: the queue, the last hour and today's report with its
//! charts, as one server-rendered HTML page (styles inline, charts as
//! inline SVG, nothing loaded from anywhere else).

use std::fmt::Write;

use super::metrics::Rates;
use super::queue_view::Summary;
use crate::stats::report::Report;
use crate::stats::svg::escape;
use crate::stats::{html, text};

/// What the page shows.
pub struct Status<'a> {
    pub host: &'a str,
    /// Unix seconds.
    pub now: i64,
    pub queue: &'a Summary,
    pub last_hour: Rates,
    pub today: &'a Report,
}

pub fn render(s: &Status<'_>) -> String {
    let mut out = String::new();
    let title = format!("{}: mail status", s.host);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"60\">\n<title>{t}</title>\n<style>{style}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p>At {now} UTC. The page refreshes every minute.</p>",
        t = escape(&title),
        style = html::STYLE,
        now = crate::stats::zone::civil_text(s.now),
    );

    let q = s.queue;
    out.push_str("<h2>Queue</h2>\n<table id=\"queue\">\n");
    let _ = writeln!(
        out,
        "<tr><th>Messages</th><td data-value=\"{m}\">{m}</td></tr>\n<tr><th>Frozen</th><td data-value=\"{f}\">{f}</td></tr>",
        m = q.messages,
        f = q.frozen
    );
    match &q.oldest {
        Some((id, at)) => {
            let age = (s.now.max(0) as u64).saturating_sub(*at);
            let _ = writeln!(
                out,
                "<tr><th>Oldest</th><td>{} ({} on the queue)</td></tr>",
                escape(id),
                text::duration(age).trim()
            );
        }
        None => out.push_str("<tr><th>Oldest</th><td>-</td></tr>\n"),
    }
    out.push_str("</table>\n");
    if !q.domains.is_empty() {
        out.push_str(
            "<h2>Waiting recipients by domain</h2>\n<table id=\"domains\">\n<tr><th>Domain</th><th>Recipients</th></tr>\n",
        );
        for (d, n) in &q.domains {
            let _ = writeln!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(d));
        }
        out.push_str("</table>\n");
    }

    let h = s.last_hour;
    out.push_str("<h2>The last hour</h2>\n<table id=\"last-hour\">\n<tr><th></th><th>Messages</th><th>Per minute</th></tr>\n");
    for (name, n) in [
        ("Received", h.received),
        ("Delivered", h.delivered),
        ("Deferred", h.deferred),
        ("Failed", h.failed),
        ("Rejected", h.rejected),
    ] {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td data-value=\"{n}\">{n}</td><td>{:.1}</td></tr>",
            n as f64 / 60.0
        );
    }
    out.push_str("</table>\n");

    let r = s.today;
    let _ = writeln!(
        out,
        "<h2>Today</h2>\n<p>From {} to {}, times in {}; the full report: <code>sluice stats --html FILE</code>.</p>",
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-"),
        escape(&r.zone)
    );
    html::grand_total(&mut out, r);
    out.push_str(&html::charts(r));
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_what_it_shows() {
        let queue = Summary {
            messages: 3,
            oldest: Some(("1tixMn-00000000C5j-1wRa".into(), 1000)),
            frozen: 1,
            domains: vec![("<b>evil.example".into(), 2)],
            unreadable: 0,
        };
        let today = Report::default();
        let page = render(&Status {
            host: "mx.example",
            now: 4600,
            queue: &queue,
            last_hour: Rates {
                received: 120,
                ..Rates::default()
            },
            today: &today,
        });
        assert!(page.contains("&lt;b&gt;evil.example"), "{page}");
        assert!(!page.contains("<b>evil"));
        assert!(page.contains("(1h on the queue)"), "{page}");
        assert!(
            page.contains("<td data-value=\"120\">120</td><td>2.0</td>"),
            "{page}"
        );
        assert!(!page.contains("<script"));
        // Nothing fetched from elsewhere (the SVG namespace is a name).
        for fetch in ["src=", "href=", "<link", "@import", "url("] {
            assert!(!page.contains(fetch), "{fetch} in {page}");
        }
    }
}
