//! SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, decoded and checked once for
//! both backends.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// RFC 4616 §2: authcid and authzid are at most 255 octets.
pub const MAX_NAME: usize = 255;
/// RFC 4616 allows 255 octets of password; passphrases and generated secrets are often
/// longer, and Dovecot takes more too.
pub const MAX_PASSWORD: usize = 1024;

/// A user name and password from one login. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity as sent (trimmed of nothing; the backends fold case).
    pub user: String,
    /// The password bytes (UTF-8 by RFC 4616, but compared as bytes).
    pub password: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"..")
            .finish()
    }
}

/// Why a PLAIN response is refused before any backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    /// Not valid base64.
    #[error("the response is not base64")]
    Base64,
    /// Not three NUL-separated parts, or an empty user name or password.
    #[error("not a SASL PLAIN message (authzid NUL authcid NUL password)")]
    Shape,
    /// A name is not UTF-8, holds a control character or is too long.
    #[error("the user name is not acceptable")]
    Name,
    /// The password is longer than [`MAX_PASSWORD`].
    #[error("the password is too long")]
    PasswordTooLong,
    /// An authorization identity other than the user itself: we do not act on behalf of
    /// other users (no master users).
    #[error("acting as another user (authzid) is not allowed")]
    Authzid,
}

/// Decodes a base64 PLAIN response (ManageSieve's `AUTHENTICATE "PLAIN" "<base64>"`).
pub fn decode_base64(response: &str) -> Result<Credentials, PlainError> {
    let bytes = BASE64
        .decode(response.trim())
        .map_err(|_| PlainError::Base64)?;
    decode(&bytes)
}

/// Decodes a PLAIN message. The authzid must be empty or the authcid itself (compared
/// case-insensitively, as the backends fold case).
pub fn decode(message: &[u8]) -> Result<Credentials, PlainError> {
    let mut parts = message.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Shape);
    };
    if authcid.is_empty() || password.is_empty() || password.contains(&0) {
        return Err(PlainError::Shape);
    }
    if password.len() > MAX_PASSWORD {
        return Err(PlainError::PasswordTooLong);
    }
    let user = name(authcid)?;
    if !authzid.is_empty() && !name(authzid)?.eq_ignore_ascii_case(&user) {
        return Err(PlainError::Authzid);
    }
    Ok(Credentials {
        user,
        password: password.to_vec(),
    })
}

/// A name that may go into a log line and a lookup: UTF-8, no control character, bounded.
pub(crate) fn name(bytes: &[u8]) -> Result<String, PlainError> {
    let s = std::str::from_utf8(bytes).map_err(|_| PlainError::Name)?;
    if s.is_empty() || s.len() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(PlainError::Name);
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_table() {
        let ok = |user: &str, pw: &str| {
            Ok(Credentials {
                user: user.into(),
                password: pw.as_bytes().to_vec(),
            })
        };
        let cases: &[(&[u8], Result<Credentials, PlainError>)] = &[
            (b"\0alice\0pw", ok("alice", "pw")),
            (b"alice\0alice\0pw", ok("alice", "pw")),
            (
                b"ALICE@x.test\0alice@X.test\0p\xc3\xa9 w",
                ok("alice@X.test", "p\u{e9} w"),
            ),
            (b"bob\0alice\0pw", Err(PlainError::Authzid)),
            (b"\0alice\0", Err(PlainError::Shape)),
            (b"\0\0pw", Err(PlainError::Shape)),
            (b"alice\0pw", Err(PlainError::Shape)),
            (b"", Err(PlainError::Shape)),
            (b"\0alice\0pw\0more", Err(PlainError::Shape)),
            (b"\0al\nice\0pw", Err(PlainError::Name)),
            (b"\0al\xffice\0pw", Err(PlainError::Name)),
            (b"b\x01\0alice\0pw", Err(PlainError::Name)),
        ];
        for (message, want) in cases {
            assert_eq!(
                &decode(message),
                want,
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        let long = [&b"\0alice\0"[..], &[b'x'; MAX_PASSWORD + 1]].concat();
        assert_eq!(decode(&long), Err(PlainError::PasswordTooLong));
        let name = [&b"\0"[..], &[b'a'; MAX_NAME + 1], b"\0pw"].concat();
        assert_eq!(decode(&name), Err(PlainError::Name));
        assert_eq!(decode_base64("AGFsaWNlAHB3"), ok("alice", "pw"));
        assert_eq!(decode_base64("not base64!"), Err(PlainError::Base64));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = decode(b"\0alice\0hunter2").expect("decodes");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
