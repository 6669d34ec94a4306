//! `watch`: subscribes to events and prints each as it arrives, until interrupted or chatd
//! goes away (exit code 3).

use api::events::{Event, NOTIFICATION};
use api::methods;
use api::types::Subscribe;

use super::Ctx;
use crate::render;

/// Prints every event (after `since`, if given) until chatd closes the connection.
pub(super) fn watch(ctx: &Ctx, since: Option<u64>) -> anyhow::Result<()> {
    let mut rpc = ctx.connect()?;
    let subscription = rpc.call(methods::EVENTS_SUBSCRIBE, &Subscribe { since })?;
    loop {
        // When chatd goes away this fails with a connection error, which exits with code 3.
        let notification = rpc.client.next_notification()?;
        if notification.method != NOTIFICATION || notification.subscription != subscription {
            continue;
        }
        if ctx.out.is_json() {
            // As chatd sent it, so fields and kinds this chatctl does not know pass through.
            ctx.out.json(&notification.result)?;
            continue;
        }
        let line = match serde_json::from_value::<Event>(notification.result.clone()) {
            Ok(event) => render::event(&event),
            Err(_) => render::unknown_event(&notification.result),
        };
        ctx.out.text(&line)?;
    }
}
