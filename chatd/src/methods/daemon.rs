//! `daemon.status`, `daemon.stop` and `rpc.discover`.

use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use jsonrpsee::types::ErrorObjectOwned;

use super::*;
use crate::core::Lock;
use crate::store::Vault;

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::DAEMON_STATUS, |params, ctx| {
        let _: Empty = parse(&params)?;
        Ok::<_, ErrorObjectOwned>(status(&ctx).await)
    });
    method!(module, m::DAEMON_STOP, |params, ctx| {
        let _: Empty = parse(&params)?;
        tracing::info!("stopping at a client's request (daemon.stop)");
        ctx.stop.notify_one();
        Ok::<_, ErrorObjectOwned>(Stopping {
            pid: std::process::id(),
        })
    });
    method!(module, m::RPC_DISCOVER, |params, _ctx| {
        let _: Empty = parse(&params)?;
        Ok::<_, ErrorObjectOwned>(api::openrpc::document(env!("CARGO_PKG_VERSION")))
    });
}

pub(super) async fn status(ctx: &Context) -> DaemonStatus {
    let core = ctx
        .core
        .call(|s, _| {
            let state = s.lock_state();
            let connection = s.connection;
            let last_error = s.last_relay_error.clone();
            let (address, outbox, relay, others) = match &s.lock {
                Lock::Unlocked(u) => (
                    Some(u.address()),
                    Some(u.outbox.len() as u64),
                    Some(u.account.relay_url.clone()),
                    u.pool
                        .states()
                        .into_iter()
                        .map(|(url, connection)| RelayLinkState { url, connection })
                        .collect(),
                ),
                _ => (None, None, None, Vec::new()),
            };
            Ok((
                state, connection, address, outbox, relay, others, last_error,
            ))
        })
        .await;
    let (state, connection, address, outbox, relay, other_relays, last_relay_error) = core
        .unwrap_or((
            LockState::Locked,
            ConnectionState::Offline,
            None,
            None,
            None,
            Vec::new(),
            None,
        ));
    let relay_url = relay.unwrap_or_else(|| ctx.default_relay.clone());
    let local_relay = ctx.local_relay.as_ref().map(|local| local.status());
    let local_url = local_relay.as_ref().map(|local| local.url.as_str());
    let relay_kind = if Some(relay_url.as_str()) == local_url {
        RelayKind::Local
    } else if Some(&relay_url) == ctx.hosted_relay.as_ref() {
        RelayKind::Hosted
    } else {
        RelayKind::Remote
    };
    let hosted_relay = match &local_relay {
        Some(local) if local.hosted_here => Some(local.url.clone()),
        _ => ctx.hosted_relay.clone(),
    };
    DaemonStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api_version: api::API_VERSION.to_owned(),
        pid: std::process::id(),
        uptime_ms: u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        state,
        ephemeral: ctx.ephemeral,
        relay_url: Some(relay_url),
        connection,
        address,
        outbox,
        hosted_relay,
        other_relays,
        passphrase_protected: match state {
            LockState::NoAccount => None,
            _ => Vault::is_protected(&ctx.kv).ok(),
        },
        store_error: ctx.kv.health(),
        last_relay_error,
        log_file: ctx.log_file.as_ref().map(|p| p.display().to_string()),
        relay_kind: Some(relay_kind),
        local_relay,
    }
}
