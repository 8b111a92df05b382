//! Every response the client sees (RFC 5804 §1.2, §1.3): `OK`, `NO` or `BYE`, an optional
//! response code, an optional human-readable string; and the strings of data lines. Text
//! that came from elsewhere (a compiler message quoting the script) is cleaned here: no
//! control character reaches the wire, and anything long goes as a literal.

use std::fmt::Write as _;

/// RFC 5804 §1.3 response codes we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The script is over a size limit (its own or the user's total).
    QuotaMaxSize,
    /// The user has as many scripts as allowed.
    QuotaMaxScripts,
    /// No script by that name.
    Nonexistent,
    /// A script by that name already exists (RENAMESCRIPT).
    AlreadyExists,
    /// The active script cannot be deleted.
    Active,
    /// A failure that may pass: retry later.
    TryLater,
    /// Authentication needs TLS first (RFC 5804 §2.1 `ENCRYPT-NEEDED`).
    EncryptNeeded,
    /// NOOP's tag echoed.
    Tag,
}

impl Code {
    fn text(self) -> &'static str {
        match self {
            Code::QuotaMaxSize => "QUOTA/MAXSIZE",
            Code::QuotaMaxScripts => "QUOTA/MAXSCRIPTS",
            Code::Nonexistent => "NONEXISTENT",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::Active => "ACTIVE",
            Code::TryLater => "TRYLATER",
            Code::EncryptNeeded => "ENCRYPT-NEEDED",
            Code::Tag => "TAG",
        }
    }
}

/// The status word of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// One final response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub code: Option<Code>,
    /// NOOP's tag (with [`Code::Tag`]).
    pub tag: Option<Vec<u8>>,
    pub text: Option<String>,
}

impl Response {
    /// `OK "text"`.
    pub fn ok(text: &str) -> Response {
        Response {
            status: Status::Ok,
            code: None,
            tag: None,
            text: Some(text.to_string()),
        }
    }

    /// `NO "text"`.
    pub fn no(text: &str) -> Response {
        Response {
            status: Status::No,
            code: None,
            tag: None,
            text: Some(text.to_string()),
        }
    }

    /// `NO (code) "text"`.
    pub fn no_code(code: Code, text: &str) -> Response {
        Response {
            code: Some(code),
            ..Response::no(text)
        }
    }

    /// `BYE "text"`: the server closes the connection after it.
    pub fn bye(text: &str) -> Response {
        Response {
            status: Status::Bye,
            ..Response::no(text)
        }
    }

    /// The wire form, CRLF included.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.status {
            Status::Ok => b"OK",
            Status::No => b"NO",
            Status::Bye => b"BYE",
        });
        if let Some(code) = self.code {
            out.extend_from_slice(b" (");
            out.extend_from_slice(code.text().as_bytes());
            if let Some(tag) = &self.tag {
                out.push(b' ');
                string(tag, out);
            }
            out.push(b')');
        }
        if let Some(text) = &self.text {
            out.push(b' ');
            string(clean(text).as_bytes(), out);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A string as RFC 5804 sends it: quoted when short and plain, else a literal `{n}`.
pub fn string(value: &[u8], out: &mut Vec<u8>) {
    let plain = value.len() <= 1024 && value.iter().all(|b| *b != 0 && *b != b'\r' && *b != b'\n');
    if plain {
        out.push(b'"');
        for b in value {
            if *b == b'"' || *b == b'\\' {
                out.push(b'\\');
            }
            out.push(*b);
        }
        out.push(b'"');
    } else {
        let mut header = String::new();
        let _ = write!(header, "{{{}}}\r\n", value.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(value);
    }
}

/// Human-readable text with control characters replaced and the length bounded: it may
/// quote a user's script.
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect();
    if text.chars().count() > 400 {
        out.push_str("...");
    }
    out
}

/// The capability lines (RFC 5804 §1.7), without the final `OK`.
pub struct Capabilities<'a> {
    /// The Sieve extensions this build runs, space-separated.
    pub sieve: &'a str,
    /// SASL mechanisms offered now (empty before TLS on a network listener).
    pub sasl: &'a str,
    /// STARTTLS is possible now.
    pub starttls: bool,
    /// The user, once authenticated (`OWNER`).
    pub owner: Option<&'a str>,
}

impl Capabilities<'_> {
    /// The lines, each a `"NAME" "value"` pair.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = |name: &str, value: Option<&str>| {
            string(name.as_bytes(), out);
            if let Some(value) = value {
                out.push(b' ');
                string(value.as_bytes(), out);
            }
            out.extend_from_slice(b"\r\n");
        };
        line(
            "IMPLEMENTATION",
            Some(concat!("sievegate ", env!("CARGO_PKG_VERSION"))),
        );
        line("SIEVE", Some(self.sieve));
        line("SASL", Some(self.sasl));
        if self.starttls {
            line("STARTTLS", None);
        }
        if let Some(owner) = self.owner {
            line("OWNER", Some(owner));
        }
        line("UNAUTHENTICATE", None);
        line("VERSION", Some("1.0"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Response) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn responses() {
        assert_eq!(wire(&Response::ok("done")), "OK \"done\"\r\n");
        assert_eq!(
            wire(&Response::no_code(Code::QuotaMaxSize, "too big")),
            "NO (QUOTA/MAXSIZE) \"too big\"\r\n"
        );
        assert_eq!(
            wire(&Response::no("line 1: a \"b\"\r\nc")),
            "NO \"line 1: a \\\"b\\\"  c\"\r\n"
        );
        let mut out = Vec::new();
        string(b"a\r\nb", &mut out);
        assert_eq!(out, b"{4}\r\na\r\nb");
    }
}
