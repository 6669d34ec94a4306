//! Delivery-token admission (SPEC.md 10.9, rules 1-4): which envelopes of a `Send` or
//! `Deposit` the relay stores, which it drops unseen (a revoked token), and which requests it
//! refuses (`token_required`, or `rate_limited` past a recipient's stranger rate), decided
//! before the request goes to the group commit. A group's subscriptions (SPEC.md 10.10) are
//! admitted by the same rules, one envelope each, by the group commit itself.
//!
//! Every account's policy and digests are held here in memory: loaded from the store at start
//! and updated by `SetDeliveryTokens` right after its store write, so admitting an envelope is
//! a hash lookup (and a SHA-256 of its token when the recipient has a policy), never a store
//! read. While no account has a policy, admitting a request is one atomic load. An account
//! that never sent `SetDeliveryTokens` is absent and admits everything (rule 4).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Instant;

use protocol::frames::{EnvelopeId, ErrorCode, OutgoingEnvelope, TokenPolicy};
use protocol::identity::IdentityKey;
use protocol::reachability::DeliveryToken;

use crate::commit::CommitResult;
use crate::config::RateLimit;
use crate::metrics::Rejection;
use crate::ratelimit::RateLimiter;
use crate::store::{DeliveryTokens, TokenDigest, TokenState};

/// The accounts' token policies and digests, and the stranger rate per recipient account.
#[derive(Debug)]
pub(crate) struct TokenGate {
    /// Whether any account has a policy; never goes back to false.
    any: AtomicBool,
    accounts: RwLock<HashMap<IdentityKey, DeliveryTokens>>,
    /// Envelopes without a valid token admitted per recipient identity (policy `open`).
    strangers: RateLimiter<IdentityKey>,
}

/// What admission decided for a request it did not refuse: which envelopes (by index in the
/// request) are dropped. The others go to the group commit.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Ascending.
    dropped: Vec<usize>,
}

/// A request refused whole by admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The error for the client.
    pub(crate) code: ErrorCode,
    /// The envelope that decided it (0-based).
    pub(crate) index: usize,
    /// The metric it counts under.
    pub(crate) rejection: Rejection,
}

impl TokenGate {
    /// A gate holding `accounts` (the store's [`crate::store::Store::all_delivery_tokens`]).
    pub(crate) fn new(accounts: Vec<(IdentityKey, DeliveryTokens)>, strangers: RateLimit) -> Self {
        let accounts: HashMap<_, _> = accounts.into_iter().collect();
        Self {
            any: AtomicBool::new(!accounts.is_empty()),
            accounts: RwLock::new(accounts),
            strangers: RateLimiter::new(strangers),
        }
    }

    /// Applies a `SetDeliveryTokens` that the store accepted, with the same
    /// [`crate::store::token_changes`].
    pub(crate) fn update(
        &self,
        identity: IdentityKey,
        policy: TokenPolicy,
        changes: &HashMap<TokenDigest, TokenState>,
    ) {
        // Maps hold whole entries between statements: a poisoned lock is recovered.
        let mut accounts = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        accounts
            .entry(identity)
            .or_insert_with(|| DeliveryTokens::new(policy))
            .apply(policy, changes);
        self.any.store(true, Ordering::Release);
    }

    /// Decides a request: `envelopes`, and `tokens[i]` the token of envelope `i` (a `Send`
    /// passes none). Rules 1-3 for recipients with a policy, rule 4 for the others.
    pub(crate) fn admit(
        &self,
        envelopes: &[OutgoingEnvelope],
        tokens: &[Option<DeliveryToken>],
        now: Instant,
    ) -> Result<Plan, Refusal> {
        self.admit_recipients(envelopes.iter().map(|e| e.recipient_identity), tokens, now)
    }

    /// As [`Self::admit`] for recipients named by their identity alone: a group post's or
    /// `OpenGroup`'s subscriptions, each admitted like one `Deposit` envelope to the device
    /// (SPEC.md 10.10).
    pub(crate) fn admit_recipients(
        &self,
        recipients: impl Iterator<Item = IdentityKey>,
        tokens: &[Option<DeliveryToken>],
        now: Instant,
    ) -> Result<Plan, Refusal> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(Plan::default());
        }
        let mut plan = Plan::default();
        // Stranger envelopes per open recipient: (identity, first index, count).
        let mut strangers: Vec<(IdentityKey, usize, usize)> = Vec::new();
        {
            let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
            for (index, identity) in recipients.enumerate() {
                let Some(account) = accounts.get(&identity) else {
                    continue;
                };
                let state = tokens
                    .get(index)
                    .and_then(Option::as_ref)
                    .and_then(|token| account.state(&token.digest()));
                match (state, account.policy) {
                    (Some(TokenState::Revoked), _) => plan.dropped.push(index),
                    (Some(TokenState::Accepted), _) => {}
                    (None, TokenPolicy::TokensRequired) => {
                        return Err(Refusal {
                            code: ErrorCode::TokenRequired,
                            index,
                            rejection: Rejection::TokenRequired,
                        });
                    }
                    (None, TokenPolicy::Open) => {
                        match strangers.iter_mut().find(|(id, _, _)| *id == identity) {
                            Some((_, _, count)) => *count += 1,
                            None => strangers.push((identity, index, 1)),
                        }
                    }
                }
            }
        }
        // All or nothing: a request refused here gives back what it took.
        for (taken, &(identity, index, count)) in strangers.iter().enumerate() {
            if !self.strangers.try_take(identity, count as f64, now) {
                for &(identity, _, count) in &strangers[..taken] {
                    self.strangers.give_back(identity, count as f64, now);
                }
                return Err(Refusal {
                    code: ErrorCode::RateLimited,
                    index,
                    rejection: Rejection::StrangerRateLimited,
                });
            }
        }
        Ok(plan)
    }

    /// Forgets stranger-rate buckets that have refilled.
    pub(crate) fn sweep(&self, now: Instant) {
        self.strangers.sweep(now);
    }
}

impl Plan {
    /// How many envelopes are dropped.
    pub(crate) fn dropped(&self) -> usize {
        self.dropped.len()
    }

    /// Whether the item at `index` of the request is dropped.
    pub(crate) fn is_dropped(&self, index: usize) -> bool {
        self.dropped.binary_search(&index).is_ok()
    }

    /// The envelopes to store: `envelopes` without the dropped ones.
    pub(crate) fn keep(&self, envelopes: Vec<OutgoingEnvelope>) -> Vec<OutgoingEnvelope> {
        if self.dropped.is_empty() {
            return envelopes;
        }
        envelopes
            .into_iter()
            .enumerate()
            .filter(|(index, _)| self.dropped.binary_search(index).is_err())
            .map(|(_, envelope)| envelope)
            .collect()
    }

    /// The group commit's result for the kept envelopes, as the result for the whole request:
    /// a dropped envelope gets an id like a stored one (random: the cipher's ids are
    /// pseudorandom, so the sender cannot tell them apart), and a refused envelope's index is
    /// its index in the request.
    pub(crate) fn merge(&self, result: CommitResult) -> CommitResult {
        if self.dropped.is_empty() {
            return result;
        }
        match result {
            CommitResult::Stored(kept) => {
                let mut kept = kept.into_iter();
                let total = kept.len() + self.dropped.len();
                let ids = (0..total)
                    .filter_map(|index| {
                        if self.dropped.binary_search(&index).is_ok() {
                            Some(EnvelopeId::from_bytes(rand::random()))
                        } else {
                            kept.next()
                        }
                    })
                    .collect();
                CommitResult::Stored(ids)
            }
            CommitResult::Refused { code, index } => CommitResult::Refused {
                code,
                index: self.original_index(index),
            },
            CommitResult::Failed => CommitResult::Failed,
        }
    }

    /// The request index of the `kept`-th kept envelope.
    fn original_index(&self, kept: usize) -> usize {
        let mut index = kept;
        for &dropped in &self.dropped {
            if dropped <= index {
                index += 1;
            } else {
                break;
            }
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_puts_ids_in_request_order_and_maps_indexes_back() {
        let plan = Plan {
            dropped: vec![0, 2, 3],
        };
        let a = EnvelopeId::from_bytes([1; 16]);
        let b = EnvelopeId::from_bytes([2; 16]);
        let CommitResult::Stored(ids) = plan.merge(CommitResult::Stored(vec![a, b])) else {
            panic!("stored");
        };
        assert_eq!(ids.len(), 5);
        assert_eq!((ids[1], ids[4]), (a, b));
        assert!(![ids[0], ids[2], ids[3]].contains(&a));
        // Kept envelopes 0 and 1 are the request's 1 and 4.
        assert_eq!(plan.original_index(0), 1);
        assert_eq!(plan.original_index(1), 4);
        let all_dropped = Plan {
            dropped: vec![0, 1],
        };
        let CommitResult::Stored(ids) = all_dropped.merge(CommitResult::Stored(vec![])) else {
            panic!("stored");
        };
        assert_eq!(ids.len(), 2);
    }
}
