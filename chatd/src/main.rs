//! Entry point of `chatd`: sets the process umask to 0o077, parses flags, sets up logging (to
//! stderr, or to the rotated `--log-file` without colours), and runs the daemon until SIGINT or SIGTERM (on Windows: until Ctrl-C; compiled, not
//! run there).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any thread starts or any file is made: whatever chatd creates (the store's files,
    // a hosted relay's, logs a library may write) is the user's alone, 0700 or 0600, whatever
    // umask chatd was started with (ARCHITECTURE.md, "Threat model").
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    chatd::memory::limit_arenas();
    let args = chatd::config::Args::parse();
    let config = match chatd::config::Config::load(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let filter = || {
        let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // These libraries' debug and trace output carries what the log must never hold:
        // jsonrpsee's the requests and answers (passphrases, message texts), tungstenite's the
        // frames (delivery tokens), sled's and rustls' their buffers. They stay at info,
        // whatever RUST_LOG asks.
        for quiet in QUIET_TARGETS {
            if let Ok(directive) = format!("{quiet}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
        filter
    };
    match &config.log_file {
        Some(path) => match chatd::logfile::RotatingFile::open(path) {
            Ok(file) => tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_env_filter(filter())
                .init(),
            Err(e) => {
                eprintln!("chatd: cannot open the log file {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter())
            .init(),
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A daemon that logs to a file has no terminal: its reason to stop goes there too.
            tracing::error!(error = %format!("{e:#}"), "chatd cannot run");
            eprintln!("chatd: {e:#}");
            exit_code(&e)
        }
    }
}

/// Log targets held at `info` (see `main`).
const QUIET_TARGETS: &[&str] = &[
    "jsonrpsee",
    "jsonrpsee_core",
    "jsonrpsee_types",
    "jsonrpsee-core",
    "jsonrpsee-server",
    "tungstenite",
    "tokio_tungstenite",
    "rustls",
    "sled",
];

/// Exit status when the store lost commits it had acknowledged (`EX_DATAERR`), so that a
/// service manager and scripts can tell it from other failures (README, "Recovering a
/// damaged store").
const EXIT_STORE_LOST_COMMITS: u8 = 65;

fn exit_code(error: &anyhow::Error) -> ExitCode {
    let lost = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<chatd::store::StoreError>(),
            Some(chatd::store::StoreError::LostCommits { .. })
        )
    });
    if lost {
        ExitCode::from(EXIT_STORE_LOST_COMMITS)
    } else {
        ExitCode::FAILURE
    }
}

fn run(config: chatd::config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(chatd::daemon::run(config, shutdown_signal()))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
