//! Native `wss://`: the relay serves TLS with a certificate from the configuration, and a device
//! authenticates through it.

use std::sync::Arc;

use chat_relay::{Config, Storage, TlsConfig, TlsIdentity};
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, ServerFrame};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
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
    config_relay_id_is_ws_by_default(&relay);
    authenticate_over_tls(&relay, key.cert.der().clone()).await;
    relay.relay.shutdown().await.unwrap();
}

/// A program that embeds the relay hands it a certificate and key it holds in memory (chatd's
/// self-signed one), and that identity wins over files.
#[tokio::test]
async fn devices_authenticate_over_tls_from_an_in_memory_identity() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut config = Config::new(Storage::Memory);
    config.tls_identity = Some(TlsIdentity {
        cert_chain: vec![key.cert.der().to_vec()],
        key_pkcs8: zeroize::Zeroizing::new(key.signing_key.serialize_der()),
    });
    assert!(
        !format!("{config:?}").contains(&format!("{:?}", key.signing_key.serialize_der())),
        "the key is not in the configuration's Debug"
    );
    let relay = TestRelay::start(config).await;
    authenticate_over_tls(&relay, key.cert.der().clone()).await;
    relay.relay.shutdown().await.unwrap();
}

/// Dials `relay` over TLS trusting only `cert`, and authenticates a device.
async fn authenticate_over_tls(relay: &TestRelay, cert: CertificateDer<'static>) {
    let port = relay.addr().port();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
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
}

/// Without `relay_id` configured, the binding is the `ws://` URL of the listen address; a TLS
/// deployment sets `--relay-id wss://...` to what clients dial. Either way the client signs
/// what the challenge names.
fn config_relay_id_is_ws_by_default(relay: &TestRelay) {
    let id = String::from_utf8(relay.relay_id().as_bytes().to_vec()).unwrap();
    assert_eq!(id, format!("ws://{}/v1", relay.addr()));
}
