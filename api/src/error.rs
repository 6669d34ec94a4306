//! Application error codes: every domain error a method can return.
//!
//! JSON-RPC reserves -32768..=-32000; malformed input gets the standard codes there (parse
//! error -32700, invalid request -32600, method not found -32601, invalid params -32602,
//! internal error -32603). Domain errors use the positive codes below, each with a stable
//! snake_case name that the daemon also puts in the error's `data.kind`, so clients can match on
//! either.

use serde::{Deserialize, Serialize};

/// The standard JSON-RPC code for a line that is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// The standard code for JSON that is not a valid request (or a line that is too long).
pub const INVALID_REQUEST: i32 = -32600;
/// The standard code for an unknown method.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// The standard code for params of the wrong shape or type.
pub const INVALID_PARAMS: i32 = -32602;
/// The standard code for a fault in the daemon itself.
pub const INTERNAL_ERROR: i32 = -32603;
/// The server is busy (jsonrpsee's -32009): chatd answers a connection beyond its cap with this
/// error (id null) and closes it.
pub const SERVER_IS_BUSY: i32 = -32009;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal, $name:literal;)*) => {
        /// A domain error, as returned in a JSON-RPC error's `code`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The numeric code on the wire.
            pub fn code(self) -> i32 {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The stable name, also sent as `data.kind`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// What the code means, for documentation.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!($($doc),*).trim_ascii(),)* }
            }

            /// The code with this number, if it is one of ours.
            pub fn from_code(code: i32) -> Option<Self> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// No account exists yet; create one with `account.create`.
    NoAccount = 1001, "no_account";
    /// The account is locked; unlock it with `account.unlock`.
    Locked = 1002, "locked";
    /// An account already exists in this data directory.
    AccountExists = 1003, "account_exists";
    /// The passphrase does not unlock the store.
    WrongPassphrase = 1004, "wrong_passphrase";
    /// The account is already unlocked.
    AlreadyUnlocked = 1005, "already_unlocked";
    /// `account.create` needs either a passphrase or an explicit `no_passphrase: true`.
    PassphraseRequired = 1006, "passphrase_required";
    /// No contact, conversation, message or handle by that name.
    NotFound = 1010, "not_found";
    /// The contact's identity key changed and has not been trusted again; run `contacts.trust`.
    UntrustedKeyChange = 1011, "untrusted_key_change";
    /// The text is not a valid address (`chat1...`), or names this account itself.
    InvalidAddress = 1012, "invalid_address";
    /// The handle is not valid (3 to 32 of a-z, 0-9, `_` and `.`, starting with a letter).
    InvalidHandle = 1013, "invalid_handle";
    /// Another account holds that handle on the relay.
    HandleTaken = 1014, "handle_taken";
    /// The alias is already used by another contact (aliases are compared ignoring case).
    AliasTaken = 1015, "alias_taken";
    /// The alias is not valid (1 to 64 characters, no white space, control or invisible
    /// characters, not starting with `@`).
    InvalidAlias = 1016, "invalid_alias";
    /// The invite code is malformed, already used, or expired.
    InvalidInvite = 1017, "invalid_invite";
    /// The safety number given does not match this contact's.
    SafetyNumberMismatch = 1018, "safety_number_mismatch";
    /// The message text is empty or longer than the protocol allows.
    InvalidMessage = 1019, "invalid_message";
    /// The relay could not be reached, or did not answer in time.
    RelayUnreachable = 1020, "relay_unreachable";
    /// The relay refused the request.
    RelayError = 1021, "relay_error";
    /// The relay URL is not a valid `ws://` or `wss://` URL.
    InvalidRelayUrl = 1022, "invalid_relay_url";
    /// The contact has no device that can receive messages (no prekeys on the relay).
    NoDevices = 1023, "no_devices";
    /// The subscription id is unknown on this connection.
    UnknownSubscription = 1024, "unknown_subscription";
    /// The contact is blocked: unblock it to write to it.
    ContactBlocked = 1025, "contact_blocked";
    /// The store failed (disk full, corruption); details are in the daemon's log.
    StoreError = 1030, "store_error";
    /// The name fits more than one contact (an alias of one and the handle of another, say);
    /// the message lists them: name one by its alias or address.
    AmbiguousContact = 1041, "ambiguous_contact";
    /// The message is not in a state that allows this: resending one that did not fail,
    /// cancelling one that is being handed to the relay or was already sent.
    WrongMessageState = 1040, "wrong_message_state";
    /// The name is a message request (a stranger who wrote first): accept it
    /// (`requests.accept`) before writing to it.
    MessageRequest = 1042, "message_request";
    /// The contact's daemon refused the invite this account accepted from it (used, expired
    /// or unknown), so it has not added this account: ask it for a new invite.
    InviteRefused = 1043, "invite_refused";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let mut codes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(
                code.code() > 0,
                "{code} must stay out of JSON-RPC's reserved range"
            );
            assert!(codes.insert(code.code()), "duplicate number for {code}");
            assert!(names.insert(code.name()), "duplicate name {code}");
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
            assert!(!code.description().is_empty());
            let json = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(json, serde_json::Value::from(code.name()));
        }
        assert_eq!(ErrorCode::from_code(-32601), None);
    }
}
