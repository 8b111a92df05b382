//! The collector ([`crate::filter::collect`]): events in, outcome and answers out.

use sieve::{Event, GeneratedMessage, Input, MessageOrigin, Recipient as SieveRecipient};

use crate::filter::collect::Collector;
use crate::filter::plan::Action;
use crate::filter::Mailboxes;

fn created(message_id: usize, origin: MessageOrigin) -> Event {
    Event::CreatedMessage {
        message_id,
        // Content a sender controls: it must not matter.
        message: b"Auto-Submitted: auto-replied\r\n\r\nhi".to_vec(),
        origin,
        parts: (origin != MessageOrigin::Edited).then(|| {
            Box::new(GeneratedMessage {
                from: "bob@example.test".into(),
                to: vec!["carol@example.net".into()],
                subject: "s".into(),
                body: "b".into(),
                ..GeneratedMessage::default()
            })
        }),
    }
}

fn fileinto(folder: &str, message_id: usize) -> Event {
    Event::FileInto {
        folder: folder.to_string(),
        flags: vec![],
        mailbox_id: None,
        special_use: None,
        create: false,
        message_id,
    }
}

fn send(message_id: usize) -> Event {
    send_to(message_id, "carol@example.net")
}

fn send_to(message_id: usize, to: &str) -> Event {
    Event::SendMessage {
        recipient: SieveRecipient::Address(to.into()),
        notify: sieve::compiler::grammar::actions::action_redirect::Notify::Never,
        return_of_content: sieve::compiler::grammar::actions::action_redirect::Ret::Default,
        by_time: sieve::compiler::grammar::actions::action_redirect::ByTime::None,
        message_id,
    }
}

/// Name, events, actions (folder names or the action's line), unsent redirect kept,
/// edited, a note some note must contain.
type OriginCase = (
    &'static str,
    Vec<Event>,
    Vec<&'static str>,
    bool,
    bool,
    &'static str,
);

/// Events → (stored folders, redirected, edited, notes): messages are told apart by what
/// created them, never by their headers.
#[test]
fn messages_are_told_apart_by_origin() {
    let cases: Vec<OriginCase> = vec![
        (
            "edited incoming message with an auto-reply header is filed",
            vec![created(1, MessageOrigin::Edited), fileinto("Tagged", 1)],
            vec!["Tagged"],
            false,
            true,
            "",
        ),
        (
            "original message is filed",
            vec![fileinto("Tagged", 0)],
            vec!["Tagged"],
            false,
            false,
            "",
        ),
        (
            "vacation copy is skipped",
            vec![created(1, MessageOrigin::Vacation), fileinto("Sent", 1)],
            vec![],
            false,
            false,
            "copy of a generated message",
        ),
        (
            "notification copy is skipped",
            vec![created(1, MessageOrigin::Notification), fileinto("Sent", 1)],
            vec![],
            false,
            false,
            "copy of a generated message",
        ),
        (
            "vacation reply is not a redirect",
            vec![created(1, MessageOrigin::Vacation), send(1)],
            vec!["vacation to carol@example.net"],
            false,
            false,
            "",
        ),
        (
            "notification is not a redirect",
            vec![created(1, MessageOrigin::Notification), send(1)],
            vec!["notify to carol@example.net"],
            false,
            false,
            "",
        ),
        (
            "edited message sent on is a redirect of the edited message",
            vec![created(1, MessageOrigin::Edited), send(1)],
            vec!["redirect <carol@example.net> (edited)"],
            false,
            false,
            "",
        ),
        (
            "redirect to a quoted local part with line ends is refused and kept",
            vec![send_to(
                0,
                "\"a\r\nRCPT TO:<injected@remote.test>\r\n\"@remote.test",
            )],
            vec![],
            true,
            false,
            "refused: not a plain address: kept",
        ),
        (
            "vacation to an address with a line end is not sent",
            vec![
                created(1, MessageOrigin::Vacation),
                send_to(1, "carol@example.net\r\nBcc: x@y"),
            ],
            vec![],
            false,
            false,
            "not sent",
        ),
        (
            "original message sent on is a redirect",
            vec![send(0)],
            vec!["redirect <carol@example.net>"],
            false,
            false,
            "",
        ),
    ];
    for (name, events, folders, redirected, edited, note) in cases {
        let (mut notes, mut claims) = (Vec::new(), Vec::new());
        let mailboxes = Mailboxes::default();
        let mut collector = Collector::new(&mut notes, &mut claims, None, &mailboxes);
        for event in events {
            assert_eq!(collector.on_event(event), Ok(Input::True), "{name}");
        }
        let outcome = collector.finish();
        let stored: Vec<String> = outcome
            .actions
            .iter()
            .map(|a| match a {
                Action::Store { folder, .. } => folder.to_string(),
                // The first line: the generated text follows on the next ones.
                other => other.to_string().lines().next().unwrap_or("").to_string(),
            })
            .collect();
        assert_eq!(stored, folders, "{name}");
        assert_eq!(outcome.redirected, redirected, "{name}");
        let stored_edited = outcome.actions.iter().any(|a| {
            matches!(
                a,
                Action::Store {
                    edited: Some(_),
                    ..
                }
            )
        });
        assert_eq!(stored_edited, edited, "{name}");
        assert!(
            note.is_empty() || notes.iter().any(|n| n.contains(note)),
            "{name}: {notes:?}"
        );
    }
}
