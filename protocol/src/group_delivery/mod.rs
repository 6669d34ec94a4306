//! The group delivery (SPEC.md 10.10): the `Deliver` payload a relay stores in a subscriber's
//! mailbox for one group post, and its decoder.
//!
//! ```text
//! 0x10 || group_id [32] || seq u64 || epoch u64 || kind u8 || payload (to the end)
//! ```
//!
//! The first byte tells a group delivery from a sealed envelope (whose first byte is `0x01` or
//! `0x02`, SPEC.md 8.2). The header is [`GROUP_DELIVERY_HEADER_LEN`] = 50 bytes, so a post of
//! [`MAX_GROUP_POST_LEN`] bytes makes a delivery of exactly
//! [`MAX_PAYLOAD_LEN`](crate::frames::MAX_PAYLOAD_LEN) bytes. The relay writes these; a device
//! reads them from a relay it does not trust, so the decoder is total and strict: another first
//! byte, an unknown kind, an empty or over-long payload and a short header are refused.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::frames::{GROUP_DELIVERY_HEADER_LEN, GroupId, MAX_GROUP_POST_LEN, PostKind};

/// The first byte of a group delivery.
pub const GROUP_DELIVERY_TAG: u8 = 0x10;

/// One group post as a subscriber's device receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDelivery {
    /// The group.
    pub group_id: GroupId,
    /// The post's number in the group at the relay, from 1, one more for every post.
    pub seq: u64,
    /// The post's `epoch` field: the epoch whose post key signed it.
    pub epoch: u64,
    /// What the post is.
    pub kind: PostKind,
    /// The post's payload (an opaque MLS message), 1 to [`MAX_GROUP_POST_LEN`] bytes.
    pub payload: Vec<u8>,
}

impl GroupDelivery {
    /// Whether a `Deliver` payload is a group delivery (by its first byte) rather than a sealed
    /// envelope.
    pub fn is_group_delivery(payload: &[u8]) -> bool {
        payload.first() == Some(&GROUP_DELIVERY_TAG)
    }

    /// The encoded length of a delivery of a `payload_len`-byte post.
    pub fn encoded_len(payload_len: usize) -> usize {
        GROUP_DELIVERY_HEADER_LEN.saturating_add(payload_len)
    }
}

impl Encode for GroupDelivery {
    fn encode(&self, w: &mut Writer) {
        w.u8(GROUP_DELIVERY_TAG);
        self.group_id.encode(w);
        w.u64(self.seq);
        w.u64(self.epoch);
        w.u8(self.kind.to_byte());
        w.raw(&self.payload);
    }
}

impl Decode for GroupDelivery {
    /// Reads a delivery; the payload is the rest of the input, so prefer
    /// [`Decode::from_bytes`] (this consumes everything left).
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        if tag != GROUP_DELIVERY_TAG {
            return Err(DecodeError::UnknownTag {
                what: "group delivery",
                tag,
            });
        }
        let group_id = GroupId::decode(r)?;
        let seq = r.u64()?;
        let epoch = r.u64()?;
        let kind = PostKind::from_byte(r.u8()?)?;
        let payload = r.rest();
        if payload.is_empty() {
            return Err(DecodeError::Invalid("empty group post"));
        }
        if payload.len() > MAX_GROUP_POST_LEN {
            return Err(DecodeError::TooLong {
                what: "group post",
                len: payload.len(),
                max: MAX_GROUP_POST_LEN,
            });
        }
        Ok(Self {
            group_id,
            seq,
            epoch,
            kind,
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
