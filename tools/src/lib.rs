//! Sluice tools
