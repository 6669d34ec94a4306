//! `ApiError`: a domain error as the RPC reports it (an `api::ErrorCode` and a human message),
//! and its conversion to a JSON-RPC error object.

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

    /// The account is locked.
    pub fn locked() -> Self {
        Self::new(
            ErrorCode::Locked,
            "the account is locked; run `chatctl unlock`",
        )
    }

    /// No account yet.
    pub fn no_account() -> Self {
        Self::new(
            ErrorCode::NoAccount,
            "no account yet; create one with `chatctl init --name NAME`",
        )
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

/// Shorthand for results of domain operations.
pub type ApiResult<T> = Result<T, ApiError>;
