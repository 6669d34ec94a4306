//! Message requests and invite refusals (SPEC.md 8.1).
//!
//! A stranger's first text or introduction makes it a *request*: a contact record with
//! `request` set, its messages stored in a conversation of its own, but kept out of the contact
//! and conversation lists. Until the user accepts it, it learns nothing of this account: it
//! gets delivery receipts for its texts, but no read receipt, no introduction and no delivery
//! token; writing to it is refused (`message_request`). `requests.accept` makes it a contact
//! (introduction, token, the read receipts held back); `requests.decline` forgets it (what it
//! writes next is a new request); `requests.block` keeps it, blocked, so what it sends is
//! dropped, also after a restart. Adding it yourself (`contacts.add`, or accepting its invite)
//! accepts it too.
//!
//! Invites are one use: an introduction presenting a token that is not one of our open
//! invites makes its sender a request like any stranger's and is answered with an *invite
//! refused* Content; a contact whose daemon refused our acceptance of its invite is marked so
//! ([`receive_refusal`]) until it introduces itself or we accept a new invite from it.

use api::ErrorCode;
use api::events::EventKind;
use api::types::{Contact, Direction, MessageRequest, RequestList};
use protocol::codec::{Decode, Encode};
use protocol::envelope::{Content, ContentKind};
use protocol::invite_refusal::{InviteRefusal, RefusalReason};

use super::contacts::view;
use super::messaging::history::last_message;
use super::records::{MessageRecord, tables};
use super::unlocked::{ConvId, Unlocked};
use super::{CoreState, Txn};
use crate::error::{ApiError, ApiResult, PeerError, ReceiveError};
use crate::store::Batch;

/// The most message ids one read receipt cites (SPEC.md 8.1).
const MAX_IDS_PER_RECEIPT: usize = 4096;

/// What a contact record's `invite_refused` byte says, for the API (`None`: not refused).
pub fn refusal_reason(byte: u8) -> Option<String> {
    if byte == 0 {
        return None;
    }
    Some(match RefusalReason::from_byte(byte) {
        Ok(reason) => reason.describe().to_owned(),
        Err(_) => "for a reason this version does not know".to_owned(),
    })
}

/// The request `name` names; a contact that is not a request is `not_found` here.
fn find(unlocked: &Unlocked, name: &str) -> ApiResult<ConvId> {
    let id = unlocked.find_contact(name)?;
    let record = unlocked.contact(&id)?;
    if !record.request {
        return Err(ApiError::not_found(format!(
            "a message request named {:?} ({} is a contact, not a request)",
            name.trim(),
            record.alias
        )));
    }
    Ok(id)
}

/// Refuses writing to a request (`message_request`) or to a contact that refused our
/// acceptance of its invite (`invite_refused`).
pub fn check_writable(unlocked: &Unlocked, id: &ConvId) -> ApiResult<()> {
    let record = unlocked.contact(id)?;
    if record.request {
        return Err(ApiError::new(
            ErrorCode::MessageRequest,
            format!(
                "{0} is a message request (a stranger who wrote first): accept it with \
                 `chatctl requests accept {0}` to write to it",
                record.alias
            ),
        ));
    }
    if let Some(reason) = refusal_reason(record.invite_refused) {
        return Err(ApiError::new(
            ErrorCode::InviteRefused,
            format!(
                "{0}'s daemon refused the invite you accepted from {0} ({reason}), so {0} has \
                 not added you: ask {0} for a new invite (what you sent reaches {0} only as a \
                 message request)",
                record.alias
            ),
        ));
    }
    Ok(())
}

/// `requests.list`: the open requests (or, with `blocked`, the blocked ones), newest activity
/// first.
pub fn list(unlocked: &Unlocked, blocked: bool) -> ApiResult<RequestList> {
    let mut found = Vec::new();
    for (id, record) in &unlocked.contacts {
        if !record.request || record.blocked != blocked {
            continue;
        }
        let meta = unlocked.conversations.get(id).copied().unwrap_or_default();
        let last_message = last_message(unlocked, id, &record.alias)?;
        found.push((
            meta.last_activity_ms.max(record.added_at_ms),
            MessageRequest {
                contact: view(record),
                messages: meta.total,
                unread: meta.unread,
                last_message,
            },
        ));
    }
    found.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.contact.alias.cmp(&b.1.contact.alias))
    });
    Ok(RequestList {
        requests: found.into_iter().map(|(_, r)| r).collect(),
    })
}

/// `requests.accept`.
pub fn accept(
    state: &mut CoreState,
    txn: &mut Txn,
    name: &str,
    alias: Option<&str>,
) -> ApiResult<Contact> {
    let id = find(state.unlocked()?, name)?;
    accept_id(state, txn, id, alias, None, true)?;
    Ok(view(state.unlocked()?.contact(&id)?))
}

/// Makes the request `id` a contact (also unblocked), renamed to `alias` if given: its delivery
/// token is `our_token` (an invite's) or a new one, registered at the home relay; with
/// `introduce`, our introduction goes to it; read receipts for what the user read go after it.
/// A `contact.added` event says so.
pub(crate) fn accept_id(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    alias: Option<&str>,
    our_token: Option<[u8; 16]>,
    introduce: bool,
) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let mut record = unlocked.contact(&id)?.clone();
    if let Some(alias) = alias {
        Unlocked::check_alias(alias)?;
        super::alias::ensure_free(unlocked, alias, Some(&id))?;
        alias.clone_into(&mut record.alias);
    }
    let read = read_messages(unlocked, &id)?;
    record.request = false;
    record.blocked = false;
    let token = our_token
        .or(record.our_token)
        .unwrap_or_else(super::reach::new_token);
    record.our_token = Some(token);
    tracing::info!(alias = %record.alias, "a message request was accepted");
    let contact = view(&record);
    super::contacts::save(state, txn, id, record, EventKind::ContactAdded { contact })?;
    let unlocked = state.unlocked()?;
    super::reach::register_token(unlocked, txn, &token, true);
    if introduce {
        super::contacts::introduce_to(unlocked, txn, id, None, Some(token))?;
    }
    for ids in read.chunks(MAX_IDS_PER_RECEIPT) {
        let body: Vec<u8> = ids.iter().flatten().copied().collect();
        super::messaging::outbox::queue_control(unlocked, txn, id, ContentKind::ReadReceipt, body)?;
    }
    Ok(())
}

/// The ids of the messages of conversation `id` the user has read (their read receipts were
/// held while it was a request).
fn read_messages(unlocked: &Unlocked, id: &ConvId) -> ApiResult<Vec<[u8; 16]>> {
    let mut read = Vec::new();
    for item in unlocked.store.scan(tables::MESSAGES, id) {
        let (_, value) = item?;
        let record = MessageRecord::decode(&value).map_err(|_| ApiError::store("a message"))?;
        if record.direction == Direction::Incoming && record.read {
            read.push(record.message_id);
        }
    }
    Ok(read)
}

/// `requests.decline`: forgets the request and its messages, keeping the sessions (what it
/// writes next opens, and is a new request). Nothing is sent to it.
pub fn decline(state: &mut CoreState, txn: &mut Txn, name: &str) -> ApiResult<()> {
    let id = find(state.unlocked()?, name)?;
    tracing::info!("a message request was declined");
    super::contacts::forget(state, txn, id, false)
}

/// `requests.block`: the request stays, blocked: what it sends is dropped unanswered.
pub fn block(state: &mut CoreState, txn: &mut Txn, name: &str) -> ApiResult<Contact> {
    let id = find(state.unlocked()?, name)?;
    super::contacts::set_blocked_id(state, txn, id, true)
}

/// Answers an introduction that presented `token`, which is not one of our open invites, with
/// an invite refusal to the conversation `id` (the sender, now a request).
pub(crate) fn refuse_invite(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    id: ConvId,
    token: [u8; 16],
    reason: RefusalReason,
) -> ApiResult<()> {
    tracing::info!(
        reason = reason.describe(),
        "refusing an introduction's invite token"
    );
    let body = InviteRefusal {
        invite_token: token,
        reason,
    }
    .to_bytes();
    super::messaging::outbox::queue_control(unlocked, txn, id, ContentKind::InviteRefused, body)
}

/// An invite refusal from `sender`: handled only from a contact (one added from its invite);
/// it is marked refused, with an `invite.refused` event, until it introduces itself.
pub(crate) fn receive_refusal(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    content: &Content,
) -> Result<(), ReceiveError> {
    let refusal = InviteRefusal::from_bytes(&content.body).map_err(PeerError::BadInviteRefusal)?;
    let unlocked = state.unlocked()?;
    let Some(id) = unlocked.by_identity.get(&sender).copied() else {
        tracing::debug!("ignoring an invite refusal from a stranger");
        return Ok(());
    };
    let Some(record) = unlocked.contacts.get_mut(&id) else {
        return Ok(());
    };
    if record.request || record.blocked {
        tracing::debug!("ignoring an invite refusal from a request or a blocked contact");
        return Ok(());
    }
    tracing::warn!(
        alias = %record.alias,
        reason = refusal.reason.describe(),
        "a contact refused the invite this account accepted"
    );
    record.invite_refused = refusal.reason.to_byte();
    batch.put(tables::CONTACTS, &id, &record.encode());
    let kind = EventKind::InviteRefused {
        alias: record.alias.clone(),
        reason: refusal.reason.describe().to_owned(),
    };
    super::messaging::event_log::record_event(state, batch, txn, kind)?;
    Ok(())
}
