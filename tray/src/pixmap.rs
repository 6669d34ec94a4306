//! The tray icon's pixels: an envelope drawn by chat-tray, with the unread count in a red badge
//! at its bottom-right corner, as ARGB32 pixmaps at the sizes panels ask for ([`SIZES`]).
//!
//! The count is part of the icon itself rather than an overlay: panels differ in how (and
//! whether) they draw an `OverlayIconPixmap`, and xfce4-panel draws it under the icon, where
//! nothing of it but a rim shows. The digits are a 3x5 pixel font scaled by whole pixels, so
//! they stay sharp at 16 pixels; more than 99 reads `99+`.

/// The sizes drawn, in pixels: what panels commonly ask for (a host scales the nearest one).
pub const SIZES: [usize; 5] = [16, 22, 24, 32, 48];

/// ARGB32 colours, in the byte order of the StatusNotifierItem spec (alpha first).
pub mod colour {
    /// The envelope's paper.
    pub const PAPER: [u8; 4] = [0xff, 0xf4, 0xf4, 0xf0];
    /// The envelope's outline and flap.
    pub const INK: [u8; 4] = [0xff, 0x3a, 0x3f, 0x48];
    /// The envelope's paper while chatd is locked or not reachable.
    pub const PAPER_DIM: [u8; 4] = [0xa0, 0xb8, 0xb8, 0xb8];
    /// The envelope's outline while chatd is locked or not reachable.
    pub const INK_DIM: [u8; 4] = [0xa0, 0x60, 0x60, 0x60];
    /// The badge behind the count.
    pub const BADGE: [u8; 4] = [0xff, 0xd0, 0x20, 0x20];
    /// The count's digits.
    pub const DIGIT: [u8; 4] = [0xff, 0xff, 0xff, 0xff];
    /// Nothing.
    pub const CLEAR: [u8; 4] = [0, 0, 0, 0];
}

/// 3x5 glyphs for `0`-`9` and `+`, one row per entry, the leftmost column in bit 2.
pub const GLYPHS: [[u8; 5]; 11] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
    [0b000, 0b010, 0b111, 0b010, 0b000],
];

/// How the envelope looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// chatd is unlocked.
    Normal,
    /// chatd is locked or not reachable: greyed out.
    Dim,
}

/// A square ARGB32 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixmap {
    /// Width and height in pixels.
    pub size: usize,
    /// `size * size` pixels, row by row, 4 bytes each (alpha, red, green, blue).
    pub argb: Vec<u8>,
}

impl Pixmap {
    fn new(size: usize) -> Self {
        Self {
            size,
            argb: vec![0; size * size * 4],
        }
    }

    /// The pixel at column `x`, row `y` (clear outside the image).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 4] {
        if x >= self.size || y >= self.size {
            return colour::CLEAR;
        }
        let at = (y * self.size + x) * 4;
        let mut pixel = [0; 4];
        pixel.copy_from_slice(&self.argb[at..at + 4]);
        pixel
    }

    fn set(&mut self, x: usize, y: usize, colour: [u8; 4]) {
        if x < self.size && y < self.size {
            let at = (y * self.size + x) * 4;
            self.argb[at..at + 4].copy_from_slice(&colour);
        }
    }
}

/// The text of the badge for `unread`: nothing for 0, the number up to 99, `99+` beyond.
pub fn badge_text(unread: u32) -> String {
    match unread {
        0 => String::new(),
        1..=99 => unread.to_string(),
        _ => "99+".to_owned(),
    }
}

/// The icon at every size of [`SIZES`].
pub fn render_all(look: Look, unread: u32) -> Vec<Pixmap> {
    SIZES
        .iter()
        .map(|&size| render(size, look, unread))
        .collect()
}

/// The icon at `size` pixels (at least 8): the envelope, and the badge when `unread` is not 0.
pub fn render(size: usize, look: Look, unread: u32) -> Pixmap {
    let size = size.max(8);
    let mut pixmap = Pixmap::new(size);
    envelope(&mut pixmap, look);
    let text = badge_text(unread);
    if !text.is_empty() {
        badge(&mut pixmap, &text);
    }
    pixmap
}

/// The stroke width of the envelope's lines at `size`.
fn stroke(size: usize) -> usize {
    (size / 16).max(1)
}

/// An envelope filling the width and the middle 60% of the height: paper, an outline, and the
/// flap as a V from the top corners to the middle.
fn envelope(pixmap: &mut Pixmap, look: Look) {
    let (paper, ink) = match look {
        Look::Normal => (colour::PAPER, colour::INK),
        Look::Dim => (colour::PAPER_DIM, colour::INK_DIM),
    };
    let size = pixmap.size;
    let t = stroke(size);
    let (left, right) = (0, size - 1);
    let top = size * 2 / 10;
    let bottom = size - 1 - size * 2 / 10;
    // The flap's tip, a little above the middle of the envelope.
    let (tip_x, tip_y) = (
        (size as f32 - 1.0) / 2.0,
        (top + (bottom - top) * 6 / 10) as f32,
    );
    let half = t as f32 / 2.0;
    for y in top..=bottom {
        for x in left..=right {
            let edge = x < left + t || x + t > right || y < top + t || y + t > bottom;
            let p = (x as f32, y as f32);
            let flap = distance(p, (left as f32, top as f32), (tip_x, tip_y)) <= half + 0.25
                || distance(p, (right as f32, top as f32), (tip_x, tip_y)) <= half + 0.25;
            pixmap.set(x, y, if edge || flap { ink } else { paper });
        }
    }
}

/// The distance from `p` to the segment from `a` to `b`.
fn distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx * dx + dy * dy;
    let t = if length == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length).clamp(0.0, 1.0)
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// The glyph index of a badge character.
fn glyph(c: char) -> usize {
    match c.to_digit(10) {
        Some(d) => d as usize,
        None => 10,
    }
}

/// The scale of the digits at `size` for `chars` characters: as large as lets the badge (7
/// scaled pixels high) fit in 65% of the height and the whole width, never below 1.
pub fn digit_scale(size: usize, chars: usize) -> usize {
    let mut scale = (size * 65 / 100 / 7).max(1);
    while scale > 1 && badge_width(chars, scale) > size {
        scale -= 1;
    }
    scale
}

/// The badge's width for `chars` characters at `scale`: the glyphs, one column of space
/// between them and a margin of one scaled pixel each side.
fn badge_width(chars: usize, scale: usize) -> usize {
    chars * 4 * scale - scale + 2 * scale
}

/// A red badge at the bottom-right corner with `text` in white.
fn badge(pixmap: &mut Pixmap, text: &str) {
    let size = pixmap.size;
    let chars = text.chars().count();
    let scale = digit_scale(size, chars);
    let (width, height) = (badge_width(chars, scale), 7 * scale);
    let (left, top) = (size.saturating_sub(width), size.saturating_sub(height));
    for y in top..size {
        for x in left..size {
            // Rounded corners where there are pixels to spare.
            let corner = scale > 1 && (x == left || x == size - 1) && (y == top || y == size - 1);
            if !corner {
                pixmap.set(x, y, colour::BADGE);
            }
        }
    }
    for (i, c) in text.chars().enumerate() {
        let rows = GLYPHS[glyph(c)];
        let x0 = left + scale + i * 4 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..3 {
                if bits & (0b100 >> column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        pixmap.set(
                            x0 + column * scale + dx,
                            top + scale + row * scale + dy,
                            colour::DIGIT,
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
