//! Criterion benchmarks for the protocol core, side by side with vodozemac's Olm.
//!
//! Run with `cargo bench -p protocol`; `protocol/BENCHMARKS.md` explains the jobs, the targets
//! and the figures measured. Every job uses only the public API of `protocol`.
//!
//! Three jobs, each run for chatd and for vodozemac's Olm (`SessionConfig::version_1()`):
//!
//! - `a_same_chain`: encrypt and decrypt one 256-byte message within one sending chain. chatd
//!   does no public-key operation here: chain KDF, message key expansion and AEAD on each side
//!   (12 SHA-256 compressions and one AES-256-GCM key schedule per side). vodozemac derives its
//!   ratchet public key from the secret again for every message it encrypts
//!   (`ActiveDoubleRatchet::ratchet_key`), one fixed-base scalar multiplication per message;
//!   chatd caches it in `X25519Secret`.
//! - `b_dh_step`: the direction alternates, so every message is the first of a new sending
//!   chain and triggers a DH ratchet step. In `ratchet/mod.rs` the sending half runs lazily in
//!   `encrypt` (`start_sending_chain`: one X25519 key generation and one DH, then the root KDF)
//!   and the receiving half in `decrypt` (one DH with the header's key, then the root KDF).
//!   Per message: **1 X25519 keygen + 2 X25519 DH** (Olm needs the same: `RatchetKey::new` and
//!   one DH when the sender activates, one DH when the receiver advances; plus, as above, a
//!   fixed-base multiplication to rederive the public key for the header).
//! - `c_setup`: full session setup, both sides plus the first message, through
//!   `SessionRecord` with a one-time prekey (Olm always uses one). Prekeys, accounts and
//!   one-time keys exist beforehand on both sides, as they would have been published. The
//!   primitive operations, derived from `prekeys`, `pqxdh` and `ratchet`:
//!   - `PrekeyBundle::verify`: 3 Ed25519 verifies (device certificate, 138-byte message; signed
//!     prekey, 68 bytes; KEM prekey, 1594 bytes).
//!   - `pqxdh::initiate`: 1 X25519 keygen (`EK_A`), 4 DH (`DH1`..`DH4`), 1 ML-KEM-1024
//!     encapsulation, then `RatchetState::initiator`: 1 keygen + 1 DH.
//!   - first `encrypt`: none (the initiator's sending chain already exists).
//!   - `pqxdh::respond`: 1 Ed25519 verify (initiator certificate, 138 bytes), 4 DH, 1 ML-KEM-1024
//!     decapsulation.
//!   - first `decrypt`: the receiving half of a DH step, 1 DH.
//!
//!   In all: **4 Ed25519 verifies + 2 X25519 keygens + 10 X25519 DH + 1 encapsulation + 1
//!   decapsulation**. Olm has no signatures and no KEM, so `c_setup/chatd_preverified` also
//!   measures setup with the bundle verified beforehand (as a client that cached it would):
//!   1 Ed25519 verify + 2 keygens + 10 DH + encapsulation + decapsulation. Olm's own setup is
//!   2 keygens (base key, first ratchet key) + 6 DH (3DH on each side).
//!
//! The baselines the targets compare against are the sums of those primitive operations, run
//! through `protocol::crypto` as one job each and placed in the job's own group
//! (`b_dh_step/primitives_sum`, `c_setup/primitives_sum`, `c_setup/primitives_sum_preverified`)
//! so that job and baseline are measured in the same run, seconds apart. The `primitives` group
//! measures each primitive on its own, and `envelopes` the sealed-sender layer: an envelope
//! sealed and opened alone (one key agreement each) and as a further payload of a batch.
//!
//! On a shared machine two medians taken seconds apart can differ by tens of percent, so after a
//! full, unfiltered run the harness also prints each target ratio measured *interleaved*: job
//! and baseline alternate in batches of a few milliseconds and the median per-round ratio is
//! reported (`interleaved_ratio`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use protocol::crypto::ed25519::{Ed25519PublicKey, Ed25519Secret, Signature};
use protocol::crypto::kem::{KEM_CIPHERTEXT_LEN, KemSecret};
use protocol::crypto::x25519::{X25519PublicKey, X25519Secret};
use protocol::envelope::{self, Opener, Sealer};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::pqxdh::{self, ReplayGuard, ResponderKeys};
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, PrekeyBundle, SignedPrekeySecret};
use protocol::ratchet::RatchetState;
use protocol::session::{SessionMessage, SessionRecord};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};

/// The message every job sends: 256 bytes (padded to 272 by chatd, PKCS#7-padded to 272 by Olm).
const PLAINTEXT: [u8; 256] = [0x42; 256];

/// Lengths of the messages the Ed25519 verifies in `c_setup` cover: a device certificate
/// (context 28 + body 110), a signed prekey (23 + 45) and a KEM prekey (20 + 1574).
const CERT_SIGNED_LEN: usize = 138;
const SPK_SIGNED_LEN: usize = 68;
const KEM_SIGNED_LEN: usize = 1594;

/// Olm version 1 (8-byte truncated MAC) is what Matrix clients use; version 2 is behind an
/// experimental feature and computes the same full HMAC-SHA256, so it costs the same.
fn olm_config() -> SessionConfig {
    SessionConfig::version_1()
}

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn device(rng: &mut ChaCha20Rng, id: u32) -> LocalDevice {
    let identity = IdentityKeyPair::generate(rng);
    let id = DeviceId::new(id).expect("device ids used here are non-zero");
    LocalDevice::new(&identity, DeviceKeyPair::generate(id, rng), 0)
}

/// A responder device with the prekeys it published, and the bundle the relay hands out.
struct Responder {
    local: LocalDevice,
    spk: SignedPrekeySecret,
    kem: KemPrekeySecret,
    otk: OneTimePrekeySecret,
    bundle: PrekeyBundle,
}

impl Responder {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let local = device(rng, 2);
        let (spk, spk_pub) = SignedPrekeySecret::generate(1, 0, local.keys.signing(), rng);
        let (kem, kem_pub) = KemPrekeySecret::generate(2, false, local.keys.signing(), rng);
        let (otk, otk_pub) = OneTimePrekeySecret::generate(3, rng);
        let bundle = PrekeyBundle {
            device: local.cert.certificate().clone(),
            signed_prekey: spk_pub,
            kem_prekey: kem_pub,
            one_time_prekey: Some(otk_pub),
        };
        Self {
            local,
            spk,
            kem,
            otk,
            bundle,
        }
    }

    fn keys(&self) -> ResponderKeys<'_> {
        ResponderKeys {
            signed_prekey: &self.spk,
            one_time_prekey: Some(&self.otk),
            kem_prekey: &self.kem,
        }
    }
}

/// Two chatd ratchets after PQXDH and one message each way, so both have sent and received.
fn chatd_pair(rng: &mut ChaCha20Rng) -> (RatchetState, RatchetState) {
    let alice = device(rng, 1);
    let bob = Responder::new(rng);
    let bundle = bob.bundle.verify(None).expect("bundle verifies");
    let init = pqxdh::initiate(&alice, &bundle, rng).expect("initiate");
    let resp =
        pqxdh::respond(&bob.local, &init.header, bob.keys(), &ReplayGuard::new()).expect("respond");
    let (mut a, mut b) = (init.state, resp.state);
    let m = a.encrypt(&PLAINTEXT, rng).expect("encrypt");
    assert_eq!(b.decrypt(&m).expect("decrypt"), PLAINTEXT);
    let m = b.encrypt(&PLAINTEXT, rng).expect("encrypt");
    assert_eq!(a.decrypt(&m).expect("decrypt"), PLAINTEXT);
    (a, b)
}

/// Two Olm sessions after the pre-key message and one reply, so both have sent and received.
fn olm_pair() -> (Session, Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob
        .one_time_keys()
        .values()
        .next()
        .expect("one one-time key");
    bob.mark_keys_as_published();
    let mut a = alice
        .create_outbound_session(olm_config(), bob.curve25519_key(), otk)
        .expect("outbound session");
    let OlmMessage::PreKey(m) = a.encrypt(PLAINTEXT).expect("encrypt") else {
        unreachable!("the first Olm message is a pre-key message")
    };
    let inbound = bob
        .create_inbound_session(olm_config(), alice.curve25519_key(), &m)
        .expect("inbound session");
    assert_eq!(inbound.plaintext, PLAINTEXT);
    let mut b = inbound.session;
    let reply = b.encrypt(PLAINTEXT).expect("encrypt");
    assert_eq!(a.decrypt(&reply).expect("decrypt"), PLAINTEXT);
    (a, b)
}

/// Job (a) for chatd: one encrypt+decrypt per call, always within Alice's current chain.
fn chatd_same_chain(seed: u8) -> impl FnMut() -> Vec<u8> {
    let mut r = rng(seed);
    let (mut alice, mut bob) = chatd_pair(&mut r);
    let mut job = move || {
        let m = alice
            .encrypt(black_box(&PLAINTEXT), &mut r)
            .expect("encrypt");
        bob.decrypt(black_box(&m)).expect("decrypt")
    };
    // This first message starts Alice's second sending chain (a DH step); later ones do not.
    assert_eq!(job(), PLAINTEXT);
    assert_eq!(job(), PLAINTEXT);
    job
}

/// Job (a) for Olm.
fn olm_same_chain() -> impl FnMut() -> Vec<u8> {
    let (mut alice, mut bob) = olm_pair();
    let mut job = move || {
        let m = alice.encrypt(black_box(&PLAINTEXT)).expect("encrypt");
        bob.decrypt(black_box(&m)).expect("decrypt")
    };
    assert_eq!(job(), PLAINTEXT);
    assert_eq!(job(), PLAINTEXT);
    job
}

/// Job (b) for chatd: the direction alternates, so every message starts a new sending chain.
fn chatd_dh_step(seed: u8) -> impl FnMut() -> Vec<u8> {
    let mut r = rng(seed);
    let (alice, bob) = chatd_pair(&mut r);
    let mut states = [alice, bob];
    let mut turn = 0;
    let mut job = move || {
        let [a, b] = &mut states;
        let (sender, receiver) = if turn == 0 { (a, b) } else { (b, a) };
        turn ^= 1;
        let m = sender
            .encrypt(black_box(&PLAINTEXT), &mut r)
            .expect("encrypt");
        receiver.decrypt(black_box(&m)).expect("decrypt")
    };
    assert_eq!(job(), PLAINTEXT);
    assert_eq!(job(), PLAINTEXT);
    job
}

/// Job (b) for Olm.
fn olm_dh_step() -> impl FnMut() -> Vec<u8> {
    let (alice, bob) = olm_pair();
    let mut sessions = [alice, bob];
    let mut turn = 0;
    let mut job = move || {
        let [a, b] = &mut sessions;
        let (sender, receiver) = if turn == 0 { (a, b) } else { (b, a) };
        turn ^= 1;
        let m = sender.encrypt(black_box(&PLAINTEXT)).expect("encrypt");
        receiver.decrypt(black_box(&m)).expect("decrypt")
    };
    assert_eq!(job(), PLAINTEXT);
    assert_eq!(job(), PLAINTEXT);
    job
}

/// Job (c) for chatd: bundle verification (unless `preverified`), `SessionRecord::initiate`,
/// the first `encrypt`, and `SessionRecord::decrypt_prekey` (PQXDH responder plus the first
/// decryption). Returns both records and the plaintext.
fn chatd_setup(
    seed: u8,
    preverified: bool,
) -> impl FnMut() -> (SessionRecord, SessionRecord, Vec<u8>) {
    let mut r = rng(seed);
    let alice = device(&mut r, 1);
    let bob = Responder::new(&mut r);
    let alice_id = (alice.cert.identity(), alice.cert.device_id());
    let verified = preverified.then(|| bob.bundle.verify(None).expect("bundle verifies"));
    // With a one-time prekey nothing is recorded in the guard, so it stays empty.
    let mut replay = ReplayGuard::new();
    let mut job = move || {
        let fresh;
        let bundle = match &verified {
            Some(bundle) => bundle,
            None => {
                fresh = bob.bundle.verify(None).expect("bundle verifies");
                &fresh
            }
        };
        let mut sender = SessionRecord::new();
        sender.initiate(&alice, bundle, &mut r).expect("initiate");
        let SessionMessage::Prekey { header, message } = sender
            .encrypt(black_box(&PLAINTEXT), &mut r)
            .expect("encrypt")
        else {
            unreachable!("the first message carries the initial header")
        };
        let mut receiver = SessionRecord::new();
        let decrypted = receiver
            .decrypt_prekey(
                &bob.local,
                alice_id,
                &header,
                &message,
                Some(bob.keys()),
                &mut replay,
            )
            .expect("decrypt_prekey");
        (sender, receiver, decrypted.plaintext)
    };
    assert_eq!(job().2, PLAINTEXT);
    job
}

/// (a) One 256-byte message encrypted and decrypted within one sending chain.
fn same_chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("a_same_chain");
    let mut job = chatd_same_chain(1);
    group.bench_function("chatd", |b| b.iter(&mut job));
    let mut job = olm_same_chain();
    group.bench_function("vodozemac", |b| b.iter(&mut job));
    group.finish();
}

/// (b) Alternating directions: every message starts a new sending chain, so the sender runs
/// the sending half of a DH ratchet step and the receiver the receiving half.
fn dh_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("b_dh_step");
    let mut job = chatd_dh_step(2);
    group.bench_function("chatd", |b| b.iter(&mut job));
    let mut job = olm_dh_step();
    group.bench_function("vodozemac", |b| b.iter(&mut job));
    // The target's baseline, measured next to the job.
    let mut job = Primitives::sum_b_job(5);
    group.bench_function("primitives_sum", |b| b.iter(&mut job));
    group.finish();
}

/// (c) Full session setup: both sides plus the first message.
fn setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("c_setup");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));

    let mut job = chatd_setup(3, false);
    group.bench_function("chatd", |b| b.iter(&mut job));
    let mut job = chatd_setup(3, true);
    group.bench_function("chatd_preverified", |b| b.iter(&mut job));

    let alice = Account::new();
    let mut bob = Account::new();
    let (alice_key, bob_key) = (alice.curve25519_key(), bob.curve25519_key());
    // Each inbound session consumes a one-time key, so a fresh one is made (untimed) per run.
    let fresh_otk = |bob: &mut Account| -> Curve25519PublicKey {
        bob.generate_one_time_keys(1);
        let otk = *bob
            .one_time_keys()
            .values()
            .next()
            .expect("one one-time key");
        bob.mark_keys_as_published();
        otk
    };
    let olm_setup = |bob: &mut Account, otk: Curve25519PublicKey| {
        let mut outbound = alice
            .create_outbound_session(olm_config(), bob_key, otk)
            .expect("outbound session");
        let OlmMessage::PreKey(m) = outbound.encrypt(black_box(&PLAINTEXT)).expect("encrypt")
        else {
            unreachable!("the first Olm message is a pre-key message")
        };
        let inbound = bob
            .create_inbound_session(olm_config(), alice_key, &m)
            .expect("inbound session");
        (outbound, inbound)
    };
    let otk = fresh_otk(&mut bob);
    assert_eq!(olm_setup(&mut bob, otk).1.plaintext, PLAINTEXT);
    group.bench_function("vodozemac", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let otk = fresh_otk(&mut bob);
                let start = Instant::now();
                black_box(olm_setup(&mut bob, otk));
                total += start.elapsed();
            }
            total
        });
    });

    // The target's baselines, measured next to the jobs.
    let mut job = Primitives::sum_c_job(6, false);
    group.bench_function("primitives_sum", |b| b.iter(&mut job));
    let mut job = Primitives::sum_c_job(6, true);
    group.bench_function("primitives_sum_preverified", |b| b.iter(&mut job));

    group.finish();
}

/// Fixed keys and signed messages for the primitive baselines.
struct Primitives {
    x25519: [X25519Secret; 2],
    peers: [X25519PublicKey; 2],
    signer: Ed25519Secret,
    verifier: Ed25519PublicKey,
    /// (message, signature) pairs of the three lengths `c_setup` verifies.
    cert: (Vec<u8>, Signature),
    spk: (Vec<u8>, Signature),
    kem_prekey: (Vec<u8>, Signature),
    kem: KemSecret,
    ciphertext: Box<[u8; KEM_CIPHERTEXT_LEN]>,
}

impl Primitives {
    fn new(r: &mut ChaCha20Rng) -> Self {
        let x25519 = [X25519Secret::generate(r), X25519Secret::generate(r)];
        let peers = [
            X25519Secret::generate(r).public_key(),
            X25519Secret::generate(r).public_key(),
        ];
        let signer = Ed25519Secret::generate(r);
        let signed = |len: usize| {
            let message = vec![0x5a; len];
            let signature = signer.sign(&message);
            (message, signature)
        };
        let (cert, spk, kem_prekey) = (
            signed(CERT_SIGNED_LEN),
            signed(SPK_SIGNED_LEN),
            signed(KEM_SIGNED_LEN),
        );
        let kem = KemSecret::generate(r);
        let (ciphertext, _) = kem.public_key().encapsulate(r);
        Self {
            verifier: signer.public_key(),
            x25519,
            peers,
            signer,
            cert,
            spk,
            kem_prekey,
            kem,
            ciphertext,
        }
    }

    fn keygen(&self, r: &mut ChaCha20Rng) -> X25519Secret {
        X25519Secret::generate(r)
    }

    fn dh(&self, i: usize) -> [u8; 32] {
        let shared = self.x25519[i % 2]
            .diffie_hellman(black_box(&self.peers[i / 2 % 2]))
            .expect("contributory");
        *shared.as_bytes()
    }

    fn verify(&self, (message, signature): &(Vec<u8>, Signature)) {
        self.verifier
            .verify(black_box(message), black_box(signature))
            .expect("signature verifies");
    }

    fn encapsulate(&self, r: &mut ChaCha20Rng) -> [u8; 32] {
        let (ct, ss) = self.kem.public_key().encapsulate(r);
        black_box(ct);
        *ss
    }

    fn decapsulate(&self) -> [u8; 32] {
        *self.kem.decapsulate(black_box(&self.ciphertext))
    }

    /// The X25519 work of one DH ratchet step (job b): 1 keygen + 2 DH.
    fn sum_b(&self, r: &mut ChaCha20Rng) {
        black_box(self.keygen(r));
        black_box(self.dh(0));
        black_box(self.dh(1));
    }

    /// The public-key work of `c_setup/chatd_preverified`: 1 verify, 2 keygens, 10 DH,
    /// encapsulation, decapsulation.
    fn sum_c_preverified(&self, r: &mut ChaCha20Rng) {
        self.verify(&self.cert);
        black_box(self.keygen(r));
        black_box(self.keygen(r));
        for i in 0..10 {
            black_box(self.dh(i));
        }
        black_box(self.encapsulate(r));
        black_box(self.decapsulate());
    }

    /// The public-key work of `c_setup/chatd`: the above plus the 3 bundle verifies.
    fn sum_c(&self, r: &mut ChaCha20Rng) {
        self.verify(&self.cert);
        self.verify(&self.spk);
        self.verify(&self.kem_prekey);
        self.sum_c_preverified(r);
    }

    /// The baseline of job (b) as a closure.
    fn sum_b_job(seed: u8) -> impl FnMut() {
        let mut r = rng(seed);
        let p = Self::new(&mut r);
        move || p.sum_b(&mut r)
    }

    /// The baseline of job (c), or of its preverified variant, as a closure.
    fn sum_c_job(seed: u8, preverified: bool) -> impl FnMut() {
        let mut r = rng(seed);
        let p = Self::new(&mut r);
        move || {
            if preverified {
                p.sum_c_preverified(&mut r);
            } else {
                p.sum_c(&mut r);
            }
        }
    }
}

/// Each primitive on its own, for reference.
fn primitives(c: &mut Criterion) {
    let mut group = c.benchmark_group("primitives");
    let mut r = rng(4);
    let p = Primitives::new(&mut r);

    group.bench_function("x25519_keygen", |b| b.iter(|| p.keygen(&mut r)));
    group.bench_function("x25519_dh", |b| b.iter(|| p.dh(0)));
    group.bench_function("ed25519_sign_138B", |b| {
        b.iter(|| p.signer.sign(black_box(&p.cert.0)))
    });
    group.bench_function("ed25519_verify_68B", |b| b.iter(|| p.verify(&p.spk)));
    group.bench_function("ed25519_verify_138B", |b| b.iter(|| p.verify(&p.cert)));
    group.bench_function("ed25519_verify_1594B", |b| {
        b.iter(|| p.verify(&p.kem_prekey))
    });
    group.bench_function("mlkem1024_keygen", |b| {
        b.iter(|| KemSecret::generate(&mut r))
    });
    group.bench_function("mlkem1024_encaps", |b| b.iter(|| p.encapsulate(&mut r)));
    group.bench_function("mlkem1024_decaps", |b| b.iter(|| p.decapsulate()));

    group.finish();
}

/// Sealing and opening one envelope carrying a 256-byte ratchet message: alone (its own key
/// agreement, as every envelope was in version 1's time) and as a further payload of a batch
/// (SPEC.md 8.2).
fn envelopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelopes");
    let mut r = rng(5);
    let alice = device(&mut r, 1);
    let bob = Responder::new(&mut r);
    let (mut state, _) = chatd_pair(&mut r);
    let message = SessionMessage::Normal(state.encrypt(&PLAINTEXT, &mut r).expect("encrypt"));
    let recipient = bob.local.cert.clone();
    let sealer = Sealer::new(&recipient, &mut r).expect("sealer");
    let in_batch = sealer.seal(&alice, &message, &mut r);
    let mut opener = Opener::new();
    opener.open(&bob.local, &in_batch).expect("opens");

    group.bench_function("seal_alone", |b| {
        b.iter(|| envelope::seal(&alice, &recipient, black_box(&message), &mut r))
    });
    group.bench_function("seal_in_batch", |b| {
        b.iter(|| sealer.seal(&alice, black_box(&message), &mut r))
    });
    group.bench_function("open_alone", |b| {
        b.iter(|| envelope::open(&bob.local, black_box(&in_batch)).expect("opens"))
    });
    group.bench_function("open_in_batch", |b| {
        b.iter(|| {
            opener
                .open(&bob.local, black_box(&in_batch))
                .expect("opens")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = protocol;
    config = config();
    targets = same_chain, dh_step, setup, primitives, envelopes
}

/// How long each interleaved comparison runs.
const INTERLEAVED_TIME: Duration = Duration::from_secs(2);

/// Seconds taken by `batch` calls of `f`.
fn time_batch<T>(batch: u32, f: &mut impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..batch {
        black_box(f());
    }
    start.elapsed().as_secs_f64()
}

/// Times `job` and `baseline` in alternating batches of `batch` calls, so that both run under
/// the same machine load, and prints the median and quartiles of the per-round time ratios.
///
/// On a machine shared with other work, two criterion medians taken seconds apart can differ
/// by tens of percent for reasons unrelated to the code; a ratio taken round by round, the
/// two batches a millisecond apart, cancels most of that.
fn interleaved_ratio<T, U>(
    name: &str,
    batch: u32,
    mut job: impl FnMut() -> T,
    mut baseline: impl FnMut() -> U,
) {
    time_batch(batch, &mut job);
    time_batch(batch, &mut baseline);
    let mut ratios = Vec::new();
    let start = Instant::now();
    while ratios.len() < 20 || start.elapsed() < INTERLEAVED_TIME {
        // Alternate which of the two goes first, so neither always follows the other.
        let (job_time, baseline_time) = if ratios.len() % 2 == 0 {
            let job_time = time_batch(batch, &mut job);
            (job_time, time_batch(batch, &mut baseline))
        } else {
            let baseline_time = time_batch(batch, &mut baseline);
            (time_batch(batch, &mut job), baseline_time)
        };
        ratios.push(job_time / baseline_time);
    }
    ratios.sort_by(f64::total_cmp);
    let quartile = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    println!(
        "{name:<56} median {:.3}  quartiles {:.3}..{:.3}  ({} rounds of {batch})",
        quartile(2),
        quartile(1),
        quartile(3),
        ratios.len(),
    );
}

/// The ratios the targets are about, each measured interleaved with its baseline.
fn interleaved() {
    println!("\nInterleaved ratios (job time / baseline time, batches alternated):");
    interleaved_ratio(
        "a_same_chain: chatd / vodozemac",
        100,
        chatd_same_chain(11),
        olm_same_chain(),
    );
    interleaved_ratio(
        "b_dh_step: chatd / primitives_sum",
        10,
        chatd_dh_step(12),
        Primitives::sum_b_job(15),
    );
    interleaved_ratio(
        "b_dh_step: chatd / vodozemac",
        10,
        chatd_dh_step(13),
        olm_dh_step(),
    );
    interleaved_ratio(
        "c_setup: chatd / primitives_sum",
        2,
        chatd_setup(14, false),
        Primitives::sum_c_job(16, false),
    );
    interleaved_ratio(
        "c_setup: chatd_preverified / primitives_sum_preverified",
        2,
        chatd_setup(14, true),
        Primitives::sum_c_job(16, true),
    );
}

fn main() {
    protocol();
    Criterion::default().configure_from_args().final_summary();
    // Only in a full run: `cargo bench` passes exactly `--bench`, and anything more (a filter,
    // `--list`, `--profile-time`) asks for something narrower.
    if std::env::args().skip(1).eq(["--bench"]) {
        interleaved();
    }
}
