//! The RPC methods: one registration per method in `api::methods::ALL`, each parsing its
//! params into the `api` type, running in the core (or, for the slow parts such as Argon2id
//! and relay lookups, around it), and mapping domain errors to their documented codes. One
//! submodule per API group: [`daemon`], [`account`], [`handles`], [`contacts`], [`messages`]
//! and [`events`]; this module holds what they share (the context, params parsing, error
//! mapping, the relay requester).

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::ErrorCode;
use jsonrpsee::core::server::{Methods, RpcModule};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use protocol::frames::ServerFrame;
use serde::de::DeserializeOwned;

use crate::core::CoreHandle;
use crate::error::{ApiError, ApiResult};
use crate::events::EventBus;
use crate::relay_link::Requester;
use crate::store::{KdfParams, Kv, StoreError};

/// How long relay lookups made on behalf of a method may take.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The relay the daemon hosts for `--host-relay`, if any.
    pub hosted_relay: Option<String>,
    /// The user's local relay, when no relay is configured.
    pub local_relay: Option<Arc<crate::local_relay::LocalRelay>>,
    /// The relay new accounts use by default.
    pub default_relay: String,
    /// Argon2id parameters for new accounts.
    pub kdf: KdfParams,
    /// A handle-bound contact is checked against the relay before a send at most this often.
    pub handle_recheck_ms: u64,
    /// The file the daemon logs to, if any (`daemon.status`).
    pub log_file: Option<std::path::PathBuf>,
    /// Fired by `daemon.stop`: the daemon shuts down.
    pub stop: Arc<tokio::sync::Notify>,
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

pub(super) type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub(super) fn out<T>(result: ApiResult<T>) -> RpcResult<T> {
    result.map_err(Into::into)
}

pub(super) fn store_error(e: StoreError) -> ApiError {
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

mod account;
mod account_admin;
mod contacts;
mod daemon;
mod events;
mod handles;
mod messages;
mod outbox;

fn register(module: &mut RpcModule<Context>) {
    daemon::register(module);
    account::register(module);
    handles::register(module);
    contacts::register(module);
    messages::register(module);
    events::register(module);
    account_admin::register(module);
    outbox::register(module);
}

/// The relay link's requester, or `relay_unreachable` while there is none.
pub(super) fn link_requester(u: &crate::core::unlocked::Unlocked) -> ApiResult<Requester> {
    u.link
        .as_ref()
        .map(|l| l.requester())
        .ok_or_else(|| ApiError::new(ErrorCode::RelayUnreachable, "no relay connection"))
}

pub(super) fn unexpected(frame: &ServerFrame) -> ApiError {
    ApiError::new(
        ErrorCode::RelayError,
        format!("unexpected answer {}", frame.name()),
    )
}

#[cfg(test)]
mod tests;
