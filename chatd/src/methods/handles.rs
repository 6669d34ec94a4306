//! `account.register_handle` and `account.release_handle`, and the handle lookups and the
//! account's handle list the other groups use.

use api::ErrorCode;
use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use protocol::frames::{ClientFrame, HandleClaim, HandleRelease, ServerFrame};

use super::*;
use crate::core::contacts::Whereabouts;
use crate::core::reach::Route;
use crate::core::{account, contacts};
use crate::error::{ApiError, ApiResult};
use crate::relay_link::Requester;
use protocol::identity::IdentityKey;
use protocol::reachability::{QualifiedHandle, ReachabilityRecord};

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

/// An account found on a relay: its identity, and where it is reached.
#[derive(Debug)]
pub(super) struct Found {
    /// The identity key.
    pub identity: [u8; 32],
    /// Its record (if the relay holds one) or the relay it was found on.
    pub whereabouts: Whereabouts,
    /// The handle as stored with the contact: bare on our own relay, `handle@relay` on another.
    pub handle: Option<String>,
}

/// The requester for `relay` (our home relay when `None` or ours), and its relay binding.
async fn relay_requester(ctx: &Context, relay: Option<String>) -> ApiResult<(Requester, Route)> {
    ctx.core
        .call(move |s, _| {
            let own = s.unlocked()?.account.relay_url.clone();
            let url = relay.unwrap_or_else(|| own.clone());
            let route = Route {
                home: url == own,
                url,
                tls_pin: None,
            };
            Ok((s.requester(&route)?, route))
        })
        .await
}

/// The verified reachability record `relay` holds for `identity`, if any. A record that does
/// not verify or names someone else is the relay's lie and is ignored (SPEC.md 10.9).
async fn fetch_record(requester: &Requester, identity: [u8; 32]) -> Option<ReachabilityRecord> {
    let key = IdentityKey::from_bytes(&identity).ok()?;
    let answer = requester
        .request(
            |request_id| ClientFrame::FetchReachability {
                request_id,
                identity: key,
            },
            LOOKUP_TIMEOUT,
        )
        .await;
    match answer {
        Ok(ServerFrame::Reachability {
            record: Some(record),
            ..
        }) => match record.verify_for(&key) {
            Ok(()) => Some(record),
            Err(e) => {
                tracing::warn!(error = %e, "a relay returned a bad reachability record");
                None
            }
        },
        Ok(_) => None,
        Err(e) => {
            tracing::info!(error = %e, "could not fetch a reachability record");
            None
        }
    }
}

/// Looks a handle up (`handle`, `@handle`, or relay-qualified `handle@host[:port]`, SPEC.md
/// 10.9) on its relay, verifies the claim, and fetches the holder's reachability record there.
/// `None` if nobody holds the handle.
pub(super) async fn lookup_handle(ctx: &Context, text: &str) -> ApiResult<Option<Found>> {
    let qualified = QualifiedHandle::parse(text.trim()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidHandle,
            format!("{:?} is not a valid handle: {e}", text.trim()),
        )
    })?;
    let (requester, route) = relay_requester(ctx, qualified.relay.clone()).await?;
    let asked = qualified.handle.clone();
    let answer = requester
        .request(
            |request_id| ClientFrame::LookupHandle {
                request_id,
                handle: asked,
            },
            LOOKUP_TIMEOUT,
        )
        .await?;
    let identity = match answer {
        ServerFrame::HandleRecord { claim, .. } => {
            contacts::verify_claim(&qualified.handle, claim)?
        }
        other => return Err(unexpected(&other)),
    };
    let Some(identity) = identity else {
        return Ok(None);
    };
    let record = fetch_record(&requester, identity).await;
    let handle = if route.home {
        qualified.handle.to_string()
    } else {
        QualifiedHandle {
            handle: qualified.handle,
            relay: Some(route.url.clone()),
        }
        .to_string()
    };
    Ok(Some(Found {
        identity,
        whereabouts: Whereabouts {
            record,
            relay_hint: (!route.home).then_some(route.url),
            ..Whereabouts::default()
        },
        handle: Some(handle),
    }))
}

/// Finds where an address (`chat1...`, or `chat1...@host[:port]` naming its relay) is
/// reached: its record from that relay (our own when none is named), else that relay.
pub(super) async fn lookup_address(ctx: &Context, text: &str) -> ApiResult<Found> {
    let text = text.trim();
    let (address, relay) = match text.split_once('@') {
        Some((address, relay)) => {
            let relay = protocol::reachability::relay_of(relay).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidRelayUrl,
                    format!("{relay:?} is not a relay: {e}"),
                )
            })?;
            (address, Some(relay))
        }
        None => (text, None),
    };
    let identity = contacts::parse_address(address)?;
    let (requester, route) = relay_requester(ctx, relay).await?;
    let record = fetch_record(&requester, identity).await;
    Ok(Found {
        identity,
        whereabouts: Whereabouts {
            record,
            relay_hint: (!route.home).then_some(route.url),
            ..Whereabouts::default()
        },
        handle: None,
    })
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
    // A handle on the home relay is written bare; one left on a relay the account moved away
    // from is written `handle@relay` and released there, over the link that drains it.
    let text = p.handle.trim().trim_start_matches('@').to_owned();
    let qualified = QualifiedHandle::parse(&text).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidHandle,
            format!("{text:?} is not a valid handle: {e}"),
        )
    })?;
    let signed = qualified.handle.clone();
    let listed = text.clone();
    let (release, requester) = ctx
        .core
        .call(move |s, _| {
            let u = s.unlocked()?;
            if !u.account.handles.iter().any(|h| h == &listed) {
                return Err(ApiError::not_found(format!(
                    "the handle @{listed} on this account"
                )));
            }
            let requester = match &qualified.relay {
                Some(relay) if relay != &u.account.relay_url => u
                    .draining
                    .get(relay)
                    .map(|(link, _)| link.requester())
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::RelayUnreachable,
                            format!("no connection to {relay}"),
                        )
                    })?,
                _ => link_requester(u)?,
            };
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
    save_handles(ctx, move |handles| handles.retain(|h| h != &text)).await?;
    Ok(())
}
