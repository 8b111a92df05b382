//! Message bytes that do not have to live on the heap: a received message above
//! `[server] spool_threshold` is written to an unnamed temporary file in `spool_dir` while
//! it arrives, then mapped read-only, so the pipeline still sees one `&[u8]`.
//!
//! Why a mapped file: 256 sessions × `max_message_size` of heap would exhaust a host, while
//! the pages of a mapped file on disk are page cache the kernel writes back and reclaims
//! under pressure. (On a tmpfs `spool_dir` they would be shared memory again: put the spool
//! on a disk.) The file has no name from the start (`O_TMPFILE`; where the file system lacks
//! it, a random name unlinked at once), so it never outlives its message, whatever ends the
//! process: no sweep at startup is needed.
//!
//! - [`Spool`]: the writer a receiver fills (in memory up to the threshold, then on disk).
//! - [`MessageBytes`]: the finished message, in memory or mapped; derefs to `[u8]`.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::config::{check_existing_dir, DirProblem, SpoolConfig};

/// How many bytes a [`Spool`] collects before one write to its file: large enough for few
/// system calls, small enough that a session that spools holds little heap.
const WRITE_CHUNK: usize = 256 * 1024;

/// Why a message could not be spooled. The MTA keeps the message and retries (4xx).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Creating the spool directory or the temporary file failed.
    #[error("cannot create a spool file in {dir}: {source}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the spooled bytes failed (disk full, I/O error).
    #[error("cannot write the spool file in {dir}: {source}")]
    Write {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The finished file could not be mapped.
    #[error("cannot map the spool file in {dir}: {source}")]
    Map {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The spool directory exists but is not safely ours (the check of `config::check_existing_dir`): nothing is
    /// written into it.
    #[error("refusing spool directory {dir}: {why}")]
    Unsafe {
        dir: PathBuf,
        /// What is wrong, for the log (see [`DirProblem`]).
        why: DirProblem,
    },
    /// The blocking task doing the file work panicked or was cancelled.
    #[error("spool task failed: {0}")]
    Task(String),
}

impl SpoolError {
    /// True for a full file system or quota: worth its own status code (452 4.3.1).
    pub fn is_no_space(&self) -> bool {
        let source = match self {
            SpoolError::Create { source, .. }
            | SpoolError::Write { source, .. }
            | SpoolError::Map { source, .. } => source,
            SpoolError::Task(_) | SpoolError::Unsafe { .. } => return false,
        };
        matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        )
    }
}

/// A message as it arrives: bytes go into [`Spool::buffer`], the owner calls
/// [`Spool::settle`] after each batch, and [`Spool::finish`] at the end.
pub struct Spool {
    config: SpoolConfig,
    /// Bytes not yet in the file (all of them while the message is below the threshold).
    buffer: Vec<u8>,
    /// The unnamed file, once the message passed the threshold. `None` while a write runs
    /// on the blocking pool (it owns the file then) and before the threshold.
    file: Option<File>,
    /// Bytes already written to the file.
    written: usize,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Spool({} bytes, spooled: {}, dir {})",
            self.len(),
            self.is_spooled(),
            self.config.dir.display()
        )
    }
}

impl Spool {
    /// An empty spool; `expected` sizes the first allocation (e.g. bytes already read).
    pub fn new(config: SpoolConfig, expected: usize) -> Self {
        let capacity = expected.clamp(4096, config.threshold.clamp(4096, 1 << 20));
        Spool {
            config,
            buffer: Vec::with_capacity(capacity),
            file: None,
            written: 0,
        }
    }

    /// Where the next bytes go. Call [`Spool::settle`] after adding a batch.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Bytes of the message so far.
    pub fn len(&self) -> usize {
        self.written + self.buffer.len()
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the message is (also) on disk.
    pub fn is_spooled(&self) -> bool {
        self.file.is_some() || self.written > 0
    }

    /// Drops every byte and the file (the message was refused): memory and disk space are
    /// free at once.
    pub fn discard(&mut self) {
        self.buffer = Vec::new();
        self.file = None;
        self.written = 0;
    }

    /// Moves the buffered bytes to the file when the message has passed the threshold and
    /// enough bytes are waiting. The file work runs on the blocking pool.
    pub async fn settle(&mut self) -> Result<(), SpoolError> {
        if self.file.is_none() && self.written == 0 {
            if self.buffer.len() <= self.config.threshold {
                return Ok(());
            }
            let dir = self.config.dir.clone();
            self.file = Some(blocking(move || create(&dir)).await??);
        }
        if self.buffer.len() >= WRITE_CHUNK {
            self.write_buffer().await?;
        }
        Ok(())
    }

    /// The complete message: the buffer itself below the threshold, else the mapped file.
    pub async fn finish(mut self) -> Result<MessageBytes, SpoolError> {
        if !self.is_spooled() {
            return Ok(MessageBytes::from(self.buffer));
        }
        self.write_buffer().await?;
        let file = self.file.take().ok_or_else(|| {
            // `write_buffer` always puts the file back or fails.
            SpoolError::Task("spool file missing after its last write".to_string())
        })?;
        let dir = self.config.dir.clone();
        blocking(move || map(file, &dir)).await?
    }

    /// Writes and empties the buffer, keeping a small allocation for what comes next.
    async fn write_buffer(&mut self) -> Result<(), SpoolError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(mut file) = self.file.take() else {
            return Err(SpoolError::Task("no spool file to write to".to_string()));
        };
        let buffer = std::mem::take(&mut self.buffer);
        let dir = self.config.dir.clone();
        let (file, mut buffer) = blocking(move || match file.write_all(&buffer) {
            Ok(()) => Ok((file, buffer)),
            Err(source) => Err(SpoolError::Write { dir, source }),
        })
        .await??;
        self.written += buffer.len();
        // The first spill carried everything below the threshold: do not keep that much.
        if buffer.capacity() > 2 * WRITE_CHUNK {
            buffer = Vec::with_capacity(WRITE_CHUNK + 64 * 1024);
        }
        buffer.clear();
        self.buffer = buffer;
        self.file = Some(file);
        Ok(())
    }
}

/// Runs file work on the blocking pool: a slow or full disk must not stall the sessions
/// sharing this worker thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SpoolError::Task(e.to_string()))
}

/// A new unnamed file in `dir` (created 0700 when missing). An existing `dir` must pass
/// [`check_existing_dir`]; checked each time, since a directory in `/var/tmp` can appear or
/// change while we run. (Between the check and the file, a directory we own under a sticky
/// parent cannot be swapped by anyone else.)
fn create(dir: &Path) -> Result<File, SpoolError> {
    let create_error = |source| SpoolError::Create {
        dir: dir.to_path_buf(),
        source,
    };
    check_existing_dir(dir).map_err(|why| SpoolError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    })?;
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(create_error)?;
    }
    tempfile::tempfile_in(dir).map_err(create_error)
}

/// Maps the finished `file` read-only.
fn map(file: File, dir: &Path) -> Result<MessageBytes, SpoolError> {
    let len = file
        .metadata()
        .map_err(|source| SpoolError::Map {
            dir: dir.to_path_buf(),
            source,
        })?
        .len();
    if len == 0 {
        // mmap(2) refuses a length of 0; an empty message needs no file.
        return Ok(MessageBytes::from(Vec::new()));
    }
    // SAFETY: a mapping is undefined behaviour only if the file changes underneath it. This
    // file has no name (O_TMPFILE, or unlinked right after creation), only this process
    // holds it, and nothing writes to it after this point; the map keeps it alive until the
    // message is dropped.
    let map = unsafe { Mmap::map(&file) }.map_err(|source| SpoolError::Map {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(MessageBytes(Inner::Mapped { map, file }))
}

/// Spools `write`'s output to a new unnamed file in `dir` and maps it, from blocking code
/// (the pipeline's rewritten copies of a spooled message).
pub fn spool_with(
    dir: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<MessageBytes, SpoolError> {
    let file = create(dir)?;
    let mut out = io::BufWriter::with_capacity(WRITE_CHUNK, file);
    let written = write(&mut out).and_then(|()| out.flush());
    if let Err(source) = written {
        return Err(SpoolError::Write {
            dir: dir.to_path_buf(),
            source,
        });
    }
    let file = out.into_inner().map_err(|e| SpoolError::Write {
        dir: dir.to_path_buf(),
        source: e.into_error(),
    })?;
    map(file, dir)
}

/// The bytes of one message: on the heap, or a read-only map of its spool file.
pub struct MessageBytes(Inner);

enum Inner {
    Memory(Vec<u8>),
    /// The file stays open next to its map so the scanner can hand clamd a read-only
    /// descriptor of it (`[scanner] pass_fd`) instead of sending the bytes.
    Mapped {
        map: Mmap,
        file: File,
    },
}

impl MessageBytes {
    /// True when the bytes are a mapped spool file, not heap.
    pub fn is_spooled(&self) -> bool {
        matches!(self.0, Inner::Mapped { .. })
    }

    /// The spool file holding exactly these bytes, when spooled. It was opened for writing:
    /// reopen it read-only before giving it to anyone (the scanner does).
    pub fn spool_file(&self) -> Option<&File> {
        match &self.0 {
            Inner::Memory(_) => None,
            Inner::Mapped { file, .. } => Some(file),
        }
    }
}

/// Where and how long, never the content (a message in a log line would be megabytes).
impl std::fmt::Debug for MessageBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = if self.is_spooled() {
            "spooled"
        } else {
            "memory"
        };
        write!(f, "MessageBytes({place}, {} bytes)", self.len())
    }
}

impl From<Vec<u8>> for MessageBytes {
    fn from(bytes: Vec<u8>) -> Self {
        MessageBytes(Inner::Memory(bytes))
    }
}

impl Deref for MessageBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Inner::Memory(bytes) => bytes,
            Inner::Mapped { map, .. } => map,
        }
    }
}

impl AsRef<[u8]> for MessageBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsafe_spool_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("tempdir");
        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).expect("symlink");
        let mut dirs = vec![(open.clone(), "world-writable")];
        dirs.push((link, "not a directory"));
        if nix::unistd::geteuid().is_root() {
            let theirs = base.path().join("theirs");
            std::fs::create_dir(&theirs).expect("mkdir");
            nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None)
                .expect("chown");
            dirs.push((theirs, "owned by uid 65534"));
        }
        for (dir, why) in dirs {
            let err = spool_with(&dir, |out| out.write_all(b"x")).expect_err("refused");
            assert!(matches!(err, SpoolError::Unsafe { .. }), "{err}");
            assert!(err.to_string().contains(why), "{err}");
            assert!(!err.is_no_space());
        }
        assert_eq!(std::fs::read_dir(&open).expect("ls").count(), 0);
        // Sticky and world-writable (like /var/tmp itself) is accepted.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let ok = spool_with(&open, |out| out.write_all(b"x")).expect("spooled");
        assert_eq!(&ok[..], b"x");
    }

    fn config(dir: &Path, threshold: usize) -> SpoolConfig {
        SpoolConfig {
            threshold,
            dir: dir.join("spool"),
        }
    }

    /// Feeds `input` in batches of `batch` bytes and finishes.
    async fn feed(config: SpoolConfig, input: &[u8], batch: usize) -> MessageBytes {
        let mut spool = Spool::new(config, 0);
        for chunk in input.chunks(batch.max(1)) {
            spool.buffer().extend_from_slice(chunk);
            spool.settle().await.expect("settle");
        }
        assert_eq!(spool.len(), input.len());
        spool.finish().await.expect("finish")
    }

    #[tokio::test]
    async fn bytes_come_back_whole_in_memory_or_spooled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big: Vec<u8> = (0..3 * WRITE_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        // (what, threshold, input length, batch, spooled)
        let cases = [
            ("empty", 0, 0, 1, false),
            ("below the threshold", 100, 100, 7, false),
            ("one byte over", 100, 101, 7, true),
            ("threshold 0 spools anything", 0, 1, 1, true),
            ("large, small batches", 1000, big.len(), 8192, true),
            ("large, one batch", 1000, big.len(), big.len(), true),
            (
                "large, below a high threshold",
                10 << 20,
                big.len(),
                65536,
                false,
            ),
        ];
        for (what, threshold, len, batch, spooled) in cases {
            let input = &big[..len];
            let got = feed(config(dir.path(), threshold), input, batch).await;
            assert_eq!(&got[..], input, "{what}");
            assert_eq!(got.is_spooled(), spooled, "{what}");
        }
        // Nothing named is left behind: the files never had a name (or lost it at once).
        let left: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
            .expect("spool dir created")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn an_unusable_spool_dir_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let mut spool = Spool::new(
            SpoolConfig {
                threshold: 1,
                dir: blocker.join("spool"),
            },
            0,
        );
        spool.buffer().extend_from_slice(b"hello");
        let err = spool.settle().await.expect_err("not a directory");
        assert!(matches!(err, SpoolError::Create { .. }), "{err:?}");
        assert!(!err.is_no_space());
    }

    #[test]
    fn spool_with_maps_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let got = spool_with(dir.path(), |w| w.write_all(b"abc")).expect("spool");
        assert!(got.is_spooled());
        assert_eq!(format!("{got:?}"), "MessageBytes(spooled, 3 bytes)");
        assert_eq!(&got[..], b"abc");
        let err = spool_with(dir.path(), |_| {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        })
        .expect_err("write error");
        assert!(err.is_no_space(), "{err:?}");
    }
}
