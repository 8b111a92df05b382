//! The outbox's retry schedule: a failed message waits a delay that doubles from the first
//! retry up to a ceiling, and is given up once the delays add up to its lifetime; the
//! sender's poll for what nothing woke it for lives here too. Plain arithmetic on
//! durations, apart from the sender that follows it.

use std::time::Duration;

/// When to retry a message that could not be sent, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; each further failure doubles it.
    pub first_retry: Duration,
    /// The delay never grows beyond this.
    pub max_retry: Duration,
    /// Give up once the delays so far add up to this (about the message's age).
    pub give_up_after: Duration,
    /// How often the sender looks for due mail when nothing wakes it (another process, such
    /// as the CLI or another host, may have queued some; retries fall due; a dead host's
    /// leases run out): `[state] outbox_poll_secs`. Mail this process queues wakes it at once.
    pub poll: Duration,
    /// Most messages taken from the queue in one pass.
    pub batch: usize,
}

impl Default for RetryPolicy {
    /// 1 min doubling to 1 h, for 5 days: about Postfix's own schedule
    /// (`minimal_backoff_time` 300 s to `maximal_backoff_time` 4000 s,
    /// `maximal_queue_lifetime` 5 d), a little quicker at first because the relay is local.
    fn default() -> Self {
        RetryPolicy {
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            poll: Duration::from_secs(15),
            batch: 50,
        }
    }
}

impl RetryPolicy {
    /// The delay after failure number `failures` (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first_retry
            .saturating_mul(1u32 << doublings)
            .min(self.max_retry)
    }

    /// True when, after `failures` failures, the delays add up to `give_up_after`.
    pub fn gives_up(&self, failures: u32) -> bool {
        let mut total = Duration::ZERO;
        for n in 1..=failures {
            total = total.saturating_add(self.delay(n));
            if total >= self.give_up_after {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_and_gives_up_after_five_days() {
        let policy = RetryPolicy::default();
        let minutes: Vec<u64> = (1..=9).map(|n| policy.delay(n).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(3600));
        // 63 minutes for the first six, then an hour each: 5 days = 7200 min.
        let gives_up_at = (1..1000).find(|&n| policy.gives_up(n)).expect("gives up");
        let total: Duration = (1..=gives_up_at).map(|n| policy.delay(n)).sum();
        assert!(total >= policy.give_up_after);
        assert!(total - policy.delay(gives_up_at) < policy.give_up_after);
        // 6 + 119 hourly retries: 63 + 119 * 60 = 7203 minutes.
        assert_eq!(gives_up_at, 125);
    }
}
