//! `sluice`: one binary for the daemon, the sendmail interface, the queue
//! commands and the local delivery agent. See README.md.

// unsafe only in sys.rs (the password database lookups).
#![deny(unsafe_code)]

mod admin;
mod aliases;
mod app;
mod bounce;
mod cli;
mod clock;
mod cmd;
mod config;
mod delivery;
mod dns;
mod dnslookup;
// Public when the source is compiled as the fuzz targets' library.
#[cfg(any(test, fuzzing))]
pub mod fuzz;
mod log;
mod manualroute;
mod network;
mod queue_runner;
mod redirect;
mod remote;
mod retry;
mod router;
mod server;
mod space;
mod stats;
mod submission;
#[allow(unsafe_code)]
mod sys;
mod transport;

use std::process::ExitCode;

use mailstore::error::sysexits;

fn main() -> ExitCode {
    let code = run(std::env::args_os().collect());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let inv = match cli::parse(args) {
        Ok(inv) => inv,
        Err(cli::UsageError(msg)) => {
            eprintln!("{}", msg.trim_end());
            return sysexits::USAGE;
        }
    };
    let cfg = match config::load(&inv.sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: configuration error: {e}");
            return sysexits::CONFIG;
        }
    };
    match inv.mode {
        cli::Mode::Deliver(args) => cmd::deliver::run(&cfg, &args),
        cli::Mode::Config { check } => {
            if !check {
                print!("{cfg}");
            }
            sysexits::OK
        }
        cli::Mode::Noop => sysexits::OK,
        cli::Mode::Route(addresses) => router::run_address_test(&cfg, &addresses, false),
        cli::Mode::Verify(addresses) => router::run_address_test(&cfg, &addresses, true),
        cli::Mode::LogCheck { files, json } => cmd::log_check::run(&cfg, &files, json),
        cli::Mode::Stats(args) => cmd::stats::run(&cfg, &args),
        cli::Mode::Serve(mut opts) => {
            opts.sources = inv.sources.clone();
            server::run(cfg, opts)
        }
        cli::Mode::SmtpStdio => server::run_stdio(cfg),
        cli::Mode::Submit(args) => cmd::submit::run(&cfg, &args),
        cli::Mode::Queue(cmd::queue::QueueCommand::Giveup { ids }) => cmd::giveup::run(&cfg, &ids),
        cli::Mode::Queue(command) => cmd::queue::run(&cfg, &command),
        cli::Mode::QueueRun { force, ids } => cmd::queue_run::run(&cfg, force, &ids),
    }
}
