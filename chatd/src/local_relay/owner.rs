//! Who listens on the local relay's address: on Linux, the owner uid of the listening TCP
//! socket, read from `/proc/net/tcp` and `/proc/net/tcp6`, so that a daemon never takes another
//! user's listener for its own local relay (ARCHITECTURE.md, "Threat model"). Elsewhere there is
//! no such table, and the per-user recorded port is the only guard.
// The /proc/net/tcp reader is used on Linux only; elsewhere the recorded port is the guard.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Who owns the listener on an address, as far as this system can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Nobody listens there.
    None,
    /// A socket of this user listens there.
    Ours,
    /// A socket of another user listens there (its uid).
    Foreign(u32),
    /// This system cannot say (no `/proc/net/tcp`).
    Unknown,
}

/// The owner of the listener on `addr` (see [`Listener`]).
pub fn listener_owner(addr: SocketAddr) -> Listener {
    #[cfg(target_os = "linux")]
    {
        let mut tables = Vec::with_capacity(2);
        for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // A kernel without IPv6 has no tcp6 table; a missing table holds no listener.
            match std::fs::read_to_string(path) {
                Ok(text) => tables.push(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return Listener::Unknown,
            }
        }
        if tables.is_empty() {
            return Listener::Unknown;
        }
        let uids = tables
            .iter()
            .flat_map(|table| listening_uids(table, addr))
            .collect::<Vec<_>>();
        classify(&uids, crate::local_relay::current_uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = addr;
        Listener::Unknown
    }
}

/// What the owners `uids` of the listeners on an address mean for user `ours`: any foreign
/// owner makes the address foreign (a connection may reach that socket).
pub fn classify(uids: &[u32], ours: u32) -> Listener {
    match uids.iter().find(|uid| **uid != ours) {
        Some(uid) => Listener::Foreign(*uid),
        None if uids.is_empty() => Listener::None,
        None => Listener::Ours,
    }
}

/// The uids of the sockets in `table` (the text of `/proc/net/tcp` or `/proc/net/tcp6`) that
/// listen where a connection to `addr` may arrive: the same port, and the same address, the
/// unspecified address (`0.0.0.0`, `::`), or the IPv4-mapped form of `addr`. Lines that do not
/// parse are skipped (the header, or a format this code does not know).
pub fn listening_uids(table: &str, addr: SocketAddr) -> Vec<u32> {
    /// The `st` column's value for `TCP_LISTEN` (include/net/tcp_states.h).
    const TCP_LISTEN: &str = "0A";
    table
        .lines()
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let (local, state, uid) = (columns.get(1)?, columns.get(3)?, columns.get(7)?);
            if *state != TCP_LISTEN {
                return None;
            }
            let (ip, port) = parse_endpoint(local)?;
            let uid = uid.parse::<u32>().ok()?;
            (port == addr.port() && reaches(ip, addr.ip())).then_some(uid)
        })
        .collect()
}

/// Whether a socket listening on `listening` receives connections to `target`.
fn reaches(listening: IpAddr, target: IpAddr) -> bool {
    if listening == target || listening.is_unspecified() {
        return true;
    }
    match (listening, target) {
        (IpAddr::V6(v6), IpAddr::V4(v4)) => v6.to_ipv4_mapped() == Some(v4),
        _ => false,
    }
}

/// Parses `ADDR:PORT` of `/proc/net/tcp{,6}`: the address is the kernel's in-memory bytes
/// printed as 32-bit words in host byte order (8 hex digits for IPv4, 32 for IPv6), the port
/// 4 hex digits.
fn parse_endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = |hex: &str| -> Option<Vec<u8>> {
        if !hex.is_ascii() || !hex.len().is_multiple_of(8) {
            return None;
        }
        let mut bytes = Vec::with_capacity(hex.len() / 2);
        for chunk in hex.as_bytes().chunks(8) {
            let word = std::str::from_utf8(chunk).ok()?;
            bytes.extend_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
        }
        Some(bytes)
    };
    let ip = match ip.len() {
        8 => {
            let b: [u8; 4] = words(ip)?.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(b))
        }
        32 => {
            let b: [u8; 16] = words(ip)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}
