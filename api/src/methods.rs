//! Method names and the table that describes every method (params, result, errors). The
//! daemon registers exactly the methods in [`ALL`] (a test in chatd checks it), and the OpenRPC
//! document is built from the same table.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::ErrorCode;
use crate::types::*;

/// Reports the daemon's state.
pub const DAEMON_STATUS: &str = "daemon.status";
/// Creates the account.
pub const ACCOUNT_CREATE: &str = "account.create";
/// Unlocks the account.
pub const ACCOUNT_UNLOCK: &str = "account.unlock";
/// Locks the account.
pub const ACCOUNT_LOCK: &str = "account.lock";
/// Describes the account.
pub const ACCOUNT_INFO: &str = "account.info";
/// Claims a handle on the relay.
pub const ACCOUNT_REGISTER_HANDLE: &str = "account.register_handle";
/// Gives up a handle on the relay.
pub const ACCOUNT_RELEASE_HANDLE: &str = "account.release_handle";
/// `account.move_relay`.
pub const ACCOUNT_MOVE_RELAY: &str = "account.move_relay";
/// Adds a contact.
pub const CONTACTS_ADD: &str = "contacts.add";
/// Lists contacts.
pub const CONTACTS_LIST: &str = "contacts.list";
/// Shows one contact with its safety number.
pub const CONTACTS_GET: &str = "contacts.get";
/// Removes a contact.
pub const CONTACTS_REMOVE: &str = "contacts.remove";
/// Marks a contact verified.
pub const CONTACTS_VERIFY: &str = "contacts.verify";
/// Accepts a contact's changed key.
pub const CONTACTS_TRUST: &str = "contacts.trust";
/// Blocks a contact.
pub const CONTACTS_BLOCK: &str = "contacts.block";
/// Unblocks a contact.
pub const CONTACTS_UNBLOCK: &str = "contacts.unblock";
/// Sets whether strangers may write.
pub const ACCOUNT_SET_STRANGERS: &str = "account.set_strangers";
/// Creates an invite code.
pub const INVITES_CREATE: &str = "invites.create";
/// Accepts an invite code.
pub const INVITES_ACCEPT: &str = "invites.accept";
/// Sends a message.
pub const MESSAGES_SEND: &str = "messages.send";
/// Pages through a conversation.
pub const MESSAGES_HISTORY: &str = "messages.history";
/// Marks messages read.
pub const MESSAGES_MARK_READ: &str = "messages.mark_read";
/// Lists conversations.
pub const CONVERSATIONS_LIST: &str = "conversations.list";
/// Subscribes to events.
pub const EVENTS_SUBSCRIBE: &str = "events.subscribe";
/// Ends a subscription.
pub const EVENTS_UNSUBSCRIBE: &str = "events.unsubscribe";
/// Returns the OpenRPC document.
pub const RPC_DISCOVER: &str = "rpc.discover";

/// Builds a JSON Schema with a generator (so shared types land in `components`).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One method, as documented.
#[derive(Debug, Clone, Copy)]
pub struct MethodDoc {
    /// The method name.
    pub name: &'static str,
    /// One line.
    pub summary: &'static str,
    /// More detail (may be empty).
    pub description: &'static str,
    /// Schema of the params object.
    pub params: SchemaFn,
    /// Schema of the result.
    pub result: SchemaFn,
    /// The application errors it can return (beyond the standard JSON-RPC ones).
    pub errors: &'static [ErrorCode],
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn any_object(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "object" })
}

fn subscription_id(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "description": "The subscription id; notifications carry it in `params.subscription`.",
        "type": ["string", "integer"]
    })
}

fn boolean(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "boolean" })
}

use ErrorCode as E;

const LOCKED: &[ErrorCode] = &[E::NoAccount, E::Locked];

/// Every method, in documentation order.
pub const ALL: &[MethodDoc] = &[
    MethodDoc {
        name: DAEMON_STATUS,
        summary: "Reports the daemon's version, lock state and relay connection.",
        description: "Works in every state; never fails. `store_error` is set while the store \
            cannot write (a full disk): requests that write then fail with `store_error`. \
            `relay_kind` says whether the relay is the user's local relay, the one this daemon \
            hosts, or a remote one; `local_relay` (daemons with no relay configured) says who \
            hosts the local relay now and, in `error`, why it cannot be used (its address held \
            by another user).",
        params: schema::<Empty>,
        result: schema::<DaemonStatus>,
        errors: &[],
    },
    MethodDoc {
        name: ACCOUNT_CREATE,
        summary: "Creates the account (identity and device keys) and unlocks it.",
        description: "The store key is derived from the passphrase with Argon2id. Without a \
            passphrase, `no_passphrase: true` must be given explicitly. Publishes prekeys to the \
            relay when it is reachable.",
        params: schema::<CreateAccount>,
        result: schema::<AccountInfo>,
        errors: &[
            E::AccountExists,
            E::PassphraseRequired,
            E::InvalidRelayUrl,
            E::InvalidAlias,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: ACCOUNT_UNLOCK,
        summary: "Unlocks the account with its passphrase and connects to the relay.",
        description: "After three wrong passphrases in a row, the next attempt is answered only \
            after 1 s, and the delay doubles with every further wrong one, up to 60 s; attempts \
            wait in turn, and the right passphrase resets the count.",
        params: schema::<Unlock>,
        result: schema::<AccountInfo>,
        errors: &[
            E::NoAccount,
            E::WrongPassphrase,
            E::AlreadyUnlocked,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: ACCOUNT_LOCK,
        summary: "Locks the account: zeroizes every secret and drops the relay connection.",
        description: "Locking a locked account succeeds.",
        params: schema::<Empty>,
        result: schema::<Empty>,
        errors: &[E::NoAccount],
    },
    MethodDoc {
        name: ACCOUNT_INFO,
        summary: "Describes the account: name, address, device, relay, handles.",
        description: "",
        params: schema::<Empty>,
        result: schema::<AccountInfo>,
        errors: LOCKED,
    },
    MethodDoc {
        name: ACCOUNT_REGISTER_HANDLE,
        summary: "Claims a handle on the relay, so others can reach this account as @handle.",
        description: "",
        params: schema::<RegisterHandle>,
        result: schema::<HandleRegistered>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::InvalidHandle,
            E::HandleTaken,
            E::RelayUnreachable,
            E::RelayError,
        ],
    },
    MethodDoc {
        name: ACCOUNT_RELEASE_HANDLE,
        summary: "Gives up a handle this account holds on the relay, so another account may claim it.",
        description: "",
        params: schema::<RegisterHandle>,
        result: schema::<Empty>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::InvalidHandle,
            E::NotFound,
            E::RelayUnreachable,
            E::RelayError,
        ],
    },
    MethodDoc {
        name: ACCOUNT_MOVE_RELAY,
        summary: "Moves the account's home relay: registers there and tells every contact.",
        description: "The new relay becomes the home relay at once: the account registers \
            there (prekeys, delivery tokens, its reachability record), signs a newer \
            reachability record naming it, and sends every contact an introduction carrying it, \
            so they deliver there from then on (SPEC.md 10.9). The old relay stays connected \
            to drain its mailbox (and learns the new record, for lookups there) until it has \
            been quiet for a day and seven days have passed. Handles stay on the old relay, \
            shown as `handle@old-relay`, until released with `account.release_handle`.",
        params: schema::<MoveRelay>,
        result: schema::<AccountInfo>,
        errors: &[E::NoAccount, E::Locked, E::InvalidRelayUrl, E::StoreError],
    },
    MethodDoc {
        name: ACCOUNT_SET_STRANGERS,
        summary: "Sets whether accounts that are not contacts may write to this one.",
        description: "With `accept: false` the home relay refuses envelopes that carry no \
            delivery token this account gave out (`token_required` to the sender), so only \
            contacts (and invites) reach it. With `accept: true` (the default) strangers are \
            admitted at the relay's low stranger rate (SPEC.md 10.9).",
        params: schema::<SetStrangers>,
        result: schema::<AccountInfo>,
        errors: &[E::NoAccount, E::Locked, E::StoreError],
    },
    MethodDoc {
        name: CONTACTS_ADD,
        summary: "Adds a contact by address or @handle and pins its identity key.",
        description: "",
        params: schema::<AddContact>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::AliasTaken,
            E::InvalidAlias,
            E::InvalidAddress,
            E::NotFound,
            E::RelayUnreachable,
        ],
    },
    MethodDoc {
        name: CONTACTS_LIST,
        summary: "Lists every contact.",
        description: "",
        params: schema::<Empty>,
        result: schema::<ContactList>,
        errors: LOCKED,
    },
    MethodDoc {
        name: CONTACTS_GET,
        summary: "Shows one contact with the safety number to compare.",
        description: "",
        params: schema::<ContactRef>,
        result: schema::<ContactDetails>,
        errors: &[E::NoAccount, E::Locked, E::NotFound],
    },
    MethodDoc {
        name: CONTACTS_REMOVE,
        summary: "Removes a contact, its sessions and its conversation.",
        description: "",
        params: schema::<ContactRef>,
        result: schema::<Empty>,
        errors: &[E::NoAccount, E::Locked, E::NotFound],
    },
    MethodDoc {
        name: CONTACTS_VERIFY,
        summary: "Marks a contact verified after comparing safety numbers.",
        description: "Refused while the contact's key change is untrusted.",
        params: schema::<VerifyContact>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::SafetyNumberMismatch,
            E::UntrustedKeyChange,
        ],
    },
    MethodDoc {
        name: CONTACTS_TRUST,
        summary: "Accepts a contact's changed identity key (it becomes unverified).",
        description: "",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[E::NoAccount, E::Locked, E::NotFound],
    },
    MethodDoc {
        name: CONTACTS_BLOCK,
        summary: "Blocks a contact: its messages are dropped, at the relay and here.",
        description: "The delivery token this account gave the contact is revoked at the home \
            relay, which from then on drops the contact's envelopes without storing them and \
            without telling the sender, and without learning who it is (SPEC.md 10.9); anything \
            that still arrives from the contact (sent before the block reached the relay) is \
            dropped unread, without receipts. Sending to a blocked contact is refused \
            (`contact_blocked`). Blocking a blocked contact succeeds.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::StoreError],
    },
    MethodDoc {
        name: CONTACTS_UNBLOCK,
        summary: "Unblocks a contact: its token is accepted again and its messages arrive.",
        description: "Messages the contact sent while it was blocked are gone.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::StoreError],
    },
    MethodDoc {
        name: INVITES_CREATE,
        summary: "Creates a one-time invite code carrying the relay, this identity and a token.",
        description: "",
        params: schema::<Empty>,
        result: schema::<Invite>,
        errors: LOCKED,
    },
    MethodDoc {
        name: INVITES_ACCEPT,
        summary: "Accepts an invite: adds the inviter (pinned) and introduces this account.",
        description: "",
        params: schema::<AcceptInvite>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::InvalidInvite,
            E::AliasTaken,
            E::InvalidAlias,
        ],
    },
    MethodDoc {
        name: MESSAGES_SEND,
        summary: "Sends a text message; returns once it is durable in the outbox.",
        description: "Delivery continues in the background; `message.status` events report \
            `sent`, `delivered`, `read` or `failed`.",
        params: schema::<SendMessage>,
        result: schema::<SentMessage>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::InvalidAddress,
            E::InvalidMessage,
            E::UntrustedKeyChange,
            E::RelayUnreachable,
            E::ContactBlocked,
        ],
    },
    MethodDoc {
        name: MESSAGES_HISTORY,
        summary: "Pages through a conversation, newest page first, by a stable cursor.",
        description: "`limit` is 1 to 500 (default 50); any other value is refused with the \
            standard invalid params error (-32602).",
        params: schema::<History>,
        result: schema::<HistoryPage>,
        errors: &[E::NoAccount, E::Locked, E::NotFound],
    },
    MethodDoc {
        name: MESSAGES_MARK_READ,
        summary: "Marks received messages read and sends read receipts.",
        description: "",
        params: schema::<MarkRead>,
        result: schema::<MarkedRead>,
        errors: &[E::NoAccount, E::Locked, E::NotFound],
    },
    MethodDoc {
        name: CONVERSATIONS_LIST,
        summary: "Lists conversations with unread counts, most recent first.",
        description: "",
        params: schema::<Empty>,
        result: schema::<ConversationList>,
        errors: LOCKED,
    },
    MethodDoc {
        name: EVENTS_SUBSCRIBE,
        summary: "Subscribes this connection to events (`events.event` notifications).",
        description: "With `since`, retained events after that cursor are delivered first. \
            Works in every state; message events retained in the store are replayed once \
            the account is unlocked. A subscriber that falls more than 4,096 events behind \
            (it does not read its notifications) is caught up from the retained events, \
            starting after the last event it was sent (or, if none yet, after the newest one \
            published before it subscribed, or its `since`): it gets each retained event once \
            and in cursor order, never events from before it subscribed that it did not ask \
            for, and it can miss only transient events (`relay.connection`, `account.*`) \
            beyond the 256 kept in memory, as a reconnect with `since` can.",
        params: schema::<Subscribe>,
        result: subscription_id,
        errors: &[],
    },
    MethodDoc {
        name: EVENTS_UNSUBSCRIBE,
        summary: "Ends a subscription.",
        description: "Answers `true`. An id that is not a subscription of this connection (never \
            was, already ended, or another connection's) is error 1024 `unknown_subscription`.",
        params: schema::<Unsubscribe>,
        result: boolean,
        errors: &[E::UnknownSubscription],
    },
    MethodDoc {
        name: RPC_DISCOVER,
        summary: "Returns the OpenRPC document of this API.",
        description: "",
        params: schema::<Empty>,
        result: any_object,
        errors: &[],
    },
];

/// The documentation of one method.
pub fn find(name: &str) -> Option<&'static MethodDoc> {
    ALL.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_namespaced() {
        let mut seen = std::collections::HashSet::new();
        for method in ALL {
            assert!(seen.insert(method.name), "{} twice", method.name);
            assert!(
                method.name.contains('.'),
                "{} is not namespaced",
                method.name
            );
            assert!(method.summary.ends_with('.'), "{}: summary", method.name);
        }
        assert!(find(MESSAGES_SEND).is_some());
        assert!(find("nope").is_none());
    }
}
