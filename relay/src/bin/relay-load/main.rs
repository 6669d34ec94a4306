//! `relay-load`: the relay's load generator (relay/LOAD.md). It opens many authenticated
//! devices against a relay (started in-process on sled by default, spawned as a `chat-relay`
//! process, or one already running), routes envelopes between random pairs and reports
//! throughput, send-to-delivery latency, memory per connection, connect rate and drain time.
//! With `--features jetstream` the routing scenarios also run against `nats-server` with
//! JetStream, so both are measured in one run.

mod devices;
#[cfg(feature = "jetstream")]
mod jetstream;
mod report;
mod route;
mod scenarios;
mod target;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for chat-relay.
#[derive(Debug, Parser)]
#[command(name = "relay-load", about)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Which relay to load.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// `inproc`: a relay in this process; `spawn`: a `chat-relay` child process (its RSS is
    /// then the relay's alone); `external`: a relay already listening at `--addr`.
    #[arg(long, value_enum, default_value_t = RelayMode::Inproc, global = true)]
    pub(crate) relay: RelayMode,
    /// Storage of an in-process or spawned relay: sled in a temporary directory (durable:
    /// every `SendAck` follows an fsync) or memory.
    #[arg(long, value_enum, default_value_t = StorageMode::Sled, global = true)]
    pub(crate) storage: StorageMode,
    /// Address of an external relay (`--relay external`); it must run with limits raised
    /// as LOAD.md shows.
    #[arg(long, global = true)]
    pub(crate) addr: Option<SocketAddr>,
    /// Process id of an external relay on this machine, so `idle` can read its RSS.
    #[arg(long, global = true)]
    pub(crate) relay_pid: Option<u32>,
    /// The `chat-relay` binary for `--relay spawn` (default: next to this one).
    #[arg(long, global = true)]
    pub(crate) relay_bin: Option<PathBuf>,
    /// Spread client sockets over this many loopback source addresses (127.0.0.1, .2, ...).
    #[arg(long, default_value_t = 4, global = true)]
    pub(crate) source_ips: u8,
    /// Keep the relay's default per-device rate limits (100 frames/s, 200 envelopes/s) instead
    /// of raising them; every run stays under them with enough devices.
    #[arg(long, global = true)]
    pub(crate) device_limits: bool,
    /// Worker threads of the load tool's runtime (the in-process relay shares them).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RelayMode {
    Inproc,
    Spawn,
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StorageMode {
    Sled,
    Memory,
}

/// Which system a routing scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Against {
    /// The relay only.
    Relay,
    /// nats-server with JetStream only (needs `--features jetstream`).
    Jetstream,
    /// Both, one after the other, and the ratio.
    Both,
}

/// Shared settings of the routing scenarios.
#[derive(Debug, Clone, Args)]
pub(crate) struct RouteArgs {
    /// Connected devices.
    #[arg(long, default_value_t = 1000)]
    pub(crate) devices: usize,
    /// Payload bytes per envelope (at least 16: a timestamp and a sender index).
    #[arg(long, default_value_t = 256)]
    pub(crate) payload: usize,
    /// Envelopes per `Send` frame (JetStream: always one message per publish).
    #[arg(long, default_value_t = 1)]
    pub(crate) per_send: usize,
    /// Run against the relay, JetStream or both.
    #[arg(long, value_enum, default_value_t = Against::Relay)]
    pub(crate) against: Against,
    /// The `nats-server` binary.
    #[arg(long, default_value = "nats-server")]
    pub(crate) nats_server: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N devices route M envelopes between random pairs as fast as a window of unanswered
    /// sends per device allows (closed loop), or at `--rate` (open loop).
    Throughput {
        #[command(flatten)]
        route: RouteArgs,
        /// Envelopes in all.
        #[arg(long, default_value_t = 300_000)]
        envelopes: u64,
        /// Unanswered `Send` frames (publishes) per device.
        #[arg(long, default_value_t = 8)]
        window: usize,
    },
    /// A fixed offered rate (open loop), send-to-delivery percentiles.
    Latency {
        #[command(flatten)]
        route: RouteArgs,
        /// Envelopes per second, all devices together.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Measured seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds sent before measuring (not recorded).
        #[arg(long, default_value_t = 2)]
        warmup: u64,
    },
    /// N idle authenticated connections; the relay's RSS growth per connection. Use
    /// `--relay spawn` so the RSS is the relay's alone.
    Idle {
        /// Connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Connects in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Authenticated connects per second (TCP, WebSocket upgrade, challenge, signature).
    Connect {
        /// Connections opened (and kept open until the end).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Connects in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Queue envelopes for an offline device, then time its reconnect until every envelope is
    /// delivered and acknowledged.
    Drain {
        /// Envelopes queued.
        #[arg(long, default_value_t = 10_000)]
        envelopes: usize,
        /// Payload bytes per envelope.
        #[arg(long, default_value_t = 256)]
        payload: usize,
        /// Repetitions (a fresh pair of devices each time).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.target.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async {
        println!("{}", report::machine_line());
        match cli.scenario {
            Scenario::Throughput {
                route,
                envelopes,
                window,
            } => {
                let plan = route::Plan::closed(&route, envelopes, window);
                scenarios::route(&cli.target, &route, plan).await
            }
            Scenario::Latency {
                route,
                rate,
                seconds,
                warmup,
            } => {
                let plan = route::Plan::open(&route, rate, seconds, warmup);
                scenarios::route(&cli.target, &route, plan).await
            }
            Scenario::Idle {
                connections,
                concurrency,
            } => scenarios::idle(&cli.target, connections, concurrency).await,
            Scenario::Connect {
                connections,
                concurrency,
            } => scenarios::connect(&cli.target, connections, concurrency).await,
            Scenario::Drain {
                envelopes,
                payload,
                repeat,
            } => scenarios::drain(&cli.target, envelopes, payload, repeat).await,
        }
    })
}
