//! The daemon: listeners, connections, delivery workers, queue runner.

pub mod tls;
