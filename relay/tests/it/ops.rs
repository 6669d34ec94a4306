//! The operational endpoints on the relay's port: `/healthz`, `/metrics`, and 404 for the rest.

use protocol::frames::{AuthProof, ClientFrame, ErrorCode};

use crate::common::*;

#[tokio::test]
async fn healthz_metrics_and_not_found() {
    let relay = TestRelay::memory().await;
    assert_eq!(
        http_get(relay.addr(), "/healthz").await.unwrap(),
        (200, "ok\n".to_owned())
    );

    // Something to count: a stored envelope and a failed authentication.
    let alice = Device::new(1);
    let mut a = relay.connect(&alice).await;
    send_ok(&mut a, 1, vec![alice.envelope(b"to self")]).await;
    let (mut bad, relay_id, _) = relay.challenged().await;
    let proof = AuthProof::sign(
        alice.local.keys.signing(),
        alice.local.cert.certificate(),
        &relay_id,
        &[0; 32],
    );
    bad.send(&ClientFrame::Auth(proof)).await.unwrap();
    assert_refused(&mut bad, ErrorCode::AuthFailed).await;

    let (status, body) = http_get(relay.addr(), "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for line in [
        "chat_relay_envelopes_stored_total 1\n",
        "chat_relay_authenticated_total 1\n",
        "chat_relay_authenticated_open 1\n",
        "chat_relay_rejections_total{reason=\"auth_failed\"} 1\n",
        "chat_relay_rejections_total{reason=\"slow_reader\"} 0\n",
        "chat_relay_mailbox_envelopes 1\n",
        "chat_relay_devices 1\n",
        "# TYPE chat_relay_connections_accepted_total counter\n",
        "# TYPE chat_relay_bytes_in_total counter\n",
    ] {
        assert!(body.contains(line), "{line:?} missing from\n{body}");
    }

    // Only the exact paths: SPEC.md section 10.8.
    for path in [
        "/",
        "/nope",
        "/v2",
        "/healthz/x",
        "/metrics.json",
        "/v1/",
        "/v1?x=1",
        "/v1/?x=1",
        "/V1",
        "/v1/extra",
        "/healthz?x=1",
    ] {
        let (status, _) = http_get(relay.addr(), path).await.unwrap();
        assert_eq!(status, 404, "{path}");
    }
    // The relay keeps serving.
    sync(&mut a).await;
}
