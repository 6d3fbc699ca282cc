//! Mailbox locks: see the submodules.
