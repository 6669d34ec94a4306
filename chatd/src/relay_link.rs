//! The relay connection: one task that dials the relay (`ws://` or `wss://`), authenticates the
//! device (or, on an anonymous link to a contact's relay, does not: SPEC.md 10.9), keeps the
//! connection alive with pings, and reconnects with exponential backoff and jitter when it
//! drops. A `wss://` relay's certificate is checked against the WebPKI roots (and an optional
//! private CA), or, for an endpoint with a pin from a signed reachability record, must be
//! exactly the pinned certificate.
//!
//! The task owns the WebSocket. The core talks to it through [`RelayLink`]: fire-and-forget
//! frames (`send`), and requests whose answer comes back to the caller (`request`). Everything
//! else the relay sends (delivered envelopes, answers to the core's own requests) and every
//! change of connection state goes to the core's input channel as a [`LinkEvent`]. The task is
//! aborted when the `RelayLink` is dropped (at lock), and with it the device's key copy.
//!
//! Two bounds keep a relay that misbehaves from hurting the daemon. Every write has a deadline
//! ([`WRITE_TIMEOUT`]): a relay that stops reading loses the connection, which is dialled again
//! with the usual backoff. And the frames handed to the core hold a share of a byte budget
//! ([`INBOUND_BUDGET`]) until the core has handled them: when the core is behind, the link
//! stops reading the socket (TCP pushes back on the relay) instead of queueing without bound.
//! The link never waits for the core otherwise, and the core never waits for the link (its
//! commands go into a queue the link serves even while it is not reading), so neither can
//! deadlock the other.

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::ApiError;
use crate::local_relay::owner::Listener;

/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest reconnect delay to the user's local relay (on loopback, where a failed dial costs
/// nothing).
const LOCAL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often to ping the relay.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Without any frame from the relay for this long, the connection is considered dead.
const DEAD_AFTER: Duration = Duration::from_secs(75);
/// Deadline for dialling, the WebSocket handshake and authentication together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for one write (a frame and its flush): a relay that stops reading loses the
/// connection after this long instead of stalling the link (and its dead-link check).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of relay frames handed to the core and not yet handled, at most. The link reads the
/// next frame only when a whole [`protocol::frames::MAX_FRAME_LEN`] fits in what is left, so
/// about three largest frames, or thousands of ordinary ones (a round of the core handles at
/// most 256 inputs), can wait for the core.
pub const INBOUND_BUDGET: usize = 4 * protocol::frames::MAX_FRAME_LEN;
/// Read and write buffer of an anonymous link's WebSocket, bytes.
const ANONYMOUS_LINK_BUFFER: usize = 8 * 1024;

/// What the link reports to the core.
#[derive(Debug)]
pub enum LinkEvent {
    /// The connection changed state (`error` says why an attempt failed).
    State {
        /// The new state.
        state: ConnectionState,
        /// Why the last attempt failed or the connection dropped.
        error: Option<LinkError>,
    },
    /// A frame that is not the answer to a request, with its share of [`INBOUND_BUDGET`]: the
    /// share returns to the link when the event is dropped (when the core has handled it).
    Frame(Box<ServerFrame>, InboundShare),
}

/// A delivered frame's share of the link's [`INBOUND_BUDGET`], given back on drop.
#[derive(Debug)]
pub struct InboundShare {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a connection to the relay failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The relay URL is not one the link can dial.
    #[error("bad relay URL {0:?}")]
    BadUrl(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {host}:{port}: {source}")]
    Dial {
        /// The relay's host.
        host: String,
        /// The relay's port.
        port: u16,
        /// The system's reason.
        source: std::io::Error,
    },
    /// TLS could not be set up (configuration, certificate or handshake).
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket handshake failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(tokio_tungstenite::tungstenite::Error),
    /// Dialling, the handshake and authentication took longer than their deadline.
    #[error("timed out connecting")]
    ConnectTimedOut,
    /// The relay closed the connection.
    #[error("the relay closed the connection")]
    Closed,
    /// Reading from the connection failed.
    #[error("read failed: {0}")]
    Read(tokio_tungstenite::tungstenite::Error),
    /// Writing to the connection failed.
    #[error("write failed: {0}")]
    Write(tokio_tungstenite::tungstenite::Error),
    /// A write did not complete within [`WRITE_TIMEOUT`]: the relay stopped reading.
    #[error("the relay stopped reading (a write took longer than {}s)", WRITE_TIMEOUT.as_secs())]
    WriteTimedOut,
    /// Nothing came from the relay for [`DEAD_AFTER`].
    #[error("the relay stopped answering")]
    Silent,
    /// The relay broke the protocol.
    #[error(transparent)]
    Relay(#[from] RelayMisbehaviour),
    /// The local relay's address is held by another user's socket, which must not be taken
    /// for the user's own relay.
    #[error("{}", crate::local_relay::supervisor::foreign_message(*addr, *uid))]
    ForeignListener {
        /// The address.
        addr: std::net::SocketAddr,
        /// The uid that owns the listener there.
        uid: u32,
    },
}

/// Ways a relay breaks the protocol (SPEC.md section 10) that end the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayMisbehaviour {
    /// A frame that does not decode.
    #[error("bad frame from the relay: {0}")]
    BadFrame(protocol::codec::DecodeError),
    /// A frame the connection's stage does not allow.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the stage allows.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// The challenge names another relay (SPEC.md 10.3).
    #[error("the relay identifies as {found:?}, not {expected}")]
    WrongRelay {
        /// The relay id in the challenge, as text.
        found: String,
        /// The relay id this link binds to.
        expected: String,
    },
    /// The relay refused this device's authentication.
    #[error("the relay refused authentication: {} ({message})", code.name())]
    AuthRefused {
        /// The relay's error code.
        code: protocol::frames::ErrorCode,
        /// The relay's explanation.
        message: String,
    },
}

enum Command {
    Send(ClientFrame),
    Request(ClientFrame, oneshot::Sender<ServerFrame>),
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
    /// SHA-256 of the relay's TLS certificate: when set, exactly that certificate is accepted
    /// and no other check of it is made (a self-signed relay, pinned by a signed record).
    pub tls_pin: Option<[u8; 32]>,
    /// The relay is the user's local relay (`local_relay`): before each dial, a listener of
    /// another user on its address refuses the connection (Linux), and reconnects wait at
    /// most [`LOCAL_BACKOFF_MAX`], since another daemon of the user takes it over within
    /// seconds when its host stops.
    pub same_user: bool,
}

impl RelayLink {
    /// Starts the connection task; events go to `events`. With `device`, every connection
    /// authenticates as it (the home relay); without, the link is anonymous (a contact's relay:
    /// bundle fetches and deposits only).
    pub fn start(
        config: LinkConfig,
        device: Option<LocalDevice>,
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

/// Normalises a relay URL to the relay binding of SPEC.md 10.3, which is also what the link
/// dials: `ws://` or `wss://`, the host in lower case, the port only when it is not the
/// scheme's default, and the path `/v1`. An empty path, `/` and `/v1/` become `/v1`; any other
/// path, a query, a fragment or userinfo is refused (a relay serves only `/v1`). White space
/// around the URL is ignored.
pub fn normalize_url(url: &str) -> Result<String, ApiError> {
    protocol::reachability::relay_binding(url.trim()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRelayUrl,
            format!("invalid relay URL {:?}: {e}", url.trim()),
        )
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

async fn run(
    config: LinkConfig,
    device: Option<LocalDevice>,
    events: mpsc::UnboundedSender<LinkEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    // Shared by every connection of this link: frames of a dropped connection that the core has
    // not handled yet still count.
    let inbound = Arc::new(Semaphore::new(INBOUND_BUDGET));
    let mut backoff = BACKOFF_MIN;
    loop {
        let _ = events.send(LinkEvent::State {
            state: ConnectionState::Connecting,
            error: None,
        });
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, connect(&config, device.as_ref())).await;
        let error = match attempt {
            Ok(Ok(socket)) => {
                backoff = BACKOFF_MIN;
                let _ = events.send(LinkEvent::State {
                    state: ConnectionState::Connected,
                    error: None,
                });
                match session(socket, &events, &mut commands, &inbound).await {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
            Ok(Err(e)) => e,
            Err(_) => LinkError::ConnectTimedOut,
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
                    Some(Command::Send(_)) => {}
                    // Dropping the reply tells the caller we are not connected.
                    Some(Command::Request(_, _)) => {}
                },
            }
        }
        let most = if config.same_user {
            LOCAL_BACKOFF_MAX
        } else {
            BACKOFF_MAX
        };
        backoff = (backoff * 2).min(most);
    }
}

async fn connect(config: &LinkConfig, device: Option<&LocalDevice>) -> Result<Socket, LinkError> {
    let bad_url = || LinkError::BadUrl(config.url.clone());
    // The relay id is the canonical URL (SPEC.md 10.3), also for accounts whose URL was stored
    // as typed before chatd normalised it.
    let url = normalize_url(&config.url).map_err(|_| bad_url())?;
    let uri: Uri = url.parse().map_err(|_| bad_url())?;
    let host = uri.host().ok_or_else(bad_url)?.to_owned();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if config.same_user
        && let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>()
    {
        let addr = std::net::SocketAddr::new(ip, port);
        if let Listener::Foreign(uid) = crate::local_relay::owner::listener_owner(addr) {
            return Err(LinkError::ForeignListener { addr, uid });
        }
    }
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| LinkError::Dial {
            host: host.clone(),
            port,
            source,
        })?;
    tcp.set_nodelay(true).map_err(|source| LinkError::Dial {
        host: host.clone(),
        port,
        source,
    })?;
    let stream: Box<dyn Io> = if tls {
        Box::new(tls_connect(config, &host, tcp).await?)
    } else {
        Box::new(tcp)
    };
    // A relay may send nothing larger than a frame (SPEC.md 10.7): the WebSocket refuses
    // anything bigger instead of buffering it.
    let mut limits = WebSocketConfig::default()
        .max_message_size(Some(protocol::frames::MAX_FRAME_LEN))
        .max_frame_size(Some(protocol::frames::MAX_FRAME_LEN));
    if device.is_none() {
        // A link to a contact's relay carries a few requests and their answers, never a
        // mailbox: small buffers (the defaults reserve 128 KiB each), so that one link per
        // contact relay costs little (chatd/BENCHMARKS.md, `spread`). A larger frame still
        // fits: the buffers grow while it is read or written.
        limits = limits
            .read_buffer_size(ANONYMOUS_LINK_BUFFER)
            .write_buffer_size(ANONYMOUS_LINK_BUFFER);
    }
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(limits))
            .await
            .map_err(LinkError::Handshake)?;
    let relay_id = RelayId::new(url.as_bytes().to_vec()).map_err(|_| bad_url())?;
    let (found, nonce) = match recv(&mut socket).await?.0 {
        ServerFrame::Challenge {
            relay_id, nonce, ..
        } => (relay_id, nonce),
        other => return Err(unexpected("Challenge", &other)),
    };
    if found != relay_id {
        return Err(RelayMisbehaviour::WrongRelay {
            found: String::from_utf8_lossy(found.as_bytes()).into_owned(),
            expected: url,
        }
        .into());
    }
    let Some(device) = device else {
        // An anonymous link: the relay learns nothing but the network address.
        return Ok(socket);
    };
    let proof = AuthProof::sign(
        device.keys.signing(),
        device.cert.certificate(),
        &relay_id,
        &nonce,
    );
    send(&mut socket, &ClientFrame::Auth(proof)).await?;
    match recv(&mut socket).await?.0 {
        ServerFrame::AuthOk { .. } => Ok(socket),
        ServerFrame::Error { code, message, .. } => {
            Err(RelayMisbehaviour::AuthRefused { code, message }.into())
        }
        other => Err(unexpected("AuthOk", &other)),
    }
}

fn unexpected(expected: &'static str, got: &ServerFrame) -> LinkError {
    RelayMisbehaviour::Unexpected {
        expected,
        got: got.name(),
    }
    .into()
}

async fn tls_connect(
    config: &LinkConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, LinkError> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &config.extra_root_pem {
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| LinkError::Tls(format!("bad relay CA certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| LinkError::Tls(format!("bad relay CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Tls(e.to_string()))?;
    let tls_config = match config.tls_pin {
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned::PinnedCertificate::new(
                pin, provider,
            )))
            .with_no_client_auth(),
        None => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| LinkError::Tls(format!("bad server name {host}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(tls_config))
        .connect(name, tcp)
        .await
        .map_err(|e| LinkError::Tls(format!("handshake failed: {e}")))
}

/// A certificate check that accepts exactly one certificate, named by the SHA-256 of its DER
/// encoding (SPEC.md 10.9, `tls_pin`), and still verifies the handshake's signatures with it,
/// so only the holder of that certificate's key can complete the handshake.
mod pinned {
    use std::sync::Arc;

    use tokio_rustls::rustls;
    use tokio_rustls::rustls::DigitallySignedStruct;
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::CryptoProvider;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    pub(super) struct PinnedCertificate {
        pin: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl PinnedCertificate {
        pub(super) fn new(pin: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
            Self { pin, provider }
        }
    }

    impl ServerCertVerifier for PinnedCertificate {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if protocol::crypto::kdf::sha256(&[end_entity.as_ref()]) == self.pin {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(
                    "the relay's certificate is not the one its owner pinned".into(),
                ))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

/// Writes one frame, giving up after [`WRITE_TIMEOUT`].
async fn send(socket: &mut Socket, frame: &ClientFrame) -> Result<(), LinkError> {
    let write = socket.send(Message::Binary(frame.to_bytes().into()));
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => result.map_err(LinkError::Write),
        Err(_) => Err(LinkError::WriteTimedOut),
    }
}

/// Reads the next frame and its length on the wire.
async fn recv(socket: &mut Socket) -> Result<(ServerFrame, usize), LinkError> {
    loop {
        match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(LinkError::Closed),
            Some(Ok(Message::Binary(bytes))) => {
                let frame = ServerFrame::from_bytes(&bytes).map_err(RelayMisbehaviour::BadFrame)?;
                return Ok((frame, bytes.len()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(LinkError::Read(e)),
        }
    }
}

/// Serves one authenticated connection until it fails (`Err`) or the link is dropped (`Ok`).
async fn session(
    mut socket: Socket,
    events: &mpsc::UnboundedSender<LinkEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    inbound: &Arc<Semaphore>,
) -> Result<(), LinkError> {
    let mut pending: HashMap<u32, oneshot::Sender<ServerFrame>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut last_heard = tokio::time::Instant::now();
    let mut nonce = 0u64;
    // Room for the next frame: the socket is read only while the link holds it.
    let room_for_a_frame = protocol::frames::MAX_FRAME_LEN as u32;
    let mut room: Option<OwnedSemaphorePermit> = None;
    loop {
        if room.is_none() {
            room = inbound
                .clone()
                .try_acquire_many_owned(room_for_a_frame)
                .ok();
        }
        tokio::select! {
            // The core is behind: wait for it before reading on. The relay is not heard from
            // meanwhile through no fault of its own, so the dead-link clock starts again.
            permit = inbound.clone().acquire_many_owned(room_for_a_frame), if room.is_none() => {
                room = permit.ok();
                last_heard = tokio::time::Instant::now();
            }
            frame = recv(&mut socket), if room.is_some() => {
                let (frame, len) = frame?;
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
                            None => {
                                // The frame keeps its length's share of the budget until the
                                // core has handled it; the rest of the room goes back now.
                                let share = room.take().and_then(|mut permit| {
                                    let kept = permit.split(len.clamp(1, room_for_a_frame as usize));
                                    drop(permit);
                                    kept
                                });
                                let _ = events.send(LinkEvent::Frame(Box::new(frame), InboundShare { _permit: share }));
                            }
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
            },
            _ = ping.tick() => {
                if room.is_some() && last_heard.elapsed() > DEAD_AFTER {
                    return Err(LinkError::Silent);
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
    use protocol::frames::EnvelopeId;
    use protocol::identity::{DeviceId, DeviceKeyPair, IdentityKeyPair};
    use std::sync::atomic::AtomicUsize;
    use tokio::net::TcpListener;

    /// A deadline in the test's paused clock: far past every timer of the link, so reaching it
    /// means the link is stuck.
    const STUCK: Duration = Duration::from_secs(3600);

    fn device() -> LocalDevice {
        let identity = IdentityKeyPair::from_seed(&[3; 32]);
        let device_id = DeviceId::new(1).unwrap_or_else(|e| panic!("{e}"));
        let keys = DeviceKeyPair::from_seeds(device_id, &[4; 32], &[5; 32]);
        LocalDevice::new(&identity, keys, 1)
    }

    /// A relay on a real socket of this runtime that authenticates any device.
    struct FakeRelay {
        listener: TcpListener,
        url: String,
    }

    impl FakeRelay {
        async fn bind() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let port = listener
                .local_addr()
                .unwrap_or_else(|e| panic!("{e}"))
                .port();
            Self {
                listener,
                url: format!("ws://127.0.0.1:{port}/v1"),
            }
        }

        /// Accepts the next connection and authenticates it.
        async fn accept(&self) -> WebSocketStream<TcpStream> {
            let (tcp, _) = self
                .listener
                .accept()
                .await
                .unwrap_or_else(|e| panic!("accept: {e}"));
            let mut ws = tokio_tungstenite::accept_async(tcp)
                .await
                .unwrap_or_else(|e| panic!("handshake: {e}"));
            let challenge = ServerFrame::Challenge {
                relay_id: RelayId::new(self.url.as_bytes().to_vec())
                    .unwrap_or_else(|e| panic!("{e}")),
                nonce: [7; 32],
                server_time: 1,
            };
            write(&mut ws, &challenge).await;
            match ws.next().await {
                Some(Ok(Message::Binary(_))) => {}
                other => panic!("expected Auth, got {other:?}"),
            }
            write(&mut ws, &ServerFrame::AuthOk { server_time: 1 }).await;
            ws
        }
    }

    async fn write(ws: &mut WebSocketStream<TcpStream>, frame: &ServerFrame) {
        ws.send(Message::Binary(frame.to_bytes().into()))
            .await
            .unwrap_or_else(|e| panic!("relay write: {e}"));
    }

    fn start(url: &str) -> (RelayLink, mpsc::UnboundedReceiver<LinkEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let config = LinkConfig {
            tls_pin: None,
            url: url.to_owned(),
            extra_root_pem: None,
            same_user: false,
        };
        (RelayLink::start(config, Some(device()), events), receiver)
    }

    /// The next connection state, skipping frames; `None` if the link is stuck.
    async fn next_state(
        events: &mut mpsc::UnboundedReceiver<LinkEvent>,
    ) -> Option<(ConnectionState, Option<LinkError>)> {
        loop {
            match tokio::time::timeout(STUCK, events.recv()).await {
                Ok(Some(LinkEvent::State { state, error })) => return Some((state, error)),
                Ok(Some(LinkEvent::Frame(..))) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn until_connected(events: &mut mpsc::UnboundedReceiver<LinkEvent>) {
        loop {
            match next_state(events).await {
                Some((ConnectionState::Connected, _)) => return,
                Some(_) => continue,
                None => panic!("the link never connected"),
            }
        }
    }

    /// A relay that authenticates and then never reads again: once the socket's buffers are
    /// full, the link's write times out, the connection is dropped, and the link dials again.
    #[tokio::test(start_paused = true)]
    async fn a_relay_that_stops_reading_loses_the_connection_and_the_link_dials_again() {
        let relay = FakeRelay::bind().await;
        let (link, mut events) = start(&relay.url);
        let (first, _) = tokio::join!(relay.accept(), until_connected(&mut events));
        // Far more than the kernel buffers of both ends hold (16 KiB per Ack).
        let ids: Vec<EnvelopeId> = (0..protocol::frames::MAX_ACK_IDS)
            .map(|i| EnvelopeId::from_bytes([(i % 251) as u8; 16]))
            .collect();
        for _ in 0..2048 {
            link.send(ClientFrame::Ack {
                envelope_ids: ids.clone(),
            });
        }
        let down = next_state(&mut events)
            .await
            .unwrap_or_else(|| panic!("the link stayed stuck on a relay that does not read"));
        assert!(
            matches!(
                down,
                (ConnectionState::Waiting, Some(LinkError::WriteTimedOut))
            ),
            "{down:?}"
        );
        let (_second, _) = tokio::join!(relay.accept(), until_connected(&mut events));
        drop(first);
    }

    /// A relay whose challenge names another relay is refused with a typed error, before the
    /// device answers it; a URL typed with a trailing slash binds to the canonical `/v1`.
    #[tokio::test(start_paused = true)]
    async fn a_challenge_for_another_relay_is_refused() {
        let relay = FakeRelay::bind().await;
        let elsewhere = relay.url.replace("127.0.0.1", "localhost");
        let (_link, mut events) = start(&elsewhere);
        let serve = async {
            let (tcp, _) = relay
                .listener
                .accept()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut ws = tokio_tungstenite::accept_async(tcp)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let challenge = ServerFrame::Challenge {
                relay_id: RelayId::new(relay.url.as_bytes().to_vec())
                    .unwrap_or_else(|e| panic!("{e}")),
                nonce: [7; 32],
                server_time: 1,
            };
            write(&mut ws, &challenge).await;
            // The link closes without answering.
            matches!(ws.next().await, None | Some(Ok(Message::Close(_)) | Err(_)))
        };
        let refused = async {
            loop {
                match next_state(&mut events).await {
                    Some((ConnectionState::Waiting, Some(error))) => return error,
                    Some(_) => continue,
                    None => panic!("the link never gave up"),
                }
            }
        };
        let (closed, error) = tokio::join!(serve, refused);
        assert!(closed, "the device did not answer the challenge");
        match error {
            LinkError::Relay(RelayMisbehaviour::WrongRelay { found, expected }) => {
                assert_eq!(found, relay.url);
                assert_eq!(expected, elsewhere);
            }
            other => panic!("{other:?}"),
        }
        let (_link, mut events) = start(&format!("{}/", relay.url));
        let (_ws, _) = tokio::join!(relay.accept(), until_connected(&mut events));
    }

    /// A relay that floods `Deliver` frames while the core handles none: the link stops reading
    /// once the frames it handed over fill its budget, and reads on as the core catches up,
    /// without losing a frame.
    #[tokio::test(start_paused = true)]
    async fn a_flooding_relay_is_read_only_as_fast_as_the_core_handles_its_frames() {
        const FRAMES: usize = 2000;
        const PAYLOAD: usize = 16 * 1024;
        let relay = FakeRelay::bind().await;
        let (_link, mut events) = start(&relay.url);
        let written = Arc::new(AtomicUsize::new(0));
        let counter = written.clone();
        let flood = async move {
            let mut ws = relay.accept().await;
            for i in 0..FRAMES {
                let deliver = ServerFrame::Deliver {
                    envelope_id: EnvelopeId::from_bytes([(i % 251) as u8; 16]),
                    received_at: 1,
                    payload: vec![0x5a; PAYLOAD],
                };
                write(&mut ws, &deliver).await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
            ws
        };
        let flood = tokio::spawn(flood);
        until_connected(&mut events).await;
        // Paused clock: this returns only once every task is idle (the relay blocked on a full
        // socket, the link waiting for room).
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut held = Vec::new();
        while let Ok(event) = events.try_recv() {
            match event {
                LinkEvent::Frame(frame, share) => held.push((frame, share)),
                LinkEvent::State { state, error } => panic!("{state:?} {error:?}"),
            }
        }
        assert!(!held.is_empty(), "the link reads while there is room");
        assert!(
            held.len() * PAYLOAD <= INBOUND_BUDGET,
            "{} frames of {PAYLOAD} bytes wait for the core",
            held.len()
        );
        assert!(
            written.load(Ordering::Relaxed) < FRAMES,
            "the relay is held back"
        );
        // The core catches up: every frame comes, in order, on the same connection.
        let mut seen = held.len();
        drop(held);
        while seen < FRAMES {
            match tokio::time::timeout(STUCK, events.recv()).await {
                Ok(Some(LinkEvent::Frame(frame, _))) => {
                    let ServerFrame::Deliver { envelope_id, .. } = *frame else {
                        panic!("{}", frame.name());
                    };
                    assert_eq!(
                        envelope_id,
                        EnvelopeId::from_bytes([(seen % 251) as u8; 16])
                    );
                    seen += 1;
                }
                other => panic!("after {seen} frames: {other:?}"),
            }
        }
        let relay_side = flood.await.unwrap_or_else(|e| panic!("{e}"));
        drop(relay_side);
    }

    #[test]
    fn urls_are_normalised_to_the_relay_binding_and_checked() {
        let ok = |u: &str| normalize_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
        assert_eq!(ok("ws://127.0.0.1:7420"), "ws://127.0.0.1:7420/v1");
        assert_eq!(ok("ws://127.0.0.1:7420/"), "ws://127.0.0.1:7420/v1");
        assert_eq!(ok("ws://127.0.0.1:7420/v1/"), "ws://127.0.0.1:7420/v1");
        assert_eq!(
            ok("wss://relay.example.org/v1"),
            "wss://relay.example.org/v1"
        );
        assert_eq!(
            ok("WSS://Relay.Example.ORG:443/v1/"),
            "wss://relay.example.org/v1"
        );
        assert_eq!(ok("ws://[::1]:80"), "ws://[::1]/v1");
        assert_eq!(ok("ws://[::1]:7420/v1"), "ws://[::1]:7420/v1");
        for bad in [
            "http://x",
            "relay.example.org",
            "ws://",
            "ws://a@b/v1",
            "ws://x/v1?y=1",
            "ws://x/v1#top",
            "ws://x/v2",
            "ws://x/v1/mailbox",
            "ws://x//v1",
            "",
        ] {
            let err = normalize_url(bad).err().map(|e| e.code);
            assert_eq!(err, Some(ErrorCode::InvalidRelayUrl), "{bad}");
        }
    }
}
