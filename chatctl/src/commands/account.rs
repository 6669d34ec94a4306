//! The account commands: `init`, `unlock`, `lock`, `status`, `whoami`, `register`, `relay move`,
//! `strangers`.

use api::ErrorCode;
use api::client::ClientError;
use api::methods;
use api::types::{
    AccountInfo, CreateAccount, DaemonStatus, Empty, HandleRegistered, LockState, MoveRelay,
    RegisterHandle, SetStrangers, Unlock,
};

use super::{Ctx, decode};
use crate::cli::{InitArgs, UnlockArgs};
use crate::passphrase;
use crate::render;

/// `init`: creates the account and prints its address.
pub(super) fn init(ctx: &Ctx, args: &InitArgs) -> anyhow::Result<()> {
    // The passphrase is asked for before connecting, so a slow typist holds no connection.
    let passphrase = if args.no_passphrase {
        ctx.out.note(
            "warning: no passphrase: the keys will be stored unprotected, and anyone who can \
             read chatd's data directory can read your messages",
        );
        None
    } else {
        Some(passphrase::for_new_account(
            args.passphrase_file.as_deref(),
        )?)
    };
    let params = CreateAccount {
        name: args.name.clone(),
        passphrase: passphrase.as_ref().map(|p| p.expose().to_owned()),
        no_passphrase: args.no_passphrase,
        relay: args.relay.clone(),
    };
    let value = ctx.connect()?.call(methods::ACCOUNT_CREATE, &params)?;
    drop(params);
    if let Some(warning) = value.get("passphrase_warning").and_then(|w| w.as_str()) {
        ctx.out.note(&format!(
            "warning: {}; the account is created all the same (change it with `chatctl \
             passphrase`)",
            render::clean_line(warning)
        ));
    }
    ctx.show(methods::ACCOUNT_CREATE, value, |info: AccountInfo| {
        ctx.out.note(&format!(
            "Account created for {} on {}. Your address:",
            render::clean_line(&info.name),
            render::clean_line(&info.relay_url)
        ));
        Ok(render::clean_line(&info.address).into_owned())
    })
}

/// `unlock`: unlocks the account. Unlocking an unlocked account succeeds without asking for
/// the passphrase, so scripts can run it unconditionally.
pub(super) fn unlock(ctx: &Ctx, args: &UnlockArgs) -> anyhow::Result<()> {
    let mut rpc = ctx.connect()?;
    let status: DaemonStatus = decode(
        methods::DAEMON_STATUS,
        rpc.call(methods::DAEMON_STATUS, &Empty {})?,
    )?;
    let value = match status.state {
        LockState::Unlocked => None,
        // Let chatd refuse, with its own error and code.
        LockState::NoAccount => {
            Some(rpc.call(methods::ACCOUNT_UNLOCK, &Unlock { passphrase: None })?)
        }
        LockState::Locked => {
            // An account created without a passphrase unlocks without one.
            let file = args.passphrase_file.as_deref();
            let protected = status.passphrase_protected != Some(false);
            let unlocked =
                with_current_passphrase(ctx, protected, file, "Passphrase: ", |passphrase| {
                    let params = Unlock {
                        passphrase: protected.then(|| passphrase.expose().to_owned()),
                    };
                    rpc.call(methods::ACCOUNT_UNLOCK, &params)
                });
            match unlocked {
                Ok(value) => Some(value),
                // Another client unlocked it meanwhile.
                Err(e) if already_unlocked(&e) => None,
                Err(e) => return Err(e),
            }
        }
    };
    let (value, verb) = match value {
        Some(value) => (value, "unlocked"),
        None => (
            rpc.call(methods::ACCOUNT_INFO, &Empty {})?,
            "already unlocked",
        ),
    };
    ctx.show(methods::ACCOUNT_UNLOCK, value, |info: AccountInfo| {
        Ok(format!("{verb}: {}", render::clean_line(&info.address)))
    })
}

/// Whether chatd refused a passphrase as wrong.
/// Runs `attempt` with the account's current passphrase: none for an account created without
/// one, else from `file`, a prompt with `question` (asked again after a wrong one, up to
/// [`passphrase::TRIES`] in all) or one line of stdin.
pub(super) fn with_current_passphrase<T>(
    ctx: &Ctx,
    protected: bool,
    file: Option<&std::path::Path>,
    question: &str,
    attempt: impl FnMut(passphrase::Passphrase) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tries = if protected && passphrase::interactive(file) {
        passphrase::TRIES
    } else {
        1
    };
    passphrase::with_retries(
        tries,
        || {
            if protected {
                passphrase::current(file, question)
            } else {
                passphrase::none()
            }
        },
        attempt,
        is_wrong_passphrase,
        |text| ctx.out.note(text),
    )
}

fn is_wrong_passphrase(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ClientError>()
        .and_then(ClientError::app_code)
        == Some(ErrorCode::WrongPassphrase)
}

fn already_unlocked(err: &anyhow::Error) -> bool {
    err.downcast_ref::<ClientError>()
        .and_then(ClientError::app_code)
        == Some(ErrorCode::AlreadyUnlocked)
}

/// `lock`: locks the account.
pub(super) fn lock(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.call_and_show(methods::ACCOUNT_LOCK, &Empty {}, |_: serde_json::Value| {
        Ok("locked".to_owned())
    })
}

/// `status`: the daemon's state.
pub(super) fn status(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.call_and_show(methods::DAEMON_STATUS, &Empty {}, |s: DaemonStatus| {
        Ok(render::status(&s))
    })
}

/// `whoami`: this account.
pub(super) fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.call_and_show(methods::ACCOUNT_INFO, &Empty {}, |info: AccountInfo| {
        Ok(render::account(&info))
    })
}

/// `register`: claims a handle on the relay.
pub(super) fn register(ctx: &Ctx, handle: &str) -> anyhow::Result<()> {
    let params = RegisterHandle {
        handle: handle.strip_prefix('@').unwrap_or(handle).to_owned(),
    };
    ctx.call_and_show(
        methods::ACCOUNT_REGISTER_HANDLE,
        &params,
        |done: HandleRegistered| {
            Ok(format!(
                "registered @{} on {}",
                render::clean_line(&done.handle),
                render::clean_line(&done.relay_url)
            ))
        },
    )
}

/// `chatctl relay move URL`.
pub(super) fn move_relay(ctx: &Ctx, url: &str) -> anyhow::Result<()> {
    let params = MoveRelay {
        relay: url.to_owned(),
    };
    ctx.call_and_show(methods::ACCOUNT_MOVE_RELAY, &params, |info: AccountInfo| {
        Ok(format!(
            "moved to {}: your contacts are being told; mail still arriving at the old relay is \
             collected until it is quiet",
            render::clean_line(&info.relay_url)
        ))
    })
}

/// `chatctl strangers accept|refuse`.
pub(super) fn strangers(ctx: &Ctx, accept: bool) -> anyhow::Result<()> {
    ctx.call_and_show(
        methods::ACCOUNT_SET_STRANGERS,
        &SetStrangers { accept },
        |info: AccountInfo| {
            Ok(if info.accept_strangers {
                "strangers may write to you (at your relay's low stranger rate)".to_owned()
            } else {
                "only your contacts (and invites you hand out) may write to you".to_owned()
            })
        },
    )
}
