//! Native `wss://`: the relay serves TLS with a certificate from the configuration, and a device
//! authenticates through it.

use std::sync::Arc;

use chat_relay::{Config, Storage, TlsConfig};
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, ServerFrame};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn devices_authenticate_over_native_tls() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();

    let mut config = Config::new(Storage::Memory);
    config.tls = Some(TlsConfig {
        cert: cert_path,
        key: key_path,
    });
    let relay = TestRelay::start(config).await;
    let port = relay.addr().port();
    config_relay_id_is_ws_by_default(&relay);

    let mut roots = RootCertStore::empty();
    roots.add(key.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let tls = TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{port}/v1"), tls)
        .await
        .unwrap();

    let device = Device::new(9);
    let Some(Ok(Message::Binary(bytes))) = ws.next().await else {
        panic!("no challenge");
    };
    let ServerFrame::Challenge {
        relay_id, nonce, ..
    } = ServerFrame::from_bytes(&bytes).unwrap()
    else {
        panic!("not a challenge");
    };
    let proof = AuthProof::sign(
        device.local.keys.signing(),
        device.local.cert.certificate(),
        &relay_id,
        &nonce,
    );
    ws.send(Message::Binary(ClientFrame::Auth(proof).to_bytes().into()))
        .await
        .unwrap();
    let Some(Ok(Message::Binary(bytes))) = ws.next().await else {
        panic!("no answer to Auth");
    };
    assert!(matches!(
        ServerFrame::from_bytes(&bytes).unwrap(),
        ServerFrame::AuthOk { .. }
    ));
    relay.relay.shutdown().await.unwrap();
}

/// Without `relay_id` configured, the binding is the `ws://` URL of the listen address; a TLS
/// deployment sets `--relay-id wss://...` to what clients dial. Either way the client signs
/// what the challenge names.
fn config_relay_id_is_ws_by_default(relay: &TestRelay) {
    let id = String::from_utf8(relay.relay_id().as_bytes().to_vec()).unwrap();
    assert_eq!(id, format!("ws://{}/v1", relay.addr()));
}
