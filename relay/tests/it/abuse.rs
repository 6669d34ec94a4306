//! Misbehaving clients (SPEC.md sections 10.1, 10.3, 10.7, 11; design section 5 "Limits"): each
//! is refused or cut off, and a well-behaved pair of clients on the same relay keeps being
//! served ([`Pair::exchange`]).

use std::net::SocketAddr;

use chat_relay::client::RelayClient;
use chat_relay::metrics::Rejection;
use chat_relay::{Limits, RateLimit};
use futures_util::{SinkExt, StreamExt};
use protocol::codec::Decode;
use protocol::frames::{ClientFrame, ErrorCode, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// Reads a raw TCP stream to its end: returns once the relay has closed it (cleanly or with a
/// reset), failing the test if it stays open past the hang guard.
async fn assert_tcp_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = guard(tcp.read_to_end(&mut received)).await;
    received
}

#[tokio::test]
async fn oversized_frame_is_closed_with_1009() {
    // A configured limit, and the protocol's own (SPEC.md section 10.1).
    for limit in [64 * 1024, MAX_FRAME_LEN] {
        let relay = TestRelay::with_limits(Limits {
            max_frame_len: limit,
            ..Limits::default()
        })
        .await;
        let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
        let mut client = relay.connect(&Device::new(10)).await;
        // The send itself may fail once the relay has closed without reading it all.
        let _ = client.send_raw(vec![1; limit + 1]).await;
        let (frames, close) = frames_then_close(&mut client).await;
        // `frame_too_large` for the connection, then close 1009 (SPEC.md section 11).
        assert!(
            matches!(
                frames.as_slice(),
                [ServerFrame::Error {
                    request_id: None,
                    code: ErrorCode::FrameTooLarge,
                    ..
                }]
            ),
            "{frames:?}"
        );
        assert_eq!(close.map(|c| c.code), Some(CloseCode::Size));
        assert_eq!(
            relay.relay.metrics().rejections(Rejection::FrameTooLarge),
            1
        );
        pair.exchange().await;
    }
}

/// Reads every frame until the relay's WebSocket close; returns them and the close frame.
async fn frames_then_close(
    client: &mut RelayClient,
) -> (
    Vec<ServerFrame>,
    Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) {
    guard(async {
        let mut frames = Vec::new();
        loop {
            match client.websocket().next().await {
                Some(Ok(Message::Close(frame))) => return (frames, frame),
                Some(Ok(Message::Binary(bytes))) => {
                    frames.push(ServerFrame::from_bytes(&bytes).unwrap());
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
}

/// SPEC.md section 11: a frame that fails to decode gets `bad_frame` with its request id when
/// the first six bytes name a request, and every fatal error is followed by close 1008 with the
/// error's name as the reason.
#[tokio::test]
async fn bad_frames_echo_the_request_id_and_close_with_1008_and_the_name() {
    let relay = TestRelay::memory().await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let cases: [(&[u8], Option<u32>, ErrorCode); 4] = [
        // A `Send` whose envelope list is cut short.
        (
            b"\x01\x14\x00\x00\x00\x07\x00",
            Some(7),
            ErrorCode::BadFrame,
        ),
        // A `FetchBundle` cut short in its identity key.
        (
            b"\x01\x12\x00\x00\x01\x00\x00",
            Some(256),
            ErrorCode::BadFrame,
        ),
        // No request id to read: an `Ack` that is garbage, an unknown version.
        (b"\x01\x15\xff", None, ErrorCode::BadFrame),
        (
            b"\x02\x14\x00\x00\x00\x07",
            None,
            ErrorCode::UnsupportedVersion,
        ),
    ];
    for (bytes, request_id, code) in cases {
        let mut client = relay.connect(&Device::new(10)).await;
        client.send_raw(bytes.to_vec()).await.unwrap();
        let (frames, close) = frames_then_close(&mut client).await;
        match frames.as_slice() {
            [
                ServerFrame::Error {
                    request_id: found,
                    code: found_code,
                    ..
                },
            ] => {
                assert_eq!(found.map(|id| id.get()), request_id, "{bytes:02x?}");
                assert_eq!(*found_code, code, "{bytes:02x?}");
            }
            other => panic!("expected one error, got {other:?}"),
        }
        let close = close.unwrap();
        assert_eq!(close.code, CloseCode::Policy);
        assert_eq!(close.reason.as_str(), code.name());
    }
    pair.exchange().await;
}

#[tokio::test]
async fn garbage_messages_are_bad_frames() {
    let relay = TestRelay::memory().await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let cases: [(&[u8], ErrorCode); 5] = [
        (b"\x01\x7egarbage", ErrorCode::BadFrame),
        // A relay-only type (`Challenge`) sent by a client.
        (b"\x01\x80", ErrorCode::BadFrame),
        // A `Ping` with a trailing byte.
        (b"\x01\x01\0\0\0\0\0\0\0\0\0", ErrorCode::BadFrame),
        (b"", ErrorCode::BadFrame),
        (b"\x02\x01\0\0\0\0\0\0\0\0", ErrorCode::UnsupportedVersion),
    ];
    for (bytes, code) in cases {
        // Before authentication, right after the WebSocket handshake.
        let (mut client, _, _) = relay.challenged().await;
        client.send_raw(bytes.to_vec()).await.unwrap();
        assert_refused(&mut client, code).await;
        // And from an authenticated device.
        let mut client = relay.connect(&Device::new(10)).await;
        client.send_raw(bytes.to_vec()).await.unwrap();
        assert_refused(&mut client, code).await;
    }
    // A text message is not a frame either.
    let mut client = relay.connect(&Device::new(10)).await;
    client
        .websocket()
        .send(Message::Text("hello".into()))
        .await
        .unwrap();
    assert_refused(&mut client, ErrorCode::BadFrame).await;
    pair.exchange().await;
}

#[tokio::test]
async fn raw_tcp_garbage_instead_of_http_is_dropped() {
    let relay = TestRelay::memory().await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;

    // Bytes that never end a request head: dropped at the head size limit.
    let mut tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let garbage: Vec<u8> = (0..9000u32).map(|i| (i * 7 + 3) as u8 | 0x80).collect();
    let _ = tcp.write_all(&garbage).await;
    assert_tcp_closed(&mut tcp).await;

    // A complete head that is not a request: 404 and closed.
    let mut tcp = TcpStream::connect(relay.addr()).await.unwrap();
    tcp.write_all(b"\x16\x03\x01\xff\xfe garbage\r\n\r\n")
        .await
        .unwrap();
    let response = assert_tcp_closed(&mut tcp).await;
    assert!(response.starts_with(b"HTTP/1.1 404"), "{response:?}");

    // `GET /v1` without the upgrade headers: the WebSocket handshake fails and it is closed.
    let mut tcp = TcpStream::connect(relay.addr()).await.unwrap();
    tcp.write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_tcp_closed(&mut tcp).await;
    assert!(relay.relay.metrics().rejections(Rejection::HandshakeFailed) >= 2);
    pair.exchange().await;
}

#[tokio::test]
async fn slow_handshakes_are_dropped_at_the_deadline() {
    let relay = TestRelay::with_limits(Limits {
        handshake_timeout_ms: 500,
        ..Limits::default()
    })
    .await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;

    // Half a request head, then nothing.
    let mut half = TcpStream::connect(relay.addr()).await.unwrap();
    half.write_all(b"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // Upgraded, challenged, never answers.
    let (mut silent, _, _) = relay.challenged().await;

    assert_eq!(assert_tcp_closed(&mut half).await, b"");
    // SPEC.md section 10.3 step 5: no `Auth` in time gets `timeout`.
    assert_refused(&mut silent, ErrorCode::Timeout).await;
    assert_eq!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::HandshakeTimeout),
        2
    );
    pair.exchange().await;
    // Newcomers that do authenticate in time are still let in.
    let mut late = Pair::connect(relay.addr(), &relay.relay_id(), 20).await;
    late.exchange().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off() {
    let relay = TestRelay::with_limits(Limits {
        write_timeout_ms: 200,
        // 64 MiB from one device to one mailbox: the byte quotas are another test's.
        mailbox_quota_bytes: u64::MAX,
        device_bytes: RateLimit {
            per_second: 1e12,
            burst: 1e12,
        },
        ..Limits::default()
    })
    .await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let sender = Device::new(10);
    let sleeper = Device::new(11);
    let mut s = relay.connect(&sender).await;
    // From here on the sleeper does not read its socket.
    let mut z = relay.connect(&sleeper).await;

    // 16 MiB for it: more than the socket buffers and the relay's write buffer hold.
    let payload = vec![0x5a; MAX_PAYLOAD_LEN];
    for batch in 0..16 {
        let envelopes = (0..4).map(|_| sleeper.envelope(&payload)).collect();
        send_ok(&mut s, 1 + batch, envelopes).await;
        if batch == 8 {
            pair.exchange().await;
        }
    }
    let metrics = relay.relay.metrics();
    eventually("the slow reader to be cut off", || {
        metrics.rejections(Rejection::SlowReader) > 0
    })
    .await;
    pair.exchange().await;

    // What the sleeper finds when it wakes up: what fitted in the buffers, then the end.
    let frames = until_closed(&mut z).await;
    assert!(frames.len() < 64, "{} frames", frames.len());
    assert!(
        frames
            .iter()
            .all(|f| matches!(f, ServerFrame::Deliver { .. }))
    );
    // Its mail is still there for its next connection.
    let mut z = relay.connect(&sleeper).await;
    let (_, first) = deliver(&mut z).await;
    assert_eq!(first, payload);
}

#[tokio::test]
async fn rate_limit_breach_is_an_error_not_a_disconnect() {
    let relay = TestRelay::with_limits(Limits {
        device_frames: RateLimit {
            per_second: 1.0,
            burst: 5.0,
        },
        ..Limits::default()
    })
    .await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let flooder = Device::new(10);
    let mut f = relay.connect(&flooder).await;
    let identity = flooder.local.cert.identity();
    for n in 1..=20 {
        f.send(&ClientFrame::ListDevices {
            request_id: rid(n),
            identity,
        })
        .await
        .unwrap();
    }
    // Every request is answered, the ones over the limit with `rate_limited`.
    let mut limited = 0;
    for _ in 1..=20 {
        match expect(&mut f, |f| f.request_id().is_some()).await {
            ServerFrame::Devices { .. } => {}
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                request_id: Some(_),
                ..
            } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 10, "{limited} of 20 refused");
    assert_eq!(
        relay.relay.metrics().rejections(Rejection::RateLimited),
        limited
    );
    pair.exchange().await;

    // Still connected: once the bucket refills, requests are served again.
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    for n in 21.. {
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        let reply = request(
            &mut f,
            ClientFrame::ListDevices {
                request_id: rid(n),
                identity,
            },
        )
        .await;
        if matches!(reply, ServerFrame::Devices { .. }) {
            break;
        }
        assert_eq!(error_code(&reply), ErrorCode::RateLimited);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Connects `device`, retrying every 20 ms until the relay lets it in.
async fn connect_when_admitted(relay: &TestRelay, device: &Device) -> RelayClient {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        if let Ok(Ok(client)) = tokio::time::timeout(
            HANG_GUARD,
            RelayClient::connect_as(relay.addr(), &relay.relay_id(), &device.local),
        )
        .await
        {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never admitted a new connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Closes a client cleanly and waits for the relay's side of the close.
async fn close(mut client: RelayClient) {
    let _ = client.websocket().close(None).await;
    until_closed(&mut client).await;
}

/// A WebSocket from `source` (another loopback address) that gets the challenge.
async fn challenged_from(source: &str, relay: SocketAddr) -> ServerFrame {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = guard(socket.connect(relay)).await.unwrap();
    let (mut ws, _) = guard(tokio_tungstenite::client_async(
        format!("ws://{relay}/v1"),
        tcp,
    ))
    .await
    .unwrap();
    match guard(ws.next()).await {
        Some(Ok(Message::Binary(bytes))) => ServerFrame::from_bytes(&bytes).unwrap(),
        other => panic!("expected the challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let relay = TestRelay::with_limits(Limits {
        max_connections_per_ip: 3,
        // Retries below must not run into the connect rate.
        ip_connects: RateLimit {
            per_second: 1000.0,
            burst: 1000.0,
        },
        ..Limits::default()
    })
    .await;
    let devices: Vec<Device> = (1..=4).map(Device::new).collect();
    let mut c1 = relay.connect(&devices[0]).await;
    let mut c2 = relay.connect(&devices[1]).await;
    let c3 = relay.connect(&devices[2]).await;

    assert!(guard(RelayClient::connect(relay.addr())).await.is_err());
    assert!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::TooManyConnectionsFromIp)
            >= 1
    );
    // The cap is per address: another loopback address is let in.
    assert!(matches!(
        challenged_from("127.0.0.2", relay.addr()).await,
        ServerFrame::Challenge { .. }
    ));
    // The connections already in are served.
    let ids = send_ok(&mut c1, 1, vec![devices[1].envelope(b"hi")]).await;
    assert_eq!(deliver(&mut c2).await.0, ids[0]);

    close(c3).await;
    let mut c4 = connect_when_admitted(&relay, &devices[3]).await;
    sync(&mut c4).await;
}

#[tokio::test]
async fn total_connections_are_capped() {
    let relay = TestRelay::with_limits(Limits {
        max_connections: 3,
        ip_connects: RateLimit {
            per_second: 1000.0,
            burst: 1000.0,
        },
        ..Limits::default()
    })
    .await;
    let devices: Vec<Device> = (1..=4).map(Device::new).collect();
    let mut c1 = relay.connect(&devices[0]).await;
    let mut c2 = relay.connect(&devices[1]).await;
    let c3 = relay.connect(&devices[2]).await;

    assert!(guard(RelayClient::connect(relay.addr())).await.is_err());
    assert!(
        guard(challenged_from_result("127.0.0.2", relay.addr()))
            .await
            .is_err(),
        "the total cap holds for every address"
    );
    assert!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::TooManyConnections)
            >= 2
    );
    let ids = send_ok(&mut c1, 1, vec![devices[1].envelope(b"hi")]).await;
    assert_eq!(deliver(&mut c2).await.0, ids[0]);

    close(c3).await;
    let mut c4 = connect_when_admitted(&relay, &devices[3]).await;
    sync(&mut c4).await;
}

/// As [`challenged_from`], returning the failure instead of panicking.
async fn challenged_from_result(
    source: &str,
    relay: SocketAddr,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    let tcp = socket.connect(relay).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{relay}/v1"), tcp).await?;
    match ws.next().await {
        Some(Ok(Message::Binary(_))) => Ok(()),
        Some(Err(e)) => Err(e),
        _ => Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed),
    }
}

#[tokio::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    const IDLE_MS: u64 = 1000;
    const PING_MS: u64 = 50;
    let relay = TestRelay::with_limits(Limits {
        idle_timeout_ms: IDLE_MS,
        ping_interval_ms: PING_MS,
        ..Limits::default()
    })
    .await;
    // Sends nothing and does not read, so it never answers the relay's pings.
    let mut silent = relay.connect(&Device::new(10)).await;
    // Sends nothing either, but reads, so its WebSocket layer answers every ping.
    let mut reader = relay.connect(&Device::new(11)).await;

    // Pings keep coming to the reader well past the idle timeout, counted by the relay's own
    // ticks: it is not idle.
    let enough = 2 * IDLE_MS / PING_MS;
    guard(async {
        let mut pings = 0;
        while pings < enough {
            match reader.websocket().next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Binary(bytes))) => {
                    panic!("reader got {:?}", ServerFrame::from_bytes(&bytes))
                }
                Some(Ok(_)) => {}
                other => panic!("the reader was disconnected after {pings} pings: {other:?}"),
            }
        }
    })
    .await;

    let metrics = relay.relay.metrics();
    eventually("the idle timeout", || {
        metrics.rejections(Rejection::IdleTimeout) > 0
    })
    .await;
    // The relay sends `timeout` and closes; the client may or may not get to read the error
    // before its own automatic pongs run into the closed socket.
    let frames = until_closed(&mut silent).await;
    assert!(
        frames.iter().all(|f| matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::Timeout,
                request_id: None,
                ..
            }
        )),
        "{frames:?}"
    );
    assert_eq!(metrics.rejections(Rejection::IdleTimeout), 1);
    sync(&mut reader).await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    pair.exchange().await;
}

#[tokio::test]
async fn connects_per_ip_are_rate_limited() {
    let relay = TestRelay::with_limits(Limits {
        ip_connects: RateLimit {
            per_second: 0.001,
            burst: 2.0,
        },
        ..Limits::default()
    })
    .await;
    // The pair uses the address's two tokens; the next connection from it is dropped.
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let mut tcp = TcpStream::connect(relay.addr()).await.unwrap();
    let _ = tcp.write_all(b"GET /v1 HTTP/1.1\r\n\r\n").await;
    assert!(assert_tcp_closed(&mut tcp).await.is_empty());
    assert_eq!(
        relay
            .relay
            .metrics()
            .rejections(Rejection::ConnectRateLimited),
        1
    );
    // Another address has its own bucket, and the connected pair is unaffected.
    assert!(matches!(
        challenged_from("127.0.0.5", relay.addr()).await,
        ServerFrame::Challenge { .. }
    ));
    pair.exchange().await;
}

#[tokio::test]
async fn envelope_rate_is_limited_per_device() {
    let relay = TestRelay::with_limits(Limits {
        device_envelopes: RateLimit {
            per_second: 0.001,
            burst: 3.0,
        },
        ..Limits::default()
    })
    .await;
    let mut pair = Pair::connect(relay.addr(), &relay.relay_id(), 1).await;
    let sender = Device::new(20);
    let recipient = Device::new(21);
    let _registered = relay.connect(&recipient).await;
    let mut s = relay.connect(&sender).await;
    let to_b = || recipient.envelope(b"from a third device");
    let four = vec![to_b(), to_b(), to_b(), to_b()];
    let reply = request(
        &mut s,
        ClientFrame::Send {
            request_id: rid(1),
            envelopes: four,
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    // Three fit the burst; the connection stays open.
    send_ok(&mut s, 2, vec![to_b(), to_b(), to_b()]).await;
    let reply = request(
        &mut s,
        ClientFrame::Send {
            request_id: rid(3),
            envelopes: vec![to_b()],
        },
    )
    .await;
    assert_eq!(error_code(&reply), ErrorCode::RateLimited);
    pair.exchange().await;
}

#[tokio::test]
async fn persistent_rate_limit_breaches_end_in_a_disconnect() {
    let relay = TestRelay::with_limits(Limits {
        device_frames: RateLimit {
            per_second: 0.001,
            burst: 1.0,
        },
        ..Limits::default()
    })
    .await;
    // (No well-behaved pair here: with a burst of one frame nobody could be well behaved.)
    let flooder = Device::new(30);
    let mut f = relay.connect(&flooder).await;
    for nonce in 0..150 {
        if f.send(&ClientFrame::Ping { nonce }).await.is_err() {
            break;
        }
    }
    let frames = until_closed(&mut f).await;
    let limited = frames
        .iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            )
        })
        .count();
    // One ping is answered, the next 100 refused with an error frame each, then the relay
    // gives up on the client.
    assert_eq!(limited, 100, "{frames:?}");
}
