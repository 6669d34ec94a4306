//! Human output, as snapshots (`cargo insta review`, or `INSTA_UPDATE=always` and read the
//! diff), plus the pieces that have exact answers.

use api::types::{ConversationList, HistoryPage};
use insta::assert_snapshot;
use serde_json::json;

use super::*;

/// 2026-03-14 15:09:26.535 UTC.
const T: u64 = 1_773_500_966_535;

fn message(direction: Direction, text: &str, status: Option<MessageStatus>) -> Message {
    Message {
        message_id: "00112233445566778899aabbccddeeff".to_owned(),
        conversation: "bob".to_owned(),
        direction,
        text: text.to_owned(),
        timestamp_ms: T,
        stored_at_ms: T + 20,
        status,
        failure: None,
        read: match direction {
            Direction::Incoming => Some(false),
            Direction::Outgoing => None,
        },
    }
}

fn contact(alias: &str, trust: Trust, handle: Option<&str>) -> Contact {
    Contact {
        alias: alias.to_owned(),
        address: format!("chat1{alias}qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"),
        handle: handle.map(str::to_owned),
        display_name: None,
        trust,
        added_at_ms: T - 86_400_000,
        blocked: false,
        request: false,
        invite_refused: None,
    }
}

fn details() -> ContactDetails {
    let number: String = (0..60)
        .map(|i| char::from(b'0' + (i * 7 % 10) as u8))
        .collect();
    let groups = number
        .as_bytes()
        .chunks(5)
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect();
    ContactDetails {
        contact: Contact {
            display_name: Some("Bob Builder".to_owned()),
            ..contact("bob", Trust::Unverified, Some("bob"))
        },
        safety_number: number,
        safety_number_groups: groups,
        safety_qr: "00ff".to_owned(),
        devices: vec![1, 2],
        key_change: None,
    }
}

fn status_of(state: LockState) -> DaemonStatus {
    DaemonStatus {
        version: "0.1.0".to_owned(),
        api_version: api::API_VERSION.to_owned(),
        pid: 4242,
        uptime_ms: 3_725_000,
        state,
        ephemeral: false,
        relay_url: Some("wss://relay.example/v1".to_owned()),
        connection: ConnectionState::Connected,
        address: Some("chat1aliceqqqqqqqqqqqqqqqqqqqqqqqqqqqq".to_owned()),
        outbox: Some(2),
        hosted_relay: None,
        other_relays: vec![api::types::RelayLinkState {
            url: "wss://relay.elsewhere.example/v1".to_owned(),
            connection: ConnectionState::Waiting,
        }],
        passphrase_protected: Some(true),
        store_error: None,
        last_relay_error: Some(api::types::RelayError {
            relay: "wss://relay.elsewhere.example/v1".to_owned(),
            error:
                "cannot connect to relay.elsewhere.example:443: Connection refused (os error 111)"
                    .to_owned(),
            at_ms: T,
        }),
        log_file: Some("/home/alice/.local/state/chatd/chatd.log".to_owned()),
        relay_kind: Some(api::types::RelayKind::Remote),
        local_relay: None,
    }
}

#[test]
fn times_are_utc_calendar_dates() {
    assert_eq!(time(0), "1970-01-01 00:00");
    assert_eq!(time(T), "2026-03-14 15:09");
    assert_eq!(time(951_782_400_000), "2000-02-29 00:00");
    assert_eq!(time(4_107_542_399_000), "2100-02-28 23:59");
    assert!(
        time(u64::MAX).ends_with(":00") || !time(u64::MAX).is_empty(),
        "no overflow"
    );
}

#[test]
fn durations_are_coarse() {
    assert_eq!(duration(999), "0s");
    assert_eq!(duration(45_000), "45s");
    assert_eq!(duration(185_000), "3m 05s");
    assert_eq!(duration(3_725_000), "1h 02m");
    assert_eq!(duration(3 * 86_400_000 + 7_200_000), "3d 02h");
}

#[test]
fn peer_text_cannot_reach_the_terminal_raw() {
    assert!(matches!(clean_line("plain ✓ text"), Cow::Borrowed(_)));
    assert_eq!(clean_line("a\x1b[2Jb"), "a\\u{1b}[2Jb");
    assert_eq!(clean_line("two\nlines"), "two\\u{a}lines");
    assert_eq!(clean_text("two\nlines\tok"), "two\nlines\tok");
    assert_eq!(clean_text("bell\x07 csi\u{9b}"), "bell\\u{7} csi\\u{9b}");
    assert_eq!(clean_line("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
    assert_eq!(clean_line("iso\u{2066}late"), "iso\\u{2066}late");
}

#[test]
fn history_lines() {
    let mut failed = message(Direction::Outgoing, "lost", Some(MessageStatus::Failed));
    failed.failure = Some("no devices".to_owned());
    let page = HistoryPage {
        messages: vec![
            message(Direction::Incoming, "hi! are you there?", None),
            message(
                Direction::Outgoing,
                "queued one",
                Some(MessageStatus::Pending),
            ),
            message(Direction::Outgoing, "sent one", Some(MessageStatus::Sent)),
            message(
                Direction::Outgoing,
                "got it",
                Some(MessageStatus::Delivered),
            ),
            message(Direction::Outgoing, "seen", Some(MessageStatus::Read)),
            failed,
            message(Direction::Incoming, "line one\nline two\n\x1b[31mred", None),
        ],
        next_before: Some("c1".to_owned()),
    };
    assert_snapshot!(history(&page.messages));
    assert_eq!(history(&[]), "(no messages)");
}

#[test]
fn conversation_list() {
    let mut long = message(
        Direction::Incoming,
        "a rather long message that goes on and on beyond the preview width\nand a second line",
        None,
    );
    long.conversation = "carol-from-work".to_owned();
    let list = ConversationList {
        conversations: vec![
            Conversation {
                conversation: "bob".to_owned(),
                address: "chat1bob".to_owned(),
                unread: 2,
                total: 10,
                last_message: Some(message(Direction::Incoming, "see you", None)),
            },
            Conversation {
                conversation: "carol-from-work".to_owned(),
                address: "chat1carol".to_owned(),
                unread: 0,
                total: 3,
                last_message: Some(long),
            },
            Conversation {
                conversation: "dave".to_owned(),
                address: "chat1dave".to_owned(),
                unread: 0,
                total: 1,
                last_message: Some(message(
                    Direction::Outgoing,
                    "hello",
                    Some(MessageStatus::Delivered),
                )),
            },
            Conversation {
                conversation: "erin".to_owned(),
                address: "chat1erin".to_owned(),
                unread: 0,
                total: 0,
                last_message: None,
            },
        ],
    };
    assert_snapshot!(conversations(&list.conversations));
    assert_eq!(conversations(&[]), "(no conversations)");
}

#[test]
fn daemon_status_unlocked() {
    assert_snapshot!(status(&status_of(LockState::Unlocked)));
}

#[test]
fn daemon_status_locked_and_empty() {
    let locked = DaemonStatus {
        connection: ConnectionState::Offline,
        address: None,
        outbox: None,
        other_relays: Vec::new(),
        ..status_of(LockState::Locked)
    };
    let empty = DaemonStatus {
        relay_url: None,
        ephemeral: true,
        hosted_relay: Some("ws://127.0.0.1:7700/v1".to_owned()),
        other_relays: Vec::new(),
        ..locked.clone()
    };
    let empty = DaemonStatus {
        state: LockState::NoAccount,
        ..empty
    };
    assert_snapshot!(format!("{}\n---\n{}", status(&locked), status(&empty)));
}

#[test]
fn daemon_status_says_who_hosts_the_local_relay() {
    let local = api::types::LocalRelayStatus {
        url: "ws://127.0.0.1:7420/v1".to_owned(),
        dir: "/home/u/.local/share/chatd/local-relay".to_owned(),
        hosted_here: true,
        host_pid: Some(4242),
        can_host: true,
        error: None,
    };
    let on_local = |local: api::types::LocalRelayStatus, connection| DaemonStatus {
        relay_url: Some("ws://127.0.0.1:7420/v1".to_owned()),
        relay_kind: Some(api::types::RelayKind::Local),
        local_relay: Some(local),
        connection,
        other_relays: Vec::new(),
        ..status_of(LockState::Unlocked)
    };
    let here = on_local(local.clone(), ConnectionState::Connected);
    let elsewhere = on_local(
        api::types::LocalRelayStatus {
            hosted_here: false,
            host_pid: Some(5151),
            ..local.clone()
        },
        ConnectionState::Connected,
    );
    let unknown = on_local(
        api::types::LocalRelayStatus {
            hosted_here: false,
            host_pid: None,
            ..local.clone()
        },
        ConnectionState::Connected,
    );
    let foreign = on_local(
        api::types::LocalRelayStatus {
            hosted_here: false,
            host_pid: None,
            error: Some("the local relay's address 127.0.0.1:7420 is held by another user (uid 1001)\u{1b}[31m".to_owned()),
            ..local
        },
        ConnectionState::Waiting,
    );
    let hosted = DaemonStatus {
        relay_url: Some("ws://127.0.0.1:7700/v1".to_owned()),
        hosted_relay: Some("ws://127.0.0.1:7700/v1".to_owned()),
        relay_kind: Some(api::types::RelayKind::Hosted),
        other_relays: Vec::new(),
        ..status_of(LockState::Unlocked)
    };
    let shown: Vec<String> = [here, elsewhere, unknown, foreign, hosted]
        .iter()
        .map(status)
        .collect();
    assert_snapshot!(shown.join("\n---\n"));
}

#[test]
fn whoami() {
    let info = AccountInfo {
        name: "Alice".to_owned(),
        address: "chat1aliceqqqqqqqqqqqqqqqqqqqqqqqqqqqq".to_owned(),
        device_id: 1,
        relay_url: "wss://relay.example/v1".to_owned(),
        handles: vec!["alice".to_owned(), "al".to_owned()],
        created_at_ms: T,
        unprotected: true,
        accept_strangers: true,
        passphrase_warning: None,
    };
    assert_snapshot!(account(&info));
}

#[test]
fn contacts_table() {
    let contacts = [
        contact("bob", Trust::Verified, Some("bob")),
        contact("carol-from-work", Trust::Unverified, None),
        contact("mallory", Trust::KeyChanged, None),
    ];
    assert_snapshot!(contact_list(&contacts));
    assert_eq!(contact_list(&[]), "(no contacts)");
}

#[test]
fn contact_with_safety_number() {
    let text = contact_details(&details()).unwrap_or_else(|e| panic!("{e}"));
    assert_snapshot!(text);
}

/// After a key change: both keys, what to do, and the number labelled as the new key's.
#[test]
fn contact_whose_key_changed() {
    let changed = ContactDetails {
        contact: Contact {
            trust: Trust::KeyChanged,
            ..details().contact
        },
        key_change: Some(api::types::KeyChange {
            old_address: "chat1old\u{1b}[31m".to_owned(),
            new_address: "chat1new".to_owned(),
            advice: "bob's identity key changed: compare the new number.".to_owned(),
        }),
        ..details()
    };
    let text = contact_details(&changed).unwrap_or_else(|e| panic!("{e}"));
    assert_snapshot!(text);
}

#[test]
fn safety_number_is_twelve_groups_in_three_rows() {
    let expected = "07418 52963 07418 52963\n07418 52963 07418 52963\n07418 52963 07418 52963";
    assert_eq!(safety_number(&details()), Ok(expected.to_owned()));

    // Without usable groups, the number itself is cut up.
    let ungrouped = ContactDetails {
        safety_number_groups: vec![],
        ..details()
    };
    assert_eq!(safety_number(&ungrouped), Ok(expected.to_owned()));
    let spaced = ContactDetails {
        safety_number: expected.replace('\n', " "),
        safety_number_groups: vec!["1".to_owned(); 12],
        ..details()
    };
    assert_eq!(safety_number(&spaced), Ok(expected.to_owned()));

    let short = ContactDetails {
        safety_number: "12345".to_owned(),
        safety_number_groups: vec![],
        ..details()
    };
    assert!(safety_number(&short).is_err());
    let letters = ContactDetails {
        safety_number: "x".repeat(60),
        safety_number_groups: vec![],
        ..details()
    };
    assert!(safety_number(&letters).is_err());
}

#[test]
fn events() {
    let at = |kind| Event {
        cursor: 1,
        time_ms: T,
        kind,
    };
    let bob = contact("bob", Trust::Verified, None);
    let lines = [
        event(&at(EventKind::MessageReceived {
            message: message(Direction::Incoming, "hello", None),
            sender_name: Some("Bob Builder".to_owned()),
            from_changed_key: false,
            from_request: false,
        })),
        event(&at(EventKind::MessageReceived {
            message: message(Direction::Incoming, "again", None),
            sender_name: Some("bob".to_owned()),
            from_changed_key: false,
            from_request: false,
        })),
        event(&at(EventKind::MessageReceived {
            message: message(Direction::Incoming, "it is me, new key", None),
            sender_name: None,
            from_changed_key: true,
            from_request: false,
        })),
        event(&at(EventKind::MessageStatus {
            message_id: "00112233445566778899aabbccddeeff".to_owned(),
            conversation: "bob".to_owned(),
            status: MessageStatus::Delivered,
            failure: None,
        })),
        event(&at(EventKind::MessageStatus {
            message_id: "00112233445566778899aabbccddeeff".to_owned(),
            conversation: "bob".to_owned(),
            status: MessageStatus::Failed,
            failure: Some("no devices".to_owned()),
        })),
        event(&at(EventKind::MessagesRead {
            conversation: "bob".to_owned(),
            marked: 1,
        })),
        event(&at(EventKind::MessagesRead {
            conversation: "bob".to_owned(),
            marked: 3,
        })),
        event(&at(EventKind::ContactAdded {
            contact: contact("carol", Trust::Unverified, None),
        })),
        event(&at(EventKind::ContactKeyChanged {
            alias: "bob".to_owned(),
            old_address: "chat1old".to_owned(),
            new_address: "chat1new".to_owned(),
        })),
        event(&at(EventKind::ContactTrust { contact: bob })),
        event(&at(EventKind::RelayConnection {
            state: ConnectionState::Waiting,
            relay_url: "wss://relay.example/v1".to_owned(),
            error: Some("connection refused".to_owned()),
        })),
        event(&at(EventKind::RelayConnection {
            state: ConnectionState::Connected,
            relay_url: "wss://relay.example/v1".to_owned(),
            error: None,
        })),
        event(&at(EventKind::Unlocked {})),
        event(&at(EventKind::Locked {})),
        event(&at(EventKind::ContactRemoved {
            alias: "carol".to_owned(),
            address: "chat1carol".to_owned(),
        })),
        event(&at(EventKind::ContactRenamed {
            old_alias: "bob".to_owned(),
            contact: contact("Robert", Trust::Verified, None),
        })),
        unknown_event(&json!({"cursor": 9, "time_ms": T, "kind": "group.created"})),
        unknown_event(&json!({"nonsense": true})),
    ];
    assert_snapshot!(lines.join("\n"));
}
