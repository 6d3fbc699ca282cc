//! The command line, in two stages (as ripgrep's low/high args): the words
//! a user typed are parsed faithfully — modern subcommands with clap, the
//! sendmail/Exim flags (`-bp`, `-odq`, `-Mvl ID`, ...) with lexopt, and the
//! program name (`sendmail`, `mailq`, `newaliases`) — and then resolved into
//! one [`Mode`] that the rest of the program sees.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Sources;

/// What the user asked for, with where the configuration comes from.
#[derive(Debug)]
pub struct Invocation {
    pub sources: Sources,
    pub mode: Mode,
}

/// One thing to do.
#[derive(Debug)]
pub enum Mode {
    /// `sluice deliver`: the local delivery agent.
    Deliver(DeliverArgs),
    /// `sluice config` / `-bP`: print the effective configuration;
    /// `--check` / `-bV`: only validate it.
    Config { check: bool },
    /// `newaliases` / `-bi`: nothing to rebuild (aliases are read directly).
    Noop,
    /// `sluice route ADDR...` / `-bt`: which router and transport take each address.
    Route(Vec<String>),
    /// `sluice route --verify ADDR...` / `-bv`: whether each address is deliverable.
    Verify(Vec<String>),
    /// `sluice log check [LOG...]`: read logs with the log parser.
    LogCheck { files: Vec<PathBuf>, json: bool },
    /// `sluice stats [LOG...]`: mail statistics (eximstats).
    Stats(crate::cmd::stats::StatsArgs),
    /// `sluice submit` / `sendmail` / `-bm`: queue a message from stdin.
    Submit(crate::cmd::submit::SubmitArgs),
    /// `sluice queue ...` / `-bp`, `-bpc`, `-Mvl`, `-Mrm`...: the queue commands.
    Queue(crate::cmd::queue::QueueCommand),
    /// `sluice smtp-stdio` / `-bs`: one SMTP session on stdin/stdout.
    SmtpStdio,
    /// `sluice serve` / `-bd`: the daemon.
    Serve(crate::server::ServeOptions),
    /// `sluice queue run` / `-q` / `-qf` / `-M ID...`: one queue run.
    QueueRun { force: bool, ids: Vec<String> },
}

/// A usage error: printed with the usage text, exit 64.
#[derive(Debug)]
pub struct UsageError(pub String);

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "A storage-centric mail transfer agent",
    after_help = "Exim/sendmail flags work too: -bd, -bp, -bpc, -bt, -bs, -q, -M..., -odq, -t, -i, -f.\n\
                  Invoked as sendmail or mailq, sluice behaves as those programs."
)]
struct Cli {
    /// Configuration file (default: $SLUICE_CONFIG, /etc/sluice/sluice.toml, else built in).
    #[arg(long, short = 'C', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set durability=strict (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Deliver one message from standard input into a Maildir or mbox (a local
    /// delivery agent, as dovecot-lda or procmail); exits with sysexits codes.
    Deliver(DeliverArgs),
    /// Queue a message read from standard input (sendmail, Exim's -bm); takes
    /// sendmail's options: -t -i -f -r -F -v -od[biqf] -oe? -oM? -B -N -R -V
    /// -C, and --extract-recipients --ignore-dots --from --full-name
    /// --verbose --queue-only (see `sluice submit --help`).
    #[command(disable_help_flag = true)]
    Submit {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "OPTIONS AND RECIPIENTS"
        )]
        args: Vec<OsString>,
    },
    /// The queue: list (-bp), count (-bpc), show (-Mvl/-Mvh/-Mvb), remove (-Mrm), freeze (-Mf), thaw (-Mt).
    Queue {
        #[command(subcommand)]
        command: QueueCli,
    },
    /// One SMTP session on standard input and output (Exim's -bs), as MUAs and inetd run it.
    SmtpStdio,
    /// Run the SMTP/LMTP daemon with delivery workers (Exim's -bd).
    Serve {
        /// Listen here instead of smtp.listen (repeatable), e.g. 127.0.0.1:2525.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
        /// Run the queue at this interval, e.g. 30m (Exim's -q30m).
        #[arg(long, short = 'q', value_name = "INTERVAL")]
        queue_interval: Option<String>,
    },
    /// The same as `queue run`.
    #[command(name = "queue-run", hide = true)]
    QueueRun {
        /// Try every recipient now, frozen messages and retry times too.
        #[arg(long)]
        force: bool,
        /// Only these messages.
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
    /// Show which router and transport would take each address (Exim's -bt).
    Route {
        /// Only say whether each address can be delivered (Exim's -bv).
        #[arg(long)]
        verify: bool,
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
    },
    /// Read Exim-format logs with the log parser and count their events
    /// (default: the main log); names the lines it cannot read.
    Log {
        #[command(subcommand)]
        command: LogCli,
    },
    /// Mail statistics from main logs, as eximstats reports them: totals,
    /// transports, messages per hour and day, time on the queue, relays, top
    /// hosts, domains, users and addresses, rejections and errors.
    Stats(crate::cmd::stats::StatsArgs),
    /// Print the effective configuration (or check it).
    Config {
        /// Only check the configuration; print nothing when it is valid.
        #[arg(long)]
        check: bool,
    },
}

/// `sluice log ...`.
#[derive(Subcommand, Debug)]
enum LogCli {
    /// Read each line of LOG (default: the main log) and count the events.
    Check {
        /// One JSON object per file.
        #[arg(long)]
        json: bool,
        #[arg(value_name = "LOG")]
        files: Vec<PathBuf>,
    },
}

/// `sluice queue ...`: the spool's commands, and a queue run.
#[derive(Subcommand, Debug)]
enum QueueCli {
    #[command(flatten)]
    Other(crate::cmd::queue::QueueCommand),
    /// Deliver queued messages once (Exim's -q; --force is -qf; with IDs, -M).
    Run {
        /// Try every recipient now, frozen messages and retry times too.
        #[arg(long)]
        force: bool,
        /// Only these messages.
        #[arg(value_name = "ID")]
        ids: Vec<String>,
    },
}

/// `sluice deliver` options.
#[derive(Args, Debug, Default, Clone)]
pub struct DeliverArgs {
    /// Deliver into this Maildir (created when missing).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["mbox", "user"])]
    pub maildir: Option<PathBuf>,
    /// Append to this mbox file (created when missing), taking the configured locks.
    #[arg(long, value_name = "FILE", conflicts_with = "user")]
    pub mbox: Option<PathBuf>,
    /// Deliver to this local user's mailbox (the configured layout; USER or USER@DOMAIN).
    #[arg(short = 'd', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Envelope sender: adds a Return-Path: header (and the mbox From_ line).
    #[arg(short = 'f', long = "from", value_name = "SENDER")]
    pub sender: Option<String>,
    /// Original recipient: adds a Delivered-To: header.
    #[arg(short = 'a', long = "address", value_name = "ADDRESS")]
    pub address: Option<String>,
    /// Deliver into this Maildir++ folder (IMAP name, '/' or '.' separated; created on demand).
    #[arg(short = 'm', long = "folder", value_name = "NAME")]
    pub folder: Option<String>,
}

/// Parses the process's arguments.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, UsageError> {
    let program = args
        .first()
        .map(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let rest = &args[1.min(args.len())..];
    match program.as_str() {
        "newaliases" => {
            return Ok(Invocation {
                sources: Sources::default(),
                mode: Mode::Noop,
            });
        }
        "sendmail" | "send-mail" | "mailq" | "rmail" => return legacy(&program, rest),
        _ => {}
    }
    // Global options may come before Exim-style flags too
    // (`sluice --set durability=strict -bd`): set them aside, then look at
    // what follows.
    let mut globals = Sources::default();
    let mut i = 0;
    while let Some(a) = rest.get(i).and_then(|a| a.to_str()) {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        if !matches!(name, "--set" | "--config" | "-C") {
            break;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                match rest.get(i).and_then(|v| v.to_str()) {
                    Some(v) => v.to_string(),
                    None => break,
                }
            }
        };
        if name == "--set" {
            globals.overrides.push(value);
        } else {
            globals.file = Some(PathBuf::from(value));
        }
        i += 1;
    }
    let first = rest.get(i).and_then(|a| a.to_str()).unwrap_or("");
    if first.starts_with('-') && !first.starts_with("--") && first != "-h" {
        let mut inv = legacy(&program, &rest[i..])?;
        inv.sources.overrides.splice(0..0, globals.overrides);
        if inv.sources.file.is_none() {
            inv.sources.file = globals.file;
        }
        return Ok(inv);
    }
    let cli = Cli::try_parse_from(&args).map_err(|e| {
        // --help and --version are not errors: print and exit 0.
        if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ) {
            let _ = e.print();
            std::process::exit(0);
        }
        UsageError(e.to_string())
    })?;
    let mut sources = Sources {
        file: cli.config,
        overrides: cli.set,
    };
    let mode = match cli.command {
        Command::Deliver(a) => {
            if a.maildir.is_none() && a.mbox.is_none() && a.user.is_none() {
                return Err(UsageError(
                    "sluice deliver: say where: --maildir DIR, --mbox FILE or -d USER".into(),
                ));
            }
            Mode::Deliver(a)
        }
        Command::Config { check } => Mode::Config { check },
        Command::Route {
            verify: false,
            addresses,
        } => Mode::Route(addresses),
        Command::Route {
            verify: true,
            addresses,
        } => Mode::Verify(addresses),
        Command::Log {
            command: LogCli::Check { json, files },
        } => Mode::LogCheck { files, json },
        Command::Stats(a) => Mode::Stats(a),
        Command::Serve {
            listen,
            queue_interval,
        } => Mode::Serve(crate::server::ServeOptions {
            listen,
            queue_interval: queue_interval
                .map(|q| crate::config::parse_duration(&q))
                .transpose()
                .map_err(|e| UsageError(format!("--queue-interval: {e}")))?,
            ..Default::default()
        }),
        Command::QueueRun { force, ids } => Mode::QueueRun { force, ids },
        Command::Submit { args } => {
            use crate::cmd::sendmail_args::{Dialect, HELP, parse};
            if args.iter().any(|a| a == "--help") {
                print!("{HELP}");
                std::process::exit(0);
            }
            let parsed = parse(&args, Dialect::Submit)
                .map_err(|e| UsageError(format!("sluice submit: {e}")))?;
            sources.overrides.extend(parsed.overrides);
            if parsed.config.is_some() {
                sources.file = parsed.config;
            }
            Mode::Submit(parsed.submit)
        }
        Command::SmtpStdio => Mode::SmtpStdio,
        Command::Queue {
            command: QueueCli::Other(c),
        } => Mode::Queue(c),
        Command::Queue {
            command: QueueCli::Run { force, ids },
        } => Mode::QueueRun { force, ids },
    };
    Ok(Invocation { sources, mode })
}

/// The sendmail/Exim flags, parsed faithfully (low level).
#[derive(Debug, Default)]
struct Legacy {
    /// `-b?` letters (`-bp` → "p", `-bpc` → "pc").
    b: Option<String>,
    config: Option<PathBuf>,
    /// `-q`, `-q30m`, `-qf`, `-qff`: the letters after `q`.
    q: Option<String>,
    /// `-oX <port or address>`: daemon listen addresses.
    listen: Vec<String>,
    /// `-M`, `-Mvl`, `-Mrm`...: the letters after `M`.
    m: Option<String>,
    args: Vec<String>,
}

/// Whether Exim-style arguments ask for something other than submitting a
/// message (a `-b` mode other than `-bm`, a queue run, a `-M` action).
fn is_admin_mode(args: &[OsString]) -> bool {
    args.iter()
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .any(|a| {
            // -oX (daemon addresses) only matters with -bd, which is
            // admin mode by itself; a submission ignores it, as Exim does.
            (a.starts_with("-b") && a != "-bm") || a.starts_with("-q") || a.starts_with("-M")
        })
}

/// Parses sendmail/Exim flags and resolves them into a mode.
fn legacy(program: &str, args: &[OsString]) -> Result<Invocation, UsageError> {
    use crate::cmd::queue::{ListArgs, QueueCommand};
    if program == "mailq" && !is_admin_mode(args) {
        return Ok(Invocation {
            sources: Sources::default(),
            mode: Mode::Queue(QueueCommand::List(ListArgs::default())),
        });
    }
    if !is_admin_mode(args) {
        // sendmail [flags] [address...]: the submission flags (-t, -i, -f,
        // -F, -odq, ...) have their own parser.
        use crate::cmd::sendmail_args::{Dialect, parse};
        let parsed =
            parse(args, Dialect::Sendmail).map_err(|e| UsageError(format!("{program}: {e}")))?;
        return Ok(Invocation {
            sources: Sources {
                file: parsed.config,
                overrides: Vec::new(),
            },
            mode: Mode::Submit(parsed.submit),
        });
    }
    use lexopt::prelude::*;
    let mut low = Legacy::default();
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    let bad = |e: lexopt::Error| UsageError(format!("{program}: {e}"));
    let letters = |v: Option<OsString>| -> Result<String, UsageError> {
        v.map(|v| {
            v.into_string()
                .map_err(|_| UsageError(format!("{program}: option is not UTF-8")))
        })
        .transpose()
        .map(Option::unwrap_or_default)
    };
    while let Some(arg) = p.next().map_err(bad)? {
        match arg {
            Short('b') => {
                let v = p.optional_value().ok_or_else(|| {
                    UsageError(format!("{program}: -b needs a letter (-bd, -bp, -bt, ...)"))
                })?;
                low.b = Some(v.string().map_err(bad)?);
            }
            Short('C') => low.config = Some(p.value().map_err(bad)?.into()),
            Short('q') => low.q = Some(letters(p.optional_value())?),
            Short('M') => low.m = Some(letters(p.optional_value())?),
            Short('o') => {
                // -oX takes the next word: "2525", "127.0.0.1.2525" or a
                // colon-separated list of either. Other -o options (-oi,
                // -odi, -oem...) only matter to submission; accepted and
                // ignored here, as sendmail's unknown -o flags are.
                if letters(p.optional_value())? == "X" {
                    let v = p.value().map_err(bad)?.string().map_err(bad)?;
                    low.listen.extend(v.split(':').map(exim_listen_address));
                }
            }
            Value(v) => low.args.push(v.string().map_err(bad)?),
            Short(c) => {
                return Err(UsageError(format!(
                    "{program}: option -{c} is not supported"
                )));
            }
            Long(l) => {
                return Err(UsageError(format!(
                    "{program}: option --{l} is not supported"
                )));
            }
        }
    }
    let sources = Sources {
        file: low.config,
        overrides: Vec::new(),
    };
    let queue_interval = match low.q.as_deref() {
        Some(q) if !q.is_empty() && !q.starts_with('f') => Some(
            crate::config::parse_duration(q)
                .map_err(|e| UsageError(format!("{program}: -q{q}: {e}")))?,
        ),
        _ => None,
    };
    if let Some(cmd) = low.b.as_deref().and_then(QueueCommand::from_exim_b) {
        return Ok(Invocation {
            sources,
            mode: Mode::Queue(cmd),
        });
    }
    let mode = match (low.b.as_deref(), low.q.as_deref(), low.m.as_deref()) {
        (Some("d" | "df"), _, _) => Mode::Serve(crate::server::ServeOptions {
            listen: low.listen,
            queue_interval,
            ..Default::default()
        }),
        (Some("s"), _, _) => Mode::SmtpStdio,
        (Some("P"), _, _) => Mode::Config { check: false },
        (Some("V"), _, _) => Mode::Config { check: true },
        (Some("i"), _, _) => Mode::Noop,
        (Some("t"), _, _) if !low.args.is_empty() => Mode::Route(low.args),
        (Some("t"), _, _) => {
            return Err(UsageError(format!(
                "{program}: -bt needs at least one address"
            )));
        }
        (Some("v"), _, _) if !low.args.is_empty() => Mode::Verify(low.args),
        (Some("v"), _, _) => {
            return Err(UsageError(format!(
                "{program}: -bv needs at least one address"
            )));
        }
        (Some(other), _, _) => {
            return Err(UsageError(format!("{program}: -b{other} is not supported")));
        }
        (None, _, Some(m)) if !m.is_empty() => Mode::Queue(
            QueueCommand::from_exim_m(m, low.args)
                .map_err(|e| UsageError(format!("{program}: {e}")))?,
        ),
        (None, _, Some("")) if !low.args.is_empty() => Mode::QueueRun {
            force: true,
            ids: low.args,
        },
        (None, Some(q), None) if queue_interval.is_none() => Mode::QueueRun {
            force: q.starts_with('f'),
            ids: low.args,
        },
        _ => {
            return Err(UsageError(format!(
                "{program}: nothing to do (try sluice --help)"
            )));
        }
    };
    Ok(Invocation { sources, mode })
}

/// Exim writes `-oX` addresses as `127.0.0.1.2525` or a bare port.
fn exim_listen_address(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return format!("127.0.0.1:{s}");
    }
    match s.rsplit_once('.') {
        Some((ip, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && ip.parse::<std::net::IpAddr>().is_ok() =>
        {
            match ip.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
                _ => format!("{ip}:{port}"),
            }
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn deliver_needs_a_target() {
        assert!(run(&["sluice", "deliver"]).is_err());
        let inv = run(&["sluice", "deliver", "--maildir", "/tmp/m", "-f", "a@b"]).unwrap();
        match inv.mode {
            Mode::Deliver(a) => {
                assert_eq!(a.maildir, Some(PathBuf::from("/tmp/m")));
                assert_eq!(a.sender.as_deref(), Some("a@b"));
            }
            m => panic!("{m:?}"),
        }
        assert!(run(&["sluice", "deliver", "--maildir", "x", "--mbox", "y"]).is_err());
    }

    #[test]
    fn config_flags() {
        assert!(matches!(
            run(&["sluice", "-bV"]).unwrap().mode,
            Mode::Config { check: true }
        ));
        assert!(matches!(
            run(&["sluice", "-bP"]).unwrap().mode,
            Mode::Config { check: false }
        ));
        let inv = run(&["sluice", "--set", "durability=none", "config", "--check"]).unwrap();
        assert_eq!(inv.sources.overrides, vec!["durability=none".to_string()]);
        assert!(matches!(
            run(&["/usr/bin/newaliases"]).unwrap().mode,
            Mode::Noop
        ));
        assert!(run(&["sluice", "-bz"]).is_err());
        match run(&["sluice", "-bt", "a@b", "c"]).unwrap().mode {
            Mode::Route(a) => assert_eq!(a, ["a@b", "c"]),
            m => panic!("{m:?}"),
        }
        assert!(run(&["sluice", "-bt"]).is_err());
        match run(&["sluice", "-bd", "-q30m", "-oX", "2525:127.0.0.2.26"])
            .unwrap()
            .mode
        {
            Mode::Serve(o) => {
                assert_eq!(o.listen, ["127.0.0.1:2525", "127.0.0.2:26"]);
                assert_eq!(o.queue_interval, Some(std::time::Duration::from_secs(1800)));
            }
            m => panic!("{m:?}"),
        }
        assert!(matches!(
            run(&["sluice", "-qf"]).unwrap().mode,
            Mode::QueueRun { force: true, .. }
        ));
        assert!(matches!(
            run(&["sluice", "-q"]).unwrap().mode,
            Mode::QueueRun { force: false, .. }
        ));
        assert!(matches!(
            run(&["sluice", "queue", "run", "--force"]).unwrap().mode,
            Mode::QueueRun { force: true, .. }
        ));
        assert!(matches!(
            run(&["sluice", "queue", "count"]).unwrap().mode,
            Mode::Queue(_)
        ));
        match run(&["sluice", "-M", "1tixMn-00000000C5j-1wRa"])
            .unwrap()
            .mode
        {
            Mode::QueueRun { force: true, ids } => assert_eq!(ids.len(), 1),
            m => panic!("{m:?}"),
        }
    }
}
