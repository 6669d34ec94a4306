//! The commands that change or end the account: `passphrase`, `unregister` and
//! `account delete`.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::Context;
use api::methods;
use api::types::{
    AccountDeleted, AccountInfo, ChangePassphrase, DaemonStatus, DeleteAccount, Empty, LockState,
    PassphraseChanged, RegisterHandle,
};

use super::account::with_current_passphrase;
use super::{Ctx, decode};
use crate::cli::{DeleteArgs, PassphraseArgs};
use crate::exit::{Failure, LOCKED};
use crate::passphrase;
use crate::render;

/// `passphrase`: asks for the current passphrase (if the account has one) and the new one
/// (twice on a terminal), and has chatd wrap the store key again.
pub(super) fn passphrase(ctx: &Ctx, args: &PassphraseArgs) -> anyhow::Result<()> {
    let mut rpc = ctx.connect()?;
    let status = daemon_status(&mut rpc)?;
    let protected = match status.state {
        LockState::NoAccount => {
            return Err(Failure::new(
                LOCKED,
                "no_account",
                "there is no account yet, so no passphrase to change",
            )
            .into());
        }
        _ => status.passphrase_protected != Some(false),
    };
    let old_file = args.old_file.as_deref();
    // On a terminal a mistyped current passphrase is asked again, up to three tries in all;
    // the new one is asked for once, after the first current one (chatd checks the current
    // one in the request that sets the new one).
    let mut new = None;
    let value = with_current_passphrase(ctx, protected, old_file, "Current passphrase: ", |old| {
        if new.is_none() && !args.no_passphrase {
            new = Some(passphrase::for_new_account(args.new_file.as_deref())?);
        }
        let params = ChangePassphrase {
            old_passphrase: protected.then(|| old.expose().to_owned()),
            new_passphrase: new.as_ref().map(|p| p.expose().to_owned()),
            no_passphrase: args.no_passphrase,
        };
        rpc.call(methods::ACCOUNT_CHANGE_PASSPHRASE, &params)
    })?;
    if let Some(warning) = value.get("passphrase_warning").and_then(|w| w.as_str()) {
        ctx.out.note(&format!(
            "warning: {}; the passphrase is changed all the same",
            render::clean_line(warning)
        ));
    }
    ctx.show(
        methods::ACCOUNT_CHANGE_PASSPHRASE,
        value,
        |done: PassphraseChanged| {
            Ok(if done.unprotected {
                "passphrase removed: the keys are stored unprotected, and anyone who can read \
                 chatd's data directory can read your messages"
                    .to_owned()
            } else if protected {
                "passphrase changed: unlock with the new one from now on".to_owned()
            } else {
                "passphrase set: unlock with it from now on".to_owned()
            })
        },
    )
}

/// `unregister`: releases a handle on its relay.
pub(super) fn unregister(ctx: &Ctx, handle: &str) -> anyhow::Result<()> {
    let handle = handle.strip_prefix('@').unwrap_or(handle).to_owned();
    let params = RegisterHandle {
        handle: handle.clone(),
    };
    ctx.call_and_show(
        methods::ACCOUNT_RELEASE_HANDLE,
        &params,
        |_: serde_json::Value| {
            Ok(format!(
                "released @{}: another account may claim it now",
                render::clean_line(&handle)
            ))
        },
    )
}

/// `account delete`: asks for confirmation on a terminal (the account's name or `delete`,
/// unless `--yes`), then the passphrase if the account has one, and has chatd delete it.
pub(super) fn delete(ctx: &Ctx, args: &DeleteArgs) -> anyhow::Result<()> {
    let mut rpc = ctx.connect()?;
    let status = daemon_status(&mut rpc)?;
    if status.state == LockState::NoAccount {
        return Err(Failure::new(LOCKED, "no_account", "there is no account to delete").into());
    }
    let protected = status.passphrase_protected != Some(false);
    let name = match status.state {
        LockState::Unlocked => {
            let info: AccountInfo = decode(
                methods::ACCOUNT_INFO,
                rpc.call(methods::ACCOUNT_INFO, &Empty {})?,
            )?;
            Some(info.name)
        }
        _ => None,
    };
    if !args.yes {
        confirm(ctx, name.as_deref())?;
    }
    let file = args.passphrase_file.as_deref();
    let value = with_current_passphrase(ctx, protected, file, "Passphrase: ", |passphrase| {
        let params = DeleteAccount {
            passphrase: protected.then(|| passphrase.expose().to_owned()),
            confirm: true,
        };
        rpc.call(methods::ACCOUNT_DELETE, &params)
    })?;
    ctx.show(methods::ACCOUNT_DELETE, value, |done: AccountDeleted| {
        let mut text = String::from("account deleted: its keys, contacts and messages are gone");
        for handle in &done.released_handles {
            text.push_str(&format!("\nreleased @{}", render::clean_line(handle)));
        }
        for handle in &done.kept_handles {
            text.push_str(&format!(
                "\nkept @{}: the relay could not be told; it stays taken",
                render::clean_line(handle)
            ));
        }
        text.push_str("\ncreate a new account with `chatctl init --name NAME`");
        Ok(text)
    })
}

/// Asks the user at the terminal to type the account's name (when known) or `delete`.
fn confirm(ctx: &Ctx, name: Option<&str>) -> anyhow::Result<()> {
    if !io::stdin().is_terminal() {
        return Err(Failure::usage(
            "refusing to delete the account without confirmation: run it on a terminal, or \
             give --yes",
        )
        .into());
    }
    let question = match name {
        Some(name) => format!(
            "This deletes the account {} with its keys, contacts and messages, for good.\n\
             Type its name, or `delete`, to go on: ",
            render::clean_line(name)
        ),
        None => "This deletes the account with its keys, contacts and messages, for good.\n\
                 Type `delete` to go on: "
            .to_owned(),
    };
    let mut stderr = io::stderr().lock();
    stderr
        .write_all(question.as_bytes())
        .and_then(|()| stderr.flush())
        .context("cannot ask for confirmation")?;
    drop(stderr);
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the confirmation")?;
    let answer = answer.trim();
    if answer == "delete" || name.is_some_and(|name| !answer.is_empty() && answer == name.trim()) {
        return Ok(());
    }
    ctx.out.note("not confirmed; nothing was deleted");
    Err(Failure::usage("the deletion was not confirmed").into())
}

fn daemon_status(rpc: &mut super::Rpc) -> anyhow::Result<DaemonStatus> {
    decode(
        methods::DAEMON_STATUS,
        rpc.call(methods::DAEMON_STATUS, &Empty {})?,
    )
}
