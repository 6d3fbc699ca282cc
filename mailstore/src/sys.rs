//! The syscalls of this crate, in one place. Durable-write calls (fdatasync,
//! renameat2, directory fsync) live in `durable::sys`; this file holds the
//! rest (locks, ownership, times).
