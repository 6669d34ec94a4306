//! The accept loop and the relay's lifecycle: open the store, start the group commit and the
//! TTL sweeper, accept connections under the connection caps, and on shutdown stop accepting,
//! let every connection finish, drain the last group commit and flush.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::Context as _;
use protocol::frames::RelayId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::TokenGate;
use crate::clock::{Clock, SystemClock};
use crate::commit::CommitTask;
use crate::config::{Config, ProxyProtocol, Storage};
use crate::connection::{self, Admission, Shared};
use crate::envelope_ids::IdCipher;
use crate::metrics::{Metrics, Rejection};
use crate::proxy::{self, ProxiedAddr};
use crate::ratelimit::{IpSlot, IpSlots, RateLimiter};
use crate::router::Router;
use crate::store::worker::StoreWorker;
use crate::store::{MemoryStore, SledStore, Store, blocking_section};

/// How often expired envelopes are swept out (they are also skipped on delivery).
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// How often the rate limiters forget buckets that have refilled: a timer's work, never a
/// frame's.
const LIMITER_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A running relay. Dropping it does not stop it; call [`Relay::shutdown`].
#[derive(Debug)]
pub struct Relay {
    local_addr: SocketAddr,
    relay_id: RelayId,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Relay {
    /// Opens the store and starts serving on `listener` with the system clock.
    pub async fn start(listener: TcpListener, config: Config) -> anyhow::Result<Self> {
        Self::start_with_clock(listener, config, Arc::new(SystemClock)).await
    }

    /// As [`Relay::start`], with a clock of the caller's (tests move time forward with it).
    pub async fn start_with_clock(
        listener: TcpListener,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let local_addr = listener
            .local_addr()
            .context("reading the listen address")?;
        let relay_id_text = config
            .relay_id
            .clone()
            .unwrap_or_else(|| format!("ws://{local_addr}/v1"));
        let relay_id = RelayId::new(relay_id_text.into_bytes()).context("the relay id")?;
        // Opening reads the whole store: on a blocking thread, like every store call.
        let storage = config.storage.clone();
        let sled = config.sled;
        let (store, secret, last_sequence, tokens) = tokio::task::spawn_blocking(move || {
            blocking_section(|| -> anyhow::Result<_> {
                let store = match &storage {
                    Storage::Disk(dir) => Store::Sled(
                        SledStore::open_with(dir, &sled)
                            .with_context(|| format!("opening the store in {}", dir.display()))?,
                    ),
                    Storage::Memory => Store::Memory(MemoryStore::new()),
                };
                let secret = store.relay_secret().context("reading the relay secret")?;
                let last_sequence = store.last_sequence().context("reading the store")?;
                // Admission holds every account's token policy and digests in memory.
                let tokens = store
                    .all_delivery_tokens()
                    .context("reading the delivery tokens")?;
                Ok((store, secret, last_sequence, tokens))
            })
        })
        .await
        .context("the store opener panicked")??;
        let tls = match (&config.tls_identity, &config.tls) {
            (Some(identity), _) => Some(crate::tls::acceptor_in_memory(identity)?),
            (None, Some(tls)) => Some(crate::tls::acceptor(tls)?),
            (None, None) => None,
        };
        let metrics = Arc::new(Metrics::default());
        let router = Arc::new(Router::new(last_sequence));
        let ids = IdCipher::new(&secret);
        let limits = config.limits.clone();
        let token_gate = Arc::new(TokenGate::new(tokens, limits.stranger_envelopes));
        let (committer, commit_task) = CommitTask {
            store: store.clone(),
            router: router.clone(),
            ids: ids.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            quota: limits.mailbox_quota,
            quota_bytes: limits.mailbox_quota_bytes,
            disk_budget: limits.disk_budget_bytes,
            max_batch: limits.max_commit_batch,
            tokens: token_gate.clone(),
        }
        .spawn(limits.max_connections.max(64), last_sequence);
        let (store_worker, store_thread) = StoreWorker::spawn(
            store.clone(),
            metrics.clone(),
            limits.max_connections.max(64),
        );
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            relay_id: relay_id.clone(),
            store: store.clone(),
            router,
            committer,
            store_worker,
            ids,
            metrics: metrics.clone(),
            clock: clock.clone(),
            device_frames: RateLimiter::new(limits.device_frames),
            tokens: token_gate,
            device_envelopes: RateLimiter::new(limits.device_envelopes),
            ip_frames: RateLimiter::new(limits.ip_frames),
            device_bytes: RateLimiter::new(limits.device_bytes),
            bundle_fetches: RateLimiter::new(limits.bundle_fetches),
            one_time_prekeys: RateLimiter::new(limits.one_time_prekeys),
            ip_connects: RateLimiter::new(limits.ip_connects),
            ip_slots: Arc::new(IpSlots::default()),
            proxy: config.proxy.clone(),
            shutdown: shutdown.clone(),
            limits,
        });
        tracing::info!(addr = %local_addr, relay_id = ?relay_id, "relay listening");
        let task = tokio::spawn(serve(
            listener,
            shared,
            store,
            [commit_task, store_thread],
            tls,
            clock,
        ));
        Ok(Self {
            local_addr,
            relay_id,
            metrics,
            shutdown,
            task,
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The binding clients must see in the challenge.
    pub fn relay_id(&self) -> &RelayId {
        &self.relay_id
    }

    /// The relay's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops accepting, closes every connection (after answering the sends already taken),
    /// finishes the last group commit and flushes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("the relay task panicked")?
    }
}

/// Serves on `listener` until `shutdown` completes, then shuts down cleanly.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let relay = Relay::start(listener, config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    relay.shutdown().await
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    store: Store,
    store_tasks: [JoinHandle<()>; 2],
    tls: Option<tokio_rustls::TlsAcceptor>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let limits = shared.limits.clone();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let shutdown = shared.shutdown.clone();
    tracker.spawn(sweep(shared.clone(), clock));
    tracker.spawn(sweep_limiters(shared.clone()));

    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        Metrics::add(&shared.metrics.connections_accepted, 1);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            shared.metrics.reject(Rejection::TooManyConnections);
            continue;
        };
        // A trusted proxy's connection is admitted under the client address it names, once
        // it has named it; any other at once, under its own.
        let peer = match shared.proxy_protocol_for(peer.ip()) {
            Some(protocol) => Peer::Proxy(peer.ip(), protocol),
            None => match connection::admit(&shared, peer.ip()) {
                Some(slot) => Peer::Admitted(slot),
                None => continue,
            },
        };
        let _ = tcp.set_nodelay(true);
        let deadline = Instant::now() + limits.handshake_timeout();
        let shared = shared.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let _permit = permit;
            Metrics::add(&shared.metrics.connections_open, 1);
            Box::pin(accepted(shared.clone(), tcp, peer, tls, deadline)).await;
            Metrics::sub(&shared.metrics.connections_open, 1);
        });
    }

    drop(listener);
    tracker.close();
    tracker.wait().await;
    // Every connection is gone; the last `Committer` and `StoreWorker` go with `shared`, and
    // the commit task and the store thread finish what is queued and stop.
    drop(shared);
    for task in store_tasks {
        task.await
            .context("the group commit task or the store thread panicked")?;
    }
    store.flush().await.context("the final flush")?;
    tracing::info!("relay stopped");
    Ok(())
}

/// Who a connection is limited as, as far as the accept loop knows.
enum Peer {
    /// Admitted under its own address.
    Admitted(IpSlot),
    /// From a trusted proxy (this address), which names the client with this protocol.
    Proxy(IpAddr, ProxyProtocol),
}

/// One accepted TCP connection: the PROXY header if one is due, TLS if configured, then the
/// connection itself; all of it before `deadline` until authentication.
async fn accepted(
    shared: Arc<Shared>,
    mut tcp: TcpStream,
    peer: Peer,
    tls: Option<tokio_rustls::TlsAcceptor>,
    deadline: Instant,
) {
    let admission = match peer {
        Peer::Admitted(slot) => Admission::Admitted(slot),
        Peer::Proxy(proxy, ProxyProtocol::XForwardedFor) => Admission::ForwardedBy(proxy),
        Peer::Proxy(proxy, ProxyProtocol::ProxyV2) => {
            let client = match timeout_at(deadline, proxy::read_v2(&mut tcp)).await {
                Ok(Ok(ProxiedAddr::Client(client))) => client.ip(),
                Ok(Ok(ProxiedAddr::Proxy)) => proxy,
                Ok(Err(_)) => {
                    shared.metrics.reject(Rejection::HandshakeFailed);
                    return;
                }
                Err(_) => {
                    shared.metrics.reject(Rejection::HandshakeTimeout);
                    return;
                }
            };
            match connection::admit(&shared, client) {
                Some(slot) => Admission::Admitted(slot),
                None => return,
            }
        }
    };
    // Each path boxed: a task is as large as its largest state, and a plain connection
    // should not carry the TLS handshake's size for its whole life.
    match tls {
        None => Box::pin(connection::serve(shared, tcp, admission, deadline)).await,
        Some(acceptor) => match Box::pin(timeout_at(deadline, acceptor.accept(tcp))).await {
            Ok(Ok(stream)) => {
                Box::pin(connection::serve(shared, stream, admission, deadline)).await;
            }
            Ok(Err(_)) => shared.metrics.reject(Rejection::HandshakeFailed),
            Err(_) => shared.metrics.reject(Rejection::HandshakeTimeout),
        },
    }
}

/// Forgets rate limiter buckets that have refilled, so idle keys cost nothing.
async fn sweep_limiters(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(LIMITER_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        shared.sweep_limiters(StdInstant::now());
    }
}

/// Deletes expired envelopes now and then, and the groups nobody posted to for as long
/// (SPEC.md 10.10).
async fn sweep(shared: Arc<Shared>, clock: Arc<dyn Clock>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let (now, ttl) = (clock.now(), shared.limits.envelope_ttl_secs);
        let expired = shared.blocking(move |store| store.expire(now, ttl)).await;
        match expired.and_then(|result| result) {
            Ok(0) => {}
            Ok(n) => {
                Metrics::add(&shared.metrics.envelopes_expired, n as u64);
                tracing::info!(expired = n, "expired envelopes deleted");
            }
            Err(e) => tracing::error!(error = %e, "expiring envelopes failed"),
        }
        let expired = shared
            .blocking(move |store| store.expire_groups(now, ttl))
            .await;
        match expired.and_then(|result| result) {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired groups deleted"),
            Err(e) => tracing::error!(error = %e, "expiring groups failed"),
        }
    }
}
