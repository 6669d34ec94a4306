//! Request and envelope identifiers carried in relay frames (SPEC.md section 10.2).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;
use std::num::NonZeroU32;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;

/// Length in bytes of an [`EnvelopeId`].
pub const ENVELOPE_ID_LEN: usize = 16;

/// A number the client picks for a request and the relay echoes in its reply. Never 0: on the
/// wire, 0 in an `Error` frame means "not tied to a request".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(NonZeroU32);

impl RequestId {
    /// A request id; `None` for the reserved value 0.
    pub fn new(id: u32) -> Option<Self> {
        NonZeroU32::new(id).map(Self)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Encode for RequestId {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.get());
    }
}

impl Decode for RequestId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::new(r.u32()?).ok_or(DecodeError::Invalid("request id 0"))
    }
}

/// Writes an optional request id as a `u32`, 0 standing for `None`.
pub(crate) fn encode_optional_request_id(w: &mut Writer, id: Option<RequestId>) {
    w.u32(id.map_or(0, RequestId::get));
}

/// Reads a `u32` request id where 0 means `None`.
pub(crate) fn decode_optional_request_id(
    r: &mut Reader<'_>,
) -> Result<Option<RequestId>, DecodeError> {
    Ok(RequestId::new(r.u32()?))
}

/// The relay's name for one stored envelope: 16 bytes it assigns (randomly, so ids reveal
/// nothing about order or volume), delivered with the envelope and acknowledged by the client.
/// The daemon remembers acknowledged ids so a redelivered envelope is shown once.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvelopeId([u8; ENVELOPE_ID_LEN]);

impl EnvelopeId {
    /// An id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; ENVELOPE_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random id (the relay's way of making one).
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        Self(crate::crypto::random_array(rng))
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; ENVELOPE_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId({self})")
    }
}

impl Encode for EnvelopeId {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
}

impl Decode for EnvelopeId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array()?))
    }
}
