//! The smallest blocking LMTP client (RFC 2033): what the differential test needs to feed
//! both servers the same transactions.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A final LMTP reply (last line of a possibly multi-line reply).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: String,
    pub text: String,
}

/// One LMTP connection; one recipient per transaction.
pub struct Lmtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Lmtp {
    pub fn connect(addr: SocketAddr) -> Lmtp {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let writer = stream.try_clone().expect("clone stream");
        let mut lmtp = Lmtp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = lmtp.reply();
        assert_eq!(
            greeting.code, "220",
            "greeting from {addr}: {}",
            greeting.text
        );
        let lhlo = lmtp.command("LHLO client.example");
        assert_eq!(lhlo.code, "250", "LHLO to {addr}: {}", lhlo.text);
        lmtp
    }

    /// One transaction; returns the reply to the final dot, or the first non-2xx/3xx reply.
    pub fn deliver(&mut self, mail_from: &str, rcpt: &str, message: &[u8]) -> Reply {
        for command in [
            format!("MAIL FROM:<{mail_from}>"),
            format!("RCPT TO:<{rcpt}>"),
        ] {
            let reply = self.command(&command);
            if reply.code != "250" {
                self.command("RSET");
                return reply;
            }
        }
        let reply = self.command("DATA");
        if reply.code != "354" {
            return reply;
        }
        let mut data = Vec::with_capacity(message.len() + 16);
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.writer.write_all(&data).expect("write message");
        self.reply()
    }

    pub fn quit(mut self) {
        self.command("QUIT");
    }

    fn command(&mut self, line: &str) -> Reply {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line}: {e}"));
        self.reply()
    }

    fn reply(&mut self) -> Reply {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "LMTP server closed the connection");
            let line = line.trim_end().to_owned();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Reply {
                    code: line.get(..3).unwrap_or("").to_owned(),
                    text: line,
                };
            }
        }
    }
}
