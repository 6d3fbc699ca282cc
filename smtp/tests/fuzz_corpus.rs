//! The fuzz targets of this crate on their committed seeds and past
//! failures (fuzz/replay.rs).

#[path = "../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn smtp_server() {
    replay("smtp_server", smtp::fuzz::session_never_panics);
}

#[test]
fn smtp_client() {
    replay("smtp_client", smtp::fuzz::client_never_panics);
}

#[test]
fn address() {
    replay("address", smtp::fuzz::address_never_panics);
}

#[test]
fn esmtp_params() {
    replay("esmtp_params", smtp::fuzz::esmtp_params_never_panics);
}
