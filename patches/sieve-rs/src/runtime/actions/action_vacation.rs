/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use std::borrow::Cow;

use mail_builder::headers::{date::Date, message_id::generate_message_id_header};
use mail_parser::{HeaderName, HeaderValue};

use crate::{
    Context, Envelope, Event, Recipient,
    compiler::grammar::{
        AddressPart,
        actions::{
            action_redirect::{ByTime, Notify, Ret},
            action_vacation::{Period, TestVacation, Vacation},
        },
    },
    runtime::tests::TestResult,
};

pub(crate) const MAX_SUBJECT_LEN: usize = 256;

impl TestVacation {
    pub(crate) fn exec(&self, ctx: &mut Context) -> TestResult {
        let mut from = String::new();
        let mut user_addresses = Vec::new();
        // sievegate patch (PATCHES.md #14): set again below when a user address is found.
        ctx.vacation_reply_from = None;

        if ctx.num_out_messages >= ctx.runtime.max_out_messages {
            return TestResult::Bool(false);
        }

        for (name, value) in &ctx.envelope {
            if !value.is_empty() {
                match name {
                    Envelope::From => {
                        from = value.to_string().to_ascii_lowercase();
                    }
                    Envelope::To if !ctx.runtime.vacation_use_orig_rcpt => {
                        user_addresses.push(value.to_string());
                    }
                    Envelope::Orcpt if ctx.runtime.vacation_use_orig_rcpt => {
                        user_addresses.push(value.to_string());
                    }
                    _ => (),
                }
            }
        }

        // Add user specified addresses
        // sievegate patch (PATCHES.md #14): this order (envelope recipient, `:addresses`,
        // the user's address) is the order of preference for the reply's From, as
        // Pigeonhole's (recipient, `:addresses`, `sieve_user_email`).
        for address in &self.addresses {
            let address = ctx.eval_value(address).to_string().into_owned();
            if !address.is_empty() {
                user_addresses.push(address.into());
            }
        }
        if !ctx.user_address.is_empty() {
            user_addresses.push(ctx.user_address.as_ref().into());
        }

        // Do not reply to own address
        if from.is_empty()
            || user_addresses.is_empty()
            || from.starts_with("mailer-daemon")
            || from.starts_with("owner-")
            || from.contains("-request@")
            || user_addresses.iter().any(|a| a.eq_ignore_ascii_case(&from))
        {
            return TestResult::Bool(false);
        }

        // Check headers
        // sievegate patch (PATCHES.md #14): which user address was found where, as
        // (field rank, address rank), the smallest wins: Pigeonhole looks through To, Cc,
        // Bcc, Resent-To, Resent-Cc, Resent-Bcc in that order, and in each for the
        // addresses in the order above (RFC 5230 erratum 2035: reply from the address the
        // message was sent to).
        let mut found: Option<(usize, usize)> = None;
        let mut received_count = 0;
        for header in &ctx.message.parts[0].headers {
            match &header.name {
                HeaderName::To
                | HeaderName::Cc
                | HeaderName::Bcc
                | HeaderName::ResentTo
                | HeaderName::ResentBcc
                | HeaderName::ResentCc => {
                    let field_rank = match &header.name {
                        HeaderName::To => 0,
                        HeaderName::Cc => 1,
                        HeaderName::Bcc => 2,
                        HeaderName::ResentTo => 3,
                        HeaderName::ResentCc => 4,
                        _ => 5,
                    };
                    ctx.find_addresses(header, &AddressPart::All, |addr| {
                        if let Some(rank) = user_addresses
                            .iter()
                            .position(|a| a.eq_ignore_ascii_case(addr))
                            && found.is_none_or(|best| (field_rank, rank) < best)
                        {
                            found = Some((field_rank, rank));
                        }
                        // Look at every address of the field.
                        false
                    });
                }
                HeaderName::ListArchive
                | HeaderName::ListHelp
                | HeaderName::ListId
                | HeaderName::ListOwner
                | HeaderName::ListPost
                | HeaderName::ListSubscribe
                | HeaderName::ListUnsubscribe => {
                    // Do not send vacation responses to lists
                    return TestResult::Bool(false);
                }
                HeaderName::Received => {
                    received_count += 1;
                }
                // sievegate patch (PATCHES.md #9): mail-parser names this field
                // `HeaderName::AutoSubmitted`; the `Other` arm below never saw it.
                HeaderName::AutoSubmitted
                    if header
                        .value
                        .as_text()
                        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("no")) =>
                {
                    return TestResult::Bool(false);
                }
                HeaderName::Other(header_name) => {
                    if header_name.eq_ignore_ascii_case("Auto-Submitted") {
                        if header
                            .value
                            .as_text()
                            .is_none_or(|v| !v.eq_ignore_ascii_case("no"))
                        {
                            return TestResult::Bool(false);
                        }
                    } else if header_name.eq_ignore_ascii_case("X-Auto-Response-Suppress") {
                        if header.value.as_text().is_some_and(|v| {
                            v.to_ascii_lowercase()
                                .split(',')
                                .any(|v| ["all", "oof"].contains(&v.trim()))
                        }) {
                            return TestResult::Bool(false);
                        }
                    } else if header_name.eq_ignore_ascii_case("Precedence")
                        && header
                            .value
                            .as_text()
                            // sievegate patch (PATCHES.md #9): RFC 3834 §2 names
                            // list and junk beside bulk.
                            .is_some_and(|v| {
                                ["bulk", "list", "junk"]
                                    .iter()
                                    .any(|p| v.trim().eq_ignore_ascii_case(p))
                            })
                    {
                        return TestResult::Bool(false);
                    }
                }
                _ => (),
            }
        }

        // No user address found in header or possible loop
        let found_rcpt = found.is_some();
        ctx.vacation_reply_from = found
            .and_then(|(_, rank)| user_addresses.get(rank))
            .map(|address| address.to_string());
        if found_rcpt && received_count <= ctx.runtime.max_received_headers {
            TestResult::Event {
                event: Event::DuplicateId {
                    id: if let Some(handle) = &self.handle {
                        format!("_v{}{}", from, ctx.eval_value(handle).to_string())
                    } else {
                        format!("_v{}{}", from, ctx.eval_value(&self.reason).to_string())
                    },
                    expiry: match &self.period {
                        Period::Days(days) => days * 86400,
                        Period::Seconds(seconds) => *seconds,
                        Period::Default => ctx.runtime.default_vacation_expiry,
                    },
                    last: false,
                },
                is_not: true,
            }
        } else {
            TestResult::Bool(false)
        }
    }
}

impl Vacation {
    pub(crate) fn exec(&self, ctx: &mut Context) {
        let mut vacation_to = Cow::from("");

        for (name, value) in &ctx.envelope {
            if !value.is_empty() && name == &Envelope::From {
                vacation_to = value.to_string();
                break;
            }
        }

        // Check headers
        let mut vacation_subject = if let Some(subject) = &self.subject {
            ctx.eval_value(subject)
        } else {
            "".into()
        };

        // Check headers
        let mut message_id = None;
        // sievegate patch (PATCHES.md #19): the recipient's display name and the
        // References ids as parsed values, never raw bytes of the incoming header.
        let mut vacation_to_name: Option<String> = None;
        let mut references: Vec<String> = Vec::new();
        for header in &ctx.message.parts[0].headers {
            match &header.name {
                HeaderName::Subject if vacation_subject.is_empty() => {
                    if let Some(subject) = header.value.as_text() {
                        let mut vacation_subject_ = String::with_capacity(MAX_SUBJECT_LEN);
                        let mut iter = ctx
                            .runtime
                            .vacation_subject_prefix
                            .chars()
                            .chain(subject.chars())
                            .enumerate();

                        #[allow(clippy::while_let_on_iterator)]
                        while let Some((pos, char)) = iter.next() {
                            if pos < MAX_SUBJECT_LEN {
                                vacation_subject_.push(char);
                            } else {
                                break;
                            }
                        }
                        if iter.next().is_some() {
                            vacation_subject_.push('…');
                        }
                        vacation_subject = vacation_subject_.into();
                    }
                }
                HeaderName::MessageId => {
                    message_id = header.value.as_text();
                }
                HeaderName::References => match &header.value {
                    HeaderValue::TextList(ids) => {
                        references = ids.iter().map(|id| id.to_string()).collect();
                    }
                    HeaderValue::Text(id) => references = vec![id.to_string()],
                    _ => (),
                },
                HeaderName::From | HeaderName::Sender if vacation_to_name.is_none() => {
                    if let HeaderValue::Address(address) = &header.value {
                        vacation_to_name = address
                            .iter()
                            .find(|a| {
                                a.address()
                                    .is_some_and(|a| a.eq_ignore_ascii_case(vacation_to.as_ref()))
                            })
                            .and_then(|a| a.name())
                            .map(str::to_string);
                    }
                }
                _ => (),
            }
        }

        // Build message
        // sievegate patch (PATCHES.md #14): without `:from`, reply from the user's address
        // the vacation test found in the message (with the user's name when it is the
        // user's own address).
        let reply_from = ctx.vacation_reply_from.take();
        let vacation_from = if let Some(from) = &self.from {
            ctx.eval_value(from)
        } else if let Some(address) =
            reply_from.filter(|a| !a.eq_ignore_ascii_case(ctx.user_address.as_ref()))
        {
            address.into()
        } else if !ctx.user_address.is_empty() {
            ctx.user_from_field().into()
        } else if let Some(addr) = ctx
            .envelope
            .iter()
            .find_map(|(n, v)| if n == &Envelope::To { Some(v) } else { None })
        {
            addr.to_string().into()
        } else {
            "".into()
        };
        if vacation_subject.is_empty() {
            vacation_subject = ctx.runtime.vacation_default_subject.as_ref().into();
        }
        let vacation_body = ctx.eval_value(&self.reason);
        if let Some(id) = message_id {
            // RFC 5322 §3.6.4: the parent's References, then the parent's Message-ID.
            references.push(id.to_string());
        }
        let parts = crate::GeneratedMessage {
            from: vacation_from.to_string().into_owned(),
            to: vec![vacation_to.to_string()],
            to_name: vacation_to_name,
            cc: Vec::new(),
            subject: vacation_subject.to_string().into_owned(),
            in_reply_to: message_id.map(str::to_string),
            references,
            body: vacation_body.to_string().into_owned(),
            mime: self.mime,
            importance: None,
            hostname: ctx.runtime.local_hostname.to_string(),
        };

        // sievegate patch (PATCHES.md #19): sieve-rs's own bytes (a caller may file them
        // with `:fcc`) go through `write_header`, which drops control characters, so no
        // value can start a header line of its own; the ids are written as `<id>` only.
        let mut message = Vec::with_capacity(parts.body.len() + 512);
        write_header(&mut message, "From: ", &parts.from);
        match &parts.to_name {
            Some(name) => write_header(
                &mut message,
                "To: ",
                &format!("\"{}\" <{}>", name.replace(['"', '\\'], ""), parts.to[0]),
            ),
            None => write_header(&mut message, "To: ", &parts.to[0]),
        }
        write_header(&mut message, "Subject: ", &parts.subject);
        if let Some(id) = &parts.in_reply_to {
            write_header(&mut message, "In-Reply-To: ", &format!("<{id}>"));
            let ids: Vec<String> = parts.references.iter().map(|r| format!("<{r}>")).collect();
            write_header(&mut message, "References: ", &ids.join(" "));
        }
        message.extend_from_slice(b"Date: ");
        message.extend_from_slice(Date::now().to_rfc822().as_bytes());
        message.extend_from_slice(b"\r\n");

        message.extend_from_slice(b"Message-ID: ");
        generate_message_id_header(&mut message, &ctx.runtime.local_hostname).unwrap();
        message.extend_from_slice(b"\r\n");

        write_header(&mut message, "Auto-Submitted: ", "auto-replied");
        // sievegate patch (PATCHES.md #16): RFC 2045 §4; with `:mime` the reason brings
        // the entity's own Content-Type, which needs this field just as much.
        write_header(&mut message, "MIME-Version: ", "1.0");
        if !self.mime {
            message.extend_from_slice(b"Content-type: text/plain; charset=utf-8\r\n\r\n");
        }
        message.extend_from_slice(parts.body.as_bytes());

        // Add action
        let mut events = Vec::with_capacity(3);
        ctx.last_message_id += 1;
        ctx.num_out_messages += 1;
        events.push(Event::CreatedMessage {
            message_id: ctx.last_message_id,
            message,
            // sievegate patch (PATCHES.md #2)
            origin: crate::MessageOrigin::Vacation,
            parts: Some(Box::new(parts)),
        });
        events.push(Event::SendMessage {
            recipient: Recipient::Address(vacation_to.to_string()),
            notify: Notify::Never,
            return_of_content: Ret::Default,
            by_time: ByTime::None,
            message_id: ctx.last_message_id,
        });

        // File carbon copy
        if let Some(fcc) = &self.fcc {
            events.push(Event::FileInto {
                folder: ctx.eval_value(&fcc.mailbox).to_string().into_owned(),
                flags: ctx.get_local_flags(&fcc.flags),
                mailbox_id: fcc
                    .mailbox_id
                    .as_ref()
                    .map(|m| ctx.eval_value(m).to_string().into_owned()),
                special_use: fcc
                    .special_use
                    .as_ref()
                    .map(|s| ctx.eval_value(s).to_string().into_owned()),
                create: fcc.create,
                message_id: ctx.last_message_id,
            });
        }
        ctx.queued_events = events.into_iter();
    }
}

/// sievegate patch (PATCHES.md #19): the value goes through [`clean_header_value`], so a
/// CR, LF or NUL from the message or the script never ends the field early.
pub(crate) fn write_header(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(clean_header_value(value).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// sievegate patch (PATCHES.md #19): `value` without control characters (CR, LF, NUL, TAB,
/// DEL, C1), cut to 998 bytes (RFC 5322 §2.1.1) at a character boundary.
pub(crate) fn clean_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(998));
    for c in value.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > 998 {
            break;
        }
        out.push(c);
    }
    out
}
