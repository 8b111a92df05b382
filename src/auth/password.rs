//! Dovecot password schemes: a passwd-file password field (`{SCHEME}hash`) checked against the
//! password a client sent, so `[mailbox] users_file` can serve logins without Dovecot.
//!
//! The field is what `doveadm pw -s SCHEME` prints. Supported: `{SHA512-CRYPT}`,
//! `{SHA256-CRYPT}`, `{BLF-CRYPT}` (bcrypt), `{ARGON2ID}`, `{ARGON2I}`, `{PBKDF2}`,
//! `{SSHA512}`, `{SSHA256}`, `{SSHA}`, `{SHA512}`, `{SHA256}`, `{SHA}`/`{SHA1}`,
//! `{PLAIN}`/`{CLEAR}`/`{CLEARTEXT}` and `{CRYPT}`, whose hash says its algorithm (`$6$`,
//! `$5$`, `$2y$`, `$argon2id$`...). The digest schemes accept Dovecot's `.HEX` and `.B64`
//! encoding suffixes. A field without a prefix is read with Dovecot's `default_pass_scheme`
//! (a parameter, `CRYPT` by default, as in Dovecot). Anything else (`{MD5-CRYPT}`,
//! `{DES-CRYPT}`, `{SCRAM-SHA-256}`, yescrypt `$y$`...) is [`SchemeError::Unsupported`],
//! never a silent "wrong password": the admin learns which entry cannot log in and why.
//!
//! Comparisons of digests are constant-time (`subtle`); the slow schemes compare inside their
//! crates. Nothing here logs, and no error carries the password or the stored hash.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The rounds of a `{PBKDF2}` hash we accept at most: Dovecot writes 5000; a field that asks
/// for billions would make every login attempt a denial of service.
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// A password scheme we can verify, by its Dovecot name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `{SHA512-CRYPT}`: glibc's `$6$`.
    Sha512Crypt,
    /// `{SHA256-CRYPT}`: glibc's `$5$`.
    Sha256Crypt,
    /// `{BLF-CRYPT}`: bcrypt, `$2y$`/`$2b$`/`$2a$`.
    BlfCrypt,
    /// `{ARGON2ID}`: a PHC string `$argon2id$...`.
    Argon2id,
    /// `{ARGON2I}`: a PHC string `$argon2i$...`.
    Argon2i,
    /// `{PBKDF2}`: Dovecot's `$1$salt$rounds$hex`, PBKDF2-HMAC-SHA1.
    Pbkdf2,
    /// `{SSHA512}`: SHA-512 of password and salt, then the salt, base64.
    Ssha512,
    /// `{SSHA256}`: SHA-256 of password and salt, then the salt.
    Ssha256,
    /// `{SSHA}`: SHA-1 of password and salt, then the salt.
    Ssha,
    /// `{SHA512}`: unsalted SHA-512.
    Sha512,
    /// `{SHA256}`: unsalted SHA-256.
    Sha256,
    /// `{SHA}` or `{SHA1}`: unsalted SHA-1.
    Sha1,
    /// `{PLAIN}`, `{CLEAR}`, `{CLEARTEXT}`: the password itself.
    Plain,
    /// `{CRYPT}`: whatever `crypt(3)` hash it is, told by its `$id$`.
    Crypt,
}

/// How the bytes of a digest scheme are written: Dovecot's `.HEX` / `.B64` suffix, or (with
/// none) base64, or hex when the length says so, as Dovecot guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Guess,
    Hex,
    Base64,
}

/// Why a password field cannot be checked (as opposed to "the password is wrong").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The scheme is one Dovecot knows but we do not verify (or one nobody knows).
    #[error("password scheme {0} not supported")]
    Unsupported(String),
    /// The field does not have the shape its scheme needs. Names the scheme, never the hash.
    #[error("malformed {scheme} password hash: {reason}")]
    Malformed {
        /// The scheme the field claims.
        scheme: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Scheme {
    /// Dovecot's name of the scheme.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Pbkdf2 => "PBKDF2",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha => "SSHA",
            Scheme::Sha512 => "SHA512",
            Scheme::Sha256 => "SHA256",
            Scheme::Sha1 => "SHA",
            Scheme::Plain => "PLAIN",
            Scheme::Crypt => "CRYPT",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = SchemeError;

    /// A Dovecot scheme name, case-insensitive (`default_pass_scheme`, or the text between
    /// `{` and `}` without an encoding suffix).
    fn from_str(name: &str) -> Result<Scheme, SchemeError> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "SHA512-CRYPT" => Scheme::Sha512Crypt,
            "SHA256-CRYPT" => Scheme::Sha256Crypt,
            "BLF-CRYPT" => Scheme::BlfCrypt,
            "ARGON2ID" => Scheme::Argon2id,
            "ARGON2I" => Scheme::Argon2i,
            "PBKDF2" => Scheme::Pbkdf2,
            "SSHA512" => Scheme::Ssha512,
            "SSHA256" => Scheme::Ssha256,
            "SSHA" => Scheme::Ssha,
            "SHA512" => Scheme::Sha512,
            "SHA256" => Scheme::Sha256,
            "SHA" | "SHA1" => Scheme::Sha1,
            "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain,
            "CRYPT" => Scheme::Crypt,
            _ => return Err(SchemeError::Unsupported(sanitised(name))),
        })
    }
}

/// Checks `password` against a passwd-file password field, with Dovecot's default
/// `default_pass_scheme = CRYPT` for a field without `{SCHEME}`. `Ok(false)`: wrong
/// password; `Err`: the field cannot be checked at all.
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, SchemeError> {
    verify_with_default(stored, password, Scheme::Crypt)
}

/// [`verify`] with another scheme for fields without a `{SCHEME}` prefix, like Dovecot's
/// `default_pass_scheme`.
pub fn verify_with_default(
    stored: &str,
    password: &[u8],
    default: Scheme,
) -> Result<bool, SchemeError> {
    let (scheme, encoding, hash) = split_scheme(stored, default)?;
    match scheme {
        Scheme::Plain => Ok(ct_eq(hash.as_bytes(), password)),
        Scheme::Sha512 => digest_eq::<Sha512>(scheme, encoding, hash, password, false),
        Scheme::Sha256 => digest_eq::<Sha256>(scheme, encoding, hash, password, false),
        Scheme::Sha1 => digest_eq::<Sha1>(scheme, encoding, hash, password, false),
        Scheme::Ssha512 => digest_eq::<Sha512>(scheme, encoding, hash, password, true),
        Scheme::Ssha256 => digest_eq::<Sha256>(scheme, encoding, hash, password, true),
        Scheme::Ssha => digest_eq::<Sha1>(scheme, encoding, hash, password, true),
        Scheme::Pbkdf2 => pbkdf2(hash, password),
        Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt => {
            crypt(scheme, hash, password, Some(scheme))
        }
        Scheme::Argon2id | Scheme::Argon2i => crypt(scheme, hash, password, Some(scheme)),
        Scheme::Crypt => crypt(scheme, hash, password, None),
    }
}

/// `{NAME.ENC}rest` → (scheme, encoding, rest); no prefix → the default scheme.
fn split_scheme(stored: &str, default: Scheme) -> Result<(Scheme, Encoding, &str), SchemeError> {
    let Some(rest) = stored.strip_prefix('{') else {
        return Ok((default, Encoding::Guess, stored));
    };
    let Some((name, hash)) = rest.split_once('}') else {
        // Dovecot too reads a `{` without `}` as a hash of the default scheme.
        return Ok((default, Encoding::Guess, stored));
    };
    let (name, encoding) = match name.rsplit_once('.') {
        Some((n, e)) if e.eq_ignore_ascii_case("HEX") => (n, Encoding::Hex),
        Some((n, e)) if e.eq_ignore_ascii_case("B64") || e.eq_ignore_ascii_case("BASE64") => {
            (n, Encoding::Base64)
        }
        _ => (name, Encoding::Guess),
    };
    let scheme: Scheme = name.parse()?;
    if encoding != Encoding::Guess && !scheme.is_digest() {
        return Err(SchemeError::Unsupported(sanitised(
            rest.split('}').next().unwrap_or(""),
        )));
    }
    Ok((scheme, encoding, hash))
}

impl Scheme {
    /// The schemes whose field is plain bytes in base64 or hex.
    fn is_digest(self) -> bool {
        matches!(
            self,
            Scheme::Sha512
                | Scheme::Sha256
                | Scheme::Sha1
                | Scheme::Ssha512
                | Scheme::Ssha256
                | Scheme::Ssha
        )
    }
}

/// `H(password [|| salt])` compared with the decoded field; salted fields are
/// `digest || salt` (RFC 2307 style, as Dovecot writes them).
fn digest_eq<D: Digest>(
    scheme: Scheme,
    encoding: Encoding,
    field: &str,
    password: &[u8],
    salted: bool,
) -> Result<bool, SchemeError> {
    let size = <D as Digest>::output_size();
    let field = field.trim();
    let use_hex = match encoding {
        Encoding::Hex => true,
        Encoding::Base64 => false,
        // Dovecot: a field exactly as long as the hex of the digest is hex.
        Encoding::Guess => !salted && field.len() == size * 2,
    };
    let raw = if use_hex {
        decode_hex(field)
    } else {
        BASE64.decode(field).ok()
    };
    let malformed = |reason| SchemeError::Malformed {
        scheme: scheme.name(),
        reason,
    };
    let raw = raw.ok_or_else(|| malformed("not valid base64 or hex"))?;
    let (expected, salt) = if salted {
        if raw.len() <= size {
            return Err(malformed("too short for a digest and a salt"));
        }
        raw.split_at(size)
    } else {
        if raw.len() != size {
            return Err(malformed("wrong digest length"));
        }
        (raw.as_slice(), &[][..])
    };
    let mut h = D::new();
    h.update(password);
    h.update(salt);
    Ok(ct_eq(&h.finalize(), expected))
}

/// Dovecot's `{PBKDF2}`: `$1$salt$rounds$hex(PBKDF2-HMAC-SHA1(password, salt, rounds, 20))`;
/// the salt is used as the text it is.
fn pbkdf2(field: &str, password: &[u8]) -> Result<bool, SchemeError> {
    let malformed = |reason| SchemeError::Malformed {
        scheme: "PBKDF2",
        reason,
    };
    let mut parts = field.trim().split('$');
    let (Some(""), Some("1"), Some(salt), Some(rounds), Some(hex), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed("not $1$salt$rounds$hex"));
    };
    let rounds: u32 = rounds
        .parse()
        .map_err(|_| malformed("rounds is not a number"))?;
    if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS {
        return Err(malformed("rounds out of range"));
    }
    let expected = decode_hex(hex).ok_or_else(|| malformed("hash is not hex"))?;
    if expected.is_empty() || expected.len() > 64 {
        return Err(malformed("wrong hash length"));
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), rounds, &mut out);
    Ok(ct_eq(&out, &expected))
}

/// The `crypt(3)`-style schemes. `want`: the scheme the prefix named (its hash must be of
/// that kind); `None` for `{CRYPT}`, which takes the algorithm from the hash's `$id$`.
fn crypt(
    scheme: Scheme,
    hash: &str,
    password: &[u8],
    want: Option<Scheme>,
) -> Result<bool, SchemeError> {
    let hash = hash.trim();
    let found = if hash.starts_with("$6$") {
        Scheme::Sha512Crypt
    } else if hash.starts_with("$5$") {
        Scheme::Sha256Crypt
    } else if ["$2y$", "$2b$", "$2a$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        Scheme::BlfCrypt
    } else if hash.starts_with("$argon2id$") {
        Scheme::Argon2id
    } else if hash.starts_with("$argon2i$") {
        Scheme::Argon2i
    } else if want.is_none() {
        // DES (no `$`), MD5 `$1$`, yescrypt `$y$`...: crypt(3) knows them, we do not.
        let id = match hash.strip_prefix('$').and_then(|r| r.split_once('$')) {
            Some((id, _)) => format!("CRYPT (${}$)", sanitised(id)),
            None => "CRYPT (DES)".to_string(),
        };
        return Err(SchemeError::Unsupported(id));
    } else {
        return Err(SchemeError::Malformed {
            scheme: scheme.name(),
            reason: "the hash does not start with the scheme's $id$",
        });
    };
    if want.is_some_and(|w| w != found) {
        return Err(SchemeError::Malformed {
            scheme: scheme.name(),
            reason: "the hash is of another algorithm",
        });
    }
    let malformed = |reason| SchemeError::Malformed {
        scheme: found.name(),
        reason,
    };
    match found {
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            use sha_crypt::{PasswordVerifier, ShaCrypt};
            match ShaCrypt::default().verify_password(password, hash) {
                Ok(()) => Ok(true),
                Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(_) => Err(malformed("not a valid crypt(3) hash")),
            }
        }
        Scheme::BlfCrypt => {
            bcrypt::verify(password, hash).map_err(|_| malformed("not a valid bcrypt hash"))
        }
        _ => {
            use argon2::{Argon2, PasswordHash, PasswordVerifier};
            let parsed =
                PasswordHash::new(hash).map_err(|_| malformed("not a valid Argon2 PHC string"))?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err(malformed("no salt or no hash in the PHC string"));
            }
            match Argon2::default().verify_password(password, &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(_) => Err(malformed("not a valid Argon2 PHC string")),
            }
        }
    }
}

/// Constant-time equality (the length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// A scheme name from the file, safe to put in a log line: printable ASCII, bounded.
fn sanitised(name: &str) -> String {
    name.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests;
