//! The same routing scenario against `nats-server` with JetStream, for comparison.
//!
//! Setup (LOAD.md discusses fairness): one `nats-server -js` child process with its store in a
//! temporary directory; one stream `MBOX` on file storage with subjects `mbox.>` and work-queue
//! retention (a message is deleted once acknowledged, like a relay mailbox); one subject
//! `mbox.<i>` per device mailbox and one durable pull consumer per device filtered on it, with
//! explicit acknowledgement of every message. Each device has its own NATS connection (as each
//! relay device has its own WebSocket), publishes with publish-and-await-ack (JetStream's
//! durable acknowledgement) keeping the same window of unanswered publishes as the relay run
//! keeps unanswered `Send` requests, and consumes with `messages()` (a continuous pull with
//! the client's default batch sizes), acknowledging each message.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context as JetStream};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _, stream};
use rand::RngExt as _;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::RouteArgs;
use crate::report::RouteResult;
use crate::route::{self, Pace, Plan, Stats};
use crate::scenarios;

const STREAM: &str = "MBOX";

/// Kills nats-server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `plan` against a fresh nats-server with JetStream.
pub(crate) async fn route(args: &RouteArgs, plan: Plan) -> anyhow::Result<RouteResult> {
    scenarios::ensure_fds(plan.devices as u64 * 2 + 256)?;
    let dir = tempfile::Builder::new()
        .prefix("relay-load-nats-")
        .tempdir()?;
    let addr: SocketAddr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let child = Command::new(&args.nats_server)
        .args(["-js", "-a", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .arg("-sd")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (apt-get install nats-server)",
                args.nats_server.display()
            )
        })?;
    let server = Server(child);
    let pid = server.0.id();
    let version = Command::new(&args.nats_server)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.trim().trim_start_matches("nats-server: ").to_owned()
        })
        .unwrap_or_default();

    let mut ready = false;
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !ready {
        bail!("nats-server did not start listening on {addr}");
    }

    let connected = Instant::now();
    let clients: Vec<async_nats::Client> = stream::iter(0..plan.devices)
        .map(|_| async move {
            async_nats::ConnectOptions::new()
                .connect(format!("nats://{addr}").as_str())
                .await
                .context("connecting to nats-server")
        })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let contexts: Vec<JetStream> = clients.iter().cloned().map(jetstream::new).collect();
    let stream_handle = contexts[0]
        .create_stream(jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec!["mbox.>".to_owned()],
            storage: StorageType::File,
            retention: RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the stream: {e}"))?;
    let consumers: Vec<pull::Stream> = stream::iter(contexts.iter().enumerate())
        .map(|(i, js)| async move {
            let consumer: jetstream::consumer::PullConsumer = js
                .create_consumer_on_stream(
                    pull::Config {
                        durable_name: Some(format!("d{i}")),
                        filter_subject: format!("mbox.{i}"),
                        ack_policy: AckPolicy::Explicit,
                        ..Default::default()
                    },
                    STREAM,
                )
                .await
                .map_err(|e| anyhow::anyhow!("creating consumer {i}: {e}"))?;
            consumer
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("consuming {i}: {e}"))
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let system = format!(
        "nats-server {version} JetStream, file storage, work-queue stream, pull consumer per \
         device, explicit acks"
    );
    println!(
        "{system}: {} devices connected with their consumers in {:.2} s",
        plan.devices,
        connected.elapsed().as_secs_f64()
    );

    let subjects: Arc<Vec<String>> =
        Arc::new((0..plan.devices).map(|i| format!("mbox.{i}")).collect());
    let outcome = scenarios::drive_with_server(plan, Some(pid), |stats, start, stop, tasks| {
        for (me, (js, messages)) in contexts.iter().cloned().zip(consumers).enumerate() {
            tasks.spawn(device(
                js,
                messages,
                me,
                plan,
                subjects.clone(),
                stats.clone(),
                start,
                stop.clone(),
            ));
        }
    })
    .await?;
    let mut result = outcome.finish(system, false);
    // Work-queue retention: the stream is empty once every message is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream_handle = stream_handle;
    loop {
        // An overloaded server may not answer in time; ask again until the deadline.
        let left = match stream_handle.info().await {
            Ok(info) => Some(info.state.messages),
            Err(_) => None,
        };
        if left == Some(0) {
            result.all_acked = Some(outcome.start.elapsed());
            break;
        }
        if Instant::now() > deadline {
            result.errors.push(match left {
                Some(n) => format!("{n} messages still unacknowledged after 20 s"),
                None => "the stream's state could not be read within 20 s".to_owned(),
            });
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    outcome.stop.cancel();
    let mut tasks = outcome.tasks;
    while tasks.join_next().await.is_some() {}
    drop(clients);
    drop(server);
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
async fn device(
    js: JetStream,
    messages: pull::Stream,
    me: usize,
    plan: Plan,
    subjects: Arc<Vec<String>>,
    stats: Arc<Stats>,
    start: Instant,
    stop: CancellationToken,
) {
    if let Err(e) = device_inner(js, messages, me, plan, &subjects, &stats, start, &stop).await
        && !stop.is_cancelled()
    {
        stats.error(format!("device {me}: {e:#}"));
    }
}

#[allow(clippy::too_many_arguments)]
async fn device_inner(
    js: JetStream,
    mut messages: pull::Stream,
    me: usize,
    plan: Plan,
    subjects: &[String],
    stats: &Stats,
    start: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut rng = route::device_rng(me);
    let mut pending = FuturesUnordered::new();
    let mut stamps = Vec::new();
    let window = match plan.pace {
        Pace::Closed { window, .. } => window,
        Pace::Open { .. } => usize::MAX,
    };
    let mut tick = plan.interval().map(|period| {
        let phase = period.mul_f64(rng.random_range(0.0..1.0));
        let mut tick = tokio::time::interval_at((start + phase).into(), period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        tick
    });
    let open_loop = tick.is_some();

    // One publish stamped `stamp` (JetStream has no multi-message publish: `per_send`
    // publishes); false when the budget is spent.
    macro_rules! publish {
        ($stamp:expr) => {{
            let n = stats.take(plan.per_send);
            for _ in 0..n {
                let to = route::pick_recipient(&mut rng, me, plan.devices);
                let payload = bytes::Bytes::from(route::payload(plan.payload, $stamp, me, to));
                let ack = js
                    .publish(subjects[to].clone(), payload)
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                pending.push(ack.into_future());
            }
            stats.sent.fetch_add(n as u64, Ordering::Relaxed);
            n > 0
        }};
    }

    if !open_loop {
        tokio::time::sleep_until(start.into()).await;
        for _ in 0..window {
            if !publish!(stats.now_ns()) {
                break;
            }
        }
    }
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            Some(ack) = pending.next(), if !pending.is_empty() => {
                match ack {
                    Ok(_) => {
                        stats.durable.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.error(format!("device {me}: publish ack: {e}"));
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !open_loop && pending.len() < window * plan.per_send {
                    let _ = publish!(stats.now_ns());
                }
            }
            message = messages.next() => {
                let Some(message) = message else {
                    bail!("the consumer stream ended");
                };
                let mut message = Some(message);
                while let Some(m) = message.take() {
                    let m = m.map_err(|e| anyhow::anyhow!("consuming: {e}"))?;
                    if let Some(stamp) = route::stamp(&m.payload) {
                        stamps.push(stamp);
                    }
                    m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                    message = messages.next().now_or_never().flatten();
                }
                stats.record(&mut stamps, stats.now_ns());
            }
            due = route::next_tick(&mut tick), if open_loop => {
                let _ = publish!(stats.stamp_of(due.into_std()));
            }
        }
    }
}
