//! The `-J` delivery journal: what happened to each recipient during a
//! delivery attempt, appended and flushed before anyone relies on it, and
//! merged into the `-H` file when the attempt ends (Exim keeps a `-J` file
//! for the same reason: the `-H` file is rewritten as a whole, which is too
//! costly after every single delivery).
//!
//! One record per line:
//!
//! ```text
//! 1b2c3d4e I 0 1739545960                     intent: delivery of recipient 0 starts
//! 5f6a7b8c D 0 1739545961                     delivered
//! 9d0e1f2a F 1 1739545961 550 no such user    failed (permanent)
//! 3b4c5d6e Z 2 1739545962 1739549562 3 451 try later   deferred until, attempts
//! 7a8b9c0d f 1 1739545961 5.1.1 mx.example.net\x20[192.0.2.1] 550 no such user
//! f5b1f67b y 2 1739542362 1739545962 1739549562 3 4.7.1 - 451 try later
//! ```
//!
//! `f` and `z` are `F` and `Z` with the enhanced status code and the remote
//! host (`-` when not known; the host escaped so it holds no space); `y` is
//! `z` with the time of the recipient's first temporary failure first
//! (retry rules count from it). A journal written before they existed has
//! `F`, `Z` or `z`, which still read, without what they lack.
//!
//! The first field is the FNV-1a hash (32 bits, hex) of the rest of the
//! line. A record whose hash does not match, or the last line without its
//! newline, is what a crash in the middle of an append leaves: it was never
//! flushed, so nobody was told about it, and it is ignored. A record that
//! was flushed is whole, so a crash re-delivers at most the deliveries that
//! were in flight (an intent with no outcome).

use std::fmt::Write as _;

use crate::header_file::{Diagnosis, Envelope, RcptState, Report, escape_into, unescape};
use crate::id::MessageId;

/// One journal record: recipient `index` entered `state`, or its failure
/// report moved on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub index: usize,
    pub change: Change,
}

/// What a record changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    State(RcptState),
    Report(Report),
}

impl Record {
    pub fn state(index: usize, state: RcptState) -> Record {
        Record {
            index,
            change: Change::State(state),
        }
    }

    pub fn report(index: usize, report: Report) -> Record {
        Record {
            index,
            change: Change::Report(report),
        }
    }
}

/// FNV-1a, 32 bits: enough to tell a torn or garbled line from a whole one.
fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Record {
    /// The record as one line, with its hash and newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = String::new();
        let i = self.index;
        let state = match &self.change {
            Change::State(state) => state,
            Change::Report(report) => {
                match report {
                    // Never written: a report is due until its intent.
                    Report::Due => {
                        let _ = write!(body, "B {i} due");
                    }
                    Report::Noted { to, relayed } => {
                        let _ = write!(body, "n {i} ");
                        crate::header_file::word_into(&mut body, to.as_deref());
                        body.push(' ');
                        crate::header_file::word_into(&mut body, relayed.as_deref());
                    }
                    Report::Making(id) => {
                        let _ = write!(body, "b {i} {id}");
                    }
                    Report::MakingFor(id, to) => {
                        let _ = write!(body, "b {i} {id} ");
                        crate::header_file::word_into(&mut body, Some(to));
                    }
                    Report::Made(id) => {
                        let _ = write!(body, "B {i} {id}");
                    }
                    Report::Waived => {
                        let _ = write!(body, "B {i} -");
                    }
                }
                return format!("{:08x} {body}\n", fnv1a(body.as_bytes())).into_bytes();
            }
        };
        match state {
            RcptState::Pending => {
                let _ = write!(body, "P {i}");
            }
            RcptState::InFlight { since } => {
                let _ = write!(body, "I {i} {since}");
            }
            RcptState::Delivered { at } => {
                let _ = write!(body, "D {i} {at}");
            }
            RcptState::Failed { at, why } => {
                let _ = write!(body, "f {i} {at} ");
                detail_into(&mut body, why);
                escape_into(&mut body, &why.text);
            }
            RcptState::Deferred {
                first,
                at,
                until,
                attempts,
                why,
            } => {
                let _ = write!(body, "y {i} {first} {at} {until} {attempts} ");
                detail_into(&mut body, why);
                escape_into(&mut body, &why.text);
            }
        }
        format!("{:08x} {body}\n", fnv1a(body.as_bytes())).into_bytes()
    }

    /// Parses one line (without its newline); `None` for a torn or
    /// garbled record.
    pub fn decode(line: &[u8]) -> Option<Record> {
        let line = std::str::from_utf8(line).ok()?;
        let (hash, body) = line.split_once(' ')?;
        if hash.len() != 8 || u32::from_str_radix(hash, 16).ok()? != fnv1a(body.as_bytes()) {
            return None;
        }
        let mut f = body.splitn(3, ' ');
        let (tag, index) = (f.next()?, f.next()?.parse().ok()?);
        let rest = f.next().unwrap_or("");
        let state = match tag {
            "n" => {
                let (to, relayed) = rest.split_once(' ')?;
                let (to, relayed) = (
                    crate::header_file::word(to)?,
                    crate::header_file::word(relayed)?,
                );
                return Some(Record::report(index, Report::Noted { to, relayed }));
            }
            "b" => {
                let (id, to) = match rest.split_once(' ') {
                    Some((id, to)) => (id, Some(crate::header_file::word(to)??)),
                    None => (rest, None),
                };
                MessageId::parse(id).ok()?;
                let report = match to {
                    Some(to) => Report::MakingFor(id.into(), to),
                    None => Report::Making(id.into()),
                };
                return Some(Record::report(index, report));
            }
            "B" => {
                let report = match rest {
                    "-" => Report::Waived,
                    "due" => Report::Due,
                    id => {
                        MessageId::parse(id).ok()?;
                        Report::Made(id.into())
                    }
                };
                return Some(Record::report(index, report));
            }
            "P" => RcptState::Pending,
            "I" => RcptState::InFlight {
                since: rest.parse().ok()?,
            },
            "D" => RcptState::Delivered {
                at: rest.parse().ok()?,
            },
            "F" => {
                let (at, reason) = rest.split_once(' ')?;
                RcptState::Failed {
                    at: at.parse().ok()?,
                    why: Diagnosis::text(unescape(reason).ok()?),
                }
            }
            "f" => {
                let mut g = rest.splitn(4, ' ');
                let at = g.next()?.parse().ok()?;
                let why = detail(g.next()?, g.next()?, g.next()?)?;
                RcptState::Failed { at, why }
            }
            "Z" => {
                let mut g = rest.splitn(4, ' ');
                RcptState::Deferred {
                    first: 0,
                    at: g.next()?.parse().ok()?,
                    until: g.next()?.parse().ok()?,
                    attempts: g.next()?.parse().ok()?,
                    why: Diagnosis::text(unescape(g.next()?).ok()?),
                }
            }
            // `z` was written before the first failure time was kept.
            "y" | "z" => {
                let mut g = rest.splitn(if tag == "y" { 7 } else { 6 }, ' ');
                let first = if tag == "y" {
                    g.next()?.parse().ok()?
                } else {
                    0
                };
                let (at, until, attempts) = (
                    g.next()?.parse().ok()?,
                    g.next()?.parse().ok()?,
                    g.next()?.parse().ok()?,
                );
                let why = detail(g.next()?, g.next()?, g.next()?)?;
                RcptState::Deferred {
                    first,
                    at,
                    until,
                    attempts,
                    why,
                }
            }
            _ => return None,
        };
        Some(Record::state(index, state))
    }
}

/// `STATUS HOST ` of an `f`/`z` record (`-` for either when unknown).
fn detail_into(body: &mut String, why: &Diagnosis) {
    body.push_str(why.status.as_deref().unwrap_or("-"));
    body.push(' ');
    match &why.remote {
        // The host must be one word: its spaces are escaped too.
        Some(r) => {
            let mut e = String::new();
            escape_into(&mut e, r);
            let e = e.replace(' ', "\\x20");
            // A host written "-" must not read back as "unknown".
            body.push_str(if e == "-" { "\\x2d" } else { &e });
        }
        None => body.push('-'),
    }
    body.push(' ');
}

fn detail(status: &str, remote: &str, text: &str) -> Option<Diagnosis> {
    Some(Diagnosis {
        text: unescape(text).ok()?,
        status: match status {
            "-" => None,
            s if Diagnosis::is_status(s) => Some(s.to_string()),
            _ => return None,
        },
        remote: match remote {
            "-" => None,
            r => Some(unescape(r).ok()?),
        },
    })
}

/// The whole records of a journal's contents, in order. Torn or garbled
/// lines are skipped and counted.
pub fn decode_all(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            bad += 1; // the last append did not finish
            break;
        };
        match Record::decode(&rest[..n]) {
            Some(r) => out.push(r),
            None => bad += 1,
        }
        rest = &rest[n + 1..];
    }
    (out, bad)
}

/// Applies records to an envelope in order. An intent never overrides a
/// final outcome (delivered or failed), and records for recipients the
/// envelope does not have are ignored (and counted).
pub fn apply(env: &mut Envelope, records: &[Record]) -> usize {
    let mut ignored = 0;
    for r in records {
        let Some(rcpt) = env.recipients.get_mut(r.index) else {
            ignored += 1;
            continue;
        };
        match &r.change {
            Change::State(state) => {
                if matches!(state, RcptState::InFlight { .. }) && rcpt.state.is_done() {
                    continue;
                }
                rcpt.state = state.clone();
            }
            Change::Report(report) => rcpt.report = report.clone(),
        }
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::state(0, RcptState::InFlight { since: 10 }),
            Record::state(0, RcptState::Delivered { at: 11 }),
            Record::state(
                1,
                RcptState::Failed {
                    at: 12,
                    why: Diagnosis {
                        text: "550 5.1.1 no such user\nsecond line".into(),
                        status: Some("5.1.1".into()),
                        remote: Some("mx.example.net [192.0.2.1]".into()),
                    },
                },
            ),
            Record::state(
                2,
                RcptState::Deferred {
                    first: 7,
                    at: 13,
                    until: 3613,
                    attempts: 2,
                    why: Diagnosis::text("451 try later"),
                },
            ),
            Record::state(3, RcptState::Pending),
            Record::report(1, Report::Making("1xZGKj-00028r-0y".into())),
            Record::report(
                2,
                Report::MakingFor("1xZGKj-00028r-0y".into(), "o w@example.org".into()),
            ),
            Record::report(1, Report::Made("1xZGKj-00028r-0y".into())),
            Record::report(2, Report::Waived),
            Record::report(
                3,
                Report::Noted {
                    to: Some("owner@example.org".into()),
                    relayed: Some("mx.remote.test [192.0.2.1]".into()),
                },
            ),
        ]
    }

    /// Records written before statuses existed (`F`, `Z`) still read.
    #[test]
    fn old_failure_and_deferral_records_read() {
        let old: &[(&str, RcptState)] = &[
            (
                "F 1 12 550 no such user",
                RcptState::Failed {
                    at: 12,
                    why: Diagnosis::text("550 no such user"),
                },
            ),
            (
                "Z 2 13 3613 2 451 try\\nlater",
                RcptState::Deferred {
                    first: 0,
                    at: 13,
                    until: 3613,
                    attempts: 2,
                    why: Diagnosis::text("451 try\nlater"),
                },
            ),
        ];
        for (body, want) in old {
            let line = format!("{:08x} {body}", fnv1a(body.as_bytes()));
            let r = Record::decode(line.as_bytes()).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(r.change, Change::State(want.clone()), "{body}");
        }
        // A status that is no status makes the record unreadable.
        let body = "f 1 12 5.x.1 - text";
        let line = format!("{:08x} {body}", fnv1a(body.as_bytes()));
        assert_eq!(Record::decode(line.as_bytes()), None);
    }

    #[test]
    fn a_remote_host_written_as_a_dash_is_kept() {
        let r = Record::state(
            0,
            RcptState::Failed {
                at: 1,
                why: Diagnosis {
                    text: "t".into(),
                    status: None,
                    remote: Some("-".into()),
                },
            },
        );
        let line = r.encode();
        assert_eq!(Record::decode(&line[..line.len() - 1]), Some(r));
    }

    #[test]
    fn records_round_trip() {
        let mut data = Vec::new();
        for r in records() {
            let line = r.encode();
            assert_eq!(line.iter().filter(|&&c| c == b'\n').count(), 1);
            data.extend(line);
        }
        assert_eq!(decode_all(&data), (records(), 0));
    }

    #[test]
    fn torn_and_garbled_records_are_skipped() {
        let mut data = Vec::new();
        for r in records() {
            data.extend(r.encode());
        }
        // Every cut keeps exactly the records whose line is complete.
        for cut in 0..data.len() {
            let (got, _) = decode_all(&data[..cut]);
            let whole = data[..cut].iter().filter(|&&c| c == b'\n').count();
            assert_eq!(got, records()[..whole].to_vec(), "cut at {cut}");
        }
        // A flipped byte invalidates that record only.
        let mut garbled = data.clone();
        garbled[12] ^= 1;
        let (got, bad) = decode_all(&garbled);
        assert_eq!(bad, 1);
        assert_eq!(got, records()[1..].to_vec());
        // Zeros where a crash extended the file without its data.
        let mut zeros = data.clone();
        zeros.extend([0u8; 40]);
        zeros.push(b'\n');
        assert_eq!(decode_all(&zeros), (records(), 1));
    }

    #[test]
    fn apply_merges_in_order() {
        let mut env = Envelope::new("a@x", &["r0@x", "r1@x", "r2@x", "r3@x"]);
        let mut recs = records();
        // An intent after the outcome (a replayed journal) changes nothing.
        recs.push(Record::state(0, RcptState::InFlight { since: 20 }));
        recs.push(Record::state(9, RcptState::Delivered { at: 1 }));
        assert_eq!(apply(&mut env, &recs), 1);
        let st: Vec<&RcptState> = env.recipients.iter().map(|r| &r.state).collect();
        assert_eq!(st[0], &RcptState::Delivered { at: 11 });
        assert!(matches!(st[1], RcptState::Failed { .. }));
        assert!(matches!(st[2], RcptState::Deferred { until: 3613, .. }));
        assert_eq!(st[3], &RcptState::Pending);
        assert_eq!(
            env.recipients[1].report,
            Report::Made("1xZGKj-00028r-0y".into())
        );
        assert_eq!(env.recipients[2].report, Report::Waived);
        assert!(env.recipients[1].is_settled() && !env.recipients[2].is_settled());
    }
}
