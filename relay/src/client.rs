//! A minimal relay client: connect, authenticate, send and receive frames. Used by the relay's
//! tests and load tool, and a starting point for chatd's relay connection. No reconnects, no
//! TLS: callers that need them wrap it.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, RelayId, ServerFrame};
use protocol::identity::LocalDevice;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// What can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection or the WebSocket failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket protocol failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The relay sent a frame that does not decode.
    #[error("bad frame from the relay: {0}")]
    Decode(#[from] protocol::codec::DecodeError),
    /// The relay closed the connection.
    #[error("the relay closed the connection")]
    Closed,
    /// The relay's challenge names another relay than the one dialled.
    #[error("the relay identifies as {found:?}, not {expected:?}")]
    WrongRelay {
        /// The binding expected.
        expected: RelayId,
        /// The binding in the challenge.
        found: RelayId,
    },
    /// The relay answered something unexpected.
    #[error("unexpected frame from the relay: {0:?}")]
    Unexpected(Box<ServerFrame>),
}

/// An open connection to a relay.
#[derive(Debug)]
pub struct RelayClient {
    ws: WebSocketStream<TcpStream>,
}

impl RelayClient {
    /// Opens a WebSocket to `ws://addr/v1`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, ClientError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{addr}/v1");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
        Ok(Self { ws })
    }

    /// Connects and authenticates as `device`, checking the challenge names `relay_id`.
    pub async fn connect_as(
        addr: SocketAddr,
        relay_id: &RelayId,
        device: &LocalDevice,
    ) -> Result<Self, ClientError> {
        let mut client = Self::connect(addr).await?;
        client.authenticate(relay_id, device).await?;
        Ok(client)
    }

    /// Answers the challenge and waits for `AuthOk`.
    pub async fn authenticate(
        &mut self,
        relay_id: &RelayId,
        device: &LocalDevice,
    ) -> Result<(), ClientError> {
        let (found, nonce) = match self.recv().await? {
            ServerFrame::Challenge {
                relay_id, nonce, ..
            } => (relay_id, nonce),
            other => return Err(ClientError::Unexpected(Box::new(other))),
        };
        if &found != relay_id {
            return Err(ClientError::WrongRelay {
                expected: relay_id.clone(),
                found,
            });
        }
        let proof = AuthProof::sign(
            device.keys.signing(),
            device.cert.certificate(),
            relay_id,
            &nonce,
        );
        self.send(&ClientFrame::Auth(proof)).await?;
        match self.recv().await? {
            ServerFrame::AuthOk { .. } => Ok(()),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.send_raw(frame.to_bytes()).await
    }

    /// Sends raw bytes as one binary message (tests use it for malformed frames).
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// The next frame from the relay (WebSocket pings are answered and skipped).
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Err(ClientError::Closed),
                Some(Ok(Message::Binary(bytes))) => return Ok(ServerFrame::from_bytes(&bytes)?),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The underlying WebSocket, for tests that need to misbehave.
    pub fn websocket(&mut self) -> &mut WebSocketStream<TcpStream> {
        &mut self.ws
    }
}
