//! Panic guards: a panic in one recipient's run, or in one per-message step, degrades that
//! recipient or that step only (the failure rules in [`super::pipeline`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Deferral, RcptOutcome};
use crate::mail::address::Recipient;

/// Runs one per-message step (not per recipient) so that a panic in it is contained:
/// `None` (logged with `step`) when it panicked, and the caller degrades that step alone
/// (module docs, "Failure rules"). A generic helper rather than a branch per step, so the
/// containment itself is what the unit test exercises.
pub(super) fn guarded<T>(step: &str, run: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(value) => Some(value),
        Err(panic) => {
            tracing::error!(step, panic = %panic_text(&*panic), "internal error in a per-message step: that step is skipped or degraded, the delivery goes on");
            None
        }
    }
}

/// The text of a panic's payload, for the log.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs `one` for every recipient, in order. A panic in one recipient's run defers that
/// recipient only (logged): copies already stored for the others stay, and so do their
/// outcomes, so the MTA's retry of the deferred one duplicates nothing.
pub fn each_recipient<F>(rcpts: &[Recipient], mut one: F) -> Vec<RcptOutcome>
where
    F: FnMut(&Recipient) -> RcptOutcome,
{
    rcpts
        .iter()
        .map(|rcpt| {
            // The closure's shared state is the filter's cache and the log line, both of
            // which stay consistent at a panic (the cache recovers poisoned locks).
            match catch_unwind(AssertUnwindSafe(|| one(rcpt))) {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let what = panic_text(&*panic);
                    tracing::error!(to = %rcpt.original, panic = %what, "delivery to this recipient panicked: deferred");
                    RcptOutcome::Deferred(Deferral::Internal)
                }
            }
        })
        .collect()
}
