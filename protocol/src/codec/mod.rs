//! The byte-level codec every wire and pickle format in this crate is built from.
//!
//! The rules (the conventions at the top of SPEC.md): integers are big-endian and fixed width;
//! variable-length byte strings carry a `u16` or `u32` length prefix; lists carry a `u16`
//! count; every top-level structure starts with a version byte; trailing bytes are an error.
//!
//! Decoding is total: any byte string yields a value or a [`DecodeError`], never a panic, and a
//! decoder never allocates more than the input it was given (lengths are checked against the
//! remaining input before anything is copied). "Incomplete, read more" ([`DecodeError::Truncated`])
//! is kept apart from "invalid".
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early: at least `needed` more bytes are required.
    #[error("input truncated: {needed} more bytes needed")]
    Truncated {
        /// How many more bytes the decoder needed at the point it stopped.
        needed: usize,
    },
    /// The version byte names a version this implementation does not speak.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A type or tag byte is not one this version defines.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// The input continued after a complete value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A length or count exceeds the limit this field allows.
    #[error("{what} is {len}, more than the limit of {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length or count found.
        len: usize,
        /// The limit for the field.
        max: usize,
    },
    /// A field decoded but its value is not acceptable (a weak key, a zero where none is
    /// allowed, bad UTF-8...).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends encoded fields to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Writes a big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes a big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes a big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes bytes with no length prefix (fixed-size fields).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Writes a byte string with a `u16` length prefix.
    ///
    /// Callers bound their fields well below 65535 bytes; a longer value is a programming error
    /// and is truncated to the prefix's range rather than panicking, which the decoder then
    /// rejects as malformed.
    pub fn bytes16(&mut self, v: &[u8]) {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.raw(v.get(..usize::from(len)).unwrap_or(v));
    }

    /// Writes a byte string with a `u32` length prefix.
    pub fn bytes32(&mut self, v: &[u8]) {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.raw(v.get(..len as usize).unwrap_or(v));
    }

    /// Writes a UTF-8 string with a `u16` length prefix.
    pub fn str16(&mut self, v: &str) {
        self.bytes16(v.as_bytes());
    }

    /// Writes a list as a `u16` count followed by each item.
    pub fn list<T: Encode>(&mut self, items: &[T]) {
        let count = u16::try_from(items.len()).unwrap_or(u16::MAX);
        self.u16(count);
        for item in items.iter().take(usize::from(count)) {
            item.encode(self);
        }
    }

    /// Writes an optional value as a presence byte (0 or 1) followed by the value.
    pub fn option<T: Encode>(&mut self, v: Option<&T>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                v.encode(self);
            }
        }
    }
}

/// Reads fields from a byte slice, checking every length before it slices.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.input.len()))
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.input.len() {
            return Err(DecodeError::Truncated {
                needed: n.saturating_sub(self.input.len()),
            });
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.input)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a byte string with a `u16` length prefix, refusing one longer than `max`.
    pub fn bytes16(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        check_len(what, len, max)?;
        self.take(len)
    }

    /// Reads a byte string with a `u32` length prefix, refusing one longer than `max`.
    pub fn bytes32(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        check_len(what, len, max)?;
        self.take(len)
    }

    /// Reads a UTF-8 string with a `u16` length prefix.
    pub fn str16(&mut self, what: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes16(what, max)?).map_err(|_| DecodeError::Invalid(what))
    }

    /// Reads a `u16` count and that many items, refusing more than `max` items.
    ///
    /// Every item consumes at least one byte, and the vector grows only as items decode, so a
    /// lying count cannot make the decoder allocate more than the input justifies.
    pub fn list<T: Decode>(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let count = usize::from(self.u16()?);
        check_len(what, count, max)?;
        let mut items = Vec::with_capacity(count.min(self.input.len()).min(64));
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }

    /// Reads a presence byte and, if it is 1, the value.
    pub fn option<T: Decode>(&mut self, what: &'static str) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(self)?)),
            _ => Err(DecodeError::Invalid(what)),
        }
    }

    /// Reads a version byte and checks it equals `expected`.
    pub fn version(&mut self, what: &'static str, expected: u8) -> Result<(), DecodeError> {
        let version = self.u8()?;
        if version == expected {
            Ok(())
        } else {
            Err(DecodeError::UnsupportedVersion { what, version })
        }
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        Err(DecodeError::TooLong { what, len, max })
    } else {
        Ok(())
    }
}

/// A value with a canonical byte encoding.
pub trait Encode {
    /// Appends the encoding to `w`.
    fn encode(&self, w: &mut Writer);

    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }
}

/// A value that can be decoded from its canonical encoding.
pub trait Decode: Sized {
    /// Reads one value from `r`, leaving the reader after it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value that must span all of `bytes`.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

impl Encode for u8 {
    fn encode(&self, w: &mut Writer) {
        w.u8(*self);
    }
}

impl Decode for u8 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u8()
    }
}

#[cfg(test)]
mod tests;
