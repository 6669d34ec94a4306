//! `chatd-bench`: the daemon's benchmark tool (chatd/BENCHMARKS.md). It starts a real
//! `chat-relay` and two real `chatd` processes (release builds; weak Argon2id, for setup speed
//! only) and measures, one scenario per subcommand: `chatctl send` as a whole process against a
//! warm daemon, the `daemon.status` round trip, send-to-`message.received` latency at a fixed
//! rate, sustained one-way throughput with everything persisted, chatd's RSS idle and with
//! 100,000 stored messages, and `messages.history` over those messages; `reach` adds relays with
//! an account each and measures the first message to a contact on another relay and later sends
//! there beside sends to a contact on the same relay (SPEC.md 10.9). `all` runs every scenario
//! but `reach` on one pair of daemons; `--repeat` runs again with fresh processes and summarises.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api::client::{Client, ClientError};
use api::methods;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tests::bench_support::{
    Binaries, Daemon, Latencies, Relay, RelayLimits, Unit, cpu_time, disk_writes, machine_busy,
    machine_line, pipeline, proc_status_kib, wait_until,
};

/// Benchmarks of chatd, chatctl and the path through a relay, with real processes.
#[derive(Debug, Parser)]
#[command(name = "chatd-bench")]
struct Cli {
    #[command(flatten)]
    plan: Plan,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Every scenario's settings (global: they may follow the subcommand).
#[derive(Debug, Clone, Args)]
struct Plan {
    /// Directory of `chat-relay`, `chatd` and `chatctl` [default: this binary's directory].
    #[arg(long, env = "CHATD_TEST_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    /// Runs, each with fresh processes; the summary gives each figure's median and range.
    #[arg(long, default_value_t = 1, global = true)]
    repeat: usize,
    /// Keep the relay's default rate limits and mailbox quota instead of raising them.
    #[arg(long, global = true)]
    default_limits: bool,
    /// `send-cli`: measured `chatctl send` runs.
    #[arg(long, default_value_t = 200, global = true)]
    cli_sends: usize,
    /// `send-cli`: unmeasured runs first (and runs of `chatctl --version`, the process floor).
    #[arg(long, default_value_t = 20, global = true)]
    cli_warmup: usize,
    /// `status`: measured `daemon.status` calls.
    #[arg(long, default_value_t = 20_000, global = true)]
    status_calls: u64,
    /// `latency`: messages per second (open loop: each goes at its scheduled time).
    #[arg(long, default_value_t = 100, global = true)]
    latency_rate: u64,
    /// `latency`: measured seconds.
    #[arg(long, default_value_t = 20, global = true)]
    latency_seconds: u64,
    /// `latency`: seconds sent first and not recorded.
    #[arg(long, default_value_t = 2, global = true)]
    latency_warmup: u64,
    /// `throughput`: seconds of sending.
    #[arg(long, default_value_t = 15, global = true)]
    throughput_seconds: u64,
    /// `throughput`: seconds left out of the steady-state rate at the start.
    #[arg(long, default_value_t = 3, global = true)]
    throughput_warmup: u64,
    /// `throughput` and the fill: client connections sending at once.
    #[arg(long, default_value_t = 4, global = true)]
    connections: usize,
    /// `throughput` and the fill: unanswered `messages.send` requests per connection.
    #[arg(long, default_value_t = 32, global = true)]
    window: usize,
    /// `throughput` and the fill: bytes of text per message.
    #[arg(long, default_value_t = 64, global = true)]
    text_len: usize,
    /// `rss` and `history`: messages in the conversation before measuring.
    #[arg(long, default_value_t = 100_000, global = true)]
    fill: u64,
    /// `history`: measured `messages.history` calls.
    #[arg(long, default_value_t = 1_000, global = true)]
    history_calls: u64,
    /// `rss` and the fill: how long the daemons are left alone before RSS is read.
    #[arg(long, default_value_t = 3_000, global = true)]
    settle_ms: u64,
    /// `history`: messages per page.
    #[arg(long, default_value_t = 50, global = true)]
    history_limit: u64,
    /// `reach`: other relays, each with one account, the sender's first message goes to.
    #[arg(long, default_value_t = 5, global = true)]
    reach_relays: usize,
    /// `reach`: messages per second to each of the two contacts, side by side.
    #[arg(long, default_value_t = 20, global = true)]
    reach_rate: u64,
    /// `reach`: measured seconds of side-by-side sends.
    #[arg(long, default_value_t = 10, global = true)]
    reach_seconds: u64,
    /// `spread`: contacts of the measured daemon.
    #[arg(long, default_value_t = 100, global = true)]
    spread_contacts: usize,
    /// `spread`: relays the contacts are spread over (the daemon's own is the first).
    #[arg(long, default_value_t = 10, global = true)]
    spread_relays: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Scenario {
    /// `chatctl send` as a whole process against a warm daemon, `--cli-sends` times in a row.
    SendCli,
    /// `daemon.status` round trips over one connection.
    Status,
    /// Send-to-`message.received` latency at `--latency-rate` over one connection.
    Latency,
    /// Sustained one-way throughput: pipelined `messages.send` on `--connections` connections.
    Throughput,
    /// chatd's RSS idle after account creation, then with `--fill` stored messages.
    Rss,
    /// `messages.history` (the latest `--history-limit`) with `--fill` stored messages.
    History,
    /// Contacts on other relays: the first message to each of `--reach-relays` (dial, anonymous
    /// bundle fetch, seal, deposit: `messages.send` to `sent`), then send-to-event latency to
    /// one of them and to the same-relay contact, side by side.
    Reach,
    /// A fresh daemon with `--spread-contacts` contacts on its own relay, then another with as
    /// many spread over `--spread-relays` relays: the links it holds and its RSS after one
    /// message to each.
    Spread,
    /// Every scenario, on one pair of daemons.
    All,
}

/// A target a figure is compared with.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(limit) => value <= limit,
            Target::AtLeast(limit) => value >= limit,
        }
    }

    fn show(self, unit: &str) -> String {
        match self {
            Target::AtMost(limit) => format!("<= {limit} {unit}"),
            Target::AtLeast(limit) => format!(">= {limit} {unit}"),
        }
    }
}

/// One number a run produced.
#[derive(Debug, Clone)]
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
}

const MIB: f64 = 1024.0;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatd-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binaries = Binaries::locate(cli.plan.bin_dir.clone())?;
    println!("binaries: {}", binaries.dir().display());
    let mut figures = Vec::new();
    let repeat = cli.plan.repeat.max(1);
    for round in 1..=repeat {
        println!("== run {round} of {repeat}; {}", machine_line());
        let mut bench = Bench::start(&cli.plan, &binaries)?;
        let outcome = bench.run(cli.scenario);
        bench.report_logs();
        outcome?;
        figures.push(std::mem::take(&mut bench.figures));
    }
    summary(&figures);
    Ok(())
}

/// Each figure over the runs: median, range, and whether the median meets its target.
fn summary(runs: &[Vec<Figure>]) {
    println!("== summary ({} runs)", runs.len());
    let mut names: Vec<&str> = Vec::new();
    for figure in runs.iter().flatten() {
        if !names.contains(&figure.name.as_str()) {
            names.push(&figure.name);
        }
    }
    for name in names {
        let of_name: Vec<&Figure> = runs.iter().flatten().filter(|f| f.name == name).collect();
        let mut values: Vec<f64> = of_name.iter().map(|f| f.value).collect();
        values.sort_by(f64::total_cmp);
        let Some(first) = of_name.first() else {
            continue;
        };
        let median = median(&values);
        let runs: Vec<String> = of_name.iter().map(|f| format!("{:.2}", f.value)).collect();
        let verdict = match first.target {
            Some(target) => format!(
                "; target {}: {}",
                target.show(first.unit),
                if target.met(median) { "met" } else { "MISSED" }
            ),
            None => String::new(),
        };
        println!(
            "   {name}: median {median:.2} {unit} (runs {}){verdict}",
            runs.join(" / "),
            unit = first.unit,
        );
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A relay, a sending daemon ("Bob", with the contact `alice`) and a receiving one ("Alice").
struct Bench<'a> {
    plan: &'a Plan,
    binaries: &'a Binaries,
    /// Instants in message texts are microseconds since this.
    base: Instant,
    relay: Relay,
    sender: Daemon,
    recipient: Daemon,
    recipient_address: String,
    /// The sender's conversation at the recipient, once the first message arrived.
    conversation: Option<String>,
    figures: Vec<Figure>,
}

impl<'a> Bench<'a> {
    fn start(plan: &'a Plan, binaries: &'a Binaries) -> anyhow::Result<Self> {
        let limits = if plan.default_limits {
            RelayLimits::Default
        } else {
            RelayLimits::Raised
        };
        let relay = Relay::start(binaries, limits)?;
        let recipient = Daemon::start(binaries, &relay.url())?;
        let sender = Daemon::start(binaries, &relay.url())?;
        let recipient_address = recipient.create("Alice")?;
        sender.create("Bob")?;
        println!(
            "setup: chat-relay (pid {}, {} limits), sender chatd (pid {}), recipient chatd \
             (pid {})",
            relay.pid(),
            if plan.default_limits {
                "default"
            } else {
                "raised"
            },
            sender.pid(),
            recipient.pid()
        );
        Ok(Self {
            plan,
            binaries,
            base: Instant::now(),
            relay,
            sender,
            recipient,
            recipient_address,
            conversation: None,
            figures: Vec::new(),
        })
    }

    fn run(&mut self, scenario: Scenario) -> anyhow::Result<()> {
        match scenario {
            Scenario::SendCli => self.send_cli(),
            Scenario::Status => self.status(),
            Scenario::Latency => self.latency(),
            Scenario::Throughput => self.throughput(),
            Scenario::Rss => {
                self.rss_idle()?;
                self.fill()?;
                self.rss_full()
            }
            Scenario::History => {
                self.fill()?;
                self.history()
            }
            Scenario::Reach => self.reach(),
            Scenario::Spread => self.spread(),
            Scenario::All => {
                self.rss_idle()?;
                self.send_cli()?;
                self.status()?;
                self.latency()?;
                self.throughput()?;
                self.fill()?;
                self.rss_full()?;
                self.history()
            }
        }
    }

    fn figure(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Option<Target>,
    ) {
        let figure = Figure {
            name: name.into(),
            value,
            unit,
            target,
        };
        let verdict = match target {
            Some(t) => format!(
                " (target {}: {})",
                t.show(unit),
                if t.met(value) { "met" } else { "MISSED" }
            ),
            None => String::new(),
        };
        println!("   -> {}: {value:.2} {unit}{verdict}", figure.name);
        self.figures.push(figure);
    }

    fn latency_figure(&mut self, name: &str, d: Duration, unit: Unit, target: Option<f64>) {
        self.figure(name, unit.of(d), unit.symbol(), target.map(Target::AtMost));
    }

    /// Prints what the processes logged at warning level or above.
    fn report_logs(&self) {
        for (who, lines) in [
            ("relay", self.relay.warnings()),
            ("sender chatd", self.sender.warnings()),
            ("recipient chatd", self.recipient.warnings()),
        ] {
            if lines.is_empty() {
                continue;
            }
            println!(
                "   {who} logged {} warnings or errors; the first:",
                lines.len()
            );
            for line in lines.iter().take(3) {
                println!("     {line}");
            }
        }
    }

    /// The sender adds the recipient, sends one message and waits until it is delivered, so
    /// the session exists (the prekey round trip is not measured) and the conversation is
    /// known.
    fn warm(&mut self) -> anyhow::Result<String> {
        if let Some(conversation) = &self.conversation {
            return Ok(conversation.clone());
        }
        self.sender.call(
            methods::CONTACTS_ADD,
            json!({ "alias": "alice", "target": self.recipient_address }),
        )?;
        self.sender.call(
            methods::MESSAGES_SEND,
            json!({ "to": "alice", "text": "warm-up" }),
        )?;
        // The sender is a stranger to the recipient: its first message is a message request,
        // which the recipient accepts (then the conversation is an ordinary one).
        let mut client = self.recipient.client()?;
        let request = wait_until(
            "the first message to arrive",
            Duration::from_secs(30),
            || {
                let list = client.call_value(methods::REQUESTS_LIST, json!({}))?;
                Ok(list["requests"]
                    .get(0)
                    .and_then(|r| r["contact"]["alias"].as_str())
                    .map(str::to_owned))
            },
        )?;
        let accepted =
            client.call_value(methods::REQUESTS_ACCEPT, json!({ "contact": request }))?;
        let conversation = accepted["alias"]
            .as_str()
            .context("requests.accept returned no alias")?
            .to_owned();
        self.wait_quiet(None, Duration::from_secs(30))?;
        self.conversation = Some(conversation.clone());
        Ok(conversation)
    }

    /// Waits until both outboxes are empty (receipts included) and, if given, the recipient's
    /// conversation holds `total` messages.
    fn wait_quiet(&self, total: Option<u64>, patience: Duration) -> anyhow::Result<()> {
        let mut client = self.recipient.client()?;
        let conversation = self.conversation.clone();
        wait_until("the daemons to go quiet", patience, || {
            if let (Some(total), Some(conversation)) = (total, &conversation)
                && conversation_total(&mut client, conversation)? < total
            {
                return Ok(None);
            }
            Ok((self.sender.outbox()? == 0 && self.recipient.outbox()? == 0).then_some(()))
        })
    }

    fn rss_idle(&mut self) -> anyhow::Result<()> {
        let settle = Duration::from_millis(self.plan.settle_ms);
        println!(
            "-- rss (idle): after account creation and connect, then {:.1} s alone",
            settle.as_secs_f64()
        );
        std::thread::sleep(settle);
        let sender = proc_status_kib(self.sender.pid(), "VmRSS")? as f64;
        let recipient = proc_status_kib(self.recipient.pid(), "VmRSS")? as f64;
        let relay = proc_status_kib(self.relay.pid(), "VmRSS")? as f64;
        println!(
            "   VmRSS: sender chatd {:.1} MiB, recipient chatd {:.1} MiB (relay {:.1} MiB)",
            sender / MIB,
            recipient / MIB,
            relay / MIB
        );
        self.figure(
            "chatd RSS idle (larger of the two)",
            sender.max(recipient) / MIB,
            "MiB",
            Some(Target::AtMost(15.0)),
        );
        Ok(())
    }

    fn send_cli(&mut self) -> anyhow::Result<()> {
        self.warm()?;
        let n = self.plan.cli_sends;
        println!(
            "-- send-cli: `chatctl --socket S --no-autostart send alice hi`, {n} runs in a row \
             after {} unmeasured",
            self.plan.cli_warmup
        );
        let chatctl = self.binaries.path("chatctl")?;
        let socket = self.sender.socket();
        let socket = socket.to_string_lossy();
        let time = |args: &[&str]| -> anyhow::Result<Duration> {
            let start = Instant::now();
            let output = Command::new(&chatctl)
                .args(args)
                .env_remove("CHATD_SOCKET")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .context("running chatctl")?;
            let elapsed = start.elapsed();
            if !output.status.success() {
                bail!(
                    "chatctl {args:?} failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Ok(elapsed)
        };
        let send: [&str; 6] = ["--socket", &socket, "--no-autostart", "send", "alice", "hi"];
        let mut floor = Latencies::new()?;
        for _ in 0..self.plan.cli_warmup {
            time(&send)?;
            floor.record(time(&["--version"])?);
        }
        let mut sends = Latencies::new()?;
        for _ in 0..n {
            sends.record(time(&send)?);
        }
        println!("   chatctl send: {}", sends.summary(Unit::Ms));
        println!(
            "   process floor, chatctl --version: {}",
            floor.summary(Unit::Ms)
        );
        self.latency_figure(
            "chatctl send p50",
            sends.quantile(0.5),
            Unit::Ms,
            Some(10.0),
        );
        self.latency_figure("chatctl send p90", sends.quantile(0.9), Unit::Ms, None);
        self.latency_figure("chatctl send p99", sends.quantile(0.99), Unit::Ms, None);
        if !floor.is_empty() {
            self.latency_figure(
                "chatctl --version p50 (process floor)",
                floor.quantile(0.5),
                Unit::Ms,
                None,
            );
        }
        let total = self.conversation_total()?;
        self.wait_quiet(Some(total), Duration::from_secs(60))?;
        Ok(())
    }

    fn conversation_total(&self) -> anyhow::Result<u64> {
        let conversation = self
            .conversation
            .as_deref()
            .context("no conversation yet")?;
        conversation_total(&mut self.recipient.client()?, conversation)
    }

    fn status(&mut self) -> anyhow::Result<()> {
        let n = self.plan.status_calls;
        println!(
            "-- status: `daemon.status` over one connection, {n} calls after 1,000 unmeasured"
        );
        let mut client = self.sender.client()?;
        let mut calls = Latencies::new()?;
        for i in 0..n + 1_000 {
            let start = Instant::now();
            client
                .call_value(methods::DAEMON_STATUS, json!({}))
                .context("daemon.status")?;
            if i >= 1_000 {
                calls.record(start.elapsed());
            }
        }
        println!("   daemon.status: {}", calls.summary(Unit::Us));
        self.latency_figure(
            "daemon.status p50",
            calls.quantile(0.5),
            Unit::Us,
            Some(100.0),
        );
        self.latency_figure("daemon.status p99", calls.quantile(0.99), Unit::Us, None);
        Ok(())
    }

    fn latency(&mut self) -> anyhow::Result<()> {
        self.warm()?;
        let rate = self.plan.latency_rate.max(1);
        let warm = rate * self.plan.latency_warmup;
        let total = warm + rate * self.plan.latency_seconds;
        println!(
            "-- latency: {rate} messages/s for {} s (+{} s unrecorded) over one connection; \
             from just before `messages.send` to `message.received` at the recipient",
            self.plan.latency_seconds, self.plan.latency_warmup
        );
        let base = self.base;
        let mut events = self.recipient.client()?;
        events
            .call_value(methods::EVENTS_SUBSCRIBE, json!({}))
            .context("events.subscribe")?;
        events
            .set_read_timeout(Some(Duration::from_millis(200)))
            .context("setting a read timeout")?;
        let done = AtomicBool::new(false);
        let received = AtomicU64::new(0);
        let mut sender = self.sender.client()?;
        let period = Duration::from_secs_f64(1.0 / rate as f64);
        let pids = [
            self.sender.pid(),
            self.recipient.pid(),
            self.relay.pid(),
            std::process::id(),
        ];
        let ours = || -> anyhow::Result<Duration> { pids.iter().map(|p| cpu_time(*p)).sum() };
        let (machine_before, ours_before, window_start) =
            (machine_busy()?, ours()?, Instant::now());
        let (to_event, rpc, late) = std::thread::scope(|scope| -> anyhow::Result<_> {
            let listener = scope.spawn(|| -> anyhow::Result<Latencies> {
                let mut latencies = Latencies::new()?;
                loop {
                    let notification = match events.next_notification() {
                        Ok(n) => n,
                        Err(ClientError::Io(e))
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            if done.load(Ordering::Relaxed) {
                                return Ok(latencies);
                            }
                            continue;
                        }
                        Err(e) => return Err(e).context("reading events"),
                    };
                    let now = base.elapsed();
                    let result = &notification.result;
                    if result["kind"] != "message.received" {
                        continue;
                    }
                    let Some((seq, sent_us)) = result["message"]["text"]
                        .as_str()
                        .and_then(parse_latency_text)
                    else {
                        continue;
                    };
                    if seq >= warm {
                        latencies.record(now.saturating_sub(Duration::from_micros(sent_us)));
                    }
                    if received.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        return Ok(latencies);
                    }
                }
            });
            let mut rpc = Latencies::new()?;
            let mut late = 0u64;
            let start = Instant::now();
            let sending = (|| -> anyhow::Result<()> {
                for seq in 0..total {
                    let due = start + period.mul_f64(seq as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let before = base.elapsed();
                    if Instant::now().saturating_duration_since(due) > Duration::from_millis(1) {
                        late += 1;
                    }
                    let text = format!("lat {seq} {}", before.as_micros());
                    sender
                        .call_value(
                            methods::MESSAGES_SEND,
                            json!({ "to": "alice", "text": text }),
                        )
                        .context("messages.send")?;
                    if seq >= warm {
                        rpc.record(base.elapsed().saturating_sub(before));
                    }
                }
                wait_until("every message to arrive", Duration::from_secs(30), || {
                    Ok((received.load(Ordering::Relaxed) >= total).then_some(()))
                })
            })();
            done.store(true, Ordering::Relaxed);
            let latencies = listener
                .join()
                .map_err(|_| anyhow::anyhow!("the event listener panicked"))??;
            sending?;
            Ok((latencies, rpc, late))
        })?;
        let window = window_start.elapsed().as_secs_f64().max(1e-9);
        let busy = machine_busy()?.saturating_sub(machine_before).as_secs_f64();
        let own = ours()?.saturating_sub(ours_before).as_secs_f64();
        println!(
            "   machine: {:.2} cores busy over the run, {:.2} of them not these processes",
            busy / window,
            (busy - own).max(0.0) / window
        );
        println!("   send-to-event: {}", to_event.summary(Unit::Ms));
        println!("   messages.send round trip: {}", rpc.summary(Unit::Ms));
        println!("   sends started over 1 ms behind schedule: {late} of {total}");
        self.latency_figure(
            "send-to-event p50",
            to_event.quantile(0.5),
            Unit::Ms,
            Some(3.0),
        );
        self.latency_figure(
            "send-to-event p99",
            to_event.quantile(0.99),
            Unit::Ms,
            Some(15.0),
        );
        self.latency_figure("messages.send RPC p50", rpc.quantile(0.5), Unit::Ms, None);
        let total = self.conversation_total()?;
        self.wait_quiet(Some(total), Duration::from_secs(60))?;
        Ok(())
    }

    fn spread(&mut self) -> anyhow::Result<()> {
        let contacts = self.plan.spread_contacts.max(1);
        let count = self.plan.spread_relays.max(1);
        println!(
            "-- spread: a daemon with {contacts} contacts on its own relay, then one with \
             {contacts} spread over {count} relays; one message to each, then RSS and links"
        );
        let relays: Vec<Relay> = (0..count)
            .map(|_| Relay::start(self.binaries, RelayLimits::Raised))
            .collect::<anyhow::Result<_>>()?;
        let settle = Duration::from_millis(self.plan.settle_ms);
        let mut rss = Vec::new();
        for spread in [1, count] {
            let daemon = Daemon::start(self.binaries, &relays[0].url())?;
            daemon.create("Spreader")?;
            let mut client = daemon.client()?;
            // The contacts' daemons run until every message is sent (their prekeys must be
            // published first), then stop.
            let mut running = Vec::new();
            for i in 0..contacts {
                let relay = &relays[i % spread];
                let contact = Daemon::start(self.binaries, &relay.url())?;
                let address = contact.create(&format!("C{i}"))?;
                running.push(contact);
                let target = format!("{address}@{}", relay.addr());
                client
                    .call_value(
                        methods::CONTACTS_ADD,
                        json!({ "alias": format!("c{i}"), "target": target }),
                    )
                    .context("contacts.add")?;
                client
                    .call_value(
                        methods::MESSAGES_SEND,
                        json!({ "to": format!("c{i}"), "text": "hello" }),
                    )
                    .context("messages.send")?;
            }
            wait_until("every message to be sent", Duration::from_secs(120), || {
                Ok((daemon.outbox()? == 0).then_some(()))
            })?;
            drop(running);
            let status = daemon.call(methods::DAEMON_STATUS, json!({}))?;
            let links = status["other_relays"].as_array().map_or(0, Vec::len);
            std::thread::sleep(settle);
            let kib = proc_status_kib(daemon.pid(), "VmRSS")? as f64;
            println!(
                "   {contacts} contacts over {spread} relays: VmRSS {:.1} MiB, links to other \
                 relays {links}",
                kib / MIB
            );
            self.figure(
                format!("links to other relays ({spread} relays)"),
                links as f64,
                "",
                Some(Target::AtMost((spread - 1) as f64)),
            );
            rss.push(kib / MIB);
        }
        self.figure("RSS, contacts on one relay", rss[0], "MiB", None);
        self.figure(
            format!("RSS, contacts on {count} relays"),
            rss[1],
            "MiB",
            None,
        );
        self.figure(
            "RSS, spread minus one relay",
            rss[1] - rss[0],
            "MiB",
            Some(Target::AtMost(2.0)),
        );
        Ok(())
    }

    fn reach(&mut self) -> anyhow::Result<()> {
        self.warm()?;
        let count = self.plan.reach_relays.max(1);
        println!(
            "-- reach: {count} other relays with an account each; the first message to each \
             (from just before `messages.send` to its `sent` status: a new link, anonymous \
             device list and bundle fetch, session setup, seal, deposit)"
        );
        let mut others = Vec::new();
        for i in 0..count {
            let relay = Relay::start(self.binaries, RelayLimits::Raised)?;
            let daemon = Daemon::start(self.binaries, &relay.url())?;
            let address = daemon.create(&format!("Carol{i}"))?;
            self.sender.call(
                methods::CONTACTS_ADD,
                json!({ "alias": format!("carol{i}"), "target": format!("{address}@{}", relay.addr()) }),
            )?;
            others.push((relay, daemon));
        }
        let mut events = self.sender.client()?;
        events
            .call_value(methods::EVENTS_SUBSCRIBE, json!({}))
            .context("events.subscribe")?;
        let mut sender = self.sender.client()?;
        let mut firsts = Latencies::new()?;
        for i in 0..count {
            let started = Instant::now();
            let sent = sender
                .call_value(
                    methods::MESSAGES_SEND,
                    json!({ "to": format!("carol{i}"), "text": "hello over there" }),
                )
                .context("messages.send")?;
            let id = sent["message_id"].as_str().unwrap_or_default().to_owned();
            loop {
                let notification = events.next_notification().context("reading events")?;
                let result = &notification.result;
                if result["kind"] == "message.status"
                    && result["message_id"] == id.as_str()
                    && result["status"] != "pending"
                {
                    anyhow::ensure!(
                        result["status"] != "failed",
                        "the first message failed: {result}"
                    );
                    break;
                }
            }
            firsts.record(started.elapsed());
        }
        println!("   first message: {}", firsts.summary(Unit::Ms));
        self.latency_figure(
            "first message to another relay p50",
            firsts.quantile(0.5),
            Unit::Ms,
            Some(50.0),
        );
        self.latency_figure(
            "first message to another relay max",
            firsts.max(),
            Unit::Ms,
            None,
        );
        drop(events);

        // Later sends: the same-relay contact and the first other-relay contact, alternately.
        let rate = self.plan.reach_rate.max(1);
        let total = rate * self.plan.reach_seconds;
        println!(
            "-- reach: {rate} messages/s to each of alice (same relay) and carol0 (another \
             relay) for {} s, alternately; send-to-`message.received`",
            self.plan.reach_seconds
        );
        let (_, carol) = others.first().context("no other relay")?;
        let base = self.base;
        let mut listeners = Vec::new();
        for daemon in [&self.recipient, carol] {
            let mut client = daemon.client()?;
            client
                .call_value(methods::EVENTS_SUBSCRIBE, json!({}))
                .context("events.subscribe")?;
            client
                .set_read_timeout(Some(Duration::from_millis(200)))
                .context("setting a read timeout")?;
            listeners.push(client);
        }
        let done = AtomicBool::new(false);
        let period = Duration::from_secs_f64(1.0 / (2 * rate) as f64);
        let (same, other) = std::thread::scope(|scope| -> anyhow::Result<_> {
            let handles: Vec<_> = listeners
                .into_iter()
                .map(|mut client| {
                    let done = &done;
                    scope.spawn(move || -> anyhow::Result<Latencies> {
                        let mut latencies = Latencies::new()?;
                        let mut seen = 0;
                        loop {
                            let notification = match client.next_notification() {
                                Ok(n) => n,
                                Err(ClientError::Io(e))
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    if done.load(Ordering::Relaxed) {
                                        return Ok(latencies);
                                    }
                                    continue;
                                }
                                Err(e) => return Err(e).context("reading events"),
                            };
                            let now = base.elapsed();
                            let result = &notification.result;
                            if result["kind"] != "message.received" {
                                continue;
                            }
                            let Some((_, sent_us)) = result["message"]["text"]
                                .as_str()
                                .and_then(parse_latency_text)
                            else {
                                continue;
                            };
                            latencies.record(now.saturating_sub(Duration::from_micros(sent_us)));
                            seen += 1;
                            if seen == total {
                                return Ok(latencies);
                            }
                        }
                    })
                })
                .collect();
            let start = Instant::now();
            let sending = (|| -> anyhow::Result<()> {
                for seq in 0..2 * total {
                    let due = start + period.mul_f64(seq as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let to = if seq % 2 == 0 { "alice" } else { "carol0" };
                    let text = format!("lat {seq} {}", base.elapsed().as_micros());
                    sender
                        .call_value(methods::MESSAGES_SEND, json!({ "to": to, "text": text }))
                        .context("messages.send")?;
                }
                std::thread::sleep(Duration::from_secs(5));
                Ok(())
            })();
            done.store(true, Ordering::Relaxed);
            let mut results = Vec::new();
            for handle in handles {
                results.push(
                    handle
                        .join()
                        .map_err(|_| anyhow::anyhow!("an event listener panicked"))??,
                );
            }
            sending?;
            let other = results.pop().context("no listener")?;
            let same = results.pop().context("no listener")?;
            Ok((same, other))
        })?;
        anyhow::ensure!(
            same.len() == total && other.len() == total,
            "not every message arrived: {} and {} of {total}",
            same.len(),
            other.len()
        );
        println!("   same relay: {}", same.summary(Unit::Ms));
        println!("   other relay: {}", other.summary(Unit::Ms));
        let same_p50 = Unit::Ms.of(same.quantile(0.5));
        let other_p50 = Unit::Ms.of(other.quantile(0.5));
        self.figure("later sends, same relay p50", same_p50, "ms", None);
        self.figure("later sends, other relay p50", other_p50, "ms", None);
        self.figure(
            "other relay / same relay p50",
            other_p50 / same_p50.max(1e-9),
            "x",
            Some(Target::AtMost(1.2)),
        );
        Ok(())
    }

    fn text(&self, connection: usize, seq: u64) -> String {
        let mut text = format!("tp {connection} {seq} ");
        while text.len() < self.plan.text_len {
            text.push('x');
        }
        text
    }

    fn throughput(&mut self) -> anyhow::Result<()> {
        let conversation = self.warm()?;
        let seconds = self.plan.throughput_seconds.max(1);
        let warmup = self.plan.throughput_warmup.min(seconds - 1);
        let (connections, window) = (self.plan.connections.max(1), self.plan.window.max(1));
        println!(
            "-- throughput: pipelined `messages.send` ({} bytes of text) on {connections} \
             connections, {window} unanswered each, for {seconds} s; received counted at the \
             recipient (`conversations.list`), steady state from {warmup} s",
            self.plan.text_len
        );
        let baseline = self.conversation_total()?;
        let stop = AtomicBool::new(false);
        let socket = self.sender.socket();
        let pids = [
            ("sender chatd", self.sender.pid()),
            ("recipient chatd", self.recipient.pid()),
            ("relay", self.relay.pid()),
            ("chatd-bench", std::process::id()),
        ];
        let mut counter = self.recipient.client()?;
        let this = &*self;
        let (reports, samples, cpu) = std::thread::scope(|scope| -> anyhow::Result<_> {
            let senders: Vec<_> = (0..connections)
                .map(|c| {
                    let (socket, stop) = (&socket, &stop);
                    scope.spawn(move || {
                        pipeline(socket, window, stop, |i| {
                            Some((
                                methods::MESSAGES_SEND,
                                json!({ "to": "alice", "text": this.text(c, i) }),
                            ))
                        })
                    })
                })
                .collect();
            let start = Instant::now();
            let mut samples = vec![(Duration::ZERO, baseline)];
            let mut cpu_start = None;
            let sampled = (|| -> anyhow::Result<Vec<(Duration, u64)>> {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let at = start.elapsed();
                    if cpu_start.is_none() && at >= Duration::from_secs(warmup) {
                        cpu_start = Some(cpu_times(&pids)?);
                    }
                    samples.push((at, conversation_total(&mut counter, &conversation)?));
                    if at >= Duration::from_secs(seconds) {
                        return cpu_times(&pids);
                    }
                }
            })();
            stop.store(true, Ordering::Relaxed);
            let mut reports = Vec::new();
            for sender in senders {
                reports.push(
                    sender
                        .join()
                        .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??,
                );
            }
            let cpu_end = sampled?;
            let cpu = cpu_start.map(|s| (s, cpu_end));
            Ok((reports, samples, cpu))
        })?;
        let accepted: u64 = reports.iter().map(|r| r.ok).sum();
        let errors: u64 = reports.iter().map(|r| r.errors).sum();
        if let Some(error) = reports.iter().find_map(|r| r.first_error.clone()) {
            println!("   {errors} sends refused; the first: {error}");
        }
        let stopped = samples.last().map_or(Duration::ZERO, |s| s.0);
        let steady_from = samples
            .iter()
            .find(|s| s.0 >= Duration::from_secs(warmup))
            .copied()
            .unwrap_or((Duration::ZERO, baseline));
        let steady_to = samples.last().copied().unwrap_or(steady_from);
        let steady_wall = (steady_to.0 - steady_from.0).as_secs_f64().max(1e-9);
        let steady_messages = steady_to.1.saturating_sub(steady_from.1);
        let steady = steady_messages as f64 / steady_wall;
        println!(
            "   accepted by the sender: {accepted} in {:.1} s ({:.0}/s)",
            stopped.as_secs_f64(),
            accepted as f64 / stopped.as_secs_f64().max(1e-9)
        );
        println!(
            "   received: {steady_messages} from {:.1} s to {:.1} s: {steady:.0} messages/s",
            steady_from.0.as_secs_f64(),
            steady_to.0.as_secs_f64()
        );
        let per_second: Vec<String> = samples
            .windows(5)
            .step_by(4)
            .map(|w| {
                let (a, b) = (w[0], w[w.len() - 1]);
                let rate = b.1.saturating_sub(a.1) as f64 / (b.0 - a.0).as_secs_f64().max(1e-9);
                format!("{rate:.0}")
            })
            .collect();
        println!(
            "   received per second, second by second: {}",
            per_second.join(" ")
        );
        if let Some((start, end)) = cpu {
            let parts: Vec<String> = pids
                .iter()
                .zip(start.iter().zip(end.iter()))
                .map(|((name, _), (a, b))| {
                    let used = b.0.saturating_sub(a.0).as_secs_f64();
                    format!(
                        "{name} {:.2} cores ({:.0} us/message)",
                        used / steady_wall,
                        used * 1e6 / steady_messages.max(1) as f64
                    )
                })
                .collect();
            println!("   CPU in the steady state: {}", parts.join(", "));
            if let (Some(a), Some(b)) = (start.last(), end.last()) {
                let ours: f64 = start
                    .iter()
                    .zip(end.iter())
                    .take(pids.len())
                    .map(|(a, b)| b.0.saturating_sub(a.0).as_secs_f64())
                    .sum();
                let busy = b.0.saturating_sub(a.0).as_secs_f64();
                println!(
                    "   machine: {:.2} of {} cores busy, {:.2} of them not these processes",
                    busy / steady_wall,
                    std::thread::available_parallelism().map_or(0, |n| n.get()),
                    (busy - ours).max(0.0) / steady_wall
                );
            }
            let parts: Vec<String> = pids
                .iter()
                .zip(start.iter().zip(end.iter()))
                .take(3)
                .map(|((name, _), (a, b))| {
                    let bytes = b.1.saturating_sub(a.1) as f64;
                    format!(
                        "{name} {:.1} MiB/s ({:.1} KiB/message)",
                        bytes / steady_wall / (1024.0 * 1024.0),
                        bytes / 1024.0 / steady_messages.max(1) as f64
                    )
                })
                .collect();
            println!(
                "   written to disk in the steady state: {}",
                parts.join(", ")
            );
        }
        let drain_start = Instant::now();
        self.wait_quiet(Some(baseline + accepted), Duration::from_secs(300))?;
        println!(
            "   all {accepted} received and both outboxes empty {:.1} s after sending stopped",
            drain_start.elapsed().as_secs_f64()
        );
        self.figure(
            "throughput received (steady, messages/s)",
            steady,
            "msg/s",
            Some(Target::AtLeast(3_000.0)),
        );
        self.figure(
            "throughput accepted by the sender (messages/s)",
            accepted as f64 / stopped.as_secs_f64().max(1e-9),
            "msg/s",
            None,
        );
        Ok(())
    }

    /// Sends until the conversation holds `--fill` messages, then waits until all arrived and
    /// the daemons are quiet.
    fn fill(&mut self) -> anyhow::Result<()> {
        self.warm()?;
        let target = self.plan.fill;
        let have = self.conversation_total()?;
        let connections = self.plan.connections.max(1);
        println!(
            "-- fill: the conversation holds {have} messages; sending until it holds {target}"
        );
        if have < target {
            let need = target - have;
            let stop = AtomicBool::new(false);
            let socket = self.sender.socket();
            let next = Mutex::new(0u64);
            let start = Instant::now();
            let this = &*self;
            std::thread::scope(|scope| -> anyhow::Result<()> {
                let senders: Vec<_> = (0..connections)
                    .map(|c| {
                        let (socket, stop, next) = (&socket, &stop, &next);
                        scope.spawn(move || {
                            pipeline(socket, this.plan.window, stop, |_| {
                                let mut next = next.lock().unwrap_or_else(|e| e.into_inner());
                                (*next < need).then(|| {
                                    *next += 1;
                                    let text = this.text(c, *next);
                                    (
                                        methods::MESSAGES_SEND,
                                        json!({ "to": "alice", "text": text }),
                                    )
                                })
                            })
                        })
                    })
                    .collect();
                for sender in senders {
                    let report = sender
                        .join()
                        .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??;
                    if let Some(error) = report.first_error {
                        bail!(
                            "{} sends refused during the fill; the first: {error}",
                            report.errors
                        );
                    }
                }
                Ok(())
            })?;
            let patience = Duration::from_secs(120 + need / 100);
            self.wait_quiet(Some(target), patience)?;
            println!(
                "   {need} messages sent and received in {:.1} s ({:.0}/s)",
                start.elapsed().as_secs_f64(),
                need as f64 / start.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(self.plan.settle_ms));
        Ok(())
    }

    fn rss_full(&mut self) -> anyhow::Result<()> {
        let total = self.conversation_total()?;
        println!(
            "-- rss (full): {total} messages in the conversation, daemons quiet for {:.1} s",
            self.plan.settle_ms as f64 / 1e3
        );
        let larger = self.print_daemon_rss()?;
        self.figure(
            format!(
                "chatd RSS with {} stored messages (larger of the two)",
                self.plan.fill
            ),
            larger / MIB,
            "MiB",
            Some(Target::AtMost(30.0)),
        );

        // The same stores opened by fresh processes: what holding the history costs, without
        // whatever the fill's burst left behind.
        println!(
            "-- rss (restarted): both daemons killed and started again on their stores, \
             connected, then {:.1} s alone",
            self.plan.settle_ms as f64 / 1e3
        );
        let relay_url = self.relay.url();
        for daemon in [&mut self.sender, &mut self.recipient] {
            daemon.restart(self.binaries, &relay_url)?;
            wait_until("the daemon to reconnect", Duration::from_secs(60), || {
                let status = daemon.call(methods::DAEMON_STATUS, json!({}))?;
                Ok((status["connection"] == "connected").then_some(()))
            })?;
        }
        self.wait_quiet(Some(total), Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_millis(self.plan.settle_ms));
        let larger = self.print_daemon_rss()?;
        self.figure(
            format!(
                "chatd RSS with {} stored messages after a restart (larger of the two)",
                self.plan.fill
            ),
            larger / MIB,
            "MiB",
            Some(Target::AtMost(30.0)),
        );
        Ok(())
    }

    /// Prints both daemons' RSS and returns the larger `VmRSS`, in KiB.
    fn print_daemon_rss(&self) -> anyhow::Result<f64> {
        let mut larger = 0.0f64;
        for (who, daemon) in [("sender", &self.sender), ("recipient", &self.recipient)] {
            let rss = proc_status_kib(daemon.pid(), "VmRSS")? as f64;
            let hwm = proc_status_kib(daemon.pid(), "VmHWM")? as f64;
            let anon = proc_status_kib(daemon.pid(), "RssAnon")? as f64;
            println!(
                "   {who} chatd: VmRSS {:.1} MiB, of it anonymous {:.1} MiB (peak VmHWM {:.1} MiB)",
                rss / MIB,
                anon / MIB,
                hwm / MIB
            );
            larger = larger.max(rss);
        }
        Ok(larger)
    }

    fn history(&mut self) -> anyhow::Result<()> {
        let conversation = self.warm()?;
        let total = self.conversation_total()?;
        let (n, limit) = (self.plan.history_calls, self.plan.history_limit);
        println!(
            "-- history: `messages.history` of the latest {limit} of {total} messages, {n} calls \
             after 50 unmeasured, at the recipient"
        );
        let mut client = self.recipient.client()?;
        let mut calls = Latencies::new()?;
        let expected = limit.min(total);
        for i in 0..n + 50 {
            let start = Instant::now();
            let page = client
                .call_value(
                    methods::MESSAGES_HISTORY,
                    json!({ "conversation": conversation, "limit": limit }),
                )
                .context("messages.history")?;
            let elapsed = start.elapsed();
            let got = page["messages"].as_array().map_or(0, Vec::len) as u64;
            if got != expected {
                bail!("messages.history returned {got} messages, not {expected}");
            }
            if i >= 50 {
                calls.record(elapsed);
            }
        }
        println!("   messages.history: {}", calls.summary(Unit::Ms));
        self.latency_figure(
            "messages.history p50",
            calls.quantile(0.5),
            Unit::Ms,
            Some(5.0),
        );
        self.latency_figure(
            "messages.history p99",
            calls.quantile(0.99),
            Unit::Ms,
            Some(5.0),
        );
        Ok(())
    }
}

/// `lat <seq> <micros>` -> (seq, micros).
fn parse_latency_text(text: &str) -> Option<(u64, u64)> {
    let mut words = text.strip_prefix("lat ")?.split(' ');
    let seq = words.next()?.parse().ok()?;
    let micros = words.next()?.parse().ok()?;
    Some((seq, micros))
}

/// The number of messages in `conversation` (`conversations.list`).
fn conversation_total(client: &mut Client, conversation: &str) -> anyhow::Result<u64> {
    let list = client
        .call_value(methods::CONVERSATIONS_LIST, json!({}))
        .context("conversations.list")?;
    let found = list["conversations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["conversation"] == conversation)
        .and_then(|c| c["total"].as_u64());
    found.with_context(|| format!("no conversation {conversation:?} in {list}"))
}

/// CPU time and bytes written to disk so far, per process, then the machine's busy time.
fn cpu_times(pids: &[(&str, u32)]) -> anyhow::Result<Vec<(Duration, u64)>> {
    let mut times = pids
        .iter()
        .map(|(_, pid)| Ok((cpu_time(*pid)?, disk_writes(*pid)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    times.push((machine_busy()?, 0));
    Ok(times)
}
