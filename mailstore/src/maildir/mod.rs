//! Maildir: see the submodules.
