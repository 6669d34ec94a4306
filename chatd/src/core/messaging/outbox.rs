//! The outbox: messages and receipts queued for contacts, sealed in order (one key agreement
//! per recipient device per round), sent first in, first out per conversation with at most one
//! `Send` of a conversation unanswered (SPEC.md 8.1, Order), retried with backoff and jitter,
//! and their statuses (`sent`, `failed`) recorded.

use std::collections::HashMap;
use std::time::Duration;

use api::ErrorCode;
use api::events::EventKind;
use api::types::{Direction, MessageStatus, SentMessage, message_id_to_string};
use protocol::codec::Encode;
use protocol::envelope::{self, Content, ContentKind};
use protocol::frames::{ClientFrame, DepositEnvelope, ServerFrame};
use protocol::identity::{DeviceId, IdentityKey};
use protocol::prekeys::PrekeyBundle;
use protocol::reachability::DeliveryToken;
use rand::RngExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::core::key_change;
use crate::core::reach::{self, Route};
use crate::core::records::{ContactRecord, MessageRecord, OutboxEntry, OutboxKind, tables};
use crate::core::unlocked::{ConvId, OutboxSlot, Unlocked, identity_key};
use crate::core::{CoreState, Dialer, Input, Txn};
use crate::error::{ApiError, ApiResult};
use crate::relay_link::{RequestError, Requester};
use crate::store::Batch;

use super::event_log::record_event;
use super::history::{append_message, outgoing_message};

/// A message not accepted by the relay after this long fails.
pub const OUTBOX_EXPIRY_MS: u64 = 7 * 24 * 3600 * 1000;
/// `Send` frames waiting for the relay at once, across conversations (a conversation has at
/// most one: see `start_sends`).
pub(crate) const MAX_SENDS_IN_FLIGHT: usize = 8;

/// How many of the oldest outbox entries a round looks at to seal and send. A conversation's
/// later entries cannot leave before its earlier ones anyway, so under a backlog (a burst the
/// relay is slower to take) each round's work stays bounded instead of growing with the
/// backlog; entries further back are sealed and sent as the front drains. An entry goes in
/// flight only inside the window, and the window only moves forward as entries ahead of it
/// leave, so every entry in flight is inside it.
pub(crate) const OUTBOX_WINDOW: usize = 4096;
/// How long to wait for a `SendAck`.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for device lists and bundles.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Retry delays grow from this...
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(500);

/// ...to this.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(300);

/// Retry delay after `attempts` failures: exponential with full jitter.
pub(crate) fn backoff(attempts: u32) -> Duration {
    let max = RETRY_MIN
        .saturating_mul(1u32 << attempts.min(12))
        .min(RETRY_MAX);
    let ms = rand::rng().random_range(RETRY_MIN.as_millis() as u64 / 2..=max.as_millis() as u64);
    Duration::from_millis(ms)
}

/// Puts a message into the outbox (in `batch`), for the contact's key.
pub(crate) fn queue(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    conversation: ConvId,
    kind: OutboxKind,
    content: &Content,
) -> ApiResult<()> {
    let identity = unlocked.contact(&conversation)?.identity;
    queue_to(unlocked, batch, conversation, kind, content, identity)
}

/// Puts a message into the outbox (in `batch`), for the key `identity` (a delivery receipt
/// goes to the key that sent the message, `key_change`).
pub(crate) fn queue_to(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    conversation: ConvId,
    kind: OutboxKind,
    content: &Content,
    identity: [u8; 32],
) -> ApiResult<()> {
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
        queued_at_ms: unlocked.clock.now_ms(),
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

pub(crate) fn new_content(unlocked: &Unlocked, kind: ContentKind, body: Vec<u8>) -> Content {
    let mut message_id = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut message_id);
    Content {
        message_id,
        timestamp_ms: unlocked.clock.now_ms(),
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
    let content = new_content(unlocked, kind, body);
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

/// `messages.send`: stores the message and queues it; durable when the round ends.
pub fn send_text(
    state: &mut CoreState,
    txn: &mut Txn,
    conversation: ConvId,
    text: &str,
) -> ApiResult<SentMessage> {
    if let Some(problem) = api::input::text_problem(text) {
        return Err(ApiError::new(ErrorCode::InvalidMessage, problem));
    }
    let unlocked = state.unlocked()?;
    unlocked.check_trusted(&conversation)?;
    if unlocked.contact(&conversation)?.blocked {
        return Err(ApiError::new(
            ErrorCode::ContactBlocked,
            "this contact is blocked: unblock it to write to it",
        ));
    }
    // The id names where the message is stored (`store::MessageIds`), so a receipt or the
    // relay's acknowledgement finds it without an index.
    let seq = unlocked
        .conversations
        .get(&conversation)
        .map_or(0, |meta| meta.next_seq);
    let content = Content {
        message_id: unlocked.store.message_ids().id_for(&conversation, seq),
        timestamp_ms: unlocked.clock.now_ms(),
        kind: ContentKind::Text,
        body: text.as_bytes().to_vec(),
    };
    let record = MessageRecord {
        message_id: content.message_id,
        direction: Direction::Outgoing,
        timestamp_ms: content.timestamp_ms,
        stored_at_ms: content.timestamp_ms,
        status: Some(MessageStatus::Pending),
        // Queued behind a contact that cannot be reached now: it says why from the start.
        failure: unlocked.held.get(&conversation).cloned(),
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

/// Records that a delivery receipt is owed for a stored message, in the message's own batch:
/// the receipt can then not be lost to a crash between storing the message and queueing the
/// receipt (after which the relay's redelivery would only look like a ratchet duplicate).
/// `sender` is the key that sent it, which the receipt goes back to.
pub(crate) fn owe_receipt(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    conversation: ConvId,
    id: [u8; 16],
    sender: [u8; 32],
) {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&conversation);
    key[16..].copy_from_slice(&id);
    batch.put(tables::OWED_RECEIPTS, &key, &sender);
    unlocked
        .fresh_receipts
        .entry(conversation)
        .or_default()
        .push((id, sender));
}

/// Hands the receipts owed for this round's messages to the next round, and makes sure there
/// is one. The receipt is a ratchet step and a sealed envelope (an X25519 key and DH); sealing
/// it after this round's flush lets the messages' events out sooner. Under a steady load the
/// next round comes anyway and queues them with its own work.
pub(crate) fn defer_fresh_receipts(
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
    let wake: crate::core::Job = Box::new(|_, _| {});
    let _ = inputs.send(Input::Job(wake));
}

/// Turns the owed receipts into one outbox entry per conversation and sending key, deleting
/// the records in the same batch.
pub(crate) fn flush_receipts(unlocked: &mut Unlocked, txn: &mut Txn) -> ApiResult<()> {
    if unlocked.pending_receipts.is_empty() {
        return Ok(());
    }
    let receipts = std::mem::take(&mut unlocked.pending_receipts);
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    for (conversation, owed) in receipts {
        let mut by_sender: Vec<([u8; 32], Vec<[u8; 16]>)> = Vec::new();
        for (id, sender) in &owed {
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(&conversation);
            key[16..].copy_from_slice(id);
            batch.delete(tables::OWED_RECEIPTS, &key);
            match by_sender.iter_mut().find(|(to, _)| to == sender) {
                Some((_, ids)) => ids.push(*id),
                None => by_sender.push((*sender, vec![*id])),
            }
        }
        if !unlocked.contacts.contains_key(&conversation) {
            continue;
        }
        for (sender, ids) in by_sender {
            for chunk in ids.chunks(4096) {
                let body: Vec<u8> = chunk.iter().flatten().copied().collect();
                let content = new_content(unlocked, ContentKind::DeliveryReceipt, body);
                queue_to(
                    unlocked,
                    &mut batch,
                    conversation,
                    OutboxKind::DeliveryReceipt,
                    &content,
                    sender,
                )?;
            }
        }
    }
    txn.commit(&store, batch)
}

pub(crate) fn due(slot: &OutboxSlot, now: Instant) -> bool {
    slot.not_before.is_none_or(|t| t <= now)
}

pub(crate) fn seal_ready(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    dialer: &Dialer,
    sealed_now: &mut std::collections::HashSet<u64>,
) -> ApiResult<()> {
    let now = Instant::now();
    let mut blocked: std::collections::HashSet<ConvId> = std::collections::HashSet::new();
    // In outbox order; an entry waiting out a retry holds back the later ones of its
    // conversation, so they are sealed (and sent) after it.
    let mut waiting: Vec<(u64, ConvId, OutboxKind)> = Vec::new();
    for (seq, slot) in unlocked.outbox.iter().take(OUTBOX_WINDOW) {
        if slot.sealed {
            continue;
        }
        if !due(slot, now) {
            blocked.insert(slot.conversation);
        } else if !blocked.contains(&slot.conversation) {
            waiting.push((*seq, slot.conversation, slot.kind));
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
    for (seq, conversation, kind) in waiting {
        if blocked.contains(&conversation) {
            continue;
        }
        let Some(contact) = unlocked.contacts.get(&conversation).cloned() else {
            continue;
        };
        // While a key change waits, only delivery receipts leave (to the key whose message
        // each acknowledges); the rest waits without holding them back (`key_change`).
        let pending = contact.trust == api::types::Trust::KeyChanged;
        if pending && !key_change::sends_while_pending(kind) {
            continue;
        }
        let mut loaded = None;
        let (target, devices) = if pending {
            let Some(value) = unlocked.store.get(tables::OUTBOX, &seq.to_be_bytes())? else {
                unlocked.outbox.remove(&seq);
                continue;
            };
            let entry =
                OutboxEntry::decode(&value).map_err(|_| ApiError::store("an outbox entry"))?;
            let target = entry.sealed_for;
            loaded = Some(entry);
            if target == contact.identity {
                (target, contact.devices.clone())
            } else if contact.pending_identity == Some(target) {
                (target, contact.pending_devices.clone())
            } else {
                continue;
            }
        } else {
            (contact.identity, contact.devices.clone())
        };
        // A contact on our own relay waits for the home link; others do not.
        if !unlocked.online && reach::route(unlocked, &contact, 0).home {
            blocked.insert(conversation);
            continue;
        }
        let mut ready = !devices.is_empty();
        for device in &devices {
            if !unlocked.session(target, *device)?.has_session() {
                ready = false;
            }
        }
        if !ready {
            if target != contact.identity {
                // The waiting new key's sessions come from its own messages: nothing to fetch.
                continue;
            }
            blocked.insert(conversation);
            if unlocked.fetching.insert(conversation) {
                fetch_bundles(unlocked, txn, dialer, conversation, &contact);
            }
            continue;
        }
        let mut entry = match loaded {
            Some(entry) => entry,
            None => {
                let Some(value) = unlocked.store.get(tables::OUTBOX, &seq.to_be_bytes())? else {
                    unlocked.outbox.remove(&seq);
                    continue;
                };
                OutboxEntry::decode(&value).map_err(|_| ApiError::store("an outbox entry"))?
            }
        };
        entry.sealed.clear();
        entry.sealed_for = target;
        for device in &devices {
            let mut record = std::mem::take(unlocked.session(target, *device)?);
            let sealed = record
                .encrypt(&entry.content, &mut rand::rng())
                .map_err(|e| e.to_string())
                .and_then(|message| {
                    let peer = record.peer().ok_or("no session")?;
                    let key = (target, *device);
                    if !sealers.get(&key).is_some_and(|s| s.seals_to(peer)) {
                        let sealer = envelope::Sealer::new(peer, &mut rand::rng())
                            .map_err(|e| e.to_string())?;
                        sealers.insert(key, sealer);
                    }
                    let sealer = sealers.get(&key).ok_or("no sealer")?;
                    Ok(sealer.seal(&unlocked.local, &message, &mut rand::rng()))
                });
            unlocked.sessions.insert((target, *device), record);
            match sealed {
                Ok(payload) => entry.sealed.push((*device, payload)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not encrypt for a device");
                }
            }
            if !advanced.contains(&(target, *device)) {
                advanced.push((target, *device));
            }
        }
        if entry.sealed.is_empty() {
            blocked.insert(conversation);
            continue;
        }
        batch.put(tables::OUTBOX, &seq.to_be_bytes(), &entry.encode());
        if let Some(slot) = unlocked.outbox.get_mut(&seq) {
            slot.sealed = true;
            sealed_now.insert(seq);
        }
    }
    for (identity, device) in &advanced {
        unlocked.save_session(&mut batch, identity, *device);
    }
    txn.commit(&store, batch)
}

pub(crate) fn fetch_bundles(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    dialer: &Dialer,
    conversation: ConvId,
    contact: &ContactRecord,
) {
    let identity = contact.identity;
    let route = reach::current_route(unlocked, &conversation, contact);
    let requester = match dialer.requester(unlocked, &route) {
        Ok(requester) => requester,
        Err(e) => {
            unlocked.fetching.remove(&conversation);
            delay_conversation(unlocked, &conversation, false);
            hold(unlocked, conversation, e.message);
            return;
        }
    };
    let inputs = dialer.inputs();
    let generation = dialer.generation();
    let (go, wait) = oneshot::channel::<()>();
    txn.after(move || {
        let _ = go.send(());
    });
    unlocked.tasks.spawn(async move {
        if wait.await.is_err() {
            return;
        }
        let result = fetch(&requester, identity, &route.url).await;
        let job: crate::core::Job = Box::new(move |state, txn| {
            if let Err(e) = on_bundles(state, txn, conversation, identity, &route.url, result) {
                tracing::warn!(error = %e, "could not set up a session");
            }
        });
        let _ = inputs.send(Input::Continue(generation, job));
    });
}

/// Lets the queued entries of `conversations` go at the next pump instead of at their next
/// retry (their relay is back, or their contact named a new one).
pub(crate) fn send_now(unlocked: &mut Unlocked, conversations: &std::collections::HashSet<ConvId>) {
    for slot in unlocked.outbox.values_mut() {
        if conversations.contains(&slot.conversation) {
            slot.not_before = None;
        }
    }
}

/// Puts off the unsealed entries of `conversation` (all of them, with `sealed` also the
/// sealed ones) by the backoff of their attempts.
fn delay_conversation(unlocked: &mut Unlocked, conversation: &ConvId, sealed: bool) {
    for slot in unlocked.outbox.values_mut() {
        if &slot.conversation == conversation && (sealed || !slot.sealed) && !slot.in_flight {
            slot.attempts += 1;
            slot.not_before = Some(Instant::now() + backoff(slot.attempts));
        }
    }
}

/// Notes why `conversation`'s queued messages wait; the reason is written to their records and
/// announced (`message.status`, still `pending`) by [`announce_held`] at the end of the round.
pub(crate) fn hold(unlocked: &mut Unlocked, conversation: ConvId, why: String) {
    if unlocked.held.get(&conversation) != Some(&why) {
        tracing::info!(reason = %why, "messages of a conversation wait");
        unlocked.pending_holds.insert(conversation, why);
    }
}

pub(crate) async fn fetch(
    requester: &Requester,
    identity: [u8; 32],
    relay: &str,
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
    if devices.is_empty() {
        // No device (yet): the contact may be on another relay, or its devices may not have
        // registered here yet (an account made while its relay was down). Nothing tells the
        // two apart, so the messages wait, saying why, and are retried with back-off.
        return Err(RequestError::Unreachable(format!(
            "the relay {relay} knows no device of this contact (is the contact on another relay? \
             add it with an invite, its handle@relay or its address@relay)"
        )));
    }
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

pub(crate) fn on_bundles(
    state: &mut CoreState,
    txn: &mut Txn,
    conversation: ConvId,
    identity: [u8; 32],
    relay: &str,
    result: Result<Vec<PrekeyBundle>, RequestError>,
) -> ApiResult<()> {
    if let Err(e) = &result {
        state.note_relay_error(relay, format!("fetching a contact's keys: {e}"));
    }
    let unlocked = state.unlocked()?;
    unlocked.fetching.remove(&conversation);
    // The relay has no mailbox for the contact. Unless the contact's signed record names
    // other relays not tried yet, its queued messages can never be delivered: they fail now,
    // with the reason, instead of waiting in the outbox for 7 days.
    if let Err(RequestError::Refused(protocol::frames::ErrorCode::NotFound, why)) = &result {
        let relays = unlocked
            .contacts
            .get(&conversation)
            .map_or(1, reach::relay_count);
        let tried = unlocked
            .route_attempts
            .get(&conversation)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        if tried as usize >= relays {
            let why = why.clone();
            return super::queue::fail_conversation(state, txn, conversation, &why);
        }
    }
    let bundles = match result {
        Ok(bundles) if !bundles.is_empty() => bundles,
        Ok(_) => {
            delay_conversation(unlocked, &conversation, false);
            hold(
                unlocked,
                conversation,
                "the contact's devices have no prekeys at its relay yet".into(),
            );
            return Ok(());
        }
        Err(e) => {
            fail_route(unlocked, conversation);
            delay_conversation(unlocked, &conversation, false);
            hold(
                unlocked,
                conversation,
                format!("fetching the contact's keys: {e}"),
            );
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
        delay_conversation(unlocked, &conversation, false);
        hold(
            unlocked,
            conversation,
            "no bundle from the contact's relay verified".into(),
        );
        return Ok(());
    }
    if let Some(contact) = unlocked.contacts.get_mut(&conversation) {
        devices.sort_unstable();
        contact.devices = devices;
        batch.put(tables::CONTACTS, &conversation, &contact.encode());
    }
    txn.commit(&store, batch)
}

pub(crate) fn start_sends(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    dialer: &Dialer,
    sealed_now: &std::collections::HashSet<u64>,
) {
    let now = Instant::now();
    let in_flight_groups = unlocked
        .outbox
        .values()
        .take(OUTBOX_WINDOW)
        .filter(|s| s.in_flight)
        .count()
        .div_ceil(protocol::frames::MAX_ENVELOPES_PER_SEND);
    let mut budget = MAX_SENDS_IN_FLIGHT.saturating_sub(in_flight_groups);
    // First in, first out per conversation: an entry that is in flight, not sealed yet or
    // waiting out a retry holds back every later entry of its conversation. So a conversation
    // has at most one `Deposit` in flight: were a second one out, the relay could refuse the
    // first (over its rate limit, say) and store the second, and the first's retry would
    // arrive after the messages written after it.
    let mut held: std::collections::HashSet<ConvId> = std::collections::HashSet::new();
    let mut ready: Vec<(u64, ConvId)> = Vec::new();
    // Contacts whose key change waits: what they cannot be sent yet does not hold back their
    // delivery receipts (`key_change`).
    let key_changed: std::collections::HashSet<ConvId> = unlocked
        .contacts
        .iter()
        .filter(|(_, c)| c.trust == api::types::Trust::KeyChanged)
        .map(|(id, _)| *id)
        .collect();
    for (seq, slot) in unlocked.outbox.iter().take(OUTBOX_WINDOW) {
        if !key_changed.is_empty()
            && key_changed.contains(&slot.conversation)
            && !key_change::sends_while_pending(slot.kind)
        {
            continue;
        }
        if slot.in_flight || !slot.sealed || !due(slot, now) {
            held.insert(slot.conversation);
        } else if !held.contains(&slot.conversation) {
            ready.push((*seq, slot.conversation));
        }
    }
    // Each conversation's route (its contact's relay) and token, and the ready entries per
    // relay, in outbox order: a `Deposit` goes to one relay.
    let mut routes: HashMap<ConvId, Option<(Route, Option<DeliveryToken>)>> = HashMap::new();
    let mut by_relay: Vec<(Route, Vec<(u64, ConvId)>)> = Vec::new();
    for (seq, conversation) in ready {
        let route = routes.entry(conversation).or_insert_with(|| {
            let contact = unlocked.contacts.get(&conversation)?;
            let route = reach::current_route(unlocked, &conversation, contact);
            Some((route, contact.send_token.map(DeliveryToken)))
        });
        let Some((route, _)) = route else {
            continue;
        };
        if route.home && !unlocked.online {
            continue;
        }
        match by_relay.iter_mut().find(|(r, _)| r.url == route.url) {
            Some((_, entries)) => entries.push((seq, conversation)),
            None => by_relay.push((route.clone(), vec![(seq, conversation)])),
        }
    }
    // Recipient keys decoded so far: decoding decompresses and checks an Ed25519 point, which
    // cost about 6% of the core's time when it was done for every message.
    let mut recipients: Vec<([u8; 32], IdentityKey)> = Vec::new();
    let mut groups: Vec<(Route, Group)> = Vec::new();
    'relays: for (route, entries) in by_relay {
        // The conversations of the group being filled: when it is full, they are held too, so
        // their later entries wait for its answer instead of going out in a second `Deposit`.
        let mut in_group: Vec<ConvId> = Vec::new();
        let mut group: Group = Vec::new();
        let mut group_envelopes = 0;
        let mut group_bytes = 0;
        for (seq, conversation) in entries {
            if budget == 0 {
                break 'relays;
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
            let token = routes
                .get(&conversation)
                .and_then(|r| r.as_ref())
                .and_then(|(_, token)| token.clone());
            let mut envelopes = Vec::new();
            let mut bytes = 0;
            for (device, payload) in entry.sealed {
                let Ok(device) = DeviceId::new(device) else {
                    continue;
                };
                bytes += payload.len();
                envelopes.push(DepositEnvelope {
                    recipient_identity: recipient,
                    recipient_device: device,
                    token: token.clone(),
                    payload,
                });
            }
            if group_envelopes + envelopes.len() > protocol::frames::MAX_ENVELOPES_PER_SEND
                || group_bytes + bytes > protocol::frames::MAX_SEND_PAYLOAD_TOTAL
            {
                groups.push((route.clone(), std::mem::take(&mut group)));
                group_envelopes = 0;
                group_bytes = 0;
                held.extend(in_group.drain(..));
                budget -= 1;
                if budget == 0 {
                    break 'relays;
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
            groups.push((route, group));
            budget -= 1;
        }
    }
    for (route, group) in groups {
        let seqs: Vec<u64> = group.iter().map(|(seq, _)| *seq).collect();
        let requester = match dialer.requester(unlocked, &route) {
            Ok(requester) => requester,
            Err(e) => {
                // No link can be had now (too many relays in use): the entries wait.
                let conversations: std::collections::HashSet<ConvId> = seqs
                    .iter()
                    .filter_map(|seq| unlocked.outbox.get(seq).map(|s| s.conversation))
                    .collect();
                for conversation in conversations {
                    delay_conversation(unlocked, &conversation, true);
                    hold(unlocked, conversation, e.message.clone());
                }
                continue;
            }
        };
        for seq in &seqs {
            if let Some(slot) = unlocked.outbox.get_mut(seq) {
                slot.in_flight = true;
            }
        }
        let envelopes: Vec<DepositEnvelope> = group.into_iter().flat_map(|(_, e)| e).collect();
        let frame = ClientFrame::Deposit {
            request_id: requester.request_id(),
            envelopes,
        };
        let inputs = dialer.inputs();
        let generation = dialer.generation();
        // A ciphertext leaves only once the ratchet step that made it is durable. Entries
        // sealed in this round wait for its flush: the frame is handed to the link by the
        // round's effects. Entries sealed in an earlier round (waiting behind their
        // conversation's previous `Deposit`) are durable already and go at once, which keeps
        // the round's flush off the path between one `Deposit`'s answer and the next. A
        // conversation has one `Deposit` out at a time, so its order on the link does not
        // depend on which way a frame leaves.
        let (go, wait) = oneshot::channel();
        let enqueuer = requester.clone();
        if seqs.iter().any(|seq| sealed_now.contains(seq)) {
            txn.after(move || {
                let _ = go.send(enqueuer.enqueue(frame));
            });
        } else {
            let _ = go.send(enqueuer.enqueue(frame));
        }
        let relay = route.url.clone();
        unlocked.tasks.spawn(async move {
            let result = match wait.await {
                Ok(Ok(answer)) => Requester::answer(answer, SEND_TIMEOUT).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(RequestError::Unreachable("the store flush failed".into())),
            };
            let job: crate::core::Job = Box::new(move |state, txn| {
                if let Err(e) = on_send_result(state, txn, &seqs, &relay, result) {
                    tracing::error!(error = %e, "could not record a send result");
                }
            });
            let _ = inputs.send(Input::Continue(generation, job));
        });
    }
    while unlocked.tasks.try_join_next().is_some() {}
}

/// Records why conversations' queued messages wait (the reasons [`hold`] noted this round):
/// each queued text keeps status `pending` and gets the reason as its `failure`, announced
/// with a `message.status` event, once per new reason.
pub(crate) fn announce_held(state: &mut CoreState, txn: &mut Txn) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    if unlocked.pending_holds.is_empty() {
        return Ok(());
    }
    let holds = std::mem::take(&mut unlocked.pending_holds);
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut events = Vec::new();
    for (conversation, why) in holds {
        let queued: Vec<[u8; 16]> = unlocked
            .outbox
            .values()
            .filter(|s| s.conversation == conversation && s.kind == OutboxKind::Text)
            .map(|s| s.message_id)
            .collect();
        let alias = unlocked
            .contact(&conversation)
            .map(|c| c.alias.clone())
            .unwrap_or_default();
        for id in queued {
            let Some((location, mut record)) = outgoing_message(unlocked, &conversation, &id)?
            else {
                continue;
            };
            if record.status != Some(MessageStatus::Pending) {
                continue;
            }
            record.failure = Some(why.clone());
            batch.put(tables::MESSAGES, &location, &record.encode());
            events.push(EventKind::MessageStatus {
                message_id: message_id_to_string(&id),
                conversation: alias.clone(),
                status: MessageStatus::Pending,
                failure: Some(why.clone()),
            });
        }
        unlocked.held.insert(conversation, why);
    }
    for kind in events {
        record_event(state, &mut batch, txn, kind)?;
    }
    txn.commit(&store, batch)
}

/// The outbox entries (by sequence) of one `Deposit`, with their envelopes.
type Group = Vec<(u64, Vec<DepositEnvelope>)>;

/// A conversation's relay failed: the next attempt tries the next URL of its record.
fn fail_route(unlocked: &mut Unlocked, conversation: ConvId) {
    let attempts = unlocked.route_attempts.entry(conversation).or_default();
    *attempts = attempts.wrapping_add(1);
}

pub(crate) fn on_send_result(
    state: &mut CoreState,
    txn: &mut Txn,
    seqs: &[u64],
    relay: &str,
    result: Result<ServerFrame, RequestError>,
) -> ApiResult<()> {
    let unreachable = matches!(result, Err(RequestError::Unreachable(_)));
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
                match code {
                    Relay::NotFound => format!(
                        "the relay {relay} has no mailbox for this contact (not_found: \
                         {message}); its account is not, or no longer, on that relay"
                    ),
                    _ => format!("the relay {relay} refused: {} ({message})", code.name()),
                },
            ))
        }
        Err(RequestError::Unreachable(message)) => Some((false, format!("{relay}: {message}"))),
    };
    if let Some((_, why)) = &failure {
        state.note_relay_error(relay, why.clone());
    }
    let unlocked = state.unlocked()?;
    let conversations: std::collections::HashSet<ConvId> = seqs
        .iter()
        .filter_map(|seq| unlocked.outbox.get(seq).map(|s| s.conversation))
        .collect();
    for conversation in &conversations {
        match &failure {
            None => {
                unlocked.route_attempts.remove(conversation);
                unlocked.held.remove(conversation);
            }
            Some((false, why)) => {
                if unreachable {
                    fail_route(unlocked, *conversation);
                }
                let why = match unlocked.pool.trouble(relay) {
                    Some(trouble) => format!("{relay}: {trouble}"),
                    None => why.clone(),
                };
                hold(unlocked, *conversation, why);
            }
            Some((true, _)) => {}
        }
    }
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
                .is_some_and(|e| e.queued_at_ms + OUTBOX_EXPIRY_MS <= unlocked.clock.now_ms());
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
