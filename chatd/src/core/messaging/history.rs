//! Stored messages: appending to a conversation, finding an outgoing message by its id,
//! history pages with stable cursors, read marks (and the read receipts they queue) and the
//! conversation list.

use api::ErrorCode;
use api::events::EventKind;
use api::types::{
    Conversation, ConversationList, Direction, HistoryPage, MarkedRead, Message,
    message_id_to_string,
};

use protocol::envelope::ContentKind;

use crate::core::records::{MessageRecord, OutboxKind, message_key, tables};
use crate::core::unlocked::{ConvId, Unlocked};
use crate::core::{CoreState, Txn};
use crate::error::{ApiError, ApiResult};
use crate::store::Batch;

use super::event_log::record_event;
use super::outbox::{new_content, queue};

pub(crate) fn message_view(conversation: &str, record: &MessageRecord) -> Message {
    Message {
        message_id: message_id_to_string(&record.message_id),
        conversation: conversation.to_owned(),
        direction: record.direction,
        text: record.text.clone(),
        timestamp_ms: record.timestamp_ms,
        stored_at_ms: record.stored_at_ms,
        status: record.status,
        failure: record.failure.clone(),
        read: (record.direction == Direction::Incoming).then_some(record.read),
    }
}

/// The [`tables::MESSAGE_INDEX`] key under which earlier versions found the outgoing message
/// `id` (when ids were random).
pub(crate) fn legacy_outgoing_index(unlocked: &Unlocked, id: &[u8; 16]) -> [u8; 16] {
    let own = unlocked.identity.public_key();
    let plain = [b"out".as_slice(), own.as_bytes(), id].concat();
    unlocked.store.index(tables::MESSAGE_INDEX, &plain)
}

/// The stored outgoing message of `conversation` named `id`: its `MESSAGES` key and record.
///
/// The id leads to the message's sequence number ([`crate::store::MessageIds`]). Messages sent
/// before ids were made that way are found through their `MESSAGE_INDEX` entry.
pub(crate) fn outgoing_message(
    unlocked: &Unlocked,
    conversation: &ConvId,
    id: &[u8; 16],
) -> ApiResult<Option<([u8; 24], MessageRecord)>> {
    let decode =
        |value: &[u8]| MessageRecord::decode(value).map_err(|_| ApiError::store("a message"));
    if let Some(seq) = unlocked.store.message_ids().seq_of(conversation, id) {
        let key = message_key(conversation, seq);
        if let Some(value) = unlocked.store.get(tables::MESSAGES, &key)? {
            let record = decode(&value)?;
            if &record.message_id == id && record.direction == Direction::Outgoing {
                return Ok(Some((key, record)));
            }
        }
    }
    if !unlocked.has_legacy_index {
        return Ok(None);
    }
    let index = legacy_outgoing_index(unlocked, id);
    let Some(location) = unlocked.store.get(tables::MESSAGE_INDEX, &index)? else {
        return Ok(None);
    };
    // Only the conversation's own contact may report on its messages.
    let Ok(key) = <[u8; 24]>::try_from(location.as_slice()) else {
        return Err(ApiError::store("a message index entry"));
    };
    if key[..16] != conversation[..] {
        return Ok(None);
    }
    let Some(value) = unlocked.store.get(tables::MESSAGES, &key)? else {
        return Ok(None);
    };
    Ok(Some((key, decode(&value)?)))
}

/// Appends a message to a conversation (in `batch`), returning its sequence number.
pub(crate) fn append_message(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    conversation: ConvId,
    record: &MessageRecord,
    unread: bool,
) -> ApiResult<u64> {
    let meta = unlocked.conversations.entry(conversation).or_default();
    let seq = meta.next_seq;
    meta.next_seq += 1;
    meta.total += 1;
    if unread {
        meta.unread += 1;
    }
    meta.last_activity_ms = record.stored_at_ms;
    let meta = *meta;
    batch.put(
        tables::MESSAGES,
        &message_key(&conversation, seq),
        &record.encode(),
    );
    batch.put(tables::CONVERSATIONS, &conversation, &meta.encode());
    Ok(seq)
}

pub(crate) fn parse_cursor(text: &str) -> ApiResult<u64> {
    u64::from_str_radix(text, 16).map_err(|_| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("{text:?} is not a history cursor"),
        )
    })
}

/// `messages.history`.
pub fn history(
    unlocked: &Unlocked,
    name: &str,
    limit: Option<u32>,
    before: Option<&str>,
) -> ApiResult<HistoryPage> {
    let conversation = unlocked.find_contact(name)?;
    let alias = unlocked.contact(&conversation)?.alias.clone();
    let limit = limit.unwrap_or(50).clamp(1, 500) as usize;
    let before = before
        .map(parse_cursor)
        .transpose()?
        .map(|seq| message_key(&conversation, seq));
    let mut page = Vec::with_capacity(limit);
    let mut more = false;
    let mut oldest = None;
    for item in unlocked.store.scan_rev(
        tables::MESSAGES,
        &conversation,
        before.as_ref().map(|k| &k[..]),
    ) {
        let (key, value) = item?;
        if page.len() == limit {
            more = true;
            break;
        }
        let seq = key
            .get(16..24)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| ApiError::store("a message key"))?;
        let record = MessageRecord::decode(&value).map_err(|_| ApiError::store("a message"))?;
        page.push(message_view(&alias, &record));
        oldest = Some(seq);
    }
    page.reverse();
    Ok(HistoryPage {
        messages: page,
        next_before: if more {
            oldest.map(|seq| format!("{seq:016x}"))
        } else {
            None
        },
    })
}

/// `messages.mark_read`: marks received messages read and queues a read receipt.
pub fn mark_read(
    state: &mut CoreState,
    txn: &mut Txn,
    name: &str,
    up_to: Option<&str>,
) -> ApiResult<MarkedRead> {
    let unlocked = state.unlocked()?;
    let conversation = unlocked.find_contact(name)?;
    let alias = unlocked.contact(&conversation)?.alias.clone();
    let up_to = match up_to {
        Some(text) => Some(api::types::parse_message_id(text).ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("{text:?} is not a message id"))
        })?),
        None => None,
    };
    let mut meta = unlocked
        .conversations
        .get(&conversation)
        .copied()
        .unwrap_or_default();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut read_ids = Vec::new();
    let mut reached = up_to.is_none();
    let mut new_read_below = meta.read_below;
    let mut changed = Vec::new();
    for item in unlocked
        .store
        .scan_rev(tables::MESSAGES, &conversation, None)
    {
        let (key, value) = item?;
        let seq = key
            .get(16..24)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| ApiError::store("a message key"))?;
        if seq < meta.read_below {
            break;
        }
        let mut record = MessageRecord::decode(&value).map_err(|_| ApiError::store("a message"))?;
        if !reached {
            if Some(record.message_id) == up_to {
                reached = true;
            } else {
                continue;
            }
        }
        if new_read_below == meta.read_below {
            new_read_below = seq + 1;
        }
        if record.direction == Direction::Incoming && !record.read {
            record.read = true;
            read_ids.push(record.message_id);
            changed.push((key, record));
        }
    }
    if up_to.is_some() && !reached {
        return Err(ApiError::not_found("that message in this conversation"));
    }
    for (key, record) in &changed {
        batch.put(tables::MESSAGES, key, &record.encode());
    }
    let marked = u32::try_from(read_ids.len()).unwrap_or(u32::MAX);
    meta.unread = meta.unread.saturating_sub(marked);
    meta.read_below = meta.read_below.max(new_read_below);
    batch.put(tables::CONVERSATIONS, &conversation, &meta.encode());
    unlocked.conversations.insert(conversation, meta);
    if marked > 0 {
        record_event(
            state,
            &mut batch,
            txn,
            EventKind::MessagesRead {
                conversation: alias,
                marked,
            },
        )?;
    }
    let unlocked = state.unlocked()?;
    // A message request gets its read receipts only once accepted (`core::requests`).
    if !read_ids.is_empty() && !unlocked.contact(&conversation)?.request {
        let body: Vec<u8> = read_ids.iter().flatten().copied().collect();
        let content = new_content(unlocked, ContentKind::ReadReceipt, body);
        queue(
            unlocked,
            &mut batch,
            conversation,
            OutboxKind::Control,
            &content,
        )?;
    }
    txn.commit(&store, batch)?;
    Ok(MarkedRead { marked })
}

/// The newest message of conversation `id` (its contact's alias is `alias`), if any.
pub(crate) fn last_message(
    unlocked: &Unlocked,
    id: &ConvId,
    alias: &str,
) -> ApiResult<Option<Message>> {
    match unlocked.store.last(tables::MESSAGES, id)? {
        Some((_, value)) => Ok(Some(message_view(
            alias,
            &MessageRecord::decode(&value).map_err(|_| ApiError::store("a message"))?,
        ))),
        None => Ok(None),
    }
}

/// `conversations.list`: the contacts' conversations, not the message requests'.
pub fn conversations(unlocked: &Unlocked) -> ApiResult<ConversationList> {
    let mut list = Vec::with_capacity(unlocked.contacts.len());
    for (id, contact) in &unlocked.contacts {
        if contact.request {
            // Message requests are listed apart (`requests.list`).
            continue;
        }
        let meta = unlocked.conversations.get(id).copied().unwrap_or_default();
        let last_message = last_message(unlocked, id, &contact.alias)?;
        list.push((
            meta.last_activity_ms,
            Conversation {
                conversation: contact.alias.clone(),
                address: crate::core::unlocked::address_of(&contact.identity),
                unread: meta.unread,
                total: meta.total,
                last_message,
            },
        ));
    }
    list.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.conversation.cmp(&b.1.conversation))
    });
    Ok(ConversationList {
        conversations: list.into_iter().map(|(_, c)| c).collect(),
    })
}
