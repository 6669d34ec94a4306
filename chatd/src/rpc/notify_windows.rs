//! Readiness notices on Windows: none. `sd_notify` (`notify.rs`) is a systemd protocol, and
//! Windows has no service manager chatd speaks to yet (a Windows service would report through
//! the service control manager instead), so every notice is a no-op. Compiled, never run.

/// Sends nothing; the same methods as the Unix `Notifier`, so the daemon's wiring is one code.
#[derive(Debug)]
pub struct Notifier {}

impl Notifier {
    /// A notifier that sends nothing (there is no `NOTIFY_SOCKET` on Windows).
    pub fn from_env() -> Self {
        Self::none()
    }

    /// A notifier that sends nothing.
    pub fn none() -> Self {
        Self {}
    }

    /// Does nothing.
    pub fn ready(&self, _status: &str) {}

    /// Does nothing.
    pub fn stopping(&self) {}
}
