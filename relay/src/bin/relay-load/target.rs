//! The relay under load: started in this process, spawned as a `chat-relay` child process, or
//! one already running. Every limit that would throttle one machine's worth of clients (per-IP
//! caps and rates, per-device rates) is raised; quotas, windows and timeouts keep their
//! defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chat_relay::metrics::Metrics;
use chat_relay::{Config, Limits, RateLimit, Relay, Storage};
use protocol::frames::RelayId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{RelayMode, StorageMode, TargetArgs};

/// A rate no load run reaches.
const UNLIMITED: RateLimit = RateLimit {
    per_second: 1e9,
    burst: 1e9,
};
/// Connection caps for the load runs (the defaults allow 64 per IP address).
const MAX_CONNECTIONS: usize = 60_000;

/// The limits the load tool runs an in-process or spawned relay with.
/// `device_limits`: keep the per-device rates at their defaults.
pub(crate) fn load_limits(device_limits: bool) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_connections: MAX_CONNECTIONS,
        max_connections_per_ip: MAX_CONNECTIONS,
        device_frames: if device_limits {
            defaults.device_frames
        } else {
            UNLIMITED
        },
        device_envelopes: if device_limits {
            defaults.device_envelopes
        } else {
            UNLIMITED
        },
        ip_frames: UNLIMITED,
        ip_connects: UNLIMITED,
        ..defaults
    }
}

/// The same limits as a TOML configuration for `chat-relay --config` (LOAD.md shows it).
pub(crate) fn load_limits_toml(device_limits: bool) -> String {
    let mut out = format!(
        "[limits]\nmax_connections = {MAX_CONNECTIONS}\nmax_connections_per_ip = {MAX_CONNECTIONS}\n"
    );
    let raised: &[&str] = if device_limits {
        &["ip_frames", "ip_connects"]
    } else {
        &[
            "device_frames",
            "device_envelopes",
            "ip_frames",
            "ip_connects",
        ]
    };
    for name in raised {
        out.push_str(&format!(
            "\n[limits.{name}]\nper_second = 1e9\nburst = 1e9\n"
        ));
    }
    out
}

/// A relay to load.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) relay_id: RelayId,
    /// Client source addresses, used in turn.
    pub(crate) sources: Vec<IpAddr>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Inproc {
        relay: Relay,
        _dir: Option<tempfile::TempDir>,
    },
    Child {
        child: ChildGuard,
        _dir: Option<tempfile::TempDir>,
    },
    External {
        pid: Option<u32>,
    },
}

/// Kills the child relay when dropped, whatever happened.
#[derive(Debug)]
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Target {
    /// Starts (or finds) the relay `args` describe.
    pub(crate) async fn start(args: &TargetArgs) -> anyhow::Result<Self> {
        let sources = (1..=args.source_ips.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect();
        let dir = match args.storage {
            StorageMode::Sled if args.relay != RelayMode::External => Some(
                tempfile::Builder::new()
                    .prefix("relay-load-")
                    .tempdir()
                    .context("creating a temporary directory")?,
            ),
            _ => None,
        };
        match args.relay {
            RelayMode::Inproc => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let storage = match &dir {
                    Some(dir) => Storage::Disk(dir.path().join("db")),
                    None => Storage::Memory,
                };
                let mut config = Config::new(storage);
                config.limits = load_limits(args.device_limits);
                let relay = Relay::start(listener, config).await?;
                Ok(Self {
                    addr: relay.local_addr(),
                    relay_id: relay.relay_id().clone(),
                    sources,
                    kind: Kind::Inproc { relay, _dir: dir },
                })
            }
            RelayMode::Spawn => {
                let bin = match &args.relay_bin {
                    Some(bin) => bin.clone(),
                    None => std::env::current_exe()
                        .context("locating this binary")?
                        .with_file_name("chat-relay"),
                };
                let addr = free_port().await?;
                let config_dir = tempfile::tempdir().context("creating a temporary directory")?;
                let config_path = config_dir.path().join("relay.toml");
                std::fs::write(&config_path, load_limits_toml(args.device_limits))?;
                let mut command = Command::new(&bin);
                command
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--config")
                    .arg(&config_path)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null());
                match &dir {
                    Some(dir) => command.arg("--data-dir").arg(dir.path().join("db")),
                    None => command.arg("--ephemeral"),
                };
                let child = command
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?;
                let child = ChildGuard(child);
                wait_ready(addr).await?;
                drop(config_dir);
                Ok(Self {
                    addr,
                    relay_id: relay_id_for(addr)?,
                    sources,
                    kind: Kind::Child { child, _dir: dir },
                })
            }
            RelayMode::External => {
                let Some(addr) = args.addr else {
                    bail!("--relay external needs --addr");
                };
                wait_ready(addr).await?;
                Ok(Self {
                    addr,
                    relay_id: relay_id_for(addr)?,
                    sources,
                    kind: Kind::External {
                        pid: args.relay_pid,
                    },
                })
            }
        }
    }

    /// What is being measured, for the report.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Inproc { _dir: Some(_), .. } => {
                "chat-relay in-process, sled (fsync per group commit)"
            }
            Kind::Inproc { _dir: None, .. } => "chat-relay in-process, memory store",
            Kind::Child { _dir: Some(_), .. } => {
                "chat-relay child process, sled (fsync per group commit)"
            }
            Kind::Child { _dir: None, .. } => "chat-relay child process, memory store",
            Kind::External { .. } => "chat-relay at --addr",
        }
        .to_owned()
    }

    /// The relay's process id, when it runs on this machine under our control.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Inproc { .. } => Some(std::process::id()),
            Kind::Child { child, .. } => Some(child.0.id()),
            Kind::External { pid } => *pid,
        }
    }

    /// Whether the relay shares this process (so its RSS includes the clients).
    pub(crate) fn in_process(&self) -> bool {
        matches!(self.kind, Kind::Inproc { .. })
    }

    /// The in-process relay's counters, if it is in this process.
    pub(crate) fn metrics(&self) -> Option<Arc<Metrics>> {
        match &self.kind {
            Kind::Inproc { relay, .. } => Some(relay.metrics()),
            _ => None,
        }
    }

    /// Envelopes the relay has seen acknowledged so far.
    pub(crate) async fn acked(&self) -> anyhow::Result<u64> {
        match self.metrics() {
            Some(metrics) => Ok(Metrics::get(&metrics.envelopes_acked)),
            None => scrape(self.addr, "chat_relay_envelopes_acked_total").await,
        }
    }

    /// Stops an in-process or spawned relay.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        match self.kind {
            Kind::Inproc { relay, _dir } => relay.shutdown().await,
            Kind::Child { child, _dir } => {
                drop(child);
                Ok(())
            }
            Kind::External { .. } => Ok(()),
        }
    }
}

fn relay_id_for(addr: SocketAddr) -> anyhow::Result<RelayId> {
    RelayId::new(format!("ws://{addr}/v1").into_bytes()).context("the relay id")
}

async fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

/// Waits until `/healthz` answers.
async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..500 {
        if let Ok(body) = http_get(addr, "/healthz").await
            && body.contains("ok")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the relay at {addr} did not become ready")
}

/// One plain HTTP GET; the relay answers and closes.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let fetch = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut body = Vec::new();
        tcp.read_to_end(&mut body).await?;
        anyhow::Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .context("HTTP request timed out")?
}

/// Reads one counter from `/metrics`.
pub(crate) async fn scrape(addr: SocketAddr, name: &str) -> anyhow::Result<u64> {
    let text = http_get(addr, "/metrics").await?;
    text.lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| format!("no {name} in /metrics"))
}

/// The resident set size of a process, bytes, from `/proc/<pid>/status`.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status")))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}
