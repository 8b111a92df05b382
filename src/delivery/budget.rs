//! How many bytes of messages are parsed at once (`[server] max_parse_memory`).
//!
//! Spooling keeps a received message off the heap, but the Sieve view is parsed in memory,
//! and the parser decodes every MIME part: a 10 MB base64 attachment is 7.5 MB of heap
//! while its message is delivered. Sixteen such messages at once measured 139 MB of
//! `RssAnon` against 15 MB for the same sizes in plain text. So each delivery first
//! reserves twice its message's size from one shared budget and waits (without holding a
//! thread) while others use it up: the parse memory of all sessions together stays near
//! the budget, whatever the connection count. A message larger than the budget takes all
//! of it, so it still gets through, alone.
//!
//! Why twice: measured, one 10 MB message with a base64 attachment costs about 20 MB of
//! heap while it is delivered (the parse, and the copy of the parsed message each
//! recipient's Sieve run gets).
//!
//! A budget of live memory bounds the process only if freed memory leaves it. glibc's
//! malloc raises its mmap threshold to the largest block freed so far, so after one big
//! parse, later big blocks come from the per-thread arenas and stay there when freed: 16
//! such messages delivered one at a time still left 121 MB of heap behind (one arena per
//! blocking thread). So [`tune_allocator`] fixes the threshold at glibc's default (128 KiB):
//! large blocks are mapped and unmapped, and the same 16 messages peak at 18 MB. It changes
//! the allocator of the whole process, so it is not a side effect of building a budget: the
//! commands that deliver (`serve`, `deliver`) call it once at process start, before any
//! thread allocates; tools and tests that build [`crate::delivery::Services`] leave the
//! allocator as it is.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget; reservations are counted in KiB (the semaphore counts in `u32`).
#[derive(Debug, Clone)]
pub struct ParseBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

/// A reservation, returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl ParseBudget {
    /// A budget of `bytes` (at least 1 KiB, at most 4 TiB).
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        ParseBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// KiB a message of `len` bytes reserves: twice its size, at most the whole budget.
    fn weight(&self, len: usize) -> u32 {
        u32::try_from(len.saturating_mul(2).div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// Waits until a message of `len` bytes fits, and reserves its share.
    pub async fn reserve(&self, len: usize) -> Reservation {
        let weight = self.weight(len);
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_many_owned(weight) {
            return Reservation(Some(permit));
        }
        tracing::debug!(
            size = len,
            "parse budget ([server] max_parse_memory) in use: waiting"
        );
        // The semaphore is never closed; should that change, delivering unbudgeted beats
        // deferring the message.
        Reservation(
            Arc::clone(&self.permits)
                .acquire_many_owned(weight)
                .await
                .ok(),
        )
    }

    /// KiB free now (for tests).
    pub fn available_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

/// Fixes glibc's mmap threshold (once per process), which turns its dynamic raising off:
/// every block of 128 KiB or more is unmapped when freed, instead of staying in an arena, so
/// the parse budget bounds the process (module docs). Process-wide: called once at the
/// start of `serve` and `deliver`; a no-op elsewhere than Linux with glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt(3) only sets an allocator parameter; it takes plain integers
            // and is safe to call at any time, from any thread.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
            if ok != 1 {
                tracing::warn!(
                    "mallopt(M_MMAP_THRESHOLD) failed: freed parses may stay in the heap"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_the_budget_and_return_to_it() {
        let budget = ParseBudget::new(100 * 1024);
        assert_eq!(budget.weight(0), 1);
        assert_eq!(budget.weight(1), 1);
        assert_eq!(budget.weight(1024), 2);
        assert_eq!(budget.weight(1025), 3);
        assert_eq!(
            budget.weight(usize::MAX),
            100,
            "capped: a huge message still fits"
        );

        let a = budget.reserve(30 * 1024).await;
        assert_eq!(budget.available_kib(), 40);
        // 2 × 25 KiB do not fit beside 2 × 30: the second reservation waits for the first.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(25 * 1024).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let b = waiting.await.expect("task");
        assert_eq!(budget.available_kib(), 50);
        drop(b);
        assert_eq!(budget.available_kib(), 100);
    }
}
