//! Recipient addresses: the RCPT argument → a [`Recipient`] whose parts are safe to use in
//! paths, and the Dovecot-style `%u`/`%n`/`%d` templates that turn it into paths.

use std::fmt;
use std::path::PathBuf;

/// A local recipient, resolved at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address exactly as the client sent it in RCPT TO (for logs and `Delivered-To`).
    pub original: String,
    /// Local part, lowercased, `+detail` removed: the user (Dovecot's `%Ln`).
    pub local: String,
    /// The `+detail` part without the delimiter, as sent (Sieve `subaddress` may use it).
    pub detail: Option<String>,
    /// Domain, lowercased.
    pub domain: String,
    /// The user's home from `[mailbox] users_file` (`%h`), set at RCPT; `None` without a
    /// users file or when the entry has no home.
    pub home: Option<PathBuf>,
}

/// Why a RCPT address is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// No `@`, an empty part, or a null (`<>`) recipient.
    Syntax,
    /// The domain is not in `[mailbox] domains`.
    UnknownDomain,
    /// The local part could name a path outside the store (`/`, `..`, NUL, control bytes,
    /// a leading dot or `%`).
    UnsafeLocalPart,
}

impl Recipient {
    /// Resolves `address` (without angle brackets) against the local `domains` (lowercase).
    /// `delimiter` splits `user+detail`; an empty delimiter disables subaddressing.
    pub fn resolve(
        address: &str,
        domains: &[String],
        delimiter: &str,
    ) -> Result<Self, AddressError> {
        let (local, domain) = address.rsplit_once('@').ok_or(AddressError::Syntax)?;
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::Syntax);
        }
        let domain = domain.to_lowercase();
        if !is_safe_component(&domain) {
            return Err(AddressError::UnsafeLocalPart);
        }
        if !domains.contains(&domain) {
            return Err(AddressError::UnknownDomain);
        }
        // A quoted local part ("a b"@d) is legal SMTP, but nothing a mailbox path should hold.
        if !is_safe_component(local) || local.contains('"') || local.contains('\\') {
            return Err(AddressError::UnsafeLocalPart);
        }
        let (user, detail) = match (!delimiter.is_empty())
            .then(|| local.split_once(delimiter))
            .flatten()
        {
            Some((user, detail)) if !user.is_empty() => (user, Some(detail.to_string())),
            _ => (local, None),
        };
        let user = user.to_lowercase();
        if !is_safe_component(&user) {
            return Err(AddressError::UnsafeLocalPart);
        }
        Ok(Recipient {
            original: address.to_string(),
            local: user,
            detail,
            domain,
            home: None,
        })
    }

    /// `user@domain`, lowercased, without detail: the mailbox this recipient delivers to.
    pub fn user(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    /// Expands a Dovecot-style template: `%u` user@domain, `%n` local part, `%d` domain,
    /// `%h` the home from the users file, `%%` a percent sign. Unknown `%x` sequences, and
    /// `%h` for a recipient without a home, are kept as written: callers check
    /// [`template_uses`]`(t, 'h')` against [`Recipient::home`] first (the RCPT hook does).
    pub fn expand(&self, template: &str) -> PathBuf {
        let mut out = String::with_capacity(template.len() + 32);
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('u') => out.push_str(&self.user()),
                Some('n') => out.push_str(&self.local),
                Some('d') => out.push_str(&self.domain),
                Some('h') => match &self.home {
                    Some(home) => out.push_str(&home.to_string_lossy()),
                    None => out.push_str("%h"),
                },
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        PathBuf::from(out)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// True when `template` uses the variable `%<var>` (a `%%` is a literal percent sign).
pub fn template_uses(template: &str, var: char) -> bool {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(v) if v == var => return true,
                _ => {}
            }
        }
    }
    false
}

/// True when `part` can be one path component: no separators, no `..`, no leading dot, no
/// NUL or control bytes, and no `%` (it would be re-expanded by a template).
fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && !part.starts_with('.')
        && !part.contains("..")
        && !part.chars().any(|c| c == '/' || c == '%' || c.is_control())
}

// The address checks of what we read and send, in one place. Each keeps the shape its
// callers rely on (the tables below hold the differences): `is_addr_spec` for every address
// the outbound builder writes (UTF-8 allowed, RFC 5321 limits); `is_plain_address` for the
// configured notify addresses and a redirect's envelope (no quoting needed, lenient on dots
// as Postfix is); `is_valid_email` for RDAP answers and the abuse configuration (ASCII only,
// a domain of at least two labels: untrusted input).

/// Longest addr-spec (RFC 5321 §4.5.3.1.3: a path of 256 octets with its brackets).
const MAX_ADDRESS: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_PART: usize = 64;

/// True when `address` is a plain RFC 5321 `Mailbox` without a quoted local part: a
/// dot-atom local part, `@`, a domain of dot-separated labels (or an address literal in
/// `[...]`). UTF-8 is allowed outside ASCII (RFC 6531). Control characters, white space,
/// quotes, brackets and the other specials are refused, so the address can go into a header
/// field and an SMTP command as it is.
pub fn is_addr_spec(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    let dot_atom =
        |s: &str| !s.is_empty() && s.split('.').all(|a| !a.is_empty() && a.chars().all(atext));
    let domain_ok =
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            !literal.is_empty()
                && literal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
        } else {
            !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| {
                            c.is_ascii_alphanumeric()
                                || c == '-'
                                || (!c.is_ascii() && c.is_alphanumeric())
                        })
                })
        };
    address.len() <= MAX_ADDRESS && local.len() <= MAX_LOCAL_PART && dot_atom(local) && domain_ok
}

/// True for a plain `local@domain` envelope address that we can write into `RCPT TO:<>`
/// and a header without quoting: no white space, controls, brackets, quotes or commas.
pub fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| (c.is_ascii_graphic() && !"<>()[]\\\",;:@".contains(c)) || !c.is_ascii())
            && !s.chars().any(char::is_control)
    };
    plain(local) && plain(domain) && !domain.starts_with('.') && !domain.contains("..")
}

/// A plausible mailbox `local@domain` (ASCII, RFC 5321 dot-atom local part, a domain of at
/// least two labels of letters, digits and hyphens). Used on addresses from RDAP, which are
/// untrusted, and on the configuration.
pub fn is_valid_email(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|w| !w.is_empty() && w.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["example.test".to_string()]
    }

    /// (local, detail, domain) of a resolved recipient.
    type Parts<'a> = (&'a str, Option<&'a str>, &'a str);

    #[test]
    fn resolve_table() {
        use AddressError::*;
        let cases: &[(&str, Result<Parts, AddressError>)] = &[
            ("alice@example.test", Ok(("alice", None, "example.test"))),
            ("Alice@EXAMPLE.test", Ok(("alice", None, "example.test"))),
            (
                "alice+lists@example.test",
                Ok(("alice", Some("lists"), "example.test")),
            ),
            (
                "Alice+Lists+x@example.test",
                Ok(("alice", Some("Lists+x"), "example.test")),
            ),
            ("+only@example.test", Ok(("+only", None, "example.test"))),
            (
                "first.last@example.test",
                Ok(("first.last", None, "example.test")),
            ),
            ("bob@other.test", Err(UnknownDomain)),
            ("bob", Err(Syntax)),
            ("@example.test", Err(Syntax)),
            ("bob@", Err(Syntax)),
            ("../etc@example.test", Err(UnsafeLocalPart)),
            ("..@example.test", Err(UnsafeLocalPart)),
            ("a/b@example.test", Err(UnsafeLocalPart)),
            (".hidden@example.test", Err(UnsafeLocalPart)),
            ("a\0b@example.test", Err(UnsafeLocalPart)),
            ("a\tb@example.test", Err(UnsafeLocalPart)),
            ("a\x7fb@example.test", Err(UnsafeLocalPart)),
            ("a%db@example.test", Err(UnsafeLocalPart)),
            ("\"a b\"@example.test", Err(UnsafeLocalPart)),
            ("x@../example.test", Err(UnsafeLocalPart)),
            ("x@exa/mple.test", Err(UnsafeLocalPart)),
            ("a+../x@example.test", Err(UnsafeLocalPart)),
        ];
        for (input, want) in cases {
            let got = Recipient::resolve(input, &domains(), "+")
                .map(|r| (r.local.clone(), r.detail.clone(), r.domain.clone()));
            let want =
                want.map(|(l, d, dom)| (l.to_string(), d.map(str::to_string), dom.to_string()));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn no_delimiter_keeps_plus() {
        let r = Recipient::resolve("a+b@example.test", &domains(), "").expect("valid");
        assert_eq!(r.local, "a+b");
        assert_eq!(r.detail, None);
    }

    #[test]
    fn expand_table() {
        let r = Recipient::resolve("Bob+x@Example.TEST", &domains(), "+").expect("valid");
        for (template, want) in [
            (
                "/var/vmail/%d/%n/Maildir",
                "/var/vmail/example.test/bob/Maildir",
            ),
            ("%u", "bob@example.test"),
            ("100%%/%q", "100%/%q"),
            ("end%", "end%"),
            ("%h/Maildir", "%h/Maildir"),
        ] {
            assert_eq!(r.expand(template), PathBuf::from(want), "{template}");
        }
        let with_home = Recipient {
            home: Some(PathBuf::from("/home/bob")),
            ..r
        };
        assert_eq!(
            with_home.expand("%h/Maildir"),
            PathBuf::from("/home/bob/Maildir")
        );
    }

    #[test]
    fn template_uses_table() {
        for (template, var, want) in [
            ("%h/Maildir", 'h', true),
            ("/var/%d/%n", 'h', false),
            ("/var/%d/%n", 'n', true),
            ("100%%h", 'h', false),
            ("100%%%h", 'h', true),
            ("end%", 'h', false),
        ] {
            assert_eq!(template_uses(template, var), want, "{template} {var}");
        }
    }

    #[test]
    fn email_shapes() {
        for good in [
            "abuse@example.net",
            "ABUSE@EXAMPLE.NET",
            "a.b+c@x-y.example",
            "abuse@sub.example.co.uk",
        ] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "",
            "abuse",
            "@example.net",
            "abuse@",
            "abuse@localhost",
            "a b@example.net",
            "abuse@exa mple.net",
            "abuse@-x.example",
            "a..b@example.net",
            "abuse@example.net\r\n",
            "<abuse@example.net>",
            "abuse@example..net",
            "ab\"use@example.net",
            "abüse@example.net",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn address_table() {
        for good in [
            "postmaster@example.test",
            "a.b+c@sub.example.test",
            "ü@exämple.test",
        ] {
            assert!(is_plain_address(good), "{good}");
        }
        for bad in [
            "",
            "postmaster",
            "@example.test",
            "a@",
            "a b@example.test",
            "<a@example.test>",
            "a@example.test\r\nBcc: x@y",
            "a,b@example.test",
            "\"a\"@example.test",
            "a@.example.test",
            "a@example..test",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn addr_spec_table() {
        let cases: &[(&str, bool)] = &[
            ("alice@example.test", true),
            ("a.b+tag@sub.example.test", true),
            ("o'hara@example.test", true),
            ("ü@例え.test", true),
            ("x@[192.0.2.1]", true),
            ("", false),
            ("alice", false),
            ("@example.test", false),
            ("alice@", false),
            ("a..b@example.test", false),
            (".a@example.test", false),
            ("a@-x.test", false),
            ("a@x..test", false),
            ("\"a b\"@example.test", false),
            (
                "\"a\r\nRCPT TO:<injected@remote.test>\r\n\"@remote.test",
                false,
            ),
            ("a\r\n@example.test", false),
            ("a@example.test\r\nRCPT TO:<x@y>", false),
            ("a\0@example.test", false),
            ("a b@example.test", false),
            ("<a@example.test>", false),
            ("a@example.test>", false),
            ("a@b@example.test", false),
            ("a(c)@example.test", false),
            ("a@exa mple.test", false),
            ("a@[1.2.3.4\r\n]", false),
        ];
        for (address, ok) in cases {
            assert_eq!(is_addr_spec(address), *ok, "{address:?}");
        }
        assert!(!is_addr_spec(&format!("{}@x.test", "a".repeat(65))));
        assert!(!is_addr_spec(&format!("a@{}.test", "b".repeat(250))));
    }
}
