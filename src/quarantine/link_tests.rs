//! Tests of [`super`]: tokens round-trip, tampering, expiry, field boundaries, the key file.

use super::*;

fn key() -> LinkKey {
    LinkKey::from_bytes(b"0123456789abcdef0123456789abcdef").expect("32 bytes")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn token(action: Action) -> String {
    sign(
        &key(),
        "q-1.abc",
        "alice@example.org",
        action,
        at(NOW + 3600),
    )
}

#[test]
fn round_trip_every_action() {
    for action in Action::ENTRY {
        let t = token(action);
        assert!(t.len() < MAX_TOKEN_LEN, "{t}");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not URL-safe: {t}"
        );
        let claims = verify(&key(), &t, at(NOW)).expect("valid");
        assert_eq!(
            claims,
            Claims {
                entry_id: "q-1.abc".into(),
                rcpt: "alice@example.org".into(),
                action,
                expires: at(NOW + 3600),
            }
        );
        assert_eq!(Action::parse(action.as_str()), Some(action));
    }
}

#[test]
fn list_token_round_trip() {
    let t = sign_list(&key(), "carol@example.org", at(NOW + 3600));
    assert!(t.len() < MAX_TOKEN_LEN, "{t}");
    assert_eq!(
        verify(&key(), &t, at(NOW)),
        Ok(Claims {
            entry_id: LIST_ENTRY.into(),
            rcpt: "carol@example.org".into(),
            action: Action::List,
            expires: at(NOW + 3600),
        })
    );
    assert_eq!(Action::parse("list"), Some(Action::List));
    assert!(!Action::List.names_entry());
    assert!(Action::ENTRY.iter().all(|a| a.names_entry()));
    assert_eq!(
        verify(&key(), &t, at(NOW + 3600)),
        Err(LinkError::Expired { at: at(NOW + 3600) })
    );
    let other = LinkKey::from_bytes(b"0123456789abcdef0123456789abcdeX").expect("key");
    assert_eq!(verify(&other, &t, at(NOW)), Err(LinkError::BadSignature));
}

#[test]
fn a_list_token_never_names_an_entry_and_an_entry_token_never_lists() {
    // Signed with our key, but a list token with an entry id, or an entry action
    // without one: neither verifies, so neither reaches a page.
    let list_with_entry = sign(
        &key(),
        "q-1.abc",
        "alice@example.org",
        Action::List,
        at(NOW + 60),
    );
    assert_eq!(
        verify(&key(), &list_with_entry, at(NOW)),
        Err(LinkError::Malformed)
    );
    for action in Action::ENTRY {
        let no_entry = sign(
            &key(),
            LIST_ENTRY,
            "alice@example.org",
            action,
            at(NOW + 60),
        );
        assert_eq!(
            verify(&key(), &no_entry, at(NOW)),
            Err(LinkError::Malformed),
            "{action}"
        );
    }
    // Every genuine token says what it is: a list names no entry, an entry action does.
    let list = sign_list(&key(), "alice@example.org", at(NOW + 60));
    let claims = verify(&key(), &list, at(NOW)).expect("list");
    assert!(claims.entry_id.is_empty() && claims.action == Action::List);
    for action in Action::ENTRY {
        let claims = verify(&key(), &token(action), at(NOW)).expect("entry");
        assert!(!claims.entry_id.is_empty() && claims.action != Action::List);
    }
    // A list token's MAC on a view payload for the same recipient, and the other way
    // round: not ours.
    let view = URL_SAFE_NO_PAD
        .decode(sign(
            &key(),
            "q-1.abc",
            "alice@example.org",
            Action::View,
            at(NOW + 60),
        ))
        .expect("b64");
    let list = URL_SAFE_NO_PAD.decode(&list).expect("b64");
    for (body, tag) in [(&view, &list), (&list, &view)] {
        let mut spliced = body[..body.len() - MAC_LEN].to_vec();
        spliced.extend_from_slice(&tag[tag.len() - MAC_LEN..]);
        assert_eq!(
            verify(&key(), &URL_SAFE_NO_PAD.encode(&spliced), at(NOW)),
            Err(LinkError::BadSignature)
        );
    }
}

#[test]
fn tampered_anywhere_is_refused() {
    let t = token(Action::Release);
    let chars: Vec<char> = t.chars().collect();
    for i in 0..chars.len() {
        for replacement in ['A', 'z', '-', '_', '0'] {
            if chars[i] == replacement {
                continue;
            }
            let mut changed = chars.clone();
            changed[i] = replacement;
            let changed: String = changed.into_iter().collect();
            let got = verify(&key(), &changed, at(NOW));
            assert!(
                matches!(got, Err(LinkError::BadSignature | LinkError::Malformed)),
                "position {i}: {got:?}"
            );
        }
    }
    // Every byte of the decoded token, flipped bit by bit.
    let bytes = URL_SAFE_NO_PAD.decode(&t).expect("base64");
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut changed = bytes.clone();
            changed[i] ^= 1 << bit;
            let got = verify(&key(), &URL_SAFE_NO_PAD.encode(&changed), at(NOW));
            assert_eq!(got, Err(LinkError::BadSignature), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn another_key_rcpt_action_or_entry_does_not_verify() {
    let other = LinkKey::from_bytes(b"0123456789abcdef0123456789abcdeX").expect("key");
    let t = token(Action::Release);
    assert_eq!(verify(&other, &t, at(NOW)), Err(LinkError::BadSignature));
    // A token's claims cannot be swapped for another's: re-signing is the only way.
    let expected =
        |entry: &str, rcpt: &str, action| sign(&key(), entry, rcpt, action, at(NOW + 3600));
    assert_ne!(t, expected("q-1.abc", "bob@example.org", Action::Release));
    assert_ne!(t, expected("q-1.abc", "alice@example.org", Action::Delete));
    assert_ne!(t, expected("q-2.abc", "alice@example.org", Action::Release));
    // Splicing another token's MAC onto this payload fails.
    let bob = URL_SAFE_NO_PAD
        .decode(expected("q-1.abc", "bob@example.org", Action::Release))
        .expect("b64");
    let mut mine = URL_SAFE_NO_PAD.decode(&t).expect("b64");
    let n = mine.len();
    mine[n - MAC_LEN..].copy_from_slice(&bob[bob.len() - MAC_LEN..]);
    assert_eq!(
        verify(&key(), &URL_SAFE_NO_PAD.encode(&mine), at(NOW)),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn field_boundaries_do_not_collide() {
    let a = payload("ab", "c@d", Action::View, 1);
    let b = payload("a", "bc@d", Action::View, 1);
    assert_ne!(a, b);
    let a = sign(&key(), "ab", "c@d", Action::View, at(NOW + 1));
    let b = sign(&key(), "a", "bc@d", Action::View, at(NOW + 1));
    assert_ne!(a, b);
}

#[test]
fn expired_is_refused_at_and_after_expiry() {
    let t = token(Action::View);
    assert!(verify(&key(), &t, at(NOW + 3599)).is_ok());
    for now in [NOW + 3600, NOW + 3601, NOW + 86_400 * 400] {
        assert_eq!(
            verify(&key(), &t, at(now)),
            Err(LinkError::Expired { at: at(NOW + 3600) })
        );
    }
}

#[test]
fn truncated_empty_overlong_and_garbage_are_malformed_or_unsigned() {
    let t = token(Action::Delete);
    for cut in 0..t.len() {
        let got = verify(&key(), &t[..cut], at(NOW));
        assert!(
            matches!(got, Err(LinkError::Malformed | LinkError::BadSignature)),
            "cut at {cut}: {got:?}"
        );
    }
    assert_eq!(verify(&key(), "", at(NOW)), Err(LinkError::Malformed));
    assert_eq!(verify(&key(), "%2F..", at(NOW)), Err(LinkError::Malformed));
    assert_eq!(verify(&key(), "a b", at(NOW)), Err(LinkError::Malformed));
    // Padding and the standard alphabet are not ours.
    assert_eq!(
        verify(&key(), &format!("{t}=="), at(NOW)),
        Err(LinkError::Malformed)
    );
    // Over the cap: refused before decoding, however valid the rest.
    let long = "A".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(verify(&key(), &long, at(NOW)), Err(LinkError::Malformed));
    let huge_rcpt = "x".repeat(MAX_TOKEN_LEN);
    let t = sign(&key(), "q", &huge_rcpt, Action::View, at(NOW + 1));
    assert_eq!(verify(&key(), &t, at(NOW)), Err(LinkError::Malformed));
    // A genuine MAC over a payload with a wrong version or trailing bytes: malformed.
    for body in [
        {
            let mut p = payload("q", "a@b", Action::View, NOW + 1);
            p[0] = 2;
            p
        },
        {
            let mut p = payload("q", "a@b", Action::View, NOW + 1);
            p.push(0);
            p
        },
    ] {
        let mut mac = key().mac();
        mac.update(DOMAIN);
        mac.update(&body);
        let mut bytes = body.clone();
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        assert_eq!(
            verify(&key(), &URL_SAFE_NO_PAD.encode(bytes), at(NOW)),
            Err(LinkError::Malformed)
        );
    }
}

#[test]
fn form_nonce_is_bound_to_its_token() {
    let t = token(Action::Release);
    let u = token(Action::Delete);
    let n = form_nonce(&key(), &t);
    assert!(verify_form_nonce(&key(), &t, &n));
    assert!(!verify_form_nonce(&key(), &u, &n));
    assert!(!verify_form_nonce(&key(), &t, ""));
    assert!(!verify_form_nonce(&key(), &t, &"A".repeat(100)));
    // The nonce is not a link MAC: a token's own tag never equals its nonce.
    let tag = URL_SAFE_NO_PAD.decode(&t).expect("b64");
    assert_ne!(URL_SAFE_NO_PAD.encode(&tag[tag.len() - MAC_LEN..]), n);
}

#[test]
fn url_joins_with_one_slash() {
    assert_eq!(url("https://q.example/", "T"), "https://q.example/q/T");
    assert_eq!(url("https://q.example", "T"), "https://q.example/q/T");
    assert_eq!(
        url("https://x.example/mail/", "T"),
        "https://x.example/mail/q/T"
    );
}

#[test]
fn key_file_checks() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    let write = |bytes: &[u8], mode: u32| {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(bytes).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write(&[7u8; 32], 0o600);
    assert!(LinkKey::load(&path).is_ok());
    write(&[7u8; 32], 0o400);
    assert!(LinkKey::load(&path).is_ok());
    write(&[7u8; 32], 0o640);
    assert!(matches!(
        LinkKey::load(&path),
        Err(KeyError::TooOpen { mode: 0o640, .. })
    ));
    write(&[7u8; 32], 0o604);
    assert!(matches!(
        LinkKey::load(&path),
        Err(KeyError::TooOpen { .. })
    ));
    write(&[7u8; 31], 0o600);
    let err = LinkKey::load(&path).expect_err("short");
    assert!(matches!(err, KeyError::TooShort { len: 31, .. }));
    assert!(err.to_string().contains("at least 32"), "{err}");
    write(&[7u8; 5000], 0o600);
    assert!(matches!(
        LinkKey::load(&path),
        Err(KeyError::TooLong { .. })
    ));
    assert!(matches!(
        LinkKey::load(&dir.path().join("missing")),
        Err(KeyError::Read { .. })
    ));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert!(matches!(
        LinkKey::load(dir.path()),
        Err(KeyError::NotFile { .. })
    ));
    assert_eq!(format!("{:?}", key()), "LinkKey(..)");
}
