//! The user's local relay: the relay a daemon with no relay configured uses, which belongs
//! to the user rather than to any one daemon. Its state lives in a directory of its own
//! ([`dir`]: store, recorded address, host's pid); whichever of the user's daemons can bind
//! its address and open its store hosts it, and the others take over when it stops
//! ([`supervisor`]); on Linux a listener of another user on that address is never taken for
//! it ([`owner`]).

pub mod dir;
pub mod owner;
pub mod supervisor;

pub use dir::LocalRelayDir;
pub use supervisor::LocalRelay;

/// The effective uid of this process, the owner a local relay's listener must have.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::geteuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

#[cfg(test)]
mod tests;
