//! Is clamd up? One flag per [`super::Scanner`], set by every scan and by a background
//! PING probe ([`watch`]). While it is down (and `on_failure = "tempfail"`), the session
//! answers MAIL with 451 4.7.1 instead of taking a DATA it could only defer.
//!
//! A scan that cannot reach clamd (connect failure) marks it down at once; a clamd that
//! answers badly for one message does not, nor does a scan that times out while clamd still
//! answers PING (the scan is followed by one PING, which decides). The probe marks it up again within one
//! `[scanner] health_interval_secs` of clamd answering PING. The probe also runs while clamd
//! is up, so a clamd that stops between messages is noticed before the next DATA.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{ScanError, Scanner};

/// clamd's last known state. Starts as up: until a scan or the probe says otherwise,
/// refusing mail would only guess.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    /// A probe ([`watch`]) runs: the server. Only then are the changes worth a log line;
    /// one-shot users (LDA mode, tools) log their scan failure themselves.
    watched: AtomicBool,
}

impl Health {
    /// True unless the last scan or PING failed.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// True while a probe ([`watch`] with an interval) runs: only then will a "down" turn
    /// into "up" again without a scan, so only then may MAIL be refused on it.
    pub fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// Records a scan's or a PING's result; logs only the changes, so a long outage is one
    /// line when it starts and one when it ends.
    pub(super) fn record(&self, result: Result<(), &ScanError>, clamd: &super::ClamdAddr) {
        let watched = self.watched.load(Ordering::Relaxed);
        match result {
            Ok(()) => {
                if self.down.swap(false, Ordering::AcqRel) && watched {
                    tracing::info!(%clamd, "clamd answers again: accepting mail");
                }
            }
            Err(error) => {
                if !self.down.swap(true, Ordering::AcqRel) && watched {
                    tracing::warn!(%clamd, %error, "clamd is down: new transactions get 451 4.7.1 at MAIL until it answers");
                }
            }
        }
    }
}

/// The probe: PINGs clamd every `interval`, forever (the runtime ends it). Without an
/// interval (`health_interval_secs = 0`) it PINGs once, only to log whether clamd answers.
pub async fn watch(scanner: Scanner, interval: Option<Duration>) {
    let clamd = scanner.addr().clone();
    if !scanner.is_enabled() {
        tracing::warn!(%clamd, "scanning is off ([scanner] enabled = false): every message is delivered unscanned (virustest 0)");
        return;
    }
    scanner
        .health()
        .watched
        .store(interval.is_some(), Ordering::Relaxed);
    // The first answer is logged either way: it is what an admin looks for after a start.
    match scanner.ping().await {
        Ok(()) => tracing::info!(%clamd, "clamd answers"),
        Err(e) => {
            tracing::warn!(%clamd, error = %e, "clamd does not answer yet at scanner.clamd = {clamd}: {e}; messages get 451 until it does: start clamd (systemctl start clamav-daemon) or fix scanner.clamd")
        }
    }
    let Some(interval) = interval else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        // `ping` records the result itself.
        let _ = scanner.ping().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let h = Health::default();
        let addr = super::super::ClamdAddr::Unix("/nonexistent".into());
        assert!(h.is_up(), "unknown counts as up");
        let err = ScanError::Timeout;
        for (result, up) in [
            (Err(&err), false),
            (Err(&err), false),
            (Ok(()), true),
            (Ok(()), true),
            (Err(&err), false),
        ] {
            h.record(result, &addr);
            assert_eq!(h.is_up(), up);
        }
    }

    #[test]
    fn only_unreachable_means_down() {
        let io = || std::io::Error::other("x");
        for (error, down) in [
            (ScanError::Connect(io()), true),
            (ScanError::Timeout, true),
            (ScanError::Io(io()), false),
            (
                ScanError::Clamd("Can't write to temporary file.".into()),
                false,
            ),
            (ScanError::Malformed("garbage".into()), false),
        ] {
            assert_eq!(error.is_unreachable(), down, "{error}");
        }
    }

    #[tokio::test]
    async fn a_failed_scan_or_ping_marks_clamd_down() {
        let s = Scanner::new(
            super::super::ClamdAddr::Unix("/nonexistent/clamd.sock".into()),
            Duration::from_secs(1),
            Vec::new(),
        );
        assert!(s.health().is_up());
        let _ = s.scan(b"x").await;
        assert!(!s.health().is_up(), "a scan that could not connect");
        // Clones share the state: the sessions and the probe see one flag.
        let clone = s.clone();
        s.health().record(Ok(()), s.addr());
        assert!(clone.health().is_up());
        let _ = clone.ping().await;
        assert!(!s.health().is_up(), "a failed PING");
    }
}
