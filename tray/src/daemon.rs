//! The connection to chatd, as two sockets: one subscribed to events (read by a thread of its
//! own that forwards each event to the main loop), and one for calls (`conversations.list`,
//! `contacts.get`, `messages.mark_read`, `account.lock`), so a call never waits behind a
//! stream of events and the event reader never needs a read timeout (which could split a line).
//!
//! Each [`Session`] has a number; what its reader sends is tagged with it, so the main loop
//! ignores whatever a previous session's reader still had in flight.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use api::client::{Client, ClientError};
use api::events::{Event, NOTIFICATION};
use api::methods as m;
use api::types::Subscribe;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Input;

/// How long a call may take before the daemon is taken for wedged and the session ends.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What the event reader forwards.
#[derive(Debug)]
pub enum Delivery {
    /// An event. `cursor` is read even from an event this version cannot parse (a newer
    /// daemon's kind), so it still counts as handled.
    Event {
        /// Its cursor.
        cursor: Option<u64>,
        /// The event, if this version knows its kind.
        event: Option<Box<Event>>,
    },
    /// The event connection ended.
    Closed(String),
}

/// One connection to chatd: the subscription's reader thread and the call socket.
#[derive(Debug)]
pub struct Session {
    id: u64,
    calls: Client,
    stop: Arc<AtomicBool>,
}

impl Session {
    /// Connects to the socket, subscribes with `since` (delivered events go to `inputs` as
    /// [`Input::Daemon`] tagged with `id`), and opens the call socket.
    pub fn open(
        socket: &Path,
        since: u64,
        id: u64,
        inputs: Sender<Input>,
    ) -> Result<Self, ClientError> {
        let mut events = Client::connect(socket)?;
        events.set_read_timeout(Some(CALL_TIMEOUT))?;
        let subscription: serde_json::Value =
            events.call(m::EVENTS_SUBSCRIBE, &Subscribe { since: Some(since) })?;
        events.set_read_timeout(None)?;
        let calls = Client::connect(socket)?;
        calls.set_read_timeout(Some(CALL_TIMEOUT))?;

        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("chatd-events".into())
            .spawn(move || {
                loop {
                    let delivery = match events.next_notification() {
                        Ok(n) if n.method != NOTIFICATION || n.subscription != subscription => {
                            continue;
                        }
                        Ok(n) => Delivery::Event {
                            cursor: n.result.get("cursor").and_then(serde_json::Value::as_u64),
                            event: n.event().map(Box::new),
                        },
                        Err(e) => Delivery::Closed(e.to_string()),
                    };
                    // A stale reader (its session ended) stops at its next event; its socket
                    // closes with it.
                    let closed = matches!(delivery, Delivery::Closed(_));
                    if stopped.load(Ordering::Relaxed)
                        || inputs.send(Input::Daemon(id, delivery)).is_err()
                        || closed
                    {
                        return;
                    }
                }
            })
            .map_err(ClientError::Io)?;
        Ok(Self { id, calls, stop })
    }

    /// This session's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Calls `method` on the call socket.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        self.calls.call(method, params)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether an error means the connection is gone (rather than a refused call).
pub fn is_disconnect(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Unreachable { .. } | ClientError::Io(_) | ClientError::Protocol(_)
    )
}
