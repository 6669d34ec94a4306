//! The one resolver of names: every method that names a contact or conversation (`contacts.*`,
//! `messages.*`, `messages.send` before it looks further) finds it here, so each takes the
//! same forms: an alias in any case, `@alias`, `@handle` (the handle a contact was found by;
//! `@handle@host[:port]` for one on another relay) and an address (`chat1...`, or
//! `chat1...@host[:port]`; a contact's new key, while its key change is not accepted, finds it
//! too). A name that fits two contacts is refused with the list of both.

use api::ErrorCode;
use protocol::address::Address;
use protocol::reachability::QualifiedHandle;

use super::alias;
use super::records::ContactRecord;
use super::unlocked::{ConvId, Unlocked};
use crate::error::{ApiError, ApiResult};

/// The contact `name` names, or `not_found` (or `ambiguous_contact`).
pub fn contact(unlocked: &Unlocked, name: &str) -> ApiResult<ConvId> {
    lookup(unlocked, name)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "contact {:?} (no contact has that alias, handle or address)",
            name.trim()
        ))
    })
}

/// The contact `name` names, `None` if none does; `ambiguous_contact` if several do.
pub fn lookup(unlocked: &Unlocked, name: &str) -> ApiResult<Option<ConvId>> {
    let name = name.trim();
    let mut found: Vec<(ConvId, &'static str)> = Vec::new();
    let mut add = |id: ConvId, why: &'static str| {
        if !found.iter().any(|(seen, _)| *seen == id) {
            found.push((id, why));
        }
    };
    let bare = name.strip_prefix('@').unwrap_or(name);
    if !bare.is_empty()
        && let Some(id) = unlocked.by_alias.get(&alias::key(bare))
    {
        add(*id, "alias");
    }
    if name.starts_with('@')
        && let Some(wanted) = handle_of(unlocked, &bare.to_lowercase())
    {
        for (id, record) in &unlocked.contacts {
            if record
                .handle
                .as_deref()
                .and_then(|held| handle_of(unlocked, held))
                .is_some_and(|held| held == wanted)
            {
                add(*id, "handle");
            }
        }
    }
    if !name.starts_with('@')
        && let Some(identity) = identity_of(name)
    {
        if let Some(id) = unlocked.by_identity.get(&identity) {
            add(*id, "address");
        }
        for (id, record) in &unlocked.contacts {
            if record.pending_identity == Some(identity) {
                add(*id, "new address");
            }
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [(id, _)] => Ok(Some(*id)),
        several => {
            let list: Vec<String> = several
                .iter()
                .filter_map(|(id, why)| {
                    let record = unlocked.contacts.get(id)?;
                    Some(describe(record, why))
                })
                .collect();
            Err(ApiError::new(
                ErrorCode::AmbiguousContact,
                format!(
                    "{name:?} names more than one contact: {}; name one by its alias or address",
                    list.join(", ")
                ),
            ))
        }
    }
}

/// A handle as typed or stored, with the home relay written as no relay.
fn handle_of(unlocked: &Unlocked, text: &str) -> Option<QualifiedHandle> {
    let mut handle = QualifiedHandle::parse(text).ok()?;
    if handle.relay.as_deref() == Some(unlocked.account.relay_url.as_str()) {
        handle.relay = None;
    }
    Some(handle)
}

/// The identity an address names (`chat1...`, in either case, optionally `@relay`).
fn identity_of(text: &str) -> Option<[u8; 32]> {
    let address = text.split_once('@').map_or(text, |(address, _)| address);
    let parsed = Address::parse(address).or_else(|_| Address::parse(&address.to_lowercase()));
    parsed.ok().map(|a| *a.public_key().as_bytes())
}

/// One candidate of an ambiguous name, for the error: `"bob" (by alias)`.
fn describe(record: &ContactRecord, why: &str) -> String {
    let address = super::unlocked::address_of(&record.identity);
    format!(
        "{:?} (by {why}; {})",
        record.alias,
        address.chars().take(16).collect::<String>() + "…"
    )
}

#[cfg(test)]
mod tests;
