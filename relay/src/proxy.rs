//! The PROXY protocol version 2 header a trusted reverse proxy puts in front of each connection
//! it forwards, so per-address limits apply to the client's address rather than the proxy's
//! (SPEC.md section 10.8, docs/SERVICES.md).
//!
//! [`parse_v2`] is a pure function over bytes (what a fuzzer drives), which checks the fixed
//! part and bounds the length itself and leaves the address block to the `ppp` crate;
//! [`read_v2`] reads exactly one header from a stream, never a byte past it, so what follows
//! (TLS or HTTP) is intact. TLVs are skipped.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part: signature, version and command, family and transport, length.
pub const FIXED_LEN: usize = 16;
/// Longest address block (with TLVs) accepted; proxies send far less.
pub const MAX_BLOCK_LEN: usize = 1024;

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxiedAddr {
    /// `PROXY` over TCP: the client's address as the proxy saw it.
    Client(SocketAddr),
    /// `LOCAL` (the proxy's own connection, e.g. a health check), or a family the relay does
    /// not track (`UNSPEC`, UNIX sockets): the proxy's address stands.
    Proxy,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The bytes do not start with the version 2 signature.
    #[error("no PROXY protocol v2 signature")]
    Signature,
    /// The version nibble is not 2 or the command is neither `LOCAL` nor `PROXY`.
    #[error("unsupported PROXY protocol version or command")]
    Version,
    /// The address block is shorter than its family needs, or longer than [`MAX_BLOCK_LEN`].
    #[error("bad PROXY protocol address block length")]
    Length,
    /// A transport other than TCP (stream) for an IP family.
    #[error("the proxied connection is not TCP")]
    Transport,
}

/// Reads the fixed part of a header: the length of the address block that follows.
pub fn block_len(fixed: &[u8; FIXED_LEN]) -> Result<usize, ProxyError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyError::Signature);
    }
    let version = fixed[12] >> 4;
    let command = fixed[12] & 0x0f;
    if version != 2 || command > 1 {
        return Err(ProxyError::Version);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_BLOCK_LEN {
        return Err(ProxyError::Length);
    }
    Ok(len)
}

/// Parses a complete header: the 16 fixed bytes, then exactly the address block they announce
/// (parsed by the `ppp` crate). Returns what it says and how many bytes it took; `Ok(None)` if
/// `bytes` is too short to hold the whole header yet.
pub fn parse_v2(bytes: &[u8]) -> Result<Option<(ProxiedAddr, usize)>, ProxyError> {
    use ppp::v2::{Addresses, Command, Header, ParseError, Protocol};
    let Some(fixed) = bytes.first_chunk::<FIXED_LEN>() else {
        // A prefix that could still become a header is incomplete; anything else is not one.
        let n = bytes.len().min(SIGNATURE.len());
        return if bytes.get(..n) == SIGNATURE.get(..n) {
            Ok(None)
        } else {
            Err(ProxyError::Signature)
        };
    };
    let len = block_len(fixed)?;
    let header = match Header::try_from(bytes) {
        Ok(header) => header,
        Err(ParseError::Incomplete(_) | ParseError::Partial(..)) => return Ok(None),
        Err(ParseError::Prefix) => return Err(ProxyError::Signature),
        Err(ParseError::Version(_) | ParseError::Command(_)) => return Err(ProxyError::Version),
        Err(ParseError::Protocol(_)) => return Err(ProxyError::Transport),
        Err(_) => return Err(ProxyError::Length),
    };
    let addr = match (header.command, header.addresses) {
        (Command::Local, _) => ProxiedAddr::Proxy,
        (Command::Proxy, Addresses::IPv4(_) | Addresses::IPv6(_))
            if header.protocol != Protocol::Stream =>
        {
            return Err(ProxyError::Transport);
        }
        (Command::Proxy, Addresses::IPv4(a)) => {
            ProxiedAddr::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
        }
        (Command::Proxy, Addresses::IPv6(a)) => {
            ProxiedAddr::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
        }
        (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => ProxiedAddr::Proxy,
    };
    Ok(Some((addr, FIXED_LEN + len)))
}

/// Reads one version 2 header from `stream`, exactly its bytes.
pub async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<ProxiedAddr> {
    let invalid = |e: ProxyError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut header = vec![0u8; FIXED_LEN];
    stream.read_exact(&mut header).await?;
    let fixed: &[u8; FIXED_LEN] = header
        .first_chunk()
        .ok_or_else(|| invalid(ProxyError::Length))?;
    let len = block_len(fixed).map_err(invalid)?;
    header.resize(FIXED_LEN + len, 0);
    if let Some(block) = header.get_mut(FIXED_LEN..) {
        stream.read_exact(block).await?;
    }
    match parse_v2(&header).map_err(invalid)? {
        Some((addr, _)) => Ok(addr),
        None => Err(invalid(ProxyError::Length)),
    }
}

/// The client address a trusted HTTP proxy put in `X-Forwarded-For`: the last entry of the
/// last such header in `head` (the request head, request line included), which is the one the
/// proxy itself appended; entries before it came from the client and prove nothing. An entry
/// may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`). `None` if there is no header
/// or its last entry is not an address.
pub fn forwarded_for(head: &[u8]) -> Option<IpAddr> {
    const NAME: &[u8] = b"x-forwarded-for:";
    let value = head
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let name = line.get(..NAME.len())?;
            name.eq_ignore_ascii_case(NAME)
                .then(|| line.get(NAME.len()..))
                .flatten()
        })
        .last()?;
    let last = value.rsplit(|&b| b == b',').next()?;
    let text = std::str::from_utf8(last).ok()?.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Encodes a `PROXY` header over TCP from `source` to `destination` (both the same family),
/// as a proxy would send it. For tests and the load tool.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                IpAddr::V6(ip) => ip,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the PROXY protocol specification's section 2.2, built by hand: a TCP
    /// over IPv4 connection from 192.0.2.1:56324 to 198.51.100.7:443, with a 3-byte NOOP TLV.
    #[test]
    fn a_header_with_a_tlv_parses_and_every_prefix_is_incomplete() {
        let mut header = SIGNATURE.to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0x00, 15]);
        header.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb]);
        header.extend_from_slice(&[0x04, 0x00, 0x00]);
        let expected = ProxiedAddr::Client("192.0.2.1:56324".parse().unwrap());
        let mut with_rest = header.clone();
        with_rest.extend_from_slice(b"GET /v1 HTTP/1.1\r\n");
        assert_eq!(parse_v2(&with_rest), Ok(Some((expected, header.len()))));
        for end in 0..header.len() {
            assert_eq!(parse_v2(&header[..end]), Ok(None), "prefix of {end}");
        }
        let encoded = encode_v2(
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.7:443".parse().unwrap(),
        );
        // The same header without the TLV: the length says 12, the rest is equal.
        assert_eq!(encoded.len(), 28);
        assert_eq!(encoded[..15], header[..15]);
        assert_eq!(encoded[15], 12);
        assert_eq!(encoded[16..], header[16..28]);
    }

    #[test]
    fn ipv6_local_and_bad_headers() {
        let source: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        let v6 = encode_v2(source, "[2001:db8::2]:443".parse().unwrap());
        assert_eq!(v6.len(), 52);
        assert_eq!(
            parse_v2(&v6),
            Ok(Some((ProxiedAddr::Client(source), v6.len())))
        );

        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(parse_v2(&local), Ok(Some((ProxiedAddr::Proxy, 16))));
        // PROXY from a UNIX socket: no client address to take, the proxy's stands.
        let mut unix = SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
        unix.extend_from_slice(&[0; 216]);
        assert_eq!(parse_v2(&unix), Ok(Some((ProxiedAddr::Proxy, 232))));
        // An unknown family is malformed.
        let mut unknown = SIGNATURE.to_vec();
        unknown.extend_from_slice(&[0x21, 0x41, 0x00, 0x00]);
        assert!(parse_v2(&unknown).is_err());

        let mut bad = v6.clone();
        bad[0] = b'G';
        assert_eq!(parse_v2(&bad), Err(ProxyError::Signature));
        assert_eq!(parse_v2(b"GET /v1"), Err(ProxyError::Signature));
        let mut bad = v6.clone();
        bad[12] = 0x11;
        assert_eq!(parse_v2(&bad), Err(ProxyError::Version));
        let mut bad = v6.clone();
        bad[12] = 0x22;
        assert_eq!(parse_v2(&bad), Err(ProxyError::Version));
        // An IPv6 family with an IPv4-sized block.
        let mut bad = v6.clone();
        bad[15] = 12;
        assert_eq!(parse_v2(&bad[..28]), Err(ProxyError::Length));
        // UDP.
        let mut bad = v6.clone();
        bad[13] = 0x22;
        assert_eq!(parse_v2(&bad), Err(ProxyError::Transport));
        // Too long a block.
        let mut bad = v6;
        bad[14] = 0x10;
        assert_eq!(parse_v2(&bad), Err(ProxyError::Length));
    }

    #[test]
    fn the_last_forwarded_for_entry_counts() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let head = |headers: &str| format!("GET /v1 HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        assert_eq!(
            forwarded_for(head("X-Forwarded-For: 198.51.100.1\r\n").as_bytes()),
            ip("198.51.100.1")
        );
        // The client wrote the first entries; the proxy appended the last.
        assert_eq!(
            forwarded_for(head("x-forwarded-for: 10.0.0.1, 1.2.3.4 ,203.0.113.7\r\n").as_bytes()),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_for(
                head("X-Forwarded-For: 10.0.0.1\r\nX-FORWARDED-FOR: [2001:db8::1]:4711\r\n")
                    .as_bytes()
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_for(head("X-Forwarded-For: 203.0.113.7:80\r\n").as_bytes()),
            ip("203.0.113.7")
        );
        for none in [
            "",
            "X-Forwarded-For: unknown\r\n",
            "X-Forwarded-For:\r\n",
            "X-Real-IP: 1.2.3.4\r\n",
        ] {
            assert_eq!(forwarded_for(head(none).as_bytes()), None, "{none:?}");
        }
        // The request line is not a header.
        assert_eq!(forwarded_for(b"x-forwarded-for: 1.2.3.4\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn read_takes_exactly_the_header() {
        let header = encode_v2(
            "203.0.113.9:1000".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
        );
        let mut input = header.clone();
        input.extend_from_slice(b"rest");
        let mut reader = &input[..];
        let addr = read_v2(&mut reader).await.unwrap();
        assert_eq!(
            addr,
            ProxiedAddr::Client("203.0.113.9:1000".parse().unwrap())
        );
        assert_eq!(reader, b"rest");
        assert!(
            read_v2(&mut &b"GET /v1 HTTP/1.1\r\n\r\n"[..])
                .await
                .is_err()
        );
    }
}
