//! Unit tests of the notification rules.

use super::*;

fn counts(list: &[(&str, u32)]) -> HashMap<String, u32> {
    list.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

fn conversation(name: &str) -> Slot {
    Slot::Conversation(name.to_owned())
}

#[test]
fn a_message_shows_its_sender_and_preview_and_then_a_count() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "hello\nthere");
    let effects = inbox.flush(Some(&counts(&[("alice", 1)])));
    assert_eq!(
        effects,
        [Effect::Show(
            conversation("alice"),
            Content {
                summary: "alice".into(),
                body: "hello there".into(),
                urgency: Urgency::Normal,
            }
        )]
    );
    inbox.received("alice", "alice", "again");
    inbox.received("bob", "Bob (bob)", "hi");
    let effects = inbox.flush(Some(&counts(&[("alice", 2), ("bob", 1)])));
    assert_eq!(effects.len(), 2);
    assert!(matches!(&effects[0], Effect::Show(s, c)
        if *s == conversation("alice") && c.body == "again\n2 new messages"));
    assert!(matches!(&effects[1], Effect::Show(s, c)
        if *s == conversation("bob") && c.summary == "Bob (bob)" && c.body == "hi"));
}

#[test]
fn reading_a_conversation_closes_its_notification_only_when_nothing_is_unread() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "one");
    inbox.received("bob", "bob", "two");
    inbox.flush(Some(&counts(&[("alice", 1), ("bob", 1)])));
    inbox.read("alice");
    inbox.read("bob");
    let effects = inbox.flush(Some(&counts(&[("bob", 1)])));
    assert_eq!(effects, [Effect::Close(conversation("alice"))]);
    // Reading something never shown closes nothing.
    inbox.read("carol");
    assert_eq!(inbox.flush(Some(&counts(&[("bob", 1)]))), []);
}

#[test]
fn a_message_already_read_when_the_burst_is_handled_is_not_shown() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "read elsewhere");
    inbox.read("alice");
    assert_eq!(inbox.flush(Some(&counts(&[]))), []);
}

#[test]
fn without_counts_the_inbox_counts_itself() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "one");
    inbox.received("alice", "alice", "two");
    let effects = inbox.flush(None);
    assert!(matches!(&effects[0], Effect::Show(_, c) if c.body == "two\n2 new messages"));
    inbox.read("alice");
    assert_eq!(inbox.flush(None), [Effect::Close(conversation("alice"))]);
    inbox.received("alice", "alice", "three");
    let effects = inbox.flush(None);
    assert!(matches!(&effects[0], Effect::Show(_, c) if c.body == "three"));
}

#[test]
fn privacy_mode_shows_one_content_free_notification() {
    let mut inbox = Inbox::new(true, 100);
    inbox.received("alice", "alice", "secret");
    let effects = inbox.flush(Some(&counts(&[("alice", 1)])));
    assert_eq!(
        effects,
        [Effect::Show(
            Slot::Messages,
            Content {
                summary: "New message".into(),
                body: String::new(),
                urgency: Urgency::Normal,
            }
        )]
    );
    inbox.received("bob", "bob", "also secret");
    let effects = inbox.flush(Some(&counts(&[("alice", 1), ("bob", 2)])));
    assert!(matches!(&effects[0], Effect::Show(Slot::Messages, c)
        if c.summary == "3 new messages" && c.body.is_empty()));
    inbox.read("alice");
    assert_eq!(inbox.flush(Some(&counts(&[("bob", 2)]))), []);
    inbox.read("bob");
    assert_eq!(
        inbox.flush(Some(&counts(&[]))),
        [Effect::Close(Slot::Messages)]
    );
    for effect in inbox.flush(None) {
        if let Effect::Show(_, content) = effect {
            assert!(!content.summary.contains("secret") && !content.body.contains("secret"));
        }
    }
}

#[test]
fn key_changes_are_critical_and_close_when_trusted() {
    let mut inbox = Inbox::new(false, 100);
    inbox.key_changed("bob", "bob");
    let effects = inbox.flush(None);
    let [Effect::Show(Slot::KeyChange(alias), content)] = effects.as_slice() else {
        panic!("one key change notification: {effects:?}");
    };
    assert_eq!(alias, "bob");
    assert_eq!(content.urgency, Urgency::Critical);
    assert!(content.summary.contains("bob"));
    assert!(content.body.contains("chatctl contact trust bob"));
    inbox.trusted("bob");
    assert_eq!(
        inbox.flush(None),
        [Effect::Close(Slot::KeyChange("bob".into()))]
    );

    let mut private = Inbox::new(true, 100);
    private.key_changed("bob", "bob");
    let effects = private.flush(None);
    let [Effect::Show(_, content)] = effects.as_slice() else {
        panic!("one key change notification: {effects:?}");
    };
    assert_eq!(content.urgency, Urgency::Critical);
    assert!(!content.summary.contains("bob") && !content.body.contains("bob"));
}

#[test]
fn locking_closes_message_notifications_but_keeps_warnings() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "one");
    inbox.key_changed("bob", "bob");
    inbox.flush(Some(&counts(&[("alice", 1)])));
    inbox.received("carol", "carol", "pending when locked");
    inbox.locked();
    assert_eq!(inbox.flush(None), [Effect::Close(conversation("alice"))]);
    let shown: Vec<&Slot> = inbox.shown().collect();
    assert_eq!(shown, [&Slot::KeyChange("bob".into())]);
}

#[test]
fn previews_and_names_are_sanitized_and_bounded() {
    let mut inbox = Inbox::new(false, 20);
    inbox.received("x", "evil\u{202E}name\n", &"long text ".repeat(50));
    let effects = inbox.flush(Some(&counts(&[("x", 1)])));
    let [Effect::Show(_, content)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(content.summary, "evil name");
    assert_eq!(content.body.chars().count(), 20);
    assert!(content.body.ends_with('…'));
}

#[test]
fn removing_a_contact_closes_its_notifications() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("alice", "alice", "one");
    inbox.key_changed("alice", "alice");
    inbox.flush(Some(&counts(&[("alice", 1)])));
    inbox.removed("alice");
    let mut effects = inbox.flush(Some(&counts(&[])));
    effects.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        effects,
        [
            Effect::Close(conversation("alice")),
            Effect::Close(Slot::KeyChange("alice".into())),
        ]
    );
    assert_eq!(inbox.shown().count(), 0);
}

#[test]
fn renaming_a_contact_moves_its_notifications_to_the_new_alias() {
    let mut inbox = Inbox::new(false, 100);
    inbox.received("bob", "bob", "hi");
    inbox.key_changed("bob", "bob");
    inbox.flush(Some(&counts(&[("bob", 1)])));
    inbox.renamed("bob", "robert", "robert");
    let effects = inbox.flush(Some(&counts(&[("robert", 1)])));
    assert!(
        effects.contains(&Effect::Close(conversation("bob"))),
        "{effects:?}"
    );
    assert!(
        effects.contains(&Effect::Close(Slot::KeyChange("bob".into()))),
        "{effects:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Show(Slot::KeyChange(a), _) if a == "robert")),
        "{effects:?}"
    );
    // The next message shows under the new alias.
    inbox.received("robert", "robert", "again");
    let effects = inbox.flush(Some(&counts(&[("robert", 2)])));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Show(slot, _) if *slot == conversation("robert"))),
        "{effects:?}"
    );
    // A message not yet shown when the contact is renamed is shown under the new alias.
    inbox.received("robert", "robert", "and again");
    inbox.renamed("robert", "bobby", "bobby");
    let effects = inbox.flush(Some(&counts(&[("bobby", 3)])));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Show(slot, _) if *slot == conversation("bobby"))),
        "{effects:?}"
    );
}

#[test]
fn a_message_request_says_so_and_closes_when_accepted_or_declined() {
    let request = |alias: &str| Slot::Request(alias.to_owned());
    let mut inbox = Inbox::new(false, 100);
    inbox.request("mallory", "Mallory", None);
    inbox.request("mallory", "Mallory", Some("buy my coins"));
    let effects = inbox.flush(Some(&counts(&[])));
    assert_eq!(
        effects,
        [Effect::Show(
            request("mallory"),
            Content {
                summary: "Message request from Mallory".into(),
                body: "buy my coins\nchatctl requests accept mallory (or decline, block)".into(),
                urgency: Urgency::Normal,
            }
        )]
    );
    // Not a conversation: nothing counts as unread, and accepting closes the request.
    assert_eq!(inbox.shown().count(), 1);
    inbox.request_closed("mallory");
    assert_eq!(
        inbox.flush(Some(&counts(&[]))),
        [Effect::Close(request("mallory"))]
    );
    // Declined (removed) the same.
    inbox.request("eve", "eve", Some("hi"));
    inbox.flush(Some(&counts(&[])));
    inbox.removed("eve");
    let effects = inbox.flush(Some(&counts(&[])));
    assert!(
        effects.contains(&Effect::Close(request("eve"))),
        "{effects:?}"
    );
}

#[test]
fn a_message_request_in_privacy_mode_names_no_one() {
    let mut inbox = Inbox::new(true, 100);
    inbox.request("mallory", "Mallory", Some("secret"));
    let effects = inbox.flush(Some(&counts(&[])));
    let [Effect::Show(Slot::Request(_), content)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(content.summary, "New message request");
    assert!(!content.body.contains("Mallory") && !content.body.contains("secret"));
}
