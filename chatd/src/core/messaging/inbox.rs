//! Incoming envelopes: open the seal, decrypt (setting up a session from a prekey message),
//! handle the content by kind as SPEC.md 8.1 says, drop repeats, store, and owe the receipt in
//! the same batch. Whatever a peer botched is a typed [`PeerError`].

use api::ErrorCode;
use api::events::EventKind;
use api::types::{Direction, MessageStatus, message_id_to_string};
use protocol::codec::{Decode, Encode};
use protocol::envelope::{Content, ContentKind};
use protocol::frames::EnvelopeId;
use protocol::introduction::Introduction;
use protocol::pqxdh::ResponderKeys;
use protocol::ratchet::DecryptError;
use protocol::session::{SessionError, SessionMessage};
use zeroize::Zeroizing;

use crate::core::contacts::Joining;
use crate::core::records::{MessageRecord, tables};
use crate::core::unlocked::{ConvId, Unlocked};
use crate::core::{CoreState, Txn};
use crate::core::{account, key_change};
use crate::error::{ApiResult, PeerError, ReceiveError};
use crate::store::Batch;

use super::event_log::record_event;
use super::history::{append_message, message_view, outgoing_message};
use super::outbox::owe_receipt;

/// The [`tables::RECEIVED`] key of a message `sender` sent in `conversation`.
///
/// A repeat carries the same content (a sender that seals a message again keeps its id and
/// timestamp), so it has the same key. The sender's timestamp puts a conversation's messages in
/// time order, so remembering one touches the newest leaf of the tree, not a random one (random
/// keys made sled page leaves in and out at every message); shifting it by an offset only this
/// store can compute keeps the time a message was sent out of the plaintext key.
pub(crate) fn received_key(
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

/// Opens, decrypts, stores and acknowledges one delivered envelope (`from`: the relay the
/// account moved away from that delivered it, `None` for the home relay). Anything that cannot be
/// opened or decrypted is logged and acknowledged (it can never become readable), and the
/// session is left as it was.
pub(crate) fn receive(
    state: &mut CoreState,
    txn: &mut Txn,
    envelope_id: EnvelopeId,
    payload: &[u8],
    from: Option<&str>,
) {
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
        match from {
            None => unlocked.pending_acks.push(envelope_id),
            Some(relay) => unlocked
                .pending_drain_acks
                .entry(relay.to_owned())
                .or_default()
                .push(envelope_id),
        }
    }
}

pub(crate) fn receive_inner(
    state: &mut CoreState,
    txn: &mut Txn,
    payload: &[u8],
) -> Result<(), ReceiveError> {
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
pub(crate) fn receive_content(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    device: u32,
    content: &Content,
) -> Result<(), ReceiveError> {
    let unlocked = state.unlocked()?;
    let known = unlocked
        .by_identity
        .get(&sender)
        .copied()
        .or_else(|| key_change::pending_conversation(unlocked, &sender));
    if let Some(id) = known
        && unlocked.contact(&id)?.blocked
    {
        // Sent before the block reached the relay: dropped unread, never answered.
        tracing::debug!("dropping a message from a blocked contact");
        return Ok(());
    }
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
        ContentKind::InviteRefused => {
            crate::core::requests::receive_refusal(state, txn, batch, sender, content)?
        }
        ContentKind::Other(kind) => {
            tracing::debug!(kind = kind.get(), "ignoring a message of an unknown kind");
        }
    }
    Ok(())
}

/// How an unknown sender is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A stranger: a message request (`core::requests`).
    Stranger,
    /// It answered one of our open invites: a contact at once, whose token is the one the
    /// invite handed out (`None` for an invite made before tokens: a new one, introduced).
    Invited(Option<[u8; 16]>),
}

/// The conversation of `sender`, taking an unknown sender in as `admission` says (the new key
/// of a contact whose key change waits is that contact's, `key_change`); a request that
/// answers one of our invites becomes a contact.
pub(crate) fn conversation_of(
    state: &mut CoreState,
    txn: &mut Txn,
    sender: [u8; 32],
    device: u32,
    name: Option<&str>,
    admission: Admission,
) -> ApiResult<ConvId> {
    let unlocked = state.unlocked()?;
    let known = unlocked
        .by_identity
        .get(&sender)
        .copied()
        .or_else(|| key_change::pending_conversation(unlocked, &sender));
    let id = match (known, admission) {
        (Some(id), Admission::Invited(token)) if unlocked.contact(&id)?.request => {
            crate::core::requests::accept_id(state, txn, id, None, token, token.is_none())?;
            id
        }
        (Some(id), _) => id,
        (None, admission) => {
            let alias = unlocked.free_alias(name.unwrap_or_default(), &sender);
            let (our_token, joining) = match admission {
                Admission::Stranger => (None, Joining::Request),
                Admission::Invited(Some(token)) => (Some(token), Joining::Quietly),
                Admission::Invited(None) => (None, Joining::Introduce),
            };
            crate::core::contacts::add(
                state,
                txn,
                &alias,
                sender,
                None,
                name.map(str::to_owned),
                crate::core::contacts::Whereabouts {
                    our_token,
                    ..Default::default()
                },
                joining,
            )?
        }
    };
    let unlocked = state.unlocked()?;
    if let Some(contact) = unlocked.contacts.get_mut(&id) {
        // The devices of the key that wrote: the pinned one's, or the waiting new key's.
        let devices = if contact.identity == sender {
            &mut contact.devices
        } else {
            &mut contact.pending_devices
        };
        if devices.contains(&device) {
            return Ok(id);
        }
        devices.push(device);
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        batch.put(tables::CONTACTS, &id, &contact.encode());
        txn.commit(&store, batch)?;
    }
    Ok(id)
}

pub(crate) fn receive_text(
    state: &mut CoreState,
    txn: &mut Txn,
    batch: &mut Batch<'_>,
    sender: [u8; 32],
    device: u32,
    content: &Content,
) -> ApiResult<()> {
    let text = String::from_utf8_lossy(&content.body).into_owned();
    let conversation = conversation_of(state, txn, sender, device, None, Admission::Stranger)?;
    let unlocked = state.unlocked()?;
    let received = received_key(unlocked, &conversation, &sender, content);
    if unlocked.store.get(tables::RECEIVED, &received)?.is_some() {
        // A repeat of a message already stored (the sender retried): shown once, but the
        // sender still gets its receipt.
        owe_receipt(unlocked, batch, conversation, content.message_id, sender);
        return Ok(());
    }
    let record = MessageRecord {
        message_id: content.message_id,
        direction: Direction::Incoming,
        timestamp_ms: content.timestamp_ms,
        stored_at_ms: unlocked.clock.now_ms(),
        status: None,
        failure: None,
        read: false,
        text,
    };
    append_message(unlocked, batch, conversation, &record, true)?;
    batch.put(tables::RECEIVED, &received, &[]);
    // The receipt goes back to the key that wrote, also while a key change waits.
    owe_receipt(unlocked, batch, conversation, content.message_id, sender);
    let contact = unlocked.contact(&conversation)?;
    let kind = EventKind::MessageReceived {
        message: message_view(&contact.alias, &record),
        sender_name: contact.display_name.clone(),
        from_changed_key: contact.identity != sender,
        from_request: contact.request,
    };
    record_event(state, batch, txn, kind)
}

pub(crate) fn receive_receipt(
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

pub(crate) fn receive_introduction(
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
    // An invite's token first: whoever answers one of our open invites holds the delivery
    // token the invite handed out, which becomes its token, and needs no introduction back.
    // Any other token is refused (invites are one use), and its sender is a stranger; a
    // contact's own token, presented again, changes nothing.
    let unlocked = state.unlocked()?;
    let is_contact = unlocked
        .by_identity
        .get(&sender)
        .and_then(|id| unlocked.contacts.get(id))
        .is_some_and(|contact| !contact.request);
    let mut admission = Admission::Stranger;
    let mut refused = None;
    if let Some(token) = introduction.invite_token
        && !is_contact
    {
        match crate::core::contacts::consume_invite(unlocked, batch, &token)? {
            Ok(delivery_token) => admission = Admission::Invited(delivery_token),
            Err(reason) => refused = Some((token, reason)),
        }
    }
    let conversation = conversation_of(state, txn, sender, device, Some(&name), admission)?;
    if let Some((token, reason)) = refused {
        crate::core::requests::refuse_invite(state.unlocked()?, txn, conversation, token, reason)?;
    }
    let unlocked = state.unlocked()?;
    let mut moved = false;
    if let Some(contact) = unlocked.contacts.get_mut(&conversation)
        && contact.identity == sender
    {
        let held = contact.reach.clone();
        let mut changed = crate::core::reach::apply_introduction(contact, &sender, &introduction);
        if contact.invite_refused != 0 && !contact.request {
            // It introduced itself: it holds us as a contact now (its user accepted our
            // request), so the refusal of its invite is over.
            contact.invite_refused = 0;
            changed = true;
        }
        moved = contact.reach != held;
        if contact.display_name.is_none() {
            contact.display_name = Some(name);
            changed = true;
        }
        if changed {
            batch.put(tables::CONTACTS, &conversation, &contact.encode());
        }
    }
    if moved {
        // A new record (a new relay, a new certificate pin): what waited for the old one goes
        // now, to the new record's first relay, not at its next retry.
        unlocked.route_attempts.remove(&conversation);
        super::outbox::send_now(unlocked, &std::iter::once(conversation).collect());
    }
    Ok(())
}
