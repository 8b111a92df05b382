//! Protocol errors and smuggling: the table of wrong commands and their replies, XFORWARD
//! and whom it is trusted from, dot-unstuffing, end-of-data look-alikes, and bare CR or LF
//! in command lines.

use super::{env, GREETING, LHLO_REPLY};
use crate::support::clamd::Clamd;
use crate::support::env::{split_trace, Env, Options};
use crate::support::messages::{clean_message, transaction};
use sievegate::lmtp::Peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_table() {
    let env = env();
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "mail before lhlo",
            b"MAIL FROM:<a@b>\r\n",
            "503 5.5.1 Send LHLO first\r\n",
        ),
        (
            "ehlo",
            b"EHLO x\r\n",
            "500 5.5.1 This is an LMTP server: use LHLO\r\n",
        ),
        (
            "helo",
            b"HELO x\r\n",
            "500 5.5.1 This is an LMTP server: use LHLO\r\n",
        ),
        (
            "unknown",
            b"FOO bar\r\n",
            "500 5.5.2 Command unrecognized\r\n",
        ),
        ("noop", b"NOOP\r\n", "250 2.0.0 Ok\r\n"),
        (
            "vrfy",
            b"VRFY alice\r\n",
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n",
        ),
        (
            "rcpt before mail",
            b"LHLO x\r\nRCPT TO:<alice@example.test>\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "data before rcpt",
            b"LHLO x\r\nMAIL FROM:<>\r\nDATA\r\n",
            "503 5.5.1 No valid recipients\r\n",
        ),
        (
            "data before mail",
            b"LHLO x\r\nDATA\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "nested mail",
            b"LHLO x\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n",
            "503 5.5.1 Nested MAIL command\r\n",
        ),
        (
            "8bitmime and smtputf8",
            b"LHLO x\r\nMAIL FROM:<j\xc3\xb6rg@example.org> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n",
            "250 2.1.0 Sender ok\r\n",
        ),
        (
            "binarymime",
            b"LHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\n",
            "555 5.5.4 Unsupported parameter BODY=BINARYMIME\r\n",
        ),
        (
            "size too big",
            b"LHLO x\r\nMAIL FROM:<a@b> SIZE=999999999\r\n",
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        ),
        (
            "unknown domain",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@elsewhere.test>\r\n",
            "550 5.1.1 <alice@elsewhere.test> User unknown in local recipient table\r\n",
        ),
        (
            "dotdot",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<../../etc@example.test>\r\n",
            "550 5.1.3 <../../etc@example.test> Invalid local part\r\n",
        ),
        (
            "slash",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a/b@example.test>\r\n",
            "550 5.1.3 <a/b@example.test> Invalid local part\r\n",
        ),
        (
            "leading dot",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<.x@example.test>\r\n",
            "550 5.1.3 <.x@example.test> Invalid local part\r\n",
        ),
        (
            "bad rcpt syntax",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\n",
            "501 5.1.3 Bad recipient address syntax\r\n",
        ),
        (
            "starttls",
            b"STARTTLS\r\n",
            "502 5.5.1 Command not implemented\r\n",
        ),
        (
            "bdat",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nBDAT 10 LAST\r\n",
            "502 5.5.1 Command not implemented\r\n",
        ),
        ("too long", long.as_bytes(), "500 5.5.2 Line too long\r\n"),
        (
            "rset ends transaction",
            b"LHLO x\r\nMAIL FROM:<>\r\nRSET\r\nRCPT TO:<alice@example.test>\r\n",
            "503 5.5.1 Need MAIL command\r\n",
        ),
        (
            "xforward in transaction",
            b"LHLO x\r\nMAIL FROM:<>\r\nXFORWARD NAME=x\r\n",
            "503 5.5.1 XFORWARD not allowed within a mail transaction\r\n",
        ),
        (
            "xforward ok",
            b"LHLO x\r\nXFORWARD NAME=mx.remote ADDR=192.0.2.1\r\n",
            "250 2.0.0 Ok\r\n",
        ),
        (
            "xforward addr not an ip",
            b"LHLO x\r\nXFORWARD NAME=mx.remote ADDR=mx.remote\r\n",
            "501 5.5.4 Syntax error: XFORWARD ADDR must be an IP address or [UNAVAILABLE]\r\n",
        ),
        (
            "xforward addr ipv6",
            b"LHLO x\r\nXFORWARD ADDR=IPV6:2001:db8::7\r\n",
            "250 2.0.0 Ok\r\n",
        ),
        (
            "xforward bad attr",
            b"LHLO x\r\nXFORWARD COLOUR=red\r\n",
            "501 5.5.4 Syntax error: unknown XFORWARD attribute\r\n",
        ),
    ];
    for (name, input, want_last) in cases {
        let mut full = input.to_vec();
        full.extend_from_slice(b"QUIT\r\n");
        let got = env.transcript_every_split(&full).await;
        let lines: Vec<&str> = got.split_inclusive("\r\n").collect();
        assert!(lines.len() >= 2, "{name}: {got}");
        assert_eq!(lines[lines.len() - 2], *want_last, "{name}: {got}");
        assert_eq!(lines[lines.len() - 1], "221 2.0.0 Bye\r\n", "{name}");
    }
    assert!(!env.dir.path().join("etc").exists());
    assert!(!env.dir.path().join("mail/example.test/a").exists());
    assert_eq!(env.total_messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_only_from_allowed_peers() {
    let mut options = Options::new(Clamd::shared().addr());
    options.xforward_from = vec!["10.0.0.0/8".into()];
    let env = Env::new(options);
    let got = env
        .transcript_as(&[b"LHLO x\r\nXFORWARD NAME=a\r\nQUIT\r\n"], Peer::Unix)
        .await;
    assert!(!got.contains("XFORWARD NAME"), "not advertised: {got}");
    assert!(
        got.contains("550 5.7.0 XFORWARD not permitted from this client\r\n"),
        "{got}"
    );
    let got = env
        .transcript_as(
            &[b"LHLO x\r\nXFORWARD NAME=a\r\nQUIT\r\n"],
            Peer::Tcp("10.1.2.3:25".parse().expect("addr")),
        )
        .await;
    assert!(
        got.contains("250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_client_shows_in_received_header() {
    let env = env();
    let message = clean_message("xforward");
    let mut input = b"LHLO postfix.local\r\nXFORWARD NAME=mail.remote.example ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP HELO=remote-helo IDENT=4QueueId SOURCE=REMOTE\r\n".to_vec();
    input.extend_from_slice(
        &transaction(&["alice@example.test"], &message)[b"LHLO client.example\r\n".len()..],
    );
    let got = env.transcript(&[&input]).await;
    assert!(got.contains("<alice@example.test> ID Saved"), "{got}");
    let stored = env.messages("alice", "");
    let (trace, _) = split_trace(&stored[0].1);
    let trace = String::from_utf8_lossy(trace);
    assert!(trace.contains("remote-helo"), "{trace}");
    assert!(trace.contains("mail.remote.example"), "{trace}");
    assert!(trace.contains("[192.0.2.7]"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_unstuffing_and_smuggling() {
    let env = env();
    // "\n.\n" (bare LF) does not end DATA; only CRLF.CRLF does.
    let input = b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: s\r\n\r\n..a\r\nb\n.\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n";
    let got = env.transcript_every_split(input).await;
    assert!(
        got.contains("250 2.0.0 <alice@example.test> ID Saved\r\n221 2.0.0 Bye\r\n"),
        "{got}"
    );
    for (path, stored) in env.messages("alice", "") {
        let (_, body) = split_trace(&stored);
        assert_eq!(
            body,
            b"Subject: s\r\n\r\n.a\r\nb\n.\nMAIL FROM:<evil@x>\r\n",
            "{}",
            path.display()
        );
    }
}

/// RFC 5321 §4.5.2 as the server applies it: a "." right after a CRLF (or at the start of
/// the data) is removed. Used to say what the stored body of a smuggling attempt must be.
fn unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let line_start = i == 0 || (i >= 2 && &data[i - 2..i] == b"\r\n");
        if !(b == b'.' && line_start) {
            out.push(b);
        }
    }
    out
}

/// Every end-of-data look-alike from the SMTP smuggling advisories (SEC Consult, Postfix,
/// sendmail, chasquid): none of them may end DATA. The smuggled MAIL/RCPT/DATA must become
/// body text of the first message, and bob (the smuggled recipient) must get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_variants_never_end_data() {
    let env = env();
    let variants: &[(&str, &[u8])] = &[
        ("LF.LF", b"\n.\n"),
        ("CRLF.LF", b"\r\n.\n"),
        ("LF.CRLF", b"\n.\r\n"),
        ("CR.CRLF", b"\r.\r\n"),
        ("CRLF.CR", b"\r\n.\r"),
        ("CR.CR", b"\r.\r"),
        ("CR.LF", b"\r.\n"),
        ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
        ("CRLF.CRCRCRLF", b"\r\n.\r\r\r\n"),
        ("CRLF NUL.CRLF", b"\r\n\0.\r\n"),
        ("CRLF.NUL CRLF", b"\r\n.\0\r\n"),
        ("CRLF.CR NUL LF", b"\r\n.\r\0\n"),
        ("CRLF.SP CRLF", b"\r\n. \r\n"),
    ];
    let smuggled = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n";
    for (name, sep) in variants {
        let mut data = b"Subject: first\r\n\r\nhello".to_vec();
        data.extend_from_slice(sep);
        data.extend_from_slice(smuggled);
        let mut input =
            b"LHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                .to_vec();
        input.extend_from_slice(&data);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let before = 0;
        let got = env.transcript_every_split(&input).await;
        let want = format!(
            "{GREETING}{LHLO_REPLY}250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n250 2.0.0 <alice@example.test> ID Saved\r\n221 2.0.0 Bye\r\n"
        );
        assert_eq!(got, want, "{name}: exactly one transaction");
        assert!(
            env.messages("bob", "").is_empty(),
            "{name}: smuggled delivery to bob"
        );
        let stored = env.messages("alice", "");
        assert!(stored.len() > before, "{name}");
        let want_body = unstuff(&data);
        for (path, bytes) in &stored[before..] {
            let (_, body) = split_trace(bytes);
            assert_eq!(
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&want_body),
                "{name}: {}",
                path.display()
            );
        }
        // Clean up so the next variant counts only its own files.
        for (path, _) in stored {
            std::fs::remove_file(path).expect("remove");
        }
    }
}

/// A command line must end in CRLF and hold no other CR or LF (RFC 5321 §2.3.8). Acting on
/// a bare-LF line would let "DATA\n" turn the message into commands, so such a line is
/// refused and the connection closed (as Postfix's `smtpd_forbid_bare_newline` does): no
/// reply of the table's lines after it may appear, and nothing is executed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_cr_or_lf_in_a_command_line_is_refused_and_closes() {
    let env = env();
    let refused = "500 5.5.2 Bare CR or LF in command line, closing connection\r\n";
    let cases: &[(&str, &[u8])] = &[
        ("bare LF", b"NOOP\nNOOP\r\n"),
        ("bare LF after MAIL", b"LHLO x\r\nMAIL FROM:<>\nRCPT TO:<alice@example.test>\r\n"),
        ("bare CR inside", b"NOOP\rRSET\r\n"),
        ("CR CR LF", b"NOOP\r\r\n"),
        ("LF only line", b"\n"),
        (
            "DATA with bare LF",
            b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\nMAIL FROM:<evil@x>\r\n",
        ),
    ];
    for (name, input) in cases {
        let mut full = input.to_vec();
        full.extend_from_slice(b"QUIT\r\n");
        let got = closing_transcript(&env, &[&full]).await;
        for k in 1..full.len() {
            let split = closing_transcript(&env, &[&full[..k], &full[k..]]).await;
            assert_eq!(split, got, "{name}: split at byte {k}");
        }
        assert!(got.ends_with(refused), "{name}: {got}");
        assert_eq!(got.matches(refused).count(), 1, "{name}: {got}");
        assert!(
            !got.contains("221 "),
            "{name}: nothing after the refusal: {got}"
        );
        assert!(!got.contains("354 "), "{name}: {got}");
    }
    assert_eq!(env.total_messages(), 0);
}

/// Like `Env::transcript`, for sessions the server closes early: writes after the close
/// fail, which is expected here.
async fn closing_transcript(env: &Env, chunks: &[&[u8]]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut live = env.start_session(Peer::Tcp("127.0.0.1:40000".parse().expect("addr")));
    for chunk in chunks {
        if live.client.write_all(chunk).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    live.finish().await
}

/// Item 15: a unix-socket peer is trusted by its uid. One not in xforward_from gets no
/// XFORWARD in the LHLO reply, and its XFORWARD is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xforward_trust_follows_the_unix_peer_uid() {
    use sievegate::lmtp::Session;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = Options::new(Clamd::shared().addr());
    options.xforward_from = vec!["unix:4242".into(), "10.0.0.0/8".into()];
    let env = Env::new(options);
    for (uid, trusted) in [(Some(4242), true), (Some(4243), false), (None, false)] {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let session =
            Session::new(server, Arc::clone(&env.services), Peer::Unix, stop_rx).peer_uid(uid);
        let task = tokio::spawn(session.run());
        client
            .write_all(b"LHLO x\r\nXFORWARD NAME=forged.example ADDR=192.0.2.66\r\nQUIT\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("read");
        task.await.expect("task").expect("session");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(
            out.contains("250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"),
            trusted,
            "uid {uid:?}: {out}"
        );
        assert_eq!(
            out.contains("550 5.7.0 XFORWARD not permitted from this client\r\n"),
            !trusted,
            "uid {uid:?}: {out}"
        );
    }
}
