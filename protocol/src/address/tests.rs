//! Unit tests for the address text form: round trips, typo detection and every refusal.

use bech32::primitives::iter::Fe32IterExt;
use bech32::{Bech32, ByteIterExt};
use proptest::prelude::*;

use super::*;
use crate::crypto::ed25519::Ed25519Secret;

const ALPHABET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn key(seed_byte: u8) -> Ed25519PublicKey {
    Ed25519Secret::from_seed(&[seed_byte; 32]).public_key()
}

/// A string with a valid Bech32m checksum over `hrp` and arbitrary `payload` bytes.
fn encode_raw(hrp: &str, payload: &[u8]) -> String {
    bech32::encode::<Bech32m>(Hrp::parse(hrp).unwrap(), payload).unwrap()
}

/// A string with a valid Bech32m checksum over `chat` and arbitrary 5-bit `fes`.
fn encode_fes(fes: &[Fe32]) -> String {
    fes.iter()
        .copied()
        .with_checksum::<Bech32m>(&HRP)
        .chars()
        .collect()
}

fn payload(version: u8, key: &[u8]) -> Vec<u8> {
    let mut p = vec![version];
    p.extend_from_slice(key);
    p
}

#[test]
fn round_trip() {
    for seed in 0..=8u8 {
        let key = key(seed);
        let address = Address::new(&key);
        let text = address.to_string();
        assert_eq!(text.len(), ADDRESS_LEN);
        assert!(text.starts_with("chat1"));
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(Address::parse(&text).unwrap(), address);
        assert_eq!(text.parse::<Address>().unwrap().public_key(), &key);
        assert_eq!(Address::parse(&text.to_ascii_uppercase()).unwrap(), address);
        assert_eq!(Address::from(key), address);
        assert_eq!(format!("{address:?}"), format!("Address({text})"));
    }
}

#[test]
fn every_single_substitution_is_detected() {
    let text = Address::new(&key(1)).to_string();
    let upper = ALPHABET.to_ascii_uppercase();
    let candidates: Vec<char> = ALPHABET
        .chars()
        .chain(upper.chars())
        .chain("1bio BIO\t\n-".chars())
        .collect();
    let mut checked = 0;
    for position in 0..text.len() {
        let original = text.as_bytes()[position] as char;
        for &c in &candidates {
            if c == original {
                continue;
            }
            let mut typo = text.clone().into_bytes();
            typo[position] = c as u8;
            let typo = String::from_utf8(typo).unwrap();
            let err = Address::parse(&typo).unwrap_err();
            // A lower-case alphabet character anywhere but on the separator leaves a well-formed
            // Bech32m string, so only the checksum can catch it.
            if ALPHABET.contains(c) && position != 4 {
                assert_eq!(err, AddressError::Checksum, "{typo}");
            }
            checked += 1;
        }
    }
    assert!(checked > 64 * 40);
}

#[test]
fn transpositions_are_detected() {
    let text = Address::new(&key(2)).to_string();
    let bytes = text.as_bytes();
    let mut checked = 0;
    for distance in 1..=3 {
        for i in 5..text.len() - distance {
            let j = i + distance;
            if bytes[i] == bytes[j] {
                continue;
            }
            let mut swapped = bytes.to_vec();
            swapped.swap(i, j);
            let swapped = String::from_utf8(swapped).unwrap();
            assert_eq!(
                Address::parse(&swapped),
                Err(AddressError::Checksum),
                "{swapped}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100);
}

#[test]
fn small_order_keys_are_refused() {
    // The identity point, and a point of order 8 (RFC 8032 / Wycheproof small-order list).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let order8: [u8; 32] =
        hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
            .unwrap()
            .try_into()
            .unwrap();
    for weak in [identity, order8] {
        let text = encode_raw("chat", &payload(ADDRESS_VERSION, &weak));
        assert_eq!(text.len(), ADDRESS_LEN);
        assert_eq!(
            Address::parse(&text),
            Err(AddressError::InvalidKey(Ed25519Error::WeakKey))
        );
    }
}

#[test]
fn non_canonical_keys_are_refused() {
    // y = p + 3 encodes the same point as y = 3, a valid point of large order.
    let canonical = {
        let mut k = [0u8; 32];
        k[0] = 3;
        k
    };
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xf0;
    non_canonical[31] = 0x7f;
    let text = encode_raw("chat", &payload(ADDRESS_VERSION, &canonical));
    assert_eq!(
        Address::parse(&text).unwrap().public_key().as_bytes(),
        &canonical
    );
    let text = encode_raw("chat", &payload(ADDRESS_VERSION, &non_canonical));
    assert_eq!(
        Address::parse(&text),
        Err(AddressError::InvalidKey(Ed25519Error::NonCanonicalKey))
    );
}

#[test]
fn bytes_off_the_curve_are_refused() {
    // y = 2 has no x on edwards25519.
    let mut k = [0u8; 32];
    k[0] = 2;
    let text = encode_raw("chat", &payload(ADDRESS_VERSION, &k));
    assert_eq!(
        Address::parse(&text),
        Err(AddressError::InvalidKey(Ed25519Error::InvalidKey))
    );
}

#[test]
fn whitespace_is_not_trimmed() {
    let text = Address::new(&key(3)).to_string();
    for (input, position, character) in [
        (format!(" {text}"), 0, ' '),
        (format!("{text}\n"), 64, '\n'),
        (format!("{text} "), 64, ' '),
        (format!("\t{text}"), 0, '\t'),
        (format!("{} {}", &text[..20], &text[20..]), 20, ' '),
        (format!("{}\u{a0}", text), 64, '\u{a0}'),
    ] {
        assert_eq!(
            Address::parse(&input),
            Err(AddressError::InvalidCharacter {
                position,
                character
            }),
            "{input:?}"
        );
    }
}

#[test]
fn invalid_characters_are_located() {
    let text = Address::new(&key(3)).to_string();
    let mut bad = text.clone().into_bytes();
    bad[10] = b'b';
    assert_eq!(
        Address::parse(std::str::from_utf8(&bad).unwrap()),
        Err(AddressError::InvalidCharacter {
            position: 10,
            character: 'b'
        })
    );
    // Positions count characters, not bytes.
    let input = format!("é{text}");
    assert_eq!(
        Address::parse(&input),
        Err(AddressError::InvalidCharacter {
            position: 0,
            character: 'é'
        })
    );
}

#[test]
fn mixed_case_is_refused() {
    let text = Address::new(&key(4)).to_string();
    let mixed = format!("CHAT{}", &text[4..]);
    assert_eq!(Address::parse(&mixed), Err(AddressError::MixedCase));
    let mut last_upper = text.clone();
    last_upper.replace_range(63.., &text[63..].to_ascii_uppercase());
    if last_upper != text {
        assert_eq!(Address::parse(&last_upper), Err(AddressError::MixedCase));
    }
}

#[test]
fn other_prefixes_are_refused() {
    let key = key(5);
    let p = payload(ADDRESS_VERSION, key.as_bytes());
    for hrp in ["bc", "cha", "chats", "xchat"] {
        assert_eq!(
            Address::parse(&encode_raw(hrp, &p)),
            Err(AddressError::WrongHrp {
                found: hrp.to_owned()
            })
        );
    }
    let upper = encode_raw("bc", &p).to_ascii_uppercase();
    assert_eq!(
        Address::parse(&upper),
        Err(AddressError::WrongHrp {
            found: "bc".to_owned()
        })
    );
}

#[test]
fn other_versions_are_refused() {
    let key = key(6);
    for version in [0x00, 0x02, 0xff] {
        let text = encode_raw("chat", &payload(version, key.as_bytes()));
        assert_eq!(
            Address::parse(&text),
            Err(AddressError::UnsupportedVersion { version })
        );
    }
    // A future version with another length reports the version, not the length.
    let text = encode_raw("chat", &payload(0x02, &[7u8; 40]));
    assert_eq!(
        Address::parse(&text),
        Err(AddressError::UnsupportedVersion { version: 2 })
    );
}

#[test]
fn other_lengths_are_refused() {
    let key = key(7);
    for len in [0, 1, 16, 31, 33, 40] {
        let mut k = key.as_bytes().to_vec();
        k.resize(len, 0x42);
        let text = encode_raw("chat", &payload(ADDRESS_VERSION, &k));
        assert_eq!(
            Address::parse(&text),
            Err(AddressError::WrongLength { len: text.len() }),
            "{len}"
        );
    }
    // No data at all, then a lone character: no version byte.
    for fes in [&[][..], &[Fe32::P][..]] {
        let text = encode_fes(fes);
        assert_eq!(
            Address::parse(&text),
            Err(AddressError::WrongLength { len: text.len() })
        );
    }
    // 54 characters decode to 33 bytes too, but with 6 padding bits: still the wrong length.
    let mut fes: Vec<Fe32> = payload(ADDRESS_VERSION, key.as_bytes())
        .into_iter()
        .bytes_to_fes()
        .collect();
    assert_eq!(fes.len(), DATA_CHARS);
    fes.push(Fe32::Q);
    let text = encode_fes(&fes);
    assert_eq!(
        Address::parse(&text),
        Err(AddressError::WrongLength { len: 65 })
    );
}

#[test]
fn non_zero_padding_is_refused() {
    let key = key(8);
    let mut fes: Vec<Fe32> = payload(ADDRESS_VERSION, key.as_bytes())
        .into_iter()
        .bytes_to_fes()
        .collect();
    assert_eq!(encode_fes(&fes), Address::new(&key).to_string());
    let last = fes.last_mut().unwrap();
    assert_eq!(last.to_u8() & 1, 0);
    *last = Fe32::try_from(last.to_u8() | 1).unwrap();
    assert_eq!(
        Address::parse(&encode_fes(&fes)),
        Err(AddressError::NonZeroPadding)
    );
}

#[test]
fn bech32_checksum_is_not_bech32m() {
    let key = key(9);
    let p = payload(ADDRESS_VERSION, key.as_bytes());
    let text = bech32::encode::<Bech32>(HRP, &p).unwrap();
    assert_eq!(Address::parse(&text), Err(AddressError::Checksum));
}

#[test]
fn malformed_strings_are_refused() {
    for input in [
        "",
        "chat",
        "chat1",
        "chat1qqqqq",
        "1qqqqqqqqq",
        "qpzry9x8gf",
    ] {
        assert_eq!(
            Address::parse(input),
            Err(AddressError::NotBech32),
            "{input:?}"
        );
    }
    let long = format!("chat1{}", "q".repeat(86));
    assert_eq!(
        Address::parse(&long),
        Err(AddressError::TooLong { len: 91 })
    );
}

#[test]
fn errors_render() {
    let text = AddressError::WrongHrp {
        found: "bc".to_owned(),
    }
    .to_string();
    assert_eq!(text, "not a chat address: prefix is `bc`, expected `chat`");
    assert_eq!(
        AddressError::NotBech32.to_string(),
        "not an address: expected `chat1` followed by 59 characters"
    );
}

proptest! {
    #[test]
    fn parse_never_panics(input in "\\PC{0,100}") {
        let _ = Address::parse(&input);
    }

    #[test]
    fn parse_never_panics_on_near_addresses(data in "[qpzry9x8gf2tvdw0s3jn54khce6mua7l1bQP]{0,90}") {
        let _ = Address::parse(&format!("chat1{data}"));
    }

    #[test]
    fn random_keys_round_trip(seed in any::<[u8; 32]>()) {
        let address = Address::new(&Ed25519Secret::from_seed(&seed).public_key());
        prop_assert_eq!(Address::parse(&address.to_string()), Ok(address));
    }
}
