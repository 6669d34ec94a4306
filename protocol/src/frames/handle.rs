//! Handles: opt-in public names for an identity, and the identity-signed claims and releases
//! the relay's handle directory stores (SPEC.md section 10.6).
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt;
use std::marker::PhantomData;
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

/// What a handle statement says; fixes its signature context. Implemented by [`Claim`] and
/// [`Release`] only.
pub trait StatementKind: fmt::Debug + Clone + PartialEq + Eq + private::Sealed {
    /// The signature context (SPEC.md section 10.6).
    const CONTEXT: &'static [u8];
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Claim {}
    impl Sealed for super::Release {}
}

/// Marker: the statement claims a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim;

/// Marker: the statement gives a handle up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release;

impl StatementKind for Claim {
    const CONTEXT: &'static [u8] = CONTEXT_HANDLE_CLAIM;
}

impl StatementKind for Release {
    const CONTEXT: &'static [u8] = CONTEXT_HANDLE_RELEASE;
}

/// A statement, signed by an identity key, about a handle and that identity at a time.
/// Claims and releases share this layout, `str16(handle) || identity[32] || u64 || [64]`, and
/// differ only in the signature context, so one can never pass for the other.
///
/// Claims are not bound to a relay; the relay stops third parties from replaying a claim by
/// accepting one only from a connection authenticated as a device of `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleStatement<K: StatementKind> {
    /// The handle.
    pub handle: Handle,
    /// The identity making the statement.
    pub identity: IdentityKey,
    /// When the statement was made, seconds since the Unix epoch.
    pub issued_at: u64,
    /// The identity key's signature over
    /// `context || str16(handle) || identity || u64(issued_at)`.
    pub signature: Signature,
    kind: PhantomData<K>,
}

/// A claim of a handle: context `"chatd/v1/handle-claim\0"`.
pub type HandleClaim = HandleStatement<Claim>;
/// A release of a handle: context `"chatd/v1/handle-release\0"`.
pub type HandleRelease = HandleStatement<Release>;

impl<K: StatementKind> HandleStatement<K> {
    /// Signs a statement about `handle` by `identity`.
    pub fn sign(identity: &IdentityKeyPair, handle: Handle, issued_at: u64) -> Self {
        let public = identity.public_key();
        let signature = identity.sign(&signed_bytes(K::CONTEXT, &handle, &public, issued_at));
        Self::from_parts(handle, public, issued_at, signature)
    }

    /// Assembles a statement from its fields, unverified (as a decoder does).
    pub fn from_parts(
        handle: Handle,
        identity: IdentityKey,
        issued_at: u64,
        signature: Signature,
    ) -> Self {
        Self {
            handle,
            identity,
            issued_at,
            signature,
            kind: PhantomData,
        }
    }

    /// Checks the signature under the statement's own identity key. A client that looked a
    /// handle up also checks that `handle` is the one it asked for.
    pub fn verify(&self) -> Result<(), HandleError> {
        let message = signed_bytes(K::CONTEXT, &self.handle, &self.identity, self.issued_at);
        self.identity
            .ed25519()
            .verify(&message, &self.signature)
            .map_err(|_| HandleError::BadSignature)
    }
}

impl<K: StatementKind> Encode for HandleStatement<K> {
    fn encode(&self, w: &mut Writer) {
        self.handle.encode(w);
        self.identity.encode(w);
        w.u64(self.issued_at);
        w.raw(&self.signature.0);
    }
}

impl<K: StatementKind> Decode for HandleStatement<K> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self::from_parts(
            Handle::decode(r)?,
            IdentityKey::decode(r)?,
            r.u64()?,
            Signature(r.array()?),
        ))
    }
}
