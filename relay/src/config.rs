//! Relay configuration: where to store, how to identify itself, TLS, and every limit, with
//! safe defaults (SPEC.md section 10.7). The same structure is read from a TOML file and
//! overridden by command-line flags (`main.rs`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Everything `run` needs besides the listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The relay binding devices sign in their authentication: the canonical URL of this
    /// relay's `/v1` endpoint as clients dial it (SPEC.md section 10.3), e.g.
    /// `wss://relay.example.org/v1`. `None`: `ws://<listen address>/v1`.
    #[serde(default)]
    pub relay_id: Option<String>,
    /// Where state lives.
    #[serde(default)]
    pub storage: Storage,
    /// Native TLS (`wss://`) from PEM files; leave unset behind a TLS-terminating reverse
    /// proxy.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Native TLS from a certificate and key held in memory, for a program that embeds the
    /// relay and makes its own (chatd's self-signed one, SPEC.md 10.9 "Peer to peer"). Never
    /// read from a configuration file; when set, `tls` is not used.
    #[serde(skip)]
    pub tls_identity: Option<TlsIdentity>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The embedded database's memory and flushing (`Storage::Disk` only).
    #[serde(default)]
    pub sled: SledSettings,
    /// Reverse proxies whose word on the client's address is taken; `None` (the default):
    /// every connection is limited under the address it comes from.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
}

impl Config {
    /// A configuration with every default and the given storage.
    pub fn new(storage: Storage) -> Self {
        Self {
            relay_id: None,
            storage,
            tls: None,
            tls_identity: None,
            limits: Limits::default(),
            sled: SledSettings::default(),
            proxy: None,
        }
    }
}

/// Where the relay keeps its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Storage {
    /// An embedded `sled` database in this directory (durable).
    Disk(PathBuf),
    /// Memory only: nothing is written to disk, everything is lost on exit.
    #[default]
    Memory,
}

/// Trusted reverse proxies (SPEC.md section 10.8, docs/SERVICES.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// How the proxies pass the client's address on.
    pub protocol: ProxyProtocol,
    /// The proxies' own addresses. Only a connection from one of them is read for a client
    /// address; any other connection is limited under its own address as usual.
    pub trusted: Vec<IpAddr>,
}

/// How a trusted proxy names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    /// A PROXY protocol version 2 header before anything else (HAProxy `send-proxy-v2`,
    /// nginx `proxy_protocol on` in a `stream` block). A trusted connection without one is
    /// dropped.
    ProxyV2,
    /// The last entry of the `X-Forwarded-For` header of the HTTP request (an HTTP proxy
    /// that appends the address it accepted from). Without one, the proxy's address counts.
    XForwardedFor,
}

/// How the embedded `sled` database uses memory and the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SledSettings {
    /// Bytes of pages sled keeps in its cache (sled's own default is 1 GiB, which a busy relay
    /// reaches). The relay's resident memory is this plus the connections' buffers.
    pub cache_capacity_bytes: u64,
    /// How often sled flushes on its own, ms; 0: only when the relay asks (after a group
    /// commit, a one-time prekey handed out, the relay secret created, shutdown). Nothing the
    /// relay acknowledges depends on it.
    pub flush_every_ms: u64,
}

impl Default for SledSettings {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 64 * 1024 * 1024,
            flush_every_ms: 500,
        }
    }
}

/// PEM files for native TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A TLS certificate chain and its private key, in memory (DER). Its `Debug` leaves the key
/// out.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, end-entity certificate first, each DER.
    pub cert_chain: Vec<Vec<u8>>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_chain", &self.cert_chain.len())
            .field("key_pkcs8", &"<secret>")
            .finish()
    }
}

/// A token bucket: `per_second` tokens refill continuously, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size: how many may come at once.
    pub burst: f64,
}

/// Every limit the relay enforces. Defaults suit a public relay on a small machine.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message accepted; bigger ones close the connection with code 1009.
    pub max_frame_len: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Most simultaneous connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Time from TCP accept to a verified `Auth` frame (TLS, WebSocket upgrade and the
    /// challenge included), in milliseconds.
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing (not even a pong) for this long is closed, ms.
    pub idle_timeout_ms: u64,
    /// How often the relay pings an idle connection, ms.
    pub ping_interval_ms: u64,
    /// A write to a client that takes longer than this cuts the client off, ms.
    pub write_timeout_ms: u64,
    /// Frames a device may send.
    pub device_frames: RateLimit,
    /// Envelopes a device may send.
    pub device_envelopes: RateLimit,
    /// Frames one IP address may send, all its connections together.
    pub ip_frames: RateLimit,
    /// New connections one IP address may open.
    pub ip_connects: RateLimit,
    /// Envelopes a mailbox may hold; further sends to it are refused with `mailbox_full`.
    pub mailbox_quota: usize,
    /// Bytes a mailbox may hold (payloads plus `store::ENVELOPE_OVERHEAD` each); further
    /// sends to it are refused with `mailbox_full`.
    pub mailbox_quota_bytes: u64,
    /// Bytes all mailboxes together may hold, counted the same way; a `Send` that would go
    /// over is refused with `storage_full`. Set it well below the free disk space: sled's
    /// files take more than the data they hold.
    pub disk_budget_bytes: u64,
    /// Payload bytes a device may send (token bucket in bytes): the relay keeps nothing about
    /// senders, so this is the per-device quota on what one device can make it store.
    pub device_bytes: RateLimit,
    /// `FetchBundle` requests a device may make.
    pub bundle_fetches: RateLimit,
    /// One-time prekeys handed out per target identity (all its devices together); past it,
    /// bundles carry none and use the last-resort KEM prekey.
    pub one_time_prekeys: RateLimit,
    /// Envelopes without a valid delivery token ("strangers'", SPEC.md 10.9) admitted per
    /// recipient identity whose policy is `open`; past it such envelopes are `rate_limited`.
    pub stranger_envelopes: RateLimit,
    /// Token digests (accepted and revoked together) the relay keeps per account; a
    /// `SetDeliveryTokens` that would hold more is refused with `quota_exceeded`.
    pub max_tokens_per_account: usize,
    /// How long an unacknowledged envelope is kept, seconds.
    pub envelope_ttl_secs: u64,
    /// Most envelopes delivered to a device and not yet acknowledged.
    pub delivery_window: usize,
    /// Most `Send` requests of one connection waiting for their group commit.
    pub max_pending_sends: usize,
    /// Most envelopes written in one group commit.
    pub max_commit_batch: usize,
    /// WebSocket read buffer per connection, bytes.
    pub ws_read_buffer: usize,
    /// WebSocket write buffer per connection, bytes (a larger pending write is flushed).
    pub ws_write_buffer: usize,
}

/// The default stranger rate per recipient account, envelopes per hour.
const STRANGERS_PER_HOUR: f64 = 20.0;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_len: protocol::frames::MAX_FRAME_LEN,
            max_connections: 20_000,
            max_connections_per_ip: 64,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 90_000,
            ping_interval_ms: 30_000,
            write_timeout_ms: 15_000,
            device_frames: RateLimit {
                per_second: 100.0,
                burst: 400.0,
            },
            device_envelopes: RateLimit {
                per_second: 200.0,
                burst: 2_000.0,
            },
            ip_frames: RateLimit {
                per_second: 500.0,
                burst: 2_000.0,
            },
            ip_connects: RateLimit {
                per_second: 10.0,
                burst: 50.0,
            },
            mailbox_quota: 10_000,
            mailbox_quota_bytes: 64 * 1024 * 1024,
            disk_budget_bytes: 8 * 1024 * 1024 * 1024,
            device_bytes: RateLimit {
                per_second: 1024.0 * 1024.0,
                burst: 32.0 * 1024.0 * 1024.0,
            },
            bundle_fetches: RateLimit {
                per_second: 1.0,
                burst: 30.0,
            },
            one_time_prekeys: RateLimit {
                per_second: 0.1,
                burst: 20.0,
            },
            // 20 an hour, 5 at once: enough for a stranger's first messages, little for spam.
            stranger_envelopes: RateLimit {
                per_second: STRANGERS_PER_HOUR / 3600.0,
                burst: 5.0,
            },
            max_tokens_per_account: 20_000,
            envelope_ttl_secs: 30 * 24 * 3600,
            delivery_window: 1_024,
            max_pending_sends: 64,
            max_commit_batch: 4_096,
            ws_read_buffer: 4 * 1024,
            ws_write_buffer: 4 * 1024,
        }
    }
}

impl Limits {
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(1))
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in `contrib/` parses, and its limits are exactly the defaults, so the
    /// example and SPEC.md section 10.8 stay true.
    #[test]
    fn example_config_parses_and_shows_the_defaults() {
        let text = include_str!("../../contrib/chat-relay.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.storage, Storage::Disk("/var/lib/chat-relay".into()));
        assert_eq!(
            config.relay_id.as_deref(),
            Some("wss://relay.example.org/v1")
        );
    }

    #[test]
    fn proxies_are_off_unless_configured() {
        assert_eq!(Config::new(Storage::Memory).proxy, None);
        let config: Config = toml::from_str(
            "[proxy]\nprotocol = \"proxy_v2\"\ntrusted = [\"127.0.0.1\", \"::1\"]\n",
        )
        .unwrap();
        let proxy = config.proxy.unwrap();
        assert_eq!(proxy.protocol, ProxyProtocol::ProxyV2);
        assert_eq!(proxy.trusted.len(), 2);
        let config: Config =
            toml::from_str("[proxy]\nprotocol = \"x_forwarded_for\"\ntrusted = []\n").unwrap();
        assert_eq!(config.proxy.unwrap().protocol, ProxyProtocol::XForwardedFor);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("[limits]\nmax_conections = 5\n").is_err());
        let memory: Config = toml::from_str("storage = \"memory\"\n").unwrap();
        assert_eq!(memory.storage, Storage::Memory);
    }
}
