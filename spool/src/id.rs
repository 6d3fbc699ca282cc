//! Exim message IDs: three base-62 numbers (digits `0-9A-Za-z`) joined by
//! hyphens.
//!
//! | form             | layout                    | parts                                                        |
//! |------------------|---------------------------|--------------------------------------------------------------|
//! | long (Exim 4.97) | `tttttt-ppppppppppp-ssss` | arrival second, process id (11 digits), microsecond (4)      |
//! | classic          | `tttttt-pppppp-ss`        | arrival second, process id (6 digits), 1/3844 s tick (2)     |
//!
//! Both are parsed everywhere; [`IdGenerator`] writes the long form unless
//! told otherwise. The classic form's last part has 62² = 3844 values, so a
//! process can make at most 3844 classic IDs per second (Exim itself used
//! units of 1/2000 s there; we use the whole range). A process that asks for
//! more runs its ID clock ahead of real time and must wait longer before it
//! exits (see below). The long form allows a million per second.
//!
//! **Uniqueness.** Two IDs of one process differ because the third part comes
//! from a per-process clock ([`next_micros`]) that only moves forward: each ID
//! reserves at least one microsecond (a whole 1/3844 s tick for the classic
//! form), taking the current time or, when IDs are asked for faster than
//! time passes, the microsecond after the last one. IDs of different
//! processes differ in the process id. The remaining danger is a process id
//! reused within the second, which many short-lived `sendmail` processes
//! make real; Exim's rule covers it and so does ours: a process does not exit
//! before real time has passed the last value its clock issued
//! ([`wait_before_exit`]), so a later process with the same id starts with a
//! clock that is already beyond. What this cannot cover, as in Exim: the
//! wall clock stepped backwards, and processes in different PID namespaces
//! (containers) sharing one spool. The spool's commit never overwrites a file
//! of the same name, so even then a collision fails an entry instead of
//! losing a message.
//!
//! IDs sort by arrival: the base-62 digits are in ASCII order, and the first
//! part is the arrival second. [`MessageId`]'s `Ord` compares the arrival
//! time (second, then fraction), then the process id, so long and classic IDs
//! also sort together.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// The 62 digits in order of value (which is also ASCII order).
pub const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of a long (Exim 4.97+) ID.
pub const LONG_LEN: usize = 23;
/// Length of a classic ID.
pub const CLASSIC_LEN: usize = 16;
/// Values of the classic form's third part: its sub-second ticks.
pub const CLASSIC_TICKS: u64 = 62 * 62;

const MICROS: u64 = 1_000_000;
const TIME_DIGITS: usize = 6;

/// Which form of ID to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdFormat {
    /// `tttttt-ppppppppppp-ssss`, 23 characters (Exim 4.97 and later).
    #[default]
    Long,
    /// `tttttt-pppppp-ss`, 16 characters (Exim up to 4.96): at most 3844
    /// IDs per process per second.
    Classic,
}

impl IdFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            IdFormat::Long => "long",
            IdFormat::Classic => "classic",
        }
    }

    fn pid_digits(self) -> usize {
        match self {
            IdFormat::Long => 11,
            IdFormat::Classic => 6,
        }
    }

    fn frac_digits(self) -> usize {
        match self {
            IdFormat::Long => 4,
            IdFormat::Classic => 2,
        }
    }

    fn len(self) -> usize {
        TIME_DIGITS + 1 + self.pid_digits() + 1 + self.frac_digits()
    }
}

impl fmt::Display for IdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "long" => Ok(IdFormat::Long),
            "classic" => Ok(IdFormat::Classic),
            o => Err(format!(
                "unknown message_id_format {o:?} (expected \"long\" or \"classic\")"
            )),
        }
    }
}

/// A message ID, long or classic. Small and `Copy`: a listing of a million
/// messages holds a million of these.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    buf: [u8; LONG_LEN],
    len: u8,
}

impl MessageId {
    /// Parses either form. Errors say what is wrong.
    pub fn parse(text: &str) -> Result<MessageId, Error> {
        let bad = |why: &str| Error::BadId {
            text: text.to_string(),
            why: why.to_string(),
        };
        let format = match text.len() {
            LONG_LEN => IdFormat::Long,
            CLASSIC_LEN => IdFormat::Classic,
            n => {
                return Err(bad(&format!(
                    "{n} characters (a message ID has {CLASSIC_LEN} or {LONG_LEN})"
                )));
            }
        };
        let b = text.as_bytes();
        let h1 = TIME_DIGITS;
        let h2 = h1 + 1 + format.pid_digits();
        for (i, &c) in b.iter().enumerate() {
            if i == h1 || i == h2 {
                if c != b'-' {
                    return Err(bad(&format!("expected '-' at position {}", i + 1)));
                }
            } else if digit_value(c).is_none() {
                return Err(bad(&format!(
                    "{:?} at position {} is not a base-62 digit",
                    c as char,
                    i + 1
                )));
            }
        }
        let mut buf = [0u8; LONG_LEN];
        buf[..b.len()].copy_from_slice(b);
        Ok(MessageId {
            buf,
            len: b.len() as u8,
        })
    }

    /// Builds an ID from its parts. `frac` is microseconds (long form) or a
    /// 1/3844 s tick (classic form); values wider than their field keep
    /// their low digits.
    pub fn from_parts(format: IdFormat, secs: u64, pid: u64, frac: u64) -> MessageId {
        let mut buf = [0u8; LONG_LEN];
        let p = format.pid_digits();
        let f = format.frac_digits();
        encode(secs, &mut buf[..TIME_DIGITS]);
        buf[TIME_DIGITS] = b'-';
        encode(pid, &mut buf[TIME_DIGITS + 1..TIME_DIGITS + 1 + p]);
        buf[TIME_DIGITS + 1 + p] = b'-';
        encode(frac, &mut buf[TIME_DIGITS + 2 + p..TIME_DIGITS + 2 + p + f]);
        MessageId {
            buf,
            len: format.len() as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and hyphens are ever stored.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }

    pub fn format(&self) -> IdFormat {
        if self.len as usize == LONG_LEN {
            IdFormat::Long
        } else {
            IdFormat::Classic
        }
    }

    /// The arrival second (Unix time).
    pub fn time(&self) -> u64 {
        decode(&self.buf[..TIME_DIGITS])
    }

    /// The process id of the receiving process.
    pub fn pid(&self) -> u64 {
        let p = self.format().pid_digits();
        decode(&self.buf[TIME_DIGITS + 1..TIME_DIGITS + 1 + p])
    }

    /// The third part as a number (microseconds or classic ticks).
    pub fn fraction(&self) -> u64 {
        let p = self.format().pid_digits();
        decode(&self.buf[TIME_DIGITS + 2 + p..self.len as usize])
    }

    /// The third part as microseconds within the arrival second.
    pub fn micros(&self) -> u64 {
        match self.format() {
            IdFormat::Long => self.fraction().min(MICROS - 1),
            IdFormat::Classic => self.fraction() * MICROS / CLASSIC_TICKS,
        }
    }

    /// The name of the spool subdirectory: the 6th character, the last
    /// digit of the arrival second.
    pub fn subdir(&self) -> char {
        self.buf[TIME_DIGITS - 1] as char
    }

    /// The unique base name a delivery of recipient `index` takes in a
    /// Maildir, so that recovery after a crash can see whether it landed.
    pub fn delivery_name(&self, index: usize) -> String {
        format!("{}.{index}", self.as_str())
    }

    fn arrival_key(&self) -> (u64, u64, u64) {
        (self.time(), self.micros(), self.pid())
    }
}

impl Ord for MessageId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.arrival_key()
            .cmp(&other.arrival_key())
            .then_with(|| self.as_str().cmp(other.as_str()))
    }
}

impl PartialOrd for MessageId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.as_str())
    }
}

impl FromStr for MessageId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        MessageId::parse(s)
    }
}

/// The value of a base-62 digit.
pub fn digit_value(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u64),
        b'A'..=b'Z' => Some((c - b'A') as u64 + 10),
        b'a'..=b'z' => Some((c - b'a') as u64 + 36),
        _ => None,
    }
}

/// Writes `v` in base 62 into all of `out`, most significant digit first,
/// zero-padded; digits that do not fit are dropped.
fn encode(mut v: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 62) as usize];
        v /= 62;
    }
}

/// Reads base-62 digits (already validated).
fn decode(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &c| {
        acc.wrapping_mul(62)
            .wrapping_add(digit_value(c).unwrap_or(0))
    })
}

/// The last microsecond (since the epoch) this process's ID clock issued.
static LAST_ISSUED: AtomicU64 = AtomicU64::new(0);

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Reserves a span of the process's ID clock. `span(t)` gives the last
/// microsecond reserved when the span starts at `t` (`t` itself for one
/// microsecond). Returns the start. Never returns a value at or below one
/// returned before, in any thread.
fn reserve(span: impl Fn(u64) -> u64) -> u64 {
    let mut last = LAST_ISSUED.load(Ordering::Acquire);
    loop {
        let start = now_micros().max(last + 1);
        let end = span(start);
        match LAST_ISSUED.compare_exchange_weak(last, end, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return start,
            Err(seen) => last = seen,
        }
    }
}

/// The next value of the per-process ID clock, in microseconds since the
/// epoch: the current time, or one more than the last value issued.
pub fn next_micros() -> u64 {
    reserve(|t| t)
}

/// Sleeps until real time has passed every value the ID clock issued, so
/// that a process reusing this one's id cannot make the same IDs. Call it
/// before the process exits (it returns at once when no ID ran ahead of
/// time, which is the normal case).
pub fn wait_before_exit() {
    loop {
        let last = LAST_ISSUED.load(Ordering::Acquire);
        let now = now_micros();
        if now > last {
            return;
        }
        std::thread::sleep(Duration::from_micros(last - now + 1));
    }
}

/// Makes message IDs for this process.
#[derive(Debug, Clone, Copy)]
pub struct IdGenerator {
    format: IdFormat,
    pid: u64,
}

impl IdGenerator {
    /// A generator using this process's id.
    pub fn new(format: IdFormat) -> IdGenerator {
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
        IdGenerator { format, pid }
    }

    /// A generator that writes `pid` as the process part: for a process
    /// that knows its id is not unique on the spool's host (its own PID
    /// namespace) and has a better number, and for tests that simulate
    /// reused ids. Every generator of a process shares one clock.
    pub fn with_pid(format: IdFormat, pid: u64) -> IdGenerator {
        IdGenerator { format, pid }
    }

    pub fn format(&self) -> IdFormat {
        self.format
    }

    pub fn pid(&self) -> u64 {
        self.pid
    }

    /// A new ID, unique among all IDs of this process and (see the module
    /// documentation) of every other process.
    pub fn next(&self) -> MessageId {
        match self.format {
            IdFormat::Long => {
                let t = next_micros();
                MessageId::from_parts(IdFormat::Long, t / MICROS, self.pid, t % MICROS)
            }
            IdFormat::Classic => {
                // Reserve the whole tick the start falls in, so that no
                // later ID of this process lands in the same tick.
                let t = reserve(|t| {
                    let (secs, us) = (t / MICROS, t % MICROS);
                    let tick = us * CLASSIC_TICKS / MICROS;
                    secs * MICROS + tick_start(tick + 1) - 1
                });
                let (secs, us) = (t / MICROS, t % MICROS);
                let tick = us * CLASSIC_TICKS / MICROS;
                MessageId::from_parts(IdFormat::Classic, secs, self.pid, tick)
            }
        }
    }

    /// See [`wait_before_exit`].
    pub fn wait_before_exit(&self) {
        wait_before_exit();
    }
}

/// The first microsecond of classic tick `tick` within a second.
fn tick_start(tick: u64) -> u64 {
    (tick * MICROS).div_ceil(CLASSIC_TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parse_and_encode_table() {
        // (text, format, time, pid, fraction, subdir)
        let cases: &[(&str, IdFormat, u64, u64, u64, char)] = &[
            ("16ZCW1-0005MB-00", IdFormat::Classic, 0, 0, 0, '1'),
            ("0t5C6f-0000c8-00", IdFormat::Classic, 0, 0, 0, 'f'),
            ("1cEEet-0001Cv-Jo", IdFormat::Classic, 0, 0, 0, 't'),
            ("16VDhn-000000001bo-D342", IdFormat::Long, 0, 0, 0, 'n'),
            ("1tixMn-00000000C5j-1wRa", IdFormat::Long, 0, 0, 0, 'n'),
            ("000000-00000000000-0000", IdFormat::Long, 0, 0, 0, '0'),
            ("zzzzzz-zzzzzz-zz", IdFormat::Classic, 0, 0, 0, 'z'),
        ];
        for &(text, format, _, _, _, subdir) in cases {
            let id = MessageId::parse(text).unwrap();
            assert_eq!(id.as_str(), text);
            assert_eq!(id.format(), format, "{text}");
            assert_eq!(id.subdir(), subdir, "{text}");
            // Re-encoding the decoded parts gives the same text.
            let again = MessageId::from_parts(format, id.time(), id.pid(), id.fraction());
            assert_eq!(again, id, "{text}");
        }
        // Known values: "0000c8" = 38*62 + 8, "1bo" = 1*3844 + 37*62 + 50.
        let id = MessageId::parse("0t5C6f-0000c8-00").unwrap();
        assert_eq!(id.pid(), 38 * 62 + 8);
        let id = MessageId::parse("16VDhn-000000001bo-D342").unwrap();
        assert_eq!(id.pid(), 3844 + 37 * 62 + 50);
        assert_eq!(id.fraction(), 13 * 62 * 62 * 62 + 3 * 62 * 62 + 4 * 62 + 2);
        // The log line "2025-02-14 18:12:33.470 [46483] 1tixMn-00000000C5j-1wRa"
        // was written at UTC+3: 15:12:33 UTC.
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        assert_eq!(id.time(), 1_739_545_953);
        assert_eq!(id.pid(), 46483);
    }

    #[test]
    fn parse_rejects_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "0 characters"),
            ("16ZCW1-0005MB-0", "15 characters"),
            ("16ZCW1_0005MB-00", "expected '-' at position 7"),
            ("16ZCW1-0005MB_00", "expected '-' at position 14"),
            ("16ZC!1-0005MB-00", "'!' at position 5"),
            ("16VDhn-000000001bo-D34é", "24 characters"),
            ("16VDhn-0000000001b-oD342", "24 characters"),
            (
                "16VDhn-00000001bo-D3421",
                "'-' at position 18 is not a base-62 digit",
            ),
        ];
        for &(text, why) in cases {
            let e = MessageId::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn ids_sort_by_arrival_across_forms() {
        let a = MessageId::from_parts(IdFormat::Long, 100, 9, 999_999);
        let b = MessageId::from_parts(IdFormat::Classic, 101, 1, 0);
        let c = MessageId::from_parts(IdFormat::Long, 101, 1, 300_000);
        let d = MessageId::from_parts(IdFormat::Classic, 101, 1, 3000);
        let mut v = vec![d, c, b, a];
        v.sort();
        assert_eq!(v, vec![a, b, c, d]);
        // Within one form the string order is the arrival order.
        let x = MessageId::from_parts(IdFormat::Long, 62u64.pow(3), 5, 7);
        let y = MessageId::from_parts(IdFormat::Long, 62u64.pow(3) + 1, 1, 0);
        assert!(x.as_str() < y.as_str() && x < y);
    }

    #[test]
    fn generated_ids_are_unique_and_increasing_in_one_thread() {
        for format in [IdFormat::Long, IdFormat::Classic] {
            let g = IdGenerator::with_pid(format, 4242);
            let ids: Vec<MessageId> = (0..5000).map(|_| g.next()).collect();
            let set: HashSet<_> = ids.iter().collect();
            assert_eq!(set.len(), ids.len(), "{format}");
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{format}");
            assert!(ids.iter().all(|i| i.format() == format && i.pid() == 4242));
        }
        wait_before_exit();
        assert!(now_micros() > LAST_ISSUED.load(Ordering::Acquire));
    }

    #[test]
    fn classic_ticks_cover_the_second_exactly() {
        for tick in [0, 1, 2, 1921, 3842, 3843] {
            let start = tick_start(tick);
            let end = tick_start(tick + 1) - 1;
            assert_eq!(start * CLASSIC_TICKS / MICROS, tick);
            assert_eq!(end * CLASSIC_TICKS / MICROS, tick);
        }
        assert_eq!(tick_start(CLASSIC_TICKS), MICROS);
    }

    #[test]
    fn threads_share_the_clock() {
        let g = IdGenerator::with_pid(IdFormat::Long, 77);
        let all: Vec<MessageId> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(move || (0..2000).map(|_| g.next()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let set: HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), 16_000);
    }

    #[test]
    fn format_names() {
        assert_eq!("classic".parse::<IdFormat>().unwrap(), IdFormat::Classic);
        assert_eq!("long".parse::<IdFormat>().unwrap(), IdFormat::Long);
        assert!("short".parse::<IdFormat>().unwrap_err().contains("short"));
        let id = MessageId::parse("1tixMn-00000000C5j-1wRa").unwrap();
        assert_eq!(id.delivery_name(3), "1tixMn-00000000C5j-1wRa.3");
    }
}
