//! Groups and KeyPackages (SPEC.md 10.10) against a real relay over real sockets: the
//! KeyPackage directory (first in, first out, the last-resort one, handed out once under
//! concurrent fetches), group posts fanned out to every subscriber's mailbox from anonymous
//! connections, the epoch's compare-and-swap under racing commits, subscriptions and their
//! admission, direct posts, leaving, and a restart that keeps groups and undelivered posts.

use std::collections::BTreeSet;

use chat_relay::client::RelayClient;
use chat_relay::metrics::Metrics;
use protocol::codec::Decode;
use protocol::crypto::ed25519::Ed25519Secret;
use protocol::frames::{
    ClientFrame, DeviceAddress, ErrorCode, GroupId, GroupPost, KeyPackage, PostBody, PostKey,
    PostKind, ServerFrame, Subscription, TokenPolicy,
};
use protocol::group_delivery::GroupDelivery;
use protocol::reachability::DeliveryToken;

use crate::common::*;

/// The post key of an epoch in these tests: from a seed per epoch (and a variant, for racing
/// commits that propose different keys).
fn post_secret(epoch: u64, variant: u8) -> Ed25519Secret {
    let mut seed = [7u8; 32];
    seed[0] = epoch as u8;
    seed[1] = variant;
    Ed25519Secret::from_seed(&seed)
}

fn post_key(epoch: u64, variant: u8) -> PostKey {
    PostKey::of(&post_secret(epoch, variant))
}

fn address(device: &Device) -> DeviceAddress {
    DeviceAddress {
        identity: device.local.cert.identity(),
        device_id: device.local.cert.device_id(),
    }
}

fn subscription(device: &Device) -> Subscription {
    Subscription {
        device: address(device),
        token: None,
    }
}

fn key_package(n: u8) -> KeyPackage {
    KeyPackage::new(vec![n; 40]).unwrap()
}

const GROUP: GroupId = GroupId([0x33; 32]);

fn open(request_id: u32, group_id: GroupId, subscribe: Vec<Subscription>) -> ClientFrame {
    ClientFrame::OpenGroup {
        request_id: rid(request_id),
        group_id,
        epoch: 0,
        post_key: post_key(0, 0),
        subscribe,
    }
}

/// A post signed by `secret` for `epoch`.
fn post(
    request_id: u32,
    secret: &Ed25519Secret,
    epoch: u64,
    body: PostBody,
    payload: &[u8],
) -> ClientFrame {
    ClientFrame::PostGroup {
        request_id: rid(request_id),
        post: GroupPost::sign(secret, GROUP, epoch, body, payload.to_vec()),
    }
}

/// An application post for `epoch`, signed with that epoch's key.
fn application(request_id: u32, epoch: u64, payload: &[u8]) -> ClientFrame {
    post(
        request_id,
        &post_secret(epoch, 0),
        epoch,
        PostBody::Application,
        payload,
    )
}

/// A commit from `epoch` to `epoch + 1` whose next key is `post_key(epoch + 1, variant)`.
fn commit(
    request_id: u32,
    epoch: u64,
    variant: u8,
    subscribe: Vec<Subscription>,
    unsubscribe: Vec<DeviceAddress>,
) -> ClientFrame {
    post(
        request_id,
        &post_secret(epoch, 0),
        epoch,
        PostBody::Commit {
            next_post_key: post_key(epoch + 1, variant),
            subscribe,
            unsubscribe,
        },
        format!("commit {epoch}/{variant}").as_bytes(),
    )
}

/// Sends a request and expects `GroupPosted`: its seq and epoch.
async fn posted(client: &mut RelayClient, frame: ClientFrame) -> (u64, u64) {
    match request(client, frame).await {
        ServerFrame::GroupPosted { seq, epoch, .. } => (seq, epoch),
        other => panic!("expected GroupPosted, got {other:?}"),
    }
}

/// Sends a request and returns the error code it is refused with.
async fn refused(client: &mut RelayClient, frame: ClientFrame) -> ErrorCode {
    error_code(&request(client, frame).await)
}

/// The next group delivery on `client`, acknowledged.
async fn group_delivery(client: &mut RelayClient) -> GroupDelivery {
    let (id, payload) = deliver(client).await;
    ack(client, &[id]).await;
    assert!(GroupDelivery::is_group_delivery(&payload));
    GroupDelivery::from_bytes(&payload).unwrap()
}

/// Every `Deliver` that reaches `client` before the answer to a `Ping` sent now.
async fn deliveries_so_far(client: &mut RelayClient) -> Vec<Vec<u8>> {
    let nonce = rand::random();
    client.send(&ClientFrame::Ping { nonce }).await.unwrap();
    let mut delivered = Vec::new();
    guard(async {
        loop {
            match client.recv().await.unwrap() {
                ServerFrame::Pong { nonce: n } if n == nonce => return,
                ServerFrame::Deliver { payload, .. } => delivered.push(payload),
                _ => {}
            }
        }
    })
    .await;
    delivered
}

async fn anonymous(relay: &TestRelay) -> RelayClient {
    relay.challenged().await.0
}

#[tokio::test]
async fn key_packages_are_handed_out_first_in_first_out_then_the_last_resort_one() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut ca = relay.connect(&alice).await;
    drop(relay.connect(&bob).await);
    let publish = |request_id, last_resort, key_packages| ClientFrame::PublishKeyPackages {
        request_id: rid(request_id),
        last_resort,
        key_packages,
    };
    let count = request(
        &mut ca,
        publish(
            1,
            Some(key_package(9)),
            vec![key_package(1), key_package(2)],
        ),
    )
    .await;
    assert_eq!(
        count,
        ServerFrame::KeyPackageCount {
            request_id: rid(1),
            count: 2,
            has_last_resort: true
        }
    );
    let fetch = |request_id, device: &Device| ClientFrame::FetchKeyPackage {
        request_id: rid(request_id),
        identity: device.local.cert.identity(),
        device_id: device.local.cert.device_id(),
    };
    let mut anon = anonymous(&relay).await;
    for (n, expected, last_resort) in [(2, 1, false), (3, 2, false), (4, 9, true), (5, 9, true)] {
        match request(&mut anon, fetch(n, &alice)).await {
            ServerFrame::KeyPackage {
                key_package: found,
                last_resort: flag,
                ..
            } => assert_eq!((found, flag), (key_package(expected), last_resort)),
            other => panic!("expected a KeyPackage, got {other:?}"),
        }
    }
    // The empty publish asks for the count.
    assert_eq!(
        request(&mut ca, publish(6, None, vec![])).await,
        ServerFrame::KeyPackageCount {
            request_id: rid(6),
            count: 0,
            has_last_resort: true
        }
    );
    // Bob has none; a stranger is unknown.
    assert_eq!(
        refused(&mut anon, fetch(7, &bob)).await,
        ErrorCode::NoPrekeys
    );
    assert_eq!(
        refused(&mut anon, fetch(8, &Device::new(3))).await,
        ErrorCode::NotFound
    );
    // Past the per-device pool: nothing stored.
    let too_many: Vec<KeyPackage> = (0..100).map(key_package).collect();
    request(&mut ca, publish(9, None, too_many.clone())).await;
    request(&mut ca, publish(10, None, too_many.clone())).await;
    assert_eq!(
        refused(&mut ca, publish(11, None, vec![key_package(1)])).await,
        ErrorCode::QuotaExceeded
    );
    // Publishing needs authentication.
    let mut anon = anonymous(&relay).await;
    anon.send(&publish(12, None, vec![])).await.unwrap();
    assert_refused(&mut anon, ErrorCode::AuthRequired).await;
}

#[tokio::test]
async fn concurrent_fetches_from_two_connections_get_each_key_package_once() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(4);
    let mut ca = relay.connect(&alice).await;
    let published: Vec<KeyPackage> = (0..20).map(key_package).collect();
    request(
        &mut ca,
        ClientFrame::PublishKeyPackages {
            request_id: rid(1),
            last_resort: Some(key_package(200)),
            key_packages: published,
        },
    )
    .await;
    let fetches = |first: u32| {
        let relay = &relay;
        let alice = &alice;
        async move {
            let mut client = anonymous(relay).await;
            let mut got = Vec::new();
            // Pipelined: every request is on the wire before the first answer is read.
            for n in 0..11 {
                client
                    .send(&ClientFrame::FetchKeyPackage {
                        request_id: rid(first + n),
                        identity: alice.local.cert.identity(),
                        device_id: alice.local.cert.device_id(),
                    })
                    .await
                    .unwrap();
            }
            for _ in 0..11 {
                match expect(&mut client, |f| matches!(f, ServerFrame::KeyPackage { .. })).await {
                    ServerFrame::KeyPackage {
                        key_package,
                        last_resort,
                        ..
                    } => got.push((key_package, last_resort)),
                    _ => unreachable!(),
                }
            }
            got
        }
    };
    let (one, two) = tokio::join!(fetches(100), fetches(200));
    let all: Vec<_> = one.into_iter().chain(two).collect();
    let pool: BTreeSet<Vec<u8>> = all
        .iter()
        .filter(|(_, last_resort)| !last_resort)
        .map(|(kp, _)| kp.as_bytes().to_vec())
        .collect();
    assert_eq!(pool.len(), 20, "each pool KeyPackage exactly once");
    assert_eq!(
        all.iter().filter(|(_, last_resort)| !last_resort).count(),
        20
    );
    assert!(
        all.iter()
            .filter(|(_, last_resort)| *last_resort)
            .all(|(kp, _)| *kp == key_package(200))
    );
}

/// Alice's two devices and Bob's one, connected, in a group Alice opened.
struct Members {
    a1: Device,
    a2: Device,
    b1: Device,
    c1: RelayClient,
    c2: RelayClient,
    cb: RelayClient,
}

impl Members {
    async fn open(relay: &TestRelay) -> Self {
        let a1 = Device::new(10);
        let a2 = Device::of(&a1.identity, 2, 11);
        let b1 = Device::new(12);
        let mut c1 = relay.connect(&a1).await;
        let c2 = relay.connect(&a2).await;
        let cb = relay.connect(&b1).await;
        let subscribe = vec![subscription(&a1), subscription(&a2), subscription(&b1)];
        assert_eq!(posted(&mut c1, open(1, GROUP, subscribe)).await, (0, 0));
        Self {
            a1,
            a2,
            b1,
            c1,
            c2,
            cb,
        }
    }
}

#[tokio::test]
async fn an_anonymous_post_reaches_every_subscriber_including_the_posters_device() {
    let relay = TestRelay::memory().await;
    let mut m = Members::open(&relay).await;
    // Posting needs no authentication: the post key proves membership.
    let mut anon = anonymous(&relay).await;
    assert_eq!(
        posted(&mut anon, application(2, 0, b"hello group")).await,
        (1, 0)
    );
    for client in [&mut m.c1, &mut m.c2, &mut m.cb] {
        assert_eq!(
            group_delivery(client).await,
            GroupDelivery {
                group_id: GROUP,
                seq: 1,
                epoch: 0,
                kind: PostKind::Application,
                payload: b"hello group".to_vec(),
            }
        );
    }
    // And from a member's own connection: it gets its post back too, maybe before the
    // answer (delivery does not wait for the flush).
    let frame = application(3, 0, b"second");
    m.c1.send(&frame).await.unwrap();
    let mut own = None;
    let reply = guard(async {
        loop {
            match m.c1.recv().await.unwrap() {
                ServerFrame::Deliver {
                    envelope_id,
                    payload,
                    ..
                } => {
                    ack(&mut m.c1, &[envelope_id]).await;
                    own = Some(GroupDelivery::from_bytes(&payload).unwrap());
                }
                reply if reply.request_id() == frame.request_id() => return reply,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(
        reply,
        ServerFrame::GroupPosted {
            request_id: rid(3),
            seq: 2,
            epoch: 0
        }
    );
    let own = match own {
        Some(own) => own,
        None => group_delivery(&mut m.c1).await,
    };
    assert_eq!((own.seq, own.payload.as_slice()), (2, &b"second"[..]));
    for client in [&mut m.c2, &mut m.cb] {
        for (seq, payload) in [(2, &b"second"[..])] {
            assert_eq!(
                group_delivery(client).await,
                GroupDelivery {
                    group_id: GROUP,
                    seq,
                    epoch: 0,
                    kind: PostKind::Application,
                    payload: payload.to_vec(),
                }
            );
        }
    }
    let metrics = relay.relay.metrics();
    assert_eq!(Metrics::get(&metrics.group_posts[0]), 2);
    assert_eq!(Metrics::get(&metrics.group_deliveries), 6);

    // The group exists now; unknown groups and devices are refused.
    assert_eq!(
        refused(&mut anon, open(4, GROUP, vec![subscription(&m.a1)])).await,
        ErrorCode::GroupExists
    );
    assert_eq!(
        refused(
            &mut anon,
            open(5, GroupId([1; 32]), vec![subscription(&Device::new(99))])
        )
        .await,
        ErrorCode::NotFound
    );
    let mut elsewhere = application(6, 0, b"x");
    if let ClientFrame::PostGroup { post, .. } = &mut elsewhere {
        *post = GroupPost::sign(
            &post_secret(0, 0),
            GroupId([2; 32]),
            0,
            PostBody::Application,
            b"x".to_vec(),
        );
    }
    assert_eq!(refused(&mut anon, elsewhere).await, ErrorCode::NotFound);
    let _ = (&m.a2, &m.b1);
}

#[tokio::test]
async fn two_racing_commits_for_one_epoch_have_exactly_one_winner() {
    let relay = TestRelay::memory().await;
    let mut m = Members::open(&relay).await;
    let mut x = anonymous(&relay).await;
    let mut y = anonymous(&relay).await;
    // Both commits on the wire, from two connections, before either answer is read.
    let first = commit(10, 0, 1, vec![], vec![]);
    let second = commit(20, 0, 2, vec![], vec![]);
    x.send(&first).await.unwrap();
    y.send(&second).await.unwrap();
    let rx = expect(&mut x, |f| f.request_id() == first.request_id()).await;
    let ry = expect(&mut y, |f| f.request_id() == second.request_id()).await;
    let winner = match (&rx, &ry) {
        (ServerFrame::GroupPosted { epoch, .. }, ServerFrame::Error { code, .. }) => {
            assert_eq!((*epoch, *code), (1, ErrorCode::StaleEpoch));
            1
        }
        (ServerFrame::Error { code, .. }, ServerFrame::GroupPosted { epoch, .. }) => {
            assert_eq!((*epoch, *code), (1, ErrorCode::StaleEpoch));
            2
        }
        other => panic!("expected one winner and one stale_epoch, got {other:?}"),
    };
    // Every subscriber saw the winning commit, and only it.
    for client in [&mut m.c1, &mut m.c2, &mut m.cb] {
        let d = group_delivery(client).await;
        assert_eq!((d.seq, d.kind, d.epoch), (1, PostKind::Commit, 0));
        assert_eq!(d.payload, format!("commit 0/{winner}").into_bytes());
    }
    // The epochs agree: the winner's key signs epoch 1, the loser's does not.
    let loser = 3 - winner;
    let wrong = post(30, &post_secret(1, loser), 1, PostBody::Application, b"x");
    assert_eq!(refused(&mut x, wrong).await, ErrorCode::BadSignature);
    let right = post(
        31,
        &post_secret(1, winner),
        1,
        PostBody::Application,
        b"agreed",
    );
    assert_eq!(posted(&mut y, right).await, (2, 1));
    for client in [&mut m.c1, &mut m.c2, &mut m.cb] {
        assert_eq!(group_delivery(client).await.payload, b"agreed");
    }
    for client in [&mut m.c1, &mut m.c2, &mut m.cb] {
        assert_eq!(deliveries_so_far(client).await, Vec::<Vec<u8>>::new());
    }
    assert_eq!(Metrics::get(&relay.relay.metrics().group_posts[1]), 1);
    let _ = (&m.a1, &m.a2, &m.b1);
}

#[tokio::test]
async fn epochs_keys_and_removed_members() {
    let relay = TestRelay::memory().await;
    let mut m = Members::open(&relay).await;
    let mut anon = anonymous(&relay).await;
    // A commit that removes Bob: he still gets it, and nothing after it.
    let remove_bob = commit(2, 0, 0, vec![], vec![address(&m.b1)]);
    assert_eq!(posted(&mut anon, remove_bob).await, (1, 1));
    for client in [&mut m.c1, &mut m.c2, &mut m.cb] {
        let d = group_delivery(client).await;
        assert_eq!((d.seq, d.epoch, d.kind), (1, 0, PostKind::Commit));
    }
    assert_eq!(posted(&mut anon, application(3, 1, b"after")).await, (2, 1));
    for client in [&mut m.c1, &mut m.c2] {
        assert_eq!(group_delivery(client).await.payload, b"after");
    }
    assert_eq!(deliveries_so_far(&mut m.cb).await, Vec::<Vec<u8>>::new());

    // A commit for an epoch that is not the current one changes nothing.
    assert_eq!(
        refused(&mut anon, commit(4, 0, 0, vec![], vec![])).await,
        ErrorCode::StaleEpoch
    );
    assert_eq!(
        refused(&mut anon, commit(5, 2, 0, vec![], vec![])).await,
        ErrorCode::StaleEpoch
    );
    // Epoch 2; Bob back in.
    let readd = commit(6, 1, 0, vec![subscription(&m.b1)], vec![]);
    assert_eq!(posted(&mut anon, readd).await, (3, 2));
    // Application posts: epoch 2 and epoch 1 (late, signed with the previous key) are
    // accepted; epoch 0 is two behind.
    assert_eq!(posted(&mut anon, application(7, 2, b"now")).await, (4, 2));
    assert_eq!(posted(&mut anon, application(8, 1, b"late")).await, (5, 2));
    assert_eq!(
        refused(&mut anon, application(9, 0, b"too late")).await,
        ErrorCode::StaleEpoch
    );
    // A post signed with another epoch's key, or by a stranger, is a bad signature, and the
    // connection stays open.
    let forged = post(10, &post_secret(1, 0), 2, PostBody::Application, b"forged");
    assert_eq!(refused(&mut anon, forged).await, ErrorCode::BadSignature);
    let stranger = post(
        11,
        &Ed25519Secret::from_seed(&[1; 32]),
        2,
        PostBody::Application,
        b"x",
    );
    assert_eq!(refused(&mut anon, stranger).await, ErrorCode::BadSignature);
    sync(&mut anon).await;

    // Bob, back since the commit that re-added him, gets what followed it, not the commit
    // itself (it goes to the subscribers before its changes; a new member learns of it in
    // its Welcome).
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(group_delivery(&mut m.cb).await.seq);
    }
    assert_eq!(seen, [4, 5]);
    assert_eq!(deliveries_so_far(&mut m.cb).await, Vec::<Vec<u8>>::new());
    let _ = &m.a1;
}

#[tokio::test]
async fn direct_posts_reach_only_their_recipients() {
    let relay = TestRelay::memory().await;
    let mut m = Members::open(&relay).await;
    let mut anon = anonymous(&relay).await;
    let direct = post(
        2,
        &post_secret(0, 0),
        0,
        PostBody::Direct {
            recipients: vec![address(&m.b1)],
        },
        b"welcome",
    );
    assert_eq!(posted(&mut anon, direct).await, (1, 0));
    let d = group_delivery(&mut m.cb).await;
    assert_eq!(
        (d.kind, d.payload.as_slice()),
        (PostKind::Direct, &b"welcome"[..])
    );
    assert_eq!(deliveries_so_far(&mut m.c1).await, Vec::<Vec<u8>>::new());
    assert_eq!(deliveries_so_far(&mut m.c2).await, Vec::<Vec<u8>>::new());
    // A recipient that is not subscribed: refused, nothing stored.
    let stranger = Device::new(50);
    drop(relay.connect(&stranger).await);
    let to_stranger = post(
        3,
        &post_secret(0, 0),
        0,
        PostBody::Direct {
            recipients: vec![address(&m.b1), address(&stranger)],
        },
        b"x",
    );
    assert_eq!(refused(&mut anon, to_stranger).await, ErrorCode::NotFound);
    assert_eq!(deliveries_so_far(&mut m.cb).await, Vec::<Vec<u8>>::new());
    assert_eq!(Metrics::get(&relay.relay.metrics().group_posts[2]), 1);
}

#[tokio::test]
async fn a_device_that_leaves_gets_no_more_posts_and_the_last_one_out_deletes_the_group() {
    let relay = TestRelay::memory().await;
    let mut m = Members::open(&relay).await;
    let leave = |request_id, group_id| ClientFrame::LeaveGroup {
        request_id: rid(request_id),
        group_id,
    };
    assert_eq!(
        request(&mut m.c2, leave(2, GROUP)).await,
        ServerFrame::Done { request_id: rid(2) }
    );
    // Leaving again is a no-op; an unknown group is not found.
    assert_eq!(
        request(&mut m.c2, leave(3, GROUP)).await,
        ServerFrame::Done { request_id: rid(3) }
    );
    assert_eq!(
        refused(&mut m.c2, leave(4, GroupId([9; 32]))).await,
        ErrorCode::NotFound
    );
    let mut anon = anonymous(&relay).await;
    assert_eq!(posted(&mut anon, application(5, 0, b"x")).await, (1, 0));
    assert_eq!(group_delivery(&mut m.c1).await.seq, 1);
    assert_eq!(group_delivery(&mut m.cb).await.seq, 1);
    assert_eq!(deliveries_so_far(&mut m.c2).await, Vec::<Vec<u8>>::new());
    for (client, n) in [(&mut m.c1, 6), (&mut m.cb, 7)] {
        assert_eq!(
            request(client, leave(n, GROUP)).await,
            ServerFrame::Done { request_id: rid(n) }
        );
    }
    // Deleted with its last subscriber: the id can be opened anew.
    assert_eq!(
        refused(&mut m.c1, application(8, 0, b"x")).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        posted(&mut m.c1, open(9, GROUP, vec![subscription(&m.a1)])).await,
        (0, 0)
    );
    // Leaving needs authentication.
    let mut anon = anonymous(&relay).await;
    anon.send(&leave(10, GROUP)).await.unwrap();
    assert_refused(&mut anon, ErrorCode::AuthRequired).await;
    let _ = (&m.a2, &m.b1);
}

#[tokio::test]
async fn subscriptions_are_admitted_like_deposits() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(60);
    let bob = Device::new(61);
    let mut ca = relay.connect(&alice).await;
    let mut cb = relay.connect(&bob).await;
    let token = DeliveryToken([5; 16]);
    let revoked = DeliveryToken([6; 16]);
    assert_eq!(
        request(
            &mut cb,
            ClientFrame::SetDeliveryTokens {
                request_id: rid(1),
                policy: TokenPolicy::TokensRequired,
                add: vec![token.digest()],
                revoke: vec![revoked.digest()],
            },
        )
        .await,
        ServerFrame::Done { request_id: rid(1) }
    );
    // No token for an account that requires one: the whole request is refused.
    let without = vec![subscription(&alice), subscription(&bob)];
    assert_eq!(
        refused(&mut ca, open(2, GROUP, without)).await,
        ErrorCode::TokenRequired
    );
    let mut anon = anonymous(&relay).await;
    assert_eq!(
        refused(&mut anon, application(3, 0, b"x")).await,
        ErrorCode::NotFound,
        "nothing was created"
    );
    // A revoked token: the subscription is dropped silently.
    let with_revoked = vec![
        subscription(&alice),
        Subscription {
            device: address(&bob),
            token: Some(revoked),
        },
    ];
    assert_eq!(posted(&mut ca, open(4, GROUP, with_revoked)).await, (0, 0));
    assert_eq!(posted(&mut anon, application(5, 0, b"one")).await, (1, 0));
    assert_eq!(group_delivery(&mut ca).await.payload, b"one");
    assert_eq!(deliveries_so_far(&mut cb).await, Vec::<Vec<u8>>::new());
    // A commit subscribing Bob with his token: admitted.
    let add_bob = commit(
        6,
        0,
        0,
        vec![Subscription {
            device: address(&bob),
            token: Some(token),
        }],
        vec![],
    );
    assert_eq!(posted(&mut anon, add_bob).await, (2, 1));
    assert_eq!(group_delivery(&mut ca).await.seq, 2);
    assert_eq!(posted(&mut anon, application(7, 1, b"two")).await, (3, 1));
    assert_eq!(group_delivery(&mut cb).await.payload, b"two");
}

#[tokio::test]
async fn groups_and_undelivered_posts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Device::new(70);
    let bob = Device::new(71);
    {
        let relay = TestRelay::sled(dir.path()).await;
        let mut ca = relay.connect(&alice).await;
        drop(relay.connect(&bob).await);
        let subscribe = vec![subscription(&alice), subscription(&bob)];
        assert_eq!(posted(&mut ca, open(1, GROUP, subscribe)).await, (0, 0));
        let mut anon = anonymous(&relay).await;
        assert_eq!(
            posted(&mut anon, commit(2, 0, 0, vec![], vec![])).await,
            (1, 1)
        );
        assert_eq!(posted(&mut anon, application(3, 1, b"kept")).await, (2, 1));
        drop(ca);
        relay.relay.shutdown().await.unwrap();
    }
    let relay = TestRelay::sled(dir.path()).await;
    let mut cb = relay.connect(&bob).await;
    assert_eq!(
        (
            group_delivery(&mut cb).await.kind,
            group_delivery(&mut cb).await.payload
        ),
        (PostKind::Commit, b"kept".to_vec())
    );
    // The group's epoch, keys and numbering survived too.
    let mut anon = anonymous(&relay).await;
    assert_eq!(
        refused(&mut anon, commit(4, 0, 0, vec![], vec![])).await,
        ErrorCode::StaleEpoch
    );
    assert_eq!(posted(&mut anon, application(5, 0, b"late")).await, (3, 1));
    assert_eq!(group_delivery(&mut cb).await.payload, b"late");
}

#[tokio::test]
async fn a_full_mailbox_is_skipped_and_the_others_still_get_the_post() {
    let relay = TestRelay::with_limits(chat_relay::Limits {
        mailbox_quota: 1,
        ..chat_relay::Limits::default()
    })
    .await;
    let alice = Device::new(80);
    let bob = Device::new(81);
    let mut ca = relay.connect(&alice).await;
    drop(relay.connect(&bob).await);
    let subscribe = vec![subscription(&alice), subscription(&bob)];
    assert_eq!(posted(&mut ca, open(1, GROUP, subscribe)).await, (0, 0));
    let mut anon = anonymous(&relay).await;
    // Bob is offline: his mailbox fills with the first post; Alice acknowledges hers.
    assert_eq!(posted(&mut anon, application(2, 0, b"one")).await, (1, 0));
    assert_eq!(group_delivery(&mut ca).await.payload, b"one");
    sync(&mut ca).await;
    assert_eq!(posted(&mut anon, application(3, 0, b"two")).await, (2, 0));
    assert_eq!(group_delivery(&mut ca).await.payload, b"two");
    let metrics = relay.relay.metrics();
    assert_eq!(Metrics::get(&metrics.group_skipped_full), 1);
    assert_eq!(Metrics::get(&metrics.group_deliveries), 3);
    let mut cb = relay.connect(&bob).await;
    assert_eq!(group_delivery(&mut cb).await.payload, b"one");
    assert_eq!(deliveries_so_far(&mut cb).await, Vec::<Vec<u8>>::new());
}
