//! One SMTP transaction with the relay, by `mail-send`: connect, greeting, EHLO, MAIL FROM,
//! RCPT TO, DATA, QUIT. Plain SMTP only: the relay is expected on loopback or a trusted
//! network (see `[notify] relay`); mail-send's TLS needs a crypto provider we do not build.
//!
//! mail-send times out each command and the DATA phase itself; the connect, the greeting
//! (which it reads without a deadline) and the whole transaction get our own deadlines on
//! top, so no peer can hold the sender longer than [`Timeouts::transaction`].

use std::net::SocketAddr;
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::SmtpClient;
use tokio::net::TcpStream;

use crate::config::Relay;

/// Deadlines for one relay transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Name resolution plus the TCP connect.
    pub connect: Duration,
    /// One command and its reply (also the greeting, and the DATA body with its reply).
    pub command: Duration,
    /// The whole transaction, from connect to the reply after DATA.
    pub transaction: Duration,
}

impl Default for Timeouts {
    /// Postfix's smtp client uses 30 s to connect and 300 s for most replies; the relay is
    /// local, so shorter command deadlines do not lose mail, they only retry sooner.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(120),
            transaction: Duration::from_secs(600),
        }
    }
}

/// Why a transaction did not end with a 2xx after DATA.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The relay could not be reached or the connection broke: try again later.
    #[error("relay {relay}: {what}")]
    Unreachable {
        /// The relay as configured.
        relay: String,
        /// What failed (resolve, connect, read, timeout).
        what: String,
    },
    /// The relay answered with a non-2xx reply.
    #[error("relay {relay} answered {stage} with {code} {text}")]
    Refused {
        /// The relay as configured.
        relay: String,
        /// Which step: `greeting`, `EHLO`, `HELO`, `MAIL FROM`, `RCPT TO`, `DATA`.
        stage: &'static str,
        /// The reply code.
        code: u16,
        /// The reply text (single line, control characters removed).
        text: String,
    },
    /// An address or the HELO name holds CR, LF or NUL: it would end an SMTP command and
    /// start one of its own (RFC 5321 §2.3.8). Refused before anything is written; never
    /// worth a retry.
    #[error("relay {relay}: {what} holds CR, LF or NUL: not sent")]
    Unsafe {
        /// The relay as configured.
        relay: String,
        /// Which value: `HELO`, `MAIL FROM`, `RCPT TO`.
        what: &'static str,
    },
}

impl RelayError {
    /// True for a 5xx reply: the relay will never take this message, so retrying is pointless
    /// (RFC 5321 §4.2.1). Everything else (4xx, network trouble) is worth another try.
    pub fn is_permanent(&self) -> bool {
        match self {
            RelayError::Refused { code, .. } => (500..600).contains(code),
            RelayError::Unsafe { .. } => true,
            RelayError::Unreachable { .. } => false,
        }
    }

    /// True when the relay itself failed rather than this message (connection trouble, or a
    /// refusal before any recipient was named): the other queued mail for it would fare the
    /// same now.
    pub fn is_relay_down(&self) -> bool {
        match self {
            RelayError::Unreachable { .. } => true,
            RelayError::Refused { stage, code, .. } => {
                matches!(*stage, "greeting" | "EHLO" | "HELO") && !(500..600).contains(code)
            }
            RelayError::Unsafe { .. } => false,
        }
    }
}

/// Sends `message` from `from` (`""`: the null sender `<>`) to `to` through `relay`,
/// announcing ourselves as `helo`. `Ok` carries the relay's reply after DATA (its queue id,
/// for the log).
pub async fn send(
    relay: &Relay,
    helo: &str,
    from: &str,
    to: &[String],
    message: &[u8],
    timeouts: Timeouts,
) -> Result<String, RelayError> {
    let name = relay.to_string();
    // mail-send writes `MAIL FROM:<{from}>` and `RCPT TO:<{to}>` as they are: a line end
    // inside would be a command of its own, so nothing is written at all.
    let unsafe_value = |v: &str| v.contains(['\r', '\n', '\0']);
    let bad = if unsafe_value(helo) {
        Some("HELO")
    } else if unsafe_value(from) {
        Some("MAIL FROM")
    } else if to.iter().any(|t| unsafe_value(t)) {
        Some("RCPT TO")
    } else {
        None
    };
    if let Some(what) = bad {
        return Err(RelayError::Unsafe { relay: name, what });
    }
    match tokio::time::timeout(
        timeouts.transaction,
        transaction(relay, &name, helo, from, to, message, timeouts),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(RelayError::Unreachable {
            relay: name,
            what: format!("transaction not done within {:?}", timeouts.transaction),
        }),
    }
}

async fn transaction(
    relay: &Relay,
    name: &str,
    helo: &str,
    from: &str,
    to: &[String],
    message: &[u8],
    timeouts: Timeouts,
) -> Result<String, RelayError> {
    let unreachable = |what: String| RelayError::Unreachable {
        relay: name.to_string(),
        what,
    };
    let stream = connect(relay, timeouts.connect)
        .await
        .map_err(unreachable)?;
    let mut client = SmtpClient {
        stream,
        timeout: timeouts.command,
    };
    let greeting = tokio::time::timeout(timeouts.command, client.read())
        .await
        .map_err(|_| unreachable("no greeting in time".to_string()))?;
    let at = |stage: &'static str| {
        let name = name.to_string();
        move |e: mail_send::Error| classify(&name, stage, e)
    };
    let greeting = greeting.map_err(at("greeting"))?;
    if !(200..300).contains(&greeting.code) {
        return Err(refused(name, "greeting", &greeting));
    }
    match client.ehlo(helo).await {
        Ok(_) => {}
        // An SMTP server that does not know EHLO (RFC 5321 §4.1.4: fall back to HELO).
        Err(mail_send::Error::UnexpectedReply(reply)) if (500..600).contains(&reply.code) => {
            let reply = client
                .cmd(format!("HELO {helo}\r\n"))
                .await
                .map_err(at("HELO"))?;
            if !(200..300).contains(&reply.code) {
                return Err(refused(name, "HELO", &reply));
            }
        }
        Err(e) => return Err(at("EHLO")(e)),
    }
    let none = Parameters::default();
    client
        .mail_from(from, &none)
        .await
        .map_err(at("MAIL FROM"))?;
    for rcpt in to {
        client.rcpt_to(rcpt, &none).await.map_err(at("RCPT TO"))?;
    }
    // mail-send ends DATA with "\r\n.\r\n" whatever the message ends with, so a message
    // that ends in CRLF (all of ours) would gain an empty last line: hand it over without
    // its final CRLF, and the relay receives exactly `message`.
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    let reply = client.data(body).await.map_err(at("DATA"))?;
    // The message is accepted; a failing QUIT changes nothing about that.
    let _ = client.quit().await;
    Ok(format!("{} {}", reply.code, one_line(&reply.message)))
}

/// Resolves `relay` and connects to the first address that answers, within `deadline`.
async fn connect(relay: &Relay, deadline: Duration) -> Result<TcpStream, String> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((relay.host.as_str(), relay.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", relay.host))?
            .collect();
        let mut last = format!("{} resolves to no address", relay.host);
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("connect to {addr}: {e}"),
            }
        }
        Err(last)
    };
    tokio::time::timeout(deadline, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("connect not done within {deadline:?}")))
}

/// Turns a mail-send error at `stage` into ours.
fn classify(relay: &str, stage: &'static str, error: mail_send::Error) -> RelayError {
    match error {
        mail_send::Error::UnexpectedReply(reply) => refused(relay, stage, &reply),
        mail_send::Error::Timeout => RelayError::Unreachable {
            relay: relay.to_string(),
            what: format!("no reply to {stage} in time"),
        },
        mail_send::Error::Io(e) => RelayError::Unreachable {
            relay: relay.to_string(),
            what: format!("{stage}: {e}"),
        },
        // The connection closed (mail-send reports EOF this way) or sent garbage.
        mail_send::Error::UnparseableReply => RelayError::Unreachable {
            relay: relay.to_string(),
            what: format!("{stage}: connection closed or unreadable reply"),
        },
        other => RelayError::Unreachable {
            relay: relay.to_string(),
            what: format!("{stage}: {other:?}"),
        },
    }
}

fn refused(relay: &str, stage: &'static str, reply: &smtp_proto::Response<String>) -> RelayError {
    RelayError::Refused {
        relay: relay.to_string(),
        stage,
        code: reply.code,
        text: one_line(&reply.message),
    }
}

/// A reply text for one log line.
fn one_line(text: &str) -> String {
    crate::mail::text::sanitize(
        &text.replace(['\r', '\n'], " "),
        300,
        crate::mail::text::Charset::Ascii,
    )
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CR, LF or NUL in any address or the HELO name: refused before a connection is even
    /// made (the relay here is a port nobody listens on, which would give `Unreachable`).
    #[tokio::test]
    async fn unsafe_values_are_refused_before_writing() {
        let relay = Relay {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let to = |s: &str| vec![s.to_string()];
        let cases: [(&str, &str, Vec<String>, &str); 5] = [
            ("h", "a@x\r\nRCPT TO:<i@x>", to("b@x"), "MAIL FROM"),
            (
                "h",
                "a@x",
                to("\"a\r\nRCPT TO:<injected@remote.test>\r\n\"@remote.test"),
                "RCPT TO",
            ),
            ("h", "a@x", to("b@x\n"), "RCPT TO"),
            ("h", "a\0@x", to("b@x"), "MAIL FROM"),
            ("h\r\nRSET", "a@x", to("b@x"), "HELO"),
        ];
        for (helo, from, rcpts, want) in cases {
            let got = send(&relay, helo, from, &rcpts, b"x\r\n", Timeouts::default()).await;
            match got {
                Err(RelayError::Unsafe { what, .. }) => assert_eq!(what, want, "{from:?}"),
                other => panic!("{from:?}: {other:?}"),
            }
        }
    }

    fn refusal(stage: &'static str, code: u16) -> RelayError {
        RelayError::Refused {
            relay: "r".into(),
            stage,
            code,
            text: String::new(),
        }
    }

    #[test]
    fn classification_table() {
        let unreachable = RelayError::Unreachable {
            relay: "r".into(),
            what: "refused".into(),
        };
        // (error, permanent, relay down)
        let cases = [
            (unreachable, false, true),
            (refusal("greeting", 421), false, true),
            (refusal("greeting", 554), true, false),
            (refusal("EHLO", 421), false, true),
            (refusal("MAIL FROM", 451), false, false),
            (refusal("RCPT TO", 550), true, false),
            (refusal("RCPT TO", 450), false, false),
            (refusal("DATA", 552), true, false),
            (refusal("DATA", 452), false, false),
            (
                RelayError::Unsafe {
                    relay: "r".into(),
                    what: "RCPT TO",
                },
                true,
                false,
            ),
        ];
        for (error, permanent, down) in cases {
            assert_eq!(error.is_permanent(), permanent, "{error}");
            assert_eq!(error.is_relay_down(), down, "{error}");
        }
    }
}
