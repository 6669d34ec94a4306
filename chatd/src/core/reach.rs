//! Reachability across relays (SPEC.md 10.9) for this account: its own signed reachability
//! record, where each contact's envelopes go ([`Route`]), the delivery tokens given to and
//! received from contacts, and what the home relay is told (the record, token digests, the
//! stranger policy) every time the home link comes up.

use protocol::codec::{Decode, Encode};
use protocol::frames::{ClientFrame, MAX_TOKENS_PER_UPDATE, TokenPolicy};
use protocol::introduction::Introduction;
use protocol::reachability::{DeliveryToken, ReachabilityRecord, RelayEndpoint};

use super::records::ContactRecord;
use super::unlocked::{ConvId, Unlocked};
use super::{HostedRelay, Txn};
use crate::error::{ApiError, ApiResult};

/// Where a contact's envelopes, bundle fetches and device lists go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The relay binding.
    pub url: String,
    /// The pin of its TLS certificate, from the contact's signed record.
    pub tls_pin: Option<[u8; 32]>,
    /// Whether it is this account's own home relay (the authenticated link).
    pub home: bool,
}

/// This account's current reachability record, signed again from the stored sequence (an
/// Ed25519 signature is deterministic, so it is the same record every time).
pub fn own_record(unlocked: &Unlocked) -> ApiResult<ReachabilityRecord> {
    let home = RelayEndpoint::new(&unlocked.account.relay_url, unlocked.account.tls_pin)
        .map_err(|e| ApiError::store(format!("the account's relay URL: {e}")))?;
    ReachabilityRecord::sign(
        &unlocked.identity,
        unlocked.account.reach_sequence.max(1),
        vec![home],
    )
    .map_err(|e| ApiError::store(format!("the account's reachability record: {e}")))
}

/// Gives the account a record sequence if it has none yet (accounts made before records):
/// the time in milliseconds, so a later record (a relay move) is always newer. Returns true if
/// the account record changed and must be saved.
pub fn ensure_sequence(unlocked: &mut Unlocked) -> bool {
    if unlocked.account.reach_sequence != 0 {
        return false;
    }
    unlocked.account.reach_sequence = unlocked.clock.now_ms().max(1);
    true
}

/// Gives the account the pin of the relay this daemon hosts when that relay is its home
/// (SPEC.md 10.9, "Peer to peer"): at creation, and at every unlock in case the certificate
/// changed since (its files were deleted, or the daemon is ephemeral). A changed pin raises
/// the record's sequence, so contacts take the new record over the one they hold. Returns
/// true if the account record changed and must be saved.
pub fn pin_hosted_home(unlocked: &mut Unlocked, hosted: Option<&HostedRelay>) -> bool {
    let Some(hosted) = hosted else {
        return false;
    };
    if hosted.url != unlocked.account.relay_url || hosted.tls_pin == unlocked.account.tls_pin {
        return false;
    }
    unlocked.account.tls_pin = hosted.tls_pin;
    unlocked.account.reach_sequence = unlocked
        .clock
        .now_ms()
        .max(unlocked.account.reach_sequence.saturating_add(1));
    true
}

/// Queues an introduction carrying the account's current record to every contact that is not
/// blocked (nor a message request, which learns nothing of us until accepted), with the
/// delivery token it holds from us (SPEC.md 10.9, "Moving home"): after the record changed, so
/// contacts deliver where it now says.
pub fn introduce_to_all(unlocked: &mut Unlocked, txn: &mut Txn) -> ApiResult<()> {
    let contacts: Vec<_> = unlocked
        .contacts
        .iter()
        .filter(|(_, contact)| !contact.blocked && !contact.request)
        .map(|(id, contact)| (*id, contact.our_token))
        .collect();
    for (id, token) in contacts {
        super::contacts::introduce_to(unlocked, txn, id, None, token)?;
    }
    Ok(())
}

/// A fresh delivery token.
pub fn new_token() -> [u8; 16] {
    DeliveryToken::generate(&mut rand::rng()).0
}

/// Where `contact` is reached: the home relay of its newest record, else the relay its handle
/// or address was found on, else our own home relay. `attempt` picks among the record's
/// endpoints in turn, so a failing first URL gives way to the next (SPEC.md 10.9).
pub fn route(unlocked: &Unlocked, contact: &ContactRecord, attempt: u32) -> Route {
    let own = &unlocked.account.relay_url;
    let from_record = contact
        .reach
        .as_deref()
        .and_then(|bytes| ReachabilityRecord::from_bytes(bytes).ok())
        .and_then(|record| {
            let relays = record.relays();
            let index = (attempt as usize).checked_rem(relays.len())?;
            relays
                .get(index)
                .map(|endpoint| (endpoint.url().to_owned(), endpoint.tls_pin))
        });
    let (url, tls_pin) = match from_record {
        Some(found) => found,
        None => (
            contact.relay_hint.clone().unwrap_or_else(|| own.clone()),
            None,
        ),
    };
    Route {
        home: &url == own,
        url,
        tls_pin,
    }
}

/// How many relays a contact can be tried at: the URLs of its signed record, else one.
pub fn relay_count(contact: &ContactRecord) -> usize {
    contact
        .reach
        .as_deref()
        .and_then(|bytes| ReachabilityRecord::from_bytes(bytes).ok())
        .map_or(1, |record| record.relays().len().max(1))
}

/// The route of conversation `id` now: [`route`], at the attempt its failures have reached.
pub fn current_route(unlocked: &Unlocked, id: &ConvId, contact: &ContactRecord) -> Route {
    let attempt = unlocked.route_attempts.get(id).copied().unwrap_or(0);
    route(unlocked, contact, attempt)
}

/// Takes in the reachability fields of an introduction from `sender` (SPEC.md 8.1): a record
/// that names the sender, verifies and is newer than the one held replaces it; a delivery
/// token replaces the one held. Returns true if `contact` changed.
pub fn apply_introduction(
    contact: &mut ContactRecord,
    sender: &[u8; 32],
    introduction: &Introduction,
) -> bool {
    let mut changed = false;
    if let Some(record) = &introduction.reachability {
        if adopt_record(contact, sender, record) {
            changed = true;
        } else {
            tracing::info!(alias = %contact.alias, "ignored a reachability record that is not newer or not the sender's");
        }
    }
    if let Some(token) = &introduction.delivery_token
        && contact.send_token != Some(token.0)
    {
        contact.send_token = Some(token.0);
        changed = true;
    }
    changed
}

/// Adopts `record` for `contact` if it verifies, names `identity` and is newer than the record
/// held (any record is newer than none). Returns true if it was adopted.
pub fn adopt_record(
    contact: &mut ContactRecord,
    identity: &[u8; 32],
    record: &ReachabilityRecord,
) -> bool {
    let Ok(expected) = protocol::identity::IdentityKey::from_bytes(identity) else {
        return false;
    };
    if record.verify_for(&expected).is_err() {
        return false;
    }
    let held = contact
        .reach
        .as_deref()
        .and_then(|bytes| ReachabilityRecord::from_bytes(bytes).ok());
    if held.is_some_and(|held| held.sequence >= record.sequence) {
        return false;
    }
    contact.reach = Some(record.to_bytes());
    contact.relay_hint = None;
    true
}

/// What the home relay is told each time the link comes up (SPEC.md 10.9): the account's
/// record, its stranger policy, the digests of every token given to a contact (accepted, or
/// revoked for a blocked one), of every open invite's token (accepted) and of every invite
/// that expired unused (revoked). The frames go out after the round's flush; the relay answers
/// `Done` (or an error, which is logged).
pub fn sync_home(
    unlocked: &mut Unlocked,
    txn: &mut Txn,
    invite_tokens: super::contacts::InviteTokens,
) {
    let Some(link) = &unlocked.link else {
        return;
    };
    match own_record(unlocked) {
        Ok(record) => txn.frame(ClientFrame::PublishReachability {
            request_id: link.request_id(),
            record,
        }),
        Err(e) => tracing::error!(error = %e, "cannot publish the reachability record"),
    }
    let digest = |token: &[u8; 16]| DeliveryToken(*token).digest();
    let mut accepted: Vec<[u8; 32]> = invite_tokens.open.iter().map(digest).collect();
    let mut revoked: Vec<[u8; 32]> = invite_tokens.expired.iter().map(digest).collect();
    for contact in unlocked.contacts.values() {
        if let Some(token) = &contact.our_token {
            // A request holds no token of ours (one made by blocking it was never handed out).
            if contact.blocked || contact.request {
                revoked.push(digest(token));
            } else {
                accepted.push(digest(token));
            }
        }
    }
    let policy = policy(unlocked);
    let mut accepted = accepted.chunks(MAX_TOKENS_PER_UPDATE);
    let mut revoked = revoked.chunks(MAX_TOKENS_PER_UPDATE);
    // At least one update, to set the policy.
    loop {
        let add = accepted.next().map(<[_]>::to_vec).unwrap_or_default();
        let revoke = revoked.next().map(<[_]>::to_vec).unwrap_or_default();
        txn.frame(ClientFrame::SetDeliveryTokens {
            request_id: link.request_id(),
            policy,
            add,
            revoke,
        });
        if accepted.len() == 0 && revoked.len() == 0 {
            break;
        }
    }
}

/// Tells the home relay about one token change (a new contact's token, a block, an unblock).
pub fn register_token(unlocked: &Unlocked, txn: &mut Txn, token: &[u8; 16], accept: bool) {
    let Some(link) = &unlocked.link else {
        return;
    };
    let digest = DeliveryToken(*token).digest();
    let (add, revoke) = if accept {
        (vec![digest], Vec::new())
    } else {
        (Vec::new(), vec![digest])
    };
    txn.frame(ClientFrame::SetDeliveryTokens {
        request_id: link.request_id(),
        policy: policy(unlocked),
        add,
        revoke,
    });
}

/// Tells the home relay the account's stranger policy.
pub fn send_policy(unlocked: &Unlocked, txn: &mut Txn) {
    let Some(link) = &unlocked.link else {
        return;
    };
    txn.frame(ClientFrame::SetDeliveryTokens {
        request_id: link.request_id(),
        policy: policy(unlocked),
        add: Vec::new(),
        revoke: Vec::new(),
    });
}

fn policy(unlocked: &Unlocked) -> TokenPolicy {
    if unlocked.account.accept_strangers {
        TokenPolicy::Open
    } else {
        TokenPolicy::TokensRequired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::identity::IdentityKeyPair;
    use protocol::introduction::DisplayName;

    fn contact() -> ContactRecord {
        ContactRecord {
            alias: "bob".into(),
            identity: *IdentityKeyPair::from_seed(&[2; 32]).public_key().as_bytes(),
            handle: None,
            display_name: None,
            trust: api::types::Trust::Unverified,
            pending_identity: None,
            added_at_ms: 0,
            handle_checked_ms: 0,
            devices: Vec::new(),
            reach: None,
            relay_hint: None,
            send_token: None,
            our_token: None,
            blocked: false,
            pending_devices: Vec::new(),
            request: false,
            invite_refused: 0,
        }
    }

    fn record(seed: u8, sequence: u64, url: &str) -> ReachabilityRecord {
        ReachabilityRecord::sign(
            &IdentityKeyPair::from_seed(&[seed; 32]),
            sequence,
            vec![RelayEndpoint::new(url, None).unwrap()],
        )
        .unwrap()
    }

    fn introduction(record: Option<ReachabilityRecord>, token: Option<[u8; 16]>) -> Introduction {
        Introduction {
            name: DisplayName::parse("Bob").unwrap(),
            handle: None,
            invite_token: None,
            reachability: record,
            delivery_token: token.map(DeliveryToken),
        }
    }

    #[test]
    fn the_hosted_relays_pin_goes_into_the_record_of_an_account_at_home_there() {
        let mut state = crate::core::account::tests::unlocked_state(1_800_000_000_000);
        let Ok(unlocked) = state.unlocked() else {
            panic!("the account is unlocked");
        };
        let home = unlocked.account.relay_url.clone();
        let first = unlocked.account.reach_sequence;
        assert!(!pin_hosted_home(unlocked, None));
        let elsewhere = HostedRelay {
            url: "wss://[fd00::1]:7420/v1".into(),
            tls_pin: Some([7; 32]),
        };
        assert!(
            !pin_hosted_home(unlocked, Some(&elsewhere)),
            "a hosted relay that is not the account's home changes nothing"
        );
        let hosted = HostedRelay {
            url: home,
            tls_pin: Some([7; 32]),
        };
        assert!(pin_hosted_home(unlocked, Some(&hosted)));
        assert_eq!(unlocked.account.tls_pin, Some([7; 32]));
        assert!(unlocked.account.reach_sequence > first, "contacts take it");
        let record = own_record(unlocked).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.relays()[0].tls_pin, Some([7; 32]));
        let sequence = unlocked.account.reach_sequence;
        assert!(!pin_hosted_home(unlocked, Some(&hosted)), "the same pin");
        assert_eq!(unlocked.account.reach_sequence, sequence);
        let renewed = HostedRelay {
            tls_pin: Some([8; 32]),
            ..hosted
        };
        assert!(
            pin_hosted_home(unlocked, Some(&renewed)),
            "a new certificate"
        );
        assert!(unlocked.account.reach_sequence > sequence);
    }

    #[test]
    fn only_the_senders_newer_signed_records_are_adopted() {
        let mut bob = contact();
        let sender = bob.identity;
        let first = record(2, 10, "ws://127.0.0.1:7421");
        assert!(apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(first.clone()), None)
        ));
        assert_eq!(bob.reach, Some(first.to_bytes()));
        // The same record again, an older one, and someone else's: nothing changes.
        assert!(!apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(first.clone()), None)
        ));
        let old = record(2, 9, "ws://127.0.0.1:7499");
        assert!(!apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(old), None)
        ));
        let mallory = record(3, 99, "ws://127.0.0.1:7666");
        assert!(!apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(mallory), None)
        ));
        // A record whose relay was swapped after signing does not verify.
        let mut bytes = record(2, 11, "ws://127.0.0.1:7422").to_bytes();
        let at = bytes.windows(4).position(|w| w == b"7422").unwrap();
        bytes[at + 3] = b'3';
        let forged = ReachabilityRecord::from_bytes(&bytes).unwrap();
        assert!(!apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(forged), None)
        ));
        assert_eq!(bob.reach, Some(first.to_bytes()));
        // A newer one is adopted, and a token is taken.
        let moved = record(2, 11, "ws://127.0.0.1:7422");
        assert!(apply_introduction(
            &mut bob,
            &sender,
            &introduction(Some(moved.clone()), Some([5; 16]))
        ));
        assert_eq!(bob.reach, Some(moved.to_bytes()));
        assert_eq!(bob.send_token, Some([5; 16]));
    }
}
