//! Entry points for the fuzz targets (`fuzz/`, `fuzz/README.md`): narrow wrappers around the
//! decoders of this crate that read what another party wrote (invite codes, the addresses and
//! handles in RPC params, the params themselves, and the RPC connection's line reader and
//! dispatcher). Not an API: hidden from the docs, only the fuzz targets call it.

use api::methods as m;
use api::types::*;
pub use jsonrpsee::Methods;
use jsonrpsee::core::server::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params};

use crate::core::contacts;
use crate::methods::parse;

#[cfg(unix)]
pub use crate::rpc::fuzzing::rpc_connection;

/// Parses an invite code as `invites.accept` does (`protocol::invite`, after trimming white
/// space); on success, the code written out again.
pub fn invite_code(text: &str) -> Option<String> {
    protocol::invite::Invite::parse_code(text.trim())
        .ok()
        .map(|code| code.to_code())
}

/// Parses an address as `contacts.add` does: the identity key it names.
pub fn address(text: &str) -> Option<[u8; 32]> {
    contacts::parse_address(text).ok()
}

/// Parses a handle as `contacts.add` and `account.register_handle` do (with or without `@`).
pub fn handle(text: &str) -> Option<String> {
    contacts::parse_handle(text)
        .ok()
        .map(|handle| handle.as_str().to_owned())
}

/// Parses `params` (the raw JSON of a request's `params`, if any) into the type the daemon
/// parses them into for `method`, then runs the text fields that name an address, a handle or
/// an invite through the daemon's own parsers, as the method would. `Err` for an unknown
/// method or params the method refuses.
pub fn params(method: &str, params: Option<&str>) -> Result<(), ErrorObjectOwned> {
    let params = Params::new(params);
    match method {
        m::DAEMON_STATUS
        | m::ACCOUNT_LOCK
        | m::ACCOUNT_INFO
        | m::CONTACTS_LIST
        | m::INVITES_CREATE
        | m::CONVERSATIONS_LIST
        | m::RPC_DISCOVER => parse::<Empty>(&params).map(drop),
        m::ACCOUNT_CREATE => parse::<CreateAccount>(&params).map(drop),
        m::ACCOUNT_UNLOCK => parse::<Unlock>(&params).map(drop),
        m::ACCOUNT_MOVE_RELAY => {
            let p: MoveRelay = parse(&params)?;
            let _ = crate::relay_link::normalize_url(&p.relay);
            Ok(())
        }
        m::ACCOUNT_REGISTER_HANDLE | m::ACCOUNT_RELEASE_HANDLE => {
            let p: RegisterHandle = parse(&params)?;
            handle(&p.handle);
            Ok(())
        }
        m::CONTACTS_ADD => {
            let p: AddContact = parse(&params)?;
            address(&p.target);
            handle(&p.target);
            Ok(())
        }
        m::ACCOUNT_SET_STRANGERS => parse::<SetStrangers>(&params).map(drop),
        m::CONTACTS_GET
        | m::CONTACTS_REMOVE
        | m::CONTACTS_TRUST
        | m::CONTACTS_BLOCK
        | m::CONTACTS_UNBLOCK => {
            let p: ContactRef = parse(&params)?;
            address(&p.contact);
            Ok(())
        }
        m::CONTACTS_VERIFY => {
            let p: VerifyContact = parse(&params)?;
            address(&p.contact);
            Ok(())
        }
        m::INVITES_ACCEPT => {
            let p: AcceptInvite = parse(&params)?;
            invite_code(&p.code);
            Ok(())
        }
        m::MESSAGES_SEND => {
            let p: SendMessage = parse(&params)?;
            address(&p.to);
            Ok(())
        }
        m::MESSAGES_HISTORY => {
            let p: History = parse(&params)?;
            address(&p.conversation);
            Ok(())
        }
        m::MESSAGES_MARK_READ => {
            let p: MarkRead = parse(&params)?;
            if let Some(id) = &p.up_to {
                parse_message_id(id);
            }
            Ok(())
        }
        m::EVENTS_SUBSCRIBE => parse::<Subscribe>(&params).map(drop),
        m::EVENTS_UNSUBSCRIBE => parse::<Unsubscribe>(&params).map(drop),
        _ => Err(ErrorObjectOwned::owned(
            jsonrpsee::types::error::METHOD_NOT_FOUND_CODE,
            "Method not found",
            None::<()>,
        )),
    }
}

/// Every documented method, each answering with its own name once [`params`] accepted its
/// params; `events.subscribe` is a subscription that sends one notification and ends. What the
/// RPC connection fuzz target serves: the daemon's transport and params parsing, without a core.
pub fn params_methods() -> Methods {
    let mut module = RpcModule::new(());
    for doc in m::ALL {
        let name = doc.name;
        if name == m::EVENTS_SUBSCRIBE || name == m::EVENTS_UNSUBSCRIBE {
            continue;
        }
        let registered = module.register_async_method(name, move |p, _, _| async move {
            params(name, p.as_str()).map(|()| name)
        });
        if let Err(e) = registered {
            tracing::error!(error = %e, "registering a method");
        }
    }
    let registered = module.register_subscription(
        m::EVENTS_SUBSCRIBE,
        api::events::NOTIFICATION,
        m::EVENTS_UNSUBSCRIBE,
        |p, pending, _, _| async move {
            if let Err(e) = params(m::EVENTS_SUBSCRIBE, p.as_str()) {
                pending.reject(e).await;
                return;
            }
            let Ok(sink) = pending.accept().await else {
                return;
            };
            if let Ok(raw) = serde_json::value::to_raw_value("event") {
                let _ = sink.send(jsonrpsee::SubscriptionMessage::from(raw)).await;
            }
        },
    );
    if let Err(e) = registered {
        tracing::error!(error = %e, "registering the subscription");
    }
    module.into()
}
