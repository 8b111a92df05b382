//! Tables for the builder: addresses, ids, MIME entities, and hostile text in every part.

use super::*;

/// Hostile payloads as they arrive after mail-parser decoded an encoded-word.
const HOSTILE: &[&str] = &[
    "hi\r\nContent-Type: text/html\r\nX-Injected: yes\r\n\r\n<a href=\"http://evil.test\">x</a>",
    "hi\nX-Injected: yes",
    "hi\rX-Injected: yes",
    "hi\0X-Injected: yes",
    "hi\r\n\r\nX-Injected: yes",
    "=?utf-8?b?aGkNClgtSW5qZWN0ZWQ6IHllcw==?=",
];

#[test]
fn mailbox_table() {
    // value, address, name; None: refused
    type Case<'a> = (&'a str, Option<(&'a str, Option<&'a str>)>);
    let cases: &[Case] = &[
        ("a@example.test", Some(("a@example.test", None))),
        ("<a@example.test>", Some(("a@example.test", None))),
        (
            "\"Alice A\" <a@example.test>",
            Some(("a@example.test", Some("Alice A"))),
        ),
        (
            "Alice\r\nBcc: x@y <a@example.test>",
            Some(("a@example.test", Some("AliceBcc: x@y"))),
        ),
        ("\"\r\n\" <a@example.test>", Some(("a@example.test", None))),
        ("Alice <a@example.test\r\nBcc: x@y>", None),
        ("Alice <\"q\"@example.test>", None),
        ("a@example.test, b@example.test", None),
        ("", None),
    ];
    for (value, want) in cases {
        let got = Mailbox::parse(value).ok();
        let got = got.as_ref().map(|m| (m.address(), m.name()));
        assert_eq!(got, *want, "{value:?}");
    }
}

#[test]
fn msg_id_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("<1@example.test>", Some("1@example.test")),
        ("abc.def@example.test", Some("abc.def@example.test")),
        ("<x@[192.0.2.1]>", Some("x@[192.0.2.1]")),
        ("<1@example.test>\r\nBcc: x@y", None),
        ("1\r\n@example.test", None),
        ("<1@example.test> <2@example.test>", None),
        ("no-at", None),
        ("<a b@example.test>", None),
        ("<\"q\"@example.test>", None),
        ("<ü@example.test>", None),
        ("", None),
    ];
    for (id, want) in cases {
        assert_eq!(
            MsgId::parse(id).as_ref().map(MsgId::as_str),
            *want,
            "{id:?}"
        );
    }
    assert!(MsgId::parse(&format!("{}@x.test", "a".repeat(300))).is_none());
}

/// The header section of `bytes` and the rest.
fn split(bytes: &[u8]) -> (String, String) {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let at = text.find("\r\n\r\n").expect("a header section");
    (text[..at + 2].to_string(), text[at + 4..].to_string())
}

/// Every header line is one of ours or a folded continuation; ours appear once each.
fn assert_only_ours(header: &str) {
    let ours = [
        "From:",
        "To:",
        "Cc:",
        "Subject:",
        "Date:",
        "Message-ID:",
        "In-Reply-To:",
        "References:",
        "Auto-Submitted:",
        "Importance:",
        "X-Priority:",
        "MIME-Version:",
        "Content-Type:",
        "Content-Transfer-Encoding:",
    ];
    for line in header.trim_end_matches("\r\n").split("\r\n") {
        assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
        assert!(
            line.starts_with([' ', '\t']) || ours.iter().any(|o| line.starts_with(o)),
            "foreign line {line:?} in\n{header}"
        );
    }
    for once in [
        "Auto-Submitted:",
        "Message-ID:",
        "MIME-Version:",
        "Content-Type:",
        "From:",
    ] {
        let n = header.split("\r\n").filter(|l| l.starts_with(once)).count();
        assert_eq!(n, 1, "{once} in\n{header}");
    }
}

fn generated(subject: &str, name: &str, body: Body) -> Generated {
    Generated {
        from: Mailbox::new("bob@example.test", Some(name)).expect("from"),
        to: vec![Mailbox::new("alice@example.org", Some(name)).expect("to")],
        cc: vec![],
        subject: subject.to_string(),
        in_reply_to: MsgId::parse("<1@example.org>"),
        references: vec![MsgId::parse("0@example.org").expect("id")],
        auto_submitted: AutoSubmitted::Replied,
        importance: Some(Importance::High),
        body,
        hostname: "mx.example.test\r\nX-Injected: yes".to_string(),
    }
}

#[test]
fn hostile_text_never_leaves_its_field() {
    for payload in HOSTILE {
        let message = generated(payload, payload, Body::text(payload));
        let bytes = message.build().expect("build");
        let (header, body) = split(&bytes);
        assert_only_ours(&header);
        assert!(!header.contains("\r\nX-Injected"), "{header}");
        assert!(
            header.contains("Auto-Submitted: auto-replied\r\n"),
            "{header}"
        );
        assert!(
            header.contains("Content-Type: text/plain; charset=\"utf-8\"\r\n"),
            "{header}"
        );
        assert!(
            header.contains("Message-ID: <") && header.contains("@mx.example.testX-Injectedyes>"),
            "{header}"
        );
        assert!(!body.contains('\0'), "{body:?}");
        // Bare CR and LF exist in no line of what we send.
        assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        assert!(!bytes.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'));
        let parsed = mail_parser::MessageParser::new()
            .parse(&bytes)
            .expect("parses");
        assert_eq!(parsed.header_values("X-Injected").count(), 0);
    }
}

#[test]
fn mime_entity_table() {
    // reason, accepted as MIME
    let cases: &[(&str, bool)] = &[
        ("Content-Type: text/html\r\n\r\n<b>away</b>", true),
        ("Content-Type: text/html\n\n<b>away</b>", true),
        (
            "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\naway\r\n--b--\r\n",
            true,
        ),
        ("Content-Type: text/html\r\nX-Injected: yes\r\n\r\n<b>x</b>", false),
        ("Content-Type: text/html\r\nBcc: x@y\r\n\r\n<b>x</b>", false),
        ("just text", false),
        ("\r\nContent-Type: text/html\r\n\r\n<b>x</b>", false),
        ("Content-Type: text/html", false),
        ("Subject: x\r\n\r\nbody", false),
    ];
    for (reason, mime) in cases {
        let body = Body::from_mime(reason);
        assert_eq!(matches!(body, Body::Mime(_)), *mime, "{reason:?}");
        let bytes = generated("s", "n", body).build().expect("build");
        let (header, _) = split(&bytes);
        assert_only_ours(&header);
        assert!(
            !header.contains("\r\nX-Injected") && !header.contains("\r\nBcc"),
            "{header}"
        );
        if !mime {
            assert!(header.contains("Content-Type: text/plain"), "{header}");
        }
    }
    // A folded Content-* value stays one line of ours.
    let Body::Mime(entity) = Body::from_mime("Content-Type: text/html;\r\n charset=utf-8\r\n\r\nx")
    else {
        panic!("not MIME");
    };
    assert_eq!(
        String::from_utf8_lossy(&entity),
        "Content-Type: text/html;   charset=utf-8\r\n\r\nx"
    );
}

#[test]
fn no_recipient_is_refused() {
    let mut message = generated("s", "n", Body::text("b"));
    message.to.clear();
    assert_eq!(message.build(), Err(ComposeError::NoRecipient));
}

#[test]
fn message_ids_are_unique_and_clean() {
    let a = new_message_id("mx.example.test");
    let b = new_message_id("mx.example.test");
    assert_ne!(a, b);
    assert!(MsgId::parse(&a).is_some(), "{a}");
    assert!(new_message_id("\r\n").ends_with("@localhost"));
}

#[test]
fn alternative_body_has_text_then_html() {
    use mail_parser::MimeHeaders;
    let mut message = generated(
        "digest",
        "n",
        Body::alternative("plain\nline\0two", "<p>html</p>\r\n"),
    );
    message.auto_submitted = AutoSubmitted::Generated;
    let bytes = message.build().expect("build");
    let (header, _) = split(&bytes);
    assert_only_ours(&header);
    assert!(
        header.contains("Auto-Submitted: auto-generated\r\n"),
        "{header}"
    );
    let parsed = mail_parser::MessageParser::new()
        .parse(&bytes)
        .expect("parses");
    assert_eq!(
        parsed.content_type().map(|c| (c.ctype(), c.subtype())),
        Some(("multipart", Some("alternative")))
    );
    assert_eq!(parsed.body_text(0).as_deref(), Some("plain\r\nlinetwo"));
    assert_eq!(parsed.body_html(0).as_deref(), Some("<p>html</p>\r\n"));
}
