//! The tally against eximstats's figures for the same logs, and pieces
//! merged against the whole.

use super::zone::Zone;
use super::*;

fn opts() -> Options {
    Options {
        zone: Zone::Fixed(0),
        from: None,
        to: None,
    }
}

use crate::log::exim_fixture as fixture;

/// eximstats 1.61 on tests/fixtures/exim-4.96/mainlog:
/// `Received 5528 8 2 1 12.5% 2 25.0%`, `Delivered 4960 7 7 1`,
/// `Rejects 3 1`, one queue time under a minute for all 8 completions.
#[test]
fn the_exim_fixture_counts_as_eximstats_counts_it() {
    let r = tally_text(opts(), &fixture("mainlog"));
    assert_eq!(
        (r.received.messages, r.received.bytes, r.received.hosts),
        (8, 5528, 2)
    );
    assert_eq!((r.delayed.messages, r.failed.messages), (1, 2));
    assert_eq!(
        (
            r.delivered.messages,
            r.delivered.bytes,
            r.delivered.addresses,
            r.delivered.hosts
        ),
        (7, 4960, 7, 1)
    );
    assert_eq!((r.rejected.messages, r.rejected.hosts), (3, 1));
    assert_eq!(r.queue_time.all[0], 8);
    assert_eq!(r.queue_time.remote.iter().sum::<u64>(), 0);
    assert_eq!(r.per_hour.received[8], 8);
    assert_eq!(r.from.as_deref(), Some("2026-12-03 08:27:55"));
    assert_eq!(r.to.as_deref(), Some("2026-12-03 08:28:16"));
    let reasons: Vec<&str> = r.rejection_reasons.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "Rejected RCPT: Unrouteable address",
            "Rejected RCPT: relay not permitted",
            "Subject says reject me"
        ]
    );
    let top = &r.top.local_destinations.by_count;
    assert_eq!(
        top.iter()
            .map(|r| (r.key.as_str(), r.messages, r.bytes))
            .collect::<Vec<_>>(),
        [("alice", 4, 1392), ("carol", 2, 3291), ("bob", 1, 277)]
    );
    assert_eq!(r.errors.len(), 2);
    assert_eq!(
        r.errors[0].key,
        "gone@local.test R=gone: this mailbox is gone"
    );
}

/// However a log is cut into pieces, the merged tallies are the tally of
/// the whole: messages whose lines fall into two pieces included, and the
/// keys of the later pieces counted by the two workers that own them.
#[test]
fn pieces_merge_to_the_whole() {
    let log = fixture("mainlog") + &fixture("outbound/mainlog");
    let lines: Vec<&str> = log.lines().collect();
    let whole = tally_text(opts(), &log);
    for cut in 1..lines.len() {
        for cut2 in [cut + 1, cut + 7, lines.len()] {
            let cut2 = cut2.min(lines.len());
            let mut a = Tally::new(opts());
            lines[..cut].iter().for_each(|l| a.line(l));
            let mut ring = Router::ring(2).into_iter();
            let mut b = Tally::routed(opts(), ring.next().unwrap());
            let mut c = Tally::routed(opts(), ring.next().unwrap());
            lines[cut..cut2].iter().for_each(|l| b.line(l));
            lines[cut2..].iter().for_each(|l| c.line(l));
            b.read_mail();
            // Each waits for the other's last records.
            std::thread::scope(|s| {
                s.spawn(|| b.close_routes());
                c.close_routes();
            });
            a.merge(b);
            a.merge(c);
            assert_eq!(a.finish(), whole, "cut at {cut}, {cut2}");
        }
    }
}

#[test]
fn a_delivery_before_its_arrival_waits_for_the_size() {
    let log = "\
2026-12-03 10:00:01 1xZ2AV-00057J-2O => bob@remote.example R=dnslookup T=remote_smtp H=mx.remote.example [192.0.2.7] C=\"250 OK\"
2026-12-03 10:00:00 1xZ2AV-00057J-2O <= alice@here.example H=(client.example) [192.0.2.1] P=esmtp S=1000
2026-12-03 10:00:02 1xZ2AV-00057J-2O Completed
";
    let r = tally_text(opts(), log);
    assert_eq!(r.delivered.bytes, 1000);
    assert_eq!(r.transports[0].bytes, 1000);
    assert_eq!(r.relayed.len(), 1);
    let (from, to, n) = r.relayed.iter().next().unwrap();
    assert_eq!(from, "(client.example)[192.0.2.1] alice@here.example");
    assert_eq!(to, "mx.remote.example[192.0.2.7] bob@remote.example");
    assert_eq!(n, 1);
    assert_eq!(r.queue_time.remote[0], 1);
}

#[test]
fn offsets_and_zones_place_lines_in_the_reports_hours() {
    // 23:30 at -0100 is 00:30 UTC the next day.
    let log = "\
2026-12-03 23:30:00 -0100 1xZ2AV-00057J-2O <= a@x.example U=root P=local S=10
2026-12-04 00:40:00 1xZ2AV-00057J-2O Completed
";
    let r = tally_text(opts(), log);
    assert_eq!(r.per_hour.received[0], 1);
    assert_eq!(r.per_day[0].date, "2026-12-04");
    // Completed 10 minutes after the arrival.
    assert_eq!(r.queue_time.all[1], 0);
    assert_eq!(r.queue_time.all[2], 1);
    let plus_one = Options {
        zone: Zone::Fixed(3600),
        ..opts()
    };
    let r = tally_text(plus_one, log);
    assert_eq!(r.per_hour.received[1], 1);
    // The line without an offset is read at +0100: 23:40 UTC, before the
    // arrival.
    assert_eq!(r.queue_time.all[0], 1);
    assert_eq!(r.zone, "+0100");
}

#[test]
fn from_and_to_keep_a_range() {
    let log = fixture("mainlog");
    let at = |t: &str| zone::civil_seconds(t).unwrap();
    let r = tally_text(
        Options {
            from: Some(at("2026-12-03 08:27:56")),
            to: Some(at("2026-12-03 08:27:57")),
            ..opts()
        },
        &log,
    );
    assert_eq!(r.received.messages, 2);
    assert_eq!(r.from.as_deref(), Some("2026-12-03 08:27:56"));
    assert_eq!(r.to.as_deref(), Some("2026-12-03 08:27:56"));
}

/// Exim's `millisec`, `log_timezone` and `pid` selectors (a real Exim 4.96
/// log), and a 4.97 line with a 23-character ID (REFERENCE.md §1.3).
#[test]
fn selectors_and_long_exim_ids() {
    let r = tally_text(opts(), &fixture("mainlog-selectors"));
    assert_eq!((r.received.messages, r.received.bytes), (1, 416));
    assert_eq!(r.delivered.messages, 1);
    assert_eq!(r.queue_time.all[0], 1);
    assert_eq!(r.rejected_hosts[0].key, "local");
    assert_eq!(r.top.local_senders.by_count[0].key, "root");
    let log = "\
2025-02-14 18:12:33.470 [46483] 1tixMn-00000000C5j-1wRa <= root@domain.ru U=root Ci=46483 P=local S=362 M8S=0 RT=0.004s id*=E1tixMn-00000000C5j-1wRa@mail.domain.ru T=\"test\" from <root@domain.ru> for test@domain.ru
2025-02-14 18:12:33.512 [46484] 1tixMn-00000000C5j-1wRa => test <test@domain.ru> R=local_user T=mail_spool
2025-02-14 18:12:33.513 [46484] 1tixMn-00000000C5j-1wRa Completed
";
    let r = tally_text(opts(), log);
    assert_eq!((r.received.messages, r.delivered.messages), (1, 1));
    assert_eq!(r.delivered.bytes, 362);
    assert_eq!(r.top.address_destinations.by_count[0].key, "test@domain.ru");
    assert_eq!(r.per_hour.received[18], 1);
}
