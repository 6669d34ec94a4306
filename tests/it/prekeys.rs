//! Prekey replenishment against a real relay (in-process) and the real daemon: after other
//! devices consume most of the daemon's one-time prekeys, the daemon tops them up the next time
//! it connects, so session setups keep getting a one-time prekey.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chat_relay::client::RelayClient;
use chat_relay::{Config, Relay, Storage};
use protocol::address::Address;
use protocol::frames::{ClientFrame, RequestId, ServerFrame};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKey, IdentityKeyPair, LocalDevice};
use serde_json::json;
use tests::DaemonProcess;

/// Another device on the relay, fetching the daemon's bundles.
async fn fetcher(relay: &Relay) -> RelayClient {
    let mut rng = rand::rng();
    let identity = IdentityKeyPair::generate(&mut rng);
    let device_id = DeviceId::new(1).unwrap_or_else(|e| panic!("{e}"));
    let device = LocalDevice::new(&identity, DeviceKeyPair::generate(device_id, &mut rng), 1);
    RelayClient::connect_as(relay.local_addr(), relay.relay_id(), &device)
        .await
        .unwrap_or_else(|e| panic!("relay client: {e}"))
}

/// Fetches one bundle of the daemon's device; returns its one-time prekey id, if any.
async fn fetch(client: &mut RelayClient, target: IdentityKey, request: u32) -> Option<u32> {
    let device_id = DeviceId::new(1).unwrap_or_else(|e| panic!("{e}"));
    let request_id = RequestId::new(request).unwrap_or_else(|| panic!("request id"));
    client
        .send(&ClientFrame::FetchBundle {
            request_id,
            identity: target,
            device_id,
        })
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    match client.recv().await {
        Ok(ServerFrame::Bundle { bundle, .. }) => bundle.one_time_prekey.map(|k| k.id),
        Ok(ServerFrame::Error { .. }) => None,
        other => panic!("expected a bundle, got {other:?}"),
    }
}

/// Fetches until `n` one-time prekeys not in `seen` were handed out, tolerating fetches that
/// find none while a publish is on its way (bounded: 20 s).
async fn take(
    client: &mut RelayClient,
    target: IdentityKey,
    n: usize,
    seen: &HashSet<u32>,
    request: &mut u32,
) -> HashSet<u32> {
    let mut handed = HashSet::new();
    let start = Instant::now();
    while handed.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "only {} of {n} one-time prekeys became available",
            handed.len()
        );
        *request += 1;
        match fetch(client, target, *request).await {
            Some(id) => {
                assert!(
                    !seen.contains(&id) && handed.insert(id),
                    "prekey {id} handed out twice"
                );
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    handed
}

#[test]
fn one_time_prekeys_are_replenished_after_use() {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let relay = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        // This test drains the pool on purpose: lift the limits that stop a stranger from
        // doing so (relay/tests/it/quotas.rs tests those).
        let mut config = Config::new(Storage::Memory);
        let unlimited = chat_relay::config::RateLimit {
            per_second: 1e6,
            burst: 1e6,
        };
        config.limits.one_time_prekeys = unlimited;
        config.limits.bundle_fetches = unlimited;
        Relay::start(listener, config)
            .await
            .unwrap_or_else(|e| panic!("relay: {e}"))
    });
    let url = String::from_utf8_lossy(relay.relay_id().as_bytes()).into_owned();
    let daemon = DaemonProcess::start(&url);
    let info = daemon.create("Dana");
    let address = Address::parse(&info.address).unwrap_or_else(|e| panic!("address: {e}"));
    let target =
        IdentityKey::from_bytes(address.public_key().as_bytes()).unwrap_or_else(|e| panic!("{e}"));

    // The first connect publishes 100 one-time prekeys: take 70 of them.
    let mut client = runtime.block_on(fetcher(&relay));
    let mut request = 0;
    let first = runtime.block_on(take(&mut client, target, 70, &HashSet::new(), &mut request));

    // Reconnect (lock and unlock): the daemon sees 30 left and tops up to 100, so 100 more
    // distinct ones come (without a refill only the 30 left over would, and this times out).
    daemon.call("account.lock", json!({}));
    daemon.unlock();
    runtime.block_on(take(&mut client, target, 100, &first, &mut request));
    runtime
        .block_on(relay.shutdown())
        .unwrap_or_else(|e| panic!("{e}"));
}
