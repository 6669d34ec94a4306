//! Wiring: opens the store, hosts a relay if asked (or, when no relay is configured, runs the
//! user's local relay: hosts it or stands by to take it over), starts the core, unlocks from a
//! passphrase file, and serves the RPC socket until shutdown. [`run`] is what `main` calls and what tests call in-process.
//!
//! Under a service manager (contrib/systemd, docs/SERVICES.md) it also serves the socket the
//! manager passed instead of binding one (socket activation), and tells the manager when it is
//! ready (`READY=1`, once the socket is served) and when it stops (`STOPPING=1`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chat_relay::{Relay, Storage};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::core::{self, CoreConfig, HostedRelay, LocalRelayLink};
use crate::events::EventBus;
use crate::hosted_tls::RelayCertificate;
use crate::local_relay::{LocalRelay, LocalRelayDir};
use crate::methods::{self, Context};
use crate::rpc::{self, Notifier, RpcListener, ServerLimits};
use crate::store::{Kv, LossPolicy, Vault};

/// Page cache of the sled store: small, because the daemon's memory matters more than
/// re-reading pages the OS caches anyway (and sled's own accounting of it falls short of what
/// it allocates). 2 MiB took the daemon from 50 to 42 MiB with 100,000 messages; the latest
/// history page and the write path stay in it.
const STORE_CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// The hosted relay's state directory inside the data directory (its store, and its
/// certificate in `tls/`).
const HOSTED_RELAY_DIR: &str = "relay";

/// Creates the data directory `dir` (and missing parents) with mode 0700, or checks an
/// existing one: on Unix it must be ours and closed to group and others, else chatd refuses to
/// start with a message that says how to fix it. It is never `chmod`ed here: it holds the
/// account's keys (unprotected ones, for an account without a passphrase), so a directory that
/// others could read has to be looked at by its owner, who may also have to consider them
/// copied; and the directory may be one the user chose for other things too.
pub fn open_data_dir(dir: &Path) -> anyhow::Result<()> {
    open_private_dir(
        dir,
        "the data directory",
        "the account's keys",
        "--data-dir",
    )
}

/// Creates `dir` 0700 or checks that it is ours and closed to others, as [`open_data_dir`]
/// does: `what` names the directory in messages, `holds` says what it keeps, `flag` is the
/// option that picks another one.
pub fn open_private_dir(dir: &Path, what: &str, holds: &str, flag: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(dir)
                    .with_context(|| format!("creating {what} {}", dir.display()))?;
                // The umask may have taken bits away, never added any: exactly 0700.
                std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                    .with_context(|| format!("setting the mode of {}", dir.display()))?;
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("inspecting {what} {}", dir.display()))
                );
            }
        }
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("inspecting {what} {}", dir.display()))?;
        if !meta.is_dir() {
            anyhow::bail!("{what} {} is not a directory", dir.display());
        }
        let ours = rustix::process::geteuid().as_raw();
        if meta.uid() != ours {
            anyhow::bail!(
                "{what} {} belongs to uid {}, not to us (uid {ours}): refusing to keep {holds} \
                 there; choose another {flag}",
                dir.display(),
                meta.uid()
            );
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{what} {} is open to other users (mode {mode:04o}), and it holds {holds}: \
                 refusing to start. Close it with `chmod -R go-rwx {}` and start chatd again \
                 (if others could read it, consider what it held copied: an account without a \
                 passphrase is readable from it alone)",
                dir.display(),
                dir.display()
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (holds, flag);
        create_private_dir(dir).with_context(|| format!("creating {what} {}", dir.display()))
    }
}

/// Creates `dir` (and parents) with mode 0700 on Unix.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Serves a relay on `addr`: its relay id is `relay_id` (default `ws://ADDR/v1`), and with
/// `tls` it serves `wss://` with that certificate.
async fn host_relay(
    addr: SocketAddr,
    storage: Storage,
    relay_id: Option<String>,
    tls: Option<chat_relay::TlsIdentity>,
) -> anyhow::Result<Relay> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the relay on {addr}"))?;
    let mut relay_config = chat_relay::Config::new(storage);
    let tls_on = tls.is_some();
    relay_config.relay_id = relay_id;
    relay_config.tls_identity = tls;
    let relay = Relay::start(listener, relay_config).await?;
    tracing::info!(%addr, relay_id = ?relay.relay_id(), tls = tls_on, "hosting a relay");
    Ok(relay)
}

/// The self-signed certificate of the hosted relay when its public URL is `wss://`: kept in
/// `<data dir>/relay/tls`, or made anew in memory when the daemon is ephemeral.
fn hosted_certificate(config: &Config) -> anyhow::Result<Option<RelayCertificate>> {
    let Some(url) = config
        .public_url
        .as_deref()
        .filter(|u| u.starts_with("wss://"))
    else {
        return Ok(None);
    };
    let host = crate::hosted_tls::binding_host(url)
        .with_context(|| format!("the host of --public-url {url}"))?;
    let certificate = match &config.data_dir {
        Some(dir) => RelayCertificate::load_or_generate(&dir.join(HOSTED_RELAY_DIR), host)?,
        None => RelayCertificate::generate(host)?,
    };
    Ok(Some(certificate))
}

fn relay_storage(config: &Config, name: &str) -> anyhow::Result<Storage> {
    Ok(match &config.data_dir {
        Some(dir) => {
            let path = dir.join(name);
            create_private_dir(&path)?;
            Storage::Disk(path)
        }
        None => Storage::Memory,
    })
}

/// Opens the local relay's directory (read only for an ephemeral daemon, which never hosts
/// it) and starts its supervisor.
fn start_local_relay(config: &Config) -> anyhow::Result<LocalRelay> {
    let default = Config::default_local_relay_addr();
    let dir = &config.local_relay_dir;
    let opened = if config.ephemeral {
        LocalRelayDir::read_only(dir, config.embedded_relay_addr, default)
    } else {
        LocalRelayDir::open(
            dir,
            config.data_dir.as_deref(),
            config.embedded_relay_addr,
            default,
        )
    };
    let opened =
        opened.with_context(|| format!("the local relay's directory {}", dir.display()))?;
    Ok(LocalRelay::start(opened, !config.ephemeral))
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // A socket passed by a service manager is taken over before anything else opens a file
    // or a socket (see `rpc::activation` for why that order matters).
    let inherited =
        RpcListener::inherited().context("taking over the socket the service manager passed")?;
    let notifier = Notifier::from_env();
    let kv = match &config.data_dir {
        Some(dir) => {
            open_data_dir(dir)?;
            let store = dir.join("store");
            create_private_dir(&store)
                .with_context(|| format!("creating the store directory {}", store.display()))?;
            let policy = if config.accept_store_loss {
                LossPolicy::Accept
            } else {
                LossPolicy::Refuse
            };
            match Kv::open_with(&store, STORE_CACHE_BYTES, policy) {
                Ok(kv) => kv,
                Err(crate::store::StoreError::InUse) => {
                    let holder = match crate::pidfile::read(dir) {
                        Some(pid) => format!("chatd pid {pid}"),
                        None => "another process (it wrote no pid file)".to_owned(),
                    };
                    anyhow::bail!(
                        "the store at {} is in use by {holder}: is another chatd running with \
                         this data directory? (`chatctl daemon stop --data-dir {}` stops it)",
                        store.display(),
                        dir.display()
                    );
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("opening the store in {}", dir.display())));
                }
            }
        }
        None => Kv::memory(),
    };
    // The store's lock makes this the only daemon of the directory: it says so in its pid file.
    let _pid_file = match &config.data_dir {
        Some(dir) => match crate::pidfile::PidFile::create(dir) {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot write the pid file");
                None
            }
        },
        None => None,
    };
    let mut relays = Vec::new();
    let mut hosted = None;
    let mut hosted_relay = None;
    let mut local_relay: Option<Arc<LocalRelay>> = None;
    if let Some(addr) = config.host_relay {
        let storage = relay_storage(&config, HOSTED_RELAY_DIR)?;
        let certificate = hosted_certificate(&config)?;
        let relay = host_relay(
            addr,
            storage,
            config.public_url.clone(),
            certificate.as_ref().map(RelayCertificate::identity),
        )
        .await?;
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("ws://{}/v1", relay.local_addr()));
        hosted_relay = Some(HostedRelay {
            url: url.clone(),
            tls_pin: certificate.as_ref().map(RelayCertificate::pin),
        });
        hosted = Some(url);
        relays.push(relay);
    }
    let default_relay = match (&config.relay, &hosted) {
        (Some(url), _) => crate::relay_link::normalize_url(url).map_err(anyhow::Error::msg)?,
        (None, Some(url)) => url.clone(),
        (None, None) => {
            // The user's local relay: hosted by whichever of their daemons can, taken over
            // by another when that one stops (`local_relay`).
            let relay = start_local_relay(&config)?;
            let url = relay.url();
            local_relay = Some(Arc::new(relay));
            url
        }
    };
    let relay_ca_pem = match &config.relay_ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let bus = Arc::new(EventBus::new());
    let (core, task) = core::start(
        kv.clone(),
        CoreConfig {
            relay_ca_pem,
            clock: crate::clock::system(),
            hosted_relay,
            local_relay: local_relay.as_ref().map(|relay| LocalRelayLink {
                url: relay.url(),
                wake: relay.wake(),
            }),
        },
        bus.clone(),
    )?;
    let (stop_core, core_stopped) = tokio::sync::oneshot::channel::<()>();
    let core_task = tokio::spawn(task.run(async {
        let _ = core_stopped.await;
    }));
    let kv_for_unlock = kv.clone();
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop_requested = stop.clone();
    let methods = methods::methods(Context {
        core,
        bus,
        kv,
        started,
        ephemeral: config.ephemeral,
        hosted_relay: hosted,
        local_relay: local_relay.clone(),
        default_relay,
        kdf: config.kdf,
        handle_recheck_ms: config.handle_recheck_secs.saturating_mul(1000),
        log_file: config.log_file.clone(),
        stop,
    });
    if let Some(path) = &config.passphrase_file {
        unlock_from_file(&methods, path).await;
    } else if Vault::exists(&kv_for_unlock)? && !Vault::is_protected(&kv_for_unlock)? {
        // The key of an account created without a passphrase is stored unprotected anyway:
        // unlocking at start changes nothing about its security and keeps messages flowing.
        unlock_request(&methods, "{}").await;
    }
    let listener = match inherited {
        Some(listener) => {
            if listener.path() != config.socket {
                tracing::warn!(
                    inherited = %listener.path().display(),
                    configured = %config.socket.display(),
                    "serving the socket the service manager passed, not the configured one"
                );
            }
            listener
        }
        None => RpcListener::bind(&config.socket)
            .with_context(|| format!("binding the socket {}", config.socket.display()))?,
    };
    let activated = listener.is_inherited();
    let notifier = &notifier;
    let ready = move |socket: &Path| {
        tracing::info!(socket = %socket.display(), activated, "chatd ready");
        notifier.ready(&format!("Serving {}", socket.display()));
    };
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = stop_requested.notified() => {
                // `daemon.stop` answered; its answer is on its way to the client. A moment
                // for the writer to send it before every connection is closed.
                tokio::time::sleep(STOP_GRACE).await;
            }
        }
        notifier.stopping();
    };
    rpc::serve(listener, methods, ServerLimits::default(), ready, shutdown).await;
    let _ = stop_core.send(());
    let _ = core_task.await;
    for relay in relays {
        if let Err(e) = relay.shutdown().await {
            tracing::warn!(error = %format!("{e:#}"), "relay shutdown");
        }
    }
    if let Some(relay) = local_relay {
        relay.shutdown().await;
    }
    tracing::info!("chatd stopped");
    Ok(())
}

/// How long `daemon.stop` leaves its answer to be written before the daemon closes every
/// connection and stops.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The longest passphrase file read (a passphrase is its first line).
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

async fn unlock_from_file(methods: &jsonrpsee::Methods, path: &Path) {
    use std::io::Read as _;
    use zeroize::Zeroizing;
    // Every copy of the passphrase lives in a zeroizing buffer sized up front.
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE_FILE as usize));
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PASSPHRASE_FILE).read_to_end(&mut text));
    if let Err(e) = read {
        tracing::error!(file = %path.display(), error = %e, "cannot read the passphrase file");
        return;
    }
    let Ok(text) = std::str::from_utf8(&text) else {
        tracing::error!(file = %path.display(), "the passphrase file is not UTF-8");
        return;
    };
    let passphrase = text.lines().next().unwrap_or_default();
    let mut params = Zeroizing::new(Vec::with_capacity(passphrase.len() * 6 + 32));
    params.extend_from_slice(b"{\"passphrase\":");
    // JSON-escaping writes into the pre-sized buffer: at most 6 bytes per input byte.
    if serde_json::to_writer(&mut *params, passphrase).is_err() {
        return;
    }
    params.push(b'}');
    match std::str::from_utf8(&params) {
        Ok(params) => unlock_request(methods, params).await,
        Err(_) => tracing::error!("could not build the unlock request"),
    }
}

/// Calls `account.unlock` with `params` (a JSON object) and logs the outcome.
async fn unlock_request(methods: &jsonrpsee::Methods, params: &str) {
    let mut request = zeroize::Zeroizing::new(String::with_capacity(params.len() + 80));
    request.push_str("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"");
    request.push_str(api::methods::ACCOUNT_UNLOCK);
    request.push_str("\",\"params\":");
    request.push_str(params);
    request.push('}');
    match methods.raw_json_request(&request, 1).await {
        Ok((response, _)) => {
            let response: serde_json::Value =
                serde_json::from_str(response.get()).unwrap_or_default();
            match response.get("error") {
                None => tracing::info!("unlocked at start"),
                Some(error) => tracing::warn!(
                    error = %error.get("message").and_then(|m| m.as_str()).unwrap_or("?"),
                    "could not unlock at start"
                ),
            }
        }
        Err(e) => tracing::error!(error = %e, "unlock request failed"),
    }
}
