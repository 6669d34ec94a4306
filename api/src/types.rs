//! Request params and results of every method.
//!
//! Conventions: params are objects (by name); unknown fields are refused, so a typo is an
//! "invalid params" error rather than silently ignored. Times are milliseconds since the Unix
//! epoch (`*_ms`). Message ids are 32 lowercase hex digits. A *target* names a contact: an
//! alias, `@name` (an alias first, then a handle on the relay), or a `chat1...` address.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An empty params object or result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Lock state of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// No account exists in the data directory.
    NoAccount,
    /// An account exists; its secrets are not in memory.
    Locked,
    /// The account is open: messages flow.
    Unlocked,
}

/// State of the connection to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Not connected and not trying (locked, or no account).
    Offline,
    /// Dialling or authenticating.
    Connecting,
    /// Authenticated; the mailbox is being delivered.
    Connected,
    /// The last attempt failed; the next is scheduled with backoff.
    Waiting,
}

/// A link to another account's relay (SPEC.md 10.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RelayLinkState {
    /// The relay's URL.
    pub url: String,
    /// The link's state.
    pub connection: ConnectionState,
}

/// What kind of relay an account's home relay is (`daemon.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelayKind {
    /// The user's local relay (no relay configured): hosted on loopback by one of the user's
    /// daemons, and taken over by another when that one stops.
    Local,
    /// The relay this daemon serves itself (`--host-relay`).
    Hosted,
    /// A relay run elsewhere (`--relay`, or another daemon's `--host-relay`).
    Remote,
}

/// The user's local relay as a daemon with no relay configured sees it (`daemon.status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalRelayStatus {
    /// Its URL (`ws://ADDR/v1`, the address recorded in its directory).
    pub url: String,
    /// Its directory (store, address, host's pid).
    pub dir: String,
    /// Whether this daemon hosts it now.
    pub hosted_here: bool,
    /// The process id of the daemon hosting it, when known (this daemon's own when
    /// `hosted_here`).
    #[serde(default)]
    pub host_pid: Option<u32>,
    /// Whether this daemon takes it over when its host stops (an ephemeral daemon, which
    /// writes nothing, never hosts it).
    pub can_host: bool,
    /// Why it cannot be used or hosted, while that lasts: its address held by another user's
    /// program (checked on Linux), or its store that cannot be opened.
    #[serde(default)]
    pub error: Option<String>,
}

/// Result of `daemon.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonStatus {
    /// The daemon's version.
    pub version: String,
    /// The API version ([`crate::API_VERSION`]).
    pub api_version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// No account, locked or unlocked.
    pub state: LockState,
    /// True when nothing is written to disk.
    pub ephemeral: bool,
    /// The relay the daemon uses, if known (it is stored with the account).
    pub relay_url: Option<String>,
    /// The relay connection.
    pub connection: ConnectionState,
    /// This account's address, once unlocked.
    pub address: Option<String>,
    /// Messages waiting in the outbox for the relay, once unlocked.
    pub outbox: Option<u64>,
    /// The URL of the relay the daemon hosts for peers (`--host-relay`: its `--public-url`, or
    /// `ws://ADDR/v1`; or the user's local relay while this daemon hosts it), if any.
    pub hosted_relay: Option<String>,
    /// Links to other accounts' relays open now (contacts whose home relay is not ours), with
    /// their states. Opened when needed, closed when idle.
    #[serde(default)]
    pub other_relays: Vec<RelayLinkState>,
    /// Whether `account.unlock` needs a passphrase (absent when there is no account).
    #[serde(default)]
    pub passphrase_protected: Option<bool>,
    /// Why the store cannot write, while that lasts (absent when it writes normally): the disk
    /// is full, for instance. Meanwhile every request that writes fails with `store_error`
    /// and nothing of it is kept; received messages wait on the relay. Cleared by the next
    /// write that succeeds.
    #[serde(default)]
    pub store_error: Option<String>,
    /// The last error of a relay connection or request (the home relay's or a contact's),
    /// with when it happened; absent if there was none since the daemon started. It stays
    /// after the relay recovers: compare `at_ms` with the connection's state.
    #[serde(default)]
    pub last_relay_error: Option<RelayError>,
    /// The file the daemon logs to (`--log-file`), if it logs to one rather than to stderr.
    #[serde(default)]
    pub log_file: Option<String>,
    /// What kind of relay `relay_url` is: the user's local relay, the one this daemon hosts
    /// (`--host-relay`), or a remote one.
    #[serde(default)]
    pub relay_kind: Option<RelayKind>,
    /// The user's local relay, when this daemon has no relay configured (absent otherwise):
    /// who hosts it, and why it cannot be used, if it cannot.
    #[serde(default)]
    pub local_relay: Option<LocalRelayStatus>,
}

/// Params of `account.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// The display name peers see in invites (1 to 64 characters).
    pub name: String,
    /// The passphrase that protects the store. Required unless `no_passphrase` is true.
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Explicitly store the key unprotected (anyone who can read the data directory can read
    /// the messages).
    #[serde(default)]
    pub no_passphrase: bool,
    /// The relay (`ws://` or `wss://`); default: the daemon's `--relay`, else the relay it
    /// hosts (`--host-relay`), else the user's local relay.
    #[serde(default)]
    pub relay: Option<String>,
}

/// Params of `account.unlock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unlock {
    /// The passphrase (ignored, and may be omitted, for an account created without one).
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// Result of `account.info`, `account.create` and `account.unlock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountInfo {
    /// The display name.
    pub name: String,
    /// The account's address (`chat1...`), to share with contacts.
    pub address: String,
    /// This device's number.
    pub device_id: u32,
    /// The relay.
    pub relay_url: String,
    /// Handles this account registered on the relay.
    pub handles: Vec<String>,
    /// When the account was created.
    pub created_at_ms: u64,
    /// True when the store key is not protected by a passphrase.
    pub unprotected: bool,
    /// Whether accounts that are not contacts may write (`account.set_strangers`).
    #[serde(default = "accept_strangers_default")]
    pub accept_strangers: bool,
    /// Set by `account.create` when the passphrase is weak (see
    /// `api::input::passphrase_weakness`): why. The account is created all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_warning: Option<String>,
}

fn accept_strangers_default() -> bool {
    true
}

/// Params of `account.set_strangers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStrangers {
    /// True: strangers may write (at the relay's stranger rate); false: only contacts.
    pub accept: bool,
}

/// Params of `account.register_handle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterHandle {
    /// The handle, without `@`.
    pub handle: String,
}

/// Params of `account.move_relay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRelay {
    /// The new home relay's URL (`wss://relay.example.org/v1`).
    pub relay: String,
}

/// Result of `account.register_handle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandleRegistered {
    /// The handle, normalised.
    pub handle: String,
    /// The relay that holds it.
    pub relay_url: String,
}

/// Trust in a contact's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Pinned on first use, not compared in person.
    Unverified,
    /// The safety number was compared and matched.
    Verified,
    /// The key changed since it was pinned; sending is refused until `contacts.trust`.
    KeyChanged,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// The local name for the contact (unique).
    pub alias: String,
    /// The contact's address.
    pub address: String,
    /// The handle the contact was found by, if any.
    pub handle: Option<String>,
    /// The display name the contact gave (from an invite), if known.
    pub display_name: Option<String>,
    /// Trust in the pinned key.
    pub trust: Trust,
    /// When the contact was added.
    pub added_at_ms: u64,
    /// Blocked: its messages are dropped (`contacts.block`).
    #[serde(default)]
    pub blocked: bool,
    /// A message request: a stranger who wrote first and is not accepted yet
    /// (`requests.accept`). Requests are listed by `requests.list`, not `contacts.list`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request: bool,
    /// Why the contact's daemon refused the invite this account accepted from it ("it was
    /// already used", ...), while that holds: writing to it is refused (`invite_refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_refused: Option<String>,
}

/// Params of `requests.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequests {
    /// List the blocked requests instead of the open ones.
    #[serde(default)]
    pub blocked: bool,
}

/// One message request: a stranger who wrote first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageRequest {
    /// Who it is (`request` is true); its alias names it in `requests.*`, `messages.history`
    /// and `contacts.get`.
    pub contact: Contact,
    /// Messages it sent.
    pub messages: u64,
    /// Of those, unread.
    pub unread: u32,
    /// The newest message, if any.
    pub last_message: Option<Message>,
}

/// Result of `requests.list`, newest activity first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestList {
    /// The requests.
    pub requests: Vec<MessageRequest>,
}

/// Params of `requests.accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The request, named as a contact is (its alias, `@alias`, or its address).
    pub contact: String,
    /// A new alias for the contact it becomes (it keeps the request's otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// Params of `contacts.add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddContact {
    /// The local name to give the contact.
    pub alias: String,
    /// A `chat1...` address or a `@handle` on this account's relay; `chat1...@host[:port]` or
    /// `@handle@host[:port]` (or `@handle@wss://host/v1`) for an account on another relay
    /// (SPEC.md 10.9).
    pub target: String,
}

/// Params naming one contact (`contacts.get`, `contacts.remove`, `contacts.trust`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRef {
    /// The contact: its alias (any case), `@alias`, `@handle` (`@handle@host[:port]` for one
    /// on another relay), or its address (`chat1...`, also `chat1...@host[:port]`).
    pub contact: String,
}

/// Params of `contacts.verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyContact {
    /// The contact, as `ContactRef` names one (alias in any case, `@alias`, `@handle`,
    /// address).
    pub contact: String,
    /// The safety number as the contact read it out (digits; spaces ignored). When given, it
    /// must match; when omitted, the caller states the numbers were compared.
    #[serde(default)]
    pub safety_number: Option<String>,
}

/// Result of `contacts.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactList {
    /// Every contact, by alias.
    pub contacts: Vec<Contact>,
}

/// Result of `contacts.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactDetails {
    /// The contact.
    #[serde(flatten)]
    pub contact: Contact,
    /// The 60-digit safety number of this account and the contact.
    pub safety_number: String,
    /// The same, in 12 groups of 5 digits.
    pub safety_number_groups: Vec<String>,
    /// The QR payload to scan, lowercase hex.
    pub safety_qr: String,
    /// The contact's devices this account has sessions with.
    pub devices: Vec<u32>,
    /// Set while the contact's identity key changed and the new key is not accepted yet
    /// (`trust` is `key_changed`): the key that was pinned and the new one. `safety_number`,
    /// its groups and `safety_qr` are then those of the **new** key, the one to compare now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_change: Option<KeyChange>,
}

/// Result of `invites.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invite {
    /// The code to give the other person (`chatinvite1...`).
    pub code: String,
    /// When the code stops working.
    pub expires_at_ms: u64,
}

/// Params of `invites.accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The invite code.
    pub code: String,
    /// The alias to give the inviter; default: the name in the invite.
    #[serde(default)]
    pub alias: Option<String>,
}

/// Delivery status of an outgoing message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Stored in the outbox, not yet accepted by the relay.
    Pending,
    /// The relay stored it for the recipient.
    Sent,
    /// The recipient's daemon stored it (end-to-end encrypted receipt).
    Delivered,
    /// The recipient marked it read (end-to-end encrypted receipt).
    Read,
    /// It will not be sent; see `failure`.
    Failed,
}

/// Direction of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received from the contact.
    Incoming,
    /// Sent by this account.
    Outgoing,
}

/// Params of `messages.send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Who to send to: a contact as `ContactRef` names one (alias in any case, `@alias`,
    /// `@handle`, address), or someone not a contact yet by `@handle` or address, on this
    /// account's relay or another (`@handle@host[:port]`, `chat1...@host[:port]`).
    pub to: String,
    /// The text (UTF-8, 1 byte to 64 KiB, not only white space).
    pub text: String,
}

/// Result of `messages.send`: the message is durable in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SentMessage {
    /// The new message's id.
    pub message_id: String,
    /// The conversation (the contact's alias).
    pub conversation: String,
    /// When it was written.
    pub timestamp_ms: u64,
    /// Its status right now (`pending` at first).
    pub status: MessageStatus,
}

/// A message in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// The message id.
    pub message_id: String,
    /// The conversation (the contact's alias).
    pub conversation: String,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The text.
    pub text: String,
    /// When the sender wrote it (sender's clock).
    pub timestamp_ms: u64,
    /// When this daemon stored it.
    pub stored_at_ms: u64,
    /// Delivery status (outgoing messages only).
    pub status: Option<MessageStatus>,
    /// Why it failed, when `status` is `failed`.
    pub failure: Option<String>,
    /// Whether it was read (incoming messages only: marked read here).
    pub read: Option<bool>,
}

/// Params of `messages.history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// The conversation: its contact as `ContactRef` names one (alias in any case, `@alias`,
    /// `@handle`, address).
    pub conversation: String,
    /// How many messages (1 to 500, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Return messages older than this cursor (from a previous page's `next_before`);
    /// default: the newest.
    #[serde(default)]
    pub before: Option<String>,
}

/// Result of `messages.history`: messages oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPage {
    /// The page, oldest first.
    pub messages: Vec<Message>,
    /// Pass as `before` for the previous (older) page; absent at the start of the
    /// conversation. Stable: new messages do not shift pages.
    pub next_before: Option<String>,
}

/// Params of `messages.mark_read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The conversation: its contact as `ContactRef` names one (alias in any case, `@alias`,
    /// `@handle`, address).
    pub conversation: String,
    /// Mark up to and including this message; default: everything received so far.
    #[serde(default)]
    pub up_to: Option<String>,
}

/// Result of `messages.mark_read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarkedRead {
    /// How many messages became read (read receipts go to the contact).
    pub marked: u32,
}

/// One conversation in `conversations.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    /// The contact's alias.
    pub conversation: String,
    /// The contact's address.
    pub address: String,
    /// Unread incoming messages.
    pub unread: u32,
    /// Every message in the conversation.
    pub total: u64,
    /// The newest message, if any.
    pub last_message: Option<Message>,
}

/// Result of `conversations.list`: most recently active first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationList {
    /// The conversations.
    pub conversations: Vec<Conversation>,
}

/// Params of `events.subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Also deliver the retained events with a cursor greater than this one first, so a
    /// client that was away misses nothing. Omitted: only new events.
    #[serde(default)]
    pub since: Option<u64>,
}

/// Params of `events.unsubscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// The id `events.subscribe` returned.
    pub subscription: serde_json::Value,
}

/// A contact's identity key change, as `contacts.get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyChange {
    /// The address of the key that was pinned (the contact's `address` until the new key is
    /// accepted).
    pub old_address: String,
    /// The address of the new key.
    pub new_address: String,
    /// What to do, in a sentence for people.
    pub advice: String,
}

/// Params of `contacts.rename`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameContact {
    /// The contact: an alias, `@alias`, `@handle` or address.
    pub contact: String,
    /// The new alias (1 to 64 visible characters, no white space, not starting with `@`;
    /// unique regardless of case).
    pub alias: String,
}

/// Formats 16 bytes as a message id.
pub fn message_id_to_string(id: &[u8; 16]) -> String {
    let mut out = String::with_capacity(32);
    for byte in id {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    out
}

/// Parses a message id (32 hex digits, either case).
pub fn parse_message_id(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Params of `account.change_passphrase`.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassphrase {
    /// The current passphrase. Required when the account is protected by one; must be absent
    /// for an account created without one.
    #[serde(default)]
    pub old_passphrase: Option<String>,
    /// The new passphrase. Required unless `no_passphrase` is true.
    #[serde(default)]
    pub new_passphrase: Option<String>,
    /// Explicitly store the key unprotected from now on (anyone who can read the data
    /// directory can then read the messages).
    #[serde(default)]
    pub no_passphrase: bool,
}

impl std::fmt::Debug for ChangePassphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassphrase")
            .field(
                "old_passphrase",
                &self.old_passphrase.as_ref().map(|_| ".."),
            )
            .field(
                "new_passphrase",
                &self.new_passphrase.as_ref().map(|_| ".."),
            )
            .field("no_passphrase", &self.no_passphrase)
            .finish()
    }
}

/// Result of `account.change_passphrase`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PassphraseChanged {
    /// True when the store key is now unprotected (`no_passphrase`).
    pub unprotected: bool,
    /// Set when the new passphrase is weak (see `api::input::passphrase_weakness`): why. The
    /// change is made all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_warning: Option<String>,
}

/// Params of `account.delete`.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// The account's passphrase. Required when the account is protected by one.
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Must be true to delete an account created without a passphrase (and may be given for
    /// any account).
    #[serde(default)]
    pub confirm: bool,
}

impl std::fmt::Debug for DeleteAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteAccount")
            .field("passphrase", &self.passphrase.as_ref().map(|_| ".."))
            .field("confirm", &self.confirm)
            .finish()
    }
}

/// Result of `account.delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountDeleted {
    /// Handles released at their relay before the account was deleted.
    pub released_handles: Vec<String>,
    /// Handles that could not be released (the relay holding them could not be reached
    /// within 5 seconds, or refused): the relay keeps them for the deleted identity.
    pub kept_handles: Vec<String>,
}
mod outbox;
pub use outbox::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_refuse_junk() {
        let id = [0xab; 16];
        let text = message_id_to_string(&id);
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(parse_message_id(&text), Some(id));
        assert_eq!(parse_message_id(&text.to_uppercase()), Some(id));
        assert_eq!(parse_message_id(&text[..30]), None);
        assert_eq!(parse_message_id(&"zz".repeat(16)), None);
        assert_eq!(parse_message_id(&"é".repeat(16)), None);
    }

    #[test]
    fn params_refuse_unknown_fields() {
        let err = serde_json::from_str::<SendMessage>(r#"{"to":"a","text":"b","txet":1}"#);
        assert!(err.is_err());
        let ok: SendMessage = serde_json::from_str(r#"{"to":"a","text":"b"}"#)
            .unwrap_or_else(|e| panic!("valid params refused: {e}"));
        assert_eq!(ok.to, "a");
    }
}
