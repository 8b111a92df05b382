//! After the final dot: hand the message to the delivery pipeline and turn each recipient's
//! outcome into its reply, in RCPT order. Nothing here decides what happens to mail.

use std::sync::Arc;

use super::{reply, reply::Reply, Peer, Transaction, Xforward};
use crate::delivery::{self, Client, Deferral, Envelope, RcptOutcome, Services};
use crate::spool::MessageBytes;

/// What the session knows about the client, copied for the delivery.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub lhlo: Option<String>,
    pub xforward: Xforward,
    pub peer: Peer,
    /// The peer is in `server.xforward_from`.
    pub trusted: bool,
}

/// Delivers one message; returns one reply per recipient of `txn`, in order.
pub(super) async fn deliver(
    services: &Arc<Services>,
    ctx: &Context,
    txn: &Transaction,
    message: MessageBytes,
) -> Vec<Reply> {
    let x = &ctx.xforward;
    let envelope = Envelope {
        // The `Received` id and the id in the replies: the transaction's, not the session's.
        id: txn.id.clone(),
        mail_from: txn.mail_from.clone(),
        rcpts: txn.rcpts.clone(),
        helo: ctx.lhlo.clone(),
        peer_addr: match ctx.peer {
            Peer::Tcp(addr) => Some(addr.ip().to_string()),
            Peer::Unix => None,
        },
        client: Client {
            name: x.name.clone(),
            addr: x.addr,
            helo: x.helo.clone(),
            queue_id: x.ident.clone(),
        },
        client_trusted: ctx.trusted,
        started: txn.started,
        default_mailbox: None,
    };
    let outcomes = delivery::deliver_admitted(services, &envelope, &txn.unknown, message).await;
    txn.rcpts
        .iter()
        .zip(&outcomes)
        .map(|(rcpt, outcome)| to_reply(&rcpt.original, &envelope.id, outcome))
        .collect()
}

/// The reply for one recipient's outcome.
fn to_reply(rcpt: &str, id: &str, outcome: &RcptOutcome) -> Reply {
    match outcome {
        RcptOutcome::Delivered { .. } => reply::delivered(rcpt, id),
        RcptOutcome::Discarded => reply::discarded(rcpt, id),
        RcptOutcome::Rejected { reason, .. } => reply::rejected(rcpt, reason),
        RcptOutcome::Failed { .. } if outcome.is_no_space() => reply::mailbox_full(rcpt),
        RcptOutcome::Failed { .. }
        | RcptOutcome::Deferred(Deferral::Internal | Deferral::QuarantineFailed) => {
            reply::local_error(rcpt)
        }
        RcptOutcome::Deferred(Deferral::ScanFailed) => reply::scan_failed(rcpt),
        RcptOutcome::Deferred(Deferral::RedirectFailed) => reply::redirect_failed(rcpt),
        RcptOutcome::UnknownUser => reply::unknown_user(rcpt),
    }
}
