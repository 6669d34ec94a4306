//! Support for `chatd-bench` (chatd/BENCHMARKS.md): relay and daemon processes started from an
//! explicit binary directory (release builds), a relay configuration with raised rate limits,
//! `/proc` readings (RSS, CPU time, load), a pipelined JSON-RPC connection and latency
//! histograms.
//!
//! Unlike the test harness next to it, everything here returns errors instead of panicking: it
//! serves a tool, which should say what failed and exit, not unwind.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api::client::Client;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// How long setup steps (a process listening, an account connecting) may take.
pub const SETUP_PATIENCE: Duration = Duration::from_secs(30);

/// The directory holding `chat-relay`, `chatd` and `chatctl`.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// `dir` if given, else `$CHATD_TEST_BIN_DIR`, else the directory of the running executable
    /// (`target/release` for `target/release/chatd-bench`).
    pub fn locate(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match dir.or_else(|| std::env::var_os("CHATD_TEST_BIN_DIR").map(PathBuf::from)) {
            Some(dir) => dir,
            None => std::env::current_exe()
                .context("finding the running executable")?
                .parent()
                .map(Path::to_path_buf)
                .context("the running executable has no directory")?,
        };
        let binaries = Self { dir };
        for name in ["chat-relay", "chatd", "chatctl"] {
            binaries.path(name)?;
        }
        Ok(binaries)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of binary `name`; an error with a hint if it is missing.
    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self
            .dir
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if !path.is_file() {
            bail!(
                "{} is missing: build it (`cargo build --release --bins -p chatd -p chatctl -p \
                 chat-relay`) or point --bin-dir / CHATD_TEST_BIN_DIR at its directory",
                path.display()
            );
        }
        Ok(path)
    }
}

/// A private temporary directory (mode 0700), removed on drop.
pub fn private_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temporary directory")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.path().display()))?;
    Ok(dir)
}

/// A free loopback port (bound and released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    listener.local_addr().context("reading the bound address")
}

/// Polls `f` every 10 ms until it returns `Some`, for at most `patience`.
pub fn wait_until<T>(
    what: &str,
    patience: Duration,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = f()? {
            return Ok(value);
        }
        if start.elapsed() > patience {
            bail!("timed out after {patience:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The relay's rate limits for a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayLimits {
    /// [`RAISED_LIMITS_TOML`]: per-device and per-IP frame and envelope rates and the mailbox
    /// quota out of the way, so the daemons are what is measured.
    Raised,
    /// The relay's defaults (100 frames/s and 200 envelopes/s per device, 500 frames/s per IP,
    /// 10,000 envelopes per mailbox).
    Default,
}

/// The relay configuration of [`RelayLimits::Raised`] (chatd/BENCHMARKS.md quotes it).
pub const RAISED_LIMITS_TOML: &str = "\
[limits]
mailbox_quota = 1000000
device_frames = { per_second = 1e9, burst = 1e9 }
device_envelopes = { per_second = 1e9, burst = 1e9 }
ip_frames = { per_second = 1e9, burst = 1e9 }
max_connections_per_ip = 100000
ip_connects = { per_second = 1e9, burst = 1e9 }
bundle_fetches = { per_second = 1e9, burst = 1e9 }
";

/// A `chat-relay` process on sled in a temporary directory, killed on drop.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Relay {
    /// Starts a relay on a free port and waits until it accepts connections.
    pub fn start(binaries: &Binaries, limits: RelayLimits) -> anyhow::Result<Self> {
        let dir = private_dir("chatd-bench-relay-")?;
        let addr = free_addr()?;
        let mut command = Command::new(binaries.path("chat-relay")?);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        if limits == RelayLimits::Raised {
            let config = dir.path().join("relay.toml");
            std::fs::write(&config, RAISED_LIMITS_TOML)
                .with_context(|| format!("writing {}", config.display()))?;
            command.arg("--config").arg(config);
        }
        let log = log_file(dir.path(), "relay.log")?;
        let child = command
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning chat-relay")?;
        let relay = Self { child, addr, dir };
        wait_until("the relay to listen", SETUP_PATIENCE, || {
            Ok(TcpStream::connect(addr).ok())
        })?;
        Ok(relay)
    }

    /// The relay's URL.
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// The address it listens on (`host:port`, as a relay-qualified handle or address names it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Warning and error lines the relay logged so far.
    pub fn warnings(&self) -> Vec<String> {
        warnings_in(&self.dir.path().join("relay.log"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `chatd` process with its own data directory and socket, weak Argon2id parameters (setup
/// speed only: unlocking is not measured), killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon using the relay at `relay_url` and waits until its socket answers.
    pub fn start(binaries: &Binaries, relay_url: &str) -> anyhow::Result<Self> {
        let dir = private_dir("chatd-bench-daemon-")?;
        let child = spawn_chatd(binaries, dir.path(), relay_url, FIRST_LOG)?;
        let daemon = Self { child, dir };
        daemon.wait_for_socket()?;
        Ok(daemon)
    }

    /// Kills the daemon (SIGKILL: nothing an orderly shutdown would do is leaned on) and
    /// starts it again on the same data directory and socket (its log in a second file);
    /// waits until the socket answers.
    pub fn restart(&mut self, binaries: &Binaries, relay_url: &str) -> anyhow::Result<()> {
        let _ = self.child.kill();
        self.child.wait().context("waiting for the killed chatd")?;
        self.child = spawn_chatd(binaries, self.dir.path(), relay_url, RESTARTED_LOG)?;
        self.wait_for_socket()
    }

    fn wait_for_socket(&self) -> anyhow::Result<()> {
        let socket = self.socket();
        wait_until("the daemon's socket", SETUP_PATIENCE, || {
            Ok(Client::connect(&socket).ok())
        })?;
        Ok(())
    }

    /// The RPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("chatd.sock")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new RPC connection.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.socket()).context("connecting to chatd")
    }

    /// Calls `method` on a new connection and returns its result.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client()?
            .call_value(method, params)
            .with_context(|| format!("{method} failed"))
    }

    /// Creates the account `name` (no passphrase), waits until it is connected to its relay and
    /// returns its address.
    pub fn create(&self, name: &str) -> anyhow::Result<String> {
        let info = self.call(
            api::methods::ACCOUNT_CREATE,
            json!({ "name": name, "no_passphrase": true }),
        )?;
        wait_until("the daemon to connect to its relay", SETUP_PATIENCE, || {
            let status = self.call(api::methods::DAEMON_STATUS, json!({}))?;
            Ok((status["connection"] == "connected").then_some(()))
        })?;
        info["address"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("account.create returned no address: {info}"))
    }

    /// Messages in the daemon's outbox (`daemon.status`).
    pub fn outbox(&self) -> anyhow::Result<u64> {
        let status = self.call(api::methods::DAEMON_STATUS, json!({}))?;
        status["outbox"]
            .as_u64()
            .with_context(|| format!("daemon.status has no outbox: {status}"))
    }

    /// Warning and error lines the daemon logged so far.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = warnings_in(&self.dir.path().join(FIRST_LOG));
        warnings.extend(warnings_in(&self.dir.path().join(RESTARTED_LOG)));
        warnings
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's log file, and its log after [`Daemon::restart`].
const FIRST_LOG: &str = "chatd.log";
const RESTARTED_LOG: &str = "chatd.restarted.log";

/// Starts `chatd` on the data directory and socket under `dir`, its log in `dir/log_name`.
fn spawn_chatd(
    binaries: &Binaries,
    dir: &Path,
    relay_url: &str,
    log_name: &str,
) -> anyhow::Result<Child> {
    let log = log_file(dir, log_name)?;
    Command::new(binaries.path("chatd")?)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--socket")
        .arg(dir.join("run").join("chatd.sock"))
        .arg("--relay")
        .arg(relay_url)
        .args(["--kdf-memory-kib", "64", "--kdf-iterations", "1"])
        .args(["--kdf-parallelism", "1"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("CHATD_SOCKET")
        .env_remove("CHATD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("spawning chatd")
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join(name);
    std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))
}

/// Warning and error lines in a log, but the one every benchmark account causes on purpose.
fn warnings_in(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("creating an account without a passphrase"))
        .map(str::to_owned)
        .collect()
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("{path} has no {field}"))
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (in clock ticks
/// of 10 ms, the Linux default `USER_HZ`).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let fields: Vec<&str> = stat
        .rfind(')')
        .and_then(|at| stat.get(at + 2..))
        .map(|rest| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 14 and 15 of proc(5); the slice starts at field 3.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => bail!("{path} does not parse"),
    }
}

/// Bytes a process caused to be written to storage so far (`write_bytes` of `/proc/<pid>/io`).
pub fn disk_writes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("write_bytes:")?.trim().parse().ok())
        .with_context(|| format!("{path} has no write_bytes"))
}

/// CPU time all cores together have spent busy since boot (not idle, not waiting for I/O), from
/// the first line of `/proc/stat`: how much of the machine was in use over an interval,
/// whoever used it.
pub fn machine_busy() -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if ticks.len() < 5 {
        bail!("/proc/stat does not parse");
    }
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    let busy: u64 = ticks.iter().sum::<u64>() - ticks[3] - ticks[4];
    Ok(Duration::from_millis(busy * 10))
}

/// `load average 1.2 1.4 1.5` from `/proc/loadavg`.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load average {}", fields.join(" "))
}

/// Cores and load average, printed before every run: the machine is shared.
pub fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {}", load_average())
}

/// A latency histogram in nanoseconds (1 ns to 10 minutes, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: Histogram::new_with_bounds(1, 600_000_000_000, 3)
                .context("creating a histogram")?,
        })
    }

    /// Records one duration (saturating at the upper bound).
    pub fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(nanos.max(1));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latencies) -> anyhow::Result<()> {
        self.hist.add(&other.hist).context("merging histograms")
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at `quantile` (0.5 for the median).
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(quantile))
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.hist.max())
    }

    /// `p50 1.23 ms, p90 ..., p99 ..., max ... (N samples)`, in `unit` ("ms" or "us").
    pub fn summary(&self, unit: Unit) -> String {
        if self.hist.is_empty() {
            return "no samples".to_owned();
        }
        let show = |d: Duration| unit.show(d);
        format!(
            "p50 {}, p90 {}, p99 {}, max {} ({} samples)",
            show(self.quantile(0.50)),
            show(self.quantile(0.90)),
            show(self.quantile(0.99)),
            show(self.max()),
            self.hist.len()
        )
    }
}

/// How durations are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds, two decimals.
    Ms,
    /// Microseconds, one decimal.
    Us,
}

impl Unit {
    /// `d` in this unit, as a number.
    pub fn of(self, d: Duration) -> f64 {
        match self {
            Unit::Ms => d.as_secs_f64() * 1e3,
            Unit::Us => d.as_secs_f64() * 1e6,
        }
    }

    /// The unit's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Us => "us",
        }
    }

    /// `d` in this unit, with its symbol.
    pub fn show(self, d: Duration) -> String {
        match self {
            Unit::Ms => format!("{:.2} ms", self.of(d)),
            Unit::Us => format!("{:.1} us", self.of(d)),
        }
    }
}

/// What a pipelined connection did.
#[derive(Debug, Default, Clone)]
pub struct PipelineReport {
    /// Requests written.
    pub sent: u64,
    /// Requests answered with a result.
    pub ok: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// The first error answer, if any.
    pub first_error: Option<String>,
}

/// Keeps up to `window` JSON-RPC requests unanswered on one connection to `socket` (closed
/// loop: each answer lets the next request go), until `request(i)` returns `None` or `stop` is
/// set; then waits for every answer. `request(i)` gives the method and params of the `i`th
/// request. One thread writes, one reads.
pub fn pipeline(
    socket: &Path,
    window: usize,
    stop: &AtomicBool,
    mut request: impl FnMut(u64) -> Option<(&'static str, Value)>,
) -> anyhow::Result<PipelineReport> {
    let mut writer = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let reader = writer.try_clone().context("cloning the socket")?;
    // Each answer returns a credit: `Ok` for a result, `Err(message)` for an error.
    let (credits, answers) = mpsc::channel::<Result<(), String>>();
    let reading = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).context("reading an answer")? == 0 {
                return Ok(());
            }
            let message: Value = serde_json::from_str(line.trim_end())
                .with_context(|| format!("chatd sent something that is not JSON: {line}"))?;
            if message.get("id").is_none() {
                continue;
            }
            let answer = match message.get("error") {
                None => Ok(()),
                Some(error) => Err(error.to_string()),
            };
            if credits.send(answer).is_err() {
                return Ok(());
            }
        }
    });
    let mut report = PipelineReport::default();
    let mut outstanding = 0usize;
    let settle = |answer: Result<(), String>, report: &mut PipelineReport| match answer {
        Ok(()) => report.ok += 1,
        Err(e) => {
            report.errors += 1;
            report.first_error.get_or_insert(e);
        }
    };
    let patience = Duration::from_secs(120);
    let mut line = Vec::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        let Some((method, params)) = request(report.sent) else {
            break;
        };
        while outstanding >= window.max(1) {
            let answer = answers
                .recv_timeout(patience)
                .context("no answer from chatd within 120 s")?;
            settle(answer, &mut report);
            outstanding -= 1;
        }
        while let Ok(answer) = answers.try_recv() {
            settle(answer, &mut report);
            outstanding -= 1;
        }
        line.clear();
        serde_json::to_writer(
            &mut line,
            &json!({"jsonrpc": "2.0", "id": report.sent, "method": method, "params": params}),
        )
        .context("serializing a request")?;
        line.push(b'\n');
        writer.write_all(&line).context("writing a request")?;
        report.sent += 1;
        outstanding += 1;
    }
    while outstanding > 0 {
        let answer = answers
            .recv_timeout(patience)
            .context("no answer from chatd within 120 s")?;
        settle(answer, &mut report);
        outstanding -= 1;
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
    reading
        .join()
        .map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    Ok(report)
}
