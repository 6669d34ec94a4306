//! The daemon's settings: command-line flags, environment variables and the TOML config file,
//! merged with flags winning over the environment, the environment over the file, and the file
//! over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::store::KdfParams;

/// Where the embedded relay listens when no relay is configured.
pub const EMBEDDED_RELAY_ADDR: &str = "127.0.0.1:7420";

/// `chatd`: the end-to-end encrypted messenger daemon.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "chatd", version, about, long_about = None)]
pub struct Args {
    /// Configuration file (TOML). Default: $XDG_CONFIG_HOME/chatd/config.toml if it exists.
    #[arg(long, value_name = "FILE", env = "CHATD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the encrypted store lives. Default: $XDG_DATA_HOME/chatd.
    #[arg(long, value_name = "DIR", env = "CHATD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The local RPC socket. Default: $XDG_RUNTIME_DIR/chatd/chatd.sock (on Windows the named
    /// pipe \\.\pipe\chatd-%USERNAME%).
    #[arg(long, value_name = "PATH", env = "CHATD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// The relay for new accounts (ws:// or wss://). Default: the embedded relay.
    #[arg(long, value_name = "URL", env = "CHATD_RELAY")]
    pub relay: Option<String>,
    /// An extra trusted CA certificate (PEM) for a wss:// relay.
    #[arg(long, value_name = "FILE")]
    pub relay_ca: Option<PathBuf>,
    /// Unlock at start with the passphrase in this file (first line). Works with systemd
    /// credentials.
    #[arg(long, value_name = "FILE", env = "CHATD_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Keep everything in memory: nothing is written to disk, and everything is gone when
    /// the daemon exits.
    #[arg(long)]
    pub ephemeral: bool,
    /// Also serve a relay on ADDR for peers to connect to directly. Without --relay, new
    /// accounts live on it (it is their home relay).
    #[arg(long, value_name = "ADDR", env = "CHATD_HOST_RELAY")]
    pub host_relay: Option<SocketAddr>,
    /// The URL peers dial for the relay of --host-relay (ws:// or wss://, e.g.
    /// wss://203.0.113.5:7420): it is the relay's id and the account's home relay. With wss://,
    /// chatd serves TLS with a self-signed certificate it makes and keeps in the data
    /// directory, pinned in the account's signed record. Default: ws://ADDR/v1.
    #[arg(long, value_name = "URL", env = "CHATD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where the local relay listens when no relay is configured (it overrides the address
    /// recorded in the local relay's directory, and is recorded there when none is).
    #[arg(long, value_name = "ADDR")]
    pub embedded_relay_addr: Option<SocketAddr>,
    /// Before sending to a contact found by handle, re-check the handle's key on the relay if
    /// the last check is older than this many seconds (default 30; 0 checks every time).
    #[arg(long, value_name = "SECS")]
    pub handle_recheck_secs: Option<u64>,
    /// Argon2id memory for a new account, KiB (default 65536). Lower only for tests.
    #[arg(long, value_name = "KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes for a new account (default 3).
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes for a new account (default 4).
    #[arg(long, value_name = "N")]
    pub kdf_parallelism: Option<u32>,
    /// Start on a store that lost commits it had acknowledged (chatd refuses it otherwise,
    /// with exit status 65): what the store still holds is kept and the commit record is
    /// sealed again at it. Use it once, after restoring a backup has been ruled out.
    #[arg(long)]
    pub accept_store_loss: bool,
    /// Write the log to this file instead of stderr: 0600, no colours, rotated at 1 MiB with
    /// 4 older files kept (FILE.1 to FILE.4). chatctl gives an autostarted chatd
    /// $XDG_STATE_HOME/chatd/chatd.log (~/.local/state/chatd/chatd.log).
    #[arg(long, value_name = "FILE", env = "CHATD_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// The local relay's directory (its store, address and host's pid), shared by all of the
    /// user's daemons that have no relay configured: whichever of them runs hosts the relay.
    /// Default: $XDG_DATA_HOME/chatd/local-relay.
    #[arg(long, value_name = "DIR", env = "CHATD_LOCAL_RELAY_DIR")]
    pub local_relay_dir: Option<PathBuf>,
}

/// The config file's contents (every key optional; unknown keys are errors).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--relay`.
    pub relay: Option<String>,
    /// `--relay-ca`.
    pub relay_ca: Option<PathBuf>,
    /// `--passphrase-file`.
    pub passphrase_file: Option<PathBuf>,
    /// `--ephemeral`.
    #[serde(default)]
    pub ephemeral: bool,
    /// `--host-relay`.
    pub host_relay: Option<SocketAddr>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--embedded-relay-addr`.
    pub embedded_relay_addr: Option<SocketAddr>,
    /// `--handle-recheck-secs`.
    pub handle_recheck_secs: Option<u64>,
    /// Argon2id parameters for new accounts.
    #[serde(default)]
    pub kdf: KdfFile,
    /// `--log-file`.
    pub log_file: Option<PathBuf>,
    /// `--local-relay-dir`.
    pub local_relay_dir: Option<PathBuf>,
}

/// The `[kdf]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfFile {
    /// KiB of memory.
    pub memory_kib: Option<u32>,
    /// Passes.
    pub iterations: Option<u32>,
    /// Lanes.
    pub parallelism: Option<u32>,
}

/// The merged settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store's directory (`None` when ephemeral).
    pub data_dir: Option<PathBuf>,
    /// The RPC socket.
    pub socket: PathBuf,
    /// The configured relay, if any.
    pub relay: Option<String>,
    /// Extra CA for wss://.
    pub relay_ca: Option<PathBuf>,
    /// Passphrase file for unlocking at start.
    pub passphrase_file: Option<PathBuf>,
    /// Memory only.
    pub ephemeral: bool,
    /// Host a relay here.
    pub host_relay: Option<SocketAddr>,
    /// The hosted relay's public URL, as its canonical relay binding (`--public-url`).
    pub public_url: Option<String>,
    /// The local relay's address, when given (`--embedded-relay-addr`); else the one
    /// recorded in its directory, else [`EMBEDDED_RELAY_ADDR`] the first time.
    pub embedded_relay_addr: Option<SocketAddr>,
    /// How old a handle check may be before a send re-checks it, in seconds.
    pub handle_recheck_secs: u64,
    /// Argon2id parameters for new accounts.
    pub kdf: KdfParams,
    /// Open a store that lost commits instead of refusing it (`--accept-store-loss`).
    pub accept_store_loss: bool,
    /// The log file (`--log-file`), if the log goes to one instead of stderr.
    pub log_file: Option<PathBuf>,
    /// The local relay's directory.
    pub local_relay_dir: PathBuf,
}

impl Config {
    /// The first address of the local relay, when neither a flag nor its directory names one.
    pub fn default_local_relay_addr() -> SocketAddr {
        EMBEDDED_RELAY_ADDR
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7420)))
    }
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "chatd")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".chatd"))
}

/// `$XDG_DATA_HOME/chatd/local-relay` (the local application data directory elsewhere).
fn default_local_relay_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "chatd")
        .map(|d| d.data_local_dir().join("local-relay"))
        .unwrap_or_else(|| PathBuf::from(".chatd-local-relay"))
}

fn default_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chatd").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Merges flags (already merged with the environment by clap) with the file.
    pub fn load(args: Args) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let file_path = args
            .config
            .clone()
            .or_else(|| default_config_file().filter(|p| p.exists()));
        let file = match &file_path {
            Some(path) => read_file(path).with_context(|| format!("reading {}", path.display()))?,
            None => FileConfig::default(),
        };
        Self::merge(args, file).checked()
    }

    /// Checks what the merge cannot: `--public-url` comes with `--host-relay` and is a relay
    /// URL, which is kept as its canonical relay binding (SPEC.md 10.3).
    pub fn checked(mut self) -> anyhow::Result<Self> {
        if let Some(url) = &self.public_url {
            if self.host_relay.is_none() {
                anyhow::bail!("--public-url names the relay of --host-relay: give both");
            }
            let binding = protocol::reachability::relay_binding(url.trim())
                .map_err(|e| anyhow::anyhow!("--public-url {:?}: {e}", url.trim()))?;
            self.public_url = Some(binding);
        }
        Ok(self)
    }

    /// Merges flags over a file's settings.
    pub fn merge(args: Args, file: FileConfig) -> Self {
        let ephemeral = args.ephemeral || file.ephemeral;
        let defaults = KdfParams::DEFAULT;
        Self {
            accept_store_loss: args.accept_store_loss,
            log_file: args.log_file.or(file.log_file),
            data_dir: if ephemeral {
                None
            } else {
                Some(
                    args.data_dir
                        .or(file.data_dir)
                        .unwrap_or_else(default_data_dir),
                )
            },
            socket: args
                .socket
                .or(file.socket)
                .unwrap_or_else(api::paths::default_socket),
            relay: args.relay.or(file.relay),
            relay_ca: args.relay_ca.or(file.relay_ca),
            passphrase_file: args.passphrase_file.or(file.passphrase_file),
            ephemeral,
            host_relay: args.host_relay.or(file.host_relay),
            public_url: args.public_url.or(file.public_url),
            embedded_relay_addr: args.embedded_relay_addr.or(file.embedded_relay_addr),
            local_relay_dir: args
                .local_relay_dir
                .or(file.local_relay_dir)
                .unwrap_or_else(default_local_relay_dir),
            handle_recheck_secs: args
                .handle_recheck_secs
                .or(file.handle_recheck_secs)
                .unwrap_or(30),
            kdf: KdfParams {
                memory_kib: args
                    .kdf_memory_kib
                    .or(file.kdf.memory_kib)
                    .unwrap_or(defaults.memory_kib),
                iterations: args
                    .kdf_iterations
                    .or(file.kdf.iterations)
                    .unwrap_or(defaults.iterations),
                parallelism: args
                    .kdf_parallelism
                    .or(file.kdf.parallelism)
                    .unwrap_or(defaults.parallelism),
            },
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)?;
    Ok(toml::from_str(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_unknown_keys_are_refused() {
        let file: FileConfig = toml::from_str(
            "relay = \"ws://file:1/v1\"\ndata_dir = \"/file\"\n[kdf]\nmemory_kib = 1024\n",
        )
        .unwrap_or_default();
        let args = Args {
            relay: Some("ws://flag:2/v1".into()),
            ..Args::default()
        };
        let config = Config::merge(args, file);
        assert_eq!(config.relay.as_deref(), Some("ws://flag:2/v1"));
        assert_eq!(config.data_dir, Some(PathBuf::from("/file")));
        assert_eq!(config.kdf.memory_kib, 1024);
        assert_eq!(config.kdf.iterations, KdfParams::DEFAULT.iterations);
        assert!(toml::from_str::<FileConfig>("relays = 1\n").is_err());
        let ephemeral = Config::merge(
            Args {
                ephemeral: true,
                ..Args::default()
            },
            FileConfig::default(),
        );
        assert_eq!(ephemeral.data_dir, None);
    }

    #[test]
    fn a_public_url_needs_a_hosted_relay_and_is_kept_canonical() {
        let file: FileConfig = toml::from_str(
            "host_relay = \"[::]:7420\"\npublic_url = \"WSS://[FD00:0::1]:7420/\"\n",
        )
        .unwrap_or_default();
        let config = Config::merge(Args::default(), file).checked();
        assert_eq!(
            config.ok().and_then(|c| c.public_url).as_deref(),
            Some("wss://[fd00::1]:7420/v1")
        );
        let alone = Args {
            public_url: Some("wss://example.org".into()),
            ..Args::default()
        };
        let refused = Config::merge(alone, FileConfig::default()).checked();
        assert!(refused.is_err_and(|e| e.to_string().contains("--host-relay")));
        let bad = Args {
            host_relay: Some(SocketAddr::from(([127, 0, 0, 1], 7420))),
            public_url: Some("https://example.org".into()),
            ..Args::default()
        };
        assert!(Config::merge(bad, FileConfig::default()).checked().is_err());
    }
}
