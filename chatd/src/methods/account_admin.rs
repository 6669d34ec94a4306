//! `account.change_passphrase` and `account.delete`: the passphrase checks run outside the
//! core (Argon2id), the vault's replacement and the store's wipe inside it.

use std::time::Duration;

use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use protocol::reachability::QualifiedHandle;
use zeroize::Zeroizing;

use super::*;
use crate::core::account_admin;
use crate::error::{ApiError, ApiResult};

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::ACCOUNT_CHANGE_PASSPHRASE, |params, ctx| {
        let p: ChangePassphrase = parse(&params)?;
        out(change_passphrase(&ctx, p).await)
    });
    method!(module, m::ACCOUNT_DELETE, |params, ctx| {
        let p: DeleteAccount = parse(&params)?;
        out(delete(&ctx, p).await)
    });
}

async fn change_passphrase(ctx: &Context, p: ChangePassphrase) -> ApiResult<PassphraseChanged> {
    let old = p.old_passphrase.map(Zeroizing::new);
    let new = match (p.new_passphrase.map(Zeroizing::new), p.no_passphrase) {
        (Some(new), false) if !new.is_empty() => Some(new),
        (None, true) => None,
        _ => {
            return Err(ApiError::new(
                ErrorCode::PassphraseRequired,
                "give a new_passphrase (not empty), or explicitly no_passphrase: true (not both)",
            ));
        }
    };
    account_admin::change_passphrase(&ctx.core, &ctx.kv, ctx.kdf, old, new).await
}

async fn delete(ctx: &Context, p: DeleteAccount) -> ApiResult<AccountDeleted> {
    let passphrase = p.passphrase.map(Zeroizing::new);
    let state = ctx.core.call(|s, _| Ok(s.lock_state())).await?;
    if state == LockState::Locked {
        // Unlocking checks the passphrase, and lets the account sign the releases of its
        // handles (their list is in the encrypted account record).
        account_admin::check_deletion(&ctx.core, &ctx.kv, None, p.confirm)
            .await
            .or_else(|e| match e.code {
                ErrorCode::PassphraseRequired if passphrase.is_some() => Ok(()),
                _ => Err(e),
            })?;
        match crate::core::account::unlock(&ctx.core, &ctx.kv, passphrase).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::AlreadyUnlocked => {}
            Err(e) => return Err(e),
        }
    } else {
        account_admin::check_deletion(&ctx.core, &ctx.kv, passphrase, p.confirm).await?;
    }
    let handles = connected_handles(ctx).await?;
    let mut released_handles = Vec::new();
    let mut kept_handles = Vec::new();
    for (handle, online) in handles {
        let result = if online {
            super::handles::release_handle(
                ctx,
                RegisterHandle {
                    handle: handle.clone(),
                },
            )
            .await
        } else {
            Err(ApiError::new(
                ErrorCode::RelayUnreachable,
                "not connected to the relay",
            ))
        };
        match result {
            Ok(()) => released_handles.push(handle),
            Err(e) => {
                tracing::warn!(error = %e, "a handle of the deleted account stays on its relay");
                kept_handles.push(handle);
            }
        }
    }
    account_admin::wipe(&ctx.core).await?;
    Ok(AccountDeleted {
        released_handles,
        kept_handles,
    })
}

/// How long `account.delete` waits for the relay connection to release handles.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// The account's handles, each with whether the relay that holds it is connected, once
/// every one is or [`CONNECT_WAIT`] has passed (a just unlocked account is still connecting).
async fn connected_handles(ctx: &Context) -> ApiResult<Vec<(String, bool)>> {
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    loop {
        let handles = ctx
            .core
            .call(|s, _| {
                let u = s.unlocked()?;
                Ok(u.account
                    .handles
                    .iter()
                    .map(|h| {
                        let relay = QualifiedHandle::parse(h).ok().and_then(|q| q.relay);
                        let online = match relay {
                            Some(relay) if relay != u.account.relay_url => {
                                u.draining.contains_key(&relay)
                            }
                            _ => u.online,
                        };
                        (h.clone(), online)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        if handles.iter().all(|(_, online)| *online) || tokio::time::Instant::now() >= deadline {
            return Ok(handles);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
