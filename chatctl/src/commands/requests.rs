//! The message request commands: `requests` (list), `requests accept`, `requests decline`,
//! `requests block`; and `blocked`, which lists blocked contacts and requests together.

use api::methods;
use api::types::{
    AcceptRequest, Contact, ContactList, ContactRef, Empty, ListRequests, RequestList,
};
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::cli::RequestsCommand;
use crate::render;

/// `requests [list|accept|decline|block]`.
pub(super) fn run(ctx: &Ctx, command: Option<&RequestsCommand>) -> anyhow::Result<()> {
    match command {
        None | Some(RequestsCommand::List) => ctx.call_and_show(
            methods::REQUESTS_LIST,
            &ListRequests { blocked: false },
            |list: RequestList| Ok(render::requests(&list.requests)),
        ),
        Some(RequestsCommand::Accept { name, alias }) => {
            let params = AcceptRequest {
                contact: name.clone(),
                alias: alias.clone(),
            };
            ctx.call_and_show(methods::REQUESTS_ACCEPT, &params, |c: Contact| {
                let alias = render::clean_line(&c.alias);
                Ok(format!(
                    "accepted {alias}: it is a contact now (`chatctl send {alias} ...`), and \
                     knows who you are"
                ))
            })
        }
        Some(RequestsCommand::Decline { name }) => {
            let params = ContactRef {
                contact: name.clone(),
            };
            ctx.call_and_show(methods::REQUESTS_DECLINE, &params, |_: Empty| {
                Ok(format!(
                    "declined {}: it and its messages are forgotten (if it writes again, that \
                     is a new request; `chatctl requests block` stops it)",
                    render::clean_line(name)
                ))
            })
        }
        Some(RequestsCommand::Block { name }) => {
            let params = ContactRef {
                contact: name.clone(),
            };
            ctx.call_and_show(methods::REQUESTS_BLOCK, &params, |c: Contact| {
                Ok(format!(
                    "blocked {}: what it sends is dropped, and it is not told",
                    render::clean_line(&c.alias)
                ))
            })
        }
    }
}

/// What `blocked --json` prints: the blocked contacts and the blocked requests.
#[derive(Debug, Serialize, Deserialize)]
struct Blocked {
    contacts: Vec<Contact>,
    requests: Vec<Contact>,
}

/// `chatctl blocked`.
pub(super) fn blocked(ctx: &Ctx) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let contacts: ContactList = super::decode(
        methods::CONTACTS_LIST,
        client.call(methods::CONTACTS_LIST, &Empty {})?,
    )?;
    let requests: RequestList = super::decode(
        methods::REQUESTS_LIST,
        client.call(methods::REQUESTS_LIST, &ListRequests { blocked: true })?,
    )?;
    let blocked = Blocked {
        contacts: contacts
            .contacts
            .into_iter()
            .filter(|c| c.blocked)
            .collect(),
        requests: requests.requests.into_iter().map(|r| r.contact).collect(),
    };
    ctx.show(
        methods::CONTACTS_LIST,
        serde_json::to_value(&blocked)?,
        |b: Blocked| {
            let mut text = if b.contacts.is_empty() {
                "(no blocked contacts)".to_owned()
            } else {
                render::contact_list(&b.contacts)
            };
            if !b.requests.is_empty() {
                text.push_str("\nblocked message requests:\n");
                text.push_str(&render::contact_list(&b.requests));
            }
            Ok(text)
        },
    )
}
