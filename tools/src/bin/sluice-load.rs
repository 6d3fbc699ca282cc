//! `sluice-load`: send N messages of S bytes over C SMTP connections and
//! report throughput, time to `250` and errors. See `sluice_tools::load`.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sluice_tools::load::{self, Options, Target, Template, TlsMode, client, message};

/// Exit status when some message got no `250`.
const EXIT_FAILED_MESSAGES: u8 = 1;
/// Exit status for bad arguments (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sluice-load",
    version,
    about = "SMTP load generator: N messages of S bytes over C connections",
    after_help = "Reports messages/s, MB/s (10^6 bytes of message text), the time from the \
                  final dot to the 250 (p50/p90/p99/max) and the messages that got no 250, by \
                  reply code. Exits 0 when every message was accepted, 1 otherwise, 2 on bad \
                  arguments. TLS accepts any server certificate: this is a measuring tool, not \
                  a mail client."
)]
struct Args {
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Server port.
    #[arg(short, long)]
    port: u16,

    /// Messages to send in all.
    #[arg(
        short = 'n',
        long = "messages",
        default_value_t = 1000,
        value_name = "MESSAGES"
    )]
    messages: u64,

    /// Bytes of each message (header fields + body, CRLF line ends, before
    /// dot-stuffing).
    #[arg(short, long, default_value_t = 4096)]
    size: usize,

    /// Concurrent connections.
    #[arg(short, long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    connections: u32,

    /// Send many messages per connection (default).
    #[arg(long, overrides_with = "no_reuse")]
    reuse: bool,

    /// Open a new connection for each message.
    #[arg(long, overrides_with = "reuse")]
    no_reuse: bool,

    /// Upgrade each connection with STARTTLS (any certificate is accepted).
    #[arg(long, conflicts_with = "tls")]
    starttls: bool,

    /// TLS from the first byte, as on port 465 (any certificate is accepted).
    #[arg(long)]
    tls: bool,

    /// Envelope recipient and To:.
    #[arg(long, default_value = "load@localhost")]
    to: String,

    /// Envelope sender and From:.
    #[arg(long, default_value = "sluice-load@localhost")]
    from: String,

    /// Name given in EHLO.
    #[arg(long, default_value = "localhost")]
    helo: String,

    /// Seconds to wait for each reply (and each write) before counting the
    /// message as failed.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,

    /// Threads driving the connections. One keeps the generator's own CPU
    /// use small next to a server on the same machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sluice-load: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(load::run(opts));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("sluice-load: cannot write the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.all_accepted() {
        ExitCode::SUCCESS
    } else {
        if !args.json {
            eprintln!(
                "sluice-load: {} of {} messages got no 250",
                report.messages - report.accepted,
                report.messages
            );
        }
        ExitCode::from(EXIT_FAILED_MESSAGES)
    }
}

fn options(args: &Args) -> Result<Options, String> {
    let addr =
        load::resolve(&args.host, args.port).map_err(|e| format!("--host {}: {e}", args.host))?;
    let tls = if args.starttls || args.tls {
        let cfg = client::insecure_tls_config().map_err(|e| format!("TLS configuration: {e}"))?;
        if args.tls {
            TlsMode::Implicit(cfg)
        } else {
            TlsMode::StartTls(cfg)
        }
    } else {
        TlsMode::None
    };
    for (flag, addr) in [("--to", &args.to), ("--from", &args.from)] {
        if addr
            .bytes()
            .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
        {
            return Err(format!("{flag} {addr:?}: not an address"));
        }
    }
    if args.timeout == 0 {
        return Err("--timeout must be at least 1 second".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let template = Template {
        from: args.from.clone(),
        to: args.to.clone(),
        date: message::rfc5322_date(now.as_secs()),
        run: load::run_tag(now),
        size: args.size,
    };
    // The last message has the longest header fields: if it fits, all do.
    if args.messages > 0 {
        template
            .build(args.messages - 1)
            .map_err(|e| format!("--size: {e}"))?;
    }
    Ok(Options {
        target: Target {
            addr,
            host: args.host.clone(),
            helo: args.helo.clone(),
            tls,
            timeout: Duration::from_secs(args.timeout),
        },
        messages: args.messages,
        connections: args.connections as usize,
        reuse: !args.no_reuse,
        template,
    })
}
