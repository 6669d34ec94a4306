//! Contacts and trust: adding (by address, handle or invite), TOFU pinning, key changes found
//! through handles, verification by safety number, and invites. Each contact gets its own
//! delivery token (SPEC.md 10.9), registered at our relay and handed over in our
//! introduction; where the contact is reached comes with it from the invite, the handle
//! lookup or its own introduction (`super::reach`).

use api::ErrorCode;
use api::events::EventKind;
use api::types::{Contact, ContactDetails, Invite, Trust};
use protocol::address::Address;
use protocol::codec::Encode;
use protocol::frames::{Handle, HandleClaim};
use protocol::introduction::{DisplayName, Introduction};
use protocol::invite::Invite as InviteCode;
use protocol::invite_refusal::RefusalReason;
use protocol::reachability::{DeliveryToken, ReachabilityRecord};

use super::records::{ContactRecord, ConversationMeta, InviteRecord, tables};
use super::unlocked::{ConvId, Unlocked, address_of};
use super::{CoreState, Txn};
use crate::error::{ApiError, ApiResult};

/// How long an invite works.
pub const INVITE_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;

/// The API view of a contact.
pub fn view(record: &ContactRecord) -> Contact {
    Contact {
        alias: record.alias.clone(),
        address: address_of(&record.identity),
        handle: record.handle.clone(),
        display_name: record.display_name.clone(),
        trust: record.trust,
        added_at_ms: record.added_at_ms,
        blocked: record.blocked,
        request: record.request,
        invite_refused: super::requests::refusal_reason(record.invite_refused),
    }
}

/// Parses an address typed by a user.
pub fn parse_address(text: &str) -> ApiResult<[u8; 32]> {
    let address = Address::parse(text.trim()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidAddress,
            format!("{:?} is not a valid address: {e}", text.trim()),
        )
    })?;
    Ok(*address.public_key().as_bytes())
}

/// Parses a handle (with or without `@`).
pub fn parse_handle(text: &str) -> ApiResult<Handle> {
    let bare = text.trim().trim_start_matches('@');
    Handle::parse(bare).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidHandle,
            format!("{bare:?} is not a valid handle: {e}"),
        )
    })
}

/// Checks a handle record the relay returned for `handle`: signed by its identity and about
/// this handle. Returns the identity, or `None` if nobody holds it.
pub fn verify_claim(handle: &Handle, claim: Option<HandleClaim>) -> ApiResult<Option<[u8; 32]>> {
    let Some(claim) = claim else {
        return Ok(None);
    };
    claim.verify().map_err(|e| {
        ApiError::new(
            ErrorCode::RelayError,
            format!(
                "the relay returned a bad claim for @{}: {e}",
                handle.as_str()
            ),
        )
    })?;
    if &claim.handle != handle {
        return Err(ApiError::new(
            ErrorCode::RelayError,
            "the relay returned a claim for another handle",
        ));
    }
    Ok(Some(*claim.identity.as_bytes()))
}

/// Where a new contact is reached and how, as far as it is known when it is added.
#[derive(Debug, Clone, Default)]
pub struct Whereabouts {
    /// Its reachability record (from an invite or a relay), verified by [`add`].
    pub record: Option<ReachabilityRecord>,
    /// The relay it was found on, when no record is known (`None`: our own).
    pub relay_hint: Option<String>,
    /// The token it gave us (an invite's).
    pub send_token: Option<[u8; 16]>,
    /// The token we give it, when one was handed out already (an invite's); else a fresh one.
    pub our_token: Option<[u8; 16]>,
}

/// How a new contact record comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    /// The user added it: it gets our introduction (our name, handle, reachability record and
    /// its token) first, so it knows who writes and how to answer.
    Introduce,
    /// It answered our invite, or we answer its: no introduction from here (the invite or
    /// the caller's own introduction carries it).
    Quietly,
    /// A stranger wrote first: a message request (`super::requests`), with no token and no
    /// introduction until the user accepts it.
    Request,
}

/// Adds a new contact pinned to `identity` (TOFU), with a conversation and a delivery token of
/// its own, registered at our relay, or a message request as `joining` says. With
/// [`Joining::Introduce`], an introduction (our name, handle, reachability record and the
/// contact's token) is queued first, so the contact knows who writes and how to answer; a
/// message request from `identity` is accepted instead (the user adding someone is the user
/// accepting them), under `alias`.
#[allow(clippy::too_many_arguments)]
pub fn add(
    state: &mut CoreState,
    txn: &mut Txn,
    alias: &str,
    identity: [u8; 32],
    handle: Option<String>,
    display_name: Option<String>,
    whereabouts: Whereabouts,
    joining: Joining,
) -> ApiResult<ConvId> {
    let unlocked = state.unlocked()?;
    Unlocked::check_alias(alias)?;
    if let Some(id) = unlocked.by_identity.get(&identity).copied() {
        let existing = unlocked.contact(&id)?;
        if existing.request && joining == Joining::Introduce {
            super::requests::accept_id(state, txn, id, Some(alias), None, true)?;
            return Ok(id);
        }
        return Err(ApiError::new(
            ErrorCode::AliasTaken,
            format!("that address is already the contact {:?}", existing.alias),
        ));
    }
    // The address is checked before the alias: adding someone whose introduction already made
    // them a contact under the same alias must say they are already the contact, not that the
    // alias is taken.
    super::alias::ensure_free(unlocked, alias, None)?;
    if &identity == unlocked.identity.public_key().as_bytes() {
        return Err(ApiError::new(
            ErrorCode::InvalidAddress,
            "that is this account's own address",
        ));
    }
    // Outgoing message ids bind the conversation id's first 8 bytes (`store::MessageIds`):
    // two live conversations must not share them.
    let id = loop {
        let mut id = [0u8; 16];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut id);
        if !unlocked.contacts.keys().any(|c| c[..8] == id[..8]) {
            break id;
        }
    };
    let request = joining == Joining::Request;
    // A request gets a token of its own only when accepted (`super::requests`).
    let our_token = match (whereabouts.our_token, request) {
        (Some(token), _) => Some(token),
        (None, false) => Some(super::reach::new_token()),
        (None, true) => None,
    };
    let mut record = ContactRecord {
        alias: alias.to_owned(),
        identity,
        handle,
        display_name,
        trust: Trust::Unverified,
        pending_identity: None,
        added_at_ms: unlocked.clock.now_ms(),
        handle_checked_ms: unlocked.clock.now_ms(),
        devices: Vec::new(),
        reach: None,
        relay_hint: whereabouts
            .relay_hint
            .filter(|url| url != &unlocked.account.relay_url),
        send_token: whereabouts.send_token,
        our_token,
        blocked: false,
        pending_devices: Vec::new(),
        request,
        invite_refused: 0,
    };
    if let Some(found) = &whereabouts.record
        && !super::reach::adopt_record(&mut record, &identity, found)
    {
        return Err(ApiError::new(
            ErrorCode::RelayError,
            "the contact's reachability record does not verify",
        ));
    }
    let meta = ConversationMeta::default();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    batch.put(tables::CONTACTS, &id, &record.encode());
    batch.put(tables::CONVERSATIONS, &id, &meta.encode());
    let contact = view(&record);
    let kind = if request {
        tracing::info!(alias = %record.alias, "a message request arrived");
        EventKind::RequestReceived { contact }
    } else {
        EventKind::ContactAdded { contact }
    };
    super::messaging::event_log::record_event(state, &mut batch, txn, kind)?;
    txn.commit(&store, batch)?;
    let unlocked = state.unlocked()?;
    unlocked.index_contact(id, record);
    unlocked.conversations.insert(id, meta);
    if let Some(token) = our_token
        && whereabouts.our_token.is_none()
    {
        super::reach::register_token(unlocked, txn, &token, true);
    }
    if joining == Joining::Introduce {
        introduce_to(unlocked, txn, id, None, our_token)?;
    }
    Ok(id)
}

/// Writes a contact record (after a change) and its event.
pub(crate) fn save(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    record: ContactRecord,
    kind: EventKind,
) -> ApiResult<()> {
    let store = state.unlocked()?.store.clone();
    let mut batch = store.batch();
    batch.put(tables::CONTACTS, &id, &record.encode());
    super::messaging::event_log::record_event(state, &mut batch, txn, kind)?;
    txn.commit(&store, batch)?;
    let unlocked = state.unlocked()?;
    unlocked.unindex_contact(&id);
    unlocked.index_contact(id, record);
    Ok(())
}

/// Applies a fresh handle lookup for a contact: a different identity is a key change.
pub fn apply_handle_check(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    found: Option<[u8; 32]>,
) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let mut record = unlocked.contact(&id)?.clone();
    record.handle_checked_ms = unlocked.clock.now_ms();
    let Some(found) = found else {
        // Nobody holds the handle now: nothing to pin against; keep the contact as it is.
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        batch.put(tables::CONTACTS, &id, &record.encode());
        txn.commit(&store, batch)?;
        unlocked.contacts.insert(id, record);
        return Ok(());
    };
    if found == record.identity || record.pending_identity == Some(found) {
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        batch.put(tables::CONTACTS, &id, &record.encode());
        txn.commit(&store, batch)?;
        unlocked.contacts.insert(id, record);
        return Ok(());
    }
    tracing::warn!(alias = %record.alias, "a contact's identity key changed");
    record.trust = Trust::KeyChanged;
    record.pending_identity = Some(found);
    let kind = EventKind::ContactKeyChanged {
        alias: record.alias.clone(),
        old_address: address_of(&record.identity),
        new_address: address_of(&found),
    };
    save(state, txn, id, record, kind)
}

/// `contacts.get`: the contact, and the safety number to compare now (the new key's while
/// a key change waits, with both keys: `super::key_change`).
pub fn details(unlocked: &mut Unlocked, name: &str) -> ApiResult<ContactDetails> {
    let id = unlocked.find_contact(name)?;
    let record = unlocked.contact(&id)?.clone();
    let current = super::key_change::key_to_compare(&record);
    let number = super::key_change::safety_number(unlocked, &current)?;
    Ok(ContactDetails {
        contact: view(&record),
        safety_number: number.digits(),
        safety_number_groups: number.grouped().to_vec(),
        safety_qr: number
            .qr_payload()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        devices: record.devices.clone(),
        key_change: super::key_change::describe(&record),
    })
}

/// `contacts.block` and `contacts.unblock`: the contact's token is revoked at (or given back
/// to) the home relay, which drops a blocked contact's envelopes unseen (SPEC.md 10.9); what
/// still arrives from it is dropped here (`messaging::inbox`), and writing to it is refused.
/// A `contact.block_changed` event says so.
pub fn set_blocked(
    state: &mut CoreState,
    txn: &mut Txn,
    name: &str,
    blocked: bool,
) -> ApiResult<Contact> {
    let id = state.unlocked()?.find_contact(name)?;
    set_blocked_id(state, txn, id, blocked)
}

/// [`set_blocked`] of the contact (or message request) `id`.
pub(crate) fn set_blocked_id(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    blocked: bool,
) -> ApiResult<Contact> {
    let unlocked = state.unlocked()?;
    let mut record = unlocked.contact(&id)?.clone();
    if record.blocked == blocked {
        return Ok(view(&record));
    }
    record.blocked = blocked;
    let token = match record.our_token {
        Some(token) => token,
        None => {
            let token = super::reach::new_token();
            record.our_token = Some(token);
            token
        }
    };
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    batch.put(tables::CONTACTS, &id, &record.encode());
    let contact = view(&record);
    let kind = EventKind::ContactBlockChanged {
        contact: contact.clone(),
    };
    super::messaging::event_log::record_event(state, &mut batch, txn, kind)?;
    txn.commit(&store, batch)?;
    let unlocked = state.unlocked()?;
    super::reach::register_token(unlocked, txn, &token, !blocked);
    tracing::info!(alias = %record.alias, blocked, "a contact's block changed");
    unlocked.contacts.insert(id, record);
    Ok(contact)
}

/// `contacts.remove`: the contact, its sessions, conversation and queued messages.
pub fn remove(state: &mut CoreState, txn: &mut Txn, name: &str) -> ApiResult<()> {
    let id = state.unlocked()?.find_contact(name)?;
    forget(state, txn, id, true)
}

/// Deletes the contact `id`, its conversation and queued messages, and its sessions if
/// `sessions` (a declined request keeps them: its sender still writes on them, and what it
/// writes next must open to become a new request).
pub(crate) fn forget(
    state: &mut CoreState,
    txn: &mut Txn,
    id: ConvId,
    sessions: bool,
) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let record = unlocked.contact(&id)?.clone();
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    batch.delete(tables::CONTACTS, &id);
    batch.delete(tables::CONVERSATIONS, &id);
    for table in [tables::MESSAGES, tables::RECEIVED] {
        for item in unlocked.store.scan(table, &id) {
            let (key, _) = item?;
            batch.delete(table, &key);
        }
    }
    if sessions {
        unlocked.forget_sessions(&mut batch, &record.identity, &record.devices);
        if let Some(pending) = &record.pending_identity {
            unlocked.forget_sessions(&mut batch, pending, &record.pending_devices);
        }
    }
    let queued: Vec<u64> = unlocked
        .outbox
        .iter()
        .filter(|(_, slot)| slot.conversation == id)
        .map(|(seq, _)| *seq)
        .collect();
    for seq in &queued {
        batch.delete(tables::OUTBOX, &seq.to_be_bytes());
    }
    super::messaging::event_log::record_event(
        state,
        &mut batch,
        txn,
        EventKind::ContactRemoved {
            alias: record.alias.clone(),
            address: address_of(&record.identity),
        },
    )?;
    txn.commit(&store, batch)?;
    let unlocked = state.unlocked()?;
    for seq in queued {
        unlocked.outbox.remove(&seq);
    }
    unlocked.unindex_contact(&id);
    unlocked.conversations.remove(&id);
    Ok(())
}

/// The body of an introduction (SPEC.md 8.1): our name, our first handle, the token of the
/// invite it answers, our reachability record and the delivery token the contact is to use.
pub fn introduction(
    unlocked: &Unlocked,
    token: Option<[u8; 16]>,
    delivery_token: Option<[u8; 16]>,
) -> ApiResult<Vec<u8>> {
    let name = DisplayName::parse(&unlocked.account.name).map_err(|e| {
        ApiError::new(
            api::ErrorCode::InvalidAlias,
            format!("the account's name cannot go in an introduction: {e}"),
        )
    })?;
    let introduction = Introduction {
        name,
        // A handle the relay accepted parses; one that does not is left out, not sent.
        // (Handles left on a relay the account moved away from are written `handle@relay` and
        // do not parse: an introduction names a handle on the home relay only.)
        handle: unlocked
            .account
            .handles
            .iter()
            .find_map(|h| Handle::parse(h).ok()),
        invite_token: token,
        reachability: Some(super::reach::own_record(unlocked)?),
        delivery_token: delivery_token.map(DeliveryToken),
    };
    Ok(introduction.to_bytes())
}

/// Queues our introduction ([`introduction`]) to the contact of conversation `id`.
pub fn introduce_to(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    id: ConvId,
    invite_token: Option<[u8; 16]>,
    delivery_token: Option<[u8; 16]>,
) -> ApiResult<()> {
    let body = introduction(unlocked, invite_token, delivery_token)?;
    super::messaging::outbox::queue_control(
        unlocked,
        txn,
        id,
        protocol::envelope::ContentKind::Introduction,
        body,
    )
}

/// `invites.create`.
pub fn create_invite(state: &mut CoreState, txn: &mut Txn) -> ApiResult<Invite> {
    let unlocked = state.unlocked()?;
    let mut token = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut token);
    let expires_at_ms = unlocked.clock.now_ms() + INVITE_LIFETIME_MS;
    let name = DisplayName::parse(&unlocked.account.name).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidAlias,
            format!("the account's name cannot go in an invite: {e}"),
        )
    })?;
    let delivery_token = super::reach::new_token();
    let code = InviteCode {
        reachability: super::reach::own_record(unlocked)?,
        token,
        delivery_token: DeliveryToken(delivery_token),
        name,
        expires_at_ms,
    };
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    batch.put(
        tables::INVITES,
        &token,
        &InviteRecord {
            expires_at_ms,
            used: false,
            delivery_token: Some(delivery_token),
        }
        .encode(),
    );
    txn.commit(&store, batch)?;
    // Whoever accepts presents this token: the relay knows it before the code is shown.
    super::reach::register_token(unlocked, txn, &delivery_token, true);
    Ok(Invite {
        code: code.to_code(),
        expires_at_ms,
    })
}

/// `invites.accept`: adds the inviter and queues an introduction carrying the token.
pub fn accept_invite(
    state: &mut CoreState,
    txn: &mut Txn,
    code: &str,
    alias: Option<&str>,
) -> ApiResult<Contact> {
    let code = InviteCode::parse_code(code.trim()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInvite,
            format!("invalid invite code: {e}"),
        )
    })?;
    let unlocked = state.unlocked()?;
    if code.is_expired(unlocked.clock.now_ms()) {
        return Err(ApiError::new(
            ErrorCode::InvalidInvite,
            "the invite has expired",
        ));
    }
    let identity = *code.identity().as_bytes();
    let new_alias = match alias {
        Some(alias) => alias.to_owned(),
        None => unlocked.free_alias(code.name.as_str(), &identity),
    };
    let id = match unlocked.by_identity.get(&identity) {
        Some(id) => {
            // Already a contact: the invite's record and token are newer news of it.
            let id = *id;
            let mut record = unlocked.contact(&id)?.clone();
            if record.request {
                // A stranger whose invite the user now accepts: no longer a request.
                // (Its introduction, with the invite's token, follows below.)
                super::requests::accept_id(state, txn, id, alias, None, false)?;
                let unlocked = state.unlocked()?;
                record = unlocked.contact(&id)?.clone();
            }
            let unlocked = state.unlocked()?;
            super::reach::adopt_record(&mut record, &identity, &code.reachability);
            record.send_token = Some(code.delivery_token.0);
            // A new invite from a contact that refused an older one: the refusal is over.
            record.invite_refused = 0;
            if record.our_token.is_none() {
                let token = super::reach::new_token();
                record.our_token = Some(token);
                super::reach::register_token(unlocked, txn, &token, true);
            }
            let store = unlocked.store.clone();
            let mut batch = store.batch();
            batch.put(tables::CONTACTS, &id, &record.encode());
            txn.commit(&store, batch)?;
            unlocked.contacts.insert(id, record);
            id
        }
        None => add(
            state,
            txn,
            &new_alias,
            identity,
            None,
            Some(code.name.as_str().to_owned()),
            Whereabouts {
                record: Some(code.reachability.clone()),
                relay_hint: None,
                send_token: Some(code.delivery_token.0),
                our_token: None,
            },
            Joining::Quietly,
        )?,
    };
    let unlocked = state.unlocked()?;
    let our_token = unlocked.contact(&id)?.our_token;
    introduce_to(unlocked, txn, id, Some(code.token), our_token)?;
    Ok(view(unlocked.contact(&id)?))
}

/// Checks and consumes an invite token from an introduction: `Ok` if it was one of our open
/// invites (it is used from now on: invites are one use), with the delivery token the invite
/// handed out (`None` for an invite made before tokens); else why it is refused.
pub fn consume_invite(
    unlocked: &mut Unlocked,
    batch: &mut crate::store::Batch<'_>,
    token: &[u8; 16],
) -> ApiResult<Result<Option<[u8; 16]>, RefusalReason>> {
    let Some(value) = unlocked.store.get(tables::INVITES, token)? else {
        return Ok(Err(RefusalReason::Unknown));
    };
    let mut record = InviteRecord::decode(&value).map_err(|_| ApiError::store("an invite"))?;
    if record.used {
        return Ok(Err(RefusalReason::Used));
    }
    if record.expires_at_ms < unlocked.clock.now_ms() {
        return Ok(Err(RefusalReason::Expired));
    }
    record.used = true;
    batch.put(tables::INVITES, token, &record.encode());
    Ok(Ok(record.delivery_token))
}

/// The delivery tokens of invites: those that can still be accepted (the relay must keep
/// admitting them), and those of invites that expired unused (the relay must stop).
pub fn invite_tokens(unlocked: &Unlocked) -> ApiResult<InviteTokens> {
    let now = unlocked.clock.now_ms();
    let mut tokens = InviteTokens::default();
    for item in unlocked.store.scan(tables::INVITES, &[]) {
        let (_, value) = item?;
        let record = InviteRecord::decode(&value).map_err(|_| ApiError::store("an invite"))?;
        let Some(token) = record.delivery_token else {
            continue;
        };
        if record.used {
            continue;
        }
        if record.expires_at_ms >= now {
            tokens.open.push(token);
        } else {
            tokens.expired.push(token);
        }
    }
    Ok(tokens)
}

/// The delivery tokens of unused invites ([`invite_tokens`]).
#[derive(Debug, Default)]
pub struct InviteTokens {
    /// Of invites that can still be accepted.
    pub open: Vec<[u8; 16]>,
    /// Of invites that expired unused.
    pub expired: Vec<[u8; 16]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a clock the test moves: an invite's token is accepted up to its expiry and not a
    /// millisecond after, and only once.
    #[test]
    fn an_invite_token_works_once_and_only_until_it_expires() {
        let clock = crate::clock::ManualClock::new(1_800_000_000_000);
        let kv = crate::store::Kv::memory();
        let mut state = crate::core::account::tests::unlocked_state_at(kv, &clock);
        let token = |state: &mut CoreState| -> [u8; 16] {
            let invite =
                create_invite(state, &mut Txn::default()).unwrap_or_else(|e| panic!("{e}"));
            InviteCode::parse_code(&invite.code)
                .unwrap_or_else(|e| panic!("{e}"))
                .token
        };
        let consume = |state: &mut CoreState, token: &[u8; 16]| -> Result<(), RefusalReason> {
            let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
            let store = unlocked.store.clone();
            let mut batch = store.batch();
            let consumed =
                consume_invite(unlocked, &mut batch, token).unwrap_or_else(|e| panic!("{e}"));
            store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
            consumed.map(|_| ())
        };
        let first = token(&mut state);
        let second = token(&mut state);
        clock.advance(INVITE_LIFETIME_MS);
        assert_eq!(
            consume(&mut state, &first),
            Ok(()),
            "accepted at its expiry"
        );
        assert_eq!(
            consume(&mut state, &first),
            Err(RefusalReason::Used),
            "and only once"
        );
        clock.advance(1);
        assert_eq!(
            consume(&mut state, &second),
            Err(RefusalReason::Expired),
            "refused a millisecond after"
        );
        assert_eq!(
            consume(&mut state, &[0x42; 16]),
            Err(RefusalReason::Unknown),
            "an unknown token"
        );
    }

    /// An unused invite's delivery token is kept admitted until the invite expires, then
    /// revoked (`reach::sync_home`); a used one is the contact's from then on.
    #[test]
    fn invite_tokens_are_open_until_the_invite_expires() {
        let clock = crate::clock::ManualClock::new(1_800_000_000_000);
        let kv = crate::store::Kv::memory();
        let mut state = crate::core::account::tests::unlocked_state_at(kv, &clock);
        let delivery_token = |state: &mut CoreState| -> [u8; 16] {
            let invite =
                create_invite(state, &mut Txn::default()).unwrap_or_else(|e| panic!("{e}"));
            InviteCode::parse_code(&invite.code)
                .unwrap_or_else(|e| panic!("{e}"))
                .delivery_token
                .0
        };
        let first = delivery_token(&mut state);
        clock.advance(24 * 3600 * 1000);
        let second = delivery_token(&mut state);
        let tokens = |state: &mut CoreState| {
            invite_tokens(state.unlocked().unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let now = tokens(&mut state);
        assert_eq!((now.open.len(), now.expired.len()), (2, 0));
        clock.advance(INVITE_LIFETIME_MS - 24 * 3600 * 1000 + 1);
        let later = tokens(&mut state);
        assert_eq!(later.open, vec![second]);
        assert_eq!(later.expired, vec![first]);
    }

    #[test]
    fn invite_codes_round_trip_and_catch_typos() {
        let identity = protocol::identity::IdentityKeyPair::from_seed(&[3; 32]);
        let relay = protocol::reachability::RelayEndpoint::new("ws://127.0.0.1:7420/v1", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let code = InviteCode {
            reachability: ReachabilityRecord::sign(&identity, 1, vec![relay])
                .unwrap_or_else(|e| panic!("{e}")),
            delivery_token: DeliveryToken([8; 16]),
            token: [9; 16],
            name: DisplayName::parse("Alice").unwrap_or_else(|e| panic!("{e}")),
            expires_at_ms: 42,
        };
        let text = code.to_code();
        assert!(text.starts_with(protocol::invite::INVITE_PREFIX));
        assert_eq!(InviteCode::parse_code(&text), Ok(code));
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 10;
        typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        assert_eq!(
            InviteCode::parse_code(&typo),
            Err(protocol::invite::InviteError::Checksum)
        );
    }
}
