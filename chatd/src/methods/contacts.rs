//! `contacts.*`, `requests.*` and `invites.*`. Every contact is named through the core's resolver
//! (`core::resolve`); key changes are `core::key_change`'s, aliases `core::alias`'s.

use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;

use super::handles::{lookup_address, lookup_handle};
use super::*;
use crate::core::{alias, contacts, key_change, requests};
use crate::error::{ApiError, ApiResult};

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::CONTACTS_ADD, |params, ctx| {
        let p: AddContact = parse(&params)?;
        out(add_contact(&ctx, p).await)
    });
    method!(module, m::CONTACTS_LIST, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx
            .core
            .call(|s, _| {
                let u = s.unlocked()?;
                let mut contacts: Vec<Contact> = u
                    .contacts
                    .values()
                    .filter(|c| !c.request)
                    .map(contacts::view)
                    .collect();
                contacts.sort_by(|a, b| a.alias.cmp(&b.alias));
                Ok(ContactList { contacts })
            })
            .await)
    });
    method!(module, m::CONTACTS_GET, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, _| contacts::details(s.unlocked()?, &p.contact))
            .await)
    });
    method!(module, m::CONTACTS_REMOVE, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::remove(s, t, &p.contact))
            .await
            .map(|()| Empty {}))
    });
    method!(module, m::CONTACTS_VERIFY, |params, ctx| {
        let p: VerifyContact = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| key_change::verify(s, t, &p.contact, p.safety_number.as_deref()))
            .await)
    });
    method!(module, m::CONTACTS_TRUST, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| key_change::trust(s, t, &p.contact))
            .await)
    });
    method!(module, m::CONTACTS_BLOCK, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::set_blocked(s, t, &p.contact, true))
            .await)
    });
    method!(module, m::CONTACTS_UNBLOCK, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::set_blocked(s, t, &p.contact, false))
            .await)
    });
    method!(module, m::REQUESTS_LIST, |params, ctx| {
        let p: ListRequests = parse(&params)?;
        out(ctx
            .core
            .call(move |s, _| requests::list(s.unlocked()?, p.blocked))
            .await)
    });
    method!(module, m::REQUESTS_ACCEPT, |params, ctx| {
        let p: AcceptRequest = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| requests::accept(s, t, &p.contact, p.alias.as_deref()))
            .await)
    });
    method!(module, m::REQUESTS_DECLINE, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| requests::decline(s, t, &p.contact))
            .await
            .map(|()| Empty {}))
    });
    method!(module, m::REQUESTS_BLOCK, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| requests::block(s, t, &p.contact))
            .await)
    });
    method!(module, m::INVITES_CREATE, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx.core.call(contacts::create_invite).await)
    });
    method!(module, m::INVITES_ACCEPT, |params, ctx| {
        let p: AcceptInvite = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::accept_invite(s, t, &p.code, p.alias.as_deref()))
            .await)
    });
    method!(module, m::CONTACTS_RENAME, |params, ctx| {
        let p: RenameContact = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| alias::rename(s, t, &p.contact, &p.alias))
            .await)
    });
}

pub(super) async fn add_contact(ctx: &Context, p: AddContact) -> ApiResult<Contact> {
    crate::core::unlocked::Unlocked::check_alias(&p.alias)?;
    let target = p.target.trim().to_owned();
    let found = if target.starts_with('@') {
        lookup_handle(ctx, &target)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("the handle {target} on its relay")))?
    } else {
        lookup_address(ctx, &target).await?
    };
    ctx.core
        .call(move |s, t| {
            let id = contacts::add(
                s,
                t,
                &p.alias,
                found.identity,
                found.handle,
                None,
                found.whereabouts,
                contacts::Joining::Introduce,
            )?;
            let u = s.unlocked()?;
            Ok(contacts::view(u.contact(&id)?))
        })
        .await
}
