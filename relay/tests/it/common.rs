//! Shared helpers: devices with real keys, and relays on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;

use chat_relay::client::RelayClient;
use chat_relay::clock::{Clock, SystemClock};
use chat_relay::{Config, Relay, Storage};
use protocol::frames::{ClientFrame, OutgoingEnvelope, RelayId, RequestId, ServerFrame};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair, LocalDevice};
use protocol::prekeys::{KemPrekeySecret, OneTimePrekeySecret, SignedPrekeySecret};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio::net::TcpListener;

/// A device with real keys.
pub struct Device {
    pub local: LocalDevice,
    pub rng: ChaCha20Rng,
}

impl Device {
    pub fn new(seed: u8) -> Self {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let identity = IdentityKeyPair::generate(&mut rng);
        let keys = DeviceKeyPair::generate(DeviceId::new(1).unwrap(), &mut rng);
        let local = LocalDevice::new(&identity, keys, 1_700_000_000);
        Self { local, rng }
    }

    /// A `PublishPrekeys` frame with a signed prekey, a last-resort KEM prekey and `n` one-time
    /// prekeys.
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

    pub fn addr(&self) -> SocketAddr {
        self.relay.local_addr()
    }

    pub fn relay_id(&self) -> RelayId {
        self.relay.relay_id().clone()
    }

    pub async fn connect(&self, device: &Device) -> RelayClient {
        RelayClient::connect_as(self.addr(), &self.relay_id(), &device.local)
            .await
            .unwrap()
    }
}

/// Receives frames until one matches, skipping others (pings, deliveries...).
pub async fn expect<F: Fn(&ServerFrame) -> bool>(client: &mut RelayClient, what: F) -> ServerFrame {
    let deadline = tokio::time::Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            let frame = client.recv().await.unwrap();
            if what(&frame) {
                return frame;
            }
        }
    })
    .await
    .expect("timed out waiting for a frame")
}
