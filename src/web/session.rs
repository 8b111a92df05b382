//! Who is logged in to the admin view or a sample mailbox: a cookie holding the name and an
//! expiry, signed with HMAC-SHA-256 under a key derived from `[web] secret_file`. Nothing is
//! kept on the server, so any host with the same secret accepts the cookie (several hosts
//! behind one name, a restart), and a forged or edited cookie is refused.
//!
//! Every POST also carries a form nonce (CSRF): with a session, the HMAC of the session
//! cookie (it changes with each login and cannot be computed without the key); on the login
//! forms, the HMAC of a random nonce kept in a short-lived cookie. The cookies are
//! `SameSite=Strict` besides, so a cross-site request carries neither.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a login lasts: a working day, after which the browser asks again.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// How long a login form may be filled in (its nonce cookie's lifetime).
pub const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);

/// Which part of the site a session opens. A sample mailbox's cookie never opens the admin
/// view: the role is part of what is signed, and each has its own cookie name and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[web] admin_users`: every entry, release and delete.
    Admin,
    /// A sample mailbox (`[quarantine] sample_recipients`): its own entries, raw download.
    Sample,
}

impl Role {
    /// The word signed into the cookie.
    fn word(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sample => "sample",
        }
    }

    /// The session cookie's name.
    pub fn cookie_name(self) -> &'static str {
        match self {
            Role::Admin => "sg_admin",
            Role::Sample => "sg_sample",
        }
    }

    /// The login form's nonce cookie name.
    pub fn login_cookie_name(self) -> &'static str {
        match self {
            Role::Admin => "sg_admin_login",
            Role::Sample => "sg_sample_login",
        }
    }

    /// The path the cookies are sent to (and only there).
    pub fn path(self) -> &'static str {
        match self {
            Role::Admin => "/admin",
            Role::Sample => "/sample",
        }
    }
}

/// A valid session: who, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Admin or sample mailbox.
    pub role: Role,
    /// The admin's name, or the sample mailbox's address.
    pub name: String,
    /// When the cookie stops being accepted.
    pub expires: SystemTime,
}

/// Signs and checks the cookies and form nonces of one site.
#[derive(Clone)]
pub struct Sessions {
    key: [u8; 32],
    secure: bool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions signed with a key derived from `secret` (the `[web]` secret) for this use
    /// only, so a cookie can never pass for a release link's token or the other way round.
    /// `secure`: the site is served over https (`base_url`), so cookies get `Secure`.
    pub fn new(secret: &[u8], secure: bool) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&mac(secret, &[b"sievegate web session v1"]));
        Sessions { key, secure }
    }

    /// The cookie value for `name` in `role`, valid until `now + SESSION_TTL`.
    pub fn issue(&self, role: Role, name: &str, now: SystemTime) -> String {
        let expires = secs(now).saturating_add(SESSION_TTL.as_secs());
        let name64 = URL_SAFE_NO_PAD.encode(name.as_bytes());
        let tag = self.session_tag(role, &name64, expires);
        format!("{name64}.{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session in cookie `value` when its signature is right for `role` and it has not
    /// expired at `now`; `None` for anything else (tampered, expired, another role).
    pub fn check(&self, role: Role, value: &str, now: SystemTime) -> Option<Session> {
        let mut parts = value.split('.');
        let (name64, expires, tag64) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expires_secs: u64 = expires.parse().ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag64).ok()?;
        let mut m = self.hmac();
        feed(
            &mut m,
            &[
                b"session",
                role.word().as_bytes(),
                name64.as_bytes(),
                expires.as_bytes(),
            ],
        );
        // Constant time: `verify_slice` compares with `subtle`.
        m.verify_slice(&tag).ok()?;
        if expires_secs <= secs(now) {
            return None;
        }
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name64).ok()?).ok()?;
        Some(Session {
            role,
            name,
            expires: UNIX_EPOCH + Duration::from_secs(expires_secs),
        })
    }

    /// The form nonce of the session whose cookie is `cookie`: put into every form, checked
    /// by [`Sessions::csrf_ok`] on every POST.
    pub fn csrf(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(mac(&self.key, &[b"csrf", cookie.as_bytes()]))
    }

    /// True when `given` is the form nonce of the session `cookie` (constant time).
    pub fn csrf_ok(&self, cookie: &str, given: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        let mut m = self.hmac();
        feed(&mut m, &[b"csrf", cookie.as_bytes()]);
        m.verify_slice(&tag).is_ok()
    }

    /// A fresh random nonce for a login form's cookie, or `None` when the system has no
    /// randomness to give (the form is then not shown).
    pub fn login_nonce() -> Option<String> {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes).ok()?;
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The `Set-Cookie` value for a session.
    pub fn session_cookie(&self, role: Role, value: &str) -> String {
        self.cookie(
            role.cookie_name(),
            value,
            role.path(),
            SESSION_TTL.as_secs(),
        )
    }

    /// The `Set-Cookie` value that ends the session (logout).
    pub fn clear_session_cookie(&self, role: Role) -> String {
        self.cookie(role.cookie_name(), "", role.path(), 0)
    }

    /// The `Set-Cookie` value for a login form's nonce.
    pub fn login_cookie(&self, role: Role, nonce: &str) -> String {
        self.cookie(
            role.login_cookie_name(),
            nonce,
            role.path(),
            LOGIN_FORM_TTL.as_secs(),
        )
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> String {
        // HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it.
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
    }

    fn session_tag(&self, role: Role, name64: &str, expires: u64) -> Vec<u8> {
        mac(
            &self.key,
            &[
                b"session",
                role.word().as_bytes(),
                name64.as_bytes(),
                expires.to_string().as_bytes(),
            ],
        )
    }

    fn hmac(&self) -> HmacSha256 {
        // A 32-byte key: HMAC takes keys of any length.
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }
}

/// The value of cookie `name` in a `Cookie` request header, if present.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// HMAC-SHA-256 over the parts, each preceded by its length (no two lists of parts sign
/// the same bytes).
fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    feed(&mut m, parts);
    m.finalize().into_bytes().to_vec()
}

fn feed(m: &mut HmacSha256, parts: &[&[u8]]) {
    for part in parts {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_cookie_opens_its_role_until_it_expires() {
        let s = Sessions::new(b"secret", true);
        let now = at(1_800_000_000);
        let v = s.issue(Role::Admin, "alice", now);
        let got = s.check(Role::Admin, &v, now).expect("valid");
        assert_eq!(got.name, "alice");
        assert!(s.check(Role::Sample, &v, now).is_none(), "another role");
        assert!(
            s.check(Role::Admin, &v, now + SESSION_TTL).is_none(),
            "expired"
        );
        let other = Sessions::new(b"other secret", true);
        assert!(other.check(Role::Admin, &v, now).is_none(), "another key");
    }

    #[test]
    fn an_edited_cookie_is_refused() {
        let s = Sessions::new(b"secret", false);
        let now = at(1_800_000_000);
        let v = s.issue(Role::Admin, "alice", now);
        let parts: Vec<&str> = v.split('.').collect();
        let bob = URL_SAFE_NO_PAD.encode("bob");
        for forged in [
            format!("{bob}.{}.{}", parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], 9_999_999_999u64, parts[2]),
            format!("{}.{}.{}A", parts[0], parts[1], parts[2]),
            format!("{}.{}", parts[0], parts[1]),
            format!("{v}.x"),
            String::new(),
        ] {
            assert!(s.check(Role::Admin, &forged, now).is_none(), "{forged}");
        }
    }

    #[test]
    fn the_form_nonce_belongs_to_its_session() {
        let s = Sessions::new(b"secret", false);
        let now = at(1_800_000_000);
        let a = s.issue(Role::Admin, "alice", now);
        let b = s.issue(Role::Admin, "bob", now);
        let nonce = s.csrf(&a);
        assert!(s.csrf_ok(&a, &nonce));
        assert!(!s.csrf_ok(&b, &nonce));
        assert!(!s.csrf_ok(&a, ""));
        assert!(!s.csrf_ok(&a, "not base64!"));
    }

    #[test]
    fn cookies_are_strict_and_secure_for_https() {
        let s = Sessions::new(b"k", true);
        let c = s.session_cookie(Role::Admin, "v");
        assert_eq!(
            c,
            "sg_admin=v; Path=/admin; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = Sessions::new(b"k", false).clear_session_cookie(Role::Sample);
        assert_eq!(
            plain,
            "sg_sample=; Path=/sample; Max-Age=0; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            cookie_value("a=1; sg_admin=x.y.z", "sg_admin"),
            Some("x.y.z")
        );
        assert_eq!(cookie_value("sg_adminx=1", "sg_admin"), None);
    }
}
