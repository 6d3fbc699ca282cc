//! Retry rules in Exim's notation: `F,2h,15m; G,16h,1h,1.5; F,4d,6h`.
//!
//! Each rule holds until its cutoff (time since the first failure): `F,cut,i`
//! retries every `i`; `G,cut,i,m` starts at `i` and multiplies the interval
//! by `m` after each attempt. Past the last cutoff the address times out and
//! fails, and is reported to the sender (`crate::bounce`), as in Exim.

use std::time::Duration;

use crate::config::parse_duration;

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Fixed {
        cutoff: u64,
        interval: u64,
    },
    Geometric {
        cutoff: u64,
        start: u64,
        factor: f64,
    },
}

impl Rule {
    fn cutoff(&self) -> u64 {
        match self {
            Rule::Fixed { cutoff, .. } | Rule::Geometric { cutoff, .. } => *cutoff,
        }
    }
}

/// A parsed retry schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    rules: Vec<Rule>,
}

impl Schedule {
    /// Parses `F,2h,15m; G,16h,1h,1.5; F,4d,6h`.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let mut rules = Vec::new();
        let dur = |v: &str| parse_duration(v).map(|d: Duration| d.as_secs());
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let f: Vec<&str> = part.split(',').map(str::trim).collect();
            let rule = match f.as_slice() {
                ["F", cut, i] => Rule::Fixed {
                    cutoff: dur(cut)?,
                    interval: dur(i)?,
                },
                ["G", cut, i, m] => {
                    Rule::Geometric {
                        cutoff: dur(cut)?,
                        start: dur(i)?,
                        factor: m.parse::<f64>().ok().filter(|m| *m >= 1.0).ok_or_else(|| {
                            format!("{part:?}: the multiplier must be a number >= 1")
                        })?,
                    }
                }
                _ => {
                    return Err(format!(
                        "{part:?}: expected F,<cutoff>,<interval> or G,<cutoff>,<interval>,<multiplier>"
                    ));
                }
            };
            if rule.cutoff() == 0 {
                return Err(format!("{part:?}: the cutoff must be more than 0"));
            }
            if let Some(prev) = rules.last().map(Rule::cutoff)
                && rule.cutoff() <= prev
            {
                return Err(format!("{part:?}: cutoffs must increase"));
            }
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err("no retry rule".into());
        }
        Ok(Schedule { rules })
    }

    /// When to try again after a temporary failure at `now`, for an address
    /// that first failed at `first` and has failed `attempts` times before
    /// (this one not counted). `None`: past the last cutoff, give up.
    pub fn next(&self, first: u64, now: u64, attempts: u32) -> Option<u64> {
        let age = now.saturating_sub(first);
        for rule in &self.rules {
            if age >= rule.cutoff() {
                continue;
            }
            let interval = match rule {
                Rule::Fixed { interval, .. } => *interval,
                Rule::Geometric { start, factor, .. } => {
                    // Attempts made under this rule: those beyond what the
                    // fixed rules before it allowed.
                    let n = attempts.saturating_sub(self.attempts_before(rule.cutoff()));
                    (*start as f64 * factor.powi(n.min(64) as i32)) as u64
                }
            };
            // The last attempt inside a rule's window is allowed past its
            // cutoff only by the next rule, never past the final cutoff.
            let at = now + interval.max(1);
            let last = self.rules.last().map(Rule::cutoff).unwrap_or(0);
            return Some(at.min(first + last));
        }
        None
    }

    /// The last cutoff: after this long since the first failure an
    /// address gives up.
    pub fn last_cutoff(&self) -> u64 {
        self.rules.last().map(Rule::cutoff).unwrap_or(0)
    }

    /// How many attempts the fixed rules before `cutoff` allow (for the
    /// geometric rule's exponent).
    fn attempts_before(&self, cutoff: u64) -> u32 {
        let mut start = 0;
        let mut n = 0u32;
        for r in &self.rules {
            if r.cutoff() >= cutoff {
                break;
            }
            if let Rule::Fixed {
                cutoff: c,
                interval,
            } = r
            {
                n += ((c - start) / interval.max(&1)) as u32;
            }
            start = r.cutoff();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exim_default_schedule() {
        let s = Schedule::parse("F,2h,15m; G,16h,1h,1.5; F,4d,6h").unwrap();
        let h = 3600;
        // First two hours: every 15 minutes.
        assert_eq!(s.next(0, 0, 0), Some(15 * 60));
        assert_eq!(s.next(0, h, 4), Some(h + 15 * 60));
        // Then geometric from 1h: 8 fixed attempts came first.
        assert_eq!(s.next(0, 2 * h, 8), Some(3 * h));
        assert_eq!(s.next(0, 3 * h, 9), Some(3 * h + 5400));
        // Then every 6 hours until 4 days, never past the final cutoff.
        assert_eq!(s.next(0, 20 * h, 20), Some(26 * h));
        assert_eq!(s.next(0, 95 * h, 30), Some(96 * h));
        // Past 4 days: give up.
        assert_eq!(s.next(0, 96 * h, 31), None);
    }

    #[test]
    fn bad_rules_are_named() {
        for bad in [
            "",
            "X,1h,1m",
            "F,1h",
            "G,1h,1m,0.5",
            "F,2h,1m; F,1h,1m",
            "F,0,1m",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
