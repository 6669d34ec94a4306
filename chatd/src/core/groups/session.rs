//! One MLS group as this device sees it ([`GroupSession`]): create, join from a Welcome, add
//! and remove devices, encrypt, and process what arrives, with every member's credential
//! checked against its device certificate (`credential`). What the daemon does with the
//! outcome (history, events, the relay) is its callers' business; the writes openmls makes go
//! to the provider's staged storage and commit with the caller's round.

use openmls::prelude::tls_codec::{DeserializeBytes, Serialize as _};
use openmls::prelude::{
    Capabilities, Ciphersuite, CredentialType, Extension, ExtensionType, Extensions, GroupContext,
    KeyPackage, KeyPackageIn, LeafNodeIndex, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig,
    MlsMessageBodyIn, MlsMessageIn, PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, ProcessedMessageContent,
    Proposal, ProtocolVersion, RequiredCapabilitiesExtension, Sender, SenderRatchetConfiguration,
    StagedCommit, StagedWelcome, UnknownExtension,
};
use openmls_traits::OpenMlsProvider;
use openmls_traits::random::OpenMlsRand as _;
use protocol::codec::{Decode, Encode};
use protocol::group_meta::{GROUP_METADATA_EXTENSION_TYPE, GroupMetadata};
use protocol::identity::{IdentityKey, LocalDevice, VerifiedDevice};

use super::credential::{CredentialError, DeviceSigner, own_credential, verify_member};
use super::provider::GroupProvider;

/// The ciphersuite of every chatd group (SPEC.md 13.1): X-Wing (ML-KEM-768 + X25519) for HPKE,
/// AES-128-GCM, SHA-256 and Ed25519, so group secrets resist a quantum adversary recording
/// today as one-to-one sessions do (PQXDH). Its code point is draft-ietf-mls-pq-ciphersuites'
/// provisional 0x004F; a change re-initialises groups under a new group protocol version.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519;

/// Messages of an epoch that may arrive out of order, and how far ahead a message may skip.
const OUT_OF_ORDER_TOLERANCE: u32 = 64;
const MAXIMUM_FORWARD_DISTANCE: u32 = 1000;
/// Past epochs whose application secrets are kept, so messages sent just before a commit
/// still open after it.
const MAX_PAST_EPOCHS: usize = 4;
/// Application messages are padded to a multiple of this many bytes.
const PADDING: usize = 32;

/// Length of the group ids chatd makes (random; the relay's `group_id`, SPEC.md 10.10).
pub const GROUP_ID_LEN: usize = 32;

/// The exporter label of the epoch's post key seed (SPEC.md 13.5).
pub const POST_KEY_LABEL: &str = "chatd/v1/group-post-key";

/// What went wrong in a group operation.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// openmls refused or failed; the text says why.
    #[error("MLS: {0}")]
    Mls(String),
    /// A member's credential did not check out.
    #[error("a member's credential was refused: {0}")]
    Credential(#[from] CredentialError),
    /// Bytes that should be an MLS message of some kind were not.
    #[error("not a valid {0}")]
    Malformed(&'static str),
    /// The device named is not a member.
    #[error("not a member of the group")]
    NotAMember,
    /// A commit (ours or a member's) breaks the group's rules (SPEC.md 13.4); a member's is
    /// refused and the group stays at its epoch.
    #[error("refused by the group's rules: {0}")]
    Forbidden(&'static str),
    /// The group's metadata is missing or does not decode.
    #[error("the group's metadata is missing or invalid")]
    BadMetadata,
}

fn mls(error: impl std::fmt::Display) -> GroupError {
    GroupError::Mls(error.to_string())
}

/// What every chatd leaf supports: our suite, basic credentials, the metadata extension.
fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::Unknown(GROUP_METADATA_EXTENSION_TYPE)]),
        None,
        Some(&[CredentialType::Basic]),
    )
}

/// The group context extensions of a group with this metadata: the metadata itself, and the
/// requirement that every member support it.
pub(super) fn context_extensions(
    metadata: &GroupMetadata,
) -> Result<Extensions<GroupContext>, GroupError> {
    metadata.check().map_err(|_| GroupError::BadMetadata)?;
    Extensions::from_vec(vec![
        Extension::Unknown(
            GROUP_METADATA_EXTENSION_TYPE,
            UnknownExtension(metadata.to_bytes()),
        ),
        Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
            &[ExtensionType::Unknown(GROUP_METADATA_EXTENSION_TYPE)],
            &[],
            &[CredentialType::Basic],
        )),
    ])
    .map_err(mls)
}

/// The metadata in a set of group context extensions.
fn metadata_in(extensions: &Extensions<GroupContext>) -> Result<GroupMetadata, GroupError> {
    let extension = extensions
        .unknown(GROUP_METADATA_EXTENSION_TYPE)
        .ok_or(GroupError::BadMetadata)?;
    GroupMetadata::from_bytes(&extension.0).map_err(|_| GroupError::BadMetadata)
}

/// The configuration a group is created with: our suite, every handshake and application
/// message encrypted (the relay sees no sender and no proposal), the tree carried in Welcomes.
fn create_config(metadata: &GroupMetadata) -> Result<MlsGroupCreateConfig, GroupError> {
    Ok(MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .capabilities(capabilities())
        .with_group_context_extensions(context_extensions(metadata)?)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .padding_size(PADDING)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAXIMUM_FORWARD_DISTANCE,
        ))
        .build())
}

/// The configuration a Welcome is joined with (the same rules as [`create_config`]).
fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .padding_size(PADDING)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAXIMUM_FORWARD_DISTANCE,
        ))
        .build()
}

/// A fresh key package of this device, TLS-encoded, for the relay's directory; its private
/// keys are staged in the provider's storage. A last-resort one may be used more than once.
pub fn new_key_package(
    provider: &GroupProvider,
    local: &LocalDevice,
    last_resort: bool,
) -> Result<Vec<u8>, GroupError> {
    let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
    if last_resort {
        builder = builder.mark_as_last_resort();
    }
    let bundle = builder
        .build(
            CIPHERSUITE,
            provider,
            &DeviceSigner(local),
            own_credential(local),
        )
        .map_err(mls)?;
    bundle.key_package().tls_serialize_detached().map_err(mls)
}

/// A key package fetched for `expected` (a device of a contact, or found by handle): decoded,
/// its signatures and lifetime validated, our suite, and its credential the device asked for.
pub fn check_key_package(
    provider: &GroupProvider,
    bytes: &[u8],
    expected: Option<&VerifiedDevice>,
) -> Result<(KeyPackage, VerifiedDevice), GroupError> {
    let key_package = KeyPackageIn::tls_deserialize_exact_bytes(bytes)
        .map_err(|_| GroupError::Malformed("key package"))?
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(mls)?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(GroupError::Mls(format!(
            "the key package is for {:?}",
            key_package.ciphersuite()
        )));
    }
    let leaf = key_package.leaf_node();
    let device = verify_member(leaf.credential(), leaf.signature_key().as_slice())?;
    if let Some(expected) = expected
        && !same_device(&device, expected)
    {
        return Err(GroupError::Mls(
            "the key package belongs to another device".into(),
        ));
    }
    Ok((key_package, device))
}

/// Whether two verified certificates name the same device of the same account.
fn same_device(a: &VerifiedDevice, b: &VerifiedDevice) -> bool {
    a.identity() == b.identity() && a.device_id() == b.device_id()
}

/// What a processed group message was.
#[derive(Debug)]
pub enum Incoming {
    /// An application message from a member.
    Application {
        /// The sending device.
        sender: VerifiedDevice,
        /// The plaintext (chatd content, SPEC.md 13.6).
        plaintext: Vec<u8>,
    },
    /// A commit, merged: the group is at its new epoch.
    Commit {
        /// The committing device.
        committer: VerifiedDevice,
        /// Devices added.
        added: Vec<VerifiedDevice>,
        /// Devices removed (this device among them if [`Incoming::Commit::removed_self`]).
        removed: Vec<VerifiedDevice>,
        /// Whether the commit removed this device: the group is over for it.
        removed_self: bool,
    },
    /// A proposal, stored until a commit covers it.
    Proposal {
        /// The proposing device.
        sender: VerifiedDevice,
    },
    /// A message this device sent, fanned back by the relay (it cannot be opened by its own
    /// author; the daemon already holds what it sent).
    OwnEcho,
}

/// One group, loaded.
#[derive(Debug)]
pub struct GroupSession {
    pub(super) group: MlsGroup,
}

/// A commit made by this device, not yet merged: post it, then [`GroupSession::merge_own`] when
/// the relay accepted it, or [`GroupSession::discard_own`] when another commit won the epoch.
#[derive(Debug)]
pub struct OwnCommit {
    /// The commit, TLS-encoded (an `MlsMessage` holding a `PrivateMessage`).
    pub commit: Vec<u8>,
    /// The Welcome for the devices added, if any, TLS-encoded.
    pub welcome: Option<Vec<u8>>,
}

impl GroupSession {
    /// A new group with this device its only member, a random 32-byte group id, and
    /// `metadata` (whose admins must include this device's account).
    pub fn create(
        provider: &GroupProvider,
        local: &LocalDevice,
        metadata: &GroupMetadata,
    ) -> Result<Self, GroupError> {
        if !metadata.is_admin(&local.cert.identity()) {
            return Err(GroupError::Forbidden("the creator must be an admin"));
        }
        let id = provider.rand().random_vec(GROUP_ID_LEN).map_err(mls)?;
        let group = MlsGroup::new_with_group_id(
            provider,
            &DeviceSigner(local),
            &create_config(metadata)?,
            openmls::prelude::GroupId::from_slice(&id),
            own_credential(local),
        )
        .map_err(mls)?;
        Ok(Self { group })
    }

    /// The group stored under `group_id`, if this device is in it.
    pub fn load(provider: &GroupProvider, group_id: &[u8]) -> Result<Option<Self>, GroupError> {
        let id = openmls::prelude::GroupId::from_slice(group_id);
        let group = MlsGroup::load(provider.storage(), &id).map_err(mls)?;
        Ok(group.map(|group| Self { group }))
    }

    /// Joins from a Welcome (TLS-encoded `MlsMessage`) addressed to one of this device's key
    /// packages; every member's credential is checked.
    pub fn join(provider: &GroupProvider, welcome: &[u8]) -> Result<Self, GroupError> {
        let message = MlsMessageIn::tls_deserialize_exact_bytes(welcome)
            .map_err(|_| GroupError::Malformed("Welcome"))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(GroupError::Malformed("Welcome"));
        };
        let staged = StagedWelcome::new_from_welcome(provider, &join_config(), welcome, None)
            .map_err(mls)?;
        for member in staged.members() {
            verify_member(&member.credential, member.signature_key.as_slice())?;
        }
        let group = staged.into_group(provider).map_err(mls)?;
        let session = Self { group };
        session.metadata()?;
        Ok(session)
    }

    /// The group's name, description and admins, as of this epoch.
    pub fn metadata(&self) -> Result<GroupMetadata, GroupError> {
        metadata_in(self.group.extensions())
    }

    /// Whether `identity` is an admin in this epoch.
    pub fn is_admin(&self, identity: &IdentityKey) -> bool {
        self.metadata().is_ok_and(|m| m.is_admin(identity))
    }

    fn ensure_admin(&self, local: &LocalDevice, what: &'static str) -> Result<(), GroupError> {
        if self.is_admin(&local.cert.identity()) {
            Ok(())
        } else {
            Err(GroupError::Forbidden(what))
        }
    }

    /// The accounts with a device in the group.
    fn member_identities(&self) -> Vec<IdentityKey> {
        let mut identities: Vec<IdentityKey> = Vec::new();
        for device in self.members() {
            if !identities.contains(&device.identity()) {
                identities.push(device.identity());
            }
        }
        identities
    }

    /// The group id (32 bytes for groups chatd creates).
    pub fn group_id(&self) -> &[u8] {
        self.group.group_id().as_slice()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// The members' devices, in leaf order; credentials were checked when they joined.
    pub fn members(&self) -> Vec<VerifiedDevice> {
        self.group
            .members()
            .filter_map(|m| verify_member(&m.credential, m.signature_key.as_slice()).ok())
            .collect()
    }

    /// The seed of this epoch's post key (SPEC.md 13.5): 32 bytes from the MLS exporter.
    pub fn post_key_seed(
        &self,
        provider: &GroupProvider,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, GroupError> {
        self.group
            .export_secret(provider.crypto(), POST_KEY_LABEL, &[], 32)
            .map(zeroize::Zeroizing::new)
            .map_err(mls)
    }

    fn leaf_of(&self, device: &VerifiedDevice) -> Option<LeafNodeIndex> {
        self.group.members().find_map(|m| {
            let found = verify_member(&m.credential, m.signature_key.as_slice()).ok()?;
            same_device(&found, device).then_some(m.index)
        })
    }

    fn device_at(&self, leaf: LeafNodeIndex) -> Result<VerifiedDevice, GroupError> {
        let member = self.group.member_at(leaf).ok_or(GroupError::NotAMember)?;
        Ok(verify_member(
            &member.credential,
            member.signature_key.as_slice(),
        )?)
    }

    /// A commit adding the devices of these checked key packages ([`check_key_package`]).
    pub fn add(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
        key_packages: &[KeyPackage],
    ) -> Result<OwnCommit, GroupError> {
        self.ensure_admin(local, "only admins add members")?;
        let (commit, welcome, _) = self
            .group
            .add_members(provider, &DeviceSigner(local), key_packages)
            .map_err(mls)?;
        Ok(OwnCommit {
            commit: commit.tls_serialize_detached().map_err(mls)?,
            welcome: Some(welcome.tls_serialize_detached().map_err(mls)?),
        })
    }

    /// A commit removing these member devices.
    pub fn remove(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
        devices: &[VerifiedDevice],
    ) -> Result<OwnCommit, GroupError> {
        if devices
            .iter()
            .any(|d| d.identity() != local.cert.identity())
        {
            self.ensure_admin(local, "only admins remove members")?;
        }
        let leaves = devices
            .iter()
            .map(|d| self.leaf_of(d).ok_or(GroupError::NotAMember))
            .collect::<Result<Vec<_>, _>>()?;
        let (commit, _, _) = self
            .group
            .remove_members(provider, &DeviceSigner(local), &leaves)
            .map_err(mls)?;
        Ok(OwnCommit {
            commit: commit.tls_serialize_detached().map_err(mls)?,
            welcome: None,
        })
    }

    /// A commit with only a fresh path for this device (post-compromise security; a joiner
    /// sends one first, so the tree stays full and commits stay small).
    pub fn self_update(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
    ) -> Result<OwnCommit, GroupError> {
        let bundle = self
            .group
            .self_update(provider, &DeviceSigner(local), Default::default())
            .map_err(mls)?;
        Ok(OwnCommit {
            commit: bundle.commit().tls_serialize_detached().map_err(mls)?,
            welcome: None,
        })
    }

    /// A commit changing the metadata (rename, description, admins); admins only, and every
    /// admin must be a member.
    pub fn set_metadata(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
        metadata: &GroupMetadata,
    ) -> Result<OwnCommit, GroupError> {
        self.ensure_admin(local, "only admins change the group")?;
        let members = self.member_identities();
        if metadata.admins.iter().any(|a| !members.contains(a)) {
            return Err(GroupError::Forbidden("every admin must be a member"));
        }
        let (commit, _, _) = self
            .group
            .update_group_context_extensions(
                provider,
                context_extensions(metadata)?,
                &DeviceSigner(local),
            )
            .map_err(mls)?;
        Ok(OwnCommit {
            commit: commit.tls_serialize_detached().map_err(mls)?,
            welcome: None,
        })
    }

    /// A proposal removing this device (leaving); another member commits it.
    pub fn leave(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
    ) -> Result<Vec<u8>, GroupError> {
        let proposal = self
            .group
            .leave_group(provider, &DeviceSigner(local))
            .map_err(mls)?;
        proposal.tls_serialize_detached().map_err(mls)
    }

    /// A commit of the proposals received and not yet committed (members leaving).
    pub fn commit_pending(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
    ) -> Result<OwnCommit, GroupError> {
        let (commit, welcome, _) = self
            .group
            .commit_to_pending_proposals(provider, &DeviceSigner(local))
            .map_err(mls)?;
        Ok(OwnCommit {
            commit: commit.tls_serialize_detached().map_err(mls)?,
            welcome: welcome
                .map(|w| w.tls_serialize_detached())
                .transpose()
                .map_err(mls)?,
        })
    }

    /// Checks a member's commit against the group's rules (SPEC.md 13.4), with this epoch's
    /// metadata: adding, removing another account's device and changing the metadata are for
    /// admins; anyone may update their own path, remove their own devices and commit another
    /// member's proposal to leave; no other proposal is allowed; new metadata must decode and
    /// name only members as admins.
    fn check_rules(
        &self,
        committer: &VerifiedDevice,
        staged: &StagedCommit,
    ) -> Result<(), GroupError> {
        let admin = self.is_admin(&committer.identity());
        // The accounts with a device in the group once the commit is merged: an account stays
        // a member while any of its devices does.
        let mut removed_leaves = Vec::new();
        let mut added = Vec::new();
        for queued in staged.queued_proposals() {
            match queued.proposal() {
                Proposal::Add(add) => {
                    if !admin {
                        return Err(GroupError::Forbidden("only admins add members"));
                    }
                    let leaf = add.key_package().leaf_node();
                    let device = verify_member(leaf.credential(), leaf.signature_key().as_slice())?;
                    added.push(device.identity());
                }
                Proposal::Remove(remove) => {
                    let removed = self.device_at(remove.removed())?;
                    let own_leave = matches!(queued.sender(), Sender::Member(leaf) if *leaf == remove.removed());
                    let own_device = removed.identity() == committer.identity();
                    if !(admin || own_leave || own_device) {
                        return Err(GroupError::Forbidden("only admins remove members"));
                    }
                    removed_leaves.push(remove.removed());
                }
                Proposal::Update(update) => {
                    // A member updates its own leaf: the new credential is still its device.
                    let leaf = update.leaf_node();
                    let device = verify_member(leaf.credential(), leaf.signature_key().as_slice())?;
                    let Sender::Member(proposer) = queued.sender() else {
                        return Err(GroupError::Forbidden("an update from outside the group"));
                    };
                    if !same_device(&device, &self.device_at(*proposer)?) {
                        return Err(GroupError::Forbidden(
                            "a member's update names another device",
                        ));
                    }
                }
                Proposal::GroupContextExtensions(_) => {
                    if !admin {
                        return Err(GroupError::Forbidden("only admins change the group"));
                    }
                }
                _ => return Err(GroupError::Forbidden("a proposal chatd groups do not use")),
            }
        }
        let after = metadata_in(staged.group_context().extensions())?;
        if after != self.metadata()? {
            let member_after = |identity: &IdentityKey| {
                added.contains(identity)
                    || self.group.members().any(|m| {
                        !removed_leaves.contains(&m.index)
                            && verify_member(&m.credential, m.signature_key.as_slice())
                                .is_ok_and(|d| d.identity() == *identity)
                    })
            };
            if after.admins.iter().any(|a| !member_after(a)) {
                return Err(GroupError::Forbidden("every admin must be a member"));
            }
        }
        Ok(())
    }

    /// Moves the group to the epoch of this device's pending commit (the relay accepted it).
    pub fn merge_own(&mut self, provider: &GroupProvider) -> Result<(), GroupError> {
        self.group.merge_pending_commit(provider).map_err(mls)
    }

    /// Forgets this device's pending commit (another commit won the epoch).
    pub fn discard_own(&mut self, provider: &GroupProvider) -> Result<(), GroupError> {
        self.group
            .clear_pending_commit(provider.storage())
            .map_err(mls)
    }

    /// An application message carrying `plaintext`, TLS-encoded.
    pub fn encrypt(
        &mut self,
        provider: &GroupProvider,
        local: &LocalDevice,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        let message = self
            .group
            .create_message(provider, &DeviceSigner(local), plaintext)
            .map_err(mls)?;
        message.tls_serialize_detached().map_err(mls)
    }

    /// Processes one message of the group (TLS-encoded `MlsMessage`); a commit is checked
    /// (credentials of new and updated leaves) and merged.
    pub fn process(
        &mut self,
        provider: &GroupProvider,
        bytes: &[u8],
    ) -> Result<Incoming, GroupError> {
        let message = MlsMessageIn::tls_deserialize_exact_bytes(bytes)
            .map_err(|_| GroupError::Malformed("group message"))?;
        let protocol = message
            .try_into_protocol_message()
            .map_err(|_| GroupError::Malformed("group message"))?;
        let processed = self
            .group
            .process_message(provider, protocol)
            .map_err(mls)?;
        if matches!(
            processed.content(),
            ProcessedMessageContent::OwnPrivateMessage | ProcessedMessageContent::OwnPendingCommit
        ) {
            return Ok(Incoming::OwnEcho);
        }
        let sender = match processed.sender() {
            Sender::Member(leaf) => *leaf,
            _ => return Err(GroupError::Mls("a message from outside the group".into())),
        };
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(message) => {
                let sender = self.device_at(sender)?;
                Ok(Incoming::Application {
                    sender,
                    plaintext: message.into_bytes(),
                })
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                let sender = self.device_at(sender)?;
                self.group
                    .store_pending_proposal(provider.storage(), *proposal)
                    .map_err(mls)?;
                Ok(Incoming::Proposal { sender })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let committer = self.device_at(sender)?;
                self.check_rules(&committer, &staged)?;
                let mut added = Vec::new();
                for add in staged.add_proposals() {
                    let leaf = add.add_proposal().key_package().leaf_node();
                    added.push(verify_member(
                        leaf.credential(),
                        leaf.signature_key().as_slice(),
                    )?);
                }
                if let Some(leaf) = staged.update_path_leaf_node() {
                    let device = verify_member(leaf.credential(), leaf.signature_key().as_slice())?;
                    if !same_device(&device, &committer) {
                        return Err(GroupError::Forbidden(
                            "a committer's new leaf names another device",
                        ));
                    }
                }
                let mut removed = Vec::new();
                for remove in staged.remove_proposals() {
                    removed.push(self.device_at(remove.remove_proposal().removed())?);
                }
                let removed_self = staged.self_removed();
                self.group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls)?;
                Ok(Incoming::Commit {
                    committer,
                    added,
                    removed,
                    removed_self,
                })
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(GroupError::Mls(
                "external join proposals are not accepted".into(),
            )),
            ProcessedMessageContent::OwnPrivateMessage
            | ProcessedMessageContent::OwnPendingCommit => Ok(Incoming::OwnEcho),
        }
    }
}
