//! The server's memory while a test drives it: `/proc/PID/status` read in a loop.
//!
//! `VmHWM` (the kernel's peak resident set) counts file-backed pages too, and a spooled
//! message is mapped from its file: those pages are the kernel's to reclaim, unlike
//! anonymous memory (heap), which is what exhausts a host. The kernel keeps no peak of
//! `RssAnon`, so a [`Sampler`] polls it; `VmHWM` is reset first (`clear_refs` 5) so each
//! measurement is the peak of its own stretch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One reading of `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    pub hwm: usize,
    pub rss_anon: usize,
    pub rss_file: usize,
}

/// Reads `VmHWM`, `RssAnon` and `RssFile` of `pid`.
pub fn status(pid: i32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
            * 1024
    };
    Status {
        hwm: field("VmHWM:"),
        rss_anon: field("RssAnon:"),
        rss_file: field("RssFile:"),
    }
}

/// The peaks of one stretch of a test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    /// The kernel's `VmHWM` at the end (anonymous and file-backed pages).
    pub hwm: usize,
    /// The highest `RssAnon` seen (sampled every 2 ms).
    pub anon: usize,
    /// The highest `RssFile` seen.
    pub file: usize,
}

impl std::fmt::Display for Peaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmHWM {:.1} MB, peak RssAnon {:.1} MB, peak RssFile {:.1} MB",
            self.hwm as f64 / 1e6,
            self.anon as f64 / 1e6,
            self.file as f64 / 1e6
        )
    }
}

/// Polls a process's memory until [`Sampler::finish`].
pub struct Sampler {
    pid: i32,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, usize)>,
}

impl Sampler {
    /// Resets `pid`'s `VmHWM` to its current RSS and starts polling.
    pub fn start(pid: i32) -> Sampler {
        // Linux ≥ 4.0: "5" resets the peak resident set size.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut anon, mut file) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                // The process may be gone when a test fails: stop quietly, the test says why.
                if !std::path::Path::new(&format!("/proc/{pid}/status")).exists() {
                    break;
                }
                let s = status(pid);
                anon = anon.max(s.rss_anon);
                file = file.max(s.rss_file);
                std::thread::sleep(Duration::from_millis(2));
            }
            (anon, file)
        });
        Sampler { pid, stop, thread }
    }

    /// Stops polling; the peaks since [`Sampler::start`].
    pub fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        let (anon, file) = self.thread.join().expect("sampler");
        let last = status(self.pid);
        Peaks {
            hwm: last.hwm,
            anon: anon.max(last.rss_anon),
            file: file.max(last.rss_file),
        }
    }
}
