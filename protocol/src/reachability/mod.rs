//! Reachability across relays (SPEC.md section 10.9): where an account can be reached, said by
//! the account itself, and the texts that name a relay.
//!
//! - [`relay_binding`] turns a relay URL as a person types it into the canonical relay binding
//!   of SPEC.md 10.3 (the relay id a challenge carries and a device signs), or says why it is
//!   not one.
//! - A [`ReachabilityRecord`] lists an account's home relay (and other URLs of the same relay
//!   service), each optionally with the SHA-256 pin of a self-signed TLS certificate. It is
//!   signed by the identity key and carries a sequence number, so a relay can neither redirect
//!   a contact elsewhere nor replay an older record.
//! - A [`DeliveryToken`] is what a recipient hands one contact so that its relay admits that
//!   contact's envelopes; the relay only ever stores the token's [`DeliveryToken::digest`].
//! - A [`QualifiedHandle`] is a handle on a named relay, written `handle@host[:port]`.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use core::net::{Ipv4Addr, Ipv6Addr};
use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::crypto::Rng;
use crate::crypto::ed25519::Signature;
use crate::crypto::kdf::sha256;
use crate::frames::{Handle, HandleError, MAX_RELAY_ID_LEN};
use crate::identity::{IdentityKey, IdentityKeyPair};

/// The version byte that opens a [`ReachabilityRecord`].
pub const REACHABILITY_VERSION: u8 = 1;
/// Most relay endpoints in one record.
pub const MAX_RELAYS_PER_RECORD: usize = 4;
/// Length of a TLS certificate pin (SHA-256 of the certificate's DER encoding).
pub const TLS_PIN_LEN: usize = 32;
/// Length of a delivery token.
pub const DELIVERY_TOKEN_LEN: usize = 16;
/// Length of a delivery token's digest, the form a relay stores.
pub const DELIVERY_TOKEN_DIGEST_LEN: usize = 32;
/// Signature context of a reachability record.
pub(crate) const CONTEXT_REACHABILITY: &[u8] = b"chatd/v1/reachability\0";
/// Hash prefix of a delivery token's digest.
pub(crate) const CONTEXT_DELIVERY_TOKEN: &[u8] = b"chatd/v1/delivery-token";
/// Longest encoded record: version, identity, sequence, count, four endpoints of the longest
/// URL with a pin, signature (1,270 bytes).
pub const MAX_REACHABILITY_LEN: usize =
    1 + 32 + 8 + 1 + MAX_RELAYS_PER_RECORD * (2 + MAX_RELAY_ID_LEN + 1 + TLS_PIN_LEN) + 64;
/// Shortest encoded record: one endpoint with the shortest URL (`ws://a/v1`) and no pin.
pub const MIN_REACHABILITY_LEN: usize = 1 + 32 + 8 + 1 + (2 + 9 + 1) + 64;

/// Why a text is not a relay URL (SPEC.md 10.3's relay binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayUrlError {
    /// The scheme is not `ws://` or `wss://`.
    #[error("the scheme must be ws:// or wss://")]
    Scheme,
    /// Userinfo (`user@`), a query or a fragment.
    #[error("no user name, query or fragment is allowed")]
    Extra,
    /// The host is empty, not ASCII (write internationalised names as A-labels, `xn--`),
    /// or has a character a host name cannot have.
    #[error("bad host")]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("bad port")]
    Port,
    /// The path is not `/v1` (an empty path, `/` and `/v1/` are read as `/v1`).
    #[error("the path must be /v1")]
    Path,
    /// The canonical URL is longer than a relay id may be (256 bytes).
    #[error("longer than {MAX_RELAY_ID_LEN} bytes")]
    TooLong,
}

/// The canonical relay binding (SPEC.md 10.3) of a relay URL: `ws` or `wss`, the host in lower
/// case (an IPv6 address in brackets, in RFC 5952 form), `:port` only when it is not the
/// scheme's default (80, 443), and the path `/v1`. Nothing is trimmed.
pub fn relay_binding(url: &str) -> Result<String, RelayUrlError> {
    let (scheme, rest) = split_scheme(url).ok_or(RelayUrlError::Scheme)?;
    if rest.contains(['?', '#']) {
        return Err(RelayUrlError::Extra);
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(RelayUrlError::Extra);
    }
    if !matches!(path, "" | "/" | "/v1" | "/v1/") {
        return Err(RelayUrlError::Path);
    }
    let (host, port) = split_host_port(authority)?;
    let default_port = if scheme == "wss" { 443 } else { 80 };
    let port = match port {
        Some(port) if port != default_port => format!(":{port}"),
        _ => String::new(),
    };
    let binding = format!("{scheme}://{host}{port}/v1");
    if binding.len() > MAX_RELAY_ID_LEN {
        return Err(RelayUrlError::TooLong);
    }
    Ok(binding)
}

/// The scheme in lower case and what follows `://`.
fn split_scheme(url: &str) -> Option<(&'static str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.eq_ignore_ascii_case("wss") {
        Some(("wss", rest))
    } else if scheme.eq_ignore_ascii_case("ws") {
        Some(("ws", rest))
    } else {
        None
    }
}

/// Splits `host[:port]` and canonicalises the host.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), RelayUrlError> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (address, after) = inner.split_once(']').ok_or(RelayUrlError::Host)?;
        let address: Ipv6Addr = address.parse().map_err(|_| RelayUrlError::Host)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(RelayUrlError::Port)?),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.');
        if host.is_empty() || host.len() > 253 || !host.bytes().all(valid) {
            return Err(RelayUrlError::Host);
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(RelayUrlError::Port);
            }
            let port: u16 = digits.parse().map_err(|_| RelayUrlError::Port)?;
            if port == 0 {
                return Err(RelayUrlError::Port);
            }
            Some(port)
        }
    };
    Ok((host, port))
}

/// Whether a host (as in a relay binding: lower case, IPv6 in brackets) is this machine:
/// `localhost`, `127.0.0.0/8` or `[::1]`. Relay-qualified handles name such hosts with `ws://`.
pub fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// One URL an account can be reached at, with the pin of its TLS certificate when the relay's
/// certificate is self-signed (a daemon hosting its own relay).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayEndpoint {
    url: String,
    /// SHA-256 of the relay's TLS end-entity certificate (DER). When present, a client accepts
    /// exactly that certificate for this URL, and no other check of the certificate applies.
    pub tls_pin: Option<[u8; TLS_PIN_LEN]>,
}

impl RelayEndpoint {
    /// An endpoint at the canonical form of `url`.
    pub fn new(url: &str, tls_pin: Option<[u8; TLS_PIN_LEN]>) -> Result<Self, RelayUrlError> {
        Ok(Self {
            url: relay_binding(url)?,
            tls_pin,
        })
    }

    /// The relay binding.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for RelayEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls_pin {
            None => write!(f, "RelayEndpoint({})", self.url),
            Some(pin) => write!(
                f,
                "RelayEndpoint({}, pin {})",
                self.url,
                crate::hex_prefix(pin)
            ),
        }
    }
}

impl Encode for RelayEndpoint {
    fn encode(&self, w: &mut Writer) {
        w.str16(&self.url);
        match &self.tls_pin {
            None => w.u8(0),
            Some(pin) => {
                w.u8(1);
                w.raw(pin);
            }
        }
    }
}

impl Decode for RelayEndpoint {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let url = r.str16("relay url", MAX_RELAY_ID_LEN)?;
        if relay_binding(url).as_deref() != Ok(url) {
            return Err(DecodeError::Invalid(
                "relay url (not a canonical relay binding)",
            ));
        }
        let tls_pin = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(DecodeError::Invalid("tls pin presence")),
        };
        Ok(Self {
            url: url.to_owned(),
            tls_pin,
        })
    }
}

/// Why a reachability record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReachabilityError {
    /// No endpoint, more than [`MAX_RELAYS_PER_RECORD`], or one URL twice.
    #[error("a record lists 1 to {MAX_RELAYS_PER_RECORD} different relays")]
    Relays,
    /// The identity key's signature does not verify.
    #[error("the reachability record's signature is invalid")]
    BadSignature,
    /// The record names another identity than the one it was expected from.
    #[error("the reachability record is another account's")]
    WrongIdentity,
    /// The record is not newer than one already held.
    #[error("the reachability record is older than the one already known")]
    Stale,
}

/// Where an account can be reached (SPEC.md 10.9), signed by its identity key over
/// `"chatd/v1/reachability\0" || the fields before the signature, as encoded`.
///
/// `relays[0]` is the home relay, where the account's mailboxes, prekeys and handles live;
/// further entries are other URLs of the same relay service, tried in order when the first
/// cannot be reached. A newer record (higher `sequence`) replaces an older one.
#[derive(Clone, PartialEq, Eq)]
pub struct ReachabilityRecord {
    /// The account.
    pub identity: IdentityKey,
    /// Orders the account's records; chatd uses the signing time in milliseconds.
    pub sequence: u64,
    relays: Vec<RelayEndpoint>,
    /// The identity key's signature.
    pub signature: Signature,
}

impl fmt::Debug for ReachabilityRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReachabilityRecord")
            .field("identity", &self.identity)
            .field("sequence", &self.sequence)
            .field("relays", &self.relays)
            .finish_non_exhaustive()
    }
}

impl ReachabilityRecord {
    /// Signs a record for `identity`.
    pub fn sign(
        identity: &IdentityKeyPair,
        sequence: u64,
        relays: Vec<RelayEndpoint>,
    ) -> Result<Self, ReachabilityError> {
        check_relays(&relays)?;
        let public = identity.public_key();
        let signature = identity.sign(&signed_bytes(&public, sequence, &relays));
        Ok(Self {
            identity: public,
            sequence,
            relays,
            signature,
        })
    }

    /// The endpoints, home relay first (never empty).
    pub fn relays(&self) -> &[RelayEndpoint] {
        &self.relays
    }

    /// The home relay.
    pub fn home(&self) -> Option<&RelayEndpoint> {
        self.relays.first()
    }

    /// Checks the signature under the record's own identity key.
    pub fn verify(&self) -> Result<(), ReachabilityError> {
        let message = signed_bytes(&self.identity, self.sequence, &self.relays);
        self.identity
            .ed25519()
            .verify(&message, &self.signature)
            .map_err(|_| ReachabilityError::BadSignature)
    }

    /// Checks the signature and that the record is `identity`'s.
    pub fn verify_for(&self, identity: &IdentityKey) -> Result<(), ReachabilityError> {
        if &self.identity != identity {
            return Err(ReachabilityError::WrongIdentity);
        }
        self.verify()
    }

    /// Whether this record may replace `held`: same identity, verified, and a higher sequence.
    pub fn supersedes(&self, held: &ReachabilityRecord) -> Result<(), ReachabilityError> {
        self.verify_for(&held.identity)?;
        if self.sequence <= held.sequence {
            return Err(ReachabilityError::Stale);
        }
        Ok(())
    }
}

fn check_relays(relays: &[RelayEndpoint]) -> Result<(), ReachabilityError> {
    if relays.is_empty() || relays.len() > MAX_RELAYS_PER_RECORD {
        return Err(ReachabilityError::Relays);
    }
    for (i, relay) in relays.iter().enumerate() {
        if relays.iter().take(i).any(|other| other.url == relay.url) {
            return Err(ReachabilityError::Relays);
        }
    }
    Ok(())
}

fn encode_fields(w: &mut Writer, identity: &IdentityKey, sequence: u64, relays: &[RelayEndpoint]) {
    w.u8(REACHABILITY_VERSION);
    identity.encode(w);
    w.u64(sequence);
    // At most four endpoints (checked when built or decoded).
    w.u8(u8::try_from(relays.len()).unwrap_or(u8::MAX));
    for relay in relays {
        relay.encode(w);
    }
}

fn signed_bytes(identity: &IdentityKey, sequence: u64, relays: &[RelayEndpoint]) -> Vec<u8> {
    let mut w = Writer::with_capacity(MAX_REACHABILITY_LEN);
    w.raw(CONTEXT_REACHABILITY);
    encode_fields(&mut w, identity, sequence, relays);
    w.into_bytes()
}

impl Encode for ReachabilityRecord {
    fn encode(&self, w: &mut Writer) {
        encode_fields(w, &self.identity, self.sequence, &self.relays);
        w.raw(&self.signature.0);
    }
}

impl Decode for ReachabilityRecord {
    /// Decodes the structure; the signature is checked by [`ReachabilityRecord::verify`].
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        UncheckedRecord::decode(r)?
            .check()
            .ok_or(DecodeError::Invalid("reachability identity key"))
    }
}

/// A record whose identity key has not been checked yet, so that a containing structure (an
/// invite) can report a malformed field after it before a bad key.
pub(crate) struct UncheckedRecord {
    identity: [u8; 32],
    sequence: u64,
    relays: Vec<RelayEndpoint>,
    signature: Signature,
}

impl UncheckedRecord {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version("reachability record", REACHABILITY_VERSION)?;
        let identity = r.array()?;
        let sequence = r.u64()?;
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_RELAYS_PER_RECORD {
            return Err(DecodeError::Invalid("relay count"));
        }
        let mut relays = Vec::with_capacity(count);
        for _ in 0..count {
            relays.push(RelayEndpoint::decode(r)?);
        }
        check_relays(&relays).map_err(|_| DecodeError::Invalid("duplicate relay url"))?;
        Ok(Self {
            identity,
            sequence,
            relays,
            signature: Signature(r.array()?),
        })
    }

    /// The record, if its identity key is acceptable (SPEC.md 2.4, check 10).
    pub(crate) fn check(self) -> Option<ReachabilityRecord> {
        Some(ReachabilityRecord {
            identity: IdentityKey::from_bytes(&self.identity).ok()?,
            sequence: self.sequence,
            relays: self.relays,
            signature: self.signature,
        })
    }
}

/// A credential a recipient gives one contact: the contact presents it with every envelope it
/// deposits at the recipient's relay, and the recipient can revoke it there (SPEC.md 10.9).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeliveryToken(pub [u8; DELIVERY_TOKEN_LEN]);

impl DeliveryToken {
    /// A fresh random token.
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        Self(crate::crypto::random_array(rng))
    }

    /// What the relay stores and compares: `SHA-256("chatd/v1/delivery-token" || token)`.
    pub fn digest(&self) -> [u8; DELIVERY_TOKEN_DIGEST_LEN] {
        sha256(&[CONTEXT_DELIVERY_TOKEN, &self.0])
    }
}

impl fmt::Debug for DeliveryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A credential: never shown.
        f.write_str("DeliveryToken(..)")
    }
}

impl Encode for DeliveryToken {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
}

impl Decode for DeliveryToken {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array()?))
    }
}

/// Why a text is not a relay-qualified handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QualifiedHandleError {
    /// The part before `@` is not a handle.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// The part after `@` is not a relay.
    #[error("bad relay: {0}")]
    Relay(#[from] RelayUrlError),
}

/// The relay binding a relay-qualified handle's or address's relay part names (SPEC.md 10.9):
/// a URL (`ws[s]://host[:port][/v1]`), or `host[:port]`, which means `wss://`, except for a
/// loopback host (`localhost`, `127.0.0.0/8`, `[::1]`), which means `ws://`.
pub fn relay_of(text: &str) -> Result<String, RelayUrlError> {
    if text.contains("://") {
        return relay_binding(text);
    }
    if text.contains('/') {
        return Err(RelayUrlError::Path);
    }
    let (host, _) = split_host_port(text)?;
    let scheme = if is_loopback_host(&host) { "ws" } else { "wss" };
    relay_binding(&format!("{scheme}://{text}"))
}

/// A handle, on the reader's own home relay (`relay` is `None`) or on a named relay: the text
/// `handle`, `handle@host[:port]` or `handle@ws[s]://host[:port]/v1` (SPEC.md 10.9). A bare
/// host means `wss://`, except a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`), which
/// means `ws://`. A leading `@` is allowed and ignored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct QualifiedHandle {
    /// The handle.
    pub handle: Handle,
    /// The relay binding of the relay it is on, or `None` for the reader's home relay.
    pub relay: Option<String>,
}

impl QualifiedHandle {
    /// Parses the text forms above.
    pub fn parse(text: &str) -> Result<Self, QualifiedHandleError> {
        let text = text.strip_prefix('@').unwrap_or(text);
        let Some((handle, relay)) = text.split_once('@') else {
            return Ok(Self {
                handle: Handle::parse(text)?,
                relay: None,
            });
        };
        Ok(Self {
            handle: Handle::parse(handle)?,
            relay: Some(relay_of(relay)?),
        })
    }

    /// The short text form of a relay binding: `host[:port]` when that form reads back as the
    /// same relay (a `wss` relay elsewhere, a `ws` relay on this machine), else the URL.
    pub fn relay_text(binding: &str) -> String {
        let Some((_, rest)) = split_scheme(binding) else {
            return binding.to_owned();
        };
        let authority = rest.strip_suffix("/v1").unwrap_or(rest);
        match relay_of(authority) {
            Ok(read_back) if read_back == binding => authority.to_owned(),
            _ => binding.to_owned(),
        }
    }
}

impl fmt::Display for QualifiedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relay {
            None => write!(f, "{}", self.handle),
            Some(relay) => write!(f, "{}@{}", self.handle, Self::relay_text(relay)),
        }
    }
}

impl fmt::Debug for QualifiedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QualifiedHandle({self})")
    }
}

#[cfg(test)]
mod tests;
