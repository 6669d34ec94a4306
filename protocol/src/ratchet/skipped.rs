//! The bounded store of message keys skipped over by out-of-order delivery (SPEC.md 5.5).
//!
//! Keys are found by (ratchet key, index) in a hash map; insertion order is kept in a second
//! map so that, at [`MAX_SKIPPED_KEYS`], the oldest key is evicted (as libsignal does) and
//! pickles encode the keys in a deterministic order.

use std::collections::{BTreeMap, HashMap};

use super::chain::MessageKey;

/// The most skipped message keys a session stores; the oldest are evicted past it.
pub const MAX_SKIPPED_KEYS: usize = 2000;

/// Identifies a skipped key: the sender's ratchet public key and the message index.
pub(crate) type SkippedId = ([u8; 32], u32);

/// Skipped message keys, bounded by [`MAX_SKIPPED_KEYS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct SkippedKeys {
    keys: HashMap<SkippedId, (u64, MessageKey)>,
    order: BTreeMap<u64, SkippedId>,
    next_seq: u64,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn get(&self, ratchet: &[u8; 32], index: u32) -> Option<&MessageKey> {
        if self.keys.is_empty() {
            return None;
        }
        self.keys.get(&(*ratchet, index)).map(|(_, key)| key)
    }

    pub(crate) fn remove(&mut self, ratchet: &[u8; 32], index: u32) {
        if let Some((seq, _)) = self.keys.remove(&(*ratchet, index)) {
            self.order.remove(&seq);
        }
    }

    /// Stores keys, evicting the oldest ones beyond the bound.
    pub(crate) fn insert(
        &mut self,
        ratchet: &[u8; 32],
        keys: impl IntoIterator<Item = MessageKey>,
    ) {
        for key in keys {
            let id = (*ratchet, key.index);
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            if let Some((old_seq, _)) = self.keys.insert(id, (seq, key)) {
                self.order.remove(&old_seq);
            }
            self.order.insert(seq, id);
            while self.keys.len() > MAX_SKIPPED_KEYS {
                let Some((_, oldest)) = self.order.pop_first() else {
                    break;
                };
                self.keys.remove(&oldest);
            }
        }
    }

    /// The keys in insertion order, oldest first (for pickling).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8; 32], &MessageKey)> {
        self.order
            .values()
            .filter_map(|id| self.keys.get(id).map(|(_, key)| (&id.0, key)))
    }
}
