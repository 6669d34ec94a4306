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
/// Changes the passphrase.
pub const ACCOUNT_CHANGE_PASSPHRASE: &str = "account.change_passphrase";
/// Deletes the account and its data.
pub const ACCOUNT_DELETE: &str = "account.delete";
/// Gives a contact another alias.
pub const CONTACTS_RENAME: &str = "contacts.rename";
/// Lists the messages not yet sent, with why each waits.
pub const OUTBOX_LIST: &str = "outbox.list";
/// Takes a message out of the outbox (it fails as cancelled).
pub const OUTBOX_CANCEL: &str = "outbox.cancel";
/// Tries queued messages again now, skipping their retry delay.
pub const OUTBOX_RETRY: &str = "outbox.retry";
/// Sends a failed message's text again.
pub const MESSAGES_RESEND: &str = "messages.resend";
/// Stops the daemon.
pub const DAEMON_STOP: &str = "daemon.stop";
/// Lists message requests.
pub const REQUESTS_LIST: &str = "requests.list";
/// Accepts a message request: the stranger becomes a contact.
pub const REQUESTS_ACCEPT: &str = "requests.accept";
/// Declines a message request: it is forgotten.
pub const REQUESTS_DECLINE: &str = "requests.decline";
/// Blocks a message request.
pub const REQUESTS_BLOCK: &str = "requests.block";

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
        summary: "Lists every contact (message requests are listed by `requests.list`).",
        description: "",
        params: schema::<Empty>,
        result: schema::<ContactList>,
        errors: LOCKED,
    },
    MethodDoc {
        name: CONTACTS_GET,
        summary: "Shows one contact with the safety number to compare.",
        description: "While the contact's identity key changed and the new key is not \
            accepted (`trust` is `key_changed`), `key_change` holds the old and the new \
            address and what to do, and the safety number (with its groups and QR payload) is \
            that of the **new** key: the one to compare with the contact before \
            `contacts.verify` or `contacts.trust`. Every method that names a contact or conversation (`contact`, `conversation`, `to`) \
            takes the same forms: an alias (case does not matter), `@alias`, `@handle` (a \
            contact's handle; `@handle@host[:port]` for one on another relay) or an address \
            (`chat1...`, or `chat1...@host[:port]`). A name that fits several contacts is \
            refused with `ambiguous_contact`, whose message lists them.",
        params: schema::<ContactRef>,
        result: schema::<ContactDetails>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
    },
    MethodDoc {
        name: CONTACTS_REMOVE,
        summary: "Removes a contact, its sessions and its conversation.",
        description: "Announced with a `contact.removed` event.",
        params: schema::<ContactRef>,
        result: schema::<Empty>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
    },
    MethodDoc {
        name: CONTACTS_VERIFY,
        summary: "Marks a contact verified after comparing safety numbers.",
        description: "The number is checked against the contact's current key or, while its \
            key changed (`key_changed`), against the **new** key: a match accepts the new key \
            and marks it verified at once (queued messages and held read receipts then go to \
            it). The old key's number no longer matches, and the error says so. Without \
            `safety_number`, the caller states the numbers were compared.",
        params: schema::<VerifyContact>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::SafetyNumberMismatch,
        ],
    },
    MethodDoc {
        name: CONTACTS_TRUST,
        summary: "Accepts a contact's changed identity key (it becomes unverified).",
        description: "While a contact's key change is not accepted, its messages (from \
            either key) still arrive, and delivery receipts go back to the key that sent \
            each; read receipts, messages to it and introductions wait. Accepting the new key \
            sends them, to the new key. On a contact whose key did not change it changes \
            nothing and answers the contact as it is.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
    },
    MethodDoc {
        name: CONTACTS_BLOCK,
        summary: "Blocks a contact: its messages are dropped, at the relay and here.",
        description: "The delivery token this account gave the contact is revoked at the home \
            relay, which from then on drops the contact's envelopes without storing them and \
            without telling the sender, and without learning who it is (SPEC.md 10.9); anything \
            that still arrives from the contact (sent before the block reached the relay) is \
            dropped unread, without receipts. Sending to a blocked contact is refused \
            (`contact_blocked`). Blocking a blocked contact succeeds. A change is announced \
            with a `contact.block_changed` event.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: REQUESTS_LIST,
        summary: "Lists message requests: strangers who wrote first, newest activity first.",
        description: "A first message (or introduction) from an account that is not a contact \
            makes it a request (a `request.received` event; its messages arrive as \
            `message.received` with `from_request`). A request is not a contact: it is not in \
            `contacts.list` or `conversations.list`, writing to it is refused \
            (`message_request`), and it gets delivery receipts but no read receipts and no \
            introduction (so it learns nothing about this account) until accepted. Its alias \
            names it in `requests.*`, `messages.history`, `messages.mark_read` and \
            `contacts.get`. Contacts added with `contacts.add` and invites never pass through \
            here. With `blocked: true`, lists the blocked requests instead.",
        params: schema::<ListRequests>,
        result: schema::<RequestList>,
        errors: LOCKED,
    },
    MethodDoc {
        name: REQUESTS_ACCEPT,
        summary: "Accepts a message request: the stranger becomes a contact.",
        description: "The contact gets this account's introduction (with a delivery token of \
            its own) and read receipts for the messages already read; a `contact.added` event \
            follows. `alias` renames it on the way. `contacts.add` of a request's address \
            accepts it too.",
        params: schema::<AcceptRequest>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::AliasTaken,
            E::InvalidAlias,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: REQUESTS_DECLINE,
        summary: "Declines a message request: it and its messages are forgotten.",
        description: "Nothing is sent to the stranger. If it writes again, that is a new \
            request; to stop it writing, use `requests.block`. A `contact.removed` event \
            follows.",
        params: schema::<ContactRef>,
        result: schema::<Empty>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
    },
    MethodDoc {
        name: REQUESTS_BLOCK,
        summary: "Blocks a message request: what it sends is dropped, also after a restart.",
        description: "The request is kept, blocked, so its messages are dropped unread and \
            unanswered (listed by `requests.list` with `blocked: true`); `contacts.unblock` \
            makes it an open request again.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: CONTACTS_UNBLOCK,
        summary: "Unblocks a contact: its token is accepted again and its messages arrive.",
        description: "Messages the contact sent while it was blocked are gone.",
        params: schema::<ContactRef>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::StoreError,
        ],
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
            E::AmbiguousContact,
            E::MessageRequest,
            E::InviteRefused,
        ],
    },
    MethodDoc {
        name: MESSAGES_HISTORY,
        summary: "Pages through a conversation, newest page first, by a stable cursor.",
        description: "`limit` is 1 to 500 (default 50); any other value is refused with the \
            standard invalid params error (-32602).",
        params: schema::<History>,
        result: schema::<HistoryPage>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
    },
    MethodDoc {
        name: MESSAGES_MARK_READ,
        summary: "Marks received messages read and sends read receipts.",
        description: "While the contact's key change is not accepted (`key_changed`), the \
            read receipts are held, and sent once the new key is accepted (`contacts.trust` \
            or `contacts.verify`).",
        params: schema::<MarkRead>,
        result: schema::<MarkedRead>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::AmbiguousContact],
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
    MethodDoc {
        name: ACCOUNT_CHANGE_PASSPHRASE,
        summary: "Changes the passphrase that protects the store key.",
        description: "Works locked or unlocked. The store's master key is wrapped again under \
            Argon2id of the new passphrase (a new salt, the daemon's Argon2id parameters for \
            new accounts); nothing else is re-encrypted. The new record replaces the old one \
            in one write: if the daemon crashes or the write fails (`store_error`), the old \
            passphrase still works. `old_passphrase` is required for a protected account and \
            is checked like `account.unlock`'s (a wrong one is `wrong_passphrase`, and counts \
            towards the same delay). `no_passphrase: true` instead of `new_passphrase` \
            removes the protection; a new passphrase on an account created without one \
            protects it. A weak new passphrase is accepted, with `passphrase_warning` saying \
            why it is weak.",
        params: schema::<ChangePassphrase>,
        result: schema::<PassphraseChanged>,
        errors: &[
            E::NoAccount,
            E::WrongPassphrase,
            E::PassphraseRequired,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: ACCOUNT_DELETE,
        summary: "Deletes the account: its keys, contacts, messages and every file of its store.",
        description: "Needs the passphrase (checked like `account.unlock`'s, and counted \
            towards the same delay), or for an account created without one `confirm: true`. \
            A locked account is unlocked first, so that it can sign the release of its \
            handles. Its handles are released at their relays (`released_handles`), waiting \
            at most 5 s for the connection; those that cannot be are `kept_handles`. Then the \
            account is locked (every secret zeroized, the relay connection closed) and the \
            store's files are removed; the daemon keeps running with no account, so \
            `account.create` works again. The embedded relay a daemon hosts keeps its own \
            data, which is not the account's.",
        params: schema::<DeleteAccount>,
        result: schema::<AccountDeleted>,
        errors: &[
            E::NoAccount,
            E::WrongPassphrase,
            E::PassphraseRequired,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: CONTACTS_RENAME,
        summary: "Gives a contact another alias; its conversation and history stay.",
        description: "The new alias is kept as typed and must be unique regardless of case \
            (changing only the case of a contact's own alias is allowed). Announced with a \
            `contact.renamed` event carrying the old alias, so frontends can rename what they \
            show; events already recorded keep the alias they had.",
        params: schema::<RenameContact>,
        result: schema::<Contact>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::AmbiguousContact,
            E::InvalidAlias,
            E::AliasTaken,
            E::StoreError,
        ],
    },
    MethodDoc {
        name: OUTBOX_LIST,
        summary: "Lists every text message not yet accepted by the relay, with why it waits.",
        description: "Oldest first. Each entry names its conversation, the relay it goes to, \
            its age, the failed attempts since the daemon unlocked, its state (`sending`, \
            `waiting`, `ready`) and, while it waits, the reason in words (the relay cannot be \
            reached and why, the relay refused and with what, the contact's key changed, an \
            earlier message of the conversation waits) and when the next attempt is due. \
            Receipts and introductions queued besides are only counted.",
        params: schema::<Empty>,
        result: schema::<OutboxList>,
        errors: LOCKED,
    },
    MethodDoc {
        name: OUTBOX_CANCEL,
        summary: "Takes a queued text message out of the outbox; it becomes `failed` (cancelled).",
        description: "The message is never sent; its record in the history stays, with status \
            `failed` and failure `cancelled`, announced with a `message.status` event. A \
            message being handed to the relay at this moment (state `sending`) cannot be \
            cancelled: `wrong_message_state`. A message not in the outbox: `not_found`, or \
            `wrong_message_state` if it was already sent or failed.",
        params: schema::<MessageRef>,
        result: schema::<Cancelled>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::WrongMessageState],
    },
    MethodDoc {
        name: OUTBOX_RETRY,
        summary: "Tries queued messages again now, skipping their retry delay.",
        description: "With `message_id`, that message's conversation (its earlier messages \
            leave first); without, every queued message. Links to relays that are not \
            connected are dialled again at once instead of after their reconnect delay. \
            Returns how many text messages are tried again; `message.status` events report \
            what happens to them.",
        params: schema::<RetryOutbox>,
        result: schema::<Retried>,
        errors: &[E::NoAccount, E::Locked, E::NotFound, E::WrongMessageState],
    },
    MethodDoc {
        name: MESSAGES_RESEND,
        summary: "Sends the text of a failed outgoing message again, as a new message.",
        description: "The failed message stays in the history as it is; the text is queued as \
            a new message with a new id and timestamp at the end of the same conversation \
            (as `messages.send` would; the result is the new message). A new id is used \
            because the old one may have reached the recipient's relay in an attempt whose \
            answer was lost: the recipient then sees both, never one message silently \
            dropped as a duplicate. Only a `failed` outgoing message can be resent \
            (`wrong_message_state` otherwise).",
        params: schema::<MessageRef>,
        result: schema::<SentMessage>,
        errors: &[
            E::NoAccount,
            E::Locked,
            E::NotFound,
            E::WrongMessageState,
            E::UntrustedKeyChange,
            E::ContactBlocked,
        ],
    },
    MethodDoc {
        name: DAEMON_STOP,
        summary: "Stops the daemon cleanly; answers before it exits.",
        description: "Works in every state. The daemon stops serving, finishes the round in \
            progress (what it wrote is flushed), locks, and exits with status 0 shortly after \
            the answer, which carries its process id so a caller can wait for it to go.",
        params: schema::<Empty>,
        result: schema::<Stopping>,
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
