//! Shared helpers: devices with real keys, relays on `127.0.0.1:0` (in-process or as a real
//! `chat-relay` process), and frame expectations with generous hang guards.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_relay::client::RelayClient;
use chat_relay::clock::{Clock, SystemClock};
use chat_relay::{Config, Limits, Relay, Storage};
use protocol::frames::{
    ClientFrame, EnvelopeId, ErrorCode, OutgoingEnvelope, RelayId, RequestId, ServerFrame,
};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, SignedPrekeySecret};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any single wait may take before the test fails: a guard against hangs, never a
/// timing assertion (the machine may be busy with benchmarks).
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// A device with real keys.
pub struct Device {
    pub identity: IdentityKeyPair,
    pub local: LocalDevice,
    pub rng: ChaCha20Rng,
}

impl Device {
    /// Device 1 of a fresh identity, both drawn from `seed`.
    pub fn new(seed: u8) -> Self {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let identity = IdentityKeyPair::generate(&mut rng);
        let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), &mut rng);
        let local = LocalDevice::new(&identity, keys, 1_700_000_000);
        Self {
            identity,
            local,
            rng,
        }
    }

    /// Another device (`device_id`) of `identity`, its keys drawn from `seed`.
    pub fn of(identity: &IdentityKeyPair, device_id: u32, seed: u8) -> Self {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let keys = DeviceKeyPair::generate(DeviceId::new(device_id).unwrap(), &mut rng);
        let local = LocalDevice::new(identity, keys, 1_700_000_000);
        Self {
            identity: identity.clone(),
            local,
            rng,
        }
    }

    /// A `PublishPrekeys` frame with a signed prekey, a last-resort KEM prekey and `n` one-time
    /// prekeys (ids 100, 101, ...).
    pub fn prekeys(&mut self, request: u32, n: u32) -> ClientFrame {
        let signing = self.local.keys.signing().clone();
        let (_, spk) = SignedPrekeySecret::generate(1, 0, &signing, &mut self.rng);
        let (_, kem) = KemPrekeySecret::generate(1, true, &signing, &mut self.rng);
        let one_time_prekeys = (0..n)
            .map(|i| OneTimePrekeySecret::generate(100 + i, &mut self.rng).1)
            .collect();
        ClientFrame::PublishPrekeys {
            request_id: rid(request),
            signed_prekey: Some(spk),
            kem_prekeys: vec![kem],
            one_time_prekeys,
        }
    }

    /// An envelope for this device.
    pub fn envelope(&self, payload: &[u8]) -> OutgoingEnvelope {
        OutgoingEnvelope {
            recipient_identity: self.local.cert.identity(),
            recipient_device: self.local.cert.device_id(),
            payload: payload.to_vec(),
        }
    }
}

pub fn rid(n: u32) -> RequestId {
    RequestId::new(n).unwrap()
}

/// A relay in this process.
pub struct TestRelay {
    pub relay: Relay,
}

impl TestRelay {
    pub async fn start(config: Config) -> Self {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay::start_with_clock(listener, config, clock)
            .await
            .unwrap();
        Self { relay }
    }

    pub async fn memory() -> Self {
        Self::start(Config::new(Storage::Memory)).await
    }

    /// A memory relay with these limits.
    pub async fn with_limits(limits: Limits) -> Self {
        let mut config = Config::new(Storage::Memory);
        config.limits = limits;
        Self::start(config).await
    }

    /// A relay on a sled database in `dir`.
    pub async fn sled(dir: &Path) -> Self {
        Self::start(Config::new(Storage::Disk(dir.to_path_buf()))).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.relay.local_addr()
    }

    pub fn relay_id(&self) -> RelayId {
        self.relay.relay_id().clone()
    }

    pub async fn connect(&self, device: &Device) -> RelayClient {
        connect(self.addr(), &self.relay_id(), device).await
    }

    /// A WebSocket that has received the challenge and not answered it yet.
    pub async fn challenged(&self) -> (RelayClient, RelayId, [u8; 32]) {
        challenged(self.addr()).await
    }
}

/// Connects and authenticates, within the hang guard.
pub async fn connect(addr: SocketAddr, relay_id: &RelayId, device: &Device) -> RelayClient {
    guard(RelayClient::connect_as(addr, relay_id, &device.local))
        .await
        .unwrap()
}

/// Opens a WebSocket and reads the challenge.
pub async fn challenged(addr: SocketAddr) -> (RelayClient, RelayId, [u8; 32]) {
    let mut client = guard(RelayClient::connect(addr)).await.unwrap();
    match guard(client.recv()).await.unwrap() {
        ServerFrame::Challenge {
            relay_id, nonce, ..
        } => (client, relay_id, nonce),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Awaits `future`, failing the test if it takes longer than [`HANG_GUARD`].
pub async fn guard<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .expect("hang guard: the operation did not finish")
}

/// Receives frames until one matches, skipping others (pings, deliveries...).
pub async fn expect<F: Fn(&ServerFrame) -> bool>(client: &mut RelayClient, what: F) -> ServerFrame {
    guard(async {
        loop {
            let frame = client.recv().await.unwrap();
            if what(&frame) {
                return frame;
            }
        }
    })
    .await
}

/// Sends a request and returns the reply carrying its request id (skipping deliveries).
pub async fn request(client: &mut RelayClient, frame: ClientFrame) -> ServerFrame {
    let id = frame.request_id().expect("a request frame");
    client.send(&frame).await.unwrap();
    expect(client, |f| f.request_id() == Some(id)).await
}

/// The error code of a reply, failing the test if it is not an error.
pub fn error_code(reply: &ServerFrame) -> ErrorCode {
    match reply {
        ServerFrame::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Sends `envelopes` and returns their ids from the `SendAck`.
pub async fn send_ok(
    client: &mut RelayClient,
    request_id: u32,
    envelopes: Vec<OutgoingEnvelope>,
) -> Vec<EnvelopeId> {
    let n = envelopes.len();
    let reply = request(
        client,
        ClientFrame::Send {
            request_id: rid(request_id),
            envelopes,
        },
    )
    .await;
    match reply {
        ServerFrame::SendAck { envelope_ids, .. } => {
            assert_eq!(envelope_ids.len(), n);
            envelope_ids
        }
        other => panic!("expected a SendAck, got {other:?}"),
    }
}

/// The next `Deliver`: its id and payload.
pub async fn deliver(client: &mut RelayClient) -> (EnvelopeId, Vec<u8>) {
    match expect(client, |f| matches!(f, ServerFrame::Deliver { .. })).await {
        ServerFrame::Deliver {
            envelope_id,
            payload,
            ..
        } => (envelope_id, payload),
        _ => unreachable!(),
    }
}

/// Acknowledges envelopes (no reply).
pub async fn ack(client: &mut RelayClient, ids: &[EnvelopeId]) {
    client
        .send(&ClientFrame::Ack {
            envelope_ids: ids.to_vec(),
        })
        .await
        .unwrap();
}

/// Reads until the relay closes the connection and returns every frame received before.
pub async fn until_closed(client: &mut RelayClient) -> Vec<ServerFrame> {
    guard(async {
        let mut frames = Vec::new();
        while let Ok(frame) = client.recv().await {
            frames.push(frame);
        }
        frames
    })
    .await
}

/// Asserts the relay answers with exactly one connection-level `Error` of `code` (request id 0)
/// and closes the connection.
pub async fn assert_refused(client: &mut RelayClient, code: ErrorCode) {
    let frames = until_closed(client).await;
    match frames.as_slice() {
        [
            ServerFrame::Error {
                request_id: None,
                code: found,
                ..
            },
        ] if *found == code => {}
        other => panic!("expected one {code:?} error then a close, got {other:?}"),
    }
}

/// Two well-behaved devices on one relay. [`Pair::exchange`] proves the relay still serves
/// them: a message each way, sent, acknowledged and delivered.
pub struct Pair {
    pub a: Device,
    pub b: Device,
    pub ca: RelayClient,
    pub cb: RelayClient,
    next: u32,
}

impl Pair {
    pub async fn connect(addr: SocketAddr, relay_id: &RelayId, seed: u8) -> Self {
        let a = Device::new(seed);
        let b = Device::new(seed.wrapping_add(1));
        let ca = connect(addr, relay_id, &a).await;
        let cb = connect(addr, relay_id, &b).await;
        Self {
            a,
            b,
            ca,
            cb,
            next: 1,
        }
    }

    pub async fn exchange(&mut self) {
        self.next += 1;
        let tag = format!("well-behaved {}", self.next).into_bytes();
        let ids = send_ok(&mut self.ca, self.next, vec![self.b.envelope(&tag)]).await;
        let (id, payload) = deliver(&mut self.cb).await;
        assert_eq!((vec![id], &payload), (ids, &tag));
        ack(&mut self.cb, &[id]).await;
        let ids = send_ok(&mut self.cb, self.next, vec![self.a.envelope(&tag)]).await;
        let (id, payload) = deliver(&mut self.ca).await;
        assert_eq!((vec![id], &payload), (ids, &tag));
        ack(&mut self.ca, &[id]).await;
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    guard(tcp.read_to_end(&mut response)).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Polls `condition` every 20 ms until it holds, failing the test after [`HANG_GUARD`].
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `Ping` round trip: every frame sent before it has been handled by the relay.
pub async fn sync(client: &mut RelayClient) {
    let nonce = rand::random();
    client.send(&ClientFrame::Ping { nonce }).await.unwrap();
    expect(client, |f| *f == ServerFrame::Pong { nonce }).await;
}

/// The relay binding the `chat-relay` processes of these tests are started with.
pub const PROCESS_RELAY_ID: &str = "ws://relay.test/v1";

/// A real `chat-relay` process on a sled directory, killed (SIGKILL) when dropped.
pub struct RelayProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts the binary on a free loopback port and waits until `/healthz` answers.
    /// Its log goes to `log_dir`.
    pub async fn start(data_dir: &Path, log_dir: &Path) -> Self {
        Self::start_with_config(data_dir, log_dir, "").await
    }

    /// As [`Self::start`], with `config` (TOML) as the relay's configuration file.
    pub async fn start_with_config(data_dir: &Path, log_dir: &Path, config: &str) -> Self {
        let config_file = log_dir.join("chat-relay.toml");
        std::fs::write(&config_file, config).unwrap();
        // A port found free may be taken before the relay binds it: try a few.
        for attempt in 0..5 {
            let addr = free_port();
            let log = std::fs::File::create(log_dir.join(format!("relay-{attempt}.log"))).unwrap();
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-relay"))
                .arg("--config")
                .arg(&config_file)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--relay-id")
                .arg(PROCESS_RELAY_ID)
                .env("RUST_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut process = Self { child, addr };
            if process.wait_healthy().await {
                return process;
            }
        }
        panic!("chat-relay did not start; logs in {}", log_dir.display());
    }

    /// Polls `/healthz` every 20 ms; false if the process exited first.
    async fn wait_healthy(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok((200, body)) = http_get(self.addr, "/healthz").await {
                assert_eq!(body, "ok\n");
                return true;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat-relay did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn relay_id(&self) -> RelayId {
        RelayId::new(PROCESS_RELAY_ID.as_bytes().to_vec()).unwrap()
    }

    pub async fn connect(&self, device: &Device) -> RelayClient {
        connect(self.addr, &self.relay_id(), device).await
    }

    /// SIGKILL (`Child::kill` on Unix), and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address whose port was free a moment ago.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
