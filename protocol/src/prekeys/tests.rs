//! Unit tests for prekey bundles: encoding, and every signature in the chain.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};

pub(crate) fn bundle(
    rng: &mut ChaCha20Rng,
    with_otk: bool,
) -> (IdentityKeyPair, LocalDevice, PrekeyBundle) {
    let identity = IdentityKeyPair::generate(rng);
    let keys = DeviceKeyPair::generate(DeviceId::new(2).unwrap(), rng);
    let local = LocalDevice::new(&identity, keys, 5);
    let (_, spk) = SignedPrekeySecret::generate(10, 6, local.keys.signing(), rng);
    let (_, kem) = KemPrekeySecret::generate(20, false, local.keys.signing(), rng);
    let otk = with_otk.then(|| OneTimePrekeySecret::generate(30, rng).1);
    let bundle = PrekeyBundle {
        device: local.cert.certificate().clone(),
        signed_prekey: spk,
        kem_prekey: kem,
        one_time_prekey: otk,
    };
    (identity, local, bundle)
}

#[test]
fn bundle_round_trips_and_verifies() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    for with_otk in [true, false] {
        let (identity, _, bundle) = bundle(&mut rng, with_otk);
        let decoded = PrekeyBundle::from_bytes(&bundle.to_bytes()).unwrap();
        assert_eq!(decoded, bundle);
        decoded.verify(Some(&identity.public_key())).unwrap();
    }
}

#[test]
fn bundle_for_another_identity_is_refused() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let (_, _, bundle) = bundle(&mut rng, true);
    let other = IdentityKeyPair::generate(&mut rng);
    assert_eq!(
        bundle.verify(Some(&other.public_key())).unwrap_err(),
        BundleError::WrongIdentity
    );
}

#[test]
fn swapped_prekey_signatures_are_refused() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (_, local, mut bundle) = bundle(&mut rng, true);
    // A relay substitutes its own signed prekey, signed by another key.
    let (_, foreign) =
        SignedPrekeySecret::generate(10, 6, &Ed25519Secret::generate(&mut rng), &mut rng);
    let good = bundle.signed_prekey.clone();
    bundle.signed_prekey = foreign;
    assert_eq!(
        bundle.verify(None).unwrap_err(),
        BundleError::SignedPrekeySignature
    );
    bundle.signed_prekey = good;
    // A KEM prekey signature cannot be replayed as a different id or flag.
    bundle.kem_prekey.last_resort = true;
    assert_eq!(
        bundle.verify(None).unwrap_err(),
        BundleError::KemPrekeySignature
    );
    bundle.kem_prekey.last_resort = false;
    bundle.kem_prekey.id += 1;
    assert_eq!(
        bundle.verify(None).unwrap_err(),
        BundleError::KemPrekeySignature
    );
    bundle.kem_prekey.id -= 1;
    let (_, other_kem) = KemPrekeySecret::generate(20, false, local.keys.signing(), &mut rng);
    bundle.kem_prekey.signature = other_kem.signature;
    assert_eq!(
        bundle.verify(None).unwrap_err(),
        BundleError::KemPrekeySignature
    );
}

#[test]
fn every_truncation_is_an_error() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let (_, _, bundle) = bundle(&mut rng, true);
    let bytes = bundle.to_bytes();
    for len in 0..bytes.len() {
        assert!(PrekeyBundle::from_bytes(&bytes[..len]).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        PrekeyBundle::from_bytes(&long),
        Err(DecodeError::TrailingBytes(1))
    );
}
