//! The contact commands (`contact add|list|show|verify|trust|remove|rename`, `block`, `unblock`,
//! `blocked`) and invites (`invite`, `accept`).

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::Context;
use api::methods;
use api::types::{
    AcceptInvite, AddContact, Contact, ContactDetails, ContactList, ContactRef, Empty, Invite,
    RenameContact, VerifyContact,
};

use super::{Ctx, decode};
use crate::cli::ContactCommand;
use crate::exit::{self, Failure};
use crate::{qr, render};

/// Runs a `contact` command.
pub(super) fn run(ctx: &Ctx, command: &ContactCommand) -> anyhow::Result<()> {
    match command {
        ContactCommand::Add { alias, target } => add(ctx, alias, target),
        ContactCommand::List => {
            ctx.call_and_show(methods::CONTACTS_LIST, &Empty {}, |list: ContactList| {
                Ok(render::contact_list(&list.contacts))
            })
        }
        ContactCommand::Show { alias } => show(ctx, alias),
        ContactCommand::Verify {
            alias,
            safety_number,
        } => verify(ctx, alias, safety_number.as_deref()),
        ContactCommand::Trust { alias } => {
            // Only a changed key can be accepted: anything else is said, not "accepted".
            let mut rpc = ctx.connect()?;
            let details: ContactDetails = decode(
                methods::CONTACTS_GET,
                rpc.call(methods::CONTACTS_GET, &contact_ref(alias))?,
            )?;
            if details.contact.trust != api::types::Trust::KeyChanged {
                if ctx.out.is_json() {
                    // The contact as it stands: nothing was changed.
                    return ctx.out.json(&details.contact);
                }
                let name = render::clean_line(&details.contact.alias);
                return ctx.out.text(&format!(
                    "{name}'s key has not changed: there is no new key to accept ({name} is {})",
                    render::trust(details.contact.trust)
                ));
            }
            ctx.call_and_show(methods::CONTACTS_TRUST, &contact_ref(alias), |c: Contact| {
                let alias = render::clean_line(&c.alias);
                Ok(format!(
                    "accepted {alias}'s new key; {alias} is {} until you compare safety numbers again",
                    render::trust(c.trust)
                ))
            })
        }
        ContactCommand::Remove { alias } => ctx.call_and_show(
            methods::CONTACTS_REMOVE,
            &contact_ref(alias),
            |_: serde_json::Value| Ok(format!("removed {}", render::clean_line(alias))),
        ),
        ContactCommand::Rename { old, new } => {
            let params = RenameContact {
                contact: old.clone(),
                alias: new.clone(),
            };
            ctx.call_and_show(methods::CONTACTS_RENAME, &params, |c: Contact| {
                Ok(format!(
                    "renamed {} to {}",
                    render::clean_line(old),
                    render::clean_line(&c.alias)
                ))
            })
        }
    }
}

fn contact_ref(alias: &str) -> ContactRef {
    ContactRef {
        contact: alias.to_owned(),
    }
}

fn add(ctx: &Ctx, alias: &str, target: &str) -> anyhow::Result<()> {
    let params = AddContact {
        alias: alias.to_owned(),
        target: target.to_owned(),
    };
    ctx.call_and_show(methods::CONTACTS_ADD, &params, |c: Contact| {
        let alias = render::clean_line(&c.alias);
        ctx.out.note(&format!(
            "Compare safety numbers with `chatctl contact show {alias}`, then `chatctl contact verify {alias}`."
        ));
        Ok(format!(
            "added {alias} ({}, {})",
            render::clean_line(&c.address),
            render::trust(c.trust)
        ))
    })
}

fn show(ctx: &Ctx, alias: &str) -> anyhow::Result<()> {
    ctx.call_and_show(
        methods::CONTACTS_GET,
        &contact_ref(alias),
        |details: ContactDetails| {
            let mut text = render::contact_details(&details).map_err(anyhow::Error::msg)?;
            let payload = qr::decode_hex(&details.safety_qr)
                .context("chatd sent a safety QR payload that is not hex")?;
            let art = qr::render(&payload).context("cannot draw the safety QR code")?;
            text.push_str("\n\n");
            text.push_str(&art);
            let alias = render::clean_line(&details.contact.alias);
            text.push_str(&if details.key_change.is_some() {
                format!(
                    "\n\nCompare this NEW number, or scan the code, with {alias}; if it matches, \
                     run `chatctl contact verify {alias}` to accept the new key."
                )
            } else {
                format!(
                    "\n\nCompare the number, or scan the code, with {alias}; then run `chatctl contact verify {alias}`."
                )
            });
            Ok(text)
        },
    )
}

fn verify(ctx: &Ctx, alias: &str, safety_number: Option<&str>) -> anyhow::Result<()> {
    if let Some(given) = safety_number {
        api::input::safety_number_digits(given).map_err(Failure::usage)?;
    }
    let ask = safety_number.is_none();
    if ask && !io::stdin().is_terminal() {
        return Err(Failure::usage(
            "stdin is not a terminal, so chatctl cannot ask whether the safety numbers match: \
             pass --safety-number DIGITS",
        )
        .into());
    }
    let mut rpc = ctx.connect()?;
    if ask {
        let details: ContactDetails = decode(
            methods::CONTACTS_GET,
            rpc.call(methods::CONTACTS_GET, &contact_ref(alias))?,
        )?;
        let number = render::safety_number(&details).map_err(anyhow::Error::msg)?;
        let name = render::clean_line(&details.contact.alias);
        let indented: Vec<String> = number.lines().map(|row| format!("  {row}")).collect();
        let which = match &details.key_change {
            Some(change) => format!(
                "{name}'s key CHANGED (old {}, new {}). Safety number of the NEW key",
                render::clean_line(&change.old_address),
                render::clean_line(&change.new_address)
            ),
            None => "Safety number".to_owned(),
        };
        ctx.out.note(&format!(
            "{which} with {name}:\n\n{}\n",
            indented.join("\n")
        ));
        if !confirm(&format!("Does this match what {name} sees? [y/N] "))? {
            return Err(Failure::new(
                exit::OTHER,
                "not_verified",
                format!("{name} was not marked verified"),
            )
            .into());
        }
    }
    let params = VerifyContact {
        contact: alias.to_owned(),
        safety_number: safety_number.map(str::to_owned),
    };
    let value = rpc.call(methods::CONTACTS_VERIFY, &params)?;
    ctx.show(methods::CONTACTS_VERIFY, value, |c: Contact| {
        Ok(format!(
            "{} is now {}",
            render::clean_line(&c.alias),
            render::trust(c.trust)
        ))
    })
}

/// Asks a yes/no question on stderr and reads the answer from stdin; only `y` or `yes` is yes.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut stderr = io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(is_yes(&answer))
}

/// Whether an answer means yes.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `invite`: prints a new invite code (its expiry goes to stderr, so `$(chatctl invite)` is
/// just the code).
pub(super) fn invite(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.call_and_show(methods::INVITES_CREATE, &Empty {}, |invite: Invite| {
        ctx.out.note(&format!(
            "One use; expires {} UTC.",
            render::time(invite.expires_at_ms)
        ));
        Ok(render::clean_line(&invite.code).into_owned())
    })
}

/// `accept`: accepts an invite code.
pub(super) fn accept(ctx: &Ctx, code: &str, alias: Option<&str>) -> anyhow::Result<()> {
    let params = AcceptInvite {
        code: code.to_owned(),
        alias: alias.map(str::to_owned),
    };
    ctx.call_and_show(methods::INVITES_ACCEPT, &params, |c: Contact| {
        Ok(format!(
            "added {} ({}, {})",
            render::clean_line(&c.alias),
            render::clean_line(&c.address),
            render::trust(c.trust)
        ))
    })
}

#[cfg(test)]
mod tests;

/// `chatctl block` and `chatctl unblock`.
pub(super) fn block(ctx: &Ctx, alias: &str, blocked: bool) -> anyhow::Result<()> {
    let method = if blocked {
        methods::CONTACTS_BLOCK
    } else {
        methods::CONTACTS_UNBLOCK
    };
    ctx.call_and_show(method, &contact_ref(alias), |c: Contact| {
        let alias = render::clean_line(&c.alias);
        Ok(if c.blocked {
            format!("blocked {alias}: its messages are dropped, and it is not told")
        } else {
            format!("unblocked {alias}")
        })
    })
}
