//! Account lifecycle (create, unlock, lock) and the device's prekeys: generation, storage,
//! publication on every connect, refill below a threshold, and signed prekey rotation with a
//! grace period.

use std::time::Duration;

use api::ErrorCode;
use api::events::EventKind;
use api::types::{AccountInfo, ConnectionState, LockState};
use protocol::codec::{Decode, Encode};
use protocol::frames::{ClientFrame, ServerFrame};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair};
use protocol::prekeys::{
    KemPrekey, KemPrekeySecret, OneTimePrekeySecret, SignedPrekey, SignedPrekeySecret,
};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::records::{AccountRecord, tables};
use super::unlocked::Unlocked;
use super::{CoreState, Lock, Txn};
use crate::error::{ApiError, ApiResult};
use crate::relay_link::{LinkConfig, RelayLink};
use crate::store::{Batch, Kv, Store, StoreError, Vault};

/// One-time X25519 prekeys kept on the relay.
pub const ONE_TIME_TARGET: u32 = 100;
/// Refill when fewer than this many are left.
pub const ONE_TIME_LOW: u32 = 40;
/// One-time KEM prekeys kept on the relay.
pub const KEM_TARGET: u32 = 20;
/// Refill when fewer than this many are left.
pub const KEM_LOW: u32 = 8;
/// A signed prekey is replaced after this long.
pub const SIGNED_PREKEY_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;
/// A replaced signed prekey still answers initial messages this long.
pub const SIGNED_PREKEY_GRACE_MS: u64 = 30 * 24 * 3600 * 1000;

/// After one-time prekeys were used, the relay's counts are asked for at most this often.
pub const PREKEY_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

const KIND_SIGNED: u8 = 1;
const KIND_KEM: u8 = 2;
const KIND_ONE_TIME: u8 = 3;

/// The `PREKEYS` key of a secret.
pub fn prekey_key(kind: u8, id: u32) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[0] = kind;
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

/// Checks a display name: 1 to 64 characters, no control characters.
pub fn check_name(name: &str) -> ApiResult<String> {
    protocol::introduction::DisplayName::parse(name.trim())
        .map(|name| name.as_str().to_owned())
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidAlias,
                format!("the name must be 1 to 64 characters without control characters: {e}"),
            )
        })
}

/// Makes a new account record with fresh keys.
pub fn new_account(name: String, relay_url: String, now_ms: u64) -> AccountRecord {
    let mut rng = rand::rng();
    let identity = IdentityKeyPair::generate(&mut rng);
    let device_id = DeviceId::new(1).unwrap_or_else(|_| unreachable_device());
    let device = DeviceKeyPair::generate(device_id, &mut rng);
    let certified_at = now_ms / 1000;
    let mut signing_seed = Zeroizing::new([0u8; 32]);
    signing_seed.copy_from_slice(device.signing().to_seed().as_ref());
    let mut dh_secret = Zeroizing::new([0u8; 32]);
    dh_secret.copy_from_slice(device.dh().to_bytes().as_ref());
    AccountRecord {
        name,
        created_at_ms: now_ms,
        relay_url,
        identity_seed: identity.to_seed(),
        device_id: 1,
        device_signing_seed: signing_seed,
        device_dh_secret: dh_secret,
        device_certified_at: certified_at,
        handles: Vec::new(),
        next_prekey_id: 1,
        signed_prekey_id: 0,
        signed_prekey_created_ms: 0,
        reach_sequence: now_ms.max(1),
        tls_pin: None,
        draining: Vec::new(),
        accept_strangers: true,
    }
}

fn unreachable_device() -> DeviceId {
    // Device id 1 is valid by definition (ids are 1..); this is never reached.
    unreachable!("device id 1 is valid")
}

/// Writes the account record into `batch`.
pub fn save_account(batch: &mut Batch<'_>, account: &AccountRecord) {
    batch.put(tables::ACCOUNT, b"account", &account.encode());
}

/// The account as the API describes it.
pub fn info(unlocked: &Unlocked) -> AccountInfo {
    AccountInfo {
        name: unlocked.account.name.clone(),
        address: unlocked.address(),
        device_id: unlocked.account.device_id,
        relay_url: unlocked.account.relay_url.clone(),
        handles: unlocked.account.handles.clone(),
        created_at_ms: unlocked.account.created_at_ms,
        unprotected: unlocked.unprotected,
        accept_strangers: unlocked.account.accept_strangers,
        passphrase_warning: None,
    }
}

/// Opens the account in `store` (created or just unlocked) and starts the relay link.
pub fn open(
    state: &mut CoreState,
    store: Store,
    unprotected: bool,
    txn: &mut Txn,
) -> ApiResult<AccountInfo> {
    let mut unlocked = Unlocked::load(store, state.config.clock.clone())?;
    unlocked.unprotected = unprotected;
    if let Some(cursor) = unlocked.retained_events.back() {
        state.bus.observe(*cursor);
    }
    state.generation += 1;
    let sequenced = super::reach::ensure_sequence(&mut unlocked);
    let repinned = super::reach::pin_hosted_home(&mut unlocked, state.config.hosted_relay.as_ref());
    if sequenced || repinned {
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        save_account(&mut batch, &unlocked.account);
        txn.commit(&store, batch)?;
    }
    if repinned {
        tracing::info!(
            "the account's home is the relay this daemon hosts: its record carries the \
             certificate's pin"
        );
        // Contacts that hold the old pin refuse the relay until the new record reaches them.
        super::reach::introduce_to_all(&mut unlocked, txn)?;
    }
    start_link(state, &mut unlocked);
    for url in unlocked.account.draining.clone() {
        start_draining(state, &mut unlocked, &url);
    }
    let info = info(&unlocked);
    state.lock = Lock::Unlocked(Box::new(unlocked));
    state.connection = ConnectionState::Connecting;
    state.event(txn, EventKind::Unlocked {});
    Ok(info)
}

/// Starts (or starts again) the relay link of `unlocked`, its events tagged with the current
/// unlock generation.
fn start_link(state: &CoreState, unlocked: &mut Unlocked) {
    let generation = state.generation;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let inputs = state.inputs.clone();
    // Forwards link events into the core's input, tagged with this unlock's generation.
    unlocked.tasks.spawn(async move {
        while let Some(event) = events_rx.recv().await {
            if inputs.send(super::Input::Link(generation, event)).is_err() {
                break;
            }
        }
    });
    // The old link, if any, is dropped (stopped) here.
    unlocked.link = Some(RelayLink::start(
        LinkConfig {
            url: unlocked.account.relay_url.clone(),
            extra_root_pem: state.config.relay_ca_pem.clone(),
            tls_pin: unlocked.account.tls_pin,
            same_user: state.config.is_local_relay(&unlocked.account.relay_url),
        },
        Some(unlocked.local.clone()),
        events_tx,
    ));
}

/// Starts the authenticated link to `url`, a relay the account moved away from, to drain its
/// mailbox (SPEC.md 10.9, moving home).
fn start_draining(state: &CoreState, unlocked: &mut Unlocked, url: &str) {
    let generation = state.generation;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let inputs = state.inputs.clone();
    let tagged = url.to_owned();
    unlocked.tasks.spawn(async move {
        while let Some(event) = events_rx.recv().await {
            if inputs
                .send(super::Input::Draining(generation, tagged.clone(), event))
                .is_err()
            {
                break;
            }
        }
    });
    let link = RelayLink::start(
        LinkConfig {
            url: url.to_owned(),
            extra_root_pem: state.config.relay_ca_pem.clone(),
            tls_pin: None,
            same_user: state.config.is_local_relay(url),
        },
        Some(unlocked.local.clone()),
        events_tx,
    );
    unlocked
        .draining
        .insert(url.to_owned(), (link, tokio::time::Instant::now()));
}

/// How long after a move an old relay is drained at least: a contact's daemon that has not
/// heard of the move yet may still deliver there for as long as it retries a message.
pub const DRAIN_AT_LEAST_MS: u64 = super::messaging::outbox::OUTBOX_EXPIRY_MS;
/// An old relay is let go once it has delivered nothing for this long (and the move is at
/// least [`DRAIN_AT_LEAST_MS`] old).
pub const DRAIN_QUIET: Duration = Duration::from_secs(24 * 3600);

/// `account.move_relay`: makes `url` the home relay (SPEC.md 10.9, moving home). The account
/// registers there as its link comes up (prekeys, tokens, record), signs a record with a higher
/// sequence naming it, tells every contact in an introduction, and keeps an authenticated link
/// to the old relay to drain its mailbox. Handles stay on the old relay, written
/// `handle@old-relay`, until released.
pub fn move_relay(state: &mut CoreState, txn: &mut Txn, url: &str) -> ApiResult<AccountInfo> {
    let url = crate::relay_link::normalize_url(url)?;
    let unlocked = state.unlocked()?;
    let old = unlocked.account.relay_url.clone();
    if url == old {
        return Err(ApiError::new(
            ErrorCode::InvalidRelayUrl,
            format!("{url} is already this account's relay"),
        ));
    }
    let mut account = unlocked.account.clone();
    account.draining.retain(|u| u != &url);
    if !account.draining.contains(&old) {
        account.draining.push(old.clone());
    }
    for handle in &mut account.handles {
        if let Ok(bare) = protocol::frames::Handle::parse(handle) {
            *handle = protocol::reachability::QualifiedHandle {
                handle: bare,
                relay: Some(old.clone()),
            }
            .to_string();
        }
    }
    account.relay_url = url.clone();
    account.tls_pin = None;
    account.reach_sequence = unlocked
        .clock
        .now_ms()
        .max(account.reach_sequence.saturating_add(1));
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    save_account(&mut batch, &account);
    txn.commit(&store, batch)?;
    unlocked.account = account;
    tracing::info!(from = %old, to = %url, "moving home");
    // The contacts learn the new record (and keep their tokens) from an introduction.
    super::reach::introduce_to_all(unlocked, txn)?;
    let mut lock = std::mem::replace(&mut state.lock, Lock::Locked);
    if let Lock::Unlocked(unlocked) = &mut lock {
        unlocked.online = false;
        start_link(state, unlocked);
        if !unlocked.draining.contains_key(&old) {
            start_draining(state, unlocked, &old);
        }
        // A relay moved back to is home again, not drained.
        unlocked.draining.remove(&url);
    }
    state.lock = lock;
    state.connection = ConnectionState::Connecting;
    let unlocked = state.unlocked()?;
    Ok(info(unlocked))
}

/// `account.set_strangers`: whether the home relay admits envelopes without one of our
/// delivery tokens (policy `open`) or refuses them (`tokens_required`), SPEC.md 10.9.
pub fn set_strangers(state: &mut CoreState, txn: &mut Txn, accept: bool) -> ApiResult<AccountInfo> {
    let unlocked = state.unlocked()?;
    if unlocked.account.accept_strangers != accept {
        let mut account = unlocked.account.clone();
        account.accept_strangers = accept;
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        save_account(&mut batch, &account);
        txn.commit(&store, batch)?;
        unlocked.account = account;
    }
    super::reach::send_policy(unlocked, txn);
    Ok(info(unlocked))
}

/// Lets go of the relays being drained that are done: the move is at least
/// [`DRAIN_AT_LEAST_MS`] old and the relay delivered nothing for [`DRAIN_QUIET`].
pub fn finish_draining(state: &mut CoreState, txn: &mut Txn) -> ApiResult<()> {
    let Ok(unlocked) = state.unlocked() else {
        return Ok(());
    };
    if unlocked.draining.is_empty() {
        return Ok(());
    }
    let moved_long_ago = unlocked
        .account
        .reach_sequence
        .saturating_add(DRAIN_AT_LEAST_MS)
        <= unlocked.clock.now_ms();
    if !moved_long_ago {
        return Ok(());
    }
    let done: Vec<String> = unlocked
        .draining
        .iter()
        .filter(|(_, (_, last))| last.elapsed() >= DRAIN_QUIET)
        .map(|(url, _)| url.clone())
        .collect();
    if done.is_empty() {
        return Ok(());
    }
    let mut account = unlocked.account.clone();
    account.draining.retain(|url| !done.contains(url));
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    save_account(&mut batch, &account);
    txn.commit(&store, batch)?;
    unlocked.account = account;
    for url in done {
        tracing::info!(relay = %url, "the old relay is drained; letting it go");
        unlocked.draining.remove(&url);
    }
    Ok(())
}

/// Connects to the relay again: the relay delivers again every envelope not acknowledged,
/// which is how the envelopes of a round that failed to commit come back.
pub fn restart_link(state: &mut CoreState) {
    let mut lock = std::mem::replace(&mut state.lock, Lock::Locked);
    if let Lock::Unlocked(unlocked) = &mut lock {
        unlocked.online = false;
        start_link(state, unlocked);
        state.connection = ConnectionState::Connecting;
    }
    state.lock = lock;
}

/// Locks: drops every secret and the relay link. Nothing is flushed here: the round's flush,
/// which the answer waits for, makes what the round committed durable (off the core's
/// thread, on sled's), and what earlier rounds committed is durable already.
pub fn lock(state: &mut CoreState, txn: &mut Txn) -> ApiResult<()> {
    let relay_url = match &state.lock {
        Lock::NoAccount => return Err(ApiError::no_account()),
        Lock::Locked => return Ok(()),
        Lock::Unlocked(unlocked) => unlocked.account.relay_url.clone(),
    };
    state.lock = Lock::Locked;
    if state.connection != ConnectionState::Offline {
        state.connection = ConnectionState::Offline;
        state.event(
            txn,
            EventKind::RelayConnection {
                state: ConnectionState::Offline,
                relay_url,
                error: None,
            },
        );
    }
    state.event(txn, EventKind::Locked {});
    Ok(())
}

/// Wrong passphrases allowed in a row before unlock attempts are delayed.
pub const FREE_UNLOCK_FAILURES: u32 = 2;
/// The delay after the first failure beyond the free ones; it doubles with each further one.
pub const UNLOCK_DELAY_MIN: Duration = Duration::from_secs(1);
/// The longest delay.
pub const UNLOCK_DELAY_MAX: Duration = Duration::from_secs(60);

/// Consecutive wrong passphrases, and when the next attempt may run.
#[derive(Debug, Default)]
pub struct UnlockThrottle {
    failures: u32,
    next_attempt: Option<tokio::time::Instant>,
}

impl UnlockThrottle {
    /// The delay owed after `failures` wrong passphrases in a row: none for the first
    /// [`FREE_UNLOCK_FAILURES`], then [`UNLOCK_DELAY_MIN`] doubling up to [`UNLOCK_DELAY_MAX`].
    pub fn delay_after(failures: u32) -> Duration {
        match failures.checked_sub(FREE_UNLOCK_FAILURES + 1) {
            None => Duration::ZERO,
            Some(extra) => UNLOCK_DELAY_MIN
                .saturating_mul(1u32 << extra.min(16))
                .min(UNLOCK_DELAY_MAX),
        }
    }

    /// Waits (without blocking a thread) until an attempt may run.
    pub async fn wait(&self) {
        if let Some(at) = self.next_attempt {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Records the outcome of an attempt.
    pub fn record(&mut self, wrong_passphrase: bool) {
        if wrong_passphrase {
            self.failures = self.failures.saturating_add(1);
            let delay = Self::delay_after(self.failures);
            self.next_attempt = (!delay.is_zero()).then(|| tokio::time::Instant::now() + delay);
        } else {
            self.failures = 0;
            self.next_attempt = None;
        }
    }
}

/// `account.unlock`: derives the store keys from `passphrase` (Argon2id, on a blocking
/// thread) and opens the account. After [`FREE_UNLOCK_FAILURES`] wrong passphrases in a row,
/// each attempt first waits out a delay that doubles with every further failure; attempts
/// wait in turn, and a right passphrase resets the count. The core is not blocked meanwhile.
pub async fn unlock(
    core: &super::CoreHandle,
    kv: &Kv,
    passphrase: Option<Zeroizing<String>>,
) -> ApiResult<AccountInfo> {
    let state = core.call(|s, _| Ok(s.lock_state())).await?;
    match state {
        LockState::NoAccount => return Err(ApiError::no_account()),
        LockState::Unlocked => return Err(already_unlocked()),
        LockState::Locked => {}
    }
    let mut throttle = core.unlock_throttle.lock().await;
    throttle.wait().await;
    let unlocking = kv.clone();
    let keys = tokio::task::spawn_blocking(move || {
        Vault::unlock(&unlocking, passphrase.as_ref().map(|p| p.as_bytes()))
    })
    .await
    .map_err(ApiError::store)?;
    throttle.record(matches!(
        keys,
        Err(StoreError::WrongPassphrase | StoreError::PassphraseRequired)
    ));
    drop(throttle);
    let keys = keys.map_err(|e| match e {
        StoreError::WrongPassphrase => {
            ApiError::new(ErrorCode::WrongPassphrase, "wrong passphrase")
        }
        StoreError::PassphraseRequired => ApiError::new(
            ErrorCode::WrongPassphrase,
            "this account is protected by a passphrase; give it",
        ),
        StoreError::NoVault => ApiError::no_account(),
        other => ApiError::store(other),
    })?;
    let store = Store::new(kv.clone(), keys);
    let unprotected = !Vault::is_protected(kv)?;
    core.call(move |s, t| {
        if !matches!(s.lock, Lock::Locked) {
            return Err(already_unlocked());
        }
        open(s, store, unprotected, t)
    })
    .await
}

fn already_unlocked() -> ApiError {
    ApiError::new(
        ErrorCode::AlreadyUnlocked,
        "the account is already unlocked",
    )
}

/// Generates the first prekeys of a new account into `batch`, at time `now` (ms).
pub fn initial_prekeys(unlocked: &mut Unlocked, batch: &mut Batch<'_>, now: u64) {
    rotate_signed_prekey(unlocked, batch, now);
    let id = take_ids(&mut unlocked.account, 1);
    let (secret, public) =
        KemPrekeySecret::generate(id, true, unlocked.local.keys.signing(), &mut rand::rng());
    save_kem(batch, &secret, Some(&public));
}

fn take_ids(account: &mut AccountRecord, n: u32) -> u32 {
    let first = account.next_prekey_id;
    account.next_prekey_id = account.next_prekey_id.wrapping_add(n).max(1);
    first
}

fn rotate_signed_prekey(unlocked: &mut Unlocked, batch: &mut Batch<'_>, now: u64) {
    let id = take_ids(&mut unlocked.account, 1);
    let (secret, public) = SignedPrekeySecret::generate(
        id,
        now / 1000,
        unlocked.local.keys.signing(),
        &mut rand::rng(),
    );
    let public = public.to_bytes();
    let mut value = Zeroizing::new(Vec::with_capacity(40 + public.len()));
    value.extend_from_slice(secret.key.to_bytes().as_ref());
    value.extend_from_slice(&secret.created_at.to_be_bytes());
    value.extend_from_slice(&public);
    batch.put(tables::PREKEYS, &prekey_key(KIND_SIGNED, id), &value);
    unlocked.account.signed_prekey_id = id;
    unlocked.account.signed_prekey_created_ms = now;
}

/// Stores a KEM prekey secret; a last-resort one keeps its public form, republished on every
/// connect.
fn save_kem(batch: &mut Batch<'_>, secret: &KemPrekeySecret, public: Option<&KemPrekey>) {
    let public = public.map(Encode::to_bytes).unwrap_or_default();
    let mut value = Zeroizing::new(Vec::with_capacity(65 + public.len()));
    value.push(u8::from(secret.last_resort));
    value.extend_from_slice(secret.key.seed());
    value.extend_from_slice(&public);
    batch.put(tables::PREKEYS, &prekey_key(KIND_KEM, secret.id), &value);
}

/// Loads the signed prekey secret `id`.
pub fn load_signed(store: &Store, id: u32) -> ApiResult<Option<SignedPrekeySecret>> {
    let Some(value) = store.get(tables::PREKEYS, &prekey_key(KIND_SIGNED, id))? else {
        return Ok(None);
    };
    if value.len() < 40 {
        return Err(ApiError::store("a signed prekey record"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&value[..32]);
    let mut created = [0u8; 8];
    created.copy_from_slice(&value[32..40]);
    Ok(Some(SignedPrekeySecret {
        id,
        key: protocol::crypto::x25519::X25519Secret::from_bytes(&key),
        created_at: u64::from_be_bytes(created),
    }))
}

/// Loads the KEM prekey secret `id`.
pub fn load_kem(store: &Store, id: u32) -> ApiResult<Option<KemPrekeySecret>> {
    let Some(value) = store.get(tables::PREKEYS, &prekey_key(KIND_KEM, id))? else {
        return Ok(None);
    };
    let seed: &[u8; protocol::crypto::kem::KEM_SEED_LEN] = value
        .get(1..1 + protocol::crypto::kem::KEM_SEED_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| ApiError::store("a KEM prekey record"))?;
    Ok(Some(KemPrekeySecret {
        id,
        last_resort: value.first() == Some(&1),
        key: protocol::crypto::kem::KemSecret::from_seed(seed),
    }))
}

/// Loads the one-time prekey secret `id`.
pub fn load_one_time(store: &Store, id: u32) -> ApiResult<Option<OneTimePrekeySecret>> {
    let Some(value) = store.get(tables::PREKEYS, &prekey_key(KIND_ONE_TIME, id))? else {
        return Ok(None);
    };
    let key: &[u8; 32] = value
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::store("a one-time prekey record"))?;
    Ok(Some(OneTimePrekeySecret {
        id,
        key: protocol::crypto::x25519::X25519Secret::from_bytes(key),
    }))
}

/// Deletes used one-time prekey secrets.
pub fn delete_used(batch: &mut Batch<'_>, one_time: Option<u32>, kem: Option<u32>) {
    if let Some(id) = one_time {
        batch.delete(tables::PREKEYS, &prekey_key(KIND_ONE_TIME, id));
    }
    if let Some(id) = kem {
        batch.delete(tables::PREKEYS, &prekey_key(KIND_KEM, id));
    }
}

/// On connect: publish the current signed prekey and the last-resort KEM prekey (rotating the
/// signed prekey if it is due), and ask for the counts, which [`on_prekey_count`] answers.
pub fn publish_on_connect(state: &mut CoreState, txn: &mut Txn) -> ApiResult<()> {
    let now = state.config.clock.now_ms();
    publish_at(state, txn, now)
}

/// [`publish_on_connect`] at time `now` (ms).
fn publish_at(state: &mut CoreState, txn: &mut Txn, now: u64) -> ApiResult<()> {
    let unlocked = state.unlocked()?;
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    if unlocked.account.signed_prekey_created_ms + SIGNED_PREKEY_LIFETIME_MS <= now {
        rotate_signed_prekey(unlocked, &mut batch, now);
        super::account::save_account(&mut batch, &unlocked.account);
    }
    drop_expired_signed_prekeys(unlocked, &mut batch, now)?;
    // Committed before reading back: a just-rotated signed prekey is in this batch.
    txn.commit(&store, batch)?;
    let signed = unlocked
        .store
        .get(
            tables::PREKEYS,
            &prekey_key(KIND_SIGNED, unlocked.account.signed_prekey_id),
        )?
        .ok_or_else(|| ApiError::store("the current signed prekey is missing"))?;
    let public_signed = signed
        .get(40..)
        .and_then(|bytes| SignedPrekey::from_bytes(bytes).ok())
        .ok_or_else(|| ApiError::store("the current signed prekey record"))?;
    let mut kem_prekeys = Vec::new();
    for item in unlocked.store.scan(tables::PREKEYS, &[KIND_KEM]) {
        let (_, value) = item?;
        if value.first() == Some(&1)
            && let Some(public) = value
                .get(1 + protocol::crypto::kem::KEM_SEED_LEN..)
                .and_then(|bytes| KemPrekey::from_bytes(bytes).ok())
        {
            kem_prekeys.push(public);
        }
    }
    let request_id = match &unlocked.link {
        Some(link) => link.request_id(),
        None => return Ok(()),
    };
    txn.frame(ClientFrame::PublishPrekeys {
        request_id,
        signed_prekey: Some(public_signed),
        kem_prekeys,
        one_time_prekeys: Vec::new(),
    });
    Ok(())
}

fn drop_expired_signed_prekeys(
    unlocked: &mut Unlocked,
    batch: &mut Batch<'_>,
    now: u64,
) -> ApiResult<()> {
    let current = unlocked.account.signed_prekey_id;
    let mut expired = Vec::new();
    for item in unlocked.store.scan(tables::PREKEYS, &[KIND_SIGNED]) {
        let (key, value) = item?;
        let Some(id) = key.get(1..5).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
            continue;
        };
        let id = u32::from_be_bytes(id);
        let created_s = value
            .get(32..40)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if id != current
            && created_s.saturating_mul(1000) + SIGNED_PREKEY_LIFETIME_MS + SIGNED_PREKEY_GRACE_MS
                <= now
        {
            expired.push(id);
        }
    }
    for id in expired {
        batch.delete(tables::PREKEYS, &prekey_key(KIND_SIGNED, id));
        unlocked.replay.forget_signed_prekey(id);
    }
    batch.put(tables::ACCOUNT, b"replay", &unlocked.replay.to_bytes());
    Ok(())
}

/// Answers the relay's prekey counts: tops up one-time and KEM prekeys below the threshold.
pub fn on_prekey_count(state: &mut CoreState, txn: &mut Txn, one_time: u32, kem: u32) {
    let Ok(unlocked) = state.unlocked() else {
        return;
    };
    if one_time >= ONE_TIME_LOW && kem >= KEM_LOW {
        return;
    }
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let mut one_time_prekeys = Vec::new();
    if one_time < ONE_TIME_LOW {
        let n = ONE_TIME_TARGET - one_time;
        let first = take_ids(&mut unlocked.account, n);
        for i in 0..n {
            let (secret, public) =
                OneTimePrekeySecret::generate(first.wrapping_add(i), &mut rand::rng());
            batch.put(
                tables::PREKEYS,
                &prekey_key(KIND_ONE_TIME, secret.id),
                secret.key.to_bytes().as_ref(),
            );
            one_time_prekeys.push(public);
        }
    }
    let mut kem_prekeys = Vec::new();
    if kem < KEM_LOW {
        let n = KEM_TARGET - kem;
        let first = take_ids(&mut unlocked.account, n);
        for i in 0..n {
            let (secret, public) = KemPrekeySecret::generate(
                first.wrapping_add(i),
                false,
                unlocked.local.keys.signing(),
                &mut rand::rng(),
            );
            save_kem(&mut batch, &secret, None);
            kem_prekeys.push(public);
        }
    }
    save_account(&mut batch, &unlocked.account);
    if let Err(e) = txn.commit(&store, batch) {
        tracing::error!(error = %e, "could not store new prekeys");
        return;
    }
    let Some(link) = &unlocked.link else {
        return;
    };
    tracing::info!(
        one_time = one_time_prekeys.len(),
        kem = kem_prekeys.len(),
        "publishing new prekeys"
    );
    txn.frame(ClientFrame::PublishPrekeys {
        request_id: link.request_id(),
        signed_prekey: None,
        kem_prekeys,
        one_time_prekeys,
    });
}

/// Asks the relay for the prekey counts (an empty publish) when one-time prekeys were used
/// and the last ask is older than [`PREKEY_CHECK_INTERVAL`]; the answer tops them up.
pub fn check_prekeys_if_used(unlocked: &mut Unlocked, txn: &mut Txn) {
    if !unlocked.prekeys_used || !unlocked.online {
        return;
    }
    let now = tokio::time::Instant::now();
    if unlocked
        .prekeys_checked
        .is_some_and(|t| now.duration_since(t) < PREKEY_CHECK_INTERVAL)
    {
        return;
    }
    let Some(link) = &unlocked.link else {
        return;
    };
    unlocked.prekeys_used = false;
    unlocked.prekeys_checked = Some(now);
    txn.frame(ClientFrame::PublishPrekeys {
        request_id: link.request_id(),
        signed_prekey: None,
        kem_prekeys: Vec::new(),
        one_time_prekeys: Vec::new(),
    });
}

/// Handles a frame about prekeys; returns false if it was not one.
pub fn on_frame(state: &mut CoreState, txn: &mut Txn, frame: &ServerFrame) -> bool {
    match frame {
        ServerFrame::PrekeyCount {
            one_time,
            kem_one_time,
            ..
        } => {
            on_prekey_count(state, txn, *one_time, *kem_one_time);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{CoreConfig, Lock};
    use crate::events::EventBus;
    use crate::store::{KdfParams, Kv, Vault};

    const DAY_MS: u64 = 24 * 3600 * 1000;

    /// An unlocked core over an in-memory store, with an account and its prekeys.
    pub(in crate::core) fn unlocked_state(now: u64) -> CoreState {
        unlocked_state_on(Kv::memory(), now)
    }

    /// [`unlocked_state`] over `kv`.
    pub(in crate::core) fn unlocked_state_on(kv: Kv, now: u64) -> CoreState {
        unlocked_state_at(kv, &crate::clock::ManualClock::new(now))
    }

    /// [`unlocked_state`] over `kv`, on a clock the test moves.
    pub(in crate::core) fn unlocked_state_at(
        kv: Kv,
        clock: &crate::clock::ManualClock,
    ) -> CoreState {
        let now = crate::clock::Clock::now_ms(clock);
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(clock.clone());
        let keys = Vault::create(&kv, None, KdfParams::INSECURE_FOR_TESTS, &mut rand::rng())
            .unwrap_or_else(|e| panic!("vault: {e}"));
        let store = Store::new(kv.clone(), keys);
        let mut record = new_account("Gil".into(), "ws://127.0.0.1:1/v1".into(), now);
        record.signed_prekey_created_ms = 0;
        let mut batch = store.batch();
        save_account(&mut batch, &record);
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        let mut unlocked = Unlocked::load(store, clock.clone()).unwrap_or_else(|e| panic!("{e}"));
        let store = unlocked.store.clone();
        let mut batch = store.batch();
        initial_prekeys(&mut unlocked, &mut batch, now);
        save_account(&mut batch, &unlocked.account);
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        CoreState {
            kv,
            lock: Lock::Unlocked(Box::new(unlocked)),
            config: CoreConfig {
                relay_ca_pem: None,
                clock: clock.clone(),
                hosted_relay: None,
                local_relay: None,
            },
            bus: Arc::new(EventBus::new()),
            connection: ConnectionState::Connected,
            generation: 1,
            inputs: tokio::sync::mpsc::unbounded_channel().0,
            stale: None,
            redeliver_at: None,
            failed_rounds: 0,
            last_relay_error: None,
        }
    }

    fn signed_id(state: &mut CoreState) -> u32 {
        state
            .unlocked()
            .map(|u| u.account.signed_prekey_id)
            .unwrap_or_default()
    }

    fn has_signed(state: &mut CoreState, id: u32) -> bool {
        state
            .unlocked()
            .ok()
            .and_then(|u| load_signed(&u.store, id).ok().flatten())
            .is_some()
    }

    /// The signed prekey is replaced after its lifetime, the old one keeps answering initial
    /// messages for the grace period, and is deleted after it.
    #[test]
    fn signed_prekeys_rotate_with_a_grace_period() {
        let t0 = 1_800_000_000_000;
        let mut state = unlocked_state(t0);
        let first = signed_id(&mut state);
        assert!(has_signed(&mut state, first));

        publish_at(&mut state, &mut Txn::default(), t0 + DAY_MS).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signed_id(&mut state), first, "not due after a day");

        let rotated_at = t0 + 8 * DAY_MS;
        publish_at(&mut state, &mut Txn::default(), rotated_at).unwrap_or_else(|e| panic!("{e}"));
        let second = signed_id(&mut state);
        assert_ne!(second, first, "rotated after seven days");
        assert!(
            has_signed(&mut state, first),
            "the old one is kept for the grace period"
        );

        let after_grace = t0 + SIGNED_PREKEY_LIFETIME_MS + SIGNED_PREKEY_GRACE_MS + 1000;
        publish_at(&mut state, &mut Txn::default(), after_grace).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !has_signed(&mut state, first),
            "deleted after the grace period"
        );
        let current = signed_id(&mut state);
        assert!(has_signed(&mut state, current), "the current one stays");
    }

    /// The retained event log keeps the newest `EVENTS_RETAINED` events, deleting the oldest in
    /// the batch that adds a new one, so it cannot grow under any load.
    #[test]
    fn the_event_log_is_bounded() {
        use crate::core::messaging::event_log::{EVENTS_RETAINED, record_event};
        let mut state = unlocked_state(1_800_000_000_000);
        let store = state
            .unlocked()
            .map(|u| u.store.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        for marked in 0..(EVENTS_RETAINED as u32 + 5) {
            let mut batch = store.batch();
            let kind = api::events::EventKind::MessagesRead {
                conversation: "x".into(),
                marked,
            };
            record_event(&mut state, &mut batch, &mut Txn::default(), kind)
                .unwrap_or_else(|e| panic!("{e}"));
            store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        }
        let stored = store.scan(tables::EVENTS, &[]).count();
        assert_eq!(stored, EVENTS_RETAINED);
        let oldest = crate::core::messaging::event_log::retained_events(
            state.unlocked().unwrap_or_else(|e| panic!("{e}")),
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(
                oldest.first().map(|e| &e.kind),
                Some(api::events::EventKind::MessagesRead { marked: 5, .. })
            ),
            "the five oldest are gone"
        );
    }

    /// Wrong passphrases cost nothing up to the third; then the next attempt waits 1 s,
    /// doubling up to a minute, and the right passphrase resets the count. With a paused
    /// clock: the wait is a timer, not a blocked thread.
    #[tokio::test(start_paused = true)]
    async fn wrong_passphrases_in_a_row_delay_the_next_attempt() {
        use std::time::Duration;
        let mut throttle = UnlockThrottle::default();
        async fn waited(throttle: &UnlockThrottle) -> Duration {
            let start = tokio::time::Instant::now();
            throttle.wait().await;
            start.elapsed()
        }
        for _ in 0..3 {
            assert_eq!(waited(&throttle).await, Duration::ZERO);
            throttle.record(true);
        }
        assert_eq!(waited(&throttle).await, Duration::from_secs(1));
        throttle.record(true);
        assert_eq!(waited(&throttle).await, Duration::from_secs(2));
        for _ in 0..10 {
            throttle.record(true);
        }
        assert_eq!(waited(&throttle).await, UNLOCK_DELAY_MAX);
        throttle.record(false);
        assert_eq!(waited(&throttle).await, Duration::ZERO);
        assert_eq!(UnlockThrottle::delay_after(2), Duration::ZERO);
        assert_eq!(UnlockThrottle::delay_after(3), Duration::from_secs(1));
    }

    /// Through the core: the fourth attempt after three wrong passphrases is answered only
    /// after the delay, the core answering other requests meanwhile; the right passphrase
    /// then unlocks and resets the count.
    #[tokio::test(start_paused = true)]
    async fn unlock_waits_without_blocking_the_core() {
        use std::time::Duration;
        let kv = Kv::memory();
        let keys = Vault::create(
            &kv,
            Some(b"right"),
            KdfParams::INSECURE_FOR_TESTS,
            &mut rand::rng(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(kv.clone(), keys);
        let mut batch = store.batch();
        save_account(
            &mut batch,
            &new_account(
                "Gil".into(),
                "ws://127.0.0.1:1/v1".into(),
                1_800_000_000_000,
            ),
        );
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        let config = CoreConfig {
            relay_ca_pem: None,
            clock: crate::clock::system(),
            hosted_relay: None,
            local_relay: None,
        };
        let (core, task) = crate::core::start(kv.clone(), config, Arc::new(EventBus::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        let _running = tokio::spawn(task.run(std::future::pending()));
        let wrong = || Some(Zeroizing::new("wrong".to_owned()));
        for _ in 0..3 {
            let error = unlock(&core, &kv, wrong()).await.err();
            assert_eq!(error.map(|e| e.code), Some(ErrorCode::WrongPassphrase));
        }
        let attempt = tokio::spawn({
            let (core, kv) = (core.clone(), kv.clone());
            async move { unlock(&core, &kv, wrong()).await }
        });
        // The core answers meanwhile, and the attempt is still waiting.
        tokio::time::sleep(Duration::from_millis(900)).await;
        let state = core.call(|s, _| Ok(s.lock_state())).await;
        assert_eq!(state, Ok(api::types::LockState::Locked));
        assert!(!attempt.is_finished(), "answered before the delay");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let error = attempt
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .err()
            .map(|e| e.code);
        assert_eq!(error, Some(ErrorCode::WrongPassphrase));
        // Four wrong in a row: the right one waits 2 s, then unlocks and resets the count.
        let due = core.unlock_throttle.lock().await.next_attempt;
        let due = due.unwrap_or_else(|| panic!("a delay is owed"));
        assert!(due >= tokio::time::Instant::now() + Duration::from_millis(1900));
        let right = Some(Zeroizing::new("right".to_owned()));
        unlock(&core, &kv, right)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(tokio::time::Instant::now() >= due);
        assert_eq!(core.unlock_throttle.lock().await.failures, 0);
    }
}
