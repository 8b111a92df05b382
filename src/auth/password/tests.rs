use super::*;

/// The password every hash below was made from, non-ASCII on purpose (UTF-8 bytes).
const PASSWORD: &str = "Tr0ub4dor&3 é";

/// Generated with `doveadm pw -s SCHEME -p 'Tr0ub4dor&3 é'` (Dovecot 2.3), one per scheme
/// and encoding we accept.
const DOVEADM: &[(&str, &str)] = &[
    ("SHA512-CRYPT", "{SHA512-CRYPT}$6$HmKLmv07M8WZDNPX$moxjE8DY/LN30hE3wpyVgbbMlnRaWe03GYKoi4ufFDCqsvgF47dBWfX0NdfbuhwoOBEMlTA0AzGDOPORpr/Fj0"),
    ("SHA512-CRYPT -r 10000", "{SHA512-CRYPT}$6$rounds=10000$ekVhAh52AkgOBPl/$ceod3UBDp6jFmdNZcUxE6.KB/TJkjioDbugSSyAmbIGy1NHuQTeLqEsbBPJJ0NABW3q5.fcxQ./c0FOemLLr11"),
    ("SHA256-CRYPT", "{SHA256-CRYPT}$5$nlaSlrKV1CGQn2SJ$NNFekZ06xDcznlXONiG4/0dNEzv1ubnaNFV.RW5ZEe6"),
    ("BLF-CRYPT", "{BLF-CRYPT}$2y$05$6DQBw4AVKs0lDy8XBh.Myeu5rPwMuw3pYPyvHZNoYz.SwbtsZ3YBa"),
    ("BLF-CRYPT -r 6", "{BLF-CRYPT}$2y$06$1g0.rs1NKYUfVYzd1TcxuO62oFHZ0WD8c1knZdeH1OpKA72RZoq9y"),
    ("ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$w8tKHjvUJQQZFSiPVhYdLA$1IToHb4CW3/R2gC7wL+Kt5cHkv3B3rFNUmwKgKNoexM"),
    ("ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$XFvVNcGKCDzKc/lUfUeUdA$g46Eg8+ne1sn3QIAdCK5qZIf3XSKtV/2YTsWkCPdBkU"),
    ("PBKDF2", "{PBKDF2}$1$KHK4oS8q4J/KUsZv$5000$d2301615c38aeeff8e236c93d3b56442d348751e"),
    ("SSHA512", "{SSHA512}3uYrSe2HhQPdvPj7qSVgP1gnzKTacmY9vCS4GWlTeKAxZTp80YcHKzVzK4BwiGLAmcl7dnETd4WNbUM4tKGeVyv18+k="),
    ("SSHA256", "{SSHA256}00TEUUK3nWIQRCRWQeJKjRD515ijW0+tTOzTNqYmIno3xHCF"),
    ("SSHA", "{SSHA}qymjlxOXaTxYRE1k8jfwsxXDswRB5lm1"),
    ("SHA512", "{SHA512}Z4G6I+vHt+ujstLdiQG1yKyR92GS8jFy7+MQ50l+Tdk+nutVA3bbk9ubU/2UZPItZ0p5FUbfypQuiv0SJ/rSQA=="),
    ("SHA256", "{SHA256}fXd9afKA4Z7jtnDYzaiLrUR9BwCN/4q0jKhcWFuT//o="),
    ("SHA", "{SHA}hPJ0xh4mMAJASpvxRhW1rdbg4Xo="),
    ("SHA1", "{SHA1}hPJ0xh4mMAJASpvxRhW1rdbg4Xo="),
    ("PLAIN", "{PLAIN}Tr0ub4dor&3 é"),
    ("CLEAR", "{CLEAR}Tr0ub4dor&3 é"),
    ("CLEARTEXT", "{CLEARTEXT}Tr0ub4dor&3 é"),
    ("CRYPT", "{CRYPT}$2y$05$7J7WroCSU6KAAdTD/EbWGOIdZdlH5wVAPrlY/7A5ntaly41hEmE/6"),
    ("SHA256.HEX", "{SHA256.HEX}7d777d69f280e19ee3b670d8cda88bad447d07008dff8ab48ca85c585b93fffa"),
    ("SSHA.HEX", "{SSHA.HEX}43283a928970948011fd54f419138b74af355909269c877c"),
    ("SHA512.B64", "{SHA512.B64}Z4G6I+vHt+ujstLdiQG1yKyR92GS8jFy7+MQ50l+Tdk+nutVA3bbk9ubU/2UZPItZ0p5FUbfypQuiv0SJ/rSQA=="),
    // The same hashes under {CRYPT} and with no prefix (default_pass_scheme = CRYPT).
    ("CRYPT $6$", "{CRYPT}$6$HmKLmv07M8WZDNPX$moxjE8DY/LN30hE3wpyVgbbMlnRaWe03GYKoi4ufFDCqsvgF47dBWfX0NdfbuhwoOBEMlTA0AzGDOPORpr/Fj0"),
    ("CRYPT $5$", "{crypt}$5$nlaSlrKV1CGQn2SJ$NNFekZ06xDcznlXONiG4/0dNEzv1ubnaNFV.RW5ZEe6"),
    ("CRYPT $argon2id$", "{CRYPT}$argon2id$v=19$m=65536,t=3,p=1$w8tKHjvUJQQZFSiPVhYdLA$1IToHb4CW3/R2gC7wL+Kt5cHkv3B3rFNUmwKgKNoexM"),
    ("no prefix $6$", "$6$HmKLmv07M8WZDNPX$moxjE8DY/LN30hE3wpyVgbbMlnRaWe03GYKoi4ufFDCqsvgF47dBWfX0NdfbuhwoOBEMlTA0AzGDOPORpr/Fj0"),
    ("no prefix $2y$", "$2y$05$6DQBw4AVKs0lDy8XBh.Myeu5rPwMuw3pYPyvHZNoYz.SwbtsZ3YBa"),
];

#[test]
fn every_doveadm_hash_takes_its_password_and_refuses_others() {
    for (what, stored) in DOVEADM {
        assert_eq!(
            verify(stored, PASSWORD.as_bytes()),
            Ok(true),
            "{what}: right"
        );
        for wrong in ["Tr0ub4dor&3 e", "", "Tr0ub4dor&3 é ", "tr0ub4dor&3 é"] {
            assert_eq!(
                verify(stored, wrong.as_bytes()),
                Ok(false),
                "{what}: {wrong:?}"
            );
        }
    }
}

#[test]
fn the_default_scheme_applies_only_without_a_prefix() {
    assert_eq!(
        verify_with_default("Tr0ub4dor&3 é", PASSWORD.as_bytes(), Scheme::Plain),
        Ok(true)
    );
    assert_eq!(
        verify_with_default(
            "hPJ0xh4mMAJASpvxRhW1rdbg4Xo=",
            PASSWORD.as_bytes(),
            Scheme::Sha1
        ),
        Ok(true)
    );
    // A prefix wins over the default.
    assert_eq!(
        verify_with_default(
            "{SHA}hPJ0xh4mMAJASpvxRhW1rdbg4Xo=",
            PASSWORD.as_bytes(),
            Scheme::Plain
        ),
        Ok(true)
    );
    // Under CRYPT, a plain text field is not a hash of a known kind.
    assert!(matches!(
        verify("Tr0ub4dor&3 é", PASSWORD.as_bytes()),
        Err(SchemeError::Unsupported(_))
    ));
    assert_eq!("sha512-crypt".parse(), Ok(Scheme::Sha512Crypt));
    assert_eq!("CLEARTEXT".parse(), Ok(Scheme::Plain));
}

#[test]
fn schemes_we_do_not_verify_are_named() {
    for (stored, name) in [
        // doveadm pw -s MD5-CRYPT / DES-CRYPT / SMD5 / SCRAM-SHA-256
        ("{MD5-CRYPT}$1$uHPvsBNI$iN7CB9CvqA8EFTVLnb/MI/", "MD5-CRYPT"),
        ("{DES-CRYPT}gdB04YFQbM4N2", "DES-CRYPT"),
        ("{SMD5}MPNg9xOUcGBi/iDwlDrZFKqU8hM=", "SMD5"),
        ("{SCRAM-SHA-256}4096,abc,def,ghi", "SCRAM-SHA-256"),
        ("{CRYPT}$1$uHPvsBNI$iN7CB9CvqA8EFTVLnb/MI/", "CRYPT ($1$)"),
        ("{CRYPT}$y$j9T$abc$def", "CRYPT ($y$)"),
        ("{CRYPT}gdB04YFQbM4N2", "CRYPT (DES)"),
        ("gdB04YFQbM4N2", "CRYPT (DES)"),
        ("{NO SUCH\u{7}}x", "NO?SUCH?"),
    ] {
        let err = verify(stored, PASSWORD.as_bytes()).expect_err(stored);
        assert_eq!(err, SchemeError::Unsupported(name.into()), "{stored}");
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}

#[test]
fn malformed_hashes_are_errors_that_do_not_show_the_hash() {
    for stored in [
        "{SHA512-CRYPT}$6$",
        "{SHA512-CRYPT}$6$salt$not!base64",
        "{SHA512-CRYPT}$5$nlaSlrKV1CGQn2SJ$NNFekZ06xDcznlXONiG4/0dNEzv1ubnaNFV.RW5ZEe6",
        "{SHA256-CRYPT}plain",
        "{BLF-CRYPT}$2y$05$short",
        "{BLF-CRYPT}$6$HmKLmv07M8WZDNPX$moxjE8DY",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$w8tKHjvUJQQZFSiPVhYdLA",
        "{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$XFvVNcGKCDzKc/lUfUeUdA$g46Eg8+ne1sn3QIAdCK5qZIf3XSKtV/2YTsWkCPdBkU",
        "{ARGON2I}garbage",
        "{PBKDF2}$1$salt$5000",
        "{PBKDF2}$1$salt$many$d2301615c38aeeff8e236c93d3b56442d348751e",
        "{PBKDF2}$1$salt$0$d2301615c38aeeff8e236c93d3b56442d348751e",
        "{PBKDF2}$1$salt$4000000000$d2301615c38aeeff8e236c93d3b56442d348751e",
        "{PBKDF2}$1$salt$5000$zz",
        "{PBKDF2}$2$salt$5000$d2301615c38aeeff8e236c93d3b56442d348751e",
        "{SSHA}hPJ0xh4mMAJASpvxRhW1rdbg4Xo=",
        "{SSHA}!!!",
        "{SHA}",
        "{SHA}hPJ0xh4mMAJASpvxRhW1rdbg4X",
        "{SHA256}fXd9afKA4Z7jtnDYzaiLrUR9BwCN",
        "{SHA256.HEX}7d777d69f280e19ee3b670d8cda88bad447d07008dff8ab48ca85c585b93fff",
        "{SHA256.HEX}+d777d69f280e19ee3b670d8cda88bad447d07008dff8ab48ca85c585b93fffa",
        "{SHA512}",
    ] {
        let err = verify(stored, PASSWORD.as_bytes()).expect_err(stored);
        assert!(
            matches!(err, SchemeError::Malformed { .. }),
            "{stored}: {err:?}"
        );
        let text = err.to_string();
        let hash = stored.split_once('}').map_or(stored, |(_, h)| h);
        assert!(hash.is_empty() || !text.contains(hash), "{text}");
    }
    // An encoding suffix on a scheme that has none is refused, not ignored.
    assert!(matches!(
        verify("{PLAIN.HEX}41", b"A"),
        Err(SchemeError::Unsupported(_))
    ));
}

#[test]
fn plain_compares_whole_bytes() {
    assert_eq!(verify("{PLAIN}", b""), Ok(true));
    assert_eq!(verify("{PLAIN}abc", b"ab"), Ok(false));
    assert_eq!(verify("{PLAIN}ab", b"abc"), Ok(false));
    assert_eq!(verify("{PLAIN}a:b", b"a:b"), Ok(true));
}
