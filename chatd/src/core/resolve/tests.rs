//! Unit tests of the resolver: every form finds the contact, case does not matter, and a
//! name that fits two contacts is refused with both.

use super::*;
use crate::core::{CoreState, Txn, contacts};

fn identity(seed: u8) -> [u8; 32] {
    *protocol::identity::IdentityKeyPair::from_seed(&[seed; 32])
        .public_key()
        .as_bytes()
}

fn add(state: &mut CoreState, alias: &str, seed: u8, handle: Option<&str>) -> ConvId {
    contacts::add(
        state,
        &mut Txn::default(),
        alias,
        identity(seed),
        handle.map(str::to_owned),
        None,
        Default::default(),
        contacts::Joining::Quietly,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn state() -> CoreState {
    let clock = crate::clock::ManualClock::new(1_800_000_000_000);
    crate::core::account::tests::unlocked_state_at(crate::store::Kv::memory(), &clock)
}

#[test]
fn every_form_names_the_same_contact() {
    let mut state = state();
    let alice = add(&mut state, "Alice", 1, Some("alice_h"));
    let far = add(&mut state, "far", 2, Some("farah@relay.example.org"));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let address = address_of_seed(1);
    let relay = unlocked.account.relay_url.clone();
    for name in [
        "Alice".to_owned(),
        "alice".to_owned(),
        "ALICE".to_owned(),
        "@alice".to_owned(),
        " @Alice ".to_owned(),
        "@alice_h".to_owned(),
        "@ALICE_H".to_owned(),
        format!("@alice_h@{relay}"),
        address.clone(),
        address.to_uppercase(),
        format!("{address}@relay.example.org"),
    ] {
        assert_eq!(
            lookup(unlocked, &name).unwrap_or_else(|e| panic!("{name}: {e}")),
            Some(alice),
            "{name}"
        );
    }
    assert_eq!(
        lookup(unlocked, "@farah@relay.example.org").unwrap_or_else(|e| panic!("{e}")),
        Some(far)
    );
    // A handle on our relay is not the same handle on another.
    assert_eq!(
        lookup(unlocked, "@farah").unwrap_or_else(|e| panic!("{e}")),
        None
    );
    // A handle needs its `@`: a bare word is an alias.
    assert_eq!(
        lookup(unlocked, "alice_h").unwrap_or_else(|e| panic!("{e}")),
        None
    );
    for nobody in ["", "@", "bob", "@bob", "chat1nope"] {
        assert_eq!(
            lookup(unlocked, nobody).unwrap_or_else(|e| panic!("{e}")),
            None
        );
        assert_eq!(
            contact(unlocked, nobody).err().map(|e| e.code),
            Some(ErrorCode::NotFound)
        );
    }
}

#[test]
fn a_name_that_fits_two_contacts_lists_both() {
    let mut state = state();
    add(&mut state, "bob", 1, None);
    add(&mut state, "robert", 2, Some("bob"));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let error = lookup(unlocked, "@bob")
        .err()
        .unwrap_or_else(|| panic!("an ambiguous name was resolved"));
    assert_eq!(error.code, ErrorCode::AmbiguousContact);
    assert!(
        error.message.contains("\"bob\" (by alias"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("\"robert\" (by handle"),
        "{}",
        error.message
    );
    // Without `@` it is the alias only.
    assert!(lookup(unlocked, "bob").is_ok_and(|id| id.is_some()));
}

#[test]
fn a_new_key_not_yet_accepted_finds_its_contact() {
    let mut state = state();
    let bob = add(&mut state, "bob", 1, None);
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    if let Some(record) = unlocked.contacts.get_mut(&bob) {
        record.pending_identity = Some(identity(9));
    }
    assert_eq!(
        lookup(unlocked, &address_of_seed(9)).unwrap_or_else(|e| panic!("{e}")),
        Some(bob)
    );
}

fn address_of_seed(seed: u8) -> String {
    crate::core::unlocked::address_of(&identity(seed))
}
