//! The retained event log: every persistent event is written in the batch of the change it
//! reports and kept (the newest [`EVENTS_RETAINED`]) for subscribers that resume with `since`.

use api::events::{Event, EventKind};

use crate::core::records::tables;
use crate::core::unlocked::Unlocked;
use crate::core::{CoreState, Txn};
use crate::error::{ApiError, ApiResult};
use crate::store::Batch;

/// Events retained in the store for `since`.
pub const EVENTS_RETAINED: usize = 10_000;

/// Makes an event, writes it into the retained log in `batch` (with the change it reports),
/// and publishes it once the round is durable. The log keeps the newest [`EVENTS_RETAINED`]:
/// older ones are deleted in the same batch.
pub fn record_event(
    state: &mut CoreState,
    batch: &mut Batch<'_>,
    txn: &mut Txn,
    kind: EventKind,
) -> ApiResult<()> {
    let event = state.bus.make(kind);
    let unlocked = state.unlocked()?;
    if event.kind.is_persistent()
        && let Ok(json) = serde_json::to_vec(&event)
    {
        batch.put(tables::EVENTS, &event.cursor.to_be_bytes(), &json);
        unlocked.retained_events.push_back(event.cursor);
        while unlocked.retained_events.len() > EVENTS_RETAINED {
            if let Some(oldest) = unlocked.retained_events.pop_front() {
                batch.delete(tables::EVENTS, &oldest.to_be_bytes());
            }
        }
    }
    txn.event(event);
    Ok(())
}

/// Retained message events after `since`, oldest first.
pub fn retained_events(unlocked: &Unlocked, since: u64) -> ApiResult<Vec<Event>> {
    let mut events = Vec::new();
    for item in unlocked.store.scan_rev(tables::EVENTS, &[], None) {
        let (key, value) = item?;
        let cursor = <[u8; 8]>::try_from(key.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| ApiError::store("an event key"))?;
        if cursor <= since {
            break;
        }
        match serde_json::from_slice::<Event>(&value) {
            Ok(event) => events.push(event),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable retained event"),
        }
    }
    events.reverse();
    Ok(events)
}
