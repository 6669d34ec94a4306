//! The ratchet message wire format: a fixed 42-byte header, then the AES-256-GCM ciphertext of
//! the padded plaintext with its 16-byte tag (SPEC.md section 5.3).

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::aead::AEAD_TAG_LEN;
use crate::crypto::x25519::X25519PublicKey;
use crate::identity::{KEY_TYPE_X25519, PROTOCOL_VERSION, decode_x25519};

/// Encoded header length: version, `EncodeEC(ratchet key)`, previous chain length, index.
pub const HEADER_LEN: usize = 1 + 33 + 4 + 4;

/// Upper bound on a ratchet message ciphertext (padded plaintext plus tag) this decoder accepts.
pub const MAX_CIPHERTEXT_LEN: usize = 2 * 1024 * 1024;

/// A ratchet message header. It travels in the clear (inside the sealed envelope) and is
/// authenticated as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub ratchet_key: X25519PublicKey,
    /// How many messages the sender sent in its previous sending chain (`PN`).
    pub previous_chain_len: u32,
    /// This message's index in the current sending chain (`N`).
    pub index: u32,
}

impl Header {
    /// The 42-byte encoding, which is also the header part of the AEAD associated data:
    /// version, `EncodeEC(ratchet key)`, previous chain length and index (big-endian).
    ///
    /// Written straight into an array: it is built twice per message (as associated data on
    /// both sides), where a [`Writer`] would cost a heap allocation each time.
    pub fn to_array(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = PROTOCOL_VERSION;
        out[1] = KEY_TYPE_X25519;
        out[2..34].copy_from_slice(self.ratchet_key.as_bytes());
        out[34..38].copy_from_slice(&self.previous_chain_len.to_be_bytes());
        out[38..].copy_from_slice(&self.index.to_be_bytes());
        out
    }
}

impl Encode for Header {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.to_array());
    }
}

impl Decode for Header {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("ratchet header", PROTOCOL_VERSION)?;
        Ok(Self {
            ratchet_key: decode_x25519(r, "ratchet key")?,
            previous_chain_len: r.u32()?,
            index: r.u32()?,
        })
    }
}

/// A complete ratchet message: header and ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatchetMessage {
    /// The parsed header.
    pub header: Header,
    /// `AES-256-GCM(padded plaintext) || tag`.
    pub ciphertext: Vec<u8>,
}

impl Encode for RatchetMessage {
    fn encode(&self, w: &mut Writer) {
        self.header.encode(w);
        w.bytes32(&self.ciphertext);
    }
}

impl Decode for RatchetMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = Header::decode(r)?;
        let ciphertext = r.bytes32("ratchet ciphertext", MAX_CIPHERTEXT_LEN)?;
        if ciphertext.len() < AEAD_TAG_LEN {
            return Err(DecodeError::Invalid(
                "ratchet ciphertext shorter than its tag",
            ));
        }
        Ok(Self {
            header,
            ciphertext: ciphertext.to_vec(),
        })
    }
}
