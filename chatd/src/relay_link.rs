//! The relay connection: one task that dials the relay (`ws://` or `wss://`), authenticates the
//! device, keeps the connection alive with pings, and reconnects with exponential backoff and
//! jitter when it drops.
//!
//! The task owns the WebSocket. The core talks to it through [`RelayLink`]: fire-and-forget
//! frames (`send`), and requests whose answer comes back to the caller (`request`). Everything
//! else the relay sends (delivered envelopes, answers to the core's own requests) and every
//! change of connection state goes to the core's input channel as a [`LinkEvent`]. The task is
//! aborted when the `RelayLink` is dropped (at lock), and with it the device's key copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use api::ErrorCode;
use api::types::ConnectionState;
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{AuthProof, ClientFrame, RelayId, RequestId, ServerFrame};
use protocol::identity::LocalDevice;
use rand::RngExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::ApiError;

/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often to ping the relay.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Without any frame from the relay for this long, the connection is considered dead.
const DEAD_AFTER: Duration = Duration::from_secs(75);
/// Deadline for dialling, the WebSocket handshake and authentication together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the link reports to the core.
#[derive(Debug)]
pub enum LinkEvent {
    /// The connection changed state (`error` says why an attempt failed).
    State {
        /// The new state.
        state: ConnectionState,
        /// Why the last attempt failed or the connection dropped.
        error: Option<String>,
    },
    /// A frame that is not the answer to a request.
    Frame(Box<ServerFrame>),
}

enum Command {
    Send(ClientFrame),
    Request(ClientFrame, oneshot::Sender<ServerFrame>),
    ReconnectNow,
}

/// The core's handle on the connection task; dropping it stops the task.
#[derive(Debug)]
pub struct RelayLink {
    requester: Requester,
    task: tokio::task::JoinHandle<()>,
}

/// A cloneable handle for sending frames and requests over the link (from background tasks).
#[derive(Debug, Clone)]
pub struct Requester {
    commands: mpsc::UnboundedSender<Command>,
    next_request: Arc<AtomicU32>,
}

/// The pending reply to an enqueued request.
#[derive(Debug)]
pub struct Answer(oneshot::Receiver<ServerFrame>);

/// Why a request to the relay failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The relay answered with an error frame.
    Refused(protocol::frames::ErrorCode, String),
    /// Not connected, the connection dropped, or no answer in time.
    Unreachable(String),
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Refused(code, message) => ApiError::new(
                ErrorCode::RelayError,
                format!("the relay refused: {} ({message})", code.name()),
            ),
            RequestError::Unreachable(message) => {
                ApiError::new(ErrorCode::RelayUnreachable, message)
            }
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Refused(code, message) => {
                write!(f, "refused: {} ({message})", code.name())
            }
            RequestError::Unreachable(message) => f.write_str(message),
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Send(frame) => write!(f, "Send({})", frame.name()),
            Command::Request(frame, _) => write!(f, "Request({})", frame.name()),
            Command::ReconnectNow => f.write_str("ReconnectNow"),
        }
    }
}

impl Drop for RelayLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The relay's URL, which is also the relay id its challenge must name.
    pub url: String,
    /// Extra trusted root certificate (PEM) for `wss://` relays with a private CA.
    pub extra_root_pem: Option<Vec<u8>>,
}

impl RelayLink {
    /// Starts the connection task for `device`; events go to `events`.
    pub fn start(
        config: LinkConfig,
        device: LocalDevice,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(config, device, events, receiver));
        Self {
            requester: Requester {
                commands,
                next_request: Arc::new(AtomicU32::new(1)),
            },
            task,
        }
    }

    /// A handle for background tasks.
    pub fn requester(&self) -> Requester {
        self.requester.clone()
    }

    /// A fresh request id.
    pub fn request_id(&self) -> RequestId {
        self.requester.request_id()
    }

    /// Sends a frame if connected (see [`Requester::send`]).
    pub fn send(&self, frame: ClientFrame) {
        self.requester.send(frame);
    }

    /// Asks to skip the current backoff wait (e.g. after the embedded relay started).
    pub fn reconnect_now(&self) {
        let _ = self.requester.commands.send(Command::ReconnectNow);
    }
}

impl Requester {
    /// A fresh request id.
    pub fn request_id(&self) -> RequestId {
        loop {
            let n = self.next_request.fetch_add(1, Ordering::Relaxed);
            if let Some(id) = RequestId::new(n) {
                return id;
            }
        }
    }

    /// Sends a frame if connected; otherwise it is dropped (the core resends what matters after
    /// the next `Connected`).
    pub fn send(&self, frame: ClientFrame) {
        let _ = self.commands.send(Command::Send(frame));
    }

    /// Sends a request built with a fresh id and waits for the answer.
    pub async fn request(
        &self,
        build: impl FnOnce(RequestId) -> ClientFrame,
        timeout: Duration,
    ) -> Result<ServerFrame, RequestError> {
        let answer = self.enqueue(build(self.request_id()))?;
        Self::answer(answer, timeout).await
    }

    /// Hands a request to the connection now (requests go out in the order they are
    /// enqueued); [`Self::answer`] waits for the reply.
    pub fn enqueue(&self, frame: ClientFrame) -> Result<Answer, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request(frame, reply))
            .map_err(|_| RequestError::Unreachable("the relay connection is closed".into()))?;
        Ok(Answer(answer))
    }

    /// Waits for the reply to an enqueued request.
    pub async fn answer(answer: Answer, timeout: Duration) -> Result<ServerFrame, RequestError> {
        match tokio::time::timeout(timeout, answer.0).await {
            Ok(Ok(ServerFrame::Error { code, message, .. })) => {
                Err(RequestError::Refused(code, message))
            }
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(RequestError::Unreachable(
                "not connected to the relay".into(),
            )),
            Err(_) => Err(RequestError::Unreachable(
                "the relay did not answer in time".into(),
            )),
        }
    }
}

/// Normalises a relay URL: `ws://` or `wss://`, a host, and the path `/v1` when none is given.
pub fn normalize_url(url: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::new(
            ErrorCode::InvalidRelayUrl,
            format!("invalid relay URL {url:?}: {why}"),
        )
    };
    let uri: Uri = url.trim().parse().map_err(|_| invalid("does not parse"))?;
    let scheme = uri.scheme_str().ok_or_else(|| invalid("no scheme"))?;
    if scheme != "ws" && scheme != "wss" {
        return Err(invalid("the scheme must be ws:// or wss://"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(invalid("bad host"));
    }
    let path = match uri.path() {
        "" | "/" => "/v1",
        path => path,
    };
    if uri.query().is_some() {
        return Err(invalid("no query string allowed"));
    }
    Ok(format!("{scheme}://{authority}{path}"))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

async fn run(
    config: LinkConfig,
    device: LocalDevice,
    events: mpsc::UnboundedSender<LinkEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let _ = events.send(LinkEvent::State {
            state: ConnectionState::Connecting,
            error: None,
        });
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&config, &device)).await;
        let error = match attempt {
            Ok(Ok(socket)) => {
                backoff = BACKOFF_MIN;
                let _ = events.send(LinkEvent::State {
                    state: ConnectionState::Connected,
                    error: None,
                });
                match session(socket, &events, &mut commands).await {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
            Ok(Err(e)) => e,
            Err(_) => "timed out connecting".to_owned(),
        };
        tracing::info!(relay = %config.url, %error, "relay connection down; retrying");
        let _ = events.send(LinkEvent::State {
            state: ConnectionState::Waiting,
            error: Some(error),
        });
        // Full jitter: a random delay up to the current backoff, so many daemons that lost
        // the same relay do not come back in lockstep.
        let wait_ms = rand::rng()
            .random_range(BACKOFF_MIN.as_millis() as u64 / 2..=backoff.as_millis().max(1) as u64);
        let wait = tokio::time::sleep(Duration::from_millis(wait_ms));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::ReconnectNow) => break,
                    Some(Command::Send(_)) => {}
                    // Dropping the reply tells the caller we are not connected.
                    Some(Command::Request(_, _)) => {}
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(config: &LinkConfig, device: &LocalDevice) -> Result<Socket, String> {
    let uri: Uri = config.url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let host = uri.host().ok_or("no host")?.to_owned();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let stream: Box<dyn Io> = if tls {
        Box::new(tls_connect(config, &host, tcp).await?)
    } else {
        Box::new(tcp)
    };
    // A relay may send nothing larger than a frame (SPEC.md 10.7): the WebSocket refuses
    // anything bigger instead of buffering it.
    let limits = WebSocketConfig::default()
        .max_message_size(Some(protocol::frames::MAX_FRAME_LEN))
        .max_frame_size(Some(protocol::frames::MAX_FRAME_LEN));
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(config.url.as_str(), stream, Some(limits))
            .await
            .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
    let relay_id = RelayId::new(config.url.as_bytes().to_vec()).map_err(|e| e.to_string())?;
    let (found, nonce) = match recv(&mut socket).await? {
        ServerFrame::Challenge {
            relay_id, nonce, ..
        } => (relay_id, nonce),
        other => return Err(format!("expected a challenge, got {}", other.name())),
    };
    if found != relay_id {
        return Err(format!(
            "the relay identifies as {:?}, not {}",
            String::from_utf8_lossy(found.as_bytes()),
            config.url
        ));
    }
    let proof = AuthProof::sign(
        device.keys.signing(),
        device.cert.certificate(),
        &relay_id,
        &nonce,
    );
    send(&mut socket, &ClientFrame::Auth(proof)).await?;
    match recv(&mut socket).await? {
        ServerFrame::AuthOk { .. } => Ok(socket),
        ServerFrame::Error { code, message, .. } => Err(format!(
            "the relay refused authentication: {} ({message})",
            code.name()
        )),
        other => Err(format!("expected AuthOk, got {}", other.name())),
    }
}

async fn tls_connect(
    config: &LinkConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &config.extra_root_pem {
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| format!("bad relay CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad relay CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| format!("bad server name {host}: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::new(tls_config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

async fn send(socket: &mut Socket, frame: &ClientFrame) -> Result<(), String> {
    socket
        .send(Message::Binary(frame.to_bytes().into()))
        .await
        .map_err(|e| format!("write failed: {e}"))
}

async fn recv(socket: &mut Socket) -> Result<ServerFrame, String> {
    loop {
        match socket.next().await {
            None | Some(Ok(Message::Close(_))) => {
                return Err("the relay closed the connection".into());
            }
            Some(Ok(Message::Binary(bytes))) => {
                return ServerFrame::from_bytes(&bytes)
                    .map_err(|e| format!("bad frame from the relay: {e}"));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read failed: {e}")),
        }
    }
}

/// Serves one authenticated connection until it fails (`Err`) or the link is dropped (`Ok`).
async fn session(
    mut socket: Socket,
    events: &mpsc::UnboundedSender<LinkEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Result<(), String> {
    let mut pending: HashMap<u32, oneshot::Sender<ServerFrame>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut last_heard = tokio::time::Instant::now();
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            frame = recv(&mut socket) => {
                let frame = frame?;
                last_heard = tokio::time::Instant::now();
                match frame {
                    ServerFrame::Ping { nonce } => send(&mut socket, &ClientFrame::Pong { nonce }).await?,
                    ServerFrame::Pong { .. } => {}
                    // A refusal of a frame without a request id (an ack over a rate limit, say),
                    // or the notice before the relay closes: the close itself ends the session.
                    ServerFrame::Error { request_id: None, code, message } => {
                        tracing::warn!(code = code.name(), %message, "the relay reported an error");
                    }
                    frame => {
                        let waiter = frame.request_id().and_then(|id| pending.remove(&id.get()));
                        match waiter {
                            Some(waiter) => { let _ = waiter.send(frame); }
                            None => { let _ = events.send(LinkEvent::Frame(Box::new(frame))); }
                        }
                    }
                }
            }
            command = commands.recv() => match command {
                None => return Ok(()),
                Some(Command::Send(frame)) => send(&mut socket, &frame).await?,
                Some(Command::Request(frame, reply)) => {
                    if let Some(id) = frame.request_id() {
                        pending.insert(id.get(), reply);
                    }
                    send(&mut socket, &frame).await?;
                }
                Some(Command::ReconnectNow) => {}
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    return Err("the relay stopped answering".into());
                }
                nonce = nonce.wrapping_add(1);
                send(&mut socket, &ClientFrame::Ping { nonce }).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_checked() {
        let ok = |u: &str| normalize_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(ok("ws://127.0.0.1:7420"), "ws://127.0.0.1:7420/v1");
        assert_eq!(ok("ws://127.0.0.1:7420/"), "ws://127.0.0.1:7420/v1");
        assert_eq!(
            ok("wss://relay.example.org/v1"),
            "wss://relay.example.org/v1"
        );
        for bad in [
            "http://x",
            "relay.example.org",
            "ws://",
            "ws://a@b/v1",
            "ws://x/v1?y=1",
            "",
        ] {
            let err = normalize_url(bad).err().map(|e| e.code);
            assert_eq!(err, Some(ErrorCode::InvalidRelayUrl), "{bad}");
        }
    }
}
