//! `Debug` of every type that holds a secret prints no secret (snapshot plus a search for the
//! secret bytes in hex and in decimal-array form).

use protocol::crypto::ed25519::Ed25519Secret;
use protocol::crypto::kem::KemSecret;
use protocol::crypto::x25519::X25519Secret;
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::pickle::PickleKey;
use protocol::pqxdh::{self, ReplayGuard, ResponderKeys};
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, SignedPrekeySecret};
use protocol::session::SessionRecord;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Renders a secret the ways a leak could show it: hex (any 6-byte window) and Rust's
/// `[1, 2, 3]` array form.
fn leaks(text: &str, secret: &[u8]) -> bool {
    let hex_text = text.to_lowercase();
    let hex_hit = secret
        .windows(6)
        .any(|w| hex_text.contains(&hex::encode(w)));
    let decimal: Vec<String> = secret.iter().take(6).map(u8::to_string).collect();
    hex_hit || text.contains(&decimal.join(", "))
}

#[test]
fn debug_output_of_secret_types_contains_no_secret() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let x = X25519Secret::from_bytes(&[0x41; 32]);
    let shared = x
        .diffie_hellman(&X25519Secret::from_bytes(&[0x42; 32]).public_key())
        .unwrap();
    let ed = Ed25519Secret::from_seed(&[0x43; 32]);
    let kem = KemSecret::from_seed(&[0x44; 64]);
    let identity = IdentityKeyPair::from_seed(&[0x45; 32]);
    let keys = DeviceKeyPair::from_seeds(DeviceId::new(1).unwrap(), &[0x46; 32], &[0x47; 32]);
    let local = LocalDevice::new(&identity, keys.clone(), 0);
    let (spk, spk_pub) = SignedPrekeySecret::generate(1, 0, keys.signing(), &mut rng);
    let (kem_prekey, kem_pub) = KemPrekeySecret::generate(2, false, keys.signing(), &mut rng);
    let (otk, otk_pub) = OneTimePrekeySecret::generate(3, &mut rng);
    let bundle = PrekeyBundle {
        device: local.cert.certificate().clone(),
        signed_prekey: spk_pub,
        kem_prekey: kem_pub,
        one_time_prekey: Some(otk_pub),
    }
    .verify(None)
    .unwrap();
    let peer_identity = IdentityKeyPair::from_seed(&[0x48; 32]);
    let peer = LocalDevice::new(
        &peer_identity,
        DeviceKeyPair::from_seeds(DeviceId::new(2).unwrap(), &[0x49; 32], &[0x4a; 32]),
        0,
    );
    let mut init = pqxdh::initiate(&peer, &bundle, &mut rng).unwrap();
    let first = init.state.encrypt(b"hi", &mut rng).unwrap();
    let keys_used = ResponderKeys {
        signed_prekey: &spk,
        one_time_prekey: Some(&otk),
        kem_prekey: &kem_prekey,
    };
    let mut responded =
        pqxdh::respond(&local, &init.header, keys_used, &ReplayGuard::new()).unwrap();
    responded.state.decrypt(&first).unwrap();
    let mut record = SessionRecord::new();
    record.initiate(&peer, &bundle, &mut rng).unwrap();
    let pickle_key = PickleKey::new([0x4b; 32]);

    let text = format!(
        "{x:?}\n{shared:?}\n{ed:?}\n{kem:?}\n{identity:?}\n{keys:?}\n{local:#?}\n{spk:?}\n\
         {kem_prekey:?}\n{otk:?}\n{:?}\n{:?}\n{record:?}\n{pickle_key:?}",
        init.state, responded.state
    );
    let secrets: Vec<Vec<u8>> = vec![
        x.to_bytes().to_vec(),
        shared.as_bytes().to_vec(),
        ed.to_seed().to_vec(),
        kem.seed().to_vec(),
        identity.to_seed().to_vec(),
        keys.signing().to_seed().to_vec(),
        keys.dh().to_bytes().to_vec(),
        spk.key.to_bytes().to_vec(),
        kem_prekey.key.seed().to_vec(),
        otk.key.to_bytes().to_vec(),
        vec![0x4b; 32],
    ];
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            !leaks(&text, secret),
            "secret {i} appears in Debug output:\n{text}"
        );
    }
    insta::assert_snapshot!(text);
}
