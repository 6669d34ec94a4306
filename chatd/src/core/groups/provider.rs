//! The openmls provider of one unlocked account: RustCrypto for the primitives and randomness,
//! [`GroupStorage`] for the records.

use std::sync::Arc;

use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;

use super::storage::GroupStorage;
use crate::store::Store;

/// Crypto, randomness and the account's MLS records.
#[derive(Debug)]
pub struct GroupProvider {
    crypto: RustCrypto,
    storage: GroupStorage,
}

impl GroupProvider {
    /// A provider whose records live in `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            crypto: RustCrypto::default(),
            storage: GroupStorage::new(store),
        }
    }
}

impl OpenMlsProvider for GroupProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = GroupStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}
