//! Unit tests of alias checks, folding and derivation.

use super::*;

#[test]
fn display_names_become_typeable_aliases() {
    let cases = [
        ("Alice", "alice"),
        ("Alice Liddell", "alice-liddell"),
        ("  Bob  ", "bob"),
        ("José Ñúñez", "jose-nunez"),
        ("Straße", "strasse"),
        ("Œuvre Æsir", "oeuvre-aesir"),
        ("Łukasz Dąbrowski", "lukasz-dabrowski"),
        // Decomposed accents: the combining marks go, the letters stay.
        ("Jose\u{301}", "jose"),
        // Bidirectional controls, zero-width characters, emoji and symbols are dropped.
        ("\u{202E}Bob\u{202C}", "bob"),
        ("B\u{200B}o\u{200D}b", "bob"),
        ("Bob 🎉🎉", "bob"),
        ("👩‍💻 Eve ✨", "eve"),
        ("\u{2066}mal\u{2069}lory\u{FEFF}", "mallory"),
        ("ｆｕｌｌ", "full"),
        ("snake_case.name", "snake_case-name"),
        ("Алиса", "алиса"),
        ("R2-D2", "r2-d2"),
        // Nothing typeable at all.
        ("🎉✨", ""),
        ("\u{200B}\u{202E}", ""),
        ("---", ""),
    ];
    for (name, alias) in cases {
        assert_eq!(typeable(name), alias, "{name:?}");
        if !alias.is_empty() {
            assert!(check(alias).is_ok(), "{alias:?} must be a valid alias");
        }
    }
    assert_eq!(typeable(&"x".repeat(100)).len(), MAX_DERIVED_CHARS);
}

#[test]
fn free_aliases_are_unique_ignoring_case_and_fall_back_to_the_address() {
    let mut taken = HashMap::new();
    let address = "chat1qyqszqgpqyqszqgpqyqszqgp";
    assert_eq!(free(&taken, "Bob", address), "bob");
    taken.insert(key("BOB"), [1; 16]);
    assert_eq!(free(&taken, "Bob", address), "bob-2");
    taken.insert(key("bob-2"), [2; 16]);
    assert_eq!(free(&taken, "\u{202E}bob🎉", address), "bob-3");
    assert_eq!(free(&taken, "🎉", address), "chat1qyqszqgp");
    taken.insert(key("chat1qyqszqgp"), [3; 16]);
    assert_eq!(free(&taken, "", address), "chat1qyqszqgp-2");
}

#[test]
fn keys_ignore_case_and_checks_refuse_what_cannot_be_typed_or_seen() {
    assert_eq!(key("Alice"), key("ALICE"));
    assert_eq!(key("Élise"), key("élise"));
    for bad in ["", "@bob", "a b", "bo\u{200B}b", "\u{202E}x", "tab\t"] {
        let error = check(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(error.code, ErrorCode::InvalidAlias);
    }
    let identity = protocol::identity::IdentityKeyPair::from_seed(&[7; 32]);
    let address = Address::new(identity.public_key().ed25519()).to_string();
    assert_eq!(
        check(&address).err().map(|e| e.code),
        Some(ErrorCode::InvalidAlias)
    );
    assert!(check("Mum").is_ok());
}
