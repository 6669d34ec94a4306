//! Tests of the messaging parts together, on a real store in a temporary directory.

use super::history::{append_message, legacy_outgoing_index, outgoing_message};
use super::inbox::{receive, receive_content, receive_inner, receive_text, received_key};
use super::outbox::{OUTBOX_EXPIRY_MS, on_send_result, send_text};
use api::types::{Direction, MessageStatus};
use protocol::codec::{Decode, Encode};
use protocol::envelope::{self, Content, ContentKind};
use protocol::frames::EnvelopeId;
use protocol::introduction::{DisplayName, Introduction};

use crate::core::account::tests::unlocked_state;
use crate::core::records::{MessageRecord, message_key, tables};
use crate::core::unlocked::{ConvId, Unlocked};
use crate::core::{CoreState, Txn};
use crate::error::{PeerError, ReceiveError};

fn contact(state: &mut CoreState, alias: &str, seed: u8) -> ConvId {
    let identity = protocol::identity::IdentityKeyPair::from_seed(&[seed; 32]).public_key();
    super::super::contacts::add(
        state,
        &mut Txn::default(),
        alias,
        *identity.as_bytes(),
        None,
        None,
        Default::default(),
        super::super::contacts::Joining::Quietly,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sent_id(state: &mut CoreState, conversation: ConvId, text: &str) -> [u8; 16] {
    let sent =
        send_text(state, &mut Txn::default(), conversation, text).unwrap_or_else(|e| panic!("{e}"));
    api::types::parse_message_id(&sent.message_id).unwrap_or_else(|| panic!("an id"))
}

/// Texts that are empty, only white space or over 64 KiB are refused and nothing is queued.
#[test]
fn empty_blank_and_oversized_texts_are_refused() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    for text in [
        String::new(),
        " \n\t".to_owned(),
        "x".repeat(api::input::MAX_TEXT_LEN + 1),
    ] {
        let refused = send_text(&mut state, &mut Txn::default(), alice, &text);
        assert!(
            matches!(&refused, Err(e) if e.code == api::ErrorCode::InvalidMessage),
            "{refused:?}"
        );
    }
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert!(unlocked.outbox.is_empty(), "nothing queued");
    sent_id(&mut state, alice, &"x".repeat(api::input::MAX_TEXT_LEN));
}

/// An outgoing message's id leads back to it without an index, and only from its own
/// conversation (a contact cannot report on another's messages).
#[test]
fn outgoing_ids_name_their_message_and_only_in_their_conversation() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let bob = contact(&mut state, "bob", 2);
    let first = sent_id(&mut state, alice, "one");
    let second = sent_id(&mut state, alice, "two");
    let to_bob = sent_id(&mut state, bob, "three");
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unlocked.store.scan(tables::MESSAGE_INDEX, &[]).count(),
        0,
        "sending writes no index entry"
    );
    for (conversation, id, text) in [
        (alice, first, "one"),
        (alice, second, "two"),
        (bob, to_bob, "three"),
    ] {
        let found = outgoing_message(unlocked, &conversation, &id)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|(_, record)| record.text);
        assert_eq!(found.as_deref(), Some(text));
    }
    assert_eq!(
        first[..],
        unlocked.store.message_ids().id_for(&alice, 0)[..]
    );
    for (conversation, id) in [(bob, first), (alice, to_bob)] {
        let found =
            outgoing_message(unlocked, &conversation, &id).unwrap_or_else(|e| panic!("{e}"));
        assert!(found.is_none(), "another conversation's id");
    }
    let unknown = outgoing_message(unlocked, &alice, &[0x5a; 16]).unwrap_or_else(|e| panic!("{e}"));
    assert!(unknown.is_none());
}

fn text_from(timestamp_ms: u64, id: u8) -> Content {
    Content {
        message_id: [id; 16],
        timestamp_ms,
        kind: ContentKind::Text,
        body: b"hello".to_vec(),
    }
}

/// A message that arrives again (the same content, as a sender that sealed it again sends
/// it) is stored and announced once; another message with the same timestamp is not a
/// repeat.
#[test]
fn a_received_message_is_stored_once() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let sender = *protocol::identity::IdentityKeyPair::from_seed(&[1; 32])
        .public_key()
        .as_bytes();
    let t = 1_800_000_000_123;
    for content in [
        text_from(t, 1),
        text_from(t, 1),
        text_from(t, 2),
        text_from(t, 1),
    ] {
        let store = state
            .unlocked()
            .map(|u| u.store.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut batch = store.batch();
        let mut txn = Txn::default();
        receive_text(&mut state, &mut txn, &mut batch, sender, 1, &content)
            .unwrap_or_else(|e| panic!("{e}"));
        store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
    }
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let meta = unlocked
        .conversations
        .get(&alice)
        .copied()
        .unwrap_or_default();
    assert_eq!((meta.total, meta.unread), (2, 2));
    assert_eq!(unlocked.store.scan(tables::RECEIVED, &alice).count(), 2);
    assert_eq!(unlocked.store.scan(tables::MESSAGE_INDEX, &[]).count(), 0);
}

/// Runs `content` from the identity of seed `seed` through the receive path's dispatch and
/// commits what it wrote.
fn receive_from(state: &mut CoreState, seed: u8, content: &Content) -> Result<(), ReceiveError> {
    let sender = *protocol::identity::IdentityKeyPair::from_seed(&[seed; 32])
        .public_key()
        .as_bytes();
    let store = state
        .unlocked()
        .map(|u| u.store.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut batch = store.batch();
    receive_content(state, &mut Txn::default(), &mut batch, sender, 1, content)?;
    store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
    Ok(())
}

fn status_of(state: &mut CoreState, conversation: ConvId, id: &[u8; 16]) -> MessageStatus {
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    outgoing_message(unlocked, &conversation, id)
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|(_, record)| record.status)
        .unwrap_or_else(|| panic!("a status"))
}

/// The same message id and timestamp from the same sender is a repeat (SPEC.md 8.1): a
/// text sent again is shown once but still owes its receipt, so a sender whose receipt was
/// lost hears about it. The same id with another timestamp is another message.
#[test]
fn a_repeat_is_shown_once_and_answered_again() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let t = 1_800_000_000_123;
    for content in [text_from(t, 1), text_from(t, 1), text_from(t + 1, 1)] {
        receive_from(&mut state, 1, &content).unwrap_or_else(|e| panic!("{e}"));
    }
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let meta = unlocked
        .conversations
        .get(&alice)
        .copied()
        .unwrap_or_default();
    assert_eq!(meta.total, 2, "the repeat is not stored again");
    let owed: Vec<[u8; 16]> = unlocked
        .fresh_receipts
        .get(&alice)
        .into_iter()
        .flatten()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(owed, vec![[1; 16]; 3], "every arrival is answered");
}

/// One receipt may cite several messages, and each becomes delivered (or read); a body that
/// is not a run of whole 16-byte ids is the peer's fault and changes nothing; a contact
/// cannot report on another contact's messages.
#[test]
fn a_receipt_cites_several_messages_and_a_broken_one_changes_nothing() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let _bob = contact(&mut state, "bob", 2);
    let ids: Vec<[u8; 16]> = ["one", "two", "three"]
        .iter()
        .map(|text| sent_id(&mut state, alice, text))
        .collect();
    let receipt = |kind: ContentKind, body: Vec<u8>| Content {
        message_id: [0x77; 16],
        timestamp_ms: 1_800_000_000_500,
        kind,
        body,
    };
    let two: Vec<u8> = ids[..2].iter().flatten().copied().collect();
    for broken in [Vec::new(), vec![1; 17], [two.clone(), vec![0]].concat()] {
        let length = broken.len();
        match receive_from(
            &mut state,
            1,
            &receipt(ContentKind::DeliveryReceipt, broken),
        ) {
            Err(ReceiveError::Peer(PeerError::BadReceipt(found))) => assert_eq!(found, length),
            other => panic!("a broken receipt of {length} bytes: {other:?}"),
        }
    }
    // Bob cites Alice's messages: nothing happens.
    receive_from(
        &mut state,
        2,
        &receipt(ContentKind::ReadReceipt, two.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for id in &ids {
        assert_eq!(status_of(&mut state, alice, id), MessageStatus::Pending);
    }
    receive_from(&mut state, 1, &receipt(ContentKind::DeliveryReceipt, two))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status_of(&mut state, alice, &ids[0]),
        MessageStatus::Delivered
    );
    assert_eq!(
        status_of(&mut state, alice, &ids[1]),
        MessageStatus::Delivered
    );
    assert_eq!(
        status_of(&mut state, alice, &ids[2]),
        MessageStatus::Pending
    );
    let body: Vec<u8> = ids.iter().flatten().copied().collect();
    receive_from(&mut state, 1, &receipt(ContentKind::ReadReceipt, body))
        .unwrap_or_else(|e| panic!("{e}"));
    for id in &ids {
        assert_eq!(status_of(&mut state, alice, id), MessageStatus::Read);
    }
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        unlocked.fresh_receipts.is_empty(),
        "receipts are not answered"
    );
}

/// Only texts owe receipts; an introduction names its sender and is not answered; a kind
/// this version does not know is dropped silently: not stored, not answered, no error.
#[test]
fn only_texts_are_answered_and_unknown_kinds_are_dropped_silently() {
    let mut state = unlocked_state(1_800_000_000_000);
    let introduction = Introduction {
        name: DisplayName::parse("Carol").unwrap_or_else(|e| panic!("{e}")),
        handle: None,
        invite_token: None,
        reachability: None,
        delivery_token: None,
    };
    let content = |kind: ContentKind, body: Vec<u8>| Content {
        message_id: [0x42; 16],
        timestamp_ms: 1_800_000_000_500,
        kind,
        body,
    };
    receive_from(
        &mut state,
        3,
        &content(ContentKind::Introduction, introduction.to_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let unknown = ContentKind::from_byte(9).unwrap_or_else(|e| panic!("{e}"));
    receive_from(
        &mut state,
        3,
        &content(unknown, b"from the future".to_vec()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let carol = unlocked
        .contacts
        .values()
        .find(|c| c.display_name.as_deref() == Some("Carol"))
        .map(|c| c.alias.clone());
    assert_eq!(
        carol.as_deref(),
        Some("carol"),
        "the introduction named a new contact (its alias made typeable: lowercase)"
    );
    assert!(unlocked.fresh_receipts.is_empty(), "nothing was answered");
    assert_eq!(unlocked.store.scan(tables::MESSAGES, &[]).count(), 0);
    assert_eq!(unlocked.store.scan(tables::OWED_RECEIPTS, &[]).count(), 0);
    // A broken introduction is the peer's fault.
    match receive_from(
        &mut state,
        3,
        &content(ContentKind::Introduction, vec![1, 0, 0]),
    ) {
        Err(ReceiveError::Peer(PeerError::BadIntroduction(_))) => {}
        other => panic!("{other:?}"),
    }
    receive_from(&mut state, 3, &text_from(1_800_000_000_600, 5)).unwrap_or_else(|e| panic!("{e}"));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unlocked
            .fresh_receipts
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        1
    );
}

/// `protocol/testdata/content.json`: every case, from a sender the receiver does not know
/// yet, has the outcome SPEC.md 8.1 gives it, through the receive path's own dispatch.
#[test]
fn content_vectors_are_handled_as_the_spec_says() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/testdata/content.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vectors: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases = vectors["cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() >= 10, "the vectors are there");
    for case in cases {
        let comment = case["comment"].as_str().unwrap_or_default();
        let expected = case["result"].as_str().unwrap_or_default();
        let hex = case["content"].as_str().unwrap_or_default();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let mut state = unlocked_state(1_800_000_000_000);
        let found = match Content::from_bytes(&bytes) {
            Err(_) => "refused/BadContent".to_owned(),
            Ok(content) => match receive_from(&mut state, 9, &content) {
                Err(ReceiveError::Peer(PeerError::BadReceipt(_))) => "refused/BadReceipt".into(),
                Err(ReceiveError::Peer(PeerError::BadIntroduction(_))) => {
                    "refused/BadIntroduction".into()
                }
                Err(other) => format!("error: {other}"),
                Ok(()) => {
                    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
                    let stored = unlocked.store.scan(tables::MESSAGES, &[]).count();
                    let owed = unlocked
                        .fresh_receipts
                        .values()
                        .map(Vec::len)
                        .sum::<usize>();
                    let named: Vec<String> = unlocked
                        .contacts
                        .values()
                        .filter_map(|c| c.display_name.clone())
                        .collect();
                    // A stranger is only ever a message request (SPEC.md 8.1).
                    assert!(
                        unlocked.contacts.values().all(|c| c.request),
                        "{comment}: a stranger became a contact"
                    );
                    let answered = unlocked.outbox.len();
                    match (stored, owed, named.as_slice(), answered) {
                        (1, 1, [], 0) => "stored".to_owned(),
                        (0, 0, [], 0) => "ignored".to_owned(),
                        (0, 0, [name], 0) => format!("named/{name}"),
                        (0, 0, [name], 1) => format!("invite_refused/{name}"),
                        other => format!("unexpected: {other:?}"),
                    }
                }
            },
        };
        assert_eq!(found, expected, "{comment}");
        if expected.starts_with("refused") || expected == "ignored" {
            let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
            assert!(
                unlocked.contacts.is_empty(),
                "{comment}: no contact was added"
            );
        }
    }
}

/// An envelope a peer botched is the peer's fault, named by kind, and is acknowledged (the
/// relay would only deliver it again); nothing is stored.
#[test]
fn an_unreadable_envelope_is_a_typed_peer_error_and_is_acknowledged() {
    let mut state = unlocked_state(1_800_000_000_000);
    for (payload, expected) in [
        (Vec::new(), envelope::EnvelopeError::Truncated),
        (
            vec![0x07; 80],
            envelope::EnvelopeError::UnsupportedVersion(7),
        ),
        (
            [vec![0x02], vec![0x09; 32], vec![0x5a; 120]].concat(),
            envelope::EnvelopeError::Authentication,
        ),
    ] {
        match receive_inner(&mut state, &mut Txn::default(), &payload) {
            Err(ReceiveError::Peer(found)) => {
                assert_eq!(found, PeerError::Envelope(expected));
            }
            other => panic!("{other:?}"),
        }
    }
    receive(
        &mut state,
        &mut Txn::default(),
        EnvelopeId::from_bytes([9; 16]),
        &[0x07; 80],
        None,
    );
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unlocked.pending_acks, [EnvelopeId::from_bytes([9; 16])]);
    assert_eq!(unlocked.store.scan(tables::MESSAGES, &[]).count(), 0);
}

/// Within a conversation, received keys follow the sender's clock (so sled only touches
/// the newest leaf), but the key does not hold the clock reading itself.
#[test]
fn received_keys_are_in_time_order_and_hide_the_time() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let bob = contact(&mut state, "bob", 2);
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let sender = [7u8; 32];
    let t = 1_800_000_000_000;
    let keys: Vec<[u8; 32]> = (0..50)
        .map(|i| received_key(unlocked, &alice, &sender, &text_from(t + i * 1000, i as u8)))
        .collect();
    for pair in keys.windows(2) {
        assert!(pair[0] < pair[1], "keys follow the sender's clock");
        assert_eq!(pair[0][..16], alice[..], "keys start with the conversation");
    }
    let shown = u64::from_be_bytes(keys[0][16..24].try_into().unwrap_or_default());
    assert_ne!(shown, t, "the clock reading is shifted");
    // Each conversation has its own offset.
    let at_bob = received_key(unlocked, &bob, &sender, &text_from(t, 0));
    let shown_at_bob = u64::from_be_bytes(at_bob[16..24].try_into().unwrap_or_default());
    assert_ne!(shown.wrapping_sub(t), shown_at_bob.wrapping_sub(t));
}

/// Messages sent by a store from before ids named their location (random ids, found through
/// a `b"out"` index entry) are still found, and still only from their conversation.
#[test]
fn outgoing_messages_with_random_ids_are_found_through_the_old_index() {
    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let bob = contact(&mut state, "bob", 2);
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let legacy_id = [0x42; 16];
    let record = MessageRecord {
        message_id: legacy_id,
        direction: Direction::Outgoing,
        timestamp_ms: 1,
        stored_at_ms: 1,
        status: Some(MessageStatus::Sent),
        failure: None,
        read: false,
        text: "old".into(),
    };
    let store = unlocked.store.clone();
    let mut batch = store.batch();
    let seq = append_message(unlocked, &mut batch, alice, &record, false)
        .unwrap_or_else(|e| panic!("{e}"));
    let index = legacy_outgoing_index(unlocked, &legacy_id);
    batch.put(tables::MESSAGE_INDEX, &index, &message_key(&alice, seq));
    store.commit(batch).unwrap_or_else(|e| panic!("{e}"));
    // Unlocked again, as an upgraded daemon would find the store.
    let kv = state.kv.clone();
    let keys = crate::store::Vault::unlock(&kv, None).unwrap_or_else(|e| panic!("{e}"));
    let reloaded = Unlocked::load(
        crate::store::Store::new(kv, keys),
        state.config.clock.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    state.lock = super::super::Lock::Unlocked(Box::new(reloaded));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert!(unlocked.has_legacy_index);
    let found = outgoing_message(unlocked, &alice, &legacy_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|(key, record)| (key, record.text));
    assert_eq!(found, Some((message_key(&alice, seq), "old".to_owned())));
    let from_bob = outgoing_message(unlocked, &bob, &legacy_id).unwrap_or_else(|e| panic!("{e}"));
    assert!(from_bob.is_none());
}

/// On a clock the test moves: a message the relay keeps refusing for a transient reason stays
/// pending (retried with backoff) until it has been queued for seven days, then fails with a
/// reason; a permanent refusal fails at once.
#[test]
fn a_message_the_relay_never_accepts_fails_after_seven_days() {
    use crate::relay_link::RequestError;

    let clock = crate::clock::ManualClock::new(1_800_000_000_000);
    let mut state =
        crate::core::account::tests::unlocked_state_at(crate::store::Kv::memory(), &clock);
    let alice = contact(&mut state, "alice", 1);
    let id = sent_id(&mut state, alice, "hello");
    let seq = |state: &mut CoreState| -> Option<u64> {
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        unlocked
            .outbox
            .iter()
            .find(|(_, slot)| slot.message_id == id)
            .map(|(seq, _)| *seq)
    };
    let refuse = |state: &mut CoreState| {
        let seq = seq(state).unwrap_or_else(|| panic!("the message is in the outbox"));
        on_send_result(
            state,
            &mut Txn::default(),
            &[seq],
            "ws://127.0.0.1:7420/v1",
            Err(RequestError::Unreachable(
                "the relay did not answer in time".into(),
            )),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    };
    refuse(&mut state);
    clock.advance(OUTBOX_EXPIRY_MS - 1);
    refuse(&mut state);
    let slot = seq(&mut state).and_then(|seq| {
        state
            .unlocked()
            .ok()
            .and_then(|u| u.outbox.get(&seq).cloned())
    });
    let slot = slot.unwrap_or_else(|| panic!("still queued a millisecond before seven days"));
    assert_eq!(slot.attempts, 2);
    assert!(slot.not_before.is_some(), "retried after a backoff");
    assert_eq!(status_of(&mut state, alice, &id), MessageStatus::Pending);

    clock.advance(1);
    refuse(&mut state);
    assert!(seq(&mut state).is_none(), "the outbox let it go");
    assert_eq!(status_of(&mut state, alice, &id), MessageStatus::Failed);
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let failure = outgoing_message(unlocked, &alice, &id)
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|(_, record)| record.failure)
        .unwrap_or_default();
    assert!(failure.contains("within 7 days"), "{failure}");

    // A refusal that no retry can change fails at once.
    let other = sent_id(&mut state, alice, "to nobody");
    let other_seq = {
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        unlocked
            .outbox
            .iter()
            .find(|(_, slot)| slot.message_id == other)
            .map(|(seq, _)| *seq)
            .unwrap_or_else(|| panic!("queued"))
    };
    on_send_result(
        &mut state,
        &mut Txn::default(),
        &[other_seq],
        "ws://127.0.0.1:7420/v1",
        Err(RequestError::Refused(
            protocol::frames::ErrorCode::NotFound,
            "no such device".into(),
        )),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status_of(&mut state, alice, &other), MessageStatus::Failed);
}

/// When the contact's relay answers that it knows no device of the contact (no mailbox),
/// every queued message of the conversation fails at once with that reason, instead of
/// waiting in the outbox; a transient failure to fetch keeps them queued.
#[test]
fn a_recipient_the_relay_does_not_know_fails_its_queued_messages_at_once() {
    use crate::relay_link::RequestError;

    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let bob = contact(&mut state, "bob", 2);
    let first = sent_id(&mut state, alice, "one");
    let second = sent_id(&mut state, alice, "two");
    let other = sent_id(&mut state, bob, "to bob");
    let identity = state
        .unlocked()
        .map(|u| u.contacts[&alice].identity)
        .unwrap_or_else(|e| panic!("{e}"));
    super::outbox::on_bundles(
        &mut state,
        &mut Txn::default(),
        alice,
        identity,
        "ws://relay.example:7420/v1",
        Err(RequestError::Unreachable("connection refused".into())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status_of(&mut state, alice, &first), MessageStatus::Pending);
    super::outbox::on_bundles(
        &mut state,
        &mut Txn::default(),
        alice,
        identity,
        "ws://relay.example:7420/v1",
        Err(RequestError::Refused(
            protocol::frames::ErrorCode::NotFound,
            "the relay ws://relay.example:7420/v1 has no mailbox for this contact".into(),
        )),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for id in [first, second] {
        assert_eq!(status_of(&mut state, alice, &id), MessageStatus::Failed);
        let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
        let failure = outgoing_message(unlocked, &alice, &id)
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|(_, record)| record.failure)
            .unwrap_or_default();
        assert!(failure.contains("has no mailbox"), "{failure}");
    }
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        unlocked.outbox.values().all(|s| s.conversation != alice),
        "nothing of alice's conversation is left in the outbox"
    );
    assert_eq!(status_of(&mut state, bob, &other), MessageStatus::Pending);
    let last = state
        .last_relay_error
        .clone()
        .unwrap_or_else(|| panic!("the relay's answer is the last relay error"));
    assert_eq!(last.relay, "ws://relay.example:7420/v1");
    assert!(last.error.contains("no mailbox"), "{last:?}");
}

/// The outbox as `outbox.list` shows it, `outbox.cancel` (the record fails as cancelled, and
/// only a queued text can be cancelled), and `messages.resend` (only a failed message, as a
/// new message with the same text).
#[test]
fn outbox_list_cancel_and_resend() {
    use super::queue;
    use api::types::{OutboxState, message_id_to_string};

    let mut state = unlocked_state(1_800_000_000_000);
    let alice = contact(&mut state, "alice", 1);
    let first = sent_id(&mut state, alice, "one");
    let second = sent_id(&mut state, alice, "two");
    // Connected to the home relay, which is the contact's too: nothing but order holds the
    // second message back.
    state.unlocked().unwrap_or_else(|e| panic!("{e}")).online = true;
    let list = queue::list(&mut state).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.messages[0].state, OutboxState::Ready);
    let ids: Vec<&str> = list
        .messages
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [message_id_to_string(&first), message_id_to_string(&second)]
    );
    assert!(list.messages.iter().all(|m| m.conversation == "alice"));
    assert_eq!(list.messages[1].state, OutboxState::Waiting);
    let behind = list.messages[1].reason.clone().unwrap_or_default();
    assert!(behind.contains("behind an earlier message"), "{behind}");

    let cancelled = queue::cancel(
        &mut state,
        &mut Txn::default(),
        &message_id_to_string(&first),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancelled.conversation, "alice");
    assert_eq!(status_of(&mut state, alice, &first), MessageStatus::Failed);
    let again = queue::cancel(
        &mut state,
        &mut Txn::default(),
        &message_id_to_string(&first),
    );
    assert!(
        matches!(&again, Err(e) if e.code == api::ErrorCode::WrongMessageState),
        "{again:?}"
    );
    let unknown = queue::cancel(&mut state, &mut Txn::default(), &"ab".repeat(16));
    assert!(
        matches!(&unknown, Err(e) if e.code == api::ErrorCode::NotFound),
        "{unknown:?}"
    );
    let list = queue::list(&mut state).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.messages.len(), 1);

    let pending = queue::resend(
        &mut state,
        &mut Txn::default(),
        &message_id_to_string(&second),
    );
    assert!(
        matches!(&pending, Err(e) if e.code == api::ErrorCode::WrongMessageState),
        "{pending:?}"
    );
    let resent = queue::resend(
        &mut state,
        &mut Txn::default(),
        &message_id_to_string(&first),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(resent.message_id, message_id_to_string(&first));
    let new_id =
        api::types::parse_message_id(&resent.message_id).unwrap_or_else(|| panic!("an id"));
    let unlocked = state.unlocked().unwrap_or_else(|e| panic!("{e}"));
    let text = outgoing_message(unlocked, &alice, &new_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|(_, record)| record.text);
    assert_eq!(text.as_deref(), Some("one"));
    assert_eq!(status_of(&mut state, alice, &first), MessageStatus::Failed);
    assert_eq!(
        status_of(&mut state, alice, &new_id),
        MessageStatus::Pending
    );
}
