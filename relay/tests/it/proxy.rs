//! Relays behind a reverse proxy (SPEC.md section 10.8): with a trusted proxy configured, the
//! per-address limits apply to the client address the proxy names (a PROXY protocol v2 header,
//! or `X-Forwarded-For`), counted per IPv4 address or IPv6 /64; a peer that is not trusted is
//! limited under its own address whatever it claims; without configuration nothing is believed.

use std::net::{IpAddr, SocketAddr};

use chat_relay::metrics::Rejection;
use chat_relay::proxy::encode_v2;
use chat_relay::{Config, Limits, ProxyConfig, ProxyProtocol, RateLimit, Storage};
use futures_util::StreamExt;
use protocol::codec::Decode;
use protocol::frames::ServerFrame;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

/// A memory relay that admits two connections per client network, trusting `127.0.0.1` as
/// a proxy speaking `protocol` (none: no proxy configured).
async fn relay(protocol: Option<ProxyProtocol>) -> TestRelay {
    let mut config = Config::new(Storage::Memory);
    config.limits = Limits {
        max_connections_per_ip: 2,
        ip_connects: RateLimit {
            per_second: 1000.0,
            burst: 1000.0,
        },
        ..Limits::default()
    };
    config.proxy = protocol.map(|protocol| ProxyConfig {
        protocol,
        trusted: vec!["127.0.0.1".parse().unwrap()],
    });
    TestRelay::start(config).await
}

/// Connects from loopback address `source`, writes `prefix` (a PROXY header, or nothing),
/// then opens the WebSocket with `forwarded_for` as `X-Forwarded-For`; the open WebSocket once
/// the relay's challenge arrived, or `None` if the relay dropped the connection instead.
async fn open(
    source: &str,
    relay: SocketAddr,
    prefix: &[u8],
    forwarded_for: Option<&str>,
) -> Option<WebSocketStream<TcpStream>> {
    guard(async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut tcp = socket.connect(relay).await.unwrap();
        // The relay may have closed already; the handshake below then fails.
        let _ = tcp.write_all(prefix).await;
        let mut request = format!("ws://{relay}/v1").into_client_request().unwrap();
        if let Some(client) = forwarded_for {
            request
                .headers_mut()
                .insert("X-Forwarded-For", HeaderValue::from_str(client).unwrap());
        }
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.ok()?;
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                assert!(matches!(
                    ServerFrame::from_bytes(&bytes),
                    Ok(ServerFrame::Challenge { .. })
                ));
                Some(ws)
            }
            _ => None,
        }
    })
    .await
}

/// A PROXY v2 header naming `client` as the source of a connection to the relay.
fn header(client: &str, relay: SocketAddr) -> Vec<u8> {
    let client: IpAddr = client.parse().unwrap();
    let destination = match client {
        IpAddr::V4(_) => relay,
        IpAddr::V6(_) => "[::1]:443".parse().unwrap(),
    };
    encode_v2(SocketAddr::new(client, 40_000), destination)
}

#[tokio::test]
async fn proxy_v2_from_a_trusted_proxy_limits_each_client_not_the_proxy() {
    let relay = relay(Some(ProxyProtocol::ProxyV2)).await;
    let addr = relay.addr();
    let mut open_now = Vec::new();
    // Two clients behind the proxy get two connections each, six from the proxy's address
    // with the IPv6 ones: without the header the third would be refused.
    for client in ["203.0.113.1", "203.0.113.2", "2001:db8:1:2::1"] {
        for _ in 0..2 {
            let ws = open("127.0.0.1", addr, &header(client, addr), None).await;
            open_now.push(ws.unwrap_or_else(|| panic!("{client} refused")));
        }
        // A third of the same client is over its cap.
        assert!(
            open("127.0.0.1", addr, &header(client, addr), None)
                .await
                .is_none(),
            "{client}"
        );
    }
    // Another address of the same IPv6 /64 counts as the same client; another /64 does not.
    assert!(
        open(
            "127.0.0.1",
            addr,
            &header("2001:db8:1:2:ffff::9", addr),
            None
        )
        .await
        .is_none()
    );
    open_now.push(
        open("127.0.0.1", addr, &header("2001:db8:1:3::1", addr), None)
            .await
            .unwrap(),
    );
    assert_eq!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::TooManyConnectionsFromIp),
        4
    );
    // A trusted proxy must send the header: a bare request from it is dropped.
    assert!(open("127.0.0.1", addr, b"", None).await.is_none());
    assert_eq!(open_now.len(), 7);
}

#[tokio::test]
async fn a_header_from_a_peer_that_is_not_trusted_is_not_believed() {
    // Trusted is 127.0.0.1 only: 127.0.0.2's header is not read as one, and its request is
    // garbage.
    let relay = relay(Some(ProxyProtocol::ProxyV2)).await;
    let addr = relay.addr();
    assert!(
        open("127.0.0.2", addr, &header("203.0.113.1", addr), None)
            .await
            .is_none()
    );
    // Without a header it is an ordinary client, limited under its own address.
    let first = open("127.0.0.2", addr, b"", None).await.unwrap();
    let second = open("127.0.0.2", addr, b"", None).await.unwrap();
    assert!(open("127.0.0.2", addr, b"", None).await.is_none());
    drop((first, second));

    // With no proxy configured, not even 127.0.0.1 is believed.
    let relay = relay_without_proxy().await;
    let addr = relay.addr();
    assert!(
        open("127.0.0.1", addr, &header("203.0.113.1", addr), None)
            .await
            .is_none()
    );
}

async fn relay_without_proxy() -> TestRelay {
    relay(None).await
}

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_names_the_client() {
    let relay = relay(Some(ProxyProtocol::XForwardedFor)).await;
    let addr = relay.addr();
    let mut open_now = Vec::new();
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            open_now.push(open("127.0.0.1", addr, b"", Some(client)).await.unwrap());
        }
        assert!(
            open("127.0.0.1", addr, b"", Some(client)).await.is_none(),
            "{client}"
        );
    }
    // Only the last entry, the one the proxy appended, counts: the client's own entries
    // before it prove nothing.
    assert!(
        open("127.0.0.1", addr, b"", Some("198.51.100.9, 198.51.100.1"))
            .await
            .is_none()
    );
    // An untrusted peer's header is ignored: it is limited under its own address.
    let first = open("127.0.0.2", addr, b"", Some("198.51.100.3"))
        .await
        .unwrap();
    let second = open("127.0.0.2", addr, b"", Some("198.51.100.4"))
        .await
        .unwrap();
    assert!(
        open("127.0.0.2", addr, b"", Some("198.51.100.5"))
            .await
            .is_none()
    );
    drop((first, second));
    // A trusted proxy's request without the header counts under the proxy's address.
    let proxy_own = [
        open("127.0.0.1", addr, b"", None).await.unwrap(),
        open("127.0.0.1", addr, b"", None).await.unwrap(),
    ];
    assert!(open("127.0.0.1", addr, b"", None).await.is_none());
    drop(proxy_own);
    let mut pair = Pair::connect(addr, &relay.relay_id(), 1).await;
    pair.exchange().await;
}
