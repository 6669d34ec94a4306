//! `account.create`, `account.unlock`, `account.lock`, `account.info` and
//! `account.move_relay`: Argon2id runs outside the core, the rest in it.

use api::ErrorCode;
use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;

use super::*;
use crate::core::{Lock, account};
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoreError, Vault};

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::ACCOUNT_CREATE, |params, ctx| {
        let p: CreateAccount = parse(&params)?;
        out(create(&ctx, p).await)
    });
    method!(module, m::ACCOUNT_UNLOCK, |params, ctx| {
        let p: Unlock = parse(&params)?;
        out(unlock(&ctx, p).await)
    });
    method!(module, m::ACCOUNT_LOCK, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx.core.call(account::lock).await.map(|()| Empty {}))
    });
    method!(module, m::ACCOUNT_INFO, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx.core.call(|s, _| Ok(account::info(s.unlocked()?))).await)
    });
    method!(module, m::ACCOUNT_SET_STRANGERS, |params, ctx| {
        let p: SetStrangers = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| account::set_strangers(s, t, p.accept))
            .await)
    });
    method!(module, m::ACCOUNT_MOVE_RELAY, |params, ctx| {
        let p: MoveRelay = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| account::move_relay(s, t, &p.relay))
            .await)
    });
}

pub(super) async fn create(ctx: &Context, p: CreateAccount) -> ApiResult<AccountInfo> {
    let name = account::check_name(&p.name)?;
    let relay = match &p.relay {
        Some(url) => crate::relay_link::normalize_url(url)?,
        None => ctx.default_relay.clone(),
    };
    let passphrase_warning = p
        .passphrase
        .as_deref()
        .and_then(api::input::passphrase_weakness);
    let passphrase = match (p.passphrase, p.no_passphrase) {
        (Some(passphrase), false) if !passphrase.is_empty() => {
            Some(zeroize::Zeroizing::new(passphrase))
        }
        (None, true) => None,
        _ => {
            return Err(ApiError::new(
                ErrorCode::PassphraseRequired,
                "give a passphrase, or explicitly no_passphrase: true (not both)",
            ));
        }
    };
    if Vault::exists(&ctx.kv)? {
        return Err(store_error(StoreError::VaultExists));
    }
    if passphrase.is_none() {
        tracing::warn!("creating an account without a passphrase: the store key is unprotected");
    }
    let kv = ctx.kv.clone();
    let kdf = ctx.kdf;
    let keys = tokio::task::spawn_blocking(move || {
        Vault::create(
            &kv,
            passphrase.as_ref().map(|p| p.as_bytes()),
            kdf,
            &mut rand::rng(),
        )
    })
    .await
    .map_err(ApiError::store)?
    .map_err(store_error)?;
    let store = Store::new(ctx.kv.clone(), keys);
    let unprotected = !Vault::is_protected(&ctx.kv)?;
    ctx.core
        .call(move |s, t| {
            if !matches!(s.lock, Lock::NoAccount) {
                return Err(store_error(StoreError::VaultExists));
            }
            let record = account::new_account(name, relay, s.config.clock.now_ms());
            let mut batch = store.batch();
            account::save_account(&mut batch, &record);
            t.commit(&store, batch)?;
            let info = account::open(s, store, unprotected, t)?;
            let unlocked = s.unlocked()?;
            let store = unlocked.store.clone();
            let mut batch = store.batch();
            let now = unlocked.clock.now_ms();
            account::initial_prekeys(unlocked, &mut batch, now);
            account::save_account(&mut batch, &unlocked.account);
            t.commit(&store, batch)?;
            Ok(AccountInfo {
                passphrase_warning,
                ..info
            })
        })
        .await
}

pub(super) async fn unlock(ctx: &Context, p: Unlock) -> ApiResult<AccountInfo> {
    account::unlock(
        &ctx.core,
        &ctx.kv,
        p.passphrase.map(zeroize::Zeroizing::new),
    )
    .await
}
