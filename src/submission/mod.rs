//! Submission for users who cannot write the spool: `sendmail` hands the
//! message to the running daemon over a local socket
//! (`submission_socket`, /run/sluice/submit.sock), and the daemon, which
//! learns the caller's uid from the socket (`SO_PEERCRED`) and takes
//! nothing else about who they are on trust, checks and queues it as a
//! submission by that user (docs/operations.md, "Submission socket").
//!
//! [`wire`] is what goes over the socket, [`client`] `sendmail`'s side,
//! [`server`] the daemon's.

pub mod client;
pub mod server;
pub mod wire;
