//! `chat-tray`: desktop notifications and a tray icon for chatd, as a pure client of its local
//! JSON-RPC API (it links no key material and no store; `tests/it/tidy.rs` checks that).
//!
//! How it fits together: [`app`] runs one loop over a closed set of [`Input`]s (events from
//! chatd via [`daemon`], menu choices from [`icon`]); it feeds the events of each burst to
//! [`inbox`], which decides what to show, and [`desktop`] shows it through notify-rust.
//! [`state`] keeps the cursor of the last event handled, so a restart resumes exactly there.
//! [`config`] merges flags, environment and the TOML file.

pub mod app;
pub mod backoff;
pub mod config;
pub mod daemon;
pub mod desktop;
pub mod icon;
pub mod inbox;
pub mod names;
pub mod pixmap;
pub mod signals;
pub mod state;
pub mod terminal;
pub mod text;

pub use config::{Args, Config};

/// Everything the main loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// From the chatd session with this number.
    Daemon(u64, daemon::Delivery),
    /// A menu choice.
    Menu(MenuAction),
    /// A signal asking chat-tray to stop (SIGTERM, SIGINT, SIGHUP), by name.
    Stop(&'static str),
}

/// What the tray menu can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// Open a terminal with chatctl.
    OpenTerminal,
    /// Mark every conversation read.
    MarkAllRead,
    /// Lock the account.
    Lock,
    /// Quit chat-tray.
    Quit,
}

/// The command-line interface, for man pages and completions (`clap_mangen`,
/// `clap_complete`).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `info`). zbus is held at
/// `debug` whatever `RUST_LOG` says: at `trace` it writes raw D-Bus bytes, and the bytes of a
/// Notify call are a message's text.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = match "zbus=debug".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

/// Loads the configuration and runs until the menu's Quit (or a fatal error: an unreadable
/// config or state file).
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    app::run(config)
}
