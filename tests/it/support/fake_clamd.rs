//! A misbehaving clamd on a unix socket, for the failure paths a real clamd will not show on
//! demand. Runs on plain threads so it works under any tokio runtime flavour.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

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
    /// Answers PING; on INSTREAM reads the first chunk, then closes: clamd dying
    /// mid-stream.
    DieMidStream,
}

/// A fake clamd listening in its own temporary directory. Stops on drop.
pub struct FakeClamd {
    _dir: TempDir,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
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
        let acceptor = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("fake-clamd-{mode:?}"))
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        std::thread::spawn(move || {
                            let _ = serve(mode, conn);
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
        }
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

fn serve(mode: Mode, mut conn: UnixStream) -> io::Result<()> {
    match mode {
        Mode::Close => Ok(()),
        Mode::Hang => {
            // Drain until the client gives up; never write.
            io::copy(&mut conn, &mut io::sink())?;
            Ok(())
        }
        // The others misbehave on scans only: like a real clamd whose temporary directory
        // is full, they still answer the health probe's PING.
        _ if read_command(&mut conn)? == Command::Ping => conn.write_all(b"PONG\0"),
        Mode::Garbage => {
            read_instream(&mut conn)?;
            conn.write_all(&garbage(512))
        }
        Mode::Error => {
            read_instream(&mut conn)?;
            conn.write_all(b"INSTREAM: Can't write to temporary file. ERROR\0")
        }
        Mode::SizeLimit => {
            read_instream(&mut conn)?;
            conn.write_all(b"INSTREAM size limit exceeded. ERROR\0")
        }
        Mode::DieMidStream => {
            let mut len = [0u8; 4];
            conn.read_exact(&mut len)?;
            let mut chunk = vec![0u8; u32::from_be_bytes(len) as usize];
            conn.read_exact(&mut chunk)?;
            Ok(())
        }
        Mode::SlowOk => {
            read_instream(&mut conn)?;
            std::thread::sleep(std::time::Duration::from_millis(1500));
            conn.write_all(b"stream: OK\0")
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Ping,
    Instream,
}

/// Reads `zPING\0` or `zINSTREAM\0`.
fn read_command(conn: &mut UnixStream) -> io::Result<Command> {
    let mut command = [0u8; 10];
    conn.read_exact(&mut command[..6])?;
    if &command[..6] == b"zPING\0" {
        return Ok(Command::Ping);
    }
    conn.read_exact(&mut command[6..])?;
    if &command != b"zINSTREAM\0" {
        return Err(io::Error::other("neither PING nor INSTREAM"));
    }
    Ok(Command::Instream)
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
