//! A small RDAP server on loopback (RFC 9082 paths, RFC 9083 JSON with the abuse entity
//! nested inside the registrant entity, as registries answer) and an infected bounce.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::load_message;

pub const ABUSE: &str = "abuse@rdap-test.example";
pub const BOUNCE_ABUSE: &str = "abuse@bouncer.example";

/// A one-thread HTTP/1.1 server on 127.0.0.1 answering `GET /rdap/ip/ADDR` (and the same
/// under `/boot/`) with an RFC 9083 network object; 404 for other addresses.
pub struct RdapServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

pub fn network_json(ip: &str, abuse: &str) -> String {
    network_range_json(ip, ip, abuse)
}

/// The first /64 of 2001:db8:1::/48: one network, one abuse contact ([`ABUSE`]).
pub const BOMB_NET: &str = "2001:db8:1::";

/// A network object for `start`..`end`.
pub fn network_range_json(start: &str, end: &str, abuse: &str) -> String {
    // ARIN-like: the abuse contact is an entity inside the registrant organisation.
    format!(
        r#"{{
  "rdapConformance": ["rdap_level_0"],
  "objectClassName": "ip network",
  "handle": "NET-TEST-1",
  "startAddress": "{start}", "endAddress": "{end}",
  "name": "TEST-NET", "type": "ASSIGNMENT",
  "entities": [
    {{"objectClassName": "entity", "handle": "ORG-TEST", "roles": ["registrant"],
      "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["fn", {{}}, "text", "Test Org"],
                               ["kind", {{}}, "text", "org"], ["email", {{}}, "text", "hostmaster@rdap-test.example"]]],
      "entities": [
        {{"objectClassName": "entity", "handle": "NOC-TEST", "roles": ["technical"],
          "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["email", {{}}, "text", "noc@rdap-test.example"]]]}},
        {{"objectClassName": "entity", "handle": "ABUSE-TEST", "roles": ["abuse"],
          "vcardArray": ["vcard", [["version", {{}}, "text", "4.0"], ["fn", {{}}, "text", "Abuse desk"],
                                   ["email", {{"type": "work"}}, "text", "{abuse}"]]]}}
      ]}}
  ]
}}"#
    )
}

impl RdapServer {
    pub fn start() -> RdapServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind RDAP server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                log.lock().expect("log").push(path.clone());
                let ip = path
                    .strip_prefix("/rdap/ip/")
                    .or_else(|| path.strip_prefix("/boot/ip/"))
                    .unwrap_or("");
                let (status, body) = match ip {
                    "203.0.113.7" => ("200 OK", network_json(ip, ABUSE)),
                    "198.51.100.25" => ("200 OK", network_json(ip, BOUNCE_ABUSE)),
                    ip if ip.starts_with("2001:db8:1::") => (
                        "200 OK",
                        network_range_json(BOMB_NET, "2001:db8:1::ffff:ffff:ffff:ffff", ABUSE),
                    ),
                    "198.51.100.99" => ("200 OK", r#"{"objectClassName": "ip network", "entities": [{"roles": ["registrant"]}]}"#.to_string()),
                    _ => ("404 Not Found", r#"{"errorCode": 404}"#.to_string()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/rdap+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        RdapServer { port, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("log").clone()
    }
}

/// A bounce (null sender, `multipart/report` DSN from MAILER-DAEMON, relayed by
/// 198.51.100.25) that carries EICAR in its returned message.
pub fn infected_bounce() -> Vec<u8> {
    let original = String::from_utf8(load_message("eicar-base64.eml")).expect("ascii fixture");
    let dsn = format!(
        "Received: from mx.bouncer.example (mx.bouncer.example [198.51.100.25])\r\n\
         \tby mx.example.test (Postfix) with ESMTP id 4BnC3;\r\n\
         \tSat, 28 Nov 2026 06:00:00 +0000 (UTC)\r\n\
         Return-Path: <>\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.bouncer.example>\r\n\
         To: alice@example.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <bounce-1@mx.bouncer.example>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"dsn-boundary\"\r\n\
         \r\n\
         --dsn-boundary\r\n\
         Content-Type: text/plain\r\n\r\n\
         Your message could not be delivered.\r\n\r\n\
         --dsn-boundary\r\n\
         Content-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.bouncer.example\r\n\r\n\
         Final-Recipient: rfc822; nobody@bouncer.example\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\r\n\
         --dsn-boundary\r\n\
         Content-Type: message/rfc822\r\n\r\n\
         {original}\r\n\
         --dsn-boundary--\r\n"
    );
    dsn.into_bytes()
}
