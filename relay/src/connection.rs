//! One client connection, from the HTTP request to the end of its session.
//!
//! Before the session: the request head is read and routed (`http.rs`), the WebSocket
//! handshake runs, the relay sends a `Challenge` and waits for `Auth` or an anonymous request
//! (SPEC.md 10.3 step 5); all of it must finish by the handshake deadline. A [`Session`] then
//! serves requests, held to the idle timeout. An anonymous session answers only the anonymous
//! requests, limited per client network, and never delivers; `Auth` (once) makes it the
//! device's. An authenticated session also delivers the device's mailbox in sequence order, at
//! most `delivery_window` envelopes unacknowledged at a time: first the backlog, read from the
//! store, then what the group commit hands the connection through the router's live queue
//! (`router.rs` says how the two meet). Group requests (`OpenGroup`, `PostGroup`, `LeaveGroup`,
//! SPEC.md 10.10) go to the group commit like a `Send` and are answered when it is done; the
//! KeyPackage directory is answered from the store directly. Writes
//! that stall past `write_timeout` cut the client off, so a client that stops reading costs a
//! bounded amount of memory and nobody else's service.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use protocol::codec::{Decode, Encode};
use protocol::frames::{
    AUTH_NONCE_LEN, AuthProof, ClientFrame, ErrorCode, KeyPackage, MAX_DEVICES_PER_LIST,
    OutgoingEnvelope, RelayId, RequestId, ServerFrame, TokenPolicy,
};
use protocol::frames::{HandleClaim, HandleRelease};
use protocol::identity::{IdentityKey, VerifiedDevice};
use protocol::prekeys::{KemPrekey, OneTimePrekey, SignedPrekey};
use protocol::reachability::{DeliveryToken, ReachabilityRecord};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::admission::TokenGate;
use crate::clock::Clock;
use crate::commit::{CommitResult, Committer, GroupJob, GroupResult};
use crate::config::Limits;
use crate::config::{ProxyConfig, ProxyProtocol};
use crate::envelope_ids::IdCipher;
use crate::http::{self, Prefixed, Route};
use crate::metrics::{Metrics, Rejection};
use crate::proxy;
use crate::ratelimit::{IpSlot, IpSlots, RateLimiter, ip_key};
use crate::router::{Live, Registration, Router};
use crate::store::worker::{Read, StoreWorker};
use crate::store::{
    ClaimOutcome, DeviceAddr, DeviceOutcome, PublishError, RecordOutcome, Store, StoreError,
    TokenDigest, blocking_section, is_expired, token_changes,
};

/// How far a handle claim's `issued_at` may be from the relay's clock, seconds.
pub const HANDLE_CLOCK_WINDOW_SECS: u64 = 24 * 3600;
/// Refused frames in a row after which a client is disconnected rather than answered.
const MAX_CONSECUTIVE_REFUSALS: u32 = 100;
/// Envelopes read from the store per delivery step.
const DELIVERY_PAGE: usize = 128;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) relay_id: RelayId,
    pub(crate) store: Store,
    pub(crate) router: Arc<Router>,
    pub(crate) committer: Committer,
    /// Mailbox reads and acknowledgements.
    pub(crate) store_worker: StoreWorker,
    pub(crate) ids: IdCipher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) device_frames: RateLimiter<DeviceAddr>,
    pub(crate) device_envelopes: RateLimiter<Sender>,
    pub(crate) ip_frames: RateLimiter<IpAddr>,
    pub(crate) device_bytes: RateLimiter<Sender>,
    pub(crate) bundle_fetches: RateLimiter<Sender>,
    /// Delivery-token admission (SPEC.md 10.9).
    pub(crate) tokens: Arc<TokenGate>,
    pub(crate) one_time_prekeys: RateLimiter<IdentityKey>,
    pub(crate) ip_connects: RateLimiter<IpAddr>,
    pub(crate) ip_slots: Arc<IpSlots>,
    pub(crate) proxy: Option<ProxyConfig>,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// Runs `call` on the store on a blocking thread: sled's I/O and the store's locks (which a
    /// group commit holds while it writes) never stall an async worker and the connections it
    /// serves. A call that panicked is a [`StoreError::Task`].
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || blocking_section(|| call(&store)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
    }

    /// As [`Self::blocking`] for a call that answers a request: a failed task answers
    /// `internal`.
    async fn answer(
        &self,
        request_id: RequestId,
        call: impl FnOnce(&Store) -> ServerFrame + Send + 'static,
    ) -> ServerFrame {
        match self.blocking(call).await {
            Ok(frame) => frame,
            Err(e) => internal(request_id, &e),
        }
    }

    /// How a connection from `peer` names its client, if `peer` is a trusted proxy.
    pub(crate) fn proxy_protocol_for(&self, peer: IpAddr) -> Option<ProxyProtocol> {
        let proxy = self.proxy.as_ref()?;
        let peer = peer.to_canonical();
        proxy
            .trusted
            .iter()
            .any(|trusted| trusted.to_canonical() == peer)
            .then_some(proxy.protocol)
    }

    /// Forgets every rate limiter bucket that has refilled by `now`.
    pub(crate) fn sweep_limiters(&self, now: StdInstant) {
        self.device_frames.sweep(now);
        self.device_envelopes.sweep(now);
        self.ip_frames.sweep(now);
        self.device_bytes.sweep(now);
        self.bundle_fetches.sweep(now);
        self.one_time_prekeys.sweep(now);
        self.ip_connects.sweep(now);
        self.tokens.sweep(now);
    }
}

/// Whom the per-sender limits (`device_envelopes`, `device_bytes`, `bundle_fetches`) count:
/// the authenticated device, or for an anonymous connection its client network ([`ip_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sender {
    /// An authenticated connection's device.
    Device(DeviceAddr),
    /// An anonymous connection's client network.
    Address(IpAddr),
}

/// Whether a connection may send `frame` before `AuthOk` as a request (SPEC.md 10.3 step 5).
fn is_anonymous_request(frame: &ClientFrame) -> bool {
    matches!(
        frame,
        ClientFrame::FetchBundle { .. }
            | ClientFrame::ListDevices { .. }
            | ClientFrame::LookupHandle { .. }
            | ClientFrame::FetchReachability { .. }
            | ClientFrame::Deposit { .. }
            | ClientFrame::FetchKeyPackage { .. }
            | ClientFrame::OpenGroup { .. }
            | ClientFrame::PostGroup { .. }
    )
}

/// Where a connection stands with the per-address limits when its task starts.
pub(crate) enum Admission {
    /// Admitted; the slot is held for the connection's life. Its key is the client network.
    Admitted(IpSlot),
    /// From a trusted HTTP proxy at this address: admitted once the request head names the
    /// client (`X-Forwarded-For`), or under the proxy's address if it does not.
    ForwardedBy(IpAddr),
}

/// Admits a connection from client address `ip` under the per-address limits (new
/// connections per second, open connections), counted per [`ip_key`]; `None` (and a
/// rejection counted) if a limit is reached.
pub(crate) fn admit(shared: &Shared, ip: IpAddr) -> Option<IpSlot> {
    let key = ip_key(ip);
    if !shared.ip_connects.try_take(key, 1.0, StdInstant::now()) {
        shared.metrics.reject(Rejection::ConnectRateLimited);
        return None;
    }
    let Some(slot) = shared
        .ip_slots
        .acquire(key, shared.limits.max_connections_per_ip)
    else {
        shared.metrics.reject(Rejection::TooManyConnectionsFromIp);
        return None;
    };
    Some(slot)
}

type Ws<S> = WebSocketStream<Prefixed<S>>;
/// A request waiting for the group commit (`Send`, `Deposit`, a group job): its reply.
type PendingSend = Pin<Box<dyn Future<Output = ServerFrame> + Send>>;

/// The WebSocket settings: small buffers (memory per idle connection matters) and the frame
/// limit.
pub(crate) fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.ws_read_buffer)
        .write_buffer_size(limits.ws_write_buffer)
        .max_write_buffer_size(
            limits
                .ws_write_buffer
                .saturating_add(limits.max_frame_len)
                .saturating_add(64),
        )
        .max_message_size(Some(limits.max_frame_len))
        .max_frame_size(Some(limits.max_frame_len))
}

/// Serves one connection to its end. `deadline` bounds everything before authentication or
/// the first anonymous request.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    admission: Admission,
    deadline: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A connection still in its handshake has nothing to lose: shutdown drops it at once.
    let handshake = async {
        let (ws, slot) = match timeout_at(deadline, open(&shared, stream, admission)).await {
            Ok(Some(opened)) => opened,
            Ok(None) => return None,
            Err(_) => {
                shared.metrics.reject(Rejection::HandshakeTimeout);
                return None;
            }
        };
        let ip = slot.key();
        greet(&shared, ws, ip, deadline)
            .await
            .map(|(ws, nonce, first)| (ws, nonce, first, slot))
    };
    // Boxed, so the handshake's state is freed once it is done instead of sizing this
    // connection's task for its whole life.
    let greeted = tokio::select! {
        () = shared.shutdown.cancelled() => None,
        greeted = Box::pin(handshake) => greeted,
    };
    let Some((mut ws, nonce, first, slot)) = greeted else {
        return;
    };
    let mut session = Session {
        shared: shared.clone(),
        ip: slot.key(),
        nonce,
        auth: None,
        registration: detached(),
        cursor: None,
        in_flight: BTreeSet::new(),
        more_mail: false,
        reading_store: true,
        pending_sends: FuturesOrdered::new(),
        unflushed: false,
        last_heard: StdInstant::now(),
        refusals: 0,
    };
    let started = match first {
        First::Auth(device) => session.sign_in(&mut ws, device).await,
        First::Anonymous(frame) => {
            Metrics::add(&shared.metrics.anonymous, 1);
            // The first request's frame was counted against `ip_frames` by `greet`.
            session.handle_frame(&mut ws, frame, true).await
        }
    };
    session.run(&mut ws, started).await;
    session.leave();
}

/// A registration in no router: an anonymous session's, never woken or replaced.
fn detached() -> Registration {
    Registration::detached()
}

/// The HTTP request, admission under the client address (when a trusted proxy names it in
/// the request) and the WebSocket upgrade.
async fn open<S>(shared: &Shared, mut stream: S, admission: Admission) -> Option<(Ws<S>, IpSlot)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Ok((head, route)) = http::read_head(&mut stream).await else {
        shared.metrics.reject(Rejection::HandshakeFailed);
        return None;
    };
    let slot = match admission {
        Admission::Admitted(slot) => slot,
        Admission::ForwardedBy(proxy) => {
            let end = http::head_len(&head);
            let client = proxy::forwarded_for(head.get(..end).unwrap_or_default());
            admit(shared, client.unwrap_or(proxy))?
        }
    };
    match route {
        Route::WebSocket => {}
        Route::Health => {
            let (status, body) = if shared.shutdown.is_cancelled() {
                ("503 Service Unavailable", "shutting down\n")
            } else {
                ("200 OK", "ok\n")
            };
            let _ = http::respond(&mut stream, status, body).await;
            return None;
        }
        Route::Metrics => {
            let Ok(stats) = shared.blocking(Store::stats).await else {
                let _ = http::respond(&mut stream, "500 Internal Server Error", "error\n").await;
                return None;
            };
            let body = shared.metrics.render(stats.envelopes, stats.devices);
            let _ = http::respond(&mut stream, "200 OK", &body).await;
            return None;
        }
        Route::NotFound => {
            let _ = http::respond(&mut stream, "404 Not Found", "not found\n").await;
            return None;
        }
    }
    let config = ws_config(&shared.limits);
    let Ok(ws) =
        tokio_tungstenite::accept_async_with_config(Prefixed::new(head, stream), Some(config))
            .await
    else {
        shared.metrics.reject(Rejection::HandshakeFailed);
        return None;
    };
    Some((ws, slot))
}

/// How a connection began its session.
enum First {
    /// With a verified `Auth`.
    Auth(VerifiedDevice),
    /// With an anonymous request (SPEC.md 10.3 step 5), to be served.
    Anonymous(ClientFrame),
}

/// The challenge, then `Auth` or an anonymous request, which must arrive by `deadline`;
/// returns the challenge's nonce too (a later `Auth` answers it).
async fn greet<S>(
    shared: &Shared,
    mut ws: Ws<S>,
    ip: IpAddr,
    deadline: Instant,
) -> Option<(Ws<S>, [u8; AUTH_NONCE_LEN], First)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let nonce: [u8; AUTH_NONCE_LEN] = rand::random();
    let challenge = ServerFrame::Challenge {
        relay_id: shared.relay_id.clone(),
        nonce,
        server_time: shared.clock.now(),
    };
    send(shared, &mut ws, &challenge).await.ok()?;
    loop {
        let Ok(incoming) = timeout_at(deadline, next_binary(shared, &mut ws)).await else {
            // Neither `Auth` nor an anonymous request in time gets `timeout` (SPEC.md section
            // 10.3 step 5).
            shared.metrics.reject(Rejection::HandshakeTimeout);
            refuse(
                shared,
                &mut ws,
                None,
                ErrorCode::Timeout,
                "no authentication in time",
            )
            .await;
            return None;
        };
        let bytes = match incoming {
            Incoming::Frame(bytes) => bytes,
            Incoming::Alive => continue,
            Incoming::Closed => return None,
            Incoming::Refused(code, message) => {
                refuse(shared, &mut ws, None, code, message).await;
                return None;
            }
        };
        if !shared.ip_frames.try_take(ip, 1.0, StdInstant::now()) {
            shared.metrics.reject(Rejection::RateLimited);
            refuse(
                shared,
                &mut ws,
                None,
                ErrorCode::RateLimited,
                "too many frames",
            )
            .await;
            return None;
        }
        match ClientFrame::from_bytes(&bytes) {
            Ok(ClientFrame::Auth(proof)) => match proof.verify(&shared.relay_id, &nonce) {
                Ok(device) => return Some((ws, nonce, First::Auth(device))),
                Err(_) => {
                    shared.metrics.reject(Rejection::AuthFailed);
                    refuse(
                        shared,
                        &mut ws,
                        None,
                        ErrorCode::AuthFailed,
                        "authentication failed",
                    )
                    .await;
                    return None;
                }
            },
            Ok(ClientFrame::Ping { nonce }) => {
                send(shared, &mut ws, &ServerFrame::Pong { nonce })
                    .await
                    .ok()?;
            }
            Ok(ClientFrame::Pong { .. }) => {}
            Ok(frame) if is_anonymous_request(&frame) => {
                return Some((ws, nonce, First::Anonymous(frame)));
            }
            Ok(other) => {
                // `auth_required` concerns the connection, not the request: request id 0
                // (SPEC.md section 11).
                shared.metrics.reject(Rejection::AuthRequired);
                let message = format!("{} before authentication", other.name());
                refuse(shared, &mut ws, None, ErrorCode::AuthRequired, &message).await;
                return None;
            }
            Err(e) => {
                shared.metrics.reject(Rejection::BadFrame);
                refuse(
                    shared,
                    &mut ws,
                    ClientFrame::peek_request_id(&bytes),
                    ErrorCode::for_decode_error(&e),
                    &e.to_string(),
                )
                .await;
                return None;
            }
        }
    }
}

/// What reading the next message gave.
enum Incoming {
    /// A binary message.
    Frame(Vec<u8>),
    /// A WebSocket ping or pong: no frame, but the peer is alive.
    Alive,
    /// The client closed or the connection broke.
    Closed,
    /// The client broke the rules of the transport; answer with this and close.
    Refused(ErrorCode, &'static str),
}

async fn next_binary<S>(shared: &Shared, ws: &mut Ws<S>) -> Incoming
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            None => return Incoming::Closed,
            Some(Ok(Message::Binary(bytes))) => {
                Metrics::add(&shared.metrics.bytes_in, bytes.len() as u64);
                return Incoming::Frame(bytes.to_vec());
            }
            Some(Ok(Message::Text(_))) => {
                shared.metrics.reject(Rejection::BadFrame);
                return Incoming::Refused(ErrorCode::BadFrame, "text messages are not frames");
            }
            Some(Ok(Message::Close(_))) => return Incoming::Closed,
            // Pings are answered by the WebSocket layer; both only show the peer is alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Incoming::Alive,
            Some(Ok(Message::Frame(_))) => continue,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                // `frame_too_large` for the connection, then close 1009 (SPEC.md section 11).
                shared.metrics.reject(Rejection::FrameTooLarge);
                let error = ServerFrame::error(
                    None,
                    ErrorCode::FrameTooLarge,
                    "the frame is longer than this relay accepts",
                );
                let _ = send(shared, ws, &error).await;
                let close = CloseFrame {
                    code: CloseCode::Size,
                    reason: ErrorCode::FrameTooLarge.name().into(),
                };
                let _ = timeout(shared.limits.write_timeout(), ws.close(Some(close))).await;
                return Incoming::Closed;
            }
            Some(Err(_)) => {
                shared.metrics.reject(Rejection::BadFrame);
                return Incoming::Closed;
            }
        }
    }
}

/// Sends a frame and flushes, giving up after the write timeout.
async fn send<S>(shared: &Shared, ws: &mut Ws<S>, frame: &ServerFrame) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    feed(shared, ws, frame).await?;
    flush(shared, ws).await
}

/// Queues a frame in the WebSocket's write buffer, which goes out when it passes
/// `ws_write_buffer` bytes or at the next flush; gives up after the write timeout.
async fn feed<S>(shared: &Shared, ws: &mut Ws<S>, frame: &ServerFrame) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bytes = frame.to_bytes();
    let len = bytes.len() as u64;
    within_write_timeout(shared, ws.feed(Message::Binary(bytes.into()))).await?;
    Metrics::add(&shared.metrics.bytes_out, len);
    Ok(())
}

/// Writes out everything queued, giving up after the write timeout.
async fn flush<S>(shared: &Shared, ws: &mut Ws<S>) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within_write_timeout(shared, ws.flush()).await
}

async fn within_write_timeout(
    shared: &Shared,
    write: impl Future<Output = Result<(), WsError>>,
) -> Result<(), ()> {
    match timeout(shared.limits.write_timeout(), write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            shared.metrics.reject(Rejection::SlowReader);
            Err(())
        }
    }
}

/// Sends an `Error` frame and closes the connection.
async fn refuse<S>(
    shared: &Shared,
    ws: &mut Ws<S>,
    request_id: Option<RequestId>,
    code: ErrorCode,
    message: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = send(shared, ws, &ServerFrame::error(request_id, code, message)).await;
    let close = CloseFrame {
        code: CloseCode::Policy,
        reason: code.name().into(),
    };
    let _ = timeout(shared.limits.write_timeout(), ws.close(Some(close))).await;
}

/// A connection past its greeting: anonymous until it authenticates.
struct Session {
    shared: Arc<Shared>,
    /// The client network ([`ip_key`]).
    ip: IpAddr,
    /// This connection's challenge nonce, which an `Auth` must sign.
    nonce: [u8; AUTH_NONCE_LEN],
    /// The device, once authenticated.
    auth: Option<Authed>,
    /// The device's place in the router; [`detached`] while anonymous.
    registration: Registration,
    /// The last sequence number delivered on this connection.
    cursor: Option<u64>,
    /// Delivered and not yet acknowledged.
    in_flight: BTreeSet<u64>,
    /// Whether the mailbox may hold envelopes past the cursor.
    more_mail: bool,
    /// Whether the backlog (envelopes up to `registration.backlog_until`) may hold envelopes
    /// past the cursor: delivery reads the store, not the live queue.
    reading_store: bool,
    pending_sends: FuturesOrdered<PendingSend>,
    /// Frames fed to the WebSocket and not flushed yet.
    unflushed: bool,
    last_heard: StdInstant,
    /// Frames refused in a row (rate limits).
    refusals: u32,
}

/// An authenticated connection's device.
struct Authed {
    addr: DeviceAddr,
    device: VerifiedDevice,
}

/// Why a session ends.
#[derive(Clone)]
enum End {
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
    /// Nothing more can be written.
    Gone,
}

impl Session {
    /// Serves the session until it ends; `started` is how its first step (`sign_in` or the
    /// first anonymous request) went.
    async fn run<S>(&mut self, ws: &mut Ws<S>, started: Result<(), End>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let limits = &shared.limits;
        let mut ping = tokio::time::interval(limits.ping_interval());
        ping.tick().await;
        let end = loop {
            if let Err(end) = &started {
                break end.clone();
            }
            // An anonymous session never delivers (it has no mailbox).
            let window_open = self.auth.is_some() && self.in_flight.len() < limits.delivery_window;
            let can_read = self.pending_sends.len() < limits.max_pending_sends;
            let result = tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => Err(End::Close(CloseCode::Away, "relay shutting down")),
                () = self.registration.kick.cancelled() => {
                    Err(End::Close(CloseCode::Policy, "replaced by a newer connection of this device"))
                }
                Some(reply) = self.pending_sends.next(), if !self.pending_sends.is_empty() => {
                    self.feed(ws, &reply).await
                }
                incoming = next_binary(&shared, ws), if can_read => match incoming {
                    Incoming::Frame(bytes) => {
                        self.last_heard = StdInstant::now();
                        self.handle(ws, &bytes).await
                    }
                    // A client that answers our keepalive pings is not idle.
                    Incoming::Alive => {
                        self.last_heard = StdInstant::now();
                        Ok(())
                    }
                    Incoming::Closed => Err(End::Gone),
                    Incoming::Refused(code, message) => {
                        let _ = send(&shared, ws, &ServerFrame::error(None, code, message)).await;
                        Err(End::Close(CloseCode::Policy, code.name()))
                    }
                },
                () = std::future::ready(()), if self.more_mail && window_open => self.deliver(ws).await,
                () = self.registration.wake.notified(), if !self.more_mail => {
                    self.more_mail = true;
                    Ok(())
                }
                _ = ping.tick() => self.keepalive(ws).await,
                // Replies and deliveries are fed as they come and flushed once nothing else
                // is ready: one write for a burst of frames instead of one per frame.
                () = std::future::ready(()), if self.unflushed => {
                    self.unflushed = false;
                    flush(&shared, ws).await.map_err(|()| End::Gone)
                }
            };
            if let Err(end) = result {
                break end;
            }
        };
        // Answer the sends already committed or committing, so a clean close loses no ack.
        while let Some(reply) = self.pending_sends.next().await {
            if self.feed(ws, &reply).await.is_err() {
                return;
            }
        }
        if self.unflushed && flush(&shared, ws).await.is_err() {
            return;
        }
        if let End::Close(code, reason) = end {
            let close = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = timeout(limits.write_timeout(), ws.close(Some(close))).await;
        }
    }

    /// Leaves the router and the open-connection gauge, if the session authenticated.
    fn leave(&self) {
        if let Some(me) = &self.auth {
            self.shared
                .router
                .unregister(&me.addr, self.registration.conn_id);
            Metrics::sub(&self.shared.metrics.authenticated_open, 1);
        }
    }

    /// Makes the session `device`'s (verified `Auth`): records its certificate, registers it
    /// in the router and sends `AuthOk`; delivery starts.
    async fn sign_in<S>(&mut self, ws: &mut Ws<S>, device: VerifiedDevice) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let put = {
            let device = device.clone();
            shared
                .blocking(move |store| store.put_device(&device))
                .await
        };
        let refusal = match put.and_then(|outcome| outcome) {
            Ok(DeviceOutcome::Added | DeviceOutcome::Replaced | DeviceOutcome::Unchanged) => None,
            Ok(DeviceOutcome::Outdated) => Some((
                ErrorCode::AuthFailed,
                "a newer certificate of this device is registered",
            )),
            Ok(DeviceOutcome::TooManyDevices) => Some((
                ErrorCode::AuthFailed,
                "this identity has too many devices on this relay",
            )),
            Err(e) => {
                tracing::error!(error = %e, "storing a device certificate failed");
                Some((ErrorCode::Internal, "relay storage failed"))
            }
        };
        if let Some((code, message)) = refusal {
            shared.metrics.reject(Rejection::AuthFailed);
            let _ = send(&shared, ws, &ServerFrame::error(None, code, message)).await;
            return Err(End::Close(CloseCode::Policy, code.name()));
        }
        let addr = DeviceAddr {
            identity: device.identity(),
            device: device.device_id(),
        };
        self.registration = shared.router.register(addr);
        self.auth = Some(Authed { addr, device });
        self.more_mail = true;
        Metrics::add(&shared.metrics.authenticated, 1);
        Metrics::add(&shared.metrics.authenticated_open, 1);
        let auth_ok = ServerFrame::AuthOk {
            server_time: shared.clock.now(),
        };
        send(&shared, ws, &auth_ok).await.map_err(|()| End::Gone)
    }

    /// An `Auth` on a session: the first makes an anonymous session the device's, a second is
    /// `bad_frame`.
    async fn auth<S>(&mut self, ws: &mut Ws<S>, proof: AuthProof) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        if self.auth.is_some() {
            shared.metrics.reject(Rejection::BadFrame);
            let _ = send(
                &shared,
                ws,
                &ServerFrame::error(None, ErrorCode::BadFrame, "already authenticated"),
            )
            .await;
            return Err(End::Close(CloseCode::Policy, ErrorCode::BadFrame.name()));
        }
        match proof.verify(&shared.relay_id, &self.nonce) {
            Ok(device) => self.sign_in(ws, device).await,
            Err(_) => {
                shared.metrics.reject(Rejection::AuthFailed);
                let error =
                    ServerFrame::error(None, ErrorCode::AuthFailed, "authentication failed");
                let _ = send(&shared, ws, &error).await;
                Err(End::Close(CloseCode::Policy, ErrorCode::AuthFailed.name()))
            }
        }
    }

    /// Pings an idle client, or closes a silent one.
    async fn keepalive<S>(&mut self, ws: &mut Ws<S>) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        if self.last_heard.elapsed() >= shared.limits.idle_timeout() {
            shared.metrics.reject(Rejection::IdleTimeout);
            let _ = send(
                &shared,
                ws,
                &ServerFrame::error(None, ErrorCode::Timeout, "idle timeout"),
            )
            .await;
            return Err(End::Close(CloseCode::Policy, ErrorCode::Timeout.name()));
        }
        match timeout(
            shared.limits.write_timeout(),
            ws.send(Message::Ping(Vec::new().into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                shared.metrics.reject(Rejection::SlowReader);
                Err(End::Gone)
            }
        }
    }

    /// Pushes the next envelopes of the mailbox: from the store while the backlog lasts
    /// (envelopes numbered up to the registration's `backlog_until`), then from the live
    /// queue the group commit fills (`router.rs`).
    async fn deliver<S>(&mut self, ws: &mut Ws<S>) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let room = shared
            .limits
            .delivery_window
            .saturating_sub(self.in_flight.len());
        let limit = room.min(DELIVERY_PAGE);
        let Some(addr) = self.auth.as_ref().map(|me| me.addr) else {
            self.more_mail = false;
            return Ok(());
        };
        let page = if self.reading_store {
            let read = Read {
                addr,
                after: self.cursor,
                through: self.registration.backlog_until,
                limit,
                now: shared.clock.now(),
                ttl: shared.limits.envelope_ttl_secs,
            };
            let page = shared.store_worker.read(read).await;
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "reading a mailbox failed");
                    self.more_mail = false;
                    return Ok(());
                }
            };
            // A short page ends the backlog; the live queue follows.
            self.reading_store = page.len() == limit;
            self.more_mail = true;
            page
        } else {
            match shared.router.take(&self.registration, limit) {
                Live::Entries { mut entries, more } => {
                    self.more_mail = more;
                    // One that waited past the TTL (behind a full window) is not delivered,
                    // as from the store; the sweep deletes it.
                    let (now, ttl) = (shared.clock.now(), shared.limits.envelope_ttl_secs);
                    entries.retain(|entry| !is_expired(entry.received_at, now, ttl));
                    entries
                }
                Live::Overflowed => {
                    shared.router.resync(&mut self.registration, &addr);
                    self.reading_store = true;
                    self.more_mail = true;
                    return Ok(());
                }
            }
        };
        for entry in page {
            debug_assert!(self.cursor.is_none_or(|cursor| entry.seq > cursor));
            self.cursor = Some(entry.seq);
            self.in_flight.insert(entry.seq);
            let frame = ServerFrame::Deliver {
                envelope_id: entry.id,
                received_at: entry.received_at,
                payload: entry.payload,
            };
            self.feed(ws, &frame).await?;
            Metrics::add(&shared.metrics.envelopes_delivered, 1);
        }
        Ok(())
    }

    /// Queues a frame; the run loop flushes it.
    async fn feed<S>(&mut self, ws: &mut Ws<S>, frame: &ServerFrame) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.unflushed = true;
        feed(&self.shared, ws, frame).await.map_err(|()| End::Gone)
    }

    /// Handles one frame from the client.
    async fn handle<S>(&mut self, ws: &mut Ws<S>, bytes: &[u8]) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let frame = match ClientFrame::from_bytes(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                shared.metrics.reject(Rejection::BadFrame);
                let code = ErrorCode::for_decode_error(&e);
                // The request id when the frame's header names one (SPEC.md section 11).
                let request_id = ClientFrame::peek_request_id(bytes);
                let error = ServerFrame::error(request_id, code, e.to_string());
                let _ = send(&shared, ws, &error).await;
                return Err(End::Close(CloseCode::Policy, code.name()));
            }
        };
        self.handle_frame(ws, frame, false).await
    }

    /// Whom the per-sender limits count for this session.
    fn sender(&self) -> Sender {
        match &self.auth {
            Some(me) => Sender::Device(me.addr),
            None => Sender::Address(self.ip),
        }
    }

    /// Handles one decoded frame; `counted`: its frame was counted against the rate limits
    /// already (the first anonymous request, by `greet`).
    async fn handle_frame<S>(
        &mut self,
        ws: &mut Ws<S>,
        frame: ClientFrame,
        counted: bool,
    ) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let me = self.auth.as_ref().map(|me| me.addr);
        let allowed_now = me.is_some()
            || is_anonymous_request(&frame)
            || matches!(
                frame,
                ClientFrame::Ping { .. } | ClientFrame::Pong { .. } | ClientFrame::Auth(_)
            );
        if !allowed_now {
            // SPEC.md 10.3 step 5: request id 0, and the connection closes.
            shared.metrics.reject(Rejection::AuthRequired);
            let message = format!("{} before authentication", frame.name());
            let error = ServerFrame::error(None, ErrorCode::AuthRequired, message);
            let _ = send(&shared, ws, &error).await;
            return Err(End::Close(
                CloseCode::Policy,
                ErrorCode::AuthRequired.name(),
            ));
        }
        let now = StdInstant::now();
        // Pongs are exempt: they answer our own pings.
        let exempt = counted || matches!(frame, ClientFrame::Pong { .. });
        let allowed = exempt
            || (me.is_none_or(|addr| shared.device_frames.try_take(addr, 1.0, now))
                && shared.ip_frames.try_take(self.ip, 1.0, now));
        if !allowed {
            return self.rate_limited(ws, frame.request_id()).await;
        }
        let sender = self.sender();
        let load = match &frame {
            ClientFrame::Send { envelopes, .. } => Some((
                envelopes.len(),
                envelopes.iter().map(|e| e.payload.len()).sum::<usize>(),
            )),
            ClientFrame::Deposit { envelopes, .. } => Some((
                envelopes.len(),
                envelopes.iter().map(|e| e.payload.len()).sum::<usize>(),
            )),
            // A post counts as one envelope of its payload for its sender, however many
            // mailboxes it is fanned out to.
            ClientFrame::PostGroup { post, .. } => Some((1, post.payload.len())),
            _ => None,
        };
        if let Some((count, bytes)) = load
            && (!shared.device_envelopes.try_take(sender, count as f64, now)
                || !shared.device_bytes.try_take(sender, bytes as f64, now))
        {
            return self.rate_limited(ws, frame.request_id()).await;
        }
        if matches!(
            frame,
            ClientFrame::FetchBundle { .. } | ClientFrame::FetchKeyPackage { .. }
        ) && !shared.bundle_fetches.try_take(sender, 1.0, now)
        {
            return self.rate_limited(ws, frame.request_id()).await;
        }
        self.refusals = 0;
        let reply = match frame {
            ClientFrame::Ping { nonce } => Some(ServerFrame::Pong { nonce }),
            ClientFrame::Pong { .. } => None,
            ClientFrame::Auth(proof) => return self.auth(ws, proof).await,
            ClientFrame::Send {
                request_id,
                envelopes,
            } => self.submit(request_id, envelopes, Vec::new(), now).await,
            ClientFrame::Deposit {
                request_id,
                envelopes,
            } => {
                Metrics::add(&shared.metrics.deposits, 1);
                let (envelopes, tokens) = envelopes
                    .into_iter()
                    .map(|e| {
                        let envelope = OutgoingEnvelope {
                            recipient_identity: e.recipient_identity,
                            recipient_device: e.recipient_device,
                            payload: e.payload,
                        };
                        (envelope, e.token)
                    })
                    .unzip();
                self.submit(request_id, envelopes, tokens, now).await
            }
            ClientFrame::FetchBundle {
                request_id,
                identity,
                device_id,
            } => Some(
                self.fetch_bundle(
                    request_id,
                    DeviceAddr {
                        identity,
                        device: device_id,
                    },
                )
                .await,
            ),
            ClientFrame::ListDevices {
                request_id,
                identity,
            } => Some(
                shared
                    .answer(request_id, move |store| {
                        match store.devices(&identity, MAX_DEVICES_PER_LIST) {
                            Ok(devices) => ServerFrame::Devices {
                                request_id,
                                devices,
                            },
                            Err(e) => internal(request_id, &e),
                        }
                    })
                    .await,
            ),
            ClientFrame::LookupHandle { request_id, handle } => Some(
                shared
                    .answer(request_id, move |store| {
                        match store.lookup_handle(&handle) {
                            Ok(claim) => ServerFrame::HandleRecord { request_id, claim },
                            Err(e) => internal(request_id, &e),
                        }
                    })
                    .await,
            ),
            ClientFrame::FetchReachability {
                request_id,
                identity,
            } => Some(
                shared
                    .answer(request_id, move |store| {
                        match store.reachability(&identity) {
                            Ok(record) => ServerFrame::Reachability { request_id, record },
                            Err(e) => internal(request_id, &e),
                        }
                    })
                    .await,
            ),
            ClientFrame::FetchKeyPackage {
                request_id,
                identity,
                device_id,
            } => Some(
                self.fetch_key_package(
                    request_id,
                    DeviceAddr {
                        identity,
                        device: device_id,
                    },
                )
                .await,
            ),
            ClientFrame::OpenGroup {
                request_id,
                group_id,
                epoch,
                post_key,
                subscribe,
            } => {
                let job = GroupJob::Open {
                    group_id,
                    epoch,
                    post_key,
                    subscribe,
                };
                self.submit_group(request_id, job).await
            }
            ClientFrame::PostGroup { request_id, post } => {
                self.submit_group(request_id, GroupJob::Post(post)).await
            }
            // The rest needs authentication, checked above.
            frame => match me {
                Some(me) => self.handle_authenticated(me, frame).await,
                None => None,
            },
        };
        match reply {
            Some(frame) => self.feed(ws, &frame).await,
            None => Ok(()),
        }
    }

    /// Handles a frame only an authenticated session may send, as device `me`.
    async fn handle_authenticated(
        &mut self,
        me: DeviceAddr,
        frame: ClientFrame,
    ) -> Option<ServerFrame> {
        match frame {
            ClientFrame::Ack { envelope_ids } => {
                self.ack(me, &envelope_ids).await;
                None
            }
            ClientFrame::PublishPrekeys {
                request_id,
                signed_prekey,
                kem_prekeys,
                one_time_prekeys,
            } => Some(
                self.publish(request_id, signed_prekey, kem_prekeys, one_time_prekeys)
                    .await,
            ),
            ClientFrame::ClaimHandle { request_id, claim } => {
                Some(self.claim(me, request_id, claim).await)
            }
            ClientFrame::ReleaseHandle {
                request_id,
                release,
            } => Some(self.release(me, request_id, release).await),
            ClientFrame::SetDeliveryTokens {
                request_id,
                policy,
                add,
                revoke,
            } => Some(self.set_tokens(me, request_id, policy, add, revoke).await),
            ClientFrame::PublishReachability { request_id, record } => {
                Some(self.publish_record(me, request_id, record).await)
            }
            ClientFrame::PublishKeyPackages {
                request_id,
                last_resort,
                key_packages,
            } => Some(
                self.publish_key_packages(me, request_id, last_resort, key_packages)
                    .await,
            ),
            ClientFrame::LeaveGroup {
                request_id,
                group_id,
            } => {
                let job = GroupJob::Leave {
                    group_id,
                    device: me,
                };
                self.submit_group(request_id, job).await
            }
            // Handled by `handle_frame` on any session.
            ClientFrame::Ping { .. }
            | ClientFrame::Pong { .. }
            | ClientFrame::Auth(_)
            | ClientFrame::Send { .. }
            | ClientFrame::Deposit { .. }
            | ClientFrame::FetchBundle { .. }
            | ClientFrame::ListDevices { .. }
            | ClientFrame::LookupHandle { .. }
            | ClientFrame::FetchReachability { .. }
            | ClientFrame::FetchKeyPackage { .. }
            | ClientFrame::OpenGroup { .. }
            | ClientFrame::PostGroup { .. } => None,
        }
    }

    /// A group job (`OpenGroup`, `PostGroup`, `LeaveGroup`): the group commit decides it
    /// (SPEC.md 10.10) and the reply comes when its batch is durable, like a `Send`'s.
    async fn submit_group(&mut self, request_id: RequestId, job: GroupJob) -> Option<ServerFrame> {
        match self.shared.committer.submit_group(job).await {
            Some(rx) => {
                self.pending_sends.push_back(Box::pin(async move {
                    group_reply(request_id, rx.await.ok())
                }));
                None
            }
            None => Some(ServerFrame::error(
                Some(request_id),
                ErrorCode::Internal,
                "relay shutting down",
            )),
        }
    }

    /// A `Send` (no tokens) or `Deposit`: admission (SPEC.md 10.9, `admission.rs`), then the
    /// group commit for the envelopes admitted; the reply comes when the commit is done.
    async fn submit(
        &mut self,
        request_id: RequestId,
        envelopes: Vec<OutgoingEnvelope>,
        tokens: Vec<Option<DeliveryToken>>,
        now: StdInstant,
    ) -> Option<ServerFrame> {
        let shared = self.shared.clone();
        let plan = match shared.tokens.admit(&envelopes, &tokens, now) {
            Ok(plan) => plan,
            Err(refusal) => {
                shared.metrics.reject(refusal.rejection);
                let message = format!("envelope {}: {}", refusal.index, refusal.code.name());
                return Some(ServerFrame::error(Some(request_id), refusal.code, message));
            }
        };
        if plan.dropped() > 0 {
            Metrics::add(&shared.metrics.envelopes_dropped, plan.dropped() as u64);
        }
        match shared.committer.submit(plan.keep(envelopes)).await {
            Some(rx) => {
                self.pending_sends.push_back(Box::pin(async move {
                    send_reply(request_id, rx.await.ok().map(|result| plan.merge(result)))
                }));
                None
            }
            None => Some(ServerFrame::error(
                Some(request_id),
                ErrorCode::Internal,
                "relay shutting down",
            )),
        }
    }

    async fn rate_limited<S>(
        &mut self,
        ws: &mut Ws<S>,
        request_id: Option<RequestId>,
    ) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        shared.metrics.reject(Rejection::RateLimited);
        self.refusals += 1;
        if self.refusals > MAX_CONSECUTIVE_REFUSALS {
            // No `Error` for this one: the close says it (SPEC.md section 10.8).
            return Err(End::Close(CloseCode::Policy, ErrorCode::RateLimited.name()));
        }
        let frame = ServerFrame::error(request_id, ErrorCode::RateLimited, "slow down");
        self.feed(ws, &frame).await
    }

    async fn ack(&mut self, addr: DeviceAddr, ids: &[protocol::frames::EnvelopeId]) {
        let seqs: Vec<u64> = ids
            .iter()
            .filter_map(|id| self.shared.ids.seq_of(id))
            .collect();
        for seq in &seqs {
            self.in_flight.remove(seq);
        }
        // Deleted (and counted) on the store thread, before the next frame is handled.
        if !seqs.is_empty() && !self.shared.store_worker.ack(addr, seqs).await {
            tracing::error!("the store thread has stopped; acknowledgements not applied");
        }
        // Room in the window: look for more.
        self.more_mail = true;
    }

    // The request handlers below return futures that do not borrow the session, so that the
    // session (not `Sync`) is not held across their store call.

    fn publish(
        &self,
        request_id: RequestId,
        signed: Option<SignedPrekey>,
        kem: Vec<KemPrekey>,
        one_time: Vec<OneTimePrekey>,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        // Only an authenticated session gets here (`handle_authenticated`).
        let addr = self.auth.as_ref().map(|me| me.addr);
        let signatures_ok = self.auth.as_ref().is_some_and(|me| {
            let signing_key = me.device.signing_key();
            signed
                .as_ref()
                .is_none_or(|spk| spk.verify(signing_key).is_ok())
                && kem.iter().all(|k| k.verify(signing_key).is_ok())
        });
        let shared = self.shared.clone();
        async move {
            let Some(addr) = addr else {
                return ServerFrame::error(
                    Some(request_id),
                    ErrorCode::AuthRequired,
                    "not authenticated",
                );
            };
            if !signatures_ok {
                return ServerFrame::error(
                    Some(request_id),
                    ErrorCode::InvalidPrekeys,
                    "a prekey signature does not verify",
                );
            }
            shared
                .answer(request_id, move |store| {
                    match store.publish_prekeys(&addr, signed.as_ref(), &kem, &one_time) {
                        Ok(Ok(counts)) => ServerFrame::PrekeyCount {
                            request_id,
                            one_time: counts.one_time,
                            kem_one_time: counts.kem_one_time,
                        },
                        Ok(Err(PublishError::TooManyPrekeys)) => ServerFrame::error(
                            Some(request_id),
                            ErrorCode::InvalidPrekeys,
                            "the relay stores no more prekeys for this device",
                        ),
                        Ok(Err(PublishError::UnknownDevice)) => ServerFrame::error(
                            Some(request_id),
                            ErrorCode::NotFound,
                            "unknown device",
                        ),
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    fn fetch_bundle(
        &self,
        request_id: RequestId,
        addr: DeviceAddr,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        // Past the target identity's rate, a bundle that consumes nothing (SPEC.md 10.8).
        let one_time = self
            .shared
            .one_time_prekeys
            .try_take(addr.identity, 1.0, StdInstant::now());
        let shared = self.shared.clone();
        async move {
            shared
                .answer(request_id, move |store| {
                    match store.take_bundle_with(&addr, one_time) {
                        Ok(Some(bundle)) => ServerFrame::Bundle { request_id, bundle },
                        Ok(None) => match store.has_device(&addr) {
                            Ok(true) => ServerFrame::error(
                                Some(request_id),
                                ErrorCode::NoPrekeys,
                                "the device has published no prekeys",
                            ),
                            Ok(false) => ServerFrame::error(
                                Some(request_id),
                                ErrorCode::NotFound,
                                "unknown device",
                            ),
                            Err(e) => internal(request_id, &e),
                        },
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    /// `PublishKeyPackages`: stored (durably) for the authenticated device, or refused whole
    /// over the per-device pool cap.
    fn publish_key_packages(
        &self,
        me: DeviceAddr,
        request_id: RequestId,
        last_resort: Option<KeyPackage>,
        key_packages: Vec<KeyPackage>,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let metrics = shared.metrics.clone();
            shared
                .answer(request_id, move |store| {
                    match store.publish_key_packages(&me, last_resort.as_ref(), &key_packages) {
                        Ok(Ok(count)) => ServerFrame::KeyPackageCount {
                            request_id,
                            count: count.count,
                            has_last_resort: count.has_last_resort,
                        },
                        Ok(Err(PublishError::TooManyPrekeys)) => {
                            metrics.reject(Rejection::QuotaExceeded);
                            ServerFrame::error(
                                Some(request_id),
                                ErrorCode::QuotaExceeded,
                                "the relay stores no more key packages for this device",
                            )
                        }
                        Ok(Err(PublishError::UnknownDevice)) => ServerFrame::error(
                            Some(request_id),
                            ErrorCode::NotFound,
                            "unknown device",
                        ),
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    /// `FetchKeyPackage`: the oldest of the device's pool, or its last-resort one. Past the
    /// target identity's `one_time_prekeys` rate, the last-resort one (consuming nothing), so
    /// strangers cannot drain a device's pool (SPEC.md 10.8).
    fn fetch_key_package(
        &self,
        request_id: RequestId,
        addr: DeviceAddr,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let from_pool =
            self.shared
                .one_time_prekeys
                .try_take(addr.identity, 1.0, StdInstant::now());
        let shared = self.shared.clone();
        async move {
            shared
                .answer(request_id, move |store| {
                    match store.take_key_package(&addr, from_pool) {
                        Ok(Some((key_package, last_resort))) => ServerFrame::KeyPackage {
                            request_id,
                            key_package,
                            last_resort,
                        },
                        Ok(None) => match store.has_device(&addr) {
                            Ok(true) => ServerFrame::error(
                                Some(request_id),
                                ErrorCode::NoPrekeys,
                                "the device has published no key packages",
                            ),
                            Ok(false) => ServerFrame::error(
                                Some(request_id),
                                ErrorCode::NotFound,
                                "unknown device",
                            ),
                            Err(e) => internal(request_id, &e),
                        },
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    fn claim(
        &self,
        me: DeviceAddr,
        request_id: RequestId,
        claim: HandleClaim,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let invalid =
            move |why: &str| ServerFrame::error(Some(request_id), ErrorCode::HandleInvalid, why);
        let refusal = if claim.identity != me.identity {
            Some("a claim must be made by the authenticated identity")
        } else if claim.verify().is_err() {
            Some("the claim's signature does not verify")
        } else if self.shared.clock.now().abs_diff(claim.issued_at) > HANDLE_CLOCK_WINDOW_SECS {
            Some("issued_at is too far from the relay's clock")
        } else {
            None
        };
        let shared = self.shared.clone();
        async move {
            if let Some(why) = refusal {
                return invalid(why);
            }
            shared
                .answer(request_id, move |store| match store.claim_handle(&claim) {
                    Ok(ClaimOutcome::Claimed | ClaimOutcome::Renewed) => {
                        ServerFrame::Done { request_id }
                    }
                    Ok(ClaimOutcome::Stale) => {
                        invalid("a claim or release of this handle at least as recent is recorded")
                    }
                    Ok(ClaimOutcome::TooManyHandles) => {
                        invalid("this identity holds too many handles")
                    }
                    Ok(ClaimOutcome::Taken) => ServerFrame::error(
                        Some(request_id),
                        ErrorCode::HandleTaken,
                        "the handle belongs to another identity",
                    ),
                    Err(e) => internal(request_id, &e),
                })
                .await
        }
    }

    fn release(
        &self,
        me: DeviceAddr,
        request_id: RequestId,
        release: HandleRelease,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let invalid =
            move |why: &str| ServerFrame::error(Some(request_id), ErrorCode::HandleInvalid, why);
        let refusal = if release.identity != me.identity {
            Some("a release must be made by the authenticated identity")
        } else if release.verify().is_err() {
            Some("the release's signature does not verify")
        } else if self.shared.clock.now().abs_diff(release.issued_at) > HANDLE_CLOCK_WINDOW_SECS {
            Some("issued_at is too far from the relay's clock")
        } else {
            None
        };
        let shared = self.shared.clone();
        async move {
            if let Some(why) = refusal {
                return invalid(why);
            }
            shared
                .answer(request_id, move |store| {
                    let not_found = || {
                        ServerFrame::error(
                            Some(request_id),
                            ErrorCode::NotFound,
                            "nobody holds this handle",
                        )
                    };
                    match store.lookup_handle(&release.handle) {
                        Ok(None) => return not_found(),
                        Ok(Some(current)) if current.identity != release.identity => {
                            return invalid("the handle belongs to another identity");
                        }
                        Ok(Some(current)) if current.issued_at >= release.issued_at => {
                            return invalid("the release is not later than the claim");
                        }
                        Ok(Some(_)) => {}
                        Err(e) => return internal(request_id, &e),
                    }
                    match store.release_handle(&release) {
                        Ok(true) => ServerFrame::Done { request_id },
                        Ok(false) => not_found(),
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    /// `SetDeliveryTokens`: the store applies it (or refuses it whole over the cap) and
    /// flushes, then admission sees it, then `Done`.
    fn set_tokens(
        &self,
        me: DeviceAddr,
        request_id: RequestId,
        policy: TokenPolicy,
        add: Vec<TokenDigest>,
        revoke: Vec<TokenDigest>,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let gate = shared.tokens.clone();
            let metrics = shared.metrics.clone();
            let max = shared.limits.max_tokens_per_account;
            let identity = me.identity;
            shared
                .answer(request_id, move |store| {
                    match store.set_delivery_tokens(&identity, policy, &add, &revoke, max) {
                        Ok(Ok(())) => {}
                        Ok(Err(quota)) => {
                            metrics.reject(Rejection::QuotaExceeded);
                            return ServerFrame::error(
                                Some(request_id),
                                ErrorCode::QuotaExceeded,
                                quota.to_string(),
                            );
                        }
                        Err(e) => return internal(request_id, &e),
                    }
                    // Admission follows the store as soon as the store has it.
                    gate.update(identity, policy, &token_changes(&add, &revoke));
                    match store.flush_blocking() {
                        Ok(()) => ServerFrame::Done { request_id },
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }

    /// `PublishReachability`: a record that verifies, names the authenticated identity and is
    /// newer than the stored one is stored and flushed before `Done`; the stored record again
    /// is `Done` too.
    fn publish_record(
        &self,
        me: DeviceAddr,
        request_id: RequestId,
        record: ReachabilityRecord,
    ) -> impl Future<Output = ServerFrame> + Send + 'static {
        let metrics = self.shared.metrics.clone();
        let invalid = move |why: &str| {
            metrics.reject(Rejection::InvalidRecord);
            ServerFrame::error(Some(request_id), ErrorCode::InvalidRecord, why)
        };
        let refusal = if record.identity != me.identity {
            Some("a record must name the authenticated identity")
        } else if record.verify().is_err() {
            Some("the record's signature does not verify")
        } else {
            None
        };
        let shared = self.shared.clone();
        async move {
            if let Some(why) = refusal {
                return invalid(why);
            }
            shared
                .answer(request_id, move |store| {
                    match store.put_reachability(&record) {
                        Ok(RecordOutcome::Stored) => match store.flush_blocking() {
                            Ok(()) => ServerFrame::Done { request_id },
                            Err(e) => internal(request_id, &e),
                        },
                        Ok(RecordOutcome::Unchanged) => ServerFrame::Done { request_id },
                        Ok(RecordOutcome::Stale) => invalid("the stored record is at least as new"),
                        Err(e) => internal(request_id, &e),
                    }
                })
                .await
        }
    }
}

/// The reply to a group job the group commit finished (`None`: it failed unseen).
fn group_reply(request_id: RequestId, result: Option<GroupResult>) -> ServerFrame {
    match result {
        Some(GroupResult::Posted { seq, epoch }) => ServerFrame::GroupPosted {
            request_id,
            seq,
            epoch,
        },
        Some(GroupResult::Left) => ServerFrame::Done { request_id },
        Some(GroupResult::Refused { code, message }) => {
            ServerFrame::error(Some(request_id), code, message)
        }
        Some(GroupResult::Failed) | None => ServerFrame::error(
            Some(request_id),
            ErrorCode::Internal,
            "storing the group post failed",
        ),
    }
}

/// The reply to a `Send` or `Deposit` the group commit finished (`None`: it failed unseen).
fn send_reply(request_id: RequestId, result: Option<CommitResult>) -> ServerFrame {
    match result {
        Some(CommitResult::Stored(envelope_ids)) => ServerFrame::SendAck {
            request_id,
            envelope_ids,
        },
        Some(CommitResult::Refused { code, index }) => ServerFrame::error(
            Some(request_id),
            code,
            format!("envelope {index}: {}", code.name()),
        ),
        Some(CommitResult::Failed) | None => ServerFrame::error(
            Some(request_id),
            ErrorCode::Internal,
            "storing the envelopes failed",
        ),
    }
}

fn internal(request_id: RequestId, error: &crate::store::StoreError) -> ServerFrame {
    tracing::error!(error = %error, "relay storage failed");
    ServerFrame::error(
        Some(request_id),
        ErrorCode::Internal,
        "relay storage failed",
    )
}
