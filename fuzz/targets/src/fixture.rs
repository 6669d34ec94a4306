//! The fixed setup the keyed targets share: two devices, Alice's and Bob's, made from fixed
//! seeds, Bob's prekeys, and a session between them in which both have sent and received, so
//! that a message can be opened or decrypted for real.

use std::sync::OnceLock;

use protocol::codec::Encode;
use protocol::envelope::{Content, ContentKind};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::pickle::PickleKey;
use protocol::pqxdh::{ReplayGuard, ResponderKeys};
use protocol::prekeys::{
    KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, PrekeyId, SignedPrekeySecret,
};
use protocol::session::{SessionMessage, SessionRecord};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Bob's signed prekey id.
pub const SIGNED_PREKEY_ID: PrekeyId = 1;
/// Bob's one-time KEM prekey id.
pub const KEM_PREKEY_ID: PrekeyId = 2;
/// Bob's one-time X25519 prekey id.
pub const ONE_TIME_PREKEY_ID: PrekeyId = 3;
/// Bob's last-resort KEM prekey id.
pub const LAST_RESORT_KEM_ID: PrekeyId = 4;

/// The key every pickle target seals and opens with.
pub const PICKLE_KEY: [u8; 32] = [0x5a; 32];

/// A generator seeded with `seed`: every random draw of the targets comes from one of these.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// The shared setup.
#[derive(Debug)]
pub struct Fixture {
    /// Alice's device (the initiator).
    pub alice: LocalDevice,
    /// Bob's device (the responder, and the recipient of every envelope).
    pub bob: LocalDevice,
    /// Bob's signed prekey.
    pub signed_prekey: SignedPrekeySecret,
    /// Bob's one-time KEM prekey.
    pub kem_prekey: KemPrekeySecret,
    /// Bob's last-resort KEM prekey.
    pub last_resort_kem: KemPrekeySecret,
    /// Bob's one-time X25519 prekey.
    pub one_time_prekey: OneTimePrekeySecret,
    /// Bob's published bundle (with the one-time prekeys).
    pub bundle: PrekeyBundle,
    /// Alice's session record after: she sent one message, Bob answered, she read it.
    pub alice_record: SessionRecord,
    /// Bob's session record at the same point.
    pub bob_record: SessionRecord,
    /// Bob's replay guard at the same point.
    pub bob_replay: ReplayGuard,
    /// Messages of the setup, in order, for the seed corpora: Alice's first (a prekey
    /// message), Bob's answer, Alice's next one (not yet delivered to Bob), and a second
    /// session's first message to Bob made with the last-resort KEM prekey.
    pub messages: Vec<SessionMessage>,
}

impl Fixture {
    /// Bob's prekey secrets named by a prekey message, as chatd looks them up.
    pub fn responder_keys(
        &self,
        signed: PrekeyId,
        one_time: Option<PrekeyId>,
        kem: PrekeyId,
    ) -> Option<ResponderKeys<'_>> {
        let signed_prekey = (signed == SIGNED_PREKEY_ID).then_some(&self.signed_prekey)?;
        let one_time_prekey = match one_time {
            None => None,
            Some(ONE_TIME_PREKEY_ID) => Some(&self.one_time_prekey),
            Some(_) => return None,
        };
        let kem_prekey = match kem {
            KEM_PREKEY_ID => &self.kem_prekey,
            LAST_RESORT_KEM_ID => &self.last_resort_kem,
            _ => return None,
        };
        Some(ResponderKeys {
            signed_prekey,
            one_time_prekey,
            kem_prekey,
        })
    }

    /// The pickle key.
    pub fn pickle_key(&self) -> PickleKey {
        PickleKey::new(PICKLE_KEY)
    }
}

/// A text message's content, encoded.
pub fn text(body: &[u8]) -> Vec<u8> {
    Content {
        message_id: [7; 16],
        timestamp_ms: 1_700_000_000_000,
        kind: ContentKind::Text,
        body: body.to_vec(),
    }
    .to_bytes()
}

fn device(seed: u8, id: u32) -> LocalDevice {
    let identity = IdentityKeyPair::from_seed(&[seed; 32]);
    let device_id = DeviceId::new(id).unwrap_or_else(|e| panic!("device id {id}: {e}"));
    let keys = DeviceKeyPair::from_seeds(device_id, &[seed ^ 0x10; 32], &[seed ^ 0x20; 32]);
    LocalDevice::new(&identity, keys, 1_700_000_000)
}

/// The setup, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

// The setup runs on fixed inputs: a failure here is a bug in the setup, found on the first run.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn build() -> Fixture {
    let mut rng = rng(42);
    let alice = device(1, 1);
    let bob = device(2, 2);
    let signing = bob.keys.signing();
    let (signed_prekey, spk) =
        SignedPrekeySecret::generate(SIGNED_PREKEY_ID, 1_700_000_000, signing, &mut rng);
    let (kem_prekey, kem) = KemPrekeySecret::generate(KEM_PREKEY_ID, false, signing, &mut rng);
    let (last_resort_kem, last_resort) =
        KemPrekeySecret::generate(LAST_RESORT_KEM_ID, true, signing, &mut rng);
    let (one_time_prekey, otk) = OneTimePrekeySecret::generate(ONE_TIME_PREKEY_ID, &mut rng);
    let bundle = PrekeyBundle {
        device: bob.cert.certificate().clone(),
        signed_prekey: spk.clone(),
        kem_prekey: kem,
        one_time_prekey: Some(otk),
    };
    let mut fixture = Fixture {
        alice,
        bob,
        signed_prekey,
        kem_prekey,
        last_resort_kem,
        one_time_prekey,
        bundle: bundle.clone(),
        alice_record: SessionRecord::new(),
        bob_record: SessionRecord::new(),
        bob_replay: ReplayGuard::new(),
        messages: Vec::new(),
    };
    let alice_peer = (
        fixture.alice.cert.identity(),
        fixture.alice.cert.device_id(),
    );

    // Alice -> Bob, a prekey message.
    let verified = bundle.verify(Some(&fixture.bob.cert.identity())).unwrap();
    let mut alice_record = SessionRecord::new();
    alice_record
        .initiate(&fixture.alice, &verified, &mut rng)
        .unwrap();
    let first = alice_record.encrypt(&text(b"hello Bob"), &mut rng).unwrap();
    let SessionMessage::Prekey { header, message } = &first else {
        panic!("the first message carries the initial header");
    };
    let keys = fixture
        .responder_keys(
            header.signed_prekey_id,
            header.one_time_prekey_id,
            header.kem_prekey_id,
        )
        .unwrap();
    let mut bob_record = SessionRecord::new();
    let mut replay = ReplayGuard::new();
    bob_record
        .decrypt_prekey(
            &fixture.bob,
            alice_peer,
            header,
            message,
            Some(keys),
            &mut replay,
        )
        .unwrap();

    // Bob -> Alice, then Alice -> Bob again (kept undelivered).
    let answer = bob_record.encrypt(&text(b"hello Alice"), &mut rng).unwrap();
    let SessionMessage::Normal(reply) = &answer else {
        panic!("an answer is a normal message");
    };
    alice_record.decrypt(reply).unwrap();
    let next = alice_record
        .encrypt(&text(b"how are you"), &mut rng)
        .unwrap();

    // A second session with the last-resort KEM prekey and no one-time prekey.
    let mut bundle2 = bundle;
    bundle2.one_time_prekey = None;
    bundle2.kem_prekey = last_resort;
    let verified2 = bundle2.verify(None).unwrap();
    let mut restarted = SessionRecord::new();
    restarted
        .initiate(&fixture.alice, &verified2, &mut rng)
        .unwrap();
    let again = restarted
        .encrypt(&text(b"starting over"), &mut rng)
        .unwrap();

    fixture.alice_record = alice_record;
    fixture.bob_record = bob_record;
    fixture.bob_replay = replay;
    fixture.messages = vec![first, answer, next, again];
    fixture
}
