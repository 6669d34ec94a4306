//! The fields of the group and KeyPackage frames (SPEC.md section 10.10): group ids, post keys,
//! KeyPackages as opaque bytes, subscriptions, device addresses, and the signed group post with
//! its signing bytes.
//!
//! The relay never parses MLS: a KeyPackage and a post's payload are opaque bytes to it. What it
//! checks is that a post is signed by the **post key** of an epoch it accepts, a key every member
//! derives from the MLS epoch and a removed member cannot derive, so a post proves membership
//! without naming its sender.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::ed25519::{Ed25519Error, Ed25519PublicKey, Ed25519Secret, Signature};
use crate::identity::{DeviceId, IdentityKey};
use crate::reachability::{DELIVERY_TOKEN_LEN, DeliveryToken};

use super::{FrameError, check_range, read_list};

/// Length of a [`GroupId`].
pub const GROUP_ID_LEN: usize = 32;
/// Longest KeyPackage, in bytes.
pub const MAX_KEY_PACKAGE_LEN: usize = 8192;
/// Most KeyPackages in one `PublishKeyPackages` (the last-resort one not counted).
pub const MAX_KEY_PACKAGES_PER_PUBLISH: usize = 100;
/// Most items in each list of an `OpenGroup` or `PostGroup` (subscriptions, removals,
/// recipients).
pub const MAX_GROUP_CHANGES: usize = 1000;
/// Longest group post payload, in bytes: a group delivery of it is exactly
/// [`super::MAX_PAYLOAD_LEN`] bytes long.
pub const MAX_GROUP_POST_LEN: usize = super::MAX_PAYLOAD_LEN - GROUP_DELIVERY_HEADER_LEN;
/// Length of a group delivery's header: tag, group id, seq, epoch, kind.
pub const GROUP_DELIVERY_HEADER_LEN: usize = 1 + GROUP_ID_LEN + 8 + 8 + 1;

/// Signature context of a group post.
pub(crate) const CONTEXT_GROUP_POST: &[u8] = b"chatd/v1/group-post\0";

/// Encoded length of a [`Subscription`] without a token.
pub(super) const SUBSCRIPTION_MIN_LEN: usize = 32 + 4 + 1;
/// Encoded length of a [`Subscription`] with a token.
pub(super) const SUBSCRIPTION_MAX_LEN: usize = SUBSCRIPTION_MIN_LEN + DELIVERY_TOKEN_LEN;
/// Encoded length of a [`DeviceAddress`].
pub(super) const DEVICE_ADDRESS_LEN: usize = 32 + 4;

/// A group's id at a relay: 32 opaque bytes its creator chose at random (chatd: the MLS group
/// id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; GROUP_ID_LEN]);

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", crate::hex_prefix(&self.0))
    }
}

impl Encode for GroupId {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
}

impl Decode for GroupId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array()?))
    }
}

/// The post key of one epoch: an Ed25519 public key (canonical, not of small order) whose
/// private half every member of the epoch derives.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PostKey(Ed25519PublicKey);

impl PostKey {
    /// Parses a post key, refusing invalid, non-canonical and small-order encodings.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Ed25519Error> {
        Ed25519PublicKey::from_bytes(bytes).map(Self)
    }

    /// The post key of a signing key.
    pub fn of(secret: &Ed25519Secret) -> Self {
        Self(secret.public_key())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Verifies a post's signature under this key (strict verification, SPEC.md section 1).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), Ed25519Error> {
        self.0.verify(message, signature)
    }
}

impl fmt::Debug for PostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostKey({})", crate::hex_prefix(self.as_bytes()))
    }
}

impl Encode for PostKey {
    fn encode(&self, w: &mut Writer) {
        w.raw(self.as_bytes());
    }
}

impl Decode for PostKey {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_bytes(&r.array()?).map_err(|_| DecodeError::Invalid("post key"))
    }
}

/// An MLS KeyPackage as the relay sees it: 1 to [`MAX_KEY_PACKAGE_LEN`] opaque bytes. The
/// device that fetches one checks it; the relay does not.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPackage(Vec<u8>);

impl KeyPackage {
    /// A KeyPackage from its bytes, refusing an empty or over-long one.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FrameError> {
        let bytes = bytes.into();
        check_range("key package length", bytes.len(), 1, MAX_KEY_PACKAGE_LEN)?;
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPackage({} bytes)", self.0.len())
    }
}

impl Encode for KeyPackage {
    fn encode(&self, w: &mut Writer) {
        w.bytes16(&self.0);
    }
}

impl Decode for KeyPackage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = r.bytes16("key package", MAX_KEY_PACKAGE_LEN)?;
        if bytes.is_empty() {
            return Err(DecodeError::Invalid("empty key package"));
        }
        Ok(Self(bytes.to_vec()))
    }
}

/// One device of one account, as group frames name it: `identity [32] || device_id u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceAddress {
    /// The account.
    pub identity: IdentityKey,
    /// The device.
    pub device_id: DeviceId,
}

impl Encode for DeviceAddress {
    fn encode(&self, w: &mut Writer) {
        self.identity.encode(w);
        self.device_id.encode(w);
    }
}

impl Decode for DeviceAddress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            identity: IdentityKey::decode(r)?,
            device_id: DeviceId::decode(r)?,
        })
    }
}

/// A device a post adds to a group's subscribers, with the delivery token the poster holds
/// for that account (SPEC.md 10.9), if any: the relay admits each subscription like one
/// `Deposit` envelope to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The device.
    pub device: DeviceAddress,
    /// The account's delivery token for the poster; `None` from a stranger.
    pub token: Option<DeliveryToken>,
}

impl Encode for Subscription {
    fn encode(&self, w: &mut Writer) {
        self.device.encode(w);
        w.option(self.token.as_ref());
    }
}

impl Decode for Subscription {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            device: DeviceAddress::decode(r)?,
            token: r.option("delivery token presence")?,
        })
    }
}

/// What a group post is, with the fields only that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // One per post, short-lived; boxing buys nothing.
pub enum PostBody {
    /// Kind 0: an application message for every subscriber.
    Application,
    /// Kind 1: an MLS commit; accepted only for the group's current epoch, which it ends.
    Commit {
        /// The post key of the next epoch.
        next_post_key: PostKey,
        /// Devices to add as subscribers (at most [`MAX_GROUP_CHANGES`]).
        subscribe: Vec<Subscription>,
        /// Devices to remove (at most [`MAX_GROUP_CHANGES`]); they still get this commit.
        unsubscribe: Vec<DeviceAddress>,
    },
    /// Kind 2: a message for some subscribers only (an MLS Welcome, for instance).
    Direct {
        /// 1 to [`MAX_GROUP_CHANGES`] subscribers.
        recipients: Vec<DeviceAddress>,
    },
}

impl PostBody {
    /// The kind this body is.
    pub fn kind(&self) -> PostKind {
        match self {
            Self::Application => PostKind::Application,
            Self::Commit { .. } => PostKind::Commit,
            Self::Direct { .. } => PostKind::Direct,
        }
    }
}

/// The kind byte of a post and of a group delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostKind {
    /// 0: for every subscriber.
    Application,
    /// 1: an epoch change, for every subscriber.
    Commit,
    /// 2: for the listed recipients.
    Direct,
}

impl PostKind {
    /// Every kind, in wire-byte order.
    pub const ALL: [Self; 3] = [Self::Application, Self::Commit, Self::Direct];

    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Application => 0,
            Self::Commit => 1,
            Self::Direct => 2,
        }
    }

    /// Parses the wire byte; only 0, 1 and 2 are kinds.
    pub fn from_byte(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            0 => Ok(Self::Application),
            1 => Ok(Self::Commit),
            2 => Ok(Self::Direct),
            tag => Err(DecodeError::UnknownTag {
                what: "post kind",
                tag,
            }),
        }
    }

    /// The kind's snake_case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Commit => "commit",
            Self::Direct => "direct",
        }
    }
}

/// The body of a `PostGroup` after its request id: a post to a group, signed by the post key
/// of `epoch` over [`GroupPost::signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPost {
    /// The group.
    pub group_id: GroupId,
    /// The epoch whose post key signs.
    pub epoch: u64,
    /// The kind and its fields.
    pub body: PostBody,
    /// The opaque MLS message, 1 to [`MAX_GROUP_POST_LEN`] bytes.
    pub payload: Vec<u8>,
    /// Ed25519 by the post key of `epoch` over [`GroupPost::signed_bytes`].
    pub signature: Signature,
}

impl GroupPost {
    /// Signs a post with the epoch's post key.
    pub fn sign(
        post_key: &Ed25519Secret,
        group_id: GroupId,
        epoch: u64,
        body: PostBody,
        payload: Vec<u8>,
    ) -> Self {
        let mut post = Self {
            group_id,
            epoch,
            body,
            payload,
            signature: Signature([0; 64]),
        };
        post.signature = post_key.sign(&post.signed_bytes());
        post
    }

    /// What the signature covers: `"chatd/v1/group-post\0"` followed by every field from
    /// `group_id` through `payload`, exactly as encoded (SPEC.md 10.10).
    pub fn signed_bytes(&self) -> Vec<u8> {
        post_signed_bytes(&self.unsigned_encoding())
    }

    /// Verifies the signature under `key` (the relay's post key for `epoch`).
    pub fn verify(&self, key: &PostKey) -> Result<(), Ed25519Error> {
        key.verify(&self.signed_bytes(), &self.signature)
    }

    /// Checks the counts and lengths the types alone do not bound.
    pub fn check_limits(&self) -> Result<(), FrameError> {
        match &self.body {
            PostBody::Application => {}
            PostBody::Commit {
                subscribe,
                unsubscribe,
                ..
            } => {
                check_range("subscription count", subscribe.len(), 0, MAX_GROUP_CHANGES)?;
                check_range(
                    "unsubscription count",
                    unsubscribe.len(),
                    0,
                    MAX_GROUP_CHANGES,
                )?;
            }
            PostBody::Direct { recipients } => {
                check_range("recipient count", recipients.len(), 1, MAX_GROUP_CHANGES)?;
            }
        }
        check_range(
            "group post length",
            self.payload.len(),
            1,
            MAX_GROUP_POST_LEN,
        )
    }

    /// The fields from `group_id` through `payload`, as encoded.
    fn unsigned_encoding(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.payload.len().saturating_add(64));
        self.encode_unsigned(&mut w);
        w.into_bytes()
    }

    fn encode_unsigned(&self, w: &mut Writer) {
        self.group_id.encode(w);
        w.u64(self.epoch);
        w.u8(self.body.kind().to_byte());
        let empty_subscriptions: &[Subscription] = &[];
        let empty_devices: &[DeviceAddress] = &[];
        let (next_post_key, subscribe, unsubscribe, recipients) = match &self.body {
            PostBody::Application => (None, empty_subscriptions, empty_devices, empty_devices),
            PostBody::Commit {
                next_post_key,
                subscribe,
                unsubscribe,
            } => (
                Some(next_post_key),
                subscribe.as_slice(),
                unsubscribe.as_slice(),
                empty_devices,
            ),
            PostBody::Direct { recipients } => (
                None,
                empty_subscriptions,
                empty_devices,
                recipients.as_slice(),
            ),
        };
        w.option(next_post_key);
        w.list(subscribe);
        w.list(unsubscribe);
        w.list(recipients);
        w.bytes32(&self.payload);
    }
}

/// `"chatd/v1/group-post\0" || body`, where `body` is a post's fields from `group_id` through
/// `payload` exactly as encoded: the bytes a post's signature covers (SPEC.md 10.10).
pub fn post_signed_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT_GROUP_POST.len().saturating_add(body.len()));
    out.extend_from_slice(CONTEXT_GROUP_POST);
    out.extend_from_slice(body);
    out
}

impl Encode for GroupPost {
    fn encode(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.raw(&self.signature.0);
    }
}

impl Decode for GroupPost {
    /// Reads a post, refusing lists or a `next_post_key` its kind does not allow.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group_id = GroupId::decode(r)?;
        let epoch = r.u64()?;
        let kind = PostKind::from_byte(r.u8()?)?;
        let next_post_key: Option<PostKey> = r.option("next post key presence")?;
        let subscribe = read_subscriptions(r)?;
        let unsubscribe = read_devices(r, "unsubscribe list", 0)?;
        let recipients = read_devices(r, "recipient list", 0)?;
        let body = match (kind, next_post_key) {
            (PostKind::Application, None)
                if subscribe.is_empty() && unsubscribe.is_empty() && recipients.is_empty() =>
            {
                PostBody::Application
            }
            (PostKind::Commit, Some(next_post_key)) if recipients.is_empty() => PostBody::Commit {
                next_post_key,
                subscribe,
                unsubscribe,
            },
            (PostKind::Direct, None)
                if subscribe.is_empty() && unsubscribe.is_empty() && !recipients.is_empty() =>
            {
                PostBody::Direct { recipients }
            }
            _ => return Err(DecodeError::Invalid("group post fields for its kind")),
        };
        let payload = read_group_payload(r)?;
        Ok(Self {
            group_id,
            epoch,
            body,
            payload,
            signature: Signature(r.array()?),
        })
    }
}

/// Reads a `list<Subscription>` of at most [`MAX_GROUP_CHANGES`] items.
pub(super) fn read_subscriptions(r: &mut Reader<'_>) -> Result<Vec<Subscription>, DecodeError> {
    read_list(
        r,
        "subscription list",
        0,
        MAX_GROUP_CHANGES,
        SUBSCRIPTION_MIN_LEN,
        Subscription::decode,
    )
}

/// Reads a `list<DeviceAddr>` of `min` to [`MAX_GROUP_CHANGES`] items.
fn read_devices(
    r: &mut Reader<'_>,
    what: &'static str,
    min: usize,
) -> Result<Vec<DeviceAddress>, DecodeError> {
    read_list(
        r,
        what,
        min,
        MAX_GROUP_CHANGES,
        DEVICE_ADDRESS_LEN,
        DeviceAddress::decode,
    )
}

/// Reads a group post payload: `bytes32`, 1 to [`MAX_GROUP_POST_LEN`] bytes.
fn read_group_payload(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let payload = r.bytes32("group post", MAX_GROUP_POST_LEN)?;
    if payload.is_empty() {
        return Err(DecodeError::Invalid("empty group post"));
    }
    Ok(payload.to_vec())
}
