//! `ApiError`: a domain error as the RPC reports it (an `api::ErrorCode` and a human message),
//! and its conversion to a JSON-RPC error object; `PeerError`: what a peer did wrong in an
//! envelope it sent (logged and dropped, never an RPC answer).

use api::ErrorCode;
use jsonrpsee::types::ErrorObjectOwned;

/// A method's failure: what kind, and a message for humans (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The kind, which clients match on.
    pub code: ErrorCode,
    /// The explanation.
    pub message: String,
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The account is locked. The message names no client's command: each client says in
    /// its own words how to unlock (chatctl prints its hint once, after this message).
    pub fn locked() -> Self {
        Self::new(ErrorCode::Locked, "the account is locked")
    }

    /// No account yet. As for [`ApiError::locked`], the client says how to create one.
    pub fn no_account() -> Self {
        Self::new(ErrorCode::NoAccount, "there is no account yet")
    }

    /// Nothing called `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// The store failed; the detail goes to the log, the client gets a summary.
    pub fn store(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "store failure");
        Self::new(ErrorCode::StoreError, format!("the store failed: {error}"))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::store(error)
    }
}

impl From<ApiError> for ErrorObjectOwned {
    fn from(error: ApiError) -> Self {
        ErrorObjectOwned::owned(
            error.code.code(),
            error.message,
            Some(serde_json::json!({ "kind": error.code.name() })),
        )
    }
}

/// Why an envelope from a peer was dropped: the peer (or the relay in its place) sent something
/// that can never be read. The relay's own misbehaviour on the connection is
/// [`crate::relay_link::RelayMisbehaviour`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The sealed envelope does not open (SPEC.md 8.2).
    #[error("envelope: {0}")]
    Envelope(#[from] protocol::envelope::EnvelopeError),
    /// The session message does not decrypt (SPEC.md 5.5, 6.1).
    #[error("undecryptable message: {0}")]
    Undecryptable(#[from] protocol::session::SessionError),
    /// The decrypted content does not decode (SPEC.md 8.1).
    #[error("bad content: {0}")]
    BadContent(protocol::codec::DecodeError),
    /// An introduction's body does not decode (SPEC.md 8.1).
    #[error("bad introduction: {0}")]
    BadIntroduction(protocol::codec::DecodeError),
    /// An invite refusal's body does not decode (SPEC.md 8.1).
    #[error("bad invite refusal: {0}")]
    BadInviteRefusal(protocol::codec::DecodeError),
    /// A receipt's body is not one or more whole message ids (SPEC.md 8.1).
    #[error("bad receipt: a body of {0} bytes is not a run of 16-byte message ids")]
    BadReceipt(usize),
}

/// Why a received envelope was not stored: the peer's fault (drop it) or ours (keep it).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The envelope can never be read; it is acknowledged and dropped.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Something on this side failed (the store, say).
    #[error(transparent)]
    Local(#[from] ApiError),
}

/// Shorthand for results of domain operations.
pub type ApiResult<T> = Result<T, ApiError>;
