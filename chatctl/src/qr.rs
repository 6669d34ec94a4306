//! The safety-number QR code: chatd's hex payload decoded and drawn with Unicode half blocks.

use std::fmt;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// Why a hex string does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// An odd number of digits.
    OddLength(usize),
    /// Not a hex digit, at this byte offset.
    InvalidDigit(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::OddLength(n) => write!(f, "odd number of hex digits ({n})"),
            HexError::InvalidDigit(at) => write!(f, "not a hex digit at offset {at}"),
        }
    }
}

impl std::error::Error for HexError {}

/// Decodes hex digits (either case) into bytes.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(HexError::OddLength(bytes.len()));
    }
    let digit = |at: usize| {
        char::from(bytes[at])
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(HexError::InvalidDigit(at))
    };
    (0..bytes.len())
        .step_by(2)
        .map(|at| Ok(digit(at)? << 4 | digit(at + 1)?))
        .collect()
}

/// Draws `payload` as a QR code, two modules per character cell, with a quiet zone.
///
/// The colours are swapped on purpose: a terminal draws the block characters in its foreground
/// colour, which is light on the usual dark background, so dark modules are left blank and
/// light ones are drawn. (On a light-background terminal, scanners that accept inverted codes
/// still read it.)
pub fn render(payload: &[u8]) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::new(payload)?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests;
