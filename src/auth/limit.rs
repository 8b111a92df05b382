//! Failed-login rate limits, per client address and per user name, in memory.
//!
//! In memory rather than in the state store: a failure counter is worth nothing after a
//! restart, is checked before every login (no database round trip on the hot path of a
//! password-guessing attack) and needs no durability. With several hosts behind one name
//! each counts its own failures; the per-user limit still bounds the guesses per host.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many keys (addresses and names) are remembered at most: a flood of distinct names
/// cannot grow memory without bound; when full, expired windows go first, then the oldest.
pub const MAX_KEYS: usize = 65_536;

/// The limits: at most `per_ip` failures from one address (IPv6: one /64) and `per_user`
/// failures for one user name within `window`; after that every attempt is refused, even a
/// right one, until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures per client address (IPv6: per /64, one customer's prefix).
    pub per_ip: u32,
    /// Failures per user name, from any address.
    pub per_user: u32,
    /// The window the failures are counted in, from the first failure.
    pub window: Duration,
    /// How long a failed attempt waits before it is answered (like Dovecot's
    /// `auth_failure_delay`): slows a guessing client down without tying up a thread.
    pub failure_delay: Duration,
}

impl Default for Limits {
    /// 10 failures per address, 10 per user, in 5 minutes; 2 s delay as Dovecot's default.
    fn default() -> Limits {
        Limits {
            per_ip: 10,
            per_user: 10,
            window: Duration::from_secs(300),
            failure_delay: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// The counters.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    keys: Mutex<HashMap<Key, Window>>,
}

impl Limiter {
    /// Empty counters with these limits.
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True when `ip` or `user` has used up its failures in the current window.
    pub fn blocked(&self, ip: Option<IpAddr>, user: &str) -> bool {
        let now = Instant::now();
        let keys = self.lock();
        let over = |key: Key, max: u32| {
            keys.get(&key).is_some_and(|w| {
                now.duration_since(w.start) < self.limits.window && w.failures >= max
            })
        };
        ip.is_some_and(|ip| over(Key::Ip(prefix(ip)), self.limits.per_ip))
            || over(Key::User(user.to_lowercase()), self.limits.per_user)
    }

    /// Counts one failure for `ip` and `user`.
    pub fn failed(&self, ip: Option<IpAddr>, user: &str) {
        let now = Instant::now();
        let mut keys = self.lock();
        let window = self.limits.window;
        let mut count = |key: Key| {
            if keys.len() >= MAX_KEYS && !keys.contains_key(&key) {
                keys.retain(|_, w| now.duration_since(w.start) < window);
                if keys.len() >= MAX_KEYS {
                    let oldest = keys
                        .iter()
                        .min_by_key(|(_, w)| w.start)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        keys.remove(&k);
                    }
                }
            }
            let w = keys.entry(key).or_insert(Window {
                start: now,
                failures: 0,
            });
            if now.duration_since(w.start) >= window {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        };
        if let Some(ip) = ip {
            count(Key::Ip(prefix(ip)));
        }
        count(Key::User(user.to_lowercase()));
    }

    /// A successful login clears the user's failures (not the address's: one valid account
    /// must not reset the guesses an address makes at others).
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&Key::User(user.to_lowercase()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many keys are remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address a limit counts: IPv4 as is, IPv6 its /64 (an IPv4-mapped one as IPv4).
fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(window: Duration) -> Limits {
        Limits {
            per_ip: 3,
            per_user: 2,
            window,
            failure_delay: Duration::ZERO,
        }
    }

    #[test]
    fn per_ip_and_per_user() {
        let l = Limiter::new(limits(Duration::from_secs(60)));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        l.failed(Some(a), "alice");
        assert!(!l.blocked(Some(a), "alice"));
        l.failed(Some(b), "ALICE");
        // Two failures for alice from two addresses: alice is blocked from anywhere.
        assert!(l.blocked(Some("198.51.100.1".parse().expect("ip")), "alice"));
        assert!(!l.blocked(Some(a), "bob"));
        l.failed(Some(a), "carol");
        l.failed(Some(a), "dave");
        // Three failures from a: a is blocked for every user.
        assert!(l.blocked(Some(a), "erin"));
        assert!(!l.blocked(Some(b), "erin"));
        l.succeeded("alice");
        assert!(!l.blocked(Some(b), "alice"));
        assert!(l.blocked(Some(a), "alice"), "the address stays blocked");
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = Limiter::new(limits(Duration::from_secs(60)));
        for (i, user) in ["u1", "u2", "u3"].iter().enumerate() {
            let ip: IpAddr = format!("2001:db8:1:2::{}", i + 1).parse().expect("ip");
            l.failed(Some(ip), user);
        }
        assert!(l.blocked(Some("2001:db8:1:2:ffff::1".parse().expect("ip")), "x"));
        assert!(!l.blocked(Some("2001:db8:1:3::1".parse().expect("ip")), "x"));
    }

    #[test]
    fn windows_expire() {
        let l = Limiter::new(limits(Duration::from_millis(50)));
        l.failed(None, "alice");
        l.failed(None, "alice");
        assert!(l.blocked(None, "alice"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!l.blocked(None, "alice"));
    }

    #[test]
    fn memory_is_bounded() {
        let l = Limiter::new(limits(Duration::from_secs(60)));
        for i in 0..(MAX_KEYS + 100) {
            l.failed(None, &format!("user{i}"));
        }
        assert!(l.len() <= MAX_KEYS);
    }
}
