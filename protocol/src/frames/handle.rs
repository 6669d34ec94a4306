//! Handles: opt-in public names for an identity, and the identity-signed claims and releases
//! the relay's handle directory stores (SPEC.md section 10.6).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;
use std::str::FromStr;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::ed25519::Signature;
use crate::identity::{IdentityKey, IdentityKeyPair};

/// Shortest handle, in characters (= bytes, handles are ASCII).
pub const HANDLE_MIN_LEN: usize = 3;
/// Longest handle, in characters (= bytes).
pub const HANDLE_MAX_LEN: usize = 32;

/// Signature context for handle claims.
pub(crate) const CONTEXT_HANDLE_CLAIM: &[u8] = b"chatd/v1/handle-claim\0";
/// Signature context for handle releases.
pub(crate) const CONTEXT_HANDLE_RELEASE: &[u8] = b"chatd/v1/handle-release\0";

/// Why a handle, claim or release was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// The text is not a valid handle; the reason says which rule it breaks.
    #[error("invalid handle: {0}")]
    Syntax(&'static str),
    /// The identity key's signature does not verify.
    #[error("handle signature is invalid")]
    BadSignature,
}

/// A public name: 3 to 32 characters of `a-z`, `0-9`, `_` and `.`, starting with a letter.
///
/// Handles are case-sensitive on the wire and only lower case is valid; a frontend that wants
/// to accept `@Alice` lower-cases before parsing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(String);

impl Handle {
    /// Checks the syntax and wraps the text.
    pub fn parse(text: &str) -> Result<Self, HandleError> {
        let bytes = text.as_bytes();
        if bytes.len() < HANDLE_MIN_LEN {
            return Err(HandleError::Syntax("shorter than 3 characters"));
        }
        if bytes.len() > HANDLE_MAX_LEN {
            return Err(HandleError::Syntax("longer than 32 characters"));
        }
        if !bytes.first().is_some_and(u8::is_ascii_lowercase) {
            return Err(HandleError::Syntax("does not start with a letter a-z"));
        }
        let allowed =
            |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.');
        if !bytes.iter().all(allowed) {
            return Err(HandleError::Syntax(
                "contains a character outside a-z 0-9 _ .",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The handle text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Handle {
    type Err = HandleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({:?})", self.0)
    }
}

impl Encode for Handle {
    fn encode(&self, w: &mut Writer) {
        w.str16(&self.0);
    }
}

impl Decode for Handle {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let text = r.str16("handle", HANDLE_MAX_LEN)?;
        Self::parse(text).map_err(|_| DecodeError::Invalid("handle"))
    }
}

/// The bytes an identity signs to claim or release a handle:
/// `context || str16(handle) || identity[32] || u64(issued_at)`.
fn signed_bytes(
    context: &[u8],
    handle: &Handle,
    identity: &IdentityKey,
    issued_at: u64,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(context.len().saturating_add(2 + HANDLE_MAX_LEN + 32 + 8));
    w.raw(context);
    handle.encode(&mut w);
    identity.encode(&mut w);
    w.u64(issued_at);
    w.into_bytes()
}

/// A statement, signed by an identity key, binding a handle to that identity at a time.
///
/// Claims are not bound to a relay; the relay stops third parties from replaying a claim by
/// accepting one only from a connection authenticated as a device of `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleClaim {
    /// The claimed handle.
    pub handle: Handle,
    /// The identity claiming it.
    pub identity: IdentityKey,
    /// When the claim was made, seconds since the Unix epoch.
    pub issued_at: u64,
    /// The identity key's signature over
    /// `"chatd/v1/handle-claim\0" || str16(handle) || identity || u64(issued_at)`.
    pub signature: Signature,
}

impl HandleClaim {
    /// Signs a claim of `handle` by `identity`.
    pub fn sign(identity: &IdentityKeyPair, handle: Handle, issued_at: u64) -> Self {
        let public = identity.public_key();
        let signature = identity.sign(&signed_bytes(
            CONTEXT_HANDLE_CLAIM,
            &handle,
            &public,
            issued_at,
        ));
        Self {
            handle,
            identity: public,
            issued_at,
            signature,
        }
    }

    /// Checks the signature under the claim's own identity key. A client that looked a handle
    /// up also checks that `handle` is the one it asked for.
    pub fn verify(&self) -> Result<(), HandleError> {
        let message = signed_bytes(
            CONTEXT_HANDLE_CLAIM,
            &self.handle,
            &self.identity,
            self.issued_at,
        );
        self.identity
            .ed25519()
            .verify(&message, &self.signature)
            .map_err(|_| HandleError::BadSignature)
    }
}

/// A statement, signed by an identity key, giving up a handle it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleRelease {
    /// The handle given up.
    pub handle: Handle,
    /// The identity that holds it.
    pub identity: IdentityKey,
    /// When the release was made, seconds since the Unix epoch.
    pub issued_at: u64,
    /// The identity key's signature over
    /// `"chatd/v1/handle-release\0" || str16(handle) || identity || u64(issued_at)`.
    pub signature: Signature,
}

impl HandleRelease {
    /// Signs a release of `handle` by `identity`.
    pub fn sign(identity: &IdentityKeyPair, handle: Handle, issued_at: u64) -> Self {
        let public = identity.public_key();
        let signature = identity.sign(&signed_bytes(
            CONTEXT_HANDLE_RELEASE,
            &handle,
            &public,
            issued_at,
        ));
        Self {
            handle,
            identity: public,
            issued_at,
            signature,
        }
    }

    /// Checks the signature under the release's own identity key.
    pub fn verify(&self) -> Result<(), HandleError> {
        let message = signed_bytes(
            CONTEXT_HANDLE_RELEASE,
            &self.handle,
            &self.identity,
            self.issued_at,
        );
        self.identity
            .ed25519()
            .verify(&message, &self.signature)
            .map_err(|_| HandleError::BadSignature)
    }
}

/// Claims and releases share one layout: `str16(handle) || identity[32] || u64 || [64]`.
fn encode_statement(
    w: &mut Writer,
    handle: &Handle,
    identity: &IdentityKey,
    issued_at: u64,
    signature: &Signature,
) {
    handle.encode(w);
    identity.encode(w);
    w.u64(issued_at);
    w.raw(&signature.0);
}

type Statement = (Handle, IdentityKey, u64, Signature);

fn decode_statement(r: &mut Reader<'_>) -> Result<Statement, DecodeError> {
    Ok((
        Handle::decode(r)?,
        IdentityKey::decode(r)?,
        r.u64()?,
        Signature(r.array()?),
    ))
}

impl Encode for HandleClaim {
    fn encode(&self, w: &mut Writer) {
        encode_statement(
            w,
            &self.handle,
            &self.identity,
            self.issued_at,
            &self.signature,
        );
    }
}

impl Decode for HandleClaim {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (handle, identity, issued_at, signature) = decode_statement(r)?;
        Ok(Self {
            handle,
            identity,
            issued_at,
            signature,
        })
    }
}

impl Encode for HandleRelease {
    fn encode(&self, w: &mut Writer) {
        encode_statement(
            w,
            &self.handle,
            &self.identity,
            self.issued_at,
            &self.signature,
        );
    }
}

impl Decode for HandleRelease {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (handle, identity, issued_at, signature) = decode_statement(r)?;
        Ok(Self {
            handle,
            identity,
            issued_at,
            signature,
        })
    }
}
