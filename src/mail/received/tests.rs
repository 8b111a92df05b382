use super::*;
use ReceivedFormat::{Exim, Postfix, Sendmail};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn formats_table() {
    // (format, unfolded value, expected client). Shapes from each MTA's own output; the
    // real-MTA tests (tests/it/received.rs) check them against Postfix, Exim and Sendmail.
    let cases: &[(ReceivedFormat, &str, Option<&str>)] = &[
        // Postfix
        (Postfix, "from mail.example.net (mail.example.net [203.0.113.7]) by mx.example.test (Postfix) with ESMTP id 4X; Sat, 28 Nov 2026 06:00:00 +0000", Some("203.0.113.7")),
        (Postfix, "from helo (unknown [IPv6:2001:db8::7]) by mx (Postfix) with ESMTPS id 1", Some("2001:db8::7")),
        (Postfix, "from [198.51.100.1] (unknown [203.0.113.9]) by mx (Postfix) with SMTP id 1", Some("203.0.113.9")),
        (Postfix, "from h (unknown [203.0.113.11]:4321) by mx (Postfix) with ESMTP id 1", Some("203.0.113.11")),
        (Postfix, "from h (h.example [203.0.113.12]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519) (No client certificate requested) by mx (Postfix) with ESMTPS id 1", Some("203.0.113.12")),
        // A HELO with spaces forging a client comment: ambiguous, nothing.
        (Postfix, "from x (unknown [198.51.100.66]) (unknown [203.0.113.9]) by mx (Postfix) with SMTP id 1", None),
        // A HELO forging a whole by clause: two by clauses, nothing.
        (Postfix, "from x (unknown [198.51.100.66]) by mx (Postfix) with SMTP id 0; x (unknown [203.0.113.9]) by mx (Postfix) with SMTP id 1", None),
        (Postfix, "by mx.example.test (Postfix, from userid 1000) id 1", None),
        (Postfix, "from h (no address here) by mx (Postfix)", None),
        (Postfix, "from h (unknown [not-an-ip]) by mx (Postfix)", None),
        // Not Postfix's.
        (Postfix, "from h (h [203.0.113.9]) by mx with esmtp (Exim 4.96)", None),
        (Postfix, "", None),
        // Exim
        (Exim, "from [198.51.100.99] (helo=[192.0.2.77]) by mx.example.test with esmtp (Exim 4.96) (envelope-from <a@b.example>) id 1kXyZa-000abc-12 for bob@example.test; Sat, 28 Nov 2026 06:00:00 +0000", Some("198.51.100.99")),
        (Exim, "from [198.51.100.99] (port=4711 helo=[192.0.2.77]) by mx with esmtp (Exim 4.96)", Some("198.51.100.99")),
        (Exim, "from [198.51.100.99] by mx with smtp (Exim 4.96)", Some("198.51.100.99")),
        (Exim, "from host.example.net ([203.0.113.10] helo=[198.51.100.1]) by mx with esmtp (Exim 4.96)", Some("203.0.113.10")),
        (Exim, "from host.example.net ([203.0.113.10]:4711 helo=x) by mx with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.96)", Some("203.0.113.10")),
        (Exim, "from host.example.net ([203.0.113.10]) by mx with esmtp (Exim 4.96)", Some("203.0.113.10")),
        (Exim, "from [2001:db8::99] (helo=x) by mx with esmtp (Exim 4.96)", Some("2001:db8::99")),
        (Exim, "from user by mx with local (Exim 4.96)", None),
        (Exim, "from [198.51.100.99] (helo=x) by mx (Postfix) with ESMTP id 1", None),
        // Read as Postfix's would be wrong: the bracketed HELO claim is not the client.
        (Postfix, "from [198.51.100.99] (helo=[192.0.2.77]) by mx with esmtp (Exim 4.96)", None),
        // Sendmail
        (Sendmail, "from helo.example (host.example.net [203.0.113.20]) by mx.example.test (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 5ABC; Sat, 28 Nov 2026 06:00:00 GMT", Some("203.0.113.20")),
        (Sendmail, "from [192.0.2.77] ([203.0.113.21]) by mx (8.17.1.9/8.17.1.9) with SMTP id 1", Some("203.0.113.21")),
        (Sendmail, "from x (user@host.example.net [203.0.113.22]) by mx (8.17.1.9/8.17.1.9) with ESMTP id 1", Some("203.0.113.22")),
        (Sendmail, "from x (host.example.net [203.0.113.23] (may be forged)) by mx (8.17.1.9/8.17.1.9) with ESMTP id 1", Some("203.0.113.23")),
        (Sendmail, "from x (host [IPv6:2001:db8::23]) by mx (8.17.1.9/8.17.1.9) with ESMTP id 1", Some("2001:db8::23")),
        (Sendmail, "from host.example.net [203.0.113.24] by mx (8.17.1.9/8.17.1.9) with SMTP id 1", Some("203.0.113.24")),
        // As Sendmail 8.17 wrote them (tests/it/received.rs): no rDNS, a HELO claiming
        // another address; a refused HELO; IPv6 uncompressed; `-bs` on a pipe (no client).
        (Sendmail, "from [192.0.2.77] ([127.0.0.2]) by mx.sendmail.test (8.17.1.9/8.17.1.9) with ESMTP id 6B4KdgXL031899 for <bob@example.test>; Fri, 4 Dec 2026 20:39:42 GMT", Some("127.0.0.2")),
        (Sendmail, "from [127.0.0.2] ([127.0.0.2]) by mx.sendmail.test (8.17.1.9/8.17.1.9) with ESMTP id 6B4KdggF031999 for <bob@example.test>; Fri, 4 Dec 2026 20:39:42 GMT", Some("127.0.0.2")),
        (Sendmail, "from evil.example ([IPv6:0:0:0:0:0:0:0:1]) by mx.sendmail.test (8.17.1.9/8.17.1.9) with ESMTP id 6B4Kdg6a031979 for <bob@example.test>; Fri, 4 Dec 2026 20:39:42 GMT", Some("::1")),
        (Sendmail, "from [192.0.2.77] (root@localhost) by mx.sendmail.test (8.17.1.9/8.17.1.9) with ESMTP id 6B4KbBT9026739 for <bob@example.test>; Fri, 4 Dec 2026 20:37:11 GMT", None),
        (Sendmail, "from x (host) by mx (8.17.1.9/8.17.1.9) with ESMTP id 1", None),
        (Sendmail, "from x (host [203.0.113.9]) by mx (Postfix) with ESMTP id 1", None),
    ];
    for (format, value, want) in cases {
        assert_eq!(
            format.client_ip(value),
            want.and_then(ip),
            "{format:?}: {value:?}"
        );
    }
}

#[test]
fn only_listed_formats_are_read() {
    let exim = "from [198.51.100.99] (helo=[192.0.2.77]) by mx with esmtp (Exim 4.96)";
    assert_eq!(client_ip(&[Postfix], exim), None);
    assert_eq!(client_ip(&[Postfix, Exim], exim), ip("198.51.100.99"));
    assert_eq!(ReceivedFormat::from_name("EXIM"), Some(Exim));
    assert_eq!(ReceivedFormat::from_name("qmail"), None);
}
