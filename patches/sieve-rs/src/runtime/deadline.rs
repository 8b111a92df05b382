/*
 * sievegate patch (PATCHES.md #4): wall-clock deadline for a Sieve run.
 *
 * SPDX-License-Identifier: AGPL-3.0-only
 */

//! The deadline of the run in progress on this thread. `Context::run` enters a [`Scope`];
//! code without a Context (the glob matcher) asks [`expired`] in its long loops and gives
//! up early, and `Context::run` turns that into `RuntimeError::TimeLimitReached`.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets this thread's deadline for as long as the guard lives; restores the previous one on
/// drop, so nested or interleaved contexts on one thread cannot leak a deadline.
pub(crate) struct Scope {
    previous: Option<Instant>,
}

impl Scope {
    pub(crate) fn enter(deadline: Option<Instant>) -> Self {
        Scope {
            previous: CURRENT.with(|current| current.replace(deadline)),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// True when `deadline` is set and has passed.
pub(crate) fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// True when the run in progress on this thread has passed its deadline.
pub(crate) fn expired() -> bool {
    passed(CURRENT.with(Cell::get))
}

/// Calls [`expired`] once every `2^12` steps, so a hot loop pays for a clock read rarely.
#[derive(Debug, Default)]
pub(crate) struct Ticker {
    steps: u32,
}

impl Ticker {
    /// Counts one step; true when the deadline has passed (checked every 4096 steps).
    pub(crate) fn expired(&mut self) -> bool {
        self.steps = self.steps.wrapping_add(1);
        self.steps & 0xfff == 0 && expired()
    }
}
