//! The prekey directory (SPEC.md section 10.4 `PublishPrekeys`, `FetchBundle`, `ListDevices`):
//! one-time keys are handed out once even under concurrent fetches, publishes are verified,
//! and devices are listed per identity.

use std::collections::BTreeSet;

use protocol::frames::{ClientFrame, ErrorCode, ServerFrame};
use protocol::identity::DeviceId;
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, SignedPrekeySecret};

use crate::common::*;

const ONE_TIME_KEYS: u32 = 100;
const FETCHERS: u32 = 10;
const FETCHES_EACH: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_never_share_a_one_time_key() {
    // Every fetch may take a one-time key: the per-target and per-requester rates are
    // another test's (quotas.rs).
    let unlimited = chat_relay::RateLimit {
        per_second: 1e6,
        burst: 1e6,
    };
    let relay = TestRelay::with_limits(chat_relay::Limits {
        one_time_prekeys: unlimited,
        bundle_fetches: unlimited,
        ..chat_relay::Limits::default()
    })
    .await;
    let mut bob = Device::new(1);
    let mut b = relay.connect(&bob).await;
    let reply = request(&mut b, bob.prekeys(1, ONE_TIME_KEYS)).await;
    assert!(
        matches!(reply, ServerFrame::PrekeyCount { one_time, .. } if one_time == ONE_TIME_KEYS),
        "{reply:?}"
    );

    let identity = bob.local.cert.identity();
    let device_id = bob.local.cert.device_id();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..FETCHERS {
        let fetcher = Device::new(100 + n as u8);
        let mut client = relay.connect(&fetcher).await;
        tasks.spawn(async move {
            // Every fetch in flight at once, so the relay sees them interleaved with the
            // other clients'.
            for i in 1..=FETCHES_EACH {
                let frame = ClientFrame::FetchBundle {
                    request_id: rid(i),
                    identity,
                    device_id,
                };
                client.send(&frame).await.unwrap();
            }
            let mut keys = Vec::new();
            for _ in 0..FETCHES_EACH {
                match expect(&mut client, |f| f.request_id().is_some()).await {
                    ServerFrame::Bundle { bundle, .. } => {
                        bundle.verify(Some(&identity)).unwrap();
                        keys.push(bundle.one_time_prekey.map(|k| k.id));
                    }
                    other => panic!("expected a bundle, got {other:?}"),
                }
            }
            keys
        });
    }
    let mut handed_out = Vec::new();
    let mut without = 0;
    while let Some(keys) = guard(tasks.join_next()).await {
        for key in keys.unwrap() {
            match key {
                Some(id) => handed_out.push(id),
                None => without += 1,
            }
        }
    }
    let distinct: BTreeSet<u32> = handed_out.iter().copied().collect();
    assert_eq!(
        handed_out.len(),
        distinct.len(),
        "a one-time key was handed out twice"
    );
    assert_eq!(distinct, (100..100 + ONE_TIME_KEYS).collect());
    assert_eq!(without, FETCHERS * FETCHES_EACH - ONE_TIME_KEYS);

    // The relay's count agrees: none left.
    let empty = ClientFrame::PublishPrekeys {
        request_id: rid(2),
        signed_prekey: None,
        kem_prekeys: Vec::new(),
        one_time_prekeys: Vec::new(),
    };
    assert!(matches!(
        request(&mut b, empty).await,
        ServerFrame::PrekeyCount { one_time: 0, .. }
    ));
}

#[tokio::test]
async fn fetch_errors_no_prekeys_and_not_found() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let stranger = Device::new(3);
    let mut b = relay.connect(&bob).await;
    sync(&mut b).await;
    let mut a = relay.connect(&alice).await;

    let fetch = |n, device: &Device| ClientFrame::FetchBundle {
        request_id: rid(n),
        identity: device.local.cert.identity(),
        device_id: device.local.cert.device_id(),
    };
    // Bob is known but has published nothing.
    let reply = request(&mut a, fetch(1, &bob)).await;
    assert_eq!(error_code(&reply), ErrorCode::NoPrekeys);
    assert_eq!(reply.request_id(), Some(rid(1)));
    let reply = request(&mut a, fetch(2, &stranger)).await;
    assert_eq!(error_code(&reply), ErrorCode::NotFound);
    let reply = request(
        &mut a,
        ClientFrame::FetchBundle {
            request_id: rid(3),
            identity: bob.local.cert.identity(),
            device_id: DeviceId::new(7).unwrap(),
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::NotFound);
}

#[tokio::test]
async fn publish_with_a_bad_signature_is_refused_whole() {
    let relay = TestRelay::memory().await;
    let mut bob = Device::new(1);
    let mallory = Device::new(2);
    let mut b = relay.connect(&bob).await;
    let bobs = bob.local.keys.signing().clone();
    let others = mallory.local.keys.signing().clone();
    let one_time: Vec<_> = (0..5)
        .map(|i| OneTimePrekeySecret::generate(i, &mut bob.rng).1)
        .collect();

    // A signed prekey, then a KEM prekey, signed by a key that is not the device's.
    let (_, bad_spk) = SignedPrekeySecret::generate(1, 0, &others, &mut bob.rng);
    let (_, good_kem) = KemPrekeySecret::generate(1, true, &bobs, &mut bob.rng);
    let (_, good_spk) = SignedPrekeySecret::generate(2, 0, &bobs, &mut bob.rng);
    let (_, bad_kem) = KemPrekeySecret::generate(2, false, &others, &mut bob.rng);
    for (n, (spk, kem)) in [
        (bad_spk, vec![good_kem.clone()]),
        (good_spk, vec![good_kem, bad_kem]),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = request(
            &mut b,
            ClientFrame::PublishPrekeys {
                request_id: rid(1 + n as u32),
                signed_prekey: Some(spk),
                kem_prekeys: kem,
                one_time_prekeys: one_time.clone(),
            },
        )
        .await;
        assert_eq!(error_code(&reply), ErrorCode::InvalidPrekeys);
    }

    // Nothing of either publish was stored.
    let reply = request(
        &mut b,
        ClientFrame::PublishPrekeys {
            request_id: rid(3),
            signed_prekey: None,
            kem_prekeys: Vec::new(),
            one_time_prekeys: Vec::new(),
        },
    )
    .await;
    assert_eq!(
        reply,
        ServerFrame::PrekeyCount {
            request_id: rid(3),
            one_time: 0,
            kem_one_time: 0
        }
    );
    let reply = request(
        &mut b,
        ClientFrame::FetchBundle {
            request_id: rid(4),
            identity: bob.local.cert.identity(),
            device_id: bob.local.cert.device_id(),
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::NoPrekeys);
    // A good publish still works.
    let reply = request(&mut b, bob.prekeys(5, 3)).await;
    assert!(matches!(
        reply,
        ServerFrame::PrekeyCount { one_time: 3, .. }
    ));
}

#[tokio::test]
async fn list_devices_of_an_identity() {
    let relay = TestRelay::memory().await;
    let phone = Device::new(1);
    let laptop = Device::of(&phone.identity, 2, 2);
    let alice = Device::new(3);
    for device in [&phone, &laptop] {
        let mut c = relay.connect(device).await;
        sync(&mut c).await;
    }
    let mut a = relay.connect(&alice).await;
    let identity = phone.local.cert.identity();
    let reply = request(
        &mut a,
        ClientFrame::ListDevices {
            request_id: rid(1),
            identity,
        },
    )
    .await;
    let ServerFrame::Devices { devices, .. } = reply else {
        panic!("expected devices, got {reply:?}");
    };
    let mut found: Vec<u32> = devices
        .iter()
        .map(|cert| {
            let device = cert.verify().unwrap();
            assert_eq!(device.identity(), identity);
            device.device_id().get()
        })
        .collect();
    found.sort_unstable();
    assert_eq!(found, vec![1, 2]);

    let unknown = Device::new(4);
    let reply = request(
        &mut a,
        ClientFrame::ListDevices {
            request_id: rid(2),
            identity: unknown.local.cert.identity(),
        },
    )
    .await;
    assert_eq!(
        reply,
        ServerFrame::Devices {
            request_id: rid(2),
            devices: Vec::new()
        }
    );
}

/// A bundle's one-time prekey is durably gone before the bundle is sent: the relay killed
/// right after answering (SIGKILL, and sled left to flush only when the relay asks) never
/// hands the same one-time prekey out again.
#[tokio::test]
async fn a_one_time_prekey_handed_out_survives_sigkill_as_taken() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No periodic flush of sled's own: only the relay's flushes make anything durable.
    let config = "[sled]\nflush_every_ms = 0\n";
    let mut relay = RelayProcess::start_with_config(&data, dir.path(), config).await;
    let mut bob = Device::new(1);
    let alice = Device::new(2);
    let identity = bob.local.cert.identity();
    let device_id = bob.local.cert.device_id();
    let fetch = |n| ClientFrame::FetchBundle {
        request_id: rid(n),
        identity,
        device_id,
    };
    let one_time_of = |reply: ServerFrame| match reply {
        ServerFrame::Bundle { bundle, .. } => {
            bundle.verify(Some(&identity)).unwrap();
            bundle.one_time_prekey.map(|k| k.id)
        }
        other => panic!("expected a bundle, got {other:?}"),
    };

    let mut b = relay.connect(&bob).await;
    let reply = request(&mut b, bob.prekeys(1, 3)).await;
    assert!(
        matches!(reply, ServerFrame::PrekeyCount { one_time: 3, .. }),
        "{reply:?}"
    );
    let mut handed_out = Vec::new();
    for round in 0..3u32 {
        let mut a = relay.connect(&alice).await;
        handed_out.push(one_time_of(request(&mut a, fetch(10 + round)).await));
        relay.kill();
        relay = RelayProcess::start_with_config(&data, dir.path(), config).await;
    }
    assert_eq!(handed_out, [Some(100), Some(101), Some(102)]);
    let mut a = relay.connect(&alice).await;
    assert_eq!(one_time_of(request(&mut a, fetch(20)).await), None);
}
