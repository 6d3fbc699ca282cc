//! The options of `sendmail [options] [address ...]`, parsed once for every
//! way a message is submitted: the `sendmail` symlink, `sluice -bm`,
//! `sluice submit` and `sluice -odq ...`.
//!
//! The set is Exim's (its "command line" chapter), so that scripts written
//! for Exim keep working, and anything else is refused with the option
//! named (exit 64; Exim exits 1, Sluice uses sysexits). Postfix instead
//! ignores options it does not know; that hides typos such as `-fi`.
//!
//! | option | meaning |
//! |---|---|
//! | `-bm` | this mode (the default) |
//! | `-t` | recipients from `To:`/`Cc:`/`Bcc:`; arguments are removed from them (Exim) |
//! | `-i`, `-oi`, `-oitrue` | a line holding a single dot does not end the message |
//! | `-f ADDR`, `-r ADDR` | envelope sender (`<>` for none) |
//! | `-F NAME` | full name for an added `From:` |
//! | `-v` | print the message ID once queued |
//! | `-odb` | deliver in a background process (the default) |
//! | `-odi`, `-odf` | deliver in the foreground: exit once the delivery attempt ends |
//! | `-odq`, `-odqs` | only queue; the next queue run delivers |
//! | `-oee -oem -oep -oeq -oew` (also `-ee`...) | error reporting modes: accepted; errors always go to stderr with an exit code (`-oep`) |
//! | `-oMa IP`, `-oMr PROTO`, `-oMs HOST`, `-oMt IDENT` | sending host address, protocol, host name, ident: root only (exit 77 otherwise) |
//! | `-B7BIT`, `-B8BITMIME` | body type: checked; the body is stored and sent unchanged |
//! | `-N NOTIFY`, `-R RET`, `-V ENVID` | sendmail's DSN options (not Exim's `-N`/`-R`): checked and stored in the `-H` file |
//! | `-C FILE` | configuration file |
//! | `-oA…`, `-oB…`, `-om`, `-m`, `-oo`, `-oP FILE`, `-or…`, `-os…`, `-oX ARG`, `-n`, `-Ac`, `-Am`, `-h N` | accepted and ignored, as Exim does (they concern aliases, daemons, or nothing here) |
//! | `--` | the rest are addresses |
//!
//! `sluice submit` also takes the long forms `--extract-recipients`,
//! `--ignore-dots`, `--from`, `--full-name`, `--verbose`, `--queue-only`,
//! and the global `--config FILE` and `--set KEY=VALUE`.

use std::ffi::OsString;
use std::path::PathBuf;

use spool::{DsnNotify, DsnRet};

/// `sluice submit --help`.
pub const HELP: &str = "\
Queue one message read from standard input, as sendmail does.

Usage: sluice submit [OPTIONS] [RECIPIENT...]

  -t, --extract-recipients  recipients from To:, Cc:, Bcc: (arguments are removed from them)
  -i, -oi, --ignore-dots    a line with a single dot does not end the message
  -f, -r, --from SENDER     envelope sender (\"<>\" for none)
  -F, --full-name NAME      the sender's name in an added From:
  -v, --verbose             print the message ID
  -odb                      deliver in the background (default)
  -odi, -odf                deliver in the foreground, then exit
  -odq, --queue-only        only queue it; the next queue run delivers it
  -N NOTIFY, -R RET, -V ENVID   DSN: never|success,failure,delay; full|hdrs; envelope ID
  -B7BIT, -B8BITMIME        body type
  -oMa IP, -oMr PROTO, -oMs HOST, -oMt IDENT   where the message came from (root only)
  -C, --config FILE         configuration file
  --set KEY=VALUE           override one setting
  -oee -oem -oep -oeq -oew -oA -oB -om -oo -oP -or -os -oX   accepted, ignored (Exim's)
";

/// When the delivery of a submitted message starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// In a process of its own, not waited for (`-odb`, Exim's default).
    #[default]
    Background,
    /// In a process waited for before exiting (`-odi`, `-odf`).
    Foreground,
    /// At the next queue run (`-odq`).
    Queue,
}

/// What only root may set about where a message came from (`-oM*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `-oMa`: the sending host's IP address.
    pub host_address: Option<std::net::IpAddr>,
    /// `-oMr`: the protocol (`P=` in the log).
    pub protocol: Option<String>,
    /// `-oMs`: the sending host's name.
    pub host_name: Option<String>,
    /// `-oMt`: the ident (`U=` in the log).
    pub ident: Option<String>,
}

impl Origin {
    pub fn is_empty(&self) -> bool {
        *self == Origin::default()
    }
}

/// The DSN options of sendmail's command line (RFC 3461's MAIL and RCPT
/// parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// `-N`: applied to every recipient.
    pub notify: DsnNotify,
    /// `-R`.
    pub ret: Option<DsnRet>,
    /// `-V`.
    pub envid: Option<String>,
}

/// What a submission asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitArgs {
    /// `-t`: take recipients from the headers.
    pub extract_recipients: bool,
    /// `-i`: a lone dot does not end the message.
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender as given ("<>" or "" for none).
    pub sender: Option<String>,
    /// `-F`: the sender's full name.
    pub full_name: Option<String>,
    /// `-v`: print the message ID.
    pub verbose: bool,
    pub delivery: DeliveryMode,
    pub origin: Origin,
    pub dsn: Dsn,
    /// The arguments that are addresses (each may be a comma-separated list).
    pub recipients: Vec<String>,
}

/// The parsed command line of a submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendmailArgs {
    /// `-C FILE` / `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--set KEY=VALUE` (`sluice submit` only).
    pub overrides: Vec<String>,
    pub submit: SubmitArgs,
}

/// Which command line is being read: the sendmail one, or `sluice submit`,
/// which also takes long options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sendmail,
    Submit,
}

/// Parses the options and addresses of a submission. The error is the one
/// line to print after the program name (exit 64).
pub fn parse(args: &[OsString], dialect: Dialect) -> Result<SendmailArgs, String> {
    let mut out = SendmailArgs::default();
    let mut words = Vec::with_capacity(args.len());
    for a in args {
        words.push(
            a.to_str()
                .ok_or_else(|| format!("argument {a:?} is not UTF-8"))?
                .to_string(),
        );
    }
    let mut it = words.into_iter();
    let mut only_addresses = false;
    while let Some(arg) = it.next() {
        if only_addresses || !arg.starts_with('-') || arg == "-" {
            out.submit.recipients.push(arg);
            continue;
        }
        // The value of an option: glued to it (`-fa@b`) or the next word.
        let mut value = |flag: &str, glued: &str| -> Result<String, String> {
            if !glued.is_empty() {
                return Ok(glued.to_string());
            }
            it.next()
                .ok_or_else(|| format!("option {flag} needs a value"))
        };
        let s = &mut out.submit;
        match arg.as_str() {
            "--" => only_addresses = true,
            "-bm" => {}
            "-t" => s.extract_recipients = true,
            "-i" | "-oi" | "-oitrue" => s.ignore_dots = true,
            "-v" => s.verbose = true,
            "-odb" => s.delivery = DeliveryMode::Background,
            "-odi" | "-odf" => s.delivery = DeliveryMode::Foreground,
            "-odq" | "-odqs" => s.delivery = DeliveryMode::Queue,
            "-oee" | "-oem" | "-oep" | "-oeq" | "-oew" | "-ee" | "-em" | "-ep" | "-eq" | "-ew" => {}
            "-om" | "-m" | "-oo" | "-n" | "-Ac" | "-Am" => {}
            "-oMa" => {
                let v = value("-oMa", "")?;
                s.origin.host_address = Some(
                    v.parse()
                        .map_err(|_| format!("-oMa: {v:?} is not an IP address"))?,
                );
            }
            "-oMr" => s.origin.protocol = Some(word("-oMr", value("-oMr", "")?)?),
            "-oMs" => s.origin.host_name = Some(word("-oMs", value("-oMs", "")?)?),
            "-oMt" => s.origin.ident = Some(word("-oMt", value("-oMt", "")?)?),
            "-oP" | "-oX" => {
                let _ = value(&arg, "")?;
            }
            a if a.starts_with("-oA") || a.starts_with("-oB") => {}
            a if a.starts_with("-or") || a.starts_with("-os") => {}
            a if a.starts_with("-f") => s.sender = Some(value("-f", &a[2..])?),
            a if a.starts_with("-r") => s.sender = Some(value("-r", &a[2..])?),
            a if a.starts_with("-F") => s.full_name = Some(value("-F", &a[2..])?),
            a if a.starts_with("-C") => out.config = Some(PathBuf::from(value("-C", &a[2..])?)),
            a if a.starts_with("-B") => body_type(&value("-B", &a[2..])?)?,
            a if a.starts_with("-N") => s.dsn.notify = notify(&value("-N", &a[2..])?)?,
            a if a.starts_with("-R") => s.dsn.ret = Some(ret(&value("-R", &a[2..])?)?),
            a if a.starts_with("-V") => s.dsn.envid = Some(envid(value("-V", &a[2..])?)?),
            a if a.starts_with("-h") => {
                let v = value("-h", &a[2..])?;
                v.parse::<u32>()
                    .map_err(|_| format!("-h: {v:?} is not a hop count"))?;
            }
            a if a.starts_with("-b") => {
                return Err(format!("{a} is not a submission mode (use sluice {a} ...)"));
            }
            a if dialect == Dialect::Submit && a.starts_with("--") => {
                let (name, glued) = match a.split_once('=') {
                    Some((n, v)) => (n, v),
                    None => (a, ""),
                };
                match name {
                    "--extract-recipients" => s.extract_recipients = true,
                    "--ignore-dots" => s.ignore_dots = true,
                    "--verbose" => s.verbose = true,
                    "--queue-only" => s.delivery = DeliveryMode::Queue,
                    "--from" => s.sender = Some(value(name, glued)?),
                    "--full-name" => s.full_name = Some(value(name, glued)?),
                    "--config" => out.config = Some(PathBuf::from(value(name, glued)?)),
                    "--set" => out.overrides.push(value(name, glued)?),
                    _ => return Err(format!("unknown option {name}")),
                }
            }
            a => return Err(format!("unknown option {a}")),
        }
    }
    Ok(out)
}

/// A value that goes into a log line or the `-H` file as one word.
fn word(flag: &str, v: String) -> Result<String, String> {
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("{flag}: {v:?} must be one word of printable ASCII"));
    }
    Ok(v)
}

/// `-B7BIT` / `-B8BITMIME`.
fn body_type(v: &str) -> Result<(), String> {
    match v.to_ascii_uppercase().as_str() {
        "7BIT" | "8BITMIME" => Ok(()),
        _ => Err(format!("-B: {v:?} is not 7BIT or 8BITMIME")),
    }
}

/// `-N never` or a comma-separated list of `success`, `failure`, `delay`
/// (RFC 3461 §4.1: NEVER stands alone).
pub fn notify(v: &str) -> Result<DsnNotify, String> {
    let mut bits = 0u8;
    for w in v.split(',').map(str::trim) {
        bits |= match w.to_ascii_lowercase().as_str() {
            "never" => DsnNotify::NEVER,
            "success" => DsnNotify::SUCCESS,
            "failure" => DsnNotify::FAILURE,
            "delay" => DsnNotify::DELAY,
            _ => {
                return Err(format!("-N: {w:?} is not never, success, failure or delay"));
            }
        };
    }
    if bits & DsnNotify::NEVER != 0 && bits != DsnNotify::NEVER {
        return Err(format!("-N: {v:?}: never must stand alone"));
    }
    Ok(DsnNotify(bits))
}

/// `-R full` or `-R hdrs`.
fn ret(v: &str) -> Result<DsnRet, String> {
    match v.to_ascii_lowercase().as_str() {
        "full" => Ok(DsnRet::Full),
        "hdrs" => Ok(DsnRet::Headers),
        _ => Err(format!("-R: {v:?} is not full or hdrs")),
    }
}

/// `-V ENVID`: printable ASCII without spaces, at most 100 characters
/// (RFC 3461 §4.4).
fn envid(v: String) -> Result<String, String> {
    const MAX: usize = 100;
    if v.is_empty() || v.len() > MAX || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "-V: {v:?} must be 1 to {MAX} printable ASCII characters without spaces"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn sendmail(v: &[&str]) -> Result<SendmailArgs, String> {
        parse(&os(v), Dialect::Sendmail)
    }

    #[test]
    fn sendmail_flags_table() {
        let cases: &[(&[&str], SubmitArgs)] = &[
            (
                &["-t", "-oi", "-f", "a@b", "x@y"],
                SubmitArgs {
                    extract_recipients: true,
                    ignore_dots: true,
                    sender: Some("a@b".into()),
                    recipients: vec!["x@y".into()],
                    ..Default::default()
                },
            ),
            (
                &["-fa@b", "-Fname", "-odq", "-v", "-i", "--", "-odd@x"],
                SubmitArgs {
                    sender: Some("a@b".into()),
                    full_name: Some("name".into()),
                    delivery: DeliveryMode::Queue,
                    verbose: true,
                    ignore_dots: true,
                    recipients: vec!["-odd@x".into()],
                    ..Default::default()
                },
            ),
            (
                &[
                    "-bm", "-oem", "-odi", "-oA/x", "-B", "8BITMIME", "-N", "never", "r",
                ],
                SubmitArgs {
                    delivery: DeliveryMode::Foreground,
                    dsn: Dsn {
                        notify: DsnNotify(DsnNotify::NEVER),
                        ..Default::default()
                    },
                    recipients: vec!["r".into()],
                    ..Default::default()
                },
            ),
            (
                &["-r", "<>", "-oitrue", "a", "b"],
                SubmitArgs {
                    sender: Some("<>".into()),
                    ignore_dots: true,
                    recipients: vec!["a".into(), "b".into()],
                    ..Default::default()
                },
            ),
            (
                &[
                    "-oMa",
                    "192.0.2.7",
                    "-oMr",
                    "esmtp",
                    "-oMs",
                    "h.example",
                    "-oMt",
                    "who",
                    "-Rhdrs",
                    "-V",
                    "env-1",
                    "-Nsuccess,delay",
                    "a",
                ],
                SubmitArgs {
                    origin: Origin {
                        host_address: Some("192.0.2.7".parse().unwrap()),
                        protocol: Some("esmtp".into()),
                        host_name: Some("h.example".into()),
                        ident: Some("who".into()),
                    },
                    dsn: Dsn {
                        notify: DsnNotify(DsnNotify::SUCCESS | DsnNotify::DELAY),
                        ret: Some(DsnRet::Headers),
                        envid: Some("env-1".into()),
                    },
                    recipients: vec!["a".into()],
                    ..Default::default()
                },
            ),
        ];
        for (args, want) in cases {
            let got = sendmail(args).unwrap();
            assert_eq!(&got.submit, want, "{args:?}");
        }
        let got = sendmail(&["-C", "/etc/x.toml", "a"]).unwrap();
        assert_eq!(got.config, Some(PathBuf::from("/etc/x.toml")));
        assert!(sendmail(&["-f"]).unwrap_err().contains("needs a value"));
        assert!(sendmail(&["-bp"]).is_err());
    }

    #[test]
    fn unknown_and_malformed_options_are_named() {
        let refused: &[(&[&str], &str)] = &[
            (&["-oZZ"], "unknown option -oZZ"),
            (&["-X"], "unknown option -X"),
            (&["-X", "/tmp/log"], "unknown option -X"),
            (&["-oQ/x"], "unknown option -oQ/x"),
            (&["-oifalse"], "unknown option -oifalse"),
            (
                &["--extract-recipients"],
                "unknown option --extract-recipients",
            ),
            (&["-N", "never,success"], "never must stand alone"),
            (&["-N", "sometimes"], "\"sometimes\""),
            (&["-R", "most"], "-R"),
            (&["-V", "has space"], "-V"),
            (&["-B", "binary"], "-B"),
            (&["-oMa", "not-an-ip"], "-oMa"),
            (&["-oMt"], "needs a value"),
            (&["-h", "x"], "-h"),
        ];
        for (args, want) in refused {
            let e = sendmail(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn submit_dialect_takes_long_options() {
        let got = parse(
            &os(&[
                "--extract-recipients",
                "--from=a@b",
                "--queue-only",
                "--set",
                "durability=strict",
                "--config",
                "/x.toml",
                "-oi",
                "r",
            ]),
            Dialect::Submit,
        )
        .unwrap();
        assert!(got.submit.extract_recipients && got.submit.ignore_dots);
        assert_eq!(got.submit.sender.as_deref(), Some("a@b"));
        assert_eq!(got.submit.delivery, DeliveryMode::Queue);
        assert_eq!(got.overrides, vec!["durability=strict".to_string()]);
        assert_eq!(got.config, Some(PathBuf::from("/x.toml")));
        assert!(
            parse(&os(&["--frobnicate"]), Dialect::Submit)
                .unwrap_err()
                .contains("unknown option --frobnicate")
        );
    }
}
