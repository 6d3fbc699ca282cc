//! mbox: see the submodules.
