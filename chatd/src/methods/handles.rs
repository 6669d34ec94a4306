//! `account.register_handle` and `account.release_handle`, and the handle lookups and the
//! account's handle list the other groups use.

use api::ErrorCode;
use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use protocol::frames::{ClientFrame, HandleClaim, HandleRelease, ServerFrame};

use super::*;
use crate::core::{account, contacts};
use crate::error::{ApiError, ApiResult};

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::ACCOUNT_REGISTER_HANDLE, |params, ctx| {
        let p: RegisterHandle = parse(&params)?;
        out(register_handle(&ctx, p).await)
    });
    method!(module, m::ACCOUNT_RELEASE_HANDLE, |params, ctx| {
        let p: RegisterHandle = parse(&params)?;
        out(release_handle(&ctx, p).await.map(|()| Empty {}))
    });
}

/// Looks a handle up on the relay and verifies the answer.
pub(super) async fn lookup_handle(ctx: &Context, text: &str) -> ApiResult<Option<[u8; 32]>> {
    let handle = contacts::parse_handle(text)?;
    let requester = requester(ctx).await?;
    let asked = handle.clone();
    let answer = requester
        .request(
            |request_id| ClientFrame::LookupHandle {
                request_id,
                handle: asked,
            },
            LOOKUP_TIMEOUT,
        )
        .await?;
    match answer {
        ServerFrame::HandleRecord { claim, .. } => contacts::verify_claim(&handle, claim),
        other => Err(unexpected(&other)),
    }
}

/// Changes the account's list of handles and stores it; returns the relay URL.
pub(super) async fn save_handles(
    ctx: &Context,
    edit: impl FnOnce(&mut Vec<String>) + Send + 'static,
) -> ApiResult<String> {
    ctx.core
        .call(move |s, t| {
            let u = s.unlocked()?;
            edit(&mut u.account.handles);
            let store = u.store.clone();
            let mut batch = store.batch();
            account::save_account(&mut batch, &u.account);
            t.commit(&store, batch)?;
            Ok(u.account.relay_url.clone())
        })
        .await
}

pub(super) async fn register_handle(
    ctx: &Context,
    p: RegisterHandle,
) -> ApiResult<HandleRegistered> {
    use crate::relay_link::RequestError::Refused;
    use protocol::frames::ErrorCode as Relay;
    let handle = contacts::parse_handle(&p.handle)?;
    let name = handle.as_str().to_owned();
    // A relay refuses a claim whose `issued_at` is not later than every claim and release it
    // recorded for the handle (SPEC.md 10.6), in whole seconds: a handle another account
    // released this second refuses a claim signed now. Each try signs one second later (a
    // relay accepts up to a day ahead of its clock), so the third try is past any such record.
    let mut tries = 0;
    loop {
        tries += 1;
        let signed = handle.clone();
        let (claim, requester) = ctx
            .core
            .call(move |s, _| {
                let u = s.unlocked()?;
                let requester = link_requester(u)?;
                let issued_at = u.handle_issued_at(signed.as_str(), u.clock.now_ms() / 1000);
                Ok((HandleClaim::sign(&u.identity, signed, issued_at), requester))
            })
            .await?;
        let answer = requester
            .request(
                |request_id| ClientFrame::ClaimHandle { request_id, claim },
                LOOKUP_TIMEOUT,
            )
            .await;
        match answer {
            Ok(ServerFrame::Done { .. }) => break,
            Err(Refused(Relay::HandleTaken, _)) => {
                return Err(ApiError::new(
                    ErrorCode::HandleTaken,
                    format!("@{name} is taken by another account"),
                ));
            }
            Err(Refused(Relay::HandleInvalid, _)) if tries < 3 => {}
            Err(Refused(Relay::HandleInvalid, message)) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidHandle,
                    format!("the relay refused @{name}: {message}"),
                ));
            }
            Err(e) => return Err(e.into()),
            Ok(other) => return Err(unexpected(&other)),
        }
    }
    let added = name.clone();
    let relay_url = save_handles(ctx, move |handles| {
        if !handles.contains(&added) {
            handles.push(added);
        }
    })
    .await?;
    Ok(HandleRegistered {
        handle: name,
        relay_url,
    })
}

pub(super) async fn release_handle(ctx: &Context, p: RegisterHandle) -> ApiResult<()> {
    use crate::relay_link::RequestError::Refused;
    let handle = contacts::parse_handle(&p.handle)?;
    let signed = handle.clone();
    let (release, requester) = ctx
        .core
        .call(move |s, _| {
            let u = s.unlocked()?;
            if !u.account.handles.iter().any(|h| h == signed.as_str()) {
                return Err(ApiError::not_found(format!(
                    "the handle @{} on this account",
                    signed.as_str()
                )));
            }
            let requester = link_requester(u)?;
            let issued_at = u.handle_issued_at(signed.as_str(), u.clock.now_ms() / 1000);
            Ok((
                HandleRelease::sign(&u.identity, signed, issued_at),
                requester,
            ))
        })
        .await?;
    let answer = requester
        .request(
            |request_id| ClientFrame::ReleaseHandle {
                request_id,
                release,
            },
            LOOKUP_TIMEOUT,
        )
        .await;
    match answer {
        // Not found: the relay already forgot it; either way it is no longer ours.
        Ok(ServerFrame::Done { .. }) | Err(Refused(protocol::frames::ErrorCode::NotFound, _)) => {}
        Ok(other) => return Err(unexpected(&other)),
        Err(e) => return Err(e.into()),
    }
    let name = handle.as_str().to_owned();
    save_handles(ctx, move |handles| handles.retain(|h| h != &name)).await?;
    Ok(())
}
