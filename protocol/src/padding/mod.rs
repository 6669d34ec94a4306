//! Length-hiding padding of plaintexts before encryption: Padmé buckets with an ISO/IEC 7816-4
//! marker, SPEC.md section 7.
//!
//! A plaintext of `n` bytes becomes `plaintext || 0x80 || 0x00 ...`, [`padded_len`]`(n)` bytes
//! long. The bucket length is Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted
//! Files and Communication with PURBs", PETS 2019) of `L = max(n + 1, 64)`: `L` rounded up to a
//! multiple of `2^(E - S)`, where `E = floor(log2(L))` and `S = floor(log2(E)) + 1`.
//!
//! - The smallest bucket is [`MIN_PADDED_LEN`] (64 bytes): every plaintext of 0 to 63 bytes
//!   looks the same.
//! - The overhead is bounded: with `L = n + 1 >= 64`, `padded_len(n) - L < 0.12 * L` (the worst
//!   case is 11.6%, `L = 129` padded to 144). In general fewer than `2^(E - S)` bytes are added,
//!   less than `L / 2^S`: under 6.25% from `L = 256` and under 3.125% from `L = 65536`. In
//!   exchange a bucket reveals only `O(log log n)` bits of the length.
//! - Plaintexts longer than [`MAX_PLAINTEXT_LEN`] (1 MiB) are refused; the largest bucket is
//!   [`MAX_PADDED_LEN`].
//!
//! [`unpad`] accepts exactly what [`pad`] produces: the length must be the bucket of the
//! plaintext it holds, and the last non-zero byte must be the `0x80` marker. It scans from the
//! end, so it reads the padding and the marker but never the plaintext.

/// The largest plaintext [`pad`] accepts: 1 MiB.
pub const MAX_PLAINTEXT_LEN: usize = 1 << 20;
/// The smallest padded length, the bucket of every plaintext shorter than 64 bytes.
pub const MIN_PADDED_LEN: usize = 64;
/// The largest padded length, `padded_len(MAX_PLAINTEXT_LEN)` = 1,081,344 = 33 * 2^15.
pub const MAX_PADDED_LEN: usize = padme(MAX_PLAINTEXT_LEN + 1);
/// The byte that ends the plaintext (ISO/IEC 7816-4 padding).
pub const MARKER: u8 = 0x80;

/// A plaintext longer than [`MAX_PLAINTEXT_LEN`] was handed to [`pad`] or [`padded_len`]: the
/// caller must split or refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("plaintext of {len} bytes exceeds the {MAX_PLAINTEXT_LEN}-byte limit")]
pub struct PlaintextTooLong {
    /// The length that was asked for.
    pub len: usize,
}

/// Why a decrypted buffer is not a padded plaintext. Since padding is removed after the AEAD
/// has authenticated the buffer, any of these means the sender's implementation is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaddingError {
    /// The length is not a bucket length: smaller than [`MIN_PADDED_LEN`], larger than
    /// [`MAX_PADDED_LEN`], or not a value [`padded_len`] can return.
    #[error("padded length {len} is not a bucket length")]
    NotABucket {
        /// The length of the buffer.
        len: usize,
    },
    /// The last non-zero byte is not `0x80`, or every byte is zero: the marker is missing or a
    /// non-zero byte follows it.
    #[error("padding marker missing or followed by non-zero bytes")]
    BadMarker,
    /// The marker is in place but the buffer is longer than the bucket of the plaintext it
    /// holds: more padding than [`pad`] adds.
    #[error("{len} bytes of padding for a {plaintext_len}-byte plaintext is not canonical")]
    ExcessPadding {
        /// The length of the buffer.
        len: usize,
        /// The length of the plaintext found in it.
        plaintext_len: usize,
    },
}

/// The padded length of an `len`-byte plaintext: Padmé of `max(len + 1, 64)`.
pub fn padded_len(len: usize) -> Result<usize, PlaintextTooLong> {
    if len > MAX_PLAINTEXT_LEN {
        return Err(PlaintextTooLong { len });
    }
    Ok(padme((len + 1).max(MIN_PADDED_LEN)))
}

/// Pads `plaintext` to its bucket: the plaintext, `0x80`, then zeros up to [`padded_len`].
pub fn pad(plaintext: &[u8]) -> Result<Vec<u8>, PlaintextTooLong> {
    let len = padded_len(plaintext.len())?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(plaintext);
    out.push(MARKER);
    out.resize(len, 0);
    Ok(out)
}

/// Removes the padding [`pad`] added, refusing anything `pad` could not have produced.
///
/// Checks the length first, then scans back over the zero bytes to the marker, so the work is
/// proportional to the padding, not to the message.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    let len = padded.len();
    if !is_bucket(len) {
        return Err(PaddingError::NotABucket { len });
    }
    let Some(marker) = padded.iter().rposition(|&b| b != 0) else {
        return Err(PaddingError::BadMarker);
    };
    // `marker` is the index of a byte of `padded`, so it is at most `len - 1`.
    let (plaintext, rest) = padded.split_at(marker);
    if rest.first() != Some(&MARKER) {
        return Err(PaddingError::BadMarker);
    }
    if padded_len(marker) != Ok(len) {
        return Err(PaddingError::ExcessPadding {
            len,
            plaintext_len: marker,
        });
    }
    Ok(plaintext)
}

/// Whether `len` is a length [`padded_len`] returns: within bounds and a fixed point of Padmé.
///
/// Padmé output is a fixed point: rounding `L` up either keeps its exponent `E` (so the result
/// is a multiple of the same `2^(E - S)`) or reaches `2^(E + 1)`, a power of two.
pub fn is_bucket(len: usize) -> bool {
    (MIN_PADDED_LEN..=MAX_PADDED_LEN).contains(&len) && padme(len) == len
}

/// Padmé: rounds `l >= 2` up to a multiple of `2^(E - S)`, `E = floor(log2(l))`,
/// `S = floor(log2(E)) + 1`, so that at most `S + 1` significant bits remain. Only called with
/// `64 <= l <= MAX_PADDED_LEN`, where nothing can overflow or panic.
const fn padme(l: usize) -> usize {
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let last_bits = e - s;
    let mask = (1usize << last_bits) - 1;
    (l + mask) & !mask
}

#[cfg(test)]
mod tests;
