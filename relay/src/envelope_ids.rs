//! Envelope ids: what a client sees of the relay's mailbox sequence numbers.
//!
//! An id is `AES-128(k, seq u64 || 0^8)` under a key derived from the relay's stored secret, a
//! pseudorandom permutation: ids reveal neither the order nor the volume of the relay's
//! traffic, yet the relay maps an acknowledged id back to its sequence number with one block
//! decryption and no index. An id that does not decrypt to 8 zero bytes at the end was not made
//! by this relay and is ignored.

use aes::Aes128;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use protocol::frames::EnvelopeId;

/// Maps sequence numbers to ids and back.
#[derive(Clone)]
pub(crate) struct IdCipher(Aes128);

impl IdCipher {
    /// Keys the cipher from the relay secret (its first 16 bytes).
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        let mut key = [0u8; 16];
        key.copy_from_slice(&secret[..16]);
        Self(Aes128::new(&key.into()))
    }

    /// The id of sequence number `seq`.
    pub(crate) fn id_for(&self, seq: u64) -> EnvelopeId {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&seq.to_be_bytes());
        let mut block = block.into();
        self.0.encrypt_block(&mut block);
        EnvelopeId::from_bytes(block.into())
    }

    /// The sequence number behind an id, if this relay made it.
    pub(crate) fn seq_of(&self, id: &EnvelopeId) -> Option<u64> {
        let mut block = (*id.as_bytes()).into();
        self.0.decrypt_block(&mut block);
        let block: [u8; 16] = block.into();
        let (seq, zeros) = block.split_at(8);
        if zeros.iter().any(|&b| b != 0) {
            return None;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(seq);
        Some(u64::from_be_bytes(bytes))
    }
}

impl std::fmt::Debug for IdCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdCipher(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let cipher = IdCipher::new(&[7; 32]);
        for seq in [0, 1, 2, u64::MAX, 1 << 40] {
            assert_eq!(cipher.seq_of(&cipher.id_for(seq)), Some(seq));
        }
        assert_ne!(cipher.id_for(1), cipher.id_for(2));
        let other = IdCipher::new(&[8; 32]);
        assert_eq!(other.seq_of(&cipher.id_for(1)), None);
        assert_eq!(cipher.seq_of(&EnvelopeId::from_bytes([0; 16])), None);
    }
}
