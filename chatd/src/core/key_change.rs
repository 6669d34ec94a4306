//! A contact's identity-key change, from the moment a handle re-check finds another key
//! (`contacts::apply_handle_check`) until the user acts: what `contacts.get` shows (both keys,
//! and the safety number of the new one, which is the one to compare), `contacts.verify`
//! against the new key and `contacts.trust`, both accepting it, and who may write to whom
//! meanwhile.
//!
//! While a change waits (`Trust::KeyChanged`, the new key in `pending_identity`): messages
//! from either key arrive in the contact's conversation (the new key's marked as such);
//! delivery receipts go back to the key that sent each message ([`sends_while_pending`]), so
//! no sender waits for a tick; read receipts, texts and introductions wait in the outbox and go
//! to the new key once it is accepted. The new key's introductions change nothing of the
//! contact before that.

use api::ErrorCode;
use api::events::EventKind;
use api::types::{Contact, KeyChange, Trust};
use protocol::safety::SafetyNumber;

use super::contacts::{save, view};
use super::records::{ContactRecord, OutboxKind};
use super::unlocked::{ConvId, Unlocked, address_of, identity_key};
use super::{CoreState, Txn};
use crate::error::{ApiError, ApiResult};

/// The key whose safety number the user must compare now: the new one while a change waits.
pub fn key_to_compare(record: &ContactRecord) -> [u8; 32] {
    match (record.trust, record.pending_identity) {
        (Trust::KeyChanged, Some(new)) => new,
        _ => record.identity,
    }
}

/// The safety number of this account and the contact key `identity`.
pub fn safety_number(unlocked: &Unlocked, identity: &[u8; 32]) -> ApiResult<SafetyNumber> {
    let remote = identity_key(identity)?;
    Ok(SafetyNumber::new(
        unlocked.identity.public_key().ed25519(),
        remote.ed25519(),
    ))
}

/// What `contacts.get` says of a waiting key change, if there is one.
pub fn describe(record: &ContactRecord) -> Option<KeyChange> {
    let new = match (record.trust, record.pending_identity) {
        (Trust::KeyChanged, Some(new)) => new,
        _ => return None,
    };
    Some(KeyChange {
        old_address: address_of(&record.identity),
        new_address: address_of(&new),
        advice: format!(
            "{0}'s identity key changed: {0} may have reinstalled, or someone else may be \
             posing as {0}. Compare the safety number shown here, which is the new key's, with \
             {0} in person or over another channel you trust; if it matches, verify it (this \
             accepts the new key). Until then nothing is sent to {0} except delivery receipts, \
             and read receipts wait.",
            record.alias
        ),
    })
}

/// The conversation whose contact's waiting new key is `sender`, if any: its messages go
/// there (not to a new contact).
pub fn pending_conversation(unlocked: &Unlocked, sender: &[u8; 32]) -> Option<ConvId> {
    unlocked
        .contacts
        .iter()
        .find(|(_, record)| {
            record.trust == Trust::KeyChanged && record.pending_identity.as_ref() == Some(sender)
        })
        .map(|(id, _)| *id)
}

/// Whether an outbox entry of `kind` goes out while its contact's key change waits: delivery
/// receipts only. Everything else waits (and is sealed for the new key once it is accepted).
pub fn sends_while_pending(kind: OutboxKind) -> bool {
    kind == OutboxKind::DeliveryReceipt
}

/// `contacts.verify`: checks `safety_number` (when given) against the key to compare now and
/// marks the contact verified; while a key change waits, a match accepts the new key.
pub fn verify(
    state: &mut CoreState,
    txn: &mut Txn,
    name: &str,
    safety_number: Option<&str>,
) -> ApiResult<Contact> {
    let unlocked = state.unlocked()?;
    let id = unlocked.find_contact(name)?;
    let record = unlocked.contact(&id)?.clone();
    if let Some(given) = safety_number {
        let given = api::input::safety_number_digits(given)
            .map_err(|why| ApiError::new(ErrorCode::SafetyNumberMismatch, why))?;
        let expected = self::safety_number(unlocked, &key_to_compare(&record))?.digits();
        if given != expected {
            let old = self::safety_number(unlocked, &record.identity)?.digits();
            let message = if record.trust == Trust::KeyChanged && given == old {
                format!(
                    "that is the safety number of {0}'s old key, which {0} no longer uses: \
                     {0}'s key changed, so compare the new number (`chatctl contact show {0}`)",
                    record.alias
                )
            } else {
                "the safety number does not match: do not trust this contact until you find \
                 out why"
                    .to_owned()
            };
            return Err(ApiError::new(ErrorCode::SafetyNumberMismatch, message));
        }
    }
    if record.trust == Trust::KeyChanged {
        return accept(state, txn, id, Trust::Verified);
    }
    let mut record = record;
    record.trust = Trust::Verified;
    save_trust(state, txn, id, record)
}

/// Writes the contact `id` after a change of trust, with its `contact.trust` event.
fn save_trust(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    record: ContactRecord,
) -> ApiResult<Contact> {
    let contact = view(&record);
    let kind = EventKind::ContactTrust {
        contact: contact.clone(),
    };
    save(state, txn, id, record, kind)?;
    Ok(contact)
}

/// `contacts.trust`: accepts the changed key (the contact becomes unverified); a contact whose
/// key did not change is answered as it is.
pub fn trust(state: &mut CoreState, txn: &mut Txn, name: &str) -> ApiResult<Contact> {
    let unlocked = state.unlocked()?;
    let id = unlocked.find_contact(name)?;
    let record = unlocked.contact(&id)?;
    if record.trust != Trust::KeyChanged {
        return Ok(view(record));
    }
    accept(state, txn, id, Trust::Unverified)
}

/// Makes the waiting new key the contact's, with `trust`: the old key's sessions go, the new
/// key's devices (those that wrote meanwhile) become the contact's, and what waited in the
/// outbox is sealed again for the new key and sent.
fn accept(state: &mut CoreState, txn: &mut Txn, id: ConvId, trust: Trust) -> ApiResult<Contact> {
    let unlocked = state.unlocked()?;
    let mut record = unlocked.contact(&id)?.clone();
    let old = record.identity;
    if let Some(new) = record.pending_identity.take() {
        if unlocked
            .by_identity
            .get(&new)
            .is_some_and(|other| other != &id)
        {
            return Err(ApiError::new(
                ErrorCode::AliasTaken,
                "the new key is already another contact; remove that contact first",
            ));
        }
        // Sessions with the old key are useless now; queued messages will be sealed anew.
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        unlocked.forget_sessions(&mut batch, &old, &record.devices);
        txn.commit(&store, batch)?;
        record.identity = new;
        record.devices = std::mem::take(&mut record.pending_devices);
        super::messaging::outbox::unseal_outbox(unlocked, txn, &id)?;
    }
    record.pending_devices.clear();
    record.trust = trust;
    let contact = save_trust(state, txn, id, record)?;
    // What waited for the key (held read receipts, texts) goes at the next pump.
    let unlocked = state.unlocked()?;
    super::messaging::outbox::send_now(unlocked, &std::iter::once(id).collect());
    Ok(contact)
}
