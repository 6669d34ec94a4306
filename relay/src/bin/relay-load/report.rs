//! What a run prints: the machine's load, CPU time used, latency percentiles, and the results
//! of a routing run side by side with another system's.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Cores and load average, printed before every run (the machine is shared).
pub(crate) fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cores} cores, {}", load_average())
}

/// `load average 1.2 1.4 1.5` from `/proc/loadavg`.
pub(crate) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load average {}", fields.join(" "))
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (clock ticks
/// of 10 ms, the Linux default `USER_HZ`).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Percentiles of a latency histogram in microseconds, as milliseconds.
pub(crate) fn percentiles(hist: &Histogram<u64>) -> String {
    if hist.is_empty() {
        return "no samples".to_owned();
    }
    let ms = |micros: u64| micros as f64 / 1_000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
        ms(hist.value_at_quantile(0.50)),
        ms(hist.value_at_quantile(0.90)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max()),
        hist.len()
    )
}

/// The outcome of one routing run against one system.
#[derive(Debug)]
pub(crate) struct RouteResult {
    /// Which system, and how it was set up.
    pub(crate) system: String,
    /// Envelopes that reached their recipients (measured window only, open loop).
    pub(crate) delivered: u64,
    /// Envelopes refused by the system.
    pub(crate) refused: u64,
    /// From the first send to the last delivery (closed loop) or the measured window.
    pub(crate) elapsed: Duration,
    /// From the first send until the system saw every delivery acknowledged, if checked.
    pub(crate) all_acked: Option<Duration>,
    /// Send-to-delivery latency, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// CPU time the system's server process used during the run, when it is a separate
    /// process.
    pub(crate) server_cpu: Option<Duration>,
    /// CPU time this process used during the run (clients, and the in-process relay).
    pub(crate) own_cpu: Option<Duration>,
    /// The wall time the CPU times were measured over.
    pub(crate) cpu_wall: Duration,
    /// Envelopes delivered over that time (warm-up included).
    pub(crate) cpu_envelopes: u64,
    /// The first errors.
    pub(crate) errors: Vec<String>,
}

impl RouteResult {
    /// Delivered envelopes per second.
    pub(crate) fn throughput(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn print(&self) {
        println!("-- {}", self.system);
        println!(
            "   delivered {} envelopes in {:.2} s: {:.0} envelopes/s routed (refused {})",
            self.delivered,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.refused
        );
        if let Some(acked) = self.all_acked {
            println!(
                "   every delivery acknowledged to the server {:.2} s after the first send",
                acked.as_secs_f64()
            );
        }
        println!("   send-to-delivery: {}", percentiles(&self.latency));
        let secs = self.cpu_wall.as_secs_f64().max(1e-9);
        let per_envelope =
            |cpu: Duration| cpu.as_secs_f64() * 1e6 / self.cpu_envelopes.max(1) as f64;
        match (self.server_cpu, self.own_cpu) {
            (Some(server), Some(own)) => println!(
                "   CPU: server {:.2} cores ({:.0} us per envelope), load tool {:.2} cores ({:.0} us)",
                server.as_secs_f64() / secs,
                per_envelope(server),
                own.as_secs_f64() / secs,
                per_envelope(own)
            ),
            (None, Some(own)) => println!(
                "   CPU: relay and load tool together {:.2} cores ({:.0} us per envelope)",
                own.as_secs_f64() / secs,
                per_envelope(own)
            ),
            _ => {}
        }
        for error in &self.errors {
            println!("   error: {error}");
        }
    }
}

/// Prints the relay against JetStream.
#[cfg(feature = "jetstream")]
pub(crate) fn compare(relay: &RouteResult, jetstream: &RouteResult) {
    let q = |r: &RouteResult, q: f64| r.latency.value_at_quantile(q) as f64;
    println!("-- relay / JetStream");
    println!(
        "   throughput {:.2}x, p50 latency {:.2}x, p99 latency {:.2}x (latency: below 1 is better)",
        relay.throughput() / jetstream.throughput().max(1e-9),
        q(relay, 0.5) / q(jetstream, 0.5).max(1.0),
        q(relay, 0.99) / q(jetstream, 0.99).max(1.0),
    );
}
