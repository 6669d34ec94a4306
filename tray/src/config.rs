//! chat-tray's settings: command-line flags (clap, with environment variables), the TOML config
//! file (unknown keys refused) and the defaults, merged as chatd merges its own: flag >
//! environment > file > default.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use serde::Deserialize;

/// How many characters of a message the preview shows by default.
pub const DEFAULT_PREVIEW_CHARS: usize = 100;

/// The previews' bounds: long enough to be useful, short enough for any notification server.
pub const PREVIEW_CHARS_RANGE: std::ops::RangeInclusive<usize> = 10..=1000;

/// The terminal command of the menu's "Open chatctl" by default: Debian's alternative for the
/// user's terminal, showing the conversations and then leaving a shell where `chatctl` talks to
/// the same daemon (`CHATD_SOCKET` is set for it).
pub const DEFAULT_TERMINAL: &[&str] = &[
    "x-terminal-emulator",
    "-e",
    "sh",
    "-c",
    "chatctl conversations; exec \"${SHELL:-/bin/sh}\"",
];

/// `chat-tray`: desktop notifications and a tray icon for chatd.
///
/// A client of chatd's local API: it never sees a key. It shows a notification per
/// conversation for incoming messages (or a content-free one with --privacy) and a warning when
/// a contact's key changes, and resumes where it stopped after a restart of either side.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "chat-tray", version, about, long_about)]
pub struct Args {
    /// Configuration file (TOML). Default: $XDG_CONFIG_HOME/chatd/tray.toml if it exists.
    #[arg(long, value_name = "FILE", env = "CHAT_TRAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// chatd's RPC socket. Default: $XDG_RUNTIME_DIR/chatd/chatd.sock.
    #[arg(long, value_name = "PATH", env = "CHATD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Where the cursor of the last event handled is kept. Default:
    /// $XDG_STATE_HOME/chatd/tray-state.toml.
    #[arg(long, value_name = "FILE", env = "CHAT_TRAY_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Content-free notifications: "New message", without sender or text.
    #[arg(long)]
    pub privacy: bool,
    /// How many characters of a message the preview shows (10 to 1000, default 100).
    #[arg(long, value_name = "N")]
    pub preview_chars: Option<usize>,
    /// The command the tray menu runs to open a terminal with chatctl, split at whitespace
    /// (the config file takes a list). Default: x-terminal-emulator running a shell, else the
    /// first common terminal emulator on PATH (xdg-terminal-exec, gnome-terminal, konsole,
    /// xfce4-terminal, foot, kitty, alacritty, wezterm, xterm).
    #[arg(long, value_name = "COMMAND")]
    pub terminal: Option<String>,
    /// Do not show a tray icon (only notifications).
    #[arg(long)]
    pub no_tray_icon: bool,
}

/// The config file's contents (every key optional; unknown keys are errors).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--state-file`.
    pub state_file: Option<PathBuf>,
    /// `--privacy`.
    #[serde(default)]
    pub privacy: bool,
    /// `--preview-chars`.
    pub preview_chars: Option<usize>,
    /// `--terminal`, as a program and its arguments.
    pub terminal: Option<Vec<String>>,
    /// The opposite of `--no-tray-icon` (default true).
    pub tray_icon: Option<bool>,
}

/// The merged settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// chatd's socket.
    pub socket: PathBuf,
    /// The state file (the resume cursor).
    pub state_file: PathBuf,
    /// Content-free notifications.
    pub privacy: bool,
    /// Preview length in characters.
    pub preview_chars: usize,
    /// The terminal command: program and arguments, never empty.
    pub terminal: Vec<String>,
    /// Whether to show a tray icon (where built with the `tray-icon` feature).
    pub tray_icon: bool,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "chatd")
}

/// The default config file: `$XDG_CONFIG_HOME/chatd/tray.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("tray.toml"))
}

/// The default state file: `$XDG_STATE_HOME/chatd/tray-state.toml` (the local data directory
/// where the platform has no state directory).
pub fn default_state_file() -> PathBuf {
    project_dirs()
        .map(|d| {
            d.state_dir()
                .unwrap_or_else(|| d.data_local_dir())
                .join("tray-state.toml")
        })
        .unwrap_or_else(|| PathBuf::from(".chat-tray-state.toml"))
}

impl Config {
    /// Reads the config file (the one named, else the default one if it exists) and merges the
    /// flags over it.
    pub fn load(args: Args) -> anyhow::Result<Self> {
        let file_path = args
            .config
            .clone()
            .or_else(|| default_config_file().filter(|p| p.exists()));
        let file = match &file_path {
            Some(path) => read_file(path).with_context(|| format!("reading {}", path.display()))?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// Merges flags over a file's settings and checks the result.
    pub fn merge(args: Args, file: FileConfig) -> anyhow::Result<Self> {
        let preview_chars = args
            .preview_chars
            .or(file.preview_chars)
            .unwrap_or(DEFAULT_PREVIEW_CHARS);
        anyhow::ensure!(
            PREVIEW_CHARS_RANGE.contains(&preview_chars),
            "preview_chars must be between {} and {}, not {preview_chars}",
            PREVIEW_CHARS_RANGE.start(),
            PREVIEW_CHARS_RANGE.end()
        );
        let terminal = match args.terminal {
            Some(line) => line.split_whitespace().map(str::to_owned).collect(),
            None => file
                .terminal
                .unwrap_or_else(|| DEFAULT_TERMINAL.iter().map(|s| (*s).to_owned()).collect()),
        };
        anyhow::ensure!(
            terminal.first().is_some_and(|program| !program.is_empty()),
            "the terminal command is empty"
        );
        Ok(Self {
            socket: args
                .socket
                .or(file.socket)
                .unwrap_or_else(api::paths::default_socket),
            state_file: args
                .state_file
                .or(file.state_file)
                .unwrap_or_else(default_state_file),
            privacy: args.privacy || file.privacy,
            preview_chars,
            terminal,
            tray_icon: !args.no_tray_icon && file.tray_icon.unwrap_or(true),
        })
    }
}

/// Parses a config file.
pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)?;
    parse_file(&text)
}

/// Parses a config file's text.
pub fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("chat-tray").chain(list.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = parse_file(
            "socket = \"/file.sock\"\nprivacy = true\npreview_chars = 40\n\
             terminal = [\"foot\", \"chatctl\", \"watch\"]\ntray_icon = false\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let config = Config::merge(
            args(&["--socket", "/flag.sock", "--state-file", "/s.toml"]),
            file.clone(),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.socket, PathBuf::from("/flag.sock"));
        assert_eq!(config.state_file, PathBuf::from("/s.toml"));
        assert!(config.privacy);
        assert_eq!(config.preview_chars, 40);
        assert_eq!(config.terminal, ["foot", "chatctl", "watch"]);
        assert!(!config.tray_icon);

        let config = Config::merge(args(&["--terminal", "kitty  chatctl watch"]), file)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.socket, PathBuf::from("/file.sock"));
        assert_eq!(config.terminal, ["kitty", "chatctl", "watch"]);

        let config = Config::merge(args(&["--state-file", "/s"]), FileConfig::default())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!config.privacy);
        assert!(config.tray_icon);
        assert_eq!(config.preview_chars, DEFAULT_PREVIEW_CHARS);
        assert_eq!(config.terminal[0], DEFAULT_TERMINAL[0]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = parse_file("privacy = true\nprivcy = true\n").err();
        assert!(
            err.is_some_and(|e| format!("{e:#}").contains("privcy")),
            "a misspelt key must be named in the error"
        );
        assert!(parse_file("preview_chars = \"many\"").is_err());
        assert!(Config::merge(args(&["--preview-chars", "3"]), FileConfig::default()).is_err());
        assert!(Config::merge(args(&["--terminal", "  "]), FileConfig::default()).is_err());
    }

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }
}
