//! Group sessions between several devices, each with its own encrypted store: membership,
//! messages, removal that heals, refused credentials, and MLS records that commit with the
//! caller's round or not at all.

use std::sync::Arc;

use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};

use protocol::group_meta::GroupMetadata;

use super::credential::{CredentialError, DeviceSigner, verify_member};
use super::provider::GroupProvider;
use super::session::{GroupError, GroupSession, Incoming, check_key_package, new_key_package};
use crate::store::Store;
use crate::store::kv::Kv;
use crate::store::vault::StoreKeys;

/// One device with its own store.
struct Device {
    local: LocalDevice,
    store: Arc<Store>,
    provider: GroupProvider,
}

impl Device {
    fn new(seed: u8) -> Self {
        let mut rng = rand::rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let keys =
            DeviceKeyPair::generate(DeviceId::new(1).unwrap_or_else(|e| panic!("{e}")), &mut rng);
        let local = LocalDevice::new(&identity, keys, 1_700_000_000);
        let store = Arc::new(Store::new(
            Kv::memory(),
            StoreKeys::from_master(&[seed; 32]),
        ));
        let provider = GroupProvider::new(store.clone());
        Self {
            local,
            store,
            provider,
        }
    }

    /// Commits what the provider staged, as a round would.
    fn commit(&self) {
        let mut batch = self.store.batch();
        self.provider.storage().take_writes(&mut batch);
        self.store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
    }

    fn key_package(&self) -> Vec<u8> {
        let kp =
            new_key_package(&self.provider, &self.local, false).unwrap_or_else(|e| panic!("{e}"));
        self.commit();
        kp
    }
}

use openmls_traits::OpenMlsProvider as _;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Alice creates a group and adds the others; everyone joins from the Welcome.
fn group_of(devices: &[&Device]) -> Vec<GroupSession> {
    let (alice, others) = devices
        .split_first()
        .unwrap_or_else(|| panic!("no devices"));
    let metadata = GroupMetadata {
        name: "Team".into(),
        description: String::new(),
        admins: vec![alice.local.cert.identity()],
    };
    let mut creator = ok(GroupSession::create(
        &alice.provider,
        &alice.local,
        &metadata,
    ));
    let packages: Vec<_> = others
        .iter()
        .map(|d| {
            ok(check_key_package(
                &alice.provider,
                &d.key_package(),
                Some(&d.local.cert),
            ))
            .0
        })
        .collect();
    let own = ok(creator.add(&alice.provider, &alice.local, &packages));
    ok(creator.merge_own(&alice.provider));
    alice.commit();
    let welcome = own.welcome.unwrap_or_else(|| panic!("no Welcome"));
    let mut sessions = vec![creator];
    for d in others {
        sessions.push(ok(GroupSession::join(&d.provider, &welcome)));
        d.commit();
    }
    sessions
}

fn text(incoming: Incoming) -> (protocol::identity::IdentityKey, Vec<u8>) {
    match incoming {
        Incoming::Application { sender, plaintext } => (sender.identity(), plaintext),
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[test]
fn members_join_and_messages_reach_everyone_with_their_sender() {
    let devices: Vec<Device> = (1..=4).map(Device::new).collect();
    let refs: Vec<&Device> = devices.iter().collect();
    let mut sessions = group_of(&refs);
    let epoch = sessions[0].epoch();
    for (s, d) in sessions.iter().zip(&devices) {
        assert_eq!(s.epoch(), epoch);
        assert_eq!(s.members().len(), 4);
        assert!(
            s.members()
                .iter()
                .any(|m| m.identity() == d.local.cert.identity())
        );
    }
    assert!(
        sessions
            .iter()
            .all(|s| s.group_id() == sessions[0].group_id())
    );
    assert_eq!(sessions[0].group_id().len(), 32);

    // Each member writes in turn; the others read it with the right sender.
    for from in 0..devices.len() {
        let body = format!("hello from {from}").into_bytes();
        let wire = ok(sessions[from].encrypt(&devices[from].provider, &devices[from].local, &body));
        for to in (0..devices.len()).filter(|&to| to != from) {
            let (sender, plaintext) = text(ok(sessions[to].process(&devices[to].provider, &wire)));
            assert_eq!(sender, devices[from].local.cert.identity());
            assert_eq!(plaintext, body);
        }
    }
}

#[test]
fn messages_of_an_epoch_open_out_of_order_but_never_twice_or_tampered() {
    let devices: Vec<Device> = (1..=2).map(Device::new).collect();
    let mut sessions = group_of(&[&devices[0], &devices[1]]);
    let wires: Vec<Vec<u8>> = (0..5)
        .map(|i| ok(sessions[0].encrypt(&devices[0].provider, &devices[0].local, &[i])))
        .collect();
    for i in [3, 0, 4, 1, 2] {
        let (_, plaintext) = text(ok(sessions[1].process(&devices[1].provider, &wires[i])));
        assert_eq!(plaintext, vec![i as u8]);
    }
    // A replay is refused: its key was used and deleted.
    assert!(
        sessions[1]
            .process(&devices[1].provider, &wires[2])
            .is_err()
    );
    // Any flipped byte past the header is refused.
    let wire = ok(sessions[0].encrypt(&devices[0].provider, &devices[0].local, b"x"));
    for at in [wire.len() - 1, wire.len() / 2, wire.len() - 20] {
        let mut bad = wire.clone();
        bad[at] ^= 1;
        assert!(
            sessions[1].process(&devices[1].provider, &bad).is_err(),
            "flip at {at}"
        );
    }
    // Truncated and garbage input is an error, not a panic.
    assert!(matches!(
        sessions[1].process(&devices[1].provider, &wire[..wire.len() / 2]),
        Err(GroupError::Malformed(_))
    ));
    assert!(sessions[1].process(&devices[1].provider, &[]).is_err());
    // The untampered message still opens.
    let (_, plaintext) = text(ok(sessions[1].process(&devices[1].provider, &wire)));
    assert_eq!(plaintext, b"x");
}

#[test]
fn a_removed_member_cannot_read_what_follows_and_the_others_see_who_left() {
    let devices: Vec<Device> = (1..=3).map(Device::new).collect();
    let mut sessions = group_of(&[&devices[0], &devices[1], &devices[2]]);
    let carol = devices[2].local.cert.clone();
    let own = ok(sessions[0].remove(
        &devices[0].provider,
        &devices[0].local,
        std::slice::from_ref(&carol),
    ));
    ok(sessions[0].merge_own(&devices[0].provider));
    match ok(sessions[1].process(&devices[1].provider, &own.commit)) {
        Incoming::Commit {
            committer,
            removed,
            removed_self,
            ..
        } => {
            assert_eq!(committer.identity(), devices[0].local.cert.identity());
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].identity(), carol.identity());
            assert!(!removed_self);
        }
        other => panic!("expected a commit, got {other:?}"),
    }
    match ok(sessions[2].process(&devices[2].provider, &own.commit)) {
        Incoming::Commit { removed_self, .. } => assert!(removed_self),
        other => panic!("expected a commit, got {other:?}"),
    }
    assert_eq!(sessions[0].members().len(), 2);
    assert_eq!(sessions[0].epoch(), sessions[1].epoch());

    // The next message opens for Bob, not for Carol's saved state.
    let wire = ok(sessions[0].encrypt(&devices[0].provider, &devices[0].local, b"after"));
    assert_eq!(
        text(ok(sessions[1].process(&devices[1].provider, &wire))).1,
        b"after"
    );
    assert!(sessions[2].process(&devices[2].provider, &wire).is_err());
}

#[test]
fn a_key_package_must_carry_the_certificate_of_the_key_that_signed_it() {
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mallory = Device::new(3);
    let (_, device) = ok(check_key_package(&alice.provider, &bob.key_package(), None));
    assert_eq!(device.identity(), bob.local.cert.identity());
    // Bob's key package offered as Mallory's is refused.
    assert!(
        check_key_package(
            &alice.provider,
            &bob.key_package(),
            Some(&mallory.local.cert)
        )
        .is_err()
    );
    // A credential whose signature key is not the certified one is refused.
    let credential = super::credential::own_credential(&bob.local).credential;
    assert_eq!(
        verify_member(&credential, mallory.local.cert.signing_key().as_bytes()),
        Err(CredentialError::KeyMismatch)
    );
    // A credential that is not a certificate is refused.
    let not_a_certificate = openmls::prelude::BasicCredential::new(b"alice".to_vec()).into();
    assert_eq!(
        verify_member(&not_a_certificate, bob.local.cert.signing_key().as_bytes()),
        Err(CredentialError::NotACertificate)
    );
    // Garbage is not a key package.
    assert!(matches!(
        check_key_package(&alice.provider, b"not a key package", None),
        Err(GroupError::Malformed(_))
    ));
}

#[test]
fn group_state_commits_with_the_round_or_not_at_all() {
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut sessions = group_of(&[&alice, &bob]);
    let group_id = sessions[0].group_id().to_vec();
    let epoch = sessions[0].epoch();

    // A self-update merged but discarded: the stored group is still at the old epoch.
    let _ = ok(sessions[0].self_update(&alice.provider, &alice.local));
    ok(sessions[0].merge_own(&alice.provider));
    assert!(alice.provider.storage().staged_len() > 0);
    alice.provider.storage().discard();
    let reloaded = ok(GroupSession::load(&alice.provider, &group_id))
        .unwrap_or_else(|| panic!("the group is stored"));
    assert_eq!(reloaded.epoch(), epoch);

    // Committed: the stored group is at the new epoch, and keeps working after a reload.
    let mut session = reloaded;
    let own = ok(session.self_update(&alice.provider, &alice.local));
    ok(session.merge_own(&alice.provider));
    alice.commit();
    let mut reloaded = ok(GroupSession::load(&alice.provider, &group_id))
        .unwrap_or_else(|| panic!("the group is stored"));
    assert_eq!(reloaded.epoch(), epoch + 1);
    assert!(matches!(
        ok(sessions[1].process(&bob.provider, &own.commit)),
        Incoming::Commit { .. }
    ));
    let wire = ok(reloaded.encrypt(&alice.provider, &alice.local, b"still here"));
    assert_eq!(
        text(ok(sessions[1].process(&bob.provider, &wire))).1,
        b"still here"
    );

    // An unknown group is not there.
    assert!(ok(GroupSession::load(&alice.provider, &[9; 32])).is_none());
}

#[test]
fn the_post_key_seed_is_shared_by_the_members_of_an_epoch_and_changes_with_it() {
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut sessions = group_of(&[&alice, &bob]);
    let seed = ok(sessions[0].post_key_seed(&alice.provider));
    assert_eq!(*seed, *ok(sessions[1].post_key_seed(&bob.provider)));
    let own = ok(sessions[1].self_update(&bob.provider, &bob.local));
    ok(sessions[1].merge_own(&bob.provider));
    ok(sessions[0].process(&alice.provider, &own.commit));
    let next = ok(sessions[0].post_key_seed(&alice.provider));
    assert_ne!(*next, *seed);
    assert_eq!(*next, *ok(sessions[1].post_key_seed(&bob.provider)));
}

/// Bob, not an admin, makes commits chatd would not let him make (openmls directly): every
/// other member refuses them and stays at its epoch.
#[test]
fn a_non_admins_forged_commits_are_refused_by_every_member() {
    let devices: Vec<Device> = (1..=3).map(Device::new).collect();
    let mut sessions = group_of(&[&devices[0], &devices[1], &devices[2]]);
    let (alice, bob, carol) = (&devices[0], &devices[1], &devices[2]);
    let epoch = sessions[0].epoch();

    // chatd itself refuses to make them.
    assert!(matches!(
        sessions[1].remove(
            &bob.provider,
            &bob.local,
            std::slice::from_ref(&carol.local.cert)
        ),
        Err(GroupError::Forbidden(_))
    ));
    assert!(matches!(
        sessions[1].add(&bob.provider, &bob.local, &[]),
        Err(GroupError::Forbidden(_))
    ));

    // Forged: a removal of Carol.
    let carol_leaf = openmls::prelude::LeafNodeIndex::new(2);
    let (forged, _, _) = ok(sessions[1].group.remove_members(
        &bob.provider,
        &DeviceSigner(&bob.local),
        &[carol_leaf],
    ));
    let forged = ok(openmls::prelude::tls_codec::Serialize::tls_serialize_detached(&forged));
    for (i, d) in [(0, alice), (2, carol)] {
        assert!(matches!(
            sessions[i].process(&d.provider, &forged),
            Err(GroupError::Forbidden("only admins remove members"))
        ));
        d.provider.storage().discard();
        assert_eq!(sessions[i].epoch(), epoch);
    }
    ok(sessions[1].discard_own(&bob.provider));

    // Forged: a rename making Bob an admin.
    let mut metadata = ok(sessions[0].metadata());
    metadata.admins.push(bob.local.cert.identity());
    let extensions = ok(super::session::context_extensions(&metadata));
    let (forged, _, _) = ok(sessions[1].group.update_group_context_extensions(
        &bob.provider,
        extensions,
        &DeviceSigner(&bob.local),
    ));
    let forged = ok(openmls::prelude::tls_codec::Serialize::tls_serialize_detached(&forged));
    assert!(matches!(
        sessions[0].process(&alice.provider, &forged),
        Err(GroupError::Forbidden("only admins change the group"))
    ));
    alice.provider.storage().discard();
    ok(sessions[1].discard_own(&bob.provider));

    // The group still works at its epoch.
    let wire = ok(sessions[0].encrypt(&alice.provider, &alice.local, b"still fine"));
    assert_eq!(
        text(ok(sessions[1].process(&bob.provider, &wire))).1,
        b"still fine"
    );
    assert_eq!(
        text(ok(sessions[2].process(&carol.provider, &wire))).1,
        b"still fine"
    );
}

#[test]
fn an_admin_renames_and_promotes_and_anyone_commits_a_members_leave() {
    let devices: Vec<Device> = (1..=3).map(Device::new).collect();
    let mut sessions = group_of(&[&devices[0], &devices[1], &devices[2]]);
    let (alice, bob, carol) = (&devices[0], &devices[1], &devices[2]);

    // Alice renames the group and makes Bob an admin.
    let mut metadata = ok(sessions[0].metadata());
    metadata.name = "Ops".into();
    metadata.admins.push(bob.local.cert.identity());
    let own = ok(sessions[0].set_metadata(&alice.provider, &alice.local, &metadata));
    ok(sessions[0].merge_own(&alice.provider));
    for (i, d) in [(1, bob), (2, carol)] {
        assert!(matches!(
            ok(sessions[i].process(&d.provider, &own.commit)),
            Incoming::Commit { .. }
        ));
        assert_eq!(ok(sessions[i].metadata()), metadata);
        assert!(sessions[i].is_admin(&bob.local.cert.identity()));
    }
    // An admin who is not a member is refused before anything is sent.
    let mut stranger = metadata.clone();
    stranger.admins.push(Device::new(9).local.cert.identity());
    assert!(matches!(
        sessions[0].set_metadata(&alice.provider, &alice.local, &stranger),
        Err(GroupError::Forbidden("every admin must be a member"))
    ));

    // Carol leaves: her proposal goes to everyone; Bob commits it; all agree she is gone.
    let proposal = ok(sessions[2].leave(&carol.provider, &carol.local));
    for (i, d) in [(0, alice), (1, bob)] {
        assert!(matches!(
            ok(sessions[i].process(&d.provider, &proposal)),
            Incoming::Proposal { .. }
        ));
    }
    let own = ok(sessions[1].commit_pending(&bob.provider, &bob.local));
    ok(sessions[1].merge_own(&bob.provider));
    match ok(sessions[0].process(&alice.provider, &own.commit)) {
        Incoming::Commit { removed, .. } => {
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].identity(), carol.local.cert.identity());
        }
        other => panic!("expected a commit, got {other:?}"),
    }
    match ok(sessions[2].process(&carol.provider, &own.commit)) {
        Incoming::Commit { removed_self, .. } => assert!(removed_self),
        other => panic!("expected a commit, got {other:?}"),
    }
    assert_eq!(sessions[0].members().len(), 2);
}

/// Everything MLS keeps goes through the encrypted store: after a group is created, named and
/// used, neither its name, its id, a member's certificate nor a message appears in the store's
/// files on disk.
#[test]
fn nothing_of_a_group_is_readable_on_disk() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kv = ok(Kv::open(dir.path(), 1 << 20));
    let store = Arc::new(Store::new(kv, StoreKeys::from_master(&[5; 32])));
    let alice = Device {
        local: Device::new(1).local,
        provider: GroupProvider::new(store.clone()),
        store: store.clone(),
    };
    let bob = Device::new(2);
    let name = "CANARY-GROUP-NAME-5c1e";
    let metadata = GroupMetadata {
        name: name.into(),
        description: "CANARY-DESCRIPTION-77a0".into(),
        admins: vec![alice.local.cert.identity()],
    };
    let mut group = ok(GroupSession::create(
        &alice.provider,
        &alice.local,
        &metadata,
    ));
    let (package, _) = ok(check_key_package(&alice.provider, &bob.key_package(), None));
    let own = ok(group.add(&alice.provider, &alice.local, &[package]));
    ok(group.merge_own(&alice.provider));
    alice.commit();
    let mut joined = ok(GroupSession::join(
        &bob.provider,
        &own.welcome.unwrap_or_default(),
    ));
    let wire = ok(joined.encrypt(&bob.provider, &bob.local, b"CANARY-MESSAGE-9d41"));
    assert_eq!(
        text(ok(group.process(&alice.provider, &wire))).1,
        b"CANARY-MESSAGE-9d41"
    );
    alice.commit();
    ok(store.flush_blocking());
    let group_id = group.group_id().to_vec();
    let bob_identity = bob.local.cert.identity();
    drop((group, alice, store));

    let canaries: [&[u8]; 5] = [
        name.as_bytes(),
        b"CANARY-DESCRIPTION-77a0",
        b"CANARY-MESSAGE-9d41",
        &group_id,
        bob_identity.as_bytes(),
    ];
    let (mut files, mut control) = (0, false);
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in ok(std::fs::read_dir(&path)) {
            let entry = ok(entry);
            if ok(entry.file_type()).is_dir() {
                stack.push(entry.path());
                continue;
            }
            files += 1;
            let bytes = ok(std::fs::read(entry.path()));
            // A positive control: the store's tree name is on disk in plaintext, so the scan
            // does see what sled wrote.
            control |= bytes.windows(14).any(|w| w == b"chatd/store/v1");
            for canary in canaries {
                assert!(
                    !bytes.windows(canary.len()).any(|w| w == canary),
                    "{} holds {:?}",
                    entry.path().display(),
                    String::from_utf8_lossy(canary)
                );
            }
        }
    }
    assert!(files > 0 && control, "the scan sees what the store wrote");
}
