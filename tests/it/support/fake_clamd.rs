//! A misbehaving clamd on a unix socket, for the failure paths a real clamd will not show on
//! demand. Runs on plain threads so it works under any tokio runtime flavour.
//!
//! It speaks both ways of scanning, INSTREAM (the bytes, in chunks) and FILDES (a descriptor
//! passed with `SCM_RIGHTS`, read to its end), so every fault happens on either path.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use sievegate::scan::ClamdAddr;
use tempfile::TempDir;

/// How the fake peer misbehaves on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accepts and reads everything, never answers, keeps the connection open.
    Hang,
    /// Reads the INSTREAM, then answers bytes that are no clamd reply.
    Garbage,
    /// Closes each connection right after accepting it.
    Close,
    /// Reads the INSTREAM, then answers `INSTREAM: Can't write to temporary file. ERROR\0`
    /// (clamd's answer when its temporary directory is full).
    Error,
    /// Reads the INSTREAM, then answers `INSTREAM size limit exceeded. ERROR\0`.
    SizeLimit,
    /// Reads the INSTREAM, waits 1.5 s, then answers `stream: OK\0`: a delivery that is
    /// still in flight when something else happens (e.g. SIGTERM).
    SlowOk,
    /// Answers PING at once; reads a scan, then waits 4 s before `stream: OK\0`: one slow
    /// scan (a huge archive) on a clamd that is otherwise fine.
    StallScan,
    /// Answers PING; on INSTREAM reads the first chunk (on FILDES the first 64 KiB of the
    /// file), then closes: clamd dying mid-scan.
    DieMidStream,
    /// A clamd without FILDES: `UNKNOWN COMMAND\0` to it, `stream: OK\0` to INSTREAM.
    NoFildes,
    /// FILDES without the descriptor reaching clamd (a proxy in between):
    /// `No file descriptor received. ERROR\0`; `stream: OK\0` to INSTREAM.
    LostFd,
}

/// How many scans of each kind the fake was asked for, over all connections.
#[derive(Debug, Default)]
pub struct Counts {
    pub instream: AtomicUsize,
    pub fildes: AtomicUsize,
}

/// A fake clamd listening in its own temporary directory. Stops on drop.
pub struct FakeClamd {
    _dir: TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
}

impl FakeClamd {
    /// Starts listening; connections are served by one thread each.
    pub fn start(mode: Mode) -> FakeClamd {
        let dir = tempfile::Builder::new()
            .prefix("sievegate-fake-clamd-")
            .tempdir()
            .expect("create tempdir");
        let socket = dir.path().join("clamd.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake clamd socket");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let acceptor = {
            let stop = Arc::clone(&stop);
            let counts = Arc::clone(&counts);
            std::thread::Builder::new()
                .name(format!("fake-clamd-{mode:?}"))
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let counts = Arc::clone(&counts);
                        std::thread::spawn(move || {
                            let _ = serve(mode, conn, &counts);
                        });
                    }
                })
                .expect("spawn fake clamd")
        };
        FakeClamd {
            _dir: dir,
            socket,
            stop,
            acceptor: Some(acceptor),
            counts,
        }
    }

    /// INSTREAM scans asked for so far.
    pub fn instream_scans(&self) -> usize {
        self.counts.instream.load(Ordering::SeqCst)
    }

    /// FILDES scans asked for so far.
    pub fn fildes_scans(&self) -> usize {
        self.counts.fildes.load(Ordering::SeqCst)
    }

    /// The address to give to the scanner.
    pub fn addr(&self) -> ClamdAddr {
        ClamdAddr::Unix(self.socket.clone())
    }
}

impl Drop for FakeClamd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(mode: Mode, mut conn: UnixStream, counts: &Counts) -> io::Result<()> {
    match mode {
        Mode::Close => return Ok(()),
        Mode::Hang => {
            // Drain until the client gives up; never write. (A passed descriptor is closed
            // unread by the kernel when a plain read skips its ancillary data.)
            io::copy(&mut conn, &mut io::sink())?;
            return Ok(());
        }
        _ => {}
    }
    // The others misbehave on scans only: like a real clamd whose temporary directory is
    // full, they still answer the health probe's PING.
    let scan = match read_command(&mut conn)? {
        Command::Ping => return conn.write_all(b"PONG\0"),
        Command::Instream => {
            counts.instream.fetch_add(1, Ordering::SeqCst);
            Scan::Instream
        }
        Command::Fildes(fd) => {
            counts.fildes.fetch_add(1, Ordering::SeqCst);
            match mode {
                Mode::NoFildes => return conn.write_all(b"UNKNOWN COMMAND\0"),
                Mode::LostFd => return conn.write_all(b"No file descriptor received. ERROR\0"),
                _ => {}
            }
            let fd = match fd {
                Some(fd) => fd,
                None => receive_fd(&conn)?,
            };
            if let Err(problem) = check_read_only_at_start(&fd) {
                return conn.write_all(format!("FAKE: {problem} ERROR\0").as_bytes());
            }
            Scan::Fildes(fd)
        }
    };
    if mode == Mode::DieMidStream {
        return match scan {
            Scan::Instream => {
                let mut len = [0u8; 4];
                conn.read_exact(&mut len)?;
                let mut chunk = vec![0u8; u32::from_be_bytes(len) as usize];
                conn.read_exact(&mut chunk)
            }
            Scan::Fildes(mut file) => {
                let mut chunk = vec![0u8; 64 * 1024];
                file.read(&mut chunk).map(drop)
            }
        };
    }
    match scan {
        Scan::Instream => read_instream(&mut conn)?,
        Scan::Fildes(mut file) => {
            io::copy(&mut file, &mut io::sink())?;
        }
    }
    match mode {
        Mode::Garbage => conn.write_all(&garbage(512)),
        Mode::Error => conn.write_all(b"INSTREAM: Can't write to temporary file. ERROR\0"),
        Mode::SizeLimit => conn.write_all(b"INSTREAM size limit exceeded. ERROR\0"),
        Mode::SlowOk => {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            conn.write_all(b"stream: OK\0")
        }
        Mode::StallScan => {
            std::thread::sleep(std::time::Duration::from_secs(4));
            conn.write_all(b"stream: OK\0")
        }
        Mode::NoFildes | Mode::LostFd => conn.write_all(b"stream: OK\0"),
        Mode::Close | Mode::Hang | Mode::DieMidStream => Ok(()),
    }
}

#[derive(Debug)]
enum Command {
    Ping,
    Instream,
    /// With the descriptor when it came along with the command bytes.
    Fildes(Option<File>),
}

/// What is to be scanned once the command is read.
enum Scan {
    Instream,
    Fildes(File),
}

/// Reads `zPING\0`, `zINSTREAM\0` or `zFILDES\0`, one byte per `recvmsg`, so that no byte
/// after the command is consumed and a descriptor sent with any of them is kept.
fn read_command(conn: &mut UnixStream) -> io::Result<Command> {
    let mut command = Vec::new();
    let mut fd = None;
    loop {
        let (byte, received) = recv_byte(conn)?;
        if let Some(received) = received {
            fd = Some(received);
        }
        let Some(byte) = byte else {
            return Err(io::Error::other("EOF inside the command"));
        };
        command.push(byte);
        if byte == 0 || command.len() > 16 {
            break;
        }
    }
    match command.as_slice() {
        b"zPING\0" => Ok(Command::Ping),
        b"zINSTREAM\0" => Ok(Command::Instream),
        b"zFILDES\0" => Ok(Command::Fildes(fd)),
        other => Err(io::Error::other(format!(
            "unknown command {:?}",
            other.escape_ascii().to_string()
        ))),
    }
}

/// Reads the byte that carries the descriptor after `zFILDES\0`.
fn receive_fd(conn: &UnixStream) -> io::Result<File> {
    match recv_byte(conn)? {
        (_, Some(file)) => Ok(file),
        (_, None) => Err(io::Error::other("FILDES without a descriptor")),
    }
}

/// One byte (`None` at EOF) and the descriptor sent with it, if any.
fn recv_byte(conn: &UnixStream) -> io::Result<(Option<u8>, Option<File>)> {
    let mut byte = [0u8; 1];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut byte)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let mut file = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our table for us;
                // nothing else owns it.
                let received = unsafe { File::from_raw_fd(fd) };
                file.get_or_insert(received);
            }
        }
    }
    let n = msg.bytes;
    Ok(((n == 1).then_some(byte[0]), file))
}

/// What sievegate promises about the descriptor: read-only, and at offset 0 (a descriptor of
/// its own, not one whose offset it shares).
fn check_read_only_at_start(file: &File) -> Result<(), String> {
    let flags = nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| format!("F_GETFL: {e}"))?;
    if flags & libc::O_ACCMODE != libc::O_RDONLY {
        return Err(format!("descriptor is not read-only (flags {flags:#o})"));
    }
    let offset = nix::unistd::lseek(file.as_raw_fd(), 0, nix::unistd::Whence::SeekCur)
        .map_err(|e| format!("lseek: {e}"))?;
    if offset != 0 {
        return Err(format!("descriptor is at offset {offset}, not 0"));
    }
    Ok(())
}

/// Reads the length-prefixed chunks of an INSTREAM (after its command) up to the
/// zero-length terminator, as clamd does before answering.
fn read_instream(conn: &mut UnixStream) -> io::Result<()> {
    let mut chunk = Vec::new();
    loop {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(());
        }
        chunk.resize(len, 0);
        conn.read_exact(&mut chunk)?;
    }
}

/// Deterministic junk (xorshift), with NULs and newlines mixed in, so a failure reproduces.
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}
