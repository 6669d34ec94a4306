//! Which device is connected where: one live connection per device, so new mail can wake it
//! and a second connection of the same device can replace the first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::DeviceAddr;

#[derive(Debug)]
struct Entry {
    conn_id: u64,
    wake: Arc<Notify>,
    kick: CancellationToken,
}

/// The device -> connection map.
#[derive(Debug, Default)]
pub(crate) struct Router {
    live: Mutex<HashMap<DeviceAddr, Entry>>,
    next_conn: AtomicU64,
}

/// A connection's place in the router.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) conn_id: u64,
    /// Notified when new mail for the device is written (before its flush: SPEC.md, "Send and
    /// group commit").
    pub(crate) wake: Arc<Notify>,
    /// Cancelled when another connection of the same device replaces this one.
    pub(crate) kick: CancellationToken,
}

impl Router {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceAddr, Entry>> {
        match self.live.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers a connection for `addr`, replacing (and kicking) any earlier one.
    pub(crate) fn register(&self, addr: DeviceAddr) -> Registration {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let kick = CancellationToken::new();
        let entry = Entry {
            conn_id,
            wake: wake.clone(),
            kick: kick.clone(),
        };
        if let Some(old) = self.lock().insert(addr, entry) {
            old.kick.cancel();
        }
        // Mail may have arrived before this connection registered: look once at start.
        wake.notify_one();
        Registration {
            conn_id,
            wake,
            kick,
        }
    }

    /// Removes `addr`'s entry if it still belongs to `conn_id`.
    pub(crate) fn unregister(&self, addr: &DeviceAddr, conn_id: u64) {
        let mut live = self.lock();
        if live.get(addr).is_some_and(|e| e.conn_id == conn_id) {
            live.remove(addr);
        }
    }

    /// Wakes `addr`'s connection, if it has one.
    pub(crate) fn notify(&self, addr: &DeviceAddr) {
        if let Some(entry) = self.lock().get(addr) {
            entry.wake.notify_one();
        }
    }
}
