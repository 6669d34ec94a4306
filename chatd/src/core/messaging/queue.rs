//! The user's view of and hand on the outbox: `outbox.list` (every queued text with why it
//! waits), `outbox.cancel`, `outbox.retry`, `messages.resend`, and failing a conversation's
//! queued messages at once when its relay says the recipient does not exist there.

use std::collections::HashSet;

use api::ErrorCode;
use api::events::EventKind;
use api::types::{
    Cancelled, ConnectionState, MessageStatus, OutboxList, OutboxMessage, OutboxState, Retried,
    SentMessage, Trust, message_id_to_string, parse_message_id,
};
use tokio::time::Instant;

use crate::core::reach;
use crate::core::records::{OutboxEntry, OutboxKind, tables};
use crate::core::unlocked::{ConvId, Unlocked};
use crate::core::{CoreState, Txn, account};
use crate::error::{ApiError, ApiResult};

use super::event_log::record_event;
use super::history::outgoing_message;
use super::outbox;

/// The failure recorded for a message taken out of the outbox by `outbox.cancel`.
pub const CANCELLED: &str = "cancelled";

/// `outbox.list`: every queued text, oldest first, with why it waits.
pub fn list(state: &mut CoreState) -> ApiResult<OutboxList> {
    let connection = state.connection;
    let unlocked = state.unlocked()?;
    let now = Instant::now();
    let now_ms = unlocked.clock.now_ms();
    let mut messages = Vec::new();
    let mut control_messages = 0u64;
    // Conversations with an earlier entry still queued: a later one waits for it (first in,
    // first out per conversation, SPEC.md 8.1).
    let mut earlier: HashSet<ConvId> = HashSet::new();
    for (seq, slot) in &unlocked.outbox {
        let first = earlier.insert(slot.conversation);
        if slot.kind != OutboxKind::Text {
            control_messages += 1;
            continue;
        }
        let Some(contact) = unlocked.contacts.get(&slot.conversation) else {
            continue;
        };
        let route = reach::current_route(unlocked, &slot.conversation, contact);
        let queued_at_ms = unlocked
            .store
            .get(tables::OUTBOX, &seq.to_be_bytes())?
            .and_then(|value| OutboxEntry::decode(&value).ok())
            .map_or(now_ms, |entry| entry.queued_at_ms);
        let retry_in_ms = slot
            .not_before
            .filter(|at| *at > now)
            .map(|at| u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX));
        let (standing, reason) = if slot.in_flight {
            (OutboxState::Sending, None)
        } else if contact.trust == Trust::KeyChanged {
            (
                OutboxState::Waiting,
                Some(format!(
                    "{}'s key changed: nothing is sent to it until you accept the new key \
                     (chatctl contact trust {})",
                    contact.alias, contact.alias
                )),
            )
        } else if contact.blocked {
            (
                OutboxState::Waiting,
                Some(format!(
                    "{} is blocked: unblock it, or cancel the message",
                    contact.alias
                )),
            )
        } else if route.home && !unlocked.online {
            let why = match connection {
                ConnectionState::Connecting => "connecting to",
                _ => "not connected to",
            };
            (
                OutboxState::Waiting,
                Some(format!("{why} the relay {}", route.url)),
            )
        } else if let Some(why) = unlocked
            .pending_holds
            .get(&slot.conversation)
            .or_else(|| unlocked.held.get(&slot.conversation))
        {
            (OutboxState::Waiting, Some(why.clone()))
        } else if !first {
            (
                OutboxState::Waiting,
                Some(format!(
                    "behind an earlier message to {}, which must leave first",
                    contact.alias
                )),
            )
        } else if retry_in_ms.is_some() {
            (
                OutboxState::Waiting,
                Some("waiting to retry after a failed attempt".to_owned()),
            )
        } else {
            (OutboxState::Ready, None)
        };
        messages.push(OutboxMessage {
            message_id: message_id_to_string(&slot.message_id),
            conversation: contact.alias.clone(),
            relay: route.url,
            queued_at_ms,
            age_ms: now_ms.saturating_sub(queued_at_ms),
            attempts: slot.attempts,
            state: standing,
            reason,
            retry_in_ms,
        });
    }
    Ok(OutboxList {
        messages,
        control_messages,
    })
}

/// `outbox.cancel`: takes a queued text out of the outbox; its record becomes `failed`
/// ("cancelled"), in one batch with the outbox entry's deletion.
pub fn cancel(state: &mut CoreState, txn: &mut Txn, message_id: &str) -> ApiResult<Cancelled> {
    let id = parse_id(message_id)?;
    let unlocked = state.unlocked()?;
    let Some((seq, slot)) = unlocked
        .outbox
        .iter()
        .find(|(_, s)| s.kind == OutboxKind::Text && s.message_id == id)
        .map(|(seq, slot)| (*seq, slot.clone()))
    else {
        return Err(not_queued(unlocked, &id, message_id)?);
    };
    if slot.in_flight {
        return Err(ApiError::new(
            ErrorCode::WrongMessageState,
            format!(
                "message {message_id} is being handed to the relay right now and cannot be \
                 cancelled"
            ),
        ));
    }
    let conversation = unlocked.contact(&slot.conversation)?.alias.clone();
    remove_entries(state, txn, &[seq], CANCELLED)?;
    tracing::info!("a queued message was cancelled");
    Ok(Cancelled {
        message_id: message_id_to_string(&id),
        conversation,
    })
}

/// `outbox.retry`: lets `message_id`'s conversation (or every queued message) go at the next
/// round instead of at its next retry, and dials relays that are not connected again now.
pub fn retry(state: &mut CoreState, message_id: Option<&str>) -> ApiResult<Retried> {
    let offline = state.connection != ConnectionState::Connected;
    let unlocked = state.unlocked()?;
    let conversations: HashSet<ConvId> = match message_id {
        Some(text) => {
            let id = parse_id(text)?;
            match unlocked
                .outbox
                .values()
                .find(|s| s.kind == OutboxKind::Text && s.message_id == id)
            {
                Some(slot) => HashSet::from([slot.conversation]),
                None => return Err(not_queued(unlocked, &id, text)?),
            }
        }
        None => unlocked.outbox.values().map(|s| s.conversation).collect(),
    };
    let messages = unlocked
        .outbox
        .values()
        .filter(|s| s.kind == OutboxKind::Text && conversations.contains(&s.conversation))
        .count() as u64;
    outbox::send_now(unlocked, &conversations);
    let relays: HashSet<String> = conversations
        .iter()
        .filter_map(|id| {
            let contact = unlocked.contacts.get(id)?;
            Some(reach::current_route(unlocked, id, contact))
        })
        .filter(|route| !route.home)
        .map(|route| route.url)
        .collect();
    for relay in &relays {
        unlocked.pool.redial(relay);
    }
    let home = conversations.iter().any(|id| {
        unlocked
            .contacts
            .get(id)
            .is_some_and(|c| reach::current_route(unlocked, id, c).home)
    });
    if home && offline {
        account::restart_link(state);
    }
    Ok(Retried { messages })
}

/// `messages.resend`: queues the text of a failed outgoing message again, as a new message at
/// the end of its conversation (the failed record stays as it is).
pub fn resend(state: &mut CoreState, txn: &mut Txn, message_id: &str) -> ApiResult<SentMessage> {
    let id = parse_id(message_id)?;
    let unlocked = state.unlocked()?;
    let Some((conversation, record)) = find_outgoing(unlocked, &id)? else {
        return Err(ApiError::not_found(format!(
            "outgoing message {message_id}"
        )));
    };
    if record.status != Some(MessageStatus::Failed) {
        let status = record.status.map_or("without a status".to_owned(), |s| {
            format!("{s:?}").to_lowercase()
        });
        let hint = if record.status == Some(MessageStatus::Pending) {
            " (it is still queued: `chatctl outbox retry` tries it now)"
        } else {
            ""
        };
        return Err(ApiError::new(
            ErrorCode::WrongMessageState,
            format!(
                "message {message_id} did not fail, it is {status}: only a failed message can be resent{hint}"
            ),
        ));
    }
    let text = record.text.clone();
    outbox::send_text(state, txn, conversation, &text)
}

/// The conversation's relay says it has no mailbox for the contact: every queued message of
/// the conversation that is not in flight leaves the outbox, its texts `failed` with `why`.
pub(crate) fn fail_conversation(
    state: &mut CoreState,
    txn: &mut Txn,
    conversation: ConvId,
    why: &str,
) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let seqs: Vec<u64> = unlocked
        .outbox
        .iter()
        .filter(|(_, s)| s.conversation == conversation && !s.in_flight)
        .map(|(seq, _)| *seq)
        .collect();
    unlocked.held.remove(&conversation);
    unlocked.pending_holds.remove(&conversation);
    unlocked.route_attempts.remove(&conversation);
    tracing::info!(messages = seqs.len(), reason = %why, "queued messages failed");
    remove_entries(state, txn, &seqs, why)
}

/// Deletes outbox entries and records their texts `failed` with `why` (one batch, one
/// `message.status` event per text).
fn remove_entries(state: &mut CoreState, txn: &mut Txn, seqs: &[u64], why: &str) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut events = Vec::new();
    for seq in seqs {
        let Some(slot) = unlocked.outbox.remove(seq) else {
            continue;
        };
        batch.delete(tables::OUTBOX, &seq.to_be_bytes());
        if slot.kind != OutboxKind::Text {
            continue;
        }
        let Some((location, mut record)) =
            outgoing_message(unlocked, &slot.conversation, &slot.message_id)?
        else {
            continue;
        };
        record.status = Some(MessageStatus::Failed);
        record.failure = Some(why.to_owned());
        batch.put(tables::MESSAGES, &location, &record.encode());
        events.push(EventKind::MessageStatus {
            message_id: message_id_to_string(&slot.message_id),
            conversation: unlocked
                .contact(&slot.conversation)
                .map(|c| c.alias.clone())
                .unwrap_or_default(),
            status: MessageStatus::Failed,
            failure: Some(why.to_owned()),
        });
    }
    for kind in events {
        record_event(state, &mut batch, txn, kind)?;
    }
    txn.commit(&store, batch)
}

/// The outgoing message `id` and its conversation, whichever conversation it is in (its id
/// names its conversation only to the one it belongs to: one block decryption per
/// conversation).
fn find_outgoing(
    unlocked: &Unlocked,
    id: &[u8; 16],
) -> ApiResult<Option<(ConvId, crate::core::records::MessageRecord)>> {
    for conversation in unlocked.contacts.keys() {
        if let Some((_, record)) = outgoing_message(unlocked, conversation, id)? {
            return Ok(Some((*conversation, record)));
        }
    }
    Ok(None)
}

/// The error for a message that is not in the outbox: `wrong_message_state` if it is an
/// outgoing message that already left or failed, `not_found` otherwise.
fn not_queued(unlocked: &Unlocked, id: &[u8; 16], text: &str) -> ApiResult<ApiError> {
    Ok(match find_outgoing(unlocked, id)? {
        Some((_, record)) => {
            let status = record
                .status
                .map_or("done".to_owned(), |s| format!("{s:?}").to_lowercase());
            ApiError::new(
                ErrorCode::WrongMessageState,
                format!("message {text} is not in the outbox (it is {status})"),
            )
        }
        None => ApiError::not_found(format!("queued message {text}")),
    })
}

fn parse_id(text: &str) -> ApiResult<[u8; 16]> {
    parse_message_id(text.trim()).ok_or_else(|| {
        ApiError::not_found(format!(
            "message {text:?} (a message id is 32 hexadecimal digits)"
        ))
    })
}
