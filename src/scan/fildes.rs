//! clamd's FILDES command: instead of streaming the message (INSTREAM), we pass clamd an open
//! descriptor of it over the unix socket (`SCM_RIGHTS`) and clamd scans that file directly.
//!
//! Why: for INSTREAM clamd writes every stream to a temporary file, scans it and unlinks it;
//! that file churn was most of clamd's CPU per small message, and for a spooled message it
//! also meant sending megabytes over the socket for clamd to write back to disk.
//!
//! The exchange, as clamd 1.4.6 wants it: `zFILDES\0` in one write, then one byte carrying the
//! descriptor as ancillary data in a second `sendmsg` (a descriptor attached to the command
//! bytes themselves is refused with `PROTOCOL ERROR: ancillary data sent without FILDES`).
//! clamd answers `fd[N]: OK`, `fd[N]: <name> FOUND` or `... ERROR`, NUL-terminated, and
//! closes.
//!
//! What clamd gets is never our own descriptor: it is a fresh read-only open of the same file
//! (through `/proc/self/fd/N`), so it has its own offset at 0 and cannot write. Reopening
//! rather than sealing a memfd because one mechanism then serves both inputs: the spool file
//! (a plain file we opened for writing, which cannot be sealed) and the memfd we fill for a
//! message held in memory.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use super::ScanError;

/// The command, in clamd's NUL-terminated (`z`) form.
const COMMAND: &[u8] = b"zFILDES\0";

/// clamd's replies are one short line; a peer that sends more than this is not clamd, and
/// must not make us buffer without bound.
const MAX_REPLY: usize = 64 * 1024;

/// A read-only descriptor of a new anonymous memory file holding `message`, for a message
/// that lives on the heap.
pub(super) fn read_only_copy(message: &[u8]) -> io::Result<File> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let fd = memfd_create(c"sievegate-scan", MemFdCreateFlag::MFD_CLOEXEC)?;
    let mut writable = File::from(fd);
    writable.write_all(message)?;
    // The writable descriptor is closed on return; the reopened one keeps the file alive.
    reopen_read_only(writable.as_fd())
}

/// A new read-only open file description of the file behind `fd`: own offset (at 0), no
/// write access, close-on-exec. Works for unnamed files (O_TMPFILE, memfd) too, because the
/// `/proc/self/fd` link resolves to the inode, not to a path.
pub(super) fn reopen_read_only(fd: BorrowedFd<'_>) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What clamd said to FILDES.
#[derive(Debug)]
pub(super) enum Answer {
    /// The raw reply, for [`super::parse_reply`].
    Reply(Vec<u8>),
    /// clamd cannot do FILDES here: it does not know the command (`UNKNOWN COMMAND`), or the
    /// descriptor did not reach it (`No file descriptor received.`: a proxy in between, or a
    /// security module refusing it). The caller falls back to INSTREAM.
    Unsupported(String),
}

/// Connects to clamd at `socket`, sends FILDES with `file` and reads the reply up to its NUL
/// (or EOF). No timeout here: the caller bounds the whole exchange.
pub(super) async fn exchange(socket: &Path, file: &File) -> Result<Answer, ScanError> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(ScanError::Connect)?;
    stream.write_all(COMMAND).await.map_err(ScanError::Io)?;
    // A clamd that answers the command itself (`UNKNOWN COMMAND`) closes at once, and the
    // descriptor's byte then meets a closed socket: its reply is still there to be read.
    let send_error = match send_fd(&stream, file.as_fd()).await {
        Ok(()) => None,
        Err(err) if peer_stopped_reading(&err) => Some(err),
        Err(err) => return Err(ScanError::Io(err)),
    };
    let raw = match (read_reply(&mut stream).await, send_error) {
        (Ok(raw), _) if !raw.is_empty() => raw,
        // Nothing came back: the failed send is the better story.
        (_, Some(err)) => return Err(ScanError::Io(err)),
        (Ok(raw), None) => raw,
        (Err(err), None) => return Err(ScanError::Io(err)),
    };
    Ok(classify(raw))
}

fn peer_stopped_reading(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Sends one NUL byte with `fd` attached (`SCM_RIGHTS`). The kernel duplicates the
/// descriptor into clamd's table; ours can be closed as soon as this returns.
async fn send_fd(stream: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            sendmsg::<UnixAddr>(
                stream.as_raw_fd(),
                &[IoSlice::new(b"\0")],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)
        })
        .await?;
    if sent == 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the descriptor was not sent",
        ))
    }
}

/// Reads until the first NUL (clamd's terminator for `z` commands) or EOF, at most
/// [`MAX_REPLY`] bytes.
async fn read_reply(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut reply = Vec::with_capacity(128);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(reply);
        }
        let chunk = &buf[..n];
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            reply.extend_from_slice(&chunk[..=nul]);
            return Ok(reply);
        }
        reply.extend_from_slice(chunk);
        if reply.len() >= MAX_REPLY {
            // Unterminated and huge: the parser reports it as malformed with an excerpt.
            return Ok(reply);
        }
    }
}

/// Tells the "clamd cannot do FILDES" answers apart from every other reply.
fn classify(raw: Vec<u8>) -> Answer {
    let text = String::from_utf8_lossy(&raw);
    let text = text.trim_end_matches(['\0', '\n', '\r']);
    let unsupported = text == "UNKNOWN COMMAND"
        || (text.ends_with("ERROR") && text.to_ascii_lowercase().contains("file descriptor"));
    if unsupported {
        Answer::Unsupported(text.to_owned())
    } else {
        Answer::Reply(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    fn access_mode(file: &File) -> i32 {
        let flags =
            nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL");
        flags & libc::O_ACCMODE
    }

    #[test]
    fn the_memory_copy_is_read_only_at_offset_0_with_every_byte() {
        let message = b"From: a@example.test\r\n\r\nbody\r\n";
        let mut copy = read_only_copy(message).expect("memfd");
        assert_eq!(access_mode(&copy), libc::O_RDONLY);
        assert!(copy.write_all(b"x").is_err(), "writable");
        let mut back = Vec::new();
        copy.read_to_end(&mut back).expect("read");
        assert_eq!(back, message);
        let empty = read_only_copy(b"").expect("empty memfd");
        assert_eq!(empty.metadata().expect("stat").len(), 0);
    }

    #[test]
    fn a_reopened_file_has_its_own_offset_and_no_write_access() {
        let mut writable = tempfile::tempfile().expect("tempfile");
        writable.write_all(b"0123456789").expect("write");
        // Ours is at the end; the reopened one must still start at 0.
        let mut ro = reopen_read_only(writable.as_fd()).expect("reopen");
        assert_eq!(access_mode(&ro), libc::O_RDONLY);
        let mut back = String::new();
        ro.read_to_string(&mut back).expect("read");
        assert_eq!(back, "0123456789");
        assert_eq!(
            writable.stream_position().expect("pos"),
            10,
            "our offset is untouched"
        );
        writable.seek(SeekFrom::Start(0)).expect("seek");
    }

    #[test]
    fn classify_table() {
        // (raw, unsupported)
        let cases: &[(&[u8], bool)] = &[
            (b"UNKNOWN COMMAND\0", true),
            (b"UNKNOWN COMMAND\n", true),
            (b"No file descriptor received. ERROR\0", true),
            (b"FILDES: didn't receive file descriptor. ERROR\0", true),
            (b"fd[11]: OK\0", false),
            (b"fd[11]: Eicar-Signature FOUND\0", false),
            // A signature name that happens to mention descriptors is still a detection.
            (b"fd[11]: File.Descriptor.Test FOUND\0", false),
            (b"fd[11]: Can't allocate memory ERROR\0", false),
            (b"", false),
            (b"garbage", false),
        ];
        for (raw, unsupported) in cases {
            let got = classify(raw.to_vec());
            assert_eq!(
                matches!(got, Answer::Unsupported(_)),
                *unsupported,
                "{:?}: {got:?}",
                raw.escape_ascii().to_string()
            );
        }
    }
}
