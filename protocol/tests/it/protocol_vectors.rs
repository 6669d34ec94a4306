//! Our vectors for bundles, PQXDH, the Double Ratchet and sealed envelopes
//! (`protocol/testdata/{bundle,pqxdh,ratchet,envelope,sealed_batch}.json`), with every random
//! input explicit.
//!
//! Every random byte the protocol draws comes from a scripted RNG, [`Tape`]. Each vector file
//! lists its draws in order, each with its purpose and its bytes (SPEC.md section 12.2), so an
//! implementation that follows SPEC.md can feed the same bytes to the same operations and must
//! produce the same encodings. Under `CHATD_REGENERATE_VECTORS=1` the draws come from a seeded
//! `ChaCha20Rng` and the files are rewritten; otherwise each test replays the committed draws
//! through the scenario, which must draw exactly those bytes, in that order, for those
//! purposes, and must reproduce the file. The intermediate secrets (DH outputs, KEM shared
//! secret, session key, root, chain and message keys) are recomputed from the primitives in
//! `protocol::crypto`, following SPEC.md, and checked against what the library sent; the
//! receiving side then decodes the committed bytes and decrypts them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Debug;
use std::path::PathBuf;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng, TryCryptoRng, TryRng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use protocol::codec::{Decode, Encode};
use protocol::crypto::aead;
use protocol::crypto::ed25519::Ed25519Secret;
use protocol::crypto::kdf::{hkdf_sha256, hkdf_sha256_expand, hmac_sha256};
use protocol::crypto::kem::KemSecret;
use protocol::crypto::x25519::{X25519PublicKey, X25519Secret};
use protocol::envelope::{
    self, Content, ContentKind, Opener, SEAL_BATCH_INFO, SEAL_INFO, SEAL_PAYLOAD_INFO,
    SEAL_VERSION, SEAL_VERSION_1, Sealer,
};
use protocol::identity::{
    DeviceId, DeviceKeyPair, IdentityKeyPair, KEY_TYPE_X25519, LocalDevice, PROTOCOL_VERSION,
};
use protocol::padding;
use protocol::pqxdh::{self, InitialHeader, PQXDH_INFO, ReplayGuard, ResponderKeys};
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, SignedPrekeySecret};
use protocol::ratchet::RatchetMessage;
use protocol::session::{SessionMessage, SessionRecord};

const REGENERATE: &str = "CHATD_REGENERATE_VECTORS";

// ---------------------------------------------------------------------------------------------
// The scripted RNG

/// One random draw: what it is for and the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Draw {
    purpose: String,
    hex: String,
}

/// A scripted RNG. The scenario announces, before each call into the protocol, the purposes
/// of the draws that call makes ([`Tape::call`]); every draw must match the next announced
/// purpose and, when replaying, the next recorded draw (same purpose, same length).
///
/// `fill_bytes` is the only way the protocol and the primitive crates under it draw (the
/// ML-KEM crate too: `encapsulate` draws its 32-byte `m` with one `try_fill_bytes`); a
/// `next_u32`/`next_u64` would not be reproducible from a list of byte strings, so it fails.
struct Tape {
    source: Source,
    announced: VecDeque<String>,
    log: Vec<Draw>,
}

enum Source {
    Fresh(Box<ChaCha20Rng>),
    Script(VecDeque<Draw>),
}

impl Tape {
    /// Draws fresh bytes from a ChaCha20 stream (to regenerate a file).
    fn fresh(seed: u8) -> Self {
        Self {
            source: Source::Fresh(Box::new(ChaCha20Rng::from_seed([seed; 32]))),
            announced: VecDeque::new(),
            log: Vec::new(),
        }
    }

    /// Replays recorded draws.
    fn replay(draws: &[Draw]) -> Self {
        Self {
            source: Source::Script(draws.iter().cloned().collect()),
            announced: VecDeque::new(),
            log: Vec::new(),
        }
    }

    /// Runs `f`, which must make exactly the draws `purposes`, in that order.
    fn call<T>(&mut self, purposes: &[&str], f: impl FnOnce(&mut Self) -> T) -> T {
        assert!(self.announced.is_empty());
        self.announced = purposes.iter().map(|p| p.to_string()).collect();
        let out = f(self);
        assert!(
            self.announced.is_empty(),
            "expected draws {:?} were not made",
            self.announced
        );
        out
    }

    /// The bytes of the draw made for `purpose`.
    fn array<const N: usize>(&self, purpose: &str) -> [u8; N] {
        drawn(&self.log, purpose)
    }

    /// The draws made, after checking a replay used up its script.
    fn finish(self) -> Vec<Draw> {
        if let Source::Script(rest) = &self.source {
            assert!(rest.is_empty(), "draws left over: {rest:?}");
        }
        self.log
    }
}

impl TryRng for Tape {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        panic!("the protocol drew a u32; only byte strings are scripted")
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        panic!("the protocol drew a u64; only byte strings are scripted")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let purpose = self.announced.pop_front().unwrap_or_else(|| {
            panic!(
                "unannounced draw of {} bytes after {:?}",
                dst.len(),
                self.log.last()
            )
        });
        match &mut self.source {
            Source::Fresh(rng) => rng.fill_bytes(dst),
            Source::Script(script) => {
                let draw = script
                    .pop_front()
                    .unwrap_or_else(|| panic!("draw {purpose:?} is not in the script"));
                assert_eq!(draw.purpose, purpose, "draws out of order");
                let bytes = unhex(&draw.hex);
                assert_eq!(
                    bytes.len(),
                    dst.len(),
                    "draw {purpose:?}: the script has {} bytes, the code wants {}",
                    bytes.len(),
                    dst.len()
                );
                dst.copy_from_slice(&bytes);
            }
        }
        self.log.push(Draw {
            purpose,
            hex: hex::encode(&*dst),
        });
        Ok(())
    }
}

impl TryCryptoRng for Tape {}

// ---------------------------------------------------------------------------------------------
// Files

/// The bytes drawn for `purpose` in a list of draws.
fn drawn<const N: usize>(draws: &[Draw], purpose: &str) -> [u8; N] {
    let draw = draws
        .iter()
        .find(|d| d.purpose == purpose)
        .unwrap_or_else(|| panic!("no draw for {purpose:?}"));
    arr(&draw.hex)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Returns the committed vectors in `name`, first regenerating them with `generate` (fresh
/// draws) under `CHATD_REGENERATE_VECTORS=1`, and checks that replaying the file's draws
/// through `replay` reproduces the file exactly.
fn committed<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    name: &str,
    generate: impl FnOnce() -> T,
    replay: impl FnOnce(&T) -> T,
) -> T {
    let path = path(name);
    if std::env::var(REGENERATE).is_ok_and(|v| v == "1") {
        let mut text = serde_json::to_string_pretty(&generate()).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with {REGENERATE}=1", path.display()));
    let file: T = serde_json::from_str(&text).unwrap();
    let replayed = replay(&file);
    assert!(
        replayed == file,
        "replaying the draws of {} does not reproduce it; if the change is intended, run the \
         tests with {REGENERATE}=1 and review the diff",
        path.display()
    );
    file
}

// ---------------------------------------------------------------------------------------------
// Fixed inputs and how every scenario makes keys

const CERT_CREATED_AT: u64 = 1_700_000_000;
const SPK_ID: u32 = 1;
const SPK_CREATED_AT: u64 = 1_700_000_100;
const KEM_ID: u32 = 2;
const KEM_LAST_RESORT: bool = false;
const OTK_ID: u32 = 3;
/// Alice's device number.
const A_DEVICE: u32 = 1;
/// Bob's device number.
const B_DEVICE: u32 = 2;

fn identity_seed(who: &str) -> String {
    format!("{who} identity: Ed25519 seed")
}
fn signing_seed(who: &str) -> String {
    format!("{who} device: Ed25519 signing seed")
}
fn device_dh(who: &str) -> String {
    format!("{who} device: X25519 secret")
}
fn spk_secret(who: &str) -> String {
    format!("{who} signed prekey: X25519 secret")
}
fn kem_seed(who: &str) -> String {
    format!("{who} KEM prekey: ML-KEM-1024 seed d || z")
}
fn otk_secret(who: &str) -> String {
    format!("{who} one-time prekey: X25519 secret")
}
const EK: &str = "A PQXDH: ephemeral X25519 secret EK_A";
const KEM_M: &str = "A PQXDH: ML-KEM-1024 encapsulation randomness m";
fn ratchet_secret(who: &str, chain: usize) -> String {
    format!("{who} ratchet key for chain {chain}: X25519 secret")
}
const SEAL_EPHEMERAL: &str = "A envelope: ephemeral X25519 secret";

/// `IdentityKeyPair::generate` then `DeviceKeyPair::generate`: three draws.
fn make_device(tape: &mut Tape, who: &str, device_id: u32) -> LocalDevice {
    let identity = tape.call(&[&identity_seed(who)], IdentityKeyPair::generate);
    let keys = tape.call(&[&signing_seed(who), &device_dh(who)], |r| {
        DeviceKeyPair::generate(DeviceId::new(device_id).unwrap(), r)
    });
    LocalDevice::new(&identity, keys, CERT_CREATED_AT)
}

/// A responder's prekey secrets.
struct PrekeySecrets {
    spk: SignedPrekeySecret,
    kem: KemPrekeySecret,
    otk: Option<OneTimePrekeySecret>,
}

impl PrekeySecrets {
    fn keys(&self) -> ResponderKeys<'_> {
        ResponderKeys {
            signed_prekey: &self.spk,
            one_time_prekey: self.otk.as_ref(),
            kem_prekey: &self.kem,
        }
    }

    /// The secrets rebuilt from the draws of a file, as another implementation would load them.
    fn from_draws(draws: &[Draw], who: &str, with_otk: bool) -> Self {
        Self {
            spk: SignedPrekeySecret {
                id: SPK_ID,
                key: X25519Secret::from_bytes(&drawn(draws, &spk_secret(who))),
                created_at: SPK_CREATED_AT,
            },
            kem: KemPrekeySecret {
                id: KEM_ID,
                last_resort: KEM_LAST_RESORT,
                key: KemSecret::from_seed(&drawn(draws, &kem_seed(who))),
            },
            otk: with_otk.then(|| OneTimePrekeySecret {
                id: OTK_ID,
                key: X25519Secret::from_bytes(&drawn(draws, &otk_secret(who))),
            }),
        }
    }
}

/// Signed prekey, KEM prekey and (optionally) one-time prekey, in that order: two or three
/// draws. Returns the secrets and the bundle.
fn make_prekeys(
    tape: &mut Tape,
    who: &str,
    device: &LocalDevice,
    with_otk: bool,
) -> (PrekeySecrets, PrekeyBundle) {
    let signer = device.keys.signing();
    let (spk, spk_pub) = tape.call(&[&spk_secret(who)], |r| {
        SignedPrekeySecret::generate(SPK_ID, SPK_CREATED_AT, signer, r)
    });
    let (kem, kem_pub) = tape.call(&[&kem_seed(who)], |r| {
        KemPrekeySecret::generate(KEM_ID, KEM_LAST_RESORT, signer, r)
    });
    let (otk, otk_pub) = if with_otk {
        let (secret, public) = tape.call(&[&otk_secret(who)], |r| {
            OneTimePrekeySecret::generate(OTK_ID, r)
        });
        (Some(secret), Some(public))
    } else {
        (None, None)
    };
    let bundle = PrekeyBundle {
        device: device.cert.certificate().clone(),
        signed_prekey: spk_pub,
        kem_prekey: kem_pub,
        one_time_prekey: otk_pub,
    };
    (PrekeySecrets { spk, kem, otk }, bundle)
}

/// A device rebuilt from the draws of a file, as another implementation would load it.
fn device_from_draws(draws: &[Draw], who: &str, device_id: u32) -> LocalDevice {
    let identity = IdentityKeyPair::from_seed(&drawn(draws, &identity_seed(who)));
    let keys = DeviceKeyPair::from_seeds(
        DeviceId::new(device_id).unwrap(),
        &drawn(draws, &signing_seed(who)),
        &drawn(draws, &device_dh(who)),
    );
    LocalDevice::new(&identity, keys, CERT_CREATED_AT)
}

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// A device's public keys and certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceVector {
    device_id: u32,
    certificate_created_at: u64,
    identity_key: String,
    signing_key: String,
    dh_key: String,
    certificate: String,
}

impl DeviceVector {
    fn new(device: &LocalDevice) -> Self {
        let cert = &device.cert;
        Self {
            device_id: cert.device_id().get(),
            certificate_created_at: cert.created_at(),
            identity_key: h(cert.identity().as_bytes()),
            signing_key: h(cert.signing_key().as_bytes()),
            dh_key: h(cert.dh_key().as_bytes()),
            certificate: h(cert.certificate().to_bytes()),
        }
    }

    /// Checks the public keys against the secrets drawn for `who`, with the primitives alone.
    fn check_against_draws(&self, draws: &[Draw], who: &str) {
        let identity = Ed25519Secret::from_seed(&drawn(draws, &identity_seed(who)));
        assert_eq!(h(identity.public_key().as_bytes()), self.identity_key);
        let signing = Ed25519Secret::from_seed(&drawn(draws, &signing_seed(who)));
        assert_eq!(h(signing.public_key().as_bytes()), self.signing_key);
        let dh = X25519Secret::from_bytes(&drawn(draws, &device_dh(who)));
        assert_eq!(h(dh.public_key().as_bytes()), self.dh_key);
    }
}

// ---------------------------------------------------------------------------------------------
// Reference computations (SPEC.md sections 4, 5 and 8, from the primitives)

const ROOT_INFO: &[u8] = b"chatd/v1/ratchet-root";
const MESSAGE_KEY_INFO: &[u8] = b"chatd/v1/message-key";

fn dh(secret: &[u8; 32], public: &X25519PublicKey) -> [u8; 32] {
    *X25519Secret::from_bytes(secret)
        .diffie_hellman(public)
        .unwrap()
        .as_bytes()
}

/// `SK = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 || [DH4] || SS, info)`.
fn session_key(dhs: &[[u8; 32]], kem_shared: &[u8; 32]) -> [u8; 32] {
    let mut ikm: Vec<&[u8]> = vec![&[0xff; 32]];
    ikm.extend(dhs.iter().map(|d| d.as_slice()));
    ikm.push(kem_shared);
    *hkdf_sha256::<32>(Some(&[0; 32]), &ikm, &[PQXDH_INFO])
}

/// Session associated data: version, then for the initiator and the responder their identity
/// key, device id and `EncodeEC(device key)`.
fn associated_data(initiator: &LocalDevice, responder: &LocalDevice) -> Vec<u8> {
    let mut ad = vec![PROTOCOL_VERSION];
    for device in [initiator, responder] {
        ad.extend_from_slice(device.cert.identity().as_bytes());
        ad.extend_from_slice(&device.cert.device_id().get().to_be_bytes());
        ad.push(KEY_TYPE_X25519);
        ad.extend_from_slice(device.cert.dh_key().as_bytes());
    }
    ad
}

/// One DH ratchet step, the same on both sides: it starts sending chain `number` of `sender`
/// (and the peer's matching receiving chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChainVector {
    number: usize,
    sender: String,
    /// The sender's ratchet public key for this chain.
    ratchet_key: String,
    /// The key it is combined with: the peer's latest ratchet key (for chain 0, the
    /// responder's signed prekey).
    peer_ratchet_key: String,
    root_key: String,
    dh: String,
    next_root_key: String,
    chain_key: String,
}

/// `(root', chain) = HKDF-SHA256(salt = root, ikm = dh, info = "chatd/v1/ratchet-root")`.
fn root_step(
    number: usize,
    sender: &str,
    root: &[u8; 32],
    secret: &[u8; 32],
    peer: &X25519PublicKey,
) -> ([u8; 32], [u8; 32], ChainVector) {
    let dh = dh(secret, peer);
    let okm = hkdf_sha256::<64>(Some(root), &[&dh], &[ROOT_INFO]);
    let next_root: [u8; 32] = okm[..32].try_into().unwrap();
    let chain: [u8; 32] = okm[32..].try_into().unwrap();
    let vector = ChainVector {
        number,
        sender: sender.into(),
        ratchet_key: h(X25519Secret::from_bytes(secret).public_key().as_bytes()),
        peer_ratchet_key: h(peer.as_bytes()),
        root_key: h(root),
        dh: h(dh),
        next_root_key: h(next_root),
        chain_key: h(chain),
    };
    (next_root, chain, vector)
}

/// The keys of one message: the chain key it is derived from, `HMAC(ck, 0x01)`, and its
/// expansion into the AES-256-GCM key and nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MessageKeys {
    chain_key: String,
    message_key: String,
    aead_key: String,
    aead_nonce: String,
}

/// The keys of message `index` of the chain that starts at `chain_key`.
fn message_keys(chain_key: &[u8; 32], index: u32) -> MessageKeys {
    let mut ck = *chain_key;
    for _ in 0..index {
        ck = *hmac_sha256(&ck, &[&[0x02]]);
    }
    let mk = hmac_sha256(&ck, &[&[0x01]]);
    let okm = hkdf_sha256_expand::<44>(&mk, &[MESSAGE_KEY_INFO]);
    MessageKeys {
        chain_key: h(ck),
        message_key: h(*mk),
        aead_key: h(&okm[..32]),
        aead_nonce: h(&okm[32..]),
    }
}

/// Checks a ratchet message against the reference: AES-256-GCM under the message keys, with
/// the session associated data and the encoded header as AAD, over the padded plaintext.
fn check_message(ad: &[u8], keys: &MessageKeys, message: &RatchetMessage, plaintext: &[u8]) {
    let aad = [ad, &message.header.to_array()].concat();
    let expected = aead::seal(
        &arr(&keys.aead_key),
        &arr(&keys.aead_nonce),
        &aad,
        &padding::pad(plaintext).unwrap(),
    );
    assert_eq!(h(&expected), h(&message.ciphertext), "reference ciphertext");
}

// ---------------------------------------------------------------------------------------------
// bundle.json

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct BundleVectors {
    description: String,
    draws: Vec<Draw>,
    device: DeviceVector,
    signed_prekey_id: u32,
    signed_prekey_created_at: u64,
    signed_prekey_public: String,
    signed_prekey: String,
    kem_prekey_id: u32,
    kem_prekey_last_resort: bool,
    kem_public_key: String,
    kem_prekey: String,
    one_time_prekey_id: u32,
    one_time_prekey_public: String,
    one_time_prekey: String,
    bundle: String,
    bundle_without_one_time_prekey: String,
}

fn bundle_scenario(mut tape: Tape) -> BundleVectors {
    let bob = make_device(&mut tape, "B", B_DEVICE);
    let (_, bundle) = make_prekeys(&mut tape, "B", &bob, true);
    let otk = bundle.one_time_prekey.clone().unwrap();
    let without = PrekeyBundle {
        one_time_prekey: None,
        ..bundle.clone()
    };
    BundleVectors {
        description: "A device's keys, certificate and prekey bundle (SPEC.md sections 2 and 3). \
                      `draws` are the random inputs in the order the code draws them (SPEC.md \
                      section 12.2). Ed25519 signatures are deterministic. Hex fields are \
                      encodings: `device.certificate` a DeviceCertificate, `signed_prekey` a \
                      SignedPrekey, `kem_prekey` a KemPrekey, `one_time_prekey` a \
                      OneTimePrekey, `bundle` a PrekeyBundle; `*_public` and `*_key` fields \
                      are raw public keys."
            .into(),
        device: DeviceVector::new(&bob),
        signed_prekey_id: SPK_ID,
        signed_prekey_created_at: SPK_CREATED_AT,
        signed_prekey_public: h(bundle.signed_prekey.key.as_bytes()),
        signed_prekey: h(bundle.signed_prekey.to_bytes()),
        kem_prekey_id: KEM_ID,
        kem_prekey_last_resort: KEM_LAST_RESORT,
        kem_public_key: h(bundle.kem_prekey.key.as_bytes()),
        kem_prekey: h(bundle.kem_prekey.to_bytes()),
        one_time_prekey_id: OTK_ID,
        one_time_prekey_public: h(otk.key.as_bytes()),
        one_time_prekey: h(otk.to_bytes()),
        bundle: h(bundle.to_bytes()),
        bundle_without_one_time_prekey: h(without.to_bytes()),
        draws: tape.finish(),
    }
}

#[test]
fn bundle_vectors() {
    let file = committed(
        "bundle.json",
        || bundle_scenario(Tape::fresh(0xb1)),
        |file| bundle_scenario(Tape::replay(&file.draws)),
    );
    let draws = &file.draws;
    assert_eq!(draws.len(), 6);
    file.device.check_against_draws(draws, "B");
    let spk = X25519Secret::from_bytes(&drawn(draws, &spk_secret("B")));
    assert_eq!(h(spk.public_key().as_bytes()), file.signed_prekey_public);
    let otk = X25519Secret::from_bytes(&drawn(draws, &otk_secret("B")));
    assert_eq!(h(otk.public_key().as_bytes()), file.one_time_prekey_public);
    let kem = KemSecret::from_seed(&drawn(draws, &kem_seed("B")));
    assert_eq!(h(kem.public_key().as_bytes()), file.kem_public_key);

    let identity =
        protocol::identity::IdentityKey::from_bytes(&arr(&file.device.identity_key)).unwrap();
    let bundle = PrekeyBundle::from_bytes(&unhex(&file.bundle)).unwrap();
    let verified = bundle.verify(Some(&identity)).unwrap();
    assert_eq!(verified.device().device_id().get(), file.device.device_id);
    assert_eq!(h(bundle.device.to_bytes()), file.device.certificate);
    assert_eq!(h(bundle.signed_prekey.to_bytes()), file.signed_prekey);
    assert_eq!(h(bundle.kem_prekey.to_bytes()), file.kem_prekey);
    assert_eq!(
        bundle.one_time_prekey.as_ref().map(|k| h(k.to_bytes())),
        Some(file.one_time_prekey.clone())
    );
    let without = PrekeyBundle::from_bytes(&unhex(&file.bundle_without_one_time_prekey)).unwrap();
    without.verify(Some(&identity)).unwrap();
    assert_eq!(without.one_time_prekey, None);
    assert_eq!(without.device, bundle.device);
}

// ---------------------------------------------------------------------------------------------
// pqxdh.json

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PqxdhVectors {
    description: String,
    cases: Vec<PqxdhCase>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PqxdhCase {
    name: String,
    with_one_time_prekey: bool,
    draws: Vec<Draw>,
    initiator: DeviceVector,
    responder: DeviceVector,
    bundle: String,
    dh1: String,
    dh2: String,
    dh3: String,
    dh4: Option<String>,
    kem_ciphertext: String,
    kem_shared_secret: String,
    session_key: String,
    associated_data: String,
    initial_header: String,
    first_chain: ChainVector,
    plaintext: String,
    message_keys: MessageKeys,
    ratchet_message: String,
    session_message: String,
}

const PQXDH_PLAINTEXT: &[u8] = b"Hello Bob, this is Alice.";

fn pqxdh_scenario(mut tape: Tape, with_otk: bool) -> PqxdhCase {
    let alice = make_device(&mut tape, "A", A_DEVICE);
    let bob = make_device(&mut tape, "B", B_DEVICE);
    let (secrets, bundle) = make_prekeys(&mut tape, "B", &bob, with_otk);
    let verified = bundle.verify(Some(&bob.cert.identity())).unwrap();
    let init = tape.call(&[EK, KEM_M, &ratchet_secret("A", 0)], |r| {
        pqxdh::initiate(&alice, &verified, r).unwrap()
    });
    let mut state = init.state;
    let header = init.header;
    let message = tape.call(&[], |r| state.encrypt(PQXDH_PLAINTEXT, r).unwrap());
    let resp = pqxdh::respond(&bob, &header, secrets.keys(), &ReplayGuard::new()).unwrap();
    let mut bob_state = resp.state;
    assert_eq!(bob_state.decrypt(&message).unwrap(), PQXDH_PLAINTEXT);

    // The reference computation, from the draws.
    let ek: [u8; 32] = tape.array(EK);
    let spk = bundle.signed_prekey.key;
    assert_eq!(X25519Secret::from_bytes(&ek).public_key(), header.base_key);
    let mut dhs = vec![
        dh(&tape.array(&device_dh("A")), &spk),
        dh(&ek, bob.cert.dh_key()),
        dh(&ek, &spk),
    ];
    if let Some(otk) = &bundle.one_time_prekey {
        dhs.push(dh(&ek, &otk.key));
    }
    let kem = KemSecret::from_seed(&tape.array(&kem_seed("B")));
    let kem_shared = *kem.decapsulate(&header.kem_ciphertext);
    // `m` is FIPS 203's encapsulation randomness: encapsulating with it alone gives the same.
    let m = &tape.log[tape.log.iter().position(|d| d.purpose == KEM_M).unwrap()];
    let (ct, ss) = Tape::replay(std::slice::from_ref(m))
        .call(&[KEM_M], |r| bundle.kem_prekey.key.encapsulate(r));
    assert_eq!((ct, *ss), (header.kem_ciphertext.clone(), kem_shared));
    let sk = session_key(&dhs, &kem_shared);
    let ad = associated_data(&alice, &bob);
    assert_eq!(state.associated_data(), ad.as_slice());
    let (_, chain_key, first_chain) =
        root_step(0, "A", &sk, &tape.array(&ratchet_secret("A", 0)), &spk);
    assert_eq!(
        h(message.header.ratchet_key.as_bytes()),
        first_chain.ratchet_key
    );
    assert_eq!(
        (message.header.index, message.header.previous_chain_len),
        (0, 0)
    );
    let keys = message_keys(&chain_key, 0);
    check_message(&ad, &keys, &message, PQXDH_PLAINTEXT);

    let session_message = SessionMessage::Prekey {
        header: Box::new(header.clone()),
        message: message.clone(),
    };
    PqxdhCase {
        name: if with_otk {
            "with a one-time prekey".into()
        } else {
            "without a one-time prekey".into()
        },
        with_one_time_prekey: with_otk,
        initiator: DeviceVector::new(&alice),
        responder: DeviceVector::new(&bob),
        bundle: h(bundle.to_bytes()),
        dh1: h(dhs[0]),
        dh2: h(dhs[1]),
        dh3: h(dhs[2]),
        dh4: dhs.get(3).map(h),
        kem_ciphertext: h(header.kem_ciphertext.as_slice()),
        kem_shared_secret: h(kem_shared),
        session_key: h(sk),
        associated_data: h(&ad),
        initial_header: h(header.to_bytes()),
        first_chain,
        plaintext: h(PQXDH_PLAINTEXT),
        message_keys: keys,
        ratchet_message: h(message.to_bytes()),
        session_message: h(session_message.to_bytes()),
        draws: tape.finish(),
    }
}

const PQXDH_DESCRIPTION: &str = "PQXDH session setup (SPEC.md section 4) and the first ratchet \
    message (section 5), with and without a one-time prekey. A is the initiator (device 1), B \
    the responder (device 2). `draws` are every random input in the order the code draws them \
    (SPEC.md section 12.2): both devices, B's prekeys, then PQXDH's EK_A, ML-KEM m and A's first \
    ratchet key. DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B), \
    DH4 = DH(EK_A, OPK_B); `kem_shared_secret` is ML-KEM-1024.Encaps(PQPK_B, m); `first_chain` \
    is the initiator's first root step (root_key = session_key); `message_keys` are those of \
    message 0 of that chain. `initial_header` is an InitialHeader, `ratchet_message` a \
    RatchetMessage and `session_message` a SessionMessage (type 1: header and message); \
    `plaintext` is hex. The responder decodes them, runs PQXDH with its secrets and decrypts.";

#[test]
fn pqxdh_vectors() {
    let file = committed(
        "pqxdh.json",
        || PqxdhVectors {
            description: PQXDH_DESCRIPTION.into(),
            cases: vec![
                pqxdh_scenario(Tape::fresh(0xa1), true),
                pqxdh_scenario(Tape::fresh(0xa2), false),
            ],
        },
        |file| PqxdhVectors {
            description: PQXDH_DESCRIPTION.into(),
            cases: file
                .cases
                .iter()
                .map(|case| pqxdh_scenario(Tape::replay(&case.draws), case.with_one_time_prekey))
                .collect(),
        },
    );
    assert_eq!(file.cases.len(), 2);
    for case in &file.cases {
        // The responder's side, from the file alone: keys from the draws, messages decoded
        // from the committed bytes.
        let draws = &case.draws;
        case.initiator.check_against_draws(draws, "A");
        case.responder.check_against_draws(draws, "B");
        let bob = device_from_draws(draws, "B", case.responder.device_id);
        let secrets = PrekeySecrets::from_draws(draws, "B", case.with_one_time_prekey);
        let header = InitialHeader::from_bytes(&unhex(&case.initial_header)).unwrap();
        let message = RatchetMessage::from_bytes(&unhex(&case.ratchet_message)).unwrap();
        assert_eq!(
            SessionMessage::from_bytes(&unhex(&case.session_message)).unwrap(),
            SessionMessage::Prekey {
                header: Box::new(header.clone()),
                message: message.clone(),
            }
        );
        assert_eq!(
            header.one_time_prekey_id.is_some(),
            case.with_one_time_prekey
        );
        assert_eq!(case.dh4.is_some(), case.with_one_time_prekey);
        let resp = pqxdh::respond(&bob, &header, secrets.keys(), &ReplayGuard::new()).unwrap();
        assert_eq!(
            h(resp.peer.identity().as_bytes()),
            case.initiator.identity_key
        );
        assert_eq!(h(resp.state.associated_data()), case.associated_data);
        let mut state = resp.state;
        assert_eq!(h(state.decrypt(&message).unwrap()), case.plaintext);
    }
}

// ---------------------------------------------------------------------------------------------
// ratchet.json

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RatchetVectors {
    description: String,
    draws: Vec<Draw>,
    initiator: DeviceVector,
    responder: DeviceVector,
    bundle: String,
    initial_header: String,
    session_key: String,
    associated_data: String,
    chains: Vec<ChainVector>,
    messages: Vec<MessageVector>,
    /// The order in which the receivers decrypt the messages (message numbers).
    receive_order: Vec<usize>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MessageVector {
    number: usize,
    sender: String,
    chain: usize,
    index: u32,
    previous_chain_len: u32,
    plaintext: String,
    keys: MessageKeys,
    message: String,
}

/// The conversation: who sends, and the plaintexts. Each batch is delivered in full before the
/// next one is sent; the receiver decrypts it in the order given (positions in the batch).
const CONVERSATION: [(&str, &[&str], &[usize]); 4] = [
    (
        "A",
        &["Hi Bob, it's Alice.", "", "Are you there?"],
        &[0, 1, 2],
    ),
    ("B", &["Hi Alice!", "Yes, here."], &[0, 1]),
    (
        "A",
        &[
            "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.",
            "\u{1f980} UTF-8 is fine too",
            "Third message of my second chain, delivered first.",
        ],
        &[2, 0, 1],
    ),
    ("B", &["Got them all.", "Bye!"], &[1, 0]),
];

fn ratchet_scenario(mut tape: Tape, file: Option<&RatchetVectors>) -> RatchetVectors {
    let alice = make_device(&mut tape, "A", A_DEVICE);
    let bob = make_device(&mut tape, "B", B_DEVICE);
    let (secrets, bundle) = make_prekeys(&mut tape, "B", &bob, false);
    let verified = bundle.verify(Some(&bob.cert.identity())).unwrap();
    let init = tape.call(&[EK, KEM_M, &ratchet_secret("A", 0)], |r| {
        pqxdh::initiate(&alice, &verified, r).unwrap()
    });
    let resp = pqxdh::respond(&bob, &init.header, secrets.keys(), &ReplayGuard::new()).unwrap();
    let ad = associated_data(&alice, &bob);
    let ek: [u8; 32] = tape.array(EK);
    let spk = bundle.signed_prekey.key;
    let kem = KemSecret::from_seed(&tape.array(&kem_seed("B")));
    let sk = session_key(
        &[
            dh(&tape.array(&device_dh("A")), &spk),
            dh(&ek, bob.cert.dh_key()),
            dh(&ek, &spk),
        ],
        &kem.decapsulate(&init.header.kem_ciphertext),
    );

    let mut states = [init.state, resp.state];
    let mut root = sk;
    let mut peer_key = spk;
    let mut chains: Vec<ChainVector> = Vec::new();
    let mut messages: Vec<MessageVector> = Vec::new();
    let mut receive_order = Vec::new();
    // `PN` of each side's next chain: the length of its previous sending chain.
    let mut previous_len = [0u32; 2];
    for (chain, (sender, texts, order)) in CONVERSATION.iter().enumerate() {
        let (from, to) = if *sender == "A" { (0, 1) } else { (1, 0) };
        // Every batch starts a new chain: its first message runs the sending half of a DH
        // step and draws the ratchet key (the initiator's first one is drawn by `initiate`).
        let secret = ratchet_secret(sender, chain);
        let sent: Vec<RatchetMessage> = texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let purposes: &[&str] = if index == 0 && chain > 0 {
                    &[&secret]
                } else {
                    &[]
                };
                tape.call(purposes, |r| {
                    states[from].encrypt(text.as_bytes(), r).unwrap()
                })
            })
            .collect();
        let (next_root, chain_key, vector) =
            root_step(chain, sender, &root, &tape.array(&secret), &peer_key);
        let mut batch = Vec::new();
        for (index, (message, text)) in sent.iter().zip(texts.iter()).enumerate() {
            let index = u32::try_from(index).unwrap();
            assert_eq!(h(message.header.ratchet_key.as_bytes()), vector.ratchet_key);
            assert_eq!(message.header.index, index);
            assert_eq!(message.header.previous_chain_len, previous_len[from]);
            let keys = message_keys(&chain_key, index);
            check_message(&ad, &keys, message, text.as_bytes());
            batch.push(messages.len());
            messages.push(MessageVector {
                number: messages.len(),
                sender: sender.to_string(),
                chain,
                index,
                previous_chain_len: previous_len[from],
                plaintext: h(text.as_bytes()),
                keys,
                message: h(message.to_bytes()),
            });
        }
        previous_len[from] = u32::try_from(texts.len()).unwrap();
        for &position in *order {
            let number = batch[position];
            // When replaying, the receiver decrypts the committed bytes.
            let wire = match file {
                Some(file) => unhex(&file.messages[number].message),
                None => unhex(&messages[number].message),
            };
            let message = RatchetMessage::from_bytes(&wire).unwrap();
            let plaintext = states[to].decrypt(&message).unwrap();
            assert_eq!(h(plaintext), messages[number].plaintext);
            receive_order.push(number);
        }
        peer_key = X25519PublicKey::from_bytes(arr(&vector.ratchet_key)).unwrap();
        root = next_root;
        chains.push(vector);
    }
    RatchetVectors {
        description: RATCHET_DESCRIPTION.into(),
        initiator: DeviceVector::new(&alice),
        responder: DeviceVector::new(&bob),
        bundle: h(bundle.to_bytes()),
        initial_header: h(init.header.to_bytes()),
        session_key: h(sk),
        associated_data: h(&ad),
        chains,
        messages,
        receive_order,
        draws: tape.finish(),
    }
}

const RATCHET_DESCRIPTION: &str = "The first ten messages of a conversation (SPEC.md section 5): \
    A sends 3, B replies 2, A sends 3, B sends 2, so each batch starts a new chain with a DH \
    ratchet step. Session setup is PQXDH without a one-time prekey (as in pqxdh.json); `draws` \
    are every random input in the order the code draws them (SPEC.md section 12.2): setup, then \
    the ratchet key of each chain when its first message is encrypted. `chains` lists the root \
    steps in order: chain n's root_key is chain n-1's next_root_key (session_key for chain 0), \
    dh = DH(ratchet secret, peer_ratchet_key). Each message gives its chain, header index and \
    previous_chain_len, the keys (`chain_key` is the chain key at that index), the plaintext \
    (hex) and the RatchetMessage encoding. Each batch is delivered in full before the next is \
    sent; `receive_order` is the order the receivers decrypt in.";

#[test]
fn ratchet_vectors() {
    let file = committed(
        "ratchet.json",
        || ratchet_scenario(Tape::fresh(0xc1), None),
        |file| ratchet_scenario(Tape::replay(&file.draws), Some(file)),
    );
    assert_eq!(file.messages.len(), 10);
    assert_eq!(file.chains.len(), 4);
    let senders: Vec<&str> = file.chains.iter().map(|c| c.sender.as_str()).collect();
    assert_eq!(senders, ["A", "B", "A", "B"]);
    for pair in file.chains.windows(2) {
        assert_eq!(pair[0].next_root_key, pair[1].root_key);
    }
    assert_eq!(file.chains[0].root_key, file.session_key);
    file.initiator.check_against_draws(&file.draws, "A");
    file.responder.check_against_draws(&file.draws, "B");
}

// ---------------------------------------------------------------------------------------------
// envelope.json

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct EnvelopeVectors {
    description: String,
    draws: Vec<Draw>,
    sender: DeviceVector,
    recipient: DeviceVector,
    bundle: String,
    content: ContentVector,
    session_message: String,
    seal: SealVector,
    sealed: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ContentVector {
    message_id: String,
    timestamp_ms: u64,
    kind: u8,
    body: String,
    encoding: String,
}

/// The seal's intermediate values (SPEC.md section 8).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SealVector {
    ephemeral_key: String,
    dh: String,
    hkdf_salt: String,
    hkdf_info: String,
    aead_key: String,
    aead_nonce: String,
    aad: String,
    /// sender identity || sender device id || SessionMessage.
    inner: String,
}

fn content() -> Content {
    Content {
        message_id: core::array::from_fn(|i| u8::try_from(i).unwrap()),
        timestamp_ms: 1_700_000_000_123,
        kind: ContentKind::Text,
        body: "Hello Bob! Sealed, padded and ratcheted.".into(),
    }
}

/// A's and B's devices, B's prekeys and bundle, and A's session with B just initiated from
/// it: the draws both envelope files begin with.
fn initiated(
    tape: &mut Tape,
) -> (
    LocalDevice,
    LocalDevice,
    PrekeySecrets,
    PrekeyBundle,
    SessionRecord,
) {
    let alice = make_device(tape, "A", A_DEVICE);
    let bob = make_device(tape, "B", B_DEVICE);
    let (secrets, bundle) = make_prekeys(tape, "B", &bob, true);
    let verified = bundle.verify(Some(&bob.cert.identity())).unwrap();
    let mut record = SessionRecord::new();
    tape.call(&[EK, KEM_M, &ratchet_secret("A", 0)], |r| {
        record.initiate(&alice, &verified, r).unwrap()
    });
    (alice, bob, secrets, bundle, record)
}

/// The AEAD plaintext of a seal (SPEC.md 8.2): sender identity, sender device, message.
fn sealed_inner(sender: &LocalDevice, message: &SessionMessage) -> Vec<u8> {
    [
        sender.cert.identity().as_bytes().as_slice(),
        &sender.cert.device_id().get().to_be_bytes(),
        &message.to_bytes(),
    ]
    .concat()
}

fn envelope_scenario(mut tape: Tape, file: Option<&EnvelopeVectors>) -> EnvelopeVectors {
    let (alice, bob, secrets, bundle, mut record) = initiated(&mut tape);
    let content = content();
    let session_message = tape.call(&[], |r| record.encrypt(&content.to_bytes(), r).unwrap());
    // chatd no longer seals version 1; the payload is built here from its definition, and the
    // code under test opens it.
    let eph = tape.call(&[SEAL_EPHEMERAL], X25519Secret::generate);
    let eph_pub = eph.public_key();
    let recipient_key = bob.cert.dh_key();
    let shared = dh(&tape.array(SEAL_EPHEMERAL), recipient_key);
    let device = bob.cert.device_id().get().to_be_bytes();
    let salt = [eph_pub.as_bytes().as_slice(), recipient_key.as_bytes()].concat();
    let info = [SEAL_INFO, bob.cert.identity().as_bytes(), &device].concat();
    let okm = hkdf_sha256::<44>(Some(&salt), &[&shared], &[&info]);
    let aad = [
        &[SEAL_VERSION_1][..],
        bob.cert.identity().as_bytes(),
        &device,
        eph_pub.as_bytes(),
    ]
    .concat();
    let inner = sealed_inner(&alice, &session_message);
    let sealed = [
        &[SEAL_VERSION_1][..],
        eph_pub.as_bytes(),
        &aead::seal(
            &okm[..32].try_into().unwrap(),
            &okm[32..].try_into().unwrap(),
            &aad,
            &inner,
        ),
    ]
    .concat();

    // The recipient's side: open the committed payload and decrypt what it carries.
    let wire = file.map_or_else(|| sealed.clone(), |f| unhex(&f.sealed));
    let opened = envelope::open(&bob, &wire).unwrap();
    assert_eq!(opened.sender_identity, alice.cert.identity());
    assert_eq!(opened.sender_device, alice.cert.device_id());
    let SessionMessage::Prekey { header, message } = &opened.message else {
        panic!("the first message of a session carries the initial header");
    };
    let mut bob_record = SessionRecord::new();
    let decrypted = bob_record
        .decrypt_prekey(
            &bob,
            (opened.sender_identity, opened.sender_device),
            header,
            message,
            Some(secrets.keys()),
            &mut ReplayGuard::new(),
        )
        .unwrap();
    assert_eq!(decrypted.consumed_one_time_prekey, Some(OTK_ID));
    assert_eq!(Content::from_bytes(&decrypted.plaintext).unwrap(), content);

    EnvelopeVectors {
        description: ENVELOPE_DESCRIPTION.into(),
        sender: DeviceVector::new(&alice),
        recipient: DeviceVector::new(&bob),
        bundle: h(bundle.to_bytes()),
        content: ContentVector {
            message_id: h(content.message_id),
            timestamp_ms: content.timestamp_ms,
            kind: content.kind.to_byte(),
            body: h(&content.body),
            encoding: h(content.to_bytes()),
        },
        session_message: h(session_message.to_bytes()),
        seal: SealVector {
            ephemeral_key: h(eph_pub.as_bytes()),
            dh: h(shared),
            hkdf_salt: h(&salt),
            hkdf_info: h(&info),
            aead_key: h(&okm[..32]),
            aead_nonce: h(&okm[32..]),
            aad: h(&aad),
            inner: h(&inner),
        },
        sealed: h(&sealed),
        draws: tape.finish(),
    }
}

const ENVELOPE_DESCRIPTION: &str = "One sealed envelope of version 1 (SPEC.md section 8.2; \
    chatd opens this version but no longer seals it): A's first message to B, a PQXDH session set up with a one-time prekey (as in pqxdh.json), whose plaintext is \
    the encoding of `content` (kind 1 = text; body in hex). `session_message` is the \
    SessionMessage (type 1) the session produced, `sealed` the payload the relay carries. \
    `draws` are every random input in the order the code draws them (SPEC.md section 12.2); the \
    last is the seal's ephemeral key. `seal` gives the intermediate values: \
    dh = DH(ephemeral, recipient device key), key || nonce = HKDF-SHA256(salt = hkdf_salt, \
    ikm = dh, info = hkdf_info), and `inner` is the AEAD plaintext. The recipient opens the \
    payload, then decrypts the session message to the content encoding.";

#[test]
fn envelope_vectors() {
    let file = committed(
        "envelope.json",
        || envelope_scenario(Tape::fresh(0xe1), None),
        |file| envelope_scenario(Tape::replay(&file.draws), Some(file)),
    );
    file.sender.check_against_draws(&file.draws, "A");
    file.recipient.check_against_draws(&file.draws, "B");
    let content = Content::from_bytes(&unhex(&file.content.encoding)).unwrap();
    assert_eq!(content, self::content());
    assert_eq!(h(content.message_id), file.content.message_id);
    assert_eq!(h(&content.body), file.content.body);
}

// ---------------------------------------------------------------------------------------------
// sealed_batch.json

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SealedBatchVectors {
    description: String,
    draws: Vec<Draw>,
    sender: DeviceVector,
    recipient: DeviceVector,
    bundle: String,
    ephemeral_key: String,
    dh: String,
    hkdf_salt: String,
    hkdf_info: String,
    root: String,
    payloads: Vec<BatchPayloadVector>,
}

/// One payload of the batch and its intermediate values (SPEC.md 8.2, version 2).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct BatchPayloadVector {
    /// The `Content` encoding the session encrypted.
    content: String,
    session_message: String,
    seed: String,
    hkdf_info: String,
    aead_key: String,
    aead_nonce: String,
    aad: String,
    inner: String,
    sealed: String,
}

const BATCH_SEED: [&str; 2] = [
    "A envelope: seed of payload 0",
    "A envelope: seed of payload 1",
];

fn batch_contents() -> [Content; 2] {
    let second = Content {
        message_id: [0xb2; 16],
        timestamp_ms: 1_700_000_000_456,
        kind: ContentKind::Text,
        body: "A second message, sealed under the same agreement.".into(),
    };
    [content(), second]
}

fn sealed_batch_scenario(mut tape: Tape, file: Option<&SealedBatchVectors>) -> SealedBatchVectors {
    let (alice, bob, secrets, bundle, mut record) = initiated(&mut tape);
    let contents = batch_contents();
    let messages: Vec<SessionMessage> = contents
        .iter()
        .map(|c| tape.call(&[], |r| record.encrypt(&c.to_bytes(), r).unwrap()))
        .collect();
    let sealer = tape.call(&[SEAL_EPHEMERAL], |r| Sealer::new(&bob.cert, r).unwrap());
    let sealed: Vec<Vec<u8>> = messages
        .iter()
        .zip(BATCH_SEED)
        .map(|(m, seed)| tape.call(&[seed], |r| sealer.seal(&alice, m, r)))
        .collect();

    // The reference: one agreement, then a key and nonce per seed.
    let eph_pub = X25519Secret::from_bytes(&tape.array(SEAL_EPHEMERAL)).public_key();
    let recipient_key = bob.cert.dh_key();
    let shared = dh(&tape.array(SEAL_EPHEMERAL), recipient_key);
    let device = bob.cert.device_id().get().to_be_bytes();
    let salt = [eph_pub.as_bytes().as_slice(), recipient_key.as_bytes()].concat();
    let info = [SEAL_BATCH_INFO, bob.cert.identity().as_bytes(), &device].concat();
    let root = hkdf_sha256::<32>(Some(&salt), &[&shared], &[&info]);
    let mut payloads = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let seed: [u8; 16] = tape.array(BATCH_SEED[i]);
        let payload_info = [SEAL_PAYLOAD_INFO, &seed].concat();
        let okm = hkdf_sha256_expand::<44>(&root, &[&payload_info]);
        let aad = [
            &[SEAL_VERSION][..],
            bob.cert.identity().as_bytes(),
            &device,
            eph_pub.as_bytes(),
            &seed,
        ]
        .concat();
        let inner = sealed_inner(&alice, message);
        let expected = [
            &[SEAL_VERSION][..],
            eph_pub.as_bytes(),
            &seed,
            &aead::seal(
                &okm[..32].try_into().unwrap(),
                &okm[32..].try_into().unwrap(),
                &aad,
                &inner,
            ),
        ]
        .concat();
        assert_eq!(h(&expected), h(&sealed[i]), "reference seal of payload {i}");
        payloads.push(BatchPayloadVector {
            content: h(contents[i].to_bytes()),
            session_message: h(message.to_bytes()),
            seed: h(seed),
            hkdf_info: h(&payload_info),
            aead_key: h(&okm[..32]),
            aead_nonce: h(&okm[32..]),
            aad: h(&aad),
            inner: h(&inner),
            sealed: h(&sealed[i]),
        });
    }

    // The recipient opens the committed payloads with one opener and decrypts them in order.
    let mut opener = Opener::new();
    let mut bob_record = SessionRecord::new();
    for (i, payload) in payloads.iter().enumerate() {
        let wire = file.map_or_else(|| unhex(&payload.sealed), |f| unhex(&f.payloads[i].sealed));
        let opened = opener.open(&bob, &wire).unwrap();
        assert_eq!(opened.sender_identity, alice.cert.identity());
        assert_eq!(opened.sender_device, alice.cert.device_id());
        let plaintext = match &opened.message {
            SessionMessage::Prekey { header, message } => {
                bob_record
                    .decrypt_prekey(
                        &bob,
                        (opened.sender_identity, opened.sender_device),
                        header,
                        message,
                        Some(secrets.keys()),
                        &mut ReplayGuard::new(),
                    )
                    .unwrap()
                    .plaintext
            }
            SessionMessage::Normal(message) => bob_record.decrypt(message).unwrap(),
        };
        assert_eq!(Content::from_bytes(&plaintext).unwrap(), contents[i]);
    }
    assert_eq!(opener.cached(), 1, "one agreement for the whole batch");

    SealedBatchVectors {
        description: SEALED_BATCH_DESCRIPTION.into(),
        sender: DeviceVector::new(&alice),
        recipient: DeviceVector::new(&bob),
        bundle: h(bundle.to_bytes()),
        ephemeral_key: h(eph_pub.as_bytes()),
        dh: h(shared),
        hkdf_salt: h(&salt),
        hkdf_info: h(&info),
        root: h(root.as_slice()),
        payloads,
        draws: tape.finish(),
    }
}

const SEALED_BATCH_DESCRIPTION: &str = "Two sealed envelopes of version 2 (SPEC.md section 8.2) \
    under one key agreement: A's first two messages to B in a PQXDH session set up as in \
    envelope.json. `draws` are every random input in the order the code draws them (SPEC.md \
    section 12.2): the batch's ephemeral key, then one seed per payload. \
    dh = DH(ephemeral, recipient device key); root = HKDF-SHA256(salt = hkdf_salt, ikm = dh, \
    info = hkdf_info, L = 32); per payload key || nonce = HKDF-SHA256-Expand(prk = root, \
    info = payload hkdf_info (the payload info string || seed), L = 44), `inner` is the AEAD \
    plaintext and `sealed` the payload the relay carries. The recipient opens both with one \
    agreement and decrypts them to the `content` encodings.";

#[test]
fn sealed_batch_vectors() {
    let file = committed(
        "sealed_batch.json",
        || sealed_batch_scenario(Tape::fresh(0xe2), None),
        |file| sealed_batch_scenario(Tape::replay(&file.draws), Some(file)),
    );
    file.sender.check_against_draws(&file.draws, "A");
    file.recipient.check_against_draws(&file.draws, "B");
    assert_eq!(file.payloads.len(), 2);
    assert_eq!(
        file.payloads[0].sealed[2..66],
        file.payloads[1].sealed[2..66]
    );
    assert_ne!(file.payloads[0].seed, file.payloads[1].seed);
    for (payload, content) in file.payloads.iter().zip(batch_contents()) {
        assert_eq!(
            Content::from_bytes(&unhex(&payload.content)).unwrap(),
            content
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The tape itself

#[test]
fn tape_refuses_a_different_draw_pattern() {
    let tape = Tape::fresh(1);
    let file = bundle_scenario(tape);
    let outcome = |draws: Vec<Draw>| {
        std::panic::catch_unwind(move || bundle_scenario(Tape::replay(&draws))).is_ok()
    };
    assert!(outcome(file.draws.clone()));
    // One draw fewer, one more, a shorter one, and two swapped: each is caught.
    let mut fewer = file.draws.clone();
    fewer.pop();
    assert!(!outcome(fewer));
    let mut more = file.draws.clone();
    more.push(file.draws[0].clone());
    assert!(!outcome(more));
    let mut shorter = file.draws.clone();
    shorter[4].hex.truncate(64);
    assert!(!outcome(shorter));
    let mut swapped = file.draws.clone();
    swapped.swap(0, 1);
    assert!(!outcome(swapped));
}
