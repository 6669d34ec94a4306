//! The methods end to end over an in-memory store, with the core running.

use api::events::EventKind;
use serde_json::{Map, Value, json};

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::events::Event;
use api::methods as m;
use jsonrpsee::core::server::Methods;

use super::*;
use crate::events::EventBus;
use crate::store::{KdfParams, Kv};

/// The methods over an in-memory store and `bus`, with the core running on this runtime.
fn running_methods(bus: Arc<EventBus>) -> Methods {
    let kv = Kv::memory();
    let config = crate::core::CoreConfig {
        relay_ca_pem: None,
        clock: crate::clock::system(),
        hosted_relay: None,
        local_relay: None,
    };
    let (core, task) =
        crate::core::start(kv.clone(), config, bus.clone()).unwrap_or_else(|e| panic!("core: {e}"));
    tokio::spawn(task.run(std::future::pending()));
    methods(Context {
        core,
        bus,
        kv,
        started: Instant::now(),
        ephemeral: true,
        hosted_relay: None,
        local_relay: None,
        default_relay: "ws://127.0.0.1:1/v1".into(),
        kdf: KdfParams::INSECURE_FOR_TESTS,
        handle_recheck_ms: 0,
        log_file: None,
        stop: Default::default(),
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
            Err(jsonrpsee::MethodsError::JsonRpc(e)) if e.code() == api::error::INVALID_PARAMS => {
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
        relay_ca_pem: None,
        clock: crate::clock::system(),
        hosted_relay: None,
        local_relay: None,
    };
    let (core, _task) =
        crate::core::start(kv.clone(), config, bus.clone()).unwrap_or_else(|e| panic!("core: {e}"));
    let methods = methods(Context {
        core,
        bus,
        kv,
        started: Instant::now(),
        ephemeral: true,
        hosted_relay: None,
        local_relay: None,
        default_relay: "ws://127.0.0.1:1/v1".into(),
        kdf: KdfParams::INSECURE_FOR_TESTS,
        handle_recheck_ms: 0,
        log_file: None,
        stop: Default::default(),
    });
    let mut registered: Vec<&str> = methods.method_names().collect();
    registered.sort_unstable();
    let mut documented: Vec<&str> = api::methods::ALL.iter().map(|m| m.name).collect();
    documented.sort_unstable();
    assert_eq!(registered, documented);
}
