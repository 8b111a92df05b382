//! Is a peer that every delivery needs up? One [`Health`] per peer, set by the calls that
//! use it and by a background probe; while it is down (and watched), the LMTP session
//! answers MAIL with a 4xx instead of taking a DATA it could only defer.
//!
//! This is the generic half of health gating: the state store (PostgreSQL) keeps one
//! ([`crate::state::StateStore::health`]); clamd has its own in `scan::health`, with
//! clamd's rules for what counts as down. The flag only changes on a transition, and only
//! a watched flag (one a probe keeps current) logs, so an outage is one line when it starts
//! and one when it ends. Imports nothing of ours.

use std::sync::atomic::{AtomicBool, Ordering};

/// One peer's last known state. Starts as up: until a call or the probe says otherwise,
/// refusing mail would only guess.
#[derive(Debug)]
pub struct Health {
    /// The peer's name in the log lines, e.g. `state store`.
    what: &'static str,
    down: AtomicBool,
    /// A probe runs (the server). Only then may MAIL be refused on this flag (only the
    /// probe turns "down" into "up" without a delivery), and only then are the changes
    /// worth a log line; one-shot users (LDA mode, tools) log their failures themselves.
    watched: AtomicBool,
}

impl Health {
    /// A flag for the peer called `what` in the log, up and not watched.
    pub const fn new(what: &'static str) -> Health {
        Health {
            what,
            down: AtomicBool::new(false),
            watched: AtomicBool::new(false),
        }
    }

    /// True unless the last call or probe found the peer unreachable.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// True while a probe keeps the flag current: only then may MAIL be refused on it.
    pub fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// Called by the probe when it starts (and with `false` if it stops).
    pub fn set_watched(&self, watched: bool) {
        self.watched.store(watched, Ordering::Relaxed);
    }

    /// True when MAIL should be refused: watched and down.
    pub fn refuses_mail(&self) -> bool {
        self.is_watched() && !self.is_up()
    }

    /// The peer answered.
    pub fn up(&self) {
        if self.down.swap(false, Ordering::AcqRel) && self.is_watched() {
            tracing::info!(
                peer = self.what,
                "{} answers again: accepting mail",
                self.what
            );
        }
    }

    /// The peer could not be reached; `error` says why (for the one log line).
    pub fn down(&self, error: &dyn std::fmt::Display) {
        if !self.down.swap(true, Ordering::AcqRel) && self.is_watched() {
            tracing::warn!(peer = self.what, %error, "{} is down: new transactions get 451 4.3.0 at MAIL until it answers", self.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_and_the_gate() {
        let h = Health::new("test peer");
        assert!(h.is_up(), "unknown counts as up");
        assert!(!h.refuses_mail());
        h.down(&"x");
        assert!(!h.is_up());
        assert!(
            !h.refuses_mail(),
            "nobody would notice recovery: never refuse unwatched"
        );
        h.set_watched(true);
        assert!(h.refuses_mail());
        h.down(&"again");
        assert!(h.refuses_mail());
        h.up();
        assert!(h.is_up() && !h.refuses_mail());
        h.up();
        assert!(h.is_up());
    }
}
