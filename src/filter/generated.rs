//! Messages a script generates (a vacation reply, a `notify :method "mailto:"`) turned
//! into what sievegate queues: the envelope recipients that are plain addresses, and the
//! bytes built by `outbound::compose` from the typed parts sieve-rs hands over, never from
//! the script's text as is. The collector ([`super::collect`]) calls it when the script
//! sends; apart from it, because building a message is its own concern (addresses checked,
//! header values sanitised, RFC 3834 `Auto-Submitted`) and not the event bookkeeping.

use sieve::{GeneratedMessage, Recipient as SieveRecipient};

use super::plan::SendKind;
use crate::outbound::compose;

/// A generated message ready to queue: envelope recipients, bytes, refused recipients.
type Built = (Vec<String>, Vec<u8>, Vec<String>);

/// Builds the message sievegate sends for a generated message from its `parts`
/// (`outbound::compose`): the envelope recipients that are plain addresses, the bytes, and
/// the recipients refused (sanitised, for a note). `Err` when the `From` is not a plain
/// address or no recipient is left.
pub(super) fn build_generated(
    kind: SendKind,
    envelope_to: &[String],
    parts: &GeneratedMessage,
) -> Result<Built, String> {
    let (to, dropped): (Vec<&String>, Vec<&String>) = envelope_to
        .iter()
        .partition(|a| crate::mail::address::is_addr_spec(a.trim()));
    let to: Vec<String> = to.into_iter().map(|a| a.trim().to_string()).collect();
    let dropped: Vec<String> = dropped
        .into_iter()
        .map(|a| {
            format!(
                "{:?}",
                crate::mail::text::sanitize(a, 100, crate::mail::text::Charset::Utf8)
            )
        })
        .collect();
    if to.is_empty() {
        return Err("no plain recipient address".into());
    }
    let from = compose::Mailbox::parse(&parts.from).map_err(|e| format!("From: {e}"))?;
    // Shown recipients: those that are valid; the vacation reply names its one recipient.
    let shown = |list: &[String]| -> Vec<compose::Mailbox> {
        list.iter()
            .filter_map(|a| compose::Mailbox::parse(a).ok())
            .collect()
    };
    let mut shown_to = match (&parts.to_name, parts.to.first()) {
        (Some(name), Some(address)) => compose::Mailbox::new(address, Some(name))
            .ok()
            .into_iter()
            .collect(),
        _ => shown(&parts.to),
    };
    if shown_to.is_empty() {
        // mailto with only cc/bcc, or refused `To` values: name the envelope recipients.
        shown_to = to
            .iter()
            .filter_map(|a| compose::Mailbox::new(a, None).ok())
            .collect();
    }
    let (auto_submitted, body) = match kind {
        SendKind::Vacation => (
            compose::AutoSubmitted::Replied,
            if parts.mime {
                compose::Body::from_mime(&parts.body)
            } else {
                compose::Body::text(&parts.body)
            },
        ),
        SendKind::Notify => (
            compose::AutoSubmitted::Notified,
            compose::Body::text(&parts.body),
        ),
    };
    let message = compose::Generated {
        from,
        to: shown_to,
        cc: shown(&parts.cc),
        subject: parts.subject.clone(),
        in_reply_to: parts.in_reply_to.as_deref().and_then(compose::MsgId::parse),
        references: parts
            .references
            .iter()
            .filter_map(|r| compose::MsgId::parse(r))
            .collect(),
        auto_submitted,
        importance: parts.importance.map(|i| match i {
            sieve::Importance::High => compose::Importance::High,
            sieve::Importance::Normal => compose::Importance::Normal,
            sieve::Importance::Low => compose::Importance::Low,
        }),
        body,
        hostname: parts.hostname.clone(),
    };
    let bytes = message.build().map_err(|e| e.to_string())?;
    Ok((to, bytes, dropped))
}

/// The plain addresses of a generated message's recipient; `None` for a list.
pub(super) fn addresses(recipient: &SieveRecipient) -> Option<Vec<String>> {
    match recipient {
        SieveRecipient::Address(address) => Some(vec![address.clone()]),
        SieveRecipient::Group(group) => Some(group.clone()),
        SieveRecipient::List(_) => None,
    }
}

/// A generated message's recipient for notes: `<a>`, `list NAME`, or the group's addresses.
pub(super) fn recipient_text(recipient: &SieveRecipient) -> String {
    match recipient {
        SieveRecipient::Address(address) => format!("<{address}>"),
        SieveRecipient::List(list) => format!("list {list}"),
        SieveRecipient::Group(group) => group
            .iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
