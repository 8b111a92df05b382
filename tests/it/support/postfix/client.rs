//! A minimal SMTP client (RFC 5321) for submitting test mail to a private Postfix from a
//! chosen loopback address.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A minimal SMTP client (RFC 5321): EHLO, then transactions with dot-stuffed DATA.
pub struct SmtpClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SmtpClient {
    /// Connects from `source` (e.g. `127.0.0.2`: any 127/8 address is local on Linux) and
    /// says EHLO.
    pub fn connect(source: &str, server: SocketAddr) -> SmtpClient {
        let socket = socket2_connect(source, server);
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = socket.try_clone().expect("clone");
        let mut c = SmtpClient {
            reader: BufReader::new(socket),
            writer,
        };
        c.expect("greeting", "220");
        c.command("EHLO client.remote.example", "250");
        c
    }

    /// One transaction; returns the queue id from `250 2.0.0 Ok: queued as QID`.
    pub fn send(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        self.command(&format!("MAIL FROM:<{from}>"), "250");
        for r in rcpts {
            self.command(&format!("RCPT TO:<{r}>"), "250");
        }
        self.command("DATA", "354");
        let mut data = Vec::with_capacity(message.len() + 64);
        let mut at_line_start = true;
        for &b in message {
            if at_line_start && b == b'.' {
                data.push(b'.');
            }
            data.push(b);
            at_line_start = b == b'\n';
        }
        if !message.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.writer.write_all(&data).expect("write DATA");
        let reply = self.expect("end of DATA", "250");
        reply
            .split("queued as ")
            .nth(1)
            .map(|q| q.trim().to_string())
            .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
    }

    /// `RCPT TO:<rcpt>` inside a transaction already opened with `MAIL FROM:<from>`; the
    /// reply, whatever its code.
    pub fn try_rcpt(&mut self, from: &str, rcpt: &str) -> String {
        self.command(&format!("MAIL FROM:<{from}>"), "250");
        self.writer
            .write_all(format!("RCPT TO:<{rcpt}>\r\nRSET\r\n").as_bytes())
            .expect("write RCPT");
        let reply = self.expect("RCPT", "");
        self.expect("RSET", "250");
        reply
    }

    pub fn quit(mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
    }

    fn command(&mut self, line: &str, code: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write command");
        self.expect(line, code)
    }

    /// Reads one (multi-line) reply; fails unless it starts with `code`.
    fn expect(&mut self, what: &str, code: &str) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "smtpd closed the connection after {what}: {reply}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(
            reply.starts_with(code),
            "smtpd answered {what} with {reply:?}, expected {code}"
        );
        reply
    }
}

/// A TCP connection to `server` from the local address `source` (std cannot bind before
/// connecting, so this is socket(2), bind(2), connect(2) by hand).
fn socket2_connect(source: &str, server: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let source: std::net::Ipv4Addr = source.parse().expect("IPv4 source address");
    let SocketAddr::V4(server) = server else {
        panic!("IPv4 only");
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain syscalls on a socket this function creates; the sockaddr_in values live
    // across each call and `len` is their size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(source, 0);
        let rc = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
        assert!(
            rc == 0,
            "bind {source}: {}",
            std::io::Error::last_os_error()
        );
        let remote = sockaddr(*server.ip(), server.port());
        let rc = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert!(
            rc == 0,
            "connect {server}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}
