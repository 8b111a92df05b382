//! XFORWARD (Postfix XFORWARD_README): the MTA tells us who its client was. Only peers in
//! `xforward_from` may send it; its attributes go to logs, the `Received` header and Sieve's
//! `remote-ip`/`remote-host`.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{reply, reply::Reply, Session};
use crate::mail::envelope::{is_placeholder, parse_ip};

/// The attributes of the original client, as forwarded by the MTA. `None` when not sent or
/// sent as `[UNAVAILABLE]`/`[TEMPUNAVAIL]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xforward {
    pub name: Option<String>,
    /// Parsed once here ([`crate::mail::envelope::parse_ip`]).
    pub addr: Option<std::net::IpAddr>,
    pub port: Option<String>,
    pub proto: Option<String>,
    pub helo: Option<String>,
    /// The MTA's queue id.
    pub ident: Option<String>,
    /// `LOCAL` or `REMOTE`.
    pub source: Option<String>,
}

/// True when `line` is an XFORWARD command (smtp-proto does not parse it).
pub(super) fn is_xforward(line: &[u8]) -> bool {
    line.len() >= 8
        && line[..8].eq_ignore_ascii_case(b"XFORWARD")
        && matches!(line.get(8), None | Some(b' ' | b'\r' | b'\n' | b'\t'))
}

/// Why an XFORWARD line is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum XforwardError {
    Empty,
    Syntax,
    UnknownAttribute,
    /// `ADDR` is neither an IP address nor `[UNAVAILABLE]`/`[TEMPUNAVAIL]`.
    BadAddress,
}

impl Xforward {
    /// Applies `XFORWARD attr=value ...` on top of the attributes already received
    /// (Postfix may split them over several commands). All or nothing.
    pub(super) fn apply(&mut self, line: &[u8]) -> Result<(), XforwardError> {
        let text = String::from_utf8_lossy(line);
        let args = text.get(8..).unwrap_or("").trim();
        if args.is_empty() {
            return Err(XforwardError::Empty);
        }
        let mut next = self.clone();
        for pair in args.split_ascii_whitespace() {
            let (name, value) = pair.split_once('=').ok_or(XforwardError::Syntax)?;
            let value = xtext_decode(value).ok_or(XforwardError::Syntax)?;
            let name = name.to_ascii_uppercase();
            if name == "ADDR" {
                next.addr = match value.as_str() {
                    v if is_placeholder(v) => None,
                    v => Some(parse_ip(v).ok_or(XforwardError::BadAddress)?),
                };
                continue;
            }
            let value = match value.as_str() {
                v if is_placeholder(v) => None,
                "" => None,
                _ => Some(reply::sanitize(&value, 255)),
            };
            let slot = match name.as_str() {
                "NAME" => &mut next.name,
                "PORT" => &mut next.port,
                "PROTO" => &mut next.proto,
                "HELO" => &mut next.helo,
                "IDENT" => &mut next.ident,
                "SOURCE" => &mut next.source,
                _ => return Err(XforwardError::UnknownAttribute),
            };
            *slot = value;
        }
        *self = next;
        Ok(())
    }
}

/// RFC 3461 §4 xtext: `+XX` is a hex-encoded byte.
fn xtext_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) fn xforward(&mut self, line: &[u8]) -> Reply {
        if !self.xforward_allowed {
            tracing::warn!("XFORWARD refused: peer not in xforward_from");
            return reply::xforward_denied();
        }
        if self.txn.is_some() {
            return reply::xforward_in_transaction();
        }
        match self.xforward.apply(line) {
            Ok(()) => reply::ok(),
            Err(XforwardError::Empty) => reply::syntax("XFORWARD needs attributes"),
            Err(XforwardError::Syntax) => reply::syntax("XFORWARD attribute=value"),
            Err(XforwardError::UnknownAttribute) => reply::syntax("unknown XFORWARD attribute"),
            Err(XforwardError::BadAddress) => {
                tracing::warn!("XFORWARD refused: ADDR is not an IP address");
                reply::xforward_bad_addr()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        for (line, want) in [
            (&b"XFORWARD NAME=x\r\n"[..], true),
            (b"xforward addr=1.2.3.4\r\n", true),
            (b"XFORWARD\r\n", true),
            (b"XFORWARDX\r\n", false),
            (b"MAIL FROM:<>\r\n", false),
        ] {
            assert_eq!(
                is_xforward(line),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn apply_table() {
        let mut x = Xforward::default();
        x.apply(b"XFORWARD NAME=mail.example.org ADDR=192.0.2.1 PORT=4711 PROTO=ESMTP\r\n")
            .expect("ok");
        x.apply(b"XFORWARD HELO=[UNAVAILABLE] IDENT=4Xyz12 SOURCE=REMOTE\r\n")
            .expect("ok");
        assert_eq!(x.name.as_deref(), Some("mail.example.org"));
        assert_eq!(x.addr, "192.0.2.1".parse().ok());
        assert_eq!(x.helo, None);
        assert_eq!(x.ident.as_deref(), Some("4Xyz12"));

        let mut y = Xforward::default();
        y.apply(b"XFORWARD ADDR=IPV6:2001:db8::1 HELO=a+20b+0D+0AX\r\n")
            .expect("ok");
        assert_eq!(y.addr, "2001:db8::1".parse().ok());
        assert_eq!(
            y.helo.as_deref(),
            Some("a bX"),
            "CR/LF from xtext must not survive"
        );

        for bad in [
            &b"XFORWARD\r\n"[..],
            b"XFORWARD NAME\r\n",
            b"XFORWARD FOO=1\r\n",
            b"XFORWARD NAME=a+Z\r\n",
        ] {
            let mut z = Xforward::default();
            assert!(z.apply(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert_eq!(z, Xforward::default(), "all or nothing");
        }
    }

    #[test]
    fn addr_must_be_an_ip_address() {
        for (value, want) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("IPV6:2001:DB8::1", Some("2001:db8::1")),
            ("ipv6:::1", Some("::1")),
            ("IPV6:::ffff:192.0.2.1", Some("::ffff:192.0.2.1")),
            ("[UNAVAILABLE]", None),
            ("[TEMPUNAVAIL]", None),
        ] {
            let mut x = Xforward::default();
            x.apply(format!("XFORWARD NAME=n ADDR={value}\r\n").as_bytes())
                .unwrap_or_else(|e| panic!("{value}: {e:?}"));
            assert_eq!(x.addr.map(|ip| ip.to_string()).as_deref(), want, "{value}");
        }
        for value in [
            "",
            "mail.example.org",
            "192.0.2.1]",
            "[192.0.2.1]",
            "192.0.2.256",
            "IPV6:192.0.2.1",
            "IPV6:",
            "1.2.3.4+0D+0AX-Evil:+20yes",
            "fe80::1%eth0",
        ] {
            let mut x = Xforward::default();
            let line = format!("XFORWARD NAME=n ADDR={value}\r\n");
            assert_eq!(
                x.apply(line.as_bytes()),
                Err(XforwardError::BadAddress),
                "{value:?}"
            );
            assert_eq!(x, Xforward::default(), "{value:?}: all or nothing");
        }
    }
}
