//! Links to other accounts' relays (SPEC.md 10.9): anonymous [`RelayLink`]s, opened on demand
//! when a contact's home relay is not ours, kept while they are used, closed when idle, and
//! bounded in number. Each has the limits, timeouts and backoff of the home link (it is the
//! same link, without authentication); what it last reported is kept, so a message waiting
//! for that relay can say why.

use std::collections::HashMap;
use std::time::Duration;

use api::types::ConnectionState;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::relay_link::{LinkConfig, LinkEvent, RelayLink, Requester};

/// Most links to other relays open at once.
pub const MAX_FOREIGN_LINKS: usize = 32;
/// A link unused for this long is closed (a send's answer comes well within it).
pub const FOREIGN_IDLE: Duration = Duration::from_secs(120);
/// A link used more recently than this is never closed to make room for another.
const IN_USE: Duration = Duration::from_secs(30);

/// One link to another relay.
#[derive(Debug)]
struct Pooled {
    link: RelayLink,
    tls_pin: Option<[u8; 32]>,
    last_used: Instant,
    state: ConnectionState,
    error: Option<String>,
}

/// Every open link to another relay, by relay binding.
#[derive(Debug, Default)]
pub struct RelayPool {
    links: HashMap<String, Pooled>,
}

/// Why no link could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_FOREIGN_LINKS} other relays are in use at once; this one waits its turn")]
pub struct PoolFull;

impl RelayPool {
    /// The requester of the link to `url`, opening one if needed (`events` makes the channel
    /// its events go to). A link whose pin differs from `tls_pin` (the contact moved to a new
    /// certificate) is replaced. When [`MAX_FOREIGN_LINKS`] are open, the least recently used
    /// one idle for [`IN_USE`] is closed first; if none is, [`PoolFull`].
    pub fn requester(
        &mut self,
        url: &str,
        tls_pin: Option<[u8; 32]>,
        extra_root_pem: Option<Vec<u8>>,
        events: impl FnOnce() -> mpsc::UnboundedSender<LinkEvent>,
    ) -> Result<Requester, PoolFull> {
        let now = Instant::now();
        if let Some(pooled) = self.links.get_mut(url)
            && pooled.tls_pin == tls_pin
        {
            pooled.last_used = now;
            return Ok(pooled.link.requester());
        }
        self.links.remove(url);
        if self.links.len() >= MAX_FOREIGN_LINKS {
            let oldest = self
                .links
                .iter()
                .filter(|(_, p)| now.duration_since(p.last_used) >= IN_USE)
                .min_by_key(|(_, p)| p.last_used)
                .map(|(url, _)| url.clone())
                .ok_or(PoolFull)?;
            tracing::debug!(relay = %oldest, "closing the least recently used relay link");
            self.links.remove(&oldest);
        }
        let link = RelayLink::start(
            LinkConfig {
                url: url.to_owned(),
                extra_root_pem,
                tls_pin,
                same_user: false,
            },
            None,
            events(),
        );
        let requester = link.requester();
        self.links.insert(
            url.to_owned(),
            Pooled {
                link,
                tls_pin,
                last_used: now,
                state: ConnectionState::Connecting,
                error: None,
            },
        );
        Ok(requester)
    }

    /// Records a link's new state (and why an attempt failed).
    pub fn on_state(&mut self, url: &str, state: ConnectionState, error: Option<String>) {
        if let Some(pooled) = self.links.get_mut(url) {
            pooled.state = state;
            if error.is_some() || state == ConnectionState::Connected {
                pooled.error = error;
            }
        }
    }

    /// Why the link to `url` is not connected, if it is not and said why.
    pub fn trouble(&self, url: &str) -> Option<String> {
        let pooled = self.links.get(url)?;
        match pooled.state {
            ConnectionState::Connected => None,
            _ => pooled.error.clone(),
        }
    }

    /// Drops the link to `url` if it is not connected, so the next request dials the relay at
    /// once instead of after the link's reconnect delay (`outbox.retry`).
    pub fn redial(&mut self, url: &str) {
        if self
            .links
            .get(url)
            .is_some_and(|pooled| pooled.state != ConnectionState::Connected)
        {
            self.links.remove(url);
        }
    }

    /// Closes links unused for [`FOREIGN_IDLE`].
    pub fn close_idle(&mut self) {
        let now = Instant::now();
        self.links.retain(|url, pooled| {
            let keep = now.duration_since(pooled.last_used) < FOREIGN_IDLE;
            if !keep {
                tracing::debug!(relay = %url, "closing an idle relay link");
            }
            keep
        });
    }

    /// Links open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.links.len()
    }

    /// The relays linked to now, with their states.
    pub fn states(&self) -> Vec<(String, ConnectionState)> {
        let mut states: Vec<_> = self
            .links
            .iter()
            .map(|(url, p)| (url.clone(), p.state))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> mpsc::UnboundedSender<LinkEvent> {
        mpsc::unbounded_channel().0
    }

    #[tokio::test(start_paused = true)]
    async fn links_are_shared_bounded_and_closed_when_idle() {
        let mut pool = RelayPool::default();
        // Nothing listens on these ports: the links keep trying, which is all this needs.
        let url = |i: usize| format!("ws://127.0.0.1:{}/v1", 1 + i);
        pool.requester(&url(0), None, None, channel).unwrap();
        pool.requester(&url(0), None, None, channel).unwrap();
        assert_eq!(pool.len(), 1, "one link per relay");
        tokio::time::advance(Duration::from_millis(1)).await;
        for i in 1..MAX_FOREIGN_LINKS {
            pool.requester(&url(i), None, None, channel).unwrap();
        }
        assert_eq!(pool.len(), MAX_FOREIGN_LINKS);
        // All in use: no room.
        assert_eq!(
            pool.requester(&url(99), None, None, channel).err(),
            Some(PoolFull)
        );
        // Once some have been idle a while, the least recently used makes room.
        tokio::time::advance(IN_USE).await;
        pool.requester(&url(1), None, None, channel).unwrap();
        pool.requester(&url(99), None, None, channel).unwrap();
        assert_eq!(pool.len(), MAX_FOREIGN_LINKS);
        let open: Vec<String> = pool.states().into_iter().map(|(u, _)| u).collect();
        assert!(open.contains(&url(1)) && open.contains(&url(99)));
        assert!(!open.contains(&url(0)), "the least recently used went");
        // A new pin replaces the link.
        pool.requester(&url(99), Some([1; 32]), None, channel)
            .unwrap();
        assert_eq!(pool.len(), MAX_FOREIGN_LINKS);
        // Idle links close.
        tokio::time::advance(FOREIGN_IDLE).await;
        pool.requester(&url(1), None, None, channel).unwrap();
        pool.close_idle();
        assert_eq!(pool.len(), 1);
        pool.on_state(
            &url(1),
            ConnectionState::Waiting,
            Some("connection refused".into()),
        );
        assert_eq!(pool.trouble(&url(1)).as_deref(), Some("connection refused"));
        pool.on_state(&url(1), ConnectionState::Connected, None);
        assert_eq!(pool.trouble(&url(1)), None);
    }
}
