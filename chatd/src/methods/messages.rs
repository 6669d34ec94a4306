//! `messages.send` (resolving `@handle` and address targets, re-checking handle-bound
//! contacts), `messages.history`, `messages.mark_read` and `conversations.list`.

use std::sync::Arc;

use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use jsonrpsee::types::ErrorObjectOwned;

use super::handles::{lookup_address, lookup_handle};
use super::*;
use crate::core::{contacts, messaging};
use crate::error::{ApiError, ApiResult};

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::MESSAGES_SEND, |params, ctx| {
        let p: SendMessage = parse(&params)?;
        out(send(&ctx, p).await)
    });
    method!(module, m::MESSAGES_HISTORY, |params, ctx| {
        let p: History = parse(&params)?;
        check_history_limit(p.limit)?;
        out(ctx
            .core
            .call(move |s, _| {
                messaging::history::history(
                    s.unlocked()?,
                    &p.conversation,
                    p.limit,
                    p.before.as_deref(),
                )
            })
            .await)
    });
    method!(module, m::MESSAGES_MARK_READ, |params, ctx| {
        let p: MarkRead = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| {
                messaging::history::mark_read(s, t, &p.conversation, p.up_to.as_deref())
            })
            .await)
    });
    method!(module, m::CONVERSATIONS_LIST, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx
            .core
            .call(|s, _| messaging::history::conversations(s.unlocked()?))
            .await)
    });
}

/// What a send target resolved to.
pub(super) enum Resolved {
    /// A known contact needing no handle re-check: the message is already stored.
    Sent(SentMessage),
    /// A known contact found by this handle, whose re-check is due.
    Recheck([u8; 16], String),
    /// No contact by that name.
    Unknown,
}

/// The conversation with `identity`, adding it as a contact (named from `alias_base`) if it is
/// not one yet.
pub(super) async fn contact_for(
    ctx: &Context,
    found: super::handles::Found,
    alias_base: String,
) -> ApiResult<[u8; 16]> {
    ctx.core
        .call(move |s, t| {
            let u = s.unlocked()?;
            if let Some(id) = u.by_identity.get(&found.identity) {
                return Ok(*id);
            }
            let alias = u.free_alias(&alias_base, &found.identity);
            contacts::add(
                s,
                t,
                &alias,
                found.identity,
                found.handle,
                None,
                found.whereabouts,
                contacts::Joining::Introduce,
            )
        })
        .await
}

pub(super) async fn send(ctx: &Context, p: SendMessage) -> ApiResult<SentMessage> {
    let target = p.to.trim().to_owned();
    let lookup = target.clone();
    let recheck_ms = ctx.handle_recheck_ms;
    // The common case, a known contact whose handle needs no re-check, is one core job.
    let text = Arc::new(p.text);
    let first_text = text.clone();
    let resolved = ctx
        .core
        .call(move |s, t| {
            let u = s.unlocked()?;
            // A name that fits two contacts is refused here, not looked up on the relay.
            let Some(id) = crate::core::resolve::lookup(u, &lookup)? else {
                return Ok(Resolved::Unknown);
            };
            let c = u.contact(&id)?;
            match &c.handle {
                Some(handle) if c.handle_checked_ms + recheck_ms <= u.clock.now_ms() => {
                    Ok(Resolved::Recheck(id, handle.clone()))
                }
                _ => messaging::outbox::send_text(s, t, id, &first_text).map(Resolved::Sent),
            }
        })
        .await?;
    let conversation = match resolved {
        Resolved::Sent(sent) => return Ok(sent),
        Resolved::Recheck(id, handle) => {
            // If the relay now names another key for the handle, that is a key change, and
            // the send is refused until the user trusts it.
            match lookup_handle(ctx, &handle).await {
                Ok(found) => {
                    let found = found.map(|f| f.identity);
                    ctx.core
                        .call(move |s, t| contacts::apply_handle_check(s, t, id, found))
                        .await?;
                }
                Err(e) => {
                    tracing::info!(error = %e, "could not re-check a handle; sending anyway")
                }
            }
            id
        }
        Resolved::Unknown if target.starts_with('@') => {
            let found = lookup_handle(ctx, &target).await?.ok_or_else(|| {
                ApiError::not_found(format!("{target} (no contact or handle by that name)"))
            })?;
            let alias = target
                .trim_start_matches('@')
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned();
            contact_for(ctx, found, alias).await?
        }
        Resolved::Unknown => {
            // Not a contact: an address is accepted as it is; anything else that does not look
            // like one is an unknown contact.
            if !target.to_ascii_lowercase().starts_with("chat1") {
                return Err(ApiError::not_found(format!(
                    "contact {target:?} (no contact by that name; use @handle or an address)"
                )));
            }
            let found = lookup_address(ctx, &target).await?;
            // Named after the address (`core::alias::free` falls back to its first characters).
            contact_for(ctx, found, String::new()).await?
        }
    };
    ctx.core
        .call(move |s, t| messaging::outbox::send_text(s, t, conversation, &text))
        .await
}

/// The most messages one `messages.history` page holds.
pub(super) const HISTORY_MAX_LIMIT: u32 = 500;

/// `messages.history`'s `limit` must be 1 to [`HISTORY_MAX_LIMIT`], as documented; anything
/// else is invalid params rather than quietly clamped.
pub(super) fn check_history_limit(limit: Option<u32>) -> RpcResult<()> {
    match limit {
        Some(limit) if !(1..=HISTORY_MAX_LIMIT).contains(&limit) => Err(ErrorObjectOwned::owned(
            api::error::INVALID_PARAMS,
            format!("Invalid params: limit must be 1 to {HISTORY_MAX_LIMIT}, not {limit}"),
            None::<()>,
        )),
        _ => Ok(()),
    }
}
