//! `outbox.list`, `outbox.cancel`, `outbox.retry` and `messages.resend`: the user's hand on
//! messages not yet sent, or that failed (the rules are `core::messaging::queue`'s).

use api::methods as m;
use api::types::*;
use jsonrpsee::core::server::RpcModule;

use super::*;
use crate::core::messaging::queue;

/// Registers the methods of this group.
pub(super) fn register(module: &mut RpcModule<Context>) {
    method!(module, m::OUTBOX_LIST, |params, ctx| {
        let _: Empty = parse(&params)?;
        out(ctx.core.call(|s, _| queue::list(s)).await)
    });
    method!(module, m::OUTBOX_CANCEL, |params, ctx| {
        let p: MessageRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| queue::cancel(s, t, &p.message_id))
            .await)
    });
    method!(module, m::OUTBOX_RETRY, |params, ctx| {
        let p: RetryOutbox = parse(&params)?;
        out(ctx
            .core
            .call(move |s, _| queue::retry(s, p.message_id.as_deref()))
            .await)
    });
    method!(module, m::MESSAGES_RESEND, |params, ctx| {
        let p: MessageRef = parse(&params)?;
        out(ctx
            .core
            .call(move |s, t| queue::resend(s, t, &p.message_id))
            .await)
    });
}
