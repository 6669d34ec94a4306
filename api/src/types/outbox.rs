//! Params and results of the outbox methods (`outbox.list`, `outbox.cancel`, `outbox.retry`),
//! `messages.resend` and `daemon.stop`, and the last relay error `daemon.status` reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Handed to the relay; its answer is awaited.
    Sending,
    /// Waiting for something (see `reason`): a relay that cannot be reached, a retry after a
    /// refusal, a key change to accept, an earlier message of the conversation.
    Waiting,
    /// Nothing holds it back: it leaves with the daemon's next round.
    Ready,
}

/// One message in the outbox (not yet accepted by the relay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboxMessage {
    /// The message id.
    pub message_id: String,
    /// The conversation (the contact's alias).
    pub conversation: String,
    /// The relay it goes to (the contact's relay).
    pub relay: String,
    /// When it was queued (ms since the epoch).
    pub queued_at_ms: u64,
    /// How long it has been queued, ms.
    pub age_ms: u64,
    /// Failed attempts to send it (or to reach its contact) since the daemon last unlocked.
    pub attempts: u32,
    /// Sending, waiting or ready.
    pub state: OutboxState,
    /// Why it waits, in words (absent when it is `ready` or `sending`).
    #[serde(default)]
    pub reason: Option<String>,
    /// In how many ms the next attempt is due, while a retry delay runs (`outbox.retry` skips
    /// it).
    #[serde(default)]
    pub retry_in_ms: Option<u64>,
}

/// Result of `outbox.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboxList {
    /// Every text message not yet accepted by the relay, oldest first.
    pub messages: Vec<OutboxMessage>,
    /// Control messages (receipts, introductions) queued besides, which the list does not show
    /// one by one.
    pub control_messages: u64,
}

/// Params of `outbox.cancel` and `messages.resend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    /// The message id (32 hex digits).
    pub message_id: String,
}

/// Result of `outbox.cancel`: the message left the outbox and is `failed` ("cancelled") in the
/// conversation's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancelled {
    /// The message id.
    pub message_id: String,
    /// The conversation (the contact's alias).
    pub conversation: String,
}

/// Params of `outbox.retry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryOutbox {
    /// Only this message (and what its conversation queued before it, which must leave
    /// first); absent: every queued message.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Result of `outbox.retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Retried {
    /// Text messages that will be tried again now (their retry delay skipped).
    pub messages: u64,
}

/// The last error of a relay connection or request, as `daemon.status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RelayError {
    /// The relay's URL.
    pub relay: String,
    /// What went wrong ("cannot connect to ...: Connection refused", "bad frame from the
    /// relay: ...", "the relay ... refused: rate_limited (...)").
    pub error: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// Result of `daemon.stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stopping {
    /// The daemon's process id; it exits shortly after this answer.
    pub pid: u32,
}
