//! Events: what `events.subscribe` delivers in `events.event` notifications.
//!
//! Every event carries a cursor. Cursors increase strictly, across daemon restarts too (a
//! cursor is at least the daemon's clock in microseconds when the event was made), so a client
//! that remembers the last cursor it handled and subscribes with `since` sees every later
//! retained event exactly once. Message events are retained in the encrypted store (and replayed
//! once the account is unlocked); connection and lock events are retained in memory only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{ConnectionState, Contact, Message, MessageStatus};

/// The notification method name.
pub const NOTIFICATION: &str = "events.event";

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Strictly increasing; pass the last one handled as `since` when resubscribing.
    pub cursor: u64,
    /// When the event happened.
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; `kind` names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum EventKind {
    /// A message arrived (it is already stored).
    #[serde(rename = "message.received")]
    MessageReceived {
        /// The message.
        message: Message,
        /// The sender's display name, if known.
        sender_name: Option<String>,
        /// The message came from the contact's new identity key, which is not accepted yet
        /// (the contact's `trust` is `key_changed`): show it as such.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        from_changed_key: bool,
        /// The sender is a message request (a stranger not accepted yet): show it as a
        /// request, not as a conversation.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        from_request: bool,
    },
    /// An outgoing message changed status.
    #[serde(rename = "message.status")]
    MessageStatus {
        /// The message.
        message_id: String,
        /// Its conversation.
        conversation: String,
        /// The new status.
        status: MessageStatus,
        /// Why, when the status is `failed`.
        failure: Option<String>,
    },
    /// Incoming messages were marked read (here or by another client).
    #[serde(rename = "messages.read")]
    MessagesRead {
        /// The conversation.
        conversation: String,
        /// How many became read.
        marked: u32,
    },
    /// A contact was added (by `contacts.add`, a handle lookup, an invite, or a first message
    /// from an unknown sender).
    #[serde(rename = "contact.added")]
    ContactAdded {
        /// The contact.
        contact: Contact,
    },
    /// A contact's identity key changed; sending to it is refused until `contacts.trust`.
    #[serde(rename = "contact.key_changed")]
    ContactKeyChanged {
        /// The contact's alias.
        alias: String,
        /// The address that was pinned.
        old_address: String,
        /// The new address.
        new_address: String,
    },
    /// A contact's trust changed (`contacts.verify`, `contacts.trust`).
    #[serde(rename = "contact.trust")]
    ContactTrust {
        /// The contact.
        contact: Contact,
    },
    /// The relay connection changed state.
    #[serde(rename = "relay.connection")]
    RelayConnection {
        /// The new state.
        state: ConnectionState,
        /// The relay.
        relay_url: String,
        /// Why the last attempt failed, when `state` is `waiting`.
        error: Option<String>,
    },
    /// The account was unlocked.
    #[serde(rename = "account.unlocked")]
    Unlocked {},
    /// The account was locked.
    #[serde(rename = "account.locked")]
    Locked {},
    /// A contact was removed (`contacts.remove`), with its conversation.
    #[serde(rename = "contact.removed")]
    ContactRemoved {
        /// The alias it had.
        alias: String,
        /// Its address.
        address: String,
    },
    /// A stranger wrote first (a text or an introduction): a message request, listed by
    /// `requests.list` until accepted, declined or blocked. Its messages arrive as
    /// `message.received` with `from_request`.
    #[serde(rename = "request.received")]
    RequestReceived {
        /// Who (`request` is true).
        contact: Contact,
    },
    /// A contact's daemon refused the invite this account accepted from it: writing to it is
    /// refused (`invite_refused`) until it introduces itself or a new invite is accepted.
    #[serde(rename = "invite.refused")]
    InviteRefused {
        /// The contact's alias.
        alias: String,
        /// Why ("it was already used", "it had expired", "this account never issued it").
        reason: String,
    },
    /// A contact (or a message request) was blocked or unblocked (`contacts.block`,
    /// `contacts.unblock`, `requests.block`): `contact.blocked` says which.
    #[serde(rename = "contact.block_changed")]
    ContactBlockChanged {
        /// The contact as it is now.
        contact: Contact,
    },
    /// A contact's alias changed (`contacts.rename`); its conversation is named by the new
    /// alias from now on.
    #[serde(rename = "contact.renamed")]
    ContactRenamed {
        /// The alias it had.
        old_alias: String,
        /// The contact, with its new alias.
        contact: Contact,
    },
}

impl EventKind {
    /// The `kind` value of every variant, for documentation and tests.
    pub const KINDS: &'static [&'static str] = &[
        "message.received",
        "message.status",
        "messages.read",
        "contact.added",
        "contact.key_changed",
        "contact.trust",
        "relay.connection",
        "account.unlocked",
        "account.locked",
        "contact.removed",
        "contact.renamed",
        "request.received",
        "invite.refused",
        "contact.block_changed",
    ];

    /// This variant's `kind` value.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MessageReceived { .. } => "message.received",
            Self::MessageStatus { .. } => "message.status",
            Self::MessagesRead { .. } => "messages.read",
            Self::ContactAdded { .. } => "contact.added",
            Self::ContactKeyChanged { .. } => "contact.key_changed",
            Self::ContactTrust { .. } => "contact.trust",
            Self::RelayConnection { .. } => "relay.connection",
            Self::Unlocked {} => "account.unlocked",
            Self::Locked {} => "account.locked",
            Self::ContactRemoved { .. } => "contact.removed",
            Self::ContactRenamed { .. } => "contact.renamed",
            Self::RequestReceived { .. } => "request.received",
            Self::InviteRefused { .. } => "invite.refused",
            Self::ContactBlockChanged { .. } => "contact.block_changed",
        }
    }

    /// Whether the event is retained in the encrypted store (otherwise in memory only).
    pub fn is_persistent(&self) -> bool {
        !matches!(
            self,
            Self::RelayConnection { .. } | Self::Unlocked {} | Self::Locked {}
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_tag_matches_name() {
        let samples = [
            EventKind::Locked {},
            EventKind::Unlocked {},
            EventKind::RelayConnection {
                state: ConnectionState::Connected,
                relay_url: "ws://127.0.0.1:1/v1".into(),
                error: None,
            },
            EventKind::MessagesRead {
                conversation: "bob".into(),
                marked: 2,
            },
            EventKind::ContactRemoved {
                alias: "bob".into(),
                address: "chat1test".into(),
            },
            EventKind::InviteRefused {
                alias: "bob".into(),
                reason: "it was already used".into(),
            },
        ];
        for kind in samples {
            let event = Event {
                cursor: 7,
                time_ms: 1,
                kind: kind.clone(),
            };
            let json = serde_json::to_value(&event).unwrap_or_default();
            assert_eq!(json["kind"], kind.name());
            assert_eq!(json["cursor"], 7);
            assert!(EventKind::KINDS.contains(&kind.name()));
            let back: Event = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, event);
        }
    }
}
