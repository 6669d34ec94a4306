//! Routing envelopes between random pairs of devices: the plan (closed or open loop), the
//! counters and latency histogram every device updates, and the relay's device loop.
//!
//! Every payload starts with the time it was due to be sent (nanoseconds since the run's
//! epoch; in an open-loop run the scheduled time, so a stalled client cannot hide its own
//! queueing), the sender's index and the recipient's. The recipient records now minus that
//! stamp: send-to-delivery latency, through the relay's durable commit and push.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use protocol::frames::{ClientFrame, EnvelopeId, MAX_ACK_IDS, RequestId, ServerFrame};
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use tokio::time::Interval;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::RouteArgs;
use crate::devices::{self, Mailbox, Ws};

/// Bytes of the stamp at the start of every payload.
pub(crate) const STAMP_LEN: usize = 16;

/// How envelopes are offered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// `total` envelopes, each device keeping `window` requests unanswered.
    Closed { total: u64, window: usize },
    /// `rate` envelopes per second for `warmup + seconds`, only the last `seconds` recorded.
    Open {
        rate: u64,
        seconds: u64,
        warmup: u64,
    },
}

/// One routing run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) devices: usize,
    pub(crate) payload: usize,
    pub(crate) per_send: usize,
    pub(crate) pace: Pace,
}

impl Plan {
    pub(crate) fn closed(args: &RouteArgs, total: u64, window: usize) -> Self {
        Self {
            devices: args.devices.max(2),
            payload: args.payload.max(STAMP_LEN),
            per_send: args
                .per_send
                .clamp(1, protocol::frames::MAX_ENVELOPES_PER_SEND),
            pace: Pace::Closed {
                total,
                window: window.max(1),
            },
        }
    }

    pub(crate) fn open(args: &RouteArgs, rate: u64, seconds: u64, warmup: u64) -> Self {
        Self {
            devices: args.devices.max(2),
            payload: args.payload.max(STAMP_LEN),
            per_send: args
                .per_send
                .clamp(1, protocol::frames::MAX_ENVELOPES_PER_SEND),
            pace: Pace::Open {
                rate: rate.max(1),
                seconds: seconds.max(1),
                warmup,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self.pace {
            Pace::Closed { total, window } => format!(
                "{} devices, {total} envelopes of {} B, {} per request, window {window} requests per device (closed loop)",
                self.devices, self.payload, self.per_send
            ),
            Pace::Open {
                rate,
                seconds,
                warmup,
            } => format!(
                "{} devices, {rate} envelopes/s offered (open loop) of {} B, {} per request, {warmup} s warm-up + {seconds} s measured",
                self.devices, self.payload, self.per_send
            ),
        }
    }

    /// Per-device interval between requests in an open-loop run.
    pub(crate) fn interval(&self) -> Option<Duration> {
        match self.pace {
            Pace::Open { rate, .. } => Some(Duration::from_secs_f64(
                (self.devices * self.per_send) as f64 / rate as f64,
            )),
            Pace::Closed { .. } => None,
        }
    }
}

/// What every device of a run updates.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) epoch: Instant,
    /// Envelopes handed to the system.
    pub(crate) sent: AtomicU64,
    /// Envelopes the system reported durable (`SendAck`, JetStream publish ack).
    pub(crate) durable: AtomicU64,
    /// Envelopes that reached their recipient.
    pub(crate) delivered: AtomicU64,
    /// Envelopes refused (an `Error` reply).
    pub(crate) refused: AtomicU64,
    /// Envelopes still to send (closed loop).
    pub(crate) budget: AtomicI64,
    /// Stamps from this many ns after the epoch on are recorded (open loop: after warm-up).
    pub(crate) record_from_ns: u64,
    /// Open loop: no more sends.
    pub(crate) stop_sending: AtomicBool,
    /// Send-to-delivery latency, microseconds.
    pub(crate) latency: Mutex<Histogram<u64>>,
    /// The first errors seen.
    pub(crate) errors: Mutex<Vec<String>>,
}

impl Stats {
    pub(crate) fn new(plan: &Plan, epoch: Instant) -> anyhow::Result<Arc<Self>> {
        let (budget, record_from_ns) = match plan.pace {
            Pace::Closed { total, .. } => (i64::try_from(total).unwrap_or(i64::MAX), 0),
            Pace::Open { warmup, .. } => (i64::MAX, warmup.saturating_mul(1_000_000_000)),
        };
        Ok(Arc::new(Self {
            epoch,
            sent: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            budget: AtomicI64::new(budget),
            record_from_ns,
            stop_sending: AtomicBool::new(false),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 120_000_000, 3).context("the histogram")?,
            ),
            errors: Mutex::new(Vec::new()),
        }))
    }

    /// Takes up to `n` envelopes from the budget; how many were granted.
    pub(crate) fn take(&self, n: usize) -> usize {
        if self.stop_sending.load(Ordering::Relaxed) {
            return 0;
        }
        let before = self.budget.fetch_sub(n as i64, Ordering::Relaxed);
        before.clamp(0, n as i64) as usize
    }

    pub(crate) fn error(&self, message: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 5 {
            errors.push(message);
        }
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn now_ns(&self) -> u64 {
        self.stamp_of(Instant::now())
    }

    pub(crate) fn stamp_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Records the latencies of delivered payload stamps (ns), all at `now_ns`.
    pub(crate) fn record(&self, stamps: &mut Vec<u64>, now_ns: u64) {
        if stamps.is_empty() {
            return;
        }
        self.delivered
            .fetch_add(stamps.len() as u64, Ordering::Relaxed);
        let mut hist = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for stamp in stamps.drain(..) {
            if stamp >= self.record_from_ns {
                let micros = now_ns.saturating_sub(stamp) / 1_000;
                hist.saturating_record(micros.max(1));
            }
        }
    }
}

/// A payload of `len` bytes stamped for `sender` -> `recipient`.
pub(crate) fn payload(len: usize, stamp_ns: u64, sender: usize, recipient: usize) -> Vec<u8> {
    let mut payload = vec![0x5a; len.max(STAMP_LEN)];
    payload[..8].copy_from_slice(&stamp_ns.to_le_bytes());
    payload[8..12].copy_from_slice(&(sender as u32).to_le_bytes());
    payload[12..16].copy_from_slice(&(recipient as u32).to_le_bytes());
    payload
}

/// The stamp of a payload.
pub(crate) fn stamp(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// A random recipient other than `me`.
pub(crate) fn pick_recipient(rng: &mut SmallRng, me: usize, devices: usize) -> usize {
    let other = rng.random_range(0..devices - 1);
    if other >= me { other + 1 } else { other }
}

/// A device's RNG, distinct per device and run.
pub(crate) fn device_rng(me: usize) -> SmallRng {
    SmallRng::seed_from_u64(0x9e37_79b9_7f4a_7c15 ^ me as u64)
}

/// One device on the relay: sends by the plan, records and acknowledges deliveries, until
/// `stop` is cancelled.
pub(crate) async fn relay_device(
    mut ws: Ws,
    me: usize,
    plan: Plan,
    mailboxes: Arc<Vec<Mailbox>>,
    stats: Arc<Stats>,
    start: Instant,
    stop: CancellationToken,
) {
    if let Err(e) = relay_device_inner(&mut ws, me, plan, &mailboxes, &stats, start, &stop).await
        && !stop.is_cancelled()
    {
        stats.error(format!("device {me}: {e:#}"));
    }
    let _ = ws.close(None).await;
}

#[allow(clippy::too_many_arguments)]
async fn relay_device_inner(
    ws: &mut Ws,
    me: usize,
    plan: Plan,
    mailboxes: &[Mailbox],
    stats: &Stats,
    start: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut rng = device_rng(me);
    let mut next_request: u32 = 0;
    let mut in_flight = 0usize;
    let mut acks: Vec<EnvelopeId> = Vec::new();
    let mut stamps: Vec<u64> = Vec::new();
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

    // One `Send` of up to `per_send` envelopes stamped `stamp`; false when the budget is
    // spent.
    let mut make_send = |rng: &mut SmallRng, stamp: u64| -> Option<ClientFrame> {
        let n = stats.take(plan.per_send);
        if n == 0 {
            return None;
        }
        let envelopes = (0..n)
            .map(|_| {
                let to = pick_recipient(rng, me, plan.devices);
                mailboxes[to].envelope(payload(plan.payload, stamp, me, to))
            })
            .collect();
        next_request = next_request.wrapping_add(1).max(1);
        let request_id = RequestId::new(next_request)?;
        stats.sent.fetch_add(n as u64, Ordering::Relaxed);
        Some(ClientFrame::Send {
            request_id,
            envelopes,
        })
    };

    let open_loop = tick.is_some();
    if !open_loop {
        tokio::time::sleep_until(start.into()).await;
        for _ in 0..window {
            let Some(frame) = make_send(&mut rng, stats.now_ns()) else {
                break;
            };
            devices::feed(ws, &frame).await?;
            in_flight += 1;
        }
        ws.flush().await?;
    }

    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            message = ws.next() => {
                let Some(message) = message else {
                    anyhow::bail!("the relay closed the connection");
                };
                let mut message = Some(message);
                let mut freed = 0usize;
                // Everything already received, then one Ack and one flush.
                while let Some(m) = message.take() {
                    if let Some(frame) = devices::decode(m)? {
                        match frame {
                            ServerFrame::Deliver { envelope_id, payload, .. } => {
                                acks.push(envelope_id);
                                if let Some(stamp) = stamp(&payload) {
                                    stamps.push(stamp);
                                }
                            }
                            ServerFrame::SendAck { envelope_ids, .. } => {
                                stats.durable.fetch_add(envelope_ids.len() as u64, Ordering::Relaxed);
                                freed += 1;
                            }
                            ServerFrame::Error { request_id, code, message } => {
                                stats.error(format!("device {me}: {} {message}", code.name()));
                                if request_id.is_some() {
                                    // The request's envelopes are lost: count them as refused.
                                    stats.refused.fetch_add(plan.per_send as u64, Ordering::Relaxed);
                                    freed += 1;
                                }
                            }
                            _ => {}
                        }
                    }
                    message = ws.next().now_or_never().flatten();
                }
                stats.record(&mut stamps, stats.now_ns());
                for chunk in acks.chunks(MAX_ACK_IDS) {
                    devices::feed(ws, &ClientFrame::Ack { envelope_ids: chunk.to_vec() }).await?;
                }
                acks.clear();
                in_flight = in_flight.saturating_sub(freed);
                if !open_loop {
                    while in_flight < window {
                        let Some(frame) = make_send(&mut rng, stats.now_ns()) else {
                            break;
                        };
                        devices::feed(ws, &frame).await?;
                        in_flight += 1;
                    }
                }
                ws.flush().await?;
            }
            due = next_tick(&mut tick), if open_loop => {
                if let Some(frame) = make_send(&mut rng, stats.stamp_of(due.into_std())) {
                    devices::send(ws, &frame).await?;
                }
            }
        }
    }
}

/// The next tick of an open-loop schedule; never, without one.
pub(crate) async fn next_tick(tick: &mut Option<Interval>) -> tokio::time::Instant {
    match tick {
        Some(tick) => tick.tick().await,
        None => std::future::pending().await,
    }
}
