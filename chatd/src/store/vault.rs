//! The vault: the random master key every store key derives from, kept in [`Table::META`]
//! under `b"vault"`, wrapped under a key derived from the passphrase with Argon2id (RFC 9106),
//! or stored unwrapped when the user chose to run without a passphrase.
//!
//! The record's byte layout is in the parent module's documentation.

use std::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use protocol::codec::{DecodeError, Reader};
use protocol::crypto::Rng;
use protocol::crypto::aead::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use protocol::crypto::kdf::{HmacSha256, hkdf_sha256};
use protocol::pickle::PickleKey;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::kv::Kv;
use super::message_ids::MessageIds;
use super::seal::backend_key;
use super::{StoreError, Table};

/// Version byte of the vault record.
pub const VAULT_VERSION: u8 = 1;

/// Key of the vault record in [`Table::META`].
const VAULT_KEY: &[u8] = b"vault";
/// Protection byte: the master key is stored as is.
const UNPROTECTED: u8 = 0;
/// Protection byte: the master key is wrapped under Argon2id (version 0x13).
const ARGON2ID: u8 = 1;

const MASTER_KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
/// Version, protection, the three KDF parameters and the salt: the part the wrap's AAD covers.
const HEADER_LEN: usize = 1 + 1 + 3 * 4 + SALT_LEN;
/// Length of a protected record.
const PROTECTED_LEN: usize = HEADER_LEN + AEAD_NONCE_LEN + MASTER_KEY_LEN + AEAD_TAG_LEN;
/// Length of an unprotected record.
const UNPROTECTED_LEN: usize = 1 + 1 + MASTER_KEY_LEN;

/// Prefix of the associated data of the wrapped master key.
const WRAP_AAD_LABEL: &[u8] = b"chatd/store/v1/vault";
/// HKDF info strings of the keys derived from the master key.
const VALUE_KEY_INFO: &[u8] = b"chatd/store/v1/value-key";
const INDEX_KEY_INFO: &[u8] = b"chatd/store/v1/index-key";
const PICKLE_KEY_INFO: &[u8] = b"chatd/store/v1/pickle-key";
const MESSAGE_ID_KEY_INFO: &[u8] = b"chatd/store/v1/message-id-key";

/// Argon2id cost parameters, stored in the vault record next to the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB (Argon2's `m`).
    pub memory_kib: u32,
    /// Number of passes (Argon2's `t`).
    pub iterations: u32,
    /// Degree of parallelism, the number of lanes (Argon2's `p`).
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106 section 4's second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    /// Parameters cheap enough for tests (64 KiB, 1 pass, 1 lane). Never for real data.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// The most memory a vault may ask for (4 GiB). A record asking for more is refused as
    /// corrupt rather than letting a modified file make unlock exhaust memory.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// The most passes a vault may ask for.
    pub const MAX_ITERATIONS: u32 = 1024;
    /// The most lanes a vault may ask for.
    pub const MAX_PARALLELISM: u32 = 64;

    /// The Argon2id instance for these parameters, or `None` if they are outside Argon2's
    /// limits (for instance less than 8 KiB per lane) or above the `MAX_*` limits.
    fn argon2(self) -> Option<Argon2<'static>> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return None;
        }
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(AEAD_KEY_LEN),
        )
        .ok()?;
        Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The keys an unlocked store works with, all derived from the master key with HKDF-SHA256
/// (distinct info strings): the value key (AES-256-GCM), the index key (HMAC-SHA256, kept as a
/// keyed state), the [`PickleKey`] for protocol session pickles and the AES-256 key of
/// outgoing message ids ([`MessageIds`]).
///
/// Zeroized on drop; `Debug` prints nothing of them.
#[derive(ZeroizeOnDrop)]
pub struct StoreKeys {
    value_key: [u8; AEAD_KEY_LEN],
    // `HmacSha256` zeroizes its keyed state itself on drop (the workspace builds `hmac` with
    // its `zeroize` feature), and the derive has no way to call that, hence the skip.
    #[zeroize(skip)]
    index: HmacSha256,
    pickle: PickleKey,
    // The AES key schedule zeroizes itself on drop (the `aes` crate's `zeroize` feature).
    #[zeroize(skip)]
    message_ids: MessageIds,
}

impl StoreKeys {
    /// Derives the store keys from the master key.
    pub(crate) fn from_master(master: &[u8; MASTER_KEY_LEN]) -> StoreKeys {
        let value_key = hkdf_sha256::<AEAD_KEY_LEN>(None, &[master], &[VALUE_KEY_INFO]);
        let index_key = hkdf_sha256::<32>(None, &[master], &[INDEX_KEY_INFO]);
        let pickle_key = hkdf_sha256::<32>(None, &[master], &[PICKLE_KEY_INFO]);
        let message_id_key = hkdf_sha256::<32>(None, &[master], &[MESSAGE_ID_KEY_INFO]);
        StoreKeys {
            value_key: *value_key,
            index: HmacSha256::new(index_key.as_slice()),
            pickle: PickleKey::new(*pickle_key),
            message_ids: MessageIds::new(&message_id_key),
        }
    }

    /// The AES-256-GCM key of stored values.
    pub(crate) fn value_key(&self) -> &[u8; AEAD_KEY_LEN] {
        &self.value_key
    }

    /// The keyed HMAC state of [`super::Store::index`].
    pub(crate) fn index(&self) -> &HmacSha256 {
        &self.index
    }

    /// The key protocol session pickles are sealed with.
    pub(crate) fn pickle(&self) -> &PickleKey {
        &self.pickle
    }

    /// The permutation behind outgoing message ids.
    pub(crate) fn message_ids(&self) -> &MessageIds {
        &self.message_ids
    }
}

impl fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKeys(..)")
    }
}

/// Creates, inspects and unlocks the vault record of a [`Kv`].
#[derive(Debug)]
pub struct Vault;

impl Vault {
    /// Whether `kv` holds a vault record.
    pub fn exists(kv: &Kv) -> Result<bool, StoreError> {
        Ok(kv
            .get(backend_key(Table::META, VAULT_KEY).as_slice())?
            .is_some())
    }

    /// Creates the vault: a random master key, wrapped under Argon2id(passphrase, a random
    /// 16-byte salt, `params`), or, when `passphrase` is `None`, stored unwrapped and marked
    /// unprotected. Writes the record to [`Table::META`], flushes, and returns the store keys.
    ///
    /// Slow with real parameters (Argon2id); run it on a blocking thread. Fails with
    /// [`StoreError::VaultExists`] if there is already a vault (the record is written only if
    /// absent, so two racing calls cannot both succeed), and with
    /// [`StoreError::InvalidKdfParams`] if `params` is out of range (`params` is ignored when
    /// there is no passphrase).
    pub fn create(
        kv: &Kv,
        passphrase: Option<&[u8]>,
        params: KdfParams,
        rng: &mut impl Rng,
    ) -> Result<StoreKeys, StoreError> {
        // Checked first so an existing vault does not cost a key derivation.
        if Vault::exists(kv)? {
            return Err(StoreError::VaultExists);
        }
        let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rng.fill_bytes(master.as_mut());
        let record = seal_record(&master, passphrase, params, rng)?;

        if !kv.insert_new(backend_key(Table::META, VAULT_KEY).as_slice(), &record)? {
            return Err(StoreError::VaultExists);
        }
        kv.flush_blocking()?;
        Ok(StoreKeys::from_master(&master))
    }

    /// Unlocks the vault and derives the store keys.
    ///
    /// Slow with real parameters (Argon2id); run it on a blocking thread. Fails with
    /// [`StoreError::NoVault`] if there is none, [`StoreError::PassphraseRequired`] if the
    /// vault is protected and `passphrase` is `None`, [`StoreError::WrongPassphrase`] if the
    /// wrapped key does not open (a wrong passphrase, or a record whose parameters or salt were
    /// modified: the wrap's associated data covers them), and [`StoreError::Corrupt`] if the
    /// record does not decode. A passphrase given for an unprotected vault is ignored; use
    /// [`Vault::is_protected`] to warn about that.
    pub fn unlock(kv: &Kv, passphrase: Option<&[u8]>) -> Result<StoreKeys, StoreError> {
        let stored = kv
            .get(backend_key(Table::META, VAULT_KEY).as_slice())?
            .ok_or(StoreError::NoVault)?;
        let master = open_record(&stored, passphrase)?;
        Ok(StoreKeys::from_master(&master))
    }

    /// Wraps the master key again for a passphrase change: opens the current record with
    /// `old` (as [`Vault::unlock`] does, with its errors; an unprotected vault needs no old
    /// passphrase, and refuses one with [`StoreError::WrongPassphrase`] so that a user who
    /// thinks it is protected learns otherwise), then seals the same master key under `new`
    /// (a fresh salt and nonce, `params`), or unprotected when `new` is `None`.
    ///
    /// Writes nothing: the [`Rewrapped`] record replaces the old one with [`Vault::replace`],
    /// inside a round of the core, so that it becomes durable with the round's flush (and a
    /// failed flush leaves the old record). Slow with real parameters (two Argon2id runs at
    /// most); run it on a blocking thread.
    pub fn rewrap(
        kv: &Kv,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        params: KdfParams,
        rng: &mut impl Rng,
    ) -> Result<Rewrapped, StoreError> {
        let stored = kv
            .get(backend_key(Table::META, VAULT_KEY).as_slice())?
            .ok_or(StoreError::NoVault)?;
        if old.is_some() && matches!(Record::decode(&stored)?, Record::Unprotected { .. }) {
            return Err(StoreError::WrongPassphrase);
        }
        let master = open_record(&stored, old)?;
        let record = seal_record(&master, new, params, rng)?;
        Ok(Rewrapped {
            replaces: Zeroizing::new(stored.to_vec()),
            record,
        })
    }

    /// Replaces the vault record with `rewrapped`, if the record is still the one it was made
    /// from (returns false, writing nothing, if another change came first). The write is one
    /// key, so it reaches the disk whole or not at all: with the flush of the core's round on
    /// sled, at once in memory.
    pub fn replace(kv: &Kv, rewrapped: &Rewrapped) -> Result<bool, StoreError> {
        let key = backend_key(Table::META, VAULT_KEY);
        let current = kv.get(key.as_slice())?;
        if current.as_deref() != Some(rewrapped.replaces.as_slice()) {
            return Ok(false);
        }
        kv.apply(vec![(
            key.as_slice().to_vec(),
            Some(rewrapped.record.to_vec()),
        )])?;
        Ok(true)
    }

    /// Whether the vault is protected by a passphrase. [`StoreError::NoVault`] if there is
    /// no vault.
    pub fn is_protected(kv: &Kv) -> Result<bool, StoreError> {
        let stored = kv
            .get(backend_key(Table::META, VAULT_KEY).as_slice())?
            .ok_or(StoreError::NoVault)?;
        Ok(matches!(Record::decode(&stored)?, Record::Protected { .. }))
    }
}

/// A vault record made by [`Vault::rewrap`], waiting to replace the one it was made from.
pub struct Rewrapped {
    /// The record it replaces, compared before the write (for an unprotected vault it holds
    /// the master key as is, so it is wiped on drop like `record`).
    replaces: Zeroizing<Vec<u8>>,
    /// The new record (for an unprotected vault it holds the master key as is).
    record: Zeroizing<Vec<u8>>,
}

impl Rewrapped {
    /// Whether the new record is unprotected.
    pub fn is_unprotected(&self) -> bool {
        self.record.get(1) == Some(&UNPROTECTED)
    }
}

impl fmt::Debug for Rewrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rewrapped(..)")
    }
}

/// A vault record for `master`: wrapped under Argon2id(passphrase, a random salt, `params`),
/// or unprotected when `passphrase` is `None`.
fn seal_record(
    master: &[u8; MASTER_KEY_LEN],
    passphrase: Option<&[u8]>,
    params: KdfParams,
    rng: &mut impl Rng,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    Ok(match passphrase {
        None => {
            let mut record = Zeroizing::new(Vec::with_capacity(UNPROTECTED_LEN));
            record.extend_from_slice(&[VAULT_VERSION, UNPROTECTED]);
            record.extend_from_slice(master);
            record
        }
        Some(passphrase) => {
            let argon2 = params.argon2().ok_or(StoreError::InvalidKdfParams)?;
            let mut salt = [0u8; SALT_LEN];
            rng.fill_bytes(&mut salt);
            let mut nonce = [0u8; AEAD_NONCE_LEN];
            rng.fill_bytes(&mut nonce);
            let kek = derive_kek(&argon2, passphrase, &salt).ok_or(StoreError::InvalidKdfParams)?;
            let header = encode_header(params, &salt);
            let wrapped = aead::seal(&kek, &nonce, &wrap_aad(&header), master);
            let mut record = Zeroizing::new(Vec::with_capacity(PROTECTED_LEN));
            record.extend_from_slice(&header);
            record.extend_from_slice(&nonce);
            record.extend_from_slice(&wrapped);
            record
        }
    })
}

/// The master key in a stored vault record, opened with `passphrase` if it is protected.
fn open_record(
    stored: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, StoreError> {
    match Record::decode(stored)? {
        Record::Unprotected { master } => Ok(master),
        Record::Protected {
            params,
            salt,
            nonce,
            wrapped,
        } => {
            let passphrase = passphrase.ok_or(StoreError::PassphraseRequired)?;
            let argon2 = params.argon2().ok_or(StoreError::Corrupt(
                "the vault's key derivation parameters are out of range",
            ))?;
            let kek = derive_kek(&argon2, passphrase, &salt)
                .ok_or(StoreError::Corrupt("the vault's key derivation failed"))?;
            let header = encode_header(params, &salt);
            let opened = Zeroizing::new(
                aead::open(&kek, &nonce, &wrap_aad(&header), wrapped)
                    .map_err(|_| StoreError::WrongPassphrase)?,
            );
            let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            if opened.len() != MASTER_KEY_LEN {
                return Err(StoreError::Corrupt(
                    "the vault's master key has a bad length",
                ));
            }
            master.copy_from_slice(&opened);
            Ok(master)
        }
    }
}

/// A decoded vault record.
enum Record<'a> {
    Unprotected {
        master: Zeroizing<[u8; MASTER_KEY_LEN]>,
    },
    Protected {
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; AEAD_NONCE_LEN],
        wrapped: &'a [u8],
    },
}

impl<'a> Record<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Record<'a>, StoreError> {
        Self::decode_inner(bytes).map_err(|error| match error {
            DecodeError::UnsupportedVersion { .. } => {
                StoreError::Corrupt("the vault record has an unknown version")
            }
            DecodeError::UnknownTag { .. } => {
                StoreError::Corrupt("the vault record has an unknown protection kind")
            }
            DecodeError::Truncated { .. } => StoreError::Corrupt("the vault record is truncated"),
            _ => StoreError::Corrupt("the vault record does not decode"),
        })
    }

    fn decode_inner(bytes: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        let mut reader = Reader::new(bytes);
        reader.version("vault record", VAULT_VERSION)?;
        let record = match reader.u8()? {
            UNPROTECTED => {
                let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                master.copy_from_slice(reader.take(MASTER_KEY_LEN)?);
                Record::Unprotected { master }
            }
            ARGON2ID => Record::Protected {
                params: KdfParams {
                    memory_kib: reader.u32()?,
                    iterations: reader.u32()?,
                    parallelism: reader.u32()?,
                },
                salt: reader.array()?,
                nonce: reader.array()?,
                wrapped: reader.take(MASTER_KEY_LEN + AEAD_TAG_LEN)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "vault protection",
                    tag,
                });
            }
        };
        reader.finish()?;
        Ok(record)
    }
}

/// The protected record's header: version, protection, parameters (u32 BE each) and salt.
fn encode_header(params: KdfParams, salt: &[u8; SALT_LEN]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let fields = [
        &[VAULT_VERSION, ARGON2ID][..],
        &params.memory_kib.to_be_bytes(),
        &params.iterations.to_be_bytes(),
        &params.parallelism.to_be_bytes(),
        salt,
    ];
    let mut at = 0;
    for field in fields {
        // In bounds: the fields add up to HEADER_LEN bytes.
        header[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    header
}

/// Associated data of the wrapped master key: the label, then the header.
fn wrap_aad(header: &[u8; HEADER_LEN]) -> [u8; WRAP_AAD_LABEL.len() + HEADER_LEN] {
    let mut aad = [0u8; WRAP_AAD_LABEL.len() + HEADER_LEN];
    let (label, rest) = aad.split_at_mut(WRAP_AAD_LABEL.len());
    label.copy_from_slice(WRAP_AAD_LABEL);
    rest.copy_from_slice(header);
    aad
}

/// Argon2id(passphrase, salt) into a 32-byte key-encryption key, in working memory that is
/// zeroized afterwards (it is derived from the passphrase). `None` if Argon2 refuses the
/// inputs, which validated parameters and a 16-byte salt rule out.
fn derive_kek(
    argon2: &Argon2<'_>,
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
) -> Option<Zeroizing<[u8; AEAD_KEY_LEN]>> {
    let mut blocks = Zeroizing::new(vec![Block::default(); argon2.params().block_count()]);
    let mut kek = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    argon2
        .hash_password_into_with_memory(passphrase, salt, kek.as_mut(), blocks.as_mut_slice())
        .ok()?;
    Some(kek)
}
