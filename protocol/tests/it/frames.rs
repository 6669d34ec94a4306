//! Relay frames: round trips of every frame type, decoding arbitrary and mutated bytes,
//! allocation bounds, and the `testdata/frames.json` vectors.
//!
//! This module installs the binary's global allocator, a pass-through to the system allocator
//! that can count the bytes one thread requests; it counts nothing unless a test asks.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use protocol::codec::{Decode, DecodeError, Encode};
use protocol::crypto::ed25519::Ed25519Secret;
use protocol::frames::*;
use protocol::group_delivery::GroupDelivery;
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::prekeys::{
    KemPrekey, KemPrekeySecret, OneTimePrekey, OneTimePrekeySecret, PrekeyBundle, SignedPrekey,
    SignedPrekeySecret,
};
use protocol::reachability::{DeliveryToken, ReachabilityRecord, RelayEndpoint};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::Digest;

// ---- Allocation counting --------------------------------------------------------------------

#[allow(unsafe_code)] // A GlobalAlloc impl is unsafe by definition; it only forwards to System.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ACTIVE: Cell<bool> = const { Cell::new(false) };
        static BYTES: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        let _ = ACTIVE.try_with(|active| {
            if active.get() {
                let _ = BYTES.try_with(|bytes| bytes.set(bytes.get().saturating_add(size)));
            }
        });
    }

    /// Forwards to [`System`], adding each request's size to a per-thread counter while a
    /// [`measure`] call is running on that thread.
    pub struct Counting;

    // SAFETY: every method forwards to `System` with the caller's arguments unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f` and returns its result with the total bytes it asked the allocator for
    /// (never subtracting frees, so transient buffers count too).
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
        BYTES.with(|b| b.set(0));
        ACTIVE.with(|a| a.set(true));
        let out = f();
        ACTIVE.with(|a| a.set(false));
        (out, BYTES.with(Cell::get))
    }
}

/// The decoder's allocation budget: the decoded values' in-memory form is larger than their
/// wire form (an Ed25519 key is 32 bytes on the wire and a decompressed point in memory, an
/// ML-KEM key carries its NTT form), but never by more than this factor, plus a fixed slack.
const ALLOC_FACTOR: usize = 8;
const ALLOC_SLACK: usize = 1024;

fn assert_alloc_bounded(input: &[u8], allocated: usize) {
    assert!(
        allocated <= ALLOC_FACTOR * input.len() + ALLOC_SLACK,
        "decoding {} bytes allocated {allocated}",
        input.len()
    );
}

/// Decodes with both decoders, checking the allocation bound and canonicity: whatever
/// decodes re-encodes to exactly the input.
fn decode_both(bytes: &[u8]) {
    let (client, allocated) = counting::measure(|| ClientFrame::from_bytes(bytes));
    assert_alloc_bounded(bytes, allocated);
    if let Ok(frame) = client {
        assert_eq!(
            frame.to_bytes(),
            bytes,
            "non-canonical client frame accepted"
        );
        frame.check_limits().unwrap();
    }
    let (server, allocated) = counting::measure(|| ServerFrame::from_bytes(bytes));
    assert_alloc_bounded(bytes, allocated);
    if let Ok(frame) = server {
        assert_eq!(
            frame.to_bytes(),
            bytes,
            "non-canonical server frame accepted"
        );
        frame.check_limits().unwrap();
    }
}

// ---- A pool of real keys, generated once ----------------------------------------------------

struct Pool {
    identities: Vec<IdentityKeyPair>,
    devices: Vec<LocalDevice>,
    signed_prekeys: Vec<SignedPrekey>,
    kem_prekeys: Vec<KemPrekey>,
    one_time_prekeys: Vec<OneTimePrekey>,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let mut rng = ChaCha20Rng::from_seed([0x5e; 32]);
    let identities: Vec<_> = (0..3)
        .map(|_| IdentityKeyPair::generate(&mut rng))
        .collect();
    let mut devices = Vec::new();
    for identity in &identities {
        for id in 1..=2 {
            let keys = DeviceKeyPair::generate(DeviceId::new(id).unwrap(), &mut rng);
            devices.push(LocalDevice::new(
                identity,
                keys,
                1_700_000_000 + u64::from(id),
            ));
        }
    }
    let signer = devices[0].keys.signing().clone();
    let signed_prekeys = (0..4)
        .map(|i| SignedPrekeySecret::generate(i, 1_700_000_000, &signer, &mut rng).1)
        .collect();
    // ML-KEM key generation is the slow part: four keys serve every case.
    let kem_prekeys = (0..4)
        .map(|i| KemPrekeySecret::generate(100 + i, i == 3, &signer, &mut rng).1)
        .collect();
    let one_time_prekeys = (0..8)
        .map(|i| OneTimePrekeySecret::generate(200 + i, &mut rng).1)
        .collect();
    Pool {
        identities,
        devices,
        signed_prekeys,
        kem_prekeys,
        one_time_prekeys,
    }
});

fn pool() -> &'static Pool {
    &POOL
}

// ---- Strategies -----------------------------------------------------------------------------

fn request_id() -> impl Strategy<Value = RequestId> {
    (1..=u32::MAX).prop_map(|id| RequestId::new(id).unwrap())
}

fn device() -> impl Strategy<Value = &'static LocalDevice> {
    (0..6usize).prop_map(|i| &pool().devices[i])
}

fn identity() -> impl Strategy<Value = &'static IdentityKeyPair> {
    (0..3usize).prop_map(|i| &pool().identities[i])
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    (1..=u32::MAX).prop_map(|id| DeviceId::new(id).unwrap())
}

fn signed_prekey() -> impl Strategy<Value = SignedPrekey> {
    (0..4usize).prop_map(|i| pool().signed_prekeys[i].clone())
}

fn kem_prekey() -> impl Strategy<Value = KemPrekey> {
    (0..4usize).prop_map(|i| pool().kem_prekeys[i].clone())
}

fn one_time_prekey() -> impl Strategy<Value = OneTimePrekey> {
    (0..8usize).prop_map(|i| pool().one_time_prekeys[i].clone())
}

fn handle() -> impl Strategy<Value = Handle> {
    "[a-z][a-z0-9_.]{2,31}".prop_map(|text| Handle::parse(&text).unwrap())
}

fn relay_id() -> impl Strategy<Value = RelayId> {
    prop_oneof![
        Just(RelayId::new("wss://relay.example/v1").unwrap()),
        vec(any::<u8>(), 1..=MAX_RELAY_ID_LEN).prop_map(|b| RelayId::new(b).unwrap()),
    ]
}

fn envelope_id() -> impl Strategy<Value = EnvelopeId> {
    any::<[u8; 16]>().prop_map(EnvelopeId::from_bytes)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..1500)
}

fn handle_claim() -> impl Strategy<Value = HandleClaim> {
    (identity(), handle(), any::<u64>())
        .prop_map(|(identity, handle, at)| HandleClaim::sign(identity, handle, at))
}

fn handle_release() -> impl Strategy<Value = HandleRelease> {
    (identity(), handle(), any::<u64>())
        .prop_map(|(identity, handle, at)| HandleRelease::sign(identity, handle, at))
}

fn reachability_record() -> impl Strategy<Value = ReachabilityRecord> {
    (
        identity(),
        any::<u64>(),
        vec(
            ("[a-z0-9]{1,12}", 1..=u16::MAX, any::<Option<[u8; 32]>>()),
            1..=4,
        ),
    )
        .prop_map(|(identity, sequence, relays)| {
            let relays = relays
                .into_iter()
                .enumerate()
                .map(|(i, (host, port, pin))| {
                    RelayEndpoint::new(&format!("wss://{host}{i}.example:{port}"), pin).unwrap()
                })
                .collect();
            ReachabilityRecord::sign(identity, sequence, relays).unwrap()
        })
}

fn post_secret(i: u8) -> Ed25519Secret {
    Ed25519Secret::from_seed(&[0x70 + i; 32])
}

fn post_key() -> impl Strategy<Value = PostKey> {
    (0..4u8).prop_map(|i| PostKey::of(&post_secret(i)))
}

fn group_id() -> impl Strategy<Value = GroupId> {
    any::<[u8; 32]>().prop_map(GroupId)
}

fn device_address() -> impl Strategy<Value = DeviceAddress> {
    (identity(), device_id()).prop_map(|(i, device_id)| DeviceAddress {
        identity: i.public_key(),
        device_id,
    })
}

fn subscription() -> impl Strategy<Value = Subscription> {
    (device_address(), any::<Option<[u8; 16]>>()).prop_map(|(device, token)| Subscription {
        device,
        token: token.map(DeliveryToken),
    })
}

fn key_package() -> impl Strategy<Value = KeyPackage> {
    vec(any::<u8>(), 1..300).prop_map(|b| KeyPackage::new(b).unwrap())
}

fn post_body() -> impl Strategy<Value = PostBody> {
    prop_oneof![
        Just(PostBody::Application),
        (
            post_key(),
            vec(subscription(), 0..6),
            vec(device_address(), 0..6)
        )
            .prop_map(|(next_post_key, subscribe, unsubscribe)| PostBody::Commit {
                next_post_key,
                subscribe,
                unsubscribe,
            }),
        vec(device_address(), 1..6).prop_map(|recipients| PostBody::Direct { recipients }),
    ]
}

fn group_post() -> impl Strategy<Value = GroupPost> {
    (0..4u8, group_id(), any::<u64>(), post_body(), payload()).prop_map(
        |(key, group_id, epoch, body, payload)| {
            GroupPost::sign(&post_secret(key), group_id, epoch, body, payload)
        },
    )
}

fn token_policy() -> impl Strategy<Value = TokenPolicy> {
    prop_oneof![Just(TokenPolicy::Open), Just(TokenPolicy::TokensRequired)]
}

fn bundle() -> impl Strategy<Value = PrekeyBundle> {
    (
        device(),
        signed_prekey(),
        kem_prekey(),
        proptest::option::of(one_time_prekey()),
    )
        .prop_map(|(device, spk, kem, otk)| PrekeyBundle {
            device: device.cert.certificate().clone(),
            signed_prekey: spk,
            kem_prekey: kem,
            one_time_prekey: otk,
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        proptest::sample::select(ErrorCode::ALL.to_vec()),
        Just(ErrorCode::Unknown(0)),
        (24..=u16::MAX).prop_map(ErrorCode::Unknown),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientFrame::Pong { nonce }),
        (device(), relay_id(), any::<[u8; 32]>()).prop_map(|(d, relay, nonce)| {
            ClientFrame::Auth(AuthProof::sign(
                d.keys.signing(),
                d.cert.certificate(),
                &relay,
                &nonce,
            ))
        }),
        (
            request_id(),
            proptest::option::of(signed_prekey()),
            vec(kem_prekey(), 0..4),
            vec(one_time_prekey(), 0..40),
        )
            .prop_map(
                |(request_id, spk, kems, otks)| ClientFrame::PublishPrekeys {
                    request_id,
                    signed_prekey: spk,
                    kem_prekeys: kems,
                    one_time_prekeys: otks,
                }
            ),
        (request_id(), identity(), device_id()).prop_map(|(request_id, i, device_id)| {
            ClientFrame::FetchBundle {
                request_id,
                identity: i.public_key(),
                device_id,
            }
        }),
        (request_id(), identity()).prop_map(|(request_id, i)| ClientFrame::ListDevices {
            request_id,
            identity: i.public_key(),
        }),
        (
            request_id(),
            vec((identity(), device_id(), payload()), 1..8)
        )
            .prop_map(|(request_id, envelopes)| ClientFrame::Send {
                request_id,
                envelopes: envelopes
                    .into_iter()
                    .map(|(i, device, payload)| OutgoingEnvelope {
                        recipient_identity: i.public_key(),
                        recipient_device: device,
                        payload,
                    })
                    .collect(),
            }),
        vec(envelope_id(), 1..50).prop_map(|envelope_ids| ClientFrame::Ack { envelope_ids }),
        (request_id(), handle_claim())
            .prop_map(|(request_id, claim)| ClientFrame::ClaimHandle { request_id, claim }),
        (request_id(), handle())
            .prop_map(|(request_id, handle)| ClientFrame::LookupHandle { request_id, handle }),
        (request_id(), handle_release()).prop_map(|(request_id, release)| {
            ClientFrame::ReleaseHandle {
                request_id,
                release,
            }
        }),
        (
            request_id(),
            vec(
                (
                    identity(),
                    device_id(),
                    any::<Option<[u8; 16]>>(),
                    payload()
                ),
                1..8
            )
        )
            .prop_map(|(request_id, envelopes)| ClientFrame::Deposit {
                request_id,
                envelopes: envelopes
                    .into_iter()
                    .map(|(i, device, token, payload)| DepositEnvelope {
                        recipient_identity: i.public_key(),
                        recipient_device: device,
                        token: token.map(DeliveryToken),
                        payload,
                    })
                    .collect(),
            }),
        (
            request_id(),
            token_policy(),
            vec(any::<[u8; 32]>(), 0..40),
            vec(any::<[u8; 32]>(), 0..40)
        )
            .prop_map(
                |(request_id, policy, add, revoke)| ClientFrame::SetDeliveryTokens {
                    request_id,
                    policy,
                    add,
                    revoke,
                }
            ),
        (request_id(), reachability_record()).prop_map(|(request_id, record)| {
            ClientFrame::PublishReachability { request_id, record }
        }),
        (request_id(), identity()).prop_map(|(request_id, i)| ClientFrame::FetchReachability {
            request_id,
            identity: i.public_key(),
        }),
        (
            request_id(),
            proptest::option::of(key_package()),
            vec(key_package(), 0..6)
        )
            .prop_map(|(request_id, last_resort, key_packages)| {
                ClientFrame::PublishKeyPackages {
                    request_id,
                    last_resort,
                    key_packages,
                }
            }),
        (request_id(), identity(), device_id()).prop_map(|(request_id, i, device_id)| {
            ClientFrame::FetchKeyPackage {
                request_id,
                identity: i.public_key(),
                device_id,
            }
        }),
        (
            request_id(),
            group_id(),
            any::<u64>(),
            post_key(),
            vec(subscription(), 1..8)
        )
            .prop_map(|(request_id, group_id, epoch, post_key, subscribe)| {
                ClientFrame::OpenGroup {
                    request_id,
                    group_id,
                    epoch,
                    post_key,
                    subscribe,
                }
            }),
        (request_id(), group_post())
            .prop_map(|(request_id, post)| ClientFrame::PostGroup { request_id, post }),
        (request_id(), group_id()).prop_map(|(request_id, group_id)| ClientFrame::LeaveGroup {
            request_id,
            group_id,
        }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        any::<u64>().prop_map(|nonce| ServerFrame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ServerFrame::Pong { nonce }),
        (relay_id(), any::<[u8; 32]>(), any::<u64>()).prop_map(|(relay_id, nonce, server_time)| {
            ServerFrame::Challenge {
                relay_id,
                nonce,
                server_time,
            }
        }),
        any::<u64>().prop_map(|server_time| ServerFrame::AuthOk { server_time }),
        (request_id(), bundle())
            .prop_map(|(request_id, bundle)| ServerFrame::Bundle { request_id, bundle }),
        (request_id(), vec(device(), 0..8)).prop_map(|(request_id, devices)| {
            ServerFrame::Devices {
                request_id,
                devices: devices
                    .into_iter()
                    .map(|d| d.cert.certificate().clone())
                    .collect(),
            }
        }),
        (request_id(), any::<u32>(), any::<u32>()).prop_map(
            |(request_id, one_time, kem_one_time)| ServerFrame::PrekeyCount {
                request_id,
                one_time,
                kem_one_time,
            }
        ),
        (request_id(), vec(envelope_id(), 1..=MAX_ENVELOPES_PER_SEND)).prop_map(
            |(request_id, envelope_ids)| ServerFrame::SendAck {
                request_id,
                envelope_ids,
            }
        ),
        (envelope_id(), any::<u64>(), payload()).prop_map(|(envelope_id, received_at, payload)| {
            ServerFrame::Deliver {
                envelope_id,
                received_at,
                payload,
            }
        }),
        (request_id(), proptest::option::of(handle_claim()))
            .prop_map(|(request_id, claim)| ServerFrame::HandleRecord { request_id, claim }),
        request_id().prop_map(|request_id| ServerFrame::Done { request_id }),
        (request_id(), proptest::option::of(reachability_record()))
            .prop_map(|(request_id, record)| ServerFrame::Reachability { request_id, record }),
        (request_id(), any::<u32>(), any::<bool>()).prop_map(
            |(request_id, count, has_last_resort)| ServerFrame::KeyPackageCount {
                request_id,
                count,
                has_last_resort,
            }
        ),
        (request_id(), key_package(), any::<bool>()).prop_map(
            |(request_id, key_package, last_resort)| ServerFrame::KeyPackage {
                request_id,
                key_package,
                last_resort,
            }
        ),
        (request_id(), any::<u64>(), any::<u64>()).prop_map(|(request_id, seq, epoch)| {
            ServerFrame::GroupPosted {
                request_id,
                seq,
                epoch,
            }
        }),
        (
            proptest::option::of(request_id()),
            error_code(),
            "[^\\p{Cc}]{0,60}"
        )
            .prop_map(|(request_id, code, message)| ServerFrame::Error {
                request_id,
                code,
                message,
            }),
    ]
}

/// Ways to damage a valid frame.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        1 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<Index>(), 1..8usize).prop_map(|(at, n)| Mutation::Remove(at, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(at, mask) => {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::Extend(more) => bytes.extend_from_slice(more),
            Mutation::Insert(at, more) => {
                let i = at.index(bytes.len());
                bytes.splice(i..i, more.iter().copied());
            }
            Mutation::Remove(at, n) => {
                let i = at.index(bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
        }
    }
    bytes
}

const CLIENT_TYPES: [u8; 20] = [
    0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
    0x1e, 0x1f, 0x20, 0x21,
];
const SERVER_TYPES: [u8; 16] = [
    0x01, 0x02, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        frame.check_limits().unwrap();
        let bytes = frame.to_bytes();
        prop_assert!(bytes.len() <= MAX_FRAME_LEN);
        prop_assert_eq!(bytes[0], FRAME_VERSION);
        prop_assert_eq!(bytes[1], frame.type_byte());
        let (decoded, allocated) = counting::measure(|| ClientFrame::from_bytes(&bytes));
        assert_alloc_bounded(&bytes, allocated);
        prop_assert_eq!(decoded.unwrap(), frame);
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        frame.check_limits().unwrap();
        let bytes = frame.to_bytes();
        prop_assert!(bytes.len() <= MAX_FRAME_LEN);
        prop_assert_eq!(bytes[0], FRAME_VERSION);
        prop_assert_eq!(bytes[1], frame.type_byte());
        let (decoded, allocated) = counting::measure(|| ServerFrame::from_bytes(&bytes));
        assert_alloc_bounded(&bytes, allocated);
        prop_assert_eq!(decoded.unwrap(), frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        decode_both(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        ty in proptest::sample::select(
            CLIENT_TYPES.iter().chain(&SERVER_TYPES).copied().collect::<Vec<u8>>()
        ),
        body in vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = vec![FRAME_VERSION, ty];
        bytes.extend_from_slice(&body);
        decode_both(&bytes);
    }

    #[test]
    fn mutated_client_frames_never_panic(
        frame in client_frame(),
        mutations in vec(mutation(), 1..4),
    ) {
        decode_both(&mutate(frame.to_bytes(), &mutations));
    }

    #[test]
    fn mutated_server_frames_never_panic(
        frame in server_frame(),
        mutations in vec(mutation(), 1..4),
    ) {
        decode_both(&mutate(frame.to_bytes(), &mutations));
    }
}

#[test]
fn every_truncation_of_every_frame_type_is_refused_as_truncated() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    // Every cut of short frames; a few hundred evenly spread cuts of long ones.
    let cuts = |len: usize| (0..len).step_by((len / 300).max(1)).chain([len - 1]);
    for _ in 0..200 {
        let frame = client_frame().new_tree(&mut runner).unwrap().current();
        seen.insert(frame.type_byte());
        let bytes = frame.to_bytes();
        for len in cuts(bytes.len()) {
            let err = ClientFrame::from_bytes(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "{} cut to {len}: {err:?}",
                frame.name()
            );
        }
    }
    for _ in 0..200 {
        let frame = server_frame().new_tree(&mut runner).unwrap().current();
        seen.insert(frame.type_byte());
        let bytes = frame.to_bytes();
        for len in cuts(bytes.len()) {
            let err = ServerFrame::from_bytes(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "{} cut to {len}: {err:?}",
                frame.name()
            );
        }
    }
    assert_eq!(seen.len(), 34, "every type byte exercised: {seen:x?}");
}

/// SPEC.md section 11: the request id a relay echoes for a frame that fails to decode.
#[test]
fn request_ids_are_read_from_undecodable_frames_where_the_header_allows() {
    let cases: [(&[u8], Option<u32>); 11] = [
        // A `Send` whose envelope list is garbage.
        (b"\x01\x14\x00\x00\x00\x07\xff\xff", Some(7)),
        // A truncated `FetchBundle`, and every other request type.
        (b"\x01\x12\x00\x00\x01\x00", Some(256)),
        (b"\x01\x18\xff\xff\xff\xff\x00", Some(u32::MAX)),
        // Request id 0 is no request.
        (b"\x01\x14\x00\x00\x00\x00\x00", None),
        // Another version: the layout is unknown.
        (b"\x02\x14\x00\x00\x00\x07", None),
        // Not request types: `Ack`, `Ping`, `Auth`, a relay frame.
        (b"\x01\x15\x00\x00\x00\x07", None),
        (b"\x01\x01\x00\x00\x00\x07", None),
        (b"\x01\x10\x00\x00\x00\x07", None),
        // Too short to hold an id.
        (b"\x01\x14\x00\x00\x07", None),
        // A `PostGroup` cut short, and a type byte past the last request type.
        (b"\x01\x20\x00\x00\x00\x05\x00", Some(5)),
        (b"\x01\x22\x00\x00\x00\x05\x00", None),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            ClientFrame::peek_request_id(bytes).map(RequestId::get),
            expected,
            "{bytes:02x?}"
        );
    }
    // Every request type byte is recognised, and agrees with the decoder on valid frames.
    for kind in [
        0x11u8, 0x12, 0x13, 0x14, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
        0x21,
    ] {
        assert_eq!(
            ClientFrame::peek_request_id(&[1, kind, 0, 0, 0, 9]).map(RequestId::get),
            Some(9)
        );
    }
    let valid = ClientFrame::FetchBundle {
        request_id: RequestId::new(77).unwrap(),
        identity: pool().identities[0].public_key(),
        device_id: DeviceId::new(3).unwrap(),
    };
    assert_eq!(
        ClientFrame::peek_request_id(&valid.to_bytes()),
        valid.request_id()
    );
}

#[test]
fn the_largest_frames_decode_within_the_allocation_bound() {
    let pool = pool();
    let publish = ClientFrame::PublishPrekeys {
        request_id: RequestId::new(1).unwrap(),
        signed_prekey: Some(pool.signed_prekeys[0].clone()),
        kem_prekeys: vec![pool.kem_prekeys[0].clone(); MAX_KEM_PREKEYS_PER_PUBLISH],
        one_time_prekeys: vec![pool.one_time_prekeys[0].clone(); MAX_ONE_TIME_PREKEYS_PER_PUBLISH],
    };
    // Many small envelopes: the most in-memory overhead per wire byte.
    let small_send = ClientFrame::Send {
        request_id: RequestId::new(2).unwrap(),
        envelopes: (0..MAX_ENVELOPES_PER_SEND)
            .map(|_| OutgoingEnvelope {
                recipient_identity: pool.identities[0].public_key(),
                recipient_device: DeviceId::new(1).unwrap(),
                payload: vec![1],
            })
            .collect(),
    };
    let big_send = ClientFrame::Send {
        request_id: RequestId::new(3).unwrap(),
        envelopes: (0..MAX_ENVELOPES_PER_SEND)
            .map(|_| OutgoingEnvelope {
                recipient_identity: pool.identities[1].public_key(),
                recipient_device: DeviceId::new(2).unwrap(),
                payload: vec![2; MAX_SEND_PAYLOAD_TOTAL / MAX_ENVELOPES_PER_SEND],
            })
            .collect(),
    };
    let ack = ClientFrame::Ack {
        envelope_ids: vec![EnvelopeId::from_bytes([9; 16]); MAX_ACK_IDS],
    };
    // Group frames with their longest lists: the most in-memory overhead per wire byte.
    let member = DeviceAddress {
        identity: pool.identities[0].public_key(),
        device_id: DeviceId::new(1).unwrap(),
    };
    let open = ClientFrame::OpenGroup {
        request_id: RequestId::new(6).unwrap(),
        group_id: GroupId([6; 32]),
        epoch: 0,
        post_key: PostKey::of(&post_secret(0)),
        subscribe: vec![
            Subscription {
                device: member,
                token: None,
            };
            MAX_GROUP_CHANGES
        ],
    };
    let commit = ClientFrame::PostGroup {
        request_id: RequestId::new(7).unwrap(),
        post: GroupPost::sign(
            &post_secret(0),
            GroupId([6; 32]),
            0,
            PostBody::Commit {
                next_post_key: PostKey::of(&post_secret(1)),
                subscribe: vec![
                    Subscription {
                        device: member,
                        token: None,
                    };
                    MAX_GROUP_CHANGES
                ],
                unsubscribe: vec![member; MAX_GROUP_CHANGES],
            },
            vec![1],
        ),
    };
    let key_packages = ClientFrame::PublishKeyPackages {
        request_id: RequestId::new(8).unwrap(),
        last_resort: None,
        key_packages: vec![KeyPackage::new(vec![1]).unwrap(); MAX_KEY_PACKAGES_PER_PUBLISH],
    };
    for frame in [
        publish,
        small_send,
        big_send,
        ack,
        open,
        commit,
        key_packages,
    ] {
        let bytes = frame.to_bytes();
        let (decoded, allocated) = counting::measure(|| ClientFrame::from_bytes(&bytes));
        assert_eq!(decoded.unwrap(), frame);
        assert_alloc_bounded(&bytes, allocated);
        eprintln!(
            "{}: {} bytes decoded with {allocated} bytes allocated",
            frame.name(),
            bytes.len()
        );
    }
    let devices = ServerFrame::Devices {
        request_id: RequestId::new(4).unwrap(),
        devices: vec![pool.devices[0].cert.certificate().clone(); MAX_DEVICES_PER_LIST],
    };
    let bundle = ServerFrame::Bundle {
        request_id: RequestId::new(5).unwrap(),
        bundle: PrekeyBundle {
            device: pool.devices[1].cert.certificate().clone(),
            signed_prekey: pool.signed_prekeys[1].clone(),
            kem_prekey: pool.kem_prekeys[1].clone(),
            one_time_prekey: Some(pool.one_time_prekeys[1].clone()),
        },
    };
    for frame in [devices, bundle] {
        let bytes = frame.to_bytes();
        let (decoded, allocated) = counting::measure(|| ServerFrame::from_bytes(&bytes));
        assert_eq!(decoded.unwrap(), frame);
        assert_alloc_bounded(&bytes, allocated);
        eprintln!(
            "{}: {} bytes decoded with {allocated} bytes allocated",
            frame.name(),
            bytes.len()
        );
    }
}

// ---- Vectors --------------------------------------------------------------------------------
//
// `testdata/frames.json` holds, for every frame type, the inputs a frame is built from (key
// seeds, not keys, so another implementation derives the keys itself) and the frame's exact
// encoding. Inputs are drawn from ChaCha20 seeded with SHA-256 of the vector's name; with
// `CHATD_REGENERATE_VECTORS=1` this test rewrites the file, otherwise the file is authoritative
// and must equal what the code produces.

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/frames.json");

const VECTOR_NAMES: [&str; 46] = [
    "client/ping",
    "client/pong",
    "client/auth",
    "client/publish_prekeys",
    "client/publish_prekeys_empty",
    "client/fetch_bundle",
    "client/list_devices",
    "client/send",
    "client/ack",
    "client/claim_handle",
    "client/lookup_handle",
    "client/release_handle",
    "client/deposit",
    "client/set_delivery_tokens",
    "client/publish_reachability",
    "client/fetch_reachability",
    "client/publish_key_packages",
    "client/publish_key_packages_empty",
    "client/fetch_key_package",
    "client/open_group",
    "client/post_group_application",
    "client/post_group_commit",
    "client/post_group_direct",
    "client/leave_group",
    "server/ping",
    "server/pong",
    "server/challenge",
    "server/auth_ok",
    "server/bundle",
    "server/bundle_without_one_time_prekey",
    "server/devices",
    "server/prekey_count",
    "server/send_ack",
    "server/deliver",
    "server/handle_record",
    "server/handle_record_empty",
    "server/done",
    "server/error",
    "server/error_unassigned_code",
    "server/reachability",
    "server/reachability_empty",
    "server/key_package_count",
    "server/key_package",
    "server/group_posted",
    "group_delivery/commit",
    "post_signature/application",
];

/// A frame of either direction, or one of the two group encodings that are not frames: the
/// group delivery (a `Deliver` payload) and a post's signature.
#[derive(Debug, PartialEq)]
enum AnyFrame {
    Client(ClientFrame),
    Server(ServerFrame),
    Delivery(GroupDelivery),
    PostSignature([u8; 64]),
}

impl AnyFrame {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Client(f) => f.to_bytes(),
            Self::Server(f) => f.to_bytes(),
            Self::Delivery(d) => d.to_bytes(),
            Self::PostSignature(s) => s.to_vec(),
        }
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Self, DecodeError> {
        if name.starts_with("client/") {
            ClientFrame::from_bytes(bytes).map(Self::Client)
        } else if name.starts_with("group_delivery/") {
            GroupDelivery::from_bytes(bytes).map(Self::Delivery)
        } else if name.starts_with("post_signature/") {
            bytes
                .try_into()
                .map(Self::PostSignature)
                .map_err(|_| DecodeError::Invalid("signature length"))
        } else {
            ServerFrame::from_bytes(bytes).map(Self::Server)
        }
    }
}

/// An RNG that hands out exactly the given bytes: it feeds a recorded seed to the `generate`
/// functions, which draw their key material from an RNG.
struct Replay<'a>(&'a [u8]);

impl rand_core::TryRng for Replay<'_> {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let (head, tail) = self.0.split_at(dst.len());
        dst.copy_from_slice(head);
        self.0 = tail;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Replay<'_> {}

fn replay<T>(seed: &[u8], f: impl FnOnce(&mut Replay<'_>) -> T) -> T {
    let mut rng = Replay(seed);
    let out = f(&mut rng);
    assert!(rng.0.is_empty(), "generator did not draw the whole seed");
    out
}

// Input generation (only ever from the per-vector ChaCha20 stream).

fn hex_bytes<const N: usize>(rng: &mut ChaCha20Rng) -> Value {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    json!(hex::encode(b))
}

/// A u64 below 2^53, so the JSON number is exact in every JSON implementation.
fn small_u64(rng: &mut ChaCha20Rng) -> Value {
    json!(rng.next_u64() >> 11)
}

fn request_id_input(rng: &mut ChaCha20Rng) -> Value {
    json!(rng.next_u32() | 1)
}

fn device_input(rng: &mut ChaCha20Rng, identity_seed: &Value, device_id: u32) -> Value {
    json!({
        "identity_seed": identity_seed,
        "device_id": device_id,
        "signing_seed": hex_bytes::<32>(rng),
        "dh_secret": hex_bytes::<32>(rng),
        "created_at": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
    })
}

fn signed_prekey_input(rng: &mut ChaCha20Rng) -> Value {
    json!({
        "id": rng.next_u32(),
        "secret": hex_bytes::<32>(rng),
        "created_at": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
    })
}

fn kem_prekey_input(rng: &mut ChaCha20Rng, last_resort: bool) -> Value {
    json!({ "id": rng.next_u32(), "last_resort": last_resort, "seed": hex_bytes::<64>(rng) })
}

fn one_time_prekey_input(rng: &mut ChaCha20Rng) -> Value {
    json!({ "id": rng.next_u32(), "secret": hex_bytes::<32>(rng) })
}

fn payload_input(rng: &mut ChaCha20Rng) -> Value {
    let mut b = vec![0u8; 16 + (rng.next_u32() % 48) as usize];
    rng.fill_bytes(&mut b);
    json!(hex::encode(b))
}

fn claim_input(rng: &mut ChaCha20Rng, handle: &str) -> Value {
    json!({
        "identity_seed": hex_bytes::<32>(rng),
        "handle": handle,
        "issued_at": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
    })
}

fn reachability_input(rng: &mut ChaCha20Rng) -> Value {
    json!({
        "identity_seed": hex_bytes::<32>(rng),
        "sequence": small_u64(rng),
        "relays": [
            { "url": "wss://[2001:db8::1]:7420/v1", "tls_pin": hex_bytes::<32>(rng) },
            { "url": "wss://relay.example/v1", "tls_pin": Value::Null },
        ],
    })
}

fn subscription_input(rng: &mut ChaCha20Rng, with_token: bool) -> Value {
    json!({
        "identity_seed": hex_bytes::<32>(rng),
        "device_id": 1 + rng.next_u32() % 16,
        "token": if with_token { hex_bytes::<16>(rng) } else { Value::Null },
    })
}

fn device_address_input(rng: &mut ChaCha20Rng) -> Value {
    json!({
        "identity_seed": hex_bytes::<32>(rng),
        "device_id": 1 + rng.next_u32() % 16,
    })
}

fn generate_inputs(name: &str) -> Value {
    let seed: [u8; 32] = sha2::Sha256::digest(name.as_bytes()).into();
    let rng = &mut ChaCha20Rng::from_seed(seed);
    match name {
        "client/ping" | "client/pong" | "server/ping" | "server/pong" => {
            json!({ "nonce": small_u64(rng) })
        }
        "client/auth" => {
            let identity_seed = hex_bytes::<32>(rng);
            json!({
                "device": device_input(rng, &identity_seed, 1),
                "relay_id": "wss://relay.example/v1",
                "nonce": hex_bytes::<32>(rng),
            })
        }
        "client/publish_prekeys" => {
            let identity_seed = hex_bytes::<32>(rng);
            json!({
                "request_id": request_id_input(rng),
                "device": device_input(rng, &identity_seed, 2),
                "signed_prekey": signed_prekey_input(rng),
                "kem_prekeys": [kem_prekey_input(rng, false), kem_prekey_input(rng, true)],
                "one_time_prekeys": [one_time_prekey_input(rng), one_time_prekey_input(rng)],
            })
        }
        "client/publish_prekeys_empty" => json!({ "request_id": request_id_input(rng) }),
        "client/fetch_bundle" => json!({
            "request_id": request_id_input(rng),
            "identity_seed": hex_bytes::<32>(rng),
            "device_id": 1 + rng.next_u32() % 16,
        }),
        "client/list_devices" => json!({
            "request_id": request_id_input(rng),
            "identity_seed": hex_bytes::<32>(rng),
        }),
        "client/send" => {
            let request_id = request_id_input(rng);
            let envelopes: Vec<Value> = (1..=2)
                .map(|device_id| {
                    json!({
                        "identity_seed": hex_bytes::<32>(rng),
                        "device_id": device_id,
                        "payload": payload_input(rng),
                    })
                })
                .collect();
            json!({ "request_id": request_id, "envelopes": envelopes })
        }
        "client/ack" => json!({
            "envelope_ids": [hex_bytes::<16>(rng), hex_bytes::<16>(rng), hex_bytes::<16>(rng)],
        }),
        "client/claim_handle" | "client/release_handle" => json!({
            "request_id": request_id_input(rng),
            "statement": claim_input(rng, "alice.example"),
        }),
        "client/lookup_handle" => json!({
            "request_id": request_id_input(rng),
            "handle": "bob_42",
        }),
        "client/deposit" => {
            let request_id = request_id_input(rng);
            let identity_seed = hex_bytes::<32>(rng);
            let envelopes: Vec<Value> = (1..=2)
                .map(|device_id| {
                    json!({
                        "identity_seed": identity_seed,
                        "device_id": device_id,
                        "token": if device_id == 1 { hex_bytes::<16>(rng) } else { Value::Null },
                        "payload": payload_input(rng),
                    })
                })
                .collect();
            json!({ "request_id": request_id, "envelopes": envelopes })
        }
        "client/set_delivery_tokens" => json!({
            "request_id": request_id_input(rng),
            "policy": 1,
            "add_tokens": [hex_bytes::<16>(rng), hex_bytes::<16>(rng)],
            "revoke_tokens": [hex_bytes::<16>(rng)],
        }),
        "client/publish_reachability" | "server/reachability" => json!({
            "request_id": request_id_input(rng),
            "record": reachability_input(rng),
        }),
        "server/reachability_empty" => json!({
            "request_id": request_id_input(rng),
            "record": Value::Null,
        }),
        "client/fetch_reachability" => json!({
            "request_id": request_id_input(rng),
            "identity_seed": hex_bytes::<32>(rng),
        }),
        "client/publish_key_packages" => json!({
            "request_id": request_id_input(rng),
            "last_resort": payload_input(rng),
            "key_packages": [payload_input(rng), payload_input(rng)],
        }),
        "client/publish_key_packages_empty" => json!({
            "request_id": request_id_input(rng),
            "last_resort": Value::Null,
            "key_packages": [],
        }),
        "client/fetch_key_package" => json!({
            "request_id": request_id_input(rng),
            "identity_seed": hex_bytes::<32>(rng),
            "device_id": 1 + rng.next_u32() % 16,
        }),
        "client/open_group" => json!({
            "request_id": request_id_input(rng),
            "group_id": hex_bytes::<32>(rng),
            "epoch": small_u64(rng),
            "post_key_seed": hex_bytes::<32>(rng),
            "subscribe": [subscription_input(rng, true), subscription_input(rng, false)],
        }),
        "client/post_group_application"
        | "client/post_group_commit"
        | "client/post_group_direct" => {
            let request_id = request_id_input(rng);
            let post_key_seed = hex_bytes::<32>(rng);
            let group_id = hex_bytes::<32>(rng);
            let epoch = small_u64(rng);
            let mut inputs = json!({
                "request_id": request_id,
                "post_key_seed": post_key_seed,
                "group_id": group_id,
                "epoch": epoch,
            });
            match name {
                "client/post_group_application" => inputs["kind"] = json!("application"),
                "client/post_group_commit" => {
                    inputs["kind"] = json!("commit");
                    inputs["next_post_key_seed"] = hex_bytes::<32>(rng);
                    inputs["subscribe"] = json!([subscription_input(rng, true)]);
                    inputs["unsubscribe"] = json!([device_address_input(rng)]);
                }
                _ => {
                    inputs["kind"] = json!("direct");
                    inputs["recipients"] =
                        json!([device_address_input(rng), device_address_input(rng)]);
                }
            }
            inputs["payload"] = payload_input(rng);
            inputs
        }
        "client/leave_group" => json!({
            "request_id": request_id_input(rng),
            "group_id": hex_bytes::<32>(rng),
        }),
        "server/key_package_count" => json!({
            "request_id": request_id_input(rng),
            "count": rng.next_u32() % 200,
            "has_last_resort": true,
        }),
        "server/key_package" => json!({
            "request_id": request_id_input(rng),
            "key_package": payload_input(rng),
            "last_resort": false,
        }),
        "server/group_posted" => json!({
            "request_id": request_id_input(rng),
            "seq": small_u64(rng),
            "epoch": small_u64(rng),
        }),
        "group_delivery/commit" => json!({
            "group_id": hex_bytes::<32>(rng),
            "seq": small_u64(rng),
            "epoch": small_u64(rng),
            "kind": "commit",
            "payload": payload_input(rng),
        }),
        "post_signature/application" => {
            let post_key_seed = hex_bytes::<32>(rng);
            let group_id = hex_bytes::<32>(rng);
            let epoch = small_u64(rng);
            let payload = payload_input(rng);
            // The signed body: every field of a `PostGroup` from the group id through the
            // payload, as encoded (SPEC.md 10.10).
            let post = GroupPost::sign(
                &post_secret_of(&post_key_seed),
                GroupId(array_of(&group_id)),
                u64_of(&epoch),
                PostBody::Application,
                bytes_of(&payload),
            );
            let frame = ClientFrame::PostGroup {
                request_id: RequestId::new(1).unwrap(),
                post,
            }
            .to_bytes();
            let body = &frame[6..frame.len() - 64];
            json!({
                "post_key_seed": post_key_seed,
                "post_key": hex::encode(post_secret_of(&post_key_seed).public_key().as_bytes()),
                "body": hex::encode(body),
            })
        }
        "server/challenge" => json!({
            "relay_id": "wss://relay.example/v1",
            "nonce": hex_bytes::<32>(rng),
            "server_time": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
        }),
        "server/auth_ok" => json!({
            "server_time": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
        }),
        "server/bundle" | "server/bundle_without_one_time_prekey" => {
            let request_id = request_id_input(rng);
            let identity_seed = hex_bytes::<32>(rng);
            let with_otk = name == "server/bundle";
            json!({
                "request_id": request_id,
                "device": device_input(rng, &identity_seed, 3),
                "signed_prekey": signed_prekey_input(rng),
                "kem_prekey": kem_prekey_input(rng, false),
                "one_time_prekey": if with_otk { one_time_prekey_input(rng) } else { Value::Null },
            })
        }
        "server/devices" => {
            let request_id = request_id_input(rng);
            let identity_seed = hex_bytes::<32>(rng);
            json!({
                "request_id": request_id,
                "devices": [
                    device_input(rng, &identity_seed, 1),
                    device_input(rng, &identity_seed, 2),
                ],
            })
        }
        "server/prekey_count" => json!({
            "request_id": request_id_input(rng),
            "one_time": rng.next_u32() % 1000,
            "kem_one_time": rng.next_u32() % 100,
        }),
        "server/send_ack" => json!({
            "request_id": request_id_input(rng),
            "envelope_ids": [hex_bytes::<16>(rng), hex_bytes::<16>(rng)],
        }),
        "server/deliver" => json!({
            "envelope_id": hex_bytes::<16>(rng),
            "received_at": 1_700_000_000 + u64::from(rng.next_u32() % 1_000_000),
            "payload": payload_input(rng),
        }),
        "server/handle_record" => json!({
            "request_id": request_id_input(rng),
            "claim": claim_input(rng, "carol"),
        }),
        "server/handle_record_empty" => json!({
            "request_id": request_id_input(rng),
            "claim": Value::Null,
        }),
        "server/done" => json!({ "request_id": request_id_input(rng) }),
        "server/error" => json!({
            "request_id": request_id_input(rng),
            "code": ErrorCode::MailboxFull.to_u16(),
            "message": "mailbox full: 10000 envelopes",
        }),
        "server/error_unassigned_code" => json!({
            "request_id": 0,
            "code": 0xbeef,
            "message": "unassigned codes survive — and so does UTF-8",
        }),
        other => panic!("no generator for vector {other}"),
    }
}

// Frame building (only ever from the recorded inputs).

fn bytes_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn array_of<const N: usize>(v: &Value) -> [u8; N] {
    bytes_of(v).try_into().expect("right length")
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().expect("integer")
}

fn u32_of(v: &Value) -> u32 {
    u32::try_from(u64_of(v)).expect("u32")
}

fn request_id_of(v: &Value) -> RequestId {
    RequestId::new(u32_of(v)).expect("nonzero request id")
}

fn identity_of(v: &Value) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&array_of(v))
}

fn device_of(v: &Value) -> LocalDevice {
    let identity = identity_of(&v["identity_seed"]);
    let keys = DeviceKeyPair::from_seeds(
        DeviceId::new(u32_of(&v["device_id"])).unwrap(),
        &array_of(&v["signing_seed"]),
        &array_of(&v["dh_secret"]),
    );
    LocalDevice::new(&identity, keys, u64_of(&v["created_at"]))
}

fn signed_prekey_of(v: &Value, device: &LocalDevice) -> SignedPrekey {
    replay(&bytes_of(&v["secret"]), |rng| {
        SignedPrekeySecret::generate(
            u32_of(&v["id"]),
            u64_of(&v["created_at"]),
            device.keys.signing(),
            rng,
        )
        .1
    })
}

fn kem_prekey_of(v: &Value, device: &LocalDevice) -> KemPrekey {
    replay(&bytes_of(&v["seed"]), |rng| {
        KemPrekeySecret::generate(
            u32_of(&v["id"]),
            v["last_resort"].as_bool().expect("bool"),
            device.keys.signing(),
            rng,
        )
        .1
    })
}

fn one_time_prekey_of(v: &Value) -> OneTimePrekey {
    replay(&bytes_of(&v["secret"]), |rng| {
        OneTimePrekeySecret::generate(u32_of(&v["id"]), rng).1
    })
}

fn handle_of(v: &Value) -> Handle {
    Handle::parse(v.as_str().expect("string")).expect("valid handle")
}

fn relay_id_of(v: &Value) -> RelayId {
    RelayId::new(v.as_str().expect("string").as_bytes()).unwrap()
}

fn reachability_of(v: &Value) -> ReachabilityRecord {
    let relays = v["relays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let pin = &r["tls_pin"];
            RelayEndpoint::new(
                r["url"].as_str().unwrap(),
                (!pin.is_null()).then(|| array_of(pin)),
            )
            .unwrap()
        })
        .collect();
    ReachabilityRecord::sign(
        &identity_of(&v["identity_seed"]),
        u64_of(&v["sequence"]),
        relays,
    )
    .unwrap()
}

fn digests_of(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| DeliveryToken(array_of(t)).digest())
        .collect()
}

fn post_secret_of(v: &Value) -> Ed25519Secret {
    Ed25519Secret::from_seed(&array_of(v))
}

fn device_address_of(v: &Value) -> DeviceAddress {
    DeviceAddress {
        identity: identity_of(&v["identity_seed"]).public_key(),
        device_id: DeviceId::new(u32_of(&v["device_id"])).unwrap(),
    }
}

fn subscriptions_of(v: &Value) -> Vec<Subscription> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| Subscription {
            device: device_address_of(s),
            token: (!s["token"].is_null()).then(|| DeliveryToken(array_of(&s["token"]))),
        })
        .collect()
}

fn device_addresses_of(v: &Value) -> Vec<DeviceAddress> {
    v.as_array()
        .unwrap()
        .iter()
        .map(device_address_of)
        .collect()
}

fn kind_of(v: &Value) -> PostKind {
    match v.as_str().expect("string") {
        "application" => PostKind::Application,
        "commit" => PostKind::Commit,
        "direct" => PostKind::Direct,
        other => panic!("unknown post kind {other}"),
    }
}

fn key_package_of(v: &Value) -> KeyPackage {
    KeyPackage::new(bytes_of(v)).unwrap()
}

fn build(name: &str, i: &Value) -> AnyFrame {
    use AnyFrame::{Client, Server};
    match name {
        "client/publish_key_packages" | "client/publish_key_packages_empty" => {
            Client(ClientFrame::PublishKeyPackages {
                request_id: request_id_of(&i["request_id"]),
                last_resort: (!i["last_resort"].is_null())
                    .then(|| key_package_of(&i["last_resort"])),
                key_packages: i["key_packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(key_package_of)
                    .collect(),
            })
        }
        "client/fetch_key_package" => Client(ClientFrame::FetchKeyPackage {
            request_id: request_id_of(&i["request_id"]),
            identity: identity_of(&i["identity_seed"]).public_key(),
            device_id: DeviceId::new(u32_of(&i["device_id"])).unwrap(),
        }),
        "client/open_group" => Client(ClientFrame::OpenGroup {
            request_id: request_id_of(&i["request_id"]),
            group_id: GroupId(array_of(&i["group_id"])),
            epoch: u64_of(&i["epoch"]),
            post_key: PostKey::of(&post_secret_of(&i["post_key_seed"])),
            subscribe: subscriptions_of(&i["subscribe"]),
        }),
        "client/post_group_application"
        | "client/post_group_commit"
        | "client/post_group_direct" => {
            let body = match kind_of(&i["kind"]) {
                PostKind::Application => PostBody::Application,
                PostKind::Commit => PostBody::Commit {
                    next_post_key: PostKey::of(&post_secret_of(&i["next_post_key_seed"])),
                    subscribe: subscriptions_of(&i["subscribe"]),
                    unsubscribe: device_addresses_of(&i["unsubscribe"]),
                },
                PostKind::Direct => PostBody::Direct {
                    recipients: device_addresses_of(&i["recipients"]),
                },
            };
            Client(ClientFrame::PostGroup {
                request_id: request_id_of(&i["request_id"]),
                post: GroupPost::sign(
                    &post_secret_of(&i["post_key_seed"]),
                    GroupId(array_of(&i["group_id"])),
                    u64_of(&i["epoch"]),
                    body,
                    bytes_of(&i["payload"]),
                ),
            })
        }
        "client/leave_group" => Client(ClientFrame::LeaveGroup {
            request_id: request_id_of(&i["request_id"]),
            group_id: GroupId(array_of(&i["group_id"])),
        }),
        "server/key_package_count" => Server(ServerFrame::KeyPackageCount {
            request_id: request_id_of(&i["request_id"]),
            count: u32_of(&i["count"]),
            has_last_resort: i["has_last_resort"].as_bool().unwrap(),
        }),
        "server/key_package" => Server(ServerFrame::KeyPackage {
            request_id: request_id_of(&i["request_id"]),
            key_package: key_package_of(&i["key_package"]),
            last_resort: i["last_resort"].as_bool().unwrap(),
        }),
        "server/group_posted" => Server(ServerFrame::GroupPosted {
            request_id: request_id_of(&i["request_id"]),
            seq: u64_of(&i["seq"]),
            epoch: u64_of(&i["epoch"]),
        }),
        "group_delivery/commit" => AnyFrame::Delivery(GroupDelivery {
            group_id: GroupId(array_of(&i["group_id"])),
            seq: u64_of(&i["seq"]),
            epoch: u64_of(&i["epoch"]),
            kind: kind_of(&i["kind"]),
            payload: bytes_of(&i["payload"]),
        }),
        "post_signature/application" => AnyFrame::PostSignature(
            post_secret_of(&i["post_key_seed"])
                .sign(&post_signed_bytes(&bytes_of(&i["body"])))
                .0,
        ),
        "client/ping" => Client(ClientFrame::Ping {
            nonce: u64_of(&i["nonce"]),
        }),
        "client/pong" => Client(ClientFrame::Pong {
            nonce: u64_of(&i["nonce"]),
        }),
        "client/auth" => {
            let device = device_of(&i["device"]);
            Client(ClientFrame::Auth(AuthProof::sign(
                device.keys.signing(),
                device.cert.certificate(),
                &relay_id_of(&i["relay_id"]),
                &array_of(&i["nonce"]),
            )))
        }
        "client/publish_prekeys" => {
            let device = device_of(&i["device"]);
            Client(ClientFrame::PublishPrekeys {
                request_id: request_id_of(&i["request_id"]),
                signed_prekey: Some(signed_prekey_of(&i["signed_prekey"], &device)),
                kem_prekeys: i["kem_prekeys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| kem_prekey_of(k, &device))
                    .collect(),
                one_time_prekeys: i["one_time_prekeys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(one_time_prekey_of)
                    .collect(),
            })
        }
        "client/publish_prekeys_empty" => Client(ClientFrame::PublishPrekeys {
            request_id: request_id_of(&i["request_id"]),
            signed_prekey: None,
            kem_prekeys: Vec::new(),
            one_time_prekeys: Vec::new(),
        }),
        "client/fetch_bundle" => Client(ClientFrame::FetchBundle {
            request_id: request_id_of(&i["request_id"]),
            identity: identity_of(&i["identity_seed"]).public_key(),
            device_id: DeviceId::new(u32_of(&i["device_id"])).unwrap(),
        }),
        "client/list_devices" => Client(ClientFrame::ListDevices {
            request_id: request_id_of(&i["request_id"]),
            identity: identity_of(&i["identity_seed"]).public_key(),
        }),
        "client/send" => Client(ClientFrame::Send {
            request_id: request_id_of(&i["request_id"]),
            envelopes: i["envelopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| OutgoingEnvelope {
                    recipient_identity: identity_of(&e["identity_seed"]).public_key(),
                    recipient_device: DeviceId::new(u32_of(&e["device_id"])).unwrap(),
                    payload: bytes_of(&e["payload"]),
                })
                .collect(),
        }),
        "client/ack" => Client(ClientFrame::Ack {
            envelope_ids: i["envelope_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| EnvelopeId::from_bytes(array_of(id)))
                .collect(),
        }),
        "client/claim_handle" => {
            let s = &i["statement"];
            Client(ClientFrame::ClaimHandle {
                request_id: request_id_of(&i["request_id"]),
                claim: HandleClaim::sign(
                    &identity_of(&s["identity_seed"]),
                    handle_of(&s["handle"]),
                    u64_of(&s["issued_at"]),
                ),
            })
        }
        "client/lookup_handle" => Client(ClientFrame::LookupHandle {
            request_id: request_id_of(&i["request_id"]),
            handle: handle_of(&i["handle"]),
        }),
        "client/release_handle" => {
            let s = &i["statement"];
            Client(ClientFrame::ReleaseHandle {
                request_id: request_id_of(&i["request_id"]),
                release: HandleRelease::sign(
                    &identity_of(&s["identity_seed"]),
                    handle_of(&s["handle"]),
                    u64_of(&s["issued_at"]),
                ),
            })
        }
        "client/deposit" => Client(ClientFrame::Deposit {
            request_id: request_id_of(&i["request_id"]),
            envelopes: i["envelopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| DepositEnvelope {
                    recipient_identity: identity_of(&e["identity_seed"]).public_key(),
                    recipient_device: DeviceId::new(u32_of(&e["device_id"])).unwrap(),
                    token: (!e["token"].is_null()).then(|| DeliveryToken(array_of(&e["token"]))),
                    payload: bytes_of(&e["payload"]),
                })
                .collect(),
        }),
        "client/set_delivery_tokens" => Client(ClientFrame::SetDeliveryTokens {
            request_id: request_id_of(&i["request_id"]),
            policy: match u64_of(&i["policy"]) {
                0 => TokenPolicy::Open,
                _ => TokenPolicy::TokensRequired,
            },
            add: digests_of(&i["add_tokens"]),
            revoke: digests_of(&i["revoke_tokens"]),
        }),
        "client/publish_reachability" => Client(ClientFrame::PublishReachability {
            request_id: request_id_of(&i["request_id"]),
            record: reachability_of(&i["record"]),
        }),
        "client/fetch_reachability" => Client(ClientFrame::FetchReachability {
            request_id: request_id_of(&i["request_id"]),
            identity: identity_of(&i["identity_seed"]).public_key(),
        }),
        "server/reachability" | "server/reachability_empty" => Server(ServerFrame::Reachability {
            request_id: request_id_of(&i["request_id"]),
            record: (!i["record"].is_null()).then(|| reachability_of(&i["record"])),
        }),
        "server/ping" => Server(ServerFrame::Ping {
            nonce: u64_of(&i["nonce"]),
        }),
        "server/pong" => Server(ServerFrame::Pong {
            nonce: u64_of(&i["nonce"]),
        }),
        "server/challenge" => Server(ServerFrame::Challenge {
            relay_id: relay_id_of(&i["relay_id"]),
            nonce: array_of(&i["nonce"]),
            server_time: u64_of(&i["server_time"]),
        }),
        "server/auth_ok" => Server(ServerFrame::AuthOk {
            server_time: u64_of(&i["server_time"]),
        }),
        "server/bundle" | "server/bundle_without_one_time_prekey" => {
            let device = device_of(&i["device"]);
            let otk = &i["one_time_prekey"];
            Server(ServerFrame::Bundle {
                request_id: request_id_of(&i["request_id"]),
                bundle: PrekeyBundle {
                    device: device.cert.certificate().clone(),
                    signed_prekey: signed_prekey_of(&i["signed_prekey"], &device),
                    kem_prekey: kem_prekey_of(&i["kem_prekey"], &device),
                    one_time_prekey: (!otk.is_null()).then(|| one_time_prekey_of(otk)),
                },
            })
        }
        "server/devices" => Server(ServerFrame::Devices {
            request_id: request_id_of(&i["request_id"]),
            devices: i["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| device_of(d).cert.certificate().clone())
                .collect(),
        }),
        "server/prekey_count" => Server(ServerFrame::PrekeyCount {
            request_id: request_id_of(&i["request_id"]),
            one_time: u32_of(&i["one_time"]),
            kem_one_time: u32_of(&i["kem_one_time"]),
        }),
        "server/send_ack" => Server(ServerFrame::SendAck {
            request_id: request_id_of(&i["request_id"]),
            envelope_ids: i["envelope_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| EnvelopeId::from_bytes(array_of(id)))
                .collect(),
        }),
        "server/deliver" => Server(ServerFrame::Deliver {
            envelope_id: EnvelopeId::from_bytes(array_of(&i["envelope_id"])),
            received_at: u64_of(&i["received_at"]),
            payload: bytes_of(&i["payload"]),
        }),
        "server/handle_record" | "server/handle_record_empty" => {
            let c = &i["claim"];
            Server(ServerFrame::HandleRecord {
                request_id: request_id_of(&i["request_id"]),
                claim: (!c.is_null()).then(|| {
                    HandleClaim::sign(
                        &identity_of(&c["identity_seed"]),
                        handle_of(&c["handle"]),
                        u64_of(&c["issued_at"]),
                    )
                }),
            })
        }
        "server/done" => Server(ServerFrame::Done {
            request_id: request_id_of(&i["request_id"]),
        }),
        "server/error" | "server/error_unassigned_code" => Server(ServerFrame::Error {
            request_id: RequestId::new(u32_of(&i["request_id"])),
            code: ErrorCode::from_u16(u16::try_from(u64_of(&i["code"])).unwrap()),
            message: i["message"].as_str().unwrap().to_owned(),
        }),
        other => panic!("no builder for vector {other}"),
    }
}

/// The layout of `testdata/frames.json`.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct VectorFile {
    description: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Vector {
    name: String,
    inputs: Value,
    hex: String,
}

fn generate_vectors() -> VectorFile {
    let vectors = VECTOR_NAMES
        .iter()
        .map(|name| {
            let inputs = generate_inputs(name);
            let hex = hex::encode(build(name, &inputs).to_bytes());
            Vector {
                name: (*name).to_owned(),
                inputs,
                hex,
            }
        })
        .collect();
    VectorFile {
        description: "chatd relay frames (protocol/SPEC.md section 10). Each vector builds one \
            frame from `inputs` and gives its exact encoding. Keys come from seeds: identity and \
            device signing keys are Ed25519 seeds (RFC 8032), `dh_secret` and prekey `secret`s \
            are X25519 scalars (RFC 7748, clamped when used), KEM `seed`s are ML-KEM-1024 \
            `d || z` seeds (FIPS 203 KeyGen_internal). A device certificate is signed by the \
            identity key with `created_at`; signed and KEM prekeys by the device signing key; \
            handle claims and releases by the identity key (`statement`); reachability records by the \
            identity key (`record`). `set_delivery_tokens` lists tokens; the frame carries \
            their digests, SHA-256(\"chatd/v1/delivery-token\" || token). Group post keys come \
            from Ed25519 seeds (`post_key_seed`, `next_post_key_seed`); a `PostGroup` is signed \
            by its post key over \"chatd/v1/group-post\\0\" || the frame body from group_id \
            through payload (SPEC.md 10.10). Byte strings are hex; integers are below 2^53. \
            Names starting `client/` decode as client frames, `server/` as relay frames, \
            `group_delivery/` as a group delivery (the `Deliver` payload of a group post), and \
            `post_signature/` give the Ed25519 signature by `post_key_seed` over \
            \"chatd/v1/group-post\\0\" || `body`."
            .to_owned(),
        vectors,
    }
}

#[test]
fn frame_vectors() {
    let generated = generate_vectors();
    if std::env::var("CHATD_REGENERATE_VECTORS").as_deref() == Ok("1") {
        let mut text = serde_json::to_string_pretty(&generated).unwrap();
        text.push('\n');
        std::fs::create_dir_all(std::path::Path::new(VECTORS_PATH).parent().unwrap()).unwrap();
        std::fs::write(VECTORS_PATH, text).unwrap();
    }
    let text = std::fs::read_to_string(VECTORS_PATH)
        .expect("testdata/frames.json (run with CHATD_REGENERATE_VECTORS=1 to create it)");
    let file: VectorFile = serde_json::from_str(&text).unwrap();

    let mut client_types = BTreeSet::new();
    let mut server_types = BTreeSet::new();
    for v in &file.vectors {
        let name = v.name.as_str();
        let expected = hex::decode(&v.hex).unwrap();
        // Re-encode from the recorded inputs.
        let frame = build(name, &v.inputs);
        assert_eq!(
            hex::encode(frame.to_bytes()),
            v.hex,
            "{name}: encoding differs"
        );
        // Decode the recorded bytes.
        let decoded = AnyFrame::decode(name, &expected).unwrap();
        assert_eq!(decoded, frame, "{name}: decoding differs");
        // Signed contents verify, so the vectors pin signatures that mean something.
        match &decoded {
            AnyFrame::Client(ClientFrame::Auth(proof)) => {
                let i = &v.inputs;
                proof
                    .verify(&relay_id_of(&i["relay_id"]), &array_of(&i["nonce"]))
                    .unwrap();
            }
            AnyFrame::Client(ClientFrame::ClaimHandle { claim, .. }) => claim.verify().unwrap(),
            AnyFrame::Client(ClientFrame::ReleaseHandle { release, .. }) => {
                release.verify().unwrap()
            }
            AnyFrame::Server(ServerFrame::Bundle { bundle, .. }) => {
                bundle.verify(None).unwrap();
            }
            AnyFrame::Server(ServerFrame::Devices { devices, .. }) => {
                for d in devices {
                    d.verify().unwrap();
                }
            }
            AnyFrame::Server(ServerFrame::HandleRecord {
                claim: Some(claim), ..
            }) => claim.verify().unwrap(),
            AnyFrame::Client(ClientFrame::PublishReachability { record, .. })
            | AnyFrame::Server(ServerFrame::Reachability {
                record: Some(record),
                ..
            }) => record.verify().unwrap(),
            AnyFrame::Client(ClientFrame::PostGroup { post, .. }) => {
                post.verify(&PostKey::of(&post_secret_of(&v.inputs["post_key_seed"])))
                    .unwrap();
            }
            AnyFrame::PostSignature(signature) => {
                // The body is a post's signed fields: with the signature behind it, it decodes
                // as a post that verifies under the recorded post key.
                let i = &v.inputs;
                let key = PostKey::from_bytes(&array_of(&i["post_key"])).unwrap();
                assert_eq!(key, PostKey::of(&post_secret_of(&i["post_key_seed"])));
                let mut frame = vec![1, 0x20, 0, 0, 0, 1];
                frame.extend_from_slice(&bytes_of(&i["body"]));
                frame.extend_from_slice(signature);
                let Ok(ClientFrame::PostGroup { post, .. }) = ClientFrame::from_bytes(&frame)
                else {
                    panic!("{name}: the body is not a post's");
                };
                post.verify(&key).unwrap();
            }
            _ => {}
        }
        match decoded {
            AnyFrame::Client(f) => {
                client_types.insert(f.type_byte());
            }
            AnyFrame::Server(f) => {
                server_types.insert(f.type_byte());
            }
            AnyFrame::Delivery(_) | AnyFrame::PostSignature(_) => {}
        }
    }
    assert_eq!(client_types, CLIENT_TYPES.into_iter().collect());
    assert_eq!(server_types, SERVER_TYPES.into_iter().collect());
    assert_eq!(
        file, generated,
        "testdata/frames.json is not what the generator produces; if the change is \
         intended, regenerate with CHATD_REGENERATE_VECTORS=1"
    );
}
