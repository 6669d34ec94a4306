//! Rounds that fail to commit: a store error injected at every write of a send round and of a
//! receive round (a test failpoint in `Kv`, on a real sled store in a temporary directory)
//! leaves memory exactly as a fresh load from the store, answers the round's requests with a
//! truthful `store_error`, and the same round then succeeds.

use std::sync::{Arc, Mutex};

use protocol::envelope::{Content, ContentKind};

use super::account::tests::unlocked_state_on;
use super::messaging;
use super::records::tables;
use super::unlocked::{ConvId, Unlocked};
use super::*;
use crate::store::{Kv, Store, Vault};

/// A core over a sled store in `dir`, unlocked, with the contact `alice`.
fn sled_task(dir: &std::path::Path) -> (CoreTask, ConvId) {
    let kv = Kv::open(dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    let mut state = unlocked_state_on(kv, 1_800_000_000_000);
    let identity = protocol::identity::IdentityKeyPair::from_seed(&[1; 32]).public_key();
    let alice = contacts::add(
        &mut state,
        &mut Txn::default(),
        "alice",
        *identity.as_bytes(),
        None,
        None,
        Default::default(),
        contacts::Joining::Quietly,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    state.kv.flush_blocking().unwrap_or_else(|e| panic!("{e}"));
    let (inputs, receiver) = mpsc::unbounded_channel();
    state.inputs = inputs;
    let task = CoreTask {
        state,
        receiver,
        last_write: None,
    };
    (task, alice)
}

/// What memory holds that the store determines, in a comparable form.
fn fingerprint(unlocked: &Unlocked) -> String {
    let mut contacts: Vec<_> = unlocked.contacts.iter().collect();
    contacts.sort_by_key(|(id, _)| **id);
    let mut conversations: Vec<_> = unlocked.conversations.iter().collect();
    conversations.sort_by_key(|(id, _)| **id);
    let outbox: Vec<_> = unlocked
        .outbox
        .iter()
        .map(|(seq, slot)| (seq, slot.conversation, slot.message_id, slot.sealed))
        .collect();
    let mut receipts: Vec<_> = unlocked
        .pending_receipts
        .iter()
        .chain(&unlocked.fresh_receipts)
        .collect();
    receipts.sort();
    let mut aliases: Vec<_> = unlocked.by_alias.iter().collect();
    aliases.sort();
    format!(
        "contacts {contacts:?}\naliases {aliases:?}\nconversations {conversations:?}\n\
         outbox {outbox:?} next {}\nreceipts {receipts:?}\nevents {:?}\nacks {}\n\
         sessions {}\nprekey ids {} {}",
        unlocked.next_outbox_seq,
        unlocked.retained_events,
        unlocked.pending_acks.len(),
        unlocked.sessions.len(),
        unlocked.account.next_prekey_id,
        unlocked.account.signed_prekey_id,
    )
}

/// The fingerprint of the account loaded afresh from the store.
fn reloaded(kv: &Kv) -> String {
    let keys = Vault::unlock(kv, None).unwrap_or_else(|e| panic!("{e}"));
    let fresh = Unlocked::load(Store::new(kv.clone(), keys), crate::clock::system())
        .unwrap_or_else(|e| panic!("{e}"));
    fingerprint(&fresh)
}

fn unlocked(task: &mut CoreTask) -> &mut Unlocked {
    task.state.unlocked().unwrap_or_else(|e| panic!("{e}"))
}

/// A job of a test round: what an RPC method does to the core's state in a round.
type TestJob = dyn Fn(&mut CoreState, &mut Txn) -> ApiResult<()> + Sync;

/// One round of `jobs`, as the core runs it; returns each job's answer.
async fn round(task: &mut CoreTask, jobs: &[&TestJob]) -> Vec<ApiResult<()>> {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut txn = Txn::default();
    for job in jobs {
        let result = job(&mut task.state, &mut txn);
        if let Err(e) = &result
            && e.code == api::ErrorCode::StoreError
        {
            txn.fail(&e.message);
        }
        let answers = answers.clone();
        txn.answer(move |failure| {
            let answer = match failure {
                None => result,
                Some(error) => Err(error),
            };
            answers
                .lock()
                .unwrap_or_else(|e| panic!("{e}"))
                .push(answer);
        });
    }
    task.finish_round(txn).await;
    answers.lock().unwrap_or_else(|e| panic!("{e}")).clone()
}

/// Injects a failure at write 0, 1, 2, ... of the round built by `jobs` until the round runs
/// without reaching the failpoint; after each failure, memory must equal a fresh load from the
/// store and what it was before the round, and every answer must say nothing was kept. Then
/// the round succeeds. Returns how many writes the round has.
async fn fail_every_write(task: &mut CoreTask, jobs: &[&TestJob]) -> u64 {
    for n in 0.. {
        let before = fingerprint(unlocked(task));
        assert_eq!(before, reloaded(&task.state.kv), "memory matches the store");
        task.state.kv.fail_write(n);
        let answers = round(task, jobs).await;
        if !task.state.kv.failpoint_reached() {
            // The round had fewer writes than n + 1: it succeeded.
            task.state.kv.fail_write(u64::MAX - 1);
            assert!(answers.iter().all(Result::is_ok), "{answers:?}");
            assert_eq!(fingerprint(unlocked(task)), reloaded(&task.state.kv));
            assert!(task.state.kv.health().is_none());
            return n;
        }
        for answer in &answers {
            let error = answer
                .as_ref()
                .err()
                .unwrap_or_else(|| panic!("write {n}: answered Ok"));
            assert_eq!(error.code, api::ErrorCode::StoreError);
            assert!(
                error.message.starts_with("the store could not write: ")
                    && error.message.ends_with("nothing of this request was kept"),
                "write {n}: {}",
                error.message
            );
        }
        assert!(task.state.stale.is_none());
        let after = fingerprint(unlocked(task));
        assert_eq!(
            after,
            reloaded(&task.state.kv),
            "write {n}: memory is the store's"
        );
        assert_eq!(after, before, "write {n}: as if the round never ran");
        assert!(task.state.kv.health().is_some(), "the failure is reported");
    }
    unreachable!("the loop returns")
}

#[tokio::test]
async fn a_send_round_that_fails_at_any_write_leaves_memory_as_the_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut task, alice) = sled_task(dir.path());
    let send = move |state: &mut CoreState, txn: &mut Txn| {
        messaging::outbox::send_text(state, txn, alice, "hello").map(|_| ())
    };
    let read = move |state: &mut CoreState, txn: &mut Txn| {
        messaging::history::mark_read(state, txn, "alice", None).map(|_| ())
    };
    let writes = fail_every_write(&mut task, &[&send, &send, &read]).await;
    assert!(writes >= 3, "a commit per request and the flush: {writes}");
    let unlocked = unlocked(&mut task);
    assert_eq!(unlocked.outbox.len(), 2, "sent once each");
    let history = messaging::history::history(unlocked, "alice", None, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.messages.len(), 2);
    // The message ids name the sequences they are stored at: the failed rounds took none.
    let ids = unlocked.store.message_ids();
    let expected: Vec<String> = (0..2)
        .map(|seq| api::types::message_id_to_string(&ids.id_for(&alice, seq)))
        .collect();
    let got: Vec<String> = history
        .messages
        .iter()
        .map(|m| m.message_id.clone())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_receive_round_that_fails_at_any_write_leaves_memory_as_the_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut task, alice) = sled_task(dir.path());
    let sender = *protocol::identity::IdentityKeyPair::from_seed(&[1; 32])
        .public_key()
        .as_bytes();
    // A stranger's message adds a contact in the same round.
    let stranger = *protocol::identity::IdentityKeyPair::from_seed(&[2; 32])
        .public_key()
        .as_bytes();
    let receive = |from: [u8; 32], id: u8| {
        move |state: &mut CoreState, txn: &mut Txn| {
            let content = Content {
                message_id: [id; 16],
                timestamp_ms: 1_800_000_000_000 + u64::from(id),
                kind: ContentKind::Text,
                body: b"hi".to_vec(),
            };
            let store = state.unlocked()?.store.clone();
            let mut batch = store.batch();
            messaging::inbox::receive_text(state, txn, &mut batch, from, 1, &content)?;
            txn.commit(&store, batch)
        }
    };
    let (first, second, third) = (receive(sender, 1), receive(sender, 2), receive(stranger, 3));
    let writes = fail_every_write(&mut task, &[&first, &second, &third]).await;
    assert!(writes >= 3, "{writes}");
    let unlocked = unlocked(&mut task);
    let meta = unlocked
        .conversations
        .get(&alice)
        .copied()
        .unwrap_or_default();
    assert_eq!(
        (meta.total, meta.unread),
        (2, 2),
        "each message stored once"
    );
    assert_eq!(unlocked.contacts.len(), 2, "the stranger added once");
    assert_eq!(unlocked.store.scan(tables::RECEIVED, &[]).count(), 3);
}
