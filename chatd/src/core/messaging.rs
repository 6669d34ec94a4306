//! Messages: the outbox (queue, seal, send, retry with backoff and jitter, statuses), incoming
//! envelopes (open, decrypt, dedup, store, receipt, ack), receipts both ways, history pages,
//! read marks, conversations and the retained event log.

use std::collections::HashMap;
use std::time::Duration;

use api::ErrorCode;
use api::events::{Event, EventKind};
use api::types::{
    Conversation, ConversationList, Direction, HistoryPage, MarkedRead, Message, MessageStatus,
    SentMessage, message_id_to_string,
};
use protocol::codec::{Decode, Encode};
use protocol::envelope::{self, Content, ContentKind};
use protocol::frames::{ClientFrame, EnvelopeId, Handle, OutgoingEnvelope, ServerFrame};
use protocol::identity::{DeviceId, IdentityKey};
use protocol::introduction::{DisplayName, Introduction};
use protocol::pqxdh::ResponderKeys;
use protocol::prekeys::PrekeyBundle;
use protocol::ratchet::DecryptError;
use protocol::session::{SessionError, SessionMessage};
use rand::RngExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::account;
use super::records::{MessageRecord, OutboxEntry, OutboxKind, message_key, tables};
use super::unlocked::{ConvId, OutboxSlot, Unlocked, identity_key};
use super::{CoreState, Input, Txn};
use crate::error::{ApiError, ApiResult, PeerError, ReceiveError};
use crate::events::now_ms;
use crate::relay_link::{LinkEvent, RequestError, Requester};
use crate::store::Batch;

/// Largest text accepted by `messages.send`.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Events retained in the store for `since`.
pub const EVENTS_RETAINED: usize = 10_000;
/// A message not accepted by the relay after this long fails.
pub const OUTBOX_EXPIRY_MS: u64 = 7 * 24 * 3600 * 1000;
/// `Send` frames waiting for the relay at once. With at most 64 envelopes each, fewer than
/// `MAX_SKIP` (1000) messages can overtake one whose `Send` was refused and is retried, so the
/// recipient can still decrypt it when it comes (SPEC.md 5.6).
const MAX_SENDS_IN_FLIGHT: usize = 8;
/// How long to wait for a `SendAck`.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for device lists and bundles.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Retry delays grow from this...
const RETRY_MIN: Duration = Duration::from_millis(500);
/// ...to this.
const RETRY_MAX: Duration = Duration::from_secs(300);

fn message_view(conversation: &str, record: &MessageRecord) -> Message {
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

/// Makes an event, writes it into the retained log in `batch` (with the change it reports),
/// and publishes it once the round is durable. The log keeps the newest [`EVENTS_RETAINED`]:
/// older ones are deleted in the same batch.
pub fn record_event(
    state: &mut CoreState,
    batch: &mut Batch<'_>,
    txn: &mut Txn,
    kind: EventKind,
) -> ApiResult<()> {
    let event = state.bus.make(kind);
    let unlocked = state.unlocked()?;
    if event.kind.is_persistent()
        && let Ok(json) = serde_json::to_vec(&event)
    {
        batch.put(tables::EVENTS, &event.cursor.to_be_bytes(), &json);
        unlocked.retained_events.push_back(event.cursor);
        while unlocked.retained_events.len() > EVENTS_RETAINED {
            if let Some(oldest) = unlocked.retained_events.pop_front() {
                batch.delete(tables::EVENTS, &oldest.to_be_bytes());
            }
        }
    }
    txn.event(event);
    Ok(())
}

/// The [`tables::MESSAGE_INDEX`] key under which earlier versions found the outgoing message
/// `id` (when ids were random).
fn legacy_outgoing_index(unlocked: &Unlocked, id: &[u8; 16]) -> [u8; 16] {
    let own = unlocked.identity.public_key();
    let plain = [b"out".as_slice(), own.as_bytes(), id].concat();
    unlocked.store.index(tables::MESSAGE_INDEX, &plain)
}

/// The [`tables::RECEIVED`] key of a message `sender` sent in `conversation`.
///
/// A repeat carries the same content (a sender that seals a message again keeps its id and
/// timestamp), so it has the same key. The sender's timestamp puts a conversation's messages in
/// time order, so remembering one touches the newest leaf of the tree, not a random one (random
/// keys made sled page leaves in and out at every message); shifting it by an offset only this
/// store can compute keeps the time a message was sent out of the plaintext key.
pub(super) fn received_key(
    unlocked: &Unlocked,
    conversation: &ConvId,
    sender: &[u8; 32],
    content: &Content,
) -> [u8; 32] {
    let store = &unlocked.store;
    let offset = store.index(
        tables::RECEIVED,
        &[b"offset".as_slice(), conversation].concat(),
    );
    let mut offset_bytes = [0u8; 8];
    offset_bytes.copy_from_slice(&offset[..8]);
    let offset = u64::from_be_bytes(offset_bytes);
    let message = store.index(
        tables::RECEIVED,
        &[b"message".as_slice(), sender, &content.message_id].concat(),
    );
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(conversation);
    key[16..24].copy_from_slice(&content.timestamp_ms.wrapping_add(offset).to_be_bytes());
    key[24..].copy_from_slice(&message[..8]);
    key
}

/// Retry delay after `attempts` failures: exponential with full jitter.
fn backoff(attempts: u32) -> Duration {
    let max = RETRY_MIN
        .saturating_mul(1u32 << attempts.min(12))
        .min(RETRY_MAX);
    let ms = rand::rng().random_range(RETRY_MIN.as_millis() as u64 / 2..=max.as_millis() as u64);
    Duration::from_millis(ms)
}

/// Puts a message into the outbox (in `batch`).
fn queue(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    conversation: ConvId,
    kind: OutboxKind,
    content: &Content,
) -> ApiResult<()> {
    let identity = unlocked.contact(&conversation)?.identity;
    let seq = unlocked.next_outbox_seq;
    unlocked.next_outbox_seq += 1;
    let entry = OutboxEntry {
        conversation,
        kind,
        message_id: content.message_id,
        content: Zeroizing::new(content.to_bytes()),
        sealed: Vec::new(),
        sealed_for: identity,
        attempts: 0,
        queued_at_ms: now_ms(),
    };
    batch.put(tables::OUTBOX, &seq.to_be_bytes(), &entry.encode());
    unlocked.outbox.insert(
        seq,
        OutboxSlot {
            conversation,
            kind,
            message_id: content.message_id,
            sealed: false,
            in_flight: false,
            not_before: None,
            attempts: 0,
        },
    );
    Ok(())
}

fn new_content(kind: ContentKind, body: Vec<u8>) -> Content {
    let mut message_id = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut message_id);
    Content {
        message_id,
        timestamp_ms: now_ms(),
        kind,
        body,
    }
}

/// Queues a control message (receipt, introduction) to a contact.
pub fn queue_control(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    conversation: ConvId,
    kind: ContentKind,
    body: Vec<u8>,
) -> ApiResult<()> {
    let content = new_content(kind, body);
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    queue(
        unlocked,
        &mut batch,
        conversation,
        OutboxKind::Control,
        &content,
    )?;
    txn.commit(&store, batch)
}

/// The body of an introduction (SPEC.md 8.1): our name, our first handle, and the token of
/// the invite it answers.
pub fn introduction(unlocked: &Unlocked, token: Option<[u8; 16]>) -> ApiResult<Vec<u8>> {
    let name = DisplayName::parse(&unlocked.account.name).map_err(|e| {
        ApiError::new(
            api::ErrorCode::InvalidAlias,
            format!("the account's name cannot go in an introduction: {e}"),
        )
    })?;
    let introduction = Introduction {
        name,
        // A handle the relay accepted parses; one that does not is left out, not sent.
        handle: unlocked
            .account
            .handles
            .first()
            .and_then(|h| Handle::parse(h).ok()),
        invite_token: token,
    };
    Ok(introduction.to_bytes())
}

/// `messages.send`: stores the message and queues it; durable when the round ends.
pub fn send_text(
    state: &mut CoreState,
    txn: &mut Txn,
    conversation: ConvId,
    text: &str,
) -> ApiResult<SentMessage> {
    if text.is_empty() || text.len() > MAX_TEXT_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidMessage,
            format!("the text must be 1 byte to {} KiB", MAX_TEXT_LEN / 1024),
        ));
    }
    let unlocked = state.unlocked()?;
    unlocked.check_trusted(&conversation)?;
    // The id names where the message is stored (`store::MessageIds`), so a receipt or the
    // relay's acknowledgement finds it without an index.
    let seq = unlocked
        .conversations
        .get(&conversation)
        .map_or(0, |meta| meta.next_seq);
    let content = Content {
        message_id: unlocked.store.message_ids().id_for(&conversation, seq),
        timestamp_ms: now_ms(),
        kind: ContentKind::Text,
        body: text.as_bytes().to_vec(),
    };
    let record = MessageRecord {
        message_id: content.message_id,
        direction: Direction::Outgoing,
        timestamp_ms: content.timestamp_ms,
        stored_at_ms: now_ms(),
        status: Some(MessageStatus::Pending),
        failure: None,
        read: false,
        text: text.to_owned(),
    };
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let stored_at = append_message(unlocked, &mut batch, conversation, &record, false)?;
    debug_assert_eq!(
        stored_at, seq,
        "the id names the sequence the message is stored at"
    );
    queue(
        unlocked,
        &mut batch,
        conversation,
        OutboxKind::Text,
        &content,
    )?;
    txn.commit(&store, batch)?;
    Ok(SentMessage {
        message_id: message_id_to_string(&content.message_id),
        conversation: unlocked.contact(&conversation)?.alias.clone(),
        timestamp_ms: content.timestamp_ms,
        status: MessageStatus::Pending,
    })
}

/// The stored outgoing message of `conversation` named `id`: its `MESSAGES` key and record.
///
/// The id leads to the message's sequence number ([`crate::store::MessageIds`]). Messages sent
/// before ids were made that way are found through their `MESSAGE_INDEX` entry.
fn outgoing_message(
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
fn append_message(
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

fn parse_cursor(text: &str) -> ApiResult<u64> {
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
    if !read_ids.is_empty() {
        let body: Vec<u8> = read_ids.iter().flatten().copied().collect();
        let content = new_content(ContentKind::ReadReceipt, body);
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

/// `conversations.list`.
pub fn conversations(unlocked: &Unlocked) -> ApiResult<ConversationList> {
    let mut list = Vec::with_capacity(unlocked.contacts.len());
    for (id, contact) in &unlocked.contacts {
        let meta = unlocked.conversations.get(id).copied().unwrap_or_default();
        let last_message = match unlocked.store.last(tables::MESSAGES, id)? {
            Some((_, value)) => Some(message_view(
                &contact.alias,
                &MessageRecord::decode(&value).map_err(|_| ApiError::store("a message"))?,
            )),
            None => None,
        };
        list.push((
            meta.last_activity_ms,
            Conversation {
                conversation: contact.alias.clone(),
                address: super::unlocked::address_of(&contact.identity),
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

/// Retained message events after `since`, oldest first.
pub fn retained_events(unlocked: &Unlocked, since: u64) -> ApiResult<Vec<Event>> {
    let mut events = Vec::new();
    for item in unlocked.store.scan_rev(tables::EVENTS, &[], None) {
        let (key, value) = item?;
        let cursor = <[u8; 8]>::try_from(key.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| ApiError::store("an event key"))?;
        if cursor <= since {
            break;
        }
        match serde_json::from_slice::<Event>(&value) {
            Ok(event) => events.push(event),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable retained event"),
        }
    }
    events.reverse();
    Ok(events)
}

/// After `contacts.trust`: messages sealed for the old key are sealed again for the new one.
pub fn unseal_outbox(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    conversation: &ConvId,
) -> ApiResult<()> {
    let seqs: Vec<u64> = unlocked
        .outbox
        .iter()
        .filter(|(_, s)| &s.conversation == conversation && s.sealed)
        .map(|(seq, _)| *seq)
        .collect();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    for seq in seqs {
        if let Some(value) = unlocked.store.get(tables::OUTBOX, &seq.to_be_bytes())? {
            let mut entry =
                OutboxEntry::decode(&value).map_err(|_| ApiError::store("an outbox entry"))?;
            entry.sealed.clear();
            batch.put(tables::OUTBOX, &seq.to_be_bytes(), &entry.encode());
        }
        if let Some(slot) = unlocked.outbox.get_mut(&seq) {
            slot.sealed = false;
        }
    }
    txn.commit(&store, batch)
}

/// Reacts to the relay link.
pub fn on_link_event(state: &mut CoreState, event: LinkEvent, txn: &mut Txn) {
    match event {
        LinkEvent::State { state: new, error } => {
            let Ok(unlocked) = state.unlocked() else {
                return;
            };
            unlocked.online = new == api::types::ConnectionState::Connected;
            for slot in unlocked.outbox.values_mut() {
                slot.in_flight = false;
            }
            unlocked.fetching.clear();
            let relay_url = unlocked.account.relay_url.clone();
            let online = unlocked.online;
            if state.connection != new {
                state.connection = new;
                state.event(
                    txn,
                    EventKind::RelayConnection {
                        state: new,
                        relay_url,
                        error: error.map(|e| e.to_string()),
                    },
                );
            }
            if online && let Err(e) = account::publish_on_connect(state, txn) {
                tracing::error!(error = %e, "could not publish prekeys");
            }
        }
        // The share is held until the frame is handled: the link reads on only while the core
        // keeps up.
        LinkEvent::Frame(frame, _share) => {
            if account::on_frame(state, txn, &frame) {
                return;
            }
            match *frame {
                ServerFrame::Deliver {
                    envelope_id,
                    payload,
                    ..
                } => receive(state, txn, envelope_id, &payload),
                other => tracing::debug!(frame = other.name(), "ignoring a frame from the relay"),
            }
        }
    }
}

/// Periodic work: rotate the signed prekey when it is due.
pub fn on_tick(state: &mut CoreState, txn: &mut Txn) {
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    if unlocked.online
        && unlocked.account.signed_prekey_created_ms + account::SIGNED_PREKEY_LIFETIME_MS
            <= now_ms()
        && let Err(e) = account::publish_on_connect(state, txn)
    {
        tracing::warn!(error = %e, "signed prekey rotation failed");
    }
}

/// Opens, decrypts, stores and acknowledges one delivered envelope. Anything that cannot be
/// opened or decrypted is logged and acknowledged (it can never become readable), and the
/// session is left as it was.
fn receive(state: &mut CoreState, txn: &mut Txn, envelope_id: EnvelopeId, payload: &[u8]) {
    match receive_inner(state, txn, payload) {
        Ok(()) => {}
        Err(ReceiveError::Local(e)) if e.code == ErrorCode::StoreError => {
            // Not acknowledged: the relay delivers it again after a reconnect. The round fails,
            // so the session this envelope advanced in memory goes back to the stored one.
            tracing::error!(error = %e, "could not store a received message");
            txn.fail(&e.message);
            return;
        }
        Err(ReceiveError::Local(e)) => {
            tracing::warn!(error = %e, "dropping an envelope that cannot be handled");
        }
        Err(ReceiveError::Peer(e)) => {
            tracing::warn!(error = %e, "dropping an envelope that cannot be read");
        }
    }
    // Acknowledged at the end of the round, all in one frame, once the round is durable.
    if let Ok(unlocked) = state.unlocked() {
        unlocked.pending_acks.push(envelope_id);
    }
}

fn receive_inner(state: &mut CoreState, txn: &mut Txn, payload: &[u8]) -> Result<(), ReceiveError> {
    let unlocked = state.unlocked()?;
    let unsealed = unlocked
        .opener
        .open(&unlocked.local, payload)
        .map_err(PeerError::from)?;
    let sender = *unsealed.sender_identity.as_bytes();
    let device = unsealed.sender_device.get();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut record = std::mem::take(unlocked.session(sender, device)?);
    let decrypted = match &unsealed.message {
        SessionMessage::Normal(message) => record.decrypt(message),
        SessionMessage::Prekey { header, message } => {
            let signed = account::load_signed(&unlocked.store, header.signed_prekey_id)?;
            let kem = account::load_kem(&unlocked.store, header.kem_prekey_id)?;
            let one_time = match header.one_time_prekey_id {
                Some(id) => account::load_one_time(&unlocked.store, id)?,
                None => None,
            };
            let keys = match (&signed, &kem) {
                (Some(signed_prekey), Some(kem_prekey)) => Some(ResponderKeys {
                    signed_prekey,
                    one_time_prekey: one_time.as_ref(),
                    kem_prekey,
                }),
                _ => None,
            };
            let result = record.decrypt_prekey(
                &unlocked.local,
                (unsealed.sender_identity, unsealed.sender_device),
                header,
                message,
                keys,
                &mut unlocked.replay,
            );
            result.map(|d| {
                if d.consumed_one_time_prekey.is_some() || d.consumed_kem_prekey.is_some() {
                    unlocked.prekeys_used = true;
                }
                account::delete_used(
                    &mut batch,
                    d.consumed_one_time_prekey,
                    d.consumed_kem_prekey,
                );
                batch.put(tables::ACCOUNT, b"replay", &unlocked.replay.to_bytes());
                d.plaintext
            })
        }
    };
    unlocked.sessions.insert((sender, device), record);
    let plaintext = match decrypted {
        Ok(plaintext) => Zeroizing::new(plaintext),
        Err(SessionError::Decrypt(DecryptError::Duplicate)) => return Ok(()),
        Err(e) => return Err(PeerError::from(e).into()),
    };
    unlocked.save_session(&mut batch, &sender, device);
    let content = Content::from_bytes(&plaintext).map_err(PeerError::BadContent)?;
    receive_content(state, txn, &mut batch, sender, device, &content)?;
    Ok(txn.commit(&store, batch)?)
}

/// Handles one decrypted Content by its kind (SPEC.md 8.1): a text is stored and owes a
/// delivery receipt; receipts and introductions are never answered; a kind this version does
/// not know is dropped without a word (a newer peer's feature this one cannot show).
fn receive_content(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    device: u32,
    content: &Content,
) -> Result<(), ReceiveError> {
    match content.kind {
        ContentKind::Text => receive_text(state, txn, batch, sender, device, content)?,
        ContentKind::DeliveryReceipt => {
            receive_receipt(state, txn, batch, sender, content, MessageStatus::Delivered)?
        }
        ContentKind::ReadReceipt => {
            receive_receipt(state, txn, batch, sender, content, MessageStatus::Read)?
        }
        ContentKind::Introduction => {
            receive_introduction(state, txn, batch, sender, device, content)?
        }
        ContentKind::Other(kind) => {
            tracing::debug!(kind = kind.get(), "ignoring a message of an unknown kind");
        }
    }
    Ok(())
}

/// The conversation of `sender`, adding an unknown sender as a contact.
fn conversation_of(
    state: &mut CoreState,
    txn: &mut Txn,
    sender: [u8; 32],
    device: u32,
    name: Option<&str>,
) -> ApiResult<ConvId> {
    let unlocked = state.unlocked()?;
    let id = match unlocked.by_identity.get(&sender) {
        Some(id) => *id,
        None => {
            let base = match name {
                Some(name) => name.to_owned(),
                None => super::unlocked::address_of(&sender)
                    .chars()
                    .take(13)
                    .collect(),
            };
            let alias = unlocked.free_alias(&base);
            super::contacts::add(
                state,
                txn,
                &alias,
                sender,
                None,
                name.map(str::to_owned),
                false,
            )?
        }
    };
    let unlocked = state.unlocked()?;
    if let Some(contact) = unlocked.contacts.get_mut(&id)
        && !contact.devices.contains(&device)
    {
        contact.devices.push(device);
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        batch.put(tables::CONTACTS, &id, &contact.encode());
        txn.commit(&store, batch)?;
    }
    Ok(id)
}

pub(super) fn receive_text(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    device: u32,
    content: &Content,
) -> ApiResult<()> {
    let text = String::from_utf8_lossy(&content.body).into_owned();
    let conversation = conversation_of(state, txn, sender, device, None)?;
    let unlocked = state.unlocked()?;
    let received = received_key(unlocked, &conversation, &sender, content);
    if unlocked.store.get(tables::RECEIVED, &received)?.is_some() {
        // A repeat of a message already stored (the sender retried): shown once, but the
        // sender still gets its receipt.
        owe_receipt(unlocked, batch, conversation, content.message_id);
        return Ok(());
    }
    let record = MessageRecord {
        message_id: content.message_id,
        direction: Direction::Incoming,
        timestamp_ms: content.timestamp_ms,
        stored_at_ms: now_ms(),
        status: None,
        failure: None,
        read: false,
        text,
    };
    append_message(unlocked, batch, conversation, &record, true)?;
    batch.put(tables::RECEIVED, &received, &[]);
    owe_receipt(unlocked, batch, conversation, content.message_id);
    let contact = unlocked.contact(&conversation)?;
    let kind = EventKind::MessageReceived {
        message: message_view(&contact.alias, &record),
        sender_name: contact.display_name.clone(),
    };
    record_event(state, batch, txn, kind)
}

fn receive_receipt(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    content: &Content,
    status: MessageStatus,
) -> Result<(), ReceiveError> {
    let length = content.body.len();
    if length == 0 || !length.is_multiple_of(16) {
        return Err(PeerError::BadReceipt(length).into());
    }
    let unlocked = state.unlocked()?;
    let Some(conversation) = unlocked.by_identity.get(&sender).copied() else {
        return Ok(());
    };
    let alias = unlocked.contact(&conversation)?.alias.clone();
    let mut events = Vec::new();
    for id in content.body.chunks_exact(16) {
        let Ok(id) = <[u8; 16]>::try_from(id) else {
            continue;
        };
        // Only the conversation's own contact may report on its messages.
        let Some((location, mut record)) = outgoing_message(unlocked, &conversation, &id)? else {
            continue;
        };
        let current = record.status.unwrap_or(MessageStatus::Pending);
        if current == MessageStatus::Failed || current >= status {
            continue;
        }
        record.status = Some(status);
        batch.put(tables::MESSAGES, &location, &record.encode());
        events.push(EventKind::MessageStatus {
            message_id: message_id_to_string(&id),
            conversation: alias.clone(),
            status,
            failure: None,
        });
    }
    for kind in events {
        record_event(state, batch, txn, kind)?;
    }
    Ok(())
}

fn receive_introduction(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    device: u32,
    content: &Content,
) -> Result<(), ReceiveError> {
    let introduction =
        Introduction::from_bytes(&content.body).map_err(PeerError::BadIntroduction)?;
    let name = introduction.name.as_str().to_owned();
    let conversation = conversation_of(state, txn, sender, device, Some(&name))?;
    let unlocked = state.unlocked()?;
    if let Some(token) = introduction.invite_token
        && !super::contacts::consume_invite(unlocked, batch, &token)?
    {
        tracing::info!("an introduction carried an unknown or used invite token");
    }
    if let Some(contact) = unlocked.contacts.get_mut(&conversation)
        && contact.display_name.is_none()
    {
        contact.display_name = Some(name);
        batch.put(tables::CONTACTS, &conversation, &contact.encode());
    }
    Ok(())
}

/// The end of every round: turn pending receipts into outbox entries, seal what can be
/// sealed, and start sends (which wait for the round's flush before going out).
pub fn pump(state: &mut CoreState, txn: &mut Txn) {
    let generation = state.generation;
    let inputs = state.inputs.clone();
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    if let Err(e) = flush_receipts(unlocked, txn) {
        tracing::error!(error = %e, "could not queue receipts");
        txn.fail(&e.message);
    }
    defer_fresh_receipts(unlocked, &inputs);
    account::check_prekeys_if_used(unlocked, txn);
    for ids in std::mem::take(&mut unlocked.pending_acks).chunks(protocol::frames::MAX_ACK_IDS) {
        txn.frame(ClientFrame::Ack {
            envelope_ids: ids.to_vec(),
        });
    }
    if !unlocked.online {
        return;
    }
    let Some(requester) = unlocked.link.as_ref().map(|l| l.requester()) else {
        return;
    };
    if let Err(e) = seal_ready(unlocked, txn, &requester, generation, &inputs) {
        // Sessions advanced and entries marked sealed in memory must not outlive the round.
        tracing::error!(error = %e, "sealing the outbox failed");
        txn.fail(&e.message);
    }
    start_sends(unlocked, txn, &requester, generation, &inputs);
}

/// Records that a delivery receipt is owed for a stored message, in the message's own batch:
/// the receipt can then not be lost to a crash between storing the message and queueing the
/// receipt (after which the relay's redelivery would only look like a ratchet duplicate).
fn owe_receipt(unlocked: &mut Unlocked, batch: &mut Batch<'_>, conversation: ConvId, id: [u8; 16]) {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&conversation);
    key[16..].copy_from_slice(&id);
    batch.put(tables::OWED_RECEIPTS, &key, &[]);
    unlocked
        .fresh_receipts
        .entry(conversation)
        .or_default()
        .push(id);
}

/// Hands the receipts owed for this round's messages to the next round, and makes sure there
/// is one. The receipt is a ratchet step and a sealed envelope (an X25519 key and DH); sealing
/// it after this round's flush lets the messages' events out sooner. Under a steady load the
/// next round comes anyway and queues them with its own work.
fn defer_fresh_receipts(
    unlocked: &mut Unlocked,
    inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
) {
    if unlocked.fresh_receipts.is_empty() {
        return;
    }
    for (conversation, ids) in std::mem::take(&mut unlocked.fresh_receipts) {
        unlocked
            .pending_receipts
            .entry(conversation)
            .or_default()
            .extend(ids);
    }
    let wake: super::Job = Box::new(|_, _| {});
    let _ = inputs.send(Input::Job(wake));
}

/// Turns the owed receipts into one outbox entry per conversation, deleting the records in
/// the same batch.
fn flush_receipts(unlocked: &mut Unlocked, txn: &mut Txn) -> ApiResult<()> {
    if unlocked.pending_receipts.is_empty() {
        return Ok(());
    }
    let receipts = std::mem::take(&mut unlocked.pending_receipts);
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    for (conversation, ids) in receipts {
        for id in &ids {
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(&conversation);
            key[16..].copy_from_slice(id);
            batch.delete(tables::OWED_RECEIPTS, &key);
        }
        if !unlocked.contacts.contains_key(&conversation) {
            continue;
        }
        for chunk in ids.chunks(4096) {
            let body: Vec<u8> = chunk.iter().flatten().copied().collect();
            let content = new_content(ContentKind::DeliveryReceipt, body);
            queue(
                unlocked,
                &mut batch,
                conversation,
                OutboxKind::Control,
                &content,
            )?;
        }
    }
    txn.commit(&store, batch)
}

fn due(slot: &OutboxSlot, now: Instant) -> bool {
    slot.not_before.is_none_or(|t| t <= now)
}

fn seal_ready(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    requester: &Requester,
    generation: u64,
    inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
) -> ApiResult<()> {
    let now = Instant::now();
    let mut blocked: std::collections::HashSet<ConvId> = std::collections::HashSet::new();
    // In outbox order; an entry waiting out a retry holds back the later ones of its
    // conversation, so they are sealed (and sent) after it.
    let mut waiting: Vec<(u64, ConvId)> = Vec::new();
    for (seq, slot) in &unlocked.outbox {
        if slot.sealed {
            continue;
        }
        if !due(slot, now) {
            blocked.insert(slot.conversation);
        } else if !blocked.contains(&slot.conversation) {
            waiting.push((*seq, slot.conversation));
        }
    }
    if waiting.is_empty() {
        return Ok(());
    }
    // Sessions this round advanced; each is saved once, after the loop, in the same batch as
    // every outbox entry it sealed (a per-message save pickled and encrypted the whole record
    // again for each message, and only the last write of a key in a batch counts).
    let mut advanced: Vec<([u8; 32], u32)> = Vec::new();
    // One key agreement per recipient device per round; every payload to it this round is
    // sealed under it with a seed of its own (SPEC.md 8.2).
    let mut sealers: HashMap<([u8; 32], u32), envelope::Sealer> = HashMap::new();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    for (seq, conversation) in waiting {
        if blocked.contains(&conversation) {
            continue;
        }
        let Some(contact) = unlocked.contacts.get(&conversation).cloned() else {
            continue;
        };
        if contact.trust == api::types::Trust::KeyChanged {
            blocked.insert(conversation);
            continue;
        }
        let mut ready = !contact.devices.is_empty();
        for device in &contact.devices {
            if !unlocked.session(contact.identity, *device)?.has_session() {
                ready = false;
            }
        }
        if !ready {
            blocked.insert(conversation);
            if unlocked.fetching.insert(conversation) {
                fetch_bundles(
                    unlocked,
                    txn,
                    requester,
                    generation,
                    inputs,
                    conversation,
                    contact.identity,
                );
            }
            continue;
        }
        let Some(value) = unlocked.store.get(tables::OUTBOX, &seq.to_be_bytes())? else {
            unlocked.outbox.remove(&seq);
            continue;
        };
        let mut entry =
            OutboxEntry::decode(&value).map_err(|_| ApiError::store("an outbox entry"))?;
        entry.sealed.clear();
        entry.sealed_for = contact.identity;
        for device in &contact.devices {
            let mut record = std::mem::take(unlocked.session(contact.identity, *device)?);
            let sealed = record
                .encrypt(&entry.content, &mut rand::rng())
                .map_err(|e| e.to_string())
                .and_then(|message| {
                    let peer = record.peer().ok_or("no session")?;
                    let key = (contact.identity, *device);
                    if !sealers.get(&key).is_some_and(|s| s.seals_to(peer)) {
                        let sealer = envelope::Sealer::new(peer, &mut rand::rng())
                            .map_err(|e| e.to_string())?;
                        sealers.insert(key, sealer);
                    }
                    let sealer = sealers.get(&key).ok_or("no sealer")?;
                    Ok(sealer.seal(&unlocked.local, &message, &mut rand::rng()))
                });
            unlocked
                .sessions
                .insert((contact.identity, *device), record);
            match sealed {
                Ok(payload) => entry.sealed.push((*device, payload)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not encrypt for a device");
                }
            }
            if !advanced.contains(&(contact.identity, *device)) {
                advanced.push((contact.identity, *device));
            }
        }
        if entry.sealed.is_empty() {
            blocked.insert(conversation);
            continue;
        }
        batch.put(tables::OUTBOX, &seq.to_be_bytes(), &entry.encode());
        if let Some(slot) = unlocked.outbox.get_mut(&seq) {
            slot.sealed = true;
        }
    }
    for (identity, device) in &advanced {
        unlocked.save_session(&mut batch, identity, *device);
    }
    txn.commit(&store, batch)
}

fn fetch_bundles(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    requester: &Requester,
    generation: u64,
    inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
    conversation: ConvId,
    identity: [u8; 32],
) {
    let requester = requester.clone();
    let inputs = inputs.clone();
    let (go, wait) = oneshot::channel::<()>();
    txn.after(move || {
        let _ = go.send(());
    });
    unlocked.tasks.spawn(async move {
        if wait.await.is_err() {
            return;
        }
        let result = fetch(&requester, identity).await;
        let job: super::Job = Box::new(move |state, txn| {
            if let Err(e) = on_bundles(state, txn, conversation, identity, result) {
                tracing::warn!(error = %e, "could not set up a session");
            }
        });
        let _ = inputs.send(Input::Continue(generation, job));
    });
}

async fn fetch(
    requester: &Requester,
    identity: [u8; 32],
) -> Result<Vec<PrekeyBundle>, RequestError> {
    let key = IdentityKey::from_bytes(&identity)
        .map_err(|_| RequestError::Unreachable("bad identity".into()))?;
    let devices = match requester
        .request(
            |request_id| ClientFrame::ListDevices {
                request_id,
                identity: key,
            },
            FETCH_TIMEOUT,
        )
        .await?
    {
        ServerFrame::Devices { devices, .. } => devices,
        other => {
            return Err(RequestError::Unreachable(format!(
                "unexpected answer {}",
                other.name()
            )));
        }
    };
    let mut bundles = Vec::new();
    for certificate in devices {
        let device_id = certificate.device_id();
        match requester
            .request(
                |request_id| ClientFrame::FetchBundle {
                    request_id,
                    identity: key,
                    device_id,
                },
                FETCH_TIMEOUT,
            )
            .await
        {
            Ok(ServerFrame::Bundle { bundle, .. }) => bundles.push(bundle),
            Ok(other) => tracing::warn!(frame = other.name(), "unexpected answer to FetchBundle"),
            Err(RequestError::Refused(code, message)) => {
                tracing::warn!(code = code.name(), %message, "no bundle for a device");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(bundles)
}

fn on_bundles(
    state: &mut CoreState,
    txn: &mut Txn,
    conversation: ConvId,
    identity: [u8; 32],
    result: Result<Vec<PrekeyBundle>, RequestError>,
) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    unlocked.fetching.remove(&conversation);
    let delay_conversation = |unlocked: &mut Unlocked| {
        for slot in unlocked.outbox.values_mut() {
            if slot.conversation == conversation && !slot.sealed {
                slot.attempts += 1;
                slot.not_before = Some(Instant::now() + backoff(slot.attempts));
            }
        }
    };
    let bundles = match result {
        Ok(bundles) if !bundles.is_empty() => bundles,
        Ok(_) => {
            tracing::info!("the contact has no devices with prekeys yet; retrying later");
            delay_conversation(unlocked);
            return Ok(());
        }
        Err(e) => {
            tracing::info!(error = %e, "fetching prekeys failed; retrying later");
            delay_conversation(unlocked);
            return Ok(());
        }
    };
    let expected = identity_key(&identity)?;
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut devices = Vec::new();
    for bundle in bundles {
        let verified = match bundle.verify(Some(&expected)) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::warn!(error = %e, "the relay returned a bundle that does not verify");
                continue;
            }
        };
        let device = verified.device().device_id().get();
        let local = unlocked.local.clone();
        let record = unlocked.session(identity, device)?;
        if !record.has_session() {
            record
                .initiate(&local, &verified, &mut rand::rng())
                .map_err(|e| ApiError::new(ErrorCode::RelayError, format!("session setup: {e}")))?;
        }
        unlocked.save_session(&mut batch, &identity, device);
        devices.push(device);
    }
    if devices.is_empty() {
        delay_conversation(unlocked);
        return Ok(());
    }
    if let Some(contact) = unlocked.contacts.get_mut(&conversation) {
        devices.sort_unstable();
        contact.devices = devices;
        batch.put(tables::CONTACTS, &conversation, &contact.encode());
    }
    txn.commit(&store, batch)
}

fn start_sends(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    requester: &Requester,
    generation: u64,
    inputs: &tokio::sync::mpsc::UnboundedSender<Input>,
) {
    let now = Instant::now();
    let in_flight_groups = unlocked
        .outbox
        .values()
        .filter(|s| s.in_flight)
        .count()
        .div_ceil(protocol::frames::MAX_ENVELOPES_PER_SEND);
    let mut budget = MAX_SENDS_IN_FLIGHT.saturating_sub(in_flight_groups);
    // First in, first out per conversation: an entry that is in flight, not sealed yet or
    // waiting out a retry holds back every later entry of its conversation. So a conversation
    // has at most one `Send` in flight: were a second one out, the relay could refuse the first
    // (over its rate limit, say) and store the second, and the first's retry would arrive
    // after the messages written after it.
    let mut held: std::collections::HashSet<ConvId> = std::collections::HashSet::new();
    let mut ready: Vec<(u64, ConvId)> = Vec::new();
    for (seq, slot) in &unlocked.outbox {
        if slot.in_flight || !slot.sealed || !due(slot, now) {
            held.insert(slot.conversation);
        } else if !held.contains(&slot.conversation) {
            ready.push((*seq, slot.conversation));
        }
    }
    // The conversations of the group being filled: when it is full, they are held too, so
    // their later entries wait for its answer instead of going out in a second `Send`.
    let mut in_group: Vec<ConvId> = Vec::new();
    let mut group: Vec<(u64, Vec<OutgoingEnvelope>)> = Vec::new();
    let mut group_envelopes = 0;
    let mut group_bytes = 0;
    let mut groups = Vec::new();
    // Recipient keys decoded so far: decoding decompresses and checks an Ed25519 point, which
    // cost about 6% of the core's time when it was done for every message.
    let mut recipients: Vec<([u8; 32], IdentityKey)> = Vec::new();
    for (seq, conversation) in ready {
        if budget == 0 {
            break;
        }
        if held.contains(&conversation) {
            continue;
        }
        let entry = match unlocked.store.get(tables::OUTBOX, &seq.to_be_bytes()) {
            Ok(Some(value)) => match OutboxEntry::decode(&value) {
                Ok(entry) => entry,
                Err(_) => continue,
            },
            _ => continue,
        };
        let recipient = match recipients
            .iter()
            .find(|(bytes, _)| *bytes == entry.sealed_for)
        {
            Some((_, key)) => *key,
            None => {
                let Ok(key) = IdentityKey::from_bytes(&entry.sealed_for) else {
                    continue;
                };
                recipients.push((entry.sealed_for, key));
                key
            }
        };
        let mut envelopes = Vec::new();
        let mut bytes = 0;
        for (device, payload) in entry.sealed {
            let Ok(device) = DeviceId::new(device) else {
                continue;
            };
            bytes += payload.len();
            envelopes.push(OutgoingEnvelope {
                recipient_identity: recipient,
                recipient_device: device,
                payload,
            });
        }
        if group_envelopes + envelopes.len() > protocol::frames::MAX_ENVELOPES_PER_SEND
            || group_bytes + bytes > protocol::frames::MAX_SEND_PAYLOAD_TOTAL
        {
            groups.push(std::mem::take(&mut group));
            group_envelopes = 0;
            group_bytes = 0;
            held.extend(in_group.drain(..));
            budget -= 1;
            if budget == 0 {
                break;
            }
            if held.contains(&conversation) {
                // This entry's conversation is in the group just closed: it waits for it.
                continue;
            }
        }
        group_envelopes += envelopes.len();
        group_bytes += bytes;
        if !in_group.contains(&conversation) {
            in_group.push(conversation);
        }
        group.push((seq, envelopes));
    }
    if !group.is_empty() && budget > 0 {
        groups.push(group);
    }
    for group in groups {
        let seqs: Vec<u64> = group.iter().map(|(seq, _)| *seq).collect();
        for seq in &seqs {
            if let Some(slot) = unlocked.outbox.get_mut(seq) {
                slot.in_flight = true;
            }
        }
        let envelopes: Vec<OutgoingEnvelope> = group.into_iter().flat_map(|(_, e)| e).collect();
        let frame = ClientFrame::Send {
            request_id: requester.request_id(),
            envelopes,
        };
        let inputs = inputs.clone();
        // The frame is handed to the link when the round is durable, by the round's effects,
        // which run in order: so Sends reach the relay in outbox order, and a conversation's
        // messages are stored in its recipient's mailbox in the order they were written.
        let (go, wait) = oneshot::channel();
        let enqueuer = requester.clone();
        txn.after(move || {
            let _ = go.send(enqueuer.enqueue(frame));
        });
        unlocked.tasks.spawn(async move {
            let result = match wait.await {
                Ok(Ok(answer)) => Requester::answer(answer, SEND_TIMEOUT).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(RequestError::Unreachable("the store flush failed".into())),
            };
            let job: super::Job = Box::new(move |state, txn| {
                if let Err(e) = on_send_result(state, txn, &seqs, result) {
                    tracing::error!(error = %e, "could not record a send result");
                }
            });
            let _ = inputs.send(Input::Continue(generation, job));
        });
    }
    while unlocked.tasks.try_join_next().is_some() {}
}

fn on_send_result(
    state: &mut CoreState,
    txn: &mut Txn,
    seqs: &[u64],
    result: Result<ServerFrame, RequestError>,
) -> ApiResult<()> {
    let failure = match result {
        Ok(ServerFrame::SendAck { .. }) => None,
        Ok(other) => Some((false, format!("unexpected answer {}", other.name()))),
        Err(RequestError::Refused(code, message)) => {
            use protocol::frames::ErrorCode as Relay;
            let permanent = matches!(
                code,
                Relay::NotFound | Relay::FrameTooLarge | Relay::BadFrame
            );
            Some((
                permanent,
                format!("the relay refused: {} ({message})", code.name()),
            ))
        }
        Err(RequestError::Unreachable(message)) => Some((false, message)),
    };
    let unlocked = state.unlocked()?;
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut statuses = Vec::new();
    for seq in seqs {
        let Some(slot) = unlocked.outbox.get_mut(seq) else {
            continue;
        };
        slot.in_flight = false;
        let slot = slot.clone();
        // Only a failed attempt needs the entry's age (the success path reads nothing).
        let expired = matches!(failure, Some((false, _)))
            && unlocked
                .store
                .get(tables::OUTBOX, &seq.to_be_bytes())?
                .and_then(|v| OutboxEntry::decode(&v).ok())
                .is_some_and(|e| e.queued_at_ms + OUTBOX_EXPIRY_MS <= now_ms());
        let outcome = match &failure {
            None => Some((MessageStatus::Sent, None)),
            Some((true, why)) => Some((MessageStatus::Failed, Some(why.clone()))),
            Some((false, why)) if expired => Some((
                MessageStatus::Failed,
                Some(format!("not delivered to the relay within 7 days: {why}")),
            )),
            Some((false, _)) => None,
        };
        match outcome {
            Some((status, why)) => {
                batch.delete(tables::OUTBOX, &seq.to_be_bytes());
                unlocked.outbox.remove(seq);
                if slot.kind == OutboxKind::Text {
                    statuses.push((slot.conversation, slot.message_id, status, why));
                }
            }
            None => {
                if let Some(slot) = unlocked.outbox.get_mut(seq) {
                    slot.attempts += 1;
                    slot.not_before = Some(Instant::now() + backoff(slot.attempts));
                }
            }
        }
    }
    if let Some((_, why)) = &failure {
        tracing::info!(messages = seqs.len(), reason = %why, "send failed");
    }
    let mut events = Vec::new();
    for (conversation, id, status, why) in statuses {
        let Some((location, mut record)) = outgoing_message(unlocked, &conversation, &id)? else {
            continue;
        };
        // A receipt may have overtaken the relay's acknowledgement.
        if record
            .status
            .is_some_and(|s| s >= status && s != MessageStatus::Failed)
        {
            continue;
        }
        record.status = Some(status);
        record.failure = why.clone();
        batch.put(tables::MESSAGES, &location, &record.encode());
        let alias = unlocked
            .contact(&conversation)
            .map(|c| c.alias.clone())
            .unwrap_or_default();
        events.push(EventKind::MessageStatus {
            message_id: message_id_to_string(&id),
            conversation: alias,
            status,
            failure: why,
        });
    }
    for kind in events {
        record_event(state, &mut batch, txn, kind)?;
    }
    txn.commit(&store, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::account::tests::unlocked_state;

    fn contact(state: &mut CoreState, alias: &str, seed: u8) -> ConvId {
        let identity = protocol::identity::IdentityKeyPair::from_seed(&[seed; 32]).public_key();
        super::super::contacts::add(
            state,
            &mut Txn::default(),
            alias,
            *identity.as_bytes(),
            None,
            None,
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn sent_id(state: &mut CoreState, conversation: ConvId, text: &str) -> [u8; 16] {
        let sent = send_text(state, &mut Txn::default(), conversation, text)
            .unwrap_or_else(|e| panic!("{e}"));
        api::types::parse_message_id(&sent.message_id).unwrap_or_else(|| panic!("an id"))
    }

    /// An outgoing message's id leads back to it without an index, and only from its own
    /// conversation (a contact cannot report on another's messages).
    #[test]
    fn outgoing_ids_name_their_message_and_only_in_their_conversation() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let bob = contact(&mut state, "bob", 2);
        let first = sent_id(&mut state, alice, "one");
        let second = sent_id(&mut state, alice, "two");
        let to_bob = sent_id(&mut state, bob, "three");
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unlocked.store.scan(tables::MESSAGE_INDEX, &[]).count(),
            0,
            "sending writes no index entry"
        );
        for (conversation, id, text) in [
            (alice, first, "one"),
            (alice, second, "two"),
            (bob, to_bob, "three"),
        ] {
            let found = outgoing_message(unlocked, &conversation, &id)
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|(_, record)| record.text);
            assert_eq!(found.as_deref(), Some(text));
        }
        assert_eq!(
            first[..],
            unlocked.store.message_ids().id_for(&alice, 0)[..]
        );
        for (conversation, id) in [(bob, first), (alice, to_bob)] {
            let found =
                outgoing_message(unlocked, &conversation, &id).unwrap_or_else(|e| panic!("{e}"));
            assert!(found.is_none(), "another conversation's id");
        }
        let unknown =
            outgoing_message(unlocked, &alice, &[0x5a; 16]).unwrap_or_else(|e| panic!("{e}"));
        assert!(unknown.is_none());
    }

    fn text_from(timestamp_ms: u64, id: u8) -> Content {
        Content {
            message_id: [id; 16],
            timestamp_ms,
            kind: ContentKind::Text,
            body: b"hello".to_vec(),
        }
    }

    /// A message that arrives again (the same content, as a sender that sealed it again sends
    /// it) is stored and announced once; another message with the same timestamp is not a
    /// repeat.
    #[test]
    fn a_received_message_is_stored_once() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let sender = *protocol::identity::IdentityKeyPair::from_seed(&[1; 32])
            .public_key()
            .as_bytes();
        let t = 1_800_000_000_123;
        for content in [
            text_from(t, 1),
            text_from(t, 1),
            text_from(t, 2),
            text_from(t, 1),
        ] {
            let store = state
                .unlocked()
                .map(|u| u.store.clone())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut batch = store.batch();
            let mut txn = Txn::default();
            receive_text(&mut state, &mut txn, &mut batch, sender, 1, &content)
                .unwrap_or_else(|e| panic!("{e}"));
            store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        }
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let meta = unlocked
            .conversations
            .get(&alice)
            .copied()
            .unwrap_or_default();
        assert_eq!((meta.total, meta.unread), (2, 2));
        assert_eq!(unlocked.store.scan(tables::RECEIVED, &alice).count(), 2);
        assert_eq!(unlocked.store.scan(tables::MESSAGE_INDEX, &[]).count(), 0);
    }

    /// Runs `content` from the identity of seed `seed` through the receive path's dispatch and
    /// commits what it wrote.
    fn receive_from(
        state: &mut CoreState,
        seed: u8,
        content: &Content,
    ) -> Result<(), ReceiveError> {
        let sender = *protocol::identity::IdentityKeyPair::from_seed(&[seed; 32])
            .public_key()
            .as_bytes();
        let store = state
            .unlocked()
            .map(|u| u.store.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut batch = store.batch();
        receive_content(state, &mut Txn::default(), &mut batch, sender, 1, content)?;
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        Ok(())
    }

    fn status_of(state: &mut CoreState, conversation: ConvId, id: &[u8; 16]) -> MessageStatus {
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        outgoing_message(unlocked, &conversation, id)
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|(_, record)| record.status)
            .unwrap_or_else(|| panic!("a status"))
    }

    /// The same message id and timestamp from the same sender is a repeat (SPEC.md 8.1): a
    /// text sent again is shown once but still owes its receipt, so a sender whose receipt was
    /// lost hears about it. The same id with another timestamp is another message.
    #[test]
    fn a_repeat_is_shown_once_and_answered_again() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let t = 1_800_000_000_123;
        for content in [text_from(t, 1), text_from(t, 1), text_from(t + 1, 1)] {
            receive_from(&mut state, 1, &content).unwrap_or_else(|e| panic!("{e}"));
        }
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let meta = unlocked
            .conversations
            .get(&alice)
            .copied()
            .unwrap_or_default();
        assert_eq!(meta.total, 2, "the repeat is not stored again");
        let owed = unlocked
            .fresh_receipts
            .get(&alice)
            .cloned()
            .unwrap_or_default();
        assert_eq!(owed, vec![[1; 16]; 3], "every arrival is answered");
    }

    /// One receipt may cite several messages, and each becomes delivered (or read); a body that
    /// is not a run of whole 16-byte ids is the peer's fault and changes nothing; a contact
    /// cannot report on another contact's messages.
    #[test]
    fn a_receipt_cites_several_messages_and_a_broken_one_changes_nothing() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let _bob = contact(&mut state, "bob", 2);
        let ids: Vec<[u8; 16]> = ["one", "two", "three"]
            .iter()
            .map(|text| sent_id(&mut state, alice, text))
            .collect();
        let receipt = |kind: ContentKind, body: Vec<u8>| Content {
            message_id: [0x77; 16],
            timestamp_ms: 1_800_000_000_500,
            kind,
            body,
        };
        let two: Vec<u8> = ids[..2].iter().flatten().copied().collect();
        for broken in [Vec::new(), vec![1; 17], [two.clone(), vec![0]].concat()] {
            let length = broken.len();
            match receive_from(
                &mut state,
                1,
                &receipt(ContentKind::DeliveryReceipt, broken),
            ) {
                Err(ReceiveError::Peer(PeerError::BadReceipt(found))) => assert_eq!(found, length),
                other => panic!("a broken receipt of {length} bytes: {other:?}"),
            }
        }
        // Bob cites Alice's messages: nothing happens.
        receive_from(
            &mut state,
            2,
            &receipt(ContentKind::ReadReceipt, two.clone()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for id in &ids {
            assert_eq!(status_of(&mut state, alice, id), MessageStatus::Pending);
        }
        receive_from(&mut state, 1, &receipt(ContentKind::DeliveryReceipt, two))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            status_of(&mut state, alice, &ids[0]),
            MessageStatus::Delivered
        );
        assert_eq!(
            status_of(&mut state, alice, &ids[1]),
            MessageStatus::Delivered
        );
        assert_eq!(
            status_of(&mut state, alice, &ids[2]),
            MessageStatus::Pending
        );
        let body: Vec<u8> = ids.iter().flatten().copied().collect();
        receive_from(&mut state, 1, &receipt(ContentKind::ReadReceipt, body))
            .unwrap_or_else(|e| panic!("{e}"));
        for id in &ids {
            assert_eq!(status_of(&mut state, alice, id), MessageStatus::Read);
        }
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            unlocked.fresh_receipts.is_empty(),
            "receipts are not answered"
        );
    }

    /// Only texts owe receipts; an introduction names its sender and is not answered; a kind
    /// this version does not know is dropped silently: not stored, not answered, no error.
    #[test]
    fn only_texts_are_answered_and_unknown_kinds_are_dropped_silently() {
        let mut state = unlocked_state(1_800_000_000_000);
        let introduction = Introduction {
            name: DisplayName::parse("Carol").unwrap_or_else(|e| panic!("{e}")),
            handle: None,
            invite_token: None,
        };
        let content = |kind: ContentKind, body: Vec<u8>| Content {
            message_id: [0x42; 16],
            timestamp_ms: 1_800_000_000_500,
            kind,
            body,
        };
        receive_from(
            &mut state,
            3,
            &content(ContentKind::Introduction, introduction.to_bytes()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let unknown = ContentKind::from_byte(9).unwrap_or_else(|e| panic!("{e}"));
        receive_from(
            &mut state,
            3,
            &content(unknown, b"from the future".to_vec()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let carol = unlocked
            .contacts
            .values()
            .find(|c| c.display_name.as_deref() == Some("Carol"))
            .map(|c| c.alias.clone());
        assert_eq!(
            carol.as_deref(),
            Some("Carol"),
            "the introduction named a new contact"
        );
        assert!(unlocked.fresh_receipts.is_empty(), "nothing was answered");
        assert_eq!(unlocked.store.scan(tables::MESSAGES, &[]).count(), 0);
        assert_eq!(unlocked.store.scan(tables::OWED_RECEIPTS, &[]).count(), 0);
        // A broken introduction is the peer's fault.
        match receive_from(
            &mut state,
            3,
            &content(ContentKind::Introduction, vec![1, 0, 0]),
        ) {
            Err(ReceiveError::Peer(PeerError::BadIntroduction(_))) => {}
            other => panic!("{other:?}"),
        }
        receive_from(&mut state, 3, &text_from(1_800_000_000_600, 5))
            .unwrap_or_else(|e| panic!("{e}"));
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            unlocked
                .fresh_receipts
                .values()
                .map(Vec::len)
                .sum::<usize>(),
            1
        );
    }

    /// `protocol/testdata/content.json`: every case, from a sender the receiver does not know
    /// yet, has the outcome SPEC.md 8.1 gives it, through the receive path's own dispatch.
    #[test]
    fn content_vectors_are_handled_as_the_spec_says() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/testdata/content.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let vectors: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let cases = vectors["cases"].as_array().cloned().unwrap_or_default();
        assert!(cases.len() >= 10, "the vectors are there");
        for case in cases {
            let comment = case["comment"].as_str().unwrap_or_default();
            let expected = case["result"].as_str().unwrap_or_default();
            let hex = case["content"].as_str().unwrap_or_default();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let mut state = unlocked_state(1_800_000_000_000);
            let found = match Content::from_bytes(&bytes) {
                Err(_) => "refused/BadContent".to_owned(),
                Ok(content) => match receive_from(&mut state, 9, &content) {
                    Err(ReceiveError::Peer(PeerError::BadReceipt(_))) => {
                        "refused/BadReceipt".into()
                    }
                    Err(ReceiveError::Peer(PeerError::BadIntroduction(_))) => {
                        "refused/BadIntroduction".into()
                    }
                    Err(other) => format!("error: {other}"),
                    Ok(()) => {
                        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
                        let stored = unlocked.store.scan(tables::MESSAGES, &[]).count();
                        let owed = unlocked
                            .fresh_receipts
                            .values()
                            .map(Vec::len)
                            .sum::<usize>();
                        let named: Vec<String> = unlocked
                            .contacts
                            .values()
                            .filter_map(|c| c.display_name.clone())
                            .collect();
                        match (stored, owed, named.as_slice()) {
                            (1, 1, []) => "stored".to_owned(),
                            (0, 0, []) => "ignored".to_owned(),
                            (0, 0, [name]) => format!("named/{name}"),
                            other => format!("unexpected: {other:?}"),
                        }
                    }
                },
            };
            assert_eq!(found, expected, "{comment}");
            if expected.starts_with("refused") || expected == "ignored" {
                let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    unlocked.contacts.is_empty(),
                    "{comment}: no contact was added"
                );
            }
        }
    }

    /// An envelope a peer botched is the peer's fault, named by kind, and is acknowledged (the
    /// relay would only deliver it again); nothing is stored.
    #[test]
    fn an_unreadable_envelope_is_a_typed_peer_error_and_is_acknowledged() {
        let mut state = unlocked_state(1_800_000_000_000);
        for (payload, expected) in [
            (Vec::new(), envelope::EnvelopeError::Truncated),
            (
                vec![0x07; 80],
                envelope::EnvelopeError::UnsupportedVersion(7),
            ),
            (
                [vec![0x02], vec![0x09; 32], vec![0x5a; 120]].concat(),
                envelope::EnvelopeError::Authentication,
            ),
        ] {
            match receive_inner(&mut state, &mut Txn::default(), &payload) {
                Err(ReceiveError::Peer(found)) => {
                    assert_eq!(found, PeerError::Envelope(expected));
                }
                other => panic!("{other:?}"),
            }
        }
        receive(
            &mut state,
            &mut Txn::default(),
            EnvelopeId::from_bytes([9; 16]),
            &[0x07; 80],
        );
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unlocked.pending_acks, [EnvelopeId::from_bytes([9; 16])]);
        assert_eq!(unlocked.store.scan(tables::MESSAGES, &[]).count(), 0);
    }

    /// Within a conversation, received keys follow the sender's clock (so sled only touches
    /// the newest leaf), but the key does not hold the clock reading itself.
    #[test]
    fn received_keys_are_in_time_order_and_hide_the_time() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let bob = contact(&mut state, "bob", 2);
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let sender = [7u8; 32];
        let t = 1_800_000_000_000;
        let keys: Vec<[u8; 32]> = (0..50)
            .map(|i| received_key(unlocked, &alice, &sender, &text_from(t + i * 1000, i as u8)))
            .collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "keys follow the sender's clock");
            assert_eq!(pair[0][..16], alice[..], "keys start with the conversation");
        }
        let shown = u64::from_be_bytes(keys[0][16..24].try_into().unwrap_or_default());
        assert_ne!(shown, t, "the clock reading is shifted");
        // Each conversation has its own offset.
        let at_bob = received_key(unlocked, &bob, &sender, &text_from(t, 0));
        let shown_at_bob = u64::from_be_bytes(at_bob[16..24].try_into().unwrap_or_default());
        assert_ne!(shown.wrapping_sub(t), shown_at_bob.wrapping_sub(t));
    }

    /// Messages sent by a store from before ids named their location (random ids, found through
    /// a `b"out"` index entry) are still found, and still only from their conversation.
    #[test]
    fn outgoing_messages_with_random_ids_are_found_through_the_old_index() {
        let mut state = unlocked_state(1_800_000_000_000);
        let alice = contact(&mut state, "alice", 1);
        let bob = contact(&mut state, "bob", 2);
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let legacy_id = [0x42; 16];
        let record = MessageRecord {
            message_id: legacy_id,
            direction: Direction::Outgoing,
            timestamp_ms: 1,
            stored_at_ms: 1,
            status: Some(MessageStatus::Sent),
            failure: None,
            read: false,
            text: "old".into(),
        };
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        let seq = append_message(unlocked, &mut batch, alice, &record, false)
            .unwrap_or_else(|e| panic!("{e}"));
        let index = legacy_outgoing_index(unlocked, &legacy_id);
        batch.put(tables::MESSAGE_INDEX, &index, &message_key(&alice, seq));
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        // Unlocked again, as an upgraded daemon would find the store.
        let kv = state.kv.clone();
        let keys = crate::store::Vault::unlock(&kv, None).unwrap_or_else(|e| panic!("{e}"));
        let reloaded =
            Unlocked::load(crate::store::Store::new(kv, keys)).unwrap_or_else(|e| panic!("{e}"));
        state.lock = super::super::Lock::Unlocked(Box::new(reloaded));
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        assert!(unlocked.has_legacy_index);
        let found = outgoing_message(unlocked, &alice, &legacy_id)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|(key, record)| (key, record.text));
        assert_eq!(found, Some((message_key(&alice, seq), "old".to_owned())));
        let from_bob =
            outgoing_message(unlocked, &bob, &legacy_id).unwrap_or_else(|e| panic!("{e}"));
        assert!(from_bob.is_none());
    }
}
