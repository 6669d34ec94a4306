//! openmls' storage over the daemon's encrypted store: every MLS record of every group (trees,
//! epoch secrets, leaf and key-package private keys, queued proposals) is a value in
//! [`tables::GROUP_STATE`], under the keyed hash of what openmls names it by, so neither a group
//! id nor a key reference is readable on disk.
//!
//! Writes are held in memory ([`GroupStorage::stage`]) until the caller moves them into a store
//! batch ([`GroupStorage::take_writes`]) that also carries the round's other records, so an MLS
//! operation and what the daemon did with it commit together or not at all; a failed round calls
//! [`GroupStorage::discard`] and the next read sees the store as it was. Reads see the staged
//! writes first. Values are CBOR (openmls' records are serde types; CBOR keeps their byte
//! strings as byte strings) and are zeroized when dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use openmls_traits::storage::{CURRENT_VERSION, StorageProvider, traits};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::core::records::tables;
use crate::store::{Batch, Store, StoreError};

/// What went wrong reading or writing an MLS record.
#[derive(Debug, thiserror::Error)]
pub enum GroupStorageError {
    /// The store failed or a value did not authenticate.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A record did not encode or decode.
    #[error("an MLS record did not encode or decode: {0}")]
    Codec(String),
}

/// The record kinds, each a distinct prefix of the hashed key (openmls names records by group
/// id, key reference or public key; the label keeps the kinds apart).
mod label {
    pub const JOIN_CONFIG: &[u8] = b"join-config";
    pub const OWN_LEAF_NODES: &[u8] = b"own-leaf-nodes";
    pub const PROPOSAL: &[u8] = b"proposal";
    pub const PROPOSAL_REFS: &[u8] = b"proposal-refs";
    pub const TREE: &[u8] = b"tree";
    pub const INTERIM_TRANSCRIPT_HASH: &[u8] = b"interim-transcript-hash";
    pub const CONTEXT: &[u8] = b"context";
    pub const CONFIRMATION_TAG: &[u8] = b"confirmation-tag";
    pub const GROUP_STATE: &[u8] = b"group-state";
    pub const MESSAGE_SECRETS: &[u8] = b"message-secrets";
    pub const RESUMPTION_PSK_STORE: &[u8] = b"resumption-psk-store";
    pub const OWN_LEAF_INDEX: &[u8] = b"own-leaf-index";
    pub const EPOCH_SECRETS: &[u8] = b"epoch-secrets";
    pub const SIGNATURE_KEY_PAIR: &[u8] = b"signature-key-pair";
    pub const ENCRYPTION_KEY_PAIR: &[u8] = b"encryption-key-pair";
    pub const EPOCH_KEY_PAIRS: &[u8] = b"epoch-key-pairs";
    pub const KEY_PACKAGE: &[u8] = b"key-package";
    pub const PSK: &[u8] = b"psk";
}

/// The staged writes: hashed key -> the new value, or `None` for a delete.
type Staged = BTreeMap<[u8; 16], Option<Zeroizing<Vec<u8>>>>;

/// openmls' [`StorageProvider`] over the encrypted store, with writes staged until the round
/// commits. Cloning shares the staged writes.
#[derive(Clone)]
pub struct GroupStorage {
    store: Arc<Store>,
    staged: Arc<Mutex<Staged>>,
}

impl std::fmt::Debug for GroupStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupStorage")
            .field("staged", &self.staged_len())
            .finish_non_exhaustive()
    }
}

impl GroupStorage {
    /// Storage over `store`, with nothing staged.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            staged: Arc::default(),
        }
    }

    /// How many writes and deletes are staged.
    pub fn staged_len(&self) -> usize {
        self.lock().len()
    }

    /// Moves every staged write and delete into `batch` (which the caller commits with the
    /// round's other records) and clears the stage.
    pub fn take_writes(&self, batch: &mut Batch<'_>) {
        let staged = std::mem::take(&mut *self.lock());
        for (key, value) in staged {
            match value {
                Some(value) => batch.put(tables::GROUP_STATE, &key, &value),
                None => batch.delete(tables::GROUP_STATE, &key),
            }
        }
    }

    /// Forgets the staged writes: reads see the store as it is.
    pub fn discard(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store key of the record `label` names `key` by.
    fn key_of(&self, label: &[u8], key: &impl Serialize) -> Result<[u8; 16], GroupStorageError> {
        let mut named = label.to_vec();
        named.push(0);
        ciborium::into_writer(key, &mut named)
            .map_err(|e| GroupStorageError::Codec(e.to_string()))?;
        Ok(self.store.index(tables::GROUP_STATE, &named))
    }

    fn put_raw(&self, key: [u8; 16], value: &impl Serialize) -> Result<(), GroupStorageError> {
        let mut bytes = Zeroizing::new(Vec::new());
        ciborium::into_writer(value, &mut *bytes)
            .map_err(|e| GroupStorageError::Codec(e.to_string()))?;
        self.lock().insert(key, Some(bytes));
        Ok(())
    }

    fn get_raw<V: DeserializeOwned>(&self, key: [u8; 16]) -> Result<Option<V>, GroupStorageError> {
        let staged = self.lock().get(&key).cloned();
        let bytes = match staged {
            Some(Some(bytes)) => bytes,
            Some(None) => return Ok(None),
            None => match self.store.get(tables::GROUP_STATE, &key)? {
                Some(bytes) => bytes,
                None => return Ok(None),
            },
        };
        ciborium::from_reader(bytes.as_slice())
            .map(Some)
            .map_err(|e| GroupStorageError::Codec(e.to_string()))
    }

    fn put<V: Serialize>(
        &self,
        label: &[u8],
        key: &impl Serialize,
        value: &V,
    ) -> Result<(), GroupStorageError> {
        let key = self.key_of(label, key)?;
        self.put_raw(key, value)
    }

    fn get<V: DeserializeOwned>(
        &self,
        label: &[u8],
        key: &impl Serialize,
    ) -> Result<Option<V>, GroupStorageError> {
        let key = self.key_of(label, key)?;
        self.get_raw(key)
    }

    fn delete(&self, label: &[u8], key: &impl Serialize) -> Result<(), GroupStorageError> {
        let key = self.key_of(label, key)?;
        self.lock().insert(key, None);
        Ok(())
    }

    /// Appends `item` (encoded) to the list stored under `label` and `key`.
    fn append<V: Serialize>(
        &self,
        label: &[u8],
        key: &impl Serialize,
        item: &V,
    ) -> Result<(), GroupStorageError> {
        let key = self.key_of(label, key)?;
        let mut list: Vec<Vec<u8>> = self.get_raw(key)?.unwrap_or_default();
        let mut bytes = Vec::new();
        ciborium::into_writer(item, &mut bytes)
            .map_err(|e| GroupStorageError::Codec(e.to_string()))?;
        list.push(bytes);
        self.put_raw(key, &list)
    }

    /// The list stored under `label` and `key`, decoded.
    fn list<V: DeserializeOwned>(
        &self,
        label: &[u8],
        key: &impl Serialize,
    ) -> Result<Vec<V>, GroupStorageError> {
        let list: Vec<Vec<u8>> = self.get(label, key)?.unwrap_or_default();
        list.iter()
            .map(|item| {
                ciborium::from_reader(item.as_slice())
                    .map_err(|e| GroupStorageError::Codec(e.to_string()))
            })
            .collect()
    }

    /// Removes `item` (compared encoded) from the list stored under `label` and `key`.
    fn remove_from_list<V: Serialize>(
        &self,
        label: &[u8],
        key: &impl Serialize,
        item: &V,
    ) -> Result<(), GroupStorageError> {
        let key = self.key_of(label, key)?;
        let mut list: Vec<Vec<u8>> = self.get_raw(key)?.unwrap_or_default();
        let mut bytes = Vec::new();
        ciborium::into_writer(item, &mut bytes)
            .map_err(|e| GroupStorageError::Codec(e.to_string()))?;
        list.retain(|stored| stored.as_slice() != bytes.as_slice());
        self.put_raw(key, &list)
    }
}

/// The key of a group's epoch key pairs: group id, epoch and leaf index together.
fn epoch_key<G: Serialize, E: Serialize>(
    group_id: &G,
    epoch: &E,
    leaf_index: u32,
) -> impl Serialize {
    (serde_bytes_of(group_id), serde_bytes_of(epoch), leaf_index)
}

/// A serde value encoded as CBOR bytes (keys made of several parts).
fn serde_bytes_of(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Encoding into a Vec cannot fail for openmls' key types (plain structs of bytes and
    // integers); a failure would only make the key differ from any stored one.
    let _ = ciborium::into_writer(value, &mut bytes);
    bytes
}

impl StorageProvider<CURRENT_VERSION> for GroupStorage {
    type Error = GroupStorageError;

    fn write_mls_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        config: &MlsGroupJoinConfig,
    ) -> Result<(), Self::Error> {
        self.put(label::JOIN_CONFIG, group_id, config)
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        leaf_node: &LeafNode,
    ) -> Result<(), Self::Error> {
        self.append(label::OWN_LEAF_NODES, group_id, leaf_node)
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
        proposal: &QueuedProposal,
    ) -> Result<(), Self::Error> {
        let key = (serde_bytes_of(group_id), serde_bytes_of(proposal_ref));
        self.put(label::PROPOSAL, &key, proposal)?;
        self.append(label::PROPOSAL_REFS, group_id, proposal_ref)
    }

    fn write_tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        tree: &TreeSync,
    ) -> Result<(), Self::Error> {
        self.put(label::TREE, group_id, tree)
    }

    fn write_interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        interim_transcript_hash: &InterimTranscriptHash,
    ) -> Result<(), Self::Error> {
        self.put(
            label::INTERIM_TRANSCRIPT_HASH,
            group_id,
            interim_transcript_hash,
        )
    }

    fn write_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_context: &GroupContext,
    ) -> Result<(), Self::Error> {
        self.put(label::CONTEXT, group_id, group_context)
    }

    fn write_confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        confirmation_tag: &ConfirmationTag,
    ) -> Result<(), Self::Error> {
        self.put(label::CONFIRMATION_TAG, group_id, confirmation_tag)
    }

    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_state: &GroupState,
    ) -> Result<(), Self::Error> {
        self.put(label::GROUP_STATE, group_id, group_state)
    }

    fn write_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        message_secrets: &MessageSecrets,
    ) -> Result<(), Self::Error> {
        self.put(label::MESSAGE_SECRETS, group_id, message_secrets)
    }

    fn write_resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        resumption_psk_store: &ResumptionPskStore,
    ) -> Result<(), Self::Error> {
        self.put(label::RESUMPTION_PSK_STORE, group_id, resumption_psk_store)
    }

    fn write_own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        own_leaf_index: &LeafNodeIndex,
    ) -> Result<(), Self::Error> {
        self.put(label::OWN_LEAF_INDEX, group_id, own_leaf_index)
    }

    fn write_group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_epoch_secrets: &GroupEpochSecrets,
    ) -> Result<(), Self::Error> {
        self.put(label::EPOCH_SECRETS, group_id, group_epoch_secrets)
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
        signature_key_pair: &SignatureKeyPair,
    ) -> Result<(), Self::Error> {
        self.put(label::SIGNATURE_KEY_PAIR, public_key, signature_key_pair)
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
        key_pair: &HpkeKeyPair,
    ) -> Result<(), Self::Error> {
        self.put(label::ENCRYPTION_KEY_PAIR, public_key, key_pair)
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
        key_pairs: &[HpkeKeyPair],
    ) -> Result<(), Self::Error> {
        self.put(
            label::EPOCH_KEY_PAIRS,
            &epoch_key(group_id, epoch, leaf_index),
            &key_pairs,
        )
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &HashReference,
        key_package: &KeyPackage,
    ) -> Result<(), Self::Error> {
        self.put(label::KEY_PACKAGE, hash_ref, key_package)
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        psk_id: &PskId,
        psk: &PskBundle,
    ) -> Result<(), Self::Error> {
        self.put(label::PSK, psk_id, psk)
    }

    fn mls_group_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MlsGroupJoinConfig>, Self::Error> {
        self.get(label::JOIN_CONFIG, group_id)
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<LeafNode>, Self::Error> {
        self.list(label::OWN_LEAF_NODES, group_id)
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<ProposalRef>, Self::Error> {
        self.list(label::PROPOSAL_REFS, group_id)
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<(ProposalRef, QueuedProposal)>, Self::Error> {
        let refs: Vec<ProposalRef> = self.list(label::PROPOSAL_REFS, group_id)?;
        let mut proposals = Vec::with_capacity(refs.len());
        for proposal_ref in refs {
            let key = (serde_bytes_of(group_id), serde_bytes_of(&proposal_ref));
            if let Some(proposal) = self.get(label::PROPOSAL, &key)? {
                proposals.push((proposal_ref, proposal));
            }
        }
        Ok(proposals)
    }

    fn tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<TreeSync>, Self::Error> {
        self.get(label::TREE, group_id)
    }

    fn group_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupContext>, Self::Error> {
        self.get(label::CONTEXT, group_id)
    }

    fn interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<InterimTranscriptHash>, Self::Error> {
        self.get(label::INTERIM_TRANSCRIPT_HASH, group_id)
    }

    fn confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ConfirmationTag>, Self::Error> {
        self.get(label::CONFIRMATION_TAG, group_id)
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupState>, Self::Error> {
        self.get(label::GROUP_STATE, group_id)
    }

    fn message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, Self::Error> {
        self.get(label::MESSAGE_SECRETS, group_id)
    }

    fn resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ResumptionPskStore>, Self::Error> {
        self.get(label::RESUMPTION_PSK_STORE, group_id)
    }

    fn own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<LeafNodeIndex>, Self::Error> {
        self.get(label::OWN_LEAF_INDEX, group_id)
    }

    fn group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupEpochSecrets>, Self::Error> {
        self.get(label::EPOCH_SECRETS, group_id)
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<Option<SignatureKeyPair>, Self::Error> {
        self.get(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<Option<HpkeKeyPair>, Self::Error> {
        self.get(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<Vec<HpkeKeyPair>, Self::Error> {
        Ok(self
            .get(
                label::EPOCH_KEY_PAIRS,
                &epoch_key(group_id, epoch, leaf_index),
            )?
            .unwrap_or_default())
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<Option<KeyPackage>, Self::Error> {
        self.get(label::KEY_PACKAGE, hash_ref)
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskId,
    ) -> Result<Option<PskBundle>, Self::Error> {
        self.get(label::PSK, psk_id)
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
    ) -> Result<(), Self::Error> {
        let key = (serde_bytes_of(group_id), serde_bytes_of(proposal_ref));
        self.delete(label::PROPOSAL, &key)?;
        self.remove_from_list(label::PROPOSAL_REFS, group_id, proposal_ref)
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::OWN_LEAF_NODES, group_id)
    }

    fn delete_group_config<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::JOIN_CONFIG, group_id)
    }

    fn delete_tree<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::TREE, group_id)
    }

    fn delete_confirmation_tag<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::CONFIRMATION_TAG, group_id)
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::GROUP_STATE, group_id)
    }

    fn delete_context<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::CONTEXT, group_id)
    }

    fn delete_interim_transcript_hash<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::INTERIM_TRANSCRIPT_HASH, group_id)
    }

    fn delete_message_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::MESSAGE_SECRETS, group_id)
    }

    fn delete_all_resumption_psk_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::RESUMPTION_PSK_STORE, group_id)
    }

    fn delete_own_leaf_index<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::OWN_LEAF_INDEX, group_id)
    }

    fn delete_group_epoch_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.delete(label::EPOCH_SECRETS, group_id)
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        let refs: Vec<ProposalRef> = self.list(label::PROPOSAL_REFS, group_id)?;
        for proposal_ref in refs {
            let key = (serde_bytes_of(group_id), serde_bytes_of(&proposal_ref));
            self.delete(label::PROPOSAL, &key)?;
        }
        self.delete(label::PROPOSAL_REFS, group_id)
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<(), Self::Error> {
        self.delete(label::SIGNATURE_KEY_PAIR, public_key)
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<(), Self::Error> {
        self.delete(label::ENCRYPTION_KEY_PAIR, public_key)
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<(), Self::Error> {
        self.delete(
            label::EPOCH_KEY_PAIRS,
            &epoch_key(group_id, epoch, leaf_index),
        )
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<(), Self::Error> {
        self.delete(label::KEY_PACKAGE, hash_ref)
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskKey,
    ) -> Result<(), Self::Error> {
        self.delete(label::PSK, psk_id)
    }
}
