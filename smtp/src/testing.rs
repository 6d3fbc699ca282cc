//! Helpers for the unit tests of the verb handlers.

use std::net::SocketAddr;
use std::sync::Arc;

use super::session::{Mode, Poll, Session, SessionConfig, Verdict};

pub(super) fn config(mode: Mode) -> SessionConfig {
    SessionConfig::new("mx.test", mode)
}

pub(super) fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 40000))
}

/// A session past its greeting, with the greeting's output taken.
pub(super) fn ready_with(config: SessionConfig) -> Session {
    let mut s = Session::new(Arc::new(config), Some(peer()));
    assert_eq!(s.poll(), Poll::Decide(super::session::Event::Connect));
    s.verdict(Verdict::Accept);
    s.take_output();
    s
}

pub(super) fn ready(mode: Mode) -> Session {
    ready_with(config(mode))
}

/// Polls until the session needs input, accepting every event.
pub(super) fn accept_all(s: &mut Session) {
    loop {
        match s.poll() {
            Poll::Decide(_) => s.verdict(Verdict::Accept),
            Poll::Notice(_) => {}
            _ => return,
        }
    }
}

/// Polls until the session needs input or an event, skipping notices.
pub(super) fn drain(s: &mut Session) {
    while let Poll::Notice(_) = s.poll() {}
}

/// Sends `input`, accepts every event, returns the output.
pub(super) fn talk(s: &mut Session, input: &[u8]) -> String {
    s.receive(input);
    accept_all(s);
    String::from_utf8(s.take_output()).expect("replies are UTF-8")
}
