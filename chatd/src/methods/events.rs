//! `events.subscribe` and `events.unsubscribe`: catch-up from the retained log, then live
//! events, with a gap notice when a subscriber falls behind.

use std::sync::Arc;

use api::events::Event;
use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;
use jsonrpsee::types::Params;
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage};

use super::*;
use crate::core::{Lock, messaging};
use crate::error::ApiResult;

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
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

pub(super) async fn subscribe(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: Arc<Context>,
) {
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
pub(super) async fn catch_up(ctx: &Context, since: u64) -> ApiResult<Vec<Event>> {
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

pub(super) async fn send_event(sink: &jsonrpsee::SubscriptionSink, event: &Event) -> bool {
    match serde_json::value::to_raw_value(event) {
        Ok(raw) => sink.send(SubscriptionMessage::from(raw)).await.is_ok(),
        Err(_) => true,
    }
}
