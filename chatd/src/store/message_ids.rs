//! Outgoing message ids: a keyed permutation of where the message is stored.
//!
//! The id of the outgoing message at sequence `seq` of conversation `c` is
//! `AES-256(k, c[..8] || seq u64 BE)`, one block, under a key derived from the store's master
//! key. So the id looks random to the peer and on the wire (it reveals neither the
//! conversation nor how many messages it holds), yet a receipt or a relay acknowledgement that
//! names the id leads straight back to the stored message with one block decryption, and no
//! index of outgoing messages is written or read. The same trick gives the relay its envelope
//! ids (`relay/src/envelope_ids.rs`).
//!
//! Ids are unique per store: conversation ids are random, and a conversation's sequence
//! numbers only grow. An id this store did not make, or made for another conversation,
//! decrypts to another conversation prefix (with probability 1 - 2^-64) and is refused.

use aes::Aes256;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

/// How many bytes of the conversation id an outgoing message id binds.
const PREFIX_LEN: usize = 8;

/// Maps (conversation, sequence) to outgoing message ids and back.
///
/// The AES key schedule zeroizes itself on drop (the `aes` crate's `zeroize` feature);
/// `Debug` prints nothing of it.
#[derive(Clone)]
pub struct MessageIds(Aes256);

impl MessageIds {
    /// The permutation keyed by `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256::new(key.into()))
    }

    /// The id of the outgoing message at `seq` in `conversation`.
    pub fn id_for(&self, conversation: &[u8; 16], seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..PREFIX_LEN].copy_from_slice(&conversation[..PREFIX_LEN]);
        block[PREFIX_LEN..].copy_from_slice(&seq.to_be_bytes());
        let mut block = block.into();
        self.0.encrypt_block(&mut block);
        block.into()
    }

    /// The sequence number behind `id`, if it is the id of an outgoing message of
    /// `conversation` made by this store.
    pub fn seq_of(&self, conversation: &[u8; 16], id: &[u8; 16]) -> Option<u64> {
        let mut block = (*id).into();
        self.0.decrypt_block(&mut block);
        let block: [u8; 16] = block.into();
        let (prefix, seq) = block.split_at(PREFIX_LEN);
        if prefix != &conversation[..PREFIX_LEN] {
            return None;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(seq);
        Some(u64::from_be_bytes(bytes))
    }
}

impl std::fmt::Debug for MessageIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageIds(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_per_conversation_and_foreign_ids_are_refused() {
        let ids = MessageIds::new(&[7; 32]);
        let a = [1u8; 16];
        let mut b = [1u8; 16];
        b[15] = 2; // shares a's first 8 bytes: the same prefix, so the same id space
        let c = [3u8; 16];
        for seq in [0, 1, 2, u64::MAX, 1 << 40] {
            assert_eq!(ids.seq_of(&a, &ids.id_for(&a, seq)), Some(seq));
            assert_eq!(ids.seq_of(&c, &ids.id_for(&a, seq)), None);
        }
        assert_eq!(ids.id_for(&a, 5), ids.id_for(&b, 5));
        assert_ne!(ids.id_for(&a, 1), ids.id_for(&a, 2));
        assert_ne!(ids.id_for(&a, 1), ids.id_for(&c, 1));
        // Another store's ids, and ids nobody made, lead nowhere.
        let other = MessageIds::new(&[8; 32]);
        assert_eq!(other.seq_of(&a, &ids.id_for(&a, 1)), None);
        assert_eq!(ids.seq_of(&a, &[0; 16]), None);
    }

    #[test]
    fn ids_do_not_show_the_sequence() {
        // Consecutive sequence numbers give ids that differ in about half their bits.
        let ids = MessageIds::new(&[9; 32]);
        let conversation = [4u8; 16];
        let mut total = 0u32;
        for seq in 0..64 {
            let x = ids.id_for(&conversation, seq);
            let y = ids.id_for(&conversation, seq + 1);
            total += x
                .iter()
                .zip(y.iter())
                .map(|(p, q)| (p ^ q).count_ones())
                .sum::<u32>();
        }
        let average = f64::from(total) / 64.0;
        assert!((48.0..=80.0).contains(&average), "{average}");
    }
}
