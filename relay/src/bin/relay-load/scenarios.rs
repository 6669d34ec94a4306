//! The scenarios: routing (throughput and latency, against the relay and JetStream), idle
//! connections, connect rate and mailbox drain.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _, stream};
use protocol::frames::{ClientFrame, MAX_ACK_IDS, MAX_ENVELOPES_PER_SEND, RequestId, ServerFrame};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::devices::{self, LoadDevice, Ws};
use crate::report::{self, RouteResult};
use crate::route::{self, Pace, Plan, Stats};
use crate::target::{self, Target};
use crate::{Against, RouteArgs, TargetArgs};

/// Raises the file descriptor limit to cover `needed`: the soft limit up to the hard one, and
/// the hard one too where the process may (root). A spawned relay inherits the limit.
pub(crate) fn ensure_fds(needed: u64) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    if limit >= needed {
        return Ok(());
    }
    if rlimit::setrlimit(rlimit::Resource::NOFILE, needed, needed).is_ok() {
        return Ok(());
    }
    bail!(
        "this run needs about {needed} file descriptors and the limit is {limit}: raise it \
         (`ulimit -n {needed}`; the hard limit as root) or use fewer connections"
    )
}

/// File descriptors a run with `clients` connections needs in this process.
fn fds_for(target_args: &TargetArgs, clients: usize) -> u64 {
    let relay_side = if target_args.relay == crate::RelayMode::Inproc {
        clients
    } else {
        0
    };
    (clients + relay_side) as u64 + 256
}

/// A run salt, so devices differ between runs against a long-lived relay.
fn salt() -> u64 {
    rand::random()
}

/// Connects and authenticates every device, `concurrency` at a time, in order.
pub(crate) async fn connect_all(
    target: &Target,
    devices: &[LoadDevice],
    concurrency: usize,
) -> anyhow::Result<Vec<Ws>> {
    stream::iter(devices.iter().enumerate())
        .map(|(i, device)| async move {
            devices::connect_as(target, i, device)
                .await
                .with_context(|| format!("connecting device {i}"))
        })
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Throughput or latency against the relay, JetStream or both.
pub(crate) async fn route(
    target_args: &TargetArgs,
    args: &RouteArgs,
    plan: Plan,
) -> anyhow::Result<()> {
    println!("plan: {}", plan.describe());
    let mut relay_result = None;
    if matches!(args.against, Against::Relay | Against::Both) {
        let result = route_relay(target_args, plan).await?;
        result.print();
        relay_result = Some(result);
    }
    if matches!(args.against, Against::Jetstream | Against::Both) {
        route_jetstream(args, plan, relay_result.as_ref()).await?;
    }
    Ok(())
}

#[cfg(feature = "jetstream")]
async fn route_jetstream(
    args: &RouteArgs,
    plan: Plan,
    relay: Option<&RouteResult>,
) -> anyhow::Result<()> {
    println!("{}", report::machine_line());
    let result = crate::jetstream::route(args, plan).await?;
    result.print();
    if let Some(relay) = relay {
        report::compare(relay, &result);
    }
    Ok(())
}

#[cfg(not(feature = "jetstream"))]
async fn route_jetstream(
    _args: &RouteArgs,
    _plan: Plan,
    _relay: Option<&RouteResult>,
) -> anyhow::Result<()> {
    bail!("JetStream runs need the load tool built with `--features jetstream`")
}

async fn route_relay(target_args: &TargetArgs, plan: Plan) -> anyhow::Result<RouteResult> {
    ensure_fds(fds_for(target_args, plan.devices))?;
    let target = Target::start(target_args).await?;
    let devices = devices::generate(plan.devices, salt());
    let mailboxes: Arc<Vec<_>> = Arc::new(devices.iter().map(LoadDevice::mailbox).collect());
    let connected = Instant::now();
    let sockets = connect_all(&target, &devices, 64).await?;
    println!(
        "{}: {} devices connected and authenticated in {:.2} s",
        target.describe(),
        sockets.len(),
        connected.elapsed().as_secs_f64()
    );
    let server_pid = if target.in_process() {
        None
    } else {
        target.pid()
    };
    // A relay that was running before (`--relay external`) has acknowledgements of its own.
    let acked_before = target.acked().await?;
    let outcome = drive_with_server(plan, server_pid, |stats, start, stop, tasks| {
        for (me, ws) in sockets.into_iter().enumerate() {
            tasks.spawn(route::relay_device(
                ws,
                me,
                plan,
                mailboxes.clone(),
                stats.clone(),
                start,
                stop.clone(),
            ));
        }
    })
    .await?;
    let mut result = outcome.finish(target.describe(), target.in_process());
    // Every delivery acknowledged to the relay (it deletes on ack).
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = outcome.delivered_total;
    loop {
        if target.acked().await? >= acked_before + all {
            result.all_acked = Some(outcome.start.elapsed());
            break;
        }
        if Instant::now() > deadline {
            result
                .errors
                .push("not every delivery was acknowledged within 20 s".to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    outcome.stop.cancel();
    let mut tasks = outcome.tasks;
    while tasks.join_next().await.is_some() {}
    target.stop().await?;
    Ok(result)
}

/// A routing run in progress or done: shared by the relay and JetStream drivers.
pub(crate) struct Outcome {
    pub(crate) stats: Arc<Stats>,
    pub(crate) start: Instant,
    pub(crate) elapsed: Duration,
    pub(crate) delivered_total: u64,
    pub(crate) stop: CancellationToken,
    pub(crate) tasks: JoinSet<()>,
    cpu_before: (Option<Duration>, Option<Duration>),
    server_pid: Option<u32>,
}

impl Outcome {
    /// The result, CPU use included. `in_process`: the server shares this process.
    pub(crate) fn finish(&self, system: String, in_process: bool) -> RouteResult {
        let own_now = report::cpu_time(std::process::id());
        let server_now = self.server_pid.and_then(report::cpu_time);
        let diff = |now: Option<Duration>, before: Option<Duration>| match (now, before) {
            (Some(now), Some(before)) => Some(now.saturating_sub(before)),
            _ => None,
        };
        let latency = self
            .stats
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let delivered = match self.stats.record_from_ns {
            0 => self.stats.delivered.load(Ordering::Relaxed),
            _ => latency.len(),
        };
        RouteResult {
            system,
            delivered,
            refused: self.stats.refused.load(Ordering::Relaxed),
            elapsed: self.elapsed,
            all_acked: None,
            latency,
            server_cpu: if in_process {
                None
            } else {
                diff(server_now, self.cpu_before.1)
            },
            own_cpu: diff(own_now, self.cpu_before.0),
            cpu_wall: self.start.elapsed(),
            cpu_envelopes: self.stats.delivered.load(Ordering::Relaxed),
            errors: self
                .stats
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Starts the device tasks `spawn` makes and waits for the plan to complete, measuring the
/// CPU time of this process and of the server process `server_pid`.
pub(crate) async fn drive_with_server(
    plan: Plan,
    server_pid: Option<u32>,
    spawn: impl FnOnce(&Arc<Stats>, Instant, &CancellationToken, &mut JoinSet<()>),
) -> anyhow::Result<Outcome> {
    let epoch = Instant::now();
    let start = epoch + Duration::from_millis(200);
    let stats = Stats::new(&plan, start)?;
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    spawn(&stats, start, &stop, &mut tasks);
    tokio::time::sleep_until(start.into()).await;
    let cpu_before = (
        report::cpu_time(std::process::id()),
        server_pid.and_then(report::cpu_time),
    );
    let done = |stats: &Stats, target: u64| {
        stats.delivered.load(Ordering::Relaxed) + stats.refused.load(Ordering::Relaxed) >= target
    };
    let elapsed = match plan.pace {
        Pace::Closed { total, .. } => {
            let deadline = start + Duration::from_secs(300);
            while !done(&stats, total) {
                if Instant::now() > deadline {
                    bail!(
                        "timed out: {} of {total} delivered; errors: {:?}",
                        stats.delivered.load(Ordering::Relaxed),
                        stats.errors.lock().map(|e| e.clone()).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            start.elapsed()
        }
        Pace::Open {
            seconds, warmup, ..
        } => {
            let end = start + Duration::from_secs(warmup + seconds);
            tokio::time::sleep_until(end.into()).await;
            stats.stop_sending.store(true, Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done(&stats, stats.sent.load(Ordering::Relaxed)) {
                if Instant::now() > deadline {
                    stats.error(format!(
                        "{} of {} sent never delivered within 60 s",
                        stats.sent.load(Ordering::Relaxed)
                            - stats.delivered.load(Ordering::Relaxed),
                        stats.sent.load(Ordering::Relaxed)
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Duration::from_secs(seconds)
        }
    };
    let delivered_total = stats.delivered.load(Ordering::Relaxed);
    Ok(Outcome {
        stats,
        start,
        elapsed,
        delivered_total,
        stop,
        tasks,
        cpu_before,
        server_pid,
    })
}

/// Idle authenticated connections and the relay's RSS per connection.
pub(crate) async fn idle(
    target_args: &TargetArgs,
    connections: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    ensure_fds(fds_for(target_args, connections))?;
    let target = Target::start(target_args).await?;
    let Some(pid) = target.pid() else {
        bail!("the idle scenario reads the relay's RSS: use --relay spawn (or inproc)");
    };
    if target.in_process() {
        println!(
            "warning: the relay runs in this process, so the RSS below includes the clients' \
             share; use --relay spawn for the relay's alone"
        );
    }
    let devices = devices::generate(connections, salt());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target::rss_bytes(pid)?;
    let started = Instant::now();
    let sockets = connect_all(&target, &devices, concurrency).await?;
    let connect_time = started.elapsed();
    // Let the connections settle (the first ping is 30 s away; nothing else happens).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target::rss_bytes(pid)?;
    let open = target::scrape(target.addr, "chat_relay_authenticated_open").await?;
    let per = after.saturating_sub(before) as f64 / sockets.len().max(1) as f64;
    println!(
        "{}: {} idle authenticated connections ({open} open at the relay), opened in {:.2} s",
        target.describe(),
        sockets.len(),
        connect_time.as_secs_f64()
    );
    println!(
        "   relay RSS {:.1} MiB before, {:.1} MiB after: {:.1} KiB per connection",
        before as f64 / 1_048_576.0,
        after as f64 / 1_048_576.0,
        per / 1024.0
    );
    drop(sockets);
    target.stop().await
}

/// Authenticated connects per second.
pub(crate) async fn connect(
    target_args: &TargetArgs,
    connections: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    ensure_fds(fds_for(target_args, connections))?;
    let target = Target::start(target_args).await?;
    let devices = devices::generate(connections, salt());
    let cpu_before = target.pid().and_then(report::cpu_time);
    let started = Instant::now();
    let sockets = connect_all(&target, &devices, concurrency).await?;
    let elapsed = started.elapsed();
    let cpu = target
        .pid()
        .and_then(report::cpu_time)
        .zip(cpu_before)
        .map(|(now, before)| now.saturating_sub(before));
    println!(
        "{}: {} authenticated connects in {:.2} s: {:.0} connects/s ({} at a time)",
        target.describe(),
        sockets.len(),
        elapsed.as_secs_f64(),
        sockets.len() as f64 / elapsed.as_secs_f64(),
        concurrency
    );
    if let Some(cpu) = cpu {
        println!(
            "   CPU of the {} process: {:.2} cores",
            if target.in_process() {
                "relay and load tool"
            } else {
                "relay"
            },
            cpu.as_secs_f64() / elapsed.as_secs_f64()
        );
    }
    drop(sockets);
    target.stop().await
}

/// Queues envelopes for an offline device, then times its reconnect until all are delivered
/// and acknowledged.
pub(crate) async fn drain(
    target_args: &TargetArgs,
    envelopes: usize,
    payload: usize,
    repeat: usize,
) -> anyhow::Result<()> {
    ensure_fds(1024)?;
    let target = Target::start(target_args).await?;
    let devices = devices::generate(2 * repeat.max(1), salt());
    println!("{}", target.describe());
    for round in 0..repeat.max(1) {
        let receiver = &devices[2 * round];
        let sender = &devices[2 * round + 1];
        // Register the receiver, then leave it offline.
        let mut ws = devices::connect_as(&target, 0, receiver).await?;
        ws.close(None).await.ok();
        drop(ws);
        let queued = Instant::now();
        queue(&target, sender, receiver, envelopes, payload).await?;
        let queue_time = queued.elapsed();
        let acked_before = target.acked().await?;

        let started = Instant::now();
        let mut ws = devices::connect_as(&target, 0, receiver).await?;
        let authenticated = started.elapsed();
        let mut delivered = 0usize;
        let mut acks = Vec::new();
        while delivered < envelopes {
            let first = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("no delivery for 30 s")?;
            let mut message = first;
            while let Some(m) = message.take() {
                if let Some(ServerFrame::Deliver { envelope_id, .. }) = devices::decode(m)? {
                    acks.push(envelope_id);
                    delivered += 1;
                }
                message = ws.next().now_or_never().flatten();
            }
            for chunk in acks.chunks(MAX_ACK_IDS) {
                devices::feed(
                    &mut ws,
                    &ClientFrame::Ack {
                        envelope_ids: chunk.to_vec(),
                    },
                )
                .await?;
            }
            acks.clear();
            ws.flush().await?;
        }
        let all_delivered = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(30);
        while target.acked().await? < acked_before + envelopes as u64 {
            if Instant::now() > deadline {
                bail!("the relay did not record every acknowledgement within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let all_acked = started.elapsed();
        println!(
            "   round {}: queued {envelopes} envelopes of {payload} B in {:.2} s; reconnect: \
             authenticated {:.1} ms, all delivered {:.1} ms, all acknowledged at the relay {:.1} ms",
            round + 1,
            queue_time.as_secs_f64(),
            authenticated.as_secs_f64() * 1e3,
            all_delivered.as_secs_f64() * 1e3,
            all_acked.as_secs_f64() * 1e3
        );
        ws.close(None).await.ok();
    }
    target.stop().await
}

/// `sender` sends `n` envelopes to `receiver`, 64 per request, and waits for every `SendAck`.
async fn queue(
    target: &Target,
    sender: &LoadDevice,
    receiver: &LoadDevice,
    n: usize,
    payload: usize,
) -> anyhow::Result<()> {
    let mut ws = devices::connect_as(target, 1, sender).await?;
    let mailbox = receiver.mailbox();
    let mut requests = 0u32;
    let mut left = n;
    while left > 0 {
        let count = left.min(MAX_ENVELOPES_PER_SEND);
        left -= count;
        requests += 1;
        let envelopes = (0..count)
            .map(|_| mailbox.envelope(route::payload(payload, 0, 1, 0)))
            .collect();
        let request_id = RequestId::new(requests).context("request id")?;
        devices::feed(
            &mut ws,
            &ClientFrame::Send {
                request_id,
                envelopes,
            },
        )
        .await?;
    }
    ws.flush().await?;
    let mut answered = 0;
    while answered < requests {
        match devices::recv(&mut ws).await? {
            ServerFrame::SendAck { .. } => answered += 1,
            ServerFrame::Error { code, message, .. } => {
                bail!("queueing refused: {} {message}", code.name())
            }
            _ => {}
        }
    }
    ws.close(None).await.ok();
    Ok(())
}
