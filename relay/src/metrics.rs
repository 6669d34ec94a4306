//! Counters the relay exposes at `/metrics` (Prometheus text format) and in its logs.
//! They count events and bytes, never contents or identities.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the relay refused or cut off something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Over the total connection cap.
    TooManyConnections,
    /// Over the per-IP connection cap.
    TooManyConnectionsFromIp,
    /// Over the per-IP connection rate.
    ConnectRateLimited,
    /// TLS, upgrade or authentication did not finish in time.
    HandshakeTimeout,
    /// The TLS or WebSocket handshake failed.
    HandshakeFailed,
    /// Authentication failed.
    AuthFailed,
    /// A frame larger than the limit (closed with 1009).
    FrameTooLarge,
    /// A frame that did not decode.
    BadFrame,
    /// A frame over a rate limit.
    RateLimited,
    /// A send to a full mailbox.
    MailboxFull,
    /// A send over the relay's storage budget.
    StorageFull,
    /// A send to an unknown device.
    UnknownDevice,
    /// A connection idle past the timeout.
    IdleTimeout,
    /// A client that did not read its frames fast enough.
    SlowReader,
    /// A `Send` or `Deposit` without a valid delivery token for an account that requires one.
    TokenRequired,
    /// Envelopes without a valid token over the recipient's stranger rate.
    StrangerRateLimited,
    /// A `SetDeliveryTokens` over the per-account cap of digests.
    QuotaExceeded,
    /// A reachability record that was refused.
    InvalidRecord,
    /// A request that needs authentication on an anonymous connection.
    AuthRequired,
}

impl Rejection {
    const ALL: [Rejection; 19] = [
        Rejection::TooManyConnections,
        Rejection::TooManyConnectionsFromIp,
        Rejection::ConnectRateLimited,
        Rejection::HandshakeTimeout,
        Rejection::HandshakeFailed,
        Rejection::AuthFailed,
        Rejection::FrameTooLarge,
        Rejection::BadFrame,
        Rejection::RateLimited,
        Rejection::MailboxFull,
        Rejection::StorageFull,
        Rejection::UnknownDevice,
        Rejection::IdleTimeout,
        Rejection::SlowReader,
        Rejection::TokenRequired,
        Rejection::StrangerRateLimited,
        Rejection::QuotaExceeded,
        Rejection::InvalidRecord,
        Rejection::AuthRequired,
    ];

    /// The label used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Rejection::TooManyConnections => "too_many_connections",
            Rejection::TooManyConnectionsFromIp => "too_many_connections_from_ip",
            Rejection::ConnectRateLimited => "connect_rate_limited",
            Rejection::HandshakeTimeout => "handshake_timeout",
            Rejection::HandshakeFailed => "handshake_failed",
            Rejection::AuthFailed => "auth_failed",
            Rejection::FrameTooLarge => "frame_too_large",
            Rejection::BadFrame => "bad_frame",
            Rejection::RateLimited => "rate_limited",
            Rejection::MailboxFull => "mailbox_full",
            Rejection::StorageFull => "storage_full",
            Rejection::UnknownDevice => "unknown_device",
            Rejection::IdleTimeout => "idle_timeout",
            Rejection::SlowReader => "slow_reader",
            Rejection::TokenRequired => "token_required",
            Rejection::StrangerRateLimited => "stranger_rate_limited",
            Rejection::QuotaExceeded => "quota_exceeded",
            Rejection::InvalidRecord => "invalid_record",
            Rejection::AuthRequired => "auth_required",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The relay's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted at the TCP level.
    pub connections_accepted: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Devices that authenticated.
    pub authenticated: AtomicU64,
    /// Authenticated connections open now.
    pub authenticated_open: AtomicU64,
    /// Connections that made an anonymous request before (or without) authenticating.
    pub anonymous: AtomicU64,
    /// `Deposit` requests received (authenticated or anonymous).
    pub deposits: AtomicU64,
    /// Envelopes dropped unseen for a revoked delivery token (acknowledged, never stored).
    pub envelopes_dropped: AtomicU64,
    /// Envelopes stored (acknowledged to their senders).
    pub envelopes_stored: AtomicU64,
    /// Envelopes delivered (pushed; redeliveries count again).
    pub envelopes_delivered: AtomicU64,
    /// Envelopes acknowledged by their recipients.
    pub envelopes_acked: AtomicU64,
    /// Envelopes deleted by the TTL.
    pub envelopes_expired: AtomicU64,
    /// Group commits (one flush each).
    pub commits: AtomicU64,
    /// Group posts accepted, by kind: application, commit, direct (SPEC.md 10.10).
    pub group_posts: [AtomicU64; 3],
    /// Group deliveries stored: one per recipient device of an accepted post.
    pub group_deliveries: AtomicU64,
    /// Recipients of accepted group posts skipped because their mailbox was full.
    pub group_skipped_full: AtomicU64,
    /// Bytes received in frames.
    pub bytes_in: AtomicU64,
    /// Bytes sent in frames.
    pub bytes_out: AtomicU64,
    rejections: [AtomicU64; Rejection::ALL.len()],
}

impl Metrics {
    /// Counts a rejection.
    pub fn reject(&self, why: Rejection) {
        if let Some(counter) = self.rejections.get(why.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many rejections of one kind happened.
    pub fn rejections(&self, why: Rejection) -> u64 {
        self.rejections
            .get(why.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Adds to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts from a gauge.
    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every counter, plus the stored totals given.
    pub fn render(&self, stored_envelopes: u64, devices: u64) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &AtomicU64); 16] = [
            (
                "chat_relay_connections_accepted_total",
                "counter",
                &self.connections_accepted,
            ),
            (
                "chat_relay_connections_open",
                "gauge",
                &self.connections_open,
            ),
            (
                "chat_relay_authenticated_total",
                "counter",
                &self.authenticated,
            ),
            (
                "chat_relay_authenticated_open",
                "gauge",
                &self.authenticated_open,
            ),
            (
                "chat_relay_anonymous_connections_total",
                "counter",
                &self.anonymous,
            ),
            ("chat_relay_deposits_total", "counter", &self.deposits),
            (
                "chat_relay_envelopes_dropped_total",
                "counter",
                &self.envelopes_dropped,
            ),
            (
                "chat_relay_envelopes_stored_total",
                "counter",
                &self.envelopes_stored,
            ),
            (
                "chat_relay_envelopes_delivered_total",
                "counter",
                &self.envelopes_delivered,
            ),
            (
                "chat_relay_envelopes_acked_total",
                "counter",
                &self.envelopes_acked,
            ),
            (
                "chat_relay_envelopes_expired_total",
                "counter",
                &self.envelopes_expired,
            ),
            ("chat_relay_commits_total", "counter", &self.commits),
            (
                "chat_relay_group_deliveries_total",
                "counter",
                &self.group_deliveries,
            ),
            (
                "chat_relay_group_skipped_full_total",
                "counter",
                &self.group_skipped_full,
            ),
            ("chat_relay_bytes_in_total", "counter", &self.bytes_in),
            ("chat_relay_bytes_out_total", "counter", &self.bytes_out),
        ];
        for (name, kind, counter) in counters {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {}", Self::get(counter));
        }
        let _ = writeln!(out, "# TYPE chat_relay_group_posts_total counter");
        for (kind, counter) in ["application", "commit", "direct"]
            .iter()
            .zip(&self.group_posts)
        {
            let _ = writeln!(
                out,
                "chat_relay_group_posts_total{{kind=\"{kind}\"}} {}",
                Self::get(counter)
            );
        }
        let _ = writeln!(out, "# TYPE chat_relay_rejections_total counter");
        for why in Rejection::ALL {
            let _ = writeln!(
                out,
                "chat_relay_rejections_total{{reason=\"{}\"}} {}",
                why.name(),
                self.rejections(why)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE chat_relay_mailbox_envelopes gauge\nchat_relay_mailbox_envelopes {stored_envelopes}\n\
             # TYPE chat_relay_devices gauge\nchat_relay_devices {devices}"
        );
        out
    }
}
