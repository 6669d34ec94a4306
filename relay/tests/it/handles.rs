//! Handles (SPEC.md section 10.6): claim, lookup, renew and release, and the claims and
//! releases the relay must refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use chat_relay::client::RelayClient;
use protocol::frames::{
    ClientFrame, ErrorCode, Handle, HandleClaim, HandleRelease, RequestId, ServerFrame,
};

use crate::common::*;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn claim(client: &mut RelayClient, n: u32, claim: HandleClaim) -> ServerFrame {
    request(
        client,
        ClientFrame::ClaimHandle {
            request_id: rid(n),
            claim,
        },
    )
    .await
}

async fn release(client: &mut RelayClient, n: u32, release: HandleRelease) -> ServerFrame {
    request(
        client,
        ClientFrame::ReleaseHandle {
            request_id: rid(n),
            release,
        },
    )
    .await
}

async fn lookup(client: &mut RelayClient, n: u32, handle: &Handle) -> Option<HandleClaim> {
    let reply = request(
        client,
        ClientFrame::LookupHandle {
            request_id: rid(n),
            handle: handle.clone(),
        },
    )
    .await;
    match reply {
        ServerFrame::HandleRecord { claim, .. } => {
            if let Some(claim) = &claim {
                claim.verify().unwrap();
                assert_eq!(&claim.handle, handle);
            }
            claim
        }
        other => panic!("expected a handle record, got {other:?}"),
    }
}

fn done(n: u32) -> ServerFrame {
    ServerFrame::Done {
        request_id: RequestId::new(n).unwrap(),
    }
}

#[tokio::test]
async fn claim_lookup_renew_release() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let handle = Handle::parse("alice").unwrap();
    let t = now();

    assert_eq!(lookup(&mut b, 1, &handle).await, None);
    let first = HandleClaim::sign(&alice.identity, handle.clone(), t);
    assert_eq!(claim(&mut a, 2, first.clone()).await, done(2));
    assert_eq!(lookup(&mut b, 3, &handle).await, Some(first.clone()));

    // Taken: another identity's own, validly signed claim.
    let bobs = HandleClaim::sign(&bob.identity, handle.clone(), t + 1);
    assert_eq!(
        error_code(&claim(&mut b, 4, bobs).await),
        ErrorCode::HandleTaken
    );

    // Renewal by the holder with a later claim; an older one is refused.
    let renewed = HandleClaim::sign(&alice.identity, handle.clone(), t + 2);
    assert_eq!(claim(&mut a, 5, renewed.clone()).await, done(5));
    assert_eq!(lookup(&mut b, 6, &handle).await, Some(renewed));
    let stale = HandleClaim::sign(&alice.identity, handle.clone(), t + 1);
    assert_eq!(
        error_code(&claim(&mut a, 7, stale).await),
        ErrorCode::HandleInvalid
    );

    // Release by someone who does not hold it: refused, whoever signed it.
    let bobs_release = HandleRelease::sign(&bob.identity, handle.clone(), t + 3);
    assert_eq!(
        error_code(&release(&mut b, 8, bobs_release).await),
        ErrorCode::HandleInvalid
    );
    let alices_release = HandleRelease::sign(&alice.identity, handle.clone(), t + 3);
    assert_eq!(
        error_code(&release(&mut b, 9, alices_release.clone()).await),
        ErrorCode::HandleInvalid
    );
    assert!(lookup(&mut b, 10, &handle).await.is_some());

    // Release by the holder.
    assert_eq!(release(&mut a, 11, alices_release).await, done(11));
    assert_eq!(lookup(&mut b, 12, &handle).await, None);
    let again = HandleRelease::sign(&alice.identity, handle.clone(), t + 4);
    assert_eq!(
        error_code(&release(&mut a, 13, again).await),
        ErrorCode::NotFound
    );

    // Free again: Bob may claim it now.
    let bobs = HandleClaim::sign(&bob.identity, handle.clone(), t + 5);
    assert_eq!(claim(&mut b, 14, bobs.clone()).await, done(14));
    assert_eq!(lookup(&mut a, 15, &handle).await, Some(bobs));
}

#[tokio::test]
async fn claim_sent_by_another_identity_is_refused() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let handle = Handle::parse("alice.w").unwrap();
    let t = now();

    // Alice's own valid claim, replayed by Bob's connection.
    let alices = HandleClaim::sign(&alice.identity, handle.clone(), t);
    assert_eq!(
        error_code(&claim(&mut b, 1, alices.clone()).await),
        ErrorCode::HandleInvalid
    );
    assert_eq!(lookup(&mut a, 2, &handle).await, None);
    assert_eq!(claim(&mut a, 3, alices).await, done(3));

    // A claim far from the relay's clock.
    let old = HandleClaim::sign(
        &bob.identity,
        Handle::parse("bob").unwrap(),
        t - 3 * 24 * 3600,
    );
    assert_eq!(
        error_code(&claim(&mut b, 4, old).await),
        ErrorCode::HandleInvalid
    );
}

/// SPEC.md section 10.6: a claim must be later than every claim and release the relay has
/// recorded for the handle; equal `issued_at` is not later, and a release is recorded.
#[tokio::test]
async fn claims_must_be_later_than_every_recorded_claim_and_release() {
    let relay = TestRelay::memory().await;
    let alice = Device::new(1);
    let bob = Device::new(2);
    let mut a = relay.connect(&alice).await;
    let mut b = relay.connect(&bob).await;
    let handle = Handle::parse("carol").unwrap();
    let t = now();

    let first = HandleClaim::sign(&alice.identity, handle.clone(), t);
    assert_eq!(claim(&mut a, 1, first.clone()).await, done(1));
    // The same claim again, and another claim issued in the same second: not later.
    assert_eq!(
        error_code(&claim(&mut a, 2, first.clone()).await),
        ErrorCode::HandleInvalid
    );
    let same_second = HandleClaim::sign(&alice.identity, handle.clone(), t);
    assert_eq!(
        error_code(&claim(&mut a, 3, same_second).await),
        ErrorCode::HandleInvalid
    );
    // A release issued in the claim's second is not later than it either.
    let early_release = HandleRelease::sign(&alice.identity, handle.clone(), t);
    assert_eq!(
        error_code(&release(&mut a, 4, early_release).await),
        ErrorCode::HandleInvalid
    );
    assert_eq!(lookup(&mut b, 5, &handle).await, Some(first.clone()));

    let released = HandleRelease::sign(&alice.identity, handle.clone(), t + 10);
    assert_eq!(release(&mut a, 6, released).await, done(6));
    assert_eq!(lookup(&mut b, 7, &handle).await, None);
    // The release is recorded: the old claim replayed, or anyone's claim not later than the
    // release, is refused; a later one is accepted.
    assert_eq!(
        error_code(&claim(&mut b, 8, first).await),
        ErrorCode::HandleInvalid
    );
    let bobs_early = HandleClaim::sign(&bob.identity, handle.clone(), t + 10);
    assert_eq!(
        error_code(&claim(&mut b, 9, bobs_early).await),
        ErrorCode::HandleInvalid
    );
    assert_eq!(lookup(&mut b, 10, &handle).await, None);
    let bobs = HandleClaim::sign(&bob.identity, handle.clone(), t + 11);
    assert_eq!(claim(&mut b, 11, bobs.clone()).await, done(11));
    assert_eq!(lookup(&mut a, 12, &handle).await, Some(bobs));
}
