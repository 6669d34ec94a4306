//! Changing the passphrase and deleting the account: the passphrase checks (Argon2id outside
//! the core, under the unlock throttle), the vault record's replacement and the store's wipe,
//! each inside one round of the core.

use api::ErrorCode;
use api::types::{LockState, PassphraseChanged};
use zeroize::Zeroizing;

use super::{CoreHandle, Lock};
use crate::error::{ApiError, ApiResult};
use crate::store::{KdfParams, Kv, StoreError, Vault};

/// `account.change_passphrase`: checks `old` (as `account.unlock` does, counted by the same
/// throttle), wraps the master key under `new` (or unprotected when `new` is `None`) with
/// `kdf`, and replaces the vault record in one write of a core round. The answer comes once
/// the round is flushed; a failed flush answers `store_error` and leaves the old record.
pub async fn change_passphrase(
    core: &CoreHandle,
    kv: &Kv,
    kdf: KdfParams,
    old: Option<Zeroizing<String>>,
    new: Option<Zeroizing<String>>,
) -> ApiResult<PassphraseChanged> {
    if core.call(|s, _| Ok(s.lock_state())).await? == LockState::NoAccount {
        return Err(ApiError::no_account());
    }
    let passphrase_warning = new
        .as_ref()
        .and_then(|p| api::input::passphrase_weakness(p));
    let mut throttle = core.unlock_throttle.lock().await;
    throttle.wait().await;
    let reading = kv.clone();
    let rewrapped = tokio::task::spawn_blocking(move || {
        Vault::rewrap(
            &reading,
            old.as_ref().map(|p| p.as_bytes()),
            new.as_ref().map(|p| p.as_bytes()),
            kdf,
            &mut rand::rng(),
        )
    })
    .await
    .map_err(ApiError::store)?;
    // A missing old passphrase is no guess, so only a wrong one counts.
    throttle.record(matches!(rewrapped, Err(StoreError::WrongPassphrase)));
    drop(throttle);
    let rewrapped = rewrapped.map_err(|e| match e {
        StoreError::WrongPassphrase => ApiError::new(
            ErrorCode::WrongPassphrase,
            "wrong passphrase (an account created without a passphrase takes no old one)",
        ),
        other => passphrase_error(other),
    })?;
    core.call(move |s, txn| {
        if matches!(s.lock, Lock::NoAccount) {
            return Err(ApiError::no_account());
        }
        let kv = s.kv.clone();
        if !txn.wrote_raw(Vault::replace(&kv, &rewrapped))? {
            return Err(ApiError::new(
                ErrorCode::WrongPassphrase,
                "the passphrase was changed meanwhile by another request; give the current one",
            ));
        }
        let unprotected = rewrapped.is_unprotected();
        if let Lock::Unlocked(unlocked) = &mut s.lock {
            unlocked.unprotected = unprotected;
        }
        if unprotected {
            tracing::warn!("the passphrase was removed: the store key is now unprotected");
        } else {
            tracing::info!("the passphrase was changed");
        }
        Ok(PassphraseChanged {
            unprotected,
            passphrase_warning,
        })
    })
    .await
}

/// Checks what `account.delete` must be given: the passphrase of a protected account (as
/// `account.unlock` checks it, counted by the same throttle), or `confirm` for an account
/// created without one. Derives no key it keeps.
pub async fn check_deletion(
    core: &CoreHandle,
    kv: &Kv,
    passphrase: Option<Zeroizing<String>>,
    confirm: bool,
) -> ApiResult<()> {
    if core.call(|s, _| Ok(s.lock_state())).await? == LockState::NoAccount {
        return Err(ApiError::no_account());
    }
    if !Vault::is_protected(kv).map_err(passphrase_error)? {
        if confirm {
            return Ok(());
        }
        return Err(ApiError::new(
            ErrorCode::PassphraseRequired,
            "the account has no passphrase: give confirm: true to delete it",
        ));
    }
    let Some(passphrase) = passphrase else {
        return Err(ApiError::new(
            ErrorCode::PassphraseRequired,
            "the account is protected by a passphrase: give it to delete the account",
        ));
    };
    let mut throttle = core.unlock_throttle.lock().await;
    throttle.wait().await;
    let reading = kv.clone();
    let checked =
        tokio::task::spawn_blocking(move || Vault::unlock(&reading, Some(passphrase.as_bytes())))
            .await
            .map_err(ApiError::store)?;
    throttle.record(matches!(checked, Err(StoreError::WrongPassphrase)));
    drop(throttle);
    checked.map(drop).map_err(passphrase_error)
}

/// Locks the account (every secret dropped, the relay link stopped) and wipes the store, in
/// one round of the core; the daemon is then in the "no account" state.
pub async fn wipe(core: &CoreHandle) -> ApiResult<()> {
    core.call(|s, txn| {
        if matches!(s.lock, Lock::NoAccount) {
            return Err(ApiError::no_account());
        }
        if matches!(s.lock, Lock::Unlocked(_)) {
            super::account::lock(s, txn)?;
        }
        // Later results of the account's background work carry the old generation.
        s.generation += 1;
        s.redeliver_at = None;
        let kv = s.kv.clone();
        match kv.wipe() {
            Ok(()) => {
                s.lock = Lock::NoAccount;
                tracing::warn!("the account was deleted, and its store wiped");
                Ok(())
            }
            Err(e) => {
                // Part of the store may be gone: say what is left.
                s.lock = match Vault::exists(&kv) {
                    Ok(false) => Lock::NoAccount,
                    _ => Lock::Locked,
                };
                Err(ApiError::store(format!("deleting the store's files: {e}")))
            }
        }
    })
    .await
}

/// The API error for a failed vault check.
fn passphrase_error(e: StoreError) -> ApiError {
    match e {
        StoreError::WrongPassphrase => {
            ApiError::new(ErrorCode::WrongPassphrase, "wrong passphrase")
        }
        StoreError::PassphraseRequired => ApiError::new(
            ErrorCode::PassphraseRequired,
            "this account is protected by a passphrase; give it",
        ),
        StoreError::NoVault => ApiError::no_account(),
        other => ApiError::store(other),
    }
}
