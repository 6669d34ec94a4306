//! The RPC methods: one registration per method in `api::methods::ALL`, each parsing its
//! params into the `api` type, running in the core (or, for the slow parts such as Argon2id
//! and relay lookups, around it), and mapping domain errors to their documented codes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::ErrorCode;
use api::events::Event;
use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::{Methods, RpcModule};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage};
use protocol::frames::{ClientFrame, HandleClaim, HandleRelease, ServerFrame};
use serde::de::DeserializeOwned;

use crate::core::{CoreHandle, Lock, account, contacts, messaging};
use crate::error::{ApiError, ApiResult};
use crate::events::EventBus;
use crate::relay_link::Requester;
use crate::store::{KdfParams, Kv, Store, StoreError, Vault};

/// How long relay lookups made on behalf of a method may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What every method can reach.
#[derive(Debug)]
pub struct Context {
    /// The core.
    pub core: CoreHandle,
    /// The event bus.
    pub bus: Arc<EventBus>,
    /// The raw store (for the vault, which is read outside the core).
    pub kv: Kv,
    /// When the daemon started.
    pub started: Instant,
    /// Whether nothing touches the disk.
    pub ephemeral: bool,
    /// The relay the daemon hosts, if any.
    pub hosted_relay: Option<String>,
    /// The relay new accounts use by default.
    pub default_relay: String,
    /// Argon2id parameters for new accounts.
    pub kdf: KdfParams,
    /// A handle-bound contact is checked against the relay before a send at most this often.
    pub handle_recheck_ms: u64,
}

pub(crate) fn parse<T: DeserializeOwned>(params: &Params<'_>) -> Result<T, ErrorObjectOwned> {
    let text = params.as_str().unwrap_or("{}");
    let text = if text.trim() == "null" { "{}" } else { text };
    if !text.trim_start().starts_with('{') {
        return Err(ErrorObjectOwned::owned(
            api::error::INVALID_PARAMS,
            "Invalid params: params must be an object (by name)",
            None::<()>,
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        ErrorObjectOwned::owned(
            api::error::INVALID_PARAMS,
            format!("Invalid params: {e}"),
            None::<()>,
        )
    })
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// The most messages one `messages.history` page holds.
const HISTORY_MAX_LIMIT: u32 = 500;

/// `messages.history`'s `limit` must be 1 to [`HISTORY_MAX_LIMIT`], as documented; anything
/// else is invalid params rather than quietly clamped.
fn check_history_limit(limit: Option<u32>) -> RpcResult<()> {
    match limit {
        Some(limit) if !(1..=HISTORY_MAX_LIMIT).contains(&limit) => Err(ErrorObjectOwned::owned(
            api::error::INVALID_PARAMS,
            format!("Invalid params: limit must be 1 to {HISTORY_MAX_LIMIT}, not {limit}"),
            None::<()>,
        )),
        _ => Ok(()),
    }
}

fn out<T>(result: ApiResult<T>) -> RpcResult<T> {
    result.map_err(Into::into)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::WrongPassphrase => {
            ApiError::new(ErrorCode::WrongPassphrase, "wrong passphrase")
        }
        StoreError::PassphraseRequired => ApiError::new(
            ErrorCode::WrongPassphrase,
            "this account is protected by a passphrase; give it",
        ),
        StoreError::NoVault => ApiError::no_account(),
        StoreError::VaultExists => ApiError::new(
            ErrorCode::AccountExists,
            "an account already exists in this data directory",
        ),
        other => ApiError::store(other),
    }
}

/// Builds every method.
pub fn methods(context: Context) -> Methods {
    let mut module = RpcModule::new(context);
    register(&mut module);
    module.into()
}

macro_rules! method {
    ($module:expr, $name:expr, |$params:ident, $ctx:ident| $body:expr) => {
        $module
            .register_async_method($name, |params, context, _| async move {
                let $params = params;
                let $ctx = context;
                $body
            })
            .map_err(|e| tracing::error!(error = %e, "registering a method"))
            .ok();
    };
}

fn register(module: &mut RpcModule<Context>) {
    method!(module, m::DAEMON_STATUS, |params, ctx| {
        let _: Empty = parse(&params)?;
        Ok::<_, ErrorObjectOwned>(status(&ctx).await)
    });
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
    method!(module, m::ACCOUNT_REGISTER_HANDLE, |params, ctx| {
        let p: RegisterHandle = parse(&params)?;
        out(register_handle(&ctx, p).await)
    });
    method!(module, m::ACCOUNT_RELEASE_HANDLE, |params, ctx| {
        let p: RegisterHandle = parse(&params)?;
        out(release_handle(&ctx, p).await.map(|()| Empty {}))
    });
    method!(module, m::CONTACTS_ADD, |params, ctx| {
        let p: AddContact = parse(&params)?;
        out(add_contact(&ctx, p).await)
    });
    method!(module, m::CONTACTS_LIST, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx
            .core
            .call(|s, _| {
                let u = s.unlocked()?;
                let mut contacts: Vec<Contact> = u.contacts.values().map(contacts::view).collect();
                contacts.sort_by(|a, b| a.alias.cmp(&b.alias));
                Ok(ContactList { contacts })
            })
            .await)
    });
    method!(module, m::CONTACTS_GET, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, _| contacts::details(s.unlocked()?, &p.contact))
            .await)
    });
    method!(module, m::CONTACTS_REMOVE, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::remove(s, t, &p.contact))
            .await
            .map(|()| Empty {}))
    });
    method!(module, m::CONTACTS_VERIFY, |params, ctx| {
        let p: VerifyContact = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::verify(s, t, &p.contact, p.safety_number.as_deref()))
            .await)
    });
    method!(module, m::CONTACTS_TRUST, |params, ctx| {
        let p: ContactRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::trust(s, t, &p.contact))
            .await)
    });
    method!(module, m::INVITES_CREATE, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx.core.call(contacts::create_invite).await)
    });
    method!(module, m::INVITES_ACCEPT, |params, ctx| {
        let p: AcceptInvite = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| contacts::accept_invite(s, t, &p.code, p.alias.as_deref()))
            .await)
    });
    method!(module, m::MESSAGES_SEND, |params, ctx| {
        let p: SendMessage = parse(&params)?;
        out(send(&ctx, p).await)
    });
    method!(module, m::MESSAGES_HISTORY, |params, ctx| {
        let p: History = parse(&params)?;
        check_history_limit(p.limit)?;
        out(ctx
            .core
            .call(move |s, _| {
                messaging::history::history(
                    s.unlocked()?,
                    &p.conversation,
                    p.limit,
                    p.before.as_deref(),
                )
            })
            .await)
    });
    method!(module, m::MESSAGES_MARK_READ, |params, ctx| {
        let p: MarkRead = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| {
                messaging::history::mark_read(s, t, &p.conversation, p.up_to.as_deref())
            })
            .await)
    });
    method!(module, m::CONVERSATIONS_LIST, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx
            .core
            .call(|s, _| messaging::history::conversations(s.unlocked()?))
            .await)
    });
    method!(module, m::RPC_DISCOVER, |params, _ctx| {
        let _: Empty = parse(&params)?;
        Ok::<_, ErrorObjectOwned>(api::openrpc::document(env!("CARGO_PKG_VERSION")))
    });
    let registered = module.register_subscription(
        m::EVENTS_SUBSCRIBE,
        api::events::NOTIFICATION,
        m::EVENTS_UNSUBSCRIBE,
        |params, pending, ctx, _| async move { subscribe(params, pending, ctx).await },
    );
    if let Err(e) = registered {
        tracing::error!(error = %e, "registering the subscription");
    }
}

async fn status(ctx: &Context) -> DaemonStatus {
    let core = ctx
        .core
        .call(|s, _| {
            let state = s.lock_state();
            let connection = s.connection;
            let (address, outbox, relay) = match &s.lock {
                Lock::Unlocked(u) => (
                    Some(u.address()),
                    Some(u.outbox.len() as u64),
                    Some(u.account.relay_url.clone()),
                ),
                _ => (None, None, None),
            };
            Ok((state, connection, address, outbox, relay))
        })
        .await;
    let (state, connection, address, outbox, relay) = core.unwrap_or((
        LockState::Locked,
        ConnectionState::Offline,
        None,
        None,
        None,
    ));
    DaemonStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: api::API_VERSION.to_owned(),
        pid: std::process::id(),
        uptime_ms: u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        state,
        ephemeral: ctx.ephemeral,
        relay_url: relay.or_else(|| Some(ctx.default_relay.clone())),
        connection,
        address,
        outbox,
        hosted_relay: ctx.hosted_relay.clone(),
        passphrase_protected: match state {
            LockState::NoAccount => None,
            _ => Vault::is_protected(&ctx.kv).ok(),
        },
        store_error: ctx.kv.health(),
    }
}

async fn create(ctx: &Context, p: CreateAccount) -> ApiResult<AccountInfo> {
    let name = account::check_name(&p.name)?;
    let relay = match &p.relay {
        Some(url) => crate::relay_link::normalize_url(url)?,
        None => ctx.default_relay.clone(),
    };
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
            Ok(info)
        })
        .await
}

async fn unlock(ctx: &Context, p: Unlock) -> ApiResult<AccountInfo> {
    account::unlock(
        &ctx.core,
        &ctx.kv,
        p.passphrase.map(zeroize::Zeroizing::new),
    )
    .await
}

/// The relay link's requester, or `relay_unreachable` while there is none.
fn link_requester(u: &crate::core::unlocked::Unlocked) -> ApiResult<Requester> {
    u.link
        .as_ref()
        .map(|l| l.requester())
        .ok_or_else(|| ApiError::new(ErrorCode::RelayUnreachable, "no relay connection"))
}

fn unexpected(frame: &ServerFrame) -> ApiError {
    ApiError::new(
        ErrorCode::RelayError,
        format!("unexpected answer {}", frame.name()),
    )
}

async fn requester(ctx: &Context) -> ApiResult<Requester> {
    ctx.core.call(|s, _| link_requester(s.unlocked()?)).await
}

/// Looks a handle up on the relay and verifies the answer.
async fn lookup_handle(ctx: &Context, text: &str) -> ApiResult<Option<[u8; 32]>> {
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
async fn save_handles(
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

async fn register_handle(ctx: &Context, p: RegisterHandle) -> ApiResult<HandleRegistered> {
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

async fn release_handle(ctx: &Context, p: RegisterHandle) -> ApiResult<()> {
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

async fn add_contact(ctx: &Context, p: AddContact) -> ApiResult<Contact> {
    crate::core::unlocked::Unlocked::check_alias(&p.alias)?;
    let target = p.target.trim().to_owned();
    let (identity, handle) = if target.starts_with('@') {
        let identity = lookup_handle(ctx, &target)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("the handle {target} on the relay")))?;
        (identity, Some(target.trim_start_matches('@').to_owned()))
    } else {
        (contacts::parse_address(&target)?, None)
    };
    ctx.core
        .call(move |s, t| {
            let id = contacts::add(s, t, &p.alias, identity, handle, None, true)?;
            let u = s.unlocked()?;
            Ok(contacts::view(u.contact(&id)?))
        })
        .await
}

/// What a send target resolved to.
enum Resolved {
    /// A known contact needing no handle re-check: the message is already stored.
    Sent(SentMessage),
    /// A known contact found by this handle, whose re-check is due.
    Recheck([u8; 16], String),
    /// No contact by that name.
    Unknown,
}

/// The conversation with `identity`, adding it as a contact (named from `alias_base`) if it is
/// not one yet.
async fn contact_for(
    ctx: &Context,
    identity: [u8; 32],
    alias_base: String,
    handle: Option<String>,
) -> ApiResult<[u8; 16]> {
    ctx.core
        .call(move |s, t| {
            let u = s.unlocked()?;
            if let Some(id) = u.by_identity.get(&identity) {
                return Ok(*id);
            }
            let alias = u.free_alias(&alias_base);
            contacts::add(s, t, &alias, identity, handle, None, true)
        })
        .await
}

async fn send(ctx: &Context, p: SendMessage) -> ApiResult<SentMessage> {
    let target = p.to.trim().to_owned();
    let lookup = target.clone();
    let recheck_ms = ctx.handle_recheck_ms;
    // The common case, a known contact whose handle needs no re-check, is one core job.
    let text = Arc::new(p.text);
    let first_text = text.clone();
    let resolved = ctx
        .core
        .call(move |s, t| {
            let u = s.unlocked()?;
            let Ok(id) = u.find_contact(&lookup) else {
                return Ok(Resolved::Unknown);
            };
            let c = u.contact(&id)?;
            match &c.handle {
                Some(handle) if c.handle_checked_ms + recheck_ms <= u.clock.now_ms() => {
                    Ok(Resolved::Recheck(id, handle.clone()))
                }
                _ => messaging::outbox::send_text(s, t, id, &first_text).map(Resolved::Sent),
            }
        })
        .await?;
    let conversation = match resolved {
        Resolved::Sent(sent) => return Ok(sent),
        Resolved::Recheck(id, handle) => {
            // If the relay now names another key for the handle, that is a key change, and
            // the send is refused until the user trusts it.
            match lookup_handle(ctx, &handle).await {
                Ok(found) => {
                    ctx.core
                        .call(move |s, t| contacts::apply_handle_check(s, t, id, found))
                        .await?;
                }
                Err(e) => {
                    tracing::info!(error = %e, "could not re-check a handle; sending anyway")
                }
            }
            id
        }
        Resolved::Unknown if target.starts_with('@') => {
            let identity = lookup_handle(ctx, &target).await?.ok_or_else(|| {
                ApiError::not_found(format!("{target} (no contact or handle by that name)"))
            })?;
            let handle = target.trim_start_matches('@').to_owned();
            contact_for(ctx, identity, handle.clone(), Some(handle)).await?
        }
        Resolved::Unknown => {
            // Not a contact: an address is accepted as it is; anything else that does not look
            // like one is an unknown contact.
            if !target.to_ascii_lowercase().starts_with("chat1") {
                return Err(ApiError::not_found(format!(
                    "contact {target:?} (no contact by that name; use @handle or an address)"
                )));
            }
            let identity = contacts::parse_address(&target)?;
            contact_for(ctx, identity, target.chars().take(13).collect(), None).await?
        }
    };
    ctx.core
        .call(move |s, t| messaging::outbox::send_text(s, t, conversation, &text))
        .await
}

async fn subscribe(params: Params<'static>, pending: PendingSubscriptionSink, ctx: Arc<Context>) {
    let p: Subscribe = match parse(&params) {
        Ok(p) => p,
        Err(e) => {
            pending.reject(e).await;
            return;
        }
    };
    let (mut live, published) = ctx.bus.subscribe();
    let Ok(sink) = pending.accept().await else {
        return;
    };
    // `last` filters live events (those at or below it were sent already); `resume` is where
    // a catch-up after falling behind starts: the last event sent, or, before any, the newest
    // published before this subscription (or `since`), never cursor 0.
    let mut last = 0u64;
    let mut resume = published;
    if let Some(since) = p.since {
        resume = since;
        last = since;
        match catch_up(&ctx, since).await {
            Ok(events) => {
                for event in events {
                    if !send_event(&sink, &event).await {
                        return;
                    }
                    last = last.max(event.cursor);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not replay retained events"),
        }
    }
    loop {
        tokio::select! {
            () = sink.closed() => return,
            event = live.recv() => match event {
                Ok(event) => {
                    if event.cursor > last {
                        last = event.cursor;
                        if !send_event(&sink, &event).await {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    // Fell behind the live buffer: catch up from retention, from the last
                    // event sent, then go on.
                    let from = resume.max(last);
                    tracing::info!(missed, from, "an event subscriber fell behind; catching up");
                    match catch_up(&ctx, from).await {
                        Ok(events) => {
                            for event in events {
                                if event.cursor <= last {
                                    continue;
                                }
                                if !send_event(&sink, &event).await {
                                    return;
                                }
                                last = event.cursor;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not catch a subscriber up"),
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Retained events after `since`: message events from the store (if unlocked) and transient
/// ones from memory, in cursor order.
async fn catch_up(ctx: &Context, since: u64) -> ApiResult<Vec<Event>> {
    let mut events = ctx
        .core
        .call(move |s, _| match &s.lock {
            Lock::Unlocked(u) => messaging::event_log::retained_events(u, since),
            _ => Ok(Vec::new()),
        })
        .await?;
    events.extend(ctx.bus.transient_since(since));
    events.sort_by_key(|e| e.cursor);
    events.dedup_by_key(|e| e.cursor);
    Ok(events)
}

async fn send_event(sink: &jsonrpsee::SubscriptionSink, event: &Event) -> bool {
    match serde_json::value::to_raw_value(event) {
        Ok(raw) => sink.send(SubscriptionMessage::from(raw)).await.is_ok(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use api::events::EventKind;
    use serde_json::{Map, Value, json};

    use super::*;

    /// The methods over an in-memory store and `bus`, with the core running on this runtime.
    fn running_methods(bus: Arc<EventBus>) -> Methods {
        let kv = Kv::memory();
        let config = crate::core::CoreConfig {
            default_relay: "ws://127.0.0.1:1/v1".into(),
            kdf: KdfParams::INSECURE_FOR_TESTS,
            relay_ca_pem: None,
            ephemeral: true,
            clock: crate::clock::system(),
        };
        let (core, task) = crate::core::start(kv.clone(), config, bus.clone())
            .unwrap_or_else(|e| panic!("core: {e}"));
        tokio::spawn(task.run(std::future::pending()));
        methods(Context {
            core,
            bus,
            kv,
            started: Instant::now(),
            ephemeral: true,
            hosted_relay: None,
            default_relay: "ws://127.0.0.1:1/v1".into(),
            kdf: KdfParams::INSECURE_FOR_TESTS,
            handle_recheck_ms: 0,
        })
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// `limit` is documented as 1 to 500: 0 and 501 are invalid params (-32602), not clamped
    /// into a page. (The account is not even looked at: the params are wrong first.)
    #[tokio::test]
    async fn history_limits_outside_1_to_500_are_invalid_params() {
        let methods = running_methods(Arc::new(EventBus::new()));
        for limit in [0, 501, u32::MAX] {
            let params = object(json!({ "conversation": "bob", "limit": limit }));
            let result = methods.call::<_, Value>(m::MESSAGES_HISTORY, params).await;
            match result {
                Err(jsonrpsee::MethodsError::JsonRpc(e))
                    if e.code() == api::error::INVALID_PARAMS =>
                {
                    assert!(e.message().contains("1 to 500"), "{}", e.message());
                }
                other => panic!("limit {limit}: {other:?}"),
            }
        }
        for limit in [1, 500] {
            let params = object(json!({ "conversation": "bob", "limit": limit }));
            let result = methods.call::<_, Value>(m::MESSAGES_HISTORY, params).await;
            match result {
                // No account yet: the params were accepted and the state refused.
                Err(jsonrpsee::MethodsError::JsonRpc(e)) => {
                    assert_eq!(
                        e.code(),
                        ErrorCode::NoAccount.code(),
                        "limit {limit}: {e:?}"
                    );
                }
                other => panic!("limit {limit}: {other:?}"),
            }
        }
    }

    /// A subscriber without `since` that falls behind the live buffer (here 4 events, 4,096 in
    /// the daemon) catches up from where it was: it gets every event published after it
    /// subscribed, once and in order, and none from before (the old code replayed the retained
    /// events from cursor 0).
    #[tokio::test]
    async fn a_lagging_subscriber_without_since_is_not_replayed_from_zero() {
        let bus = Arc::new(EventBus::with_live_buffer(4));
        let methods = running_methods(bus.clone());
        let publish = |kind: EventKind| {
            let event = bus.make(kind);
            bus.publish(event.clone());
            event
        };
        let before: Vec<Event> = (0..3).map(|_| publish(EventKind::Locked {})).collect();
        let mut subscription = methods
            .subscribe_unbounded(m::EVENTS_SUBSCRIBE, object(json!({})))
            .await
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        // Published without yielding, so the subscription's task falls behind.
        let after: Vec<Event> = (0..10).map(|_| publish(EventKind::Unlocked {})).collect();
        let marker = publish(EventKind::Locked {});
        let mut received = Vec::new();
        while received.last() != Some(&marker) {
            let next = tokio::time::timeout(Duration::from_secs(10), subscription.next::<Event>())
                .await
                .unwrap_or_else(|_| panic!("no event after {received:?}"));
            let (event, _) = next
                .unwrap_or_else(|| panic!("the subscription ended after {received:?}"))
                .unwrap_or_else(|e| panic!("not an event: {e}"));
            assert!(
                !before.contains(&event),
                "an event from before the subscription was replayed: {event:?}"
            );
            received.push(event);
        }
        let mut expected = after;
        expected.push(marker);
        assert_eq!(received, expected);
    }

    /// The daemon registers exactly the methods the API documents (and so `rpc.discover`
    /// describes every method there is).
    #[test]
    fn every_documented_method_is_registered_and_nothing_else() {
        let kv = Kv::memory();
        let bus = Arc::new(EventBus::new());
        let config = crate::core::CoreConfig {
            default_relay: "ws://127.0.0.1:1/v1".into(),
            kdf: KdfParams::INSECURE_FOR_TESTS,
            relay_ca_pem: None,
            ephemeral: true,
            clock: crate::clock::system(),
        };
        let (core, _task) = crate::core::start(kv.clone(), config, bus.clone())
            .unwrap_or_else(|e| panic!("core: {e}"));
        let methods = methods(Context {
            core,
            bus,
            kv,
            started: Instant::now(),
            ephemeral: true,
            hosted_relay: None,
            default_relay: "ws://127.0.0.1:1/v1".into(),
            kdf: KdfParams::INSECURE_FOR_TESTS,
            handle_recheck_ms: 0,
        });
        let mut registered: Vec<&str> = methods.method_names().collect();
        registered.sort_unstable();
        let mut documented: Vec<&str> = api::methods::ALL.iter().map(|m| m.name).collect();
        documented.sort_unstable();
        assert_eq!(registered, documented);
    }
}
