//! Unit tests for identity keys and device certificates.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

fn device(rng: &mut ChaCha20Rng) -> (IdentityKeyPair, LocalDevice) {
    let identity = IdentityKeyPair::generate(rng);
    let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), rng);
    let local = LocalDevice::new(&identity, keys, 1_700_000_000);
    (identity, local)
}

#[test]
fn certificate_round_trips_and_verifies() {
    let mut rng = rng();
    let (identity, local) = device(&mut rng);
    let bytes = local.cert.certificate().to_bytes();
    assert_eq!(bytes.len(), 174, "SPEC.md section 2.2 gives the length");
    let parsed = DeviceCertificate::from_bytes(&bytes).unwrap();
    let verified = parsed.verify().unwrap();
    assert_eq!(verified.identity(), identity.public_key());
    assert_eq!(verified.dh_key(), &local.keys.dh().public_key());
}

#[test]
fn any_flipped_bit_breaks_the_certificate() {
    let mut rng = rng();
    let (_, local) = device(&mut rng);
    let bytes = local.cert.certificate().to_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            if let Ok(cert) = DeviceCertificate::from_bytes(&bad) {
                assert!(
                    cert.verify().is_err(),
                    "flip at byte {i} bit {bit} still verified"
                );
            }
        }
    }
}

#[test]
fn certificate_signed_by_another_identity_is_refused() {
    let mut rng = rng();
    let (_, local) = device(&mut rng);
    let other = IdentityKeyPair::generate(&mut rng);
    let forged = other.certify(&local.keys, 0);
    // Splice the other identity's signature onto a certificate naming the first identity.
    let mut bytes = local.cert.certificate().to_bytes();
    let sig_at = bytes.len() - 64;
    bytes[sig_at..].copy_from_slice(&forged.signature.0);
    let cert = DeviceCertificate::from_bytes(&bytes).unwrap();
    assert!(cert.verify().is_err());
}

#[test]
fn reserved_device_id_and_weak_keys_are_refused() {
    assert_eq!(DeviceId::new(0), Err(IdentityError::ReservedDeviceId));
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    assert!(IdentityKey::from_bytes(&identity_point).is_err());
}

#[test]
fn debug_prints_no_secret() {
    let seed = [0x42; 32];
    let identity = IdentityKeyPair::from_seed(&seed);
    let keys = DeviceKeyPair::from_seeds(DeviceId::new(3).unwrap(), &[0x43; 32], &[0x44; 32]);
    let text = format!("{identity:?} {keys:?}");
    for secret in [[0x42u8; 32], [0x43; 32], [0x44; 32]] {
        assert!(!text.contains(&hex::encode(&secret[..8])), "{text}");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn non_canonical_x25519_keys_are_refused_in_structures() {
    let mut rng = rng();
    let (_, local) = device(&mut rng);
    let bytes = local.cert.certificate().to_bytes();
    // The DH key's last byte sits before created_at (8) and the signature (64).
    let top = bytes.len() - 64 - 8 - 1;
    let mut flipped = bytes.clone();
    flipped[top] ^= 0x80;
    assert_eq!(
        DeviceCertificate::from_bytes(&flipped),
        Err(DecodeError::Invalid("device DH key"))
    );
}
