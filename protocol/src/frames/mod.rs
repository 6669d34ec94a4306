//! The relay wire protocol: the frames a device and a relay exchange over one WebSocket, and
//! their byte codec (SPEC.md sections 10 and 11).
//!
//! Every frame is one binary WebSocket message, `version u8 (= 1) || type u8 || body`.
//! [`ClientFrame`] is what a device sends, [`ServerFrame`] what a relay sends; both implement
//! [`Encode`] and [`Decode`]. Requests carry a [`RequestId`] the client picks and the relay
//! echoes in the reply (or in an `Error`).
//!
//! Decoding is total and bounded: a frame longer than [`MAX_FRAME_LEN`] is refused before any
//! parsing, every count and length is checked against its limit and against the bytes that
//! remain before anything is reserved, and trailing bytes are an error. The encoding is
//! canonical: a byte string that decodes re-encodes to exactly itself.
//!
//! The relay sees only what it routes: identity keys, device ids, prekeys, handles, opaque
//! payloads, and for groups (`group.rs`, SPEC.md 10.10) group ids, post keys, subscriber
//! devices and opaque KeyPackages and posts. What a payload contains is the business of the sealed envelope layer.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod auth;
mod error_code;
mod group;
mod handle;
mod ids;

use std::borrow::Cow;

pub use auth::{
    AUTH_NONCE_LEN, AuthError, AuthProof, MAX_RELAY_ID_LEN, RelayId, auth_signed_bytes, verify_auth,
};
pub use error_code::ErrorCode;
pub use group::{
    DeviceAddress, GROUP_DELIVERY_HEADER_LEN, GROUP_ID_LEN, GroupId, GroupPost, KeyPackage,
    MAX_GROUP_CHANGES, MAX_GROUP_POST_LEN, MAX_KEY_PACKAGE_LEN, MAX_KEY_PACKAGES_PER_PUBLISH,
    PostBody, PostKey, PostKind, Subscription, post_signed_bytes,
};
pub use handle::{
    Claim, HANDLE_MAX_LEN, HANDLE_MIN_LEN, Handle, HandleClaim, HandleError, HandleRelease,
    HandleStatement, Release, StatementKind,
};
pub use ids::{ENVELOPE_ID_LEN, EnvelopeId, RequestId};

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::kem::KEM_PUBLIC_LEN;
use crate::identity::{DeviceCertificate, DeviceId, IdentityKey};
use crate::prekeys::{KemPrekey, OneTimePrekey, PrekeyBundle, SignedPrekey};
use crate::reachability::{
    DELIVERY_TOKEN_DIGEST_LEN, DELIVERY_TOKEN_LEN, DeliveryToken, MAX_REACHABILITY_LEN,
    ReachabilityRecord,
};
use ids::{decode_optional_request_id, encode_optional_request_id};

/// The version byte every frame starts with.
pub const FRAME_VERSION: u8 = 1;

/// Longest envelope payload (`Send` and `Deliver`), in bytes: 256 KiB.
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024;
/// Most envelopes in one `Send` (and ids in its `SendAck`).
pub const MAX_ENVELOPES_PER_SEND: usize = 64;
/// Most payload bytes, summed over its envelopes, in one `Send`: 1 MiB.
pub const MAX_SEND_PAYLOAD_TOTAL: usize = 1024 * 1024;
/// Most envelope ids in one `Ack`.
pub const MAX_ACK_IDS: usize = 1024;
/// Most KEM prekeys in one `PublishPrekeys`.
pub const MAX_KEM_PREKEYS_PER_PUBLISH: usize = 100;
/// Most one-time X25519 prekeys in one `PublishPrekeys`.
pub const MAX_ONE_TIME_PREKEYS_PER_PUBLISH: usize = 1000;
/// Most device certificates in one `Devices` reply.
pub const MAX_DEVICES_PER_LIST: usize = 64;
/// Longest `Error` message, in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;
/// Most token digests in each list of one `SetDeliveryTokens`.
pub const MAX_TOKENS_PER_UPDATE: usize = 1024;
/// Longest frame, in bytes: 1 MiB + 4 KiB. Every frame within the limits above fits (the
/// largest is a full `Send`, 1,051,144 bytes); a decoder refuses anything longer unread.
pub const MAX_FRAME_LEN: usize = 1024 * 1024 + 4 * 1024;

/// The `what` of frame-level decode errors (version, length, type).
pub(crate) const FRAME_WHAT: &str = "frame";

/// Type bytes (SPEC.md section 10.1). 0x01-0x0f: either direction; 0x10-0x7f: client to
/// relay; 0x80-0xff: relay to client.
mod frame_type {
    pub(super) const PING: u8 = 0x01;
    pub(super) const PONG: u8 = 0x02;
    pub(super) const AUTH: u8 = 0x10;
    pub(super) const PUBLISH_PREKEYS: u8 = 0x11;
    pub(super) const FETCH_BUNDLE: u8 = 0x12;
    pub(super) const LIST_DEVICES: u8 = 0x13;
    pub(super) const SEND: u8 = 0x14;
    pub(super) const ACK: u8 = 0x15;
    pub(super) const CLAIM_HANDLE: u8 = 0x16;
    pub(super) const LOOKUP_HANDLE: u8 = 0x17;
    pub(super) const RELEASE_HANDLE: u8 = 0x18;
    pub(super) const DEPOSIT: u8 = 0x19;
    pub(super) const SET_DELIVERY_TOKENS: u8 = 0x1a;
    pub(super) const PUBLISH_REACHABILITY: u8 = 0x1b;
    pub(super) const FETCH_REACHABILITY: u8 = 0x1c;
    pub(super) const PUBLISH_KEY_PACKAGES: u8 = 0x1d;
    pub(super) const FETCH_KEY_PACKAGE: u8 = 0x1e;
    pub(super) const OPEN_GROUP: u8 = 0x1f;
    pub(super) const POST_GROUP: u8 = 0x20;
    pub(super) const LEAVE_GROUP: u8 = 0x21;
    pub(super) const CHALLENGE: u8 = 0x80;
    pub(super) const AUTH_OK: u8 = 0x81;
    pub(super) const BUNDLE: u8 = 0x82;
    pub(super) const DEVICES: u8 = 0x83;
    pub(super) const PREKEY_COUNT: u8 = 0x84;
    pub(super) const SEND_ACK: u8 = 0x85;
    pub(super) const DELIVER: u8 = 0x86;
    pub(super) const HANDLE_RECORD: u8 = 0x87;
    pub(super) const DONE: u8 = 0x88;
    pub(super) const ERROR: u8 = 0x89;
    pub(super) const REACHABILITY: u8 = 0x8a;
    pub(super) const KEY_PACKAGE_COUNT: u8 = 0x8b;
    pub(super) const KEY_PACKAGE: u8 = 0x8c;
    pub(super) const GROUP_POSTED: u8 = 0x8d;
}

/// Encoded sizes of the structures frames carry, for the limits and the allocation checks.
mod wire_len {
    use super::*;

    pub(super) const HEADER: usize = 2;
    pub(super) const REQUEST_ID: usize = 4;
    pub(super) const COUNT: usize = 2;
    pub(super) const SIGNATURE: usize = 64;
    /// `DeviceCertificate`: version, identity, device id, signing key, `EncodeEC(dh)`,
    /// created_at, signature.
    pub(super) const CERTIFICATE: usize = 1 + 32 + 4 + 32 + 33 + 8 + SIGNATURE;
    /// `SignedPrekey`: id, `EncodeEC(key)`, created_at, signature.
    pub(super) const SIGNED_PREKEY: usize = 4 + 33 + 8 + SIGNATURE;
    /// `KemPrekey`: id, last-resort flag, `EncodeKEM(key)`, signature.
    pub(super) const KEM_PREKEY: usize = 4 + 1 + 1 + KEM_PUBLIC_LEN + SIGNATURE;
    /// `OneTimePrekey`: id, `EncodeEC(key)`.
    pub(super) const ONE_TIME_PREKEY: usize = 4 + 33;
    /// `PrekeyBundle` with a one-time prekey.
    pub(super) const BUNDLE: usize =
        1 + CERTIFICATE + SIGNED_PREKEY + KEM_PREKEY + 1 + ONE_TIME_PREKEY;
    /// `OutgoingEnvelope` without its payload: identity, device id, payload length.
    pub(super) const ENVELOPE_OVERHEAD: usize = 32 + 4 + 4;
    /// A handle claim or release with the longest handle.
    pub(super) const HANDLE_STATEMENT: usize = 2 + HANDLE_MAX_LEN + 32 + 8 + SIGNATURE;
    /// `DepositEnvelope` without its payload or token: identity, device id, token presence,
    /// payload length.
    pub(super) const DEPOSIT_OVERHEAD: usize = 32 + 4 + 1 + 4;

    pub(super) const MAX_AUTH: usize = HEADER + CERTIFICATE + SIGNATURE;
    pub(super) const MAX_PUBLISH: usize = HEADER
        + REQUEST_ID
        + 1
        + SIGNED_PREKEY
        + COUNT
        + MAX_KEM_PREKEYS_PER_PUBLISH * KEM_PREKEY
        + COUNT
        + MAX_ONE_TIME_PREKEYS_PER_PUBLISH * ONE_TIME_PREKEY;
    pub(super) const MAX_SEND: usize = HEADER
        + REQUEST_ID
        + COUNT
        + MAX_ENVELOPES_PER_SEND * ENVELOPE_OVERHEAD
        + MAX_SEND_PAYLOAD_TOTAL;
    pub(super) const MAX_ACK: usize = HEADER + COUNT + MAX_ACK_IDS * ENVELOPE_ID_LEN;
    pub(super) const MAX_CLAIM: usize = HEADER + REQUEST_ID + HANDLE_STATEMENT;
    pub(super) const MAX_CHALLENGE: usize = HEADER + 2 + MAX_RELAY_ID_LEN + AUTH_NONCE_LEN + 8;
    pub(super) const MAX_BUNDLE: usize = HEADER + REQUEST_ID + BUNDLE;
    pub(super) const MAX_DEVICES: usize =
        HEADER + REQUEST_ID + COUNT + MAX_DEVICES_PER_LIST * CERTIFICATE;
    pub(super) const MAX_SEND_ACK: usize =
        HEADER + REQUEST_ID + COUNT + MAX_ENVELOPES_PER_SEND * ENVELOPE_ID_LEN;
    pub(super) const MAX_DELIVER: usize = HEADER + ENVELOPE_ID_LEN + 8 + 4 + MAX_PAYLOAD_LEN;
    pub(super) const MAX_HANDLE_RECORD: usize = HEADER + REQUEST_ID + 1 + HANDLE_STATEMENT;
    pub(super) const MAX_ERROR: usize = HEADER + REQUEST_ID + 2 + 2 + MAX_ERROR_MESSAGE_LEN;
    pub(super) const MAX_DEPOSIT: usize = HEADER
        + REQUEST_ID
        + COUNT
        + MAX_ENVELOPES_PER_SEND * (DEPOSIT_OVERHEAD + DELIVERY_TOKEN_LEN)
        + MAX_SEND_PAYLOAD_TOTAL;
    pub(super) const MAX_SET_TOKENS: usize =
        HEADER + REQUEST_ID + 1 + 2 * (COUNT + MAX_TOKENS_PER_UPDATE * DELIVERY_TOKEN_DIGEST_LEN);
    pub(super) const MAX_PUBLISH_REACHABILITY: usize = HEADER + REQUEST_ID + MAX_REACHABILITY_LEN;
    pub(super) const MAX_REACHABILITY: usize = HEADER + REQUEST_ID + 1 + MAX_REACHABILITY_LEN;
    /// A `bytes16` KeyPackage of the largest size.
    pub(super) const KEY_PACKAGE: usize = 2 + MAX_KEY_PACKAGE_LEN;
    pub(super) const MAX_PUBLISH_KEY_PACKAGES: usize =
        HEADER + REQUEST_ID + 1 + KEY_PACKAGE + COUNT + MAX_KEY_PACKAGES_PER_PUBLISH * KEY_PACKAGE;
    pub(super) const MAX_OPEN_GROUP: usize = HEADER
        + REQUEST_ID
        + GROUP_ID_LEN
        + 8
        + 32
        + COUNT
        + MAX_GROUP_CHANGES * group::SUBSCRIPTION_MAX_LEN;
    /// Every list at its largest, which no valid kind allows at once: an upper bound.
    pub(super) const MAX_POST_GROUP: usize = HEADER
        + REQUEST_ID
        + GROUP_ID_LEN
        + 8
        + 1
        + 1
        + 32
        + COUNT
        + MAX_GROUP_CHANGES * group::SUBSCRIPTION_MAX_LEN
        + 2 * (COUNT + MAX_GROUP_CHANGES * group::DEVICE_ADDRESS_LEN)
        + 4
        + MAX_GROUP_POST_LEN
        + SIGNATURE;
    pub(super) const MAX_KEY_PACKAGE_FRAME: usize = HEADER + REQUEST_ID + KEY_PACKAGE + 1;

    // Every frame within the per-field limits fits in MAX_FRAME_LEN (checked at compile time).
    const _: () = {
        assert!(MAX_AUTH <= MAX_FRAME_LEN);
        assert!(MAX_PUBLISH <= MAX_FRAME_LEN);
        assert!(MAX_SEND <= MAX_FRAME_LEN);
        assert!(MAX_ACK <= MAX_FRAME_LEN);
        assert!(MAX_CLAIM <= MAX_FRAME_LEN);
        assert!(MAX_CHALLENGE <= MAX_FRAME_LEN);
        assert!(MAX_BUNDLE <= MAX_FRAME_LEN);
        assert!(MAX_DEVICES <= MAX_FRAME_LEN);
        assert!(MAX_SEND_ACK <= MAX_FRAME_LEN);
        assert!(MAX_DELIVER <= MAX_FRAME_LEN);
        assert!(MAX_HANDLE_RECORD <= MAX_FRAME_LEN);
        assert!(MAX_ERROR <= MAX_FRAME_LEN);
        assert!(MAX_DEPOSIT <= MAX_FRAME_LEN);
        assert!(MAX_SET_TOKENS <= MAX_FRAME_LEN);
        assert!(MAX_PUBLISH_REACHABILITY <= MAX_FRAME_LEN);
        assert!(MAX_REACHABILITY <= MAX_FRAME_LEN);
        assert!(MAX_PUBLISH_KEY_PACKAGES <= MAX_FRAME_LEN);
        assert!(MAX_OPEN_GROUP <= MAX_FRAME_LEN);
        assert!(MAX_POST_GROUP <= MAX_FRAME_LEN);
        assert!(MAX_KEY_PACKAGE_FRAME <= MAX_FRAME_LEN);
        assert!(MAX_SEND == 1_051_144);
        assert!(MAX_DEPOSIT == 1_052_232);
    };
}

/// Why a frame built in memory breaks a protocol limit (API misuse, as opposed to a peer's
/// malformed bytes, which are a [`DecodeError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A count or length is outside the range the field allows.
    #[error("{what} is {len}, outside the allowed {min}..={max}")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// The count or length found.
        len: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },
}

fn check_range(what: &'static str, len: usize, min: usize, max: usize) -> Result<(), FrameError> {
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(FrameError::OutOfRange {
            what,
            len,
            min,
            max,
        })
    }
}

/// One envelope in a `Send`: the recipient device's mailbox and the sealed payload, which the
/// relay stores and forwards without looking inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEnvelope {
    /// The recipient's identity key.
    pub recipient_identity: IdentityKey,
    /// The recipient device.
    pub recipient_device: DeviceId,
    /// The sealed envelope, 1 to [`MAX_PAYLOAD_LEN`] bytes.
    pub payload: Vec<u8>,
}

impl Encode for OutgoingEnvelope {
    fn encode(&self, w: &mut Writer) {
        self.recipient_identity.encode(w);
        self.recipient_device.encode(w);
        w.bytes32(&self.payload);
    }
}

impl Decode for OutgoingEnvelope {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            recipient_identity: IdentityKey::decode(r)?,
            recipient_device: DeviceId::decode(r)?,
            payload: decode_payload(r)?,
        })
    }
}

/// One envelope in a `Deposit`: an `OutgoingEnvelope` with the recipient's delivery token for
/// the sender, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositEnvelope {
    /// The recipient's identity key.
    pub recipient_identity: IdentityKey,
    /// The recipient device.
    pub recipient_device: DeviceId,
    /// The token the recipient gave the sender (SPEC.md 10.9); `None` from a stranger.
    pub token: Option<DeliveryToken>,
    /// The sealed envelope, 1 to [`MAX_PAYLOAD_LEN`] bytes.
    pub payload: Vec<u8>,
}

impl Encode for DepositEnvelope {
    fn encode(&self, w: &mut Writer) {
        self.recipient_identity.encode(w);
        self.recipient_device.encode(w);
        w.option(self.token.as_ref());
        w.bytes32(&self.payload);
    }
}

impl Decode for DepositEnvelope {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            recipient_identity: IdentityKey::decode(r)?,
            recipient_device: DeviceId::decode(r)?,
            token: r.option("delivery token presence")?,
            payload: decode_payload(r)?,
        })
    }
}

/// Whom an account's relay admits envelopes from (SPEC.md 10.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPolicy {
    /// `0`: everyone; envelopes without a valid token (strangers) at the relay's stranger rate.
    Open,
    /// `1`: only envelopes with a valid token; the others are refused (`token_required`).
    TokensRequired,
}

impl Encode for TokenPolicy {
    fn encode(&self, w: &mut Writer) {
        w.u8(match self {
            Self::Open => 0,
            Self::TokensRequired => 1,
        });
    }
}

impl Decode for TokenPolicy {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Self::Open),
            1 => Ok(Self::TokensRequired),
            tag => Err(DecodeError::UnknownTag {
                what: "token policy",
                tag,
            }),
        }
    }
}

/// A frame a device sends to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Frames live briefly, one at a time; boxing buys nothing.
pub enum ClientFrame {
    /// `0x01`: asks the relay for a `Pong` with the same nonce.
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// `0x02`: answers a relay's `Ping`.
    Pong {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// `0x10`: answers the relay's `Challenge`; must be the first frame a device sends.
    Auth(AuthProof),
    /// `0x11`: stores prekeys for the authenticated device; answered with `PrekeyCount`.
    /// A publish with nothing in it just asks for the counts.
    PublishPrekeys {
        /// Echoed in the reply.
        request_id: RequestId,
        /// A new current signed prekey, replacing the previous one.
        signed_prekey: Option<SignedPrekey>,
        /// KEM prekeys to add (at most [`MAX_KEM_PREKEYS_PER_PUBLISH`]); a last-resort one
        /// replaces the previous last-resort key.
        kem_prekeys: Vec<KemPrekey>,
        /// One-time X25519 prekeys to add (at most [`MAX_ONE_TIME_PREKEYS_PER_PUBLISH`]).
        one_time_prekeys: Vec<OneTimePrekey>,
    },
    /// `0x12`: asks for a prekey bundle of one device, consuming one of its one-time prekeys;
    /// answered with `Bundle`.
    FetchBundle {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The account.
        identity: IdentityKey,
        /// The device.
        device_id: DeviceId,
    },
    /// `0x13`: asks for the certificates of an account's devices; answered with `Devices`.
    ListDevices {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The account.
        identity: IdentityKey,
    },
    /// `0x14`: hands the relay envelopes to store in device mailboxes; answered with `SendAck`
    /// once all of them are durable, or with an `Error` and none stored.
    Send {
        /// Echoed in the reply.
        request_id: RequestId,
        /// 1 to [`MAX_ENVELOPES_PER_SEND`] envelopes, at most [`MAX_SEND_PAYLOAD_TOTAL`]
        /// payload bytes in all.
        envelopes: Vec<OutgoingEnvelope>,
    },
    /// `0x15`: tells the relay these delivered envelopes are safely stored by the device and
    /// may be deleted. Not answered.
    Ack {
        /// 1 to [`MAX_ACK_IDS`] ids.
        envelope_ids: Vec<EnvelopeId>,
    },
    /// `0x16`: claims a handle for the authenticated identity; answered with `Done`.
    ClaimHandle {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The signed claim.
        claim: HandleClaim,
    },
    /// `0x17`: asks who holds a handle; answered with `HandleRecord`.
    LookupHandle {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The handle.
        handle: Handle,
    },
    /// `0x18`: gives up a handle the authenticated identity holds; answered with `Done`.
    ReleaseHandle {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The signed release.
        release: HandleRelease,
    },
    /// `0x19`: hands the relay envelopes for its own mailboxes, each with the recipient's
    /// delivery token for the sender if it has one; allowed without `Auth`. Answered like
    /// `Send`.
    Deposit {
        /// Echoed in the reply.
        request_id: RequestId,
        /// 1 to [`MAX_ENVELOPES_PER_SEND`] envelopes, at most [`MAX_SEND_PAYLOAD_TOTAL`]
        /// payload bytes in all.
        envelopes: Vec<DepositEnvelope>,
    },
    /// `0x1a`: sets the authenticated account's token policy and adds or revokes token
    /// digests; answered with `Done`.
    SetDeliveryTokens {
        /// Echoed in the reply.
        request_id: RequestId,
        /// Whom the relay admits from now on.
        policy: TokenPolicy,
        /// Digests to accept (at most [`MAX_TOKENS_PER_UPDATE`]).
        add: Vec<[u8; DELIVERY_TOKEN_DIGEST_LEN]>,
        /// Digests to revoke: their envelopes are dropped unseen (at most
        /// [`MAX_TOKENS_PER_UPDATE`]).
        revoke: Vec<[u8; DELIVERY_TOKEN_DIGEST_LEN]>,
    },
    /// `0x1b`: stores the authenticated account's reachability record, for
    /// `FetchReachability`; answered with `Done`.
    PublishReachability {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The record, signed by the account's identity key.
        record: ReachabilityRecord,
    },
    /// `0x1c`: asks for an account's reachability record; allowed without `Auth`. Answered
    /// with `Reachability`.
    FetchReachability {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The account.
        identity: IdentityKey,
    },
    /// `0x1d`: adds KeyPackages to the authenticated device's pool and replaces its
    /// last-resort one; answered with `KeyPackageCount`. An empty publish asks for the count.
    PublishKeyPackages {
        /// Echoed in the reply.
        request_id: RequestId,
        /// A new last-resort KeyPackage, handed out when the pool is empty and never removed.
        last_resort: Option<KeyPackage>,
        /// KeyPackages to add, first in first out (at most [`MAX_KEY_PACKAGES_PER_PUBLISH`]).
        key_packages: Vec<KeyPackage>,
    },
    /// `0x1e`: takes the oldest KeyPackage of a device's pool (or its last-resort one);
    /// allowed without `Auth`. Answered with `KeyPackage`.
    FetchKeyPackage {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The account.
        identity: IdentityKey,
        /// The device.
        device_id: DeviceId,
    },
    /// `0x1f`: creates a group at the relay; allowed without `Auth`. Answered with
    /// `GroupPosted` (seq 0).
    OpenGroup {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The new group's id.
        group_id: GroupId,
        /// The group's epoch from now on.
        epoch: u64,
        /// The post key of `epoch`.
        post_key: PostKey,
        /// The first subscribers, 1 to [`MAX_GROUP_CHANGES`].
        subscribe: Vec<Subscription>,
    },
    /// `0x20`: a signed post to a group, fanned out to its subscribers' mailboxes; allowed
    /// without `Auth`. Answered with `GroupPosted` once durable.
    PostGroup {
        /// Echoed in the reply (not signed).
        request_id: RequestId,
        /// The post.
        post: GroupPost,
    },
    /// `0x21`: removes the authenticated device from a group's subscribers; answered with
    /// `Done`.
    LeaveGroup {
        /// Echoed in the reply.
        request_id: RequestId,
        /// The group.
        group_id: GroupId,
    },
}

impl ClientFrame {
    /// The frame's type byte.
    pub fn type_byte(&self) -> u8 {
        use frame_type::*;
        match self {
            Self::Ping { .. } => PING,
            Self::Pong { .. } => PONG,
            Self::Auth(_) => AUTH,
            Self::PublishPrekeys { .. } => PUBLISH_PREKEYS,
            Self::FetchBundle { .. } => FETCH_BUNDLE,
            Self::ListDevices { .. } => LIST_DEVICES,
            Self::Send { .. } => SEND,
            Self::Ack { .. } => ACK,
            Self::ClaimHandle { .. } => CLAIM_HANDLE,
            Self::LookupHandle { .. } => LOOKUP_HANDLE,
            Self::ReleaseHandle { .. } => RELEASE_HANDLE,
            Self::Deposit { .. } => DEPOSIT,
            Self::SetDeliveryTokens { .. } => SET_DELIVERY_TOKENS,
            Self::PublishReachability { .. } => PUBLISH_REACHABILITY,
            Self::FetchReachability { .. } => FETCH_REACHABILITY,
            Self::PublishKeyPackages { .. } => PUBLISH_KEY_PACKAGES,
            Self::FetchKeyPackage { .. } => FETCH_KEY_PACKAGE,
            Self::OpenGroup { .. } => OPEN_GROUP,
            Self::PostGroup { .. } => POST_GROUP,
            Self::LeaveGroup { .. } => LEAVE_GROUP,
        }
    }

    /// The frame type's snake_case name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
            Self::Auth(_) => "auth",
            Self::PublishPrekeys { .. } => "publish_prekeys",
            Self::FetchBundle { .. } => "fetch_bundle",
            Self::ListDevices { .. } => "list_devices",
            Self::Send { .. } => "send",
            Self::Ack { .. } => "ack",
            Self::ClaimHandle { .. } => "claim_handle",
            Self::LookupHandle { .. } => "lookup_handle",
            Self::ReleaseHandle { .. } => "release_handle",
            Self::Deposit { .. } => "deposit",
            Self::SetDeliveryTokens { .. } => "set_delivery_tokens",
            Self::PublishReachability { .. } => "publish_reachability",
            Self::FetchReachability { .. } => "fetch_reachability",
            Self::PublishKeyPackages { .. } => "publish_key_packages",
            Self::FetchKeyPackage { .. } => "fetch_key_package",
            Self::OpenGroup { .. } => "open_group",
            Self::PostGroup { .. } => "post_group",
            Self::LeaveGroup { .. } => "leave_group",
        }
    }

    /// The request id of a request frame; `None` for `Ping`, `Pong`, `Auth` and `Ack`.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::Ping { .. } | Self::Pong { .. } | Self::Auth(_) | Self::Ack { .. } => None,
            Self::PublishPrekeys { request_id, .. }
            | Self::FetchBundle { request_id, .. }
            | Self::ListDevices { request_id, .. }
            | Self::Send { request_id, .. }
            | Self::ClaimHandle { request_id, .. }
            | Self::LookupHandle { request_id, .. }
            | Self::ReleaseHandle { request_id, .. }
            | Self::Deposit { request_id, .. }
            | Self::SetDeliveryTokens { request_id, .. }
            | Self::PublishReachability { request_id, .. }
            | Self::FetchReachability { request_id, .. }
            | Self::PublishKeyPackages { request_id, .. }
            | Self::FetchKeyPackage { request_id, .. }
            | Self::OpenGroup { request_id, .. }
            | Self::PostGroup { request_id, .. }
            | Self::LeaveGroup { request_id, .. } => Some(*request_id),
        }
    }

    /// The request id of a client frame read from its first six bytes, without decoding the
    /// rest: version 1, a request type byte (`0x11`-`0x14`, `0x16`-`0x21`) and a non-zero
    /// `u32`. A relay
    /// echoes it in the `Error` for a frame that fails to decode (SPEC.md section 11);
    /// `None` when those bytes do not say which request it was.
    pub fn peek_request_id(bytes: &[u8]) -> Option<RequestId> {
        use frame_type::*;
        let [version, kind, a, b, c, d, ..] = *bytes else {
            return None;
        };
        let is_request = matches!(
            kind,
            PUBLISH_PREKEYS
                | FETCH_BUNDLE
                | LIST_DEVICES
                | SEND
                | CLAIM_HANDLE
                | LOOKUP_HANDLE
                | RELEASE_HANDLE
                | DEPOSIT
                | SET_DELIVERY_TOKENS
                | PUBLISH_REACHABILITY
                | FETCH_REACHABILITY
                | PUBLISH_KEY_PACKAGES
                | FETCH_KEY_PACKAGE
                | OPEN_GROUP
                | POST_GROUP
                | LEAVE_GROUP
        );
        if version != FRAME_VERSION || !is_request {
            return None;
        }
        RequestId::new(u32::from_be_bytes([a, b, c, d]))
    }

    /// Checks the counts and lengths the types alone do not bound. A frame that passes
    /// encodes to at most [`MAX_FRAME_LEN`] bytes and decodes back to itself; one that fails
    /// would be refused by the relay.
    pub fn check_limits(&self) -> Result<(), FrameError> {
        match self {
            Self::PublishPrekeys {
                kem_prekeys,
                one_time_prekeys,
                ..
            } => {
                check_range(
                    "KEM prekey count",
                    kem_prekeys.len(),
                    0,
                    MAX_KEM_PREKEYS_PER_PUBLISH,
                )?;
                check_range(
                    "one-time prekey count",
                    one_time_prekeys.len(),
                    0,
                    MAX_ONE_TIME_PREKEYS_PER_PUBLISH,
                )
            }
            Self::Send { envelopes, .. } => {
                check_envelopes(envelopes.iter().map(|e| e.payload.len()), envelopes.len())
            }
            Self::Deposit { envelopes, .. } => {
                check_envelopes(envelopes.iter().map(|e| e.payload.len()), envelopes.len())
            }
            Self::SetDeliveryTokens { add, revoke, .. } => {
                check_range("added token count", add.len(), 0, MAX_TOKENS_PER_UPDATE)?;
                check_range(
                    "revoked token count",
                    revoke.len(),
                    0,
                    MAX_TOKENS_PER_UPDATE,
                )
            }
            Self::Ack { envelope_ids } => {
                check_range("ack id count", envelope_ids.len(), 1, MAX_ACK_IDS)
            }
            Self::PublishKeyPackages { key_packages, .. } => check_range(
                "key package count",
                key_packages.len(),
                0,
                MAX_KEY_PACKAGES_PER_PUBLISH,
            ),
            Self::OpenGroup { subscribe, .. } => {
                check_range("subscription count", subscribe.len(), 1, MAX_GROUP_CHANGES)
            }
            Self::PostGroup { post, .. } => post.check_limits(),
            Self::Ping { .. }
            | Self::Pong { .. }
            | Self::Auth(_)
            | Self::FetchBundle { .. }
            | Self::ListDevices { .. }
            | Self::ClaimHandle { .. }
            | Self::LookupHandle { .. }
            | Self::ReleaseHandle { .. }
            | Self::PublishReachability { .. }
            | Self::FetchReachability { .. }
            | Self::FetchKeyPackage { .. }
            | Self::LeaveGroup { .. } => Ok(()),
        }
    }
}

/// The limits of `Send` and `Deposit`: 1 to 64 envelopes, payloads of 1 to 256 KiB, 1 MiB in
/// all.
fn check_envelopes(
    payload_lens: impl Iterator<Item = usize>,
    count: usize,
) -> Result<(), FrameError> {
    check_range("envelope count", count, 1, MAX_ENVELOPES_PER_SEND)?;
    let mut total = 0usize;
    for len in payload_lens {
        check_range("payload length", len, 1, MAX_PAYLOAD_LEN)?;
        total = total.saturating_add(len);
    }
    check_range("send payload total", total, 1, MAX_SEND_PAYLOAD_TOTAL)
}

impl Encode for ClientFrame {
    fn encode(&self, w: &mut Writer) {
        w.u8(FRAME_VERSION);
        w.u8(self.type_byte());
        match self {
            Self::Ping { nonce } | Self::Pong { nonce } => w.u64(*nonce),
            Self::Auth(proof) => {
                proof.certificate.encode(w);
                w.raw(&proof.signature.0);
            }
            Self::PublishPrekeys {
                request_id,
                signed_prekey,
                kem_prekeys,
                one_time_prekeys,
            } => {
                request_id.encode(w);
                w.option(signed_prekey.as_ref());
                w.list(kem_prekeys);
                w.list(one_time_prekeys);
            }
            Self::FetchBundle {
                request_id,
                identity,
                device_id,
            } => {
                request_id.encode(w);
                identity.encode(w);
                device_id.encode(w);
            }
            Self::ListDevices {
                request_id,
                identity,
            } => {
                request_id.encode(w);
                identity.encode(w);
            }
            Self::Send {
                request_id,
                envelopes,
            } => {
                request_id.encode(w);
                w.list(envelopes);
            }
            Self::Ack { envelope_ids } => w.list(envelope_ids),
            Self::ClaimHandle { request_id, claim } => {
                request_id.encode(w);
                claim.encode(w);
            }
            Self::LookupHandle { request_id, handle } => {
                request_id.encode(w);
                handle.encode(w);
            }
            Self::ReleaseHandle {
                request_id,
                release,
            } => {
                request_id.encode(w);
                release.encode(w);
            }
            Self::Deposit {
                request_id,
                envelopes,
            } => {
                request_id.encode(w);
                w.list(envelopes);
            }
            Self::SetDeliveryTokens {
                request_id,
                policy,
                add,
                revoke,
            } => {
                request_id.encode(w);
                policy.encode(w);
                for list in [add, revoke] {
                    w.u16(u16::try_from(list.len()).unwrap_or(u16::MAX));
                    for digest in list {
                        w.raw(digest);
                    }
                }
            }
            Self::PublishReachability { request_id, record } => {
                request_id.encode(w);
                record.encode(w);
            }
            Self::FetchReachability {
                request_id,
                identity,
            } => {
                request_id.encode(w);
                identity.encode(w);
            }
            Self::PublishKeyPackages {
                request_id,
                last_resort,
                key_packages,
            } => {
                request_id.encode(w);
                w.option(last_resort.as_ref());
                w.list(key_packages);
            }
            Self::FetchKeyPackage {
                request_id,
                identity,
                device_id,
            } => {
                request_id.encode(w);
                identity.encode(w);
                device_id.encode(w);
            }
            Self::OpenGroup {
                request_id,
                group_id,
                epoch,
                post_key,
                subscribe,
            } => {
                request_id.encode(w);
                group_id.encode(w);
                w.u64(*epoch);
                post_key.encode(w);
                w.list(subscribe);
            }
            Self::PostGroup { request_id, post } => {
                request_id.encode(w);
                post.encode(w);
            }
            Self::LeaveGroup {
                request_id,
                group_id,
            } => {
                request_id.encode(w);
                group_id.encode(w);
            }
        }
    }
}

impl Decode for ClientFrame {
    /// Reads one frame. Prefer [`Decode::from_bytes`], which also enforces
    /// [`MAX_FRAME_LEN`] before reading anything.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use frame_type::*;
        r.version(FRAME_WHAT, FRAME_VERSION)?;
        let tag = r.u8()?;
        Ok(match tag {
            PING => Self::Ping { nonce: r.u64()? },
            PONG => Self::Pong { nonce: r.u64()? },
            AUTH => Self::Auth(AuthProof {
                certificate: DeviceCertificate::decode(r)?,
                signature: crate::crypto::ed25519::Signature(r.array()?),
            }),
            PUBLISH_PREKEYS => Self::PublishPrekeys {
                request_id: RequestId::decode(r)?,
                signed_prekey: r.option("signed prekey presence")?,
                kem_prekeys: read_list(
                    r,
                    "KEM prekey list",
                    0,
                    MAX_KEM_PREKEYS_PER_PUBLISH,
                    wire_len::KEM_PREKEY,
                    KemPrekey::decode,
                )?,
                one_time_prekeys: read_list(
                    r,
                    "one-time prekey list",
                    0,
                    MAX_ONE_TIME_PREKEYS_PER_PUBLISH,
                    wire_len::ONE_TIME_PREKEY,
                    OneTimePrekey::decode,
                )?,
            },
            FETCH_BUNDLE => Self::FetchBundle {
                request_id: RequestId::decode(r)?,
                identity: IdentityKey::decode(r)?,
                device_id: DeviceId::decode(r)?,
            },
            LIST_DEVICES => Self::ListDevices {
                request_id: RequestId::decode(r)?,
                identity: IdentityKey::decode(r)?,
            },
            SEND => Self::Send {
                request_id: RequestId::decode(r)?,
                envelopes: read_envelopes(r, wire_len::ENVELOPE_OVERHEAD, |r| {
                    let envelope = OutgoingEnvelope::decode(r)?;
                    Ok((envelope.payload.len(), envelope))
                })?,
            },
            DEPOSIT => Self::Deposit {
                request_id: RequestId::decode(r)?,
                envelopes: read_envelopes(r, wire_len::DEPOSIT_OVERHEAD, |r| {
                    let envelope = DepositEnvelope::decode(r)?;
                    Ok((envelope.payload.len(), envelope))
                })?,
            },
            SET_DELIVERY_TOKENS => {
                let request_id = RequestId::decode(r)?;
                let policy = TokenPolicy::decode(r)?;
                let mut digests = |what| {
                    read_list(
                        r,
                        what,
                        0,
                        MAX_TOKENS_PER_UPDATE,
                        DELIVERY_TOKEN_DIGEST_LEN,
                        |r| r.array(),
                    )
                };
                let add = digests("added token list")?;
                let revoke = digests("revoked token list")?;
                Self::SetDeliveryTokens {
                    request_id,
                    policy,
                    add,
                    revoke,
                }
            }
            PUBLISH_REACHABILITY => Self::PublishReachability {
                request_id: RequestId::decode(r)?,
                record: ReachabilityRecord::decode(r)?,
            },
            FETCH_REACHABILITY => Self::FetchReachability {
                request_id: RequestId::decode(r)?,
                identity: IdentityKey::decode(r)?,
            },
            ACK => Self::Ack {
                envelope_ids: read_list(
                    r,
                    "ack id list",
                    1,
                    MAX_ACK_IDS,
                    ENVELOPE_ID_LEN,
                    EnvelopeId::decode,
                )?,
            },
            CLAIM_HANDLE => Self::ClaimHandle {
                request_id: RequestId::decode(r)?,
                claim: HandleClaim::decode(r)?,
            },
            LOOKUP_HANDLE => Self::LookupHandle {
                request_id: RequestId::decode(r)?,
                handle: Handle::decode(r)?,
            },
            RELEASE_HANDLE => Self::ReleaseHandle {
                request_id: RequestId::decode(r)?,
                release: HandleRelease::decode(r)?,
            },
            PUBLISH_KEY_PACKAGES => Self::PublishKeyPackages {
                request_id: RequestId::decode(r)?,
                last_resort: r.option("last-resort key package presence")?,
                key_packages: read_list(
                    r,
                    "key package list",
                    0,
                    MAX_KEY_PACKAGES_PER_PUBLISH,
                    // The shortest KeyPackage: a length and one byte.
                    3,
                    KeyPackage::decode,
                )?,
            },
            FETCH_KEY_PACKAGE => Self::FetchKeyPackage {
                request_id: RequestId::decode(r)?,
                identity: IdentityKey::decode(r)?,
                device_id: DeviceId::decode(r)?,
            },
            OPEN_GROUP => {
                let request_id = RequestId::decode(r)?;
                let group_id = GroupId::decode(r)?;
                let epoch = r.u64()?;
                let post_key = PostKey::decode(r)?;
                let subscribe = group::read_subscriptions(r)?;
                if subscribe.is_empty() {
                    return Err(DecodeError::Invalid("subscription list"));
                }
                Self::OpenGroup {
                    request_id,
                    group_id,
                    epoch,
                    post_key,
                    subscribe,
                }
            }
            POST_GROUP => Self::PostGroup {
                request_id: RequestId::decode(r)?,
                post: GroupPost::decode(r)?,
            },
            LEAVE_GROUP => Self::LeaveGroup {
                request_id: RequestId::decode(r)?,
                group_id: GroupId::decode(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "client frame type",
                    tag,
                });
            }
        })
    }

    /// Decodes one whole frame, refusing one longer than [`MAX_FRAME_LEN`] before reading it.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_frame(bytes)
    }
}

/// A frame the relay sends to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Frames live briefly, one at a time; boxing buys nothing.
pub enum ServerFrame {
    /// `0x01`: asks the device for a `Pong` with the same nonce.
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// `0x02`: answers a device's `Ping`.
    Pong {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// `0x80`: the first frame on every connection; the device answers with `Auth`.
    Challenge {
        /// The relay's canonical URL, which the device checks and signs.
        relay_id: RelayId,
        /// Fresh random bytes, used for this connection only.
        nonce: [u8; AUTH_NONCE_LEN],
        /// The relay's clock, seconds since the Unix epoch (informational).
        server_time: u64,
    },
    /// `0x81`: the `Auth` verified; requests may follow.
    AuthOk {
        /// The relay's clock, seconds since the Unix epoch.
        server_time: u64,
    },
    /// `0x82`: answers `FetchBundle`.
    Bundle {
        /// The request's id.
        request_id: RequestId,
        /// The device's bundle, which the client verifies before use.
        bundle: PrekeyBundle,
    },
    /// `0x83`: answers `ListDevices` (an unknown identity has no devices).
    Devices {
        /// The request's id.
        request_id: RequestId,
        /// At most [`MAX_DEVICES_PER_LIST`] certificates, which the client verifies.
        devices: Vec<DeviceCertificate>,
    },
    /// `0x84`: answers `PublishPrekeys` with what the relay now holds for the device.
    PrekeyCount {
        /// The request's id.
        request_id: RequestId,
        /// One-time X25519 prekeys left.
        one_time: u32,
        /// One-time (not last-resort) KEM prekeys left.
        kem_one_time: u32,
    },
    /// `0x85`: answers `Send` once every envelope is durable.
    SendAck {
        /// The request's id.
        request_id: RequestId,
        /// The id assigned to each envelope, in the order they were sent.
        envelope_ids: Vec<EnvelopeId>,
    },
    /// `0x86`: an envelope from the device's mailbox, pushed until acknowledged.
    Deliver {
        /// Acknowledge with this id.
        envelope_id: EnvelopeId,
        /// When the relay stored it, seconds since the Unix epoch.
        received_at: u64,
        /// The sealed envelope, 1 to [`MAX_PAYLOAD_LEN`] bytes.
        payload: Vec<u8>,
    },
    /// `0x87`: answers `LookupHandle`.
    HandleRecord {
        /// The request's id.
        request_id: RequestId,
        /// The current claim, or `None` if nobody holds the handle. The client verifies it and
        /// checks it names the handle asked for.
        claim: Option<HandleClaim>,
    },
    /// `0x88`: the request succeeded and has nothing else to say.
    Done {
        /// The request's id.
        request_id: RequestId,
    },
    /// `0x89`: a request failed, or the relay is about to close the connection.
    Error {
        /// The failed request, or `None` (0 on the wire) for connection-level errors.
        request_id: Option<RequestId>,
        /// What went wrong.
        code: ErrorCode,
        /// A short explanation for humans, never a secret. Encoding replaces control
        /// characters with spaces and cuts it to [`MAX_ERROR_MESSAGE_LEN`] bytes.
        message: String,
    },
    /// `0x8a`: answers `FetchReachability`.
    Reachability {
        /// The request's id.
        request_id: RequestId,
        /// The account's newest record the relay holds, or `None`. The client verifies it
        /// and checks that it names the identity asked for.
        record: Option<ReachabilityRecord>,
    },
    /// `0x8b`: answers `PublishKeyPackages` with what the relay now holds for the device.
    KeyPackageCount {
        /// The request's id.
        request_id: RequestId,
        /// KeyPackages in the pool, the last-resort one not counted.
        count: u32,
        /// Whether the device has a last-resort KeyPackage.
        has_last_resort: bool,
    },
    /// `0x8c`: answers `FetchKeyPackage`.
    KeyPackage {
        /// The request's id.
        request_id: RequestId,
        /// The KeyPackage, which the client checks.
        key_package: KeyPackage,
        /// Whether it is the device's last-resort KeyPackage (handed out again and again).
        last_resort: bool,
    },
    /// `0x8d`: answers `OpenGroup` and `PostGroup` once durable.
    GroupPosted {
        /// The request's id.
        request_id: RequestId,
        /// The post's number in the group (0 for `OpenGroup`).
        seq: u64,
        /// The group's epoch after the post.
        epoch: u64,
    },
}

impl ServerFrame {
    /// The frame's type byte.
    pub fn type_byte(&self) -> u8 {
        use frame_type::*;
        match self {
            Self::Ping { .. } => PING,
            Self::Pong { .. } => PONG,
            Self::Challenge { .. } => CHALLENGE,
            Self::AuthOk { .. } => AUTH_OK,
            Self::Bundle { .. } => BUNDLE,
            Self::Devices { .. } => DEVICES,
            Self::PrekeyCount { .. } => PREKEY_COUNT,
            Self::SendAck { .. } => SEND_ACK,
            Self::Deliver { .. } => DELIVER,
            Self::HandleRecord { .. } => HANDLE_RECORD,
            Self::Done { .. } => DONE,
            Self::Error { .. } => ERROR,
            Self::Reachability { .. } => REACHABILITY,
            Self::KeyPackageCount { .. } => KEY_PACKAGE_COUNT,
            Self::KeyPackage { .. } => KEY_PACKAGE,
            Self::GroupPosted { .. } => GROUP_POSTED,
        }
    }

    /// The frame type's snake_case name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
            Self::Challenge { .. } => "challenge",
            Self::AuthOk { .. } => "auth_ok",
            Self::Bundle { .. } => "bundle",
            Self::Devices { .. } => "devices",
            Self::PrekeyCount { .. } => "prekey_count",
            Self::SendAck { .. } => "send_ack",
            Self::Deliver { .. } => "deliver",
            Self::HandleRecord { .. } => "handle_record",
            Self::Done { .. } => "done",
            Self::Error { .. } => "error",
            Self::Reachability { .. } => "reachability",
            Self::KeyPackageCount { .. } => "key_package_count",
            Self::KeyPackage { .. } => "key_package",
            Self::GroupPosted { .. } => "group_posted",
        }
    }

    /// The request a reply answers; `None` for unsolicited frames and connection-level errors.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::Ping { .. }
            | Self::Pong { .. }
            | Self::Challenge { .. }
            | Self::AuthOk { .. }
            | Self::Deliver { .. } => None,
            Self::Bundle { request_id, .. }
            | Self::Devices { request_id, .. }
            | Self::PrekeyCount { request_id, .. }
            | Self::SendAck { request_id, .. }
            | Self::HandleRecord { request_id, .. }
            | Self::Reachability { request_id, .. }
            | Self::KeyPackageCount { request_id, .. }
            | Self::KeyPackage { request_id, .. }
            | Self::GroupPosted { request_id, .. }
            | Self::Done { request_id } => Some(*request_id),
            Self::Error { request_id, .. } => *request_id,
        }
    }

    /// An `Error` frame.
    pub fn error(
        request_id: Option<RequestId>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Self {
        Self::Error {
            request_id,
            code,
            message: message.into(),
        }
    }

    /// Checks the counts and lengths the types alone do not bound (see
    /// [`ClientFrame::check_limits`]). An over-long `Error` message is not an error: encoding
    /// cuts it.
    pub fn check_limits(&self) -> Result<(), FrameError> {
        match self {
            Self::Devices { devices, .. } => {
                check_range("device count", devices.len(), 0, MAX_DEVICES_PER_LIST)
            }
            Self::SendAck { envelope_ids, .. } => check_range(
                "send ack id count",
                envelope_ids.len(),
                1,
                MAX_ENVELOPES_PER_SEND,
            ),
            Self::Deliver { payload, .. } => {
                check_range("payload length", payload.len(), 1, MAX_PAYLOAD_LEN)
            }
            Self::Ping { .. }
            | Self::Pong { .. }
            | Self::Challenge { .. }
            | Self::AuthOk { .. }
            | Self::Bundle { .. }
            | Self::PrekeyCount { .. }
            | Self::HandleRecord { .. }
            | Self::Reachability { .. }
            | Self::KeyPackageCount { .. }
            | Self::KeyPackage { .. }
            | Self::GroupPosted { .. }
            | Self::Done { .. }
            | Self::Error { .. } => Ok(()),
        }
    }
}

impl Encode for ServerFrame {
    fn encode(&self, w: &mut Writer) {
        w.u8(FRAME_VERSION);
        w.u8(self.type_byte());
        match self {
            Self::Ping { nonce } | Self::Pong { nonce } => w.u64(*nonce),
            Self::Challenge {
                relay_id,
                nonce,
                server_time,
            } => {
                relay_id.encode(w);
                w.raw(nonce);
                w.u64(*server_time);
            }
            Self::AuthOk { server_time } => w.u64(*server_time),
            Self::Bundle { request_id, bundle } => {
                request_id.encode(w);
                bundle.encode(w);
            }
            Self::Devices {
                request_id,
                devices,
            } => {
                request_id.encode(w);
                w.list(devices);
            }
            Self::PrekeyCount {
                request_id,
                one_time,
                kem_one_time,
            } => {
                request_id.encode(w);
                w.u32(*one_time);
                w.u32(*kem_one_time);
            }
            Self::SendAck {
                request_id,
                envelope_ids,
            } => {
                request_id.encode(w);
                w.list(envelope_ids);
            }
            Self::Deliver {
                envelope_id,
                received_at,
                payload,
            } => {
                envelope_id.encode(w);
                w.u64(*received_at);
                w.bytes32(payload);
            }
            Self::HandleRecord { request_id, claim } => {
                request_id.encode(w);
                w.option(claim.as_ref());
            }
            Self::Reachability { request_id, record } => {
                request_id.encode(w);
                w.option(record.as_ref());
            }
            Self::KeyPackageCount {
                request_id,
                count,
                has_last_resort,
            } => {
                request_id.encode(w);
                w.u32(*count);
                w.u8(u8::from(*has_last_resort));
            }
            Self::KeyPackage {
                request_id,
                key_package,
                last_resort,
            } => {
                request_id.encode(w);
                key_package.encode(w);
                w.u8(u8::from(*last_resort));
            }
            Self::GroupPosted {
                request_id,
                seq,
                epoch,
            } => {
                request_id.encode(w);
                w.u64(*seq);
                w.u64(*epoch);
            }
            Self::Done { request_id } => request_id.encode(w),
            Self::Error {
                request_id,
                code,
                message,
            } => {
                encode_optional_request_id(w, *request_id);
                w.u16(code.to_u16());
                w.str16(&clean_message(message));
            }
        }
    }
}

impl Decode for ServerFrame {
    /// Reads one frame. Prefer [`Decode::from_bytes`], which also enforces
    /// [`MAX_FRAME_LEN`] before reading anything.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use frame_type::*;
        r.version(FRAME_WHAT, FRAME_VERSION)?;
        let tag = r.u8()?;
        Ok(match tag {
            PING => Self::Ping { nonce: r.u64()? },
            PONG => Self::Pong { nonce: r.u64()? },
            CHALLENGE => Self::Challenge {
                relay_id: RelayId::decode(r)?,
                nonce: r.array()?,
                server_time: r.u64()?,
            },
            AUTH_OK => Self::AuthOk {
                server_time: r.u64()?,
            },
            BUNDLE => Self::Bundle {
                request_id: RequestId::decode(r)?,
                bundle: PrekeyBundle::decode(r)?,
            },
            DEVICES => Self::Devices {
                request_id: RequestId::decode(r)?,
                devices: read_list(
                    r,
                    "device list",
                    0,
                    MAX_DEVICES_PER_LIST,
                    wire_len::CERTIFICATE,
                    DeviceCertificate::decode,
                )?,
            },
            PREKEY_COUNT => Self::PrekeyCount {
                request_id: RequestId::decode(r)?,
                one_time: r.u32()?,
                kem_one_time: r.u32()?,
            },
            SEND_ACK => Self::SendAck {
                request_id: RequestId::decode(r)?,
                envelope_ids: read_list(
                    r,
                    "send ack id list",
                    1,
                    MAX_ENVELOPES_PER_SEND,
                    ENVELOPE_ID_LEN,
                    EnvelopeId::decode,
                )?,
            },
            DELIVER => Self::Deliver {
                envelope_id: EnvelopeId::decode(r)?,
                received_at: r.u64()?,
                payload: decode_payload(r)?,
            },
            HANDLE_RECORD => Self::HandleRecord {
                request_id: RequestId::decode(r)?,
                claim: r.option("handle claim presence")?,
            },
            DONE => Self::Done {
                request_id: RequestId::decode(r)?,
            },
            REACHABILITY => Self::Reachability {
                request_id: RequestId::decode(r)?,
                record: r.option("reachability record presence")?,
            },
            KEY_PACKAGE_COUNT => Self::KeyPackageCount {
                request_id: RequestId::decode(r)?,
                count: r.u32()?,
                has_last_resort: read_flag(r, "last-resort flag")?,
            },
            KEY_PACKAGE => Self::KeyPackage {
                request_id: RequestId::decode(r)?,
                key_package: KeyPackage::decode(r)?,
                last_resort: read_flag(r, "last-resort flag")?,
            },
            GROUP_POSTED => Self::GroupPosted {
                request_id: RequestId::decode(r)?,
                seq: r.u64()?,
                epoch: r.u64()?,
            },
            ERROR => {
                let request_id = decode_optional_request_id(r)?;
                let code = ErrorCode::from_u16(r.u16()?);
                let message = r.str16("error message", MAX_ERROR_MESSAGE_LEN)?;
                if message.chars().any(char::is_control) {
                    return Err(DecodeError::Invalid("error message"));
                }
                Self::Error {
                    request_id,
                    code,
                    message: message.to_owned(),
                }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "server frame type",
                    tag,
                });
            }
        })
    }

    /// Decodes one whole frame, refusing one longer than [`MAX_FRAME_LEN`] before reading it.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_frame(bytes)
    }
}

/// The shared entry point of both frame decoders: length cap, then the frame, then no
/// trailing bytes.
fn decode_frame<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong {
            what: FRAME_WHAT,
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut r = Reader::new(bytes);
    let frame = T::decode(&mut r)?;
    r.finish()?;
    Ok(frame)
}

/// Reads a `u16` count and that many items.
///
/// The count must be within `min..=max`, and the input must still hold `count` items of at
/// least `min_item_len` bytes each (the shortest encoding the item's layout allows, valid or
/// not) before any capacity is reserved: a lying count fails as truncated without allocating.
fn read_list<'a, T>(
    r: &mut Reader<'a>,
    what: &'static str,
    min: usize,
    max: usize,
    min_item_len: usize,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let count = usize::from(r.u16()?);
    if count > max {
        return Err(DecodeError::TooLong {
            what,
            len: count,
            max,
        });
    }
    if count < min {
        return Err(DecodeError::Invalid(what));
    }
    let needed = count.saturating_mul(min_item_len);
    if needed > r.remaining() {
        return Err(DecodeError::Truncated {
            needed: needed.saturating_sub(r.remaining()),
        });
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(r)?);
    }
    Ok(items)
}

/// Reads the envelope list of a `Send` or `Deposit`: 1 to [`MAX_ENVELOPES_PER_SEND`] items of
/// at least `min_item_len` bytes whose payloads add up to at most [`MAX_SEND_PAYLOAD_TOTAL`].
/// `item` reads one envelope and says its payload length.
fn read_envelopes<'a, T>(
    r: &mut Reader<'a>,
    min_item_len: usize,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<(usize, T), DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut total = 0usize;
    read_list(
        r,
        "envelope list",
        1,
        MAX_ENVELOPES_PER_SEND,
        min_item_len,
        |r| {
            let (len, envelope) = item(r)?;
            total = total.saturating_add(len);
            if total > MAX_SEND_PAYLOAD_TOTAL {
                return Err(DecodeError::TooLong {
                    what: "send payload total",
                    len: total,
                    max: MAX_SEND_PAYLOAD_TOTAL,
                });
            }
            Ok(envelope)
        },
    )
}

/// Reads a flag byte: 0 is false, 1 true, anything else invalid.
fn read_flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid(what)),
    }
}

/// Reads an envelope payload: `bytes32`, 1 to [`MAX_PAYLOAD_LEN`] bytes.
fn decode_payload(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let payload = r.bytes32("payload", MAX_PAYLOAD_LEN)?;
    if payload.is_empty() {
        return Err(DecodeError::Invalid("empty payload"));
    }
    Ok(payload.to_vec())
}

/// An error message as it goes on the wire: control characters become spaces (a relay must
/// not be able to drive a terminal), and the text is cut at a character boundary to
/// [`MAX_ERROR_MESSAGE_LEN`] bytes.
fn clean_message(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_ERROR_MESSAGE_LEN && !message.chars().any(char::is_control) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(MAX_ERROR_MESSAGE_LEN.min(message.len()));
    for c in message.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len().saturating_add(c.len_utf8()) > MAX_ERROR_MESSAGE_LEN {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
