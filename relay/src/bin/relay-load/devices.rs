//! Load devices: keys made from seeds (Ed25519 and X25519 only; the load needs no prekeys, so
//! no ML-KEM), and authenticated WebSocket connections to the relay.

use std::net::IpAddr;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, OutgoingEnvelope, RelayId, ServerFrame};
use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKey, IdentityKeyPair, LocalDevice};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::target::Target;

/// A client WebSocket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// One simulated device.
#[derive(Debug, Clone)]
pub(crate) struct LoadDevice {
    pub(crate) local: LocalDevice,
}

/// Where envelopes for a device go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mailbox {
    pub(crate) identity: IdentityKey,
    pub(crate) device: DeviceId,
}

impl LoadDevice {
    /// The device's mailbox address.
    pub(crate) fn mailbox(&self) -> Mailbox {
        Mailbox {
            identity: self.local.cert.identity(),
            device: self.local.cert.device_id(),
        }
    }
}

impl Mailbox {
    /// An envelope for this mailbox.
    pub(crate) fn envelope(&self, payload: Vec<u8>) -> OutgoingEnvelope {
        OutgoingEnvelope {
            recipient_identity: self.identity,
            recipient_device: self.device,
            payload,
        }
    }
}

/// `n` devices, each its own identity with device id 1. `salt` keeps runs against a
/// long-running relay apart.
pub(crate) fn generate(n: usize, salt: u64) -> Vec<LoadDevice> {
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1_700_000_000, |d| d.as_secs());
    (0..n)
        .map(|i| {
            let seed = |kind: u8| {
                let mut seed = [kind; 32];
                seed[..8].copy_from_slice(&salt.to_le_bytes());
                seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
                seed
            };
            let identity = IdentityKeyPair::from_seed(&seed(1));
            // Device id 1 is valid (not 0).
            let id = DeviceId::new(1).unwrap_or_else(|_| unreachable!());
            let keys = DeviceKeyPair::from_seeds(id, &seed(2), &seed(3));
            LoadDevice {
                local: LocalDevice::new(&identity, keys, created_at),
            }
        })
        .collect()
}

/// Small client buffers: the load tool holds up to tens of thousands of connections.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
}

/// Opens a WebSocket to the relay from `source`.
pub(crate) async fn connect(target: &Target, source: IpAddr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind((source, 0).into())
        .with_context(|| format!("binding to {source}"))?;
    let tcp = socket.connect(target.addr).await.context("TCP connect")?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{}/v1", target.addr);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
        .await
        .context("WebSocket upgrade")?;
    Ok(ws)
}

/// Connects and authenticates `device`; `index` picks the source address.
pub(crate) async fn connect_as(
    target: &Target,
    index: usize,
    device: &LoadDevice,
) -> anyhow::Result<Ws> {
    let source = target.sources[index % target.sources.len()];
    let mut ws = connect(target, source).await?;
    authenticate(&mut ws, &target.relay_id, &device.local).await?;
    Ok(ws)
}

/// Answers the challenge and waits for `AuthOk`.
pub(crate) async fn authenticate(
    ws: &mut Ws,
    relay_id: &RelayId,
    device: &LocalDevice,
) -> anyhow::Result<()> {
    let nonce = match recv(ws).await? {
        ServerFrame::Challenge {
            relay_id: found,
            nonce,
            ..
        } if &found == relay_id => nonce,
        other => bail!("expected the challenge, got {}", other.name()),
    };
    let proof = AuthProof::sign(
        device.keys.signing(),
        device.cert.certificate(),
        relay_id,
        &nonce,
    );
    send(ws, &ClientFrame::Auth(proof)).await?;
    match recv(ws).await? {
        ServerFrame::AuthOk { .. } => Ok(()),
        ServerFrame::Error { code, message, .. } => {
            bail!("authentication refused: {} {message}", code.name())
        }
        other => bail!("expected AuthOk, got {}", other.name()),
    }
}

/// Sends one frame and flushes.
pub(crate) async fn send(ws: &mut Ws, frame: &ClientFrame) -> anyhow::Result<()> {
    ws.send(Message::Binary(frame.to_bytes().into())).await?;
    Ok(())
}

/// Queues one frame without flushing.
pub(crate) async fn feed(ws: &mut Ws, frame: &ClientFrame) -> anyhow::Result<()> {
    ws.feed(Message::Binary(frame.to_bytes().into())).await?;
    Ok(())
}

/// The next frame from the relay.
pub(crate) async fn recv(ws: &mut Ws) -> anyhow::Result<ServerFrame> {
    loop {
        match ws.next().await {
            Some(message) => {
                if let Some(frame) = decode(message)? {
                    return Ok(frame);
                }
            }
            None => bail!("the relay closed the connection"),
        }
    }
}

/// Decodes one WebSocket message; `None` for control messages.
pub(crate) fn decode(
    message: Result<Message, tokio_tungstenite::tungstenite::Error>,
) -> anyhow::Result<Option<ServerFrame>> {
    match message? {
        Message::Binary(bytes) => Ok(Some(ServerFrame::from_bytes(&bytes)?)),
        Message::Close(close) => bail!("the relay closed the connection: {close:?}"),
        _ => Ok(None),
    }
}
