//! The `chat-relay` binary: flags (`chat_relay::cli`) and an optional TOML file into a
//! [`chat_relay::Config`], logs to stderr, serve until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chat_relay::cli::Args;
use chat_relay::{Config, Storage, TlsConfig};
use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        chat_relay::run(listener, config, shutdown_signal()).await
    })
}

fn config(args: &Args) -> anyhow::Result<Config> {
    // The flags' storage first: the default directory is looked up only when nothing else
    // says where to store, so `--ephemeral` and `--data-dir` work without HOME (a service
    // account, `env -i`, Windows).
    let flag_storage = if args.ephemeral {
        Some(Storage::Memory)
    } else {
        args.data_dir.clone().map(Storage::Disk)
    };
    let mut config = match (&args.config, &flag_storage) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        (None, Some(storage)) => Config::new(storage.clone()),
        (None, None) => Config::new(default_storage()?),
    };
    if let Some(storage) = flag_storage {
        config.storage = storage;
    }
    if let Some(relay_id) = &args.relay_id {
        config.relay_id = Some(relay_id.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let limits = &mut config.limits;
    if let Some(n) = args.max_connections {
        limits.max_connections = n;
    }
    if let Some(n) = args.max_connections_per_ip {
        limits.max_connections_per_ip = n;
    }
    if let Some(n) = args.mailbox_quota {
        limits.mailbox_quota = n;
    }
    if let Some(days) = args.ttl_days {
        limits.envelope_ttl_secs = days.saturating_mul(24 * 3600);
    }
    Ok(config)
}

/// The default data directory: `$XDG_DATA_HOME/chat-relay` (or `~/.local/share/chat-relay`),
/// and on Windows, where neither is usually set, `%LOCALAPPDATA%\chat-relay` first.
fn default_storage() -> anyhow::Result<Storage> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let windows_base = if cfg!(windows) {
        set("LOCALAPPDATA")
    } else {
        None
    };
    let base = windows_base
        .map(PathBuf::from)
        .or_else(|| set("XDG_DATA_HOME").map(PathBuf::from))
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .context(
            "no XDG_DATA_HOME or HOME to find the default data directory in: \
             pass --data-dir DIR or --ephemeral",
        )?;
    Ok(Storage::Disk(base.join("chat-relay")))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
