//! The HTML report: one page that stands alone (styles inline, charts as
//! inline SVG, no script, no font or image from elsewhere), so that it can
//! be mailed or archived as one file.
//!
//! The charts: messages per hour (received, delivered, deferred, failed),
//! time on the queue, and the top senders and recipients by count. The
//! tables are the text report's, which the page carries whole.

use std::fmt::Write;

use super::report::Report;
use super::svg::{self, Series, escape};
use super::text;

/// How many senders and recipients the charts show.
pub const CHART_ROWS: usize = 10;

pub const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}\
th{background:#eee}td:first-child{text-align:left}\
svg .title{font-size:13px;font-weight:bold}svg .label{font-size:10px}\
pre{font-size:12px;background:#f7f7f7;padding:1em;overflow:auto}";

/// The page.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let title = format!(
        "Mail statistics from {} to {}",
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>Times are in {z}.</p>",
        t = escape(&title),
        z = escape(&r.zone)
    );
    grand_total(&mut out, r);
    out.push_str(&charts(r));
    out.push_str("<h2>All tables</h2>\n<pre>");
    out.push_str(&escape(&text::render(r)));
    out.push_str("</pre>\n</body>\n</html>\n");
    out
}

/// The charts of a report, each under its heading: messages per hour, time
/// on the queue, the top senders and recipients.
pub fn charts(r: &Report) -> String {
    let mut out = String::new();
    let hours: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    out.push_str("<h2>Messages per hour</h2>\n");
    out.push_str(&svg::grouped_bars(
        "per-hour",
        "Messages per hour",
        &hours,
        &[
            Series {
                name: "received",
                color: "#4477aa",
                values: &r.per_hour.received,
            },
            Series {
                name: "delivered",
                color: "#228833",
                values: &r.per_hour.delivered,
            },
            Series {
                name: "deferred",
                color: "#ccbb44",
                values: &r.per_hour.deferred,
            },
            Series {
                name: "failed",
                color: "#ee6677",
                values: &r.per_hour.failed,
            },
        ],
    ));

    let q = &r.queue_time;
    let mut buckets: Vec<String> = q
        .limits
        .iter()
        .map(|&l| format!("< {}", text::duration(l)))
        .collect();
    buckets.push(format!(
        "> {}",
        text::duration(q.limits.last().copied().unwrap_or(0))
    ));
    out.push_str("<h2>Time spent on the queue</h2>\n");
    out.push_str(&svg::grouped_bars(
        "queue-time",
        "Time spent on the queue",
        &buckets,
        &[
            Series {
                name: "all",
                color: "#4477aa",
                values: &q.all,
            },
            Series {
                name: "remote",
                color: "#66ccee",
                values: &q.remote,
            },
        ],
    ));

    let top = |rows: &[super::report::Row]| -> Vec<(String, u64)> {
        rows.iter()
            .take(CHART_ROWS)
            .map(|r| (r.key.clone(), r.messages))
            .collect()
    };
    out.push_str("<h2>Top senders</h2>\n");
    out.push_str(&svg::ranked_bars(
        "top-senders",
        "Top sending addresses by message count",
        "sending_addresses",
        &top(&r.top.sending_addresses.by_count),
    ));
    out.push_str("<h2>Top recipients</h2>\n");
    out.push_str(&svg::ranked_bars(
        "top-recipients",
        "Top recipient addresses by message count",
        "address_destinations",
        &top(&r.top.address_destinations.by_count),
    ));
    out
}

/// The grand total table.
pub fn grand_total(out: &mut String, r: &Report) {
    out.push_str("<h2>Grand total summary</h2>\n<table>\n<tr><th>TOTAL</th><th>Volume</th><th>Bytes</th><th>Messages</th><th>Addresses</th><th>Hosts</th><th>Delayed</th><th>Failed</th></tr>\n");
    let _ = writeln!(
        out,
        "<tr><td>Received</td><td>{}</td><td>{}</td><td>{}</td><td></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        text::volume(r.received.bytes).trim(),
        r.received.bytes,
        r.received.messages,
        r.received.hosts,
        r.delayed.messages,
        r.failed.messages
    );
    let _ = writeln!(
        out,
        "<tr><td>Delivered</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td><td></td></tr>",
        text::volume(r.delivered.bytes).trim(),
        r.delivered.bytes,
        r.delivered.messages,
        r.delivered.addresses,
        r.delivered.hosts
    );
    for (name, x) in [
        ("Rejects", &r.rejected),
        ("Temp Rejects", &r.temporarily_rejected),
    ] {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td></td><td></td><td>{}</td><td></td><td>{}</td><td></td><td></td></tr>",
            x.messages, x.hosts
        );
    }
    out.push_str("</table>\n");
}
