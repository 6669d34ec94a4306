//! The daemon's encrypted store (ARCHITECTURE.md, `store`): message history, contacts, sessions,
//! the outbox and prekey secrets, every value encrypted, in one sled tree on disk or, for
//! `--ephemeral`, in an in-memory map with the same semantics that writes nothing anywhere.
//!
//! - [`Kv`] is the raw backend (sled or memory); it stores opaque bytes.
//! - [`Vault`] keeps the random master key in [`Table::META`], wrapped under Argon2id of the
//!   passphrase, and turns it into [`StoreKeys`] on unlock.
//! - [`Store`] is the unlocked store: [`Kv`] plus [`StoreKeys`]. It encrypts every value it
//!   writes, authenticates every value it reads, and computes the keyed hashes
//!   ([`Store::index`]) that stand in for identifiers that would reveal a contact in a key.
//!
//! Writes go through a [`Batch`], applied atomically by [`Store::commit`]; a commit is durable
//! only after [`Store::flush`] (one fsync can cover many commits), and a failed flush leaves
//! the store as it was before the commits it would have covered ([`Kv::recover`]).
//!
//! # At-rest format (version 1)
//!
//! All integers are big-endian. Everything lives in one sled tree, named `chatd/store/v1`.
//!
//! **Keys.** A backend key is `table (1 byte) || key`. The table is a [`Table`]: `0` is
//! [`Table::META`], reserved for the vault; the daemon defines `1..=255`. Keys are stored in
//! plaintext, so a key that would reveal a contact (an identity key, an address, a handle)
//! is replaced by its keyed hash `Store::index(table, id)` =
//! `HMAC-SHA256(index_key, table || id)[..16]`.
//!
//! **Values**, in every table but [`Table::META`]:
//!
//! ```text
//! version (1 byte, = 1) || nonce (12 bytes, random per write) || ciphertext || tag (16 bytes)
//! ```
//!
//! `ciphertext || tag` is AES-256-GCM of the plaintext under the value key (the nonce comes
//! from rand's thread-local CSPRNG), with associated data
//!
//! ```text
//! "chatd/store/v1" (14 ASCII bytes) || table (1 byte) || key length (u32) || key
//! ```
//!
//! so a value copied to another key or table fails authentication and reads as
//! [`StoreError::Corrupt`]. Nonces are random: with 96-bit nonces the value key is good for
//! about 2^32 writes (NIST SP 800-38D section 8.3), far beyond a personal message history.
//!
//! **The vault record**, in [`Table::META`] under the key `vault` (backend key
//! `00 76 61 75 6c 74`), is not encrypted as a whole. Its first two bytes are the record
//! version (`1`) and the protection kind. Unprotected (`0`, the user chose no passphrase):
//!
//! ```text
//! 01 || 00 || master key (32 bytes)                                         (34 bytes)
//! ```
//!
//! Protected by Argon2id version 0x13 (`1`):
//!
//! ```text
//! 01 || 01 || memory KiB (u32) || iterations (u32) || parallelism (u32) || salt (16 bytes)
//!    || nonce (12 bytes) || wrapped master key (32 bytes) || tag (16 bytes)  (90 bytes)
//! ```
//!
//! The key-encryption key is `Argon2id(passphrase, salt, m, t, p)` (RFC 9106, no secret and no
//! associated data) with a 32-byte output. The wrap is AES-256-GCM of the master key under it,
//! with a random nonce and associated data `"chatd/store/v1/vault" (20 ASCII bytes) || the
//! record's first 30 bytes` (version through salt), so modified parameters or salt make the
//! unwrap fail ([`StoreError::WrongPassphrase`]), as a wrong passphrase does. Unlock refuses
//! parameters above [`KdfParams::MAX_MEMORY_KIB`], [`KdfParams::MAX_ITERATIONS`] and
//! [`KdfParams::MAX_PARALLELISM`], or below Argon2's minimums, as corrupt before deriving
//! anything.
//!
//! **The commit counter**, in [`Table::META`] under the key `commits` (backend key
//! `00 63 6f 6d 6d 69 74 73`), is 8 bytes, big-endian, not encrypted: the number of flushes
//! that wrote, each writing it in its own batch. The file `chatd-commits` in the store's
//! directory records it too ([`commits`]); a store behind that file is refused.
//!
//! **Derived keys.** From the 32-byte master key, HKDF-SHA256 (RFC 5869, no salt) with info
//! `chatd/store/v1/value-key`, `chatd/store/v1/index-key`, `chatd/store/v1/pickle-key` and
//! `chatd/store/v1/message-id-key` gives the value key, the index key, the [`PickleKey`] of
//! protocol session pickles and the AES-256 key of outgoing message ids ([`MessageIds`]), each
//! 32 bytes.

pub mod commits;
pub mod kv;
mod message_ids;
mod seal;
pub mod vault;

#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Bound;

use protocol::crypto::aead::AEAD_NONCE_LEN;
use protocol::pickle::PickleKey;
use rand::Rng as _;
use zeroize::Zeroizing;

pub use kv::{Kv, LossPolicy};
pub use message_ids::MessageIds;
pub use vault::{KdfParams, Rewrapped, StoreKeys, Vault};

use kv::{Op, RawIter};
use seal::{backend_key, open_value, seal_value};

/// A logical table: one byte prefixed to every key in the single sled tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(pub u8);

impl Table {
    /// The vault's table. Its one record is plaintext apart from the wrapped master key, so it
    /// is not for [`Store`]'s encrypted reads and writes; the daemon defines tables `1..=255`.
    pub const META: Table = Table(0);
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the database failed (the message is sled's or the OS's).
    #[error("store I/O error: {0}")]
    Io(String),
    /// The store is older than its commit record: it lost commits it had acknowledged (after a
    /// crash, sled can open an older state when a byte of its files is damaged).
    #[error(
        "the store lost commits it had acknowledged: it holds commit {store}, but commit \
         {recorded} was written before; refusing to start on it. Restore the data directory from \
         a backup, or start chatd once with --accept-store-loss to go on with what is left \
         (see README, Recovering a damaged store)"
    )]
    LostCommits {
        /// The store's counter.
        store: u64,
        /// The counter the commit record holds.
        recorded: u64,
    },
    /// Another process (another chatd, most likely) has the data directory open.
    #[error("the store is in use by another process")]
    InUse,
    /// A value failed authentication or does not decode: the files were modified or damaged.
    #[error("the store is corrupt: {0}")]
    Corrupt(&'static str),
    /// The passphrase does not open the vault.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// There is no vault yet: the account has not been created.
    #[error("there is no vault")]
    NoVault,
    /// A vault already exists; creating another would orphan its data.
    #[error("a vault already exists")]
    VaultExists,
    /// The vault is protected by a passphrase and none was given.
    #[error("the vault is protected: a passphrase is required")]
    PassphraseRequired,
    /// [`Vault::create`] was given Argon2 parameters that Argon2 refuses (less than 8 KiB of
    /// memory per lane, zero passes or lanes) or that exceed the `KdfParams::MAX_*` limits.
    #[error("invalid key derivation parameters")]
    InvalidKdfParams,
}

/// One entry read from a table: its key (without the table byte) and its decrypted value.
pub type Entry = (Vec<u8>, Zeroizing<Vec<u8>>);

/// The unlocked store: the backend plus the keys derived from the master key.
///
/// Reads decrypt and authenticate; writes go through a [`Batch`]. `Debug` prints no key.
pub struct Store {
    kv: Kv,
    keys: StoreKeys,
}

impl Store {
    /// The store over `kv`, with the keys [`Vault::unlock`] or [`Vault::create`] returned.
    pub fn new(kv: Kv, keys: StoreKeys) -> Self {
        Store { kv, keys }
    }

    /// The backend.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// The key protocol session pickles are sealed with.
    pub fn pickle_key(&self) -> &PickleKey {
        self.keys.pickle()
    }

    /// Keyed hash of a plaintext identifier, for use as (part of) a key: HMAC-SHA256 under the
    /// index key of `table || plaintext`, truncated to 16 bytes. The table byte separates the
    /// tables' domains, so the same identifier indexes differently in each.
    pub fn index(&self, table: Table, plaintext: &[u8]) -> [u8; 16] {
        let mac = self.keys.index().mac(&[&[table.0], plaintext]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    }

    /// The keyed permutation that names outgoing messages by where they are stored.
    pub fn message_ids(&self) -> &MessageIds {
        self.keys.message_ids()
    }

    /// The value stored under `key` in `table`, decrypted.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        debug_assert_ne!(table, Table::META, "Table::META is the vault's");
        match self.kv.get(backend_key(table, key).as_slice())? {
            None => Ok(None),
            Some(stored) => open_value(self.keys.value_key(), table, key, &stored).map(Some),
        }
    }

    /// Entries whose key starts with `prefix`, in ascending key order; keys are returned
    /// without the table byte.
    pub fn scan(
        &self,
        table: Table,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + use<'_> {
        let (lo, hi) = prefix_bounds(table, prefix);
        self.decrypt(table, self.kv.range(lo, hi, false))
    }

    /// Entries whose key starts with `prefix` and is strictly less than `before` (if given),
    /// in descending key order (for "the latest N messages"); keys are returned without the
    /// table byte.
    pub fn scan_rev(
        &self,
        table: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + use<'_> {
        let (lo, mut hi) = prefix_bounds(table, prefix);
        if let Some(before) = before {
            let before = backend_key(table, before).as_slice().to_vec();
            let tighter = match &hi {
                Bound::Excluded(end) => before < *end,
                _ => true,
            };
            if tighter {
                hi = Bound::Excluded(before);
            }
        }
        self.decrypt(table, self.kv.range(lo, hi, true))
    }

    /// The entry with the largest key starting with `prefix` (the newest message sequence,
    /// for instance); its key without the table byte.
    pub fn last(&self, table: Table, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.scan_rev(table, prefix, None).next().transpose()
    }

    /// An empty batch of writes to this store.
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// Applies the batch atomically: every write in it or none. Not yet durable: see
    /// [`Store::flush`].
    ///
    /// The batch must come from this store (its values are encrypted under this store's keys).
    pub fn commit(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        debug_assert!(
            std::ptr::eq(batch.store, self),
            "a batch is committed to the store that made it"
        );
        if batch.ops.is_empty() {
            return Ok(());
        }
        batch.store.kv.apply(batch.ops)
    }

    /// Makes every committed batch durable (sled fsyncs, on its own thread pool). A no-op in
    /// memory.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush().await
    }

    /// [`Store::flush`] on the calling thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.kv.flush_blocking()
    }

    /// Decrypts raw entries of `table`, stripping the table byte from their keys.
    fn decrypt(
        &self,
        table: Table,
        raw: RawIter,
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + use<'_> {
        debug_assert_ne!(table, Table::META, "Table::META is the vault's");
        raw.map(move |entry| {
            let (backend_key, stored) = entry?;
            let key = backend_key
                .get(1..)
                .ok_or(StoreError::Corrupt("a stored key is empty"))?;
            let value = open_value(self.keys.value_key(), table, key, &stored)?;
            Ok((key.to_vec(), value))
        })
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("kv", &self.kv)
            .field("keys", &self.keys)
            .finish()
    }
}

/// Writes to apply together with [`Store::commit`]. Values are encrypted as they are added,
/// so the batch holds no plaintext.
pub struct Batch<'a> {
    store: &'a Store,
    ops: Vec<Op>,
}

impl<'a> Batch<'a> {
    /// An empty batch of writes to `store`.
    pub fn new(store: &'a Store) -> Self {
        Batch {
            store,
            ops: Vec::new(),
        }
    }
}

impl Batch<'_> {
    /// Stores `value` under `key` in `table`, encrypting it now with a fresh random nonce.
    /// A later write to the same key in the same batch wins.
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        debug_assert_ne!(table, Table::META, "Table::META is the vault's");
        let mut nonce = [0u8; AEAD_NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = seal_value(self.store.keys.value_key(), &nonce, table, key, value);
        self.ops.push((raw_key(table, key), Some(sealed)));
    }

    /// Deletes `key` from `table` (nothing happens if it is absent).
    pub fn delete(&mut self, table: Table, key: &[u8]) {
        debug_assert_ne!(table, Table::META, "Table::META is the vault's");
        self.ops.push((raw_key(table, key), None));
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many writes (puts and deletes) the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.ops.len())
            .finish()
    }
}

/// The backend key of `key` in `table`, owned (a batch keeps it until commit).
fn raw_key(table: Table, key: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(1 + key.len());
    raw.push(table.0);
    raw.extend_from_slice(key);
    raw
}

/// Bounds of the backend keys in `table` that start with `prefix`: from `table || prefix`
/// included to the next byte string with a different prefix excluded.
fn prefix_bounds(table: Table, prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = raw_key(table, prefix);
    let mut end = start.clone();
    // The least string above every extension of `start`: drop trailing 0xff bytes and
    // increment the last remaining one. Only an all-0xff `start` has no such bound.
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (Bound::Included(start), Bound::Excluded(end));
        }
    }
    (Bound::Included(start), Bound::Unbounded)
}
